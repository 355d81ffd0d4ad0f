/* report_details: a build's details in the view model (issue #16): its flakiness verdict,
 * and once fetched its failing task, error lines, error detail and true result. The values
 * come clean from the details module (details_text.h: valid UTF-8, no terminal escapes) and
 * are escaped by the template like every other value. */
#include "report_internal.h"

#include <stdlib.h>
#include <string.h>

#include "details_build.h"
#include "flaky.h"
#include "strbuf.h"

/* Keys are literals, attached without a copy as in report.c. */
static void put(cJSON *obj, const char *literal_key, cJSON *item)
{
	cJSON_AddItemToObjectCS(obj, literal_key, item);
}

static void put_str(cJSON *obj, const char *key, const char *value)
{
	put(obj, key, value ? cJSON_CreateString(value) : cJSON_CreateNull());
}

static cJSON *verdict_view_new(const struct flaky_verdict *v)
{
	if (v->kind == FLAKY_UNKNOWN)
		return cJSON_CreateNull();
	cJSON *o = cJSON_CreateObject();
	struct strbuf text = STRBUF_INIT;
	flaky_describe(v, &text);
	put_str(o, "text", strbuf_str(&text));
	strbuf_free(&text);
	put(o, "kind", cJSON_CreateStringReference(flaky_kind_name(v->kind)));
	put(o, "is_new", cJSON_CreateBool(v->kind == FLAKY_NEW));
	put(o, "is_flaky", cJSON_CreateBool(v->kind == FLAKY_FLAKY));
	put(o, "is_broken", cJSON_CreateBool(v->kind == FLAKY_BROKEN));
	put(o, "is_passed_on_retry", cJSON_CreateBool(v->kind == FLAKY_PASSED_ON_RETRY));
	put(o, "is_infra", cJSON_CreateBool(v->kind == FLAKY_INFRA_RESULT));
	put(o, "failures", cJSON_CreateNumber(v->failures));
	put(o, "runs", cJSON_CreateNumber(v->runs));
	put(o, "successes", cJSON_CreateNumber(v->successes));
	put(o, "retries", cJSON_CreateNumber(v->retries));
	return o;
}

static cJSON *task_view_new(const struct job_output_failure *t)
{
	cJSON *o = cJSON_CreateObject();
	put_str(o, "name", t->task);
	put_str(o, "role", t->role);
	put_str(o, "host", t->host);
	put(o, "has_rc", cJSON_CreateBool(t->has_rc));
	put(o, "rc", t->has_rc ? cJSON_CreateNumber((double)t->rc) : cJSON_CreateNull());
	put_str(o, "msg", t->msg);
	put_str(o, "phase", t->phase);
	put_str(o, "playbook", t->playbook);
	put(o, "unreachable", cJSON_CreateBool(t->unreachable));
	return o;
}

/* error_lines (one string per line), error_text (them joined by newlines, for a <pre>) and
 * has_error_lines. The details module caps them (JOB_OUTPUT_MAX_LINES, _CHARS). */
static void put_error_lines(cJSON *o, const char *lines)
{
	cJSON *list = cJSON_CreateArray();
	for (const char *p = lines; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *line = xstrndup(p, n);
		cJSON_AddItemToArray(list, cJSON_CreateString(line));
		free(line);
		p += n + (nl ? 1 : 0);
	}
	bool any = cJSON_GetArraySize(list) > 0;
	put(o, "error_lines", list);
	put_str(o, "error_text", any ? lines : NULL);
	put(o, "has_error_lines", cJSON_CreateBool(any));
}

void report_details_add(cJSON *build_view, const struct build_details *bd)
{
	const char *true_result = details_build_true_result(bd);
	bool has_task = bd && bd->failed && bd->has_task;
	bool any = bd && (bd->verdict.kind != FLAKY_UNKNOWN || (bd->failed && bd->error_detail) || true_result ||
			  has_task);
	put(build_view, "has_details", cJSON_CreateBool(any));
	if (!any) {
		put(build_view, "details", cJSON_CreateNull());
		return;
	}
	cJSON *o = cJSON_CreateObject();
	put(o, "verdict", verdict_view_new(&bd->verdict));
	put(o, "task", has_task ? task_view_new(&bd->task) : cJSON_CreateNull());
	put_error_lines(o, has_task ? bd->task.error_lines : NULL);
	put_str(o, "error_detail", bd->failed ? bd->error_detail : NULL);
	put_str(o, "true_result", true_result);
	put(build_view, "details", o);
}
