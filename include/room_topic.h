/* room_topic: the text the bridge keeps in each route room's topic (who is on call, how the
 * room works), how it sits beside a topic people wrote, and whether the bot may set it.
 * Pure: no I/O, `now` is a parameter. chatops_topic.c does the requests. */
#ifndef ZMB_ROOM_TOPIC_H
#define ZMB_ROOM_TOPIC_H

#include <stdbool.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "rotation.h"

/* What the bridge's part of the topic says. NULL members leave their part out. */
struct room_topic_facts {
	const struct rotation_config *rotation; /* the on-call rotation; NULL: none configured */
	const char *claim_reaction;             /* claims on: the two reactions; NULL: claims off */
	const char *resolve_reaction;
	bool recheck;                           /* actions configured: a 🔁 reaction rechecks */
	const char *command_prefix;             /* commands on: "!zuul"; NULL: commands off */
	const char *note;                       /* chatops.topic_note, one line; NULL: none */
};

/* The bridge's block, lines joined by '\n', caller frees; "" when every part is off:
 *   On call: @a:x until Mon 25 Nov 09:00 CET, then @b:x
 *   Workflow: 👀 claim · ✅ resolve · 🔁 recheck · !zuul help
 *   <note> */
char *room_topic_compose(const struct room_topic_facts *f, time_t now);

/* The plain text of an m.room.topic content: m.topic's text/plain representation (spec
 * v1.15, as Synapse reads it), else `topic`; NULL when the content has neither. Points into
 * content. */
const char *room_topic_text_of(const cJSON *content);

/* The topic to set so that it ends with `block`: a topic people wrote stays first, then a
 * blank line, then the block, which replaces the bridge's own earlier block (`ours_last`,
 * the last block it set, may be NULL; without it a block is recognised by its first line).
 * current NULL: the room has no topic. Returns NULL when current is already that topic,
 * else the new topic, caller frees. */
char *room_topic_merge(const char *current, const char *ours_last, const char *block);

/* The m.room.topic content for text: `topic` plus the m.topic block. Caller frees. */
cJSON *room_topic_content(const char *text);

/* The power level m.room.topic needs: events["m.room.topic"], else state_default, else 50;
 * 0 without an m.room.power_levels event at all (the spec's defaults). */
long long room_topic_required_level(const cJSON *power_levels);

/* Whether user may set the topic: a room version 12 creator always may (they outrank every
 * level without being in `users`), anyone else when their level reaches the required one. */
bool room_topic_may_set(const cJSON *power_levels, const cJSON *create_content, const char *creator,
			const char *user);

#endif
