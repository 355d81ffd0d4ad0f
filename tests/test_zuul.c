/* Tests of zuul: decoding both schema generations, rejection of fields of a type Zuul never
 * sends, Python's non-finite numbers, custom job results, rejection reasons, the payload corpus in tests/data/payloads, previews and event keys. */
#include "zuul.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "test.h"

#define PAYLOAD_DIR "tests/data/payloads"
#define INVALID_DIR PAYLOAD_DIR "/invalid"
#define SAMPLE_DIR PAYLOAD_DIR

/* Reads a whole file; returns its bytes (caller frees) and length, NULL if unreadable. */
static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	struct strbuf sb = STRBUF_INIT;
	char buf[65536];
	size_t n;

	if (!f)
		return NULL;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(&sb, buf, n);
	fclose(f);
	*len = sb.len;
	return strbuf_detach(&sb);
}

static struct zuul_event *parse_str(const char *json, char *err, size_t errlen)
{
	return zuul_event_parse(json, strlen(json), err, errlen);
}

static struct zuul_event *parse_file(const char *path, char *err, size_t errlen)
{
	size_t len = 0;
	char *data = read_file(path, &len);
	struct zuul_event *ev;

	if (!data) {
		snprintf(err, errlen, "cannot read %s", path);
		return NULL;
	}
	ev = zuul_event_parse(data, len, err, errlen);
	free(data);
	return ev;
}

/* Expects payload to be rejected with a reason containing want. */
static void check_rejected(const char *payload, size_t len, const char *want)
{
	char err[256] = "untouched";
	struct zuul_event *ev = zuul_event_parse(payload, len, err, sizeof(err));
	if (ev) {
		printf("# expected rejection (\"%s\"), got an event with action %s\n", want, ev->action);
		test_current_failed = 1;
		zuul_event_free(ev);
		return;
	}
	CHECK_CONTAINS(err, want);
}

static struct zuul_event *parse_ok(const char *json)
{
	char err[256];
	struct zuul_event *ev = parse_str(json, err, sizeof(err));
	if (!ev) {
		printf("# expected an event from %s, got: %s\n", json, err);
		test_current_failed = 1;
	}
	return ev;
}

static void check_rejected_str(const char *payload, const char *want)
{
	check_rejected(payload, strlen(payload), want);
}

static bool near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

static bool all_printable_ascii(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	}
	return true;
}

/* ---- the shared samples, field by field ---------------------------------------------------- */

static void test_legacy_sample_decodes_every_field(void)
{
	char err[256];
	struct zuul_event *ev = parse_file(SAMPLE_DIR "/shared-legacy-success.json", err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev) {
		printf("# %s\n", err);
		return;
	}
	CHECK_INT(ev->schema, ZUUL_SCHEMA_LEGACY);
	CHECK_STR(ev->action, "success");
	CHECK_STR(ev->tenant, "example.org");
	CHECK_STR(ev->pipeline, "check");
	CHECK_STR(ev->queue, NULL);
	CHECK_STR(ev->uuid, NULL);
	CHECK_STR(ev->zuul_ref, "Zf8b3d7cd34f54cb396b488226589db8f");
	CHECK_STR(ev->zuul_event_id, "8c2b0a4f2e1d4f0f9a7b6c5d4e3f2a1b");
	CHECK_STR(ev->message, "Build succeeded.");
	CHECK_STR(ev->item.project, "sf-jobs");
	CHECK_STR(ev->item.branch, "master");
	CHECK_STR(ev->item.change_url, "https://gerrit.example.com/r/3");
	CHECK_STR(ev->item.change, "3");
	CHECK_STR(ev->item.patchset, "1");
	CHECK_STR(ev->item.commit_id, NULL);
	CHECK_STR(ev->item.owner, NULL);
	CHECK_STR(ev->item.ref, "refs/changes/03/3/1");
	CHECK_INT(ev->n_changes, 0);
	CHECK(near(ev->timestamp, 1524801210.1));
	CHECK(near(ev->trigger_time, 1524801056.25));
	CHECK(near(ev->enqueue_time, 1524801093.57));
	CHECK_STR(ev->buildset_uuid, "f8b3d7cd34f54cb396b488226589db8f");
	CHECK_STR(ev->buildset_result, NULL);
	CHECK_INT(ev->n_builds, 1);
	CHECK_INT(ev->n_retry_builds, 0);
	if (ev->n_builds == 1) {
		const struct zuul_build *b = &ev->builds[0];
		CHECK_STR(b->job_name, "linters");
		CHECK_STR(b->job_uuid, NULL);
		CHECK_STR(b->uuid, "16e3e55aca984c6c9a50cc3c5b21bb83");
		CHECK_STR(b->result, "SUCCESS");
		CHECK_STR(b->log_url, "https://logs.example.com/logs/3/3/1/check/linters/16e3e55/");
		CHECK_STR(b->web_url, NULL);
		CHECK(b->voting);
		CHECK(!b->retried);
		CHECK(near(b->execute_time, 1524801120.76));
		CHECK(near(b->start_time, 1524801179.86));
		CHECK(near(b->end_time, 1524801208.93));
		CHECK(b->change == NULL);
		CHECK_INT(b->n_artifacts, 0);
		CHECK_INT(b->n_dependencies, 0);
	}
	zuul_event_free(ev);
}

