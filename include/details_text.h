/* details_text: text from a build's logs made fit to quote in a room: terminal escapes
 * gone, invalid UTF-8 and invisible controls made harmless, cut to a few lines. Pure.
 * The result is still raw text: escaping for HTML is the renderer's job, as for every
 * other value. */
#ifndef ZMB_DETAILS_TEXT_H
#define ZMB_DETAILS_TEXT_H

#include <stddef.h>

#include "strbuf.h"

/* Appends s (len bytes, NULs included) to out cleaned up:
 *  - ANSI escape sequences (CSI "ESC [ ... final", OSC "ESC ] ... BEL or ESC \", and
 *    two-byte "ESC x") are removed, as are C1 controls (U+0080..U+009F, whose 0x9B is a CSI);
 *  - a carriage return starts the line over, as on a terminal (a progress bar leaves its last
 *    state), "\r\n" is a newline;
 *  - other control bytes but newline and tab are removed, and so are the invisible characters
 *    that reorder or split lines (U+200E/F, U+2028..U+202E, U+2066..U+2069, U+FEFF);
 *  - each byte of an invalid UTF-8 sequence becomes U+FFFD.
 * So the output is valid UTF-8 and shows what a terminal would. */
void details_text_clean(struct strbuf *out, const char *s, size_t len);

/* The last max_lines non-empty lines of clean text (trailing blank lines ignored), at most
 * max_chars characters: when longer, the oldest characters go and "…" (U+2026) starts the
 * text instead. Lines are joined by '\n', without a final one. Caller frees; "" for no text. */
char *details_text_tail(const char *clean, size_t max_lines, size_t max_chars);

/* The first max_chars characters of clean text; when cut, "…" ends it. Caller frees. */
char *details_text_head(const char *clean, size_t max_chars);

/* details_text_clean and then details_text_head, for one short value (a task name, a
 * message, an error detail). Caller frees; NULL in, NULL out. */
char *details_text_short(const char *s, size_t max_chars);

#endif
