/* textutil: small pure text helpers that several renderers share (report, digest, incident):
 * which URLs may become links, and percent-encoding of values put into URLs. */
#ifndef ZMB_TEXTUTIL_H
#define ZMB_TEXTUTIL_H

#include <stdbool.h>

#include "strbuf.h"

/* Longest URL that may become a link: longer ones are hostile or broken, and a chat
 * message is no place for them either way. */
#define TEXTUTIL_URL_MAX 4096

/* Whether url may be shown as a link: an absolute http:// or https:// URL (scheme in any
 * case) whose authority does not start empty ('/', '?', '#', '@' or ':' right after the
 * "//"), at most TEXTUTIL_URL_MAX bytes, with no byte <= 0x20 (controls, space), DEL, '"',
 * '<', '>', '\\' or '`'. So javascript:, data:, relative and protocol-relative URLs and
 * whitespace or markup tricks are refused, and a URL that passes needs no escaping in an
 * HTML attribute except '&'. NULL is refused. Bytes >= 0x80 are allowed (IRIs). */
bool textutil_url_is_safe(const char *url);

/* Appends s percent-encoded per RFC 3986: every byte but the unreserved A-Z a-z 0-9 - . _ ~
 * becomes %XX (upper-case hex), so a value can never end the path segment, query parameter
 * or fragment it is put into. Independent of the locale; NULL appends nothing. */
void textutil_percent_encode(struct strbuf *out, const char *s);

/* Appends the matrix.to link to one event of a room, "https://matrix.to/#/ROOM/EVENT",
 * both ids percent-encoded as above (so the link needs no HTML escaping). */
void textutil_matrix_to_event(struct strbuf *out, const char *room_id, const char *event_id);

#endif
