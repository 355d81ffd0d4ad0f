"""Integration tests of secrets in operator-visible text: the real binary, a real broker and
the fake homeserver, whose error answers quote the bridge's access token back. Neither the
log nor the state database (dead_letter.reason) nor the dead-letters listing may hold it."""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIDGE_TOKEN, World, run_in, wait_for  # noqa: E402
from tap import run, test  # noqa: E402

ALL = '  { name = "all"; room = "#alerts:localhost"; }'


def dead_letter_reasons(w):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(w.state, "state.db"), uri=True)
    try:
        return [r[0] for r in db.execute("SELECT reason FROM dead_letter")]
    finally:
        db.close()


@test
def a_homeserver_error_that_echoes_the_token_is_redacted_in_log_and_dead_letters():
    def body(w):
        # First a transient error (retried, logged at warn), then a permanent one (logged at
        # error and stored as the dead letter's reason), each quoting the token the way a
        # careless proxy or homeserver might.
        w.hs.faults([
            {"method": "PUT", "path": "/send/", "status": 502, "count": 1, "errcode": "M_UNKNOWN",
             "error": "upstream rejected Authorization: Bearer %s (retry later)" % BRIDGE_TOKEN},
            {"method": "PUT", "path": "/send/", "status": 403, "count": 1, "errcode": "M_FORBIDDEN",
             "error": "token %s may not post here" % BRIDGE_TOKEN},
        ])
        w.broker.publish_sample("shared-modern-failure.json")
        w.bridge.wait_log("moved to dead letters", 15)
        log = w.bridge.log()
        assert BRIDGE_TOKEN not in log, [ln for ln in log.splitlines() if BRIDGE_TOKEN in ln]
        warn = [ln for ln in log.splitlines() if "delivery failed; will retry" in ln]
        assert warn and "Bearer [redacted] (retry later)" in warn[0], warn
        dead = [ln for ln in log.splitlines() if "moved to dead letters" in ln]
        assert "token [redacted] may not post here" in dead[0], dead

        # The store commits its batch after the turn that logged.
        reasons = wait_for(lambda: dead_letter_reasons(w), 10, "the dead letter in state.db")
        assert reasons == ["HTTP 403 M_FORBIDDEN: token [redacted] may not post here"], reasons

        p = w.bridge.cli("dead-letters", "-c", w.bridge.conf)
        listing = p.stdout.decode() + p.stderr.decode()
        assert p.returncode == 0 and "token [redacted] may not post here" in listing, listing
        assert BRIDGE_TOKEN not in listing, listing
    run_in(World(ALL), body)


run()
