/* commands: the chatops room commands ("!zuul help", "!zuul mute org/repo 2h") parsed from a
 * message body, their help text, and who may use them (room power levels). Pure: no I/O, no clock. */
#ifndef ZMB_COMMANDS_H
#define ZMB_COMMANDS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <time.h>

/* A command body (after the prefix) longer than this is refused, not parsed. */
#define COMMANDS_BODY_MAX 2000
/* The longest mute; longer silences belong in a route's `exclude`. */
#define COMMANDS_MUTE_MAX_S (30LL * 86400)
/* PROJECT and JOB are at most this many bytes. */
#define COMMANDS_NAME_MAX 200

enum commands_verb {
	COMMANDS_NONE = 0, /* not a command (no prefix): ignore the message, reply nothing */
	COMMANDS_INVALID,  /* meant as a command but wrong: reply with `error` */
	COMMANDS_HELP,
	COMMANDS_ONCALL,
	COMMANDS_CLAIMS,
	COMMANDS_MUTE,
	COMMANDS_UNMUTE,
	COMMANDS_STATUS,
	COMMANDS_OWNERS,
	COMMANDS_WORKFLOW,
	COMMANDS_FLAKY,
	/* Actions on Zuul (issue #17): said in a failure's thread or as a reply to it. */
	COMMANDS_RECHECK,
	COMMANDS_DEQUEUE,
	COMMANDS_AUTOHOLD,
	COMMANDS_AUTOHOLDS,
	COMMANDS_AUTOHOLD_DELETE,
};

/* An autohold holds the nodes of at most this many failed builds (zuul_admin caps it too). */
#define COMMANDS_AUTOHOLD_COUNT_MAX 10
/* An autohold's reason: at most this many bytes (Zuul keeps 1024). */
#define COMMANDS_REASON_MAX 1024
/* A hold id: Zuul's are 10 digits; at most this many characters of [A-Za-z0-9_-]. */
#define COMMANDS_HOLD_ID_MAX 64

/* One parsed command. Strings are owned; clear with commands_parsed_clear(). */
struct commands_parsed {
	enum commands_verb verb;
	char *project;        /* MUTE, UNMUTE, OWNERS: Zuul's project name, e.g. "org/repo";
			       * FLAKY: the project to look at, NULL: every project */
	char *job;            /* MUTE, UNMUTE, OWNERS: one job of the project, NULL: every job
			       * (OWNERS: none named) */
	long long duration_s; /* MUTE: 1 .. COMMANDS_MUTE_MAX_S */
	time_t until;         /* MUTE: now + duration_s, when the mute ends */
	int count;            /* AUTOHOLD: 1 .. COMMANDS_AUTOHOLD_COUNT_MAX, default 1 (job: JOB) */
	char *reason;         /* AUTOHOLD: the rest of the line, trimmed, never empty */
	char *hold_id;        /* AUTOHOLD_DELETE: the id of the hold */
	char *error;          /* INVALID: plain text for the reply (no user input but checked
			       * names, so it cannot mention anyone) */
};

