/* zuul: decodes one Zuul MQTT report (JSON, both schema generations) into struct zuul_event.
 * The raw bytes are checked first (zuul_raw.c: size, UTF-8, NUL, nesting) so every string
 * handed out is clean. */
#include "zuul.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "zuul_internal.h"

/* ---- typed field access -------------------------------------------------------------------- */

static const char *json_type_name(const cJSON *v)
{
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	return "something else";
}

static const cJSON *field(const cJSON *obj, const char *key)
{
	return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* A copy of s if it is valid UTF-8, else NULL. The payload was validated as a whole, so this
 * only fires if cJSON ever decodes an escape into something we did not expect. */
static char *dup_utf8(const char *s)
{
	return s && zuul_utf8_valid(s) ? xstrdup(s) : NULL;
}

/* A string field; "" counts as absent (Zuul sends '' for "no such thing", e.g. branch of a
 * tag). Caller frees. */
static char *get_str(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	if (!cJSON_IsString(v) || !v->valuestring || !v->valuestring[0])
		return NULL;
	return dup_utf8(v->valuestring);
}

/* Like get_str but keeps "", for free text where empty is a real value (message). */
static char *get_text(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	if (!cJSON_IsString(v) || !v->valuestring)
		return NULL;
	return dup_utf8(v->valuestring);
}

/* A change or patchset number: Gerrit/GitHub send ints or strings depending on the Zuul
 * version, so both become the same decimal string. Non-integral, negative or huge numbers
 * carry no usable number and become NULL. Caller frees. */
static char *get_number_text(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		char buf[32];
		if (!isfinite(d) || d < 0 || d > 9007199254740992.0 || d != floor(d))
			return NULL;
		snprintf(buf, sizeof(buf), "%.0f", d);
		return xstrdup(buf);
	}
	return get_str(obj, key);
}

/* Unix seconds; 0 (unknown) for anything that is not a finite, non-negative number. Numeric
 * strings are accepted because Zuul's own documented example shows times as strings. */
static double get_time(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);
	double d;

	if (cJSON_IsNumber(v)) {
		d = v->valuedouble;
	} else if (cJSON_IsString(v) && v->valuestring && v->valuestring[0] >= '0' &&
		   v->valuestring[0] <= '9' && strspn(v->valuestring, "0123456789.eE+-") ==
		   strlen(v->valuestring)) {
		char *end;
		d = strtod(v->valuestring, &end);
		if (*end)
			return 0;
	} else {
		return 0;
	}
	return isfinite(d) && d > 0 ? d : 0;
}

/* A boolean, dflt when absent or null (shape_check refused every other type). */
static bool get_bool(const cJSON *obj, const char *key, bool dflt)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* owner: current Zuul sends the Gerrit username (a string) or null; older Gerrit drivers
 * passed Gerrit's account object ({name, email, username}) straight through. */
static char *get_owner(const cJSON *obj)
{
	const cJSON *v = field(obj, "owner");
	static const char *const keys[] = {"name", "username", "email"};

	if (cJSON_IsObject(v)) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			char *s = get_str(v, keys[i]);
			if (s)
				return s;
		}
		return NULL;
	}
	return get_str(obj, "owner");
}

/* ---- shape: the types Zuul sends ------------------------------------------------------------ */

/* A payload whose fields have types Zuul never sends is not a Zuul report: decoding what fits
 * and dropping the rest would post half a report (a buildset without builds reads as "no jobs").
 * So every field the bridge reads is checked here, and one of the wrong type rejects the whole
 * payload with its path, like any other payload that is not a report. null stands for "none"
 * everywhere, as in Zuul. Fields the bridge does not read (returned_data, events, metadata...)
 * may hold anything. */

enum shape {
	SHAPE_STRING = 1,      /* string or null */
	SHAPE_NUMBER_TEXT = 2, /* number, string or null: change and patchset numbers, times */
	SHAPE_OWNER = 4,       /* string, object (older Gerrit drivers' account) or null */
	SHAPE_BOOL = 8,        /* boolean or null */
	SHAPE_OBJECT = 16,     /* object or null */
	SHAPE_ARRAY = 32,      /* array or null */
};

