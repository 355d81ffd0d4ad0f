/* details_fetch: build details over libcurl's multi *socket* interface, driven by our loop
 * (http_multi.c). Every URL is checked against details.hosts by details_url's strict parser
 * and, the same string, by curl's own, before curl may connect; redirects are never followed
 * by curl: a 3xx to a listed host is a new request, to any other host the end. */
#include "details_fetch.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "details_url.h"
#include "http_multi.h"
#include "log.h"
#include "strbuf.h"

#define GUNZIP_LAYERS 2

struct freq {
	struct details_fetcher *f;
	CURL *easy;
	struct http_transfer *xfer; /* while curl runs it */
	CURLU *curlu;            /* the URL as checked, handed to curl as it is */
	char *first_url;
	char *url;               /* the URL of this hop */
	int redirects;
	struct strbuf body;      /* the last hop's, once it is done */
	details_fetch_fn fn;
	void *data;
	char why[320];
	struct freq *next;       /* in the waiting line or the in-flight list */
};

struct details_fetcher {
	struct loop *loop;
	const struct config_details *cfg;
	struct http_multi *http;
	struct freq *flying;     /* requests curl holds */
	size_t n_flying;
	struct freq *wait_head, *wait_tail;
	size_t n_waiting;
	uint64_t start_timer;    /* starts waiting requests and delivers refusals from the loop */
	struct freq *done;       /* finished, callback not yet run */
	int dispatching;
};

/* ---- gunzip ---- */

static bool is_gzip(const char *p, size_t n)
{
	return n >= 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b;
}

/* One layer: every gzip member of data into out, at most max_out bytes. */
static int gunzip_layer(const unsigned char *data, size_t len, size_t max_out, struct strbuf *out, const char **why)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		*why = "cannot start gunzip";
		return -1;
	}
	zs.next_in = (unsigned char *)data;
	zs.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
	unsigned char chunk[65536];
	int rc = Z_OK;
	for (;;) {
		zs.next_out = chunk;
		zs.avail_out = sizeof chunk;
		rc = inflate(&zs, Z_NO_FLUSH);
		size_t got = sizeof chunk - zs.avail_out;
		if (out->len + got > max_out) {
			*why = "over the size cap after gunzip";
			rc = Z_MEM_ERROR;
			break;
		}
		strbuf_append(out, (const char *)chunk, got);
		if (rc == Z_STREAM_END) {
			/* Another member may follow (gzip files may be concatenated). */
			if (zs.avail_in >= 2 && is_gzip((const char *)zs.next_in, zs.avail_in) &&
			    inflateReset(&zs) == Z_OK)
				continue;
			break;
		}
		if (rc != Z_OK || (got == 0 && zs.avail_in == 0)) {
			*why = "broken gzip data";
			rc = Z_DATA_ERROR;
			break;
		}
	}
	inflateEnd(&zs);
	return rc == Z_STREAM_END ? 0 : -1;
}

int details_gunzip(const char *data, size_t len, size_t max_out, char **out, size_t *out_len, const char **why)
{
	struct strbuf cur = STRBUF_INIT;
	strbuf_append(&cur, data ? data : "", data ? len : 0);
	for (int layer = 0; layer < GUNZIP_LAYERS && is_gzip(cur.data, cur.len); layer++) {
		struct strbuf next = STRBUF_INIT;
		if (gunzip_layer((const unsigned char *)cur.data, cur.len, max_out, &next, why) < 0) {
			strbuf_free(&next);
			strbuf_free(&cur);
			return -1;
		}
		strbuf_free(&cur);
		cur = next;
	}
	if (cur.len > max_out) {
		*why = "over the size cap";
		strbuf_free(&cur);
		return -1;
	}
	*out_len = cur.len;
	*out = strbuf_detach(&cur);
	return 0;
}

/* ---- one request ---- */

static void freq_free(struct freq *r)
{
	if (!r)
		return;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->curlu)
		curl_url_cleanup(r->curlu);
	strbuf_free(&r->body);
	free(r->first_url);
	free(r->url);
	free(r);
}

/* Checks url against the allow-list with both parsers, and keeps curl's parse of it for the
 * request. 0, or -1 with r->why. */
