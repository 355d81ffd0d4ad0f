/* relations: Matrix message contents that refer to other events: edits (m.replace),
 * thread replies (m.thread with a reply fallback) and user mentions (pills plus
 * m.mentions). Pure cJSON in, cJSON out; the chatops stage builds on these. */
#ifndef ZMB_RELATIONS_H
#define ZMB_RELATIONS_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The largest content (as compact JSON) of any event the bridge sends. Synapse refuses an
 * event whose whole canonical JSON is over 65536 bytes (event_auth.py, MAX_PDU_SIZE:
 * 413 M_TOO_LARGE), and the fields the server adds around the content (event and room
 * ids, sender, auth and prev events, hashes, signatures) need up to about 2 KB of it. */
#define RELATIONS_MAX_CONTENT_BYTES 63488

/* The size of content as compact JSON (what is sent), or SIZE_MAX when it cannot be
 * printed. */
size_t relations_content_bytes(const cJSON *content);

/* An edit of target_event_id whose new content is new_content (a full message content:
 * msgtype, body, format, formatted_body, optionally m.mentions). The fallback for clients
 * without edits is the new content with "* " in front, as the spec shows. The edit's own
 * m.mentions names only the users in new_content's m.mentions that are not in
 * already_mentioned (NULL-terminated, may be NULL), so an edit does not ping again; it is
 * {} when there are none. The edit's msgtype is m.text when it pings someone, else
 * m.notice; m.new_content keeps its own msgtype and m.mentions (the message's mentions as
 * a whole, {} when it has none).
 * An edit never exceeds RELATIONS_MAX_CONTENT_BYTES: when carrying the content twice would,
 * the fallback is one line ("* edited: " and the first line of the new body, without
 * HTML); when the new content alone is too large, it loses its HTML and its body is cut.
 * target_event_id may be NULL: the deliverer fills it in with relations_set_target().
 * Caller frees with cJSON_Delete. */
cJSON *relations_edit_new(const cJSON *new_content, const char *target_event_id, const char *const *already_mentioned);

/* Makes content a reply in the thread of root_event_id. latest_event_id (the thread's
 * newest event, or the root) is the reply fallback for clients without threads; NULL
 * means the root. root NULL: filled in later with relations_set_target(). */
void relations_make_thread_reply(cJSON *content, const char *root_event_id, const char *latest_event_id);

/* Sets the event a relation points at (edit target or thread root, and the reply
 * fallback when it pointed at the root) once the deliverer knows its id. */
void relations_set_target(cJSON *content, const char *event_id);

/* A relation to a message whose event id is not known yet, only its transaction id (the
 * root of a thread, the message an edit replaces, queued moments before). The content
 * carries the txn under this private key; the deliverer resolves it just before sending,
 * when the target (earlier in the same room's ordered queue) has been delivered. */
#define RELATIONS_TXN_KEY "zmb.relates_txn"

/* Marks content's relation (made by relations_edit_new or relations_make_thread_reply with
 * a NULL target) as pointing at the message sent under txn_id. */
void relations_point_at_txn(cJSON *content, const char *txn_id);
/* The txn the content points at (not owned), or NULL. */
const char *relations_pending_txn(const cJSON *content);
/* Resolves the pending relation with the target's event id and drops the private key.
 * Without an event id (the target was never delivered), a thread reply loses its
 * relation and is posted on its own; an edit cannot be: returns -1. Else 0. */
int relations_resolve(cJSON *content, const char *event_id);

/* Mentions users: a line of pills (<a href="https://matrix.to/#/@u:hs">@u:hs</a>) is put in
 * front of formatted_body and the plain ids in front of body, and the ids are added to
 * m.mentions.user_ids (without duplicates). A plain content (body without formatted_body)
 * first gets its body as HTML, escaped, lines joined by <br>: HTML clients show only
 * formatted_body, so pills alone would hide its words. Ids that are not valid Matrix user
 * ids are skipped. The msgtype is then settled (relations_settle_msgtype): m.text once anyone is
 * mentioned, because a homeserver's default push rules silence every m.notice. */
void relations_add_mentions(cJSON *content, const char *const *user_ids, size_t n);

/* Sets content's msgtype from its m.mentions: m.text when it names a user or the room
 * (it is meant to ping), else m.notice (it informs). The default push rule
 * .m.rule.suppress_notices is evaluated before .m.rule.is_user_mention, so a mention in
 * a notice notifies nobody. */
void relations_settle_msgtype(cJSON *content);

/* The user ids in content's m.mentions, as a NULL-terminated array of pointers into
 * content (valid while content is). Caller frees the array, not the strings. */
const char **relations_mentioned_new(const cJSON *content);

#endif
