/* notify: the systemd service manager protocol (sd_notify) without libsystemd: one
 * datagram per message to $NOTIFY_SOCKET. Every call is a no-op when not run by systemd. */
#ifndef ZMB_NOTIFY_H
#define ZMB_NOTIFY_H

#include <stdint.h>

/* READY=1: MQTT subscribed and every room joined. */
void notify_ready(void);
/* RELOADING=1 (SIGHUP received) and STOPPING=1 (SIGTERM received). */
void notify_reloading(void);
void notify_stopping(void);
/* STATUS=<text>, shown by `systemctl status`. */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* WATCHDOG=1: the loop is alive. */
void notify_watchdog(void);
/* How often to call notify_watchdog (half of $WATCHDOG_USEC, when $WATCHDOG_PID is
 * ours or unset), in ms; 0 when systemd does not watch us. */
uint64_t notify_watchdog_interval_ms(void);

#endif
