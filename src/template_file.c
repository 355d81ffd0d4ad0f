/* template_file: the one place the template module touches the file system.
 * Loads a template file and feeds its partials from a directory to template_new(). */
#include "template.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/* Reads a whole regular file. Returns its bytes, NUL-terminated (caller frees), or NULL
 * with errno set: EISDIR for a directory, EINVAL for anything else not a regular file
 * (O_NONBLOCK so that a FIFO is refused instead of waited on). */
static char *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return NULL;
	struct stat st;
	int e = 0;
	if (fstat(fd, &st) != 0)
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	else if (!S_ISREG(st.st_mode))
		e = EINVAL;
	if (e) {
		close(fd);
		errno = e;
		return NULL;
	}
	struct strbuf sb = STRBUF_INIT;
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			close(fd);
			strbuf_free(&sb);
			errno = e;
			return NULL;
		}
		if (n == 0)
			break;
		strbuf_append(&sb, chunk, (size_t)n);
	}
	close(fd);
	*len = sb.len;
	return strbuf_detach(&sb);
}

struct partial_dir {
	const char *dir;
	const char *template_path; /* for log lines */
};

/* template_partial_fn over a directory: DIR/NAME, then DIR/NAME.mustache. */
static char *read_partial(const char *name, size_t *len, void *ctx)
{
	const struct partial_dir *pd = ctx;
	/* A partial name comes from the template text; "../secret" or "/etc/passwd" must not
	 * read outside the partials directory, so such names are refused (rendered as missing). */
	if (name[0] == '\0' || name[0] == '.' || strchr(name, '/')) {
		log_kv(ZLOG_WARN, "template: partial refused: names may not contain '/' or start with '.'", "template",
		       pd->template_path, "partial", name, NULL);
		return NULL;
	}
	static const char *const suffixes[] = {"", ".mustache"};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		struct strbuf path = STRBUF_INIT;
		strbuf_printf(&path, "%s/%s%s", pd->dir, name, suffixes[i]);
		char *src = read_file(path.data, len);
		int e = errno;
		if (!src && e != ENOENT)
			log_kv(ZLOG_WARN, "template: partial unreadable, trying next", "path", path.data, "error",
			       strerror(e), NULL);
		strbuf_free(&path);
		if (src)
			return src;
	}
	/* The spec renders a missing partial as "", but a typo should not go unnoticed. */
	log_kv(ZLOG_WARN, "template: partial not found, renders as empty", "template", pd->template_path, "partial",
	       name, "dir", pd->dir, NULL);
	return NULL;
}

/* Returns a new template (caller frees with template_free), or NULL with err set. */
struct template *template_load_file(const char *path, const char *partials_dir, char *err, size_t errlen)
{
	size_t len = 0;
	char *src = read_file(path, &len);
	if (!src) {
		if (err && errlen)
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	char *dir = NULL;
	if (!partials_dir) {
		const char *slash = strrchr(path, '/');
		if (!slash)
			dir = xstrdup(".");
		else if (slash == path)
			dir = xstrdup("/");
		else
			dir = xstrndup(path, (size_t)(slash - path));
	}
	struct partial_dir pd = {partials_dir ? partials_dir : dir, path};
	struct template *t = template_new(src, len, path, read_partial, &pd, err, errlen);
	free(src);
	free(dir);
	return t;
}
