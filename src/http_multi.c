/* http_multi: one CURLM hooked to our loop through curl's socket and timer callbacks, and the
 * bookkeeping of the transfers it runs; the one copy of the glue matrix.c grew first. */
#include "http_multi.h"

#include <stdint.h>
#include <stdlib.h>

#include "build_config.h"

/* One transfer curl holds: the caller's easy handle and what curl writes into. */
struct http_transfer {
	CURL *easy;              /* the caller's; never freed here */
	struct strbuf body;
	size_t max_body;
	bool too_big;
	http_done_fn fn;
	void *data;
	char errbuf[CURL_ERROR_SIZE];
	struct http_transfer *prev, *next;
};

struct http_multi {
	struct loop *loop;
	CURLM *multi;
	uint64_t timer_id;       /* the loop timer standing in for curl's timeout, 0 if none */
	int *fds;                /* sockets we watch for curl, so free can unwatch them */
	size_t nfds, cap_fds;
	struct http_transfer *transfers; /* running (doubly linked) */
	size_t n_running;
	int dispatching;         /* >0 while done callbacks run */
	bool closing;            /* tearing down: curl callbacks only clean up */
	bool free_pending;       /* http_multi_free was called from a done callback */
};

/* ---- curl <-> loop glue ---- */

static void process_done(struct http_multi *hm);

static void track_fd(struct http_multi *hm, int fd)
{
	for (size_t i = 0; i < hm->nfds; i++)
		if (hm->fds[i] == fd)
			return;
	if (hm->nfds == hm->cap_fds) {
		hm->cap_fds = hm->cap_fds ? hm->cap_fds * 2 : 8;
		hm->fds = xrealloc(hm->fds, hm->cap_fds * sizeof *hm->fds);
	}
	hm->fds[hm->nfds++] = fd;
}

static void untrack_fd(struct http_multi *hm, int fd)
{
	for (size_t i = 0; i < hm->nfds; i++) {
		if (hm->fds[i] == fd) {
			hm->fds[i] = hm->fds[--hm->nfds];
			return;
		}
	}
}

static void on_socket_ready(struct loop *loop, int fd, int ready, void *data)
{
	(void)loop;
	struct http_multi *hm = data;
	int ev = 0;
	if (ready & LOOP_READ)
		ev |= CURL_CSELECT_IN;
	if (ready & LOOP_WRITE)
		ev |= CURL_CSELECT_OUT;
	int running;
	curl_multi_socket_action(hm->multi, fd, ev, &running);
	process_done(hm); /* may free hm: nothing after this */
}

/* CURLMOPT_SOCKETFUNCTION: curl tells us which sockets to wait for. loop_watch
 * changes the mask of an fd already watched, so a change of mind needs no state. */
static int curl_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	(void)easy;
	(void)socketp;
	struct http_multi *hm = userp;
	if (what == CURL_POLL_REMOVE) {
		loop_unwatch(hm->loop, s);
		untrack_fd(hm, s);
		return 0;
	}
	if (hm->closing)
		return 0;
	int events = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= LOOP_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= LOOP_WRITE;
	if (loop_watch(hm->loop, s, events, on_socket_ready, hm) < 0)
		return -1;
	track_fd(hm, s);
	return 0;
}

static void on_curl_timer(struct loop *loop, void *data)
{
	(void)loop;
	struct http_multi *hm = data;
	hm->timer_id = 0; /* fired; curl may set a new one from inside socket_action */
	int running;
	curl_multi_socket_action(hm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	process_done(hm); /* may free hm: nothing after this */
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. A timeout of 0
 * becomes a loop timer of 0 ms, which the loop runs on its next turn: never a call
 * back into curl from inside curl. -1 deletes the timer. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct http_multi *hm = userp;
	if (hm->timer_id) {
		loop_timer_cancel(hm->loop, hm->timer_id);
		hm->timer_id = 0;
	}
	if (timeout_ms >= 0 && !hm->closing)
		hm->timer_id = loop_timer_add(hm->loop, (uint64_t)timeout_ms, on_curl_timer, hm);
	return 0;
}

/* ---- transfers ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_transfer *t = userdata;
	size_t n = size * nmemb;
	if (t->body.len + n > t->max_body) {
		t->too_big = true;
		return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
	}
	strbuf_append(&t->body, ptr, n);
	return n;
}

static void unlink_transfer(struct http_multi *hm, struct http_transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		hm->transfers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	hm->n_running--;
}

static void transfer_free(struct http_transfer *t)
{
	strbuf_free(&t->body);
	free(t);
}

struct http_transfer *http_multi_start(struct http_multi *hm, CURL *easy, size_t max_body, http_done_fn fn,
				       void *data, CURLMcode *why)
{
	CURLMcode ignored;
	if (!why)
		why = &ignored;
	if (!hm || !easy || hm->closing) {
		*why = !easy ? CURLM_BAD_EASY_HANDLE : CURLM_BAD_HANDLE;
		return NULL;
	}
	struct http_transfer *t = xcalloc(1, sizeof *t);
	t->easy = easy;
	t->max_body = max_body;
	t->fn = fn;
	t->data = data;
	CURLcode rc = curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t->errbuf);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(easy, CURLOPT_PRIVATE, t);
	if (rc != CURLE_OK) {
		transfer_free(t);
		*why = CURLM_BAD_EASY_HANDLE;
		return NULL;
	}
	/* Linked first: add_handle may already call our timer callback. */
	t->next = hm->transfers;
	if (hm->transfers)
		hm->transfers->prev = t;
	hm->transfers = t;
	hm->n_running++;
	CURLMcode mrc = curl_multi_add_handle(hm->multi, easy);
	if (mrc != CURLM_OK) {
		unlink_transfer(hm, t);
		transfer_free(t);
		*why = mrc;
		return NULL;
	}
	return t;
}

