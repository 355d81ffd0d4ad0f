/* command_budget: how many command answers (refusals included) a room member, and a room,
 * get per window; past it the bridge stays silent. Pure: the caller passes `now`. */
#ifndef ZMB_COMMAND_BUDGET_H
#define ZMB_COMMAND_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

/* The bridge's budget. Constants, not config keys: nobody should have to tune them. Five
 * is what a person trying the bot out types in a minute (help, oncall, claims, status,
 * mute: the chatops demo does just that); fifteen a room is three such people at once.
 * Past that it is a flood (a script, a stuck client, a member without power repeating
 * "help"), which would fill the room and use up the homeserver's rate limit, shared with
 * the failure reports (these go first all the same: see deliver.h). */
#define COMMAND_BUDGET_PER_MEMBER 5
#define COMMAND_BUDGET_PER_ROOM 15
#define COMMAND_BUDGET_WINDOW_MS (60 * 1000)

struct command_budget_limits {
	int per_member;    /* answers to one sender (over all rooms) per window */
	int per_room;      /* answers in one room (to anybody) per window */
	int64_t window_ms; /* a window starts at the first answer it counts */
};

enum command_budget_verdict {
	COMMAND_BUDGET_ANSWER = 0,   /* counted: answer it */
	COMMAND_BUDGET_MEMBER_SPENT, /* the sender had their answers this window */
	COMMAND_BUDGET_ROOM_SPENT,   /* the room had its answers this window */
};

struct command_budget;

/* NULL limits: the constants above. Caller frees with command_budget_free. */
struct command_budget *command_budget_new(const struct command_budget_limits *limits);
void command_budget_free(struct command_budget *b);

/* Whether the command of `sender` in `room` at now_ms gets an answer; an answer is counted
 * against both budgets, a silence against neither. *first_silence is set true for the first
 * silence of the sender in their window (log that one, not every message), else false.
 * A window ends window_ms after it started (or when the clock went back before its start). */
enum command_budget_verdict command_budget_take(struct command_budget *b, const char *room, const char *sender,
						int64_t now_ms, bool *first_silence);

/* "member" or "room", for the log. Static. */
const char *command_budget_verdict_name(enum command_budget_verdict v);

#endif
