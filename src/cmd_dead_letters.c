/* cmd_dead_letters: `dead-letters -c FILE [--retry ID|all]`, the operator's view of
 * reports the homeserver refused for good, and the way to send them again. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"
#include "config.h"
#include "store.h"
#include "strbuf.h"

static void format_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int list_dead(struct store *st)
{
	struct dead_letter *items;
	size_t n;
	if (store_dead_list(st, &items, &n) != 0)
		return EXIT_FAILURE_;
	for (size_t i = 0; i < n; i++) {
		char failed[32];
		format_time(items[i].failed_ms, failed, sizeof failed);
		printf("%lld\t%s\troute=%s\troom=%s\taction=%s\tkey=%s\tattempts=%d\treason=%s\n",
		       (long long)items[i].id, failed, items[i].route, items[i].room, items[i].action,
		       items[i].event_key, items[i].attempts, items[i].reason);
	}
	printf("%zu dead letter%s\n", n, n == 1 ? "" : "s");
	store_dead_free(items, n);
	return EXIT_OK;
}

int cmd_dead_letters(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"retry", required_argument, NULL, 'r'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *retry = NULL;
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'r': retry = optarg; break;
		case ':': return cmd_usage_error("dead-letters: option '%s' needs a value", argv[optind - 1]);
		default: return cmd_usage_error("dead-letters: unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!config_path || optind != argc)
		return cmd_usage_error("dead-letters: use -c FILE [--retry ID|all]");
	long long id = 0;
	if (retry && strcmp(retry, "all") != 0) {
		char *end;
		errno = 0;
		id = strtoll(retry, &end, 10);
		if (errno || *end || id <= 0)
			return cmd_usage_error("dead-letters: --retry takes a dead letter id or 'all', not '%s'", retry);
	}

	struct config *cfg = cmd_load_config(config_path, 0);
	if (!cfg)
		return EXIT_FAILURE_;
	char err[512];
	struct store *st = store_open(cfg->state_dir, err, sizeof err);
	if (!st) {
		fprintf(stderr, "%s\n", err);
		config_free(cfg);
		return EXIT_FAILURE_;
	}
	int status;
	if (!retry) {
		status = list_dead(st);
	} else {
		int moved = store_dead_retry(st, id);
		if (moved >= 0 && store_commit(st) == 0) {
			printf("%d dead letter%s queued again; a running bridge sends %s after a reload "
			       "(SIGHUP), otherwise at its next start\n",
			       moved, moved == 1 ? "" : "s", moved == 1 ? "it" : "them");
			status = moved > 0 || id == 0 ? EXIT_OK : EXIT_FAILURE_;
			if (moved == 0 && id != 0)
				fprintf(stderr, "no dead letter with id %lld\n", id);
		} else {
			status = EXIT_FAILURE_;
		}
	}
	store_close(st);
	config_free(cfg);
	return status;
}