static const char *shape_name(enum shape sh)
{
	switch (sh) {
	case SHAPE_STRING:
		return "a string";
	case SHAPE_NUMBER_TEXT:
		return "a number or a string";
	case SHAPE_OWNER:
		return "a string or an object";
	case SHAPE_BOOL:
		return "a boolean";
	case SHAPE_OBJECT:
		return "an object";
	case SHAPE_ARRAY:
		return "an array";
	}
	return "something else";
}

static bool shape_fits(const cJSON *v, enum shape sh)
{
	if (!v || cJSON_IsNull(v))
		return true;
	switch (sh) {
	case SHAPE_STRING:
		return cJSON_IsString(v);
	case SHAPE_NUMBER_TEXT:
		return cJSON_IsString(v) || cJSON_IsNumber(v);
	case SHAPE_OWNER:
		return cJSON_IsString(v) || cJSON_IsObject(v);
	case SHAPE_BOOL:
		return cJSON_IsBool(v);
	case SHAPE_OBJECT:
		return cJSON_IsObject(v);
	case SHAPE_ARRAY:
		return cJSON_IsArray(v);
	}
	return false;
}

struct shape_field {
	const char *key;
	enum shape shape;
};

/* The fields of a change, at the top level (Zuul < 10's only copy), in changes[] and in a
 * build's change (mqttreporter.py builds all three from the same attributes). */
static const struct shape_field change_fields[] = {
	{"project", SHAPE_STRING},  {"branch", SHAPE_STRING},       {"change_url", SHAPE_STRING},
	{"change", SHAPE_NUMBER_TEXT}, {"patchset", SHAPE_NUMBER_TEXT}, {"commit_id", SHAPE_STRING},
	{"owner", SHAPE_OWNER},     {"ref", SHAPE_STRING},          {"topic", SHAPE_STRING},
};

static const struct shape_field event_fields[] = {
	{"tenant", SHAPE_STRING},       {"pipeline", SHAPE_STRING},
	{"queue", SHAPE_STRING},        {"uuid", SHAPE_STRING},
	{"zuul_ref", SHAPE_STRING},     {"zuul_event_id", SHAPE_STRING},
	{"message", SHAPE_STRING},      {"tenant_web_root", SHAPE_STRING},
	{"timestamp", SHAPE_NUMBER_TEXT}, {"trigger_time", SHAPE_NUMBER_TEXT},
	{"enqueue_time", SHAPE_NUMBER_TEXT}, {"changes", SHAPE_ARRAY},
	{"buildset", SHAPE_OBJECT},
};

static const struct shape_field buildset_fields[] = {
	{"uuid", SHAPE_STRING}, {"result", SHAPE_STRING}, {"builds", SHAPE_ARRAY}, {"retry_builds", SHAPE_ARRAY},
};

static const struct shape_field build_fields[] = {
	{"job_name", SHAPE_STRING},        {"job_uuid", SHAPE_STRING},         {"uuid", SHAPE_STRING},
	{"result", SHAPE_STRING},          {"log_url", SHAPE_STRING},          {"web_url", SHAPE_STRING},
	{"voting", SHAPE_BOOL},            {"execute_time", SHAPE_NUMBER_TEXT}, {"start_time", SHAPE_NUMBER_TEXT},
	{"end_time", SHAPE_NUMBER_TEXT},   {"change", SHAPE_OBJECT},           {"artifacts", SHAPE_ARRAY},
	{"dependencies", SHAPE_ARRAY},
};

static const struct shape_field artifact_fields[] = {
	{"name", SHAPE_STRING},
	{"url", SHAPE_STRING},
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* Checks the listed fields of obj (path names obj in the reason: "buildset.builds[2]"). */
static bool shape_check_fields(const cJSON *obj, const char *path, const struct shape_field *fields, size_t n,
			       char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		const cJSON *v = field(obj, fields[i].key);
		if (shape_fits(v, fields[i].shape))
			continue;
		zuul_set_err(err, errlen, "not a Zuul report: %s%s%s is %s, not %s", path, *path ? "." : "",
			     fields[i].key, json_type_name(v), shape_name(fields[i].shape));
		return false;
	}
	return true;
}

