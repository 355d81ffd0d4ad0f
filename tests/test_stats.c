/* Tests of stats: the exact Prometheus text for known counters, a small checker of the
 * exposition format that the output must pass, label escaping, the histogram, /healthz. */
#include "stats.h"

#include <cjson/cJSON.h>

#include "test.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- a tiny exposition format (0.0.4) checker ---- */

struct family {
	char name[128];
	char type[16];
	bool help, sampled, closed;
};

struct checker {
	struct family fam[64];
	size_t n;
	struct family *current; /* family of the previous sample line */
	char series[256][256];  /* name + labels seen, for duplicates */
	size_t n_series;
	/* Histogram state of the current family. */
	double last_le;
	double last_bucket;
	double inf_bucket; /* -1: no +Inf bucket yet */
	char *why;
	size_t whylen;
};

static bool name_char(char c, bool first)
{
	return isalpha((unsigned char)c) || c == '_' || c == ':' || (!first && isdigit((unsigned char)c));
}

/* Length of a metric/label name at p, 0 when there is none. */
static size_t name_len(const char *p)
{
	size_t n = 0;
	while (p[n] && name_char(p[n], n == 0))
		n++;
	return n;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static struct family *find_family(struct checker *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->fam[i].name, name) == 0)
			return &c->fam[i];
	return NULL;
}

static struct family *add_family(struct checker *c, const char *name)
{
	struct family *f = find_family(c, name);
	if (f || c->n == 64)
		return f;
	f = &c->fam[c->n++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", name);
	return f;
}

static bool parse_value(const char *s, double *out)
{
	if (strcmp(s, "+Inf") == 0 || strcmp(s, "-Inf") == 0 || strcmp(s, "NaN") == 0) {
		*out = strcmp(s, "-Inf") == 0 ? -INFINITY : INFINITY;
		return true;
	}
	char *end;
	*out = strtod(s, &end);
	return end != s && *end == '\0';
}

#define FAIL(...) (snprintf(c->why, c->whylen, __VA_ARGS__), false)

static bool check_comment(struct checker *c, const char *line, int lineno)
{
	bool help = strncmp(line, "# HELP ", 7) == 0, type = strncmp(line, "# TYPE ", 7) == 0;
	if (!help && !type)
		return true; /* other comments are allowed */
	const char *p = line + 7;
	size_t n = name_len(p);
	if (n == 0 || n >= 128 || p[n] != ' ')
		return FAIL("line %d: bad metric name in %s", lineno, line);
	char name[128];
	memcpy(name, p, n);
	name[n] = '\0';
	struct family *f = add_family(c, name);
	if (!f)
		return FAIL("line %d: too many families", lineno);
	if (f->sampled)
		return FAIL("line %d: %s after samples of %s", lineno, help ? "HELP" : "TYPE", name);
	const char *rest = p + n + 1;
	if (help) {
		if (f->help)
			return FAIL("line %d: second HELP for %s", lineno, name);
		f->help = true;
		return true;
	}
	if (f->type[0])
		return FAIL("line %d: second TYPE for %s", lineno, name);
	if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
	    strcmp(rest, "summary") && strcmp(rest, "untyped"))
		return FAIL("line %d: unknown type '%s'", lineno, rest);
	if (strcmp(rest, "counter") == 0 && !ends_with(name, "_total"))
		return FAIL("line %d: counter %s does not end in _total", lineno, name);
	snprintf(f->type, sizeof(f->type), "%s", rest);
	return true;
}

/* The family a sample belongs to: its own name, or for histograms the name without
 * _bucket/_sum/_count. */
static struct family *sample_family(struct checker *c, const char *name, const char **suffix)
{
	static const char *const sfx[] = {"_bucket", "_sum", "_count"};
	*suffix = "";
	struct family *f = find_family(c, name);
	if (f)
		return f;
	for (size_t i = 0; i < 3; i++) {
		if (!ends_with(name, sfx[i]))
			continue;
		char base[128];
		snprintf(base, sizeof(base), "%.*s", (int)(strlen(name) - strlen(sfx[i])), name);
		f = find_family(c, base);
		if (f && strcmp(f->type, "histogram") == 0) {
			*suffix = sfx[i];
			return f;
		}
	}
	return NULL;
}

