/* fuzz_payload: libFuzzer target for the whole report path: arbitrary bytes as an MQTT payload,
 * decoded by zuul_event_parse and rendered through the default template by report_content_new. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "zuul.h"

/* Loaded once: parsing the template per input would fuzz the template engine,
 * which fuzz_template does, instead of the payload path. */
static struct report_templates templates;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	const char *path = getenv("ZMB_TEMPLATE");
	char err[512];
	if (report_templates_load(&templates, path ? path : "templates/default.html", err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_payload: %s\n", err);
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	struct zuul_event *ev = zuul_event_parse((const char *)data, size, err, sizeof err);
	if (!ev)
		return 0;
	struct report_context ctx = {.route_name = "fuzz"};
	cJSON *content = report_content_new(&templates, ev, &ctx);
	/* The body must be derivable text: html_to_text over the formatted body again
	 * exercises the converter on everything the template can produce. */
	const cJSON *html = cJSON_GetObjectItemCaseSensitive(content, "formatted_body");
	if (cJSON_IsString(html)) {
		char *text = report_html_to_text(html->valuestring);
		free(text);
	}
	cJSON_Delete(content);
	zuul_event_free(ev);
	return 0;
}