/* Every element of the array obj[key] must be an object (or, with strings set, a string);
 * each object's fields are checked against fields. */
static bool shape_check_list(const cJSON *obj, const char *path, const char *key, bool strings,
			     const struct shape_field *fields, size_t n, char *err, size_t errlen)
{
	const cJSON *arr = field(obj, key);
	const cJSON *e;
	size_t i = 0;
	char at[160];

	if (!cJSON_IsArray(arr))
		return true; /* absent or null: the caller checked the type */
	cJSON_ArrayForEach(e, arr)
	{
		snprintf(at, sizeof at, "%s%s%s[%zu]", path, *path ? "." : "", key, i++);
		if (strings ? !cJSON_IsString(e) : !cJSON_IsObject(e)) {
			zuul_set_err(err, errlen, "not a Zuul report: %s is %s, not %s", at, json_type_name(e),
				     strings ? "a string" : "an object");
			return false;
		}
		if (!strings && !shape_check_fields(e, at, fields, n, err, errlen))
			return false;
	}
	return true;
}

static bool shape_check_builds(const cJSON *buildset, const char *key, char *err, size_t errlen)
{
	const cJSON *arr = field(buildset, key);
	const cJSON *b;
	size_t i = 0;
	char at[96];

	if (!shape_check_list(buildset, "buildset", key, false, build_fields, NFIELDS(build_fields), err, errlen))
		return false;
	if (!cJSON_IsArray(arr))
		return true;
	cJSON_ArrayForEach(b, arr)
	{
		snprintf(at, sizeof at, "buildset.%s[%zu]", key, i);
		char change_at[112];
		snprintf(change_at, sizeof change_at, "%s.change", at);
		if (!shape_check_fields(field(b, "change"), change_at, change_fields, NFIELDS(change_fields), err,
					errlen) ||
		    !shape_check_list(b, at, "artifacts", false, artifact_fields, NFIELDS(artifact_fields), err,
				      errlen) ||
		    !shape_check_list(b, at, "dependencies", true, NULL, 0, err, errlen))
			return false;
		i++;
	}
	return true;
}

static bool shape_check(const cJSON *root, char *err, size_t errlen)
{
	const cJSON *buildset = field(root, "buildset");
	return shape_check_fields(root, "", event_fields, NFIELDS(event_fields), err, errlen) &&
	       shape_check_fields(root, "", change_fields, NFIELDS(change_fields), err, errlen) &&
	       shape_check_list(root, "", "changes", false, change_fields, NFIELDS(change_fields), err, errlen) &&
	       shape_check_fields(buildset, "buildset", buildset_fields, NFIELDS(buildset_fields), err, errlen) &&
	       shape_check_builds(buildset, "builds", err, errlen) &&
	       shape_check_builds(buildset, "retry_builds", err, errlen);
}

/* ---- structures ---------------------------------------------------------------------------- */

static void change_parse(struct zuul_change *c, const cJSON *obj)
{
	c->project = get_str(obj, "project");
	c->branch = get_str(obj, "branch");
	c->change_url = get_str(obj, "change_url");
	c->change = get_number_text(obj, "change");
	c->patchset = get_number_text(obj, "patchset");
	c->commit_id = get_str(obj, "commit_id");
	c->owner = get_owner(obj);
	c->ref = get_str(obj, "ref");
	c->topic = get_str(obj, "topic");
}

static void change_copy(struct zuul_change *dst, const struct zuul_change *src)
{
	dst->project = xstrdup(src->project);
	dst->branch = xstrdup(src->branch);
	dst->change_url = xstrdup(src->change_url);
	dst->change = xstrdup(src->change);
	dst->patchset = xstrdup(src->patchset);
	dst->commit_id = xstrdup(src->commit_id);
	dst->owner = xstrdup(src->owner);
	dst->ref = xstrdup(src->ref);
	dst->topic = xstrdup(src->topic);
}

