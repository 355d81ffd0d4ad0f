"""Integration tests of the command line: the real binary, real files, exit codes and
exact output, as operators and template authors use it (DESIGN.md "Contract")."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import test, run  # noqa: E402

ROOT = os.environ.get("ZMB_SOURCE_ROOT", os.getcwd())
BIN = os.path.join(os.environ.get("ZMB_BUILD_ROOT", os.path.join(ROOT, "build")), "zuul-matrix-bridge")
SAMPLES = os.path.join(ROOT, "tests", "data", "payloads")
TEMPLATES = os.path.join(ROOT, "templates")
TOKEN = "syt_secret_token_never_printed_4242"


def zmb(*args, env=None, stdin=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ZMB_MATRIX") and not k.startswith("ZMB_MQTT")}
    full_env.update(env or {})
    return subprocess.run([BIN] + list(args), capture_output=True, env=full_env, input=stdin, timeout=30)


def tmpdir():
    return tempfile.mkdtemp(prefix="zmb-cli-")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def config_text(routes, extra=""):
    return (
        'template_dir = "%s";\nstate_dir = "state";\n%s'
        'matrix: { homeserver = "http://127.0.0.1:8008"; };\n'
        "routes = (\n%s\n);\n" % (TEMPLATES, extra, routes)
    )


ROUTES = """
  { name = "all"; room = "!alerts:localhost"; },
  { name = "periodic-failures"; room = "#ops:localhost";
    match: { pipelines = ["periodic-*"]; actions = ["failure"]; }; }
