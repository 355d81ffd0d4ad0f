/* matrix: Matrix client-server requests over libcurl's multi *socket* interface, with
 * curl's sockets and timeout driven by our loop (http_multi.c; no threads, no blocking calls). */
#include "matrix.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_multi.h"
#include "log.h"
#include "strbuf.h"
#include "textutil.h"

/* MATRIX_MAX_BODY (matrix.h): no Matrix answer the bridge asks for comes anywhere near it
 * but a /sync after a long absence; sync.c answers that by asking for less. */
#define MATRIX_DEFAULT_TIMEOUT_S 30
/* An outbox flushed after an outage may start hundreds of sends at once; beyond this
 * many connections to the homeserver they queue inside curl (their timeout runs
 * while they wait) instead of opening a connection each. */
#define MATRIX_MAX_CONNECTIONS 8L
/* Finished easy handles kept for the next requests: creating one per request and
 * freeing its buffers after was a visible share of a send's CPU (malloc_consolidate). */
#define MATRIX_IDLE_HANDLES 8

/* A refused token is renewed and the request resent at most this many times: a homeserver
 * that refuses every fresh token must not keep a request bouncing for ever. */
#define MATRIX_MAX_AUTH_RETRIES 3

/* The request headers for one token, built once: curl only reads them during a transfer,
 * so every request started with this token shares them, and they live until the last of
 * those requests is done (a renewed token gets a new set; requests in flight keep theirs). */
struct hdrset {
	struct curl_slist *plain;  /* Accept, Expect (none), Authorization */
	struct curl_slist *body;   /* the same plus Content-Type: application/json */
	unsigned long generation;  /* the matrix_auth generation of the token, 0 for a static one */
	int refs;
};

/* One request in flight (or parked until a token comes): its easy handle and everything
 * curl points into, and what is needed to send it again. */
struct mreq {
	struct matrix_client *mc;
	CURL *easy;
	struct http_transfer *xfer; /* while curl runs it */
	char *method;
	char *path;
	char *json_body;          /* NULL: none */
	long timeout_ms;          /* <= 0: request_timeout_s */
	struct hdrset *hdrs;      /* the token it was sent with; NULL while parked */
	bool parked;              /* waits for the matrix_auth to renew the token */
	int auth_retries;
	matrix_response_fn fn;
	void *data;
	char too_large[64];       /* the curl_error of an answer over MATRIX_MAX_BODY */
	struct mreq *prev, *next;
};

struct matrix_client {
	struct loop *loop;
	const struct config_matrix *cfg;
	struct http_multi *http; /* one multi handle: its connection cache gives keep-alive */
	char *base_url;          /* homeserver without trailing '/' */
	struct hdrset *hdrs;     /* the headers of the token in force; never logged */
	bool auth_waiting;       /* cfg->auth will call on_auth_ready */
	uint64_t fail_timer;     /* fails the parked requests: no token will come */
	CURL *idle[MATRIX_IDLE_HANDLES]; /* reset handles ready for reuse */
	size_t n_idle;
	struct mreq *reqs;       /* requests in flight (doubly linked) */
	size_t n_in_flight;
	int dispatching;         /* >0 while response callbacks run */
	bool closing;            /* tearing down: curl callbacks only clean up */
	bool free_pending;       /* matrix_client_free was called from a response callback */
};

/* ---- one request ---- */

/* A handle back to the pool (reset: no option or body of this request stays), or
 * freed when the pool is full or the client is closing. */
static void easy_release(struct matrix_client *mc, CURL *e)
{
	if (!e)
		return;
	if (!mc->closing && mc->n_idle < MATRIX_IDLE_HANDLES) {
		curl_easy_reset(e);
		mc->idle[mc->n_idle++] = e;
		return;
	}
	curl_easy_cleanup(e);
}

static CURL *easy_acquire(struct matrix_client *mc)
{
	return mc->n_idle ? mc->idle[--mc->n_idle] : curl_easy_init();
}

static void hdrset_unref(struct hdrset *h);

static void mreq_free(struct mreq *r)
{
	easy_release(r->mc, r->easy);
	free(r->method);
	free(r->path);
	free(r->json_body);
	hdrset_unref(r->hdrs);
	free(r);
}

static void unlink_req(struct matrix_client *mc, struct mreq *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		mc->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	mc->n_in_flight--;
}

/* Retry-After is delta-seconds or an HTTP-date (RFC 9110 10.2.3); curl_getdate reads
 * the date forms. Returns milliseconds, or -1 when absent or unreadable. */
