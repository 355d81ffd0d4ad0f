/* cmd_common: what several commands do the same way: load the configuration and say
 * why not, read and decode an EVENT.json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "fileutil.h"
#include "strbuf.h"
#include "zuul.h"

struct config *cmd_load_config(const char *config_path, unsigned flags)
{
	struct strbuf errors = STRBUF_INIT;
	struct config *cfg = config_load(config_path, flags, &errors);
	if (!cfg)
		fputs(strbuf_str(&errors), stderr);
	strbuf_free(&errors);
	return cfg;
}

struct zuul_event *cmd_load_event(const char *event_path, char **key)
{
	size_t len;
	char *payload = file_read_all(event_path, &len);
	if (!payload) {
		fprintf(stderr, "%s: cannot read: %s\n", event_path, strerror(errno));
		return NULL;
	}
	char err[256];
	struct zuul_event *ev = zuul_event_parse(payload, len, err, sizeof err);
	if (!ev)
		fprintf(stderr, "%s: not a Zuul report: %s\n", event_path, err);
	else if (key)
		*key = zuul_event_key(ev, payload, len);
	free(payload);
	return ev;
}
