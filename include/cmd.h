/* cmd: the command-line commands, one file each (src/cmd_*.c), dispatched by main.
 * Each takes the arguments after its own name and returns the process exit status. */
#ifndef ZMB_CMD_H
#define ZMB_CMD_H

#include <stdbool.h>

/* Exit statuses shared by every command. */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_ = 1, /* the command ran and the answer is "no" or it failed */
	EXIT_USAGE = 2,    /* bad command line */
	EXIT_STATE_DAMAGED = 3, /* the state database is damaged: restarting cannot help */
};

int cmd_check_config(const char *config_path);
int cmd_render(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_daemon(const char *config_path, bool verbose);
int cmd_dead_letters(int argc, char **argv);
int cmd_reset_state(int argc, char **argv);

struct config;
struct zuul_event;
/* Loads the configuration (config_load flags); prints every problem to stderr and
 * returns NULL when it is unusable. Caller frees with config_free. */
struct config *cmd_load_config(const char *config_path, unsigned flags);
/* Reads and decodes EVENT.json ("-": stdin); prints why not to stderr. Caller frees,
 * and frees *key, the report's event key (zuul_event_key), when key is not NULL. */
struct zuul_event *cmd_load_event(const char *event_path, char **key);

/* Prints "zuul-matrix-bridge: " + message to stderr; returns EXIT_USAGE. */
int cmd_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
