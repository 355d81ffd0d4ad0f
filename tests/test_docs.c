/* Tests of the operator documentation: docs/configuration.md documents exactly the keys
 * config_all_keys() lists, the man page covers every command and option of --help and
 * renders without warnings, and the docs' relative links and anchors lead somewhere. */
#include "build_config.h"
#include "config.h"
#include "fileutil.h"
#include "strbuf.h"
#include "test.h"

#include <ctype.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONFIG_DOC "docs/configuration.md"
#define MAN_PAGE "docs/zuul-matrix-bridge.8.in"

/* ZMB_SOURCE_ROOT/rel, whole; NULL when unreadable. Caller frees. */
static char *read_source(const char *rel)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", ZMB_SOURCE_ROOT, rel);
	return file_read_all(path, NULL);
}

/* The build directory (meson sets ZMB_BUILD_ROOT for every test). */
static const char *build_root(void)
{
	const char *b = getenv("ZMB_BUILD_ROOT");
	return b && *b ? b : ZMB_SOURCE_ROOT "/build";
}

/* Runs argv[0] with its standard output and error captured together; *status is the
 * exit status, or -1 when it could not run or did not exit. Caller frees. */
static char *run_capture(char *const argv[], int *status)
{
	struct strbuf out = STRBUF_INIT;
	*status = -1;
	int fds[2];
	if (pipe(fds) != 0)
		return strbuf_detach(&out);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	char chunk[4096];
	ssize_t n;
	while (pid > 0 && (n = read(fds[0], chunk, sizeof chunk)) > 0)
		strbuf_append(&out, chunk, (size_t)n);
	close(fds[0]);
	int ws;
	if (pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws))
		*status = WEXITSTATUS(ws);
	return strbuf_detach(&out);
}

/* ---- configuration.md -------------------------------------------------------- */

/* Whether doc names key the way the reference does: in backticks, whole. */
static bool doc_has_key(const char *doc, const char *key)
{
	struct strbuf needle = STRBUF_INIT;
	strbuf_printf(&needle, "`%s`", key);
	bool found = strstr(doc, strbuf_str(&needle)) != NULL;
	strbuf_free(&needle);
	return found;
}

static bool is_known_key(const char *key)
{
	for (const char *const *k = config_all_keys(); *k; k++)
		if (strcmp(*k, key) == 0)
			return true;
	return false;
}

/* The key of a "### `key`" heading line, or NULL for any other line. Caller frees. */
static char *heading_key(const char *line, size_t len)
{
	static const char prefix[] = "### `";
	size_t plen = sizeof prefix - 1;
	if (len <= plen || strncmp(line, prefix, plen) != 0)
		return NULL;
	const char *end = memchr(line + plen, '`', len - plen);
	if (!end)
		return NULL;
	for (const char *p = end + 1; p < line + len; p++)
		if (!isspace((unsigned char)*p))
			return NULL; /* "### `a` and `b`": prose, not a key heading */
	return xstrndup(line + plen, (size_t)(end - line - plen));
}

static void test_every_config_key_is_documented(void)
{
	char *doc = read_source(CONFIG_DOC);
	CHECK(doc != NULL);
	if (!doc)
		return;
	size_t n = 0;
	for (const char *const *k = config_all_keys(); *k; k++, n++) {
		if (!doc_has_key(doc, *k)) {
			test_current_failed = 1;
			printf("# %s: expected the key `%s` (in backticks), found nothing\n", CONFIG_DOC, *k);
		}
	}
	/* An empty key list would pass the loop above without checking anything. */
	CHECK(n >= 40);
	free(doc);
}

static void test_every_key_heading_names_a_real_key(void)
{
	char *doc = read_source(CONFIG_DOC);
	CHECK(doc != NULL);
	if (!doc)
		return;
	size_t headings = 0;
	for (const char *line = doc; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char *key = heading_key(line, len);
		if (key) {
			headings++;
			if (!is_known_key(key)) {
				test_current_failed = 1;
				printf("# %s: heading names `%s`, expected a key of config_all_keys() (a removed or "
				       "misspelt key?)\n", CONFIG_DOC, key);
			}
			free(key);
		}
		line += len + (nl ? 1 : 0);
	}
	CHECK(headings >= 30);
	free(doc);
}

