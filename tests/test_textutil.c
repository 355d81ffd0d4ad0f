/* Tests of textutil: which URLs may become links, and percent-encoding of values put into
 * URLs (every byte outside RFC 3986's unreserved set encoded). */
#include "strbuf.h"
#include "test.h"
#include "textutil.h"

struct url_case {
	const char *url;
	bool safe;
};

static const struct url_case url_cases[] = {
	{"https://zuul.example.org/t/x/build/1", true},
	{"http://logs.example.org/a?b=c&d=e#f", true},
	{"HTTPS://EXAMPLE.ORG", true},
	{"https://example.org/caf\xc3\xa9", true}, /* bytes >= 0x80 pass */
	{"https://user@example.org/", true},        /* userinfo after a host-like start is kept */
	{"https://", false},
	{"https:///path", false},
	{"https://?q", false},
	{"https://#f", false},
	{"https://@evil.org", false},
	{"https://:443", false},
	{"//example.org/x", false},
	{"ftp://example.org/x", false},
	{"javascript:alert(1)", false},
	{"data:text/html,<b>x</b>", false},
	{"/relative/path", false},
	{" https://example.org", false},
	{"https://example.org/a b", false},
	{"https://example.org/\t", false},
	{"https://example.org/\x7f", false},
	{"https://example.org/\"onmouseover=x", false},
	{"https://example.org/<script>", false},
	{"https://example.org/a>b", false},
	{"https://example.org\\@evil.org", false},
	{"https://example.org/`x`", false},
	{"", false},
};

static void check_url(const struct url_case *c)
{
	bool got = textutil_url_is_safe(c->url);
	if (got != c->safe)
		printf("# \"%s\": expected %s, got %s\n", c->url, c->safe ? "safe" : "refused",
		       got ? "safe" : "refused");
	CHECK(got == c->safe);
}

static void test_url_null_is_refused(void)
{
	CHECK(!textutil_url_is_safe(NULL));
}

static void test_url_length_limit_is_inclusive(void)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "https://example.org/");
	while (sb.len < TEXTUTIL_URL_MAX)
		strbuf_putc(&sb, 'a');
	CHECK_INT(sb.len, TEXTUTIL_URL_MAX);
	CHECK(textutil_url_is_safe(strbuf_str(&sb)));
	strbuf_putc(&sb, 'a');
	CHECK(!textutil_url_is_safe(strbuf_str(&sb)));
	strbuf_free(&sb);
}

static char *encoded(const char *s)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "<");
	textutil_percent_encode(&sb, s);
	strbuf_puts(&sb, ">");
	return strbuf_detach(&sb);
}

static void test_percent_encode_keeps_only_unreserved(void)
{
	char *got = encoded("AZaz09-._~");
	CHECK_STR(got, "<AZaz09-._~>");
	free(got);
	got = encoded("!room:example.org/$ev ?&=#%+@");
	CHECK_STR(got, "<%21room%3Aexample.org%2F%24ev%20%3F%26%3D%23%25%2B%40>");
	free(got);
	got = encoded("caf\xc3\xa9\n\x7f");
	CHECK_STR(got, "<caf%C3%A9%0A%7F>");
	free(got);
}

static void test_percent_encode_empty_and_null_append_nothing(void)
{
	char *got = encoded("");
	CHECK_STR(got, "<>");
	free(got);
	got = encoded(NULL);
	CHECK_STR(got, "<>");
	free(got);
}

static void test_matrix_to_link_encodes_both_ids(void)
{
	struct strbuf sb = STRBUF_INIT;
	textutil_matrix_to_event(&sb, "!alerts:localhost", "$ab/c+d");
	CHECK_STR(strbuf_str(&sb), "https://matrix.to/#/%21alerts%3Alocalhost/%24ab%2Fc%2Bd");
	strbuf_free(&sb);
}

int main(void)
{
	char name[160];
	for (size_t i = 0; i < sizeof url_cases / sizeof url_cases[0]; i++) {
		const struct url_case *c = &url_cases[i];
		snprintf(name, sizeof name, "url case %zu is %s: %s", i, c->safe ? "safe" : "refused", c->url);
		for (char *q = name; *q; q++)
			if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f || *q == '#')
				*q = '?'; /* keep the TAP line printable and directive-free */
		RUN_NAMED(name, check_url(c));
	}
	RUN(test_url_null_is_refused);
	RUN(test_url_length_limit_is_inclusive);
	RUN(test_percent_encode_keeps_only_unreserved);
	RUN(test_percent_encode_empty_and_null_append_nothing);
	RUN(test_matrix_to_link_encodes_both_ids);
	return test_done();
}
