/* config_internal: what the config_*.c files share while one config_load runs, and nothing
 * outside them includes: the loader's state, its messages, the typed getters, each group's loader. */
#ifndef ZMB_CONFIG_INTERNAL_H
#define ZMB_CONFIG_INTERNAL_H

#include "config.h"
#include "strbuf.h"

#include <libconfig.h>
#include <stdbool.h>
#include <stddef.h>

/* State of one config_load call. */
struct loader {
	const char *path;   /* as the caller gave it, for messages */
	char *dir;          /* absolute directory of the config file; relative paths start here */
	struct msg {
		int line;
		bool included; /* from an @include'd file: listed after the main file's */
		char *text;    /* "FILE:LINE: ...\n" */
	} *msgs;            /* this load's messages, redacted and sorted before they leave */
	size_t n_errors;
	char **redact;      /* secret values that must never appear in a message */
	size_t n_redact;
};

/* Secrets larger than this are not tokens, passwords or keys but a wrong file. */
#define SECRET_MAX 16384

/* ---- config_getters.c: messages, paths, typed getters ---- */

/* Records "FILE:LINE: message\n"; s == NULL or a setting without a line (the root) gives line 1. */
__attribute__((format(printf, 3, 4)))
void report(struct loader *ld, const config_setting_t *s, const char *fmt, ...);
/* "KEY: expected EXPECTED, got TYPE" at s. */
void type_error(struct loader *ld, const config_setting_t *s, const char *key, const char *expected);
/* "prefix.key", or key alone at the top level. */
void key_path(char *buf, size_t n, const char *prefix, const char *key);
/* v quoted for a message in sb (reset first), kept to one line and cut; returns sb's text. */
const char *shown(struct strbuf *sb, const char *v);
/* Keeps value out of every message of this load and out of every log line after it. */
void remember_secret(struct loader *ld, const char *value);
/* Zeroes and frees a secret; NULL is fine. */
void secret_free(char *s);
/* Hands the messages to the caller in file order with every secret redacted, then forgets them. */
void flush_errors(struct loader *ld, struct strbuf *out);

/* Lexically cleans an absolute path: no ".", no "//", ".." drops a component. Caller frees. */
char *path_clean(const char *path);
/* The directory holding the config file, absolute. Caller frees; NULL when the cwd is unknown. */
char *config_dir(const char *path);
/* base/rel, cleaned; rel when it is absolute. Caller frees. */
char *path_resolve(const char *base, const char *rel);
/* 0 when path is a readable regular file, else an errno value. */
int check_readable_file(const char *path);

/* The getters return false after reporting a problem; an absent key is not a problem (the
 * caller's default stays). */
/* An integer setting, 32 or 64 bits. */
bool is_int(const config_setting_t *s);
/* A string. */
bool get_string(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *key,
		const char **out);
/* A string that must not be empty when present. */
bool get_nonempty(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *key,
		  const char *expected, const char **out);
/* A path, resolved against the config file's directory; *out is replaced only when present. */
bool get_path(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *key, char **out);
/* An integer within min..max. */
bool get_int(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *key,
	     long long min, long long max, int *out);
/* true or false. */
bool get_bool(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *key, bool *out);
/* A duration ("90s", "1h30m") or a non-negative integer of seconds, within min..max. */
bool get_duration(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *key,
		  long long min, long long max, long long *out);
/* A size ("1MiB", "512KiB") or an integer of bytes, within min..max. */
bool get_size(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *key,
	      long long min, long long max, int *out);
/* A list of strings, or one string when single_ok; *out holds copies only on success. */
bool get_string_list(struct loader *ld, const config_setting_t *s, const char *path, bool single_ok,
		     char ***out, size_t *n_out);
/* Frees n strings and the array. */
void free_strings(char **v, size_t n);
/* Whether s is well-formed UTF-8. */
bool utf8_valid(const char *s);
/* Reports every member of grp not in known (NULL-terminated), with a guess at the intended key. */
void check_keys(struct loader *ld, const config_setting_t *grp, const char *prefix, const char *const *known);
/* A member that must be a group; NULL when absent or of the wrong type (reported). */
const config_setting_t *get_group(struct loader *ld, const config_setting_t *grp, const char *prefix,
				  const char *key);

/* The group loaders below come in the order load_root calls them. */

/* ---- config_connections.c ---- */
/* The mqtt group (grp NULL: all defaults), without its password. */
void load_mqtt(struct loader *ld, const config_setting_t *grp, struct config_mqtt *m);
/* The matrix group, without its access token or password. */
void load_matrix(struct loader *ld, const config_setting_t *grp, struct config_matrix *mx);
/* The metrics group; its presence turns the listener on. */
void load_metrics(struct loader *ld, const config_setting_t *grp, struct config_metrics *mt);
/* After the routes: each matrix.post_unencrypted room must be some route's room. */
void check_post_unencrypted(struct loader *ld, const config_setting_t *mx, const struct config *cfg);
/* NULL when url is http(s)://host[...] without query or fragment, else why not (actions' api too). */
const char *url_problem(const char *url);
/* Whether an http(s) URL has "user:pw@" in its authority. */
bool url_has_credentials(const char *url);

/* ---- config_routes.c ---- */
/* The routes list; template_dir NULL (itself bad) skips the template check. */
void load_routes(struct loader *ld, const config_setting_t *root, const char *template_dir, struct config *cfg);
/* "!opaque:server" or "#alias:server" (owners' forward_room too). */
bool room_ok(const char *room);
/* The glob patterns at s into *out and *n_out (owners' rules too); false after reporting. */
bool get_globs(struct loader *ld, const config_setting_t *s, const char *path, bool nonempty, char ***out,
	       size_t *n_out);

/* ---- config_room_texts.c ---- */
/* PFX.runbook of a route or owners rule into *out when it is a fit link. */
void get_runbook(struct loader *ld, const config_setting_t *grp, const char *pfx, char **out);
/* PFX.hint of a route or owners rule into *out when it is one short line. */
void get_hint(struct loader *ld, const config_setting_t *grp, const char *pfx, char **out);
/* chatops.workflow, or the text of chatops.workflow_file, into co->workflow. */
void load_workflow(struct loader *ld, const config_setting_t *grp, struct config_chatops *co);

/* ---- config_chatops.c ---- */
/* The chatops group, then each route's chatops keys (after the routes). */
void load_chatops_all(struct loader *ld, const config_setting_t *root, struct config *cfg);

/* ---- config_owners.c ---- */
/* The owners rules (after chatops: owners need the room side). */
void load_owners(struct loader *ld, const config_setting_t *root, struct config *cfg);
/* The triage group, or its defaults. */
void load_triage(struct loader *ld, const config_setting_t *root, struct config_triage *tr);

/* ---- config_details.c ---- */
/* The details group; absent, nothing is fetched. */
void load_details(struct loader *ld, const config_setting_t *root, struct config_details *dt);

/* ---- config_actions.c ---- */
/* The actions group; its key file is read only with CONFIG_NEED_SECRETS. */
void load_actions(struct loader *ld, const config_setting_t *root, unsigned flags, struct config *cfg);
/* Frees what load_actions filled in. */
void actions_clear(struct config_actions *ac);

/* ---- config_secrets.c ---- */
/* The matrix and mqtt secrets from the files named (NULL: none), else the environment or credentials. */
void load_secrets(struct loader *ld, const config_setting_t *root, struct config *cfg, const char *token_file,
		  const char *password_file, const char *matrix_password_file);

#endif
