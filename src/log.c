/* log: logfmt lines on stderr (or a stream tests choose).
 * Escaping and redaction of secrets live here so no caller can forget them. */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "redact.h"
#include "strbuf.h"

static enum log_level current_level = ZLOG_INFO;
static FILE *log_stream;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }
void log_set_stream(FILE *stream) { log_stream = stream; }

int log_level_parse(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "warning") == 0)
		return ZLOG_WARN;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < 4 ? level_names[level] : "info";
}

/* A logfmt value: bare when it is a plain token, otherwise quoted with \" \\ \n \t
 * escaped and other control bytes as \xNN, so a hostile payload cannot forge lines. */
static void put_escaped(struct strbuf *sb, const char *v)
{
	int bare = *v != '\0';
	for (const unsigned char *p = (const unsigned char *)v; *p && bare; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			bare = 0;
	if (bare) {
		strbuf_puts(sb, v);
		return;
	}
	strbuf_putc(sb, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		switch (*p) {
		case '"': strbuf_puts(sb, "\\\""); break;
		case '\\': strbuf_puts(sb, "\\\\"); break;
		case '\n': strbuf_puts(sb, "\\n"); break;
		case '\t': strbuf_puts(sb, "\\t"); break;
		case '\r': strbuf_puts(sb, "\\r"); break;
		default:
			if (*p < ' ' || *p == 0x7f)
				strbuf_printf(sb, "\\x%02x", *p);
			else
				strbuf_putc(sb, (char)*p);
		}
	}
	strbuf_putc(sb, '"');
}

/* Secrets go out first, before escaping could change how one is spelled: every message
 * and every value passes here, whoever wrote it and whatever it quotes. */
static void put_value(struct strbuf *sb, const char *v)
{
	struct strbuf scratch = STRBUF_INIT;
	put_escaped(sb, redact_str(v ? v : "", &scratch));
	strbuf_free(&scratch);
}

static void begin_line(struct strbuf *sb, enum log_level level, const char *msg)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char ts[32];
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_printf(sb, "ts=%s.%03dZ level=%s msg=", ts, (int)(tv.tv_usec / 1000), log_level_name(level));
	put_value(sb, msg);
}

static void end_line(struct strbuf *sb)
{
	strbuf_putc(sb, '\n');
	FILE *out = log_stream ? log_stream : stderr;
	/* One fwrite per line keeps lines whole when several processes share stderr. */
	fwrite(sb->data, 1, sb->len, out);
	fflush(out);
	strbuf_free(sb);
}

void log_kv(enum log_level level, const char *msg, ...)
{
	if (level > current_level)
		return;
	struct strbuf sb = STRBUF_INIT;
	begin_line(&sb, level, msg);
	va_list ap;
	va_start(ap, msg);
	const char *key;
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);
		strbuf_printf(&sb, " %s=", key);
		put_value(&sb, value);
	}
	va_end(ap);
	end_line(&sb);
}

void log_msgf(enum log_level level, const char *fmt, ...)
{
	if (level > current_level)
		return;
	struct strbuf msg = STRBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	strbuf_vprintf(&msg, fmt, ap);
	va_end(ap);
	struct strbuf sb = STRBUF_INIT;
	begin_line(&sb, level, strbuf_str(&msg));
	strbuf_free(&msg);
	end_line(&sb);
}