static bool check_sample(struct checker *c, const char *line, int lineno)
{
	size_t n = name_len(line);
	if (n == 0 || n >= 128)
		return FAIL("line %d: bad sample name: %s", lineno, line);
	char name[128];
	memcpy(name, line, n);
	name[n] = '\0';
	const char *p = line + n;
	char le[256] = "";
	if (*p == '{') {
		p++;
		while (*p != '}') {
			size_t ln = name_len(p);
			if (ln == 0 || p[ln] != '=' || p[ln + 1] != '"')
				return FAIL("line %d: bad label at '%s'", lineno, p);
			bool is_le = ln == 2 && strncmp(p, "le", 2) == 0;
			p += ln + 2;
			char value[256];
			size_t vn = 0;
			while (*p != '"') {
				char ch = *p;
				if (ch == '\0' || ch == '\n')
					return FAIL("line %d: unterminated label value", lineno);
				if (ch == '\\') {
					p++;
					if (*p != '\\' && *p != '"' && *p != 'n')
						return FAIL("line %d: bad escape \\%c in label value", lineno, *p);
					ch = *p == 'n' ? '\n' : *p;
				}
				if (vn + 1 < sizeof(value))
					value[vn++] = ch;
				p++;
			}
			value[vn] = '\0';
			if (is_le)
				snprintf(le, sizeof(le), "%s", value);
			p++;
			if (*p == ',')
				p++;
			else if (*p != '}')
				return FAIL("line %d: expected ',' or '}' at '%s'", lineno, p);
		}
		p++;
	}
	if (*p != ' ')
		return FAIL("line %d: expected a space before the value: %s", lineno, line);
	double v;
	if (!parse_value(p + 1, &v))
		return FAIL("line %d: bad value '%s'", lineno, p + 1);

	size_t series_len = (size_t)(p - line);
	for (size_t i = 0; i < c->n_series; i++)
		if (strlen(c->series[i]) == series_len && strncmp(c->series[i], line, series_len) == 0)
			return FAIL("line %d: duplicate series %.*s", lineno, (int)series_len, line);
	if (c->n_series < 256)
		snprintf(c->series[c->n_series++], 256, "%.*s", (int)series_len, line);

	const char *suffix;
	struct family *f = sample_family(c, name, &suffix);
	if (!f || !f->type[0])
		return FAIL("line %d: sample %s without a TYPE line before it", lineno, name);
	if (f->closed)
		return FAIL("line %d: samples of %s are not together", lineno, f->name);
	if (c->current && c->current != f)
		c->current->closed = true;
	if (c->current != f) {
		c->last_le = -INFINITY;
		c->last_bucket = 0;
		c->inf_bucket = -1;
	}
	c->current = f;
	f->sampled = true;
	if (strcmp(f->type, "counter") == 0 && v < 0)
		return FAIL("line %d: negative counter", lineno);
	if (strcmp(f->type, "histogram") != 0)
		return true;
	if (strcmp(suffix, "_bucket") == 0) {
		double bound;
		if (!le[0] || !parse_value(le, &bound))
			return FAIL("line %d: bucket without a numeric le label", lineno);
		if (bound <= c->last_le)
			return FAIL("line %d: le=%s not above the previous bucket", lineno, le);
		if (v < c->last_bucket)
			return FAIL("line %d: bucket le=%s is %g, below the previous %g (not cumulative)",
				    lineno, le, v, c->last_bucket);
		c->last_le = bound;
		c->last_bucket = v;
		if (isinf(bound))
			c->inf_bucket = v;
	} else if (strcmp(suffix, "_count") == 0) {
		if (c->inf_bucket < 0)
			return FAIL("line %d: %s_count before its le=\"+Inf\" bucket", lineno, f->name);
		if (v != c->inf_bucket)
			return FAIL("line %d: _count %g differs from the +Inf bucket %g", lineno, v, c->inf_bucket);
	} else if (!suffix[0]) {
		return FAIL("line %d: histogram %s sample without _bucket/_sum/_count", lineno, name);
	}
	return true;
}