"""


def good_config(d):
    return write(os.path.join(d, "bridge.conf"), config_text(ROUTES))


def out(p):
    return p.stdout.decode() + p.stderr.decode()


@test
def help_lists_every_command_and_exits_0():
    p = zmb("--help")
    assert p.returncode == 0, p
    text = p.stdout.decode()
    for word in ("--check-config", "render", "--raw", "--route", "explain", "ZMB_MATRIX_ACCESS_TOKEN"):
        assert word in text, "--help does not mention %s" % word


@test
def version_prints_name_and_version():
    p = zmb("--version")
    assert p.returncode == 0
    assert p.stdout.decode().startswith("zuul-matrix-bridge 0."), p.stdout


@test
def unknown_option_is_a_usage_error_with_status_2():
    p = zmb("--frobnicate")
    assert p.returncode == 2, p.returncode
    assert "unknown option '--frobnicate'" in p.stderr.decode(), p.stderr
    p = zmb("-c")
    assert p.returncode == 2 and "needs a value" in p.stderr.decode(), p.stderr


@test
def render_raw_writes_exactly_the_escaped_text_without_newline():
    d = tmpdir()
    t = write(os.path.join(d, "t.mustache"), "x{{a}}")
    data = write(os.path.join(d, "d.json"), '{"a": "<1>"}')
    p = zmb("render", "--template", t, "--raw", data)
    assert p.returncode == 0, out(p)
    assert p.stdout == b"x&lt;1&gt;", p.stdout


@test
def render_raw_reads_partials_from_the_given_directory():
    d = tmpdir()
    parts = os.path.join(d, "parts")
    os.mkdir(parts)
    write(os.path.join(parts, "item.mustache"), "[{{name}}]")
    write(os.path.join(parts, "plain"), "<{{{name}}}>")
    t = write(os.path.join(d, "t.mustache"), "{{#items}}{{> item}}{{> plain}}{{/items}}")
    data = write(os.path.join(d, "d.json"), '{"items": [{"name": "a&b"}, {"name": "c"}]}')
    p = zmb("render", "--template", t, "--partials", parts, "--raw", data)
    assert p.returncode == 0, out(p)
    assert p.stdout == b"[a&amp;b]<a&b>[c]<c>", p.stdout


@test
def render_raw_reads_data_from_stdin():
    d = tmpdir()
    t = write(os.path.join(d, "t.mustache"), "{{#list}}{{.}},{{/list}}")
    p = zmb("render", "--template", t, "--raw", "-", stdin=b'{"list": [1, 2.5, "x"]}')
    assert p.stdout == b"1,2.5,x,", p.stdout


@test
def render_raw_reports_template_syntax_errors_with_file_and_line():
    d = tmpdir()
    t = write(os.path.join(d, "bad.mustache"), "line one\n{{#open}}\nnever closed\n")
    data = write(os.path.join(d, "d.json"), "{}")
    p = zmb("render", "--template", t, "--raw", data)
    assert p.returncode == 1, out(p)
    assert t + ":" in p.stderr.decode() and "open" in p.stderr.decode(), p.stderr


@test
def render_raw_refuses_data_that_is_not_json():
    d = tmpdir()
    t = write(os.path.join(d, "t.mustache"), "x")
    data = write(os.path.join(d, "d.json"), "{not json")
    p = zmb("render", "--template", t, "--raw", data)
    assert p.returncode == 1 and "not valid JSON" in p.stderr.decode(), out(p)


@test
def check_config_accepts_a_good_file():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN})
    assert p.returncode == 0, out(p)
    assert "OK (2 routes)" in p.stdout.decode(), p.stdout


@test
def check_config_says_once_that_the_room_side_is_on_without_its_groups():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN})
    text = p.stdout.decode()
    assert p.returncode == 0, out(p)
    assert text.count("note:") == 1, text
    assert "without a chatops or triage group the defaults apply: repeated failures go into the first " \
        "one's thread" in text and "docs/migrating.md" in text, text
    with open(conf) as f:
        base = f.read()
    # a chatops group written for 0.1, without triage: triage's new default is named
    write(conf, base + "\nchatops: { threads = true; };\n")
    text = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN}).stdout.decode()
    assert "without a triage group the defaults apply: infrastructure failures across projects become one " \
        "incident message" in text, text
    # both groups, or the room side off: nothing to say
    for extra in ("\nchatops: { threads = true; };\ntriage: { job_window = \"30m\"; };\n",
                  "\nchatops: { enabled = false; };\n"):
        write(conf, base + extra)
        p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN})
        assert p.returncode == 0 and "note:" not in p.stdout.decode(), out(p)


@test
def check_config_accepts_the_shipped_example():
    # The example names the installed template directory; point it at the source tree.
    d = tmpdir()
    example = open(os.path.join(ROOT, "config", "zuul-matrix-bridge.conf.example")).read()
    lines = [ln for ln in example.splitlines() if not ln.strip().startswith("template_dir")]
    conf = write(os.path.join(d, "example.conf"), "\n".join(lines) + '\ntemplate_dir = "%s";\n' % TEMPLATES)
    tokfile = write(os.path.join(d, "token"), TOKEN + "\n")
    p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN, "ZMB_MQTT_PASSWORD": "pw"})
    # The example may reference credential files that don't exist here; only those may fail.
    text = out(p)
    for line in text.splitlines():
        if "cannot read" in line and "_file" in line:
            continue
        assert p.returncode == 0 or "_file" in line, text
    del tokfile


@test
def check_config_names_file_and_line_of_an_unknown_key():
    d = tmpdir()
    conf = write(os.path.join(d, "bad.conf"), "bogus_key = 1;\n")
    p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN})
    assert p.returncode != 0
    assert (conf + ":1:") in p.stderr.decode() and "bogus_key" in p.stderr.decode(), p.stderr


def check_error(text, needle_line, *needles):
    d = tmpdir()
    conf = write(os.path.join(d, "bridge.conf"), text)
    p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN})
    err = p.stderr.decode()
    assert p.returncode == 1, "expected exit 1, got %d: %s" % (p.returncode, out(p))
    assert "%s:%d:" % (conf, needle_line) in err, "expected %s:%d: in %r" % (conf, needle_line, err)
    for n in needles:
        assert n in err, "expected %r in %r" % (n, err)
    assert TOKEN not in out(p)
    return err


@test
def check_config_names_the_line_of_a_wrong_type():
    check_error(config_text(ROUTES, 'mqtt: {\n  port = "1883";\n};\n'), 4, "port", "integer")


@test
def check_config_names_the_line_of_a_missing_homeserver():
    text = 'template_dir = "%s";\nmatrix: {\n};\nroutes = ( { name = "a"; room = "!a:b"; } );\n' % TEMPLATES
    check_error(text, 2, "homeserver")


@test
def check_config_names_the_line_of_a_route_without_room():
    text = config_text('  { name = "a";\n    template = "default.html"; }')
    check_error(text, 5, "room")


@test
def check_config_names_the_line_of_a_bad_glob():
    text = config_text('  { name = "a"; room = "!a:b";\n    match: { projects = ["ok/*", "bad["]; }; }')
    check_error(text, 6, "bad[", "projects")


@test
def check_config_names_the_line_of_a_missing_template():
    text = config_text('  { name = "a"; room = "!a:b";\n    template = "nope.html"; }')
    check_error(text, 6, "nope.html")


@test
def check_config_reports_template_syntax_errors_with_template_file_and_line():
    d = tmpdir()
    tpl = write(os.path.join(d, "broken.html"), "<p>\n{{#builds}}\n</p>\n")
    conf = write(os.path.join(d, "bridge.conf"), config_text('  { name = "a"; room = "!a:b"; template = "%s"; }' % tpl))
    p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": TOKEN})
    assert p.returncode == 1, out(p)
    assert tpl + ":" in p.stderr.decode() and "builds" in p.stderr.decode(), p.stderr


@test
def check_config_requires_an_access_token_and_reads_it_from_a_file():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("--check-config", "-c", conf)
    assert p.returncode == 1 and "access token" in p.stderr.decode(), out(p)
    write(os.path.join(d, "token"), TOKEN + "\n")
    conf2 = write(os.path.join(d, "b2.conf"), config_text(ROUTES).replace(
        'homeserver = "http://127.0.0.1:8008";', 'homeserver = "http://127.0.0.1:8008"; access_token_file = "token";'))
    p = zmb("--check-config", "-c", conf2)
    assert p.returncode == 0, out(p)
    assert TOKEN not in out(p)


@test
def an_inline_secret_is_refused_without_echoing_it():
    d = tmpdir()
    conf = write(os.path.join(d, "b.conf"), config_text(ROUTES).replace(
        'homeserver = "http://127.0.0.1:8008";', 'homeserver = "http://127.0.0.1:8008"; access_token = "%s";' % TOKEN))
    p = zmb("--check-config", "-c", conf, env={"ZMB_MATRIX_ACCESS_TOKEN": "other"})
    assert p.returncode == 1, out(p)
    assert "access_token" in p.stderr.decode()
    assert TOKEN not in out(p), out(p)


@test
def check_config_refuses_credentials_in_the_homeserver_url_without_echoing_them():
    text = config_text(ROUTES).replace('homeserver = "http://127.0.0.1:8008";',
                                       'homeserver = "http://bot:hs-pw-4242@127.0.0.1:8008";')
    err = check_error(text, 3, "matrix.homeserver", "user name or password", "matrix.access_token_file",
                      "matrix.password_file")
    assert "hs-pw-4242" not in err, err


@test
def render_prints_the_message_content_for_a_matching_route():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("render", "-c", conf, "--route", "periodic-failures", os.path.join(SAMPLES, "shared-periodic-failure.json"))
    assert p.returncode == 0, out(p)
    content = json.loads(p.stdout)
    assert content["msgtype"] == "m.notice"
    assert content["m.mentions"] == {}, "without it, clients fall back to keyword push rules"
    assert content["format"] == "org.matrix.custom.html"
    assert "scs-compliance-check-gx-scs-main" in content["formatted_body"]
    assert "scs-compliance-check-gx-scs-main" in content["body"]
    assert "<" not in content["body"], content["body"]


@test
def render_works_for_every_shared_sample_on_the_catch_all_route():
    d = tmpdir()
    conf = good_config(d)
    for name in sorted(os.listdir(SAMPLES)):
        if not name.startswith("shared-"):
            continue
        p = zmb("render", "-c", conf, "--route", "all", os.path.join(SAMPLES, name))
        assert p.returncode == 0, (name, out(p))
        content = json.loads(p.stdout)
        assert content["body"].strip() and content["formatted_body"].strip(), name


@test
def render_explains_why_a_route_does_not_match():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("render", "-c", conf, "--route", "periodic-failures", os.path.join(SAMPLES, "shared-modern-start.json"))
    assert p.returncode == 1, out(p)
    err = p.stderr.decode()
    assert "does not match" in err and "periodic-*" in err and '"check"' in err, err
    assert p.stdout == b"", p.stdout


@test
def render_names_the_routes_when_the_route_is_unknown():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("render", "-c", conf, "--route", "nope", os.path.join(SAMPLES, "shared-modern-start.json"))
    assert p.returncode == 1
    assert 'no route named "nope"' in p.stderr.decode() and "periodic-failures" in p.stderr.decode(), p.stderr


@test
def render_refuses_a_payload_that_is_not_a_zuul_report():
    d = tmpdir()
    conf = good_config(d)
    ev = write(os.path.join(d, "ev.json"), '["not", "an", "object"]')
    p = zmb("render", "-c", conf, "--route", "all", ev)
    assert p.returncode == 1 and "not a Zuul report" in p.stderr.decode(), out(p)


@test
def render_view_prints_the_view_model():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("render", "-c", conf, "--route", "all", "--view", os.path.join(SAMPLES, "shared-modern-failure.json"))
    assert p.returncode == 0, out(p)
    view = json.loads(p.stdout)
    assert view["pipeline"] == "check" and view["tenant"] == "scs", view


@test
def explain_gives_each_routes_verdict():
    d = tmpdir()
    conf = good_config(d)
    p = zmb("explain", "-c", conf, os.path.join(SAMPLES, "shared-periodic-failure.json"))
    assert p.returncode == 0, out(p)
    text = p.stdout.decode()
    assert "2 of 2 routes match" in text, text
    p = zmb("explain", "-c", conf, os.path.join(SAMPLES, "shared-modern-start.json"))
    assert "1 of 2 routes match" in p.stdout.decode(), p.stdout


run()
