/* incident: decides which failure reports are symptoms of broken infrastructure and groups
 * them into incidents per (tenant, cause); renders an incident as Matrix message content. */
#include "incident.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "strbuf.h"
#include "textutil.h"

const char *const incident_default_infra_results[] = {
	"NODE_FAILURE", "RETRY_LIMIT", "POST_FAILURE", "DISK_FULL", "LOST", "EXCEPTION", "ERROR", NULL,
};

struct member {
	char *project;
	char *job;
	char *result;
	char *url;       /* the raw URL picked for the link; checked again when rendered */
	char *event_key;
	char *build_uuid;
	int64_t at_ms;
};

struct incident {
	char *id;
	char *tenant;
	char *cause;
	bool by_spread;
	char *job;            /* spread incidents: the job name (cause is "job " + job) */
	int64_t opened_ms;
	int64_t last_ms;
	bool closed;
	bool close_reported;
	struct member *members;
	size_t n_members;
	size_t n_more;        /* members past INCIDENT_MEMBERS_MAX, only counted */
};

/* A failed build of a remembered report: what spread detection needs. */
struct recent_build {
	struct member m;
	bool covered;   /* a member of some incident */
	bool candidate; /* a spread candidate: non-infra result, job and project known */
};

/* A report that was not absorbed and still has uncovered spread candidates. */
struct recent {
	char *event_key;
	char *tenant;
	int64_t at_ms;
	struct recent_build *builds;
	size_t n_builds;
};

struct incident_tracker {
	char **infra;
	size_t n_infra;
	long long window_s;
	int min_projects; /* < 2: spread grouping off */
	struct incident *incidents;
	size_t n_incidents;
	struct recent *recents;
	size_t n_recents;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                              */

static const char *nz(const char *s)
{
	return s ? s : "";
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(nz(a), nz(b)) == 0;
}

static void member_free(struct member *m)
{
	free(m->project);
	free(m->job);
	free(m->result);
	free(m->url);
	free(m->event_key);
	free(m->build_uuid);
}

static struct member member_copy(const struct member *m)
{
	return (struct member){
		.project = xstrdup(m->project),
		.job = xstrdup(m->job),
		.result = xstrdup(m->result),
		.url = xstrdup(m->url),
		.event_key = xstrdup(m->event_key),
		.build_uuid = xstrdup(m->build_uuid),
		.at_ms = m->at_ms,
	};
}

static bool member_same_build(const struct member *a, const struct member *b)
{
	if (a->build_uuid || b->build_uuid)
		return a->build_uuid && b->build_uuid && strcmp(a->build_uuid, b->build_uuid) == 0;
	return str_eq(a->event_key, b->event_key) && str_eq(a->project, b->project) && str_eq(a->job, b->job);
}

static void incident_free_fields(struct incident *inc)
{
	free(inc->id);
	free(inc->tenant);
	free(inc->cause);
	free(inc->job);
	for (size_t i = 0; i < inc->n_members; i++)
		member_free(&inc->members[i]);
	free(inc->members);
}

static void recent_free_fields(struct recent *r)
{
	free(r->event_key);
	free(r->tenant);
	for (size_t i = 0; i < r->n_builds; i++)
		member_free(&r->builds[i].m);
	free(r->builds);
}

static void state_clear(struct incident_tracker *t)
{
	for (size_t i = 0; i < t->n_incidents; i++)
		incident_free_fields(&t->incidents[i]);
	free(t->incidents);
	t->incidents = NULL;
	t->n_incidents = 0;
	for (size_t i = 0; i < t->n_recents; i++)
		recent_free_fields(&t->recents[i]);
	free(t->recents);
	t->recents = NULL;
	t->n_recents = 0;
}

static int64_t window_ms(const struct incident_tracker *t)
{
	return (int64_t)t->window_s * 1000;
}

static bool is_infra_result(const struct incident_tracker *t, const char *result)
{
	for (size_t i = 0; i < t->n_infra; i++)
		if (strcmp(t->infra[i], result) == 0)
			return true;
	return false;
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void put_sanitised(struct strbuf *sb, const char *s, size_t max)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)nz(s); *p && n < max; p++, n++)
		strbuf_putc(sb, (isalnum(*p) && *p < 0x80) || *p == '.' || *p == '_' ? (char)*p : '_');
	if (n == 0)
		strbuf_putc(sb, '_');
}

/* See "Ids" in the header. */
static char *incident_id_new(const char *tenant, bool by_spread, const char *cause, int64_t opened_ms)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	h = fnv1a(h, nz(tenant), strlen(nz(tenant)) + 1);
	h = fnv1a(h, by_spread ? "s" : "r", 1);
	h = fnv1a(h, nz(cause), strlen(nz(cause)));
	struct strbuf sb = STRBUF_INIT;
	put_sanitised(&sb, tenant, 40);
	strbuf_putc(&sb, '-');
	put_sanitised(&sb, cause, 40);
	strbuf_printf(&sb, "-%016llx-%lld", (unsigned long long)h, (long long)opened_ms);
	return strbuf_detach(&sb);
}

