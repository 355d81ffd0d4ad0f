/* report: turns a decoded Zuul event into what a template needs (the view model),
 * renders the route's templates into Matrix message content, and converts HTML to text. */
#include "report.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "duration.h"
#include "report_internal.h"
#include "strbuf.h"
#include "textutil.h"

/* ------------------------------------------------------------------------ */
/* Small string helpers                                                      */

static bool starts_with(const char *s, const char *prefix)
{
	return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool is_digits(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* ------------------------------------------------------------------------ */
/* cJSON helpers. Every documented key is always present, null when unknown:
 * Mustache looks a missing key up in the enclosing contexts, so a build without
 * a duration would otherwise show the buildset's.
 * Keys are always string literals, so they are attached without a copy
 * (cJSON_AddItemToObjectCS): a view has a few hundred of them, and copying each was
 * a good share of the allocations of a report. */

static void put(cJSON *obj, const char *literal_key, cJSON *item)
{
	cJSON_AddItemToObjectCS(obj, literal_key, item);
}

static void add_str(cJSON *obj, const char *key, const char *value)
{
	put(obj, key, value ? cJSON_CreateString(value) : cJSON_CreateNull());
}

/* For values with static storage (icons, colours, labels): no copy either. */
static void add_static_str(cJSON *obj, const char *key, const char *value)
{
	put(obj, key, value ? cJSON_CreateStringReference(value) : cJSON_CreateNull());
}

static void add_url(cJSON *obj, const char *key, const char *url)
{
	add_str(obj, key, textutil_url_is_safe(url) ? url : NULL);
}

static void add_bool(cJSON *obj, const char *key, bool value)
{
	put(obj, key, cJSON_CreateBool(value));
}

static void add_int(cJSON *obj, const char *key, long long value)
{
	put(obj, key, cJSON_CreateNumber((double)value));
}

static cJSON *add_array(cJSON *obj, const char *key)
{
	cJSON *a = cJSON_CreateArray();
	put(obj, key, a);
	return a;
}

/* Unix seconds that gmtime can print as a four-digit year: anything else is
 * treated as unknown rather than rendered as nonsense. */
static bool time_is_known(double t)
{
	return isfinite(t) && t > 0 && t < 253402300800.0;
}

static char *put2(char *p, unsigned v)
{
	*p++ = (char)('0' + v / 10 % 10);
	*p++ = (char)('0' + v % 10);
	return p;
}

/* The civil UTC date of Unix seconds (days since 1970 -> y/m/d, Howard Hinnant's
 * algorithm) without gmtime_r + strftime, which took the time zone lock and parsed a
 * format three times per timestamp. secs is known to lie in years 1970..9999. */
static void utc_fields(long long secs, unsigned f[6])
{
	long long days = secs / 86400, rem = secs % 86400;
	days += 719468;
	long long era = days / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;
	f[0] = (unsigned)(yoe + era * 400) + (m <= 2);
	f[1] = m;
	f[2] = d;
	f[3] = (unsigned)(rem / 3600);
	f[4] = (unsigned)(rem / 60 % 60);
	f[5] = (unsigned)(rem % 60);
}

/* T (the number), T_iso "2024-11-21T09:33:10Z", T_text "2024-11-21 09:33:10 UTC",
 * T_clock "09:33:10"; all null when the time is unknown. The four keys are literals
 * given by the ADD_TIME macro. */
static void add_time4(cJSON *obj, const char *key, const char *k_iso, const char *k_text, const char *k_clock,
		      double t)
{
	if (!time_is_known(t)) {
		put(obj, key, cJSON_CreateNull());
		put(obj, k_iso, cJSON_CreateNull());
		put(obj, k_text, cJSON_CreateNull());
		put(obj, k_clock, cJSON_CreateNull());
		return;
	}
	unsigned f[6];
	utc_fields((long long)floor(t), f);
	char date[16], clock[16], buf[40];
	char *p = put2(put2(date, f[0] / 100), f[0] % 100);
	*p++ = '-';
	p = put2(p, f[1]);
	*p++ = '-';
	p = put2(p, f[2]);
	*p = '\0';
	p = put2(clock, f[3]);
	*p++ = ':';
	p = put2(p, f[4]);
	*p++ = ':';
	p = put2(p, f[5]);
	*p = '\0';
	put(obj, key, cJSON_CreateNumber(t));
	snprintf(buf, sizeof buf, "%sT%sZ", date, clock);
	add_str(obj, k_iso, buf);
	snprintf(buf, sizeof buf, "%s %s UTC", date, clock);
	add_str(obj, k_text, buf);
	add_str(obj, k_clock, clock);
}
#define ADD_TIME(obj, key, t) add_time4(obj, key, key "_iso", key "_text", key "_clock", t)

/* KEY "4m 29s" and KEY_seconds 269 for the span from start to end, when both
 * are known and in order. */
static void add_duration2(cJSON *obj, const char *key, const char *k_seconds, double start, double end)
{
	char buf[64];
	if (!time_is_known(start) || !time_is_known(end) || end < start) {
		put(obj, key, cJSON_CreateNull());
		put(obj, k_seconds, cJSON_CreateNull());
		return;
	}
	duration_format(end - start, buf, sizeof buf);
	add_str(obj, key, buf);
	put(obj, k_seconds, cJSON_CreateNumber(floor(end - start)));
}
#define ADD_DURATION(obj, key, start, end) add_duration2(obj, key, key "_seconds", start, end)

/* ------------------------------------------------------------------------ */
/* Actions and results: labels, icons, colours                               */

/* Colours for data-mx-color; GitHub's palette, readable on light and dark themes. */
#define COLOR_GREEN "#1a7f37"
#define COLOR_RED "#cf222e"
#define COLOR_ORANGE "#bc4c00"
#define COLOR_BLUE "#0969da"
#define COLOR_GREY "#6e7781"

struct action_style {
	const char *action;
	const char *is_key; /* "is_" + action with '-' as '_': the view's flag for it */
	const char *label;
	const char *icon;
	const char *color;
	bool problem; /* someone should look at it */
	bool final;   /* the buildset is over */
};

static const struct action_style action_styles[] = {
	{"start", "is_start", "Started", "\xe2\x96\xb6\xef\xb8\x8f", COLOR_BLUE, false, false},           /* ▶️ */
	{"enqueue", "is_enqueue", "Enqueued", "\xf0\x9f\x93\xa5", COLOR_BLUE, false, false},               /* 📥 */
	{"success", "is_success", "Succeeded", "\xe2\x9c\x85", COLOR_GREEN, false, true},                  /* ✅ */
	{"failure", "is_failure", "Failed", "\xe2\x9d\x8c", COLOR_RED, true, true},                         /* ❌ */
	{"merge-conflict", "is_merge_conflict", "Merge conflict", "\xf0\x9f\x94\x80", COLOR_ORANGE, true, true},  /* 🔀 */
	{"merge-failure", "is_merge_failure", "Merge failed", "\xf0\x9f\x94\x80", COLOR_ORANGE, true, true},     /* 🔀 */
	{"config-error", "is_config_error", "Configuration error", "\xe2\x9a\xa0\xef\xb8\x8f", COLOR_ORANGE, true, true}, /* ⚠️ */
	{"no-jobs", "is_no_jobs", "No jobs", "\xe2\x84\xb9\xef\xb8\x8f", COLOR_GREY, false, true},          /* ℹ️ */
	{"dequeue", "is_dequeue", "Dequeued", "\xe2\x8f\x8f\xef\xb8\x8f", COLOR_GREY, false, true},         /* ⏏️ */
	{"disabled", "is_disabled", "Disabled", "\xe2\x9b\x94", COLOR_RED, true, true},                      /* ⛔ */
};

static const struct action_style unknown_action = {NULL, NULL, NULL, "\xe2\x9d\x93", COLOR_GREY, false, true}; /* ❓ */

static const struct action_style *action_style_of(const char *action)
{
	for (size_t i = 0; i < sizeof action_styles / sizeof action_styles[0]; i++)
		if (action && strcmp(action, action_styles[i].action) == 0)
			return &action_styles[i];
	return &unknown_action;
}

enum result_class { RC_SUCCESS, RC_FAILURE, RC_PENDING, RC_NEUTRAL };

struct result_style {
	const char *result;
	enum result_class cls;
	const char *icon;
	const char *color;
};

static const struct result_style result_styles[] = {
	{"SUCCESS", RC_SUCCESS, "\xe2\x9c\x85", COLOR_GREEN},                      /* ✅ */
	{"FAILURE", RC_FAILURE, "\xe2\x9d\x8c", COLOR_RED},                        /* ❌ */
	{"POST_FAILURE", RC_FAILURE, "\xe2\x9d\x8c", COLOR_RED},                   /* ❌ */
	{"TIMED_OUT", RC_FAILURE, "\xe2\x8f\xb1\xef\xb8\x8f", COLOR_RED},          /* ⏱️ */
	{"RETRY_LIMIT", RC_FAILURE, "\xf0\x9f\x94\x81", COLOR_RED},                /* 🔁 */
	{"NODE_FAILURE", RC_FAILURE, "\xf0\x9f\x92\xa5", COLOR_RED},               /* 💥 */
	{"ERROR", RC_FAILURE, "\xf0\x9f\x92\xa5", COLOR_RED},                      /* 💥 */
	{"EXCEPTION", RC_FAILURE, "\xf0\x9f\x92\xa5", COLOR_RED},                  /* 💥 */
	{"LOST", RC_FAILURE, "\xf0\x9f\x92\xa5", COLOR_RED},                       /* 💥 */
	{"DISK_FULL", RC_FAILURE, "\xf0\x9f\x92\xa5", COLOR_RED},                  /* 💥 */
	{"MERGE_CONFLICT", RC_FAILURE, "\xf0\x9f\x94\x80", COLOR_ORANGE},          /* 🔀 */
	{"MERGE_FAILURE", RC_FAILURE, "\xf0\x9f\x94\x80", COLOR_ORANGE},           /* 🔀 */
	{"MERGER_FAILURE", RC_FAILURE, "\xf0\x9f\x94\x80", COLOR_ORANGE},          /* 🔀 */
	{"CONFIG_ERROR", RC_FAILURE, "\xe2\x9a\xa0\xef\xb8\x8f", COLOR_ORANGE},    /* ⚠️ */
	{"SNAPSHOT_FAILURE", RC_FAILURE, "\xf0\x9f\x92\xa5", COLOR_RED},           /* 💥 */
	{"SECRET_EXPOSURE", RC_FAILURE, "\xf0\x9f\x94\x92", COLOR_RED},            /* 🔒 */
	{"SKIPPED", RC_NEUTRAL, "\xe2\x8f\xad\xef\xb8\x8f", COLOR_GREY},           /* ⏭️ */
	{"ABORTED", RC_NEUTRAL, "\xe2\x8f\xb9\xef\xb8\x8f", COLOR_GREY},           /* ⏹️ */
	{"CANCELED", RC_NEUTRAL, "\xe2\x8f\xb9\xef\xb8\x8f", COLOR_GREY},          /* ⏹️ */
	{"DEQUEUED", RC_NEUTRAL, "\xe2\x8f\xb9\xef\xb8\x8f", COLOR_GREY},          /* ⏹️ */
	{"RETRY", RC_NEUTRAL, "\xf0\x9f\x94\x81", COLOR_GREY},                     /* 🔁 */
	{"NO_JOBS", RC_NEUTRAL, "\xe2\x84\xb9\xef\xb8\x8f", COLOR_GREY},         /* ℹ️ */
};

/* A result Zuul may add later is counted as a failure: a new way to fail must
 * not be hidden among the successes. */
static const struct result_style unknown_result = {NULL, RC_FAILURE, "\xe2\x9d\x93", COLOR_RED}; /* ❓ */
static const struct result_style pending_result = {NULL, RC_PENDING, "\xe2\x8f\xb3", COLOR_BLUE}; /* ⏳ */
/* On a final report nothing is pending any more: a job without a result never ran (no build,
 * or a build that never started), or was still running when Zuul dequeued the item. */
static const struct result_style not_run_result = {NULL, RC_NEUTRAL, "\xe2\x8f\xad\xef\xb8\x8f", COLOR_GREY}; /* ⏭️ */
static const struct result_style unfinished_result = {NULL, RC_NEUTRAL, "\xe2\x8f\xb9\xef\xb8\x8f", COLOR_GREY}; /* ⏹️ */
/* A job's own success-message or failure-message text: styled as what it stands for, and
 * as a speech bubble when that is unknown. */
static const struct result_style custom_failed_result = {NULL, RC_FAILURE, "\xe2\x9d\x8c", COLOR_RED};  /* ❌ */
static const struct result_style custom_success_result = {NULL, RC_SUCCESS, "\xe2\x9c\x85", COLOR_GREEN}; /* ✅ */
static const struct result_style custom_other_result = {NULL, RC_NEUTRAL, "\xf0\x9f\x92\xac", COLOR_GREY}; /* 💬 */

static const struct result_style *result_style_of(const char *result)
{
	if (!result || !*result)
		return &pending_result;
	for (size_t i = 0; i < sizeof result_styles / sizeof result_styles[0]; i++)
		if (strcmp(result, result_styles[i].result) == 0)
			return &result_styles[i];
	return &unknown_result;
}

/* ------------------------------------------------------------------------ */
/* Message, change and URL derivations                                        */

/* Shortens [start, *end) to at most max bytes, backing up to the start of a UTF-8
 * sequence so the cut keeps the text valid. Returns whether anything was cut. */
static bool utf8_cut(const char *start, const char **end, size_t max)
{
	if ((size_t)(*end - start) <= max)
		return false;
	*end = start + max;
	while (*end > start && ((unsigned char)**end & 0xC0) == 0x80)
		(*end)--;
	return true;
}

/* ------------------------------------------------------------------------ */
/* What to do: the runbook and hint the caller chose for a problem report      */

/* Whether s is well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF): Matrix content must be valid UTF-8, and a hint is shown as is. */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned char c = *p;
		size_t n;
		unsigned long cp;
		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xC2 && c <= 0xDF) {
			n = 1;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			n = 2;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3F);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		    (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		p += n + 1;
	}
	return true;
}

