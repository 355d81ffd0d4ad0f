/* publisher: the benchmark's Zuul. Publishes N copies of a real report (buildset uuid
 * "bench%010d", QoS 1) at full speed or a paced rate, and records each publish time. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define UUID_MARK "bench@@@@@@@@@@" /* same length as "bench%010d" */
#define TENANT_MARK "bench-t@"      /* '@' becomes the room (route) number */
#define ACK_TIMEOUT_S 120

struct pub {
	uint64_t acked;
	bool connected;
	int connect_rc;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_connect(struct mosquitto *m, void *data, int rc)
{
	(void)m;
	struct pub *p = data;
	p->connected = rc == 0;
	p->connect_rc = rc;
}

static void on_publish(struct mosquitto *m, void *data, int mid)
{
	(void)m;
	(void)mid;
	((struct pub *)data)->acked++;
}

/* Reads the payload file and returns it re-serialised with the markers in place, so each
 * message is a memcpy of digits away (caller frees). */
static char *load_template(const char *path, bool mark_tenant)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return NULL;
	}
	static char raw[1 << 20];
	size_t n = fread(raw, 1, sizeof raw - 1, f);
	fclose(f);
	raw[n] = 0;
	cJSON *root = cJSON_Parse(raw);
	cJSON *bs = root ? cJSON_GetObjectItemCaseSensitive(root, "buildset") : NULL;
	if (!cJSON_IsObject(bs)) {
		fprintf(stderr, "publisher: %s has no buildset object\n", path);
		cJSON_Delete(root);
		return NULL;
	}
	cJSON_ReplaceItemInObjectCaseSensitive(bs, "uuid", cJSON_CreateString(UUID_MARK));
	if (mark_tenant)
		cJSON_ReplaceItemInObjectCaseSensitive(root, "tenant", cJSON_CreateString(TENANT_MARK));
	char *text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return text;
}

/* Runs libmosquitto's network work without blocking longer than until `until_ns`
 * (0: just once, without waiting). */
