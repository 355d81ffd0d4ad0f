/* incident: decides which failure reports are symptoms of broken infrastructure and groups
 * them into incidents per (tenant, cause). Rendering is incident_render.c's, saving and loading
 * incident_json.c's. */
#include "incident.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "incident_internal.h"
#include "strbuf.h"
#include "textutil.h"

const char *const incident_default_infra_results[] = {
	"NODE_FAILURE", "RETRY_LIMIT", "POST_FAILURE", "DISK_FULL", "LOST", "EXCEPTION", "ERROR", NULL,
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                              */

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

void incident_free_fields(struct incident *inc)
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

void incident_state_clear(struct incident_tracker *t)
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
	incident_state_clear(t);
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

struct incident *incident_find(const struct incident_tracker *t, const char *id)
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
	const struct incident *inc = incident_find(t, id);
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

