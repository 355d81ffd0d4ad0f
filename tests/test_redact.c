/* Tests of redact: which secrets are registered, how every copy of one (overlapping,
 * adjacent, at either end, cut short) becomes one mark, and that log lines go through it. */
#include "redact.h"

#include "log.h"
#include "strbuf.h"
#include "test.h"

/* The redacted text as a new string (caller frees). */
static char *redacted(const char *text)
{
	struct strbuf scratch = STRBUF_INIT;
	char *out = xstrdup(redact_str(text, &scratch));
	strbuf_free(&scratch);
	return out;
}

#define CHECK_REDACTS(text, want)                                                                    \
	do {                                                                                         \
		char *got_ = redacted(text);                                                         \
		CHECK_STR(got_, want);                                                               \
		free(got_);                                                                          \
	} while (0)

/* What the log wrote while fn ran. */
static char *capture(void (*fn)(void))
{
	FILE *f = tmpfile();
	log_set_stream(f);
	fn();
	log_set_stream(NULL);
	long n = ftell(f);
	rewind(f);
	char *buf = xcalloc(1, (size_t)n + 1);
	size_t got = fread(buf, 1, (size_t)n, f);
	buf[got] = '\0';
	fclose(f);
	return buf;
}

static void test_text_without_secrets_is_returned_as_it_is(void)
{
	redact_clear();
	struct strbuf scratch = STRBUF_INIT;
	const char *text = "HTTP 403 M_FORBIDDEN: not in room";
	CHECK(redact_str(text, &scratch) == text); /* no secrets at all: no copy */
	CHECK(redact_add("syt_secret_token_1"));
	CHECK(redact_str(text, &scratch) == text);
	CHECK(redact_str(NULL, &scratch) == NULL);
	CHECK(scratch.len == 0);
	strbuf_free(&scratch);
	redact_clear();
}

static void test_a_secret_is_redacted_wherever_it_stands(void)
{
	redact_clear();
	CHECK(redact_add("syt_secret_token_1"));
	CHECK_REDACTS("syt_secret_token_1", "[redacted]");
	CHECK_REDACTS("syt_secret_token_1 at the start", "[redacted] at the start");
	CHECK_REDACTS("at the end syt_secret_token_1", "at the end [redacted]");
	CHECK_REDACTS("{\"error\":\"Bearer syt_secret_token_1 unknown\"}", "{\"error\":\"Bearer [redacted] unknown\"}");
	CHECK_REDACTS("a syt_secret_token_1\nb syt_secret_token_1\n", "a [redacted]\nb [redacted]\n");
	/* A near miss is ordinary text. */
	CHECK_REDACTS("syt_secret_token_2", "syt_secret_token_2");
	redact_clear();
}

static void test_overlapping_and_adjacent_secrets_leave_nothing_behind(void)
{
	redact_clear();
	CHECK(redact_add("abcdefgh12"));
	CHECK(redact_add("gh12345678"));
	/* Replacing one at a time would leave "345678" of the second. */
	CHECK_REDACTS("xx abcdefgh12345678 yy", "xx [redacted] yy");
	CHECK_REDACTS("abcdefgh12gh12345678", "[redacted]");
	redact_clear();
	/* One secret overlapping itself. */
	CHECK(redact_add("aaaaaaaa"));
	CHECK_REDACTS("baaaaaaaaaaab", "b[redacted]b");
	redact_clear();
	/* The longer of two nested secrets goes whole. */
	CHECK(redact_add("password"));
	CHECK(redact_add("password-2026"));
	CHECK_REDACTS("pw=password-2026;", "pw=[redacted];");
	redact_clear();
}

static void test_a_secret_cut_short_at_the_end_is_redacted(void)
{
	redact_clear();
	CHECK(redact_add("syt_0123456789abcdef"));
	/* A preview or a truncated body that stops in the middle of the token. */
	CHECK_REDACTS("body: {\"token\": \"syt_01234567", "body: {\"token\": \"[redacted]");
	CHECK_REDACTS("token syt_0123456789...", "token [redacted]...");
	CHECK_REDACTS("token syt_0123456789\xe2\x80\xa6", "token [redacted]\xe2\x80\xa6");
	/* Fewer than REDACT_MIN_LEN bytes of it are ordinary text. */
	CHECK_REDACTS("prefix syt_012", "prefix syt_012");
	/* The beginning of the token in the middle of a text is not a cut copy. */
	CHECK_REDACTS("syt_01234567 and more", "syt_01234567 and more");
	redact_clear();
}