static void ids_add_unique(char ***ids, size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*ids)[i], id) == 0)
			return;
	*ids = xrealloc(*ids, (*n + 1) * sizeof **ids);
	(*ids)[(*n)++] = xstrdup(id);
}

static bool ids_contain(char *const *ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------------ */
/* Options and lifetime                                                       */

static void options_apply(struct incident_tracker *t, const struct incident_options *o)
{
	for (size_t i = 0; i < t->n_infra; i++)
		free(t->infra[i]);
	free(t->infra);
	t->infra = NULL;
	t->n_infra = 0;
	const char *const *list = o ? o->infra_results : NULL;
	size_t n = o ? o->n_infra_results : 0;
	if (!list) {
		list = incident_default_infra_results;
		for (n = 0; list[n]; n++)
			;
	}
	t->infra = xcalloc(n ? n : 1, sizeof *t->infra);
	for (size_t i = 0; i < n; i++)
		if (list[i])
			t->infra[t->n_infra++] = xstrdup(list[i]);
	t->window_s = o && o->job_window_s > 0 ? o->job_window_s : INCIDENT_DEFAULT_WINDOW_S;
	int mp = o ? o->job_min_projects : 0;
	if (mp == 0)
		mp = INCIDENT_DEFAULT_MIN_PROJECTS;
	else if (mp == 1)
		mp = 2;
	t->min_projects = mp;
}

struct incident_tracker *incident_tracker_new(const struct incident_options *o)
{
	struct incident_tracker *t = xcalloc(1, sizeof *t);
	options_apply(t, o);
	return t;
}

void incident_tracker_free(struct incident_tracker *t)
{
	if (!t)
		return;
	state_clear(t);
	for (size_t i = 0; i < t->n_infra; i++)
		free(t->infra[i]);
	free(t->infra);
	free(t);
}

void incident_tracker_set_options(struct incident_tracker *t, const struct incident_options *o)
{
	options_apply(t, o);
}

void incident_outcome_free(struct incident_outcome *out)
{
	if (!out)
		return;
	for (size_t i = 0; i < out->n_opened; i++)
		free(out->opened[i]);
	free(out->opened);
	for (size_t i = 0; i < out->n_grown; i++)
		free(out->grown[i]);
	free(out->grown);
	for (size_t i = 0; i < out->n_retro; i++) {
		free(out->retro[i].event_key);
		free(out->retro[i].incident_id);
	}
	free(out->retro);
	*out = (struct incident_outcome){0};
}

void incident_ids_free(char **ids)
{
	if (!ids)
		return;
	for (char **p = ids; *p; p++)
		free(*p);
	free(ids);
}

/* ------------------------------------------------------------------------ */
/* Incidents                                                                  */

static struct incident *find_open(struct incident_tracker *t, const char *tenant, bool by_spread, const char *cause)
{
	for (size_t i = 0; i < t->n_incidents; i++) {
		struct incident *inc = &t->incidents[i];
		if (!inc->closed && inc->by_spread == by_spread && str_eq(inc->tenant, tenant) && strcmp(inc->cause, cause) == 0)
			return inc;
	}
	return NULL;
}

static struct incident *find_id(const struct incident_tracker *t, const char *id)
{
	for (size_t i = 0; id && i < t->n_incidents; i++)
		if (strcmp(t->incidents[i].id, id) == 0)
			return &t->incidents[i];
	return NULL;
}

/* Closes open incidents whose window has passed; they stay unreported until incident_expire. */
static void close_due(struct incident_tracker *t, int64_t now_ms)
{
	for (size_t i = 0; i < t->n_incidents; i++) {
		struct incident *inc = &t->incidents[i];
		if (!inc->closed && now_ms - inc->last_ms >= window_ms(t))
			inc->closed = true;
	}
}

/* Returns the new incident; pointers into t->incidents are invalidated. */
static struct incident *incident_open(struct incident_tracker *t, const char *tenant, bool by_spread, const char *cause,
                                      const char *job, int64_t opened_ms)
{
	t->incidents = xrealloc(t->incidents, (t->n_incidents + 1) * sizeof *t->incidents);
	struct incident *inc = &t->incidents[t->n_incidents++];
	*inc = (struct incident){
		.id = incident_id_new(tenant, by_spread, cause, opened_ms),
		.tenant = xstrdup(nz(tenant)),
		.cause = xstrdup(cause),
		.by_spread = by_spread,
		.job = xstrdup(job),
		.opened_ms = opened_ms,
		.last_ms = opened_ms,
	};
	return inc;
}

/* Adds a copy of m unless that build is already a member; true when the incident changed. */
static bool incident_add(struct incident *inc, const struct member *m)
{
	for (size_t i = 0; i < inc->n_members; i++)
		if (member_same_build(&inc->members[i], m))
			return false;
	if (m->at_ms > inc->last_ms)
		inc->last_ms = m->at_ms;
	if (m->at_ms < inc->opened_ms)
		inc->opened_ms = m->at_ms;
	if (inc->n_members >= INCIDENT_MEMBERS_MAX) {
		inc->n_more++;
		return true;
	}
	inc->members = xrealloc(inc->members, (inc->n_members + 1) * sizeof *inc->members);
	inc->members[inc->n_members++] = member_copy(m);
	return true;
}

/* Forgets closed, reported incidents that closed long ago, and the oldest closed ones past
 * INCIDENT_CLOSED_MAX, so a tracker that runs for months stays small. */
static void forget_old(struct incident_tracker *t, int64_t now_ms)
{
	size_t n_closed = 0;
	for (size_t i = 0; i < t->n_incidents; i++)
		n_closed += t->incidents[i].closed && t->incidents[i].close_reported;
	size_t j = 0;
	for (size_t i = 0; i < t->n_incidents; i++) {
		struct incident *inc = &t->incidents[i];
		bool old = inc->closed && inc->close_reported &&
		           (now_ms - (inc->last_ms + window_ms(t)) >= (int64_t)INCIDENT_CLOSED_KEEP_S * 1000 ||
		            n_closed > INCIDENT_CLOSED_MAX);
		if (old) {
			/* Incidents are kept in opening order, so the first closed ones are the oldest. */
			n_closed--;
			incident_free_fields(inc);
			continue;
		}
		t->incidents[j++] = *inc;
	}
	t->n_incidents = j;
}

size_t incident_expire(struct incident_tracker *t, int64_t now_ms, char ***closed_ids)
{
	close_due(t, now_ms);
	char **ids = NULL;
	size_t n = 0;
	for (size_t i = 0; i < t->n_incidents; i++) {
		struct incident *inc = &t->incidents[i];
		if (!inc->closed || inc->close_reported)
			continue;
		inc->close_reported = true;
		if (closed_ids) {
			ids = xrealloc(ids, (n + 2) * sizeof *ids);
			ids[n] = xstrdup(inc->id);
			ids[n + 1] = NULL;
		}
		n++;
	}
	forget_old(t, now_ms);
	if (closed_ids)
		*closed_ids = ids;
	return n;
}

int incident_get(const struct incident_tracker *t, const char *id, struct incident_info *info)
{
	const struct incident *inc = find_id(t, id);
	if (!inc)
		return -1;
	size_t n_projects = 0;
	for (size_t i = 0; i < inc->n_members; i++) {
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++)
			seen = str_eq(inc->members[k].project, inc->members[i].project);
		n_projects += !seen;
	}
	*info = (struct incident_info){
		.id = inc->id,
		.tenant = inc->tenant,
		.cause = inc->cause,
		.by_spread = inc->by_spread,
		.opened_ms = inc->opened_ms,
		.last_ms = inc->last_ms,
		.closed = inc->closed,
		.n_members = inc->n_members + inc->n_more,
		.n_projects = n_projects,
	};
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Observing a report                                                         */

static void prune_recents(struct incident_tracker *t, int64_t now_ms)
{
	size_t j = 0;
	for (size_t i = 0; i < t->n_recents; i++) {
		struct recent *r = &t->recents[i];
		if (now_ms - r->at_ms >= window_ms(t)) {
			recent_free_fields(r);
			continue;
		}
		t->recents[j++] = *r;
	}
	t->n_recents = j;
}

static void recent_remove(struct incident_tracker *t, size_t idx)
{
	recent_free_fields(&t->recents[idx]);
	memmove(&t->recents[idx], &t->recents[idx + 1], (t->n_recents - idx - 1) * sizeof *t->recents);
	t->n_recents--;
}

static bool recent_fully_covered(const struct recent *r)
{
	for (size_t i = 0; i < r->n_builds; i++)
		if (!r->builds[i].covered)
			return false;
	return true;
}

static bool recent_has_open_candidate(const struct recent *r)
{
	for (size_t i = 0; i < r->n_builds; i++)
		if (r->builds[i].candidate && !r->builds[i].covered)
			return true;
	return false;
}

static bool in_list(const char *const *list, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/* Counts the distinct projects on which job failed (uncovered) in tenant within the window,
 * the current report's builds included. */
static size_t spread_projects(const struct incident_tracker *t, const char *tenant, const char *job,
                              const struct recent_build *cur, size_t n_cur)
{
	const char **projects = NULL;
	size_t n = 0;
	for (size_t i = 0; i <= t->n_recents; i++) {
		const struct recent_build *bs = i < t->n_recents ? t->recents[i].builds : cur;
		size_t nb = i < t->n_recents ? t->recents[i].n_builds : n_cur;
		if (i < t->n_recents && !str_eq(t->recents[i].tenant, tenant))
			continue;
		for (size_t k = 0; k < nb; k++) {
			const struct recent_build *b = &bs[k];
			if (!b->candidate || b->covered || strcmp(b->m.job, job) != 0)
				continue;
			if (in_list(projects, n, b->m.project))
				continue;
			projects = xrealloc(projects, (n + 1) * sizeof *projects);
			projects[n++] = b->m.project;
		}
	}
	free(projects);
	return n;
}

static void member_from_build(struct member *m, const struct zuul_event *ev, const struct zuul_build *b,
                              const char *event_key, int64_t now_ms)
{
	const char *project = zuul_build_change(ev, b)->project;
	const char *url = textutil_url_is_safe(b->web_url) ? b->web_url : NULL;
	if (!url && textutil_url_is_safe(b->log_url))
		url = b->log_url;
	*m = (struct member){
		.project = xstrdup(project),
		.job = xstrdup(b->job_name),
		.result = xstrdup(b->result),
		.url = xstrdup(url),
		.event_key = xstrdup(event_key),
		.build_uuid = xstrdup(b->uuid),
		.at_ms = now_ms,
	};
}

static void note_change(struct incident_outcome *out, const struct incident *inc, bool opened_now)
{
	if (opened_now)
		ids_add_unique(&out->opened, &out->n_opened, inc->id);
	else if (!ids_contain(out->opened, out->n_opened, inc->id))
		ids_add_unique(&out->grown, &out->n_grown, inc->id);
}

/* Opens the spread incident for job in tenant: earlier reports' uncovered builds of the job
 * first (in the order they came), then the current report's. Names earlier reports that are
 * now wholly covered in out->retro and forgets them. */
static void spread_open(struct incident_tracker *t, const char *tenant, const char *job, struct recent_build *cur,
                        size_t n_cur, const char *event_key, int64_t now_ms, struct incident_outcome *out)
{
	int64_t first = now_ms;
	for (size_t i = 0; i < t->n_recents; i++)
		if (str_eq(t->recents[i].tenant, tenant) && t->recents[i].at_ms < first)
			for (size_t k = 0; k < t->recents[i].n_builds; k++) {
				const struct recent_build *b = &t->recents[i].builds[k];
				if (b->candidate && !b->covered && strcmp(b->m.job, job) == 0)
					first = t->recents[i].at_ms;
			}
	struct strbuf cause = STRBUF_INIT;
	strbuf_printf(&cause, "job %s", job);
	struct incident *inc = incident_open(t, tenant, true, strbuf_str(&cause), job, first);
	strbuf_free(&cause);
	for (size_t i = 0; i < t->n_recents;) {
		struct recent *r = &t->recents[i];
		bool touched = false;
		for (size_t k = 0; str_eq(r->tenant, tenant) && k < r->n_builds; k++) {
			struct recent_build *b = &r->builds[k];
			if (b->candidate && !b->covered && strcmp(b->m.job, job) == 0) {
				incident_add(inc, &b->m);
				b->covered = true;
				touched = true;
			}
		}
		if (touched && recent_fully_covered(r) && strcmp(r->event_key, event_key) != 0) {
			out->retro = xrealloc(out->retro, (out->n_retro + 1) * sizeof *out->retro);
			out->retro[out->n_retro++] = (struct incident_retro){xstrdup(r->event_key), xstrdup(inc->id)};
			recent_remove(t, i);
			continue;
		}
		i++;
	}
	for (size_t k = 0; k < n_cur; k++) {
		if (cur[k].candidate && !cur[k].covered && strcmp(cur[k].m.job, job) == 0) {
			incident_add(inc, &cur[k].m);
			cur[k].covered = true;
		}
	}
	note_change(out, inc, true);
}

/* Remembers a not absorbed report for spread detection, unless it is already remembered (a
 * redelivery) or cannot contribute. Takes ownership of builds. */
static void remember(struct incident_tracker *t, const char *tenant, const char *event_key, int64_t now_ms,
                     struct recent_build *builds, size_t n)
{
	struct recent r = {.event_key = xstrdup(event_key), .tenant = xstrdup(tenant), .at_ms = now_ms, .builds = builds, .n_builds = n};
	bool known = false;
	for (size_t i = 0; i < t->n_recents && !known; i++)
		known = strcmp(t->recents[i].event_key, event_key) == 0 && str_eq(t->recents[i].tenant, tenant);
	if (known || !recent_has_open_candidate(&r)) {
		recent_free_fields(&r);
		return;
	}
	if (t->n_recents >= INCIDENT_RECENT_MAX)
		recent_remove(t, 0);
	t->recents = xrealloc(t->recents, (t->n_recents + 1) * sizeof *t->recents);
	t->recents[t->n_recents++] = r;
}

int incident_observe(struct incident_tracker *t, const struct zuul_event *ev, const char *event_key, int64_t now_ms,
                     struct incident_outcome *out)
{
	*out = (struct incident_outcome){0};
	if (!ev)
		return 0;
	const char *tenant = nz(ev->tenant);
	event_key = nz(event_key);
	close_due(t, now_ms);
	prune_recents(t, now_ms);

	struct recent_build *cur = xcalloc(ev->n_builds ? ev->n_builds : 1, sizeof *cur);
	size_t n_cur = 0;
	for (size_t i = 0; i < ev->n_builds; i++) {
		const struct zuul_build *b = &ev->builds[i];
		if (!zuul_build_failed(b))
			continue;
		struct recent_build *rb = &cur[n_cur++];
		member_from_build(&rb->m, ev, b, event_key, now_ms);
		if (is_infra_result(t, b->result)) {
			struct incident *inc = find_open(t, tenant, false, b->result);
			bool opened = !inc;
			if (!inc)
				inc = incident_open(t, tenant, false, b->result, NULL, now_ms);
			if (incident_add(inc, &rb->m) || opened)
				note_change(out, inc, opened);
			rb->covered = true;
			continue;
		}
		if (t->min_projects < 2 || !rb->m.job || !rb->m.project || !*rb->m.project)
			continue;
		struct strbuf cause = STRBUF_INIT;
		strbuf_printf(&cause, "job %s", rb->m.job);
		struct incident *inc = find_open(t, tenant, true, strbuf_str(&cause));
		strbuf_free(&cause);
		if (inc) {
			if (incident_add(inc, &rb->m))
				note_change(out, inc, false);
			rb->covered = true;
			continue;
		}
		rb->candidate = true;
	}

	for (size_t i = 0; i < n_cur; i++) {
		struct recent_build *rb = &cur[i];
		if (!rb->candidate || rb->covered)
			continue;
		if (spread_projects(t, tenant, rb->m.job, cur, n_cur) >= (size_t)t->min_projects) {
			char *job = xstrdup(rb->m.job);
			spread_open(t, tenant, job, cur, n_cur, event_key, now_ms, out);
			free(job);
		}
	}

	bool absorbed = n_cur > 0;
	for (size_t i = 0; i < n_cur; i++)
		absorbed = absorbed && cur[i].covered;
	out->absorbed = absorbed;
	if (absorbed || n_cur == 0) {
		for (size_t i = 0; i < n_cur; i++)
			member_free(&cur[i].m);
		free(cur);
	} else {
		remember(t, tenant, event_key, now_ms, cur, n_cur);
	}
	return absorbed ? 1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Rendering                                                                  */

/* Past this much body + formatted_body the member list is cut: the whole event must stay
 * under Matrix's 64 KiB, and JSON escaping of quotes adds a little. */
#define CONTENT_BUDGET 40000
/* A single value longer than this is cut with "..." (UTF-8 safe). */
#define VALUE_MAX 200

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t max, bool *cut)
{
	size_t n = strlen(s);
	*cut = n > max;
	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* Appends s as text: control bytes become '?', overly long values are cut. */
static void put_text(struct strbuf *sb, const char *s)
{
	bool cut;
	size_t n = utf8_cut(nz(s), VALUE_MAX, &cut);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		strbuf_putc(sb, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
	if (cut)
		strbuf_puts(sb, "...");
}

static void put_html(struct strbuf *sb, const char *s)
{
	bool cut;
	size_t n = utf8_cut(nz(s), VALUE_MAX, &cut);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '&': strbuf_puts(sb, "&amp;"); break;
		case '<': strbuf_puts(sb, "&lt;"); break;
		case '>': strbuf_puts(sb, "&gt;"); break;
		case '"': strbuf_puts(sb, "&quot;"); break;
		case '\'': strbuf_puts(sb, "&#39;"); break;
		default: strbuf_putc(sb, c < 0x20 || c == 0x7f ? '?' : (char)c);
		}
	}
	if (cut)
		strbuf_puts(sb, "...");
}

/* URLs that passed textutil_url_is_safe: no quotes or angle brackets, only '&' needs escaping. */
static void put_href(struct strbuf *sb, const char *url)
{
	for (const char *p = url; *p; p++) {
		if (*p == '&')
			strbuf_puts(sb, "&amp;");
		else
			strbuf_putc(sb, *p);
	}
}

static void put_time(struct strbuf *sb, int64_t ms, bool with_date)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];
	if (!gmtime_r(&s, &tm) || strftime(buf, sizeof buf, with_date ? "%Y-%m-%d %H:%M UTC" : "%H:%M UTC", &tm) == 0)
		strcpy(buf, "?");
	strbuf_puts(sb, buf);
}

