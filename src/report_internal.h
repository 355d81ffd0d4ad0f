/* report_internal: what the report_*.c files share and nobody else needs: the message's parts
 * and the links into Zuul's web UI, each in its own file so report.c is the view model only. */
#ifndef ZMB_REPORT_INTERNAL_H
#define ZMB_REPORT_INTERNAL_H

#include <cjson/cJSON.h>

#include "zuul.h"

/* report_message.c: adds title, message_summary, has_message, message_body, message_details,
 * has_message_body, message_paragraphs, message_warnings, has_message_warnings,
 * message_debug, message_footer and message_cut (docs/templates.md) for Zuul's message
 * (may be NULL); fallback_title is the title when the message has none. */
void report_message_add(cJSON *view, const char *message, const char *fallback_title);

/* report_links.c. Every returned string is allocated (caller frees) or NULL; none is
 * checked as a URL here: the view drops what textutil_url_is_safe refuses. */

/* The tenant's web root as Zuul has it, ending in '/': tenant_web_root, else a build's
 * web_url minus "build/<uuid>"; NULL when Zuul has no web root (or sent none). */
char *report_web_root_new(const struct zuul_event *ev);
/* The root shared by every tenant: root minus "t/<tenant>/" when it ends so, else root
 * (a whitelabeled tenant), without the trailing '/'. */
char *report_zuul_url_new(const char *root, const char *tenant);
/* root + path + segment percent-encoded (segment may be NULL). */
char *report_link_new(const char *root, const char *path, const char *segment);
/* root + path + "?k1=v1&k2=v2", values percent-encoded, pairs with a NULL or empty value
 * left out. */
char *report_query_link_new(const char *root, const char *path, const char *k1, const char *v1, const char *k2,
			    const char *v2);
/* What Zuul's formatItemUrl links: the buildset page once the item has a result, before
 * that the status page of change,patchset; NULL when neither applies. */
char *report_item_url_new(const char *root, const struct zuul_event *ev);

/* report_details.c: adds has_details and details (docs/templates.md, "Build details") to a
 * build's view from what the details module knows of it (bd may be NULL: nothing known). */
struct build_details;
void report_details_add(cJSON *build_view, const struct build_details *bd);

#endif
