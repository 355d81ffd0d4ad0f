/* details: the bridge's side of issue #16: results recorded for flakiness, fetches started
 * for failed builds, and one edit per posted failure once they are done. It owns the cache
 * of build_details (a build is fetched once, whatever routes post it) and the posted
 * reports waiting for their fetches. */
#include "details.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_record.h"
#include "clock.h"
#include "details_fetch.h"
#include "details_url.h"
#include "log.h"
#include "store_flaky.h"
#include "strbuf.h"

/* The job_run retention runs this often (a DELETE over the time index). */
#define PRUNE_INTERVAL_MS (3600 * 1000)
/* A job output file is looked for under these names, in this order (as Zuul's web UI). */
static const char *const output_names[] = {"job-output.json.gz", "job-output.json"};

struct entry {
	struct build_details bd;
	struct details *d;
	char *web_url;
	char *log_url;
	int pending;           /* fetches in flight for it */
	int output_try;        /* index into output_names of the output fetch in flight */
	int64_t touched_ms;
	struct entry *next;
};

/* A posted failure waiting for its builds' fetches: what the edit function needs (a copy of
 * struct details_posted) and the builds it waits for. */
struct pending_edit {
	struct details_posted p; /* every string owned */
	char **uuids;
	size_t n;
	struct pending_edit *next;
};

struct details {
	struct loop *loop;
	struct store *store;
	const struct config *cfg;
	details_edit_fn edit;
	void *edit_data;
	struct details_fetcher *fetcher; /* NULL without the details group */
	struct entry *entries;           /* newest first */
	size_t n_entries;
	struct pending_edit *pending;
	size_t pending_bytes;            /* their payload copies */
	uint64_t prune_timer;
	struct stats_details own_stats;  /* when the caller keeps none */
	struct stats_details *stats;
};

/* ---- the cache ---- */

static struct entry *find(const struct details *d, const char *uuid)
{
	for (struct entry *e = d->entries; e && uuid; e = e->next)
		if (strcmp(e->bd.uuid, uuid) == 0)
			return e;
	return NULL;
}

static void entry_free(struct entry *e)
{
	free(e->bd.uuid);
	free(e->bd.job);
	free(e->bd.reported_result);
	free(e->bd.true_result);
	free(e->bd.error_detail);
	job_output_failure_clear(&e->bd.task);
	free(e->bd.fetch_errors);
	free(e->web_url);
	free(e->log_url);
	free(e);
}

/* Forgets the oldest finished entries beyond DETAILS_CACHE_MAX (those with fetches in
 * flight stay: their callbacks hold them). */
static void trim(struct details *d)
{
	while (d->n_entries > DETAILS_CACHE_MAX) {
		struct entry **oldest = NULL;
		for (struct entry **p = &d->entries; *p; p = &(*p)->next)
			if ((*p)->pending == 0 && (!oldest || (*p)->touched_ms <= (*oldest)->touched_ms))
				oldest = p;
		if (!oldest)
			return;
		struct entry *e = *oldest;
		*oldest = e->next;
		entry_free(e);
		d->n_entries--;
	}
}

static struct entry *entry_get(struct details *d, const struct zuul_build *b)
{
	struct entry *e = find(d, b->uuid);
	if (e)
		return e;
	e = xcalloc(1, sizeof *e);
	e->d = d;
	e->bd.uuid = xstrdup(b->uuid);
	e->bd.job = xstrdup(b->job_name);
	e->bd.reported_result = xstrdup(b->result);
	e->web_url = xstrdup(b->web_url);
	e->log_url = xstrdup(b->log_url);
	e->touched_ms = clock_real_ms();
	e->next = d->entries;
	d->entries = e;
	d->n_entries++;
	trim(d);
	return e;
}

static void add_error(struct entry *e, const char *what, const char *why)
{
	struct strbuf sb = STRBUF_INIT;
	if (e->bd.fetch_errors)
		strbuf_printf(&sb, "%s; ", e->bd.fetch_errors);
	strbuf_printf(&sb, "%s: %s", what, why);
	free(e->bd.fetch_errors);
	e->bd.fetch_errors = strbuf_detach(&sb);
}