/* 0 when text is valid exposition format 0.0.4 (as far as this checks), else -1 with why. */
static int exposition_check(const char *text, char *why, size_t whylen)
{
	static struct checker c;
	memset(&c, 0, sizeof(c));
	c.why = why;
	c.whylen = whylen;
	why[0] = '\0';
	size_t len = strlen(text);
	if (len == 0 || text[len - 1] != '\n') {
		snprintf(why, whylen, "text does not end with a line feed");
		return -1;
	}
	int lineno = 0;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		char line[1024];
		size_t n = (size_t)(nl - p);
		lineno++;
		if (n == 0 || n >= sizeof(line)) {
			snprintf(why, whylen, "line %d: empty or too long", lineno);
			return -1;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		bool ok = line[0] == '#' ? check_comment(&c, line, lineno) : check_sample(&c, line, lineno);
		if (!ok)
			return -1;
		p = nl + 1;
	}
	for (size_t i = 0; i < c.n; i++) {
		if (!c.fam[i].type[0] || !c.fam[i].help) {
			snprintf(why, whylen, "%s lacks HELP or TYPE", c.fam[i].name);
			return -1;
		}
		if (strcmp(c.fam[i].type, "histogram") == 0 && c.current == &c.fam[i] && c.inf_bucket < 0) {
			snprintf(why, whylen, "%s has no le=\"+Inf\" bucket", c.fam[i].name);
			return -1;
		}
	}
	return 0;
}