static int check_url(struct details_fetcher *f, struct freq *r, const char *url)
{
	struct details_url *u = xmalloc(sizeof *u);
	const char *why = NULL;
	int rc = -1;
	if (details_url_parse(url, u, &why) != 0) {
		snprintf(r->why, sizeof r->why, "not fetched: %s", why);
		goto out;
	}
	if (!details_host_allowed(u, f->cfg->hosts, f->cfg->n_hosts)) {
		snprintf(r->why, sizeof r->why, "not fetched: %s:%d is not in details.hosts", u->host, u->port);
		goto out;
	}
	/* curl must read the same host and port, or the check above checked something else. */
	CURLU *cu = curl_url();
	char *host = NULL, *port = NULL;
	if (!cu || curl_url_set(cu, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(cu, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(cu, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK || strcasecmp(host, u->host) != 0 ||
	    atoi(port) != u->port) {
		snprintf(r->why, sizeof r->why, "not fetched: curl reads the URL's host or port differently");
		curl_free(host);
		curl_free(port);
		if (cu)
			curl_url_cleanup(cu);
		goto out;
	}
	curl_free(host);
	curl_free(port);
	if (r->curlu)
		curl_url_cleanup(r->curlu);
	r->curlu = cu;
	free(r->url);
	r->url = xstrdup(url);
	rc = 0;
out:
	free(u);
	return rc;
}

static void on_transfer_done(const struct http_result *hr, void *data);

/* Sets r's handle up for r->curlu and hands it to curl. 0, or -1 with r->why. */
static int freq_start(struct details_fetcher *f, struct freq *r)
{
	if (!r->easy)
		r->easy = curl_easy_init();
	else
		curl_easy_reset(r->easy);
	if (!r->easy) {
		snprintf(r->why, sizeof r->why, "curl_easy_init failed");
		return -1;
	}
	strbuf_reset(&r->body);
	CURL *e = r->easy;
	/* Redirects are ours to check (http_easy_defaults leaves them to us). */
	CURLcode rc = http_easy_defaults(e, (long)f->cfg->timeout_s * 1000L);
	if (rc == CURLE_OK) /* gunzip is ours, under max_output */
		rc = curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->cfg->max_download);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_CURLU, r->curlu);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
	static struct curl_slist *headers;
	if (!headers) {
		/* Process-wide and never changed: curl only reads it. */
		headers = curl_slist_append(NULL, "Accept: application/json, application/gzip;q=0.9, */*;q=0.1");
		headers = headers ? curl_slist_append(headers, "Accept-Encoding: gzip") : NULL;
	}
	if (rc == CURLE_OK)
		rc = headers ? curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) : CURLE_OUT_OF_MEMORY;
	if (rc != CURLE_OK) {
		snprintf(r->why, sizeof r->why, "cannot set the request up: %s", curl_easy_strerror(rc));
		return -1;
	}
	CURLMcode mrc = CURLM_OK;
	r->xfer = http_multi_start(f->http, e, (size_t)f->cfg->max_download, on_transfer_done, r, &mrc);
	if (!r->xfer) {
		snprintf(r->why, sizeof r->why, "cannot start the request: %s", curl_multi_strerror(mrc));
		return -1;
	}
	r->next = f->flying;
	f->flying = r;
	f->n_flying++;
	return 0;
}

static void unlink_flying(struct details_fetcher *f, struct freq *r)
{
	for (struct freq **p = &f->flying; *p; p = &(*p)->next) {
		if (*p == r) {
			*p = r->next;
			r->next = NULL;
			f->n_flying--;
			return;
		}
	}
}

/* Queues r's callback for the loop (refusals and failures to start never call back from
 * inside details_fetch). */
static void start_timer_fired(struct loop *loop, void *data);

static void arm_start_timer(struct details_fetcher *f)
{
	if (!f->start_timer)
		f->start_timer = loop_timer_add(f->loop, 0, start_timer_fired, f);
}

static void finish(struct details_fetcher *f, struct freq *r)
{
	r->next = NULL;
	struct freq **p = &f->done;
	while (*p)
		p = &(*p)->next;
	*p = r;
	arm_start_timer(f);
}

/* The result of a finished transfer: done (r to finish), or a redirect started again. */
static void transfer_done(struct details_fetcher *f, struct freq *r, const struct http_result *hr)
{
	CURLcode rc = hr->code;
	long status = hr->status;
	/* The bytes of the hop that ends the fetch are its wire_bytes (and body, when ok). */
	http_result_take_body(hr, &r->body);
	if (rc != CURLE_OK) {
		if (hr->too_big || rc == CURLE_FILESIZE_EXCEEDED)
			snprintf(r->why, sizeof r->why, "more than %d bytes to download (details.max_download)",
				 f->cfg->max_download);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(r->why, sizeof r->why, "timed out after %d s (details.timeout)", f->cfg->timeout_s);
		else
			snprintf(r->why, sizeof r->why, "%s", hr->error);
		finish(f, r);
		return;
	}
	if (status >= 300 && status < 400) {
		char *location = NULL;
		curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &location);
		if (!location) {
			snprintf(r->why, sizeof r->why, "HTTP %ld without a Location", status);
			finish(f, r);
			return;
		}
		if (r->redirects >= DETAILS_FETCH_MAX_REDIRECTS) {
			snprintf(r->why, sizeof r->why, "more than %d redirects", DETAILS_FETCH_MAX_REDIRECTS);
			finish(f, r);
			return;
		}
		char *target = xstrdup(location); /* curl's string goes with the next request */
		if (check_url(f, r, target) != 0) {
			/* "not fetched: HOST:PORT is not in details.hosts" becomes the redirect's reason. */
			char reason[sizeof r->why];
			memcpy(reason, r->why, sizeof reason);
			snprintf(r->why, sizeof r->why, "HTTP %ld redirect %.250s", status, reason);
			free(target);
			finish(f, r);
			return;
		}
		free(target);
		r->redirects++;
		log_kv(ZLOG_DEBUG, "details: following a redirect to a listed host", "from", r->first_url, "to", r->url,
		       NULL);
		if (freq_start(f, r) != 0)
			finish(f, r);
		return;
	}
	if (status != 200)
		snprintf(r->why, sizeof r->why, "HTTP %ld", status);
	finish(f, r);
}

