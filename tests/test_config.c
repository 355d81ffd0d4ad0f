/* Tests of config: the example config, defaults, path resolution, secrets, and one
 * fixture per kind of mistake with its exact FILE:LINE message (tests/data/config/). */
#include "config.h"

#include "build_config.h"
#include "log.h"
#include "test.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR "tests/data/config/"
#define TOKEN "syt_ZmFrZQ_fixtureTOKEN_0001" /* tests/data/config/secrets/matrix-token */
#define PASSWORD "fixture-mqtt-password"     /* tests/data/config/secrets/mqtt-password */
/* Recurring parts of the expected messages. */
#define USER_EXP "is not a Matrix user id (@localpart:server, localpart of a-z 0-9 ._=-/+)"
#define URL_EXP "expected an http:// or https:// URL without whitespace or control characters"
#define HINT_EXP "expected one line of at most 200 bytes without control characters"
#define ALPHABET "abcdefghijklmnopqrstuvwxyz"
#define HOST_EXP "(expected \"host\" or \"host:port\", e.g. \"zuul.example.org\" or \"logs.example.org:8443\")"

static char cwd[4096];

/* cwd + "/" + rel, in a static buffer (one use per expression). */
static const char *abs_path(const char *rel)
{
	static char buf[2][4200];
	static int which;
	which ^= 1;
	snprintf(buf[which], sizeof(buf[which]), "%s/%s", cwd, rel);
	return buf[which];
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		strbuf_append(&sb, chunk, n);
	fclose(f);
	return strbuf_detach(&sb);
}

/* Writes text to a new temporary .conf file; returns its path (caller unlinks and frees). */
static char *write_temp(const char *text)
{
	char *path = xstrdup("/tmp/zmb-test-config-XXXXXX.conf");
	int fd = mkstemps(path, 5);
	if (fd < 0) {
		perror("mkstemps");
		abort();
	}
	FILE *f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

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

/* Like CHECK_STR for multi-line text, keeping every diagnostic line a TAP comment. */
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

static void clear_env(void)
{
	unsetenv("ZMB_MATRIX_ACCESS_TOKEN");
	unsetenv("ZMB_MQTT_PASSWORD");
	unsetenv("ZMB_MATRIX_PASSWORD");
	unsetenv("CREDENTIALS_DIRECTORY");
}

/* ---- valid configs ---- */

static void test_example_config_loads_with_repo_templates(void)
{
	char *text = read_all("config/zuul-matrix-bridge.conf.example");
	CHECK(text != NULL);
	if (!text)
		return;
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "%s\ntemplate_dir = \"%s\";\n", text, abs_path("templates"));
	char *path = write_temp(strbuf_str(&sb));
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(path, 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(cfg->matrix.homeserver, "https://matrix.example.org");
		CHECK_STR(cfg->mqtt.host, "localhost");
		CHECK_INT(cfg->mqtt.port, 1883);
		CHECK_STR(cfg->mqtt.username, "zuul");
		CHECK(!cfg->mqtt.tls.enabled);
		CHECK_STR(cfg->state_dir, "/var/lib/zuul-matrix-bridge");
		CHECK_INT(cfg->n_routes, 1);
		const struct route *r = config_find_route(cfg, "periodic-failures");
		CHECK(r != NULL);
		if (r) {
			CHECK_STR(r->room, "#zuul-alerts:example.org");
			CHECK_STR(r->template_path, abs_path("templates/default.html"));
			CHECK(r->has_match);
			CHECK_INT(r->match.field[ROUTE_PIPELINE].n, 2);
			CHECK_STR(r->match.field[ROUTE_PIPELINE].patterns[0], "periodic-*");
			CHECK(r->match.field[ROUTE_BRANCH].patterns == NULL);
		}
		/* Without CONFIG_NEED_SECRETS the credential files are not even opened. */
		CHECK(cfg->matrix.access_token == NULL);
		CHECK(cfg->mqtt.password == NULL);
	}
	config_free(cfg);
	unlink(path);
	free(path);
	strbuf_free(&sb);
	strbuf_free(&err);
	free(text);
}

/* The example's commented-out chatops, owners and triage blocks and route keys, switched
 * on, load too: the example shows working settings, not only key names. */
static void test_example_chatops_block_loads_uncommented(void)
{
	char *text = read_all("config/zuul-matrix-bridge.conf.example");
	CHECK(text != NULL);
	const char *block = text ? strstr(text, "\n# chatops: {") : NULL;
	CHECK(block != NULL);
	if (!block) {
		free(text);
		return;
	}
	struct strbuf sb = STRBUF_INIT;
	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		const char *key = line + strspn(line, "\t");
		if (line > block && strncmp(line, "#\t", 2) == 0)
			strbuf_append(&sb, line + 1, len - 1);
		else if (line > block && (strncmp(line, "# chatops", 9) == 0 || strncmp(line, "# };", 4) == 0 ||
					  strncmp(line, "# owners", 8) == 0 || strncmp(line, "# triage", 8) == 0 ||
					  strncmp(line, "# );", 4) == 0))
			strbuf_append(&sb, line + 2, len - 2);
		else if (strncmp(key, "# edit_start =", 14) == 0 || strncmp(key, "# mention_oncall =", 18) == 0 ||
			 strncmp(key, "# runbook =", 11) == 0 || strncmp(key, "# hint =", 8) == 0 ||
			 strncmp(key, "# digest_", 9) == 0)
			strbuf_append(&sb, key + 2, len - (size_t)(key - line) - 2);
		else
			strbuf_append(&sb, line, len);
		line += len;
	}
	strbuf_printf(&sb, "template_dir = \"%s\";\n", abs_path("templates"));
	char *path = write_temp(strbuf_str(&sb));
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(path, 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK(cfg->chatops.enabled);
		CHECK(cfg->chatops.oncall);
		CHECK_INT(cfg->chatops.rotation.n_members, 2);
		CHECK_INT(cfg->chatops.rotation.n_overrides, 1);
		CHECK_INT(cfg->chatops.rotation.n_fallback, 1);
		CHECK(config_route_chatops(cfg, &cfg->routes[0])->mention_oncall);
		CHECK(cfg->chatops.workflow != NULL);
		CHECK_INT(cfg->chatops.catch_up_after_s, 600);
		const struct config_route_chatops *rco = config_route_chatops(cfg, &cfg->routes[0]);
		CHECK(rco->runbook != NULL && rco->hint != NULL);
		CHECK_INT(rco->digest_minute, 9 * 60);
		CHECK_STR(rco->digest_timezone, "Europe/Berlin");
		CHECK_INT(cfg->owners.n_rules, 1);
		CHECK_INT(cfg->owners.n_rules ? cfg->owners.rules[0].n_users : 0, 2);
		CHECK(cfg->triage.enabled);
		CHECK_INT(cfg->triage.n_infra_results, 7);
	}
	config_free(cfg);
	unlink(path);
	free(path);
	strbuf_free(&sb);
	strbuf_free(&err);
	free(text);
}

/* Each key's last component must appear as "leaf =" or "leaf:" in text. */
static void check_every_key_appears(const char *text, const char *what)
{
	for (const char *const *k = config_all_keys(); *k; k++) {
		const char *leaf = strrchr(*k, '.');
		leaf = leaf ? leaf + 1 : *k;
		char a[64], b[64];
		snprintf(a, sizeof(a), "%s =", leaf);
		snprintf(b, sizeof(b), "%s:", leaf);
		if (!strstr(text, a) && !strstr(text, b)) {
			test_current_failed = 1;
			printf("# key %s does not appear in %s\n", *k, what);
		}
	}
}

static void test_example_config_shows_every_key(void)
{
	char *text = read_all("config/zuul-matrix-bridge.conf.example");
	CHECK(text != NULL);
	if (text)
		check_every_key_appears(text, "the example config");
	free(text);
}

static void test_all_keys_lists_every_route_field(void)
{
	int count = 0;
	for (const char *const *k = config_all_keys(); *k; k++)
		count++;
	CHECK(count > 40);
	for (int f = 0; f < ROUTE_NFIELDS; f++) {
		for (int ex = 0; ex < 2; ex++) {
			char want[64];
			snprintf(want, sizeof(want), "routes.%s.%s", ex ? "exclude" : "match",
				 route_field_key((enum route_field)f));
			bool found = false;
			for (const char *const *k = config_all_keys(); *k; k++)
				found |= strcmp(*k, want) == 0;
			if (!found) {
				test_current_failed = 1;
				printf("# %s missing from config_all_keys()\n", want);
			}
		}
	}
	CHECK(config_all_keys()[count] == NULL);
}

static void test_minimal_config_takes_defaults(void)
{
	clear_env();
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "minimal.conf", 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	CHECK_STR(cfg->path, DIR "minimal.conf");
	/* Without a details group nothing is ever fetched. */
	CHECK(!cfg->details.enabled);
	CHECK_INT(cfg->details.n_hosts, 0);
	CHECK_STR(cfg->mqtt.host, "localhost");
	CHECK_INT(cfg->mqtt.port, 1883);
	CHECK_STR(cfg->mqtt.client_id, "zuul-matrix-bridge");
	CHECK(cfg->mqtt.username == NULL);
	CHECK(cfg->mqtt.password == NULL);
	CHECK_INT(cfg->mqtt.qos, 1);
	CHECK(!cfg->mqtt.clean_session);
	CHECK_INT(cfg->mqtt.keepalive, 60);
	CHECK_INT(cfg->mqtt.protocol, 4);
	CHECK_INT(cfg->mqtt.receive_maximum, 0); /* 3.1.1: the broker's limit applies */
	CHECK_INT(cfg->mqtt.maximum_packet_size, 0); /* 3.1.1: only message_size_limit */
	CHECK(cfg->mqtt.share_group == NULL);
	CHECK_INT(cfg->mqtt.n_topics, 1);
	CHECK_STR(cfg->mqtt.topics[0], "zuul/#");
	CHECK_INT(cfg->mqtt.reconnect_min_s, 1);
	CHECK_INT(cfg->mqtt.reconnect_max_s, 60);
	CHECK(!cfg->mqtt.tls.enabled);
	CHECK(cfg->mqtt.tls.verify);
	CHECK(cfg->mqtt.tls.ca_file == NULL);
	/* The trailing '/' is dropped so paths can be appended with one '/'. */
	CHECK_STR(cfg->matrix.homeserver, "https://matrix.example.org");
	CHECK(cfg->matrix.access_token == NULL);
	CHECK(cfg->matrix.tls_verify);
	CHECK_INT(cfg->matrix.request_timeout_s, 30);
	CHECK_INT(cfg->matrix.retry_min_ms, 1000);
	CHECK_INT(cfg->matrix.retry_max_ms, 300000);
	CHECK_STR(cfg->state_dir, ZMB_STATE_DIR);
	CHECK_INT(cfg->log_level, ZLOG_INFO);
	CHECK_INT(cfg->dedup_retention_s, 7 * 86400);
	CHECK(!cfg->metrics.enabled);
	CHECK(cfg->metrics.listen == NULL);
	CHECK_INT(cfg->metrics.port, 0);
	CHECK_INT(cfg->n_routes, 1);
	CHECK_STR(cfg->routes[0].name, "all");
	CHECK_STR(cfg->routes[0].room, "!abcdef:example.org");
	CHECK_STR(cfg->routes[0].template_path, abs_path("templates/default.html"));
	CHECK(!cfg->routes[0].has_match);
	CHECK_INT(cfg->routes[0].line, 4);
	/* Without a chatops group the room side is on, with every part of it (issue #13). */
	CHECK(cfg->chatops.enabled);
	CHECK(!cfg->chatops.configured);
	CHECK(cfg->chatops.threads);
	CHECK(cfg->chatops.claims);
	CHECK(cfg->chatops.commands);
	CHECK(!cfg->chatops.oncall);
	CHECK_STR(cfg->chatops.command_prefix, "!zuul");
	CHECK(!config_route_chatops(cfg, &cfg->routes[0])->edit_start);
	CHECK(!config_route_chatops(cfg, &cfg->routes[0])->mention_oncall);
	for (int f = 0; f < ROUTE_NFIELDS; f++)
		CHECK(cfg->routes[0].match.field[f].patterns == NULL &&
		      cfg->routes[0].exclude.field[f].patterns == NULL);
	/* Issue #7's keys: all off, with their defaults filled. */
	CHECK(cfg->chatops.workflow == NULL);
	CHECK_INT(cfg->chatops.catch_up_after_s, 600);
	/* The room topic is kept by default (opt-out), without a note. */
	CHECK(cfg->chatops.topic);
	CHECK(cfg->chatops.topic_note == NULL);
	CHECK_INT(cfg->owners.n_rules, 0);
	CHECK(cfg->owners.rules == NULL);
	const struct config_route_chatops *rco = config_route_chatops(cfg, &cfg->routes[0]);
	CHECK(rco->runbook == NULL);
	CHECK(rco->hint == NULL);
	CHECK_INT(rco->digest_minute, -1);
	CHECK_STR(rco->digest_timezone, "UTC");
	CHECK(cfg->triage.enabled);
	CHECK(!cfg->triage.configured);
	CHECK_INT(cfg->triage.job_window_s, 1800);
	CHECK_INT(cfg->triage.job_min_projects, 3);
	static const char *const infra[] = {"NODE_FAILURE", "RETRY_LIMIT", "POST_FAILURE", "DISK_FULL",
					    "LOST", "EXCEPTION", "ERROR"};
	CHECK_INT(cfg->triage.n_infra_results, 7);
	for (size_t i = 0; i < 7 && i < cfg->triage.n_infra_results; i++)
		CHECK_STR(cfg->triage.infra_results[i], infra[i]);
	config_free(cfg);
	strbuf_free(&err);
}