/* ---- results and verdicts ---- */

/* The project and branch a build ran for: its own change (several changes per item), else
 * the item's. */
static void build_subject(const struct zuul_event *ev, const struct zuul_build *b, const char **project,
			  const char **branch)
{
	*project = b->change && b->change->project ? b->change->project : ev->item.project;
	*branch = b->change && b->change->branch ? b->change->branch : ev->item.branch;
}

static int64_t ended_ms(const struct zuul_event *ev, const struct zuul_build *b)
{
	if (b->end_time > 0)
		return (int64_t)(b->end_time * 1000.0);
	if (ev->timestamp > 0)
		return (int64_t)(ev->timestamp * 1000.0);
	return clock_wall_ms();
}

static enum flaky_outcome outcome_of(const struct details *d, const char *result)
{
	return flaky_outcome_of(result, d->cfg->triage.infra_results, d->cfg->triage.n_infra_results);
}

static size_t retries_of(const struct zuul_event *ev, const char *job)
{
	size_t n = 0;
	for (size_t i = 0; job && i < ev->n_retry_builds; i++)
		if (ev->retry_builds[i].job_name && strcmp(ev->retry_builds[i].job_name, job) == 0)
			n++;
	return n;
}

static void record_run(struct details *d, const struct zuul_event *ev, const struct zuul_build *b, const char *result,
		       enum flaky_outcome o)
{
	const char *project, *branch;
	build_subject(ev, b, &project, &branch);
	struct store_run run = {.build_uuid = b->uuid, .tenant = ev->tenant, .pipeline = ev->pipeline,
				.project = project, .branch = branch, .job = b->job_name, .result = result,
				.outcome = o, .at_ms = ended_ms(ev, b)};
	store_run_record(d->store, &run);
}

static void judge(struct details *d, const struct zuul_event *ev, const struct zuul_build *b,
		  struct flaky_verdict *v)
{
	enum flaky_outcome o = outcome_of(d, b->result);
	if (o == FLAKY_INFRA) {
		v->kind = FLAKY_INFRA_RESULT;
		return;
	}
	if (o != FLAKY_FAIL)
		return;
	const char *project, *branch;
	build_subject(ev, b, &project, &branch);
	enum flaky_outcome h[FLAKY_HISTORY_MAX];
	size_t n = 0;
	if (store_run_history(d->store, project, branch, b->job_name, ended_ms(ev, b), FLAKY_HISTORY_MAX, h, &n) < 0)
		return;
	flaky_judge(h, n, v);
}

void details_observe(struct details *d, const struct zuul_event *ev)
{
	if (!d || !ev)
		return;
	/* All of the report's runs first: a verdict counts this report's builds too. */
	for (size_t i = 0; i < ev->n_builds; i++) {
		const struct zuul_build *b = &ev->builds[i];
		enum flaky_outcome o = outcome_of(d, b->result);
		if (o != FLAKY_NEUTRAL && b->uuid && b->job_name)
			record_run(d, ev, b, b->result, o);
	}
	for (size_t i = 0; i < ev->n_builds; i++) {
		const struct zuul_build *b = &ev->builds[i];
		if (!b->uuid || !b->job_name)
			continue;
		size_t retries = retries_of(ev, b->job_name);
		bool failed = zuul_build_failed(b);
		if (!failed && !(retries && outcome_of(d, b->result) == FLAKY_PASS))
			continue;
		struct entry *e = entry_get(d, b);
		if (e->bd.verdict.kind != FLAKY_UNKNOWN || e->bd.fetch_started)
			continue; /* judged when its report first came */
		e->bd.failed = failed;
		e->bd.verdict.retries = (int)retries;
		if (failed)
			judge(d, ev, b, &e->bd.verdict);
		else
			e->bd.verdict.kind = FLAKY_PASSED_ON_RETRY;
	}
}

