/* bridge: the daemon. Wires MQTT -> decode -> route -> compose -> outbox -> deliver,
 * owns the loop, the signals and configuration reloads. */
#ifndef ZMB_BRIDGE_H
#define ZMB_BRIDGE_H

#include <stdbool.h>

#include "config.h"

struct bridge;

/* Takes ownership of cfg. Opens the store and loads the templates; NULL (after
 * logging why) when the bridge cannot start, and then *state_damaged (if not NULL) says
 * whether it was because the state database is damaged (STORE_OPEN_DAMAGED). `verbose`
 * keeps debug logging across reloads whatever log_level says. */
struct bridge *bridge_new(struct config *cfg, bool verbose, bool *state_damaged);
/* Runs until SIGTERM/SIGINT (returns 0) or a fatal store error (returns 1). */
int bridge_run(struct bridge *b);
void bridge_free(struct bridge *b);

/* The Matrix transaction id of a report for a route: deterministic, so a resend after a
 * crash, or by a second instance, is the same transaction for the homeserver.
 * Only [A-Za-z0-9._-]; caller frees. */
char *bridge_txn_id(const char *event_key, const char *action, const char *route);

#endif