static void test_template_dir_defaults_to_installed_dir(void)
{
	struct strbuf sb = STRBUF_INIT;
	strbuf_printf(&sb, "matrix: { homeserver = \"https://hs\"; };\n"
			   "routes = ( { name = \"a\"; room = \"#a:hs\"; template = \"%s\"; } );\n",
		      abs_path("templates/default.html"));
	char *path = write_temp(strbuf_str(&sb));
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(path, 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(cfg->template_dir, ZMB_TEMPLATE_DIR);
		CHECK_STR(cfg->state_dir, ZMB_STATE_DIR);
		/* An absolute template ignores template_dir. */
		CHECK_STR(cfg->routes[0].template_path, abs_path("templates/default.html"));
	}
	config_free(cfg);
	unlink(path);
	free(path);
	strbuf_free(&sb);
	strbuf_free(&err);
}

static void test_every_key_parses_to_its_field(void)
{
	clear_env();
	struct strbuf err = STRBUF_INIT;
	/* git keeps no modes but the executable bit: the key is owner-only only once we say so. */
	chmod(DIR "secrets/zuul-actions.pem", 0600);
	struct config *cfg = config_load(DIR "all-keys.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	CHECK_STR(cfg->state_dir, "/srv/zmb/state");
	CHECK(cfg->actions.enabled);
	CHECK_STR(cfg->actions.issuer, "zuul-matrix-bridge-test");
	CHECK_STR(cfg->actions.audience, "zuul-test");
	CHECK_STR(cfg->actions.private_key_file, abs_path(DIR "secrets/zuul-actions.pem"));
	CHECK_CONTAINS(cfg->actions.private_key_pem, "-----BEGIN PRIVATE KEY-----");
	CHECK_INT(cfg->actions.n_tenants, 2);
	if (cfg->actions.n_tenants == 2) {
		const struct config_actions_tenant *t = config_actions_tenant(&cfg->actions, "scs");
		CHECK(t == &cfg->actions.tenants[0]);
		CHECK_STR(t->api, "https://zuul.example.org/zuul");
		CHECK_INT(t->n_users, 2);
		CHECK(config_actions_user_listed(t, "@bob:example.org"));
		CHECK(!config_actions_user_listed(t, "@carol:example.org"));
		t = config_actions_tenant(&cfg->actions, "openstack");
		CHECK_STR(t ? t->api : NULL, "http://127.0.0.1:9000");
		CHECK(t && config_actions_user_listed(t, "@carol:example.org"));
		CHECK(config_actions_tenant(&cfg->actions, "sandbox") == NULL);
		CHECK(config_actions_tenant(&cfg->actions, NULL) == NULL);
	}
	CHECK(cfg->details.enabled);
	CHECK_INT(cfg->details.n_hosts, 3);
	CHECK_STR(cfg->details.n_hosts == 3 ? cfg->details.hosts[1] : NULL, "*.logs.example.org:8443");
	CHECK_INT(cfg->details.timeout_s, 5);
	CHECK_INT(cfg->details.max_download, 2 * 1024 * 1024);
	CHECK_INT(cfg->details.max_output, 16 * 1024 * 1024);
	CHECK_STR(cfg->template_dir, abs_path("templates"));
	CHECK_INT(cfg->log_level, ZLOG_DEBUG);
	CHECK_INT(cfg->dedup_retention_s, 2 * 86400);
	CHECK_STR(cfg->mqtt.host, "broker.example.org");
	CHECK_INT(cfg->mqtt.port, 8884);
	CHECK_STR(cfg->mqtt.client_id, "zmb-test");
	CHECK_STR(cfg->mqtt.username, "zuul");
	CHECK_STR(cfg->mqtt.password, PASSWORD);
	CHECK_INT(cfg->mqtt.qos, 2);
	CHECK(cfg->mqtt.clean_session);
	CHECK_INT(cfg->mqtt.keepalive, 120);
	CHECK_INT(cfg->mqtt.protocol, 5);
	CHECK_INT(cfg->mqtt.receive_maximum, 250);
	CHECK_INT(cfg->mqtt.maximum_packet_size, 512 * 1024);
	CHECK_STR(cfg->mqtt.share_group, "bridges");
	CHECK_INT(cfg->mqtt.n_topics, 2);
	CHECK_STR(cfg->mqtt.topics[0], "zuul/+/tenant/#");
	CHECK_STR(cfg->mqtt.topics[1], "other/topic");
	CHECK_INT(cfg->mqtt.reconnect_min_s, 2);
	CHECK_INT(cfg->mqtt.reconnect_max_s, 300);
	CHECK(cfg->mqtt.tls.enabled);
	CHECK_STR(cfg->mqtt.tls.ca_file, "/etc/ssl/ca.pem");
	CHECK_STR(cfg->mqtt.tls.ca_dir, "/etc/ssl/certs");
	CHECK_STR(cfg->mqtt.tls.cert_file, "/etc/zmb/client.pem");
	CHECK_STR(cfg->mqtt.tls.key_file, "/etc/zmb/client.key");
	CHECK(!cfg->mqtt.tls.verify);
	CHECK_STR(cfg->matrix.homeserver, "http://127.0.0.1:8008");
	CHECK_STR(cfg->matrix.access_token, TOKEN);
	CHECK(!cfg->matrix.tls_verify);
	CHECK_INT(cfg->matrix.request_timeout_s, 45);
	CHECK_INT(cfg->matrix.retry_min_ms, 2000);
	CHECK_INT(cfg->matrix.retry_max_ms, 600000);
	CHECK_INT(cfg->matrix.n_post_unencrypted, 1);
	CHECK(config_may_post_unencrypted(&cfg->matrix, "#zuul-alerts:example.org"));
	CHECK(!config_may_post_unencrypted(&cfg->matrix, "!opaque123:example.org"));
	CHECK(cfg->metrics.enabled);
	CHECK_STR(cfg->metrics.listen, "::1");
	CHECK_INT(cfg->metrics.port, 9464);
	CHECK_INT(cfg->n_routes, 2);
	const struct route *r = config_find_route(cfg, "periodic-failures");
	CHECK(r == &cfg->routes[0]);
	if (r) {
		CHECK(r->has_match);
		CHECK_INT(r->match.field[ROUTE_TENANT].n, 1);
		CHECK_STR(r->match.field[ROUTE_TENANT].patterns[0], "scs");
		/* A single string is a one-pattern list. */
		CHECK_INT(r->match.field[ROUTE_BRANCH].n, 1);
		CHECK_STR(r->match.field[ROUTE_BRANCH].patterns[0], "main");
		CHECK_INT(r->match.field[ROUTE_BUILD_RESULT].n, 2);
		CHECK_STR(r->match.field[ROUTE_BUILD_RESULT].patterns[1], "POST_FAILURE");
		for (int f = 0; f < ROUTE_NFIELDS; f++)
			CHECK(r->exclude.field[f].n == 1);
		CHECK_STR(r->exclude.field[ROUTE_PROJECT].patterns[0], "*/playground");
	}
	CHECK(config_find_route(cfg, "everything_2.0") == &cfg->routes[1]);
	CHECK(config_find_route(cfg, "nope") == NULL);
	CHECK(!cfg->routes[1].has_match);
	CHECK_INT(cfg->routes[1].line, 44);
	CHECK(!config_route_chatops(cfg, &cfg->routes[0])->edit_start);
	CHECK(config_route_chatops(cfg, &cfg->routes[0])->mention_oncall);
	CHECK(config_route_chatops(cfg, &cfg->routes[1])->edit_start);
	CHECK(!config_route_chatops(cfg, &cfg->routes[1])->mention_oncall);
	const struct config_chatops *co = &cfg->chatops;
	CHECK(co->enabled);
	CHECK_STR(co->claim_reaction, "\xf0\x9f\x99\x8b");           /* U+1F64B */
	CHECK_STR(co->resolve_reaction, "\xe2\x9c\x94\xef\xb8\x8f"); /* U+2714 U+FE0F */
	CHECK_STR(co->command_prefix, "!ci");
	CHECK_INT(co->command_power_level, 10);
	CHECK(!co->threads);
	CHECK(co->oncall);
	const struct rotation_config *rc = &co->rotation;
	CHECK_INT(rc->escalate_after_s, 1800);
	CHECK_INT(rc->fallback_after_s, 7200);
	CHECK_INT(rc->n_fallback, 2);
	CHECK_STR(rc->n_fallback == 2 ? rc->fallback[1] : NULL, "@boss:example.org");
	CHECK_INT(rc->n_members, 3);
	CHECK_STR(rc->n_members == 3 ? rc->members[2] : NULL, "@carol:example.org");
	CHECK_INT(rc->shift_s, 14 * 86400);
	CHECK_INT(rc->handover_weekday, 2);
	CHECK_INT(rc->handover_minute, 10 * 60 + 30);
	CHECK_STR(rc->timezone, "Europe/Berlin");
	CHECK(rc->start.year == 2026 && rc->start.month == 1 && rc->start.day == 6);
	CHECK_INT(rc->n_overrides, 2);
	if (rc->n_overrides == 2) {
		CHECK_STR(rc->overrides[0].user, "@dave:example.org");
		CHECK(rc->overrides[0].from.month == 3 && rc->overrides[0].from.day == 2);
		CHECK(rc->overrides[0].until.month == 3 && rc->overrides[0].until.day == 8);
		CHECK(rc->overrides[1].from.day == 1 && rc->overrides[1].until.day == 1);
	}
	CHECK(rotation_check(rc, NULL) == 0);
	/* Adjacent libconfig strings join; trailing blank lines are dropped. */
	CHECK_STR(co->workflow, "Claim with a reaction before you start.\nResolve when the fix is merged.");
	CHECK_INT(co->catch_up_after_s, 3600);
	CHECK(!co->topic);
	CHECK_STR(co->topic_note, "Runbook: https://wiki.example.org/ci \xc2\xb7 escalation: #infra");
	CHECK(co->enabled && co->configured && !co->claims && !co->commands);

	const struct config_route_chatops *r0 = config_route_chatops(cfg, &cfg->routes[0]);
	const struct config_route_chatops *r1 = config_route_chatops(cfg, &cfg->routes[1]);
	CHECK(r0->runbook == NULL && r0->hint == NULL);
	CHECK_INT(r0->digest_minute, -1);
	/* The digest's zone defaults to the rotation's. */
	CHECK_STR(r0->digest_timezone, "Europe/Berlin");
	CHECK_STR(r1->runbook, "https://wiki.example.org/zuul/everything?view=full#failures");
	CHECK_STR(r1->hint, "Look at the first failed job's log \xe2\x80\x94 the rest usually follow from it.");
	CHECK_INT(r1->digest_minute, 7 * 60 + 5);
	CHECK_STR(r1->digest_timezone, "America/New_York");

	const struct owners_config *oc = &cfg->owners;
	CHECK_INT(oc->n_rules, 2);
	if (oc->n_rules == 2) {
		const struct owners_rule *o = &oc->rules[0];
		CHECK_INT(o->line, 83);
		CHECK_INT(o->n_tenants, 0);
		CHECK_INT(o->n_pipelines, 0);
		CHECK_INT(o->n_projects, 1);
		CHECK_STR(o->n_projects ? o->projects[0] : NULL, "SovereignCloudStack/standards");
		CHECK_INT(o->n_jobs, 2);
		CHECK_STR(o->n_jobs == 2 ? o->jobs[1] : NULL, "lint");
		CHECK_INT(o->n_users, 2);
		CHECK_STR(o->n_users == 2 ? o->users[1] : NULL, "@bob:example.org");
		CHECK_STR(o->forward_room, "#provider:example.org");
		CHECK_INT(o->forward_after_s, 1800);
		CHECK_INT(o->escalate_after_s, 7200);
		CHECK_STR(o->runbook, "http://wiki.example.org/standards");
		CHECK_STR(o->hint, "Usually a flaky mirror: recheck first.");
		o = &oc->rules[1];
		CHECK_INT(o->line, 89);
		/* Single strings are one-pattern lists; a rule may only forward. */
		CHECK_INT(o->n_tenants, 1);
		CHECK_STR(o->n_tenants ? o->tenants[0] : NULL, "scs");
		CHECK_INT(o->n_pipelines, 1);
		CHECK_STR(o->n_pipelines ? o->pipelines[0] : NULL, "periodic-*");
		CHECK_INT(o->n_users, 0);
		CHECK_STR(o->forward_room, "!ops:example.org");
		CHECK_INT(o->forward_after_s, 0);
		CHECK_INT(o->escalate_after_s, -1);
		CHECK(o->runbook == NULL && o->hint == NULL);
	}
	CHECK(!cfg->triage.enabled);
	CHECK(cfg->triage.configured);
	CHECK_INT(cfg->triage.n_infra_results, 2);
	CHECK_STR(cfg->triage.n_infra_results == 2 ? cfg->triage.infra_results[1] : NULL, "DISK_FULL");
	CHECK_INT(cfg->triage.job_window_s, 3600);
	CHECK_INT(cfg->triage.job_min_projects, 5);
	config_free(cfg);
	strbuf_free(&err);
}

static void test_all_keys_fixture_sets_every_known_key(void)
{
	char *text = read_all(DIR "all-keys.conf");
	CHECK(text != NULL);
	if (text)
		check_every_key_appears(text, DIR "all-keys.conf");
	free(text);
}

static void test_relative_paths_resolve_against_config_dir(void)
{
	clear_env();
	char absolute[4200];
	snprintf(absolute, sizeof(absolute), "%s", abs_path(DIR "relative-paths.conf"));
	const char *paths[] = {DIR "relative-paths.conf", absolute};
	for (size_t i = 0; i < 2; i++) {
		struct strbuf err = STRBUF_INIT;
		struct config *cfg = config_load(paths[i], 0, &err);
		CHECK_LINES(strbuf_str(&err), "");
		CHECK(cfg != NULL);
		if (!cfg)
			continue;
		CHECK_STR(cfg->state_dir, abs_path(DIR "state"));
		/* "./../../../templates/" is cleaned to the repository's templates. */
		CHECK_STR(cfg->template_dir, abs_path("templates"));
		CHECK_STR(cfg->mqtt.tls.ca_file, abs_path(DIR "tls/ca.pem"));
		CHECK_STR(cfg->mqtt.tls.ca_dir, abs_path(DIR "tls/certs"));
		CHECK_STR(cfg->mqtt.tls.cert_file, abs_path(DIR "tls/client.pem"));
		CHECK_STR(cfg->mqtt.tls.key_file, abs_path(DIR "tls/client.key"));
		CHECK_STR(cfg->routes[0].template_path, abs_path("templates/default.html"));
		/* A tls group without a port means the TLS port. */
		CHECK(cfg->mqtt.tls.enabled);
		CHECK_INT(cfg->mqtt.port, 8883);
		config_free(cfg);
		strbuf_free(&err);
	}
}

static void test_chatops_defaults(void)
{
	clear_env();
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "chatops-defaults.conf", 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (!cfg)
		return;
	const struct config_chatops *co = &cfg->chatops;
	CHECK(co->enabled);
	CHECK_STR(co->claim_reaction, "\xf0\x9f\x91\x80");  /* U+1F440 EYES */
	CHECK_STR(co->resolve_reaction, "\xe2\x9c\x85");     /* U+2705 */
	CHECK_STR(co->command_prefix, "!zuul");
	CHECK_INT(co->command_power_level, 50);
	CHECK(co->threads);
	CHECK(co->oncall);
	const struct rotation_config *rc = &co->rotation;
	CHECK_INT(rc->escalate_after_s, 3600);
	/* No fallback users: the fallback step is off rather than an error. */
	CHECK_INT(rc->n_fallback, 0);
	CHECK_INT(rc->fallback_after_s, 0);
	/* A single string is a one-member rotation. */
	CHECK_INT(rc->n_members, 1);
	CHECK_STR(rc->n_members ? rc->members[0] : NULL, "@alice:example.org");
	CHECK_INT(rc->shift_s, 7 * 86400);
	CHECK_INT(rc->handover_weekday, 1);
	CHECK_INT(rc->handover_minute, 9 * 60);
	CHECK_STR(rc->timezone, "UTC");
	CHECK(rc->start.year == 2026 && rc->start.month == 1 && rc->start.day == 5);
	CHECK_INT(rc->n_overrides, 0);
	/* With a rotation, routes mention the on-call unless told not to. */
	CHECK(config_route_chatops(cfg, &cfg->routes[0])->mention_oncall);
	CHECK(!config_route_chatops(cfg, &cfg->routes[0])->edit_start);
	/* A route that is not one of cfg's gets the off settings, not a crash. */
	struct route other = {0};
	CHECK(!config_route_chatops(cfg, &other)->mention_oncall);
	CHECK(!config_route_chatops(NULL, NULL)->edit_start);
	config_free(cfg);
	strbuf_free(&err);
}

static void test_chatops_fallback_takes_default_interval(void)
{
	clear_env();
	char *path = write_temp("template_dir = \"" ZMB_SOURCE_ROOT "/templates\";\n"
				"matrix: { homeserver = \"https://hs\"; };\n"
				"routes = ( { name = \"a\"; room = \"#a:hs\"; } );\n"
				"chatops: { escalate_after = 0; fallback = \"@lead:hs\"; };\n");
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(path, 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK(cfg->chatops.enabled);
		CHECK(!cfg->chatops.oncall);
		CHECK_INT(cfg->chatops.rotation.escalate_after_s, 0);
		CHECK_INT(cfg->chatops.rotation.n_fallback, 1);
		CHECK_INT(cfg->chatops.rotation.fallback_after_s, 3600);
		/* No rotation: nobody to mention by default. */
		CHECK(!config_route_chatops(cfg, &cfg->routes[0])->mention_oncall);
	}
	config_free(cfg);
	unlink(path);
	free(path);
	strbuf_free(&err);
}

/* ---- issue #7: workflow, runbooks, hints, digests, owners, triage ---- */

/* Loads text as a config file; returns the errors with the temporary path replaced by
 * "CONF" (caller frees) and the config in *out (NULL on errors). */
static char *load_text(const char *text, struct config **out)
{
	char *path = write_temp(text);
	struct strbuf err = STRBUF_INIT;
	*out = config_load(path, 0, &err);
	struct strbuf sb = STRBUF_INIT;
	size_t plen = strlen(path);
	for (const char *p = strbuf_str(&err); *p;) {
		if (strncmp(p, path, plen) == 0) {
			strbuf_puts(&sb, "CONF");
			p += plen;
		} else {
			strbuf_putc(&sb, *p++);
		}
	}
	unlink(path);
	free(path);
	strbuf_free(&err);
	return strbuf_detach(&sb);
}

#define CONF_HEAD "template_dir = \"" ZMB_SOURCE_ROOT "/templates\";\n" \
		  "matrix: { homeserver = \"https://hs\"; };\n"
#define ONE_ROUTE "routes = ( { name = \"a\"; room = \"#a:hs\"; } );\n"

/* A file of exactly this content in /tmp; returns its path (caller unlinks and frees). */
static char *write_temp_bytes(const char *data, size_t len)
{
	char *path = xstrdup("/tmp/zmb-test-workflow-XXXXXX.txt");
	int fd = mkstemps(path, 4);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror("workflow file");
		abort();
	}
	close(fd);
	return path;
}

