"""tap: a minimal TAP runner for the Python integration tests (standard library only).

Each function decorated with @test is one TAP point; a failing assert prints what was
expected and what came instead as TAP diagnostics. Run with run() at the end of a file.
Command line: an optional substring filters the tests to run (handy while debugging)."""

import os
import sys
import time
import traceback

_tests = []


def test(fn):
    """Registers fn as a test point, named after the function."""
    _tests.append(fn)
    return fn


def diag(text):
    for line in str(text).splitlines() or [""]:
        print("# " + line)
    sys.stdout.flush()


def run():
    only = sys.argv[1] if len(sys.argv) > 1 else None
    chosen = [t for t in _tests if not only or only in t.__name__]
    failed = 0
    for n, fn in enumerate(chosen, 1):
        start = time.monotonic()
        try:
            fn()
            ok = True
        except Exception:  # an assert, or any error: the point fails, the run goes on
            ok = False
            diag(traceback.format_exc())
        took = time.monotonic() - start
        if not ok:
            failed += 1
        print("%s %d - %s (%.1fs)" % ("ok" if ok else "not ok", n, fn.__name__, took))
        sys.stdout.flush()
    print("1..%d" % len(chosen))
    sys.stdout.flush()
    # os._exit: background threads (servers under test) must not keep the run alive.
    os._exit(1 if failed else 0)


def skip_all(reason):
    """The whole file is skipped (TAP plan 1..0 with a SKIP directive); meson counts it as skipped."""
    print("1..0 # SKIP %s" % " ".join(str(reason).split()))   # one line, or TAP breaks
    sys.stdout.flush()
    os._exit(0)
