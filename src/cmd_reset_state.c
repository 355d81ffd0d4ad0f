/* cmd_reset_state: `reset-state -c FILE`, the deliberate fresh start after the bridge
 * refused a damaged state database. Nothing is deleted: state.db and its -wal and -shm
 * are renamed aside together, so the old file can still be examined or salvaged. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "strbuf.h"

/* SQLite's unix VFS: every connection to a WAL database holds a shared lock on this byte
 * of the -shm file (UNIX_SHM_DMS) for as long as it is open. */
#define SHM_DMS_OFFSET 128

static const char *const suffixes[] = {"", "-wal", "-shm"};

/* Whether another process has the database open (a running bridge). */
static bool database_in_use(const char *db_path)
{
	struct strbuf shm = STRBUF_INIT;
	strbuf_printf(&shm, "%s-shm", db_path);
	int fd = open(strbuf_str(&shm), O_RDONLY | O_CLOEXEC);
	strbuf_free(&shm);
	if (fd < 0)
		return false;
	struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = SHM_DMS_OFFSET, .l_len = 1};
	bool in_use = fcntl(fd, F_GETLK, &lk) == 0 && lk.l_type != F_UNLCK;
	close(fd);
	return in_use;
}

static int move_aside(const char *state_dir)
{
	struct strbuf db = STRBUF_INIT, aside = STRBUF_INIT, from = STRBUF_INIT, to = STRBUF_INIT;
	strbuf_printf(&db, "%s/state.db", state_dir);
	char stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	/* The suffixes follow the new name, so `sqlite3 state.db.aside-...` reads its WAL too. */
	strbuf_printf(&aside, "%s.aside-%s", strbuf_str(&db), stamp);
	int status = EXIT_OK;
	size_t moved = 0;
	if (database_in_use(strbuf_str(&db))) {
		fprintf(stderr, "%s: a running bridge has it open; stop the bridge first\n", strbuf_str(&db));
		status = EXIT_FAILURE_;
		goto out;
	}
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		strbuf_reset(&from);
		strbuf_reset(&to);
		strbuf_printf(&from, "%s%s", strbuf_str(&db), suffixes[i]);
		strbuf_printf(&to, "%s%s", strbuf_str(&aside), suffixes[i]);
		if (access(strbuf_str(&to), F_OK) == 0) {
			fprintf(stderr, "%s: exists already; try again in a second\n", strbuf_str(&to));
			status = EXIT_FAILURE_;
			goto out;
		}
		if (rename(strbuf_str(&from), strbuf_str(&to)) == 0) {
			printf("moved %s to %s\n", strbuf_str(&from), strbuf_str(&to));
			moved++;
		} else if (errno != ENOENT) {
			fprintf(stderr, "%s: cannot move it to %s: %s\n", strbuf_str(&from), strbuf_str(&to),
				strerror(errno));
			status = EXIT_FAILURE_;
			goto out;
		}
	}
	if (moved)
		printf("the next start begins with an empty state database: reports still queued in the old "
		       "one are not sent, failure threads are read back from the rooms\n");
	else
		printf("%s does not exist: the next start begins fresh anyway\n", strbuf_str(&db));
out:
	strbuf_free(&db);
	strbuf_free(&aside);
	strbuf_free(&from);
	strbuf_free(&to);
	return status;
}

int cmd_reset_state(int argc, char **argv)
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
		case ':': return cmd_usage_error("reset-state: option '%s' needs a value", argv[optind - 1]);
		default: return cmd_usage_error("reset-state: unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!config_path || optind != argc)
		return cmd_usage_error("reset-state: use -c FILE");
	struct config *cfg = cmd_load_config(config_path, 0);
	if (!cfg)
		return EXIT_FAILURE_;
	int status = move_aside(cfg->state_dir);
	config_free(cfg);
	return status;
}