static void change_clear(struct zuul_change *c)
{
	free(c->project);
	free(c->branch);
	free(c->change_url);
	free(c->change);
	free(c->patchset);
	free(c->commit_id);
	free(c->owner);
	free(c->ref);
	free(c->topic);
}

/* Counts the object elements of an array (the only ones we decode); 0 when not an array. */
static size_t count_objects(const cJSON *arr)
{
	size_t n = 0;
	const cJSON *e;

	if (!cJSON_IsArray(arr))
		return 0;
	cJSON_ArrayForEach(e, arr)
	{
		if (cJSON_IsObject(e))
			n++;
	}
	return n;
}

static void build_parse(struct zuul_build *b, const cJSON *obj, bool retried)
{
	const cJSON *e;

	b->job_name = get_str(obj, "job_name");
	b->job_uuid = get_str(obj, "job_uuid");
	b->uuid = get_str(obj, "uuid");
	b->result = get_str(obj, "result");
	/* mqttreporter.py adds uuid, result, times and urls only `if build:`; a job without a
	 * build is just job_name, job_uuid and voting. */
	b->has_build = b->uuid || b->result;
	b->custom_result = b->result && !zuul_result_is_zuuls(b->result);
	b->log_url = get_str(obj, "log_url");
	b->web_url = get_str(obj, "web_url");
	b->voting = get_bool(obj, "voting", true);
	b->retried = retried;
	b->execute_time = get_time(obj, "execute_time");
	b->start_time = get_time(obj, "start_time");
	b->end_time = get_time(obj, "end_time");

	const cJSON *change = field(obj, "change");
	if (cJSON_IsObject(change)) {
		b->change = xcalloc(1, sizeof(*b->change));
		change_parse(b->change, change);
	}

	const cJSON *artifacts = field(obj, "artifacts");
	size_t n = count_objects(artifacts);
	if (n) {
		b->artifacts = xcalloc(n, sizeof(*b->artifacts));
		cJSON_ArrayForEach(e, artifacts)
		{
			if (!cJSON_IsObject(e))
				continue;
			struct zuul_artifact *a = &b->artifacts[b->n_artifacts++];
			a->name = get_str(e, "name");
			a->url = get_str(e, "url");
		}
	}

	const cJSON *deps = field(obj, "dependencies");
	if (cJSON_IsArray(deps)) {
		b->dependencies = xcalloc((size_t)cJSON_GetArraySize(deps) + 1, sizeof(char *));
		cJSON_ArrayForEach(e, deps)
		{
			if (cJSON_IsString(e) && e->valuestring && e->valuestring[0]) {
				char *s = dup_utf8(e->valuestring);
				if (s)
					b->dependencies[b->n_dependencies++] = s;
			}
		}
	}
}

static void build_clear(struct zuul_build *b)
{
	free(b->job_name);
	free(b->job_uuid);
	free(b->uuid);
	free(b->result);
	free(b->log_url);
	free(b->web_url);
	if (b->change) {
		change_clear(b->change);
		free(b->change);
	}
	for (size_t i = 0; i < b->n_artifacts; i++) {
		free(b->artifacts[i].name);
		free(b->artifacts[i].url);
	}
	free(b->artifacts);
	for (size_t i = 0; i < b->n_dependencies; i++)
		free(b->dependencies[i]);
	free(b->dependencies);
}

/* Decodes the object elements of arr into a new array (caller frees), storing the count. */
static struct zuul_build *builds_parse(const cJSON *arr, bool retried, size_t *count)
{
	size_t n = count_objects(arr);
	struct zuul_build *builds;
	const cJSON *e;

	*count = 0;
	if (n == 0)
		return NULL;
	builds = xcalloc(n, sizeof(*builds));
	cJSON_ArrayForEach(e, arr)
	{
		if (cJSON_IsObject(e))
			build_parse(&builds[(*count)++], e, retried);
	}
	return builds;
}

