/* metrics: the HTTP listener (libmicrohttpd, driven by our loop through its epoll fd:
 * no extra thread) serving /metrics (Prometheus text) and /healthz (JSON) from the
 * bridge's stats. Off unless configured; binds loopback by default. */
#ifndef ZMB_METRICS_H
#define ZMB_METRICS_H

#include "loop.h"
#include "stats.h"

struct metrics_server;

/* Listens on address:port (address a numeric IPv4/IPv6 literal). stats must outlive the
 * server. NULL with a reason in err when it cannot listen. */
struct metrics_server *metrics_server_new(struct loop *loop, const char *address, int port,
					  const struct stats *stats, char *err, size_t errlen);
void metrics_server_free(struct metrics_server *m);
/* The port actually bound (useful with port 0). */
int metrics_server_port(const struct metrics_server *m);

#endif
