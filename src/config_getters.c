/* config getters: reading one value of the config file, checked, with every problem
 * recorded as "FILE:LINE: what (expected)" for config_load to hand over sorted and redacted. */
#include "config.h"
#include "config_internal.h"

#include "duration.h"
#include "redact.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a secret becomes in a message. */
#define REDACTED "[redacted]"

/* Records "FILE:LINE: message\n"; s == NULL or a setting without a line (the root) gives line 1. */
__attribute__((format(printf, 3, 4)))
void report(struct loader *ld, const config_setting_t *s, const char *fmt, ...)
{
	const char *file = s && config_setting_source_file(s) ? config_setting_source_file(s) : ld->path;
	int line = s ? config_setting_source_line(s) : 0;
	if (line < 1)
		line = 1;
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "%s:%d: ", file, line);
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(&sb, fmt, ap);
	va_end(ap);
	strbuf_putc(&sb, '\n');
	ld->msgs = xrealloc(ld->msgs, (ld->n_errors + 1) * sizeof(*ld->msgs));
	ld->msgs[ld->n_errors++] = (struct msg){line, strcmp(file, ld->path) != 0, strbuf_detach(&sb)};
}

void remember_secret(struct loader *ld, const char *value)
{
	if (!value || !*value)
		return;
	ld->redact = xrealloc(ld->redact, (ld->n_redact + 1) * sizeof(*ld->redact));
	ld->redact[ld->n_redact++] = xstrdup(value);
	redact_add(value); /* and from every log line, stored reason and HTTP answer */
}

void secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Appends text to out with every secret value replaced. Messages quote config
 * values (a bad room, a bad glob); one that happens to hold a token must not leak
 * it. Secrets shorter than 4 bytes would garble every message and protect
 * nothing, so they are left alone. */
static void put_redacted(struct loader *ld, const char *p, struct strbuf *out)
{
	while (*p) {
		size_t best = 0;
		for (size_t i = 0; i < ld->n_redact; i++) {
			size_t n = strlen(ld->redact[i]);
			if (n >= 4 && n > best && strncmp(p, ld->redact[i], n) == 0)
				best = n;
		}
		if (best) {
			strbuf_puts(out, REDACTED);
			p += best;
		} else {
			strbuf_putc(out, *p++);
		}
	}
}

/* Hands the messages to the caller in file order (checks run section by section,
 * an operator reads top to bottom), then forgets them. */
void flush_errors(struct loader *ld, struct strbuf *out)
{
	/* Insertion sort: stable, and there are only a handful. */
	for (size_t i = 1; i < ld->n_errors; i++) {
		struct msg m = ld->msgs[i];
		size_t j = i;
		while (j > 0 && (ld->msgs[j - 1].included > m.included ||
				 (ld->msgs[j - 1].included == m.included && ld->msgs[j - 1].line > m.line))) {
			ld->msgs[j] = ld->msgs[j - 1];
			j--;
		}
		ld->msgs[j] = m;
	}
	for (size_t i = 0; i < ld->n_errors; i++) {
		put_redacted(ld, ld->msgs[i].text, out);
		explicit_bzero(ld->msgs[i].text, strlen(ld->msgs[i].text));
		free(ld->msgs[i].text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
}

static const char *type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_GROUP: return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a float";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array";
	case CONFIG_TYPE_LIST: return "a list";
	default: return "nothing";
	}
}

void type_error(struct loader *ld, const config_setting_t *s, const char *key, const char *expected)
{
	report(ld, s, "%s: expected %s, got %s", key, expected, type_name(config_setting_type(s)));
}

/* "prefix.key", or key alone at the top level. */
void key_path(char *buf, size_t n, const char *prefix, const char *key)
{
	if (prefix && *prefix)
		snprintf(buf, n, "%s.%s", prefix, key);
	else
		snprintf(buf, n, "%s", key);
}

