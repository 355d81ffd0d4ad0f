/* details_fetch: GETs of build details (Zuul's API, job output files) over libcurl's multi
 * interface on our loop, held to the `details` configuration: only http(s) URLs whose host
 * is listed in details.hosts are requested, before any request and on every redirect; one
 * timeout per file; caps on the bytes downloaded and on the bytes after gunzip; at most
 * DETAILS_FETCH_PARALLEL at once, the others wait in line. Knows nothing of Zuul. */
#ifndef ZMB_DETAILS_FETCH_H
#define ZMB_DETAILS_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "loop.h"

/* Files fetched at once; the memory they may take is this times details.max_output. */
#define DETAILS_FETCH_PARALLEL 4
/* Fetches waiting beyond this many are refused: a burst of failures must not queue work
 * that would finish long after anyone cares. */
#define DETAILS_FETCH_QUEUE_MAX 256
/* Redirects followed (each to a listed host only). */
#define DETAILS_FETCH_MAX_REDIRECTS 3

struct details_fetcher;

/* The outcome of one fetch. ok: HTTP 200 and a body within the caps; body is then the
 * content (gunzipped when it was gzip, by file or by Content-Encoding), NUL-terminated.
 * Otherwise error says why in a few words ("HTTP 404", "timed out after 20 s", "redirected to
 * evil.example:443, a host not in details.hosts: not followed", "more than 32MiB after gunzip"). */
struct details_fetch_result {
	bool ok;
	long status;         /* the last HTTP status, 0 when there was none */
	const char *error;   /* NULL when ok */
	const char *body;    /* valid during the callback only */
	size_t len;
	const char *url;     /* the URL asked for first */
	double elapsed_s;
	size_t wire_bytes;   /* bytes read from the network */
};

/* Called once per fetch, always from the loop (never from inside details_fetch). It may
 * start new fetches; it must not free the fetcher. */
typedef void (*details_fetch_fn)(const struct details_fetch_result *r, void *data);

/* cfg (details.hosts and the limits) is read at each fetch, so a reload takes effect for
 * the next ones; it must stay alive until details_fetcher_set_config replaces it. */
struct details_fetcher *details_fetcher_new(struct loop *loop, const struct config_details *cfg);
void details_fetcher_set_config(struct details_fetcher *f, const struct config_details *cfg);
/* Drops fetches in flight and waiting without their callbacks. */
void details_fetcher_free(struct details_fetcher *f);

/* Queues a GET of url. 0, or -1 when it is refused at once (not an http(s) URL the strict
 * parser takes, a host not listed, or the line is full): then fn is never called, nothing is
 * requested, and why says so. */
int details_fetch(struct details_fetcher *f, const char *url, details_fetch_fn fn, void *data, const char **why);

/* Fetches started and not finished, and waiting. */
size_t details_fetch_in_flight(const struct details_fetcher *f);
size_t details_fetch_waiting(const struct details_fetcher *f);

/* Gunzips data (one or more gzip members, and a second layer when a server compressed a
 * .gz file again) into out, at most max_out bytes; data that is not gzip is copied as it
 * is. 0, or -1 with why ("more than N bytes after gunzip", "broken gzip data"). Pure. */
int details_gunzip(const char *data, size_t len, size_t max_out, char **out, size_t *out_len, const char **why);

#endif
