/* zuul_token: RS256 JSON Web Tokens for Zuul's admin API (see zuul_token.h), made with
 * libcrypto's EVP interface; the claims are written with cJSON like every other JSON here. */
#include "zuul_token.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "strbuf.h"

struct zuul_token_key {
	EVP_PKEY *pkey;
};

/* An encrypted key would make libcrypto ask for a pass phrase on the terminal: a daemon
 * has none to give, so the answer is "no pass phrase" and the key is refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static const char *key_type_name(int id)
{
	switch (id) {
	case EVP_PKEY_EC: return "an EC key";
	case EVP_PKEY_ED25519: return "an Ed25519 key";
	case EVP_PKEY_ED448: return "an Ed448 key";
	case EVP_PKEY_DSA: return "a DSA key";
	case EVP_PKEY_DH: return "a DH key";
	default: return "a key of another type";
	}
}

struct zuul_token_key *zuul_token_key_parse(const char *pem, size_t len, char *why, size_t whylen)
{
	if (len > (size_t)INT32_MAX) {
		snprintf(why, whylen, "too large for a key");
		return NULL;
	}
	bool encrypted = len && strstr(pem, "ENCRYPTED") != NULL;
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	ERR_clear_error(); /* the reasons are ours to give, not left for the next caller */
	if (!pkey) {
		snprintf(why, whylen, encrypted ? "an encrypted private key (expected one without a pass phrase: "
						  "the daemon has nobody to ask for it)"
						: "not a PEM private key (expected \"-----BEGIN PRIVATE KEY-----\" or "
						  "\"-----BEGIN RSA PRIVATE KEY-----\")");
		return NULL;
	}
	int id = EVP_PKEY_get_base_id(pkey);
	if (id != EVP_PKEY_RSA) {
		snprintf(why, whylen, "%s, not RSA (RS256 needs an RSA key)", key_type_name(id));
		EVP_PKEY_free(pkey);
		return NULL;
	}
	int bits = EVP_PKEY_get_bits(pkey);
	if (bits < ZUUL_TOKEN_MIN_RSA_BITS) {
		snprintf(why, whylen, "a %d-bit RSA key (expected at least %d bits)", bits, ZUUL_TOKEN_MIN_RSA_BITS);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	struct zuul_token_key *key = xcalloc(1, sizeof *key);
	key->pkey = pkey;
	return key;
}

void zuul_token_key_free(struct zuul_token_key *key)
{
	if (!key)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

char *zuul_token_public_pem(const struct zuul_token_key *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = NULL;
	if (bio && PEM_write_bio_PUBKEY(bio, key->pkey) == 1) {
		char *data;
		long n = BIO_get_mem_data(bio, &data);
		if (n > 0)
			out = xstrndup(data, (size_t)n);
	}
	BIO_free(bio);
	return out;
}

size_t zuul_token_b64url_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

void zuul_token_b64url(const unsigned char *in, size_t n, char *out)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = alphabet[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = alphabet[v & 63];
	}
	out[o] = '\0';
}

static void put_b64url(struct strbuf *sb, const unsigned char *data, size_t n)
{
	char *enc = xmalloc(zuul_token_b64url_len(n) + 1);
	zuul_token_b64url(data, n, enc);
	strbuf_puts(sb, enc);
	free(enc);
}

static bool claim_ok(const char *s)
{
	return s && *s;
}

/* 16 random bytes as hex: a token id nobody can guess or repeat. */
static bool random_jti(char out[33])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof b) != 1)
		return false;
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return true;
}

/* The RS256 signature of the signing input, appended base64url. */
static bool sign_into(const struct zuul_token_key *key, struct strbuf *sb)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t siglen = 0;
	unsigned char *sig = NULL;
	bool ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		  EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)sb->data, sb->len) == 1;
	if (ok) {
		sig = xmalloc(siglen);
		ok = EVP_DigestSign(md, sig, &siglen, (const unsigned char *)sb->data, sb->len) == 1;
	}
	if (ok) {
		strbuf_putc(sb, '.');
		put_b64url(sb, sig, siglen);
	}
	free(sig);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok;
}

char *zuul_token_mint(const struct zuul_token_key *key, const struct zuul_token_claims *c)
{
	if (!key || !c || !claim_ok(c->issuer) || !claim_ok(c->audience) || !claim_ok(c->subject) ||
	    c->lifetime_s < 1 || c->lifetime_s > ZUUL_TOKEN_MAX_LIFETIME_S || c->issued_at <= 0 ||
	    (c->jti && !*c->jti))
		return NULL;
	char jti[33];
	if (!c->jti && !random_jti(jti))
		return NULL;
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	cJSON *payload = cJSON_CreateObject();
	cJSON_AddStringToObject(payload, "iss", c->issuer);
	cJSON_AddStringToObject(payload, "aud", c->audience);
	cJSON_AddStringToObject(payload, "sub", c->subject);
	cJSON_AddNumberToObject(payload, "iat", (double)c->issued_at);
	cJSON_AddNumberToObject(payload, "exp", (double)(c->issued_at + c->lifetime_s));
	cJSON_AddStringToObject(payload, "jti", c->jti ? c->jti : jti);
	char *json = cJSON_PrintUnformatted(payload);
	cJSON_Delete(payload);
	if (!json)
		return NULL;
	struct strbuf sb = STRBUF_INIT;
	put_b64url(&sb, (const unsigned char *)header, sizeof header - 1);
	strbuf_putc(&sb, '.');
	put_b64url(&sb, (const unsigned char *)json, strlen(json));
	cJSON_free(json);
	if (!sign_into(key, &sb)) {
		strbuf_free(&sb);
		return NULL;
	}
	return strbuf_detach(&sb);
}
