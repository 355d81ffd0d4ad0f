/* redact: the one list of secret strings the process holds (access and refresh tokens,
 * passwords, whatever the config read from a secret file or the environment) and the one
 * function that blanks them out of text bound for an operator: every log line (log.c),
 * every dead letter reason (store.c), every /metrics and /healthz answer (metrics.c).
 * Text from outside (a homeserver's error body, a curl error, a broker's message) may echo
 * a secret back; it is caught here whatever its origin.
 *
 * Secrets shorter than REDACT_MIN_LEN bytes are not registered: such a string also occurs
 * in ordinary text ("main", "zuul", a room name), so blanking it would wreck the logs and,
 * worse, point at the secret by every place it blanked. A warning says so (without it).
 *
 * Not thread-safe: the bridge has one thread. */
#ifndef ZMB_REDACT_H
#define ZMB_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "strbuf.h"

#define REDACT_MARK "[redacted]"
#define REDACT_MIN_LEN 8
/* Rotating secrets (session tokens) kept: the one in force, the one it replaced (Synapse
 * accepts the old refresh token until the new access token is used) and a few more. */
#define REDACT_ROTATING_KEEP 8

/* Registers a secret for the life of the process (copied). A secret already known is not
 * added twice. Returns false for NULL, "", or a secret shorter than REDACT_MIN_LEN (then a
 * warning is logged, without the secret). */
bool redact_add(const char *secret);
/* Registers a secret that replaces earlier ones of its kind (a refreshed access token):
 * only the REDACT_ROTATING_KEEP newest stay, so months of refreshes do not grow the list. */
bool redact_add_rotating(const char *secret);
/* Forgets every secret, zeroing the copies (tests; the daemon keeps them to its end). */
void redact_clear(void);

/* text (len bytes) with every occurrence of a secret, overlapping ones merged, replaced by
 * REDACT_MARK. A text that ends in the beginning of a secret (at least REDACT_MIN_LEN
 * bytes of it, optionally followed by "..." or "\u2026") is taken for a cut copy and that
 * tail is blanked too. Returns text itself when it holds no secret, else the redacted
 * copy, kept in scratch (the caller frees scratch with strbuf_free either way). */
const char *redact_text(const char *text, size_t len, struct strbuf *scratch);
/* The same for a C string; NULL in, NULL out. */
const char *redact_str(const char *text, struct strbuf *scratch);

#endif
