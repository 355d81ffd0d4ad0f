/* fuzz_job_output: libFuzzer target for what a log server sends: the input is one
 * job-output.json (hostile or broken), read by job_output_parse; whatever it finds must be
 * valid UTF-8 without control characters (but newline and tab) and within the limits of
 * job_output.h. The same bytes also go through details_text_clean and _tail on their own. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "details_text.h"
#include "job_output.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t count_chars(const char *s)
{
	size_t k = 0;
	for (; *s; s++)
		k += ((unsigned char)*s & 0xc0) != 0x80;
	return k;
}

/* Aborts unless s is NULL or clean text: valid UTF-8, no controls but \n and \t. */
static void check_clean(const char *s)
{
	if (!s)
		return;
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f || *p == 0x1b)
			abort();
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		if (!n || (*p >= 0x80 && *p < 0xc2) || *p > 0xf4)
			abort();
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80)
				abort();
		p += n;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job_output_failure f;
	char err[128];
	int rc = job_output_parse((const char *)data, size, &f, err, sizeof err);
	if (rc < -1 || rc > 1)
		abort();
	if (rc == 1) {
		check_clean(f.playbook);
		check_clean(f.phase);
		check_clean(f.task);
		check_clean(f.role);
		check_clean(f.host);
		check_clean(f.msg);
		check_clean(f.error_lines);
		if (f.error_lines) {
			size_t lines = 1;
			for (const char *p = f.error_lines; *p; p++)
				lines += *p == '\n';
			if (lines > JOB_OUTPUT_MAX_LINES || count_chars(f.error_lines) > JOB_OUTPUT_MAX_CHARS)
				abort();
		}
		if (f.task && count_chars(f.task) > JOB_OUTPUT_MAX_FIELD)
			abort();
	} else if (f.task || f.error_lines) {
		abort();
	}
	job_output_failure_clear(&f);

	struct strbuf clean = STRBUF_INIT;
	details_text_clean(&clean, (const char *)data, size);
	check_clean(strbuf_str(&clean));
	char *tail = details_text_tail(strbuf_str(&clean), 3, 40);
	check_clean(tail);
	if (count_chars(tail) > 40)
		abort();
	free(tail);
	strbuf_free(&clean);
	return 0;
}
