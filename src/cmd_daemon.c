/* cmd_daemon: `zuul-matrix-bridge -c FILE`, the bridge in the foreground. Loads the
 * configuration with its secrets, then hands over to the bridge until a stop signal. */
#include <stdio.h>

#include "bridge.h"
#include "cmd.h"
#include "config.h"
#include "log.h"
#include "mqtt.h"
#include "strbuf.h"

int cmd_daemon(const char *config_path, bool verbose)
{
	struct config *cfg = cmd_load_config(config_path, CONFIG_NEED_SECRETS);
	if (!cfg)
		return EXIT_FAILURE_;
	mqtt_library_init();
	bool state_damaged;
	struct bridge *b = bridge_new(cfg, verbose, &state_damaged);
	int status = b ? bridge_run(b) : state_damaged ? EXIT_STATE_DAMAGED : EXIT_FAILURE_;
	bridge_free(b);
	mqtt_library_cleanup();
	return status;
}