static void test_key_check_needs_backticks_and_the_whole_key(void)
{
	CHECK(doc_has_key("see `mqtt.tls.ca_file` here", "mqtt.tls.ca_file"));
	CHECK(!doc_has_key("see mqtt.tls.ca_file here", "mqtt.tls.ca_file"));
	CHECK(!doc_has_key("see `mqtt.hostname`", "mqtt.host"));
	CHECK(!doc_has_key("see `tls.ca_file`", "mqtt.tls.ca_file"));
	char *k = heading_key("### `mqtt.port`  ", 17);
	CHECK_STR(k, "mqtt.port");
	free(k);
	CHECK(heading_key("### `a` and `b`", 15) == NULL);
	CHECK(heading_key("## `mqtt`", 9) == NULL);
	CHECK(!is_known_key("mqtt.hostname"));
	CHECK(is_known_key("routes.exclude.build_results"));
}

/* ---- the man page ----------------------------------------------------------------- */

/* The text a reader sees, roughly: comment lines dropped, font changes and
 * zero-width escapes removed, "\-" as "-", "\(dq" as '"'. Caller frees. */
static char *troff_plain(const char *src)
{
	struct strbuf sb = STRBUF_INIT;
	bool line_start = true;
	for (const char *p = src; *p;) {
		if (line_start && strncmp(p, ".\\\"", 3) == 0) {
			const char *nl = strchr(p, '\n');
			p = nl ? nl + 1 : p + strlen(p);
			continue;
		}
		line_start = false;
		if (*p == '\n')
			line_start = true;
		if (*p != '\\' || !p[1]) {
			strbuf_putc(&sb, *p++);
			continue;
		}
		char c = p[1];
		p += 2;
		if (c == '-') {
			strbuf_putc(&sb, '-');
		} else if (c == 'e') {
			strbuf_putc(&sb, '\\');
		} else if (c == '&' || c == '%' || c == ':') {
			/* zero-width */
		} else if (c == 'f') {
			if (*p == '(' && p[1] && p[2])
				p += 3;
			else if (*p == '[')
				p = strchr(p, ']') ? strchr(p, ']') + 1 : p + strlen(p);
			else if (*p)
				p++;
		} else if (c == '(' && p[0] && p[1]) {
			strbuf_putc(&sb, strncmp(p, "dq", 2) == 0 ? '"' : ' ');
			p += 2;
		} else {
			strbuf_putc(&sb, '\\');
			strbuf_putc(&sb, c);
		}
	}
	return strbuf_detach(&sb);
}

static bool word_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* Whether word occurs in text on its own: "-c" is not found in "--config" nor in "-cx". */
static bool has_word(const char *text, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = strstr(text, word); p; p = strstr(p + 1, word))
		if ((p == text || !word_char(p[-1])) && !word_char(p[n]))
			return true;
	return false;
}

struct words {
	char **v;
	size_t n;
};

static void words_add(struct words *w, const char *s, size_t len)
{
	for (size_t i = 0; i < w->n; i++)
		if (strlen(w->v[i]) == len && strncmp(w->v[i], s, len) == 0)
			return;
	w->v = xrealloc(w->v, (w->n + 1) * sizeof *w->v);
	w->v[w->n++] = xstrndup(s, len);
}

static void words_free(struct words *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i]);
	free(w->v);
}

/* Every option of a --help text ("-c", "--check-config", ...), each once: a '-' or "--"
 * followed by a letter, at the start of a word. "-" alone (stdin) and "dead-letters" are
 * not options. */
