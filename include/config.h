/* config: the libconfig file turned into plain structs, validated with file:line messages.
 * Knows nothing of sockets or SQLite; reads only the config file, secret files and
 * checks that template files exist. */
#ifndef ZMB_CONFIG_H
#define ZMB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "owners.h"
#include "rotation.h"
#include "route.h"
#include "strbuf.h"

/* MQTT 5 Receive Maximum when the configuration names none. */
#define MQTT_DEFAULT_RECEIVE_MAXIMUM 100
/* MQTT 5 Maximum Packet Size when the configuration names none: a Zuul report with
 * hundreds of builds is well under it. */
#define MQTT_DEFAULT_MAXIMUM_PACKET_SIZE (1024 * 1024)
/* Its bounds: below 64 KiB a large buildset could be refused; above 256 MiB it protects little. */
#define MQTT_MIN_PACKET_SIZE (64 * 1024)
#define MQTT_MAX_PACKET_SIZE (256 * 1024 * 1024)

struct config_mqtt {
	char *host;            /* default "localhost" */
	int port;              /* default 1883 (8883 when tls is set) */
	char *client_id;       /* default "zuul-matrix-bridge" */
	char *username;        /* NULL: anonymous */
	char *password;        /* password_file, ZMB_MQTT_PASSWORD or credential mqtt-password; never logged */
	int qos;               /* 0, 1 or 2; default 1 */
	bool clean_session;    /* default false: the broker keeps reports while we are away */
	int keepalive;         /* seconds, default 60 */
	int protocol;          /* 4 (MQTT 3.1.1, default) or 5 */
	int receive_maximum;   /* MQTT 5: QoS 1/2 reports the broker may send before our
	                        * acknowledgements, default 100; 0 with 3.1.1 (the broker decides) */
	int maximum_packet_size; /* MQTT 5: bytes; the broker sends no larger packet, default
	                          * 1 MiB; 0 with 3.1.1 (only the broker's message_size_limit) */
	char *share_group;     /* MQTT 5 shared subscription group, NULL: none */
	char **topics;         /* default ["zuul/#"] */
	size_t n_topics;
	int reconnect_min_s;   /* reconnect backoff, default 1 */
	int reconnect_max_s;   /* default 60 */
	struct {
		bool enabled;      /* true when the tls group is present */
		char *ca_file;
		char *ca_dir;
		char *cert_file;
		char *key_file;
		bool verify;       /* default true; false only for tests */
	} tls;
};

struct matrix_auth;

struct config_matrix {
	char *homeserver;      /* required, http(s) URL without trailing slash */
	char *access_token;    /* access_token_file, ZMB_MATRIX_ACCESS_TOKEN or credential
	                        * matrix-access-token ($CREDENTIALS_DIRECTORY); never logged.
	                        * NULL when the bridge logs in with user and password */
	char *user;            /* full user id or localpart to log in as; NULL: access token */
	char *password;        /* with user: password_file, ZMB_MATRIX_PASSWORD or credential
	                        * matrix-password; never logged */
	/* Not from the file: set by the daemon before it creates any client, so that every
	 * client made from these settings reads the token in force from one session
	 * (session.h). NULL: clients use access_token as it is. */
	const struct matrix_auth *auth;
	bool tls_verify;       /* default true; `insecure_skip_tls_verify = true` turns it off, for tests */
	int request_timeout_s; /* default 30 */
	int retry_min_ms;      /* first retry delay, default 1000 */
	int retry_max_ms;      /* cap, default 300000 */
	/* Rooms (as routes name them) where the bridge may post although the room is
	 * encrypted: it cannot encrypt, so elsewhere an encrypted room's reports are dead
	 * letters. post_unencrypted in the file; default none. */
	char **post_unencrypted;
	size_t n_post_unencrypted;
};

/* Whether the operator allowed unencrypted posts into room, an encrypted room. */
bool config_may_post_unencrypted(const struct config_matrix *mx, const char *room);

/* The /metrics and /healthz listener; off unless the `metrics` group is present. */
struct config_metrics {
	bool enabled;          /* the group is present */
	char *listen;          /* numeric IPv4/IPv6 address, default "127.0.0.1" */
	int port;              /* required when enabled, 1..65535 */
};

/* Chatops: claims by reaction, failure threads, room commands, the on-call rotation and
 * escalation. Off unless the `chatops` group is present; the defaults are filled either way. */
struct config_chatops {
	bool enabled;             /* default true; false: plain posting (no /sync, threads, claims,
	                           * commands, incidents, escalation or catch-up) */
	bool configured;          /* the chatops group is present */
	bool claims;              /* default true: claim_reaction and resolve_reaction count */
	bool commands;            /* default true: command_prefix commands are answered */
	char *claim_reaction;     /* reaction key that claims a failure, default "👀" (U+1F440) */
	char *resolve_reaction;   /* reaction key that resolves it, default "✅" (U+2705) */
	char *command_prefix;     /* default "!zuul"; never empty, no whitespace */
	int command_power_level;  /* room power level needed for commands, default 50 */
	bool threads;             /* default true: a repeated failure goes into the first one's thread */
	bool oncall;              /* the oncall group is present (and valid): rotation is usable */
	char *workflow;           /* the room's way of working for `!zuul workflow`, from workflow or
	                           * workflow_file (read at load); may span lines, at most 4000 bytes,
	                           * valid UTF-8 without control characters but newline and tab; NULL: none */
	long long catch_up_after_s; /* away longer than this -> summarise what was resolved meanwhile;
	                           * default 600 (10m), 0: never */
	bool topic;               /* default true: keep each route room's topic current (on call,
	                           * workflow); false: the bridge never sets a topic */
	char *topic_note;         /* one line added last to that topic; NULL: none */
	/* members .. overrides are filled from chatops.oncall (only when oncall is true);
	 * escalate_after_s (default 1h, 0: off), fallback and fallback_after_s (default 1h
	 * when fallback is set, else 0) from chatops itself. Passed rotation_check(). */
	struct rotation_config rotation;
};