bool is_int(const config_setting_t *s)
{
	int t = config_setting_type(s);
	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

/* ---- paths ---------------------------------------------------------------- */

/* Lexically cleans an absolute path: no "." components, no "//", ".." removes
 * the component before it (like Go's filepath.Clean). Caller frees. */
char *path_clean(const char *path)
{
	size_t len = strlen(path);
	char *out = xmalloc(len + 2);
	size_t o = 0;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *start = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - start);
		if (n == 0 || (n == 1 && start[0] == '.'))
			continue;
		if (n == 2 && start[0] == '.' && start[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--; /* the slash before the dropped component */
			continue;
		}
		out[o++] = '/';
		memcpy(out + o, start, n);
		o += n;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return out;
}

/* The directory holding the config file, absolute. Caller frees; NULL only when
 * the working directory cannot be determined. */
char *config_dir(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	if (path[0] != '/') {
		char *cwd = getcwd(NULL, 0);
		if (!cwd)
			return NULL;
		strbuf_puts(&sb, cwd);
		strbuf_putc(&sb, '/');
		free(cwd);
	}
	const char *slash = strrchr(path, '/');
	if (slash)
		strbuf_append(&sb, path, (size_t)(slash - path) + 1);
	char *joined = strbuf_detach(&sb);
	char *dir = path_clean(joined);
	free(joined);
	return dir;
}

/* base/rel, cleaned; rel when it is absolute. Caller frees. */
char *path_resolve(const char *base, const char *rel)
{
	if (rel[0] == '/')
		return path_clean(rel);
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "%s/%s", base, rel);
	char *joined = strbuf_detach(&sb);
	char *out = path_clean(joined);
	free(joined);
	return out;
}

/* 0 when path is a readable regular file, else an errno value. */
int check_readable_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0)
		rc = errno;
	else if (S_ISDIR(st.st_mode))
		rc = EISDIR;
	close(fd);
	return rc;
}

/* ---- typed getters -----------------------------------------------------------
 * Each returns false after reporting a problem; an absent key is not a problem
 * (the caller's default stays). */

bool get_string(struct loader *ld, const config_setting_t *grp, const char *prefix,
		const char *key, const char **out)
{
	const config_setting_t *s = grp ? config_setting_get_member(grp, key) : NULL;
	if (!s)
		return true;
	char path[128];
	key_path(path, sizeof(path), prefix, key);
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		type_error(ld, s, path, "a string");
		return false;
	}
	*out = config_setting_get_string(s);
	return true;
}

/* A string that must not be empty when present. */
bool get_nonempty(struct loader *ld, const config_setting_t *grp, const char *prefix,
		  const char *key, const char *expected, const char **out)
{
	const char *v = NULL;
	if (!get_string(ld, grp, prefix, key, &v))
		return false;
	if (v && !*v) {
		char path[128];
		key_path(path, sizeof(path), prefix, key);
		report(ld, config_setting_get_member(grp, key), "%s: empty string (expected %s)", path, expected);
		return false;
	}
	if (v)
		*out = v;
	return true;
}

/* A path, resolved against the config file's directory; *out is replaced only when present. */
bool get_path(struct loader *ld, const config_setting_t *grp, const char *prefix,
	      const char *key, char **out)
{
	const char *v = NULL;
	if (!get_nonempty(ld, grp, prefix, key, "a path", &v))
		return false;
	if (v) {
		free(*out);
		*out = path_resolve(ld->dir, v);
	}
	return true;
}

bool get_int(struct loader *ld, const config_setting_t *grp, const char *prefix,
	     const char *key, long long min, long long max, int *out)
{
	const config_setting_t *s = grp ? config_setting_get_member(grp, key) : NULL;
	if (!s)
		return true;
	char path[128];
	key_path(path, sizeof(path), prefix, key);
	if (!is_int(s)) {
		type_error(ld, s, path, "an integer");
		return false;
	}
	long long v = config_setting_get_int64(s);
	if (v < min || v > max) {
		report(ld, s, "%s: %lld is out of range (expected %lld..%lld)", path, v, min, max);
		return false;
	}
	*out = (int)v;
	return true;
}

bool get_bool(struct loader *ld, const config_setting_t *grp, const char *prefix,
	      const char *key, bool *out)
{
	const config_setting_t *s = grp ? config_setting_get_member(grp, key) : NULL;
	if (!s)
		return true;
	char path[128];
	key_path(path, sizeof(path), prefix, key);
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		type_error(ld, s, path, "a boolean (true or false)");
		return false;
	}
	*out = config_setting_get_bool(s) != 0;
	return true;
}