static long retry_after_header_ms(CURL *easy)
{
	struct curl_header *h;
	if (curl_easy_header(easy, "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK || !h->value)
		return -1;
	const char *v = h->value;
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v >= '0' && *v <= '9') {
		char *end;
		long long secs = strtoll(v, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (*end != '\0' || secs < 0)
			return -1;
		if (secs > 86400LL * 365)
			secs = 86400LL * 365;
		return (long)(secs * 1000);
	}
	time_t when = curl_getdate(v, NULL);
	if (when == (time_t)-1)
		return -1;
	time_t now = time(NULL);
	return when > now ? (long)(when - now) * 1000L : 0;
}

/* Fills resp from a finished transfer. Returns the parsed body (caller deletes). */
static cJSON *build_response(struct mreq *r, const struct http_result *hr, struct matrix_response *resp)
{
	memset(resp, 0, sizeof *resp);
	resp->retry_after_ms = -1;
	double total = 0;
	curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &total);
	resp->elapsed_s = total;
	resp->body = hr->body;
	resp->body_len = hr->len;

	if (hr->code != CURLE_OK) {
		resp->status = 0;
		resp->timed_out = hr->code == CURLE_OPERATION_TIMEDOUT;
		resp->too_large = hr->too_big || hr->code == CURLE_FILESIZE_EXCEEDED;
		if (resp->too_large)
			snprintf(r->too_large, sizeof r->too_large, "response body larger than %ld bytes",
				 MATRIX_MAX_BODY);
		resp->curl_error = resp->too_large ? r->too_large : hr->error;
		return NULL;
	}
	resp->status = hr->status;

	cJSON *json = cJSON_ParseWithLength(hr->body, hr->len);
	if (json && !cJSON_IsObject(json)) {
		cJSON_Delete(json);
		json = NULL;
	}
	resp->json = json;
	if (json && (resp->status < 200 || resp->status > 299)) {
		const cJSON *ec = cJSON_GetObjectItemCaseSensitive(json, "errcode");
		const cJSON *er = cJSON_GetObjectItemCaseSensitive(json, "error");
		resp->errcode = cJSON_IsString(ec) ? ec->valuestring : NULL;
		resp->error = cJSON_IsString(er) ? er->valuestring : NULL;
	}
	const cJSON *ra = json ? cJSON_GetObjectItemCaseSensitive(json, "retry_after_ms") : NULL;
	if (ra && cJSON_IsNumber(ra) && ra->valuedouble >= 0 && ra->valuedouble < 1e12)
		resp->retry_after_ms = (long)ra->valuedouble;
	else
		resp->retry_after_ms = retry_after_header_ms(r->easy);
	return json;
}

static void client_destroy(struct matrix_client *mc);

/* ---- headers: the token in force ---- */

/* The token should not linger in freed heap memory either. */
static void headers_free(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

/* A header set for one Authorization line (NULL: none), with one reference. */
static struct hdrset *hdrset_new(const char *auth_line, unsigned long generation)
{
	struct hdrset *hs = xcalloc(1, sizeof *hs);
	hs->generation = generation;
	hs->refs = 1;
	for (int with_body = 0; with_body < 2; with_body++) {
		struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
		/* curl would otherwise wait for "100 Continue" before large bodies. */
		h = h ? curl_slist_append(h, "Expect:") : NULL;
		if (h && auth_line)
			h = curl_slist_append(h, auth_line);
		if (h && with_body)
			h = curl_slist_append(h, "Content-Type: application/json");
		if (!h) {
			log_msgf(ZLOG_ERROR, "matrix: out of memory building request headers");
			abort();
		}
		if (with_body)
			hs->body = h;
		else
			hs->plain = h;
	}
	return hs;
}

static struct hdrset *hdrset_ref(struct hdrset *hs)
{
	hs->refs++;
	return hs;
}

static void hdrset_unref(struct hdrset *hs)
{
	if (!hs || --hs->refs > 0)
		return;
	headers_free(hs->plain);
	headers_free(hs->body);
	free(hs);
}

/* The headers of the token in force, or NULL while cfg->auth has none. Asked for each
 * request, so no client keeps sending a token another part of the daemon replaced. */
static struct hdrset *current_headers(struct matrix_client *mc)
{
	const struct matrix_auth *auth = mc->cfg->auth;
	if (!auth)
		return mc->hdrs;
	unsigned long generation = 0;
	const char *line = auth->header(auth->ctx, &generation);
	if (!line)
		return NULL;
	if (mc->hdrs && mc->hdrs->generation == generation)
		return mc->hdrs;
	hdrset_unref(mc->hdrs);
	mc->hdrs = hdrset_new(line, generation);
	return mc->hdrs;
}

/* ---- sending, parking, resending ---- */

static bool method_has_body(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
}

static void on_transfer_done(const struct http_result *hr, void *data);

/* Sets r's easy handle up (fresh or reset) with the headers r->hdrs and hands it to curl.
 * r is in mc's list already. 0, or -1 logged. */
static int mreq_start(struct matrix_client *mc, struct mreq *r)
{
	if (!r->easy)
		r->easy = easy_acquire(mc);
	if (!r->easy) {
		log_msgf(ZLOG_ERROR, "matrix: curl_easy_init failed for %s %s; request not sent", r->method, r->path);
		return -1;
	}
	CURL *e = r->easy;
	const char *method = r->method;

	struct strbuf url = STRBUF_INIT;
	strbuf_printf(&url, "%s%s", mc->base_url, r->path);
	CURLcode rc = curl_easy_setopt(e, CURLOPT_URL, strbuf_str(&url));
	strbuf_free(&url);

	const struct curl_slist *headers = r->hdrs->plain;
	if (r->json_body || method_has_body(method)) {
		const char *b = r->json_body ? r->json_body : "";
		headers = r->hdrs->body;
		/* POSTFIELDSIZE first: COPYPOSTFIELDS copies that many bytes. */
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(b));
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, b);
	}
	if (rc == CURLE_OK && strcmp(method, "POST") != 0 && !(strcmp(method, "GET") == 0 && !r->json_body))
		rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);

	long timeout_ms = r->timeout_ms;
	if (timeout_ms <= 0)
		timeout_ms = (long)(mc->cfg->request_timeout_s > 0 ? mc->cfg->request_timeout_s
								   : MATRIX_DEFAULT_TIMEOUT_S) * 1000L;
	long verify = mc->cfg->tls_verify ? 1L : 0L;
	/* Each setopt is checked: a silently ignored option (say, TLS verification)
	 * is worse than a request that is not sent. */
	if (rc == CURLE_OK)
		rc = http_easy_defaults(e, timeout_ms);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MATRIX_MAX_BODY);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	if (rc != CURLE_OK) {
		log_msgf(ZLOG_ERROR, "matrix: cannot set up %s %s: %s; request not sent", method, r->path,
			 curl_easy_strerror(rc));
		return -1;
	}
	CURLMcode mrc = CURLM_OK;
	r->xfer = http_multi_start(mc->http, e, (size_t)MATRIX_MAX_BODY, on_transfer_done, r, &mrc);
	if (!r->xfer) {
		log_msgf(ZLOG_ERROR, "matrix: cannot start %s %s: %s; request not sent", method, r->path,
			 curl_multi_strerror(mrc));
		return -1;
	}
	return 0;
}