static void test_current_failure_sample_decodes_every_field(void)
{
	char err[256];
	struct zuul_event *ev = parse_file(SAMPLE_DIR "/shared-modern-failure.json", err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev) {
		printf("# %s\n", err);
		return;
	}
	const char *sha = "6f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6";
	CHECK_INT(ev->schema, ZUUL_SCHEMA_CURRENT);
	CHECK_STR(ev->action, "failure");
	CHECK_STR(ev->tenant, "scs");
	CHECK_STR(ev->pipeline, "check");
	CHECK_STR(ev->queue, NULL); /* "" is "no queue" */
	CHECK_STR(ev->uuid, "b2c4e6a8f0d24c6e8a0b2d4f6a8c0e2d");
	CHECK_STR(ev->zuul_ref, "Z3a0c2f0e5b7d4e1f9a8b6c4d2e0f1a2b");
	CHECK_STR(ev->zuul_event_id, "c0ffee12345642a8b9c0d1e2f3a4b5c6");
	CHECK_STR(ev->message, "Build failed.\n\nWarning:\n  Job scs-check-gx-scs uses a deprecated nodeset.");
	CHECK_STR(ev->item.project, "SovereignCloudStack/standards");
	CHECK_STR(ev->item.branch, "main");
	CHECK_STR(ev->item.change_url, "https://github.com/SovereignCloudStack/standards/pull/812");
	CHECK_STR(ev->item.change, "812");
	CHECK_STR(ev->item.patchset, sha);
	CHECK_STR(ev->item.commit_id, sha);
	CHECK_STR(ev->item.owner, "jdoe");
	CHECK_STR(ev->item.ref, "refs/pull/812/head");
	CHECK_STR(ev->item.topic, NULL);
	CHECK_INT(ev->n_changes, 1);
	if (ev->n_changes == 1) {
		CHECK_STR(ev->changes[0].project, "SovereignCloudStack/standards");
		CHECK_STR(ev->changes[0].change, "812");
		CHECK_STR(ev->changes[0].owner, "jdoe");
		CHECK_STR(ev->changes[0].topic, NULL);
	}
	CHECK(near(ev->timestamp, 1732181412.08));
	CHECK(near(ev->trigger_time, 1732180790.11));
	CHECK(near(ev->enqueue_time, 1732180791.87));
	CHECK_STR(ev->buildset_uuid, "5e7a9c1b3d5f47a9b1c3e5a7c9e1b3d5");
	CHECK_STR(ev->buildset_result, "FAILURE");
	CHECK_INT(ev->n_builds, 2);
	if (ev->n_builds == 2) {
		const struct zuul_build *b = &ev->builds[0];
		CHECK_STR(b->job_name, "tox-py311");
		CHECK_STR(b->job_uuid, "0f1e2d3c4b5a4f6e8d7c6b5a4f3e2d1c");
		CHECK_STR(b->uuid, "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a");
		CHECK_STR(b->result, "FAILURE");
		CHECK_STR(b->log_url, "https://logs.example.org/812/6f1e2d3/check/tox-py311/9d8c7b6/");
		CHECK_STR(b->web_url, "https://zuul.example.org/t/scs/build/9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a");
		CHECK(b->voting);
		CHECK(!b->retried);
		CHECK(near(b->start_time, 1732180851.4));
		CHECK(near(b->end_time, 1732181120.9));
		CHECK(near(b->execute_time, 1732180840.2));
		CHECK(b->change != NULL);
		if (b->change) {
			CHECK_STR(b->change->change, "812");
			CHECK_STR(b->change->ref, "refs/pull/812/head");
			CHECK_STR(b->change->owner, "jdoe");
		}
		CHECK_INT(b->n_artifacts, 1);
		if (b->n_artifacts == 1) {
			CHECK_STR(b->artifacts[0].name, "Zuul Manifest");
			CHECK_STR(b->artifacts[0].url,
				  "https://logs.example.org/812/6f1e2d3/check/tox-py311/9d8c7b6/zuul-manifest.json");
		}
		CHECK_INT(b->n_dependencies, 0);
		CHECK_STR(ev->builds[1].job_name, "scs-check-gx-scs");
		CHECK(!ev->builds[1].voting);
		CHECK_STR(ev->builds[1].result, "SUCCESS");
		CHECK_INT(ev->builds[1].n_artifacts, 0);
	}
	CHECK_INT(ev->n_retry_builds, 1);
	if (ev->n_retry_builds == 1) {
		const struct zuul_build *r = &ev->retry_builds[0];
		CHECK_STR(r->job_name, "tox-py311");
		CHECK_STR(r->uuid, "7e6d5c4b3a294817a6b5c4d3e2f1a0b9");
		CHECK_STR(r->result, "RETRY");
		CHECK_STR(r->log_url, NULL);
		CHECK_STR(r->web_url, "https://zuul.example.org/t/scs/build/7e6d5c4b3a294817a6b5c4d3e2f1a0b9");
		CHECK(r->retried);
		CHECK(r->voting);
		CHECK(r->change == NULL);
	}
	zuul_event_free(ev);
}

static void test_current_start_sample_has_builds_without_results(void)
{
	char err[256];
	struct zuul_event *ev = parse_file(SAMPLE_DIR "/shared-modern-start.json", err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev) {
		printf("# %s\n", err);
		return;
	}
	CHECK_INT(ev->schema, ZUUL_SCHEMA_CURRENT);
	CHECK_STR(ev->action, "start");
	CHECK_STR(ev->message, "Starting check jobs.");
	CHECK_STR(ev->buildset_result, NULL);
	CHECK_INT(ev->n_builds, 2);
	if (ev->n_builds == 2) {
		CHECK_STR(ev->builds[0].job_name, "tox-py311");
		CHECK_STR(ev->builds[0].job_uuid, "0f1e2d3c4b5a4f6e8d7c6b5a4f3e2d1c");
		CHECK_STR(ev->builds[0].result, NULL);
		CHECK_STR(ev->builds[0].uuid, NULL);
		CHECK_STR(ev->builds[0].log_url, NULL);
		CHECK(ev->builds[0].voting);
		CHECK(ev->builds[0].start_time == 0 && ev->builds[0].end_time == 0);
		CHECK(ev->builds[0].change == NULL);
		CHECK(!ev->builds[1].voting);
	}
	CHECK_INT(ev->n_retry_builds, 0);
	zuul_event_free(ev);
}

static void test_periodic_sample_has_no_change_number(void)
{
	char err[256];
	struct zuul_event *ev = parse_file(SAMPLE_DIR "/shared-periodic-failure.json", err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev) {
		printf("# %s\n", err);
		return;
	}
	CHECK_INT(ev->schema, ZUUL_SCHEMA_CURRENT);
	CHECK_STR(ev->pipeline, "periodic-daily");
	CHECK_STR(ev->item.change, NULL);
	CHECK_STR(ev->item.patchset, NULL);
	CHECK_STR(ev->item.owner, NULL);
	CHECK_STR(ev->item.ref, "refs/heads/main");
	CHECK_STR(ev->item.commit_id, "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4");
	CHECK_INT(ev->n_builds, 1);
	if (ev->n_builds == 1) {
		CHECK_STR(ev->builds[0].result, "TIMED_OUT");
		CHECK_STR(ev->builds[0].job_name, "scs-compliance-check-gx-scs-main");
		CHECK(ev->builds[0].change && ev->builds[0].change->change == NULL);
	}
	zuul_event_free(ev);
}

/* ---- the corpus ---------------------------------------------------------------------------- */

static int name_is_json(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 5 && strcmp(d->d_name + n - 5, ".json") == 0;
}

static int name_is_visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static void corpus_file_decodes(const char *path)
{
	char err[256] = "";
	size_t len = 0;
	char *data = read_file(path, &len);
	CHECK(data != NULL);
	if (!data)
		return;
	struct zuul_event *ev = zuul_event_parse(data, len, err, sizeof(err));
	if (!ev) {
		printf("# %s: expected an event, got rejection: %s\n", path, err);
		test_current_failed = 1;
	} else {
		CHECK(ev->action && ev->action[0]);
		char *key = zuul_event_key(ev, data, len);
		CHECK(key && key[0]);
		free(key);
	}
	char *preview = zuul_payload_preview(data, len, 80);
	CHECK(preview != NULL);
	free(preview);
	zuul_event_free(ev);
	free(data);
}

static void invalid_file_is_rejected(const char *path)
{
	char err[256] = "";
	size_t len = 0;
	char *data = read_file(path, &len);
	CHECK(data != NULL);
	if (!data)
		return;
	struct zuul_event *ev = zuul_event_parse(data, len, err, sizeof(err));
	if (ev) {
		printf("# %s: expected rejection, got an event with action %s\n", path, ev->action);
		test_current_failed = 1;
		zuul_event_free(ev);
	} else {
		CHECK(err[0] != '\0');
		/* The reason is our own words: never raw (possibly binary) payload bytes. */
		CHECK(all_printable_ascii(err));
		printf("# %s: %s\n", path, err);
	}
	free(data);
}

