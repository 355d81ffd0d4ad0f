/* Tests of zuul_token: the RS256 tokens for Zuul's admin API. Each token is checked the
 * way Zuul 14.3.0 checks it (tests/zuul_claims.py: python3-jwt with zuul/driver/auth/jwt.py's
 * claim rules), and its signature with libcrypto on its own. */
#include "zuul_token.h"

#include "fileutil.h"
#include "strbuf.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A PEM of a freshly generated key ("rsa" of bits, or "ec"), optionally encrypted. Caller frees. */
static char *key_pem(const char *type, int bits, bool encrypted)
{
	EVP_PKEY *pkey = strcmp(type, "rsa") == 0 ? EVP_RSA_gen((unsigned)bits) : EVP_EC_gen("P-256");
	BIO *bio = BIO_new(BIO_s_mem());
	const EVP_CIPHER *cipher = encrypted ? EVP_aes_128_cbc() : NULL;
	unsigned char pass[] = "secret-pass";
	PEM_write_bio_PrivateKey(bio, pkey, cipher, encrypted ? pass : NULL, encrypted ? 11 : 0, NULL, NULL);
	char *data;
	long n = BIO_get_mem_data(bio, &data);
	char *out = xstrndup(data, (size_t)n);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return out;
}

static struct zuul_token_key *rsa_key(void)
{
	static char *pem;
	if (!pem)
		pem = key_pem("rsa", 2048, false);
	char why[200];
	return zuul_token_key_parse(pem, strlen(pem), why, sizeof why);
}

/* base64url without padding back to bytes (test only: no error handling). */
static char *b64url_decode(const char *in, size_t n)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = xcalloc(n + 1, 1);
	size_t o = 0;
	unsigned v = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		const char *p = strchr(alphabet, in[i]);
		if (!p || !in[i])
			break;
		v = (v << 6) | (unsigned)(p - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((v >> bits) & 0xff);
		}
	}
	return out;
}

/* Part i (0 header, 1 payload) of a token, decoded and parsed. */
static cJSON *token_part(const char *token, int part)
{
	const char *start = token;
	for (int i = 0; i < part; i++)
		start = strchr(start, '.') + 1;
	const char *end = strchr(start, '.');
	char *json = b64url_decode(start, (size_t)(end - start));
	cJSON *o = cJSON_Parse(json);
	free(json);
	return o;
}

static void test_base64url_is_rfc4648_without_padding(void)
{
	const struct {
		const char *in;
		size_t n;
		const char *out;
	} cases[] = {
		{"", 0, ""}, {"f", 1, "Zg"}, {"fo", 2, "Zm8"}, {"foo", 3, "Zm9v"}, {"foob", 4, "Zm9vYg"},
		{"fooba", 5, "Zm9vYmE"}, {"foobar", 6, "Zm9vYmFy"}, {"\xfb\xff", 2, "-_8"}, {"\xff\xfe\xfd", 3, "__79"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[16];
		CHECK_INT(zuul_token_b64url_len(cases[i].n), strlen(cases[i].out));
		zuul_token_b64url((const unsigned char *)cases[i].in, cases[i].n, out);
		CHECK_STR(out, cases[i].out);
	}
}

static void check_refused(const char *pem, const char *want)
{
	char why[300] = "";
	struct zuul_token_key *k = zuul_token_key_parse(pem, strlen(pem), why, sizeof why);
	CHECK(k == NULL);
	CHECK_STR(why, want);
	zuul_token_key_free(k);
}

static void test_only_unencrypted_rsa_keys_of_2048_bits_or_more_are_taken(void)
{
	check_refused("not a key at all\n", "not a PEM private key (expected \"-----BEGIN PRIVATE KEY-----\" or "
					    "\"-----BEGIN RSA PRIVATE KEY-----\")");
	char *ec = key_pem("ec", 0, false);
	check_refused(ec, "an EC key, not RSA (RS256 needs an RSA key)");
	char *small = key_pem("rsa", 1024, false);
	check_refused(small, "a 1024-bit RSA key (expected at least 2048 bits)");
	char *enc = key_pem("rsa", 2048, true);
	check_refused(enc, "an encrypted private key (expected one without a pass phrase: the daemon has nobody "
			   "to ask for it)");
	/* A public key is not a private one. */
	struct zuul_token_key *k = rsa_key();
	char *pub = zuul_token_public_pem(k);
	CHECK_CONTAINS(pub, "-----BEGIN PUBLIC KEY-----");
	if (pub)
		check_refused(pub, "not a PEM private key (expected \"-----BEGIN PRIVATE KEY-----\" or "
				   "\"-----BEGIN RSA PRIVATE KEY-----\")");
	free(pub);
	zuul_token_key_free(k);
	free(ec);
	free(small);
	free(enc);
}

static void test_a_token_carries_exactly_the_claims_asked_for(void)
{
	struct zuul_token_key *k = rsa_key();
	CHECK(k != NULL);
	struct zuul_token_claims c = {"zuul-matrix-bridge", "zuul", "@alice:example.org", 1765000000, 120, NULL};
	char *t = zuul_token_mint(k, &c);
	CHECK(t != NULL);
	if (t) {
		cJSON *h = token_part(t, 0), *p = token_part(t, 1);
		char *hs = cJSON_PrintUnformatted(h);
		CHECK_STR(hs, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
		free(hs);
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p, "iss")), "zuul-matrix-bridge");
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p, "aud")), "zuul");
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(p, "sub")), "@alice:example.org");
		CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(p, "iat")), 1765000000);
		CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(p, "exp")), 1765000120);
		const char *jti = cJSON_GetStringValue(cJSON_GetObjectItem(p, "jti"));
		CHECK(jti && strlen(jti) == 32 && strspn(jti, "0123456789abcdef") == 32);
		CHECK_INT(cJSON_GetArraySize(p), 6);
		/* a second token of the same claims has its own jti */
		char *t2 = zuul_token_mint(k, &c);
		cJSON *p2 = token_part(t2, 1);
		CHECK(strcmp(jti, cJSON_GetStringValue(cJSON_GetObjectItem(p2, "jti"))) != 0);
		cJSON_Delete(p2);
		free(t2);
		cJSON_Delete(h);
		cJSON_Delete(p);
	}
	free(t);
	zuul_token_key_free(k);
}

