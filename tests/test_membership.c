/* Tests of membership: which refusals mean "the bot is not in the room" (Synapse's wording
 * and MSC3848's code), and which invites are for a configured room. Pure: no homeserver. */
#include "membership.h"

#include "test.h"

static struct matrix_response refused(long status, const char *errcode, const char *error, cJSON *json)
{
	return (struct matrix_response){
		.status = status, .errcode = errcode, .error = error, .json = json, .retry_after_ms = -1};
}

static void test_names_round_trip_and_unknown_stays_unknown(void)
{
	static const char *const names[] = {"join", "invite", "knock", "leave", "ban"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		CHECK_STR(membership_name(membership_parse(names[i])), names[i]);
	CHECK_INT(membership_parse("Leave"), MEMBERSHIP_UNKNOWN);
	CHECK_INT(membership_parse(""), MEMBERSHIP_UNKNOWN);
	CHECK_INT(membership_parse(NULL), MEMBERSHIP_UNKNOWN);
	CHECK_STR(membership_name((enum membership)99), "unknown");
}

static void test_not_joined_is_synapses_not_in_room_or_msc3848(void)
{
	/* event_auth.py's _check_joined_room, for a send after a kick or a ban */
	struct matrix_response r = refused(403, "M_FORBIDDEN",
					   "User @zuul-bot:localhost not in room !a:localhost "
					   "(<FrozenEventV3 event_id=$x, type=m.room.member, state_key=@zuul-bot:localhost, "
					   "membership=leave>)",
					   NULL);
	CHECK(membership_not_joined(&r));
	/* api/auth/base.py's check_user_in_room */
	r = refused(403, "M_FORBIDDEN", "User @zuul-bot:localhost not in room !a:localhost", NULL);
	CHECK(membership_not_joined(&r));
	r = refused(403, "ORG.MATRIX.MSC3848.NOT_JOINED", "x", NULL);
	CHECK(membership_not_joined(&r));
	cJSON *body = cJSON_Parse("{\"errcode\":\"M_FORBIDDEN\",\"org.matrix.unstable.errcode\":"
				  "\"ORG.MATRIX.MSC3848.NOT_JOINED\"}");
	r = refused(403, "M_FORBIDDEN", "You are not allowed", body);
	CHECK(membership_not_joined(&r));
	cJSON_Delete(body);

	/* Refusals about the report or the bot's rights stay what they were. */
	r = refused(403, "M_FORBIDDEN",
		    "You don't have permission to post that to the room. user_level (0) < send_level (50)", NULL);
	CHECK(!membership_not_joined(&r));
	r = refused(403, "M_FORBIDDEN", NULL, NULL);
	CHECK(!membership_not_joined(&r));
	r = refused(403, "M_RESOURCE_LIMIT_EXCEEDED", "User not in room", NULL);
	CHECK(!membership_not_joined(&r));
	r = refused(404, "M_FORBIDDEN", "User @x not in room !y", NULL);
	CHECK(!membership_not_joined(&r));
	CHECK(!membership_not_joined(NULL));
}

static void test_invites_match_by_id_or_by_the_rooms_own_alias(void)
{
	cJSON *state = cJSON_Parse("[{\"type\":\"m.room.name\",\"state_key\":\"\",\"content\":{\"name\":\"#alerts\"}},"
				   "{\"type\":\"m.room.canonical_alias\",\"state_key\":\"\",\"content\":"
				   "{\"alias\":\"#alerts:localhost\",\"alt_aliases\":[\"#zuul:localhost\"]}}]");
	CHECK(membership_invite_is_for("!a:localhost", NULL, "!a:localhost", NULL));
	CHECK(membership_invite_is_for("#ops:localhost", "!a:localhost", "!a:localhost", NULL));
	CHECK(membership_invite_is_for("#alerts:localhost", NULL, "!a:localhost", state));
	CHECK(membership_invite_is_for("#zuul:localhost", NULL, "!a:localhost", state));
	CHECK(!membership_invite_is_for("#other:localhost", NULL, "!a:localhost", state));
	CHECK(!membership_invite_is_for("#alerts:localhost", "!b:localhost", "!a:localhost", NULL));
	CHECK(!membership_invite_is_for("!b:localhost", NULL, "!a:localhost", state));
	CHECK(!membership_invite_is_for(NULL, NULL, "!a:localhost", state));
	cJSON_Delete(state);
}

int main(void)
{
	RUN(test_names_round_trip_and_unknown_stays_unknown);
	RUN(test_not_joined_is_synapses_not_in_room_or_msc3848);
	RUN(test_invites_match_by_id_or_by_the_rooms_own_alias);
	return test_done();
}