/* One TAP point per file; returns how many files it found. */
static int run_directory(const char *dir, int (*filter)(const struct dirent *), void (*fn)(const char *))
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, filter, alphasort);
	char path[4096], tname[4200];

	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_type != DT_DIR) {
			snprintf(tname, sizeof(tname), "%s %s", path,
				 fn == corpus_file_decodes ? "decodes" : "is rejected with a reason");
			RUN_NAMED(tname, fn(path));
		}
		free(names[i]);
	}
	free(names);
	return n;
}

static void test_corpus_is_large_enough(int n_valid, int n_invalid)
{
	/* Guards against the directory walk silently finding nothing (wrong cwd). */
	CHECK(n_valid >= 34);
	CHECK(n_invalid >= 10);
}

/* ---- rejection reasons --------------------------------------------------------------------- */

static void test_rejects_invalid_utf8_with_position(void)
{
	check_rejected("{\"action\":\"a\x80\"}", 14, "not valid UTF-8 at byte 12");
	check_rejected("{\"action\":\"\xc0\xaf\"}", 15, "not valid UTF-8 at byte 11");         /* overlong */
	check_rejected("{\"action\":\"\xe0\x80\xaf\"}", 16, "not valid UTF-8 at byte 11");     /* overlong */
	check_rejected("{\"action\":\"\xf0\x80\x80\xaf\"}", 17, "not valid UTF-8 at byte 11"); /* overlong */
	check_rejected("{\"action\":\"\xed\xa0\x80\"}", 16, "not valid UTF-8 at byte 11");     /* U+D800 */
	check_rejected("{\"action\":\"\xed\xbf\xbf\"}", 16, "not valid UTF-8 at byte 11");     /* U+DFFF */
	check_rejected("{\"action\":\"\xf4\x90\x80\x80\"}", 17, "not valid UTF-8 at byte 11"); /* > U+10FFFF */
	check_rejected("{\"action\":\"\xf8\x88\x80\x80\x80\"}", 18, "not valid UTF-8 at byte 11");
	check_rejected("{\"action\":\"\xff\"}", 14, "not valid UTF-8 at byte 11");
	check_rejected("{\"action\":\"x\"}\xe2\x82", 16, "not valid UTF-8 at byte 14"); /* cut at end */
}

static void test_accepts_utf8_boundaries(void)
{
	/* U+0080, U+07FF, U+0800, U+FFFD, U+10000, U+10FFFF: the smallest and largest of each length. */
	const char *json = "{\"action\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbd\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}";
	char err[256];
	struct zuul_event *ev = parse_str(json, err, sizeof(err));
	CHECK(ev != NULL);
	if (ev)
		CHECK_STR(ev->action, "\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbd\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
	zuul_event_free(ev);
}

static void test_rejects_nul_before_the_end_but_ignores_a_trailing_terminator(void)
{
	check_rejected("{\"action\":\0\"x\"}", 15, "NUL byte at byte 10");
	check_rejected("{\"action\":\"x\"}\0\0", 16, "NUL byte at byte 14");
	char err[256];
	struct zuul_event *ev = zuul_event_parse("{\"action\":\"x\"}", 15, err, sizeof(err));
	CHECK(ev != NULL);
	if (ev)
		CHECK_STR(ev->action, "x");
	else
		printf("# %s\n", err);
	zuul_event_free(ev);
}

static void test_rejects_non_reports_with_a_reason(void)
{
	check_rejected("", 0, "empty payload");
	check_rejected(NULL, 5, "empty payload");
	check_rejected("   ", 3, "not JSON");
	check_rejected("{\"action\":", 10, "not JSON: syntax error at byte");
	check_rejected("{\"action\":\"x\"} junk", 19, "not JSON");
	check_rejected("[1,2]", 5, "not an object (got an array)");
	check_rejected("\"failure\"", 9, "not an object (got a string)");
	check_rejected("null", 4, "not an object (got null)");
	check_rejected("{}", 2, "no action");
	check_rejected("{\"action\":null}", 15, "no action (action is null, not a string)");
	check_rejected("{\"action\":7}", 12, "no action (action is a number, not a string)");
	check_rejected("{\"action\":\"\"}", 13, "no action (action is empty)");
	check_rejected("{\"Action\":\"failure\"}", 20, "no action");
}

static void test_rejects_oversized_payload_before_parsing(void)
{
	size_t len = (size_t)ZUUL_PAYLOAD_MAX + 1;
	char *big = xmalloc(len);
	memset(big, ' ', len);
	memcpy(big, "{\"action\":\"x\"}", 14);
	check_rejected(big, len, "payload too large: 4194305 bytes (limit 4194304)");
	/* Exactly at the limit is still decoded (trailing whitespace is fine JSON). */
	char err[256];
	struct zuul_event *ev = zuul_event_parse(big, len - 1, err, sizeof(err));
	CHECK(ev != NULL);
	zuul_event_free(ev);
	free(big);
}

static void test_rejects_nesting_deeper_than_the_limit(void)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "{\"action\":\"x\",\"d\":");
	for (int i = 0; i < ZUUL_NESTING_MAX; i++)
		strbuf_putc(&sb, '[');
	for (int i = 0; i < ZUUL_NESTING_MAX; i++)
		strbuf_putc(&sb, ']');
	strbuf_putc(&sb, '}');
	check_rejected(sb.data, sb.len, "nested deeper than 256 levels");

	/* Brackets inside strings do not count. */
	strbuf_reset(&sb);
	strbuf_puts(&sb, "{\"action\":\"");
	for (int i = 0; i < 1000; i++)
		strbuf_puts(&sb, "[{");
	strbuf_puts(&sb, "\"}");
	char err[256];
	struct zuul_event *ev = zuul_event_parse(sb.data, sb.len, err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev)
		printf("# %s\n", err);
	zuul_event_free(ev);
	strbuf_free(&sb);
}

static void test_reason_never_echoes_payload_bytes(void)
{
	const char *payloads[] = {"{\"action\":\"<script>\"", "<script>alert(1)</script>", "{\"action\":\"\x1b[31m\"",
				  "{\"action\":\"x\"} SECRET"};
	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
		char err[256];
		struct zuul_event *ev = parse_str(payloads[i], err, sizeof(err));
		CHECK(ev == NULL);
		zuul_event_free(ev);
		CHECK_NOT_CONTAINS(err, "script");
		CHECK_NOT_CONTAINS(err, "SECRET");
		CHECK(all_printable_ascii(err));
	}
}

static void test_small_error_buffer_is_truncated_safely(void)
{
	char err[8];
	memset(err, 'Z', sizeof(err));
	CHECK(parse_str("[1]", err, sizeof(err)) == NULL);
	CHECK_STR(err, "not an ");
	CHECK(parse_str("[1]", NULL, 0) == NULL);
}

/* ---- escapes cJSON mishandles ------------------------------------------------------------ */

