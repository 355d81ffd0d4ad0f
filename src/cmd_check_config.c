/* cmd_check_config: `--check-config -c FILE`. Everything the daemon would refuse at
 * start is reported here, each problem as FILE:LINE: reason, without starting anything. */
#include <stdio.h>

#include "cmd.h"
#include "config.h"
#include "report.h"
#include "strbuf.h"

/* Since 0.2 the room side is on without its groups: a configuration written for 0.1,
 * where their absence meant plain posting, behaves differently. Said once, here. */
static void note_room_side_defaults(const struct config *cfg)
{
	if (!cfg->chatops.enabled || (cfg->chatops.configured && cfg->triage.configured))
		return;
	printf("note: without a %s group the defaults apply: %s; see docs/migrating.md, \"The room side is on "
	       "by default\" (chatops: { enabled = false; }; posts every report on its own)\n",
	       !cfg->chatops.configured && !cfg->triage.configured ? "chatops or triage"
	       : !cfg->chatops.configured                       ? "chatops"
								: "triage",
	       !cfg->chatops.configured
		       ? "repeated failures go into the first one's thread and the recovery closes it, infrastructure "
			 "failures become one incident, reactions claim and resolve, !zuul commands are answered"
		       : "infrastructure failures across projects become one incident message");
}

int cmd_check_config(const char *config_path)
{
	struct config *cfg = cmd_load_config(config_path, CONFIG_NEED_SECRETS);
	if (!cfg)
		return EXIT_FAILURE_;
	/* Templates are parsed here too: a syntax error in a template is as fatal as one in
	 * the config, and its message names the template file and line. */
	int bad = 0;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		struct report_templates rt = {0};
		char err[512];
		if (report_templates_load(&rt, cfg->routes[i].template_path, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			bad = 1;
		}
		report_templates_clear(&rt);
	}
	if (!bad) {
		printf("%s: OK (%zu route%s)\n", config_path, cfg->n_routes, cfg->n_routes == 1 ? "" : "s");
		note_room_side_defaults(cfg);
	}
	config_free(cfg);
	return bad ? EXIT_FAILURE_ : EXIT_OK;
}