static bool same_utc_day(int64_t a_ms, int64_t b_ms)
{
	return a_ms / 86400000 == b_ms / 86400000;
}

static void put_window(struct strbuf *sb, long long s)
{
	if (s % 3600 == 0)
		strbuf_printf(sb, "%lld hour%s", s / 3600, s == 3600 ? "" : "s");
	else if (s % 60 == 0)
		strbuf_printf(sb, "%lld minute%s", s / 60, s == 60 ? "" : "s");
	else
		strbuf_printf(sb, "%lld second%s", s, s == 1 ? "" : "s");
}

/* One member as it appears in a project's line: the job, linked to its build, and the
 * result when it says more than the cause. */
static void member_render(const struct incident *inc, const struct member *m, struct strbuf *text, struct strbuf *html)
{
	const char *job = m->job ? m->job : "(unknown job)";
	bool show_result = inc->by_spread || !str_eq(m->result, inc->cause);
	put_text(text, job);
	if (show_result) {
		strbuf_puts(text, " (");
		put_text(text, m->result);
		strbuf_puts(text, ")");
	}
	if (textutil_url_is_safe(m->url)) {
		strbuf_puts(text, " <");
		strbuf_puts(text, m->url);
		strbuf_puts(text, ">");
		strbuf_puts(html, "<a href=\"");
		put_href(html, m->url);
		strbuf_puts(html, "\">");
		put_html(html, job);
		strbuf_puts(html, "</a>");
	} else {
		put_html(html, job);
	}
	if (show_result) {
		strbuf_puts(html, " (");
		put_html(html, m->result);
		strbuf_puts(html, ")");
	}
}

