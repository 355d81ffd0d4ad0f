/* template: a Mustache engine (spec v1.x without lambdas), parsed once, rendered many times.
 * Pure: strings and cJSON data in, text out. The only I/O is template_load_file(). */
#ifndef ZMB_TEMPLATE_H
#define ZMB_TEMPLATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "strbuf.h"

struct template;

/* Returns the source of partial `name` (caller frees, *len set), or NULL when
 * there is no such partial: the spec renders a missing partial as "". */
typedef char *(*template_partial_fn)(const char *name, size_t *len, void *ctx);

/* Parses src. Partials referenced by src (and by them, recursively) are fetched
 * through `partial` once, now, and parsed; a recursive partial is parsed once.
 * `partial` may be NULL (every partial is then empty).
 * `origin` names the source in errors (a file name, or "<string>").
 * On error returns NULL and writes "ORIGIN:LINE: reason" to err. */
struct template *template_new(const char *src, size_t len, const char *origin, template_partial_fn partial,
			      void *ctx, char *err, size_t errlen);

/* Reads path and parses it; partials are read from partials_dir/NAME, else
 * partials_dir/NAME.mustache (partials_dir NULL: the directory of path).
 * Errors are "PATH:LINE: reason" (or "PATH: cannot read: strerror"). */
struct template *template_load_file(const char *path, const char *partials_dir, char *err, size_t errlen);

/* Appends the rendering of t over data to out. Values are HTML-escaped
 * (& < > " ') except in {{{x}}} and {{& x}}. Numbers print like JSON numbers
 * (1.5, 85, 1e+300), true/false as "true"/"false", null as "". */
void template_render(const struct template *t, const cJSON *data, struct strbuf *out);

void template_free(struct template *t);

#endif