static void on_auth_ready(void *data, bool ok);
static void fail_parked_fired(struct loop *loop, void *data);

/* r waits for a token newer than generation. The first parked request asks cfg->auth
 * for one; when it has none to offer, the parked requests fail from the loop (a caller
 * never gets its callback from inside matrix_request). */
static void park(struct matrix_client *mc, struct mreq *r, unsigned long generation, bool soft_logout)
{
	r->parked = true;
	if (mc->auth_waiting || mc->fail_timer)
		return;
	const struct matrix_auth *auth = mc->cfg->auth;
	if (auth->renew(auth->ctx, generation, soft_logout, on_auth_ready, mc))
		mc->auth_waiting = true;
	else
		mc->fail_timer = loop_timer_add(mc->loop, 0, fail_parked_fired, mc);
}

/* Sends r with the token in force, or parks it until there is one. 0, or -1 logged. */
static int mreq_dispatch(struct matrix_client *mc, struct mreq *r, unsigned long refused_generation,
			 bool soft_logout)
{
	struct hdrset *hs = current_headers(mc);
	if (!hs || (r->auth_retries && hs->generation == refused_generation)) {
		park(mc, r, hs ? hs->generation : 0, soft_logout);
		return 0;
	}
	r->parked = false;
	r->hdrs = hdrset_ref(hs);
	return mreq_start(mc, r);
}

/* Runs r's callback with resp and frees r. */
static void mreq_complete(struct matrix_client *mc, struct mreq *r, const struct matrix_response *resp)
{
	unlink_req(mc, r);
	if (r->fn)
		r->fn(resp, r->data);
	mreq_free(r);
}

