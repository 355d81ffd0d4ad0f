/* report: from a decoded Zuul event to the Matrix message content the bridge posts.
 * Builds the template view model, renders HTML (and text), converts HTML to text. */
#ifndef ZMB_REPORT_H
#define ZMB_REPORT_H

#include <cjson/cJSON.h>

#include "details_build.h"
#include "template.h"
#include "zuul.h"

/* The templates of one route: the HTML template and, when a companion file with
 * the same name and a .txt extension exists (default.html -> default.txt), the
 * plain-text one. */
struct report_templates {
	struct template *html;
	struct template *text; /* NULL: body is derived from the HTML */
};

/* Loads path (and its .txt companion) with partials from the template's directory.
 * Returns 0, or -1 with "FILE:LINE: reason" in err. */
int report_templates_load(struct report_templates *rt, const char *path, char *err, size_t errlen);
void report_templates_clear(struct report_templates *rt);

struct report_context {
	const char *route_name; /* exposed to templates as route; may be NULL */
	/* Bytes the caller adds to the content after rendering (mentions, a failure marker,
	 * later the claim lines and an edit's relation): the rendering sheds builds to stay
	 * this much under REPORT_MAX_CONTENT_BYTES (at most half of it is reserved). */
	size_t reserve_bytes;
	/* What to do about a problem report (failure, merge conflict, config error, disabled):
	 * the caller picks them (the winning owners rule's, else the route's). The view has
	 * what_to_do only for such reports and only when one of them is usable: a runbook
	 * that is not an absolute http(s) URL is dropped like any other bad URL; a hint has
	 * its control characters turned into spaces, is cut at 200 bytes, and is dropped
	 * when it is not UTF-8 or nothing is left. NULL: none. */
	const char *runbook;
	const char *hint;
	/* What is known of a build beyond its report (details_build.h), by its uuid: the
	 * flakiness verdict at once, the failing task, error lines, error detail and true
	 * result once fetched. The pointer need only live while the view is made. NULL (or
	 * a NULL answer): the build's details are null. The report never fetches anything
	 * itself: the caller that does hands its findings in through this. */
	const struct build_details *(*details_of)(const char *build_uuid, void *data);
	void *details_data;
};

/* The view model of ev: every payload field plus computed fields (icons, colours,
 * URLs, durations, lists of failed/non-voting/retried builds, change label...).
 * Documented in docs/templates.md. Caller frees with cJSON_Delete. */
cJSON *report_view_new(const struct zuul_event *ev, const struct report_context *ctx);

/* The largest content (as compact JSON) report_content_new produces: Matrix caps a whole
 * event at 65536 bytes, and the envelope (ids, sender, signatures) needs the rest. */
#define REPORT_MAX_CONTENT_BYTES 60000

/* {"msgtype":"m.notice","body":...,"format":"org.matrix.custom.html","formatted_body":...,
 *  "m.mentions":{}}
 * When that would exceed REPORT_MAX_CONTENT_BYTES (less ctx->reserve_bytes), successful and
 * retried builds are left
 * out first, then half of the remaining builds at a time; the view then has
 * has_omitted_builds and omitted_count for the template to say so.
 * Caller frees with cJSON_Delete. */
cJSON *report_content_new(const struct report_templates *rt, const struct zuul_event *ev,
			  const struct report_context *ctx);

/* Plain text from the HTML subset our templates produce: tags dropped, entities
 * decoded, <br> and block ends as newlines, list items as "- " lines, links as
 * "text (url)" when text and url differ, runs of blank lines collapsed, trimmed.
 * Caller frees. */
char *report_html_to_text(const char *html);

#endif