/* Parses the plain-text `body` of an m.room.message (never formatted_body) against the
 * configured prefix. A command is the prefix at the very start of the body (after the
 * quoted "> " lines of a reply fallback and the blank line that ends them), followed by
 * whitespace or the end; the prefix is case-sensitive, the verb is not. Words are split
 * at ASCII whitespace:
 *   PREFIX                                  -> HELP
 *   PREFIX help [anything]                  -> HELP
 *   PREFIX oncall | claims | status         -> those (no arguments)
 *   PREFIX workflow                         -> WORKFLOW (no arguments)
 *   PREFIX mute PROJECT DURATION            -> MUTE of every job of PROJECT
 *   PREFIX mute PROJECT JOB DURATION        -> MUTE of one job
 *   PREFIX unmute PROJECT [JOB]             -> UNMUTE
 *   PREFIX owners PROJECT [JOB]             -> OWNERS: who owns the project (or that job)
 *   PREFIX flaky [PROJECT]                  -> FLAKY: the flakiest jobs (of PROJECT)
 *   PREFIX recheck | dequeue | autoholds    -> those (no arguments)
 *   PREFIX autohold delete ID               -> AUTOHOLD_DELETE of hold ID
 *   PREFIX autohold JOB [COUNT] REASON...   -> AUTOHOLD: REASON is the rest of the text (it
 *                                              may span words and lines), COUNT 1..10
 * PROJECT is taken whole, '/' included ("SovereignCloudStack/standards"): a job is only
 * ever the separate word JOB. DURATION is a duration_parse() string, at most 30d.
 * PROJECT and JOB are ASCII letters, digits and . _ - / + : ~ (Zuul's names), up to
 * COMMANDS_NAME_MAX bytes. Bodies with control characters (other than tab and newline),
 * invalid UTF-8 or over COMMANDS_BODY_MAX bytes after the prefix are INVALID.
 * Fills *out (cleared first; clear it again when done) and returns out->verb. Messages
 * without the prefix cost one comparison. */
enum commands_verb commands_parse(const char *body, const char *prefix, time_t now, struct commands_parsed *out);

/* Frees what *c owns and zeroes it; NULL is a no-op. */
void commands_parsed_clear(struct commands_parsed *c);

/* "help", "oncall", ... ("none", "invalid"), for logs and metrics labels. Static. */
const char *commands_verb_name(enum commands_verb verb);

/* The reply to `PREFIX help`: a heading naming the required power level, then one line
 * per command; the actions on Zuul only when `actions` (the bridge may act). Plain text,
 * caller frees. */
char *commands_help(const char *prefix, long long required_level, bool actions);

/* The sender's power level in a room, from the content of its m.room.power_levels state
 * event: users[user_id], else users_default, else 0 (the spec's default). Values may be
 * numbers or, as old room versions allowed, strings of an integer. Without the event
 * (content NULL or not an object) the spec gives the room's creator 100 and everybody
 * else 0; `creator` may be NULL when unknown. (Room version 12 creators outrank every
 * level; pass such a user as creator with content NULL, or treat them separately.) */
long long commands_user_level(const cJSON *power_levels, const char *user_id, const char *creator);
/* Whether user_id is a creator of a room whose version gives creators a power above every
 * level (room version 12 and later, MSC4289): the create event's sender (`creator`) and
 * the users of its content's additional_creators. Such creators are never listed in
 * m.room.power_levels, so commands_user_level alone would refuse the room's owner. */
bool commands_creator_outranks(const cJSON *create_content, const char *creator, const char *user_id);

/* The level a room's m.room.power_levels content asks for to redact another member's
 * event: its "redact", else the spec's default 50 (also without the event). */
long long commands_redact_level(const cJSON *power_levels);
/* The level a room's m.room.power_levels content asks for to send state of event_type:
 * events[event_type], else "state_default", else 50; 0 without the event (the spec's
 * defaults). */
long long commands_state_level(const cJSON *power_levels, const char *event_type);
/* Whether a redaction by `redactor` (of power `redactor_level`) of a reaction sent by
 * `reaction_sender` takes the reaction away: its own sender always may, anybody else
 * needs redact_level. The rule a homeserver applies a redaction by (room versions 3 and
 * later accept every redaction into the room and check it only then). */
bool commands_redaction_stands(const char *redactor, long long redactor_level, const char *reaction_sender,
			       long long redact_level);

/* Whether a sender of `level` may use commands that need `required`. */
bool commands_allowed(long long level, long long required);

/* The short reply to a sender without the power level. Plain text, caller frees. */
char *commands_refusal(const char *prefix, long long level, long long required);

/* Whether a reaction key is the configured one. The emoji variation selector U+FE0F is
 * ignored on both sides: clients differ in sending U+2705 alone or followed by U+FE0F. */
bool commands_reaction_matches(const char *key, const char *configured);

#endif
