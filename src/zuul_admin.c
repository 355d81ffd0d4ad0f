/* zuul_admin: requests for Zuul's admin API (built as zuul/web/__init__.py reads them) and
 * the client that sends them with a bearer token over libcurl's multi socket interface,
 * curl's sockets and timer driven by our loop (http_multi.c, as for matrix.c). */
#include "zuul_admin.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "http_multi.h"
#include "log.h"
#include "strbuf.h"

/* Zuul's answers to these calls are "true", an empty 204, an error page or a list of
 * holds: far below this. */
#define ZUUL_ADMIN_MAX_BODY (4L * 1024 * 1024)
#define ZUUL_ADMIN_REASON_SHOWN 300

/* ---- requests ---------------------------------------------------------------- */

void zuul_admin_request_clear(struct zuul_admin_request *r)
{
	if (!r)
		return;
	free(r->method);
	free(r->path);
	free(r->body);
	memset(r, 0, sizeof *r);
}

void zuul_admin_put_encoded(struct strbuf *out, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			     *p == '-' || *p == '.' || *p == '_' || *p == '~' || (keep_slash && *p == '/');
		if (plain) {
			strbuf_putc(out, (char)*p);
		} else {
			strbuf_putc(out, '%');
			strbuf_putc(out, hex[*p >> 4]);
			strbuf_putc(out, hex[*p & 15]);
		}
	}
}

char *zuul_admin_regex_escape(const char *s)
{
	/* Python's re._special_chars_map: the characters re.escape escapes since 3.7. */
	static const char special[] = "()[]{}?*+-|^$\\.&~# \t\n\r\v\f";
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "");
	for (const char *p = s; *p; p++) {
		if (strchr(special, *p))
			strbuf_putc(&sb, '\\');
		strbuf_putc(&sb, *p);
	}
	return strbuf_detach(&sb);
}

static bool filled(const char *s)
{
	return s && *s;
}

/* "/api/tenant/{tenant}/project/{project}/{action}" */
static char *project_path(const struct zuul_admin_item *it, const char *action)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "/api/tenant/");
	zuul_admin_put_encoded(&sb, it->tenant, false);
	strbuf_puts(&sb, "/project/");
	zuul_admin_put_encoded(&sb, it->project, true);
	strbuf_printf(&sb, "/%s", action);
	return strbuf_detach(&sb);
}

static int item_problem(const struct zuul_admin_item *it, bool need_pipeline, const char **why)
{
	if (!filled(it->tenant) || !filled(it->project)) {
		*why = "the report names no tenant or project";
		return -1;
	}
	if (need_pipeline && !filled(it->pipeline)) {
		*why = "the report names no pipeline";
		return -1;
	}
	if (filled(it->change) && !filled(it->patchset)) {
		*why = "the report names the change but not its patchset";
		return -1;
	}
	if (!filled(it->change) && !filled(it->ref)) {
		*why = "the report names neither a change nor a ref";
		return -1;
	}
	return 0;
}

static char *change_spec(const struct zuul_admin_item *it)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "%s,%s", it->change, it->patchset);
	return strbuf_detach(&sb);
}

static void finish(struct zuul_admin_request *out, const char *method, char *path, cJSON *body)
{
	out->method = xstrdup(method);
	out->path = path;
	if (body) {
		char *json = cJSON_PrintUnformatted(body);
		out->body = xstrdup(json);
		cJSON_free(json);
		cJSON_Delete(body);
	}
}

int zuul_admin_enqueue(const struct zuul_admin_item *it, struct zuul_admin_request *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (item_problem(it, true, why) < 0)
		return -1;
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "pipeline", it->pipeline);
	if (filled(it->change)) {
		char *spec = change_spec(it);
		cJSON_AddStringToObject(b, "change", spec);
		free(spec);
	} else {
		/* enqueue() reads oldrev and newrev with .get(): present and null, as the issue's
		 * contract and zuul-client send them; null newrev is the branch head. */
		cJSON_AddStringToObject(b, "ref", it->ref);
		cJSON_AddNullToObject(b, "oldrev");
		cJSON_AddNullToObject(b, "newrev");
	}
	finish(out, "POST", project_path(it, "enqueue"), b);
	return 0;
}

int zuul_admin_dequeue(const struct zuul_admin_item *it, struct zuul_admin_request *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (item_problem(it, true, why) < 0)
		return -1;
	/* dequeue() wants exactly one of change and ref, else 400 "Invalid request body". */
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "pipeline", it->pipeline);
	if (filled(it->change)) {
		char *spec = change_spec(it);
		cJSON_AddStringToObject(b, "change", spec);
		free(spec);
	} else {
		cJSON_AddStringToObject(b, "ref", it->ref);
	}
	finish(out, "POST", project_path(it, "dequeue"), b);
	return 0;
}

/* At most max bytes of s, cut at a UTF-8 character boundary. Caller frees. */
static char *utf8_cut(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	return xstrndup(s, n);
}