/* Longest hint, in bytes: the configuration allows one line of 200; a caller handing
 * more is cut rather than trusted to keep the message short. */
#define HINT_MAX 200

/* The hint as one line: control characters and whitespace runs become one space, ends
 * trimmed, cut at HINT_MAX bytes with "…". NULL when hint is NULL, not UTF-8, or blank.
 * Caller frees. */
static char *hint_line_new(const char *hint)
{
	if (!hint || !utf8_valid(hint))
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	bool space = false;
	for (const unsigned char *p = (const unsigned char *)hint; *p; p++) {
		if (*p <= 0x20 || *p == 0x7f) {
			space = sb.len > 0;
			continue;
		}
		if (space)
			strbuf_putc(&sb, ' ');
		space = false;
		strbuf_putc(&sb, (char)*p);
	}
	if (sb.len == 0) {
		strbuf_free(&sb);
		return NULL;
	}
	const char *start = sb.data, *end = start + sb.len;
	if (utf8_cut(start, &end, HINT_MAX)) {
		while (end > start && end[-1] == ' ')
			end--;
		sb.len = (size_t)(end - start);
		sb.data[sb.len] = '\0';
		strbuf_puts(&sb, "\xe2\x80\xa6"); /* … */
	}
	return strbuf_detach(&sb);
}

