/* bench/pipeline: the bridge's per-report CPU work without the network, for profiling and
 * comparing changes with less noise than the end-to-end run: decode the payload, compute
 * its key, render the content with a route's template, print it as the JSON the outbox
 * stores. Reports CPU microseconds per report for each stage and in total.
 *
 *   bench/pipeline [--count N] [--template FILE] PAYLOAD.json...
 *
 * Payloads are used in turn. The content of every report is checked to be a message
 * (a body and an HTML body), so a stage that silently failed cannot look fast. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fileutil.h"
#include "report.h"
#include "zuul.h"

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int usage(void)
{
	fprintf(stderr, "usage: pipeline [--count N] [--template FILE] PAYLOAD.json...\n");
	return 2;
}

int main(int argc, char **argv)
{
	long count = 20000;
	const char *template_path = "templates/default.html";
	int first = 1;
	for (; first < argc && strncmp(argv[first], "--", 2) == 0; first += 2) {
		if (first + 1 >= argc)
			return usage();
		if (strcmp(argv[first], "--count") == 0)
			count = strtol(argv[first + 1], NULL, 10);
		else if (strcmp(argv[first], "--template") == 0)
			template_path = argv[first + 1];
		else
			return usage();
	}
	if (first >= argc || count <= 0)
		return usage();

	size_t n_payloads = (size_t)(argc - first);
	char **payloads = calloc(n_payloads, sizeof *payloads);
	size_t *lens = calloc(n_payloads, sizeof *lens);
	for (size_t i = 0; i < n_payloads; i++) {
		payloads[i] = file_read_all(argv[first + (int)i], &lens[i]);
		if (!payloads[i]) {
			perror(argv[first + (int)i]);
			return 1;
		}
	}
	struct report_templates rt = {0};
	char err[512];
	if (report_templates_load(&rt, template_path, err, sizeof err) != 0) {
		fprintf(stderr, "pipeline: %s\n", err);
		return 1;
	}

	uint64_t t_parse = 0, t_render = 0, t_print = 0, bytes = 0;
	struct report_context ctx = {.route_name = "bench"};
	for (long n = 0; n < count; n++) {
		size_t i = (size_t)n % n_payloads;
		uint64_t t0 = cpu_ns();
		struct zuul_event *ev = zuul_event_parse(payloads[i], lens[i], err, sizeof err);
		if (!ev) {
			fprintf(stderr, "pipeline: %s: %s\n", argv[first + (int)i], err);
			return 1;
		}
		char *key = zuul_event_key(ev, payloads[i], lens[i]);
		uint64_t t1 = cpu_ns();
		cJSON *content = report_content_new(&rt, ev, &ctx);
		uint64_t t2 = cpu_ns();
		char *json = content ? cJSON_PrintUnformatted(content) : NULL;
		uint64_t t3 = cpu_ns();
		if (!json || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(content, "body")) ||
		    !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(content, "formatted_body"))) {
			fprintf(stderr, "pipeline: %s: no message content\n", argv[first + (int)i]);
			return 1;
		}
		bytes += strlen(json);
		t_parse += t1 - t0;
		t_render += t2 - t1;
		t_print += t3 - t2;
		cJSON_free(json);
		cJSON_Delete(content);
		free(key);
		zuul_event_free(ev);
	}
	double per = 1e-3 / (double)count;
	printf("reports %ld, content %.0f bytes each\n", count, (double)bytes / (double)count);
	printf("us/report: parse+key %.1f, render %.1f, print %.1f, total %.1f\n", (double)t_parse * per,
	       (double)t_render * per, (double)t_print * per, (double)(t_parse + t_render + t_print) * per);
	report_templates_clear(&rt);
	for (size_t i = 0; i < n_payloads; i++)
		free(payloads[i]);
	free(payloads);
	free(lens);
	return 0;
}