/* A duration string ("90s", "1h30m") or a non-negative integer of seconds, within min..max. */
bool get_duration(struct loader *ld, const config_setting_t *grp, const char *prefix,
		  const char *key, long long min, long long max, long long *out)
{
	const config_setting_t *s = grp ? config_setting_get_member(grp, key) : NULL;
	if (!s)
		return true;
	char path[128];
	key_path(path, sizeof(path), prefix, key);
	long long v;
	if (is_int(s)) {
		v = config_setting_get_int64(s);
		if (v < 0) {
			report(ld, s, "%s: bad duration %lld (expected a non-negative number of seconds "
				      "or a duration like \"90s\", \"5m\", \"1h30m\")", path, v);
			return false;
		}
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *text = config_setting_get_string(s);
		if (duration_parse(text, &v) != 0) {
			report(ld, s, "%s: bad duration \"%s\" (expected a duration like \"90s\", \"5m\", "
				      "\"1h30m\", \"7d\" or an integer of seconds)", path, text);
			return false;
		}
	} else {
		type_error(ld, s, path, "a duration (a string like \"5m\" or an integer of seconds)");
		return false;
	}
	if (v < min || v > max) {
		char a[32], b[32], c[32];
		report(ld, s, "%s: %s is out of range (expected %s..%s)", path,
		       duration_format((double)v, a, sizeof(a)), duration_format((double)min, b, sizeof(b)),
		       duration_format((double)max, c, sizeof(c)));
		return false;
	}
	*out = v;
	return true;
}

/* "1MiB", "512KiB", "200000" (bytes): binary suffixes only, so nobody has to guess
 * whether "1MB" meant 10^6 or 2^20. 0 with *out set, or -1. */
static int size_parse(const char *text, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (end == text || errno != 0 || v < 0 || *text == '-' || *text == '+')
		return -1;
	long long unit = 0;
	if (strcmp(end, "") == 0 || strcmp(end, "B") == 0)
		unit = 1;
	else if (strcmp(end, "KiB") == 0)
		unit = 1024;
	else if (strcmp(end, "MiB") == 0)
		unit = 1024 * 1024;
	if (unit == 0 || v > LLONG_MAX / unit)
		return -1;
	*out = v * unit;
	return 0;
}

/* n bytes as the config would say it ("1MiB", "64KiB"), for messages; "N bytes" otherwise. */
static const char *size_format(long long n, char *buf, size_t len)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(buf, len, "%lldMiB", n / (1024 * 1024));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, len, "%lldKiB", n / 1024);
	else
		snprintf(buf, len, "%lld bytes", n);
	return buf;
}

/* A size: an integer of bytes or a string like "1MiB", "512KiB", within min..max. */
bool get_size(struct loader *ld, const config_setting_t *grp, const char *prefix,
	      const char *key, long long min, long long max, int *out)
{
	const config_setting_t *s = grp ? config_setting_get_member(grp, key) : NULL;
	if (!s)
		return true;
	char path[128];
	key_path(path, sizeof(path), prefix, key);
	long long v;
	if (is_int(s)) {
		v = config_setting_get_int64(s);
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		const char *text = config_setting_get_string(s);
		if (size_parse(text, &v) != 0) {
			report(ld, s, "%s: bad size \"%s\" (expected a size like \"512KiB\", \"1MiB\" or an "
				      "integer of bytes)", path, text);
			return false;
		}
	} else {
		type_error(ld, s, path, "a size (a string like \"1MiB\" or an integer of bytes)");
		return false;
	}
	if (v < min || v > max) {
		char a[32], b[32], c[32];
		report(ld, s, "%s: %s is out of range (expected %s..%s)", path, size_format(v, a, sizeof(a)),
		       size_format(min, b, sizeof(b)), size_format(max, c, sizeof(c)));
		return false;
	}
	*out = (int)v;
	return true;
}

void free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A list or array of strings, or (when single_ok) one string meaning a one-element
 * list. On success *out holds copies (NULL when empty); on failure nothing is kept. */
bool get_string_list(struct loader *ld, const config_setting_t *s, const char *path,
		     bool single_ok, char ***out, size_t *n_out)
{
	int t = config_setting_type(s);
	*out = NULL;
	*n_out = 0;
	if (single_ok && t == CONFIG_TYPE_STRING) {
		*out = xmalloc(sizeof(char *));
		(*out)[0] = xstrdup(config_setting_get_string(s));
		*n_out = 1;
		return true;
	}
	if (t != CONFIG_TYPE_ARRAY && t != CONFIG_TYPE_LIST) {
		type_error(ld, s, path, single_ok ? "a list of strings or a string" : "a list of strings");
		return false;
	}
	int n = config_setting_length(s);
	char **v = n > 0 ? xcalloc((size_t)n, sizeof(char *)) : NULL;
	bool ok = true;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			char epath[160];
			snprintf(epath, sizeof(epath), "%s[%d]", path, i);
			type_error(ld, e, epath, "a string");
			ok = false;
			continue;
		}
		v[i] = xstrdup(config_setting_get_string(e));
	}
	if (!ok) {
		free_strings(v, (size_t)n);
		return false;
	}
	*out = v;
	*n_out = (size_t)n;
	return true;
}

