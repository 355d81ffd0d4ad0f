/* strbuf: a growable, always NUL-terminated byte buffer.
 * Used by every module that builds text; the one place that owns growth policy. */
#ifndef ZMB_STRBUF_H
#define ZMB_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

struct strbuf {
	char *data; /* NUL-terminated once anything was appended; NULL before */
	size_t len; /* bytes used, not counting the NUL */
	size_t cap; /* bytes allocated */
};

#define STRBUF_INIT {NULL, 0, 0}

/* All appenders abort() on out-of-memory: a daemon that cannot allocate a
 * few bytes cannot do anything useful, and every caller checking would hide the
 * real logic. */
/* Hidden: libconfig 1.5 exports its own strbuf_append(); an exported one here
 * would interpose it and libconfig's scanner would call ours (crash on any string). */
__attribute__((visibility("hidden"))) void strbuf_append(struct strbuf *sb, const char *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_putc(struct strbuf *sb, char c);
/* Appends s with & < > " ' as HTML character references: safe in text and in quoted
 * attribute values. */
void strbuf_puts_html(struct strbuf *sb, const char *s);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_vprintf(struct strbuf *sb, const char *fmt, va_list ap);
/* Keeps the allocation, forgets the contents. */
void strbuf_reset(struct strbuf *sb);
/* Returns the contents (never NULL, "" when empty) and leaves sb empty; caller frees. */
char *strbuf_detach(struct strbuf *sb);
/* The contents as a C string: "" when nothing was appended. Not owned by the caller. */
const char *strbuf_str(const struct strbuf *sb);
void strbuf_free(struct strbuf *sb);

/* Small allocation helpers with the same abort-on-OOM policy. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);            /* NULL in, NULL out */
char *xstrndup(const char *s, size_t n); /* copies at most n bytes, adds NUL */

#endif