#define CHECK_EXPOSITION(text)                                                                       \
	do {                                                                                         \
		char why_[256];                                                                      \
		if (exposition_check((text), why_, sizeof(why_)) != 0) {                             \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: expected valid exposition format: %s\n", __FILE__, __LINE__, why_); \
		}                                                                                    \
	} while (0)

static void print_lines(const char *label, const char *text)
{
	printf("#   %s:\n", label);
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		int n = nl ? (int)(nl - p) : (int)strlen(p);
		printf("#     %.*s%s\n", n, p, nl ? "" : "  (no final newline)");
		p += n + (nl ? 1 : 0);
	}
}

#define CHECK_LINES(got, want)                                                                       \
	do {                                                                                         \
		const char *g_ = (got), *w_ = (want);                                                \
		if (strcmp(g_, w_) != 0) {                                                           \
			test_current_failed = 1;                                                     \
			printf("# %s:%d: %s differs\n", __FILE__, __LINE__, #got);                   \
			print_lines("expected", w_);                                                 \
			print_lines("got", g_);                                                      \
		}                                                                                    \
	} while (0)

/* ---- fixtures ---- */

static void known_stats(struct stats *s)
{
	*s = (struct stats){0};
	s->received = 10;
	s->rejected = 2;
	s->filtered = 3;
	s->retries = 4;
	s->rate_limited = 1;
	s->superseded = 6;
	s->sync_oversized = 1;
	s->sync_empty_backoffs = 9;
	s->zuul_actions[0] = 3;
	s->zuul_actions[1] = 1;
	s->zuul_actions[3] = 2;
	s->command_answers_dropped = 57;
	s->details = (struct stats_details){.fetches_ok = 11, .fetches_failed = 3, .refused = 4, .edits = 5};
	struct route_stats *r = stats_route(s, "alerts");
	r->routed = 5;
	r->deduplicated = 1;
	r->posted = 4;
	r = stats_route(s, "nightly");
	r->routed = 2;
	r->posted = 1;
	r->failed = 1;
	stats_observe_latency(s, 0);
	stats_observe_latency(s, 0.5); /* exactly on a bound: le is "less or equal" */
	stats_observe_latency(s, 1);
	stats_observe_latency(s, 45); /* above the last bound: only +Inf */
	s->outbox_depth = 7;
	s->state_db_bytes = 3178496;
	s->mqtt_connected = true;
	s->matrix_reachable = false;
	s->open_claims = 2;
	s->last_report_ms = 1764000000123;
	s->started_ms = 1763990000000;
	stats_room(s, "#alerts:example.org")->joined = true;
	struct room_stats *ops = stats_room(s, "#ops:example.org");
	ops->removals = 2;
	ops->encrypted = true;
}

static const char known_text[] =
	"# HELP zmb_reports_received_total MQTT messages received.\n"
	"# TYPE zmb_reports_received_total counter\n"
	"zmb_reports_received_total 10\n"
	"# HELP zmb_reports_rejected_total MQTT messages that were not a Zuul report.\n"
	"# TYPE zmb_reports_rejected_total counter\n"
	"zmb_reports_rejected_total 2\n"
	"# HELP zmb_reports_filtered_total Zuul reports no route wanted.\n"
	"# TYPE zmb_reports_filtered_total counter\n"
	"zmb_reports_filtered_total 3\n"
	"# HELP zmb_route_reports_routed_total Reports a route matched and queued for delivery.\n"
	"# TYPE zmb_route_reports_routed_total counter\n"
	"zmb_route_reports_routed_total{route=\"alerts\"} 5\n"
	"zmb_route_reports_routed_total{route=\"nightly\"} 2\n"
	"# HELP zmb_route_reports_deduplicated_total Reports a route matched that were already accepted before.\n"
	"# TYPE zmb_route_reports_deduplicated_total counter\n"
	"zmb_route_reports_deduplicated_total{route=\"alerts\"} 1\n"
	"zmb_route_reports_deduplicated_total{route=\"nightly\"} 0\n"
	"# HELP zmb_route_reports_posted_total Messages the homeserver accepted (200).\n"
	"# TYPE zmb_route_reports_posted_total counter\n"
	"zmb_route_reports_posted_total{route=\"alerts\"} 4\n"
	"zmb_route_reports_posted_total{route=\"nightly\"} 1\n"
	"# HELP zmb_route_reports_failed_total Messages given up on and moved to dead letters.\n"
	"# TYPE zmb_route_reports_failed_total counter\n"
	"zmb_route_reports_failed_total{route=\"alerts\"} 0\n"
	"zmb_route_reports_failed_total{route=\"nightly\"} 1\n"
	"# HELP zmb_delivery_retries_total Transient delivery failures that were retried.\n"
	"# TYPE zmb_delivery_retries_total counter\n"
	"zmb_delivery_retries_total 4\n"
	"# HELP zmb_delivery_rate_limited_total Homeserver answers 429 (rate limited).\n"
	"# TYPE zmb_delivery_rate_limited_total counter\n"
	"zmb_delivery_rate_limited_total 1\n"
	"# HELP zmb_edits_superseded_total Edits not sent because a newer edit of the same message was queued behind them.\n"
	"# TYPE zmb_edits_superseded_total counter\n"
	"zmb_edits_superseded_total 6\n"
	"# HELP zmb_command_answers_dropped_total Room commands not answered: their sender or room had used up the answers of the minute.\n"
	"# TYPE zmb_command_answers_dropped_total counter\n"
	"zmb_command_answers_dropped_total 57\n"
	"# HELP zmb_details_fetches_total Build records and job output files fetched for build details: ok (HTTP 200 "
	"within the caps) or failed (HTTP error, timeout, size cap).\n"
	"# TYPE zmb_details_fetches_total counter\n"
	"zmb_details_fetches_total{outcome=\"ok\"} 11\n"
	"zmb_details_fetches_total{outcome=\"failed\"} 3\n"
	"# HELP zmb_details_refused_urls_total Build detail URLs not requested: host not in details.hosts, not a URL "
	"to fetch, or too many waiting.\n"
	"# TYPE zmb_details_refused_urls_total counter\n"
	"zmb_details_refused_urls_total 4\n"
	"# HELP zmb_details_edits_total Reports edited to show their builds' details once fetched.\n"
	"# TYPE zmb_details_edits_total counter\n"
	"zmb_details_edits_total 5\n"
	"# HELP zmb_delivery_latency_seconds Time from accepting a report to the homeserver's 200.\n"
	"# TYPE zmb_delivery_latency_seconds histogram\n"
	"zmb_delivery_latency_seconds_bucket{le=\"0.005\"} 1\n"
	"zmb_delivery_latency_seconds_bucket{le=\"0.01\"} 1\n"
	"zmb_delivery_latency_seconds_bucket{le=\"0.025\"} 1\n"
	"zmb_delivery_latency_seconds_bucket{le=\"0.05\"} 1\n"
	"zmb_delivery_latency_seconds_bucket{le=\"0.1\"} 1\n"
	"zmb_delivery_latency_seconds_bucket{le=\"0.25\"} 1\n"
	"zmb_delivery_latency_seconds_bucket{le=\"0.5\"} 2\n"
	"zmb_delivery_latency_seconds_bucket{le=\"1\"} 3\n"
	"zmb_delivery_latency_seconds_bucket{le=\"2.5\"} 3\n"
	"zmb_delivery_latency_seconds_bucket{le=\"5\"} 3\n"
	"zmb_delivery_latency_seconds_bucket{le=\"10\"} 3\n"
	"zmb_delivery_latency_seconds_bucket{le=\"30\"} 3\n"
	"zmb_delivery_latency_seconds_bucket{le=\"+Inf\"} 4\n"
	"zmb_delivery_latency_seconds_sum 46.5\n"
	"zmb_delivery_latency_seconds_count 4\n"
	"# HELP zmb_outbox_depth Messages waiting in the outbox.\n"
	"# TYPE zmb_outbox_depth gauge\n"
	"zmb_outbox_depth 7\n"
	"# HELP zmb_state_db_bytes Size of state.db in bytes, free pages included.\n"
	"# TYPE zmb_state_db_bytes gauge\n"
	"zmb_state_db_bytes 3178496\n"
	"# HELP zmb_mqtt_connected 1 when the MQTT session is up.\n"
	"# TYPE zmb_mqtt_connected gauge\n"
	"zmb_mqtt_connected 1\n"
	"# HELP zmb_matrix_reachable 1 when the homeserver answered the last request.\n"
	"# TYPE zmb_matrix_reachable gauge\n"
	"zmb_matrix_reachable 0\n"
	"# HELP zmb_room_joined 1 when the bot is in the room, 0 while it is not (kicked, banned, not invited).\n"
	"# TYPE zmb_room_joined gauge\n"
	"zmb_room_joined{room=\"#alerts:example.org\"} 1\n"
	"zmb_room_joined{room=\"#ops:example.org\"} 0\n"
	"# HELP zmb_room_encrypted 1 when the room is encrypted: the bridge cannot encrypt, so its reports there are "
	"dead letters unless matrix.post_unencrypted names the room.\n"
	"# TYPE zmb_room_encrypted gauge\n"
	"zmb_room_encrypted{room=\"#alerts:example.org\"} 0\n"
	"zmb_room_encrypted{room=\"#ops:example.org\"} 1\n"
	"# HELP zmb_room_removals_total Times the bot was kicked or banned from the room.\n"
	"# TYPE zmb_room_removals_total counter\n"
	"zmb_room_removals_total{room=\"#alerts:example.org\"} 0\n"
	"zmb_room_removals_total{room=\"#ops:example.org\"} 2\n"
	"# HELP zmb_open_claims Failures claimed and not yet resolved.\n"
	"# TYPE zmb_open_claims gauge\n"
	"zmb_open_claims 2\n"
	"# HELP zmb_sync_oversized_total /sync answers over the 8 MiB size cap; each time the bridge asked for fewer "
	"events, skipping older ones.\n"
	"# TYPE zmb_sync_oversized_total counter\n"
	"zmb_sync_oversized_total 1\n"
	"# HELP zmb_sync_empty_backoffs_total /sync polls held back because the homeserver answered long polls at once "
	"with nothing.\n"
	"# TYPE zmb_sync_empty_backoffs_total counter\n"
	"zmb_sync_empty_backoffs_total 9\n"
	"# HELP zmb_last_report_timestamp_seconds Unix time of the last accepted report, 0 before the first.\n"
	"# TYPE zmb_last_report_timestamp_seconds gauge\n"
	"zmb_last_report_timestamp_seconds 1764000000.123\n"
	"# HELP zmb_start_time_seconds Unix time the bridge started.\n"
	"# TYPE zmb_start_time_seconds gauge\n"
	"zmb_start_time_seconds 1763990000\n"
	"# HELP zmb_zuul_actions_total Actions on Zuul asked for in the rooms (recheck, dequeue, autohold...), by "
	"outcome.\n"
	"# TYPE zmb_zuul_actions_total counter\n"
	"zmb_zuul_actions_total{outcome=\"accepted\"} 3\n"
	"zmb_zuul_actions_total{outcome=\"refused\"} 1\n"
	"zmb_zuul_actions_total{outcome=\"unreachable\"} 0\n"
	"zmb_zuul_actions_total{outcome=\"denied\"} 2\n";

/* ---- tests ---- */

static void test_exposition_text_is_exact_for_known_stats(void)
{
	struct stats s;
	known_stats(&s);
	struct strbuf out = STRBUF_INIT;
	stats_render_prometheus(&s, &out);
	CHECK_LINES(strbuf_str(&out), known_text);
	strbuf_free(&out);
	stats_clear(&s);
}

static void test_exposition_passes_the_format_check(void)
{
	struct stats s;
	known_stats(&s);
	struct strbuf out = STRBUF_INIT;
	stats_render_prometheus(&s, &out);
	CHECK_EXPOSITION(strbuf_str(&out));
	stats_clear(&s);
	/* No routes yet, nothing observed: families without samples are still valid. */
	strbuf_reset(&out);
	stats_render_prometheus(&s, &out);
	CHECK_EXPOSITION(strbuf_str(&out));
	CHECK_CONTAINS(strbuf_str(&out), "# TYPE zmb_route_reports_posted_total counter\n# HELP");
	CHECK_CONTAINS(strbuf_str(&out), "zmb_delivery_latency_seconds_bucket{le=\"+Inf\"} 0\n"
					 "zmb_delivery_latency_seconds_sum 0\n"
					 "zmb_delivery_latency_seconds_count 0\n");
	CHECK_CONTAINS(strbuf_str(&out), "\nzmb_last_report_timestamp_seconds 0\n");
	strbuf_free(&out);
}

/* The checker itself must be able to say no, or the test above proves nothing. */
static void test_format_check_rejects_broken_text(void)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"a_total 1\n", "without a TYPE"},
		{"# HELP a_total x\n# TYPE a_total counter\na_total 1", "line feed"},
		{"# HELP a x\n# TYPE a counter\na 1\n", "does not end in _total"},
		{"# HELP a x\n# TYPE a gauge\na{l=\"x\\t\"} 1\n", "bad escape"},
		{"# HELP a x\n# TYPE a gauge\na{l=\"x\"} one\n", "bad value"},
		{"# HELP a x\n# TYPE a gauge\na 1\na 2\n", "duplicate series"},
		{"# HELP a x\n# TYPE a gauge\na{l=\"1\"} 1\n# HELP b x\n# TYPE b gauge\nb 1\na{l=\"2\"} 1\n",
		 "not together"},
		{"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
		 "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n", "not cumulative"},
		{"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n", "before its le"},
		{"# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", "differs"},
		{"# TYPE a gauge\na 1\n", "lacks HELP"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char why[256];
		CHECK_INT(exposition_check(bad[i].text, why, sizeof(why)), -1);
		CHECK_CONTAINS(why, bad[i].why);
	}
}