/* what_to_do: {runbook, runbook_ok, hint} under a problem report when the caller gave
 * a usable runbook or hint; null otherwise (a report that is not a problem, or nothing
 * to show). A runbook that is not a safe http(s) URL is dropped, as every URL is. */
static void add_what_to_do(cJSON *view, const struct action_style *as, const struct report_context *ctx)
{
	const char *runbook = ctx && textutil_url_is_safe(ctx->runbook) ? ctx->runbook : NULL;
	char *hint = ctx ? hint_line_new(ctx->hint) : NULL;
	if (!as->problem || (!runbook && !hint)) {
		put(view, "what_to_do", cJSON_CreateNull());
		free(hint);
		return;
	}
	cJSON *w = cJSON_CreateObject();
	add_str(w, "runbook", runbook);
	add_bool(w, "runbook_ok", runbook != NULL);
	add_str(w, "hint", hint);
	put(view, "what_to_do", w);
	free(hint);
}

/* Branch or tag name of a ref, or NULL when the ref is neither. */
static const char *ref_name_of(const char *ref, const char **kind)
{
	if (starts_with(ref, "refs/heads/") && ref[11]) {
		*kind = "branch";
		return ref + 11;
	}
	if (starts_with(ref, "refs/tags/") && ref[10]) {
		*kind = "tag";
		return ref + 10;
	}
	return NULL;
}

