/* build_record: one build as Zuul's REST API describes it (GET /api/tenant/T/build/UUID,
 * zuul/web BuildConverter.toDict): its true result, which a job's failure-message replaces
 * in the MQTT report, and error_detail, which says why a build ended in NODE_FAILURE,
 * ERROR, SKIPPED... Pure: bytes in, plain values out. */
#ifndef ZMB_BUILD_RECORD_H
#define ZMB_BUILD_RECORD_H

#include <stdbool.h>
#include <stddef.h>

/* error_detail is cut after this many characters. */
#define BUILD_RECORD_MAX_DETAIL 500

/* Strings are owned, valid UTF-8 without terminal escapes or control characters but newline
 * and tab (details_text.h), raw text; NULL when the record did not carry them. */
struct build_record {
	char *uuid;
	char *job_name;
	char *result;       /* "SUCCESS", "FAILURE", "NODE_FAILURE"...: [A-Z_] only, else NULL */
	char *error_detail;
	char *log_url;      /* as the record has it (unchecked: the caller's allow-list decides) */
	bool voting;
};

/* Reads one build record (len bytes). want_uuid, when not NULL, must be the record's uuid: a
 * record of another build is refused. Returns 0 with *out filled (clear it with
 * build_record_clear), -1 with err saying why (never quoting the input). Never crashes. */
int build_record_parse(const char *json, size_t len, const char *want_uuid, struct build_record *out, char *err,
		       size_t errlen);

void build_record_clear(struct build_record *r);

#endif