static void test_hostile_route_names_are_escaped(void)
{
	struct stats s = {0};
	stats_route(&s, "a\"b\\c\nd")->posted = 3;
	stats_route(&s, "}{ 1\n# TYPE x counter")->failed = 1;
	struct strbuf out = STRBUF_INIT;
	stats_render_prometheus(&s, &out);
	CHECK_CONTAINS(strbuf_str(&out), "zmb_route_reports_posted_total{route=\"a\\\"b\\\\c\\nd\"} 3\n");
	CHECK_CONTAINS(strbuf_str(&out), "zmb_route_reports_failed_total{route=\"}{ 1\\n# TYPE x counter\"} 1\n");
	CHECK_NOT_CONTAINS(strbuf_str(&out), "\n# TYPE x counter");
	CHECK_EXPOSITION(strbuf_str(&out));
	strbuf_free(&out);
	stats_clear(&s);
}

static void test_histogram_buckets_are_cumulative_and_le_inclusive(void)
{
	struct stats s = {0};
	/* One observation on each bound, and one above the last. */
	for (size_t i = 0; i < STATS_LATENCY_BUCKETS; i++)
		stats_observe_latency(&s, stats_latency_bounds[i]);
	stats_observe_latency(&s, 31);
	for (size_t i = 0; i < STATS_LATENCY_BUCKETS; i++) {
		CHECK_INT(s.latency_buckets[i], i + 1);
		if (i > 0)
			CHECK(stats_latency_bounds[i] > stats_latency_bounds[i - 1]);
	}
	CHECK_INT(s.latency_count, STATS_LATENCY_BUCKETS + 1);
	CHECK(fabs(s.latency_sum - 80.44) < 1e-9);
	CHECK(stats_latency_bounds[0] == 0.005 && stats_latency_bounds[STATS_LATENCY_BUCKETS - 1] == 30);
	struct strbuf out = STRBUF_INIT;
	stats_render_prometheus(&s, &out);
	CHECK_CONTAINS(strbuf_str(&out), "zmb_delivery_latency_seconds_bucket{le=\"30\"} 12\n"
					 "zmb_delivery_latency_seconds_bucket{le=\"+Inf\"} 13\n"
					 "zmb_delivery_latency_seconds_sum 80.44\n"
					 "zmb_delivery_latency_seconds_count 13\n");
	CHECK_EXPOSITION(strbuf_str(&out));
	strbuf_free(&out);
}