static void help_options(const char *help, struct words *out)
{
	for (const char *p = help; *p; p++) {
		if (*p != '-' || (p > help && word_char(p[-1])))
			continue;
		const char *name = p[1] == '-' ? p + 2 : p + 1;
		if (!isalpha((unsigned char)*name))
			continue;
		const char *end = name;
		while (word_char(*end))
			end++;
		words_add(out, p, (size_t)(end - p));
		p = end - 1;
	}
}

/* Every command of a --help text: the word after "zuul-matrix-bridge " on a usage line
 * when it is not an option ("render", "explain", ...). */
static void help_commands(const char *help, struct words *out)
{
	static const char prog[] = "zuul-matrix-bridge ";
	for (const char *p = strstr(help, prog); p; p = strstr(p + 1, prog)) {
		const char *w = p + sizeof prog - 1;
		if (!isalpha((unsigned char)*w))
			continue;
		const char *end = w;
		while (word_char(*end))
			end++;
		words_add(out, w, (size_t)(end - w));
	}
}

/* The binary's --help; NULL (reported) when it cannot be run. Caller frees. */
static char *binary_help(void)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/zuul-matrix-bridge", build_root());
	if (access(path, X_OK) != 0) {
		printf("# expected the binary at %s (meson builds it before this test), found none\n", path);
		return NULL;
	}
	char *argv[] = {path, "--help", NULL};
	int status;
	char *help = run_capture(argv, &status);
	if (status != 0) {
		printf("# %s --help: expected exit status 0, got %d\n", path, status);
		free(help);
		return NULL;
	}
	return help;
}

static void test_option_check_needs_the_whole_option(void)
{
	char *plain = troff_plain(".\\\" --comment\n.BR \\-c \", \" \\-\\-config\n\\fB\\-\\-view\\fR,\n");
	CHECK_NOT_CONTAINS(plain, "--comment");
	CHECK(has_word(plain, "-c"));
	CHECK(has_word(plain, "--config"));
	CHECK(has_word(plain, "--view"));
	CHECK(!has_word(plain, "--conf"));
	CHECK(!has_word(plain, "-v"));
	CHECK(!has_word("--configure", "--config"));
	free(plain);
}

static void test_help_parser_finds_options_and_commands(void)
{
	const char *help = "Usage:\n  zuul-matrix-bridge -c FILE [-v]\n"
			   "  zuul-matrix-bridge dead-letters -c FILE [--retry ID|all]\n"
			   "  zuul-matrix-bridge --help | --version\n"
			   "EVENT.json may be - for standard input; see *_file keys.\n";
	struct words opts = {0}, cmds = {0};
	help_options(help, &opts);
	help_commands(help, &cmds);
	CHECK_INT(opts.n, 5);
	if (opts.n == 5) {
		CHECK_STR(opts.v[0], "-c");
		CHECK_STR(opts.v[1], "-v");
		CHECK_STR(opts.v[2], "--retry");
		CHECK_STR(opts.v[3], "--help");
		CHECK_STR(opts.v[4], "--version");
	}
	CHECK_INT(cmds.n, 1);
	if (cmds.n == 1)
		CHECK_STR(cmds.v[0], "dead-letters");
	words_free(&opts);
	words_free(&cmds);
}

static void test_every_help_option_and_command_is_in_the_man_page(void)
{
	char *src = read_source(MAN_PAGE);
	char *help = binary_help();
	CHECK(src != NULL);
	CHECK(help != NULL);
	if (src && help) {
		char *plain = troff_plain(src);
		struct words opts = {0}, cmds = {0};
		help_options(help, &opts);
		help_commands(help, &cmds);
		/* The parse itself must have found something, or nothing was compared. */
		CHECK(opts.n >= 10);
		CHECK(cmds.n >= 3);
		for (size_t i = 0; i < opts.n; i++) {
			if (!has_word(plain, opts.v[i])) {
				test_current_failed = 1;
				printf("# %s: expected the option %s of --help, found nothing\n", MAN_PAGE, opts.v[i]);
			}
		}
		for (size_t i = 0; i < cmds.n; i++) {
			if (!has_word(plain, cmds.v[i])) {
				test_current_failed = 1;
				printf("# %s: expected the command %s of --help, found nothing\n", MAN_PAGE, cmds.v[i]);
			}
		}
		words_free(&opts);
		words_free(&cmds);
		free(plain);
	}
	free(src);
	free(help);
}

