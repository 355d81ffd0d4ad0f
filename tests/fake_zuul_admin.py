#!/usr/bin/python3
"""fake_zuul_admin: Zuul 14.3.0's admin REST API (zuul/web/__init__.py) for the tests of the
bridge's actions (issue #17): enqueue, dequeue, autohold (create, list, get, delete) and
tenant authorizations, answered as Zuul's handlers answer them. Standard library and Debian's
python3-jwt only; loopback only. (tests/fake_zuul_web.py serves build records and job output
for the details tests; this one is separate on purpose.)

Run:    fake_zuul_admin.py --port 0 --port-file PATH --config CONFIG.json
Import: z = FakeZuul(config); port = z.start(); ...; z.stop()

CONFIG: {"auth": {"issuer_id", "client_id", "public_key_file", "realm", "max_validity_time"},
         "tenants": {"scs": {"projects": ["org/repo"], "pipelines": ["check", "gate"],
                             "admins": ["@alice:localhost"]}},
         "hostname": "github.com", "default_hold_expiration": 86400}
`admins` is the tenant's authorization rule: a token of issuer_id whose sub is listed (the
rule requires the issuer, as docs/operations.md tells operators to write it).

Auth, as AuthContext.validate and zuul/driver/auth/jwt.py (tests/zuul_claims.py): no
Authorization header: 401 JSON MissingAuthError; not "Bearer ...": 401 InvalidAuthFormat; a
token Zuul's rules refuse: 401 JSON {"description", "error", "realm"} with WWW-Authenticate;
authenticated but not granted: 403 with an empty body. Errors of the handlers are CherryPy's
HTML error page ("<h2>400 Bad Request</h2><p>Unknown pipeline</p>"): 404 "Unknown tenant"
(checked before the token, as check_tenant_auth does), 404 "Unknown project", 400 "Invalid
request body", "Unknown pipeline", "change and ref are mutually exclusive", "Count must be
greater than 0", 'argument is not a valid regular expression: "..."', 404 "Hold request ID
not found.", 405 for a wrong method, 415 when the body is not application/json.

Test control (no auth): GET /_fake/requests (every admin request: method, path, body, the
verified claims or the auth error, status), GET/POST /_fake/holds, POST /_fake/faults (a rule
or a list: "path" regex, "method", "count" (-1: until DELETE), "action": "respond" (status,
body, content_type) | "hang" (seconds) | "drop" (close without an answer) | "delay" (seconds,
then the usual answer)), DELETE /_fake/faults, POST /_fake/projects ({"tenant", "projects"}:
more projects the tenant knows), POST /_fake/reset.
"""

import argparse
import html
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zuul_claims  # noqa: E402

# CherryPy 18's _HTTPErrorTemplate, trimmed to what a client could read.
ERROR_PAGE = """<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html>
<head>
    <meta http-equiv="Content-Type" content="text/html; charset=utf-8"></meta>
    <title>%(status)s</title>
</head>
    <body>
        <h2>%(status)s</h2>
        <p>%(message)s</p>
        <pre id="traceback"></pre>
    <div id="powered_by">
      <span>
        Powered by <a href="http://www.cherrypy.dev">CherryPy 18.9.0</a>
      </span>
    </div>
    </body>
</html>
"""
REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 415: "Unsupported Media Type", 500: "Internal Server Error"}


