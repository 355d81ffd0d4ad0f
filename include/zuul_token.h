/* zuul_token: the JSON Web Tokens the bridge signs for Zuul's admin API, one per action:
 * RS256 (OpenSSL's libcrypto), the claims Zuul's JWT authenticators check (iss, aud, sub,
 * iat, exp) and a jti. Pure but for the random jti: no files, no clock (now is a parameter). */
#ifndef ZMB_ZUUL_TOKEN_H
#define ZMB_ZUUL_TOKEN_H

#include <stddef.h>
#include <stdint.h>

/* A token lives at most this long: Zuul's [auth] max_validity_time should be as short, so a
 * token that leaked (a log, a proxy) is worthless by the time anyone reads it. */
#define ZUUL_TOKEN_MAX_LIFETIME_S 120
/* Shorter RSA keys are refused: NIST and Zuul's own docs ask for 2048 bits or more. */
#define ZUUL_TOKEN_MIN_RSA_BITS 2048

struct zuul_token_key;

/* Parses a PEM private key (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY", not
 * encrypted). NULL, with why ("not a PEM private key", "an EC key, not RSA (RS256 needs
 * RSA)", "a 1024-bit RSA key (expected at least 2048 bits)"), otherwise. Caller frees with
 * zuul_token_key_free. */
struct zuul_token_key *zuul_token_key_parse(const char *pem, size_t len, char *why, size_t whylen);
void zuul_token_key_free(struct zuul_token_key *key);

/* The public half as PEM ("-----BEGIN PUBLIC KEY-----"), what Zuul's [auth] section reads
 * as public_key. Caller frees; NULL on failure. */
char *zuul_token_public_pem(const struct zuul_token_key *key);

struct zuul_token_claims {
	const char *issuer;   /* iss: Zuul's [auth] issuer_id */
	const char *audience; /* aud: Zuul's [auth] client_id */
	const char *subject;  /* sub: the Matrix user who asked */
	int64_t issued_at;    /* iat, Unix seconds */
	int lifetime_s;       /* exp = iat + lifetime_s; 1 .. ZUUL_TOKEN_MAX_LIFETIME_S */
	const char *jti;      /* a unique token id; NULL: 32 random hex digits */
};

/* The compact JWS "header.payload.signature" of claims, signed with key (RS256). NULL
 * when a claim is missing or empty, the lifetime is out of range, or signing failed.
 * Caller frees (the token is a secret for its lifetime: explicit_bzero before free is
 * the caller's courtesy, not a need). */
char *zuul_token_mint(const struct zuul_token_key *key, const struct zuul_token_claims *claims);

/* base64url without padding (RFC 7515 section 2) of n bytes, appended to out as a C string;
 * out must have room for zuul_token_b64url_len(n) + 1 bytes. */
size_t zuul_token_b64url_len(size_t n);
void zuul_token_b64url(const unsigned char *in, size_t n, char *out);

#endif
