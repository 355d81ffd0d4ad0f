/* fileutil: whole-file reads and small path helpers, shared by the CLI, config and templates. */
#ifndef ZMB_FILEUTIL_H
#define ZMB_FILEUTIL_H

#include <stddef.h>

/* Reads the whole file at path (NUL-terminated; *len excludes the NUL; len may be
 * NULL). "-" reads standard input. Returns NULL with errno set on failure.
 * Caller frees. */
char *file_read_all(const char *path, size_t *len);

#endif
