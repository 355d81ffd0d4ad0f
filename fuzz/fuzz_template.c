/* fuzz_template: libFuzzer target for the Mustache engine.
 * Input is TEMPLATE NUL JSON-DATA; every partial name resolves to the template itself.
 * Build src/template.c with -DTEMPLATE_MAX_STEPS=20000: "{{>a}}{{>a}}" then stops 50x sooner. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strbuf.h"
#include "template.h"

struct source {
	const char *s;
	size_t len;
};

/* Any partial is the template itself, so recursion, indentation and partial errors all
 * get exercised from one input; names that reach here are the engine's concern. */
static char *self_partial(const char *name, size_t *len, void *ctx)
{
	const struct source *src = ctx;
	if (name[0] == 'z') /* and some names miss, as in real life */
		return NULL;
	char *copy = xmalloc(src->len + 1);
	memcpy(copy, src->s, src->len);
	copy[src->len] = '\0';
	*len = src->len;
	return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The depth and budget limits warn; thousands of lines would hide real findings. */
	log_set_level(ZLOG_ERROR);
	const char *in = (const char *)data;
	const char *nul = memchr(in, '\0', size);
	size_t tlen = nul ? (size_t)(nul - in) : size;
	struct source src = {in, tlen};

	cJSON *json = NULL;
	if (nul)
		json = cJSON_ParseWithLength(nul + 1, size - tlen - 1);

	char err[256];
	struct template *t = template_new(in, tlen, "<fuzz>", self_partial, &src, err, sizeof(err));
	if (t) {
		struct strbuf out = STRBUF_INIT;
		template_render(t, json, &out);
		/* Twice: a parsed template must not be changed by rendering it. */
		size_t first = out.len;
		strbuf_reset(&out);
		template_render(t, json, &out);
		if (out.len != first)
			abort();
		strbuf_free(&out);
		template_free(t);
	} else if (strlen(err) == 0) {
		abort(); /* a failed parse always says why */
	}
	cJSON_Delete(json);
	return 0;
}
