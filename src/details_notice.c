/* details_notice: the "Why it failed" thread answer. A notice, so it never notifies
 * (the push rule .m.rule.suppress_notices), with empty m.mentions, so a log line that says
 * "@room" or names a user pings nobody; every value from Zuul or its logs is escaped. */
#include "details_notice.h"

#include <string.h>

#include "flaky.h"
#include "relations.h"
#include "strbuf.h"

bool details_notice_has_news(const struct build_details *b)
{
	if (!b || !b->failed)
		return b && b->verdict.kind == FLAKY_PASSED_ON_RETRY;
	bool true_differs = b->true_result && (!b->reported_result || strcmp(b->true_result, b->reported_result) != 0);
	return b->has_task || b->error_detail || true_differs || b->verdict.kind != FLAKY_UNKNOWN;
}

/* "task NAME (role R) on HOST, PHASE playbook, rc N: MSG" */
static void task_line(const struct job_output_failure *t, struct strbuf *html, struct strbuf *text)
{
	strbuf_puts(html, t->unreachable ? "host unreachable in task " : "task ");
	strbuf_puts(text, t->unreachable ? "host unreachable in task " : "task ");
	strbuf_puts(html, "<b>");
	strbuf_puts_html(html, t->task ? t->task : "(unnamed)");
	strbuf_puts(html, "</b>");
	strbuf_printf(text, "\"%s\"", t->task ? t->task : "(unnamed)");
	if (t->role) {
		strbuf_puts(html, " (role <code>");
		strbuf_puts_html(html, t->role);
		strbuf_puts(html, "</code>)");
		strbuf_printf(text, " (role %s)", t->role);
	}
	if (t->host) {
		strbuf_puts(html, " on <code>");
		strbuf_puts_html(html, t->host);
		strbuf_puts(html, "</code>");
		strbuf_printf(text, " on %s", t->host);
	}
	if (t->phase) {
		strbuf_puts(html, ", ");
		strbuf_puts_html(html, t->phase);
		strbuf_puts(html, " playbook");
		strbuf_printf(text, ", %s playbook", t->phase);
	}
	if (t->has_rc) {
		strbuf_printf(html, ", rc %lld", t->rc);
		strbuf_printf(text, ", rc %lld", t->rc);
	}
	if (t->msg) {
		strbuf_puts(html, ": ");
		strbuf_puts_html(html, t->msg);
		strbuf_printf(text, ": %s", t->msg);
	}
}

static void one_build(const struct build_details *b, struct strbuf *html, struct strbuf *text)
{
	strbuf_puts(html, "<li><b>");
	strbuf_puts_html(html, b->job ? b->job : "(unnamed job)");
	strbuf_puts(html, "</b>");
	strbuf_printf(text, "\n- %s", b->job ? b->job : "(unnamed job)");
	if (b->true_result && (!b->reported_result || strcmp(b->true_result, b->reported_result) != 0)) {
		strbuf_puts(html, " (result <code>");
		strbuf_puts_html(html, b->true_result);
		strbuf_puts(html, "</code>)");
		strbuf_printf(text, " (result %s)", b->true_result);
	}
	const char *sep_html = ": ", *sep_text = ": ";
	if (b->has_task) {
		strbuf_puts(html, sep_html);
		strbuf_puts(text, sep_text);
		task_line(&b->task, html, text);
		sep_html = "<br>";
		sep_text = "\n  ";
	}
	if (b->error_detail) {
		strbuf_puts(html, sep_html);
		strbuf_puts(text, sep_text);
		strbuf_puts(html, "error detail: ");
		strbuf_puts_html(html, b->error_detail);
		strbuf_printf(text, "error detail: %s", b->error_detail);
		sep_html = "<br>";
		sep_text = "\n  ";
	}
	if (b->has_task && b->task.error_lines) {
		strbuf_puts(html, "<pre><code>");
		strbuf_puts_html(html, b->task.error_lines);
		strbuf_puts(html, "</code></pre>");
		strbuf_puts(text, "\n");
		for (const char *p = b->task.error_lines; *p;) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);
			strbuf_puts(text, "    ");
			strbuf_append(text, p, n);
			if (nl)
				strbuf_putc(text, '\n');
			p += n + (nl ? 1 : 0);
		}
		sep_html = "";
		sep_text = "\n  ";
	}
	struct strbuf verdict = STRBUF_INIT;
	flaky_describe(&b->verdict, &verdict);
	if (verdict.len) {
		strbuf_puts(html, sep_html);
		strbuf_puts(html, "<i>");
		strbuf_puts_html(html, strbuf_str(&verdict));
		strbuf_puts(html, "</i>");
		strbuf_puts(text, sep_text);
		strbuf_puts(text, strbuf_str(&verdict));
	}
	strbuf_free(&verdict);
	strbuf_puts(html, "</li>");
}

static cJSON *render(const struct build_details *const *builds, size_t n)
{
	struct strbuf html = STRBUF_INIT, text = STRBUF_INIT;
	size_t shown = 0;
	for (size_t i = 0; i < n; i++) {
		if (!details_notice_has_news(builds[i]))
			continue;
		if (shown++ == 0) {
			strbuf_puts(&html, "<p><b>Why it failed</b></p><ul>");
			strbuf_puts(&text, "Why it failed:");
		}
		one_build(builds[i], &html, &text);
	}
	if (!shown) {
		strbuf_free(&html);
		strbuf_free(&text);
		return NULL;
	}
	strbuf_puts(&html, "</ul>");
	cJSON *content = cJSON_CreateObject();
	cJSON_AddStringToObject(content, "msgtype", "m.notice");
	cJSON_AddStringToObject(content, "body", strbuf_str(&text));
	cJSON_AddStringToObject(content, "format", "org.matrix.custom.html");
	cJSON_AddStringToObject(content, "formatted_body", strbuf_str(&html));
	cJSON_AddItemToObject(content, "m.mentions", cJSON_CreateObject());
	strbuf_free(&html);
	strbuf_free(&text);
	return content;
}

cJSON *details_notice_new(const struct build_details *const *builds, size_t n)
{
	cJSON *content = render(builds, n);
	/* Hostile logs escape to several times their length: builds are left out from the end
	 * until the answer, with room for its thread relation, fits in one event. */
	while (content && n > 1 && relations_content_bytes(content) > DETAILS_NOTICE_MAX_BYTES) {
		cJSON_Delete(content);
		content = render(builds, --n);
	}
	return content;
}