static void test_man_page_has_every_section(void)
{
	static const char *const sections[] = {
		"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "CONFIGURATION", "SIGNALS",
		"ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO",
	};
	char *src = read_source(MAN_PAGE);
	CHECK(src != NULL);
	if (!src)
		return;
	for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
		char line[64], quoted[64];
		snprintf(line, sizeof line, "\n.SH %s\n", sections[i]);
		snprintf(quoted, sizeof quoted, "\n.SH \"%s\"\n", sections[i]);
		if (!strstr(src, line) && !strstr(src, quoted)) {
			test_current_failed = 1;
			printf("# %s: expected a section \".SH %s\", found none\n", MAN_PAGE, sections[i]);
		}
	}
	free(src);
}

static void test_man_page_names_signals_and_environment(void)
{
	static const char *const words[] = {
		"SIGTERM", "SIGINT", "SIGHUP", "ZMB_MATRIX_ACCESS_TOKEN", "ZMB_MQTT_PASSWORD",
		"CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "state.db",
	};
	char *src = read_source(MAN_PAGE);
	CHECK(src != NULL);
	if (!src)
		return;
	char *plain = troff_plain(src);
	for (size_t i = 0; i < sizeof words / sizeof *words; i++)
		CHECK_CONTAINS(plain, words[i]);
	free(plain);
	free(src);
}

/* groff's own checks (-ww: all warnings) catch broken macros and escapes that would
 * show up as garbage in `man`. Without groff there is nothing to run: said, not failed. */
static void test_man_page_renders_without_warnings(void)
{
	char groff[] = "/usr/bin/groff";
	if (access(groff, X_OK) != 0) {
		printf("# %s not installed; rendering not checked\n", groff);
		return;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", ZMB_SOURCE_ROOT, MAN_PAGE);
	char *argv[] = {groff, "-man", "-ww", "-z", path, NULL};
	int status;
	char *out = run_capture(argv, &status);
	CHECK_INT(status, 0);
	CHECK_STR(out, "");
	free(out);
}

/* meson fills in the version and the paths; a placeholder left over would be printed
 * as is by man. */
static void test_configured_man_page_has_version_and_no_placeholders(void)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/zuul-matrix-bridge.8", build_root());
	char *page = file_read_all(path, NULL);
	if (!page) {
		printf("# expected the configured man page at %s, found none\n", path);
		test_current_failed = 1;
		return;
	}
	char *plain = troff_plain(page);
	CHECK_CONTAINS(plain, "\"zuul-matrix-bridge " ZMB_VERSION "\"");
	CHECK_CONTAINS(plain, ZMB_TEMPLATE_DIR "/default.html");
	CHECK_CONTAINS(plain, ZMB_STATE_DIR "/state.db");
	free(plain);
	for (const char *p = strchr(page, '@'); p; p = strchr(p + 1, '@')) {
		const char *q = p + 1;
		while (isupper((unsigned char)*q) || *q == '_')
			q++;
		if (q > p + 1 && *q == '@') {
			test_current_failed = 1;
			printf("# %s: expected every @PLACEHOLDER@ replaced, got %.*s\n", path, (int)(q - p + 1), p);
		}
	}
	free(page);
}

/* ---- links ------------------------------------------------------------------------ */

/* GitHub's anchor of a heading: lower case, spaces to '-', other punctuation but '-'
 * and '_' dropped ("`routes.template`" -> "routestemplate"). Caller frees. */
static char *anchor_of(const char *heading, size_t len)
{
	struct strbuf sb = STRBUF_INIT;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)heading[i];
		if (isalnum(c) || c == '-' || c == '_' || c >= 0x80)
			strbuf_putc(&sb, (char)tolower(c));
		else if (c == ' ')
			strbuf_putc(&sb, '-');
	}
	return strbuf_detach(&sb);
}

