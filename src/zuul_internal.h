/* zuul_internal: what zuul.c and zuul_raw.c share and nobody else needs: the raw-byte checks
 * that run before cJSON sees a payload, and the helpers the decoder borrows from them. */
#ifndef ZMB_ZUUL_INTERNAL_H
#define ZMB_ZUUL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A payload ready for cJSON, and where its non-finite tokens were rewritten to null (for
 * mapping a syntax error's position back to the bytes Zuul sent). */
struct zuul_prepared {
	char *text;
	size_t *swap_at;  /* byte offsets in the original payload, ascending */
	size_t *swap_len; /* length of the token replaced there */
	size_t n_swaps;
};

/* Checks the raw payload (size, NUL, UTF-8, nesting) and fills pp with a NUL-terminated copy
 * ready for cJSON; false with a reason in err. zuul_raw.c says what the copy rewrites. */
bool zuul_payload_prepare(const char *payload, size_t len, struct zuul_prepared *pp, char *err, size_t errlen);
/* Frees what pp owns and zeroes it. */
void zuul_prepared_free(struct zuul_prepared *pp);
/* The offset in the original payload of byte `at` of pp's rewritten text. */
size_t zuul_prepared_origin(const struct zuul_prepared *pp, size_t at);

/* Length of the well-formed UTF-8 sequence at p (n bytes available), storing its code point
 * in cp, or 0 when it is not one. */
size_t zuul_utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp);
/* Whether the NUL-terminated s is well-formed UTF-8. */
bool zuul_utf8_valid(const char *s);
/* Formats the reason into err (may be NULL or errlen 0: then nothing). */
void zuul_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
