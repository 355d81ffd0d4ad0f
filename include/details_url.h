/* details_url: which URLs build details may come from, and where Zuul keeps them: the
 * `details.hosts` allow-list, a build's API URL derived from its web_url, and the job
 * output files under its log_url. Pure: strings in, strings out, no I/O. */
#ifndef ZMB_DETAILS_URL_H
#define ZMB_DETAILS_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Longer URLs are refused outright: no Zuul or log server needs them. */
#define DETAILS_URL_MAX 2048

/* One URL taken apart by details_url_parse. Everything points into `buf`. */
struct details_url {
	bool https;
	char host[256]; /* lower-case; an IPv6 literal keeps its brackets: "[::1]" */
	int port;       /* explicit, or the scheme's default (80, 443) */
	bool port_given;
	const char *path; /* starts with '/' ("/" when the URL had none); no query, no fragment */
	char buf[DETAILS_URL_MAX + 2];
};

/* Parses an absolute http:// or https:// URL strictly, the way the fetcher will use it:
 * no user name or password, a host of letters, digits, '.', '-' (or a bracketed IPv6
 * literal), an optional port 1..65535, and a path without whitespace, control bytes,
 * non-ASCII bytes or any of " < > \ ` { } | ^. A query or fragment is refused too: Zuul's
 * web_url and log_url carry none. 0 and *out filled, or -1 with a static reason. */
int details_url_parse(const char *url, struct details_url *out, const char **why);

/* NULL when pattern is a usable `details.hosts` entry, else a static reason. An entry is
 * "host" or "host:port"; the host may use the globs '*' and '?' ("*.example.org"), or be
 * a bracketed IPv6 literal ("[::1]:8443", no globs). No scheme, path, user or query. */
const char *details_host_pattern_problem(const char *pattern);

/* Whether host:port is allowed by one of the patterns. A pattern without a port allows
 * only the default port of the URL's scheme (80 for http, 443 for https), so listing
 * "zuul.example.org" never opens another service on that machine. Host names compare
 * case-insensitively. */
bool details_host_allowed(const struct details_url *u, char *const *patterns, size_t n);
/* The same for a URL string: false for any URL details_url_parse refuses. */
bool details_url_allowed(const char *url, char *const *patterns, size_t n);

/* The API URL of build `uuid` from its web_url, as Zuul's web UI has it:
 *   https://zuul.example.org/t/TENANT/build/UUID -> https://zuul.example.org/api/tenant/TENANT/build/UUID
 *   https://zuul.example.org/build/UUID          -> https://zuul.example.org/api/build/UUID (whitelabeled)
 * (the same under a sub-path root). The web_url's last segments must be "build/" and uuid
 * itself, and uuid 1..128 characters of [A-Za-z0-9._-]. Caller frees; NULL when it cannot
 * be derived (web_url malformed, of another build, or with a query). */
char *details_api_url(const char *web_url, const char *uuid);

/* The URL of file `name` in the log directory of log_url: the log_url up to and including
 * its last '/', as Zuul's web UI cuts it, plus name. Caller frees; NULL when log_url is not
 * a URL details_url_parse takes. */
char *details_log_file_url(const char *log_url, const char *name);

#endif