/* Zuul's QueueItem.formatJobResult (model.py, 14.3.0) sends a job's success-message in place
 * of SUCCESS and its failure-message in place of every other result (None included), so a
 * custom text says only "succeeded" or "did not": the report decides which. */
static const char *custom_meaning(const struct zuul_event *ev, const struct zuul_build *b)
{
	const char *overall = zuul_event_result(ev);
	if (!overall || !b->end_time)
		return NULL; /* running, or never ran (skipped builds have no end_time) */
	if (b->retried)
		return NULL; /* an attempt Zuul retried: RETRY, whatever the buildset did */
	if (strcmp(overall, "SUCCESS") == 0)
		/* A voting build that did not succeed fails the buildset; a non-voting one may
		 * have failed quietly. */
		return b->voting ? "SUCCESS" : NULL;
	static const char *const not_failures[] = {"DEQUEUED", "NO_JOBS", "SKIPPED", "ABORTED", "CANCELED"};
	for (size_t i = 0; i < NFIELDS(not_failures); i++)
		if (strcmp(overall, not_failures[i]) == 0)
			return NULL;
	return "FAILURE";
}

static void classify_custom_results(struct zuul_event *ev, struct zuul_build *builds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (builds[i].custom_result)
			builds[i].custom_means = custom_meaning(ev, &builds[i]);
}

static void event_fill(struct zuul_event *ev, const cJSON *root)
{
	const cJSON *buildset = field(root, "buildset");
	const cJSON *changes = field(root, "changes");

	/* Keys only current Zuul sends; their presence (even as null) marks the generation. */
	ev->schema = (field(root, "uuid") || changes || field(buildset, "result")) ? ZUUL_SCHEMA_CURRENT
										     : ZUUL_SCHEMA_LEGACY;
	ev->tenant = get_str(root, "tenant");
	ev->pipeline = get_str(root, "pipeline");
	ev->queue = get_str(root, "queue");
	ev->uuid = get_str(root, "uuid");
	ev->zuul_ref = get_str(root, "zuul_ref");
	ev->zuul_event_id = get_str(root, "zuul_event_id");
	ev->message = get_text(root, "message");
	ev->tenant_web_root = get_str(root, "tenant_web_root");

	size_t n = count_objects(changes);
	if (n) {
		const cJSON *e;
		ev->changes = xcalloc(n, sizeof(*ev->changes));
		cJSON_ArrayForEach(e, changes)
		{
			if (cJSON_IsObject(e))
				change_parse(&ev->changes[ev->n_changes++], e);
		}
	}
	/* Zuul >= 10 describes every change in changes; its top-level project, branch... are
	 * a deprecated copy of changes[0] (mqttreporter.py), read only from older Zuul. */
	if (ev->n_changes)
		change_copy(&ev->item, &ev->changes[0]);
	else
		change_parse(&ev->item, root);

	ev->timestamp = get_time(root, "timestamp");
	ev->trigger_time = get_time(root, "trigger_time");
	ev->enqueue_time = get_time(root, "enqueue_time");
	ev->buildset_uuid = get_str(buildset, "uuid");
	ev->buildset_result = get_str(buildset, "result");
	ev->builds = builds_parse(field(buildset, "builds"), false, &ev->n_builds);
	ev->retry_builds = builds_parse(field(buildset, "retry_builds"), true, &ev->n_retry_builds);
	classify_custom_results(ev, ev->builds, ev->n_builds);
	classify_custom_results(ev, ev->retry_builds, ev->n_retry_builds);
}

struct zuul_event *zuul_event_parse(const char *payload, size_t len, char *err, size_t errlen)
{
	zuul_set_err(err, errlen, "%s", "");
	struct zuul_prepared pp;
	if (!zuul_payload_prepare(payload, len, &pp, err, errlen))
		return NULL;

