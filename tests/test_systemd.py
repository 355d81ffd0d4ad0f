"""Tests of the systemd unit meson generates: this build's paths, `systemd-analyze verify`,
a sandbox rated 2.0 or lower by `systemd-analyze security --offline`, and `meson install
--destdir` putting the unit, binary, example config and templates in place.

Needs systemd-analyze (Debian package systemd) but not systemd as PID 1: it runs in a
container. verify checks that ExecStart= is executable, so it runs on a copy of the unit
whose commands name the binary in the build directory."""

import functools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import diag, run, test  # noqa: E402

ROOT = os.environ.get("ZMB_SOURCE_ROOT", os.getcwd())
BUILD = os.environ.get("ZMB_BUILD_ROOT", os.path.join(ROOT, "build"))
BIN = os.path.join(BUILD, "zuul-matrix-bridge")
UNIT = os.path.join(BUILD, "systemd", "zuul-matrix-bridge.service")
UNIT_NAME = "zuul-matrix-bridge.service"
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


@functools.lru_cache(maxsize=None)
def build_options():
    """The build's meson options (prefix, bindir, ...) as {name: value}."""
    out = subprocess.run(["meson", "introspect", "--buildoptions", BUILD], capture_output=True, check=True,
                         timeout=60).stdout
    return {o["name"]: o["value"] for o in json.loads(out)}


def under_prefix(opts, name):
    """An install directory option made absolute the way meson does (prefix / value)."""
    return os.path.join(opts["prefix"], opts[name])


def read(path):
    with open(path) as f:
        return f.read()


def unit_settings(text):
    """{(section, key): [values]} of a unit file; comments and blank lines skipped."""
    settings, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault((section, key), []).append(value)
    return settings


def runnable_copy(text, directory):
    """Writes the unit to directory with its commands pointing at the built binary;
    returns the copy's path (systemd-analyze wants the .service name)."""
    opts = build_options()
    installed = os.path.join(under_prefix(opts, "bindir"), "zuul-matrix-bridge")
    assert installed in text, "expected the unit to run %s" % installed
    path = os.path.join(directory, UNIT_NAME)
    with open(path, "w") as f:
        f.write(text.replace(installed, BIN))
    return path


