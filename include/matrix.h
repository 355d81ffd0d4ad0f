/* matrix: a Matrix client-server API client over libcurl's multi interface, driven by
 * our loop (no threads, no blocking calls). Generic JSON requests plus the few calls the
 * bridge makes. Knows nothing of Zuul. */
#ifndef ZMB_MATRIX_H
#define ZMB_MATRIX_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "loop.h"
#include "strbuf.h"

struct matrix_client;

/* The largest answer body a client takes: a lying or broken server must not make it buffer
 * without bound. A bigger answer is a transport failure with too_large set. */
#define MATRIX_MAX_BODY (8L * 1024 * 1024)

/* The outcome of one request. Exactly one of these is true:
 *  - transport failure: status == 0, curl_error says why (timeout, refused, reset...);
 *  - an HTTP answer: status is the HTTP status; json is the parsed body when it was a
 *    JSON object (else NULL), errcode/error are copied from a Matrix error body. */
struct matrix_response {
	long status;
	const char *curl_error;  /* NULL unless status == 0 */
	bool timed_out;          /* transport failure was a timeout */
	bool too_large;          /* transport failure: the body was over MATRIX_MAX_BODY */
	const char *body;        /* raw body, NUL-terminated, may be "" */
	size_t body_len;
	const cJSON *json;       /* owned by the client; valid during the callback only */
	const char *errcode;     /* "M_FORBIDDEN"..., or NULL */
	const char *error;       /* human text from the homeserver, or NULL */
	long retry_after_ms;     /* body's retry_after_ms, else Retry-After (seconds or HTTP-date); -1 if none */
	double elapsed_s;        /* request duration */
};

/* Called once per request, from the loop (never from inside matrix_request). The
 * callback may start new requests, and may call matrix_client_free: the other requests
 * in flight are then dropped without their callbacks, and the client must not be used
 * again. resp and everything it points to are valid during the callback only. */
typedef void (*matrix_response_fn)(const struct matrix_response *resp, void *data);

/* Called by a matrix_auth when the token a client waits for is in force (ok) or will not
 * come (!ok). Always from the loop, never from inside a matrix_auth call. */
typedef void (*matrix_auth_ready_fn)(void *data, bool ok);

/* Where clients take their Authorization header from, request by request, so that a token
 * one part of the daemon renewed is at once every client's token (session.h implements it;
 * config_matrix.auth points to it). Without one a client uses cfg->access_token as it is. */
struct matrix_auth {
	/* The header line "Authorization: Bearer ..." in force, or NULL while there is none
	 * (a login under way); *generation changes whenever the token does. */
	const char *(*header)(void *ctx, unsigned long *generation);
	/* The token of this generation was refused (401 M_UNKNOWN_TOKEN, soft_logout as the
	 * homeserver said), or there is none yet. Returns true when a new one is on its way:
	 * ready(data, ok) follows once; a second renew with the same data before that is one
	 * wait. false: nothing to wait for (the refusal stands). */
	bool (*renew)(void *ctx, unsigned long generation, bool soft_logout, matrix_auth_ready_fn ready,
		      void *data);
	/* Forgets a pending ready call for data (its client is going away). */
	void (*cancel)(void *ctx, void *data);
	void *ctx;
};

/* cfg must outlive the client (the bridge keeps the config alive until reload swaps both).
 * With cfg->auth, the client reads its token from there for each request and a request
 * refused with 401 M_UNKNOWN_TOKEN waits for a renewed token and is sent again; the
 * caller sees only the answer to the last attempt. */
struct matrix_client *matrix_client_new(struct loop *loop, const struct config_matrix *cfg);
/* Aborts requests still in flight without calling their callbacks; closes the
 * kept-alive connections. Allowed from a response callback (see matrix_response_fn). */
void matrix_client_free(struct matrix_client *mc);

/* Starts a request. path is already percent-encoded where needed and starts with
 * "/_matrix/"; json_body may be NULL. Returns 0, or -1 if it could not even start
 * (then fn is not called). Connections are kept alive and reused. */
int matrix_request(struct matrix_client *mc, const char *method, const char *path, const char *json_body,
		   matrix_response_fn fn, void *data);

/* matrix_request with its own overall timeout instead of request_timeout_s: a /sync
 * long poll legitimately waits longer than any ordinary call may. timeout_ms <= 0
 * means request_timeout_s. The connect timeout stays min(timeout, 10 s). */
int matrix_request_timeout(struct matrix_client *mc, const char *method, const char *path, const char *json_body,
			   long timeout_ms, matrix_response_fn fn, void *data);

/* GET /_matrix/client/v3/account/whoami */
int matrix_whoami(struct matrix_client *mc, matrix_response_fn fn, void *data);
/* POST /_matrix/client/v3/join/{roomIdOrAlias}: joins by id or alias; the answer's
 * room_id is the resolved id. */
int matrix_join(struct matrix_client *mc, const char *room_id_or_alias, matrix_response_fn fn, void *data);
/* PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId} */
int matrix_send(struct matrix_client *mc, const char *room_id, const char *event_type, const char *txn_id,
		const char *content_json, matrix_response_fn fn, void *data);

/* Requests started and not yet answered. */
size_t matrix_in_flight(const struct matrix_client *mc);

/* Percent-encodes one path segment (RFC 3986 unreserved kept). Caller frees. */
char *matrix_escape_segment(const char *segment);

/* Whether a response is worth retrying: transport failures, 5xx, 429 (and 408), and
 * 403 M_RESOURCE_LIMIT_EXCEEDED (the server is over a limit such as its monthly active
 * users; the spec: "the client should back off and try again later"). Anything else
 * (4xx with a Matrix errcode) is permanent. */
bool matrix_response_is_transient(const struct matrix_response *resp);

/* Appends a one-line description of a failed response for logs and dead letters:
 * the transport error, or "HTTP 403 M_FORBIDDEN: <error text>"; a resource limit adds its
 * limit_type and admin_contact when the homeserver gave them. */
void matrix_response_describe(const struct matrix_response *resp, struct strbuf *out);

#endif
