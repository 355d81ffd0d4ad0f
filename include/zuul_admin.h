/* zuul_admin: Zuul's admin REST API as zuul/web/__init__.py (14.3.0) serves it: the requests
 * for enqueue, dequeue and autohold (create, list, delete) built exactly as its handlers read
 * them (pure), and a client that sends them over libcurl's multi interface on our loop with
 * a bearer token (zuul_token.h). Knows nothing of Matrix or the room. */
#ifndef ZMB_ZUUL_ADMIN_H
#define ZMB_ZUUL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "loop.h"
#include "strbuf.h"

/* An autohold holds at most this many failed builds' nodes: a typo ("100") must not pin a
 * node pool. */
#define ZUUL_ADMIN_COUNT_MAX 10
/* Zuul keeps 1024 characters of a hold's reason; we send no more. */
#define ZUUL_ADMIN_REASON_MAX 1024
/* One call, connection included: Zuul answers admin calls at once (it only queues). */
#define ZUUL_ADMIN_TIMEOUT_MS 20000L

/* A pipeline item as its report names it. */
struct zuul_admin_item {
	const char *tenant;
	const char *project;  /* Zuul's project name, "org/repo" */
	const char *pipeline;
	const char *change;   /* the change number, NULL for a ref item */
	const char *patchset; /* with change: its patchset (or a GitHub PR's head sha) */
	const char *ref;      /* without change: the ref, "refs/heads/main" */
};

/* One request: method, path under the tenant's web root, and the JSON body (NULL: none). */
struct zuul_admin_request {
	char *method;
	char *path;
	char *body;
};
void zuul_admin_request_clear(struct zuul_admin_request *r);

/* Each fills *out and returns 0, or returns -1 with why (static text) when the item cannot
 * be asked for (a change without its patchset, an item with neither change nor ref, an
 * empty job or reason).
 * enqueue: {"pipeline", "change": "N,P"} for a change; {"pipeline", "ref", "oldrev": null,
 *   "newrev": null} for a ref (as Zuul's timer enqueues a periodic item: the branch head).
 * dequeue: {"pipeline", "change": "N,P"} or {"pipeline", "ref"}: exactly one of them.
 * autohold: {"job", "count", "change": "N" | null, "ref": REGEX | null, "reason",
 *   "node_hold_expiration": null}; a ref is sent as a regular expression matching only
 *   itself (Zuul compiles it); count is clamped to 1..ZUUL_ADMIN_COUNT_MAX, the reason cut
 *   to ZUUL_ADMIN_REASON_MAX bytes (at a character boundary).
 * Paths: /api/tenant/{tenant}/project/{project}/{enqueue,dequeue,autohold}, the project
 * percent-encoded but its '/' (Zuul routes project names with {project_name:.*}), the tenant
 * wholly. */
int zuul_admin_enqueue(const struct zuul_admin_item *it, struct zuul_admin_request *out, const char **why);
int zuul_admin_dequeue(const struct zuul_admin_item *it, struct zuul_admin_request *out, const char **why);
int zuul_admin_autohold(const struct zuul_admin_item *it, const char *job, int count, const char *reason,
			struct zuul_admin_request *out, const char **why);
/* GET /api/tenant/{tenant}/autohold and DELETE /api/tenant/{tenant}/autohold/{id}. */
int zuul_admin_autohold_list(const char *tenant, struct zuul_admin_request *out, const char **why);
int zuul_admin_autohold_delete(const char *tenant, const char *id, struct zuul_admin_request *out, const char **why);

/* Appends s percent-encoded (RFC 3986 unreserved characters stay; '/' too when keep_slash). */
void zuul_admin_put_encoded(struct strbuf *out, const char *s, bool keep_slash);
/* s as a Python regular expression that matches exactly s (Python 3.7+'s re.escape: each of
 * ()[]{}?*+-|^$\.&~# and whitespace gets a backslash). Caller frees. */
char *zuul_admin_regex_escape(const char *s);

/* Why Zuul refused, from its answer: a 401's JSON description ("Token has expired"), the
 * message of CherryPy's error page for a 400 or 404 ("Unknown pipeline", "Unknown project"),
 * "not allowed by the tenant's authorization rules" for a 403 (Zuul sends no body), else
 * "HTTP N". At most 300 bytes, plain text (control characters dropped). Caller frees. */
char *zuul_admin_reason(long status, const char *body, size_t len);

/* ---- the client ---- */

struct zuul_admin;

struct zuul_admin_result {
	long status;          /* the HTTP status; 0 when Zuul was not reached */
	bool accepted;        /* 2xx */
	const char *reason;   /* !accepted: why (zuul_admin_reason, or curl's error when unreached) */
	const char *body;     /* the answer (NUL-terminated; valid during the callback only) */
	size_t len;
};
/* Called once per request, from the loop (never from inside zuul_admin_send). */
typedef void (*zuul_admin_fn)(const struct zuul_admin_result *r, void *data);

struct zuul_admin *zuul_admin_new(struct loop *loop);
/* Drops requests in flight without calling their callbacks. */
void zuul_admin_free(struct zuul_admin *za);
/* Sends req to api_root (a tenant's `api`, no trailing '/') with "Authorization: Bearer
 * token"; curl copies what it needs, so req and token may go once this returns. Redirects
 * are not followed (a token goes only where configured). 0, or -1 (logged) when it could
 * not be started: then fn is never called. */
int zuul_admin_send(struct zuul_admin *za, const char *api_root, const struct zuul_admin_request *req,
		    const char *token, zuul_admin_fn fn, void *data);
size_t zuul_admin_in_flight(const struct zuul_admin *za);

#endif