static void test_escaped_nul_and_lone_surrogates_become_replacement_char(void)
{
	char err[256];
	struct zuul_event *ev = parse_str("{\"action\":\"a\\u0000b\",\"tenant\":\"x\\ud800y\",\"pipeline\":\"\\udc00\","
					  "\"project\":\"\\ud83d\\ude00\",\"branch\":\"\\ud83d\\u0041\","
					  "\"ref\":\"\\\\u0000\",\"message\":\"\\ud800\"}",
					  err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev) {
		printf("# %s\n", err);
		return;
	}
	CHECK_STR(ev->action, "a\xef\xbf\xbd" "b");            /* not truncated to "a" */
	CHECK_STR(ev->tenant, "x\xef\xbf\xbdy");               /* lone high surrogate */
	CHECK_STR(ev->pipeline, "\xef\xbf\xbd");               /* lone low surrogate */
	CHECK_STR(ev->item.project, "\xf0\x9f\x98\x80");       /* a real pair: U+1F600 */
	CHECK_STR(ev->item.branch, "\xef\xbf\xbd" "A");        /* high followed by a non-low escape */
	CHECK_STR(ev->item.ref, "\\u0000");                    /* an escaped backslash, not an escape */
	CHECK_STR(ev->message, "\xef\xbf\xbd");                /* lone high surrogate at the end */
	zuul_event_free(ev);
}

/* Python's json.dumps (Zuul's encoder, allow_nan=True by default) writes float('inf') as
 * Infinity, -inf as -Infinity and nan as NaN; a build's returned_data can hold any of them.
 * The report must survive: outside strings the three tokens read as null. */
static void test_python_non_finite_numbers_read_as_null(void)
{
	const char *p = "{\"action\":\"success\",\"timestamp\":NaN,\"trigger_time\":Infinity,"
			"\"enqueue_time\":-Infinity,\"message\":\"NaN Infinity -Infinity\","
			"\"buildset\":{\"builds\":[{\"job_name\":\"Infinity\",\"result\":\"SUCCESS\","
			"\"returned_data\":{\"ratio\":NaN,\"max\":Infinity,\"list\":[-Infinity,NaN,1.5],"
			"\"Infinity\":\"NaN\"},\"start_time\":-Infinity}]}}";
	struct zuul_event *ev = parse_ok(p);
	if (!ev)
		return;
	CHECK(ev->timestamp == 0 && ev->trigger_time == 0 && ev->enqueue_time == 0);
	CHECK_STR(ev->message, "NaN Infinity -Infinity"); /* strings are never touched */
	CHECK_INT(ev->n_builds, 1);
	if (ev->n_builds == 1) {
		CHECK_STR(ev->builds[0].job_name, "Infinity");
		CHECK(ev->builds[0].start_time == 0);
	}
	zuul_event_free(ev);
}

/* Only whole tokens are rewritten; lookalikes stay and are rejected as before, with the
 * position of the byte in the payload as sent (rewriting NaN to null shifts the text). */
static void test_non_finite_lookalikes_are_still_not_json(void)
{
	check_rejected_str("{\"action\":\"x\",\"a\":NaNa}", "not JSON");
	check_rejected_str("{\"action\":\"x\",\"a\":Infinityy}", "not JSON");
	check_rejected_str("{\"action\":\"x\",\"a\":infinity}", "not JSON");
	check_rejected_str("{\"action\":\"x\",\"a\":nan}", "not JSON");
	check_rejected_str("{\"action\":\"x\",\"a\":-NaN}", "not JSON");
	check_rejected_str("{\"action\":\"x\",\"a\":+Infinity}", "not JSON");
	check_rejected_str("{\"action\":\"x\",\"a\":xNaN}", "not JSON");
	check_rejected_str("{\"action\":\"x\",Infinity:1}", "not JSON"); /* a key must be a string */
	/* Three NaN before the error: each grew by one byte in the rewritten text. */
	check_rejected_str("{\"action\":\"x\",\"a\":[NaN,NaN,NaN],\"b\":?}", "not JSON: syntax error at byte 36");
	/* An error right after a rewritten -Infinity (shrunk by five). */
	check_rejected_str("{\"action\":\"x\",\"a\":-Infinity?}", "not JSON: syntax error at byte 27");
	/* The action itself cannot be a number, finite or not. */
	check_rejected_str("{\"action\":NaN}", "no action (action is null, not a string)");
}

static void test_escaped_quote_does_not_confuse_the_scanner(void)
{
	char err[256];
	/* If \" ended the string, the scanner would read the \u0000 outside a string and leave it. */
	struct zuul_event *ev = parse_str("{\"action\":\"q\\\"\\u0000\\\\\",\"tenant\":\"t\"}", err, sizeof(err));
	CHECK(ev != NULL);
	if (ev) {
		CHECK_STR(ev->action, "q\"\xef\xbf\xbd\\");
		CHECK_STR(ev->tenant, "t");
	}
	zuul_event_free(ev);
}

/* ---- tolerance of each field ---------------------------------------------------------------- */

static void check_change(const char *value, const char *want)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "{\"action\":\"x\",\"change\":%s,\"patchset\":%s}", value, value);
	struct zuul_event *ev = parse_ok(sb.data);
	if (ev) {
		CHECK_STR(ev->item.change, want);
		CHECK_STR(ev->item.patchset, want);
	}
	if (test_current_failed)
		printf("#   for change %s\n", value);
	zuul_event_free(ev);
	strbuf_free(&sb);
}

static void test_change_numbers_are_normalised(void)
{
	check_change("812", "812");
	check_change("\"812\"", "812");
	check_change("3.0", "3");
	check_change("0", "0");
	check_change("9007199254740992", "9007199254740992");
	check_change("\"abc123\"", "abc123"); /* GitHub patchsets are shas */
	check_change("\"\"", NULL);
	check_change("null", NULL);
	check_change("3.5", NULL);
	check_change("-1", NULL);
	check_change("1e300", NULL);
	check_change("1e999", NULL);
	/* Types Zuul never sends for a number: the report is not Zuul's (see the shape tests). */
	check_rejected_str("{\"action\":\"x\",\"change\":true}",
		       "not a Zuul report: change is a boolean, not a number or a string");
	check_rejected_str("{\"action\":\"x\",\"patchset\":[812]}",
		       "not a Zuul report: patchset is an array, not a number or a string");
	check_rejected_str("{\"action\":\"x\",\"change\":{\"number\":812}}",
		       "not a Zuul report: change is an object, not a number or a string");
}

static void check_time(const char *value, double want)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "{\"action\":\"x\",\"timestamp\":%s,\"buildset\":{\"builds\":[{\"start_time\":%s}]}}",
		      value, value);
	struct zuul_event *ev = parse_ok(sb.data);
	if (ev) {
		if (!near(ev->timestamp, want) || ev->n_builds != 1 || !near(ev->builds[0].start_time, want)) {
			printf("# time %s: expected %f, got %f\n", value, want, ev->timestamp);
			test_current_failed = 1;
		}
	}
	zuul_event_free(ev);
	strbuf_free(&sb);
}

