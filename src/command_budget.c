/* command_budget: fixed windows of command answers per sender and per room, so a flood of
 * commands costs the room a few answers, not its alerts. See include/command_budget.h. */
#include "command_budget.h"

#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

/* One sender's or one room's window. Entries live one window at most, so the table holds
 * only those who commanded within the last minute: a plain array is enough. */
struct window {
	char *name;          /* sender id or configured room name */
	bool room;           /* which of the two it is */
	int64_t start_ms;    /* the first answer (or silence) of this window */
	int used;            /* answers counted */
	bool silence_logged; /* senders: their first silence of the window was reported */
};

struct command_budget {
	struct command_budget_limits limits;
	struct window *w;
	size_t n;
};

struct command_budget *command_budget_new(const struct command_budget_limits *limits)
{
	struct command_budget *b = xcalloc(1, sizeof *b);
	b->limits = limits ? *limits
			   : (struct command_budget_limits){.per_member = COMMAND_BUDGET_PER_MEMBER,
							    .per_room = COMMAND_BUDGET_PER_ROOM,
							    .window_ms = COMMAND_BUDGET_WINDOW_MS};
	return b;
}

void command_budget_free(struct command_budget *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->w[i].name);
	free(b->w);
	free(b);
}

static bool window_over(const struct command_budget *b, const struct window *w, int64_t now_ms)
{
	return now_ms < w->start_ms || now_ms - w->start_ms >= b->limits.window_ms;
}

/* Forgets the windows that ended, so the table stays as small as the last minute's crowd. */
static void forget_ended(struct command_budget *b, int64_t now_ms)
{
	size_t kept = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (window_over(b, &b->w[i], now_ms))
			free(b->w[i].name);
		else
			b->w[kept++] = b->w[i];
	}
	b->n = kept;
}

static struct window *window_of(struct command_budget *b, bool room, const char *name, int64_t now_ms)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->w[i].room == room && strcmp(b->w[i].name, name) == 0)
			return &b->w[i];
	b->w = xrealloc(b->w, (b->n + 1) * sizeof *b->w);
	b->w[b->n] = (struct window){.name = xstrdup(name), .room = room, .start_ms = now_ms};
	return &b->w[b->n++];
}

enum command_budget_verdict command_budget_take(struct command_budget *b, const char *room, const char *sender,
						int64_t now_ms, bool *first_silence)
{
	*first_silence = false;
	forget_ended(b, now_ms);
	struct window *member = window_of(b, false, sender ? sender : "", now_ms);
	/* window_of may move the array: look the room up second, use both before the next. */
	size_t member_at = (size_t)(member - b->w);
	struct window *r = window_of(b, true, room ? room : "", now_ms);
	member = &b->w[member_at];
	enum command_budget_verdict v = member->used >= b->limits.per_member ? COMMAND_BUDGET_MEMBER_SPENT
					: r->used >= b->limits.per_room	   ? COMMAND_BUDGET_ROOM_SPENT
									   : COMMAND_BUDGET_ANSWER;
	if (v == COMMAND_BUDGET_ANSWER) {
		member->used++;
		r->used++;
	} else if (!member->silence_logged) {
		member->silence_logged = true;
		*first_silence = true;
	}
	return v;
}

const char *command_budget_verdict_name(enum command_budget_verdict v)
{
	switch (v) {
	case COMMAND_BUDGET_MEMBER_SPENT:
		return "member";
	case COMMAND_BUDGET_ROOM_SPENT:
		return "room";
	default:
		return "none";
	}
}
