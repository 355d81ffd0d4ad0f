/* rotation: on-call shifts, overrides and handovers computed from the config and an instant
 * passed in; local times go through the system tz database. No clock, no globals of our own. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* tm_gmtoff, tm_zone */
#endif
#include "rotation.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "duration.h"

#define DAY_S 86400LL

/* How far rotation_oncall() walks back over boundaries at which the user does not change
 * (a rotation of one, adjacent duplicates) to find when the current person took over. */
#define SINCE_WALK_LIMIT 4096

static const char *const weekday_names[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                             "Thursday", "Friday", "Saturday"};
static const char *const month_abbr[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void rotation_config_free(struct rotation_config *rc)
{
	if (!rc)
		return;
	for (size_t i = 0; i < rc->n_members; i++)
		free(rc->members[i]);
	free(rc->members);
	for (size_t i = 0; i < rc->n_overrides; i++)
		free(rc->overrides[i].user);
	free(rc->overrides);
	for (size_t i = 0; i < rc->n_fallback; i++)
		free(rc->fallback[i]);
	free(rc->fallback);
	free(rc->timezone);
	memset(rc, 0, sizeof(*rc));
}

/* ---- calendar arithmetic (proleptic Gregorian, days since 1970-01-01) ---- */

static long long days_from_civil(int y, int m, int d)
{
	long long yy = (long long)y - (m <= 2);
	long long era = (yy >= 0 ? yy : yy - 399) / 400;
	long long yoe = yy - era * 400;
	long long doy = (153LL * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* 1970-01-01 was a Thursday. */
static int weekday_of_days(long long days)
{
	long long w = (days + 4) % 7;
	return (int)(w < 0 ? w + 7 : w);
}

static long long floor_div(long long a, long long b)
{
	long long q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static bool leap_year(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool date_valid(const struct rotation_date *d)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (d->year < 1 || d->year > 9999 || d->month < 1 || d->month > 12 || d->day < 1)
		return false;
	int max = mdays[d->month - 1] + (d->month == 2 && leap_year(d->year));
	return d->day <= max;
}

static long long date_days(const struct rotation_date *d)
{
	return days_from_civil(d->year, d->month, d->day);
}

/* ---- time zone scope ----
 * glibc converts between UTC and a named zone only through the process-wide TZ, so each
 * public function that needs local time sets TZ for its duration and restores the
 * previous value (unset stays unset) before it returns. That is safe only because the
 * daemon is single-threaded (setenv/tzset are not thread-safe); the alternative, a TZif
 * and POSIX-TZ-rule parser of our own, is far more code for the same answers. */

void rotation_tz_enter(struct rotation_tz_scope *s, const char *zone)
{
	const char *old = getenv("TZ");
	s->saved = old ? xstrdup(old) : NULL;
	/* The leading ':' makes glibc read the zone file and never parse the name as a POSIX
	 * rule string. */
	struct strbuf tz = STRBUF_INIT;
	strbuf_printf(&tz, ":%s", zone && *zone ? zone : "UTC");
	setenv("TZ", strbuf_str(&tz), 1);
	strbuf_free(&tz);
	tzset();
}

void rotation_tz_leave(struct rotation_tz_scope *s)
{
	if (s->saved)
		setenv("TZ", s->saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(s->saved);
	s->saved = NULL;
}

static long utc_offset_at(time_t t)
{
	struct tm tm;
	if (!localtime_r(&t, &tm))
		return 0;
	return tm.tm_gmtoff;
}

long long rotation_local_days_at(time_t t)
{
	struct tm tm;
	if (!localtime_r(&t, &tm))
		return floor_div((long long)t, DAY_S);
	return days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* mktime() leaves gaps and folds to chance, so decide explicitly: of the offsets in force a
 * day before and a day after (real zones change at most once in two days), keep those
 * consistent with the result. In a fold (the time occurs twice) the earlier instant wins. */
time_t rotation_local_to_utc(long long days, int minute, enum rotation_gap gap)
{
	long long wall = days * DAY_S + (long long)minute * 60;
	long before = utc_offset_at((time_t)(wall - DAY_S));
	long after = utc_offset_at((time_t)(wall + DAY_S));
	time_t t1 = (time_t)(wall - before), t2 = (time_t)(wall - after);
	bool ok1 = utc_offset_at(t1) == before, ok2 = utc_offset_at(t2) == after;
	if (ok1 && ok2)
		return t1 < t2 ? t1 : t2;
	if (ok2)
		return t2;
	if (ok1 || gap == ROTATION_GAP_SHIFT)
		return t1; /* valid, or the gap read on the old offset: moved on by its length */
	/* The clock jumped forward over the wall time (after > before, so t2 < t1): t2 is
	 * still on the old offset, t1 on the new one, and the transition lies between. */
	time_t lo = t2 < t1 ? t2 : t1, hi = t2 < t1 ? t1 : t2;
	long lo_off = utc_offset_at(lo);
	if (utc_offset_at(hi) == lo_off)
		return t1;
	while (hi - lo > 1) {
		time_t mid = lo + (hi - lo) / 2;
		if (utc_offset_at(mid) == lo_off)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

/* ---- the schedule ---- */

/* Everything one public call needs, computed once inside the zone's scope. */
struct sched {
	const struct rotation_config *rc;
	long long anchor_days; /* local day of member 0's first handover */
	long long shift_days;
	time_t *ov_start;      /* per override: takes over at (inclusive) */
	time_t *ov_end;        /* hands back at (exclusive) */
	time_t ov_last_end;    /* latest ov_end, or 0 */
	struct rotation_tz_scope tz;
};

/* Refuses configs the arithmetic cannot handle; rotation_check() reports them properly. */
static bool sched_usable(const struct rotation_config *rc)
{
	return rc && rc->n_members > 0 && rc->members && rc->shift_s >= DAY_S && rc->shift_s % DAY_S == 0 &&
	       rc->handover_minute >= 0 && rc->handover_minute < 24 * 60 &&
	       rc->handover_weekday >= ROTATION_ANY_WEEKDAY && rc->handover_weekday <= 6 &&
	       date_valid(&rc->start);
}

static int sched_open(struct sched *s, const struct rotation_config *rc)
{
	memset(s, 0, sizeof(*s));
	if (!sched_usable(rc))
		return -1;
	s->rc = rc;
	s->shift_days = rc->shift_s / DAY_S;
	long long start = date_days(&rc->start);
	if (rc->handover_weekday != ROTATION_ANY_WEEKDAY)
		start += (rc->handover_weekday - weekday_of_days(start) + 7) % 7;
	s->anchor_days = start;
	rotation_tz_enter(&s->tz, rc->timezone);
	if (rc->n_overrides) {
		s->ov_start = xcalloc(rc->n_overrides, sizeof(time_t));
		s->ov_end = xcalloc(rc->n_overrides, sizeof(time_t));
	}
	for (size_t i = 0; i < rc->n_overrides; i++) {
		const struct rotation_override *o = &rc->overrides[i];
		if (!date_valid(&o->from) || !date_valid(&o->until)) {
			s->ov_start[i] = s->ov_end[i] = 0; /* empty: never in force */
			continue;
		}
		s->ov_start[i] = rotation_local_to_utc(date_days(&o->from), rc->handover_minute, ROTATION_GAP_SHIFT);
		s->ov_end[i] = rotation_local_to_utc(date_days(&o->until) + 1, rc->handover_minute, ROTATION_GAP_SHIFT);
		if (s->ov_end[i] > s->ov_last_end)
			s->ov_last_end = s->ov_end[i];
	}
	return 0;
}

static void sched_close(struct sched *s)
{
	if (!s->rc)
		return;
	rotation_tz_leave(&s->tz);
	free(s->ov_start);
	free(s->ov_end);
	s->rc = NULL;
}

/* Base handover k (k >= 0): member k % n takes over. */
static time_t base_handover(const struct sched *s, long long k)
{
	return rotation_local_to_utc(s->anchor_days + k * s->shift_days, s->rc->handover_minute, ROTATION_GAP_SHIFT);
}

/* The base shift in force at t, or -1 before the first handover. */
static long long base_index(const struct sched *s, time_t t)
{
	long long k = floor_div(rotation_local_days_at(t) - s->anchor_days, s->shift_days);
	if (k < -1)
		k = -1;
	/* The day arithmetic lands on the right shift or the one after it (before the handover
	 * time on a handover day); these settle it either way. */
	while (base_handover(s, k + 1) <= t)
		k++;
	while (k >= 0 && base_handover(s, k) > t)
		k--;
	return k;
}

static const char *who_at(const struct sched *s, time_t t, int *member, int *override)
{
	const struct rotation_config *rc = s->rc;
	for (size_t i = rc->n_overrides; i-- > 0;) {
		if (s->ov_start[i] <= t && t < s->ov_end[i]) {
			*member = -1;
			*override = (int)i;
			return rc->overrides[i].user;
		}
	}
	*override = -1;
	long long k = base_index(s, t);
	if (k < 0) {
		*member = -1;
		return NULL;
	}
	*member = (int)(k % (long long)rc->n_members);
	return rc->members[*member];
}

static const char *who(const struct sched *s, time_t t)
{
	int m, o;
	return who_at(s, t, &m, &o);
}

static bool same_user(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The earliest instant > t at which the on-call user may change. */
static time_t next_boundary(const struct sched *s, time_t t)
{
	time_t best = base_handover(s, base_index(s, t) + 1);
	for (size_t i = 0; i < s->rc->n_overrides; i++) {
		if (s->ov_start[i] == s->ov_end[i])
			continue;
		if (s->ov_start[i] > t && s->ov_start[i] < best)
			best = s->ov_start[i];
		if (s->ov_end[i] > t && s->ov_end[i] < best)
			best = s->ov_end[i];
	}
	return best;
}

/* The latest instant <= t at which the on-call user may have changed; false: none. */
static bool prev_boundary(const struct sched *s, time_t t, time_t *out)
{
	bool found = false;
	time_t best = 0;
	long long k = base_index(s, t);
	if (k >= 0) {
		best = base_handover(s, k);
		found = true;
	}
	for (size_t i = 0; i < s->rc->n_overrides; i++) {
		if (s->ov_start[i] == s->ov_end[i])
			continue;
		if (s->ov_start[i] <= t && (!found || s->ov_start[i] > best)) {
			best = s->ov_start[i];
			found = true;
		}
		if (s->ov_end[i] <= t && (!found || s->ov_end[i] > best)) {
			best = s->ov_end[i];
			found = true;
		}
	}
	*out = best;
	return found;
}

int rotation_oncall(const struct rotation_config *rc, time_t now, struct rotation_oncall *out)
{
	memset(out, 0, sizeof(*out));
	out->member = out->override = out->next_member = out->next_override = -1;
	struct sched s;
	if (sched_open(&s, rc) != 0)
		return -1;
	out->user = who_at(&s, now, &out->member, &out->override);

	if (out->user) {
		time_t t = now, b;
		for (int i = 0; i < SINCE_WALK_LIMIT && prev_boundary(&s, t, &b); i++) {
			out->since = b;
			if (!same_user(who(&s, b - 1), out->user))
				break;
			t = b - 1;
		}
	}

	/* Past the last override, the base rotation changes user within n_members + 1 shifts
	 * unless every member is the same user: stop looking there. */
	time_t horizon = (now > s.ov_last_end ? now : s.ov_last_end) +
	                 (time_t)((long long)(rc->n_members + 1) * rc->shift_s + 2 * DAY_S);
	for (time_t t = now;;) {
		time_t b = next_boundary(&s, t);
		if (b > horizon)
			break;
		int m, o;
		const char *u = who_at(&s, b, &m, &o);
		if (!same_user(u, out->user)) {
			out->until = b;
			out->next_user = u;
			out->next_member = m;
			out->next_override = o;
			break;
		}
		t = b;
	}
	sched_close(&s);
	return 0;
}

struct rotation_handover *rotation_handovers(const struct rotation_config *rc, time_t a, time_t b,
                                             size_t *n)
{
	*n = 0;
	struct sched s;
	if (a >= b || sched_open(&s, rc) != 0)
		return NULL;
	struct rotation_handover *list = NULL;
	size_t cap = 0;
	const char *prev = who(&s, a - 1);
	for (time_t t = a - 1;;) {
		time_t x = next_boundary(&s, t);
		if (x >= b)
			break;
		const char *u = who(&s, x);
		if (!same_user(u, prev)) {
			if (*n == cap) {
				cap = cap ? cap * 2 : 8;
				list = xrealloc(list, cap * sizeof(*list));
			}
			list[(*n)++] = (struct rotation_handover){.at = x, .from = prev, .to = u};
			prev = u;
		}
		t = x;
	}
	sched_close(&s);
	return list;
}

/* ---- text ---- */

char *rotation_format_time(const struct rotation_config *rc, time_t t, char *buf, size_t buflen)
{
	struct rotation_tz_scope tz;
	struct tm tm;
	rotation_tz_enter(&tz, rc ? rc->timezone : NULL);
	if (localtime_r(&t, &tm) && tm.tm_wday >= 0 && tm.tm_wday < 7 && tm.tm_mon >= 0 && tm.tm_mon < 12)
		snprintf(buf, buflen, "%.3s %d %s %02d:%02d %s", weekday_names[tm.tm_wday], tm.tm_mday,
		         month_abbr[tm.tm_mon], tm.tm_hour, tm.tm_min, tm.tm_zone ? tm.tm_zone : "");
	else
		snprintf(buf, buflen, "@%lld", (long long)t);
	rotation_tz_leave(&tz); /* after the copy: tm_zone points into glibc's zone data */
	return buf;
}

char *rotation_describe(const struct rotation_config *rc, time_t now)
{
	struct rotation_oncall oc;
	struct strbuf sb = STRBUF_INIT;
	if (rotation_oncall(rc, now, &oc) != 0) {
		strbuf_puts(&sb, "no usable on-call rotation");
		return strbuf_detach(&sb);
	}
	if (oc.user)
		strbuf_printf(&sb, "now %s", oc.user);
	else
		strbuf_puts(&sb, "nobody");
	if (oc.until) {
		char when[64];
		strbuf_printf(&sb, " until %s, then %s", rotation_format_time(rc, oc.until, when, sizeof(when)),
		              oc.next_user ? oc.next_user : "nobody");
	} else {
		strbuf_puts(&sb, ", no handover scheduled");
	}
	return strbuf_detach(&sb);
}

/* ---- escalation ---- */

static bool ping_enabled(const struct rotation_config *rc)
{
	return rc->escalate_after_s > 0;
}

static bool fallback_enabled(const struct rotation_config *rc)
{
	return rc->fallback_after_s > 0 && rc->n_fallback > 0;
}

static time_t fallback_at(const struct rotation_config *rc, time_t t0)
{
	return t0 + (time_t)((ping_enabled(rc) ? rc->escalate_after_s : 0) + rc->fallback_after_s);
}

unsigned rotation_escalation_due(const struct rotation_config *rc, time_t t0, time_t now)
{
	unsigned due = 0;
	if (ping_enabled(rc) && now >= t0 + (time_t)rc->escalate_after_s)
		due |= ROTATION_STEP_PING_ONCALL;
	if (fallback_enabled(rc) && now >= fallback_at(rc, t0))
		due |= ROTATION_STEP_FALLBACK;
	return due;
}

time_t rotation_escalation_next(const struct rotation_config *rc, time_t t0, unsigned done)
{
	if (ping_enabled(rc) && !(done & ROTATION_STEP_PING_ONCALL))
		return t0 + (time_t)rc->escalate_after_s; /* always the earlier step */
	if (fallback_enabled(rc) && !(done & ROTATION_STEP_FALLBACK))
		return fallback_at(rc, t0);
	return 0;
}

/* ---- parsing and validation ---- */

static void err_printf(struct strbuf *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void err_printf(struct strbuf *err, const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(err, fmt, ap);
	va_end(ap);
}

static bool digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)p[i]))
			return false;
	return true;
}

int rotation_parse_date(const char *text, struct rotation_date *out, struct strbuf *err)
{
	if (!text || strlen(text) != 10 || !digits(text, 4) || text[4] != '-' || !digits(text + 5, 2) ||
	    text[7] != '-' || !digits(text + 8, 2)) {
		err_printf(err, "\"%s\" is not a date (YYYY-MM-DD)", text ? text : "");
		return -1;
	}
	struct rotation_date d = {atoi(text), atoi(text + 5), atoi(text + 8)};
	if (!date_valid(&d)) {
		err_printf(err, "%s is not a calendar date", text);
		return -1;
	}
	*out = d;
	return 0;
}

static int weekday_from_name(const char *p, size_t len)
{
	for (int i = 0; i < 7; i++) {
		const char *name = weekday_names[i];
		if ((len == 3 || len == strlen(name)) && strncasecmp(p, name, len) == 0)
			return i;
	}
	return -2;
}

int rotation_parse_handover(const char *text, int *weekday, int *minute, struct strbuf *err)
{
	const char *p = text ? text : "";
	while (*p == ' ')
		p++;
	int wd = ROTATION_ANY_WEEKDAY;
	if (isalpha((unsigned char)*p)) {
		const char *w = p;
		while (isalpha((unsigned char)*p))
			p++;
		wd = weekday_from_name(w, (size_t)(p - w));
		if (wd < 0) {
			err_printf(err, "\"%.*s\" is not a weekday (Mon, Tue, ... Sun)", (int)(p - w), w);
			return -1;
		}
		if (*p != ' ') {
			err_printf(err, "\"%s\" is not a handover time (\"Mon 09:00\" or \"09:00\")", text ? text : "");
			return -1;
		}
		while (*p == ' ')
			p++;
	}
	size_t hl = 0;
	while (isdigit((unsigned char)p[hl]))
		hl++;
	if (hl < 1 || hl > 2 || p[hl] != ':' || !digits(p + hl + 1, 2) || p[hl + 3] != '\0') {
		err_printf(err, "\"%s\" is not a handover time (\"Mon 09:00\" or \"09:00\")", text ? text : "");
		return -1;
	}
	int h = atoi(p), m = atoi(p + hl + 1);
	if (h > 23 || m > 59) {
		err_printf(err, "%s is not a time of day (00:00 to 23:59)", p);
		return -1;
	}
	*weekday = wd;
	*minute = h * 60 + m;
	return 0;
}

static bool localpart_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("._=-/+", c);
}

bool rotation_user_id_valid(const char *id)
{
	if (!id || id[0] != '@' || strlen(id) > 255)
		return false;
	const char *p = id + 1;
	const char *lp = p;
	while (*p && *p != ':') {
		if (!localpart_char(*p))
			return false;
		p++;
	}
	if (p == lp || *p != ':')
		return false;
	p++;
	if (*p == '[') { /* IPv6 literal */
		const char *q = ++p;
		while (isxdigit((unsigned char)*q) || *q == ':' || *q == '.')
			q++;
		if (q - p < 2 || *q != ']')
			return false;
		p = q + 1;
	} else { /* DNS name or IPv4 */
		const char *q = p;
		while (isalnum((unsigned char)*q) || *q == '-' || *q == '.')
			q++;
		if (q == p)
			return false;
		p = q;
	}
	if (*p == ':') {
		p++;
		size_t n = strspn(p, "0123456789");
		if (n < 1 || n > 5)
			return false;
		p += n;
	}
	return *p == '\0';
}

bool rotation_zone_exists(const char *name)
{
	if (!name || !*name || name[0] == '/' || strlen(name) > 255)
		return false;
	for (const char *p = name; *p; p++) {
		if (!isalnum((unsigned char)*p) && !strchr("_+-./", *p))
			return false;
		/* No ".", ".." or hidden components: the name must stay inside the database. */
		if (*p == '.' && (p == name || p[-1] == '/'))
			return false;
	}
	const char *dir = getenv("TZDIR"); /* glibc looks there too */
	struct strbuf path = STRBUF_INIT;
	strbuf_printf(&path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
	bool ok = false;
	struct stat st;
	if (stat(strbuf_str(&path), &st) == 0 && S_ISREG(st.st_mode)) {
		FILE *f = fopen(strbuf_str(&path), "rb");
		if (f) {
			char magic[4];
			ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
			fclose(f);
		}
	}
	strbuf_free(&path);
	return ok;
}

static void check_user(const char *key, size_t i, const char *user, struct strbuf *problems, int *n)
{
	if (rotation_user_id_valid(user))
		return;
	(*n)++;
	err_printf(problems,
	           "%s[%zu]: \"%s\" is not a Matrix user id (@localpart:server, localpart of a-z 0-9 ._=-/+)\n",
	           key, i, user ? user : "");
}

static void format_date(const struct rotation_date *d, char *buf, size_t len)
{
	snprintf(buf, len, "%04d-%02d-%02d", d->year, d->month, d->day);
}

int rotation_check(const struct rotation_config *rc, struct strbuf *problems)
{
	int n = 0;
	char a[48], b[48];
#define PROBLEM(...)                                   \
	do {                                           \
		n++;                                   \
		err_printf(problems, __VA_ARGS__);     \
	} while (0)

	if (rc->n_members == 0)
		PROBLEM("members: the rotation needs at least one member\n");
	for (size_t i = 0; i < rc->n_members; i++)
		check_user("members", i, rc->members[i], problems, &n);

	if (rc->shift_s <= 0 || rc->shift_s % DAY_S != 0)
		PROBLEM("shift: %s is not a whole number of days (1d, 7d, 14d, ...)\n",
		        rc->shift_s <= 0 ? "a zero or negative length"
		                         : duration_format((double)rc->shift_s, a, sizeof(a)));

	if (rc->handover_weekday < ROTATION_ANY_WEEKDAY || rc->handover_weekday > 6)
		PROBLEM("handover: weekday %d is not a day of the week (0 = Sunday .. 6 = Saturday)\n",
		        rc->handover_weekday);
	if (rc->handover_minute < 0 || rc->handover_minute >= 24 * 60)
		PROBLEM("handover: minute %d is not a time of day (00:00 to 23:59)\n", rc->handover_minute);

	if (!rc->timezone || !*rc->timezone)
		PROBLEM("timezone: missing (a tz database name such as Europe/Berlin or UTC)\n");
	else if (!rotation_zone_exists(rc->timezone))
		PROBLEM("timezone: \"%s\" is not a zone of the system tz database (e.g. Europe/Berlin, UTC)\n",
		        rc->timezone);

	if (rc->start.year == 0 && rc->start.month == 0 && rc->start.day == 0)
		PROBLEM("start: missing (the date of the first shift, YYYY-MM-DD)\n");
	else if (!date_valid(&rc->start)) {
		format_date(&rc->start, a, sizeof(a));
		PROBLEM("start: %s is not a calendar date\n", a);
	}

	for (size_t i = 0; i < rc->n_overrides; i++) {
		const struct rotation_override *o = &rc->overrides[i];
		check_user("overrides", i, o->user, problems, &n);
		format_date(&o->from, a, sizeof(a));
		format_date(&o->until, b, sizeof(b));
		if (!date_valid(&o->from))
			PROBLEM("overrides[%zu]: from %s is not a calendar date\n", i, a);
		if (!date_valid(&o->until))
			PROBLEM("overrides[%zu]: until %s is not a calendar date\n", i, b);
		if (date_valid(&o->from) && date_valid(&o->until) && date_days(&o->until) < date_days(&o->from))
			PROBLEM("overrides[%zu]: until %s is before from %s\n", i, b, a);
	}

	if (rc->escalate_after_s < 0)
		PROBLEM("escalate_after: must not be negative\n");
	if (rc->fallback_after_s < 0)
		PROBLEM("fallback_after: must not be negative\n");
	for (size_t i = 0; i < rc->n_fallback; i++)
		check_user("fallback", i, rc->fallback[i], problems, &n);
	if (rc->n_fallback > 0 && rc->fallback_after_s == 0)
		PROBLEM("fallback_after: missing: when should the fallback users be pinged?\n");
	if (rc->n_fallback == 0 && rc->fallback_after_s > 0)
		PROBLEM("fallback: empty, but fallback_after is set: whom should it ping?\n");
#undef PROBLEM
	return n;
}
