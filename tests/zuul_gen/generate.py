#!/usr/bin/env python3
"""Regenerates tests/data/zuul-<version>/ from Zuul's own MQTT reporter.

Usage (from the repository root; needs network access to PyPI the first time):

    python3 tests/zuul_gen/generate.py            # (re)write tests/data/zuul-14.3.0/
    python3 tests/zuul_gen/generate.py --check    # write to a temporary directory and
                                                  # compare with the committed files
    python3 tests/zuul_gen/generate.py --out DIR  # write elsewhere
    python3 tests/zuul_gen/generate.py --python /usr/bin/python3   # build the venv with it

It never installs anything into the Python that runs it. It keeps a throwaway virtual
environment in $XDG_CACHE_HOME/zuul-matrix-bridge/zuul-<version>-venv (default
~/.cache/...), creates it with `<python> -m venv` and `pip install zuul==<version>` if it is
missing or holds another zuul (about 1-2 minutes; tested with the pyenv CPython 3.11.7 on
PATH and with Debian's /usr/bin/python3 3.11.2 (needs python3-venv)), then runs
tests/zuul_gen/emit.py with that venv's python. Delete the directory to start over.

The output is deterministic: a fixed clock and uuids derived from scenario names, so two
runs write identical bytes (--check verifies that the committed corpus is what Zuul writes).
"""

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import pin  # noqa: E402


def cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "zuul-matrix-bridge")


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def venv_zuul_version(venv):
    python = venv_python(venv)
    if not os.path.exists(python):
        return None
    p = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('zuul'))"],
                       capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def ensure_venv(base_python):
    venv = os.path.join(cache_dir(), "zuul-%s-venv" % pin.ZUUL_VERSION)
    # Written last: a venv whose install failed half-way is never taken for a ready one.
    ready = os.path.join(venv, "zuul-gen-ready")
    if os.path.exists(ready) and venv_zuul_version(venv) == pin.ZUUL_VERSION:
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    os.makedirs(cache_dir(), exist_ok=True)
    try:
        print("generate.py: creating %s with %s, installing zuul==%s" % (venv, base_python, pin.ZUUL_VERSION),
              flush=True)
        subprocess.run([base_python, "-m", "venv", venv], check=True)
        subprocess.run([venv_python(venv), "-m", "pip", "install", "--quiet", "zuul==" + pin.ZUUL_VERSION],
                       check=True)
        subprocess.run([venv_python(venv), "-c", "import zuul.driver.mqtt.mqttreporter"], check=True)
    except (subprocess.CalledProcessError, OSError) as e:
        shutil.rmtree(venv, ignore_errors=True)
        sys.exit("generate.py: could not install zuul==%s with %s (%s); try --python /usr/bin/python3"
                 % (pin.ZUUL_VERSION, base_python, e))
    if venv_zuul_version(venv) != pin.ZUUL_VERSION:
        shutil.rmtree(venv, ignore_errors=True)
        sys.exit("generate.py: zuul %s did not install into %s" % (pin.ZUUL_VERSION, venv))
    with open(ready, "w") as f:
        f.write(pin.ZUUL_VERSION + "\n")
    return venv


def emit(venv, out_dir):
    subprocess.run([venv_python(venv), os.path.join(HERE, "emit.py"), out_dir], check=True)


def compare(expected_dir, actual_dir):
    """Names of files that differ or exist on one side only."""
    names = set(os.listdir(expected_dir)) | set(os.listdir(actual_dir))
    return sorted(n for n in names
                  if not (os.path.isfile(os.path.join(expected_dir, n)) and os.path.isfile(os.path.join(actual_dir, n))
                          and filecmp.cmp(os.path.join(expected_dir, n), os.path.join(actual_dir, n), shallow=False)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, pin.DATA_DIR))
    parser.add_argument("--check", action="store_true",
                        help="generate into a temporary directory and compare with --out")
    parser.add_argument("--python", default=sys.executable, help="interpreter that creates the venv")
    args = parser.parse_args()
    venv = ensure_venv(args.python)
    if not args.check:
        emit(venv, args.out)
        return
    scratch = tempfile.mkdtemp(prefix="zuul-gen-check.")
    try:
        emit(venv, scratch)
        differing = compare(args.out, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if differing:
        sys.exit("generate.py --check: %s differs from what Zuul %s writes: %s"
                 % (args.out, pin.ZUUL_VERSION, ", ".join(differing)))
    print("generate.py --check: %s is exactly what Zuul %s writes" % (args.out, pin.ZUUL_VERSION))


if __name__ == "__main__":
    main()