/* The forge's project page, when change_url is a known forge URL ending in
 * .../<project>/(pull|commit|-/merge_requests|...)/... so we never guess. */
static char *project_url_new(const char *change_url, const char *project)
{
	static const char *const markers[] = {"/-/merge_requests/", "/-/commit/", "/merge_requests/",
					      "/pull/", "/pulls/", "/commit/", "/tree/"};
	if (!textutil_url_is_safe(change_url) || !project || !*project)
		return NULL;
	for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++) {
		const char *m = strstr(change_url, markers[i]);
		if (!m)
			continue;
		size_t plen = strlen(project);
		size_t prefix = (size_t)(m - change_url);
		if (prefix > plen && change_url[prefix - plen - 1] == '/' &&
		    strncmp(change_url + prefix - plen, project, plen) == 0)
			return xstrndup(change_url, prefix);
		return NULL;
	}
	return NULL;
}

/* Adds the fields of one change (item or entry of changes[]) to obj: payload
 * fields plus change_label/change_kind/short_commit/ref_name/project_url. */
static void add_change_fields(cJSON *obj, const struct zuul_change *c)
{
	add_str(obj, "project", c->project);
	add_str(obj, "branch", c->branch);
	add_str(obj, "change", c->change);
	add_str(obj, "patchset", c->patchset);
	add_str(obj, "commit_id", c->commit_id);
	add_str(obj, "owner", c->owner);
	add_str(obj, "ref", c->ref);
	add_str(obj, "topic", c->topic);
	add_url(obj, "change_url", c->change_url);

	const char *commit = c->commit_id;
	/* Legacy payloads carry the commit only as the patchset of a push. */
	if (!commit && c->patchset && strlen(c->patchset) >= 12 && !is_digits(c->patchset))
		commit = c->patchset;
	bool have_short = false;
	if (commit && *commit) {
		char short_commit[8];
		snprintf(short_commit, sizeof short_commit, "%.7s", commit);
		/* A cut in the middle of a multi-byte character would be invalid UTF-8. */
		size_t n = strlen(short_commit);
		while (n > 0 && ((unsigned char)short_commit[n - 1] & 0x80))
			short_commit[--n] = '\0';
		if (n > 0) {
			add_str(obj, "short_commit", short_commit);
			have_short = true;
		}
	}
	if (!have_short)
		add_str(obj, "short_commit", NULL);

	const char *ref_kind = NULL;
	const char *ref_name = ref_name_of(c->ref, &ref_kind);
	add_str(obj, "ref_name", ref_name);

	const char *kind = NULL;
	struct strbuf label = STRBUF_INIT;
	const char *url = c->change_url ? c->change_url : "";
	if (c->change && *c->change) {
		if (strstr(url, "/merge_requests/")) {
			kind = "merge_request";
			strbuf_printf(&label, "!%s", c->change);
		} else if (strstr(url, "/pull/") || strstr(url, "/pulls/") || strstr(url, "/pull-request/")) {
			kind = "pull_request";
			strbuf_printf(&label, "#%s", c->change);
		} else if (is_digits(c->patchset) || (!c->patchset && !*url)) {
			/* Gerrit: Zuul itself names an item "change,patchset". */
			kind = "change";
			if (c->patchset)
				strbuf_printf(&label, "%s,%s", c->change, c->patchset);
			else
				strbuf_puts(&label, c->change);
		} else {
			/* A change number with a commit patchset and an unknown forge: most
			 * forges besides Gerrit and GitLab number their requests with '#'. */
			kind = "pull_request";
			strbuf_printf(&label, "#%s", c->change);
		}
	} else if (ref_name) {
		kind = ref_kind;
		strbuf_puts(&label, ref_name);
	} else if (c->branch && *c->branch) {
		kind = "branch";
		strbuf_puts(&label, c->branch);
	} else if (commit && *commit) {
		kind = "commit";
		strbuf_printf(&label, "%.7s", commit);
	} else if (c->ref && *c->ref) {
		kind = "ref";
		strbuf_puts(&label, c->ref);
	}
	static const char *const kind_labels[][2] = {
		{"pull_request", "Pull request"}, {"merge_request", "Merge request"}, {"change", "Change"},
		{"branch", "Branch"},             {"tag", "Tag"},                     {"commit", "Commit"},
		{"ref", "Ref"},
	};
	const char *kind_label = NULL;
	for (size_t i = 0; kind && i < sizeof kind_labels / sizeof kind_labels[0]; i++)
		if (strcmp(kind, kind_labels[i][0]) == 0)
			kind_label = kind_labels[i][1];
	add_str(obj, "change_label", kind ? strbuf_str(&label) : NULL);
	add_str(obj, "change_kind", kind);
	add_str(obj, "change_kind_label", kind_label);
	strbuf_free(&label);
	add_bool(obj, "has_change", c->change && *c->change);
	add_bool(obj, "is_pull_request", kind && strcmp(kind, "pull_request") == 0);
	add_bool(obj, "is_merge_request", kind && strcmp(kind, "merge_request") == 0);
	add_bool(obj, "is_gerrit_change", kind && strcmp(kind, "change") == 0);
	add_bool(obj, "is_branch", kind && strcmp(kind, "branch") == 0);
	add_bool(obj, "is_tag", kind && strcmp(kind, "tag") == 0);
	add_bool(obj, "is_commit", kind && strcmp(kind, "commit") == 0);
	add_bool(obj, "is_ref", kind && strcmp(kind, "ref") == 0);

	char *project_url = project_url_new(c->change_url, c->project);
	add_str(obj, "project_url", project_url);
	free(project_url);
}