static void test_workflow_file_is_read_relative_to_config(void)
{
	clear_env();
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "chatops-workflow-file.conf", 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		/* CRLF becomes LF, trailing blank lines go, tabs and emoji stay. */
		CHECK_STR(cfg->chatops.workflow, "How we work in this room:\n- claim with \xf0\x9f\x91\x80 before "
						 "you start\n\t- resolve with \xe2\x9c\x85");
		CHECK_INT(cfg->chatops.catch_up_after_s, 0);
		const struct config_route_chatops *rco = config_route_chatops(cfg, &cfg->routes[0]);
		CHECK_INT(rco->digest_minute, 18 * 60 + 30);
		CHECK_STR(rco->digest_timezone, "Europe/Berlin");
	}
	config_free(cfg);
	strbuf_free(&err);
}

/* workflow_file problems name the file (absolute) and say what is wrong with it. */
static void test_workflow_file_errors_name_the_file(void)
{
	clear_env();
	static const char expected[] = "(expected a UTF-8 text file of at most 4000 bytes)";
	struct strbuf big = STRBUF_INIT;
	for (int i = 0; i < 4000; i++)
		strbuf_putc(&big, i % 50 == 49 ? '\n' : 'x');
	struct {
		const char *data;
		size_t len;
		const char *why; /* NULL: loads */
	} cases[] = {
		{big.data, big.len, NULL},
		{"\xff\xfe" "text", 6, "not valid UTF-8"},
		{"\n \r\n\t\n", 6, "empty"},
		{"a\0b", 3, "contains a NUL byte"},
		{"bell\x07", 5, "contains control characters other than newline and tab"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *wf = write_temp_bytes(cases[i].data, cases[i].len);
		struct strbuf conf = STRBUF_INIT;
		/* Relative to the config file's directory, which is /tmp like the file's. */
		strbuf_printf(&conf, CONF_HEAD ONE_ROUTE "chatops: {\n  workflow_file = \"%s\";\n};\n", wf + 5);
		struct config *cfg;
		char *errors = load_text(strbuf_str(&conf), &cfg);
		if (cases[i].why) {
			struct strbuf want = STRBUF_INIT;
			strbuf_printf(&want, "CONF:5: chatops.workflow_file: %s: %s %s\n", wf, cases[i].why, expected);
			CHECK_LINES(errors, strbuf_str(&want));
			CHECK(cfg == NULL);
			strbuf_free(&want);
		} else {
			CHECK_LINES(errors, "");
			CHECK_INT(cfg && cfg->chatops.workflow ? strlen(cfg->chatops.workflow) : 0, 3999);
		}
		config_free(cfg);
		free(errors);
		strbuf_free(&conf);
		unlink(wf);
		free(wf);
	}

	/* One byte over, and a file that does not exist. */
	strbuf_puts(&big, "xy");
	char *wf = write_temp_bytes(big.data, big.len);
	struct strbuf conf = STRBUF_INIT;
	strbuf_printf(&conf, CONF_HEAD ONE_ROUTE "chatops: {\n  workflow_file = \"%s\";\n};\n", wf);
	struct config *cfg;
	char *errors = load_text(strbuf_str(&conf), &cfg);
	struct strbuf want = STRBUF_INIT;
	strbuf_printf(&want, "CONF:5: chatops.workflow_file: %s: longer than 4000 bytes %s\n", wf, expected);
	CHECK_LINES(errors, strbuf_str(&want));
	free(errors);
	unlink(wf);
	errors = load_text(strbuf_str(&conf), &cfg);
	strbuf_reset(&want);
	strbuf_printf(&want, "CONF:5: chatops.workflow_file: cannot read %s: No such file or directory\n", wf);
	CHECK_LINES(errors, strbuf_str(&want));
	CHECK(cfg == NULL);
	free(errors);
	free(wf);
	strbuf_free(&want);
	strbuf_free(&conf);
	strbuf_free(&big);
}

/* The inline workflow: 4000 bytes load, 4001 do not; the message quotes its start only. */
static void test_workflow_is_at_most_4000_bytes(void)
{
	for (int extra = 0; extra < 2; extra++) {
		struct strbuf conf = STRBUF_INIT;
		strbuf_puts(&conf, CONF_HEAD ONE_ROUTE "chatops: {\n  workflow = \"");
		for (int i = 0; i < 4000 + extra; i++)
			strbuf_puts(&conf, i % 100 == 90 ? "\\n" : "w");
		strbuf_puts(&conf, "\";\n};\n");
		struct config *cfg;
		char *errors = load_text(strbuf_str(&conf), &cfg);
		if (!extra) {
			CHECK_LINES(errors, "");
			CHECK_INT(cfg && cfg->chatops.workflow ? strlen(cfg->chatops.workflow) : 0, 4000);
		} else {
			struct strbuf want = STRBUF_INIT;
			strbuf_puts(&want, "CONF:5: chatops.workflow: bad workflow \"");
			for (int i = 0; i < 80; i++)
				strbuf_puts(&want, "w");
			strbuf_puts(&want, "\"... (longer than 4000 bytes; expected text of at most 4000 bytes, "
					   "or no workflow key)\n");
			CHECK_LINES(errors, strbuf_str(&want));
			CHECK(cfg == NULL);
			strbuf_free(&want);
		}
		config_free(cfg);
		free(errors);
		strbuf_free(&conf);
	}
}

/* The limits of hints (200 bytes) and runbooks (2000 bytes) are inclusive; a hint may
 * hold any UTF-8 and a runbook a query and a fragment. */
static void test_hint_and_runbook_limits(void)
{
	struct strbuf hint = STRBUF_INIT, url = STRBUF_INIT;
	strbuf_puts(&hint, "\xc3\xa9"); /* é: the limit counts bytes */
	while (hint.len < 200)
		strbuf_putc(&hint, 'h');
	strbuf_puts(&url, "https://wiki.example.org/p?q=1#");
	while (url.len < 2000)
		strbuf_putc(&url, 'u');
	for (int extra = 0; extra < 2; extra++) {
		struct strbuf conf = STRBUF_INIT;
		strbuf_printf(&conf, CONF_HEAD "routes = ( { name = \"a\"; room = \"#a:hs\";\n"
					       "  hint = \"%s%s\";\n  runbook = \"%s%s\"; } );\n",
			      hint.data, extra ? "h" : "", url.data, extra ? "u" : "");
		struct config *cfg;
		char *errors = load_text(strbuf_str(&conf), &cfg);
		if (!extra) {
			CHECK_LINES(errors, "");
			const struct config_route_chatops *rco = cfg ? config_route_chatops(cfg, &cfg->routes[0]) : NULL;
			CHECK_STR(rco ? rco->hint : NULL, hint.data);
			CHECK_STR(rco ? rco->runbook : NULL, url.data);
		} else {
			CHECK_CONTAINS(errors, "CONF:4: routes[0].hint: bad hint \"\xc3\xa9hhh");
			CHECK_CONTAINS(errors, "\"... (longer than 200 bytes; " HINT_EXP ")\n");
			CHECK_CONTAINS(errors, "CONF:5: routes[0].runbook: bad URL \"https://wiki.example.org/p?q=1#uuu");
			CHECK_CONTAINS(errors, "\"... (longer than 2000 bytes; " URL_EXP ")\n");
			CHECK(cfg == NULL);
		}
		config_free(cfg);
		free(errors);
		strbuf_free(&conf);
	}
	strbuf_free(&hint);
	strbuf_free(&url);
}

/* digest_at is HH:MM on a 24-hour clock (a one-digit hour is fine), nothing else. */
static void test_digest_at_accepts_only_times_of_day(void)
{
	static const struct {
		const char *text;
		int minute; /* -1: an error */
	} cases[] = {
		{"00:00", 0}, {"23:59", 1439}, {"9:05", 545}, {"09:05", 545},
		{"24:00", -1}, {"12:60", -1}, {"9:5", -1}, {"0900", -1}, {" 09:00", -1}, {"09:00 ", -1},
		{"", -1}, {"Mon 09:00", -1}, {"123:00", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct strbuf conf = STRBUF_INIT;
		strbuf_printf(&conf, CONF_HEAD "routes = ( { name = \"a\"; room = \"#a:hs\";\n"
					       "  digest_at = \"%s\"; } );\nchatops: { };\n", cases[i].text);
		struct config *cfg;
		char *errors = load_text(strbuf_str(&conf), &cfg);
		if (cases[i].minute >= 0) {
			CHECK_LINES(errors, "");
			CHECK_INT(cfg ? config_route_chatops(cfg, &cfg->routes[0])->digest_minute : -2, cases[i].minute);
		} else {
			struct strbuf want = STRBUF_INIT;
			strbuf_printf(&want, "CONF:4: routes[0].digest_at: bad time \"%s\" (expected HH:MM, 24-hour, "
					     "00:00 to 23:59)\n", cases[i].text);
			CHECK_LINES(errors, strbuf_str(&want));
			strbuf_free(&want);
		}
		config_free(cfg);
		free(errors);
		strbuf_free(&conf);
	}
}

/* Smaller shapes: a single-string result list, escalate_after 0 (not "use the
 * default"), an empty owners list (no rules, and no chatops needed for none). */
static void test_owners_and_triage_shapes(void)
{
	struct config *cfg;
	char *errors = load_text(CONF_HEAD ONE_ROUTE "triage: { infra_results = \"NODE_FAILURE\"; };\n"
				 "owners = ();\n", &cfg);
	CHECK_LINES(errors, "");
	if (cfg) {
		CHECK(cfg->triage.enabled);
		CHECK_INT(cfg->triage.n_infra_results, 1);
		CHECK_STR(cfg->triage.infra_results[0], "NODE_FAILURE");
		CHECK_INT(cfg->owners.n_rules, 0);
	}
	config_free(cfg);
	free(errors);

	errors = load_text(CONF_HEAD ONE_ROUTE "chatops: { };\n"
			   "owners = ( { jobs = \"nightly-*\"; users = \"@a:hs\"; escalate_after = 0; } );\n"
			   "triage: { infra_results = \"lost\"; };\n", &cfg);
	CHECK_LINES(errors, "CONF:6: triage.infra_results: bad result \"lost\" (expected an upper-case "
			    "build result of A-Z and _, e.g. \"NODE_FAILURE\")\n");
	config_free(cfg);
	free(errors);

	errors = load_text(CONF_HEAD ONE_ROUTE "chatops: { };\n"
			   "owners = ( { jobs = \"nightly-*\"; users = \"@a:hs\"; escalate_after = 0; } );\n", &cfg);
	CHECK_LINES(errors, "");
	if (cfg && cfg->owners.n_rules == 1) {
		CHECK_INT(cfg->owners.rules[0].escalate_after_s, 0);
		CHECK_INT(cfg->owners.rules[0].line, 5);
		CHECK_INT(cfg->owners.rules[0].n_users, 1);
		CHECK_STR(cfg->owners.rules[0].jobs[0], "nightly-*");
	} else {
		CHECK(!"one owners rule");
	}
	config_free(cfg);
	free(errors);
}

/* ---- secrets ---- */

static void test_secrets_come_from_files_relative_to_config(void)
{
	clear_env();
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "relative-paths.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		/* Trailing newline, CR and space are stripped. */
		CHECK_STR(cfg->matrix.access_token, TOKEN);
		CHECK_STR(cfg->mqtt.password, PASSWORD);
	}
	config_free(cfg);
	strbuf_free(&err);
}

static void test_secret_files_win_over_environment(void)
{
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "env-token-value", 1);
	setenv("ZMB_MQTT_PASSWORD", "env-password-value", 1);
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "relative-paths.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	if (cfg) {
		CHECK_STR(cfg->matrix.access_token, TOKEN);
		CHECK_STR(cfg->mqtt.password, PASSWORD);
	}
	config_free(cfg);
	clear_env();
	strbuf_free(&err);
}

