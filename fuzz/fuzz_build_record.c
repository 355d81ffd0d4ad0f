/* fuzz_build_record: libFuzzer target for what a Zuul API (or anything posing as one) sends
 * for a build: build_record_parse must refuse or read it without crashing, and what it reads
 * is clean text; the same bytes, as a web_url or log_url, go through the URL derivation and
 * the allow-list, whose results must themselves pass the strict URL parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build_record.h"
#include "details_url.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_clean(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; s && *p; p++)
		if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f || *p == 0x1b)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct build_record r;
	char err[128];
	if (build_record_parse((const char *)data, size, NULL, &r, err, sizeof err) == 0) {
		if (!r.uuid)
			abort();
		check_clean(r.uuid);
		check_clean(r.job_name);
		check_clean(r.error_detail);
		for (const char *p = r.result; p && *p; p++)
			if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
				abort();
	}
	build_record_clear(&r);

	char *url = xstrndup((const char *)data, size);
	char *hosts[] = {"zuul.example.org", "*.logs.example.org:8443", "[::1]:8080"};
	bool allowed = details_url_allowed(url, hosts, 3);
	struct details_url *u = xmalloc(sizeof *u);
	if (allowed && details_url_parse(url, u, NULL) != 0)
		abort();
	char *api = details_api_url(url, "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a");
	if (api && details_url_parse(api, u, NULL) != 0)
		abort();
	if (api && allowed != details_url_allowed(api, hosts, 3))
		abort(); /* the API lives where the web_url does */
	char *log = details_log_file_url(url, "job-output.json.gz");
	if (log && details_url_parse(log, u, NULL) != 0)
		abort();
	if (log && allowed != details_url_allowed(log, hosts, 3))
		abort();
	free(api);
	free(log);
	free(u);
	free(url);
	return 0;
}
