/* cmd_explain: `explain -c FILE EVENT.json`, the answer to "why did (not) this
 * report reach our room?": every route's verdict with the rules that decided it, then
 * what the report would become in each room as the bridge would decide it now, from the
 * room state in state_dir (read, never written: the bridge may be running). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chatops.h"
#include "cmd.h"
#include "config.h"
#include "disposition.h"
#include "incident.h"
#include "log.h"
#include "report_facts.h"
#include "route.h"
#include "store.h"
#include "strbuf.h"
#include "zuul.h"

/* Prints each route's disposition as the bridge would decide it from the state in st. */
static void print_dispositions(const struct config *cfg, struct store *st, const struct zuul_event *ev,
			       const char *key)
{
	struct chatops *view = cfg->chatops.enabled ? chatops_view_new(cfg, st) : NULL;
	struct incident_outcome incidents;
	chatops_triage(view, ev, key, &incidents);
	for (size_t i = 0; i < cfg->n_routes; i++) {
		const struct route *r = &cfg->routes[i];
		struct report_facts rf;
		report_facts_gather(view, st, cfg, r, ev, key, &incidents, &rf);
		struct disposition d;
		disposition_decide(ev, &rf.facts, &d);
		printf("  route %s (%s): %s\n", r->name, r->room, strbuf_str(&d.why));
		disposition_clear(&d);
		report_facts_clear(&rf);
	}
	incident_outcome_free(&incidents);
	chatops_free(view);
}

/* Opens the store of state_dir to read, or, when the bridge never ran there, an empty
 * one in a temporary directory (*tmp, removed by the caller): a first start decides
 * from nothing. */
static struct store *open_state(const char *state_dir, char *tmp, size_t tmplen)
{
	char err[512];
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "%s/state.db", state_dir);
	struct stat sb;
	bool exists = stat(strbuf_str(&path), &sb) == 0;
	strbuf_free(&path);
	tmp[0] = '\0';
	if (exists) {
		struct store *st = store_open_readonly(state_dir, err, sizeof err);
		if (!st)
			fprintf(stderr, "explain: cannot read the state: %s\n", err);
		return st;
	}
	snprintf(tmp, tmplen, "%s/zmb-explain-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmp)) {
		fprintf(stderr, "explain: cannot make a temporary directory %s: %s\n", tmp, strerror(errno));
		tmp[0] = '\0';
		return NULL;
	}
	struct store *st = store_open(tmp, err, sizeof err);
	if (!st)
		fprintf(stderr, "explain: %s\n", err);
	return st;
}

static void remove_tmp_state(const char *tmp)
{
	if (!*tmp)
		return;
	/* Only the store's own files are in it (state.db, its -wal, -shm, reserve). */
	DIR *d = opendir(tmp);
	const struct dirent *e;
	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char p[4400];
		snprintf(p, sizeof p, "%s/%s", tmp, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(tmp);
}

int cmd_explain(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case ':': return cmd_usage_error("explain: option '%s' needs a value", argv[optind - 1]);
		default: return cmd_usage_error("explain: unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!config_path || optind != argc - 1)
		return cmd_usage_error("explain: use -c FILE EVENT.json");

	struct config *cfg = cmd_load_config(config_path, 0);
	if (!cfg)
		return EXIT_FAILURE_;
	char *key = NULL;
	struct zuul_event *ev = cmd_load_event(argv[optind], &key);
	if (!ev) {
		config_free(cfg);
		return EXIT_FAILURE_;
	}
	size_t matched = 0;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		struct strbuf why = STRBUF_INIT;
		int ok = route_matches(&cfg->routes[i], ev, &why);
		matched += ok != 0;
		printf("%s\n", strbuf_str(&why));
		strbuf_free(&why);
	}
	printf("%zu of %zu routes match\n", matched, cfg->n_routes);

	char tmp[4096];
	struct store *st = open_state(cfg->state_dir, tmp, sizeof tmp);
	if (st) {
		if (*tmp)
			printf("what it would become now (no state in %s yet: as on a first start):\n", cfg->state_dir);
		else
			printf("what it would become now, from the state in %s:\n", cfg->state_dir);
		print_dispositions(cfg, st, ev, key);
		store_close(st);
	}
	remove_tmp_state(tmp);
	free(key);
	zuul_event_free(ev);
	config_free(cfg);
	return matched ? EXIT_OK : EXIT_FAILURE_;
}
