/* membership: reads the bridge's own membership from the homeserver's answers: refused
 * sends, m.room.member events and invites. Pure; see include/membership.h. */
#include "membership.h"

#include <string.h>

#define MSC3848_NOT_JOINED "ORG.MATRIX.MSC3848.NOT_JOINED"

static const char *const names[] = {
	[MEMBERSHIP_UNKNOWN] = "unknown", [MEMBERSHIP_JOIN] = "join",	[MEMBERSHIP_INVITE] = "invite",
	[MEMBERSHIP_KNOCK] = "knock",	  [MEMBERSHIP_LEAVE] = "leave", [MEMBERSHIP_BAN] = "ban",
};

enum membership membership_parse(const char *s)
{
	for (size_t i = MEMBERSHIP_JOIN; s && i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i]) == 0)
			return (enum membership)i;
	return MEMBERSHIP_UNKNOWN;
}

const char *membership_name(enum membership m)
{
	return (size_t)m < sizeof names / sizeof names[0] ? names[m] : names[MEMBERSHIP_UNKNOWN];
}

static const char *string_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool membership_not_joined(const struct matrix_response *resp)
{
	if (!resp || resp->status != 403)
		return false;
	if (resp->errcode && strcmp(resp->errcode, MSC3848_NOT_JOINED) == 0)
		return true;
	const char *unstable = string_at(resp->json, "org.matrix.unstable.errcode");
	if (unstable && strcmp(unstable, MSC3848_NOT_JOINED) == 0)
		return true;
	/* Synapse spells it "User @bot:hs not in room !r:hs (<leave event>)" for a send, and
	 * the same without the event elsewhere; other 403s (power levels, server ACLs) do
	 * not say so and stay permanent. */
	return resp->errcode && strcmp(resp->errcode, "M_FORBIDDEN") == 0 && resp->error &&
	       strstr(resp->error, " not in room ");
}

static bool alias_listed(const cJSON *content, const char *alias)
{
	const char *main = string_at(content, "alias");
	if (main && strcmp(main, alias) == 0)
		return true;
	const cJSON *alt;
	cJSON_ArrayForEach(alt, cJSON_GetObjectItemCaseSensitive(content, "alt_aliases"))
	{
		if (cJSON_IsString(alt) && strcmp(alt->valuestring, alias) == 0)
			return true;
	}
	return false;
}

bool membership_invite_is_for(const char *room, const char *known_room_id, const char *room_id,
			      const cJSON *invite_state)
{
	if (!room || !room_id)
		return false;
	if (strcmp(room, room_id) == 0 || (known_room_id && strcmp(known_room_id, room_id) == 0))
		return true;
	if (room[0] != '#')
		return false;
	const cJSON *ev;
	cJSON_ArrayForEach(ev, invite_state)
	{
		const char *type = string_at(ev, "type");
		if (type && strcmp(type, "m.room.canonical_alias") == 0 &&
		    alias_listed(cJSON_GetObjectItemCaseSensitive(ev, "content"), room))
			return true;
	}
	return false;
}
