/* cmd_check_config: `--check-config -c FILE`. Everything the daemon would refuse at
 * start is reported here, each problem as FILE:LINE: reason, without starting anything. */
#include <stdio.h>

#include "cmd.h"
#include "config.h"
#include "report.h"
#include "strbuf.h"

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
	if (!bad)
		printf("%s: OK (%zu route%s)\n", config_path, cfg->n_routes, cfg->n_routes == 1 ? "" : "s");
	config_free(cfg);
	return bad ? EXIT_FAILURE_ : EXIT_OK;
}
