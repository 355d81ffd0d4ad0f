/* fuzz_incident: libFuzzer target for the infrastructure-incident tracker fed by what Zuul
 * publishes: the input is several MQTT payloads separated by 0x1E (RS, as in RFC 7464 JSON
 * text sequences), each decoded by zuul_event_parse and observed with a moving clock; then
 * every incident is rendered, expired, saved and loaded back, and the raw input is loaded as
 * a saved state. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "incident.h"
#include "strbuf.h"
#include "zuul.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SEPARATOR 0x1e
/* 2023-11-14T22:13:20Z; then each report moves the clock by 0 to 15 minutes. */
#define START_MS 1700000000000LL
/* Ten minutes and two projects: both grouping rules (and closing) within few reports. */
static const struct incident_options options = {.job_window_s = 600, .job_min_projects = 2};

struct ids {
	char **v;
	size_t n;
};

static void ids_add(struct ids *ids, const char *id)
{
	for (size_t i = 0; i < ids->n; i++)
		if (strcmp(ids->v[i], id) == 0)
			return;
	ids->v = xrealloc(ids->v, (ids->n + 1) * sizeof *ids->v);
	ids->v[ids->n++] = xstrdup(id);
}

static void ids_free(struct ids *ids)
{
	for (size_t i = 0; i < ids->n; i++)
		free(ids->v[i]);
	free(ids->v);
}

static char *render(const struct incident_tracker *t, const char *id, int64_t now_ms)
{
	cJSON *content = incident_content_new(t, id, now_ms);
	struct incident_info info;
	bool known = incident_get(t, id, &info) == 0;
	if (!content) {
		if (known)
			abort(); /* a known incident always renders */
		return NULL;
	}
	if (!known)
		abort();
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(content, "body");
	const cJSON *html = cJSON_GetObjectItemCaseSensitive(content, "formatted_body");
	if (!cJSON_IsString(body) || !cJSON_IsString(html))
		abort();
	/* "under about 40 KB" (incident.h): allow generous slack, catch runaway output. */
	if (strlen(body->valuestring) > 200000 || strlen(html->valuestring) > 200000)
		abort();
	char *printed = cJSON_PrintUnformatted(content);
	if (!printed)
		abort();
	char *copy = xstrdup(printed);
	cJSON_free(printed);
	cJSON_Delete(content);
	return copy;
}

/* Ids are usable as Matrix transaction ids as they are (incident.h). */
static void check_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 120 || strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
		abort();
}

/* The raw input as a saved state: it must load or be refused, and what loads must render. */
static void load_raw(const uint8_t *data, size_t size, int64_t now_ms)
{
	char *json = xmalloc(size + 1);
	memcpy(json, data, size);
	json[size] = '\0';
	struct incident_tracker *t = incident_tracker_new(&options);
	if (incident_tracker_load(t, json) == 0) {
		cJSON *root = cJSON_Parse(json);
		const cJSON *inc;
		cJSON_ArrayForEach(inc, cJSON_GetObjectItemCaseSensitive(root, "incidents"))
		{
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(inc, "id");
			if (cJSON_IsString(id))
				free(render(t, id->valuestring, now_ms));
		}
		cJSON_Delete(root);
		char *saved = incident_tracker_save(t);
		free(saved);
		char **closed = NULL;
		incident_expire(t, now_ms, &closed);
		incident_ids_free(closed);
	}
	incident_tracker_free(t);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Warnings about bad input are expected here; thousands of lines would hide findings. */
	log_set_level(ZLOG_ERROR);
	struct incident_tracker *t = incident_tracker_new(&options);
	struct ids ids = {0};
	int64_t now = START_MS;
	const uint8_t *p = data, *end = data + size;
	while (p <= end) {
		const uint8_t *sep = memchr(p, SEPARATOR, (size_t)(end - p));
		size_t len = sep ? (size_t)(sep - p) : (size_t)(end - p);
		char err[256];
		struct zuul_event *ev = zuul_event_parse((const char *)p, len, err, sizeof err);
		if (ev) {
			char *key = zuul_event_key(ev, (const char *)p, len);
			struct incident_outcome out;
			int absorbed = incident_observe(t, ev, key, now, &out);
			if (absorbed != (out.absorbed ? 1 : 0))
				abort();
			for (size_t i = 0; i < out.n_opened; i++) {
				check_id(out.opened[i]);
				ids_add(&ids, out.opened[i]);
				free(render(t, out.opened[i], now));
			}
			for (size_t i = 0; i < out.n_grown; i++) {
				ids_add(&ids, out.grown[i]);
				free(render(t, out.grown[i], now));
			}
			for (size_t i = 0; i < out.n_retro; i++)
				if (!out.retro[i].event_key || !out.retro[i].incident_id)
					abort();
			incident_outcome_free(&out);
			free(key);
			zuul_event_free(ev);
		} else if (!err[0]) {
			abort(); /* a refused payload always says why */
		}
		/* The step is the payload's length mod 16, in minutes: against the 10 minute
		 * window, short steps grow incidents and long ones close them, and one byte
		 * more or less (trailing whitespace) picks which. */
		now += (int64_t)(len % 16) * 60000;
		if (!sep)
			break;
		p = sep + 1;
	}

	/* Every incident as it stands, then expired: each closed one is named once. */
	for (size_t i = 0; i < ids.n; i++)
		free(render(t, ids.v[i], now));
	char **closed = NULL;
	size_t n_closed = incident_expire(t, now, &closed);
	for (size_t i = 0; i < n_closed; i++) {
		struct incident_info info;
		if (!closed || !closed[i] || (incident_get(t, closed[i], &info) == 0 && !info.closed))
			abort();
	}
	if (closed && closed[n_closed])
		abort();
	incident_ids_free(closed);
	if (incident_expire(t, now, NULL) != 0)
		abort(); /* named exactly once */

	/* Saved and loaded into a fresh tracker: the same incidents, rendered the same. */
	char *saved = incident_tracker_save(t);
	struct incident_tracker *t2 = incident_tracker_new(&options);
	if (incident_tracker_load(t2, saved) != 0)
		abort();
	for (size_t i = 0; i < ids.n; i++) {
		char *a = render(t, ids.v[i], now);
		char *b = render(t2, ids.v[i], now);
		if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
			abort();
		free(a);
		free(b);
	}
	char *saved2 = incident_tracker_save(t2);
	if (strcmp(saved, saved2) != 0)
		abort(); /* save(load(save)) is save */
	free(saved2);
	free(saved);
	incident_tracker_free(t2);
	incident_tracker_free(t);
	ids_free(&ids);

	load_raw(data, size, now);
	return 0;
}
