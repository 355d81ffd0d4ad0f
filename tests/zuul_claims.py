#!/usr/bin/python3
"""Zuul 14.3.0's checks of an admin API token, as zuul/lib/auth.py (AuthenticatorRegistry:
the unverified iss picks the [auth] section) and zuul/driver/auth/jwt.py (RS256Authenticator:
jwt.decode with issuer, audience and algorithms, then the claim rules of
JWTAuthenticator.decodeToken) make them, with Debian's python3-jwt. Used by the fake Zuul
(tests/fake_zuul_admin.py) and, as a command, by the C unit tests of src/zuul_token.c:

    zuul_claims.py --public-key FILE --issuer ISS --audience AUD [--max-validity S] [--skew S] TOKEN

prints the decoded claims as JSON and exits 0, or prints "ErrorName: description" (Zuul's
exception class and text) and exits 1."""

import argparse
import json
import math
import sys
import time

import jwt


class AuthError(Exception):
    """One of zuul.exceptions' AuthTokenUnauthorizedException family: HTTP 401."""

    def __init__(self, error, description, realm):
        super().__init__(description)
        self.error = error
        self.description = description
        self.realm = realm

    def json(self):
        return {"description": self.description, "error": self.error, "realm": self.realm}


class Authenticator:
    """One [auth] section with driver=RS256."""

    def __init__(self, issuer_id, client_id, public_key, realm="zuul.example.org",
                 max_validity_time=math.inf, skew=0, uid_claim="sub"):
        self.issuer_id = issuer_id
        self.audience = client_id
        self.public_key = public_key
        self.realm = realm
        self.max_validity_time = float(max_validity_time)
        self.skew = int(skew)
        self.uid_claim = uid_claim

    def _fail(self, error, description):
        raise AuthError(error, description, self.realm)

    def decode(self, raw, now=None):
        try:
            decoded = jwt.decode(raw, self.public_key, issuer=self.issuer_id, audience=self.audience,
                                 algorithms=["RS256"])
        except jwt.exceptions.InvalidSignatureError:
            self._fail("AuthTokenInvalidSignatureException", "Invalid signature")
        except jwt.exceptions.DecodeError:
            self._fail("AuthTokenUndecodedException", "Auth Token could not be decoded")
        except jwt.exceptions.ExpiredSignatureError:
            self._fail("TokenExpiredError", "Token has expired")
        except jwt.exceptions.InvalidIssuerError:
            self._fail("IssuerUnknownError", "Issuer unknown")
        except jwt.exceptions.InvalidAudienceError:
            self._fail("IncorrectAudienceError", "Incorrect audience")
        except Exception as e:  # as Zuul: AuthTokenUnauthorizedException(msg=e)
            self._fail("AuthTokenUnauthorizedException", str(e))
        if not all(x in decoded for x in ["aud", "iss", "exp", "sub"]):
            self._fail("MissingClaimError", "Token is missing claims")
        if self.max_validity_time < math.inf and "iat" not in decoded:
            self._fail("MissingClaimError", 'Missing "iat" claim')
        if self.uid_claim not in decoded:
            self._fail("MissingUIDClaimError", "Token is missing id claim")
        expires = decoded.get("exp", 0)
        issued_at = decoded.get("iat", 0)
        now = time.time() if now is None else now
        if issued_at + self.skew > now:
            self._fail("AuthTokenUnauthorizedException", '"iat" claim set in the future')
        if now - issued_at > self.max_validity_time:
            self._fail("TokenExpiredError", "Token was issued too long ago")
        if expires + self.skew < now:
            self._fail("TokenExpiredError", "Token has expired")
        admin = decoded.get("zuul", {}).get("admin", [])
        if not isinstance(admin, list):
            self._fail("IncorrectZuulAdminClaimError", 'The "zuul.admin" claim is expected to be a list of tenants')
        if admin:  # allow_authz_override is off (Zuul's default, and ours)
            self._fail("UnauthorizedZuulAdminClaimError", 'Issuer is not allowed to set "zuul.admin" claim')
        decoded["__zuul_uid_claim"] = decoded[self.uid_claim]
        return decoded


def authenticate(authenticators, raw, default_realm="zuul.example.org", now=None):
    """AuthenticatorRegistry.authenticate: the section whose issuer_id is the token's iss."""
    try:
        unverified = jwt.decode(raw, options={"verify_signature": False})
        for a in authenticators:
            if a.issuer_id == unverified.get("iss", ""):
                return a.decode(raw, now)
    except jwt.exceptions.DecodeError:
        raise AuthError("AuthTokenUndecodedException", "Auth Token could not be decoded", default_realm)
    raise AuthError("IssuerUnknownError", "Issuer unknown", default_realm)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--audience", required=True)
    ap.add_argument("--max-validity", type=float, default=math.inf)
    ap.add_argument("--skew", type=int, default=0)
    ap.add_argument("token")
    args = ap.parse_args()
    with open(args.public_key) as f:
        key = f.read()
    a = Authenticator(args.issuer, args.audience, key, max_validity_time=args.max_validity, skew=args.skew)
    try:
        claims = authenticate([a], args.token)
    except AuthError as e:
        print("%s: %s" % (e.error, e.description))
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