static void test_negative_latency_counts_as_zero_and_nan_is_ignored(void)
{
	struct stats s = {0};
	stats_observe_latency(&s, -2.5);
	CHECK_INT(s.latency_buckets[0], 1);
	CHECK_INT(s.latency_count, 1);
	CHECK(s.latency_sum == 0);
	stats_observe_latency(&s, NAN);
	CHECK_INT(s.latency_count, 1);
	CHECK_INT(s.latency_buckets[STATS_LATENCY_BUCKETS - 1], 1);
}

static void test_stats_route_adds_a_route_once(void)
{
	struct stats s = {0};
	struct route_stats *a = stats_route(&s, "a");
	a->routed = 1;
	CHECK_STR(a->name, "a");
	stats_route(&s, "b")->routed = 2;
	CHECK_INT(s.n_routes, 2);
	a = stats_route(&s, "a");
	CHECK_INT(a->routed, 1);
	CHECK_INT(s.n_routes, 2);
	CHECK_STR(s.routes[1].name, "b");
	stats_clear(&s);
	CHECK_INT(s.n_routes, 0);
	CHECK(s.routes == NULL);
	CHECK_INT(s.received, 0);
	/* Usable again after clear. */
	stats_route(&s, "c");
	CHECK_INT(s.n_routes, 1);
	stats_clear(&s);
}