static void test_times_that_are_not_finite_positive_numbers_are_unknown(void)
{
	check_time("1732180800.5", 1732180800.5);
	check_time("\"1524801056.2545864\"", 1524801056.2545864); /* as in Zuul's docs */
	check_time("null", 0);
	check_time("\"\"", 0);
	check_time("\"yesterday\"", 0);
	check_time("\"12abc\"", 0);
	check_time("\"0x10\"", 0);
	check_time("\"inf\"", 0);
	check_time("\"1e999\"", 0);
	check_time("1e999", 0);
	check_time("-5", 0);
	check_rejected_str("{\"action\":\"x\",\"timestamp\":true}",
		       "not a Zuul report: timestamp is a boolean, not a number or a string");
	check_rejected_str("{\"action\":\"x\",\"buildset\":{\"builds\":[{\"start_time\":[1]}]}}",
		       "not a Zuul report: buildset.builds[0].start_time is an array, not a number or a string");
}

static void test_voting_defaults_to_true(void)
{
	struct zuul_event *ev = parse_ok("{\"action\":\"x\",\"buildset\":{\"builds\":["
					 "{\"job_name\":\"a\"},{\"voting\":false},{\"voting\":true},"
					 "{\"voting\":null}]}}");
	if (!ev)
		return;
	CHECK_INT(ev->n_builds, 4);
	if (ev->n_builds == 4) {
		CHECK(ev->builds[0].voting);
		CHECK(!ev->builds[1].voting);
		CHECK(ev->builds[2].voting);
		CHECK(ev->builds[3].voting);
	}
	zuul_event_free(ev);
	/* Zuul sends job.voting, a bool: 0, 1 or "no" are some other publisher's. */
	const char *p = "{\"action\":\"x\",\"buildset\":{\"builds\":[{},{\"voting\":\"no\"}]}}";
	check_rejected(p, strlen(p), "not a Zuul report: buildset.builds[1].voting is a string, not a boolean");
	p = "{\"action\":\"x\",\"buildset\":{\"retry_builds\":[{\"voting\":0}]}}";
	check_rejected(p, strlen(p), "not a Zuul report: buildset.retry_builds[0].voting is a number, not a boolean");
}

static void test_owner_string_or_account_object(void)
{
	struct zuul_event *ev = parse_ok(
		"{\"action\":\"x\",\"owner\":\"jdoe\",\"changes\":["
		"{\"owner\":{\"name\":\"Jane Doe\",\"username\":\"jdoe\",\"email\":\"j@example.org\"}},"
		"{\"owner\":{\"name\":\"\",\"username\":\"jdoe\"}},{\"owner\":{\"email\":\"j@example.org\"}},"
		"{\"owner\":{\"name\":7}},{\"owner\":\"\"},{\"owner\":null}]}");
	if (!ev)
		return;
	/* The item is changes[0]: the top-level "jdoe" is only Zuul < 10's copy. */
	CHECK_STR(ev->item.owner, "Jane Doe");
	CHECK_INT(ev->n_changes, 6);
	if (ev->n_changes == 6) {
		CHECK_STR(ev->changes[0].owner, "Jane Doe");
		CHECK_STR(ev->changes[1].owner, "jdoe");
		CHECK_STR(ev->changes[2].owner, "j@example.org");
		CHECK_STR(ev->changes[3].owner, NULL); /* the account object is Gerrit's, not checked */
		CHECK_STR(ev->changes[4].owner, NULL);
		CHECK_STR(ev->changes[5].owner, NULL);
	}
	zuul_event_free(ev);
	ev = parse_ok("{\"action\":\"x\",\"owner\":\"jdoe\"}");
	if (ev)
		CHECK_STR(ev->item.owner, "jdoe"); /* Zuul < 10: the top level is all there is */
	zuul_event_free(ev);
	const char *p = "{\"action\":\"x\",\"changes\":[{\"owner\":\"a\"},{\"owner\":[\"jdoe\"]}]}";
	check_rejected(p, strlen(p), "not a Zuul report: changes[1].owner is an array, not a string or an object");
	p = "{\"action\":\"x\",\"owner\":42}";
	check_rejected(p, strlen(p), "not a Zuul report: owner is a number, not a string or an object");
}

/* Every field the bridge reads, at every depth, rejects the report when its type is one Zuul
 * never sends: a half-decoded report (a buildset without its builds) would be posted as
 * something it is not. Each case names the field's path in the reason. */