static void add_string(cJSON *obj, const char *key, const char *value)
{
	cJSON_AddItemToObject(obj, key, cJSON_CreateString(value));
}

cJSON *incident_content_new(const struct incident_tracker *t, const char *id, int64_t now_ms)
{
	const struct incident *inc = find_id(t, id);
	if (!inc)
		return NULL;
	struct incident_info info;
	incident_get(t, id, &info);
	bool closed = inc->closed || now_ms - inc->last_ms >= window_ms(t);
	struct strbuf text = STRBUF_INIT, html = STRBUF_INIT;

	strbuf_puts(&text, "Infrastructure incident in tenant ");
	put_text(&text, inc->tenant[0] ? inc->tenant : "(none)");
	strbuf_puts(&text, ": ");
	strbuf_puts(&html, "<p><strong>Infrastructure incident</strong> in tenant <code>");
	put_html(&html, inc->tenant[0] ? inc->tenant : "(none)");
	strbuf_puts(&html, "</code>: <strong>");
	if (inc->by_spread) {
		strbuf_puts(&text, "job ");
		put_text(&text, inc->job);
		strbuf_printf(&text, " failed on %zu projects", info.n_projects);
		strbuf_puts(&html, "job <code>");
		put_html(&html, inc->job);
		strbuf_printf(&html, "</code> failed on %zu projects", info.n_projects);
	} else {
		put_text(&text, inc->cause);
		put_html(&html, inc->cause);
	}
	strbuf_puts(&html, "</strong></p>\n");
	strbuf_puts(&text, "\n");

	struct strbuf line = STRBUF_INIT;
	strbuf_printf(&line, "%zu failed build%s in %zu project%s, first seen ", info.n_members,
	              info.n_members == 1 ? "" : "s", info.n_projects, info.n_projects == 1 ? "" : "s");
	put_time(&line, inc->opened_ms, true);
	strbuf_puts(&line, ", last seen ");
	put_time(&line, inc->last_ms, !same_utc_day(inc->opened_ms, inc->last_ms));
	if (!closed) {
		strbuf_puts(&line, "; open until ");
		put_window(&line, t->window_s);
		strbuf_puts(&line, " pass without a new failure");
	}
	strbuf_printf(&text, "%s\n", strbuf_str(&line));
	strbuf_printf(&html, "<p>%s</p>\n<ul>\n", strbuf_str(&line));
	strbuf_free(&line);

	/* Projects in the order they first appeared, each with its jobs. */
	bool *done = xcalloc(inc->n_members ? inc->n_members : 1, sizeof *done);
	size_t shown = 0;
	bool full = false;
	struct strbuf mt = STRBUF_INIT, mh = STRBUF_INIT;
	for (size_t i = 0; i < inc->n_members && !full; i++) {
		if (done[i])
			continue;
		const char *project = inc->members[i].project;
		const char *shown_project = project && *project ? project : "(unknown project)";
		bool first = true;
		for (size_t k = i; k < inc->n_members; k++) {
			if (done[k] || !str_eq(inc->members[k].project, project))
				continue;
			strbuf_reset(&mt);
			strbuf_reset(&mh);
			/* The project's head goes with its first job, so a cut never leaves a bare head. */
			if (first) {
				strbuf_puts(&mt, "- ");
				put_text(&mt, shown_project);
				strbuf_puts(&mt, ": ");
				strbuf_puts(&mh, "<li><strong>");
				put_html(&mh, shown_project);
				strbuf_puts(&mh, "</strong>: ");
			} else {
				strbuf_puts(&mt, ", ");
				strbuf_puts(&mh, ", ");
			}
			member_render(inc, &inc->members[k], &mt, &mh);
			if (text.len + html.len + mt.len + mh.len > CONTENT_BUDGET) {
				full = true;
				break;
			}
			strbuf_puts(&text, strbuf_str(&mt));
			strbuf_puts(&html, strbuf_str(&mh));
			done[k] = true;
			first = false;
			shown++;
		}
		if (!first) {
			strbuf_puts(&text, "\n");
			strbuf_puts(&html, "</li>\n");
		}
	}
	strbuf_free(&mt);
	strbuf_free(&mh);
	free(done);
	size_t more = inc->n_members + inc->n_more - shown;
	if (more) {
		strbuf_printf(&text, "and %zu more\n", more);
		strbuf_printf(&html, "<li>and %zu more</li>\n", more);
	}
	strbuf_puts(&html, "</ul>\n");

	if (closed) {
		strbuf_puts(&text, "closed: no new failures since ");
		put_time(&text, inc->last_ms, false);
		strbuf_puts(&html, "<p><em>closed: no new failures since ");
		put_time(&html, inc->last_ms, false);
		strbuf_puts(&html, "</em></p>");
	}
	/* No trailing newline in the body. */
	while (text.len && text.data[text.len - 1] == '\n')
		text.data[--text.len] = '\0';
	while (html.len && html.data[html.len - 1] == '\n')
		html.data[--html.len] = '\0';

	cJSON *content = cJSON_CreateObject();
	/* A notice that pings nobody; mentioning the on-call makes it m.text (relations.h). */
	add_string(content, "msgtype", "m.notice");
	add_string(content, "body", strbuf_str(&text));
	add_string(content, "format", "org.matrix.custom.html");
	add_string(content, "formatted_body", strbuf_str(&html));
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	strbuf_free(&text);
	strbuf_free(&html);
	return content;
}

