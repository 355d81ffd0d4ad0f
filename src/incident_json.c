/* incident_json: saves the tracker's incidents and remembered reports as JSON and loads them
 * back, all or nothing, so a restart does not forget the incidents. */
#include "incident.h"

#include <stdlib.h>
#include <string.h>

#include "incident_internal.h"
#include "strbuf.h"

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
		incident_state_clear(&fresh);
		return -1;
	}
	incident_state_clear(t);
	t->incidents = fresh.incidents;
	t->n_incidents = fresh.n_incidents;
	t->recents = fresh.recents;
	t->n_recents = fresh.n_recents;
	return 0;
}