void http_multi_cancel(struct http_multi *hm, struct http_transfer *t)
{
	if (!hm || !t)
		return;
	/* Also drops a CURLMSG_DONE of t that waits in curl's queue. */
	curl_multi_remove_handle(hm->multi, t->easy);
	unlink_transfer(hm, t);
	transfer_free(t);
}

void http_result_take_body(const struct http_result *r, struct strbuf *into)
{
	strbuf_free(into);
	*into = r->transfer->body;
	r->transfer->body = (struct strbuf)STRBUF_INIT;
}

/* Hands one finished transfer to its callback. t is out of curl and of the list first, so
 * the callback sees only the others and may reuse or free its easy handle. */
static void finish_transfer(struct http_multi *hm, struct http_transfer *t, CURLcode rc)
{
	curl_multi_remove_handle(hm->multi, t->easy);
	unlink_transfer(hm, t);
	struct http_result r = {
		.code = rc,
		.body = strbuf_str(&t->body),
		.len = t->body.len,
		.too_big = t->too_big,
		.easy = t->easy,
		.transfer = t,
	};
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &r.status);
	if (rc != CURLE_OK)
		r.error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
	if (t->fn)
		t->fn(&r, t->data);
	transfer_free(t);
}

static void destroy(struct http_multi *hm);

/* Reads curl's finished transfers and runs their callbacks. Runs only from loop
 * callbacks, outside any curl call, so callbacks may start transfers or free hm. */
static void process_done(struct http_multi *hm)
{
	hm->dispatching++;
	CURLMsg *msg;
	int left;
	while (!hm->free_pending && (msg = curl_multi_info_read(hm->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURLcode rc = msg->data.result;
		char *priv = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv)
			finish_transfer(hm, (struct http_transfer *)priv, rc);
	}
	hm->dispatching--;
	if (hm->free_pending && hm->dispatching == 0)
		destroy(hm);
}

size_t http_multi_running(const struct http_multi *hm) { return hm ? hm->n_running : 0; }

/* ---- the driver ---- */

struct http_multi *http_multi_new(struct loop *loop)
{
	/* Reference-counted inside libcurl: held until curl_multi_cleanup ran. */
	if (!loop || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	struct http_multi *hm = xcalloc(1, sizeof *hm);
	hm->loop = loop;
	hm->multi = curl_multi_init();
	if (!hm->multi) {
		free(hm);
		curl_global_cleanup();
		return NULL;
	}
	curl_multi_setopt(hm->multi, CURLMOPT_SOCKETFUNCTION, curl_socket_cb);
	curl_multi_setopt(hm->multi, CURLMOPT_SOCKETDATA, hm);
	curl_multi_setopt(hm->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
	curl_multi_setopt(hm->multi, CURLMOPT_TIMERDATA, hm);
	return hm;
}

void http_multi_max_host_connections(struct http_multi *hm, long n)
{
	if (hm)
		curl_multi_setopt(hm->multi, CURLMOPT_MAX_HOST_CONNECTIONS, n);
}

/* Drops every transfer without its callback, and our fds and timer. */
static void abort_all(struct http_multi *hm)
{
	hm->closing = true;
	while (hm->transfers)
		http_multi_cancel(hm, hm->transfers);
	/* Unwatched while the fds are surely still curl's (cleanup closes them). */
	for (size_t i = 0; i < hm->nfds; i++)
		loop_unwatch(hm->loop, hm->fds[i]);
	hm->nfds = 0;
	if (hm->timer_id) {
		loop_timer_cancel(hm->loop, hm->timer_id);
		hm->timer_id = 0;
	}
}

static void destroy(struct http_multi *hm)
{
	abort_all(hm);
	curl_multi_cleanup(hm->multi); /* closes the kept-alive connections */
	curl_global_cleanup();
	free(hm->fds);
	free(hm);
}

void http_multi_free(struct http_multi *hm)
{
	if (!hm)
		return;
	if (hm->dispatching) {
		/* From a done callback: no more callbacks from now on; the teardown
		 * finishes once that callback returned. */
		if (!hm->free_pending) {
			hm->free_pending = true;
			abort_all(hm);
		}
		return;
	}
	destroy(hm);
}

/* ---- easy handles ---- */

CURLcode http_easy_defaults(CURL *easy, long timeout_ms)
{
	long connect_ms = timeout_ms < HTTP_CONNECT_TIMEOUT_MS ? timeout_ms : HTTP_CONNECT_TIMEOUT_MS;
	/* Each setopt is checked: a silently ignored option is worse than a request that is
	 * not sent. */
	struct {
		CURLoption opt;
		long value;
	} longs[] = {
		{CURLOPT_NOSIGNAL, 1L},
		{CURLOPT_FOLLOWLOCATION, 0L},
		{CURLOPT_TIMEOUT_MS, timeout_ms},
		{CURLOPT_CONNECTTIMEOUT_MS, connect_ms},
		{CURLOPT_VERBOSE, 0L},
	};
	CURLcode rc = CURLE_OK;
	for (size_t i = 0; rc == CURLE_OK && i < sizeof longs / sizeof longs[0]; i++)
		rc = curl_easy_setopt(easy, longs[i].opt, longs[i].value);
#if LIBCURL_VERSION_NUM >= 0x075500
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(easy, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(easy, CURLOPT_USERAGENT, "zuul-matrix-bridge/" ZMB_VERSION);
	return rc;
}