/* The answer a request gets when no token came for it: like the homeserver's refusal,
 * so callers treat it as they treat a refused static token. */
static void fail_without_token(struct matrix_client *mc, struct mreq *r)
{
	struct matrix_response resp = {.status = 401,
				       .body = "",
				       .errcode = "M_UNKNOWN_TOKEN",
				       .error = "no valid access token (the bridge could not log in)",
				       .retry_after_ms = -1};
	mreq_complete(mc, r, &resp);
}

/* A request that could not be sent again gets a transport failure, which callers retry. */
static void fail_restart(struct matrix_client *mc, struct mreq *r)
{
	struct matrix_response resp = {.status = 0, .body = "", .curl_error = "could not resend the request",
				       .retry_after_ms = -1};
	mreq_complete(mc, r, &resp);
}

/* Forgets r's answer and its token, so it can go out again. */
static void mreq_reset(struct mreq *r)
{
	if (r->easy)
		curl_easy_reset(r->easy);
	hdrset_unref(r->hdrs);
	r->hdrs = NULL;
}

/* Parked requests go out with the new token (ok) or fail (!ok). Callbacks run here may
 * start requests or free mc, as from process_done. */
static void resume_parked(struct matrix_client *mc, bool ok)
{
	mc->dispatching++;
	bool again = true;
	while (again && !mc->free_pending) {
		again = false;
		for (struct mreq *r = mc->reqs; r; r = r->next) {
			if (!r->parked)
				continue;
			r->parked = false;
			if (!ok)
				fail_without_token(mc, r);
			else if (mreq_dispatch(mc, r, 0, false) != 0)
				fail_restart(mc, r);
			else if (r->parked)
				continue; /* the token is gone again: it waits on */
			again = true; /* the list may have changed under us: start over */
			break;
		}
	}
	mc->dispatching--;
	if (mc->free_pending && mc->dispatching == 0)
		client_destroy(mc);
}

static void on_auth_ready(void *data, bool ok)
{
	struct matrix_client *mc = data;
	mc->auth_waiting = false;
	resume_parked(mc, ok);
}

static void fail_parked_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct matrix_client *mc = data;
	mc->fail_timer = 0;
	resume_parked(mc, false);
}

/* A 401 M_UNKNOWN_TOKEN with cfg->auth: r goes out again with a renewed token instead of
 * reaching its caller. Returns false when the refusal stands (no auth, or too many
 * refusals, or nothing to renew with): then resp is the caller's answer. */
static bool resend_with_new_token(struct matrix_client *mc, struct mreq *r, const struct matrix_response *resp)
{
	const struct matrix_auth *auth = mc->cfg->auth;
	if (!auth || resp->status != 401 || !resp->errcode || strcmp(resp->errcode, "M_UNKNOWN_TOKEN") != 0 ||
	    r->auth_retries >= MATRIX_MAX_AUTH_RETRIES || mc->free_pending)
		return false;
	const cJSON *soft = resp->json ? cJSON_GetObjectItemCaseSensitive(resp->json, "soft_logout") : NULL;
	bool soft_logout = cJSON_IsTrue(soft);
	unsigned long refused = r->hdrs ? r->hdrs->generation : 0;
	unsigned long now = 0;
	bool newer = auth->header(auth->ctx, &now) && now != refused;
	/* Asked before anything is reset: when nothing can be renewed, resp must stay valid. */
	if (!newer && !mc->auth_waiting) {
		if (!auth->renew(auth->ctx, refused, soft_logout, on_auth_ready, mc))
			return false;
		mc->auth_waiting = true;
	}
	log_msgf(ZLOG_DEBUG, "matrix: %s %s: token refused%s; resending with a renewed one", r->method, r->path,
		 soft_logout ? " (soft logout)" : "");
	r->auth_retries++;
	mreq_reset(r);
	if (newer) {
		if (mreq_dispatch(mc, r, refused, soft_logout) != 0)
			fail_restart(mc, r);
	} else {
		r->parked = true;
	}
	return true;
}

/* Delivers one finished transfer. The request is out of the list (and of
 * matrix_in_flight) before its callback runs, so the callback sees only the others. */
