"""harness: real processes for the integration tests: a mosquitto broker on a free
loopback port, the project's fake homeserver, and the bridge binary itself.

Everything lives in a fresh temporary directory per test and is stopped by close()."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.environ.get("ZMB_SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ZMB_BUILD_ROOT", os.path.join(ROOT, "build"))
BRIDGE_BIN = os.path.join(BUILD, "zuul-matrix-bridge")
PAYLOADS = os.path.join(ROOT, "tests", "data", "payloads")
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BRIDGE_TOKEN = "bridge-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, what="condition", interval=0.05):
    """Polls predicate until it returns something truthy; fails the test with `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_port(port, timeout=10.0):
    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    wait_for(up, timeout, "port %d to accept connections" % port)


class Broker:
    """A real mosquitto on 127.0.0.1, with persistence so a restart keeps sessions."""

    def __init__(self, workdir, port=None):
        self.dir = os.path.join(workdir, "broker")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    "persistence_location %s/\nautosave_interval 1\nlog_dest file %s/broker.log\n"
                    "log_type all\n" % (self.port, self.dir, self.dir))
            # Started as root, mosquitto drops to the user "mosquitto", who cannot enter
            # our private test directory: no log, no persistence (sessions lost on restart).
            if os.geteuid() == 0:
                f.write("user root\n")
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def publish(self, topic, payload=None, path=None, qos=1):
        args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", str(qos), "-t", topic]
        args += ["-f", path] if path else ["-m", payload]
        subprocess.run(args, check=True, timeout=10)

    def publish_sample(self, name, topic=None):
        path = os.path.join(PAYLOADS, name)
        with open(path) as f:
            ev = json.load(f)
        topic = topic or "zuul/%s/%s" % (ev.get("tenant") or "t", ev.get("pipeline") or "p")
        self.publish(topic, path=path)
        return ev

    def log(self):
        with open(os.path.join(self.dir, "broker.log"), errors="replace") as f:
            return f.read()


class Homeserver:
    """tests/fake_homeserver.py as a subprocess, with helpers for its /_fake/ API."""

    def __init__(self, workdir, config=None):
        self.dir = os.path.join(workdir, "homeserver")
        os.makedirs(self.dir, exist_ok=True)
        port_file = os.path.join(self.dir, "port")
        args = ["/usr/bin/python3", os.path.join(ROOT, "tests", "fake_homeserver.py"), "--port", "0",
                "--port-file", port_file]
        if config:
            path = os.path.join(self.dir, "config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            args += ["--config", path]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "w"))
        wait_for(lambda: os.path.exists(port_file), 10, "the fake homeserver's port file")
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def events(self, room="!alerts:localhost", kind="m.room.message"):
        evs = self.call("GET", "/_fake/rooms/%s/events" % urllib.request.quote(room, safe=""))
        evs = evs.get("events", evs) if isinstance(evs, dict) else evs
        return [e for e in evs if e.get("type") == kind and e.get("sender", "").startswith("@zuul-bot")]

    def inject(self, room, sender, content, kind="m.room.message", redacts=None):
        """An event from another user (alice, bob...), as if their client had sent it."""
        quoted = urllib.request.quote(room, safe="")
        body = {"sender": sender, "type": kind, "content": content}
        if redacts:
            body["redacts"] = redacts
        r = self.call("POST", "/_fake/rooms/%s/inject" % quoted, body)
        return r["event_id"]

    def requests(self):
        r = self.call("GET", "/_fake/requests")
        return r.get("requests", r) if isinstance(r, dict) else r

    def sends(self):
        return [r for r in self.requests() if r["method"] == "PUT" and "/send/" in r["path"]]

    def faults(self, rules):
        self.call("POST", "/_fake/faults", rules)

    def clear_faults(self):
        self.call("DELETE", "/_fake/faults")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def set_item_project(ev, project):
    """Makes ev (a payload dict) a report of a one-change item of project, as Zuul sends it:
    the top-level copy, the change, and the change each build names."""
    ev["project"] = project
    if ev.get("changes"):
        ev["changes"][0]["project"] = project
    for b in ev["buildset"].get("builds", []) + ev["buildset"].get("retry_builds", []):
        if isinstance(b.get("change"), dict):
            b["change"] = dict(b["change"], project=project)


def payload_variant(name, **changes):
    """A copy (a dict) of a corpus payload with top-level fields changed; buildset_uuid
    sets buildset.uuid, project sets the project of the item and of its first change."""
    with open(os.path.join(PAYLOADS, name)) as f:
        ev = json.load(f)
    for k, v in changes.items():
        if k == "buildset_uuid":
            ev["buildset"]["uuid"] = v
        elif k == "project":
            set_item_project(ev, v)
        else:
            ev[k] = v
    return ev


def periodic_report(buildset, action="failure", failed_jobs=("scs-compliance-check-gx-scs-main",), **changes):
    """The shared periodic-daily report of SovereignCloudStack/standards as JSON, as a failure
    of failed_jobs (the other builds succeed) or as a success."""
    ev = payload_variant("shared-periodic-failure.json", buildset_uuid=buildset, action=action, **changes)
    ev["buildset"]["result"] = "FAILURE" if action == "failure" else "SUCCESS"
    ev["message"] = "Build failed." if action == "failure" else "Build succeeded."
    for b in ev["buildset"]["builds"]:
        b["result"] = "FAILURE" if action == "failure" and b["job_name"] in failed_jobs else "SUCCESS"
    return json.dumps(ev)


def infra_failure_report(buildset, project, jobs, result="NODE_FAILURE"):
    """The shared periodic report of project as JSON, every build of jobs ended with an
    infrastructure result (no change of its own): what a broken node pool makes of it."""
    ev = payload_variant("shared-periodic-failure.json", buildset_uuid=buildset)
    ev["project"] = project
    for c in ev.get("changes", []):
        c["project"] = project
    template = ev["buildset"]["builds"][0]
    ev["buildset"]["builds"] = [dict(template, job_name=j, result=result, uuid="%s-%s" % (buildset, j),
                                     change=None) for j in jobs]
    ev["buildset"]["retry_builds"] = []
    return json.dumps(ev)


def run_in(world, fn):
    """Runs fn(world) and closes the world whatever happens."""
    try:
        fn(world)
    finally:
        world.close()


def config_text(broker, hs, state_dir, routes, extra="", mqtt_extra=""):
    return """
state_dir = "%s";
template_dir = "%s";
%s
mqtt: { host = "127.0.0.1"; port = %d; client_id = "zmb-test"; topics = ["zuul/#"]; %s };
matrix: { homeserver = "%s"; retry_min = "1s"; retry_max = "4s"; request_timeout = "5s"; };
routes = (
%s
);
""" % (state_dir, os.path.join(ROOT, "templates"), extra, broker.port, mqtt_extra, hs.url, routes)


class Bridge:
    """The real zuul-matrix-bridge binary, logging to a file the test can read."""

    def __init__(self, workdir, config, env=None, verbose=True):
        self.dir = workdir
        self.conf = os.path.join(workdir, "bridge.conf")
        self.write_config(config)
        self.log_path = os.path.join(workdir, "bridge.log")
        self.env = dict(os.environ, ZMB_MATRIX_ACCESS_TOKEN=BRIDGE_TOKEN)
        self.env.update(env or {})
        self.verbose = verbose
        self.proc = None
        self.start()

    def write_config(self, text):
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self):
        args = [BRIDGE_BIN, "-c", self.conf] + (["-v"] if self.verbose else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "a"),
                                     env=self.env)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait_log(self, needle, timeout=10.0, count=1):
        return wait_for(lambda: self.log().count(needle) >= count, timeout, "%r in the bridge log" % needle)

    def running(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the bridge did not stop within %ds of SIGTERM" % timeout)
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def cli(self, *args):
        return subprocess.run([BRIDGE_BIN] + list(args), capture_output=True, env=self.env, timeout=30)


def close_world(w):
    """Stops a world's bridge, broker and homeserver (whichever were started) and removes its
    directory unless ZMB_KEEP_TEST_DIRS is set."""
    for part in (w.bridge, w.broker, w.hs):
        try:
            if part:
                part.stop()
        except Exception:
            pass
    if not os.environ.get("ZMB_KEEP_TEST_DIRS"):
        shutil.rmtree(w.dir, ignore_errors=True)


class World:
    """One test's broker + homeserver + bridge, in a temporary directory."""

    def __init__(self, routes, hs_config=None, extra="", mqtt_extra="", start_bridge=True):
        self.dir = tempfile.mkdtemp(prefix="zmb-it-")
        self.broker = Broker(self.dir)
        self.hs = Homeserver(self.dir, hs_config)
        self.state = os.path.join(self.dir, "state")
        self.routes = routes
        self.config = config_text(self.broker, self.hs, self.state, routes, extra, mqtt_extra)
        self.bridge = Bridge(self.dir, self.config) if start_bridge else None
        if self.bridge:
            self.bridge.wait_log("MQTT connected", 10)
            self.bridge.wait_log("joined room", 10)

    def close(self):
        close_world(self)


class SynapseWorld:
    """One test's broker + real Synapse + bridge. The bot, alice (room admin, 100), bob (50)
    and carol (0) are registered; each name in `rooms` becomes #name:localhost, created by
    alice with the others invited and joined. The bridge runs as the bot, with its message
    rate limit lifted unless bot_ratelimit=(per_second, burst) is given ("server" leaves the
    homeserver's own rc_message in force: 0.2/s, burst 10, by default)."""

    def __init__(self, routes, rooms=("alerts",), extra="", mqtt_extra="", start_bridge=True,
                 synapse_config=None, bot_ratelimit=None, env=None):
        from synapse import Synapse  # tests/synapse.py; imported here so fake-only tests need nothing
        self.dir = tempfile.mkdtemp(prefix="zmb-syn-")
        self.broker = None
        self.bridge = None
        self.hs = None
        try:
            self.broker = Broker(self.dir)
            self.hs = Synapse(self.dir, synapse_config)
            self.admin = self.hs.register("admin", admin=True)
            self.bot = self.hs.register("zuul-bot")
            self.alice = self.hs.register("alice")
            self.bob = self.hs.register("bob")
            self.carol = self.hs.register("carol")
            for who in (self.alice, self.bob, self.carol):
                self.hs.override_ratelimit(self.admin, who.user_id)
            if bot_ratelimit is None:
                self.hs.override_ratelimit(self.admin, self.bot.user_id)
            elif bot_ratelimit != "server":
                self.hs.override_ratelimit(self.admin, self.bot.user_id, *bot_ratelimit)
            self.rooms = {}
            for name in rooms:
                self.rooms[name] = self.create_room(name)
            self.state = os.path.join(self.dir, "state")
            self.config = config_text(self.broker, self.hs, self.state, routes, extra, mqtt_extra)
            self.env = dict(env or {}, ZMB_MATRIX_ACCESS_TOKEN=self.bot.token)
            if start_bridge:
                self.start_bridge()
        except BaseException:
            self.close()
            raise

    def create_room(self, name, encrypted=False):
        room = self.hs.create_room(self.alice, name, invite=[self.bot.user_id, self.bob.user_id, self.carol.user_id],
                                   power={self.bob.user_id: 50, self.carol.user_id: 0, self.bot.user_id: 0},
                                   encrypted=encrypted)
        self.hs.join(self.bob, room)
        self.hs.join(self.carol, room)
        return room

    def start_bridge(self, wait_joined=True):
        self.bridge = Bridge(self.dir, self.config, env=self.env)
        self.bridge.wait_log("MQTT connected", 15)
        if wait_joined:
            self.bridge.wait_log("joined room", 15, count=len(self.rooms))
        return self.bridge

    def assert_messages_well_formed(self):
        """What every message of the bot must be, in every room (DESIGN.md invariants): it
        carries m.mentions; it is m.text exactly when it names someone there (a notice never
        notifies); an edit's m.new_content carries m.mentions too; nothing mentions @room; its
        HTML is the current spec's (tests/html_spec.py)."""
        import html_spec
        for name in self.rooms:
            for e in self.bot_messages(name):
                c, where = e["content"], "%s in #%s: %s" % (e["event_id"], name, e["content"].get("body", "")[:60])
                assert isinstance(c.get("m.mentions"), dict), "no m.mentions: " + where
                named = c["m.mentions"].get("user_ids") or []
                assert c.get("msgtype") == ("m.text" if named else "m.notice"), "msgtype %s with %r: %s" % (
                    c.get("msgtype"), named, where)
                assert c["m.mentions"].get("room") is not True, "@room: " + where
                problems = html_spec.content_problems(c, where)
                assert not problems, problems
                if (c.get("m.relates_to") or {}).get("rel_type") == "m.replace":
                    assert isinstance(c["m.new_content"].get("m.mentions"), dict), "edit without mentions: " + where

    def latest_body(self, event_id, name="alerts"):
        """The text a client shows for event_id: its latest edit's m.new_content, as Synapse
        aggregates it."""
        ev = self.hs.event(self.alice, self.rooms[name], event_id)
        replace = ((ev.get("unsigned") or {}).get("m.relations") or {}).get("m.replace")
        return (replace["content"]["m.new_content"] if replace else ev["content"])["body"]

    def bot_messages(self, name="alerts", kind="m.room.message"):
        """The bot's events of one kind in a room, oldest first, as Synapse serves them."""
        return [e for e in self.hs.messages(self.alice, self.rooms[name])
                if e["type"] == kind and e["sender"] == self.bot.user_id]

    def close(self):
        close_world(self)
