/* config room texts: what the bridge shows in the room on the operators' word, the runbook
 * and hint under a failure (routes and owners rules) and the chatops workflow message. */
#include "config.h"
#include "config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RUNBOOK_MAX 2000  /* a link, not a document */
#define HINT_MAX 200      /* one line under the failure */
#define WORKFLOW_MAX 4000 /* one message that still reads as a message */
#define WORKFLOW_FILE_MAX 65536 /* read at most this much: CRs and trailing blanks are dropped first */

/* NULL when url is an http(s) link fit to put under a failure, else why not. Unlike the
 * homeserver URL, a query or fragment is fine: wiki pages are linked by anchor. */
static const char *runbook_problem(const char *url)
{
	const char *rest;
	if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else
		return "not http:// or https://";
	if (!*rest || strchr("/?#", *rest))
		return "no host after the scheme";
	if (strlen(url) > RUNBOOK_MAX)
		return "longer than 2000 bytes";
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "contains whitespace or control characters";
	/* The report refuses these in any link (they would break out of an attribute or
	 * be misread by a client); accepting them here would make the runbook vanish. */
	if (strpbrk(url, "\"<>\\`"))
		return "contains one of \" < > \\ `";
	if (!utf8_valid(url))
		return "not valid UTF-8";
	return NULL;
}

/* NULL when text is one line of at most HINT_MAX bytes, else why not. */
static const char *hint_problem(const char *text)
{
	if (!*text)
		return "empty";
	if (strlen(text) > HINT_MAX)
		return "longer than 200 bytes";
	if (!utf8_valid(text))
		return "not valid UTF-8";
	if (strpbrk(text, "\r\n"))
		return "more than one line";
	for (const char *p = text; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			return "contains control characters";
	return NULL;
}

/* NULL when the len bytes of text make a workflow message, else why not. */
static const char *workflow_problem(const char *text, size_t len)
{
	if (len == 0)
		return "empty";
	if (memchr(text, '\0', len))
		return "contains a NUL byte";
	if (len > WORKFLOW_MAX)
		return "longer than 4000 bytes";
	if (!utf8_valid(text))
		return "not valid UTF-8";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if ((c < ' ' && c != '\n' && c != '\t') || c == 0x7f)
			return "contains control characters other than newline and tab";
	}
	return NULL;
}

/* Drops trailing whitespace (blank lines, a final newline) from a string in place;
 * returns the new length. */
static size_t trim_end(char *s, size_t len)
{
	while (len > 0 && strchr(" \t\r\n", s[len - 1]))
		len--;
	s[len] = '\0';
	return len;
}

/* A text key of grp (a route or an owners rule) into *out, when present and passing
 * `problem` (NULL: fine, else why not); a bad value is reported as "PFX.KEY: bad WHAT
 * "value" (why; expected EXPECTED)". */
static void get_checked_text(struct loader *ld, const config_setting_t *grp, const char *pfx, const char *key,
			     const char *(*problem)(const char *), const char *what, const char *expected,
			     char **out)
{
	const char *v = NULL;
	if (!get_string(ld, grp, pfx, key, &v) || !v)
		return;
	const char *why = problem(v);
	if (why) {
		struct strbuf sb = STRBUF_INIT;
		report(ld, config_setting_get_member(grp, key), "%s.%s: bad %s %s (%s; expected %s)", pfx, key, what,
		       shown(&sb, v), why, expected);
		strbuf_free(&sb);
		return;
	}
	free(*out);
	*out = xstrdup(v);
}

void get_runbook(struct loader *ld, const config_setting_t *grp, const char *pfx, char **out)
{
	get_checked_text(ld, grp, pfx, "runbook", runbook_problem, "URL",
			 "an http:// or https:// URL without whitespace or control characters", out);
}

void get_hint(struct loader *ld, const config_setting_t *grp, const char *pfx, char **out)
{
	get_checked_text(ld, grp, pfx, "hint", hint_problem, "hint",
			 "one line of at most 200 bytes without control characters", out);
}

/* Reads at most WORKFLOW_FILE_MAX bytes of path. Returns the text (caller frees) and its
 * length, or NULL with *err an errno value, or EFBIG when the file is longer. */
static char *read_workflow_file(const char *path, size_t *len, int *err)
{
	*err = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = errno;
		return NULL;
	}
	char *buf = xmalloc(WORKFLOW_FILE_MAX + 2);
	size_t n = 0;
	for (;;) {
		ssize_t got = read(fd, buf + n, WORKFLOW_FILE_MAX + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			*err = errno;
			break;
		}
		if (got == 0 || (n += (size_t)got) > WORKFLOW_FILE_MAX)
			break;
	}
	close(fd);
	if (!*err && n > WORKFLOW_FILE_MAX)
		*err = EFBIG;
	if (*err) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* chatops.workflow, or the text of chatops.workflow_file, into co->workflow. */
void load_workflow(struct loader *ld, const config_setting_t *grp, struct config_chatops *co)
{
	static const char expected_file[] = "expected a UTF-8 text file of at most 4000 bytes";
	const config_setting_t *ws = config_setting_get_member(grp, "workflow");
	const config_setting_t *fs = config_setting_get_member(grp, "workflow_file");
	struct strbuf sb = STRBUF_INIT;
	const char *v = NULL;
	if (ws && get_string(ld, grp, "chatops", "workflow", &v)) {
		char *text = xstrdup(v);
		size_t len = trim_end(text, strlen(text));
		const char *why = workflow_problem(text, len);
		if (why) {
			report(ld, ws, "chatops.workflow: bad workflow %s (%s; expected text of at most 4000 "
			       "bytes, or no workflow key)", shown(&sb, v), why);
			free(text);
		} else {
			co->workflow = text;
		}
	}
	char *path = NULL;
	if (fs && ws) {
		report(ld, fs, "chatops.workflow_file: set together with chatops.workflow on line %d (expected "
		       "only one of them)", config_setting_source_line(ws));
	} else if (fs && get_path(ld, grp, "chatops", "workflow_file", &path) && path) {
		size_t len = 0;
		int err;
		char *text = read_workflow_file(path, &len, &err);
		if (!text && err == EFBIG) {
			report(ld, fs, "chatops.workflow_file: %s: longer than 4000 bytes (%s)", path, expected_file);
		} else if (!text) {
			report(ld, fs, "chatops.workflow_file: cannot read %s: %s", path, strerror(err));
		} else {
			/* CRLF line ends of a file written on Windows become plain newlines. */
			size_t o = 0;
			for (size_t i = 0; i < len; i++)
				if (!(text[i] == '\r' && i + 1 < len && text[i + 1] == '\n'))
					text[o++] = text[i];
			len = trim_end(text, o);
			const char *why = workflow_problem(text, len);
			if (why) {
				report(ld, fs, "chatops.workflow_file: %s: %s (%s)", path, why, expected_file);
				free(text);
			} else {
				co->workflow = text;
			}
		}
	}
	free(path);
	strbuf_free(&sb);
}
