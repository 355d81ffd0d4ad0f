/* Tests of log: logfmt shape, quoting, level filtering, and that control bytes
 * from hostile input cannot forge a second line. */
#include "log.h"
#include "strbuf.h"
#include "test.h"

/* Runs fn with the log pointed at a temporary file and returns what was written. */
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

static void emit_kv(void)
{
	log_kv(ZLOG_WARN, "payload rejected", "topic", "zuul/scs/check", "reason", "no action", NULL);
}

static void test_kv_line_is_logfmt(void)
{
	char *out = capture(emit_kv);
	CHECK(strncmp(out, "ts=", 3) == 0);
	CHECK_CONTAINS(out, " level=warn msg=\"payload rejected\" topic=zuul/scs/check reason=\"no action\"\n");
	free(out);
}

static void emit_hostile(void)
{
	log_kv(ZLOG_ERROR, "x", "preview", "a\"b\\c\nts=forged level=error\x01", NULL);
}

static void test_values_are_escaped_onto_one_line(void)
{
	char *out = capture(emit_hostile);
	CHECK_CONTAINS(out, "preview=\"a\\\"b\\\\c\\nts=forged level=error\\x01\"\n");
	CHECK_INT(strchr(out, '\n') - out + 1, (long long)strlen(out)); /* exactly one newline, at the end */
	free(out);
}

static void emit_debug_and_info(void)
{
	log_debug("hidden %d", 1);
	log_info("shown %d", 2);
}

static void test_level_filters_lower_priority_lines(void)
{
	log_set_level(ZLOG_INFO);
	char *out = capture(emit_debug_and_info);
	CHECK_NOT_CONTAINS(out, "hidden");
	CHECK_CONTAINS(out, "level=info msg=\"shown 2\"");
	free(out);
	log_set_level(ZLOG_DEBUG);
	out = capture(emit_debug_and_info);
	CHECK_CONTAINS(out, "level=debug msg=\"hidden 1\"");
	free(out);
	log_set_level(ZLOG_INFO);
}

static void test_level_names_parse(void)
{
	CHECK_INT(log_level_parse("debug"), ZLOG_DEBUG);
	CHECK_INT(log_level_parse("WARNING"), ZLOG_WARN);
	CHECK_INT(log_level_parse("error"), ZLOG_ERROR);
	CHECK_INT(log_level_parse("loud"), -1);
	CHECK_INT(log_level_parse(NULL), -1);
}

int main(void)
{
	RUN(test_kv_line_is_logfmt);
	RUN(test_values_are_escaped_onto_one_line);
	RUN(test_level_filters_lower_priority_lines);
	RUN(test_level_names_parse);
	return test_done();
}
