"""synapse: a real Synapse homeserver for the tests and the demo, on a free loopback port.

The pinned matrix-synapse is installed once into a virtual environment under the user's
cache directory (never into the tracked files), and a fresh server is started per test from
a cached empty database, so a start takes seconds. Users are registered through the
shared-secret registration API; rooms are created by alice with aliases and power levels.

    hs = Synapse(workdir)                  # raises SynapseUnavailable offline outside CI
    bot = hs.register("zuul-bot")          # an Account: .user_id .token .device_id
    alice = hs.register("alice")
    room = hs.create_room(alice, "alerts", invite=[bot.user_id], power={bot.user_id: 0})

Only 127.0.0.1 is ever contacted (federation and key servers are off)."""

import fcntl
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SYNAPSE_VERSION = "1.163.2"
SERVER_NAME = "localhost"
SHARED_SECRET = "zmb-test-registration-secret"


class SynapseUnavailable(Exception):
    """Synapse cannot be installed here (no PyPI); the suite skips, except under CI."""


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "zuul-matrix-bridge")


def venv_dir():
    return os.path.join(cache_dir(), "synapse-" + SYNAPSE_VERSION)


def _python():
    return os.path.join(venv_dir(), "bin", "python")


def ensure_installed(log=sys.stderr):
    """Installs matrix-synapse==SYNAPSE_VERSION into the cached virtual environment once.
    Concurrent test processes wait for each other on a lock file."""
    os.makedirs(cache_dir(), exist_ok=True)
    done = os.path.join(venv_dir(), ".installed")
    if os.path.exists(done):
        return _python()
    with open(os.path.join(cache_dir(), "synapse.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(done):
            return _python()
        shutil.rmtree(venv_dir(), ignore_errors=True)
        print("# installing matrix-synapse %s into %s" % (SYNAPSE_VERSION, venv_dir()), file=log)
        steps = [("python3 -m venv", ["/usr/bin/python3", "-m", "venv", venv_dir()]),
                 ("pip install matrix-synapse==" + SYNAPSE_VERSION,
                  [_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "matrix-synapse==" + SYNAPSE_VERSION])]
        for what, args in steps:
            r = subprocess.run(args, capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                shutil.rmtree(venv_dir(), ignore_errors=True)
                said = [line.strip() for line in (r.stderr or r.stdout).splitlines() if line.strip()]
                raise SynapseUnavailable("%s failed: %s" % (what, said[-1] if said else "no output"))
        open(done, "w").close()
    return _python()


def available():
    """(True, None), or (False, why) when Synapse cannot be installed. Under CI this never
    returns False: the suite must run there, so a failed install is an error."""
    try:
        ensure_installed()
        return True, None
    except SynapseUnavailable as e:
        if os.environ.get("CI"):
            raise
        return False, str(e)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Account:
    def __init__(self, user_id, token, device_id, password):
        self.user_id = user_id
        self.token = token
        self.device_id = device_id
        self.password = password

    @property
    def localpart(self):
        return self.user_id[1:].split(":", 1)[0]


class MatrixError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body))
        self.status = status
        self.body = body
        self.errcode = body.get("errcode") if isinstance(body, dict) else None


def _config_yaml(d, port, overrides):
    """Synapse's configuration as JSON (a subset of YAML). Federation, key servers, metrics,
    presence and URL previews are off, so nothing leaves loopback."""
    config = {
        "server_name": SERVER_NAME,
        "public_baseurl": "http://127.0.0.1:%d/" % port,
        "pid_file": os.path.join(d, "homeserver.pid"),
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
        "database": {"name": "sqlite3", "args": {"database": os.path.join(d, "homeserver.db")}},
        "log_config": os.path.join(d, "log.config"),
        "media_store_path": os.path.join(d, "media"),
        "signing_key_path": os.path.join(d, "signing.key"),
        "registration_shared_secret": SHARED_SECRET,
        "macaroon_secret_key": "zmb-test-macaroon",
        "form_secret": "zmb-test-form",
        "report_stats": False,
        "enable_metrics": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "enable_registration": False,
        # Logins of the tests come from one address; Synapse's default allows 3 at once.
        "rc_login": {"address": {"per_second": 100, "burst_count": 100},
                     "account": {"per_second": 100, "burst_count": 100},
                     "failed_attempts": {"per_second": 100, "burst_count": 100}},
        "rc_joins": {"local": {"per_second": 100, "burst_count": 100}},
        "rc_invites": {"per_room": {"per_second": 100, "burst_count": 100},
                       "per_user": {"per_second": 100, "burst_count": 100}},
    }
    config.update(overrides or {})
    return json.dumps(config, indent=1)


LOG_CONFIG = """version: 1
formatters:
  precise:
    format: '%%(asctime)s %%(name)s %%(levelname)s %%(request)s %%(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: %s
root:
  level: %s
  handlers: [file]
disable_existing_loggers: false
"""


class Synapse:
    """One Synapse process with its own directory, port and SQLite database."""

    def __init__(self, workdir, config=None, log_level="INFO"):
        self.python = ensure_installed()
        self.dir = os.path.join(workdir, "synapse")
        os.makedirs(os.path.join(self.dir, "media"), exist_ok=True)
        self.port = _free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.server_name = SERVER_NAME
        self.config_path = os.path.join(self.dir, "homeserver.yaml")
        self.log_path = os.path.join(self.dir, "homeserver.log")
        self.overrides = config or {}
        with open(os.path.join(self.dir, "log.config"), "w") as f:
            f.write(LOG_CONFIG % (self.log_path, log_level))
        self._write_config()
        self._seed_database()
        self.proc = None
        self.start()

    def _write_config(self):
        with open(self.config_path, "w") as f:
            f.write(_config_yaml(self.dir, self.port, self.overrides))

    def _seed_database(self):
        """Copies a cached database whose schema is already created (the first start of a
        fresh Synapse spends most of its time there), with the signing key that made it."""
        seed = os.path.join(cache_dir(), "synapse-%s-seed" % SYNAPSE_VERSION)
        if not os.path.exists(os.path.join(seed, ".done")):
            with open(os.path.join(cache_dir(), "synapse.lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not os.path.exists(os.path.join(seed, ".done")):
                    shutil.rmtree(seed, ignore_errors=True)
                    os.makedirs(seed)
                    r = subprocess.run([self.python, "-m", "synapse.app.homeserver", "-c", self.config_path,
                                        "--generate-keys"], capture_output=True, text=True, timeout=120)
                    if r.returncode != 0:
                        raise RuntimeError("synapse --generate-keys failed: " + r.stderr[-600:])
                    # The first start creates the schema; a stopped server leaves it complete.
                    self.start(timeout=180)
                    self.stop()
                    shutil.copy(os.path.join(self.dir, "homeserver.db"), os.path.join(seed, "homeserver.db"))
                    shutil.copy(os.path.join(self.dir, "signing.key"), os.path.join(seed, "signing.key"))
                    open(os.path.join(seed, ".done"), "w").close()
                    return
        for name in ("homeserver.db", "signing.key"):
            shutil.copy(os.path.join(seed, name), os.path.join(self.dir, name))

    def start(self, timeout=60):
        self.proc = subprocess.Popen([self.python, "-m", "synapse.app.homeserver", "-c", self.config_path],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr"), "a"),
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call("GET", "/_matrix/client/versions")
                return
            except (OSError, MatrixError):
                if self.proc.poll() is not None:
                    raise RuntimeError("Synapse exited with %s: %s" % (self.proc.returncode, self.stderr()[-2000:]))
                if time.monotonic() > deadline:
                    raise RuntimeError("Synapse did not answer within %ds: %s" % (timeout, self.stderr()[-2000:]))
                time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, config=None):
        self.stop()
        if config is not None:
            self.overrides = dict(self.overrides, **config)
            self._write_config()
        self.start()

    def stderr(self):
        try:
            with open(os.path.join(self.dir, "stderr"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- the client-server API, as a test's users call it ---

    def call(self, method, path, body=None, token=None, query=None, timeout=30):
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return json.loads(raw) if raw else {}
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = {"raw": raw.decode(errors="replace")}
            raise MatrixError(e.code, body) from None

    def register(self, localpart, password=None, admin=False):
        """A user through the shared-secret registration API (Synapse admin API)."""
        password = password or localpart + "-password"
        nonce = self.call("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(SHARED_SECRET.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        r = self.call("POST", "/_synapse/admin/v1/register",
                      {"nonce": nonce, "username": localpart, "password": password, "admin": admin,
                       "mac": mac.hexdigest()})
        return Account(r["user_id"], r["access_token"], r.get("device_id"), password)

    def override_ratelimit(self, admin, user_id, per_second=0, burst=0):
        """Synapse's admin API: 0 and 0 remove the user's message rate limit entirely."""
        self.call("POST", "/_synapse/admin/v1/users/%s/override_ratelimit" % urllib.parse.quote(user_id),
                  {"messages_per_second": per_second, "burst_count": burst}, token=admin.token)

    def create_room(self, creator, alias, invite=(), power=None, name=None, encrypted=False, preset="private_chat"):
        """A room with #alias:localhost; power maps user ids to levels. The creator is left to
        Synapse: 100 in older room versions, unlimited (and not listed) in version 12."""
        body = {"room_alias_name": alias, "preset": preset, "invite": list(invite), "name": name or alias}
        if power:
            body["power_level_content_override"] = {"users": dict(power)}
        if encrypted:
            body["initial_state"] = [{"type": "m.room.encryption", "state_key": "",
                                      "content": {"algorithm": "m.megolm.v1.aes-sha2"}}]
        return self.call("POST", "/_matrix/client/v3/createRoom", body, token=creator.token)["room_id"]

    def join(self, account, room):
        return self.call("POST", "/_matrix/client/v3/join/%s" % urllib.parse.quote(room, safe=""), {},
                         token=account.token)["room_id"]

    def invite(self, account, room_id, user_id):
        self.call("POST", "/_matrix/client/v3/rooms/%s/invite" % urllib.parse.quote(room_id), {"user_id": user_id},
                  token=account.token)

    def kick(self, account, room_id, user_id, reason="test"):
        self.call("POST", "/_matrix/client/v3/rooms/%s/kick" % urllib.parse.quote(room_id),
                  {"user_id": user_id, "reason": reason}, token=account.token)

    def ban(self, account, room_id, user_id, reason="test"):
        self.call("POST", "/_matrix/client/v3/rooms/%s/ban" % urllib.parse.quote(room_id),
                  {"user_id": user_id, "reason": reason}, token=account.token)

    def unban(self, account, room_id, user_id):
        self.call("POST", "/_matrix/client/v3/rooms/%s/unban" % urllib.parse.quote(room_id),
                  {"user_id": user_id}, token=account.token)

    def send(self, account, room_id, content, etype="m.room.message"):
        txn = "t%d" % time.monotonic_ns()
        return self.call("PUT", "/_matrix/client/v3/rooms/%s/send/%s/%s" % (urllib.parse.quote(room_id), etype, txn),
                         content, token=account.token)["event_id"]

    def say(self, account, room_id, body, relates_to=None):
        content = {"msgtype": "m.text", "body": body}
        if relates_to:
            content["m.relates_to"] = relates_to
        return self.send(account, room_id, content)

    def react(self, account, room_id, event_id, key):
        return self.send(account, room_id, {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id,
                                                              "key": key}}, etype="m.reaction")

    def redact(self, account, room_id, event_id, reason=None):
        txn = "r%d" % time.monotonic_ns()
        return self.call("PUT", "/_matrix/client/v3/rooms/%s/redact/%s/%s" % (urllib.parse.quote(room_id),
                                                                              urllib.parse.quote(event_id), txn),
                         {"reason": reason} if reason else {}, token=account.token)["event_id"]

    def set_power(self, account, room_id, user_id, level):
        path = "/_matrix/client/v3/rooms/%s/state/m.room.power_levels/" % urllib.parse.quote(room_id)
        content = self.call("GET", path, token=account.token)
        content.setdefault("users", {})[user_id] = level
        self.call("PUT", path, content, token=account.token)

    def messages(self, account, room_id, limit=1000):
        """The room's whole timeline, oldest first, paged until Synapse gives no `end`."""
        events, token = [], None
        while True:
            query = {"dir": "b", "limit": str(min(limit, 1000))}
            if token:
                query["from"] = token
            r = self.call("GET", "/_matrix/client/v3/rooms/%s/messages" % urllib.parse.quote(room_id), query=query,
                          token=account.token)
            events.extend(r.get("chunk", []))
            token = r.get("end")
            if not token:
                break
        events.reverse()
        return events

    def event(self, account, room_id, event_id):
        return self.call("GET", "/_matrix/client/v3/rooms/%s/event/%s" % (urllib.parse.quote(room_id),
                                                                         urllib.parse.quote(event_id)),
                         token=account.token)

    def relations(self, account, room_id, event_id, rel_type=None):
        path = "/_matrix/client/v1/rooms/%s/relations/%s" % (urllib.parse.quote(room_id), urllib.parse.quote(event_id))
        if rel_type:
            path += "/" + rel_type
        return self.call("GET", path, token=account.token, query={"limit": "1000"})["chunk"]

    def notifications(self, account, only_highlight=True):
        """What Synapse's push-rule evaluation decided for this user: its /notifications list."""
        out, token = [], None
        while True:
            query = {"limit": "1000"}
            if only_highlight:
                query["only"] = "highlight"
            if token:
                query["from"] = token
            r = self.call("GET", "/_matrix/client/v3/notifications", query=query, token=account.token)
            out.extend(r.get("notifications", []))
            token = r.get("next_token")
            if not token or not r.get("notifications"):
                return out

    def close(self):
        self.stop()


if __name__ == "__main__":
    # python3 tests/synapse.py: install, start once, print the URL; for trying by hand.
    import tempfile
    d = tempfile.mkdtemp(prefix="zmb-synapse-")
    t = time.monotonic()
    hs = Synapse(d)
    print("Synapse %s at %s after %.1fs (dir %s)" % (SYNAPSE_VERSION, hs.url, time.monotonic() - t, d))
    hs.stop()
