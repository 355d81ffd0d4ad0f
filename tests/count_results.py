"""count_results: sums test points over meson test logs and prints "N passed, M failed".

Each TAP line of a test counts as one point; a test that died before printing its plan
(crash, sanitizer abort, timeout) counts as one more failure, so a crash can't hide."""

import json
import re
import sys


def count_log(path):
    passed = failed = 0
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            out = entry.get("stdout") or ""
            ok = len(re.findall(r"^ok \d+", out, re.M))
            bad = len(re.findall(r"^not ok \d+", out, re.M))
            plan = re.search(r"^1\.\.(\d+)", out, re.M)
            skipped_all = plan and plan.group(1) == "0"
            passed += ok
            failed += bad
            if entry.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and bad == 0:
                failed += 1  # crashed, timed out or exited non-zero with no failing point
                print("died: %s in %s (%s)" % (entry.get("name"), path, entry.get("result")))
            elif not plan and not skipped_all:
                failed += 1
                print("no TAP plan: %s in %s" % (entry.get("name"), path))
    return passed, failed


def main(argv):
    build_failures = 0
    if argv[:1] == ["--build-failures"]:
        build_failures = int(argv[1])
        argv = argv[2:]
    logs, extra = argv, []
    if "--" in argv:
        i = argv.index("--")
        logs, extra = argv[:i], argv[i + 1:]
    passed, failed = 0, build_failures
    for path in logs:
        p, f = count_log(path)
        passed += p
        failed += f
    for item in extra:  # "pass:NAME" / "fail:NAME" from fuzzing runs
        if item.startswith("pass:"):
            passed += 1
        else:
            failed += 1
    if build_failures:
        print("%d build(s) failed" % build_failures)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
