/* job_output: the failing task of a build from its job-output.json. Zuul's zuul_json
 * callback records every task result per host (a failed one with "failed": true, whether
 * the failure was ignored, rescued or fatal) and per playbook the Ansible stats, where only
 * the fatal failures count: the stats say which host failed, its last failed task says why. */
#include "job_output.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "details_text.h"
#include "strbuf.h"

static const cJSON *member(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *string_at(const cJSON *o, const char *key)
{
	const cJSON *v = member(o, key);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Ansible writes true; a hand-made or old file may say 1 or "true". */
static bool truthy(const cJSON *v)
{
	if (cJSON_IsTrue(v))
		return true;
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0;
	return cJSON_IsString(v) && v->valuestring &&
	       (strcmp(v->valuestring, "true") == 0 || strcmp(v->valuestring, "True") == 0);
}

/* The array at key, or NULL. */
static const cJSON *list_at(const cJSON *o, const char *key)
{
	const cJSON *v = member(o, key);
	return cJSON_IsArray(v) ? v : NULL;
}

static bool positive(const cJSON *v)
{
	return cJSON_IsNumber(v) && v->valuedouble > 0;
}

/* A host's result (or one loop item) that failed or could not reach the host. */
static bool result_failed(const cJSON *r)
{
	return cJSON_IsObject(r) && (truthy(member(r, "failed")) || truthy(member(r, "unreachable")));
}

/* Where a failing task was found. */
struct found {
	const cJSON *playbook;
	const cJSON *task;    /* the task entry: {task: {name}, role: {name}, hosts: {...}} */
	const cJSON *result;  /* the host's result */
	const cJSON *item;    /* the failed loop item, or NULL */
	const char *host;
	size_t index;         /* the task's position in the playbook, for choosing among hosts */
};

/* The failed loop item of a result, or NULL. */
static const cJSON *failed_item(const cJSON *result)
{
	const cJSON *items = list_at(result, "results");
	const cJSON *it;
	cJSON_ArrayForEach(it, items)
	if (result_failed(it))
		return it;
	return NULL;
}

/* Looks through a playbook's tasks for host's failed results: the last one (last = true)
 * or the first. 1 and *f filled when one is found. */
static int scan_playbook(const cJSON *pb, const char *host, bool last, struct found *f)
{
	int hit = 0;
	size_t index = 0;
	const cJSON *plays = list_at(pb, "plays"), *play;
	cJSON_ArrayForEach(play, plays)
	{
		const cJSON *tasks = list_at(play, "tasks"), *task;
		cJSON_ArrayForEach(task, tasks)
		{
			index++;
			const cJSON *hosts = member(task, "hosts"), *h;
			if (!cJSON_IsObject(hosts))
				continue;
			cJSON_ArrayForEach(h, hosts)
			{
				if (!h->string || (host && strcmp(h->string, host) != 0) || !result_failed(h))
					continue;
				*f = (struct found){.playbook = pb, .task = task, .result = h, .item = failed_item(h),
						    .host = h->string, .index = index};
				hit = 1;
				if (!last)
					return 1;
			}
		}
	}
	return hit;
}

/* The stats of pb name a host whose failure counted: the earliest deciding failure among
 * them (each host's last failed task). 1 and *f, 0 none, -1 pb has no stats. */
static int from_stats(const cJSON *pb, struct found *f)
{
	const cJSON *stats = member(pb, "stats");
	if (!cJSON_IsObject(stats))
		return -1;
	int hit = 0;
	const cJSON *h;
	cJSON_ArrayForEach(h, stats)
	{
		if (!h->string || !(positive(member(h, "failures")) || positive(member(h, "unreachable"))))
			continue;
		struct found candidate;
		if (scan_playbook(pb, h->string, true, &candidate) && (!hit || candidate.index < f->index)) {
			*f = candidate;
			hit = 1;
		}
	}
	return hit;
}

static char *short_text(const char *s)
{
	return details_text_short(s, JOB_OUTPUT_MAX_FIELD);
}

/* msg is usually a string; a module may leave a list or an object there. */
static char *message_of(const cJSON *r)
{
	const cJSON *m = member(r, "msg");
	if (cJSON_IsString(m))
		return m->valuestring && *m->valuestring ? short_text(m->valuestring) : NULL;
	if (cJSON_IsArray(m) || cJSON_IsObject(m)) {
		char *printed = cJSON_PrintUnformatted(m);
		char *r_ = short_text(printed);
		cJSON_free(printed);
		return r_;
	}
	return NULL;
}

/* The last lines of the first of these outputs that has any. */
static char *error_lines_of(const cJSON *r)
{
	static const char *const keys[] = {"stderr", "stdout", "module_stderr", "module_stdout"};
	for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
		const cJSON *v = member(r, keys[k]);
		if (!cJSON_IsString(v) || !v->valuestring)
			continue;
		struct strbuf clean = STRBUF_INIT;
		details_text_clean(&clean, v->valuestring, strlen(v->valuestring));
		char *tail = details_text_tail(strbuf_str(&clean), JOB_OUTPUT_MAX_LINES, JOB_OUTPUT_MAX_CHARS);
		strbuf_free(&clean);
		if (*tail)
			return tail;
		free(tail);
	}
	return NULL;
}

static bool rc_of(const cJSON *r, long long *rc)
{
	const cJSON *v = member(r, "rc");
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 1e15)
		return false;
	*rc = (long long)v->valuedouble;
	return true;
}

static void fill(const struct found *f, struct job_output_failure *out)
{
	/* A loop's item says more than its task's summary ("One or more items failed"). */
	const cJSON *r = f->item ? f->item : f->result;
	out->playbook = short_text(string_at(f->playbook, "playbook"));
	out->phase = short_text(string_at(f->playbook, "phase"));
	out->task = short_text(string_at(member(f->task, "task"), "name"));
	out->role = short_text(string_at(member(f->task, "role"), "name"));
	out->host = short_text(f->host);
	out->unreachable = truthy(member(r, "unreachable")) || truthy(member(f->result, "unreachable"));
	out->has_rc = rc_of(r, &out->rc) || rc_of(f->result, &out->rc);
	out->msg = message_of(r);
	if (!out->msg && f->item)
		out->msg = message_of(f->result);
	out->error_lines = error_lines_of(r);
	if (!out->error_lines && f->item)
		out->error_lines = error_lines_of(f->result);
}

int job_output_parse(const char *json, size_t len, struct job_output_failure *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (err && errlen)
		err[0] = '\0';
	cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
	if (!root || !cJSON_IsArray(root)) {
		if (err)
			snprintf(err, errlen, "%s", root ? "not job output (expected a list of playbooks)" : "not JSON");
		cJSON_Delete(root);
		return -1;
	}
	struct found f = {0};
	int hit = 0;
	bool any_stats = false;
	const cJSON *pb;
	cJSON_ArrayForEach(pb, root)
	{
		int rc = from_stats(pb, &f);
		any_stats |= rc >= 0;
		if (rc > 0) {
			hit = 1;
			break;
		}
	}
	if (!hit && !any_stats) {
		cJSON_ArrayForEach(pb, root)
		{
			if (scan_playbook(pb, NULL, false, &f)) {
				hit = 1;
				break;
			}
		}
	}
	if (hit)
		fill(&f, out);
	cJSON_Delete(root);
	return hit;
}

void job_output_failure_clear(struct job_output_failure *f)
{
	if (!f)
		return;
	free(f->playbook);
	free(f->phase);
	free(f->task);
	free(f->role);
	free(f->host);
	free(f->msg);
	free(f->error_lines);
	memset(f, 0, sizeof *f);
}
