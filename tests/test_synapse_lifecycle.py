"""The bridge's life in a real room on a real Synapse (tests/synapse.py): its history read back
after state_dir is lost, however much others said since; kicked, banned and invited back.
What the room holds is read back from Synapse, the way a client sees it."""

import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import PAYLOADS, SynapseWorld, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402

CHATOPS = """
chatops: { command_power_level = 50; };
"""
ALL = '  { name = "all"; room = "#alerts:localhost"; }'
REBUILT = "rebuilt failures and claims"


def with_world(routes, fn, **kw):
    w = SynapseWorld(routes, **kw)
    try:
        fn(w)
    finally:
        w.close()


def payload(name, **changes):
    with open(os.path.join(PAYLOADS, name)) as f:
        ev = json.load(f)
    for k, v in changes.items():
        if k == "buildset_uuid":
            ev["buildset"]["uuid"] = v
        else:
            ev[k] = v
    return ev


def periodic(buildset):
    """The shared periodic-daily failure of SovereignCloudStack/standards, one buildset."""
    return json.dumps(payload("shared-periodic-failure.json", buildset_uuid=buildset))


def relation(e):
    return e["content"].get("m.relates_to") or {}


def top_level(w, room="alerts"):
    return [e for e in w.bot_messages(room) if not relation(e)]


def in_thread(w, root, room="alerts"):
    return [e for e in w.bot_messages(room)
            if relation(e).get("rel_type") == "m.thread" and relation(e).get("event_id") == root]


@test
def a_failure_behind_250_messages_of_chatter_is_found_after_state_dir_is_lost():
    def body(w):
        room = w.rooms["alerts"]
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("n1"))
        root = wait_for(lambda: top_level(w), 15, "the failure")[0]["event_id"]
        for i in range(250):
            w.hs.say(w.alice if i % 2 else w.bob, room, "chatter %d" % i)
        assert w.bridge.stop() == 0
        shutil.rmtree(w.state)
        w.start_bridge()
        # The log is appended across restarts: the first start's rebuild logged it once.
        w.bridge.wait_log(REBUILT, 30, count=2)
        log = w.bridge.log()
        assert "failures=1" in log.split(REBUILT)[-1].splitlines()[0], log.split(REBUILT)[-1][:300]
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("n2"))
        wait_for(lambda: in_thread(w, root), 20, "the repeat in the failure's thread")
        time.sleep(1)
        assert len(top_level(w)) == 1, [e["content"]["body"][:40] for e in top_level(w)]
        assert len(in_thread(w, root)) == 1
    with_world(ALL, body, extra=CHATOPS)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