static void test_health_names_a_state_database_that_refuses_reports(void)
{
	struct stats s = {.mqtt_connected = true, .matrix_reachable = true};
	s.state_db_problem = "state database: disk full";
	struct strbuf out = STRBUF_INIT;
	stats_render_health(&s, &out);
	CHECK_STR(strbuf_str(&out), "{\"status\":\"degraded\",\"mqtt\":\"connected\",\"matrix\":\"reachable\","
				    "\"outbox\":0,\"last_report\":null,\"rooms_not_joined\":[],\"rooms_encrypted\":[],"
				    "\"reason\":\"state database: disk full\"}\n");
	CHECK_INT(stats_health_status(&s), 503);
	s.state_db_problem = NULL;
	CHECK_INT(stats_health_status(&s), 200);
	strbuf_free(&out);
	stats_clear(&s);
}

static void test_health_is_ok_only_when_mqtt_and_matrix_are_up(void)
{
	struct stats s = {0};
	struct strbuf out = STRBUF_INIT;
	stats_render_health(&s, &out);
	CHECK_STR(strbuf_str(&out), "{\"status\":\"degraded\",\"mqtt\":\"disconnected\",\"matrix\":"
				    "\"unreachable\",\"outbox\":0,\"last_report\":null,\"rooms_not_joined\":[],\"rooms_encrypted\":[]}\n");
	CHECK_INT(stats_health_status(&s), 503);

	s.mqtt_connected = true;
	CHECK_INT(stats_health_status(&s), 503);
	s.mqtt_connected = false;
	s.matrix_reachable = true;
	CHECK_INT(stats_health_status(&s), 503);

	s.mqtt_connected = true;
	s.outbox_depth = 12;
	s.last_report_ms = 1764000000123; /* 2025-11-24T16:00:00.123Z */
	strbuf_reset(&out);
	stats_render_health(&s, &out);
	CHECK_STR(strbuf_str(&out), "{\"status\":\"ok\",\"mqtt\":\"connected\",\"matrix\":\"reachable\","
				    "\"outbox\":12,\"last_report\":\"2025-11-24T16:00:00.123Z\",\"rooms_not_joined\":[],\"rooms_encrypted\":[]}\n");
	CHECK_INT(stats_health_status(&s), 200);

	s.matrix_reachable = false;
	s.last_report_ms = 1764000000005;
	strbuf_reset(&out);
	stats_render_health(&s, &out);
	CHECK_STR(strbuf_str(&out), "{\"status\":\"degraded\",\"mqtt\":\"connected\",\"matrix\":"
				    "\"unreachable\",\"outbox\":12,\"last_report\":\"2025-11-24T16:00:00.005Z\","
				    "\"rooms_not_joined\":[],\"rooms_encrypted\":[]}\n");
	strbuf_free(&out);
	stats_clear(&s);
}

