/* supersede: an edit still waiting in a room's queue is not worth sending when a newer
 * edit of the same message waits behind it (an edit carries the whole new content). */
#ifndef ZMB_SUPERSEDE_H
#define ZMB_SUPERSEDE_H

#include <stdbool.h>
#include <stddef.h>

/* The event id a pending transaction was delivered as, or NULL (caller frees). */
typedef char *(*supersede_lookup_fn)(const char *txn_id, void *data);

/* The content JSON of the i-th item queued after the head (i < n). */
typedef const char *(*supersede_later_fn)(size_t i, void *data);

/* Whether the message content head_json is an edit (m.replace) that pings nobody and one
 * of later(0..n-1, data) (content JSON queued after it, in the same room) is an edit of the same
 * message that pings nobody either. An edit's target is an event id, or the transaction
 * of a message not delivered when the edit was queued; lookup maps the latter to its
 * event id when it has one, so both ways of naming a message compare equal. An edit
 * that pings someone is never dropped, nor made to drop another: a ping must arrive. */
bool supersede_is_stale(const char *head_json, supersede_later_fn later, size_t n, supersede_lookup_fn lookup,
			void *data);

#endif