static void finish_request(struct matrix_client *mc, struct mreq *r, const struct http_result *hr)
{
	struct matrix_response resp;
	cJSON *json = build_response(r, hr, &resp);
	if (resp.status == 0)
		log_msgf(ZLOG_DEBUG, "matrix: %s %s failed after %.3fs: %s", r->method, r->path,
			 resp.elapsed_s, resp.curl_error);
	else
		log_msgf(ZLOG_DEBUG, "matrix: %s %s -> %ld in %.3fs%s%s", r->method, r->path, resp.status,
			 resp.elapsed_s, resp.errcode ? " " : "", resp.errcode ? resp.errcode : "");
	if (!resend_with_new_token(mc, r, &resp))
		mreq_complete(mc, r, &resp);
	cJSON_Delete(json);
}

/* http_multi's callback for one finished transfer: runs from the loop, outside any curl
 * call, so the response callback may start requests or free mc. */
static void on_transfer_done(const struct http_result *hr, void *data)
{
	struct mreq *r = data;
	struct matrix_client *mc = r->mc;
	r->xfer = NULL;
	mc->dispatching++;
	finish_request(mc, r, hr);
	mc->dispatching--;
	if (mc->free_pending && mc->dispatching == 0)
		client_destroy(mc);
}

int matrix_request(struct matrix_client *mc, const char *method, const char *path, const char *json_body,
		   matrix_response_fn fn, void *data)
{
	return matrix_request_timeout(mc, method, path, json_body, 0, fn, data);
}

int matrix_request_timeout(struct matrix_client *mc, const char *method, const char *path, const char *json_body,
			   long timeout_ms, matrix_response_fn fn, void *data)
{
	if (!mc || mc->free_pending || !method || !*method || !path || path[0] != '/') {
		log_msgf(ZLOG_ERROR, "matrix: refusing request %s %s (method and a path starting with '/' needed)",
			 method ? method : "(null)", path ? path : "(null)");
		return -1;
	}
	struct mreq *r = xcalloc(1, sizeof *r);
	r->mc = mc;
	r->fn = fn;
	r->data = data;
	r->method = xstrdup(method);
	r->path = xstrdup(path);
	r->json_body = json_body ? xstrdup(json_body) : NULL;
	r->timeout_ms = timeout_ms;

	/* Added to the list first: add_handle may already call our timer callback. */
	r->next = mc->reqs;
	if (mc->reqs)
		mc->reqs->prev = r;
	mc->reqs = r;
	mc->n_in_flight++;
	if (mreq_dispatch(mc, r, 0, false) != 0) {
		unlink_req(mc, r);
		mreq_free(r);
		return -1;
	}
	return 0;
}

/* ---- client ---- */

struct matrix_client *matrix_client_new(struct loop *loop, const struct config_matrix *cfg)
{
	if (!loop || !cfg || !cfg->homeserver) {
		log_msgf(ZLOG_ERROR, "matrix: client needs a loop and a homeserver URL");
		return NULL;
	}
	/* Reference-counted inside libcurl: each client holds one reference. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_msgf(ZLOG_ERROR, "matrix: curl_global_init failed");
		return NULL;
	}
	struct matrix_client *mc = xcalloc(1, sizeof *mc);
	mc->loop = loop;
	mc->cfg = cfg;
	mc->http = http_multi_new(loop);
	if (!mc->http) {
		log_msgf(ZLOG_ERROR, "matrix: curl_multi_init failed");
		free(mc);
		curl_global_cleanup();
		return NULL;
	}
	size_t n = strlen(cfg->homeserver);
	while (n > 0 && cfg->homeserver[n - 1] == '/')
		n--;
	mc->base_url = xstrndup(cfg->homeserver, n);
	if (!cfg->auth) {
		/* A static token (or none, for the login itself): one header set for good. */
		char *line = NULL;
		if (cfg->access_token && *cfg->access_token) {
			struct strbuf sb = STRBUF_INIT;
			strbuf_printf(&sb, "Authorization: Bearer %s", cfg->access_token);
			line = strbuf_detach(&sb);
		}
		mc->hdrs = hdrset_new(line, 0);
		if (line) {
			explicit_bzero(line, strlen(line));
			free(line);
		}
	}
	http_multi_max_host_connections(mc->http, MATRIX_MAX_CONNECTIONS);
	return mc;
}

/* Drops every request in flight or parked without its callback, and our timer and the
 * wait for a token. */
static void abort_all(struct matrix_client *mc)
{
	mc->closing = true;
	struct mreq *next;
	for (struct mreq *r = mc->reqs; r; r = next) {
		next = r->next;
		http_multi_cancel(mc->http, r->xfer);
		mreq_free(r);
	}
	mc->reqs = NULL;
	mc->n_in_flight = 0;
	if (mc->fail_timer) {
		loop_timer_cancel(mc->loop, mc->fail_timer);
		mc->fail_timer = 0;
	}
	if (mc->auth_waiting) {
		mc->cfg->auth->cancel(mc->cfg->auth->ctx, mc);
		mc->auth_waiting = false;
	}
}

