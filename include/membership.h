/* membership: the bridge's own membership in its rooms, read from what the homeserver says:
 * a send refused because the bot is not in the room, its own m.room.member events, invites.
 * Pure: no I/O; the bridge decides what to do (pause a room, rejoin on an invite). */
#ifndef ZMB_MEMBERSHIP_H
#define ZMB_MEMBERSHIP_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "matrix.h"

enum membership {
	MEMBERSHIP_UNKNOWN,
	MEMBERSHIP_JOIN,
	MEMBERSHIP_INVITE,
	MEMBERSHIP_KNOCK,
	MEMBERSHIP_LEAVE, /* left, or kicked: sender is not the member */
	MEMBERSHIP_BAN,
};

/* "join", "leave"... as the spec spells them; anything else is MEMBERSHIP_UNKNOWN. */
enum membership membership_parse(const char *s);
const char *membership_name(enum membership m);

/* Whether a refused request says the bot is not in the room (kicked, banned, or never
 * joined): 403 with Synapse's "User @x not in room !y" (event_auth.py, M_FORBIDDEN), or
 * MSC3848's errcode ORG.MATRIX.MSC3848.NOT_JOINED (as errcode or as the unstable one).
 * Such a refusal is about the room, not the report: the room waits for an invite. */
bool membership_not_joined(const struct matrix_response *resp);

/* Whether an invite is to `room`, a configured room (an id "!x:server" or an alias
 * "#x:server"): room_id is the invited room's id, invite_state its stripped state
 * (the "events" of rooms.invite.ID.invite_state). An alias matches the room's
 * m.room.canonical_alias (alias or alt_aliases); known_room_id, when the alias was
 * resolved before, matches by id. A room claims its aliases itself, so the caller joins
 * by the configured name, never by the invite's id. */
bool membership_invite_is_for(const char *room, const char *known_room_id, const char *room_id,
			      const cJSON *invite_state);

#endif
