/* cmd_explain: `explain -c FILE EVENT.json`, the answer to "why did (not) this
 * report reach our room?": every route's verdict with the rules that decided it. */
#include <getopt.h>
#include <stdio.h>

#include "cmd.h"
#include "config.h"
#include "route.h"
#include "strbuf.h"
#include "zuul.h"

int cmd_explain(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case ':': return cmd_usage_error("explain: option '%s' needs a value", argv[optind - 1]);
		default: return cmd_usage_error("explain: unknown option '%s'", argv[optind - 1]);
		}
	}
	if (!config_path || optind != argc - 1)
		return cmd_usage_error("explain: use -c FILE EVENT.json");

	struct config *cfg = cmd_load_config(config_path, 0);
	if (!cfg)
		return EXIT_FAILURE_;
	struct zuul_event *ev = cmd_load_event(argv[optind]);
	if (!ev) {
		config_free(cfg);
		return EXIT_FAILURE_;
	}
	size_t matched = 0;
	for (size_t i = 0; i < cfg->n_routes; i++) {
		struct strbuf why = STRBUF_INIT;
		int ok = route_matches(&cfg->routes[i], ev, &why);
		matched += ok != 0;
		printf("%s\n", strbuf_str(&why));
		strbuf_free(&why);
	}
	printf("%zu of %zu routes match\n", matched, cfg->n_routes);
	zuul_event_free(ev);
	config_free(cfg);
	return matched ? EXIT_OK : EXIT_FAILURE_;
}
