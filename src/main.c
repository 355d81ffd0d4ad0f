/* main: the zuul-matrix-bridge command line. Parses the global options, then hands
 * over to one command (src/cmd_*.c) or to the daemon. No protocol details here. */
#include <getopt.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "cmd.h"
#include "log.h"

static const char usage_text[] =
	"Usage:\n"
	"  zuul-matrix-bridge -c FILE [-v]            run the bridge in the foreground\n"
	"  zuul-matrix-bridge --check-config -c FILE  validate FILE and its templates, then exit\n"
	"  zuul-matrix-bridge render -c FILE --route NAME [--view] EVENT.json\n"
	"        print the Matrix message content the route would post for EVENT.json\n"
	"        (--view: the template's view model instead), or why the route does not match\n"
	"  zuul-matrix-bridge render --template FILE [--partials DIR] --raw DATA.json\n"
	"        render a Mustache template over JSON data, exactly, to stdout\n"
	"  zuul-matrix-bridge explain -c FILE EVENT.json\n"
	"        say for every route whether EVENT.json matches it, and why\n"
	"  zuul-matrix-bridge dead-letters -c FILE [--retry ID|all]\n"
	"        list the reports the homeserver refused for good, or queue them again\n"
	"        (a running bridge picks them up at its next reload: SIGHUP)\n"
	"  zuul-matrix-bridge reset-state -c FILE\n"
	"        move a damaged state database aside (renamed, not deleted): the next start\n"
	"        begins fresh; the bridge must be stopped\n"
	"  zuul-matrix-bridge --help | --version\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE   configuration file (libconfig syntax)\n"
	"  -v, --verbose       log at debug level (overrides log_level)\n"
	"  -h, --help          this text\n"
	"  -V, --version       the version\n"
	"\n"
	"EVENT.json and DATA.json may be - for standard input.\n"
	"Exit status: 0 success, 1 failure or no match, 2 bad command line,\n"
	"3 the state database is damaged (the bridge refuses to start; see reset-state).\n"
	"Secrets: ZMB_MATRIX_ACCESS_TOKEN and ZMB_MQTT_PASSWORD, or the *_file config keys.\n";

int cmd_usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("zuul-matrix-bridge: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'zuul-matrix-bridge --help'.\n", stderr);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "render") == 0)
		return cmd_render(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "explain") == 0)
		return cmd_explain(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "dead-letters") == 0)
		return cmd_dead_letters(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "reset-state") == 0)
		return cmd_reset_state(argc - 1, argv + 1);

	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL;
	int check_only = 0;
	bool verbose = false;
	int opt;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:vhV", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'C': check_only = 1; break;
		case 'v':
			verbose = true;
			log_set_level(ZLOG_DEBUG);
			break;
		case 'h': fputs(usage_text, stdout); return EXIT_OK;
		case 'V': printf("zuul-matrix-bridge %s\n", ZMB_VERSION); return EXIT_OK;
		case ':': return cmd_usage_error("option '%s' needs a value", argv[optind - 1]);
		default: return cmd_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cmd_usage_error("unknown command '%s'", argv[optind]);
	if (!config_path)
		return cmd_usage_error("no configuration file (use -c FILE)");
	if (check_only)
		return cmd_check_config(config_path);
	return cmd_daemon(config_path, verbose);
}
