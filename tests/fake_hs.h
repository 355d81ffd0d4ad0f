/* fake_hs.h: the C tests' handle on tests/fake_homeserver.py: start it as a subprocess on
 * a free port, call its Matrix or /_fake control endpoints with blocking requests (fine in a
 * test, never in the daemon), stop it. Header-only: each test binary is one translation unit. */
#ifndef ZMB_TEST_FAKE_HS_H
#define ZMB_TEST_FAKE_HS_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

#ifndef ZMB_SOURCE_ROOT
#define ZMB_SOURCE_ROOT "."
#endif

#define FAKE_HS_UNUSED __attribute__((unused))

static pid_t fake_hs_pid = -1;
static int fake_hs_port;
static char fake_hs_url[64];

/* Starts the server and waits (up to 10 s) for its port file. 0, or -1. */
static FAKE_HS_UNUSED int fake_hs_start(void)
{
	char port_file[128];
	snprintf(port_file, sizeof port_file, "/tmp/zmb-test-fakehs-%d.port", (int)getpid());
	unlink(port_file);
	fake_hs_pid = fork();
	if (fake_hs_pid < 0)
		return -1;
	if (fake_hs_pid == 0) {
		/* A test that crashes must not leave the server behind. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl("/usr/bin/python3", "python3", ZMB_SOURCE_ROOT "/tests/fake_homeserver.py", "--port", "0",
		      "--port-file", port_file, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(port_file, "r");
		if (f) {
			int ok = fscanf(f, "%d", &fake_hs_port) == 1;
			fclose(f);
			if (ok && fake_hs_port > 0) {
				snprintf(fake_hs_url, sizeof fake_hs_url, "http://127.0.0.1:%d", fake_hs_port);
				unlink(port_file);
				return 0;
			}
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

static FAKE_HS_UNUSED void fake_hs_stop(void)
{
	if (fake_hs_pid > 0) {
		kill(fake_hs_pid, SIGTERM);
		waitpid(fake_hs_pid, NULL, 0);
		fake_hs_pid = -1;
	}
}

static FAKE_HS_UNUSED size_t fake_hs_collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	strbuf_append(userdata, ptr, size * nmemb);
	return size * nmemb;
}

/* One blocking request; token NULL for the /_fake control API. Returns the HTTP status
 * (0 on a transport failure); *out, when given, gets the parsed body (may be NULL). */
static FAKE_HS_UNUSED long fake_hs_call(const char *method, const char *path, const char *body, const char *token,
					cJSON **out)
{
	CURL *e = curl_easy_init();
	struct strbuf url = STRBUF_INIT, resp = STRBUF_INIT, auth = STRBUF_INIT;
	struct curl_slist *headers = NULL;
	strbuf_printf(&url, "%s%s", fake_hs_url, path);
	curl_easy_setopt(e, CURLOPT_URL, strbuf_str(&url));
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (token) {
		strbuf_printf(&auth, "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, strbuf_str(&auth));
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	}
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fake_hs_collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	long status = 0;
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (out)
		*out = cJSON_Parse(strbuf_str(&resp));
	curl_easy_cleanup(e);
	curl_slist_free_all(headers);
	strbuf_free(&url);
	strbuf_free(&resp);
	strbuf_free(&auth);
	return status;
}

#endif