/* Per-route chatops settings, kept beside struct route (config.routes[i] <-> route_chatops[i]). */
struct config_route_chatops {
	bool edit_start;          /* default false: edit the start report into the final result */
	bool mention_oncall;      /* default true when chatops.oncall is configured, else false */
	char *runbook;            /* http(s) URL shown under this route's failures; NULL: none */
	char *hint;               /* one line (at most 200 bytes) shown under them; NULL: none */
	int digest_minute;        /* daily digest at this local time, minutes after midnight; -1: none */
	char *digest_timezone;    /* the digest's tz database zone; never NULL: default
	                           * chatops.oncall.timezone with a rotation, else "UTC" */
};

/* Infrastructure triage: failures whose build results name the infrastructure rather than
 * the change are grouped into one incident per (tenant, cause). On by default: the
 * defaults are filled even when the group is absent. */
struct config_triage {
	bool enabled;             /* default true; false with triage.enabled = false, or without the
	                           * room side (chatops.enabled = false) */
	bool configured;          /* the triage group is present */
	char **infra_results;     /* build results meaning "infrastructure", [A-Z_]+; default NODE_FAILURE,
	                           * RETRY_LIMIT, POST_FAILURE, DISK_FULL, LOST, EXCEPTION, ERROR */
	size_t n_infra_results;
	long long job_window_s;   /* a job failing in job_min_projects projects within this window is
	                           * one incident; default 1800 (30m), 60..86400 */
	int job_min_projects;     /* default 3, 2..1000 */
};

/* Build details (issue #16): the hosts whose Zuul API and job output the bridge may fetch
 * to say why a build failed. Off unless the `details` group is present. */
struct config_details {
	bool enabled;          /* the group is present (and so are hosts) */
	char **hosts;          /* "host" or "host:port" entries, globs in the host; never empty when enabled */
	size_t n_hosts;
	int timeout_s;         /* whole fetch of one file, default 20, 1..300 */
	int max_download;      /* bytes on the wire per file, default 8 MiB */
	int max_output;        /* bytes after gunzip per file, default 32 MiB */
};

/* ---- actions (issue #17) ----
 * Acting on Zuul from the room (recheck, dequeue, autohold): each call carries a token the
 * bridge signs (zuul_token.h) for the asking user. Off unless the `actions` group is present. */
struct config_actions_tenant {
	char *name;            /* the Zuul tenant, as reports name it */
	char *api;             /* Zuul's web root (http(s), no trailing '/'): /api/tenant/{name}/... */
	char **users;          /* the Matrix ids allowed to act on it; never empty */
	size_t n_users;
};

struct config_actions {
	bool enabled;          /* the group is present */
	char *issuer;          /* the tokens' iss: Zuul's [auth] issuer_id */
	char *audience;        /* the tokens' aud: Zuul's [auth] client_id */
	char *private_key_file; /* absolute; an RSA key of at least 2048 bits, owner-only */
	char *private_key_pem; /* its contents, read with CONFIG_NEED_SECRETS (else NULL); never logged */
	struct config_actions_tenant *tenants;
	size_t n_tenants;
};

/* The actions settings of tenant, or NULL: nothing is ever sent for a tenant not listed. */
const struct config_actions_tenant *config_actions_tenant(const struct config_actions *ac, const char *tenant);
/* Whether user_id is in the tenant's users (exact comparison, as Matrix ids are). */
bool config_actions_user_listed(const struct config_actions_tenant *t, const char *user_id);

struct config {
	char *path;            /* the file this was loaded from */
	struct config_mqtt mqtt;
	struct config_matrix matrix;
	char *state_dir;       /* default ZMB_STATE_DIR ("/var/lib/zuul-matrix-bridge") */
	char *template_dir;    /* default ZMB_TEMPLATE_DIR (the installed templates) */
	int log_level;         /* enum log_level; default info */
	int dedup_retention_s; /* how long dedup keys are kept, default 7 days */
	struct config_metrics metrics;
	struct route *routes;
	size_t n_routes;
	struct config_chatops chatops;
	struct config_route_chatops *route_chatops; /* n_routes entries, parallel to routes */
	struct owners_config owners; /* `owners` rules in file order; none: no owners */
	struct config_triage triage;
	struct config_details details;
	struct config_actions actions;
};

enum config_flags {
	/* Also require and read the secrets (the daemon needs them; `render` does not). */
	CONFIG_NEED_SECRETS = 1 << 0,
};

/* Loads and validates path. On success returns the config (free with config_free).
 * On failure returns NULL and appends one line per problem to errors, each
 * "FILE:LINE: what is wrong (what was expected)"; every problem found is reported,
 * not only the first. Secret values never appear in errors. */
struct config *config_load(const char *path, unsigned flags, struct strbuf *errors);
void config_free(struct config *cfg);

/* Every dotted key the loader accepts ("mqtt.host", "mqtt.tls.ca_file",
 * "routes.match.tenants", groups included), NULL-terminated; static, not freed.
 * The docs test checks each one is documented. */
const char *const *config_all_keys(void);

/* The route called name, or NULL. */
const struct route *config_find_route(const struct config *cfg, const char *name);

/* The chatops settings of route r (which must be one of cfg->routes); never NULL. */
const struct config_route_chatops *config_route_chatops(const struct config *cfg, const struct route *r);

#endif