static bool doc_has_anchor(const char *doc, const char *anchor)
{
	for (const char *line = doc; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		size_t hashes = 0;
		while (hashes < len && line[hashes] == '#')
			hashes++;
		if (hashes > 0 && hashes < len && line[hashes] == ' ') {
			char *a = anchor_of(line + hashes + 1, len - hashes - 1);
			bool same = strcmp(a, anchor) == 0;
			free(a);
			if (same)
				return true;
		}
		line += len + (nl ? 1 : 0);
	}
	return false;
}

/* Checks every Markdown link "](target)" of the file rel (relative to the source root):
 * a relative file must exist, a "#fragment" must be a heading of the linked Markdown file. */
static void check_links(const char *rel)
{
	char *doc = read_source(rel);
	if (!doc) {
		test_current_failed = 1;
		printf("# expected %s, found nothing\n", rel);
		return;
	}
	char dir[1024];
	snprintf(dir, sizeof dir, "%s", rel);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[1] = '\0';
	else
		dir[0] = '\0';
	for (const char *p = strstr(doc, "]("); p; p = strstr(p + 2, "](")) {
		const char *t = p + 2, *end = strchr(t, ')');
		if (!end || memchr(t, '\n', (size_t)(end - t)))
			continue;
		char *target = xstrndup(t, (size_t)(end - t));
		if (strstr(target, "://") || strncmp(target, "mailto:", 7) == 0) {
			free(target);
			continue;
		}
		char *frag = strchr(target, '#');
		if (frag)
			*frag++ = '\0';
		char file[2048];
		snprintf(file, sizeof file, "%s%s", dir, *target ? target : rel + strlen(dir));
		char *linked = *target ? read_source(file) : xstrdup(doc);
		char full[4096];
		snprintf(full, sizeof full, "%s/%s", ZMB_SOURCE_ROOT, file);
		if (!linked && access(full, F_OK) != 0) {
			test_current_failed = 1;
			printf("# %s: link to %s: expected an existing file, found none\n", rel, file);
		} else if (frag && linked && strlen(file) > 3 && strcmp(file + strlen(file) - 3, ".md") == 0 &&
			   !doc_has_anchor(linked, frag)) {
			test_current_failed = 1;
			printf("# %s: link to %s#%s: expected a heading with that anchor, found none\n", rel, file,
			       frag);
		}
		free(linked);
		free(target);
	}
	free(doc);
}

static void test_anchor_follows_github_rules(void)
{
	char *a = anchor_of("`routes.template`", 17);
	CHECK_STR(a, "routestemplate");
	free(a);
	a = anchor_of("Fields of `match` and `exclude`", 31);
	CHECK_STR(a, "fields-of-match-and-exclude");
	free(a);
	CHECK(doc_has_anchor("# T\n\n### `template_dir`\n", "template_dir"));
	CHECK(!doc_has_anchor("# T\n\n### `template_dir`\n", "templatedir"));
}

static void test_docs_links_lead_somewhere(void)
{
	check_links(CONFIG_DOC);
	check_links("docs/migrating.md");
	check_links("README.md");
}

int main(void)
{
	RUN(test_key_check_needs_backticks_and_the_whole_key);
	RUN(test_every_config_key_is_documented);
	RUN(test_every_key_heading_names_a_real_key);
	RUN(test_option_check_needs_the_whole_option);
	RUN(test_help_parser_finds_options_and_commands);
	RUN(test_every_help_option_and_command_is_in_the_man_page);
	RUN(test_man_page_has_every_section);
	RUN(test_man_page_names_signals_and_environment);
	RUN(test_man_page_renders_without_warnings);
	RUN(test_configured_man_page_has_version_and_no_placeholders);
	RUN(test_anchor_follows_github_rules);
	RUN(test_docs_links_lead_somewhere);
	return test_done();
}
