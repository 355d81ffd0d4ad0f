/* Tests of strbuf: growth, formatting, detach and the NULL/empty conventions. */
#include "strbuf.h"
#include "test.h"

static void test_empty_buffer_reads_as_empty_string(void)
{
	struct strbuf sb = STRBUF_INIT;
	CHECK_STR(strbuf_str(&sb), "");
	char *s = strbuf_detach(&sb);
	CHECK_STR(s, "");
	free(s);
}

static void test_appends_grow_past_initial_capacity(void)
{
	struct strbuf sb = STRBUF_INIT;
	for (int i = 0; i < 1000; i++)
		strbuf_putc(&sb, (char)('a' + i % 26));
	CHECK_INT(sb.len, 1000);
	CHECK_INT(strlen(sb.data), 1000);
	CHECK(sb.data[26] == 'a' && sb.data[999] == 'a' + 999 % 26);
	strbuf_free(&sb);
	CHECK(sb.data == NULL && sb.len == 0);
}

static void test_printf_appends_formatted_text(void)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "x=");
	strbuf_printf(&sb, "%d/%s", 42, "y");
	CHECK_STR(strbuf_str(&sb), "x=42/y");
	strbuf_reset(&sb);
	CHECK_STR(strbuf_str(&sb), "");
	strbuf_printf(&sb, "%0300d", 7);
	CHECK_INT(sb.len, 300);
	strbuf_free(&sb);
}

static void test_append_keeps_embedded_bytes(void)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_append(&sb, "a\0b", 3);
	CHECK_INT(sb.len, 3);
	CHECK(memcmp(sb.data, "a\0b", 4) == 0);
	strbuf_free(&sb);
}

static void test_xstrndup_stops_at_n_or_nul(void)
{
	char *a = xstrndup("abcdef", 3);
	CHECK_STR(a, "abc");
	char *b = xstrndup("ab", 10);
	CHECK_STR(b, "ab");
	CHECK(xstrdup(NULL) == NULL);
	free(a);
	free(b);
}

static void test_puts_html_escapes_markup_and_quotes_only(void)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts_html(&sb, "<a href=\"x\">Tom & 'Jerry'</a> \xc3\xa9");
	CHECK_STR(strbuf_str(&sb), "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt; \xc3\xa9");
	strbuf_reset(&sb);
	strbuf_puts_html(&sb, "");
	CHECK_STR(strbuf_str(&sb), "");
	strbuf_free(&sb);
}

int main(void)
{
	RUN(test_empty_buffer_reads_as_empty_string);
	RUN(test_appends_grow_past_initial_capacity);
	RUN(test_printf_appends_formatted_text);
	RUN(test_append_keeps_embedded_bytes);
	RUN(test_xstrndup_stops_at_n_or_nul);
	RUN(test_puts_html_escapes_markup_and_quotes_only);
	return test_done();
}