/* ------------------------------------------------------------------------ */
/* The view model                                                             */

struct view_ctx {
	const struct zuul_event *ev;
	const struct report_context *ctx; /* may be NULL */
	const char *root;    /* the tenant's Zuul web root, ending in '/'; may be NULL */
	const char *project; /* item project, fallback for builds */
	bool final;          /* the report is final: nothing is pending any more */
};

/* How a build reads: its Zuul result's style; for a job's custom text the style of what it
 * stands for; without a result, pending, or on a final report not run / unfinished. */
static const struct result_style *build_style(const struct view_ctx *vc, const struct zuul_build *b)
{
	if (b->result && *b->result && b->custom_result) {
		if (b->custom_means && strcmp(b->custom_means, "FAILURE") == 0)
			return &custom_failed_result;
		if (b->custom_means && strcmp(b->custom_means, "SUCCESS") == 0)
			return &custom_success_result;
		/* A failure-message also replaces a running build's None. */
		if (!vc->final && !time_is_known(b->end_time))
			return &pending_result;
		return &custom_other_result;
	}
	if ((!b->result || !*b->result) && vc->final)
		return time_is_known(b->start_time) ? &unfinished_result : &not_run_result;
	return result_style_of(b->result);
}

static const char *build_label(const struct view_ctx *vc, const struct zuul_build *b)
{
	if (b->result && *b->result)
		return b->result; /* Zuul's word, or the job's own text as Zuul wrote it */
	if (vc->final)
		return time_is_known(b->start_time) ? "UNFINISHED" : "NOT RUN";
	return time_is_known(b->start_time) ? "RUNNING" : "PENDING";
}

static int build_rank(const struct view_ctx *vc, const struct zuul_build *b)
{
	const struct result_style *rs = build_style(vc, b);
	switch (rs->cls) {
	case RC_FAILURE:
		return b->voting ? 0 : 1;
	case RC_PENDING:
		return 2;
	case RC_NEUTRAL:
		return 3;
	case RC_SUCCESS:
		break;
	}
	return 4;
}

/* The build's details from the caller; NULL for a retried attempt (the details are about
 * the build that counted) and when the caller has none. */
static const struct build_details *build_details_of(const struct view_ctx *vc, const struct zuul_build *b)
{
	if (b->retried || !b->uuid || !vc->ctx || !vc->ctx->details_of)
		return NULL;
	return vc->ctx->details_of(b->uuid, vc->ctx->details_data);
}

