/* redact: the registry of secret strings and the one function that blanks them out of
 * operator-visible text (redact.h says who calls it and why). */
#include "redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct secret {
	char *text;
	size_t len;
	bool rotating; /* a session token: only the newest REDACT_ROTATING_KEEP stay */
};

/* Oldest first, so the oldest rotating one is the first rotating one found. */
static struct secret *secrets;
static size_t n_secrets;

static bool is_known(const char *s, size_t len)
{
	for (size_t i = 0; i < n_secrets; i++)
		if (secrets[i].len == len && memcmp(secrets[i].text, s, len) == 0)
			return true;
	return false;
}

static void forget(size_t i)
{
	explicit_bzero(secrets[i].text, secrets[i].len);
	free(secrets[i].text);
	memmove(&secrets[i], &secrets[i + 1], (n_secrets - i - 1) * sizeof *secrets);
	n_secrets--;
}

static bool add(const char *secret, bool rotating)
{
	if (!secret || !*secret)
		return false;
	size_t len = strlen(secret);
	if (len < REDACT_MIN_LEN) {
		char min[16];
		snprintf(min, sizeof min, "%d", REDACT_MIN_LEN);
		log_kv(ZLOG_WARN, "a secret is too short to be redacted from logs (so short a string is "
				  "ordinary text too); use a longer password or token",
		       "min_bytes", min, NULL);
		return false;
	}
	if (is_known(secret, len))
		return true;
	if (rotating) {
		size_t kept = 0, oldest = n_secrets;
		for (size_t i = 0; i < n_secrets; i++) {
			if (secrets[i].rotating) {
				kept++;
				if (oldest == n_secrets)
					oldest = i;
			}
		}
		if (kept >= REDACT_ROTATING_KEEP)
			forget(oldest);
	}
	secrets = xrealloc(secrets, (n_secrets + 1) * sizeof *secrets);
	secrets[n_secrets++] = (struct secret){xstrndup(secret, len), len, rotating};
	return true;
}

bool redact_add(const char *secret) { return add(secret, false); }
bool redact_add_rotating(const char *secret) { return add(secret, true); }

void redact_clear(void)
{
	while (n_secrets > 0)
		forget(n_secrets - 1);
	free(secrets);
	secrets = NULL;
}

/* Marks bytes [from, from + n) of a text of len bytes; allocates the mask on first use. */
static void mark(unsigned char **mask, size_t len, size_t from, size_t n)
{
	if (!*mask)
		*mask = xcalloc(len, 1);
	memset(*mask + from, 1, n);
}

static bool ends_with(const char *text, size_t len, const char *tail)
{
	size_t n = strlen(tail);
	return len >= n && memcmp(text + len - n, tail, n) == 0;
}

/* A copy cut short (a preview, a truncated body) may end in the first part of a secret,
 * before an ellipsis or not. That part is marked when it is at least REDACT_MIN_LEN bytes:
 * the prefix of a secret is still most of a secret. */
static void mark_cut_tail(const char *text, size_t len, const struct secret *s, unsigned char **mask)
{
	size_t ends[3] = {len, 0, 0};
	size_t n_ends = 1;
	if (ends_with(text, len, "..."))
		ends[n_ends++] = len - 3;
	if (ends_with(text, len, "\xe2\x80\xa6"))
		ends[n_ends++] = len - 3;
	for (size_t e = 0; e < n_ends; e++) {
		size_t end = ends[e];
		/* The tail is a proper prefix of the secret: it starts within s->len - 1 bytes of end. */
		size_t start = end > s->len - 1 ? end - (s->len - 1) : 0;
		for (size_t at = start; at + REDACT_MIN_LEN <= end; at++) {
			if (memcmp(text + at, s->text, end - at) == 0) {
				mark(mask, len, at, end - at);
				break;
			}
		}
	}
}

/* The mask of the bytes that belong to a secret (caller frees), or NULL when none do.
 * Marking first and replacing after makes overlapping and adjacent secrets one mark, with
 * no byte of either left over. */
static unsigned char *find_secrets(const char *text, size_t len)
{
	unsigned char *mask = NULL;
	for (size_t i = 0; i < n_secrets; i++) {
		const struct secret *s = &secrets[i];
		const char *p = text, *end = text + len;
		const char *hit;
		while ((size_t)(end - p) >= s->len && (hit = memmem(p, (size_t)(end - p), s->text, s->len))) {
			mark(&mask, len, (size_t)(hit - text), s->len);
			p = hit + 1; /* "aaaaaaaaa" holds "aaaaaaaa" twice, overlapping */
		}
		mark_cut_tail(text, len, s, &mask);
	}
	return mask;
}

const char *redact_text(const char *text, size_t len, struct strbuf *scratch)
{
	if (!text || n_secrets == 0 || len == 0)
		return text;
	unsigned char *mask = find_secrets(text, len);
	if (!mask)
		return text;
	strbuf_reset(scratch);
	for (size_t i = 0; i < len;) {
		size_t j = i;
		if (mask[i]) {
			while (j < len && mask[j])
				j++;
			strbuf_puts(scratch, REDACT_MARK);
		} else {
			while (j < len && !mask[j])
				j++;
			strbuf_append(scratch, text + i, j - i);
		}
		i = j;
	}
	free(mask);
	return strbuf_str(scratch);
}

const char *redact_str(const char *text, struct strbuf *scratch)
{
	return text ? redact_text(text, strlen(text), scratch) : NULL;
}
