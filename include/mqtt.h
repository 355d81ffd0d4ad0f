/* mqtt: the MQTT subscriber session (libmosquitto) driven by our loop: connect,
 * subscribe, reconnect with capped backoff, TLS, MQTT 5 shared subscriptions.
 * Knows nothing of Matrix or templates. */
#ifndef ZMB_MQTT_H
#define ZMB_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "loop.h"

struct mqtt_session;

enum mqtt_state {
	MQTT_DISCONNECTED, /* waiting to (re)connect */
	MQTT_CONNECTING,   /* TCP/TLS/CONNECT in progress */
	MQTT_CONNECTED,    /* connected and every topic subscribed */
};

struct mqtt_message {
	const char *topic;
	const void *payload;
	size_t len;
	int qos;
	bool retain;
};

/* A message arrived. Its acknowledgement (QoS 1 PUBACK / QoS 2 PUBCOMP) is not
 * written before the next mqtt_session_flush(): commit what the message produced
 * first, then flush. */
typedef void (*mqtt_message_fn)(const struct mqtt_message *msg, void *data);
/* Connection state changed; reason is a short text ("connection refused: not
 * authorised", "broker closed the connection"...), NULL when there is none. */
typedef void (*mqtt_state_fn)(enum mqtt_state state, const char *reason, void *data);

/* cfg must outlive the session. Nothing happens before mqtt_session_start. */
struct mqtt_session *mqtt_session_new(struct loop *loop, const struct config_mqtt *cfg, mqtt_message_fn on_message,
				      mqtt_state_fn on_state, void *data);
/* Begins connecting (asynchronously); failures are retried with backoff. 0 or -1. */
int mqtt_session_start(struct mqtt_session *s);
/* Writes everything libmosquitto has queued (acknowledgements, pings, subscribes).
 * The bridge calls it at the end of each loop turn, after the store committed. */
void mqtt_session_flush(struct mqtt_session *s);
/* Sends DISCONNECT (best effort, bounded) and frees. */
void mqtt_session_free(struct mqtt_session *s);

enum mqtt_state mqtt_session_state(const struct mqtt_session *s);
/* How many QoS 1/2 messages the broker sends before it waits for our acknowledgements:
 * the MQTT 5 receive maximum we announce, or for 3.1.1 mosquitto's default of 20 (the
 * broker's max_inflight_messages decides; 20 is the common setting). */
unsigned mqtt_session_window(const struct mqtt_session *s);
/* true when that window is the one we announced (MQTT 5), false when it is a guess. */
bool mqtt_session_window_announced(const struct mqtt_session *s);
const char *mqtt_state_name(enum mqtt_state state);

/* Once per process, before any session: mosquitto_lib_init / cleanup. */
void mqtt_library_init(void);
void mqtt_library_cleanup(void);

#endif
