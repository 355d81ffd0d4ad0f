/* rotation: the on-call rotation calculator: who is on call at a given instant, the
 * handovers in an interval, date-bounded overrides, and the escalation schedule. Pure:
 * every function takes `now` as a parameter; the only outside state read is the tz database. */
#ifndef ZMB_ROTATION_H
#define ZMB_ROTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "strbuf.h"

/* A calendar date in the rotation's time zone; year 0 means "not set". */
struct rotation_date {
	int year;  /* e.g. 2026 */
	int month; /* 1..12 */
	int day;   /* 1..31, valid for the month */
};

/* An override: `user` is on call instead of whoever the rotation names, for the on-call
 * days `from`..`until` (both inclusive). An on-call day runs from the handover time of day
 * to the same time the next day, so the override takes over at `from` at the handover time
 * and hands back at `until` + 1 day at the handover time: every handover, including those
 * into and out of an override, happens at the team's usual time, never at midnight.
 * Overlapping overrides: the one listed later wins while it lasts. */
struct rotation_override {
	char *user; /* Matrix user id */
	struct rotation_date from;
	struct rotation_date until;
};

#define ROTATION_ANY_WEEKDAY (-1)

/* What the config loader fills (key names in comments are a suggestion for config.c).
 * All strings and arrays are owned by the struct and freed by rotation_config_free().
 * Validate with rotation_check() before using it with the functions below: they assume a
 * config that passed (and return "nobody" rather than crash on one that did not). */
struct rotation_config {
	char **members;                      /* members: Matrix user ids, in rotation order */
	size_t n_members;
	long long shift_s;                   /* shift = "7d": a positive whole number of days, in seconds */
	int handover_weekday;                /* handover = "Mon 09:00": 0 = Sunday .. 6 = Saturday (like
	                                      * tm_wday), or ROTATION_ANY_WEEKDAY ("09:00") */
	int handover_minute;                 /* minutes after local midnight, 0..1439 */
	char *timezone;                      /* timezone = "Europe/Berlin": a tz database name */
	struct rotation_date start;          /* start = "2026-01-05": member 0's first shift starts at the
	                                      * first handover on or after this date */
	struct rotation_override *overrides; /* overrides = ({ user; from; until; }, ...) */
	size_t n_overrides;
	long long escalate_after_s;          /* escalate_after = "1h": ping the on-call again in the
	                                      * failure's thread; 0: never */
	char **fallback;                     /* fallback = [user ids] pinged after a second interval */
	size_t n_fallback;
	long long fallback_after_s;          /* fallback_after = "1h": measured from the escalation ping
	                                      * (so due at t0 + escalate_after + fallback_after); 0: never */
};

/* Frees everything the struct owns and zeroes it; NULL is a no-op. */
void rotation_config_free(struct rotation_config *rc);

/* Parsers for the config loader. Each returns 0, or -1 and appends one human-readable
 * reason (no trailing newline) to `err` when it is not NULL. */
/* "YYYY-MM-DD", a real calendar date. */
int rotation_parse_date(const char *text, struct rotation_date *out, struct strbuf *err);
/* "Mon 09:00", "monday 9:00" (English day names or 3-letter abbreviations, any case) or
 * just "09:00" (ROTATION_ANY_WEEKDAY: the first shift starts on the start date itself). */
int rotation_parse_handover(const char *text, int *weekday, int *minute, struct strbuf *err);

/* The Matrix user id grammar: "@localpart:server_name", localpart of a-z 0-9 . _ = - / +,
 * server_name a DNS name, IPv4 or [IPv6] with an optional :port, at most 255 bytes in all.
 * Historical ids with other characters are rejected: a config typo is likelier. */
bool rotation_user_id_valid(const char *user_id);

/* True when `name` is a zone in the system tz database: a relative path of safe characters
 * naming a TZif file under $TZDIR (default /usr/share/zoneinfo). glibc silently treats an
 * unknown TZ as UTC, so this is the only way to catch "Europe/Berln". Reads the file. */
bool rotation_zone_exists(const char *name);

/* Validates a filled struct. Appends one line per problem, named after the key suggested
 * above ("members[1]: \"bob\" is not a Matrix user id (@localpart:server)\n"), to
 * `problems` (may be NULL) and returns how many there were: 0 means usable. */
int rotation_check(const struct rotation_config *rc, struct strbuf *problems);

/* Who is on call at an instant. Pointers point into the rotation_config. A "handover" is
 * an instant at which the on-call user changes (a rotation with one member, or an override
 * naming the member the rotation names anyway, has no handover there). */