/* ---- edits ---- */

static void pending_free(struct details *d, struct pending_edit *pe)
{
	d->pending_bytes -= pe->p.payload_len;
	free((char *)pe->p.room);
	free((char *)pe->p.route);
	free((char *)pe->p.key);
	free((char *)pe->p.txn);
	free((char *)pe->p.payload);
	for (size_t i = 0; i < pe->n; i++)
		free(pe->uuids[i]);
	free(pe->uuids);
	free(pe);
}

/* Has the bridge edit the report, when the fetches found anything to show. */
static void edit_report(struct details *d, const struct pending_edit *pe)
{
	bool news = false;
	for (size_t i = 0; i < pe->n && !news; i++) {
		const struct entry *e = find(d, pe->uuids[i]);
		news = e && details_build_fetched_news(&e->bd);
	}
	if (!news) {
		log_kv(ZLOG_DEBUG, "details: nothing fetched to add to the report", "room", pe->p.room, "route",
		       pe->p.route, "key", pe->p.key, NULL);
		return;
	}
	if (d->edit(&pe->p, d->edit_data) == 0) {
		d->stats->edits++;
		log_kv(ZLOG_INFO, "details: the report is edited to say why it failed", "room", pe->p.room, "route",
		       pe->p.route, "key", pe->p.key, NULL);
	} else {
		log_kv(ZLOG_ERROR, "details: cannot queue the edit; the report stays as it was", "room", pe->p.room,
		       "route", pe->p.route, "key", pe->p.key, NULL);
	}
}

static bool pending_ready(const struct details *d, const struct pending_edit *pe)
{
	for (size_t i = 0; i < pe->n; i++) {
		const struct entry *e = find(d, pe->uuids[i]);
		if (e && !e->bd.done)
			return false;
	}
	return true;
}

/* Edits and forgets every posted report whose builds are all done. */
static void pending_check(struct details *d)
{
	for (struct pending_edit **p = &d->pending; *p;) {
		struct pending_edit *pe = *p;
		if (!pending_ready(d, pe)) {
			p = &pe->next;
			continue;
		}
		*p = pe->next;
		edit_report(d, pe);
		pending_free(d, pe);
	}
}

/* ---- fetching ---- */

static void entry_settle(struct details *d, struct entry *e)
{
	if (e->pending > 0 || e->bd.done)
		return;
	e->bd.done = true;
	if (e->bd.fetch_errors)
		log_kv(ZLOG_WARN, "details: build details not fetched; the report stays as it was", "build", e->bd.uuid,
		       "job", e->bd.job, "why", e->bd.fetch_errors, NULL);
	pending_check(d);
}

static void start_output(struct details *d, struct entry *e, int attempt);

static void on_output(const struct details_fetch_result *r, void *data)
{
	struct entry *e = data;
	struct details *d = e->d;
	e->pending--;
	if (r->ok) {
		d->stats->fetches_ok++;
		char err[128];
		struct job_output_failure f;
		int rc = job_output_parse(r->body, r->len, &f, err, sizeof err);
		if (rc == 1) {
			job_output_failure_clear(&e->bd.task);
			e->bd.task = f;
			e->bd.has_task = true;
		} else if (rc < 0) {
			add_error(e, output_names[e->output_try], err);
		}
		char took[32];
		snprintf(took, sizeof took, "%.3f s", r->elapsed_s);
		log_kv(ZLOG_DEBUG, "details: job output read", "url", r->url, "took", took, "task",
		       rc == 1 ? e->bd.task.task : "(none failed)", NULL);
	} else if (r->status == 404 && e->output_try + 1 < (int)(sizeof output_names / sizeof output_names[0])) {
		/* No .gz: the plain file, as Zuul's web UI does. */
		start_output(d, e, e->output_try + 1);
	} else {
		d->stats->fetches_failed++;
		add_error(e, r->url, r->error);
	}
	entry_settle(d, e);
}

