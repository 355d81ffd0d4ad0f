/* details_url: the allow-list of `details.hosts` and the URLs of a build's details.
 * Strict on purpose: a URL that reads two ways (user info, backslashes, odd bytes) is
 * refused, so what is checked here is what the fetcher connects to. */
#include "details_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "route.h"
#include "strbuf.h"

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool host_char(char c)
{
	return is_alnum(c) || c == '.' || c == '-';
}

/* Bytes a path may not carry: whitespace and controls, non-ASCII, and those a server or
 * a parser might read another way. */
static bool path_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("\"<>\\`{}|^", c);
}

/* "[v6]" at p (n bytes): hex digits, ':' and '.' between the brackets. */
static bool ipv6_literal(const char *p, size_t n)
{
	if (n < 4 || p[0] != '[' || p[n - 1] != ']')
		return false;
	for (size_t i = 1; i + 1 < n; i++) {
		char c = lower(p[i]);
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.'))
			return false;
	}
	return true;
}

/* Digits 1..65535 at p (n bytes); -1 otherwise. */
static int parse_port(const char *p, size_t n)
{
	if (n == 0 || n > 5)
		return -1;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v >= 1 && v <= 65535 ? v : -1;
}

/* Splits an authority "host[:port]" (n bytes) into host (lower-cased into out, outlen)
 * and port (-1: none). -1 with *why when malformed. glob: '*' and '?' allowed in a
 * name. */
static int split_authority(const char *a, size_t n, bool glob, char *out, size_t outlen, int *port,
			   const char **why)
{
	size_t host_len;
	*port = -1;
	if (n > 0 && a[0] == '[') {
		const char *close = memchr(a, ']', n);
		if (!close) {
			*why = "unterminated [ of an IPv6 address";
			return -1;
		}
		host_len = (size_t)(close - a) + 1;
		if (!ipv6_literal(a, host_len)) {
			*why = "a bad IPv6 address (hex digits and colons in brackets)";
			return -1;
		}
	} else {
		const char *colon = memchr(a, ':', n);
		host_len = colon ? (size_t)(colon - a) : n;
		if (host_len == 0) {
			*why = "empty host";
			return -1;
		}
		for (size_t i = 0; i < host_len; i++) {
			if (!host_char(a[i]) && !(glob && (a[i] == '*' || a[i] == '?'))) {
				*why = glob ? "a character in the host other than letters, digits, '.', '-' "
					      "and the globs '*' and '?'"
					    : "a character in the host other than letters, digits, '.' and '-'";
				return -1;
			}
		}
	}
	if (host_len + 1 > outlen) {
		*why = "host name too long";
		return -1;
	}
	for (size_t i = 0; i < host_len; i++)
		out[i] = lower(a[i]);
	out[host_len] = '\0';
	if (host_len < n) {
		if (a[host_len] != ':') {
			*why = "junk after the host";
			return -1;
		}
		*port = parse_port(a + host_len + 1, n - host_len - 1);
		if (*port < 0) {
			*why = "a port that is not 1..65535";
			return -1;
		}
	}
	return 0;
}

int details_url_parse(const char *url, struct details_url *out, const char **why)
{
	static const char *ignored;
	if (!why)
		why = &ignored;
	memset(out, 0, sizeof *out);
	if (!url) {
		*why = "no URL";
		return -1;
	}
	size_t len = strlen(url);
	if (len > DETAILS_URL_MAX) {
		*why = "URL too long";
		return -1;
	}
	size_t skip;
	if (strncasecmp(url, "https://", 8) == 0) {
		out->https = true;
		skip = 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		skip = 7;
	} else {
		*why = "not an http:// or https:// URL";
		return -1;
	}
	const char *auth = url + skip;
	size_t auth_len = strcspn(auth, "/?#");
	for (size_t i = 0; i < auth_len; i++) {
		if (auth[i] == '@') {
			*why = "a user name in the URL";
			return -1;
		}
	}
	int port;
	if (split_authority(auth, auth_len, false, out->host, sizeof out->host, &port, why) < 0)
		return -1;
	out->port_given = port > 0;
	out->port = port > 0 ? port : out->https ? 443 : 80;
	const char *rest = auth + auth_len;
	for (const char *p = rest; *p; p++) {
		if (*p == '?' || *p == '#') {
			*why = "a query or fragment in the URL";
			return -1;
		}
		if (!path_char((unsigned char)*p)) {
			*why = "whitespace, control, non-ASCII or unsafe characters in the URL";
			return -1;
		}
	}
	snprintf(out->buf, sizeof out->buf, "%s", *rest ? rest : "/");
	out->path = out->buf;
	return 0;
}

