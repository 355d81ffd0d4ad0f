"""zuul_world: the tests' handle on tests/fake_zuul_admin.py (a subprocess on a loopback port,
trusting the public half of the test key tests/data/config/secrets/zuul-actions.pem) and the
configuration that makes the bridge act on it."""

import json
import os
import shutil
import subprocess
import urllib.request

from harness import ROOT, wait_for

KEY = os.path.join(ROOT, "tests", "data", "config", "secrets", "zuul-actions.pem")


def private_key_copy(workdir):
    """The test key, owner-only (git keeps no modes), where the bridge's config names it."""
    key = os.path.join(workdir, "zuul-actions.pem")
    shutil.copy(KEY, key)
    os.chmod(key, 0o600)
    return key


def actions_config(key, api, users, issuer="zuul-matrix-bridge", tenant="scs"):
    return """
actions: {
  issuer = "%s"; audience = "zuul"; private_key_file = "%s";
  tenants = ( { name = "%s"; api = "%s"; users = [%s]; } );
};
""" % (issuer, key, tenant, api, ", ".join('"%s"' % u for u in users))


def public_pem(path):
    return subprocess.run(["openssl", "pkey", "-in", path, "-pubout"], capture_output=True, check=True,
                          text=True).stdout


class FakeZuul:
    """tests/fake_zuul_admin.py as a subprocess."""

    def __init__(self, workdir, admins, issuer="zuul-matrix-bridge"):
        self.dir = os.path.join(workdir, "zuul")
        os.makedirs(self.dir)
        pub = os.path.join(self.dir, "bridge.pub")
        with open(pub, "w") as f:
            f.write(public_pem(KEY))
        conf = os.path.join(self.dir, "zuul.json")
        with open(conf, "w") as f:
            json.dump({"auth": {"issuer_id": issuer, "client_id": "zuul", "public_key_file": pub,
                                "realm": "zuul-matrix-bridge", "max_validity_time": 120},
                       "tenants": {"scs": {"projects": ["SovereignCloudStack/standards"],
                                           "pipelines": ["periodic-daily", "check", "gate"],
                                           "admins": list(admins)}}}, f)
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "tests", "fake_zuul_admin.py"),
                                      "--port", "0", "--port-file", port_file, "--config", conf],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "w"))
        wait_for(lambda: os.path.exists(port_file), 10, "the fake Zuul's port file")
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def requests(self, action=None):
        return [r for r in self.call("GET", "/_fake/requests")["requests"] if action in (None, r.get("action"))]

    def holds(self):
        return self.call("GET", "/_fake/holds")["holds"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