int zuul_admin_autohold(const struct zuul_admin_item *it, const char *job, int count, const char *reason,
			struct zuul_admin_request *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (item_problem(it, false, why) < 0)
		return -1;
	if (!filled(job) || !filled(reason)) {
		*why = !filled(job) ? "no job named" : "no reason given";
		return -1;
	}
	if (count < 1)
		count = 1;
	if (count > ZUUL_ADMIN_COUNT_MAX)
		count = ZUUL_ADMIN_COUNT_MAX;
	/* autohold_project_post() wants all six keys; change and ref exclusive. A change is its
	 * number (Zuul makes the ref filter with the source's getRefForChange); a ref is used as a
	 * regular expression as it is, so it is escaped to match only itself. */
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "job", job);
	cJSON_AddNumberToObject(b, "count", count);
	if (filled(it->change)) {
		cJSON_AddStringToObject(b, "change", it->change);
		cJSON_AddNullToObject(b, "ref");
	} else {
		char *re = zuul_admin_regex_escape(it->ref);
		cJSON_AddNullToObject(b, "change");
		cJSON_AddStringToObject(b, "ref", re);
		free(re);
	}
	char *cut = utf8_cut(reason, ZUUL_ADMIN_REASON_MAX);
	cJSON_AddStringToObject(b, "reason", cut);
	free(cut);
	cJSON_AddNullToObject(b, "node_hold_expiration");
	finish(out, "POST", project_path(it, "autohold"), b);
	return 0;
}

int zuul_admin_autohold_list(const char *tenant, struct zuul_admin_request *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (!filled(tenant)) {
		*why = "no tenant";
		return -1;
	}
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "/api/tenant/");
	zuul_admin_put_encoded(&sb, tenant, false);
	strbuf_puts(&sb, "/autohold");
	finish(out, "GET", strbuf_detach(&sb), NULL);
	return 0;
}

int zuul_admin_autohold_delete(const char *tenant, const char *id, struct zuul_admin_request *out, const char **why)
{
	memset(out, 0, sizeof *out);
	if (!filled(tenant) || !filled(id)) {
		*why = !filled(tenant) ? "no tenant" : "no hold id";
		return -1;
	}
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, "/api/tenant/");
	zuul_admin_put_encoded(&sb, tenant, false);
	strbuf_puts(&sb, "/autohold/");
	zuul_admin_put_encoded(&sb, id, false);
	finish(out, "DELETE", strbuf_detach(&sb), NULL);
	return 0;
}

/* ---- Zuul's answers ------------------------------------------------------------- */

/* Text of an HTML fragment: tags dropped, the entities CherryPy's html.escape makes decoded,
 * control characters dropped, at most ZUUL_ADMIN_REASON_SHOWN bytes. */
static void put_text(struct strbuf *out, const char *p, size_t n)
{
	static const struct {
		const char *entity;
		char c;
	} entities[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&#x27;", '\''}, {"&#39;", '\''}};
	const char *end = p + n;
	while (p < end && out->len < ZUUL_ADMIN_REASON_SHOWN) {
		if (*p == '<') {
			const char *gt = memchr(p, '>', (size_t)(end - p));
			p = gt ? gt + 1 : end;
			continue;
		}
		if (*p == '&') {
			bool done = false;
			for (size_t i = 0; i < sizeof entities / sizeof entities[0] && !done; i++) {
				size_t el = strlen(entities[i].entity);
				if ((size_t)(end - p) >= el && strncmp(p, entities[i].entity, el) == 0) {
					strbuf_putc(out, entities[i].c);
					p += el;
					done = true;
				}
			}
			if (done)
				continue;
		}
		unsigned char c = (unsigned char)*p++;
		if (c >= 0x20 && c != 0x7f)
			strbuf_putc(out, (char)c);
		else if (c == '\n' || c == '\t')
			strbuf_putc(out, ' ');
	}
}

char *zuul_admin_reason(long status, const char *body, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	if (status == 403) {
		/* AuthContext.validate raises APIError(403) without a body. */
		strbuf_puts(&sb, "not allowed by the tenant's authorization rules (403)");
		return strbuf_detach(&sb);
	}
	cJSON *json = body && len ? cJSON_ParseWithLength(body, len) : NULL;
	const char *desc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(json, "description"));
	if (desc && *desc) {
		/* APIError's json_doc: {"description", "error", "realm"} (401 and friends). */
		put_text(&sb, desc, strlen(desc));
	} else if (body && len) {
		/* CherryPy's error page: the message is the paragraph after the status heading. */
		const char *p = NULL;
		for (const char *q = body; q + 3 <= body + len; q++)
			if (q[0] == '<' && (q[1] == 'p' || q[1] == 'P') && q[2] == '>') {
				p = q + 3;
				break;
			}
		if (p) {
			const char *end = p;
			while (end + 4 <= body + len && strncmp(end, "</p>", 4) != 0)
				end++;
			put_text(&sb, p, (size_t)(end - p));
		}
	}
	cJSON_Delete(json);
	while (sb.len && sb.data[sb.len - 1] == ' ')
		sb.data[--sb.len] = '\0';
	if (sb.len == 0)
		strbuf_printf(&sb, "HTTP %ld", status);
	return strbuf_detach(&sb);
}

