/* details_build: the two judgements about one build's details that both the details
 * module (is an edit worth it?) and the report's view model (what to show?) make. Pure. */
#include "details_build.h"

#include <string.h>

const char *details_build_true_result(const struct build_details *b)
{
	if (!b || !b->true_result)
		return NULL;
	if (b->reported_result && strcmp(b->true_result, b->reported_result) == 0)
		return NULL;
	return b->true_result;
}

bool details_build_fetched_news(const struct build_details *b)
{
	return b && b->failed && (b->has_task || b->error_detail || details_build_true_result(b));
}
