/* report_links: the links of a report into Zuul's web UI, built the way Zuul builds its own:
 * from the tenant's web root, whitelabeled or not, never from a guessed /t/<tenant>/ path.
 *
 * Zuul (model.py, 14.3.0): a tenant's web_root is its `web-root` (whitelabeled) or the
 * global root + "t/{tenant.name}/", always ending in '/'; QueueItem.formatJobResult makes a
 * build's web_url urljoin(web_root, "build/{build.uuid}"), formatItemUrl the buildset page
 * urljoin(web_root, "buildset/{buildset.uuid}") once the item has a result and the status
 * page "status/change/{change.number},{change.patchset}" before; the MQTT reporter sends the
 * formatted root itself as tenant_web_root. Without a web root Zuul makes no links (web_url
 * is then a relative "build/<uuid>", which every consumer drops), and neither do we. */
#include "report_internal.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "textutil.h"

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t k = strlen(suffix);
	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The web root from one build: its web_url minus Zuul's "build/<uuid>". Caller frees. */
static char *root_from_build(const struct zuul_build *b)
{
	if (!textutil_url_is_safe(b->web_url) || !b->uuid)
		return NULL;
	struct strbuf tail = STRBUF_INIT;
	strbuf_printf(&tail, "/build/%s", b->uuid);
	size_t n = strlen(b->web_url);
	char *root = NULL;
	if (ends_with(b->web_url, n, strbuf_str(&tail)))
		root = xstrndup(b->web_url, n - tail.len + 1); /* keeps the '/' */
	strbuf_free(&tail);
	return root;
}

char *report_web_root_new(const struct zuul_event *ev)
{
	const char *r = ev->tenant_web_root;
	if (textutil_url_is_safe(r)) {
		size_t n = strlen(r);
		/* Zuul's configloader adds the '/' to a configured root; a payload that lacks
		 * it still means the same directory. */
		if (n > 0 && r[n - 1] == '/')
			return xstrdup(r);
		struct strbuf sb = STRBUF_INIT;
		strbuf_printf(&sb, "%s/", r);
		return strbuf_detach(&sb);
	}
	for (size_t i = 0; i < ev->n_builds + ev->n_retry_builds; i++) {
		const struct zuul_build *b =
			i < ev->n_builds ? &ev->builds[i] : &ev->retry_builds[i - ev->n_builds];
		char *root = root_from_build(b);
		if (root)
			return root;
	}
	return NULL;
}

char *report_zuul_url_new(const char *root, const char *tenant)
{
	if (!root)
		return NULL;
	size_t n = strlen(root);
	/* The root Zuul's tenants share is the tenant's minus "t/<tenant>/" (urljoin of the
	 * global root and "t/{tenant.name}/"); a whitelabeled tenant's root is its own. */
	if (tenant && *tenant) {
		struct strbuf tail = STRBUF_INIT;
		strbuf_printf(&tail, "/t/%s/", tenant);
		bool shared = ends_with(root, n, strbuf_str(&tail));
		size_t tail_len = tail.len;
		strbuf_free(&tail);
		if (shared && n - tail_len > strlen("https://"))
			return xstrndup(root, n - tail_len);
	}
	return xstrndup(root, n > 0 && root[n - 1] == '/' ? n - 1 : n);
}

char *report_link_new(const char *root, const char *path, const char *segment)
{
	if (!root)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, root);
	strbuf_puts(&sb, path);
	if (segment)
		textutil_percent_encode(&sb, segment);
	return strbuf_detach(&sb);
}

char *report_query_link_new(const char *root, const char *path, const char *k1, const char *v1, const char *k2,
			    const char *v2)
{
	if (!root)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, root);
	strbuf_puts(&sb, path);
	bool first = true;
	const char *keys[2] = {k1, k2}, *values[2] = {v1, v2};
	for (int i = 0; i < 2; i++) {
		if (!keys[i] || !values[i] || !*values[i])
			continue;
		strbuf_putc(&sb, first ? '?' : '&');
		strbuf_puts(&sb, keys[i]);
		strbuf_putc(&sb, '=');
		textutil_percent_encode(&sb, values[i]);
		first = false;
	}
	return strbuf_detach(&sb);
}

char *report_item_url_new(const char *root, const struct zuul_event *ev)
{
	if (!root)
		return NULL;
	if (ev->buildset_result && ev->buildset_uuid)
		return report_link_new(root, "buildset/", ev->buildset_uuid);
	if (ev->buildset_result || !ev->item.change || !ev->item.patchset)
		return NULL; /* Zuul's pattern needs the change's number and patchset */
	struct strbuf sb = STRBUF_INIT;
	strbuf_puts(&sb, root);
	strbuf_puts(&sb, "status/change/");
	textutil_percent_encode(&sb, ev->item.change);
	strbuf_putc(&sb, ',');
	textutil_percent_encode(&sb, ev->item.patchset);
	return strbuf_detach(&sb);
}
