/* job_output: the task that failed a Zuul build, read from its job-output.json (the
 * zuul-jobs log format written by Zuul's zuul_json callback: a list of playbooks, each with
 * plays -> tasks -> hosts and per-host stats). Pure: bytes in, plain values out. */
#ifndef ZMB_JOB_OUTPUT_H
#define ZMB_JOB_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

/* The error lines shown: at most this many lines and characters (the last ones). */
#define JOB_OUTPUT_MAX_LINES 5
#define JOB_OUTPUT_MAX_CHARS 500
/* A task name, role, host or message is cut after this many characters. */
#define JOB_OUTPUT_MAX_FIELD 300

/* The failing task. Every string is owned, valid UTF-8 without terminal escapes or control
 * characters but newline and tab (details_text.h), and still raw text: NULL when the output
 * did not say. */
struct job_output_failure {
	char *playbook;    /* the playbook's canonical name and path, e.g. "opendev.org/zuul/zuul-jobs/playbooks/tox/run.yaml" */
	char *phase;       /* "pre", "run", "post", "cleanup" */
	char *task;        /* the task's name */
	char *role;        /* the role it belongs to */
	char *host;        /* the inventory host it failed on */
	bool has_rc;
	long long rc;      /* its return code, when it had one */
	bool unreachable;  /* the host was unreachable rather than the task failing */
	char *msg;         /* Ansible's message ("non-zero return code", ...) */
	char *error_lines; /* the last lines of stderr, else of stdout (JOB_OUTPUT_MAX_*); NULL: none */
};

/* Finds the task that failed the build in one job-output.json (len bytes): in the first
 * playbook whose stats count a failure (or an unreachable host), the last failed task of the
 * first such host (earlier failed tasks of that host were ignored or rescued: they do not
 * count in the stats); inside a loop, its first failed item. Without stats (a truncated
 * file), the first failed task at all.
 * Returns 1 with *out filled (clear it with job_output_failure_clear), 0 when nothing
 * failed, -1 when the bytes are not job output (err says why, without quoting them). Never
 * crashes, whatever the input. */
int job_output_parse(const char *json, size_t len, struct job_output_failure *out, char *err, size_t errlen);

void job_output_failure_clear(struct job_output_failure *f);

#endif