/* ------------------------------------------------------------------------ */
/* Save and load                                                              */

#define STATE_VERSION 1

static void json_str(cJSON *o, const char *key, const char *v)
{
	cJSON_AddItemToObject(o, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

static cJSON *member_to_json(const struct member *m)
{
	cJSON *o = cJSON_CreateObject();
	json_str(o, "project", m->project);
	json_str(o, "job", m->job);
	json_str(o, "result", m->result);
	json_str(o, "url", m->url);
	json_str(o, "event_key", m->event_key);
	json_str(o, "build_uuid", m->build_uuid);
	cJSON_AddNumberToObject(o, "at_ms", (double)m->at_ms);
	return o;
}

char *incident_tracker_save(const struct incident_tracker *t)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "version", STATE_VERSION);
	cJSON *incs = cJSON_AddArrayToObject(root, "incidents");
	for (size_t i = 0; i < t->n_incidents; i++) {
		const struct incident *inc = &t->incidents[i];
		cJSON *o = cJSON_CreateObject();
		json_str(o, "id", inc->id);
		json_str(o, "tenant", inc->tenant);
		json_str(o, "cause", inc->cause);
		cJSON_AddBoolToObject(o, "by_spread", inc->by_spread);
		json_str(o, "job", inc->job);
		cJSON_AddNumberToObject(o, "opened_ms", (double)inc->opened_ms);
		cJSON_AddNumberToObject(o, "last_ms", (double)inc->last_ms);
		cJSON_AddBoolToObject(o, "closed", inc->closed);
		cJSON_AddBoolToObject(o, "close_reported", inc->close_reported);
		cJSON_AddNumberToObject(o, "n_more", (double)inc->n_more);
		cJSON *ms = cJSON_AddArrayToObject(o, "members");
		for (size_t k = 0; k < inc->n_members; k++)
			cJSON_AddItemToArray(ms, member_to_json(&inc->members[k]));
		cJSON_AddItemToArray(incs, o);
	}
	cJSON *recs = cJSON_AddArrayToObject(root, "recent");
	for (size_t i = 0; i < t->n_recents; i++) {
		const struct recent *r = &t->recents[i];
		cJSON *o = cJSON_CreateObject();
		json_str(o, "event_key", r->event_key);
		json_str(o, "tenant", r->tenant);
		cJSON_AddNumberToObject(o, "at_ms", (double)r->at_ms);
		cJSON *bs = cJSON_AddArrayToObject(o, "builds");
		for (size_t k = 0; k < r->n_builds; k++) {
			cJSON *b = member_to_json(&r->builds[k].m);
			cJSON_AddBoolToObject(b, "covered", r->builds[k].covered);
			cJSON_AddBoolToObject(b, "candidate", r->builds[k].candidate);
			cJSON_AddItemToArray(bs, b);
		}
		cJSON_AddItemToArray(recs, o);
	}
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!s)
		abort(); /* cJSON fails only when out of memory: the same policy as xmalloc */
	char *copy = xstrdup(s);
	cJSON_free(s);
	return copy;
}

