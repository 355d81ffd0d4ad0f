/* http_multi: libcurl's multi *socket* interface driven by our loop (no threads, no blocking
 * calls): curl's sockets and its one timer become loop watches and timers, finished transfers
 * are read with curl_multi_info_read and handed back with their body, collected under a cap.
 * Callers set their easy handles up themselves (URL, headers, redirects, TLS, auth) and own
 * them; this module only runs them. Knows nothing of Matrix, Zuul or the details. */
#ifndef ZMB_HTTP_MULTI_H
#define ZMB_HTTP_MULTI_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "loop.h"
#include "strbuf.h"

/* A dead host is noticed quickly even when a request's whole timeout is long. */
#define HTTP_CONNECT_TIMEOUT_MS 10000L

struct http_multi;
struct http_transfer;

/* A finished transfer, valid during the callback only. */
struct http_result {
	CURLcode code;           /* curl's verdict on the transfer */
	long status;             /* CURLINFO_RESPONSE_CODE as curl has it: 0 when no answer came */
	const char *body;        /* what was received, NUL-terminated, never NULL */
	size_t len;
	bool too_big;            /* the body went over the transfer's cap (code is then
				  * CURLE_WRITE_ERROR); CURLE_FILESIZE_EXCEEDED is curl's own */
	const char *error;       /* code != CURLE_OK: curl's error buffer, else curl_easy_strerror;
				  * NULL when code == CURLE_OK */
	CURL *easy;              /* the caller's handle, already out of the multi: CURLINFO_*,
				  * curl_easy_header (Retry-After and friends) */
	struct http_transfer *transfer; /* for http_result_take_body */
};

/* Called once per transfer that finished, from the loop (never from inside http_multi_start
 * or curl). It may start transfers, cancel others, reuse or free its easy handle (the
 * driver no longer touches it), and free the driver. */
typedef void (*http_done_fn)(const struct http_result *r, void *data);

/* A driver on loop, with its own CURLM (one connection cache, so keep-alive) and its own
 * curl_global_init reference. NULL when curl cannot make a multi handle (not logged:
 * callers say what they do without it). */
struct http_multi *http_multi_new(struct loop *loop);
/* Drops the transfers running without their callbacks (their easy handles go back to their
 * owners, out of the multi), unwatches curl's sockets and closes its connections. Safe from
 * inside a callback: the rest of the teardown then waits until that callback returned. */
void http_multi_free(struct http_multi *hm);
/* CURLMOPT_MAX_HOST_CONNECTIONS: beyond n connections to one host, transfers queue inside
 * curl (their timeout runs while they wait). */
void http_multi_max_host_connections(struct http_multi *hm, long n);

/* Runs easy, set up by the caller, to completion: sets its WRITEFUNCTION, WRITEDATA,
 * ERRORBUFFER and PRIVATE (the caller must not), collects at most max_body bytes of body
 * (one more fails the transfer with too_big) and calls fn once. The caller keeps easy and
 * must not free it while the transfer runs. Returns the transfer, valid until its callback
 * starts or it is cancelled; NULL when curl refused to start it (*why, when given, says
 * why), and fn is never called. */
struct http_transfer *http_multi_start(struct http_multi *hm, CURL *easy, size_t max_body, http_done_fn fn,
				       void *data, CURLMcode *why);
/* Stops t (still running) without its callback; its easy handle is the caller's again. */
void http_multi_cancel(struct http_multi *hm, struct http_transfer *t);
/* Transfers started and not yet finished or cancelled. */
size_t http_multi_running(const struct http_multi *hm);

/* From inside the callback: moves the body into *into (what into held is freed), so it can
 * outlive the callback; r->body stays readable until into changes. */
void http_result_take_body(const struct http_result *r, struct strbuf *into);

/* The options every request of the bridge has: no signals, redirects not followed by curl
 * (each caller decides about them), http and https only, the whole timeout_ms and a connect
 * timeout of at most HTTP_CONNECT_TIMEOUT_MS, the bridge's User-Agent. CURLE_OK, or the
 * first option curl refused. */
CURLcode http_easy_defaults(CURL *easy, long timeout_ms);

#endif