/* Starts waiting requests while there is room. */
static void pump(struct details_fetcher *f)
{
	while (f->wait_head && f->n_flying < DETAILS_FETCH_PARALLEL) {
		struct freq *r = f->wait_head;
		f->wait_head = r->next;
		if (!f->wait_head)
			f->wait_tail = NULL;
		f->n_waiting--;
		r->next = NULL;
		if (freq_start(f, r) != 0)
			finish(f, r);
	}
}

/* Runs the callbacks of finished requests, then lets waiting ones go. */
static void deliver(struct details_fetcher *f)
{
	f->dispatching++;
	while (f->done) {
		struct freq *r = f->done;
		f->done = r->next;
		struct details_fetch_result res = {.status = 0, .url = r->first_url};
		char *body = NULL;
		size_t len = 0;
		if (r->easy) {
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
			curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &res.elapsed_s);
		}
		res.wire_bytes = r->body.len;
		if (!r->why[0]) {
			const char *why = NULL;
			if (details_gunzip(r->body.data, r->body.len, (size_t)f->cfg->max_output, &body, &len, &why) == 0) {
				res.ok = true;
				res.body = body;
				res.len = len;
			} else {
				snprintf(r->why, sizeof r->why, "%s (details.max_output is %d bytes)", why,
					 f->cfg->max_output);
			}
		}
		if (!res.ok)
			res.error = r->why[0] ? r->why : "failed";
		r->fn(&res, r->data);
		free(body);
		freq_free(r);
	}
	f->dispatching--;
	pump(f);
}

static void start_timer_fired(struct loop *loop, void *data)
{
	(void)loop;
	struct details_fetcher *f = data;
	f->start_timer = 0;
	pump(f);
	deliver(f);
}

/* http_multi's callback: runs from the loop, outside any curl call. */
static void on_transfer_done(const struct http_result *hr, void *data)
{
	struct freq *r = data;
	struct details_fetcher *f = r->f;
	r->xfer = NULL;
	unlink_flying(f, r);
	transfer_done(f, r, hr);
	if (!f->dispatching)
		deliver(f);
}

/* ---- the fetcher ---- */

struct details_fetcher *details_fetcher_new(struct loop *loop, const struct config_details *cfg)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_kv(ZLOG_ERROR, "details: curl_global_init failed; build details are not fetched", NULL);
		return NULL;
	}
	struct details_fetcher *f = xcalloc(1, sizeof *f);
	f->loop = loop;
	f->cfg = cfg;
	f->http = http_multi_new(loop);
	if (!f->http) {
		log_kv(ZLOG_ERROR, "details: curl_multi_init failed; build details are not fetched", NULL);
		free(f);
		curl_global_cleanup();
		return NULL;
	}
	return f;
}

void details_fetcher_set_config(struct details_fetcher *f, const struct config_details *cfg)
{
	if (f)
		f->cfg = cfg;
}

static void free_list(struct freq *r)
{
	while (r) {
		struct freq *next = r->next;
		freq_free(r);
		r = next;
	}
}

void details_fetcher_free(struct details_fetcher *f)
{
	if (!f)
		return;
	for (struct freq *r = f->flying; r; r = r->next)
		http_multi_cancel(f->http, r->xfer);
	free_list(f->flying);
	free_list(f->wait_head);
	free_list(f->done);
	loop_timer_cancel(f->loop, f->start_timer);
	http_multi_free(f->http);
	curl_global_cleanup();
	free(f);
}

int details_fetch(struct details_fetcher *f, const char *url, details_fetch_fn fn, void *data, const char **why)
{
	static const char *ignored;
	if (!why)
		why = &ignored;
	*why = NULL;
	if (!f || !fn) {
		*why = "not fetched: no fetcher";
		return -1;
	}
	if (f->n_waiting >= DETAILS_FETCH_QUEUE_MAX) {
		*why = "not fetched: too many fetches waiting";
		return -1;
	}
	struct freq *r = xcalloc(1, sizeof *r);
	r->f = f;
	r->fn = fn;
	r->data = data;
	r->first_url = xstrdup(url);
	if (check_url(f, r, url) != 0) {
		/* Refused before anything is requested: the reason outlives r for the caller. */
		static char reason[320];
		snprintf(reason, sizeof reason, "%s", r->why);
		*why = reason;
		freq_free(r);
		return -1;
	}
	if (f->wait_tail)
		f->wait_tail->next = r;
	else
		f->wait_head = r;
	f->wait_tail = r;
	f->n_waiting++;
	arm_start_timer(f);
	return 0;
}

size_t details_fetch_in_flight(const struct details_fetcher *f) { return f ? f->n_flying : 0; }

size_t details_fetch_waiting(const struct details_fetcher *f) { return f ? f->n_waiting : 0; }