class HTTPError(Exception):
    def __init__(self, status, message=None, json_doc=None, headers=None, empty=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.json_doc = json_doc
        self.headers = headers or {}
        self.empty = empty


class FakeZuul:
    def __init__(self, config):
        self.config = config
        auth = config["auth"]
        with open(auth["public_key_file"]) as f:
            key = f.read()
        self.realm = auth.get("realm", "zuul-matrix-bridge")
        self.authenticators = [zuul_claims.Authenticator(
            auth["issuer_id"], auth["client_id"], key, realm=self.realm,
            max_validity_time=auth.get("max_validity_time", float("inf")))]
        self.lock = threading.Lock()
        self.requests = []
        self.faults = []
        self.holds = {}
        self.next_hold = 1
        self.server = None

    # ---- helpers --------------------------------------------------------------

    def tenant(self, name):
        t = self.config["tenants"].get(name)
        if t is None:
            raise HTTPError(404, "Unknown tenant")
        return t

    def project(self, tenant, name):
        # tenant.getProject accepts the short and the canonical name
        host = self.config.get("hostname", "github.com")
        for p in tenant.get("projects", []):
            if name in (p, "%s/%s" % (host, p)):
                return p
        raise HTTPError(404, "Unknown project")

    def check_auth(self, headers, tenant, rec, require_admin):
        """check_tenant_auth: the token, then the tenant's rules."""
        header = headers.get("Authorization")
        if header is None or not header.lower().startswith("bearer "):
            if not require_admin:
                return None  # anonymous read access
            e, d = ("MissingAuthError", 'Missing "Authorization" header') if header is None else \
                ("InvalidAuthFormat", '"Authorization" header must start with "Bearer"')
            rec["auth_error"] = e
            raise HTTPError(401, json_doc={"description": d, "error": e, "realm": self.realm},
                            headers={"WWW-Authenticate": 'Bearer realm="%s"\n       error="%s"\n       '
                                     'error_description="%s"' % (self.realm, e, d)})
        token = header[len("Bearer "):]
        rec["token"] = token
        try:
            claims = zuul_claims.authenticate(self.authenticators, token, default_realm=self.realm)
        except zuul_claims.AuthError as e:
            rec["auth_error"] = e.error
            if not require_admin:
                return None
            raise HTTPError(401, json_doc=e.json(),
                            headers={"WWW-Authenticate": 'Bearer realm="%s"\n       error="%s"\n       '
                                     'error_description="%s"' % (e.realm, e.error, e.description)})
        rec["claims"] = claims
        admin = claims.get("iss") == self.authenticators[0].issuer_id and \
            claims["__zuul_uid_claim"] in tenant.get("admins", [])
        if require_admin and not admin:
            raise HTTPError(403, empty=True)
        return claims

    # ---- handlers (zuul/web/__init__.py, ZuulWebAPI) --------------------------

    def enqueue(self, tenant, body, method):
        if method != "POST":
            raise HTTPError(405)
        if "pipeline" not in body:
            raise HTTPError(400, "Invalid request body")
        if body["pipeline"] not in tenant.get("pipelines", []):
            raise HTTPError(400, "Unknown pipeline")
        if body.get("parameters"):
            ref = body.get("ref", "")
            if not (ref.startswith("refs/heads") or ref.startswith("refs/tags")):
                raise HTTPError(400, "Parameters are supported only with branches or tags")
        if "change" in body or "ref" in body:
            return True
        raise HTTPError(400, "Invalid request body")

    def dequeue(self, tenant, body, method):
        if method != "POST":
            raise HTTPError(405)
        if "pipeline" in body and (("change" in body and "ref" not in body) or
                                   ("change" not in body and "ref" in body)):
            if body["pipeline"] not in tenant.get("pipelines", []):
                raise HTTPError(400, "Unknown pipeline")
            return True
        raise HTTPError(400, "Invalid request body")

    def autohold_post(self, tenant_name, project, body):
        body["change"] = body.get("change", None)
        body["ref"] = body.get("ref", None)
        count = body.get("count")
        if body["change"] and body["ref"]:
            raise HTTPError(400, "change and ref are mutually exclusive")
        if not all(p in body for p in ["job", "count", "change", "ref", "reason", "node_hold_expiration"]):
            raise HTTPError(400, "Invalid request body")
        if count < 0:
            raise HTTPError(400, "Count must be greater than 0")
        if body["change"]:
            ref_filter = "refs/pull/%s/head" % body["change"]  # GitHub's getRefForChange
        elif body["ref"]:
            ref_filter = str(body["ref"])
        else:
            ref_filter = ".*"
        try:
            re.compile(ref_filter)
        except re.error as e:
            raise HTTPError(400, 'argument is not a valid regular expression: "%s"' % e)
        reason = body["reason"][:1024] if body["reason"] else body["reason"]
        expiration = body["node_hold_expiration"]
        if expiration is None:
            expiration = self.config.get("default_hold_expiration", 86400)
        with self.lock:
            hold_id = "%010d" % self.next_hold
            self.next_hold += 1
            self.holds[hold_id] = {
                "id": hold_id, "tenant": tenant_name,
                "project": "%s/%s" % (self.config.get("hostname", "github.com"), project),
                "job": body["job"], "ref_filter": ref_filter, "max_count": body["count"],
                "current_count": 0, "reason": reason, "node_expiration": expiration,
                "expired": None, "nodes": []}
        return True

    def hold(self, tenant_name, hold_id):
        h = self.holds.get(hold_id)
        if h is None or h["tenant"] != tenant_name:
            raise HTTPError(404, "Hold request %s not found." % hold_id)
        return h

    # ---- dispatch -------------------------------------------------------------

    def handle(self, method, raw_path, headers, raw_body, rec):
        path = urllib.parse.urlsplit(raw_path).path
        m = re.fullmatch(r"/api/tenant/([^/]+)/(.*)", path)
        if not m:
            raise HTTPError(404, "Not Found")
        tenant_name = urllib.parse.unquote(m.group(1))
        rest = m.group(2)
        rec["tenant"] = tenant_name
        tenant = self.tenant(tenant_name)
        pm = re.fullmatch(r"project/(.*)/(enqueue|dequeue|autohold)", rest)
        if pm:
            project_name = urllib.parse.unquote(pm.group(1))
            action = pm.group(2)
            rec["project"], rec["action"] = project_name, action
            if action == "autohold" and method == "GET":
                self.check_auth(headers, tenant, rec, False)
                return 200, [h for h in self.holds.values() if h["tenant"] == tenant_name and
                             h["project"].endswith(self.project(tenant, project_name))]
            body = self.json_in(headers, raw_body, rec)
            self.check_auth(headers, tenant, rec, True)
            project = self.project(tenant, project_name)
            if action == "enqueue":
                return 200, self.enqueue(tenant, body, method)
            if action == "dequeue":
                return 200, self.dequeue(tenant, body, method)
            if method != "POST":
                raise HTTPError(405)
            return 200, self.autohold_post(tenant_name, project, body)
        if rest == "autohold":
            rec["action"] = "autohold-list"
            self.check_auth(headers, tenant, rec, False)
            project = urllib.parse.parse_qs(urllib.parse.urlsplit(raw_path).query).get("project", [None])[0]
            return 200, [h for h in self.holds.values() if h["tenant"] == tenant_name and
                         (project is None or h["project"].endswith(project))]
        hm = re.fullmatch(r"autohold/([^/]+)", rest)
        if hm:
            hold_id = urllib.parse.unquote(hm.group(1))
            rec["hold"] = hold_id
            if method == "DELETE":
                rec["action"] = "autohold-delete"
                self.check_auth(headers, tenant, rec, True)
                self.hold(tenant_name, hold_id)
                with self.lock:
                    del self.holds[hold_id]
                return 204, None
            rec["action"] = "autohold-get"
            self.check_auth(headers, tenant, rec, False)
            return 200, self.hold(tenant_name, hold_id)
        if rest == "authorizations":
            rec["action"] = "authorizations"
            claims = self.check_auth(headers, tenant, rec, False)
            if claims is None:
                raise HTTPError(401, json_doc={"description": 'Missing "Authorization" header',
                                               "error": "MissingAuthError", "realm": self.realm})
            admin = claims["__zuul_uid_claim"] in tenant.get("admins", [])
            return 200, {"zuul": {"admin": admin, "scope": [tenant_name]}}
        raise HTTPError(404, "Not Found")

    def json_in(self, headers, raw_body, rec):
        """cherrypy.tools.json_in: an application/json body, parsed."""
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise HTTPError(415, "Expected an entity of content type application/json")
        try:
            body = json.loads(raw_body.decode("utf-8"))
        except ValueError:
            raise HTTPError(400, "Invalid JSON document")
        rec["body"] = body
        return body

    # ---- server ---------------------------------------------------------------

    def take_fault(self, method, path):
        with self.lock:
            for f in self.faults:
                if f.get("method") and f["method"] != method:
                    continue
                if f.get("path") and not re.search(f["path"], path):
                    continue
                if f.get("count", 1) == 0:
                    continue
                if f.get("count", 1) > 0:
                    f["count"] = f.get("count", 1) - 1
                return dict(f)
        return None

    def start(self, port=0):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def send(self, status, body=b"", ctype=None, headers=None):
                self.send_response(status, REASONS.get(status))
                if ctype:
                    self.send_header("Content-Type", ctype)
                for k, v in (headers or {}).items():
                    self.send_header(k, v.replace("\n", " "))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def control(self, method, body):
                path = self.path
                if path == "/_fake/requests" and method == "GET":
                    with fake.lock:
                        return 200, {"requests": list(fake.requests)}
                if path == "/_fake/holds" and method == "GET":
                    with fake.lock:
                        return 200, {"holds": list(fake.holds.values())}
                if path == "/_fake/holds" and method == "POST":
                    h = json.loads(body)
                    with fake.lock:
                        fake.holds[h["id"]] = h
                    return 200, {}
                if path == "/_fake/faults" and method == "POST":
                    rules = json.loads(body)
                    with fake.lock:
                        fake.faults.extend(rules if isinstance(rules, list) else [rules])
                    return 200, {}
                if path == "/_fake/faults" and method == "DELETE":
                    with fake.lock:
                        fake.faults = []
                    return 200, {}
                if path == "/_fake/projects" and method == "POST":
                    doc = json.loads(body)
                    with fake.lock:
                        fake.tenant(doc["tenant"]).setdefault("projects", []).extend(doc["projects"])
                    return 200, {}
                if path == "/_fake/reset" and method == "POST":
                    with fake.lock:
                        fake.requests, fake.faults, fake.holds = [], [], {}
                    return 200, {}
                return 404, {"error": "unknown control path"}

            def any(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if self.path.startswith("/_fake/"):
                    status, doc = self.control(method, raw)
                    return self.send(status, json.dumps(doc).encode(), "application/json")
                rec = {"method": method, "path": self.path, "at": time.time(), "claims": None,
                       "auth_error": None, "raw_body": raw.decode("utf-8", "replace")}
                fault = fake.take_fault(method, self.path)
                if fault:
                    rec["fault"] = fault.get("action", "respond")
                    # a request the fault holds up is listed at once, named as its handler would
                    m = re.search(r"/project/.+/(enqueue|dequeue)$", self.path.split("?")[0])
                    if m:
                        rec["action"] = m.group(1)
                    with fake.lock:
                        fake.requests.append(rec)
                    if fault.get("action") == "delay":
                        # answers as usual, but only after the delay (Zuul slow to answer)
                        time.sleep(fault.get("seconds", 3))
                        with fake.lock:
                            fake.requests.remove(rec)
                    elif fault.get("action") == "hang":
                        time.sleep(fault.get("seconds", 30))
                        self.close_connection = True
                        return
                    elif fault.get("action") == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    else:
                        rec["status"] = fault.get("status", 500)
                        return self.send(rec["status"], fault.get("body", "").encode(),
                                         fault.get("content_type", "text/html;charset=utf-8"))
                try:
                    status, doc = fake.handle(method, self.path, self.headers, raw, rec)
                    rec["status"] = status
                    body = b"" if status == 204 else json.dumps(doc).encode()
                    self.send(status, body, None if status == 204 else "application/json; charset=utf-8")
                except HTTPError as e:
                    rec["status"] = e.status
                    if e.json_doc is not None:
                        self.send(e.status, json.dumps(e.json_doc).encode(), "application/json", e.headers)
                    elif e.empty:
                        self.send(e.status, b"", None, e.headers)
                    else:
                        status = "%d %s" % (e.status, REASONS.get(e.status, ""))
                        msg = e.message or "Nothing matches the given URI"
                        page = ERROR_PAGE % {"status": status, "message": html.escape(msg, quote=False)}
                        self.send(e.status, page.encode(), "text/html;charset=utf-8", e.headers)
                finally:
                    with fake.lock:
                        fake.requests.append(rec)

            def do_GET(self):
                self.any("GET")

            def do_POST(self):
                self.any("POST")

            def do_DELETE(self):
                self.any("DELETE")

            def do_PUT(self):
                self.any("PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.server.server_address[1]

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Zuul admin API for tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    with open(args.config) as f:
        config = json.load(f)
    z = FakeZuul(config)
    port = z.start(args.port)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.replace(args.port_file + ".tmp", args.port_file)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    z.stop()


if __name__ == "__main__":
    main()