static void emit_nothing(void) {}

static bool added_short;
static void add_short_secret(void) { added_short = redact_add("1234567"); }

static void test_empty_and_short_secrets_are_not_registered(void)
{
	redact_clear();
	CHECK(!redact_add(NULL));
	CHECK(!redact_add(""));
	char *out = capture(emit_nothing);
	CHECK_STR(out, "");
	free(out);
	/* 7 bytes: refused, with a warning that does not quote it. */
	out = capture(add_short_secret);
	CHECK(!added_short);
	CHECK_CONTAINS(out, "level=warn");
	CHECK_CONTAINS(out, "min_bytes=8");
	CHECK_NOT_CONTAINS(out, "1234567");
	free(out);
	CHECK_REDACTS("pin 1234567", "pin 1234567");
	/* 8 bytes: the shortest that is redacted. */
	CHECK(redact_add("12345678"));
	CHECK_REDACTS("pin 12345678", "pin [redacted]");
	/* A secret already known is not added again (a reload reads the same file). */
	CHECK(redact_add("12345678"));
	redact_clear();
	CHECK_REDACTS("pin 12345678", "pin 12345678");
}

static void test_only_the_newest_rotating_secrets_are_kept(void)
{
	redact_clear();
	CHECK(redact_add("permanent-password"));
	char tok[32];
	for (int i = 0; i < REDACT_ROTATING_KEEP + 3; i++) {
		snprintf(tok, sizeof tok, "syt_rotating_%02d", i);
		CHECK(redact_add_rotating(tok));
	}
	/* The three oldest tokens are gone; the newest ones and the password stay. */
	CHECK_REDACTS("syt_rotating_00", "syt_rotating_00");
	CHECK_REDACTS("syt_rotating_02", "syt_rotating_02");
	CHECK_REDACTS("syt_rotating_03", "[redacted]");
	snprintf(tok, sizeof tok, "syt_rotating_%02d", REDACT_ROTATING_KEEP + 2);
	CHECK_REDACTS(tok, "[redacted]");
	CHECK_REDACTS("permanent-password", "[redacted]");
	redact_clear();
}

static void emit_secret_lines(void)
{
	log_kv(ZLOG_ERROR, "send failed", "reason", "HTTP 401 M_UNKNOWN_TOKEN: bad token tok\"en\\-secret-1",
	       "room", "!a:localhost", NULL);
	log_error("curl: https://hs/?access_token=tok\"en\\-secret-1 refused");
}

static void test_log_lines_are_redacted_before_escaping(void)
{
	redact_clear();
	/* Quote and backslash: escaping would spell it tok\"en\\-secret-1 in the line. */
	CHECK(redact_add("tok\"en\\-secret-1"));
	char *out = capture(emit_secret_lines);
	CHECK_CONTAINS(out, " reason=\"HTTP 401 M_UNKNOWN_TOKEN: bad token [redacted]\" room=!a:localhost\n");
	CHECK_CONTAINS(out, "msg=\"curl: https://hs/?access_token=[redacted] refused\"\n");
	CHECK_NOT_CONTAINS(out, "secret-1");
	free(out);
	redact_clear();
}

int main(void)
{
	RUN(test_text_without_secrets_is_returned_as_it_is);
	RUN(test_a_secret_is_redacted_wherever_it_stands);
	RUN(test_overlapping_and_adjacent_secrets_leave_nothing_behind);
	RUN(test_a_secret_cut_short_at_the_end_is_redacted);
	RUN(test_empty_and_short_secrets_are_not_registered);
	RUN(test_only_the_newest_rotating_secrets_are_kept);
	RUN(test_log_lines_are_redacted_before_escaping);
	return test_done();
}
