/* session: who the bridge is on the homeserver. Either the access token from the
 * configuration, used as it is, or a password login of matrix.user whose device id is kept
 * in the store and whose expiring access token is refreshed (POST /refresh) or, when that
 * fails, replaced by a new login. Every matrix_client made from the same config_matrix
 * reads its Authorization header from here for each request (config_matrix.auth), so a
 * renewed token is at once the token of all of them. Tokens live only in memory. */
#ifndef ZMB_SESSION_H
#define ZMB_SESSION_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "loop.h"
#include "matrix.h"
#include "store.h"

struct session;

/* cfg and store must outlive the session. Nothing is sent before session_start. */
struct session *session_new(struct loop *loop, const struct config_matrix *cfg, struct store *store);
/* Free only after every client that reads from it (config_matrix.auth) is freed. */
void session_free(struct session *s);
/* Logs in, with a password; with a static token there is nothing to do. */
void session_start(struct session *s);
/* What config_matrix.auth should point to; lives as long as the session. */
const struct matrix_auth *session_auth(struct session *s);

/* ---- pure parts, for tests ---- */

/* The body of POST /_matrix/client/v3/login for m.login.password as user (a user id or a
 * localpart), asking for a refresh token; device_id NULL lets the homeserver pick one.
 * Caller frees with session_secret_free (the password is in it). */
char *session_login_body(const char *user, const char *password, const char *device_id);
/* The body of POST /_matrix/client/v3/refresh. Caller frees with session_secret_free. */
char *session_refresh_body(const char *refresh_token);
/* Zeroes, then frees. */
void session_secret_free(char *secret);

/* What a login or refresh answer gave. */
struct session_grant {
	char *access_token;     /* never logged */
	char *refresh_token;    /* NULL: none (the homeserver's tokens do not expire, or no refresh) */
	char *device_id;        /* login only; NULL from a refresh */
	char *user_id;          /* login only */
	long long expires_in_ms; /* 0: the access token does not expire */
};
/* Fills g from a 200 answer's JSON. 0, or -1 without an access token (g then empty). */
int session_grant_parse(const cJSON *json, struct session_grant *g);
void session_grant_clear(struct session_grant *g);

/* How long after a grant the token is renewed: a fifth of its lifetime (at most a minute)
 * before it expires, so a slow answer still comes in time. */
long long session_renew_delay_ms(long long expires_in_ms);

enum session_renewal {
	SESSION_RENEW_NONE,    /* a static token: nothing can be done */
	SESSION_RENEW_REFRESH, /* POST /refresh with the refresh token */
	SESSION_RENEW_LOGIN,   /* log in again with the password */
};
/* What to do when the token in force is refused (401 M_UNKNOWN_TOKEN) or about to expire:
 * a soft logout (expired) is cured by a refresh; a hard one (logged out, device deleted)
 * only by a login, and so is anything without a refresh token. */
enum session_renewal session_next_renewal(bool has_password, bool has_refresh_token, bool soft_logout);

#endif
