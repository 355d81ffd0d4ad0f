/* build_record: a build of Zuul's REST API, reduced to what a failure report lacks. */
#include "build_record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "details_text.h"
#include "strbuf.h"

#define FIELD_MAX 300

static const char *string_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

/* Zuul's results are upper-case words; anything else is not one the bridge can name. */
static bool result_word(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
			return false;
	return true;
}

int build_record_parse(const char *json, size_t len, const char *want_uuid, struct build_record *out, char *err,
		       size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (err && errlen)
		err[0] = '\0';
	cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
	const char *why = NULL;
	if (!root)
		why = "not JSON";
	else if (!cJSON_IsObject(root))
		why = "not a build record (expected a JSON object)";
	else if (!string_at(root, "uuid"))
		why = "not a build record (no uuid)";
	else if (want_uuid && strcmp(string_at(root, "uuid"), want_uuid) != 0)
		why = "the record is of another build";
	if (why) {
		if (err)
			snprintf(err, errlen, "%s", why);
		cJSON_Delete(root);
		return -1;
	}
	out->uuid = details_text_short(string_at(root, "uuid"), FIELD_MAX);
	out->job_name = details_text_short(string_at(root, "job_name"), FIELD_MAX);
	const char *result = string_at(root, "result");
	out->result = result_word(result) ? xstrdup(result) : NULL;
	const char *detail = string_at(root, "error_detail");
	if (detail && *detail)
		out->error_detail = details_text_short(detail, BUILD_RECORD_MAX_DETAIL);
	out->log_url = xstrdup(string_at(root, "log_url"));
	const cJSON *voting = cJSON_GetObjectItemCaseSensitive(root, "voting");
	out->voting = !cJSON_IsFalse(voting);
	cJSON_Delete(root);
	return 0;
}

void build_record_clear(struct build_record *r)
{
	if (!r)
		return;
	free(r->uuid);
	free(r->job_name);
	free(r->result);
	free(r->error_detail);
	free(r->log_url);
	memset(r, 0, sizeof *r);
}