/* Readers: each returns false when the field is missing or of the wrong type. */
static bool get_str(const cJSON *o, const char *key, bool nullable, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsString(v)) {
		*out = xstrdup(v->valuestring);
		return true;
	}
	*out = NULL;
	return nullable && cJSON_IsNull(v);
}

static bool get_ms(const cJSON *o, const char *key, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9.0e15)
		return false;
	*out = (int64_t)v->valuedouble;
	return true;
}

static bool get_bool(const cJSON *o, const char *key, bool *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsBool(v))
		return false;
	*out = cJSON_IsTrue(v);
	return true;
}

static bool member_from_json(const cJSON *o, struct member *m)
{
	*m = (struct member){0};
	bool ok = cJSON_IsObject(o);
	ok = ok && get_str(o, "project", true, &m->project);
	ok = ok && get_str(o, "job", true, &m->job);
	ok = ok && get_str(o, "result", true, &m->result);
	ok = ok && get_str(o, "url", true, &m->url);
	ok = ok && get_str(o, "event_key", true, &m->event_key);
	ok = ok && get_str(o, "build_uuid", true, &m->build_uuid);
	ok = ok && get_ms(o, "at_ms", &m->at_ms);
	return ok;
}

static bool incident_from_json(const cJSON *o, struct incident *inc)
{
	*inc = (struct incident){0};
	int64_t n_more = 0;
	bool ok = cJSON_IsObject(o);
	ok = ok && get_str(o, "id", false, &inc->id);
	ok = ok && get_str(o, "tenant", false, &inc->tenant);
	ok = ok && get_str(o, "cause", false, &inc->cause);
	ok = ok && get_bool(o, "by_spread", &inc->by_spread);
	ok = ok && get_str(o, "job", true, &inc->job);
	ok = ok && (!inc->by_spread || inc->job);
	ok = ok && get_ms(o, "opened_ms", &inc->opened_ms);
	ok = ok && get_ms(o, "last_ms", &inc->last_ms);
	ok = ok && get_bool(o, "closed", &inc->closed);
	ok = ok && get_bool(o, "close_reported", &inc->close_reported);
	ok = ok && get_ms(o, "n_more", &n_more);
	inc->n_more = (size_t)n_more;
	const cJSON *ms = ok ? cJSON_GetObjectItemCaseSensitive(o, "members") : NULL;
	ok = ok && cJSON_IsArray(ms) && cJSON_GetArraySize(ms) <= INCIDENT_MEMBERS_MAX;
	if (ok) {
		const cJSON *m;
		inc->members = xcalloc((size_t)cJSON_GetArraySize(ms) + 1, sizeof *inc->members);
		cJSON_ArrayForEach(m, ms) {
			ok = member_from_json(m, &inc->members[inc->n_members]);
			inc->n_members++; /* counted even when bad, so incident_free_fields frees it */
			if (!ok)
				break;
		}
	}
	return ok;
}