static cJSON *build_view_new(const struct view_ctx *vc, const struct zuul_build *b)
{
	cJSON *o = cJSON_CreateObject();
	const struct result_style *rs = build_style(vc, b);
	add_str(o, "job_name", b->job_name);
	add_str(o, "job_uuid", b->job_uuid);
	add_str(o, "uuid", b->uuid);
	add_str(o, "result", b->result);
	add_str(o, "result_label", build_label(vc, b));
	add_bool(o, "result_is_custom", b->custom_result);
	add_static_str(o, "result_means", b->custom_result ? b->custom_means : NULL);
	add_bool(o, "has_build", b->has_build);
	add_bool(o, "not_run", vc->final && !(b->result && *b->result) && !time_is_known(b->start_time));
	add_static_str(o, "icon", rs->icon);
	add_static_str(o, "color", rs->color);
	add_bool(o, "voting", b->voting);
	add_bool(o, "non_voting", !b->voting);
	add_bool(o, "retried", b->retried);
	add_bool(o, "is_success", rs->cls == RC_SUCCESS);
	add_bool(o, "is_failure", rs->cls == RC_FAILURE);
	add_bool(o, "is_pending", rs->cls == RC_PENDING);
	add_url(o, "log_url", b->log_url);
	add_url(o, "web_url", b->web_url);
	if (textutil_url_is_safe(b->web_url))
		add_str(o, "url", b->web_url);
	else
		add_url(o, "url", b->log_url);

	const char *project = b->change && b->change->project ? b->change->project : vc->project;
	add_str(o, "project", project);
	/* Zuul's own "builds" page of the tenant, filtered like its job history links. */
	char *history = b->job_name && *b->job_name
				? report_query_link_new(vc->root, "builds", "job_name", b->job_name, "project", project)
				: NULL;
	add_url(o, "history_url", history);
	free(history);
	/* In an item of several changes, which one this build tested. */
	add_bool(o, "show_change", vc->ev->n_changes > 1 && b->change != NULL);

	ADD_TIME(o, "execute_time", b->execute_time);
	ADD_TIME(o, "start_time", b->start_time);
	ADD_TIME(o, "end_time", b->end_time);
	ADD_DURATION(o, "duration", b->start_time, b->end_time);

	if (b->change) {
		cJSON *c = cJSON_CreateObject();
		add_change_fields(c, b->change);
		put(o, "change", c);
	} else {
		put(o, "change", cJSON_CreateNull());
	}
	cJSON *arts = add_array(o, "artifacts");
	for (size_t i = 0; i < b->n_artifacts; i++) {
		cJSON *a = cJSON_CreateObject();
		add_str(a, "name", b->artifacts[i].name);
		add_url(a, "url", b->artifacts[i].url);
		cJSON_AddItemToArray(arts, a);
	}
	add_bool(o, "has_artifacts", b->n_artifacts > 0);
	cJSON *deps = add_array(o, "dependencies");
	for (size_t i = 0; i < b->n_dependencies; i++)
		if (b->dependencies[i])
			cJSON_AddItemToArray(deps, cJSON_CreateString(b->dependencies[i]));
	add_bool(o, "has_dependencies", b->n_dependencies > 0);
	report_details_add(o, build_details_of(vc, b));
	return o;
}

static void add_builds(cJSON *view, const struct view_ctx *vc)
{
	const struct zuul_event *ev = vc->ev;
	cJSON *builds = add_array(view, "builds");
	cJSON *sorted = add_array(view, "sorted_builds");
	cJSON *failed = add_array(view, "failed_builds");
	cJSON *nv = add_array(view, "non_voting_builds");
	cJSON *nv_failed = add_array(view, "non_voting_failed_builds");
	cJSON *succeeded = add_array(view, "succeeded_builds");
	cJSON *pending = add_array(view, "pending_builds");
	cJSON *other = add_array(view, "other_builds");
	cJSON *retried = add_array(view, "retried_builds");

	/* sorted_builds: stable order by rank (failed voting, failed non-voting, pending,
	 * neutral, success): the failures are what the reader came for.
	 * Each build's view is made once, owned by `builds`; the other lists hold cJSON
	 * references to it (deleting a reference leaves the view alone). */
	int ranks_seen = 0;
	for (size_t i = 0; i < ev->n_builds; i++) {
		const struct zuul_build *b = &ev->builds[i];
		cJSON *v = build_view_new(vc, b);
		cJSON_AddItemToArray(builds, v);
		int rank = build_rank(vc, b);
		ranks_seen |= 1 << rank;
		cJSON *list = rank == 0 ? failed : rank == 1 ? nv_failed : rank == 2 ? pending
			    : rank == 3 ? other : succeeded;
		cJSON_AddItemReferenceToArray(list, v);
		if (!b->voting)
			cJSON_AddItemReferenceToArray(nv, v);
	}
	for (int rank = 0; rank <= 4; rank++) {
		if (!(ranks_seen & (1 << rank)))
			continue;
		size_t i = 0;
		for (const cJSON *v = builds->child; v; v = v->next, i++)
			if (build_rank(vc, &ev->builds[i]) == rank)
				cJSON_AddItemReferenceToArray(sorted, (cJSON *)v);
	}
	for (size_t i = 0; i < ev->n_retry_builds; i++)
		cJSON_AddItemToArray(retried, build_view_new(vc, &ev->retry_builds[i]));

	add_int(view, "build_count", (long long)ev->n_builds);
	add_int(view, "failed_count", cJSON_GetArraySize(failed));
	add_int(view, "non_voting_count", cJSON_GetArraySize(nv));
	add_int(view, "non_voting_failed_count", cJSON_GetArraySize(nv_failed));
	add_int(view, "succeeded_count", cJSON_GetArraySize(succeeded));
	add_int(view, "pending_count", cJSON_GetArraySize(pending));
	add_int(view, "other_count", cJSON_GetArraySize(other));
	add_int(view, "retried_count", (long long)ev->n_retry_builds);
	add_bool(view, "has_builds", ev->n_builds > 0);
	/* Set by report_content_new when the message had to leave builds out. */
	add_int(view, "omitted_count", 0);
	add_bool(view, "has_omitted_builds", false);
	add_bool(view, "has_failed_builds", cJSON_GetArraySize(failed) > 0);
	add_bool(view, "has_non_voting_builds", cJSON_GetArraySize(nv) > 0);
	add_bool(view, "has_non_voting_failed_builds", cJSON_GetArraySize(nv_failed) > 0);
	add_bool(view, "has_succeeded_builds", cJSON_GetArraySize(succeeded) > 0);
	add_bool(view, "has_pending_builds", cJSON_GetArraySize(pending) > 0);
	add_bool(view, "has_retried_builds", ev->n_retry_builds > 0);
}