/* Releases curl and mc; run by free, now or, when free was called from a response
 * callback, once that callback returned. */
static void client_destroy(struct matrix_client *mc)
{
	abort_all(mc);
	for (size_t i = 0; i < mc->n_idle; i++)
		curl_easy_cleanup(mc->idle[i]);
	mc->n_idle = 0;
	http_multi_free(mc->http); /* closes the kept-alive connections */
	hdrset_unref(mc->hdrs);
	curl_global_cleanup();
	free(mc->base_url);
	free(mc);
}

void matrix_client_free(struct matrix_client *mc)
{
	if (!mc)
		return;
	if (mc->dispatching) {
		/* Called from a response callback: abort the others now (no more
		 * callbacks), finish the teardown once the callback returns. */
		if (mc->free_pending)
			return;
		mc->free_pending = true;
		abort_all(mc);
		return;
	}
	client_destroy(mc);
}

size_t matrix_in_flight(const struct matrix_client *mc) { return mc ? mc->n_in_flight : 0; }

/* ---- the calls the bridge makes ---- */

int matrix_whoami(struct matrix_client *mc, matrix_response_fn fn, void *data)
{
	return matrix_request(mc, "GET", "/_matrix/client/v3/account/whoami", NULL, fn, data);
}

int matrix_join(struct matrix_client *mc, const char *room_id_or_alias, matrix_response_fn fn, void *data)
{
	if (!room_id_or_alias || !*room_id_or_alias)
		return -1;
	char *room = matrix_escape_segment(room_id_or_alias);
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "/_matrix/client/v3/join/%s", room);
	int rc = matrix_request(mc, "POST", strbuf_str(&path), "{}", fn, data);
	strbuf_free(&path);
	free(room);
	return rc;
}

int matrix_send(struct matrix_client *mc, const char *room_id, const char *event_type, const char *txn_id,
		const char *content_json, matrix_response_fn fn, void *data)
{
	if (!room_id || !*room_id || !event_type || !*event_type || !txn_id || !*txn_id)
		return -1;
	char *room = matrix_escape_segment(room_id);
	char *type = matrix_escape_segment(event_type);
	char *txn = matrix_escape_segment(txn_id);
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "/_matrix/client/v3/rooms/%s/send/%s/%s", room, type, txn);
	int rc = matrix_request(mc, "PUT", strbuf_str(&path), content_json ? content_json : "{}", fn, data);
	strbuf_free(&path);
	free(room);
	free(type);
	free(txn);
	return rc;
}

/* ---- helpers ---- */

char *matrix_escape_segment(const char *segment)
{
	if (!segment)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	textutil_percent_encode(&sb, segment);
	return strbuf_detach(&sb);
}

/* A 403 that is about the server, not the request: Synapse answers it while the server is
 * over its monthly active users or disabled by its admin (api/auth_blocking.py), to any
 * user not yet counted; the spec says the client should back off and try again. */
static bool is_resource_limit(const struct matrix_response *resp)
{
	return resp->status == 403 && resp->errcode && strcmp(resp->errcode, "M_RESOURCE_LIMIT_EXCEEDED") == 0;
}

bool matrix_response_is_transient(const struct matrix_response *resp)
{
	if (!resp)
		return false;
	long s = resp->status;
	return s == 0 || s >= 500 || s == 429 || s == 408 || is_resource_limit(resp);
}

static const char *json_string_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

void matrix_response_describe(const struct matrix_response *resp, struct strbuf *out)
{
	if (resp->status == 0) {
		strbuf_puts(out, resp->curl_error ? resp->curl_error : "transport error");
		return;
	}
	strbuf_printf(out, "HTTP %ld %s: %s", resp->status, resp->errcode ? resp->errcode : "(no errcode)",
		      resp->error ? resp->error : "(no error text)");
	/* Only the homeserver's admin can lift a resource limit: say whom to ask. */
	if (is_resource_limit(resp)) {
		const char *type = json_string_at(resp->json, "limit_type");
		const char *contact = json_string_at(resp->json, "admin_contact");
		if (type)
			strbuf_printf(out, " (limit_type %s)", type);
		if (contact)
			strbuf_printf(out, " (admin_contact %s)", contact);
	}
}