static int pump(struct mosquitto *m, uint64_t until_ns)
{
	for (;;) {
		int fd = mosquitto_socket(m);
		uint64_t now = mono_ns();
		struct timespec ts = {0, 0};
		if (until_ns > now) {
			uint64_t d = until_ns - now;
			ts.tv_sec = (time_t)(d / 1000000000u);
			ts.tv_nsec = (long)(d % 1000000000u);
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN | (mosquitto_want_write(m) ? POLLOUT : 0)};
		int r = ppoll(&pfd, 1, &ts, NULL);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0) {
			if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
				int rc = mosquitto_loop_read(m, 1);
				if (rc != MOSQ_ERR_SUCCESS) {
					fprintf(stderr, "publisher: read: %s\n", mosquitto_strerror(rc));
					return -1;
				}
			}
			if (pfd.revents & POLLOUT)
				mosquitto_loop_write(m, 1);
		}
		if (mosquitto_want_write(m))
			mosquitto_loop_write(m, 1);
		if (mono_ns() >= until_ns)
			return 0;
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: publisher --port N --payload FILE --count N --out FILE [--host H] [--topic T]\n"
		"                 [--rate PER_S] [--start I] [--rooms K]\n"
		"  --rate 0 (default) publishes as fast as the broker takes it; otherwise message i is\n"
		"  published at t0 + i/rate. --rooms K sets tenant \"bench-t<i%%K>\" (one route per tenant).\n"
		"  Writes \"<uuid> <CLOCK_MONOTONIC ns>\" per message to FILE.\n");
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *topic = "zuul/scs/check", *payload = NULL, *out = NULL;
	int port = 0, rooms = 0;
	uint64_t count = 0, start = 0;
	double rate = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 2;
		}
		i++;
		if (!strcmp(a, "--host"))
			host = v;
		else if (!strcmp(a, "--port"))
			port = atoi(v);
		else if (!strcmp(a, "--topic"))
			topic = v;
		else if (!strcmp(a, "--payload"))
			payload = v;
		else if (!strcmp(a, "--out"))
			out = v;
		else if (!strcmp(a, "--count"))
			count = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--start"))
			start = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--rate"))
			rate = strtod(v, NULL);
		else if (!strcmp(a, "--rooms"))
			rooms = atoi(v);
		else {
			usage();
			return 2;
		}
	}
	if (!port || !payload || !out || !count || rooms < 0 || rooms > 10) {
		usage();
		return 2;
	}
	char *msg = load_template(payload, rooms > 0);
	if (!msg)
		return 1;
	size_t len = strlen(msg);
	char *uuid_at = strstr(msg, UUID_MARK);
	char *tenant_at = rooms ? strstr(msg, TENANT_MARK) : NULL;
	uint64_t *sent_ns = calloc(count, sizeof *sent_ns);
	FILE *f = fopen(out, "w");
	if (!uuid_at || (rooms && !tenant_at) || !sent_ns || !f) {
		fprintf(stderr, "publisher: cannot prepare (markers, memory or %s)\n", out);
		return 1;
	}

	mosquitto_lib_init();
	struct pub p = {0};
	struct mosquitto *m = mosquitto_new(NULL, true, &p);
	mosquitto_connect_callback_set(m, on_connect);
	mosquitto_publish_callback_set(m, on_publish);
	/* No client-side window: the broker's flow control is what is measured. */
	mosquitto_max_inflight_messages_set(m, 0);
	int rc = mosquitto_connect(m, host, port, 60);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "publisher: connect %s:%d: %s\n", host, port, mosquitto_strerror(rc));
		return 1;
	}
	uint64_t deadline = mono_ns() + 10 * 1000000000ull;
	while (!p.connected && mono_ns() < deadline)
		if (pump(m, mono_ns() + 10 * 1000000u) < 0)
			return 1;
	if (!p.connected) {
		fprintf(stderr, "publisher: no CONNACK (rc %d)\n", p.connect_rc);
		return 1;
	}

	uint64_t t0 = mono_ns();
	double step_ns = rate > 0 ? 1e9 / rate : 0;
	for (uint64_t i = 0; i < count; i++) {
		if (rate > 0) {
			if (pump(m, t0 + (uint64_t)((double)i * step_ns)) < 0)
				return 1;
		} else if (i % 64 == 0) {
			pump(m, 0); /* read PUBACKs so neither side's buffers fill */
		}
		char digits[16];
		snprintf(digits, sizeof digits, "%010" PRIu64, start + i);
		memcpy(uuid_at + 5, digits, 10);
		if (tenant_at)
			tenant_at[7] = (char)('0' + (start + i) % (uint64_t)rooms);
		sent_ns[i] = mono_ns();
		rc = mosquitto_publish(m, NULL, topic, (int)len, msg, 1, false);
		if (rc != MOSQ_ERR_SUCCESS) {
			fprintf(stderr, "publisher: publish %" PRIu64 ": %s\n", i, mosquitto_strerror(rc));
			return 1;
		}
	}
	uint64_t t_end = mono_ns();
	deadline = t_end + (uint64_t)ACK_TIMEOUT_S * 1000000000u;
	while (p.acked < count && mono_ns() < deadline)
		if (pump(m, mono_ns() + 5 * 1000000u) < 0)
			return 1;
	uint64_t t_acked = mono_ns();
	mosquitto_disconnect(m);
	pump(m, 0);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();

	for (uint64_t i = 0; i < count; i++)
		fprintf(f, "bench%010" PRIu64 " %" PRIu64 "\n", start + i, sent_ns[i]);
	if (fclose(f) != 0) {
		perror(out);
		return 1;
	}
	double secs = (double)(t_end - t0) / 1e9;
	fprintf(stderr, "publisher: %" PRIu64 " published in %.3f s (%.0f/s), %" PRIu64 " acked after %.3f s\n", count,
		secs, secs > 0 ? (double)count / secs : 0.0, p.acked, (double)(t_acked - t0) / 1e9);
	free(sent_ns);
	free(msg);
	return p.acked == count ? 0 : 1;
}