/* The build lists besides `builds` and `retried_builds` hold cJSON references to the
 * objects `builds` owns: a caller trimming the view deletes from those lists (as
 * view_shrink_builds does), never from `builds` while the view is in use. */
cJSON *report_view_new(const struct zuul_event *ev, const struct report_context *ctx)
{
	cJSON *view = cJSON_CreateObject();
	const struct action_style *as = action_style_of(ev->action);

	add_str(view, "route", ctx ? ctx->route_name : NULL);
	add_str(view, "schema", ev->schema == ZUUL_SCHEMA_CURRENT ? "current" : "legacy");
	add_str(view, "action", ev->action);
	add_str(view, "action_label", as->label ? as->label : ev->action);
	add_static_str(view, "icon", as->icon);
	add_static_str(view, "color", as->color);
	/* is_<action> for every known action, so a template can branch on any. */
	for (size_t i = 0; i < sizeof action_styles / sizeof action_styles[0]; i++)
		add_bool(view, action_styles[i].is_key, as == &action_styles[i]);
	/* merge-failure is the legacy name of merge-conflict: one section covers both. */
	if (ev->action && strcmp(ev->action, "merge-failure") == 0)
		cJSON_ReplaceItemInObject(view, "is_merge_conflict", cJSON_CreateTrue());
	add_bool(view, "is_problem", as->problem);
	add_bool(view, "is_final", as->final);
	add_what_to_do(view, as, ctx);

	add_str(view, "tenant", ev->tenant);
	add_str(view, "pipeline", ev->pipeline);
	add_str(view, "queue", ev->queue);
	add_str(view, "uuid", ev->uuid);
	add_str(view, "zuul_ref", ev->zuul_ref);
	add_str(view, "zuul_event_id", ev->zuul_event_id);
	add_str(view, "message", ev->message);
	report_message_add(view, ev->message, as->label ? as->label : ev->action);

	add_change_fields(view, &ev->item);
	cJSON *changes = add_array(view, "changes");
	if (ev->n_changes == 0) {
		/* Legacy payloads describe one change at the top level: list it so a
		 * template can iterate changes whatever the schema. */
		cJSON *c = cJSON_CreateObject();
		add_change_fields(c, &ev->item);
		cJSON_AddItemToArray(changes, c);
	}
	for (size_t i = 0; i < ev->n_changes; i++) {
		cJSON *c = cJSON_CreateObject();
		add_change_fields(c, &ev->changes[i]);
		cJSON_AddItemToArray(changes, c);
	}
	add_int(view, "change_count", cJSON_GetArraySize(changes));
	add_bool(view, "has_several_changes", cJSON_GetArraySize(changes) > 1);

	ADD_TIME(view, "timestamp", ev->timestamp);
	ADD_TIME(view, "trigger_time", ev->trigger_time);
	ADD_TIME(view, "enqueue_time", ev->enqueue_time);
	ADD_DURATION(view, "duration", ev->enqueue_time, ev->timestamp);

	char *root = report_web_root_new(ev);
	char *zuul_url = report_zuul_url_new(root, ev->tenant);
	add_url(view, "zuul_url", zuul_url);
	free(zuul_url);
	add_url(view, "tenant_url", root);
	const char *result = zuul_event_result(ev);
	cJSON *bs = cJSON_CreateObject();
	put(view, "buildset", bs);
	add_str(bs, "uuid", ev->buildset_uuid);
	add_str(bs, "result", ev->buildset_result);
	char *link = ev->buildset_uuid ? report_link_new(root, "buildset/", ev->buildset_uuid) : NULL;
	add_url(bs, "url", link);
	add_url(view, "buildset_url", link);
	free(link);
	link = report_item_url_new(root, ev);
	add_url(view, "item_url", link);
	free(link);
	link = ev->item.project ? report_query_link_new(root, "buildsets", "project", ev->item.project, "pipeline",
							ev->pipeline)
				: NULL;
	add_url(view, "buildsets_url", link);
	free(link);
	add_str(view, "result", result);
	const struct result_style *rs = result ? result_style_of(result) : NULL;
	add_static_str(view, "result_icon", rs ? rs->icon : NULL);
	add_static_str(view, "result_color", rs ? rs->color : NULL);

	struct view_ctx vc = {ev, ctx, root, ev->item.project, as->final};
	add_builds(view, &vc);
	free(root);
	return view;
}

/* ------------------------------------------------------------------------ */
/* Templates and content                                                      */

int report_templates_load(struct report_templates *rt, const char *path, char *err, size_t errlen)
{
	rt->html = NULL;
	rt->text = NULL;
	struct template *html = template_load_file(path, NULL, err, errlen);
	if (!html)
		return -1;

	/* The companion: same name, last extension replaced by .txt (never the file itself). */
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	size_t stem = (dot && (!slash || dot > slash + 1)) ? (size_t)(dot - path) : strlen(path);
	struct strbuf txt = STRBUF_INIT;
	strbuf_append(&txt, path, stem);
	strbuf_puts(&txt, ".txt");
	struct template *text = NULL;
	if (strcmp(strbuf_str(&txt), path) != 0) {
		FILE *f = fopen(strbuf_str(&txt), "r");
		if (f) {
			fclose(f);
			text = template_load_file(strbuf_str(&txt), NULL, err, errlen);
			if (!text) {
				strbuf_free(&txt);
				template_free(html);
				return -1;
			}
		}
	}
	strbuf_free(&txt);
	rt->html = html;
	rt->text = text;
	return 0;
}