struct rotation_oncall {
	const char *user;      /* NULL: nobody (before the first shift, no override) */
	int member;            /* index into members, or -1 (override or nobody) */
	int override;          /* index into overrides, or -1 */
	time_t since;          /* when `user` took over; 0 when nobody or never handed over to */
	time_t until;          /* the next handover; 0 when there is none */
	const char *next_user; /* who takes over at `until`; NULL when until is 0 */
	int next_member;       /* as member/override, for next_user */
	int next_override;
};

/* Fills *out for instant `now` (Unix seconds). Returns 0, or -1 when rc has no members
 * or no valid shift (*out then says nobody, with no handover). */
int rotation_oncall(const struct rotation_config *rc, time_t now, struct rotation_oncall *out);

struct rotation_handover {
	time_t at;
	const char *from; /* NULL: nobody was on call */
	const char *to;   /* NULL: nobody is on call now */
};

/* The handovers at instants in [a, b), oldest first. Returns an array (caller frees; NULL
 * when there are none) and sets *n. The bridge calls it with [last run, now + 1) to post
 * the notices it missed (it may choose to post only the last), or with a later b to find
 * the next one to schedule a timer for (or use rotation_oncall().until). */
struct rotation_handover *rotation_handovers(const struct rotation_config *rc, time_t a, time_t b,
                                             size_t *n);

/* Local wall-clock time in a named zone, for the modules that schedule by it (digest.c).
 * glibc converts only through the process-wide TZ, so a caller brackets its conversions with
 * rotation_tz_enter() (sets TZ to the tz database zone `zone`; NULL or "" is UTC; an unknown
 * name behaves like UTC) and rotation_tz_leave() (restores the previous TZ, unset stays unset,
 * and frees what enter saved). Only safe single-threaded; the two functions below assume a
 * scope is open. Every public function of this module opens its own. */
struct rotation_tz_scope {
	char *saved; /* previous TZ, NULL when it was unset */
};
void rotation_tz_enter(struct rotation_tz_scope *s, const char *zone);
void rotation_tz_leave(struct rotation_tz_scope *s);

/* The local calendar day of instant t, as days since 1970-01-01. */
long long rotation_local_days_at(time_t t);

/* What rotation_local_to_utc() answers for a wall time that a spring-forward gap skips
 * (02:30 in Europe/Berlin on the last Sunday of March): */
enum rotation_gap {
	ROTATION_GAP_SHIFT,      /* the time moved on by the gap's length (03:30), as a wall clock
	                          * that was not adjusted would show: the rotation's handovers */
	ROTATION_GAP_TRANSITION, /* the first instant after the gap (03:00), as cron does: a
	                          * digest should not wait */
};

/* The instant at which the wall clock reads `minute` (minutes after midnight) on local day
 * `days` (days since 1970-01-01). When the time occurs twice (fall back), the earlier
 * instant; when it does not occur, as `gap` says. */
time_t rotation_local_to_utc(long long days, int minute, enum rotation_gap gap);

/* Writes an instant in the rotation's zone for humans, "Mon 25 Nov 09:00 CET" (English,
 * whatever the locale). Truncates like snprintf; 32 bytes always suffice. Returns buf. */
char *rotation_format_time(const struct rotation_config *rc, time_t t, char *buf, size_t buflen);

/* The answer to `!zuul oncall`, plain text, caller frees:
 * "now @a:x until Mon 25 Nov 09:00 CET, then @b:x"; "nobody until ..., then @a:x" before
 * the first shift; "now @a:x, no handover scheduled" for a rotation of one. */
char *rotation_describe(const struct rotation_config *rc, time_t now);

/* Escalation of an unclaimed failure first reported at t0. Bits of a step mask: */
enum rotation_step {
	ROTATION_STEP_PING_ONCALL = 1, /* at t0 + escalate_after: ping the on-call in the thread */
	ROTATION_STEP_FALLBACK = 2,    /* at t0 + escalate_after + fallback_after: ping the fallbacks */
};

/* The steps whose time has come at `now` (a mask; a disabled step is never due). The
 * bridge persists what it already did and acts on `due & ~done`. */
unsigned rotation_escalation_due(const struct rotation_config *rc, time_t t0, time_t now);
/* The instant of the earliest enabled step not in `done`, to schedule a timer; 0: none left. */
time_t rotation_escalation_next(const struct rotation_config *rc, time_t t0, unsigned done);

#endif