	const char *text = pp.text;
	size_t text_len = strlen(text);
	const char *end = NULL;
	/* Length includes the NUL: with require_null_terminated, cJSON 1.7.15 insists on seeing
	 * it inside the buffer, and it also rejects anything after the value. */
	cJSON *root = cJSON_ParseWithLengthOpts(text, text_len + 1, &end, true);
	if (!root) {
		if (end && end >= text && end <= text + text_len)
			zuul_set_err(err, errlen, "not JSON: syntax error at byte %zu",
				     zuul_prepared_origin(&pp, (size_t)(end - text)));
		else
			zuul_set_err(err, errlen, "not JSON");
		zuul_prepared_free(&pp);
		return NULL;
	}
	zuul_prepared_free(&pp);

	struct zuul_event *ev = NULL;
	const cJSON *action = field(root, "action");
	if (!cJSON_IsObject(root)) {
		zuul_set_err(err, errlen, "not an object (got %s)", json_type_name(root));
	} else if (!action) {
		zuul_set_err(err, errlen, "no action");
	} else if (!cJSON_IsString(action) || !action->valuestring) {
		zuul_set_err(err, errlen, "no action (action is %s, not a string)", json_type_name(action));
	} else if (!action->valuestring[0]) {
		zuul_set_err(err, errlen, "no action (action is empty)");
	} else if (!shape_check(root, err, errlen)) {
		/* err says which field */
	} else {
		ev = xcalloc(1, sizeof(*ev));
		ev->action = dup_utf8(action->valuestring);
		event_fill(ev, root);
		if (!ev->action) { /* unreachable after zuul_payload_prepare; kept as the invariant's guard */
			zuul_event_free(ev);
			ev = NULL;
			zuul_set_err(err, errlen, "no action (not valid UTF-8)");
		}
	}
	cJSON_Delete(root);
	return ev;
}

void zuul_event_free(struct zuul_event *ev)
{
	if (!ev)
		return;
	free(ev->action);
	free(ev->tenant);
	free(ev->pipeline);
	free(ev->queue);
	free(ev->uuid);
	free(ev->zuul_ref);
	free(ev->zuul_event_id);
	free(ev->message);
	free(ev->tenant_web_root);
	change_clear(&ev->item);
	for (size_t i = 0; i < ev->n_changes; i++)
		change_clear(&ev->changes[i]);
	free(ev->changes);
	free(ev->buildset_uuid);
	free(ev->buildset_result);
	for (size_t i = 0; i < ev->n_builds; i++)
		build_clear(&ev->builds[i]);
	free(ev->builds);
	for (size_t i = 0; i < ev->n_retry_builds; i++)
		build_clear(&ev->retry_builds[i]);
	free(ev->retry_builds);
	free(ev);
}

/* ---- results ---------------------------------------------------------------------------- */

/* Zuul's result words, builds and buildsets, Zuul 3.x to 14.3.0 (executor/server.py,
 * scheduler.py, manager/__init__.py, model.py), plus the older spellings still in databases
 * (MERGER_FAILURE, renamed MERGE_CONFLICT). */
static const char *const zuul_results[] = {
	"SUCCESS",      "FAILURE",       "POST_FAILURE",   "TIMED_OUT",   "RETRY_LIMIT",
	"NODE_FAILURE", "ERROR",         "EXCEPTION",      "LOST",        "DISK_FULL",
	"SNAPSHOT_FAILURE", "SECRET_EXPOSURE", "MERGE_CONFLICT", "MERGE_FAILURE", "MERGER_FAILURE",
	"CONFIG_ERROR", "SKIPPED",       "ABORTED",        "CANCELED",    "DEQUEUED",
	"RETRY",        "NO_JOBS",
};

bool zuul_result_is_zuuls(const char *s)
{
	if (!s)
		return false;
	for (size_t i = 0; i < NFIELDS(zuul_results); i++)
		if (strcmp(s, zuul_results[i]) == 0)
			return true;
	return false;
}

const struct zuul_change *zuul_build_change(const struct zuul_event *ev, const struct zuul_build *b)
{
	return b->change && b->change->project ? b->change : &ev->item;
}