static void test_secrets_come_from_environment_without_files(void)
{
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "env-token-value", 1);
	setenv("ZMB_MQTT_PASSWORD", "env-password-value", 1);
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(cfg->matrix.access_token, "env-token-value");
		CHECK_STR(cfg->mqtt.password, "env-password-value");
	}
	config_free(cfg);
	/* Without the flag the environment is not consulted either. */
	cfg = config_load(DIR "minimal.conf", 0, &err);
	CHECK(cfg && cfg->matrix.access_token == NULL && cfg->mqtt.password == NULL);
	config_free(cfg);
	clear_env();
	strbuf_free(&err);
}

static void test_missing_access_token_is_an_error_only_when_needed(void)
{
	clear_env();
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_LINES(strbuf_str(&err), DIR "minimal.conf:3: matrix: no access token (set access_token_file, "
				    "ZMB_MATRIX_ACCESS_TOKEN or the credential matrix-access-token)\n");
	config_free(cfg);
	strbuf_reset(&err);
	/* An empty variable counts as unset. */
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "", 1);
	cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_CONTAINS(strbuf_str(&err), "no access token");
	config_free(cfg);
	clear_env();
	strbuf_reset(&err);
	/* The MQTT password is optional. */
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "t0ken", 1);
	cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg && cfg->mqtt.password == NULL);
	config_free(cfg);
	clear_env();
	strbuf_free(&err);
}

/* A systemd credentials directory (LoadCredential=) holding the given secrets; NULL
 * leaves a file out, "" writes it empty. Returns the directory (caller removes and frees
 * it with credentials_remove). */
static char *credentials_dir(const char *token, const char *password)
{
	char *dir = xstrdup("/tmp/zmb-test-credentials-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		abort();
	}
	const char *names[] = {"matrix-access-token", "mqtt-password"};
	const char *values[] = {token, password};
	for (int i = 0; i < 2; i++) {
		if (!values[i])
			continue;
		char path[256];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "w");
		if (!f) {
			perror(path);
			abort();
		}
		fputs(values[i], f);
		fclose(f);
	}
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	return dir;
}

static void credentials_remove(char *dir)
{
	char path[256];
	snprintf(path, sizeof path, "%s/matrix-access-token", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/mqtt-password", dir);
	unlink(path);
	rmdir(dir);
	free(dir);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_secrets_come_from_credentials_last(void)
{
	clear_env();
	char *dir = credentials_dir("cred-token-value\n", "cred-password-value\n");
	struct strbuf err = STRBUF_INIT;
	/* Neither file nor environment: the credentials, trailing newline stripped. */
	struct config *cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(cfg->matrix.access_token, "cred-token-value");
		CHECK_STR(cfg->mqtt.password, "cred-password-value");
	}
	config_free(cfg);
	/* The environment wins over a credential. */
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "env-token-value", 1);
	setenv("ZMB_MQTT_PASSWORD", "env-password-value", 1);
	cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	if (cfg) {
		CHECK_STR(cfg->matrix.access_token, "env-token-value");
		CHECK_STR(cfg->mqtt.password, "env-password-value");
	}
	config_free(cfg);
	unsetenv("ZMB_MATRIX_ACCESS_TOKEN");
	unsetenv("ZMB_MQTT_PASSWORD");
	/* Files named in the config win over a credential. */
	cfg = config_load(DIR "relative-paths.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	if (cfg) {
		CHECK_STR(cfg->matrix.access_token, TOKEN);
		CHECK_STR(cfg->mqtt.password, PASSWORD);
	}
	config_free(cfg);
	/* Without CONFIG_NEED_SECRETS the credentials are not read. */
	cfg = config_load(DIR "minimal.conf", 0, &err);
	CHECK(cfg && cfg->matrix.access_token == NULL && cfg->mqtt.password == NULL);
	config_free(cfg);
	credentials_remove(dir);
	clear_env();
	strbuf_free(&err);
}

