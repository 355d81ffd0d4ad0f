/* incident_internal: what incident.c, incident_render.c and incident_json.c share and nobody
 * else needs: the tracker's state and a few helpers over it. */
#ifndef ZMB_INCIDENT_INTERNAL_H
#define ZMB_INCIDENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "incident.h"

struct member {
	char *project;
	char *job;
	char *result;
	char *url;       /* the raw URL picked for the link; checked again when rendered */
	char *event_key;
	char *build_uuid;
	int64_t at_ms;
};

struct incident {
	char *id;
	char *tenant;
	char *cause;
	bool by_spread;
	char *job;            /* spread incidents: the job name (cause is "job " + job) */
	int64_t opened_ms;
	int64_t last_ms;
	bool closed;
	bool close_reported;
	struct member *members;
	size_t n_members;
	size_t n_more;        /* members past INCIDENT_MEMBERS_MAX, only counted */
};

/* A failed build of a remembered report: what spread detection needs. */
struct recent_build {
	struct member m;
	bool covered;   /* a member of some incident */
	bool candidate; /* a spread candidate: non-infra result, job and project known */
};

/* A report that was not absorbed and still has uncovered spread candidates. */
struct recent {
	char *event_key;
	char *tenant;
	int64_t at_ms;
	struct recent_build *builds;
	size_t n_builds;
};

struct incident_tracker {
	char **infra;
	size_t n_infra;
	long long window_s;
	int min_projects; /* < 2: spread grouping off */
	struct incident *incidents;
	size_t n_incidents;
	struct recent *recents;
	size_t n_recents;
};

static inline const char *nz(const char *s)
{
	return s ? s : "";
}

static inline bool str_eq(const char *a, const char *b)
{
	return strcmp(nz(a), nz(b)) == 0;
}

static inline int64_t window_ms(const struct incident_tracker *t)
{
	return (int64_t)t->window_s * 1000;
}

/* incident.c: the incident with this id, NULL when there is none (or id is NULL). */
struct incident *incident_find(const struct incident_tracker *t, const char *id);
/* incident.c: frees what inc owns, not inc itself. */
void incident_free_fields(struct incident *inc);
/* incident.c: frees every incident and recent report of t; t stays usable, empty. */
void incident_state_clear(struct incident_tracker *t);

#endif