static void test_lifetime_and_missing_claims_are_refused(void)
{
	struct zuul_token_key *k = rsa_key();
	struct zuul_token_claims ok = {"iss", "aud", "@a:hs", 1765000000, 1, "id-1"};
	char *t = zuul_token_mint(k, &ok);
	CHECK(t != NULL);
	free(t);
	struct zuul_token_claims bad[] = {
		{"iss", "aud", "@a:hs", 1765000000, 0, NULL},
		{"iss", "aud", "@a:hs", 1765000000, ZUUL_TOKEN_MAX_LIFETIME_S + 1, NULL},
		{"iss", "aud", "@a:hs", 1765000000, -5, NULL},
		{NULL, "aud", "@a:hs", 1765000000, 60, NULL},
		{"iss", "", "@a:hs", 1765000000, 60, NULL},
		{"iss", "aud", NULL, 1765000000, 60, NULL},
		{"iss", "aud", "@a:hs", 0, 60, NULL},
		{"iss", "aud", "@a:hs", 1765000000, 60, ""},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t = zuul_token_mint(k, &bad[i]);
		if (t)
			printf("# case %zu was minted\n", i);
		CHECK(t == NULL);
		free(t);
	}
	CHECK(zuul_token_mint(NULL, &ok) == NULL);
	zuul_token_key_free(k);
}

static void test_the_signature_verifies_with_the_public_key(void)
{
	struct zuul_token_key *k = rsa_key();
	struct zuul_token_claims c = {"zuul-matrix-bridge", "zuul", "@bob:example.org", 1765000000, 60, NULL};
	char *t = zuul_token_mint(k, &c);
	char *pub = zuul_token_public_pem(k);
	BIO *bio = BIO_new_mem_buf(pub, -1);
	EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	const char *dot = strrchr(t, '.');
	char *sig = b64url_decode(dot + 1, strlen(dot + 1));
	size_t siglen = strlen(dot + 1) * 6 / 8;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1
			 ? EVP_DigestVerify(md, (unsigned char *)sig, siglen, (const unsigned char *)t, (size_t)(dot - t))
			 : -1;
	CHECK_INT(rc, 1);
	CHECK_INT(siglen, 256);
	/* one byte of the payload changed: the signature no longer holds */
	char *tampered = xstrdup(t);
	tampered[40] = tampered[40] == 'A' ? 'B' : 'A';
	EVP_MD_CTX_reset(md);
	rc = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1
		     ? EVP_DigestVerify(md, (unsigned char *)sig, siglen, (const unsigned char *)tampered, (size_t)(dot - t))
		     : -1;
	CHECK_INT(rc, 0);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	free(tampered);
	free(sig);
	free(pub);
	free(t);
	zuul_token_key_free(k);
}