/* A room the bot was removed from is named, escaped as JSON, and so is an encrypted room
 * whose reports are refused; neither makes the bridge unhealthy (a restart would not help:
 * an invite does, or the operator's post_unencrypted). */
static void test_health_names_the_rooms_the_bot_is_not_in(void)
{
	struct stats s = {.mqtt_connected = true, .matrix_reachable = true};
	stats_room(&s, "#alerts:example.org")->joined = true;
	stats_room(&s, "#ops:example.org");
	stats_room(&s, "#we\"ird\\\n:example.org");
	struct room_stats *secret = stats_room(&s, "#secret:example.org");
	secret->joined = secret->encrypted = secret->encrypted_refused = true;
	stats_room(&s, "#allowed:example.org")->encrypted = true; /* in post_unencrypted: not a problem */
	stats_room(&s, "#allowed:example.org")->joined = true;
	struct strbuf out = STRBUF_INIT;
	stats_render_health(&s, &out);
	CHECK_STR(strbuf_str(&out), "{\"status\":\"ok\",\"mqtt\":\"connected\",\"matrix\":\"reachable\","
				    "\"outbox\":0,\"last_report\":null,\"rooms_not_joined\":[\"#ops:example.org\","
				    "\"#we\\\"ird\\\\\\u000a:example.org\"],\"rooms_encrypted\":[\"#secret:example.org\"]}\n");
	CHECK_INT(stats_health_status(&s), 200);
	cJSON *j = cJSON_Parse(strbuf_str(&out));
	CHECK(j != NULL);
	cJSON_Delete(j);
	strbuf_free(&out);
	stats_clear(&s);
}

int main(void)
{
	RUN(test_exposition_text_is_exact_for_known_stats);
	RUN(test_exposition_passes_the_format_check);
	RUN(test_format_check_rejects_broken_text);
	RUN(test_hostile_route_names_are_escaped);
	RUN(test_histogram_buckets_are_cumulative_and_le_inclusive);
	RUN(test_negative_latency_counts_as_zero_and_nan_is_ignored);
	RUN(test_stats_route_adds_a_route_once);
	RUN(test_health_is_ok_only_when_mqtt_and_matrix_are_up);
	RUN(test_health_names_a_state_database_that_refuses_reports);
	RUN(test_health_names_the_rooms_the_bot_is_not_in);
	return test_done();
}