static void test_fields_of_a_type_zuul_never_sends_reject_the_report(void)
{
	static const struct {
		const char *json;
		const char *reason;
	} cases[] = {
		{"{\"action\":\"x\",\"pipeline\":{\"name\":\"check\"}}", "pipeline is an object, not a string"},
		{"{\"action\":\"x\",\"tenant\":42}", "tenant is a number, not a string"},
		{"{\"action\":\"x\",\"queue\":false}", "queue is a boolean, not a string"},
		{"{\"action\":\"x\",\"project\":[\"p\"]}", "project is an array, not a string"},
		{"{\"action\":\"x\",\"message\":7}", "message is a number, not a string"},
		{"{\"action\":\"x\",\"uuid\":1}", "uuid is a number, not a string"},
		{"{\"action\":\"x\",\"tenant_web_root\":[]}", "tenant_web_root is an array, not a string"},
		{"{\"action\":\"x\",\"buildset\":\"abc\"}", "buildset is a string, not an object"},
		{"{\"action\":\"x\",\"buildset\":[{\"builds\":[{}]}]}", "buildset is an array, not an object"},
		{"{\"action\":\"x\",\"buildset\":{\"uuid\":[]}}", "buildset.uuid is an array, not a string"},
		{"{\"action\":\"x\",\"buildset\":{\"result\":0}}", "buildset.result is a number, not a string"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":\"tox\"}}", "buildset.builds is a string, not an array"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":{\"job_name\":\"j\"}}}",
		 "buildset.builds is an object, not an array"},
		{"{\"action\":\"x\",\"buildset\":{\"retry_builds\":\"r\"}}",
		 "buildset.retry_builds is a string, not an array"},
		{"{\"action\":\"x\",\"changes\":{\"project\":\"p\"}}", "changes is an object, not an array"},
		{"{\"action\":\"x\",\"changes\":[{\"project\":\"p\"},null]}", "changes[1] is null, not an object"},
		{"{\"action\":\"x\",\"changes\":[{\"branch\":7}]}", "changes[0].branch is a number, not a string"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[\"b\"]}}", "buildset.builds[0] is a string, not an object"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{},{\"result\":[\"FAILURE\"]}]}}",
		 "buildset.builds[1].result is an array, not a string"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{\"change\":\"c\"}]}}",
		 "buildset.builds[0].change is a string, not an object"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{\"change\":{\"project\":1}}]}}",
		 "buildset.builds[0].change.project is a number, not a string"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{\"artifacts\":{\"name\":\"x\"}}]}}",
		 "buildset.builds[0].artifacts is an object, not an array"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{\"artifacts\":[1]}]}}",
		 "buildset.builds[0].artifacts[0] is a number, not an object"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{\"artifacts\":[{\"name\":\"n\",\"url\":7}]}]}}",
		 "buildset.builds[0].artifacts[0].url is a number, not a string"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{\"dependencies\":\"tox\"}]}}",
		 "buildset.builds[0].dependencies is a string, not an array"},
		{"{\"action\":\"x\",\"buildset\":{\"builds\":[{\"dependencies\":[\"a\",null]}]}}",
		 "buildset.builds[0].dependencies[1] is null, not a string"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct strbuf want = STRBUF_INIT;
		strbuf_printf(&want, "not a Zuul report: %s", cases[i].reason);
		check_rejected(cases[i].json, strlen(cases[i].json), strbuf_str(&want));
		strbuf_free(&want);
	}
}

/* null is Zuul's "none" for every field; empty strings too, except the message. */
static void test_null_and_empty_fields_are_absent(void)
{
	struct zuul_event *ev = parse_ok("{\"action\":\"x\",\"tenant\":null,\"pipeline\":null,"
					 "\"queue\":\"\",\"project\":null,\"branch\":null,\"message\":null,"
					 "\"uuid\":null,\"zuul_ref\":\"\",\"changes\":null,"
					 "\"buildset\":{\"uuid\":null,\"result\":null,\"builds\":null,"
					 "\"retry_builds\":null}}");
	if (!ev)
		return;
	CHECK_STR(ev->tenant, NULL);
	CHECK_STR(ev->pipeline, NULL);
	CHECK_STR(ev->queue, NULL);
	CHECK_STR(ev->item.project, NULL);
	CHECK_STR(ev->item.branch, NULL);
	CHECK_STR(ev->message, NULL);
	CHECK_STR(ev->uuid, NULL);
	CHECK_STR(ev->zuul_ref, NULL);
	CHECK_STR(ev->buildset_uuid, NULL);
	CHECK_STR(ev->buildset_result, NULL);
	CHECK_INT(ev->n_changes, 0);
	CHECK_INT(ev->n_builds, 0);
	CHECK_INT(ev->n_retry_builds, 0);
	zuul_event_free(ev);
}

static void test_empty_message_is_kept(void)
{
	struct zuul_event *ev = parse_ok("{\"action\":\"enqueue\",\"message\":\"\",\"branch\":\"\"}");
	if (!ev)
		return;
	CHECK_STR(ev->message, "");
	CHECK_STR(ev->item.branch, NULL);
	zuul_event_free(ev);
}

static void test_build_lists_decode_artifacts_and_dependencies(void)
{
	struct zuul_event *ev = parse_ok(
		"{\"action\":\"x\",\"changes\":[{\"project\":\"p\"}],"
		"\"buildset\":{\"builds\":[{\"job_name\":\"j\",\"change\":null,\"artifacts\":[{\"name\":\"n\"},"
		"{\"url\":\"u\",\"metadata\":{\"type\":[1,null]}}],\"dependencies\":[\"\",\"d1\",\"d2\"]}],"
		"\"retry_builds\":[{\"job_name\":\"r\"}]}}");
	if (!ev)
		return;
	CHECK_INT(ev->n_changes, 1);
	if (ev->n_changes == 1)
		CHECK_STR(ev->changes[0].project, "p");
	CHECK_INT(ev->n_builds, 1);
	if (ev->n_builds == 1) {
		const struct zuul_build *b = &ev->builds[0];
		CHECK_STR(b->job_name, "j");
		CHECK(b->change == NULL);
		CHECK_INT(b->n_artifacts, 2);
		if (b->n_artifacts == 2) {
			CHECK_STR(b->artifacts[0].name, "n");
			CHECK_STR(b->artifacts[0].url, NULL);
			CHECK_STR(b->artifacts[1].name, NULL);
			CHECK_STR(b->artifacts[1].url, "u");
		}
		CHECK_INT(b->n_dependencies, 2);
		if (b->n_dependencies == 2) {
			CHECK_STR(b->dependencies[0], "d1");
			CHECK_STR(b->dependencies[1], "d2");
		}
	}
	CHECK_INT(ev->n_retry_builds, 1);
	if (ev->n_retry_builds == 1) {
		CHECK_STR(ev->retry_builds[0].job_name, "r");
		CHECK(ev->retry_builds[0].retried);
	}
	zuul_event_free(ev);
}

static void test_schema_generation_is_detected_by_current_only_keys(void)
{
	const struct {
		const char *json;
		enum zuul_schema want;
	} cases[] = {
		{"{\"action\":\"x\"}", ZUUL_SCHEMA_LEGACY},
		{"{\"action\":\"x\",\"buildset\":{\"uuid\":\"u\",\"builds\":[]}}", ZUUL_SCHEMA_LEGACY},
		{"{\"action\":\"x\",\"uuid\":null}", ZUUL_SCHEMA_CURRENT},
		{"{\"action\":\"x\",\"changes\":[]}", ZUUL_SCHEMA_CURRENT},
		{"{\"action\":\"x\",\"buildset\":{\"result\":null}}", ZUUL_SCHEMA_CURRENT},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zuul_event *ev = parse_ok(cases[i].json);
		if (ev && ev->schema != cases[i].want) {
			printf("# %s: expected schema %d, got %d\n", cases[i].json, cases[i].want, ev->schema);
			test_current_failed = 1;
		}
		zuul_event_free(ev);
	}
}

static void test_corpus_hostile_escapes_decode_as_documented(void)
{
	char err[256];
	struct zuul_event *ev = parse_file(PAYLOAD_DIR "/hostile-escaped-nul-and-surrogates.json", err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev)
		return;
	CHECK_STR(ev->item.project, "nul\xef\xbf\xbd" "after");
	CHECK_STR(ev->item.branch, "lone\xef\xbf\xbdhigh");
	CHECK_STR(ev->item.owner, "lone\xef\xbf\xbdLow");
	CHECK_CONTAINS(ev->message, "pair \xf0\x9f\x98\x80 ok");
	CHECK_CONTAINS(ev->message, "literal \\u0000 stays");
	if (ev->n_builds == 1)
		CHECK_STR(ev->builds[0].job_name, "\xef\xbf\xbd");
	zuul_event_free(ev);
}

static void test_duplicate_keys_take_the_first(void)
{
	char err[256];
	struct zuul_event *ev = parse_file(PAYLOAD_DIR "/hostile-duplicate-keys.json", err, sizeof(err));
	CHECK(ev != NULL);
	if (!ev)
		return;
	CHECK_STR(ev->action, "success");
	CHECK_STR(ev->tenant, "first");
	CHECK_INT(ev->n_builds, 0);
	zuul_event_free(ev);
}

/* ---- preview --------------------------------------------------------------------------------- */

static void check_preview(const char *in, size_t len, size_t max, const char *want)
{
	char *p = zuul_payload_preview(in, len, max);
	CHECK_STR(p, want);
	free(p);
}

static void test_preview_keeps_short_text_as_is(void)
{
	check_preview("{\"action\":\"x\"}", 14, 80, "{\"action\":\"x\"}");
	check_preview("", 0, 80, "");
	check_preview(NULL, 10, 80, "");
	check_preview("J\xc3\xb6rg \xf0\x9f\x98\x80", 10, 6, "J\xc3\xb6rg \xf0\x9f\x98\x80"); /* 6 chars fit */
}

static void test_preview_replaces_control_bytes_and_invalid_utf8(void)
{
	check_preview("a\nb\tc\x1b[0m\x7f", 10, 80, "a?b?c?[0m?");
	check_preview("a\0b", 3, 80, "a?b");
	check_preview("x\xc2\x85y", 4, 80, "x?y");                                  /* C1 NEL */
	check_preview("\xe2\x80\xae" "abc\xe2\x80\xa8", 9, 80, "?abc?");            /* RLO, LS */
	check_preview("a\x80" "b\xc0\xaf", 5, 80, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd");
	check_preview("\xed\xa0\x80", 3, 80, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate */
	check_preview("ok\xe2\x82", 4, 80, "ok\xef\xbf\xbd\xef\xbf\xbd");           /* cut sequence */
}

static void test_preview_cuts_at_max_chars_with_ellipsis(void)
{
	check_preview("abcdefghij", 10, 10, "abcdefghij");
	check_preview("abcdefghijk", 11, 10, "abcdefg...");
	check_preview("abcdef", 6, 3, "...");
	check_preview("abcdef", 6, 0, "...");
}

static void test_preview_never_splits_a_utf8_sequence(void)
{
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < 50; i++)
		strbuf_puts(&sb, "\xf0\x9f\x94\xa5\xc3\xa9"); /* U+1F525 then e-acute */
	for (size_t max = 3; max < 40; max++) {
		char *p = zuul_payload_preview(sb.data, sb.len, max);
		size_t n = strlen(p);
		size_t chars = 0;
		CHECK(n >= 3 && strcmp(p + n - 3, "...") == 0);
		for (size_t i = 0; i < n; i++)
			chars += ((unsigned char)p[i] & 0xC0) != 0x80;
		if (chars != max) {
			printf("# max %zu: expected %zu characters, got %zu\n", max, max, chars);
			test_current_failed = 1;
		}
		/* Re-previewing valid output must not replace anything: it is still valid UTF-8. */
		char *again = zuul_payload_preview(p, n, 1000);
		CHECK_STR(again, p);
		free(again);
		free(p);
	}
	strbuf_free(&sb);
}

/* ---- event key -------------------------------------------------------------------------------- */

static void test_event_key_prefers_buildset_then_item_uuid(void)
{
	const char *json = "{\"action\":\"x\",\"uuid\":\"item-1\",\"buildset\":{\"uuid\":\"bs-1\"}}";
	struct zuul_event *ev = parse_ok(json);
	if (!ev)
		return;
	char *key = zuul_event_key(ev, json, strlen(json));
	CHECK_STR(key, "bs-1");
	free(key);
	free(ev->buildset_uuid);
	ev->buildset_uuid = NULL;
	key = zuul_event_key(ev, json, strlen(json));
	CHECK_STR(key, "item-1");
	free(key);
	zuul_event_free(ev);
}

static void test_event_key_falls_back_to_a_stable_fnv1a_hash(void)
{
	/* Published FNV-1a 64 test vectors: the empty string and "a". */
	char *k0 = zuul_event_key(NULL, "", 0);
	char *k1 = zuul_event_key(NULL, "a", 1);
	CHECK_STR(k0, "fnv1a64:cbf29ce484222325");
	CHECK_STR(k1, "fnv1a64:af63dc4c8601ec8c");
	free(k0);
	free(k1);

	const char *json = "{\"action\":\"x\",\"uuid\":\"has space\",\"buildset\":{\"uuid\":\"a/b\"}}";
	struct zuul_event *ev = parse_ok(json);
	if (!ev)
		return;
	char *a = zuul_event_key(ev, json, strlen(json));
	char *b = zuul_event_key(ev, json, strlen(json));
	CHECK_CONTAINS(a, "fnv1a64:");
	CHECK_INT(strlen(a), 8 + 16);
	CHECK_STR(a, b);
	char *c = zuul_event_key(ev, json, strlen(json) - 1); /* other bytes, other key */
	CHECK(strcmp(a, c) != 0);
	free(a);
	free(b);
	free(c);
	zuul_event_free(ev);
}

static void test_event_key_rejects_oversized_uuid(void)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "{\"action\":\"x\",\"buildset\":{\"uuid\":\"");
	for (int i = 0; i < 129; i++)
		strbuf_putc(&sb, 'a');
	strbuf_puts(&sb, "\"},\"uuid\":\"item-2\"}");
	struct zuul_event *ev = parse_ok(sb.data);
	if (ev) {
		char *key = zuul_event_key(ev, sb.data, sb.len);
		CHECK_STR(key, "item-2");
		free(key);
	}
	zuul_event_free(ev);
	strbuf_free(&sb);
}

static void test_build_failed_only_for_finished_non_neutral_results(void)
{
	static const char *const failed[] = {"FAILURE", "POST_FAILURE", "TIMED_OUT", "NODE_FAILURE",
	                                     "RETRY_LIMIT", "ERROR", "MERGER_FAILURE", "DISK_FULL", "success"};
	static const char *const fine[] = {"SUCCESS", "SKIPPED", "ABORTED", "CANCELED", "RETRY"};
	struct zuul_build b = {0};
	for (size_t i = 0; i < sizeof failed / sizeof failed[0]; i++) {
		b.result = (char *)failed[i];
		if (!zuul_build_failed(&b))
			printf("# %s: expected failed, got not failed\n", failed[i]);
		CHECK(zuul_build_failed(&b));
	}
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
		b.result = (char *)fine[i];
		if (zuul_build_failed(&b))
			printf("# %s: expected not failed, got failed\n", fine[i]);
		CHECK(!zuul_build_failed(&b));
	}
	b.result = NULL; /* still running */
	CHECK(!zuul_build_failed(&b));
}

/* Zuul's QueueItem.formatJobResult (zuul/model.py, 14.3.0):
 *     result = build.result
 *     if result == 'SUCCESS':
 *         if job.success_message: result = job.success_message
 *     else:
 *         if job.failure_message: result = job.failure_message
 * so a job's own text replaces SUCCESS, or every other result (TIMED_OUT, NODE_FAILURE, even
 * None for a running build). The report's overall result and the build's end time decide. */
static struct zuul_event *custom_event(const char *action, const char *buildset_result)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb,
		      "{\"action\":\"%s\",\"buildset\":{\"result\":%s,\"builds\":["
		      "{\"job_name\":\"lint\",\"uuid\":\"u1\",\"result\":\"clean\",\"voting\":true,"
		      "\"start_time\":1700000000,\"end_time\":1700000060},"
		      "{\"job_name\":\"nv\",\"uuid\":\"u2\",\"result\":\"flaky again\",\"voting\":false,"
		      "\"start_time\":1700000000,\"end_time\":1700000060},"
		      "{\"job_name\":\"running\",\"uuid\":\"u3\",\"result\":\"broken\",\"start_time\":1700000000},"
		      "{\"job_name\":\"real\",\"uuid\":\"u4\",\"result\":\"TIMED_OUT\",\"end_time\":1700000060},"
		      "{\"job_name\":\"queued\"}]}}",
		      action, buildset_result);
	struct zuul_event *ev = parse_ok(sb.data);
	strbuf_free(&sb);
	if (ev && ev->n_builds != 5) {
		printf("# expected 5 builds, got %zu\n", ev->n_builds);
		test_current_failed = 1;
		zuul_event_free(ev);
		return NULL;
	}
	return ev;
}

static void test_custom_job_results_follow_the_report(void)
{
	struct zuul_event *ev = custom_event("success", "\"SUCCESS\"");
	if (ev) {
		const struct zuul_build *b = ev->builds;
		CHECK(b[0].custom_result && b[1].custom_result && b[2].custom_result);
		CHECK(!b[3].custom_result && !b[4].custom_result);
		CHECK_STR(b[0].result, "clean"); /* kept as Zuul wrote it */
		CHECK_STR(b[0].custom_means, "SUCCESS"); /* voting, finished, buildset succeeded */
		CHECK_STR(b[1].custom_means, NULL);      /* non-voting: may have failed quietly */
		CHECK_STR(b[2].custom_means, NULL);      /* no end time: never finished */
		for (int i = 0; i < 3; i++)
			CHECK(!zuul_build_failed(&b[i]));
		CHECK(zuul_build_failed(&b[3])); /* a real result keeps its meaning */
		CHECK(!b[4].has_build && !zuul_build_failed(&b[4]));
		CHECK(b[0].has_build && b[2].has_build);
	}
	zuul_event_free(ev);

	ev = custom_event("failure", "\"FAILURE\"");
	if (ev) {
		const struct zuul_build *b = ev->builds;
		CHECK_STR(b[0].custom_means, "FAILURE");
		CHECK_STR(b[1].custom_means, "FAILURE");
		CHECK_STR(b[2].custom_means, NULL); /* unfinished: cancelled, not failed */
		CHECK(zuul_build_failed(&b[0]) && zuul_build_failed(&b[1]) && !zuul_build_failed(&b[2]));
	}
	zuul_event_free(ev);

	/* Zuul 3.x has no buildset.result: the action says it. */
	ev = custom_event("failure", "null");
	if (ev)
		CHECK(zuul_build_failed(&ev->builds[0]));
	zuul_event_free(ev);

	/* Neither a dequeue, nor an item still running, fails a custom text. */
	ev = custom_event("dequeue", "\"DEQUEUED\"");
	if (ev)
		CHECK(!zuul_build_failed(&ev->builds[0]) && ev->builds[0].custom_means == NULL);
	zuul_event_free(ev);
	ev = custom_event("start", "null");
	if (ev)
		CHECK(!zuul_build_failed(&ev->builds[0]) && ev->builds[0].custom_means == NULL);
	zuul_event_free(ev);
}

static void test_zuul_result_words_are_known(void)
{
	static const char *const words[] = {"SUCCESS", "FAILURE", "POST_FAILURE", "TIMED_OUT", "RETRY_LIMIT",
					    "NODE_FAILURE", "ERROR", "MERGE_CONFLICT", "CONFIG_ERROR", "SKIPPED",
					    "ABORTED", "CANCELED", "DEQUEUED", "RETRY", "DISK_FULL", "NO_JOBS"};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		CHECK(zuul_result_is_zuuls(words[i]));
	CHECK(!zuul_result_is_zuuls("success")); /* case matters: Zuul writes them in capitals */
	CHECK(!zuul_result_is_zuuls("clean"));
	CHECK(!zuul_result_is_zuuls(""));
	CHECK(!zuul_result_is_zuuls(NULL));
}

/* Zuul >= 10: changes describes every change; the top-level scalars copy changes[0] and are
 * read only when there is no changes list (Zuul < 10). */
static void test_item_is_the_first_change(void)
{
	struct zuul_event *ev = parse_ok("{\"action\":\"x\",\"project\":\"top\",\"branch\":\"old\",\"changes\":["
					 "{\"project\":\"org/a\",\"branch\":\"main\",\"topic\":\"t\"},"
					 "{\"project\":\"org/b\",\"branch\":\"stable\"}]}");
	if (ev) {
		CHECK_STR(ev->item.project, "org/a");
		CHECK_STR(ev->item.branch, "main");
		CHECK_STR(ev->item.topic, "t");
		size_t n = 0;
		const struct zuul_change *c = zuul_event_changes(ev, &n);
		CHECK_INT(n, 2);
		CHECK(c == ev->changes);
	}
	zuul_event_free(ev);
	ev = parse_ok("{\"action\":\"x\",\"project\":\"top\",\"branch\":\"old\"}");
	if (ev) {
		CHECK_STR(ev->item.project, "top");
		size_t n = 0;
		const struct zuul_change *c = zuul_event_changes(ev, &n);
		CHECK_INT(n, 1);
		CHECK(c == &ev->item);
	}
	zuul_event_free(ev);
}

static void test_free_accepts_null(void)
{
	zuul_event_free(NULL);
	CHECK(1);
}

int main(void)
{
	RUN(test_legacy_sample_decodes_every_field);
	RUN(test_current_failure_sample_decodes_every_field);
	RUN(test_current_start_sample_has_builds_without_results);
	RUN(test_periodic_sample_has_no_change_number);

	RUN(test_rejects_invalid_utf8_with_position);
	RUN(test_accepts_utf8_boundaries);
	RUN(test_rejects_nul_before_the_end_but_ignores_a_trailing_terminator);
	RUN(test_rejects_non_reports_with_a_reason);
	RUN(test_rejects_oversized_payload_before_parsing);
	RUN(test_rejects_nesting_deeper_than_the_limit);
	RUN(test_reason_never_echoes_payload_bytes);
	RUN(test_small_error_buffer_is_truncated_safely);

	RUN(test_escaped_nul_and_lone_surrogates_become_replacement_char);
	RUN(test_escaped_quote_does_not_confuse_the_scanner);
	RUN(test_python_non_finite_numbers_read_as_null);
	RUN(test_non_finite_lookalikes_are_still_not_json);

	RUN(test_change_numbers_are_normalised);
	RUN(test_times_that_are_not_finite_positive_numbers_are_unknown);
	RUN(test_voting_defaults_to_true);
	RUN(test_owner_string_or_account_object);
	RUN(test_fields_of_a_type_zuul_never_sends_reject_the_report);
	RUN(test_null_and_empty_fields_are_absent);
	RUN(test_empty_message_is_kept);
	RUN(test_build_lists_decode_artifacts_and_dependencies);
	RUN(test_schema_generation_is_detected_by_current_only_keys);
	RUN(test_corpus_hostile_escapes_decode_as_documented);
	RUN(test_duplicate_keys_take_the_first);

	RUN(test_preview_keeps_short_text_as_is);
	RUN(test_preview_replaces_control_bytes_and_invalid_utf8);
	RUN(test_preview_cuts_at_max_chars_with_ellipsis);
	RUN(test_preview_never_splits_a_utf8_sequence);

	RUN(test_event_key_prefers_buildset_then_item_uuid);
	RUN(test_event_key_falls_back_to_a_stable_fnv1a_hash);
	RUN(test_event_key_rejects_oversized_uuid);
	RUN(test_build_failed_only_for_finished_non_neutral_results);
	RUN(test_custom_job_results_follow_the_report);
	RUN(test_zuul_result_words_are_known);
	RUN(test_item_is_the_first_change);
	RUN(test_free_accepts_null);

	int n_valid = run_directory(PAYLOAD_DIR, name_is_json, corpus_file_decodes);
	int n_invalid = run_directory(INVALID_DIR, name_is_visible, invalid_file_is_rejected);
	RUN_NAMED("test_corpus_is_large_enough", test_corpus_is_large_enough(n_valid, n_invalid));
	return test_done();
}