/* Runs tests/zuul_claims.py on token with the public key of `key`: Zuul's verdict (its
 * first output line) and the exit status. Caller frees. */
static char *zuul_says(const struct zuul_token_key *key, const char *issuer, const char *audience,
		       const char *max_validity, const char *token, int *status)
{
	char pub_path[] = "/tmp/zmb-zuul-pub-XXXXXX";
	int fd = mkstemp(pub_path);
	char *pub = zuul_token_public_pem(key);
	if (fd < 0 || write(fd, pub, strlen(pub)) != (ssize_t)strlen(pub))
		abort();
	close(fd);
	free(pub);
	int fds[2];
	if (pipe(fds) != 0)
		abort();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		execl("/usr/bin/python3", "python3", ZMB_SOURCE_ROOT "/tests/zuul_claims.py", "--public-key", pub_path,
		      "--issuer", issuer, "--audience", audience, "--max-validity", max_validity, token, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	struct strbuf out = STRBUF_INIT;
	char buf[1024];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0)
		strbuf_append(&out, buf, (size_t)n);
	close(fds[0]);
	int ws = 0;
	waitpid(pid, &ws, 0);
	*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
	unlink(pub_path);
	char *s = strbuf_detach(&out);
	if (s) {
		char *nl = strchr(s, '\n');
		if (nl)
			*nl = '\0';
	}
	return s ? s : xstrdup("");
}

static void test_zuul_accepts_the_token_by_its_own_rules(void)
{
	struct zuul_token_key *k = rsa_key();
	struct zuul_token_claims c = {"zuul-matrix-bridge", "zuul", "@alice:example.org", (int64_t)time(NULL), 120, NULL};
	char *t = zuul_token_mint(k, &c);
	int st;
	char *out = zuul_says(k, "zuul-matrix-bridge", "zuul", "120", t, &st);
	CHECK_INT(st, 0);
	CHECK_CONTAINS(out, "\"__zuul_uid_claim\": \"@alice:example.org\"");
	CHECK_CONTAINS(out, "\"iss\": \"zuul-matrix-bridge\"");
	free(out);
	/* another realm's issuer or audience: refused as Zuul refuses them */
	out = zuul_says(k, "other-idp", "zuul", "120", t, &st);
	CHECK_INT(st, 1);
	CHECK_STR(out, "IssuerUnknownError: Issuer unknown");
	free(out);
	out = zuul_says(k, "zuul-matrix-bridge", "zuul-other", "120", t, &st);
	CHECK_INT(st, 1);
	CHECK_STR(out, "IncorrectAudienceError: Incorrect audience");
	free(out);
	/* signed by another key */
	struct zuul_token_key *other = NULL;
	char *pem = key_pem("rsa", 2048, false);
	char why[200];
	other = zuul_token_key_parse(pem, strlen(pem), why, sizeof why);
	out = zuul_says(other, "zuul-matrix-bridge", "zuul", "120", t, &st);
	CHECK_INT(st, 1);
	CHECK_STR(out, "AuthTokenInvalidSignatureException: Invalid signature");
	free(out);
	free(t);
	/* issued 10 minutes ago with a 2-minute lifetime: expired */
	c.issued_at = (int64_t)time(NULL) - 600;
	t = zuul_token_mint(k, &c);
	out = zuul_says(k, "zuul-matrix-bridge", "zuul", "120", t, &st);
	CHECK_INT(st, 1);
	CHECK_STR(out, "TokenExpiredError: Token has expired");
	free(out);
	free(t);
	zuul_token_key_free(other);
	free(pem);
	zuul_token_key_free(k);
}

int main(void)
{
	RUN(test_base64url_is_rfc4648_without_padding);
	RUN(test_only_unencrypted_rsa_keys_of_2048_bits_or_more_are_taken);
	RUN(test_a_token_carries_exactly_the_claims_asked_for);
	RUN(test_lifetime_and_missing_claims_are_refused);
	RUN(test_the_signature_verifies_with_the_public_key);
	RUN(test_zuul_accepts_the_token_by_its_own_rules);
	return test_done();
}
