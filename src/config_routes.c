/* config routes: the routes list, each route's name, room and template and the match and
 * exclude rules that pick its reports. */
#include "config.h"
#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The keys a route accepts, in the order messages list them. The keys of match/exclude
 * come from route_field_key() so route owns that vocabulary. */
static const char *const route_keys[] = {
	"name", "room", "template", "match", "exclude", "edit_start", "mention_oncall", "runbook", "hint",
	"digest_at", "digest_timezone", NULL,
};

/* Route names go into transaction ids (each part cut at 128 bytes) and metric labels:
 * short and plain keeps two routes from ever sharing an id. */
#define ROUTE_NAME_MAX 64

static bool route_name_ok(const char *name)
{
	if (!*name || strlen(name) > ROUTE_NAME_MAX)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

/* "!opaque:server" or "#alias:server": a sigil, a non-empty local part, a non-empty server. */
bool room_ok(const char *room)
{
	if (room[0] != '!' && room[0] != '#')
		return false;
	const char *colon = strchr(room + 1, ':');
	if (!colon || colon == room + 1 || colon[1] == '\0')
		return false;
	for (const char *p = room; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* The glob patterns at s (a list, or one string for a one-pattern list) into *out and *n_out;
 * false after reporting. An empty list is an error when nonempty is set (a field that
 * matches nothing is a mistake; to match anything, the key is left out). */
bool get_globs(struct loader *ld, const config_setting_t *s, const char *path, bool nonempty,
	       char ***out, size_t *n_out)
{
	char **pats;
	size_t np;
	if (!get_string_list(ld, s, path, true, &pats, &np))
		return false;
	bool ok = true;
	if (np == 0 && nonempty) {
		report(ld, s, "%s: empty list (expected at least one pattern; remove the key to "
			      "accept any value)", path);
		ok = false;
	}
	for (size_t k = 0; k < np; k++) {
		const char *why = glob_check(pats[k]);
		if (!why)
			continue;
		bool single = config_setting_type(s) == CONFIG_TYPE_STRING;
		const config_setting_t *e = single ? s : config_setting_get_elem(s, (unsigned)k);
		if (single)
			report(ld, e, "%s: bad glob \"%s\" (%s)", path, pats[k], why);
		else
			report(ld, e, "%s[%zu]: bad glob \"%s\" (%s)", path, k, pats[k], why);
		ok = false;
	}
	if (!ok) {
		free_strings(pats, np);
		return false;
	}
	*out = pats;
	*n_out = np;
	return true;
}

/* match (is_match) or exclude of one route. */
static void load_rules(struct loader *ld, const config_setting_t *grp, const char *prefix,
		       bool is_match, struct route_rules *out)
{
	if (config_setting_length(grp) == 0) {
		if (is_match)
			report(ld, grp, "%s: empty group (expected at least one of %s, ...; "
					"remove it to take every report)", prefix, route_field_key(ROUTE_TENANT));
		return;
	}
	const char *known[ROUTE_NFIELDS + 1];
	for (int f = 0; f < ROUTE_NFIELDS; f++)
		known[f] = route_field_key((enum route_field)f);
	known[ROUTE_NFIELDS] = NULL;
	check_keys(ld, grp, prefix, known);

	int n = config_setting_length(grp);
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		int f = route_field_from_key(config_setting_name(s));
		if (f < 0 || f >= ROUTE_NFIELDS)
			continue;
		char path[160];
		key_path(path, sizeof(path), prefix, config_setting_name(s));
		char **pats = NULL;
		size_t np = 0;
		if (!get_globs(ld, s, path, is_match, &pats, &np) || np == 0)
			continue;
		free_strings(out->field[f].patterns, out->field[f].n);
		out->field[f].patterns = pats;
		out->field[f].n = np;
	}
}

static void load_route(struct loader *ld, const config_setting_t *s, size_t idx,
		       const char *template_dir, struct config *cfg)
{
	struct route *r = &cfg->routes[idx];
	char pfx[48];
	snprintf(pfx, sizeof(pfx), "routes[%zu]", idx);
	r->line = config_setting_source_line(s);
	check_keys(ld, s, pfx, route_keys);

	const config_setting_t *ns = config_setting_get_member(s, "name");
	const char *name = NULL;
	if (!ns) {
		report(ld, s, "%s.name: missing (expected a route name of up to 64 letters, digits, '.', '_' or '-')",
		       pfx);
	} else if (get_string(ld, s, pfx, "name", &name)) {
		if (!route_name_ok(name)) {
			report(ld, ns, "%s.name: bad route name \"%s\" (expected up to 64 letters, digits, '.', '_' or '-')",
			       pfx, name);
		} else {
			for (size_t j = 0; j < idx; j++) {
				if (cfg->routes[j].name && strcmp(cfg->routes[j].name, name) == 0) {
					report(ld, ns, "%s.name: duplicate route name \"%s\" (expected a unique name; "
						       "routes[%zu] on line %d has it)", pfx, name, j, cfg->routes[j].line);
					name = NULL;
					break;
				}
			}
			r->name = xstrdup(name);
		}
	}

	const config_setting_t *rs = config_setting_get_member(s, "room");
	const char *room = NULL;
	if (!rs) {
		report(ld, s, "%s.room: missing (expected a room id \"!id:server\" or alias \"#alias:server\")", pfx);
	} else if (get_string(ld, s, pfx, "room", &room)) {
		if (room_ok(room))
			r->room = xstrdup(room);
		else
			report(ld, rs, "%s.room: bad room \"%s\" (expected a room id \"!id:server\" or alias "
				       "\"#alias:server\")", pfx, room);
	}

	const char *tpl = "default.html";
	if (get_nonempty(ld, s, pfx, "template", "a template file name or absolute path", &tpl) && template_dir) {
		char *path = tpl[0] == '/' ? path_clean(tpl) : path_resolve(template_dir, tpl);
		int err = check_readable_file(path);
		if (err) {
			const config_setting_t *ts = config_setting_get_member(s, "template");
			report(ld, ts ? ts : s, "%s.template: cannot read %s: %s", pfx, path, strerror(err));
			free(path);
		} else {
			r->template_path = path;
		}
	}

	char rpfx[64];
	const config_setting_t *g = get_group(ld, s, pfx, "match");
	if (g) {
		snprintf(rpfx, sizeof(rpfx), "%s.match", pfx);
		r->has_match = true;
		load_rules(ld, g, rpfx, true, &r->match);
	}
	g = get_group(ld, s, pfx, "exclude");
	if (g) {
		snprintf(rpfx, sizeof(rpfx), "%s.exclude", pfx);
		load_rules(ld, g, rpfx, false, &r->exclude);
	}
}

void load_routes(struct loader *ld, const config_setting_t *root, const char *template_dir,
		 struct config *cfg)
{
	const config_setting_t *rs = config_setting_get_member(root, "routes");
	if (!rs) {
		report(ld, NULL, "routes: missing (expected routes = ( { name = \"...\"; room = \"#...\"; } ); "
				 "at least one route)");
		return;
	}
	if (config_setting_type(rs) != CONFIG_TYPE_LIST) {
		type_error(ld, rs, "routes", "a list of groups: routes = ( { ... }, { ... } )");
		return;
	}
	int n = config_setting_length(rs);
	if (n == 0) {
		report(ld, rs, "routes: empty list (expected at least one route)");
		return;
	}
	cfg->routes = xcalloc((size_t)n, sizeof(struct route));
	cfg->n_routes = (size_t)n;
	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(rs, (unsigned)i);
		if (config_setting_type(s) != CONFIG_TYPE_GROUP) {
			char pfx[48];
			snprintf(pfx, sizeof(pfx), "routes[%d]", i);
			type_error(ld, s, pfx, "a group");
			continue;
		}
		load_route(ld, s, (size_t)i, template_dir, cfg);
	}
}

const struct route *config_find_route(const struct config *cfg, const char *name)
{
	for (size_t i = 0; cfg && name && i < cfg->n_routes; i++)
		if (cfg->routes[i].name && strcmp(cfg->routes[i].name, name) == 0)
			return &cfg->routes[i];
	return NULL;
}