/* ---- the client ------------------------------------------------------------------ */

struct zreq {
	struct zuul_admin *za;
	CURL *easy;
	struct http_transfer *xfer; /* while curl runs it */
	struct curl_slist *headers;
	zuul_admin_fn fn;
	void *data;
	char too_big[64];           /* the reason of an answer over ZUUL_ADMIN_MAX_BODY */
	struct zreq *prev, *next;
};

struct zuul_admin {
	struct loop *loop;
	struct http_multi *http;
	struct zreq *reqs;
	size_t n_in_flight;
};

/* The Authorization header holds a live token: it is wiped before its memory goes back. */
static void headers_free(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

static void zreq_free(struct zreq *r)
{
	if (r->easy)
		curl_easy_cleanup(r->easy);
	headers_free(r->headers);
	free(r);
}

static void unlink_req(struct zuul_admin *za, struct zreq *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		za->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	za->n_in_flight--;
}

/* http_multi's callback: runs from the loop, outside any curl call. */
static void transfer_done(const struct http_result *hr, void *data)
{
	struct zreq *r = data;
	struct zuul_admin *za = r->za;
	struct zuul_admin_result res = {0};
	char *reason = NULL;
	r->xfer = NULL;
	res.body = hr->body;
	res.len = hr->len;
	if (hr->code != CURLE_OK) {
		if (hr->too_big)
			snprintf(r->too_big, sizeof r->too_big, "answer larger than %ld bytes", ZUUL_ADMIN_MAX_BODY);
		res.reason = hr->too_big ? r->too_big : hr->error;
	} else {
		res.status = hr->status;
		res.accepted = res.status >= 200 && res.status <= 299;
		if (!res.accepted)
			res.reason = reason = zuul_admin_reason(res.status, hr->body, hr->len);
	}
	unlink_req(za, r);
	r->fn(&res, r->data);
	free(reason);
	zreq_free(r);
}

struct zuul_admin *zuul_admin_new(struct loop *loop)
{
	struct zuul_admin *za = xcalloc(1, sizeof *za);
	za->loop = loop;
	za->http = http_multi_new(loop);
	if (!za->http) {
		free(za);
		return NULL;
	}
	return za;
}

void zuul_admin_free(struct zuul_admin *za)
{
	if (!za)
		return;
	while (za->reqs) {
		struct zreq *r = za->reqs;
		http_multi_cancel(za->http, r->xfer);
		unlink_req(za, r);
		zreq_free(r);
	}
	http_multi_free(za->http);
	free(za);
}

size_t zuul_admin_in_flight(const struct zuul_admin *za)
{
	return za ? za->n_in_flight : 0;
}

int zuul_admin_send(struct zuul_admin *za, const char *api_root, const struct zuul_admin_request *req,
		    const char *token, zuul_admin_fn fn, void *data)
{
	struct zreq *r = xcalloc(1, sizeof *r);
	r->za = za;
	r->fn = fn;
	r->data = data;
	r->easy = curl_easy_init();
	struct strbuf auth = STRBUF_INIT, url = STRBUF_INIT;
	strbuf_printf(&auth, "Authorization: Bearer %s", token);
	strbuf_printf(&url, "%s%s", api_root, req->path);
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	h = h ? curl_slist_append(h, "Expect:") : NULL;
	h = h ? curl_slist_append(h, strbuf_str(&auth)) : NULL;
	if (h && req->body)
		h = curl_slist_append(h, "Content-Type: application/json");
	explicit_bzero(auth.data, auth.len);
	strbuf_free(&auth);
	r->headers = h;
	CURL *e = r->easy;
	CURLcode rc = e && h ? CURLE_OK : CURLE_OUT_OF_MEMORY;
	if (rc == CURLE_OK)
		rc = http_easy_defaults(e, ZUUL_ADMIN_TIMEOUT_MS);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_URL, strbuf_str(&url));
	if (rc == CURLE_OK && req->body) {
		rc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->body));
		if (rc == CURLE_OK)
			rc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body);
	}
	if (rc == CURLE_OK && strcmp(req->method, "GET") != 0 && !(strcmp(req->method, "POST") == 0 && req->body))
		rc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	strbuf_free(&url);
	if (rc != CURLE_OK) {
		log_kv(ZLOG_ERROR, "zuul: cannot set up a request to Zuul's admin API; not sent", "method", req->method,
		       "path", req->path, "reason", curl_easy_strerror(rc), NULL);
		zreq_free(r);
		return -1;
	}
	r->next = za->reqs;
	if (za->reqs)
		za->reqs->prev = r;
	za->reqs = r;
	za->n_in_flight++;
	r->xfer = http_multi_start(za->http, e, (size_t)ZUUL_ADMIN_MAX_BODY, transfer_done, r, NULL);
	if (!r->xfer) {
		unlink_req(za, r);
		log_kv(ZLOG_ERROR, "zuul: cannot start a request to Zuul's admin API; not sent", "method", req->method,
		       "path", req->path, NULL);
		zreq_free(r);
		return -1;
	}
	return 0;
}