def analyze(*args):
    if not os.access(ANALYZE, os.X_OK):
        raise AssertionError("systemd-analyze not found: install the Debian package systemd (tests/install-deps)")
    p = subprocess.run([ANALYZE, "--no-pager"] + list(args), capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def exposure(unit_text):
    """The overall exposure `systemd-analyze security --offline` gives the unit (0.0 .. 10.0)."""
    with tempfile.TemporaryDirectory(prefix="zmb-systemd-") as d:
        path = runnable_copy(unit_text, d)
        rc, out = analyze("security", "--offline=yes", path)
    m = re.search(r"Overall exposure level for %s: (\d+\.\d+)" % re.escape(UNIT_NAME), out)
    assert m, "expected an overall exposure line, got (rc %d):\n%s" % (rc, out)
    return float(m.group(1))


def without_line(text, line):
    """text with the whole line `line` removed (it must be there exactly once)."""
    lines = text.split("\n")
    assert lines.count(line) == 1, "expected the line %r once in the unit" % line
    lines.remove(line)
    return "\n".join(lines)


@test
def generated_unit_names_this_builds_paths():
    opts = build_options()
    text = read(UNIT)
    leftover = re.findall(r"@[A-Za-z_]+@", text)
    assert not leftover, "expected every @placeholder@ replaced, found %s" % leftover
    s = unit_settings(text)
    binary = os.path.join(under_prefix(opts, "bindir"), "zuul-matrix-bridge")
    conf = os.path.join(under_prefix(opts, "sysconfdir"), "zuul-matrix-bridge", "zuul-matrix-bridge.conf")
    assert s[("Service", "ExecStart")] == ["%s -c %s" % (binary, conf)], s[("Service", "ExecStart")]
    assert s[("Service", "ExecStartPre")] == ["%s --check-config -c %s" % (binary, conf)], \
        s[("Service", "ExecStartPre")]
    token = os.path.join(under_prefix(opts, "sysconfdir"), "zuul-matrix-bridge", "matrix-access-token")
    assert s[("Service", "LoadCredential")] == ["matrix-access-token:" + token], s[("Service", "LoadCredential")]


@test
def unit_has_the_service_contract():
    s = unit_settings(read(UNIT))
    want = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "ExecReload": ["/bin/kill -HUP $MAINPID"],
        "Restart": ["on-failure"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["zuul-matrix-bridge"],
        "ProtectSystem": ["strict"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
    }
    for key, values in want.items():
        got = s.get(("Service", key))
        assert got == values, "%s: expected %s, got %s" % (key, values, got)
    assert s.get(("Service", "WatchdogSec")), "expected WatchdogSec= (the loop sends WATCHDOG=1)"
    assert s.get(("Install", "WantedBy")) == ["multi-user.target"], s.get(("Install", "WantedBy"))
    # The default state_dir must be the directory StateDirectory= creates and lends to the
    # dynamic user, or the bridge could not write its outbox.
    state_dirs = re.findall(r'^state_dir = "([^"]*)";', read(os.path.join(ROOT, "config",
                                                                          "zuul-matrix-bridge.conf.example")), re.M)
    assert state_dirs == ["/var/lib/zuul-matrix-bridge"], state_dirs


def parse_bytes(value):
    """systemd's size notation (K, M, G: powers of 1024) in bytes."""
    m = re.fullmatch(r"(\d+)([KMG]?)", value)
    assert m, "expected a size like 256M, got %r" % value
    return int(m.group(1)) * 1024 ** " KMG".index(m.group(2) or " ")


@test
def unit_limits_the_bridges_memory():
    # The backstop for a publish too large for libmosquitto to refuse in time (operations.md).
    s = unit_settings(read(UNIT))
    high, limit = s.get(("Service", "MemoryHigh")), s.get(("Service", "MemoryMax"))
    assert high and limit, "expected MemoryHigh= and MemoryMax=, got %s and %s" % (high, limit)
    high, limit = parse_bytes(high[-1]), parse_bytes(limit[-1])
    # Well above the ~16 MiB peak of the benchmarks, below what one huge publish would take.
    assert 64 << 20 <= high < limit <= 512 << 20, \
        "expected 64M <= MemoryHigh < MemoryMax <= 512M, got %d and %d bytes" % (high, limit)
    # systemd-analyze accepts them ("Invalid memory limit '256Q', ignoring" otherwise).
    with tempfile.TemporaryDirectory(prefix="zmb-systemd-") as d:
        rc, out = analyze("verify", runnable_copy(read(UNIT), d))
    assert rc == 0 and out == "", "expected verify to accept the memory lines, got rc %d:\n%s" % (rc, out)


@test
def unit_passes_systemd_analyze_verify():
    with tempfile.TemporaryDirectory(prefix="zmb-systemd-") as d:
        path = runnable_copy(read(UNIT), d)
        rc, out = analyze("verify", path)
        assert rc == 0 and out == "", "expected verify to pass silently, got rc %d:\n%s" % (rc, out)
        # The same check notices a mistake (unknown keys are only warnings, hence `out`).
        with open(path, "a") as f:
            f.write("[Service]\nProtectSytem=strict\n")
        rc, out = analyze("verify", path)
        assert "ProtectSytem" in out, "expected verify to complain about a misspelt key, got rc %d:\n%s" % (rc, out)


@test
def unit_exposure_is_at_most_2_0():
    text = read(UNIT)
    score = exposure(text)
    diag("exposure %.1f (at most %.1f)" % (score, MAX_EXPOSURE))
    assert score <= MAX_EXPOSURE, "expected exposure <= %.1f, got %.1f" % (MAX_EXPOSURE, score)
    # --threshold (0..100) is what an operator's CI would use; it must agree.
    with tempfile.TemporaryDirectory(prefix="zmb-systemd-") as d:
        rc, out = analyze("security", "--offline=yes", "--threshold=%d" % round(MAX_EXPOSURE * 10),
                          runnable_copy(text, d))
    assert rc == 0, "expected --threshold=20 to pass, got rc %d:\n%s" % (rc, out)


@test
def removing_sandboxing_lines_raises_exposure():
    text = read(UNIT)
    base = exposure(text)
    # Lines DynamicUser= implies (ProtectSystem=strict, PrivateTmp=, ...) change nothing
    # when removed alone, so these are ones that count by themselves.
    for line in ["DynamicUser=yes", "PrivateUsers=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                 "RestrictNamespaces=yes", "SystemCallFilter=@system-service",
                 "SystemCallFilter=~@privileged @resources", "ProtectKernelTunables=yes", "PrivateDevices=yes"]:
        score = exposure(without_line(text, line))
        assert score > base, "expected removing %r to raise the exposure above %.1f, got %.1f" % (line, base, score)
    # Without the empty capability set the threshold check itself fails.
    weak = without_line(text, "CapabilityBoundingSet=")
    with tempfile.TemporaryDirectory(prefix="zmb-systemd-") as d:
        rc, out = analyze("security", "--offline=yes", "--threshold=20", runnable_copy(weak, d))
    assert rc != 0, "expected --threshold=20 to fail without CapabilityBoundingSet=, got rc 0:\n%s" % out


@test
def meson_install_destdir_stages_unit_binary_config_and_templates():
    opts = build_options()
    unit_dir = opts.get("systemdsystemunitdir", "")
    if unit_dir == "":
        p = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir",
                            "--define-variable=rootprefix=" + opts["prefix"], "systemd"], capture_output=True)
        unit_dir = p.stdout.decode().strip() if p.returncode == 0 else os.path.join(opts["prefix"], "lib/systemd/system")
    with tempfile.TemporaryDirectory(prefix="zmb-destdir-") as dest:
        p = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", dest],
                           capture_output=True, timeout=120)
        assert p.returncode == 0, "meson install failed:\n%s" % (p.stdout + p.stderr).decode()

        def staged(*parts):
            return os.path.join(dest, *(x.lstrip("/") for x in parts))

        binary = staged(under_prefix(opts, "bindir"), "zuul-matrix-bridge")
        assert os.stat(binary).st_mode & stat.S_IXUSR, "expected %s executable" % binary
        if unit_dir != "no":
            unit = staged(unit_dir, UNIT_NAME)
            assert os.path.exists(unit), "expected the unit at %s; staged:\n%s" % (unit, listing(dest))
            assert read(unit) == read(UNIT), "expected the installed unit to be the generated one"
        example = staged(under_prefix(opts, "sysconfdir"), "zuul-matrix-bridge", "zuul-matrix-bridge.conf.example")
        assert os.path.exists(example), "expected %s; staged:\n%s" % (example, listing(dest))
        template = staged(under_prefix(opts, "datadir"), "zuul-matrix-bridge", "templates", "default.html")
        assert read(template) == read(os.path.join(ROOT, "templates", "default.html")), template


def listing(top):
    return "\n".join(os.path.relpath(os.path.join(d, f), top) for d, _, files in os.walk(top) for f in files)


run()