void report_templates_clear(struct report_templates *rt)
{
	template_free(rt->html);
	template_free(rt->text);
	rt->html = NULL;
	rt->text = NULL;
}

/* Template files end with a newline and may start with comments' leftovers:
 * the message itself should not. Returns s trimmed in place. */
static char *trim_in_place(char *s)
{
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	size_t lead = strspn(s, " \t\r\n");
	if (lead)
		memmove(s, s + lead, n - lead + 1);
	return s;
}

/* Renders view into a content object (caller frees). */
static cJSON *content_render(const struct report_templates *rt, const cJSON *view)
{
	struct strbuf sb = STRBUF_INIT;
	if (rt->html)
		template_render(rt->html, view, &sb);
	char *html = trim_in_place(strbuf_detach(&sb));
	char *text;
	if (rt->text) {
		template_render(rt->text, view, &sb);
		text = trim_in_place(strbuf_detach(&sb));
	} else {
		text = report_html_to_text(html);
	}
	cJSON *content = cJSON_CreateObject();
	cJSON_AddStringToObject(content, "msgtype", "m.notice");
	cJSON_AddStringToObject(content, "body", text);
	cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(content, "formatted_body", html);
	/* Present and empty: a report pings nobody by itself (the chatops stage adds whom it
	 * means), and without the key homeservers fall back to the legacy keyword rules, so
	 * "@room" or a member's name in Zuul's text would ping. */
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	free(html);
	free(text);
	return content;
}

/* The compact JSON size of content. JSON escaping makes a byte at most six ("\u001f"),
 * so when even that bound fits, the exact size is not needed and the content is not
 * printed a second time just to measure it. */
static size_t content_size(const cJSON *content, size_t max)
{
	size_t bound = 64;
	for (const cJSON *c = content->child; c; c = c->next)
		bound += 8 + strlen(c->string ? c->string : "") +
			 6 * strlen(cJSON_IsString(c) && c->valuestring ? c->valuestring : "");
	if (bound <= max)
		return bound;
	char *json = cJSON_PrintUnformatted(content);
	size_t n = json ? strlen(json) : SIZE_MAX;
	cJSON_free(json);
	return n;
}

/* Keeps the first `keep` entries of the view's sorted_builds (successes come last),
 * empties the retried list, and tells the template how many builds it no longer shows. */
static void view_shrink_builds(cJSON *view, int keep)
{
	cJSON *sorted = cJSON_GetObjectItemCaseSensitive(view, "sorted_builds");
	int n = cJSON_GetArraySize(sorted);
	while (n > keep)
		cJSON_DeleteItemFromArray(sorted, --n);
	cJSON *retried = cJSON_GetObjectItemCaseSensitive(view, "retried_builds");
	const cJSON *retried_count = cJSON_GetObjectItemCaseSensitive(view, "retried_count");
	int omitted = cJSON_IsNumber(retried_count) ? retried_count->valueint : 0;
	while (cJSON_GetArraySize(retried) > 0)
		cJSON_DeleteItemFromArray(retried, 0);
	cJSON_ReplaceItemInObject(view, "has_retried_builds", cJSON_CreateFalse());
	const cJSON *count = cJSON_GetObjectItemCaseSensitive(view, "build_count");
	omitted += (cJSON_IsNumber(count) ? count->valueint : n) - n;
	cJSON_ReplaceItemInObject(view, "omitted_count", cJSON_CreateNumber(omitted));
	cJSON_ReplaceItemInObject(view, "has_omitted_builds", cJSON_CreateBool(omitted > 0));
}

cJSON *report_content_new(const struct report_templates *rt, const struct zuul_event *ev,
			  const struct report_context *ctx)
{
	cJSON *view = report_view_new(ev, ctx);
	cJSON *content = content_render(rt, view);
	size_t reserve = ctx ? ctx->reserve_bytes : 0;
	size_t max = REPORT_MAX_CONTENT_BYTES - (reserve < REPORT_MAX_CONTENT_BYTES / 2 ? reserve
											: REPORT_MAX_CONTENT_BYTES / 2);
	/* A homeserver refuses events over 64 KiB (M_TOO_LARGE), which would dead-letter the
	 * report. Shed detail instead, least useful first: successful builds and retries,
	 * then half of what is left, until the message fits. */
	if (content_size(content, max) > max) {
		const cJSON *ok = cJSON_GetObjectItemCaseSensitive(view, "succeeded_count");
		int keep = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(view, "sorted_builds")) -
			   (cJSON_IsNumber(ok) ? ok->valueint : 0);
		for (;;) {
			view_shrink_builds(view, keep);
			cJSON_Delete(content);
			content = content_render(rt, view);
			if (content_size(content, max) <= max || keep == 0)
				break;
			keep /= 2;
		}
	}
	cJSON_Delete(view);
	return content;
}

