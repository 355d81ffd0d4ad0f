/* zuul: decodes one Zuul MQTT report (JSON, both schema generations) into struct zuul_event.
 * The raw bytes are checked first (size, UTF-8, NUL, nesting) so every string handed out is clean. */
#include "zuul.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* ---- raw bytes ---------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (at most n bytes available), storing its code
 * point, or 0 when it is not one: overlong forms, surrogates and values past U+10FFFF are
 * refused here because cJSON copies raw bytes through without looking at them. */
static size_t utf8_sequence(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t len;
	uint32_t v, min;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2, v = c & 0x1Fu, min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3, v = c & 0x0Fu, min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4, v = c & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3Fu);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return len;
}

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	uint32_t cp;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_sequence(p + i, n - i, &cp);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at s (n bytes available) as a number, or -1. */
static long hex4(const char *s, size_t n)
{
	long v = 0;

	if (n < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hex_value(s[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Checks the raw payload and returns a NUL-terminated copy ready for cJSON (caller frees), or
 * NULL with a reason. In the copy, JSON escapes cJSON 1.7.15 mishandles are rewritten in place
 * to "\ufffd" (same length): "\u0000" would end the C string early and silently truncate the
 * field, and a lone surrogate escape would make cJSON reject the whole report. Python's
 * json.dumps (what Zuul uses) emits both for odd input, so we keep the report and mark the
 * spot with U+FFFD instead of losing it. */
static char *payload_prepare(const char *payload, size_t len, char *err, size_t errlen)
{
	if (!payload || len == 0) {
		set_err(err, errlen, "empty payload");
		return NULL;
	}
	if (len > ZUUL_PAYLOAD_MAX) {
		set_err(err, errlen, "payload too large: %zu bytes (limit %d)", len, ZUUL_PAYLOAD_MAX);
		return NULL;
	}
	/* Publishers written in C sometimes send the string's terminator too. */
	if (payload[len - 1] == '\0')
		len--;

	char *copy = xmalloc(len + 1);
	memcpy(copy, payload, len);
	copy[len] = '\0';

	const unsigned char *p = (const unsigned char *)copy;
	bool in_string = false;
	int depth = 0;
	size_t i = 0;
	uint32_t cp;

	while (i < len) {
		unsigned char c = p[i];
		if (c == '\0') {
			set_err(err, errlen, "NUL byte at byte %zu", i);
			goto fail;
		}
		if (c >= 0x80) {
			size_t k = utf8_sequence(p + i, len - i, &cp);
			if (k == 0) {
				set_err(err, errlen, "not valid UTF-8 at byte %zu", i);
				goto fail;
			}
			i += k;
			continue;
		}
		if (in_string) {
			if (c == '"') {
				in_string = false;
			} else if (c == '\\' && i + 1 < len && copy[i + 1] == 'u') {
				long u = hex4(copy + i + 2, len - i - 2);
				if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && copy[i + 6] == '\\' &&
				    copy[i + 7] == 'u') {
					long lo = hex4(copy + i + 8, len - i - 8);
					if (lo >= 0xDC00 && lo <= 0xDFFF) {
						i += 12; /* a proper pair: cJSON decodes it */
						continue;
					}
				}
				if (u == 0 || (u >= 0xD800 && u <= 0xDFFF))
					memcpy(copy + i + 2, "fffd", 4);
				i += u >= 0 ? 6 : 2;
				continue;
			} else if (c == '\\' && i + 1 < len && (unsigned char)copy[i + 1] < 0x80) {
				/* Skip the escaped byte so \" does not end the string; a non-ASCII
				 * byte after '\' is left to the UTF-8 check (cJSON rejects it). */
				i += 2;
				continue;
			}
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > ZUUL_NESTING_MAX) {
				set_err(err, errlen, "nested deeper than %d levels at byte %zu", ZUUL_NESTING_MAX,
					i);
				goto fail;
			}
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
		i++;
	}
	return copy;
fail:
	free(copy);
	return NULL;
}

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
	return s && utf8_valid(s) ? xstrdup(s) : NULL;
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

static bool get_bool(const cJSON *obj, const char *key, bool dflt)
{
	const cJSON *v = field(obj, key);

	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v);
	if (cJSON_IsNumber(v))
		return v->valuedouble != 0;
	return dflt;
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
	change_parse(&ev->item, root);

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

	ev->timestamp = get_time(root, "timestamp");
	ev->trigger_time = get_time(root, "trigger_time");
	ev->enqueue_time = get_time(root, "enqueue_time");
	ev->buildset_uuid = get_str(buildset, "uuid");
	ev->buildset_result = get_str(buildset, "result");
	ev->builds = builds_parse(field(buildset, "builds"), false, &ev->n_builds);
	ev->retry_builds = builds_parse(field(buildset, "retry_builds"), true, &ev->n_retry_builds);
}

struct zuul_event *zuul_event_parse(const char *payload, size_t len, char *err, size_t errlen)
{
	set_err(err, errlen, "%s", "");
	char *text = payload_prepare(payload, len, err, errlen);
	if (!text)
		return NULL;

	size_t text_len = strlen(text);
	const char *end = NULL;
	/* Length includes the NUL: with require_null_terminated, cJSON 1.7.15 insists on seeing
	 * it inside the buffer, and it also rejects anything after the value. */
	cJSON *root = cJSON_ParseWithLengthOpts(text, text_len + 1, &end, true);
	if (!root) {
		if (end && end >= text && end <= text + text_len)
			set_err(err, errlen, "not JSON: syntax error at byte %zu", (size_t)(end - text));
		else
			set_err(err, errlen, "not JSON");
		free(text);
		return NULL;
	}
	free(text);

	struct zuul_event *ev = NULL;
	const cJSON *action = field(root, "action");
	if (!cJSON_IsObject(root)) {
		set_err(err, errlen, "not an object (got %s)", json_type_name(root));
	} else if (!action) {
		set_err(err, errlen, "no action");
	} else if (!cJSON_IsString(action) || !action->valuestring) {
		set_err(err, errlen, "no action (action is %s, not a string)", json_type_name(action));
	} else if (!action->valuestring[0]) {
		set_err(err, errlen, "no action (action is empty)");
	} else {
		ev = xcalloc(1, sizeof(*ev));
		ev->action = dup_utf8(action->valuestring);
		event_fill(ev, root);
		if (!ev->action) { /* unreachable after payload_prepare; kept as the invariant's guard */
			zuul_event_free(ev);
			ev = NULL;
			set_err(err, errlen, "no action (not valid UTF-8)");
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

bool zuul_build_failed(const struct zuul_build *b)
{
	/* Listing the outcomes that are not failures keeps a result Zuul adds later (DISK_FULL,
	 * LOST, ...) on the side of telling someone. */
	static const char *const fine[] = {"SUCCESS", "SKIPPED", "ABORTED", "CANCELED", "RETRY"};
	if (!b->result)
		return false;
	for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++)
		if (strcmp(b->result, fine[i]) == 0)
			return false;
	return true;
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
		size_t k = utf8_sequence(p + i, len - i, &cp);
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
