"""The payloads Zuul 14.3.0 itself wrote (tests/data/zuul-14.3.0, made by tests/zuul_gen/generate.py)
against the real binary: every one decodes and renders, and the view model keeps what Zuul sent.

Needs no Zuul: the corpus is committed. What it checks of the corpus itself: index.json lists
exactly the files, records the pinned Zuul version, and every payload is byte for byte what
Python's json.dumps writes; and the generator's emitter refuses to write with another Zuul."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import run, test  # noqa: E402

ROOT = os.environ.get("ZMB_SOURCE_ROOT", os.getcwd())
BIN = os.path.join(os.environ.get("ZMB_BUILD_ROOT", os.path.join(ROOT, "build")), "zuul-matrix-bridge")
GEN = os.path.join(ROOT, "tests", "zuul_gen")
sys.path.insert(0, GEN)
import pin  # noqa: E402

CORPUS = os.path.join(ROOT, pin.DATA_DIR)
TEMPLATES = os.path.join(ROOT, "templates")

def payload_names():
    return sorted(n for n in os.listdir(CORPUS) if n.endswith(".json") and n != "index.json")


def index():
    with open(os.path.join(CORPUS, "index.json"), encoding="utf-8") as f:
        return json.load(f)


def read(name):
    with open(os.path.join(CORPUS, name), "rb") as f:
        return f.read()


def zmb(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, timeout=30)


def config(d):
    path = os.path.join(d, "bridge.conf")
    with open(path, "w") as f:
        f.write('template_dir = "%s";\nstate_dir = "state";\n'
                'matrix: { homeserver = "http://127.0.0.1:8008"; };\n'
                'routes = ( { name = "all"; room = "!alerts:localhost"; } );\n' % TEMPLATES)
    return path


def out(p):
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


@test
def corpus_is_there_and_not_trivial():
    names = payload_names()
    assert len(names) >= 20, names


@test
def index_lists_exactly_the_payload_files_with_topic_and_description():
    files = index()["files"]
    assert sorted(files) == payload_names(), (sorted(files), payload_names())
    for name, entry in files.items():
        assert entry["topic"].startswith("zuul/"), (name, entry)
        assert "+" not in entry["topic"] and "#" not in entry["topic"], (name, entry["topic"])
        assert entry["description"] and entry["exercises"], name


@test
def index_records_the_pinned_zuul_version():
    assert index()["zuul_version"] == pin.ZUUL_VERSION
    assert os.path.basename(CORPUS) == "zuul-" + pin.ZUUL_VERSION


@test
def readme_describes_every_file():
    with open(os.path.join(CORPUS, "README.md"), encoding="utf-8") as f:
        text = f.read()
    for name in payload_names():
        assert "`%s`" % name in text, name


@test
def every_payload_is_exactly_what_json_dumps_writes():
    # MQTTConnection.publish sends json.dumps(message): default separators, ASCII with \u
    # escapes, no newline. Re-serialising what Python reads back must give the same bytes.
    for name in payload_names():
        data = read(name)
        assert data.isascii(), name
        assert not data.endswith(b"\n"), name
        message = json.loads(data)
        assert json.dumps(message).encode("ascii") == data, name
        assert message["action"] == index()["files"][name]["action"], name


def decodable():
    """Every payload Zuul wrote: the bridge takes them all (issue #14)."""
    return payload_names()


@test
def every_decodable_payload_renders_on_a_catch_all_route():
    d = tempfile.mkdtemp(prefix="zmb-corpus-")
    conf = config(d)
    for name in decodable():
        p = zmb("render", "-c", conf, "--route", "all", os.path.join(CORPUS, name))
        assert p.returncode == 0, (name, out(p))
        content = json.loads(p.stdout)
        assert content["body"].strip() and content["formatted_body"].strip(), name
        assert content["msgtype"] in ("m.notice", "m.text"), (name, content["msgtype"])


@test
def the_view_model_keeps_what_zuul_sent():
    d = tempfile.mkdtemp(prefix="zmb-corpus-")
    conf = config(d)
    for name in decodable():
        message = json.loads(read(name))
        p = zmb("render", "-c", conf, "--route", "all", "--view", os.path.join(CORPUS, name))
        assert p.returncode == 0, (name, out(p))
        view = json.loads(p.stdout)
        for key in ("action", "tenant", "pipeline", "project", "uuid", "zuul_event_id"):
            assert view[key] == message[key], (name, key, view[key], message[key])
        assert view["message"] == message["message"], name
        assert view["change_count"] == len(message["changes"]), name
        bs = message["buildset"]
        assert view["buildset"]["uuid"] == bs["uuid"] and view["buildset"]["result"] == bs["result"], name
        sent = sorted((b["job_name"], b.get("uuid")) for b in bs["builds"])
        shown = sorted((b["job_name"], b["uuid"]) for b in view["builds"])
        assert shown == sent, (name, shown, sent)
        retried = sorted(b["uuid"] for b in bs["retry_builds"])
        assert sorted(b["uuid"] for b in view["retried_builds"]) == retried, name


@test
def explain_accepts_every_decodable_payload():
    d = tempfile.mkdtemp(prefix="zmb-corpus-")
    conf = config(d)
    for name in decodable():
        p = zmb("explain", "-c", conf, os.path.join(CORPUS, name))
        assert p.returncode == 0, (name, out(p))
        assert "1 of 1 routes match" in p.stdout.decode(), (name, out(p))


def emit(out_dir, python_args=(), env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable] + list(python_args) + [os.path.join(GEN, "emit.py"), out_dir],
                          capture_output=True, env=env, timeout=60)


@test
def the_emitter_refuses_to_write_without_zuul():
    d = tempfile.mkdtemp(prefix="zmb-corpus-")
    target = os.path.join(d, "out")
    p = emit(target, python_args=["-S"])  # -S: no site-packages, so no zuul whatever is installed
    assert p.returncode == 3, out(p)
    assert "refusing to write" in p.stderr.decode() and "not installed" in p.stderr.decode(), out(p)
    assert not os.path.exists(target)


@test
def the_emitter_refuses_to_write_with_another_zuul_release():
    d = tempfile.mkdtemp(prefix="zmb-corpus-")
    fake = os.path.join(d, "site")
    dist = os.path.join(fake, "zuul-9.9.9.dist-info")
    os.makedirs(dist)
    with open(os.path.join(dist, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\nName: zuul\nVersion: 9.9.9\n")
    target = os.path.join(d, "out")
    p = emit(target, env_extra={"PYTHONPATH": fake})
    assert p.returncode == 3, out(p)
    assert "9.9.9" in p.stderr.decode() and pin.ZUUL_VERSION in p.stderr.decode(), out(p)
    assert not os.path.exists(target)


run()