static void start_output(struct details *d, struct entry *e, int attempt)
{
	char *url = details_log_file_url(e->log_url, output_names[attempt]);
	const char *why = NULL;
	if (url && details_fetch(d->fetcher, url, on_output, e, &why) == 0) {
		e->pending++;
		e->output_try = attempt;
	} else {
		d->stats->refused++;
		add_error(e, "job output", url ? why : "log_url is not a URL the bridge fetches from");
	}
	free(url);
}

static void on_record(const struct details_fetch_result *r, void *data)
{
	struct entry *e = data;
	struct details *d = e->d;
	e->pending--;
	if (!r->ok) {
		d->stats->fetches_failed++;
		add_error(e, r->url, r->error);
		entry_settle(d, e);
		return;
	}
	d->stats->fetches_ok++;
	struct build_record rec;
	char err[128];
	if (build_record_parse(r->body, r->len, e->bd.uuid, &rec, err, sizeof err) != 0) {
		add_error(e, r->url, err);
		entry_settle(d, e);
		return;
	}
	free(e->bd.true_result);
	e->bd.true_result = xstrdup(rec.result);
	free(e->bd.error_detail);
	e->bd.error_detail = xstrdup(rec.error_detail);
	/* A job's failure-message hid the result: count the run as what it was. */
	if (rec.result && e->bd.reported_result && strcmp(rec.result, e->bd.reported_result) != 0)
		store_run_set_result(d->store, e->bd.uuid, rec.result, outcome_of(d, rec.result));
	/* The report had no log_url, the record has one: the job output after all. */
	if (!e->log_url && rec.log_url && !e->bd.has_task) {
		e->log_url = xstrdup(rec.log_url);
		if (details_url_allowed(e->log_url, d->cfg->details.hosts, d->cfg->details.n_hosts))
			start_output(d, e, 0);
	}
	build_record_clear(&rec);
	entry_settle(d, e);
}

/* Starts what can be fetched for e (once: the cache makes a build fetched once). */
static void entry_fetch(struct details *d, struct entry *e)
{
	if (e->bd.fetch_started)
		return;
	e->bd.fetch_started = true;
	const struct config_details *dc = &d->cfg->details;
	char *api = e->web_url ? details_api_url(e->web_url, e->bd.uuid) : NULL;
	if (api && details_url_allowed(api, dc->hosts, dc->n_hosts)) {
		const char *why = NULL;
		if (details_fetch(d->fetcher, api, on_record, e, &why) == 0) {
			e->pending++;
		} else {
			d->stats->refused++;
			add_error(e, "build record", why);
		}
	} else if (e->web_url) {
		d->stats->refused++;
		log_kv(ZLOG_DEBUG, "details: web_url not fetched (host not in details.hosts, or not a build URL)",
		       "build", e->bd.uuid, "web_url", e->web_url, NULL);
	}
	free(api);
	if (e->log_url && details_url_allowed(e->log_url, dc->hosts, dc->n_hosts))
		start_output(d, e, 0);
	else if (e->log_url) {
		d->stats->refused++;
		log_kv(ZLOG_DEBUG, "details: log_url not fetched (host not in details.hosts, or not a URL to fetch)",
		       "build", e->bd.uuid, "log_url", e->log_url, NULL);
	}
	if (e->pending == 0)
		entry_settle(d, e);
}

