/* test.h: a tiny TAP test harness for the C unit tests.
 * Each RUN(fn) is one TAP test point; CHECK* record why it failed
 * ("expected ..., got ...") as TAP diagnostics. meson runs the binaries with protocol 'tap'. */
#ifndef ZMB_TEST_H
#define ZMB_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_points;
static int test_points_failed;
static int test_current_failed;

#define CHECK(cond)                                                                                  \
	do {                                                                                         \
		if (!(cond)) {                                                                       \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: expected %s\n", __FILE__, __LINE__, #cond);                 \
		}                                                                                    \
	} while (0)

#define CHECK_INT(got, want)                                                                         \
	do {                                                                                         \
		long long g_ = (long long)(got), w_ = (long long)(want);                             \
		if (g_ != w_) {                                                                      \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #got, w_, g_); \
		}                                                                                    \
	} while (0)

/* Compares C strings; NULL is a distinct value that only equals NULL. */
#define CHECK_STR(got, want)                                                                         \
	do {                                                                                         \
		const char *g_ = (got), *w_ = (want);                                                \
		if ((g_ == NULL) != (w_ == NULL) || (g_ && strcmp(g_, w_) != 0)) {                   \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: %s:\n#   expected: %s\n#   got:      %s\n", __FILE__, __LINE__, \
			       #got, w_ ? w_ : "(null)", g_ ? g_ : "(null)");                         \
		}                                                                                    \
	} while (0)

/* Substring check, for messages whose exact wording may carry more detail. */
#define CHECK_CONTAINS(haystack, needle)                                                             \
	do {                                                                                         \
		const char *h_ = (haystack), *n_ = (needle);                                         \
		if (!h_ || !strstr(h_, n_)) {                                                        \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: %s: expected to contain \"%s\", got: %s\n", __FILE__, __LINE__, \
			       #haystack, n_, h_ ? h_ : "(null)");                                    \
		}                                                                                    \
	} while (0)

#define CHECK_NOT_CONTAINS(haystack, needle)                                                         \
	do {                                                                                         \
		const char *h_ = (haystack), *n_ = (needle);                                         \
		if (h_ && strstr(h_, n_)) {                                                          \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: %s: must not contain \"%s\", got: %s\n", __FILE__, __LINE__,  \
			       #haystack, n_, h_);                                                    \
		}                                                                                    \
	} while (0)

/* Runs one test point under a name (a test function, or a data-driven case). */
#define RUN_NAMED(name, call)                                                                        \
	do {                                                                                         \
		test_current_failed = 0;                                                             \
		call;                                                                                \
		test_points++;                                                                       \
		if (test_current_failed)                                                             \
			test_points_failed++;                                                        \
		printf("%s %d - %s\n", test_current_failed ? "not ok" : "ok", test_points, name);   \
		fflush(stdout);                                                                      \
	} while (0)

#define RUN(fn) RUN_NAMED(#fn, fn())

/* Prints the TAP plan; the exit status tells meson whether anything failed. */
static inline int test_done(void)
{
	printf("1..%d\n", test_points);
	return test_points_failed ? 1 : 0;
}

#endif
