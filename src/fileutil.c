/* fileutil: whole-file reads shared by the CLI, config and template loading.
 * One implementation, so size limits and error reporting stay the same everywhere. */
#include "fileutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

char *file_read_all(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (!f)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		strbuf_append(&sb, chunk, n);
	int failed = ferror(f);
	int saved = errno;
	if (f != stdin)
		fclose(f);
	if (failed) {
		strbuf_free(&sb);
		errno = saved ? saved : EIO;
		return NULL;
	}
	if (len)
		*len = sb.len;
	return strbuf_detach(&sb);
}
