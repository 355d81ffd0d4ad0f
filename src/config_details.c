/* config details: the details group, the hosts build details may be fetched from and the
 * limits of each fetch (issue #16). */
#include "config.h"
#include "config_internal.h"

#include "details_url.h"

#include <stdio.h>
#include <stdlib.h>

/* The keys of the details group, in the order messages list them. */
static const char *const details_keys[] = {
	"hosts", "timeout", "max_download", "max_output", NULL,
};

/* The hosts build details may be fetched from (issue #16). Absent: nothing is fetched,
 * so the group is all or nothing: present, it needs at least one good host. */
void load_details(struct loader *ld, const config_setting_t *root, struct config_details *dt)
{
	dt->timeout_s = 20;
	dt->max_download = 8 * 1024 * 1024;
	dt->max_output = 32 * 1024 * 1024;
	const config_setting_t *grp = get_group(ld, root, NULL, "details");
	if (!grp)
		return;
	const char *pfx = "details";
	check_keys(ld, grp, pfx, details_keys);
	long long timeout = dt->timeout_s;
	if (get_duration(ld, grp, pfx, "timeout", 1, 300, &timeout))
		dt->timeout_s = (int)timeout;
	get_size(ld, grp, pfx, "max_download", 1024, 256 * 1024 * 1024, &dt->max_download);
	get_size(ld, grp, pfx, "max_output", 1024, 256 * 1024 * 1024, &dt->max_output);
	const config_setting_t *s = config_setting_get_member(grp, "hosts");
	if (!s) {
		report(ld, grp, "details.hosts: missing (expected hosts = [\"zuul.example.org\"]; the hosts "
				"build details may be fetched from; remove the details group to fetch nothing)");
		return;
	}
	char **v;
	size_t n;
	if (!get_string_list(ld, s, "details.hosts", true, &v, &n))
		return;
	bool ok = true;
	if (n == 0) {
		report(ld, s, "details.hosts: empty list (expected at least one host such as "
			      "\"zuul.example.org\"; remove the details group to fetch nothing)");
		ok = false;
	}
	bool single = config_setting_type(s) == CONFIG_TYPE_STRING;
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < n; i++) {
		const char *why = details_host_pattern_problem(v[i]);
		if (!why)
			continue;
		char at[48];
		if (single)
			snprintf(at, sizeof at, "details.hosts");
		else
			snprintf(at, sizeof at, "details.hosts[%zu]", i);
		report(ld, single ? s : config_setting_get_elem(s, (unsigned)i),
		       "%s: bad host %s: %s (expected \"host\" or \"host:port\", e.g. \"zuul.example.org\" or "
		       "\"logs.example.org:8443\")", at, shown(&sb, v[i]), why);
		ok = false;
	}
	strbuf_free(&sb);
	if (!ok) {
		free_strings(v, n);
		return;
	}
	dt->hosts = v;
	dt->n_hosts = n;
	dt->enabled = true;
}