bool zuul_build_failed(const struct zuul_build *b)
{
	/* Listing the outcomes that are not failures keeps a result Zuul adds later (DISK_FULL,
	 * LOST, ...) on the side of telling someone. */
	static const char *const fine[] = {"SUCCESS", "SKIPPED", "ABORTED", "CANCELED", "RETRY", "DEQUEUED"};
	if (!b->result)
		return false;
	if (b->custom_result)
		return b->custom_means && strcmp(b->custom_means, "FAILURE") == 0;
	for (size_t i = 0; i < NFIELDS(fine); i++)
		if (strcmp(b->result, fine[i]) == 0)
			return false;
	return true;
}

const char *zuul_event_result(const struct zuul_event *ev)
{
	static const char *const map[][2] = {
		{"success", "SUCCESS"},          {"failure", "FAILURE"},
		{"merge-conflict", "MERGE_CONFLICT"}, {"merge-failure", "MERGE_FAILURE"},
		{"config-error", "CONFIG_ERROR"}, {"dequeue", "DEQUEUED"},
	};
	if (ev->buildset_result)
		return ev->buildset_result;
	for (size_t i = 0; i < NFIELDS(map); i++)
		if (ev->action && strcmp(ev->action, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

const struct zuul_change *zuul_event_changes(const struct zuul_event *ev, size_t *n)
{
	if (ev->n_changes) {
		*n = ev->n_changes;
		return ev->changes;
	}
	*n = 1;
	return &ev->item;
}

/* ---- preview and identity ------------------------------------------------------------------ */

/* Characters a log reader should never see raw: C0/C1 controls and DEL, line and paragraph
 * separators, and the bidi embedding/override/isolate controls that can make a log line read
 * differently from what it contains. */
static bool preview_hides(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069);
}

char *zuul_payload_preview(const char *payload, size_t len, size_t max_chars)
{
	struct strbuf sb = STRBUF_INIT;
	const unsigned char *p = (const unsigned char *)payload;
	/* The "..." counts toward max_chars, so a cut preview is never longer than asked. */
	size_t keep = max_chars < 3 ? 0 : max_chars - 3;
	size_t chars = 0, i = 0, cut_at = 0;
	bool cut = false;
	uint32_t cp;

	if (!payload)
		len = 0;
	while (i < len) {
		if (chars == keep)
			cut_at = sb.len;
		if (chars == max_chars) {
			cut = true;
			break;
		}
		size_t k = zuul_utf8_sequence(p + i, len - i, &cp);
		if (k == 0) {
			strbuf_puts(&sb, "\xEF\xBF\xBD"); /* U+FFFD, one per bad byte */
			k = 1;
		} else if (preview_hides(cp)) {
			strbuf_putc(&sb, '?');
		} else {
			strbuf_append(&sb, payload + i, k);
		}
		i += k;
		chars++;
	}
	if (cut) {
		sb.len = cut_at;
		if (sb.data)
			sb.data[sb.len] = '\0';
		strbuf_puts(&sb, "...");
	}
	return strbuf_detach(&sb);
}

/* A uuid is used as the key only if it is short and made of URL-safe characters: the key ends
 * up in Matrix transaction ids (URL path segments) and database rows, and a payload field must
 * not be able to smuggle anything else there. */
static bool key_usable(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* The fallback is 64-bit FNV-1a over the payload bytes, not SHA-256: it is defined on bytes
 * only (same result on every machine and run), needs no crypto library, and the key is not a
 * security boundary (whoever can publish to the topic can already post any report). Only
 * payloads without any uuid reach it, and for those the identity is the payload itself, so a
 * QoS 1 redelivery still deduplicates. */
char *zuul_event_key(const struct zuul_event *ev, const char *payload, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	char buf[32];

	if (ev && key_usable(ev->buildset_uuid))
		return xstrdup(ev->buildset_uuid);
	if (ev && key_usable(ev->uuid))
		return xstrdup(ev->uuid);
	for (size_t i = 0; payload && i < len; i++) {
		h ^= (unsigned char)payload[i];
		h *= 0x100000001b3ULL;
	}
	snprintf(buf, sizeof(buf), "fnv1a64:%016" PRIx64, h);
	return xstrdup(buf);
}