/* ---- unknown keys ---------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t prev[65], cur[65];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

/* Reports every member of grp not in known (NULL-terminated). Inline secrets get
 * their own message that names the safe alternative and never the value. */
void check_keys(struct loader *ld, const config_setting_t *grp, const char *prefix,
		const char *const *known)
{
	int n = config_setting_length(grp);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		if (!name)
			continue;
		bool found = false;
		for (size_t k = 0; known[k]; k++)
			if (strcmp(name, known[k]) == 0)
				found = true;
		if (found)
			continue;
		char path[128];
		key_path(path, sizeof(path), prefix, name);
		if (strcmp(name, "access_token") == 0 || strcmp(name, "password") == 0) {
			bool token = name[0] == 'a';
			bool matrix = prefix && strcmp(prefix, "matrix") == 0;
			if (config_setting_type(s) == CONFIG_TYPE_STRING)
				remember_secret(ld, config_setting_get_string(s));
			report(ld, s, "%s: secrets are not accepted in the config file (put the %s in a file "
				      "named by %s, or in the environment variable %s)", path,
			       token ? "access token" : "password",
			       token ? "matrix.access_token_file" : matrix ? "matrix.password_file" : "mqtt.password_file",
			       token ? "ZMB_MATRIX_ACCESS_TOKEN" : matrix ? "ZMB_MATRIX_PASSWORD" : "ZMB_MQTT_PASSWORD");
			continue;
		}
		struct strbuf list = STRBUF_INIT;
		const char *best = NULL;
		size_t best_d = 3;
		for (size_t k = 0; known[k]; k++) {
			strbuf_printf(&list, "%s%s", k ? ", " : "", known[k]);
			size_t d = edit_distance(name, known[k]);
			if (d < best_d) {
				best_d = d;
				best = known[k];
			}
		}
		if (best)
			report(ld, s, "unknown key '%s' (expected one of: %s); did you mean '%s'?", path,
			       strbuf_str(&list), best);
		else
			report(ld, s, "unknown key '%s' (expected one of: %s)", path, strbuf_str(&list));
		strbuf_free(&list);
	}
}

/* A group member that must be a group; NULL when absent or of the wrong type (reported). */
const config_setting_t *get_group(struct loader *ld, const config_setting_t *grp,
				  const char *prefix, const char *key)
{
	const config_setting_t *s = config_setting_get_member(grp, key);
	if (!s)
		return NULL;
	if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
		char path[128];
		key_path(path, sizeof(path), prefix, key);
		type_error(ld, s, path, "a group");
		return NULL;
	}
	return s;
}

/* ---- text checks and quoting ------------------------------------------------ */

/* Whether s is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p;
		size_t n = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 9;
		if (n == 9 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4))
			return false;
		for (size_t i = 1; i <= n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		if ((n == 2 && c == 0xe0 && p[1] < 0xa0) || (n == 2 && c == 0xed && p[1] >= 0xa0) ||
		    (n == 3 && c == 0xf0 && p[1] < 0x90) || (n == 3 && c == 0xf4 && p[1] >= 0x90))
			return false;
		p += n + 1;
	}
	return true;
}

#define SHOWN_MAX 80      /* how much of a bad value a message quotes */

/* v quoted for a message in sb (reset first): '"', '\' and control characters escaped so
 * that the message stays one line, cut after SHOWN_MAX bytes at a character boundary (a
 * cut value ends in `"...`). Returns sb's text. */
const char *shown(struct strbuf *sb, const char *v)
{
	size_t n = strlen(v), cut = n;
	if (cut > SHOWN_MAX) {
		cut = SHOWN_MAX;
		while (cut > 0 && ((unsigned char)v[cut] & 0xc0) == 0x80)
			cut--;
	}
	strbuf_reset(sb);
	strbuf_putc(sb, '"');
	for (size_t i = 0; i < cut; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '"' || c == '\\') {
			strbuf_putc(sb, '\\');
			strbuf_putc(sb, (char)c);
		} else if (c == '\n') {
			strbuf_puts(sb, "\\n");
		} else if (c == '\t') {
			strbuf_puts(sb, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			strbuf_printf(sb, "\\x%02x", c);
		} else {
			strbuf_putc(sb, (char)c);
		}
	}
	strbuf_puts(sb, cut < n ? "\"..." : "\"");
	return strbuf_str(sb);
}
