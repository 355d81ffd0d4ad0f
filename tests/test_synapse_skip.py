"""The synapse suite's promise about PyPI: where matrix-synapse cannot be installed, the
suite skips with the reason outside CI, and fails under CI=true (CI must never skip it).
PyPI is made unreachable with a pip index on a closed loopback port and an empty cache."""

import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tap import run, test  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def run_suite_offline(ci):
    cache = tempfile.mkdtemp(prefix="zmb-nopypi-")
    env = dict(os.environ, XDG_CACHE_HOME=cache, PIP_INDEX_URL="http://127.0.0.1:9/simple",
               PIP_RETRIES="0", PIP_TIMEOUT="2", PIP_FIND_LINKS="")
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    try:
        return subprocess.run(["/usr/bin/python3", os.path.join(HERE, "test_synapse.py")], capture_output=True,
                              text=True, env=env, timeout=300)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@test
def without_pypi_the_synapse_suite_skips_with_the_reason():
    r = run_suite_offline(ci=False)
    assert r.returncode == 0, (r.returncode, r.stdout[-500:], r.stderr[-500:])
    lines = r.stdout.splitlines()
    assert lines == [lines[0]] and lines[0].startswith("1..0 # SKIP Synapse cannot be installed here: "), r.stdout
    assert "matrix-synapse==" in lines[0], lines[0]


@test
def under_ci_the_synapse_suite_fails_instead_of_skipping():
    r = run_suite_offline(ci=True)
    assert r.returncode != 0, (r.stdout[-500:], r.stderr[-500:])
    assert "SKIP" not in r.stdout, r.stdout
    assert "SynapseUnavailable" in r.stderr, r.stderr[-800:]


run()
