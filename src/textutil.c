/* textutil: the link check and the percent-encoding that report.c, digest.c and incident.c
 * share, so a URL is judged and built the same way in every message. Pure. */
#include "textutil.h"

#include <string.h>
#include <strings.h>

bool textutil_url_is_safe(const char *url)
{
	if (!url)
		return false;
	const char *rest;
	if (strncasecmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (strncasecmp(url, "http://", 7) == 0)
		rest = url + 7;
	else
		return false;
	/* No host: "http:///x", "http://?q"; '@' or ':' first hides the host behind userinfo
	 * or leaves none. */
	if (*rest == '\0' || *rest == '/' || *rest == '?' || *rest == '#' || *rest == '@' || *rest == ':')
		return false;
	if (strlen(url) > TEXTUTIL_URL_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '\\' || *p == '`')
			return false;
	return true;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

void textutil_percent_encode(struct strbuf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (unreserved(*p)) {
			strbuf_putc(out, (char)*p);
		} else {
			strbuf_putc(out, '%');
			strbuf_putc(out, hex[*p >> 4]);
			strbuf_putc(out, hex[*p & 15]);
		}
	}
}

void textutil_matrix_to_event(struct strbuf *out, const char *room_id, const char *event_id)
{
	strbuf_puts(out, "https://matrix.to/#/");
	textutil_percent_encode(out, room_id);
	strbuf_putc(out, '/');
	textutil_percent_encode(out, event_id);
}
