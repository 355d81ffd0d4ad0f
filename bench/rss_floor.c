/* bench/rss_floor: how much resident memory the bridge's libraries take before it does
 * anything. It links what the bridge links (libcurl, libmosquitto, libsqlite3, cJSON,
 * libconfig, libmicrohttpd) and initialises them the way the bridge does, printing
 * VmRSS, RssAnon and RssFile (kB) after each step. The difference between this floor
 * and the bridge's VmHWM is the bridge's own doing; the floor is the distribution's.
 *
 *   bench/rss_floor DIR     (DIR: where a scratch SQLite file may be created) */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <libconfig.h>
#include <microhttpd.h>
#include <mosquitto.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static void show(const char *step)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long rss = -1, anon = -1, file = -1;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "VmRSS: %ld", &rss);
		sscanf(line, "RssAnon: %ld", &anon);
		sscanf(line, "RssFile: %ld", &file);
	}
	if (f)
		fclose(f);
	printf("%-22s VmRSS %6ld kB  RssAnon %6ld kB  RssFile %6ld kB\n", step, rss, anon, file);
}

int main(int argc, char **argv)
{
	show("main");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	show("curl_global_init");
	mosquitto_lib_init();
	struct mosquitto *mosq = mosquitto_new("floor", false, NULL);
	show("mosquitto_new");
	char path[4096];
	snprintf(path, sizeof path, "%s/floor.db", argc > 1 ? argv[1] : "/tmp");
	sqlite3 *db = NULL;
	sqlite3_open(path, &db);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES (1);", NULL,
		     NULL, NULL);
	show("sqlite3 open+write");
	CURLM *multi = curl_multi_init();
	CURL *easy = curl_easy_init();
	show("curl handles");
	cJSON *j = cJSON_Parse("{\"a\":[1,2,3]}");
	config_t cfg;
	config_init(&cfg);
	show("cJSON, libconfig");
	/* libmicrohttpd is linked for the metrics endpoint; nothing of it runs until asked. */
	printf("libmicrohttpd %s linked\n", MHD_get_version());

	config_destroy(&cfg);
	cJSON_Delete(j);
	curl_easy_cleanup(easy);
	curl_multi_cleanup(multi);
	sqlite3_close(db);
	remove(path);
	char wal[4200];
	snprintf(wal, sizeof wal, "%s-wal", path);
	remove(wal);
	snprintf(wal, sizeof wal, "%s-shm", path);
	remove(wal);
	mosquitto_destroy(mosq);
	mosquitto_lib_cleanup();
	curl_global_cleanup();
	return 0;
}