static bool recent_from_json(const cJSON *o, struct recent *r)
{
	*r = (struct recent){0};
	bool ok = cJSON_IsObject(o);
	ok = ok && get_str(o, "event_key", false, &r->event_key);
	ok = ok && get_str(o, "tenant", false, &r->tenant);
	ok = ok && get_ms(o, "at_ms", &r->at_ms);
	const cJSON *bs = ok ? cJSON_GetObjectItemCaseSensitive(o, "builds") : NULL;
	ok = ok && cJSON_IsArray(bs);
	if (ok) {
		const cJSON *b;
		r->builds = xcalloc((size_t)cJSON_GetArraySize(bs) + 1, sizeof *r->builds);
		cJSON_ArrayForEach(b, bs) {
			struct recent_build *rb = &r->builds[r->n_builds++];
			ok = member_from_json(b, &rb->m) && get_bool(b, "covered", &rb->covered) &&
			     get_bool(b, "candidate", &rb->candidate) && (!rb->candidate || (rb->m.job && rb->m.project));
			if (!ok)
				break;
		}
	}
	return ok;
}

int incident_tracker_load(struct incident_tracker *t, const char *json)
{
	cJSON *root = json ? cJSON_Parse(json) : NULL;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
	const cJSON *incs = cJSON_GetObjectItemCaseSensitive(root, "incidents");
	const cJSON *recs = cJSON_GetObjectItemCaseSensitive(root, "recent");
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(v) || v->valueint != STATE_VERSION || !cJSON_IsArray(incs) ||
	    !cJSON_IsArray(recs)) {
		cJSON_Delete(root);
		return -1;
	}
	/* Built aside and swapped in only when everything read well. */
	struct incident_tracker fresh = {0};
	bool ok = true;
	const cJSON *o;
	fresh.incidents = xcalloc((size_t)cJSON_GetArraySize(incs) + 1, sizeof *fresh.incidents);
	cJSON_ArrayForEach(o, incs) {
		ok = incident_from_json(o, &fresh.incidents[fresh.n_incidents]);
		fresh.n_incidents++;
		if (!ok)
			break;
	}
	/* Ids must be unique, or incident_get and the bridge's message lookups would be ambiguous. */
	for (size_t i = 0; ok && i < fresh.n_incidents; i++)
		for (size_t k = 0; ok && k < i; k++)
			ok = strcmp(fresh.incidents[i].id, fresh.incidents[k].id) != 0;
	if (ok) {
		fresh.recents = xcalloc((size_t)cJSON_GetArraySize(recs) + 1, sizeof *fresh.recents);
		cJSON_ArrayForEach(o, recs) {
			ok = recent_from_json(o, &fresh.recents[fresh.n_recents]);
			fresh.n_recents++;
			if (!ok)
				break;
		}
	}
	cJSON_Delete(root);
	if (!ok) {
		state_clear(&fresh);
		return -1;
	}
	state_clear(t);
	t->incidents = fresh.incidents;
	t->n_incidents = fresh.n_incidents;
	t->recents = fresh.recents;
	t->n_recents = fresh.n_recents;
	return 0;
}
