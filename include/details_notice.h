/* details_notice: the "Why it failed" answer under a failure: an m.notice that pings
 * nobody, with one entry per failed build (its true result, error detail, failing task, last
 * error lines and flakiness verdict). Pure: values in, message content out; every value is
 * escaped for formatted_body. */
#ifndef ZMB_DETAILS_NOTICE_H
#define ZMB_DETAILS_NOTICE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "details.h"
#include "relations.h"

/* Whether b has anything worth saying (a task, an error detail, a true result other than
 * the reported one, or a verdict). */
bool details_notice_has_news(const struct build_details *b);

/* The largest answer: an event's content limit less room for the thread relation. */
#define DETAILS_NOTICE_MAX_BYTES (RELATIONS_MAX_CONTENT_BYTES - 1024)

/* The content for builds[0..n) (those without news are left out), or NULL when none has
 * any. msgtype m.notice, m.mentions {}, body and HTML formatted_body. When it would be over
 * DETAILS_NOTICE_MAX_BYTES, the last builds are left out until it is not (one build always
 * fits: its fields are capped). Caller deletes. */
cJSON *details_notice_new(const struct build_details *const *builds, size_t n);

#endif