void details_report_posted(struct details *d, const struct zuul_event *ev, const struct details_posted *p)
{
	if (!d || !d->fetcher || !d->cfg->details.enabled || !ev || !p || !p->txn || !p->payload || !ev->action ||
	    strcmp(ev->action, "failure") != 0)
		return;
	if (d->pending_bytes + p->payload_len > DETAILS_PENDING_MAX_BYTES) {
		char waiting[32];
		snprintf(waiting, sizeof waiting, "%zu bytes", d->pending_bytes);
		log_kv(ZLOG_WARN, "details: too many reports wait for their details; this one is not fetched for",
		       "room", p->room, "route", p->route, "key", p->key, "waiting", waiting, NULL);
		return;
	}
	struct pending_edit *pe = xcalloc(1, sizeof *pe);
	pe->uuids = xcalloc(DETAILS_MAX_BUILDS, sizeof *pe->uuids);
	/* The first DETAILS_MAX_BUILDS failed builds; the others keep their verdicts only. */
	for (size_t i = 0; i < ev->n_builds && pe->n < DETAILS_MAX_BUILDS; i++) {
		const struct zuul_build *b = &ev->builds[i];
		struct entry *e = b->uuid ? find(d, b->uuid) : NULL;
		if (!e || !e->bd.failed)
			continue;
		entry_fetch(d, e);
		pe->uuids[pe->n++] = xstrdup(e->bd.uuid);
	}
	/* Fetches answer from the loop, never from in here: builds done already were done
	 * when the report was rendered (or had nothing to fetch), so it shows all there is. */
	if (!pe->n || pending_ready(d, pe)) {
		pending_free(d, pe); /* nothing of p copied yet: counts 0 bytes */
		return;
	}
	/* A payload has no NUL but maybe a trailing one (zuul_event_parse): the copy ends there. */
	char *payload = xstrndup(p->payload, p->payload_len);
	pe->p = (struct details_posted){.room = xstrdup(p->room), .route = xstrdup(p->route), .key = xstrdup(p->key),
					.txn = xstrdup(p->txn), .repeat = p->repeat, .payload = payload,
					.payload_len = strlen(payload)};
	d->pending_bytes += pe->p.payload_len;
	pe->next = d->pending;
	d->pending = pe;
}

const struct build_details *details_of(const struct details *d, const char *build_uuid)
{
	const struct entry *e = d ? find(d, build_uuid) : NULL;
	return e ? &e->bd : NULL;
}

/* ---- life cycle ---- */

static void prune_fired(struct loop *loop, void *data)
{
	struct details *d = data;
	int n = store_run_prune(d->store, clock_wall_ms() - FLAKY_RETENTION_S * 1000);
	if (n > 0) {
		char count[24];
		snprintf(count, sizeof count, "%d", n);
		log_kv(ZLOG_DEBUG, "details: old runs forgotten", "runs", count, NULL);
	}
	d->prune_timer = loop_timer_add(loop, PRUNE_INTERVAL_MS, prune_fired, d);
}

static void configure(struct details *d, const struct config *cfg)
{
	d->cfg = cfg;
	if (cfg->details.enabled && !d->fetcher)
		d->fetcher = details_fetcher_new(d->loop, &cfg->details);
	else if (d->fetcher)
		details_fetcher_set_config(d->fetcher, &cfg->details);
	/* Turned off: fetches in flight finish (their entries hold them), nothing new starts. */
}

struct details *details_new(struct loop *loop, struct store *store, const struct config *cfg,
			    struct stats_details *stats, details_edit_fn edit, void *edit_data)
{
	struct details *d = xcalloc(1, sizeof *d);
	d->loop = loop;
	d->store = store;
	d->edit = edit;
	d->edit_data = edit_data;
	d->stats = stats ? stats : &d->own_stats;
	configure(d, cfg);
	if (loop)
		d->prune_timer = loop_timer_add(loop, 60 * 1000, prune_fired, d);
	return d;
}

void details_reload(struct details *d, const struct config *cfg)
{
	if (d)
		configure(d, cfg);
}

void details_free(struct details *d)
{
	if (!d)
		return;
	details_fetcher_free(d->fetcher); /* no more callbacks into the entries */
	if (d->loop)
		loop_timer_cancel(d->loop, d->prune_timer);
	while (d->pending) {
		struct pending_edit *pe = d->pending;
		d->pending = pe->next;
		pending_free(d, pe);
	}
	while (d->entries) {
		struct entry *e = d->entries;
		d->entries = e->next;
		entry_free(e);
	}
	free(d);
}