const char *details_host_pattern_problem(const char *pattern)
{
	if (!pattern || !*pattern)
		return "empty host";
	if (strstr(pattern, "://"))
		return "a URL, not a host";
	if (strchr(pattern, '/'))
		return "a path after the host";
	if (strchr(pattern, '@'))
		return "a user name before the host";
	char host[256];
	int port;
	const char *why = NULL;
	if (split_authority(pattern, strlen(pattern), true, host, sizeof host, &port, &why) < 0)
		return why;
	return NULL;
}

static bool pattern_allows(const char *pattern, const struct details_url *u)
{
	char host[256];
	int port;
	const char *why;
	if (split_authority(pattern, strlen(pattern), true, host, sizeof host, &port, &why) < 0)
		return false;
	int want = port > 0 ? port : u->https ? 443 : 80;
	if (want != u->port)
		return false;
	/* Both sides are lower-case; an IPv6 literal has no globs and compares as text. */
	return host[0] == '[' ? strcmp(host, u->host) == 0 : glob_match(host, u->host);
}

bool details_host_allowed(const struct details_url *u, char *const *patterns, size_t n)
{
	for (size_t i = 0; u && i < n; i++)
		if (patterns[i] && pattern_allows(patterns[i], u))
			return true;
	return false;
}

bool details_url_allowed(const char *url, char *const *patterns, size_t n)
{
	struct details_url *u = xmalloc(sizeof *u);
	bool ok = details_url_parse(url, u, NULL) == 0 && details_host_allowed(u, patterns, n);
	free(u);
	return ok;
}

static bool uuid_ok(const char *uuid)
{
	size_t n = uuid ? strlen(uuid) : 0;
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(uuid[i]) && uuid[i] != '.' && uuid[i] != '_' && uuid[i] != '-')
			return false;
	return true;
}

/* The scheme and authority of url (everything before its path). */
static size_t origin_len(const char *url)
{
	const char *auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	return (size_t)(auth - url) + strcspn(auth, "/?#");
}

char *details_api_url(const char *web_url, const char *uuid)
{
	if (!uuid_ok(uuid))
		return NULL;
	struct details_url *u = xmalloc(sizeof *u);
	char *result = NULL;
	if (details_url_parse(web_url, u, NULL) != 0)
		goto out;
	/* The path without a trailing slash must end in "/build/UUID". */
	size_t plen = strlen(u->path);
	while (plen > 1 && u->path[plen - 1] == '/')
		plen--;
	size_t ulen = strlen(uuid);
	static const char tail[] = "/build/";
	size_t tlen = sizeof tail - 1;
	if (plen < tlen + ulen || memcmp(u->path + plen - ulen, uuid, ulen) != 0 ||
	    memcmp(u->path + plen - ulen - tlen, tail, tlen) != 0)
		goto out;
	size_t root_len = plen - ulen - tlen; /* the web root's path, without its last '/' */
	const char *root = u->path;
	/* A tenant's root ends in "/t/TENANT". */
	const char *tenant = NULL;
	size_t tenant_len = 0, before_t = root_len;
	size_t k = root_len;
	while (k > 0 && root[k - 1] != '/')
		k--;
	if (k >= 3 && k < root_len && memcmp(root + k - 3, "/t/", 3) == 0) {
		tenant = root + k;
		tenant_len = root_len - k;
		before_t = k - 3;
	}
	struct strbuf sb = STRBUF_INIT;
	strbuf_append(&sb, web_url, origin_len(web_url));
	if (tenant) {
		strbuf_append(&sb, root, before_t);
		strbuf_puts(&sb, "/api/tenant/");
		strbuf_append(&sb, tenant, tenant_len);
	} else {
		strbuf_append(&sb, root, root_len);
		strbuf_puts(&sb, "/api");
	}
	strbuf_puts(&sb, "/build/");
	strbuf_puts(&sb, uuid);
	result = strbuf_detach(&sb);
out:
	free(u);
	return result;
}

char *details_log_file_url(const char *log_url, const char *name)
{
	struct details_url *u = xmalloc(sizeof *u);
	char *result = NULL;
	if (details_url_parse(log_url, u, NULL) == 0 && name) {
		const char *slash = strrchr(u->path, '/');
		struct strbuf sb = STRBUF_INIT;
		strbuf_append(&sb, log_url, origin_len(log_url));
		strbuf_append(&sb, u->path, (size_t)(slash - u->path) + 1);
		strbuf_puts(&sb, name);
		result = strbuf_detach(&sb);
	}
	free(u);
	return result;
}
