/* log: one logfmt line per event on stderr, so journald and grep both read it.
 *   ts=2026-11-22T10:00:00.123Z level=warn msg="payload rejected" topic=zuul/scs preview="..."
 * Values are quoted and escaped when needed; control bytes never reach the terminal. */
#ifndef ZMB_LOG_H
#define ZMB_LOG_H

#include <stdio.h>

enum log_level { ZLOG_ERROR = 0, ZLOG_WARN = 1, ZLOG_INFO = 2, ZLOG_DEBUG = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Where lines go; stderr by default. Tests point it at a file. */
void log_set_stream(FILE *stream);
/* Parses "error", "warn", "info", "debug"; returns -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* Writes msg followed by key/value pairs, a NULL-terminated list of
 * (const char *key, const char *value) pairs; a NULL value is written as "". */
void log_kv(enum log_level level, const char *msg, ...);

/* printf-style message with no extra fields. */
void log_msgf(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msgf(ZLOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msgf(ZLOG_WARN, __VA_ARGS__)
#define log_info(...) log_msgf(ZLOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msgf(ZLOG_DEBUG, __VA_ARGS__)

#endif