static void test_missing_credentials_are_skipped(void)
{
	clear_env();
	/* Only the token was passed (anonymous broker): no password, no error. */
	char *dir = credentials_dir("cred-token-value", NULL);
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg && cfg->mqtt.password == NULL);
	CHECK_STR(cfg ? cfg->matrix.access_token : NULL, "cred-token-value");
	config_free(cfg);
	credentials_remove(dir);
	/* A credentials directory without the token is the usual "no access token". */
	dir = credentials_dir(NULL, "cred-password-value");
	cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_LINES(strbuf_str(&err), DIR "minimal.conf:3: matrix: no access token (set access_token_file, "
				      "ZMB_MATRIX_ACCESS_TOKEN or the credential matrix-access-token)\n");
	config_free(cfg);
	credentials_remove(dir);
	clear_env();
	strbuf_free(&err);
}

/* matrix.user: the bridge logs in itself; the password comes from the same three places
 * as the access token, and no access token may be set beside it. */
static void test_login_password_sources(void)
{
	clear_env();
	unsetenv("ZMB_MATRIX_PASSWORD");
	struct strbuf err = STRBUF_INIT;
	/* From the file the config names; no access token needed, none read. */
	struct config *cfg = config_load(DIR "login.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	if (cfg) {
		CHECK_STR(cfg->matrix.user, "@zuul-bot:example.org");
		CHECK_STR(cfg->matrix.password, "fixture-matrix-password");
		CHECK(cfg->matrix.access_token == NULL);
	}
	config_free(cfg);
	/* Without CONFIG_NEED_SECRETS nothing is read and a lone user is fine. */
	cfg = config_load(DIR "login-user-only.conf", 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg && cfg->matrix.password == NULL);
	CHECK_STR(cfg ? cfg->matrix.user : NULL, "zuul-bot");
	config_free(cfg);
	/* A user without any password is an error at the user's line. */
	cfg = config_load(DIR "login-user-only.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_LINES(strbuf_str(&err), DIR "login-user-only.conf:4: matrix.user: no password (set "
				    "password_file, ZMB_MATRIX_PASSWORD or the credential matrix-password)\n");
	config_free(cfg);
	strbuf_reset(&err);
	/* The environment, then the credential matrix-password. */
	setenv("ZMB_MATRIX_PASSWORD", "env-matrix-password", 1);
	cfg = config_load(DIR "login-user-only.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK_STR(cfg ? cfg->matrix.password : NULL, "env-matrix-password");
	config_free(cfg);
	unsetenv("ZMB_MATRIX_PASSWORD");
	char *dir = credentials_dir(NULL, NULL);
	char path[256];
	snprintf(path, sizeof path, "%s/matrix-password", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("cred-matrix-password\n", f);
		fclose(f);
	}
	cfg = config_load(DIR "login-user-only.conf", CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK_STR(cfg ? cfg->matrix.password : NULL, "cred-matrix-password");
	config_free(cfg);
	unlink(path);
	credentials_remove(dir);
	/* An access token from the environment beside a user: refused, neither value shown. */
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "env-token-value", 1);
	cfg = config_load(DIR "login.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_LINES(strbuf_str(&err), DIR "login.conf:4: matrix.user: ZMB_MATRIX_ACCESS_TOKEN is set too "
				    "(expected either an access token or matrix.user with a password, not "
				    "both)\n");
	config_free(cfg);
	strbuf_reset(&err);
	clear_env();
	/* So is a credential matrix-access-token. */
	dir = credentials_dir("cred-token-value", NULL);
	cfg = config_load(DIR "login.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_CONTAINS(strbuf_str(&err), "login.conf:4: matrix.user: the credential matrix-access-token is set too");
	CHECK_NOT_CONTAINS(strbuf_str(&err), "fixture-matrix-password");
	config_free(cfg);
	credentials_remove(dir);
	clear_env();
	strbuf_free(&err);
}

static void test_empty_credential_is_an_error_naming_it(void)
{
	clear_env();
	char *dir = credentials_dir("\n", "");
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "minimal.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	/* Errors come in line order; minimal.conf has no mqtt group, so that one is line 1. */
	struct strbuf want = STRBUF_INIT;
	strbuf_printf(&want,
		      DIR "minimal.conf:1: credential mqtt-password: %s/mqtt-password is empty "
			  "(expected the secret in it)\n"
		      DIR "minimal.conf:3: credential matrix-access-token: %s/matrix-access-token is empty "
			  "(expected the secret in it)\n",
		      dir, dir);
	CHECK_LINES(strbuf_str(&err), strbuf_str(&want));
	config_free(cfg);
	credentials_remove(dir);
	strbuf_free(&want);
	strbuf_free(&err);
}

static void test_secrets_never_appear_in_errors(void)
{
	setenv("ZMB_MQTT_PASSWORD", "env-password-value-42", 1);
	struct strbuf err = STRBUF_INIT;
	struct config *cfg = config_load(DIR "secret-reused.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_NOT_CONTAINS(strbuf_str(&err), TOKEN);
	CHECK_NOT_CONTAINS(strbuf_str(&err), "env-password-value-42");
	CHECK_LINES(strbuf_str(&err),
		  DIR "secret-reused.conf:4: log_level: bad log level \"[redacted]\" "
		      "(expected \"error\", \"warn\", \"info\" or \"debug\")\n"
		  DIR "secret-reused.conf:7: routes[0].room: bad room \"[redacted]\" "
		      "(expected a room id \"!id:server\" or alias \"#alias:server\")\n");
	config_free(cfg);
	clear_env();

	/* Inline secrets are refused by name, their values never echoed. */
	strbuf_reset(&err);
	cfg = config_load(DIR "inline-secrets.conf", CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	CHECK_NOT_CONTAINS(strbuf_str(&err), "hunter2-inline-password");
	CHECK_NOT_CONTAINS(strbuf_str(&err), "syt_inline_token_value");
	config_free(cfg);

	/* Every error fixture, with secrets in the environment: none leaks them. */
	const char *fixtures[] = {"bad-room.conf", "bad-url.conf", "wrong-type.conf", "bad-glob.conf",
				  "unknown-key-typos.conf", "token-file-empty.conf"};
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "zmb-env-token-xyz", 1);
	setenv("ZMB_MQTT_PASSWORD", "zmb-env-password-xyz", 1);
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		char path[256];
		snprintf(path, sizeof(path), DIR "%s", fixtures[i]);
		strbuf_reset(&err);
		cfg = config_load(path, CONFIG_NEED_SECRETS, &err);
		CHECK(cfg == NULL);
		CHECK(err.len > 0);
		CHECK_NOT_CONTAINS(strbuf_str(&err), "zmb-env-token-xyz");
		CHECK_NOT_CONTAINS(strbuf_str(&err), "zmb-env-password-xyz");
		CHECK_NOT_CONTAINS(strbuf_str(&err), TOKEN);
		config_free(cfg);
	}
	clear_env();
	strbuf_free(&err);
}

/* ---- mistakes: one fixture each, exact messages ---- */

struct bad_case {
	const char *file; /* under DIR, or a path that does not exist */
	unsigned flags;
	const char *errors;
};

#define F(name) DIR name
static const struct bad_case bad_cases[] = {
	{F("does-not-exist.conf"), 0,
	 F("does-not-exist.conf") ": cannot read: No such file or directory\n"},
	{"tests/data/config", 0, "tests/data/config: cannot read: Is a directory\n"},
	{F("syntax-error.conf"), 0,
	 F("syntax-error.conf") ":3: syntax error (expected libconfig syntax: name = value; groups in "
				"{ }, lists in ( ), arrays in [ ])\n"},
	{F("unknown-key-top.conf"), 0,
	 F("unknown-key-top.conf") ":1: unknown key 'bogus_key' (expected one of: state_dir, "
				   "template_dir, log_level, dedup_retention, mqtt, matrix, routes, metrics, "
				   "chatops, owners, triage, details, actions)\n"
	 F("unknown-key-top.conf") ":1: matrix: missing (expected matrix: { homeserver = \"https://...\"; })\n"
	 F("unknown-key-top.conf") ":1: routes: missing (expected routes = ( { name = \"...\"; room = "
				   "\"#...\"; } ); at least one route)\n"},
	{F("unknown-key-nested.conf"), 0,
	 F("unknown-key-nested.conf") ":5: unknown key 'mqtt.tls.cafile' (expected one of: ca_file, "
				      "ca_dir, cert_file, key_file, verify); did you mean 'ca_file'?\n"},
	{F("unknown-key-typos.conf"), 0,
	 F("unknown-key-typos.conf") ":4: unknown key 'mqtt.topic' (expected one of: host, port, "
				     "client_id, username, password_file, qos, clean_session, keepalive, "
				     "protocol, receive_maximum, maximum_packet_size, share_group, topics, "
				     "reconnect_min, "
				     "reconnect_max, tls); "
				     "did you mean 'topics'?\n"
	 F("unknown-key-typos.conf") ":7: unknown key 'routes[0].match.tenant' (expected one of: "
				     "tenants, pipelines, projects, branches, actions, buildset_results, "
				     "build_results); did you mean 'tenants'?\n"
	 F("unknown-key-typos.conf") ":8: unknown key 'routes[0].colour' (expected one of: name, room, "
				     "template, match, exclude, edit_start, mention_oncall, runbook, hint, "
				     "digest_at, digest_timezone)\n"},
	{F("wrong-type.conf"), 0,
	 F("wrong-type.conf") ":3: mqtt.port: expected an integer, got a string\n"
	 F("wrong-type.conf") ":4: mqtt.clean_session: expected a boolean (true or false), got an integer\n"
	 F("wrong-type.conf") ":6: routes[0].match.projects: expected a list of strings or a string, "
			      "got an integer\n"},
	{F("out-of-range.conf"), 0,
	 F("out-of-range.conf") ":4: mqtt.port: 0 is out of range (expected 1..65535)\n"
	 F("out-of-range.conf") ":5: mqtt.qos: 3 is out of range (expected 0..2)\n"
	 F("out-of-range.conf") ":6: mqtt.keepalive: 2s is out of range (expected 5s..1h)\n"},
	{F("bad-topic-filter.conf"), 0,
	 F("bad-topic-filter.conf") ":4: mqtt.topics[1]: bad topic filter \"zuul/#/x\" "
				    "('#' must be the last level)\n"
	 F("bad-topic-filter.conf") ":5: mqtt.topics[2]: bad topic filter \"zuul/a+\" "
				    "('+' must be a whole level)\n"},
	{F("bad-duration.conf"), 0,
	 F("bad-duration.conf") ":4: matrix.retry_max: bad duration \"5x\" (expected a duration like "
				"\"90s\", \"5m\", \"1h30m\", \"7d\" or an integer of seconds)\n"
	 F("bad-duration.conf") ":5: matrix.request_timeout: bad duration -1 (expected a non-negative "
				"number of seconds or a duration like \"90s\", \"5m\", \"1h30m\")\n"},
	{F("bad-url.conf"), 0,
	 F("bad-url.conf") ":3: matrix.homeserver: bad URL \"matrix.example.org\" "
			   "(expected http:// or https:// followed by a host)\n"},
	{F("url-credentials.conf"), 0,
	 F("url-credentials.conf") ":3: mqtt.host: a URL or user@host (expected a host name or address only: "
				   "the user belongs in mqtt.username, the password in mqtt.password_file)\n"
	 F("url-credentials.conf") ":4: matrix.homeserver: the URL has a user name or password in it "
				   "(\"...@\"; expected https://host[:port] only: secrets belong in "
				   "matrix.access_token_file, or matrix.user with matrix.password_file)\n"},
	{F("bad-post-unencrypted.conf"), 0,
	 F("bad-post-unencrypted.conf") ":5: matrix.post_unencrypted[1]: \"#zuul-alert:example.org\" is no route's "
					"room (expected a room exactly as a route's `room` names it)\n"},
	{F("bad-room.conf"), 0,
	 F("bad-room.conf") ":5: routes[0].room: bad room \"zuul-alerts\" (expected a room id "
			    "\"!id:server\" or alias \"#alias:server\")\n"},
	{F("bad-route-name.conf"), 0,
	 F("bad-route-name.conf") ":4: routes[0].name: bad route name \"periodic failures\" "
				  "(expected up to 64 letters, digits, '.', '_' or '-')\n"},
	{F("route-name-too-long.conf"), 0,
	 F("route-name-too-long.conf") ":4: routes[0].name: bad route name "
				       "\"a2345678901234567890123456789012345678901234567890123456789012345\" "
				       "(expected up to 64 letters, digits, '.', '_' or '-')\n"},
	{F("duplicate-route-name.conf"), 0,
	 F("duplicate-route-name.conf") ":6: routes[1].name: duplicate route name \"alerts\" "
					"(expected a unique name; routes[0] on line 5 has it)\n"},
	{F("bad-log-level.conf"), 0,
	 F("bad-log-level.conf") ":3: log_level: bad log level \"verbose\" "
				 "(expected \"error\", \"warn\", \"info\" or \"debug\")\n"},
	{F("missing-homeserver.conf"), 0,
	 F("missing-homeserver.conf") ":3: matrix.homeserver: missing (expected the homeserver URL, "
				      "e.g. homeserver = \"https://matrix.example.org\";)\n"},
	{F("missing-matrix-and-routes.conf"), 0,
	 F("missing-matrix-and-routes.conf") ":1: matrix: missing (expected matrix: "
					     "{ homeserver = \"https://...\"; })\n"
	 F("missing-matrix-and-routes.conf") ":1: routes: missing (expected routes = ( { name = "
					     "\"...\"; room = \"#...\"; } ); at least one route)\n"},
	{F("empty-routes.conf"), 0,
	 F("empty-routes.conf") ":4: routes: empty list (expected at least one route)\n"},
	{F("missing-route-name-and-room.conf"), 0,
	 F("missing-route-name-and-room.conf") ":5: routes[0].name: missing (expected a route name of "
					       "up to 64 letters, digits, '.', '_' or '-')\n"
	 F("missing-route-name-and-room.conf") ":5: routes[0].room: missing (expected a room id "
					       "\"!id:server\" or alias \"#alias:server\")\n"},
	{F("bad-glob.conf"), 0,
	 F("bad-glob.conf") ":6: routes[0].match.projects[1]: bad glob \"foo[\" (unterminated [)\n"},
	{F("empty-match-list.conf"), 0,
	 F("empty-match-list.conf") ":5: routes[0].match.pipelines: empty list (expected at least one "
				    "pattern; remove the key to accept any value)\n"},
	{F("empty-match-group.conf"), 0,
	 F("empty-match-group.conf") ":5: routes[0].match: empty group (expected at least one of "
				     "tenants, ...; remove it to take every report)\n"},
	{F("missing-template.conf"), 0, NULL /* absolute path: built at run time */},
	{F("inline-secrets.conf"), 0,
	 F("inline-secrets.conf") ":4: mqtt.password: secrets are not accepted in the config file (put "
				  "the password in a file named by mqtt.password_file, or in the "
				  "environment variable ZMB_MQTT_PASSWORD)\n"
	 F("inline-secrets.conf") ":6: matrix.access_token: secrets are not accepted in the config file "
				  "(put the access token in a file named by matrix.access_token_file, or "
				  "in the environment variable ZMB_MATRIX_ACCESS_TOKEN)\n"},
	{F("cert-without-key.conf"), 0,
	 F("cert-without-key.conf") ":3: mqtt.tls: cert_file without key_file (expected cert_file and "
				    "key_file together, or neither)\n"},
	{F("reconnect-max-below-min.conf"), 0,
	 F("reconnect-max-below-min.conf") ":4: mqtt.reconnect_max: 5s is less than reconnect_min 10s "
					   "(expected reconnect_max >= reconnect_min)\n"},
	{F("password-without-username.conf"), 0,
	 F("password-without-username.conf") ":3: mqtt.password_file: a password without a user name "
					     "(expected mqtt.username too)\n"},
	{F("wrong-group-types.conf"), 0,
	 F("wrong-group-types.conf") ":2: mqtt: expected a group, got an integer\n"
	 F("wrong-group-types.conf") ":3: matrix: expected a group, got a string\n"
	 F("wrong-group-types.conf") ":4: routes[0]: expected a group, got a string\n"},
	/* An empty list in exclude is allowed: it excludes nothing. */
	{F("bad-protocol-and-share-group.conf"), 0,
	 F("bad-protocol-and-share-group.conf") ":3: mqtt.protocol: unsupported protocol \"3.1\" "
						"(expected \"3.1.1\" or \"5\")\n"
	 F("bad-protocol-and-share-group.conf") ":4: mqtt.share_group: bad group name \"a/b\" "
						"(expected no '/', '+' or '#')\n"},
	{F("bad-receive-maximum.conf"), 0,
	 F("bad-receive-maximum.conf") ":3: mqtt.receive_maximum: needs protocol = \"5\" (with MQTT 3.1.1 "
					  "the broker's own limit applies, in mosquitto max_inflight_messages)\n"},
	{F("bad-receive-maximum-range.conf"), 0,
	 F("bad-receive-maximum-range.conf") ":3: mqtt.receive_maximum: 0 is out of range (expected "
						"1..65535)\n"},
	{F("bad-maximum-packet-size.conf"), 0,
	 F("bad-maximum-packet-size.conf") ":3: mqtt.maximum_packet_size: needs protocol = \"5\" (with "
					      "MQTT 3.1.1 set the broker's message_size_limit instead)\n"},
	{F("bad-maximum-packet-size-range.conf"), 0,
	 F("bad-maximum-packet-size-range.conf") ":3: mqtt.maximum_packet_size: 1000 bytes is out of range "
						    "(expected 64KiB..256MiB)\n"},
	{F("bad-maximum-packet-size-unit.conf"), 0,
	 F("bad-maximum-packet-size-unit.conf") ":3: mqtt.maximum_packet_size: bad size \"1MB\" (expected a "
						   "size like \"512KiB\", \"1MiB\" or an integer of bytes)\n"},
	{F("bad-metrics.conf"), 0,
	 F("bad-metrics.conf") ":4: metrics.listen: bad address \"localhost\" (expected a numeric IPv4 or "
				"IPv6 address, e.g. \"127.0.0.1\" or \"::1\"; host names are not resolved)\n"
	 F("bad-metrics.conf") ":5: metrics.port: 0 is out of range (expected 1..65535)\n"
	 F("bad-metrics.conf") ":6: unknown key 'metrics.prot' (expected one of: listen, port); "
				"did you mean 'port'?\n"},
	{F("metrics-without-port.conf"), 0,
	 F("metrics-without-port.conf") ":3: metrics.port: missing (expected the port for /metrics and "
					"/healthz, 1..65535, e.g. port = 9464;)\n"},
	{F("bad-template-dir.conf"), 0,
	 F("bad-template-dir.conf") ":2: template_dir: expected a string, got an integer\n"},
	{F("chatops-bad-user-ids.conf"), 0,
	 F("chatops-bad-user-ids.conf") ":7: chatops.fallback[1]: \"lead\" is not a Matrix user id "
					"(@localpart:server, localpart of a-z 0-9 ._=-/+)\n"
	 F("chatops-bad-user-ids.conf") ":10: chatops.oncall.members[1]: \"@Bob:example.org\" is not a "
					"Matrix user id (@localpart:server, localpart of a-z 0-9 ._=-/+)\n"
	 F("chatops-bad-user-ids.conf") ":11: chatops.oncall.members[2]: \"@carol\" is not a Matrix user id "
					"(@localpart:server, localpart of a-z 0-9 ._=-/+)\n"
	 F("chatops-bad-user-ids.conf") ":15: chatops.oncall.overrides[0].user: \"dave@example.org\" is not "
					"a Matrix user id (@localpart:server, localpart of a-z 0-9 ._=-/+)\n"},
	{F("chatops-bad-zone-handover-shift.conf"), 0,
	 F("chatops-bad-zone-handover-shift.conf") ":9: chatops.oncall.timezone: \"Europe/Berln\" is not a "
						   "zone of the system tz database (e.g. Europe/Berlin, UTC)\n"
	 F("chatops-bad-zone-handover-shift.conf") ":10: chatops.oncall.handover: \"Mon 9\" is not a "
						   "handover time (\"Mon 09:00\" or \"09:00\")\n"
	 F("chatops-bad-zone-handover-shift.conf") ":11: chatops.oncall.shift: 1d 12h is not a whole "
						   "number of days (1d, 7d, 14d, ...)\n"
	 F("chatops-bad-zone-handover-shift.conf") ":12: chatops.oncall.start: 2026-02-30 is not a "
						   "calendar date (expected a date YYYY-MM-DD)\n"},
	{F("chatops-bad-overrides.conf"), 0,
	 F("chatops-bad-overrides.conf") ":11: chatops.oncall.overrides[0]: expected a group { from = "
					 "\"YYYY-MM-DD\"; to = \"YYYY-MM-DD\"; user = \"@x:y\"; }, got a string\n"
	 F("chatops-bad-overrides.conf") ":12: chatops.oncall.overrides[1].to: missing (expected the last "
					 "on-call day of the override, YYYY-MM-DD)\n"
	 F("chatops-bad-overrides.conf") ":13: chatops.oncall.overrides[2].from: 2026-02-29 is not a "
					 "calendar date (expected the first on-call day of the override, "
					 "YYYY-MM-DD)\n"
	 F("chatops-bad-overrides.conf") ":15: chatops.oncall.overrides[3]: to 2026-03-02 is before from "
					 "2026-03-09 (expected to on or after from)\n"
	 F("chatops-bad-overrides.conf") ":16: unknown key 'chatops.oncall.overrides[4].usr' (expected one "
					 "of: from, to, user); did you mean 'user'?\n"
	 F("chatops-bad-overrides.conf") ":16: chatops.oncall.overrides[4].user: missing (expected the "
					 "Matrix user id on call instead, e.g. user = \"@bob:example.org\";)\n"},
	{F("chatops-overrides-not-a-list.conf"), 0,
	 F("chatops-overrides-not-a-list.conf") ":9: chatops.oncall.overrides: expected a list of groups: "
						"overrides = ( { from = \"2026-03-02\"; to = \"2026-03-08\"; "
						"user = \"@bob:example.org\"; } ), got a group\n"},
	{F("chatops-unknown-keys.conf"), 0,
	 F("chatops-unknown-keys.conf") ":6: unknown key 'chatops.claim_reactions' (expected one of: "
					"enabled, claims, commands, claim_reaction, resolve_reaction, command_prefix, command_power_level, "
					"threads, escalate_after, fallback_after, fallback, oncall, workflow, "
					"workflow_file, catch_up_after, topic, topic_note); did you mean 'claim_reaction'?\n"
	 F("chatops-unknown-keys.conf") ":7: chatops.oncall.members: the rotation needs at least one member "
					"(expected members = [\"@alice:example.org\", \"@bob:example.org\"];)\n"
	 F("chatops-unknown-keys.conf") ":8: unknown key 'chatops.oncall.member' (expected one of: members, "
					"shift, handover, timezone, start, overrides); did you mean 'members'?\n"},
	{F("chatops-oncall-empty.conf"), 0,
	 F("chatops-oncall-empty.conf") ":6: chatops.oncall.members: the rotation needs at least one member "
					"(expected members = [\"@alice:example.org\", \"@bob:example.org\"];)\n"
	 F("chatops-oncall-empty.conf") ":6: chatops.oncall.start: missing (the date of the first shift, "
					"YYYY-MM-DD)\n"},
	{F("chatops-bad-values.conf"), 0,
	 F("chatops-bad-values.conf") ":6: chatops.command_prefix: bad value \"!zuul bot\" (contains "
				      "whitespace or control characters; expected one word such as \"!zuul\")\n"
	 F("chatops-bad-values.conf") ":7: chatops.claim_reaction: bad value \"\" (empty; expected a "
				      "reaction key such as \"\xf0\x9f\x91\x80\")\n"
	 F("chatops-bad-values.conf") ":8: chatops.command_power_level: -1 is out of range (expected "
				      "0..2147483647)\n"
	 F("chatops-bad-values.conf") ":9: chatops.threads: expected a boolean (true or false), got a string\n"
	 F("chatops-bad-values.conf") ":10: chatops.escalate_after: bad duration \"1x\" (expected a "
				      "duration like \"90s\", \"5m\", \"1h30m\", \"7d\" or an integer of seconds)\n"
	 F("chatops-bad-values.conf") ":11: chatops.oncall: expected a group, got an integer\n"},
	{F("chatops-same-reactions.conf"), 0,
	 F("chatops-same-reactions.conf") ":5: chatops.resolve_reaction: the same as claim_reaction "
					  "\"\xe2\x9c\x85\xef\xb8\x8f\" (expected two different reactions)\n"},
	{F("chatops-fallback-without-users.conf"), 0,
	 F("chatops-fallback-without-users.conf") ":6: chatops.fallback: empty, but fallback_after is set: "
						  "whom should it ping? (expected fallback = "
						  "[\"@lead:example.org\"]; or no fallback_after)\n"},
	{F("chatops-fallback-never.conf"), 0,
	 F("chatops-fallback-never.conf") ":7: chatops.fallback_after: missing: when should the fallback "
					  "users be pinged? (expected a duration such as \"1h\" when fallback "
					  "is set)\n"},
	{F("chatops-route-keys.conf"), 0,
	 F("chatops-route-keys.conf") ":5: routes[0].mention_oncall: true, but there is no rotation and no "
				      "owners (expected a chatops.oncall group or owners rules that say whom "
				      "to mention)\n"
	 F("chatops-route-keys.conf") ":6: routes[0].edit_start: expected a boolean (true or false), "
				      "got an integer\n"},
	/* Issue #7: owners, the workflow, per-route texts and digests, triage. */
	{F("owners-bad-values.conf"), 0,
	 F("owners-bad-values.conf") ":7: owners[0].projects[1]: bad glob \"foo[\" (unterminated [)\n"
	 F("owners-bad-values.conf") ":9: owners[0].users[1]: \"alice\" " USER_EXP "\n"
	 F("owners-bad-values.conf") ":10: owners[0].users[2]: \"@Bob:example.org\" " USER_EXP "\n"
	 F("owners-bad-values.conf") ":11: owners[0].forward_room: bad room \"provider-room\" (expected a "
				     "room id \"!id:server\" or alias \"#alias:server\")\n"
	 F("owners-bad-values.conf") ":12: owners[0].forward_after: bad duration \"soon\" (expected a "
				     "duration like \"90s\", \"5m\", \"1h30m\", \"7d\" or an integer of seconds)\n"
	 F("owners-bad-values.conf") ":13: owners[0].escalate_after: 31d is out of range (expected 0s..30d)\n"
	 F("owners-bad-values.conf") ":14: owners[0].runbook: bad URL \"ftp://wiki.example.org/x\" "
				     "(not http:// or https://; " URL_EXP ")\n"
	 F("owners-bad-values.conf") ":15: owners[0].hint: bad hint \"line one\\nline two\" (more than one "
				     "line; " HINT_EXP ")\n"
	 F("owners-bad-values.conf") ":16: owners[1].jobs: empty list (expected at least one pattern; "
				     "remove the key to accept any value)\n"
	 F("owners-bad-values.conf") ":17: owners[1].users: \"@carol\" " USER_EXP "\n"
	 F("owners-bad-values.conf") ":18: owners[1].runbook: bad URL \"https://wiki.example.org/a page\" "
				     "(contains whitespace or control characters; " URL_EXP ")\n"
	 F("owners-bad-values.conf") ":19: owners[1].hint: bad hint \"" ALPHABET ALPHABET ALPHABET
				     "ab\"... (longer than 200 bytes; " HINT_EXP ")\n"
	 F("owners-bad-values.conf") ":20: unknown key 'owners[1].tenant' (expected one of: tenants, "
				     "pipelines, projects, jobs, users, forward_room, forward_after, "
				     "escalate_after, runbook, hint); did you mean 'tenants'?\n"},
	{F("owners-incomplete.conf"), 0,
	 F("owners-incomplete.conf") ":7: owners[0]: no tenants, pipelines, projects or jobs (expected at "
				     "least one of them, e.g. projects = [\"org/*\"];)\n"
	 F("owners-incomplete.conf") ":8: owners[1]: nobody to tell (expected users = "
				     "[\"@alice:example.org\"]; or forward_room = \"#team:example.org\";)\n"
	 F("owners-incomplete.conf") ":9: owners[2].forward_after: set without forward_room (expected "
				     "forward_room = \"#team:example.org\"; too, or no forward_after)\n"
	 F("owners-incomplete.conf") ":10: owners[3]: expected a group { projects = [\"org/*\"]; users = "
				     "[\"@alice:example.org\"]; }, got a string\n"
	 F("owners-incomplete.conf") ":11: owners[4].runbook: bad URL \"https://\" (no host after the "
				     "scheme; " URL_EXP ")\n"
	 F("owners-incomplete.conf") ":11: owners[4].hint: bad hint \"\" (empty; " HINT_EXP ")\n"},
	{F("owners-not-a-list.conf"), 0,
	 F("owners-not-a-list.conf") ":6: owners: expected a list of groups: owners = ( { projects = "
				     "[\"org/*\"]; users = [\"@alice:example.org\"]; } ), got a group\n"},
	{F("owners-without-chatops.conf"), 0,
	 F("owners-without-chatops.conf") ":6: routes[0].digest_at: set, but chatops.enabled is false "
					  "(expected the room side on, which tracks the open failures the digest "
					  "lists)\n"
	 F("owners-without-chatops.conf") ":7: owners: set, but chatops.enabled is false (expected the "
					  "room side on, which mentions the owners)\n"},
	{F("chatops-bad-workflow.conf"), 0,
	 F("chatops-bad-workflow.conf") ":6: chatops.workflow: bad workflow \"Claim first.\\x0cThen fix.\" "
					"(contains control characters other than newline and tab; expected "
					"text of at most 4000 bytes, or no workflow key)\n"
	 F("chatops-bad-workflow.conf") ":7: chatops.workflow_file: set together with chatops.workflow on "
					"line 6 (expected only one of them)\n"
	 F("chatops-bad-workflow.conf") ":8: chatops.catch_up_after: 31d is out of range (expected 0s..30d)\n"
	 F("chatops-bad-workflow.conf") ":9: chatops.topic_note: bad value \"two\\nlines\" (more than one "
					"line; expected one line of at most 200 bytes)\n"},
	{F("route-bad-texts.conf"), 0,
	 F("route-bad-texts.conf") ":6: routes[0].runbook: bad URL \"wiki.example.org/zuul\" (not http:// "
				   "or https://; " URL_EXP ")\n"
	 F("route-bad-texts.conf") ":7: routes[0].hint: bad hint \"tab\\there\" (contains control "
				   "characters; " HINT_EXP ")\n"
	 F("route-bad-texts.conf") ":8: routes[0].digest_at: bad time \"24:00\" (expected HH:MM, 24-hour, "
				   "00:00 to 23:59)\n"
	 F("route-bad-texts.conf") ":9: routes[0].digest_timezone: \"Europe/Berln\" is not a zone of the "
				   "system tz database (e.g. Europe/Berlin, UTC)\n"
	 F("route-bad-texts.conf") ":11: routes[1].runbook: bad URL \"https://wiki.example.org/\\\"><b>\" "
				   "(contains one of \" < > \\ `; " URL_EXP ")\n"
	 F("route-bad-texts.conf") ":11: routes[1].digest_timezone: set without digest_at (expected "
				   "digest_at = \"HH:MM\"; too, or no digest_timezone)\n"
	 F("route-bad-texts.conf") ":13: routes[2].digest_at: expected a string, got an integer\n"
	 F("route-bad-texts.conf") ":15: routes[3].runbook: bad URL \"https://wiki.example.org/\\x01\" "
				   "(contains whitespace or control characters; " URL_EXP ")\n"
	 F("route-bad-texts.conf") ":15: routes[3].digest_at: bad time \"9:5\" (expected HH:MM, 24-hour, "
				   "00:00 to 23:59)\n"},
	{F("triage-bad-values.conf"), 0,
	 F("triage-bad-values.conf") ":7: triage.infra_results[1]: bad result \"node_failure\" (expected an "
				     "upper-case build result of A-Z and _, e.g. \"NODE_FAILURE\")\n"
	 F("triage-bad-values.conf") ":8: triage.infra_results[2]: bad result \"LOST \" (expected an "
				     "upper-case build result of A-Z and _, e.g. \"NODE_FAILURE\")\n"
	 F("triage-bad-values.conf") ":9: triage.job_window: 30s is out of range (expected 1m..1d)\n"
	 F("triage-bad-values.conf") ":10: triage.job_min_projects: 1 is out of range (expected 2..1000)\n"
	 F("triage-bad-values.conf") ":11: unknown key 'triage.job_min_project' (expected one of: "
				     "enabled, infra_results, job_window, job_min_projects); did you mean "
				     "'job_min_projects'?\n"},
	{F("triage-empty-results.conf"), 0,
	 F("triage-empty-results.conf") ":5: triage.infra_results: empty list (expected at least one build "
					"result such as \"NODE_FAILURE\"; remove the key for the default list)\n"
	 F("triage-empty-results.conf") ":6: triage.job_window: 1d 1h is out of range (expected 1m..1d)\n"
	 F("triage-empty-results.conf") ":6: triage.job_min_projects: 1001 is out of range (expected "
					"2..1000)\n"},
	{F("triage-not-a-group.conf"), 0,
	 F("triage-not-a-group.conf") ":5: triage: expected a group, got an array\n"},
	/* Issue #16: the hosts build details may be fetched from. */
	{F("details-bad-hosts.conf"), 0,
	 F("details-bad-hosts.conf") ":7: details.hosts[1]: bad host \"\": empty host " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":8: details.hosts[2]: bad host \"https://zuul.example.org\": a URL, not "
				     "a host " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":9: details.hosts[3]: bad host \"logs.example.org/zuul\": a path after "
				     "the host " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":10: details.hosts[4]: bad host \"logs.example.org:0\": a port that is "
				     "not 1..65535 " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":11: details.hosts[5]: bad host \"logs.example.org:65536\": a port that "
				     "is not 1..65535 " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":12: details.hosts[6]: bad host \"logs.example.org:https\": a port that "
				     "is not 1..65535 " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":13: details.hosts[7]: bad host \"logs.example.org:\": a port that is "
				     "not 1..65535 " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":14: details.hosts[8]: bad host \"zuul@example.org\": a user name before "
				     "the host " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":15: details.hosts[9]: bad host \"zuul_example.org\": a character in the "
				     "host other than letters, digits, '.', '-' and the globs '*' and '?' " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":16: details.hosts[10]: bad host \"[::1\": unterminated [ of an IPv6 "
				     "address " HOST_EXP "\n"
	 F("details-bad-hosts.conf") ":17: details.timeout: 10m is out of range (expected 1s..5m)\n"
	 F("details-bad-hosts.conf") ":18: details.max_output: 512MiB is out of range (expected 1KiB..256MiB)\n"
	 F("details-bad-hosts.conf") ":19: unknown key 'details.host' (expected one of: hosts, timeout, "
				     "max_download, max_output); did you mean 'hosts'?\n"},
	{F("details-empty-hosts.conf"), 0,
	 F("details-empty-hosts.conf") ":6: details.hosts: empty list (expected at least one host such as "
				       "\"zuul.example.org\"; remove the details group to fetch nothing)\n"
	 F("details-empty-hosts.conf") ":7: details.max_download: bad size \"big\" (expected a size like "
				       "\"512KiB\", \"1MiB\" or an integer of bytes)\n"},
	{F("details-no-hosts.conf"), 0,
	 F("details-no-hosts.conf") ":5: details.hosts: missing (expected hosts = [\"zuul.example.org\"]; the "
				    "hosts build details may be fetched from; remove the details group to fetch "
				    "nothing)\n"},
	{F("token-file-missing.conf"), CONFIG_NEED_SECRETS, NULL /* absolute path */},
	{F("token-file-empty.conf"), CONFIG_NEED_SECRETS, NULL /* absolute path */},
	{F("login-and-token.conf"), 0,
	 F("login-and-token.conf") ":5: matrix.user: access_token_file is set too, at line 4 (expected "
				   "either an access token or matrix.user with a password, not both)\n"},
	{F("login-password-without-user.conf"), 0,
	 F("login-password-without-user.conf") ":5: matrix.password_file: a password without a user "
					       "(expected matrix.user too)\n"},
	{F("login-bad-user.conf"), 0,
	 F("login-bad-user.conf") ":4: matrix.user: \"Zuul Bot\" is not a Matrix user id or localpart "
				  "(expected @localpart:server or localpart, localpart of a-z 0-9 ._=-/+)\n"
	 F("login-bad-user.conf") ":5: matrix.password: secrets are not accepted in the config file (put "
				  "the password in a file named by matrix.password_file, or in the "
				  "environment variable ZMB_MATRIX_PASSWORD)\n"},
	{F("actions-bad-values.conf"), 0,
	 F("actions-bad-values.conf") ":6: actions.issuer: empty string (expected Zuul's [auth] issuer_id, e.g. "
				      "\"zuul-matrix-bridge\")\n"
	 F("actions-bad-values.conf") ":7: actions.audience: expected a string, got an integer\n"
	 F("actions-bad-values.conf") ":9: actions.tenants[0].name: bad tenant name \"scs/main\" (expected Zuul's "
				      "tenant name: letters, digits, '.', '_' and '-')\n"
	 F("actions-bad-values.conf") ":9: actions.tenants[0].api: bad URL \"zuul.example.org\" (expected http:// "
				      "or https:// followed by a host)\n"
	 F("actions-bad-values.conf") ":9: actions.tenants[0].users[0]: \"alice\" is not a Matrix user id "
				      "(@localpart:server, localpart of a-z 0-9 ._=-/+)\n"
	 F("actions-bad-values.conf") ":10: actions.tenants[1].api: the URL has a user name or password in it "
				      "(\"...@\"; expected https://host[:port][/path] only: the bridge signs its own "
				      "tokens)\n"
	 F("actions-bad-values.conf") ":10: actions.tenants[1].users: empty list (expected at least one Matrix "
				      "user id such as \"@alice:example.org\"; remove the tenant to let nobody act "
				      "on it)\n"
	 F("actions-bad-values.conf") ":11: unknown key 'actions.tenants[2].tenant' (expected one of: name, api, "
				      "users)\n"
	 F("actions-bad-values.conf") ":11: actions.tenants[2].name: tenant \"scs\" is listed twice (expected "
				      "each tenant once, with all its users)\n"
	 F("actions-bad-values.conf") ":12: actions.tenants[3]: expected a group { name = \"scs\"; api = "
				      "\"https://zuul.example.org\"; users = [\"@alice:example.org\"]; }, got a "
				      "string\n"
	 F("actions-bad-values.conf") ":13: unknown key 'actions.isuer' (expected one of: issuer, audience, "
				      "private_key_file, tenants); did you mean 'issuer'?\n"},
	{F("actions-incomplete.conf"), 0,
	 F("actions-incomplete.conf") ":5: actions.issuer: missing (expected issuer = \"zuul-matrix-bridge\";, as "
				      "Zuul's [auth] section has it)\n"
	 F("actions-incomplete.conf") ":5: actions.audience: missing (expected audience = \"zuul\";, as Zuul's "
				      "[auth] section has it)\n"
	 F("actions-incomplete.conf") ":5: actions.private_key_file: missing (expected private_key_file = "
				      "\"/run/credentials/zuul-matrix-bridge/zuul-actions.pem\"; the RSA key that "
				      "signs the tokens)\n"
	 F("actions-incomplete.conf") ":5: actions.tenants: missing (expected tenants = ( { name = \"scs\"; api "
				      "= \"https://zuul.example.org\"; users = [\"@alice:example.org\"]; } );)\n"},
	{F("actions-incomplete-tenant.conf"), 0,
	 F("actions-incomplete-tenant.conf") ":6: actions: set, but chatops.enabled is false (expected the room "
					     "side on: actions are asked for by room commands and reactions)\n"
	 F("actions-incomplete-tenant.conf") ":8: actions.tenants[0].name: missing (expected name = \"scs\"; the "
					     "Zuul tenant)\n"
	 F("actions-incomplete-tenant.conf") ":8: actions.tenants[0].api: missing (expected api = "
					     "\"https://zuul.example.org\"; Zuul's web root, where /api/tenant/... is)\n"
	 F("actions-incomplete-tenant.conf") ":8: actions.tenants[0].users: missing (expected users = "
					     "[\"@alice:example.org\"]; the Matrix users who may act on this tenant)\n"},
	{F("actions-no-tenants.conf"), 0,
	 F("actions-no-tenants.conf") ":5: actions.tenants: empty list (expected at least one tenant; remove the "
				      "actions group to act on none)\n"},
};

static void check_bad_case(const struct bad_case *c)
{
	char want[1024];
	const char *expected = c->errors;
	if (!expected) {
		if (strstr(c->file, "missing-template"))
			snprintf(want, sizeof(want), "%s:5: routes[0].template: cannot read %s: "
						     "No such file or directory\n",
				 c->file, abs_path("templates/nope.html"));
		else if (strstr(c->file, "token-file-missing"))
			snprintf(want, sizeof(want), "%s:4: matrix.access_token_file: cannot read %s: "
						     "No such file or directory\n",
				 c->file, abs_path(DIR "secrets/nope"));
		else
			snprintf(want, sizeof(want), "%s:4: matrix.access_token_file: %s is empty "
						     "(expected the secret in it)\n",
				 c->file, abs_path(DIR "secrets/empty"));
		expected = want;
	}
	clear_env();
	/* Messages are appended: what the caller had stays. */
	struct strbuf err = STRBUF_INIT;
	strbuf_puts(&err, ">");
	struct config *cfg = config_load(c->file, c->flags, &err);
	CHECK(cfg == NULL);
	CHECK(err.len > 0 && err.data[0] == '>');
	CHECK_LINES(strbuf_str(&err) + 1, expected);
	config_free(cfg);
	strbuf_free(&err);
}

/* The actions key: read only with the secrets, owner-only, an RSA private key. */
static void test_actions_key_must_be_an_owner_only_rsa_key(void)
{
	clear_env();
	setenv("ZMB_MATRIX_ACCESS_TOKEN", "tok-for-actions", 1);
	char dir[] = "/tmp/zmb-actions-key-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char key[200], conf[200];
	snprintf(key, sizeof key, "%s/key.pem", dir);
	snprintf(conf, sizeof conf, "%s/bridge.conf", dir);
	char *pem = read_all(DIR "secrets/zuul-actions.pem");
	FILE *f = fopen(key, "w");
	fputs(pem ? pem : "", f);
	fclose(f);
	f = fopen(conf, "w");
	fprintf(f, "template_dir = \"%s\";\nmatrix: { homeserver = \"https://hs\"; };\n"
		   "routes = ( { name = \"a\"; room = \"#a:hs\"; } );\n"
		   "actions: { issuer = \"zmb\"; audience = \"zuul\"; private_key_file = \"key.pem\";\n"
		   "  tenants = ( { name = \"scs\"; api = \"https://zuul\"; users = [\"@a:hs\"]; } ); };\n",
		abs_path("templates"));
	fclose(f);
	struct strbuf err = STRBUF_INIT, want = STRBUF_INIT;

	chmod(key, 0640);
	struct config *cfg = config_load(conf, CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	strbuf_printf(&want, "%s:4: actions.private_key_file: %s is open to group or others (mode 0640; expected "
			     "owner-only, e.g. chmod 600 %s: whoever reads it can act on Zuul as every listed user)\n",
		      conf, key, key);
	CHECK_LINES(strbuf_str(&err), strbuf_str(&want));
	config_free(cfg);

	/* without the secrets (render, explain) the key is not opened at all */
	strbuf_reset(&err);
	cfg = config_load(conf, 0, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg && cfg->actions.enabled && cfg->actions.private_key_pem == NULL);
	config_free(cfg);

	chmod(key, 0600);
	strbuf_reset(&err);
	cfg = config_load(conf, CONFIG_NEED_SECRETS, &err);
	CHECK_LINES(strbuf_str(&err), "");
	CHECK(cfg && cfg->actions.private_key_pem && strcmp(cfg->actions.private_key_pem, pem) == 0);
	config_free(cfg);

	/* a token file in its place: not a key */
	f = fopen(key, "w");
	fputs("syt_not_a_key\n", f);
	fclose(f);
	strbuf_reset(&err);
	strbuf_reset(&want);
	cfg = config_load(conf, CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	strbuf_printf(&want, "%s:4: actions.private_key_file: %s: not a PEM private key (expected \"-----BEGIN "
			     "PRIVATE KEY-----\" or \"-----BEGIN RSA PRIVATE KEY-----\")\n", conf, key);
	CHECK_LINES(strbuf_str(&err), strbuf_str(&want));
	CHECK_NOT_CONTAINS(strbuf_str(&err), "syt_not_a_key");
	config_free(cfg);

	unlink(key);
	strbuf_reset(&err);
	strbuf_reset(&want);
	cfg = config_load(conf, CONFIG_NEED_SECRETS, &err);
	CHECK(cfg == NULL);
	strbuf_printf(&want, "%s:4: actions.private_key_file: cannot read %s: No such file or directory\n", conf, key);
	CHECK_LINES(strbuf_str(&err), strbuf_str(&want));
	config_free(cfg);

	unlink(conf);
	rmdir(dir);
	free(pem);
	strbuf_free(&err);
	strbuf_free(&want);
	clear_env();
}

static void test_config_free_accepts_null(void)
{
	config_free(NULL);
	CHECK(config_find_route(NULL, "a") == NULL);
}

int main(void)
{
	if (!getcwd(cwd, sizeof(cwd)))
		return 99;
	RUN(test_example_config_loads_with_repo_templates);
	RUN(test_example_config_shows_every_key);
	RUN(test_example_chatops_block_loads_uncommented);
	RUN(test_all_keys_lists_every_route_field);
	RUN(test_minimal_config_takes_defaults);
	RUN(test_template_dir_defaults_to_installed_dir);
	RUN(test_every_key_parses_to_its_field);
	RUN(test_all_keys_fixture_sets_every_known_key);
	RUN(test_relative_paths_resolve_against_config_dir);
	RUN(test_chatops_defaults);
	RUN(test_chatops_fallback_takes_default_interval);
	RUN(test_workflow_file_is_read_relative_to_config);
	RUN(test_workflow_file_errors_name_the_file);
	RUN(test_workflow_is_at_most_4000_bytes);
	RUN(test_hint_and_runbook_limits);
	RUN(test_digest_at_accepts_only_times_of_day);
	RUN(test_owners_and_triage_shapes);
	RUN(test_secrets_come_from_files_relative_to_config);
	RUN(test_secret_files_win_over_environment);
	RUN(test_secrets_come_from_environment_without_files);
	RUN(test_missing_access_token_is_an_error_only_when_needed);
	RUN(test_secrets_come_from_credentials_last);
	RUN(test_missing_credentials_are_skipped);
	RUN(test_empty_credential_is_an_error_naming_it);
	RUN(test_login_password_sources);
	RUN(test_secrets_never_appear_in_errors);
	RUN(test_actions_key_must_be_an_owner_only_rsa_key);
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		char name[300];
		snprintf(name, sizeof(name), "rejects %s with its file:line message", bad_cases[i].file);
		RUN_NAMED(name, check_bad_case(&bad_cases[i]));
	}
	RUN(test_config_free_accepts_null);
	return test_done();
}
