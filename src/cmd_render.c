/* cmd_render: `render`, the template author's and operator's preview. With -c and
 * --route it prints exactly the content the daemon would post; with --template and
 * --raw it is a plain Mustache renderer (also used to run the spec by hand). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chatops.h"
#include "cmd.h"
#include "config.h"
#include "fileutil.h"
#include "report.h"
#include "route.h"
#include "strbuf.h"
#include "template.h"
#include "zuul.h"

/* Plain Mustache: writes exactly the rendered bytes, nothing added (DESIGN.md contract). */
static int render_raw(const char *template_path, const char *partials_dir, const char *data_path)
{
	char err[512];
	struct template *t = template_load_file(template_path, partials_dir, err, sizeof err);
	if (!t) {
		fprintf(stderr, "%s\n", err);
		return EXIT_FAILURE_;
	}
	size_t len;
	char *text = file_read_all(data_path, &len);
	if (!text) {
		fprintf(stderr, "%s: cannot read: %s\n", data_path, strerror(errno));
		template_free(t);
		return EXIT_FAILURE_;
	}
	cJSON *data = cJSON_ParseWithLength(text, len);
	free(text);
	if (!data) {
		fprintf(stderr, "%s: not valid JSON\n", data_path);
		template_free(t);
		return EXIT_FAILURE_;
	}
	struct strbuf out = STRBUF_INIT;
	template_render(t, data, &out);
	fwrite(strbuf_str(&out), 1, out.len, stdout);
	strbuf_free(&out);
	cJSON_Delete(data);
	template_free(t);
	return EXIT_OK;
}

static int render_route(const char *config_path, const char *route_name, const char *event_path, int view_only)
{
	struct config *cfg = cmd_load_config(config_path, 0);
	if (!cfg)
		return EXIT_FAILURE_;
	int status = EXIT_FAILURE_;
	struct zuul_event *ev = NULL;
	struct report_templates rt = {0};
	const struct route *route = config_find_route(cfg, route_name);
	if (!route) {
		fprintf(stderr, "%s: no route named \"%s\" (routes:", config_path, route_name);
		for (size_t i = 0; i < cfg->n_routes; i++)
			fprintf(stderr, " %s", cfg->routes[i].name);
		fputs(")\n", stderr);
		goto out;
	}
	ev = cmd_load_event(event_path, NULL);
	if (!ev)
		goto out;
	struct strbuf why = STRBUF_INIT;
	if (!route_matches(route, ev, &why)) {
		fprintf(stderr, "route \"%s\" does not match %s:\n%s", route->name, event_path, strbuf_str(&why));
		strbuf_free(&why);
		goto out;
	}
	strbuf_free(&why);
	/* What the daemon would show: the owners' runbook and hint, else the route's. */
	struct report_context ctx = {.route_name = route->name};
	struct chatops_owners owners;
	chatops_find_owners(cfg, ev, &owners);
	chatops_what_to_do(cfg, route, &owners, &ctx.runbook, &ctx.hint);
	cJSON *json;
	if (view_only) {
		json = report_view_new(ev, &ctx);
	} else {
		char err[512];
		if (report_templates_load(&rt, route->template_path, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			goto out;
		}
		json = report_content_new(&rt, ev, &ctx);
	}
	char *printed = cJSON_Print(json);
	printf("%s\n", printed);
	cJSON_free(printed);
	cJSON_Delete(json);
	status = EXIT_OK;
out:
	report_templates_clear(&rt);
	zuul_event_free(ev);
	config_free(cfg);
	return status;
}

int cmd_render(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"route", required_argument, NULL, 'r'},
		{"template", required_argument, NULL, 't'},
		{"partials", required_argument, NULL, 'p'},
		{"raw", required_argument, NULL, 'R'},
		{"view", no_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *route = NULL, *template_path = NULL, *partials = NULL, *raw = NULL;
	int view = 0, opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'r': route = optarg; break;
		case 't': template_path = optarg; break;
		case 'p': partials = optarg; break;
		case 'R': raw = optarg; break;
		case 'w': view = 1; break;
		case ':': return cmd_usage_error("render: option '%s' needs a value", argv[optind - 1]);
		default: return cmd_usage_error("render: unknown option '%s'", argv[optind - 1]);
		}
	}
	if (template_path || raw) {
		if (!template_path || !raw || config_path || route || view || optind != argc)
			return cmd_usage_error("render: use --template FILE [--partials DIR] --raw DATA.json");
		return render_raw(template_path, partials, raw);
	}
	if (!config_path || !route || optind != argc - 1)
		return cmd_usage_error("render: use -c FILE --route NAME [--view] EVENT.json");
	return render_route(config_path, route, argv[optind], view);
}
