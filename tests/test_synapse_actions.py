"""Acting on Zuul against a real Synapse (issue #17): real accounts (alice 100, bob 50, carol 0)
in a real room, the bridge, and tests/fake_zuul_admin.py, which checks each token with Zuul
14.3.0's own claim rules. alice and bob are listed for tenant scs; Zuul's rule grants alice.
What the room shows is read back from Synapse."""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import SynapseWorld, periodic_report, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402
from zuul_world import FakeZuul, actions_config, private_key_copy  # noqa: E402

ROUTES = '  { name = "all"; room = "#alerts:localhost"; }'
CHECK = "\u2705"


def relation(e):
    return e["content"].get("m.relates_to") or {}


def thread_notices(w, root):
    return [e for e in w.bot_messages("alerts")
            if relation(e).get("rel_type") == "m.thread" and relation(e).get("event_id") == root
            and e["content"].get("msgtype") == "m.notice"]


def notice_saying(w, root, needle, timeout=20):
    return wait_for(lambda: next((e for e in thread_notices(w, root) if needle in e["content"]["body"]), None),
                    timeout, "a notice in the thread saying %r" % needle)


@test
def an_allowed_users_recheck_reaches_zuul_naming_them_and_a_user_not_listed_is_refused():
    side = tempfile.mkdtemp(prefix="zmb-syn-zuul-")
    zuul = FakeZuul(side, admins=["@alice:localhost"])
    w = None
    try:
        key = private_key_copy(side)
        chatops = "chatops: { command_power_level = 50; };\n" + actions_config(
            key, zuul.url, ["@alice:localhost", "@bob:localhost"])
        w = SynapseWorld(ROUTES, extra=chatops)
        room = w.rooms["alerts"]
        w.broker.publish("zuul/scs/periodic-daily", periodic_report("bs-synapse-actions"))
        root = wait_for(lambda: next((e for e in w.bot_messages("alerts") if "zmb.failure" in e["content"]), None),
                        20, "the failure")
        rid = root["event_id"]
        assert root["content"]["zmb.failure"]["item"]["ref"] == "refs/heads/main", root["content"]["zmb.failure"]
        in_thread = {"rel_type": "m.thread", "event_id": rid, "is_falling_back": True,
                     "m.in_reply_to": {"event_id": rid}}

        w.hs.say(w.alice, room, "!zuul recheck", relates_to=in_thread)
        notice_saying(w, rid, "@alice:localhost asked for the recheck of refs/heads/main of "
                              "SovereignCloudStack/standards in periodic-daily (tenant scs): accepted by Zuul")
        [req] = zuul.requests("enqueue")
        assert req["status"] == 200 and req["claims"]["sub"] == "@alice:localhost", req
        assert req["body"] == {"pipeline": "periodic-daily", "ref": "refs/heads/main", "oldrev": None,
                               "newrev": None}, req["body"]

        w.hs.say(w.carol, room, "!zuul recheck", relates_to=in_thread)
        notice_saying(w, rid, "Not done: @carol:localhost is not one of the users who may act on tenant scs.")
        assert len(zuul.requests("enqueue")) == 1, "nothing is sent for a user not listed"

        # a dequeue waits for alice's own reaction on the question, as Synapse relays it
        w.hs.say(w.alice, room, "!zuul dequeue", relates_to=in_thread)
        q = notice_saying(w, rid, "react \u2705 to this message within 5 minutes")
        w.hs.react(w.bob, room, q["event_id"], CHECK)
        w.hs.react(w.alice, room, q["event_id"], CHECK)
        notice_saying(w, rid, "asked for the dequeue of refs/heads/main of SovereignCloudStack/standards in "
                              "periodic-daily (tenant scs): accepted by Zuul.")
        [deq] = zuul.requests("dequeue")
        assert deq["claims"]["sub"] == "@alice:localhost" and deq["body"] == {"pipeline": "periodic-daily",
                                                                            "ref": "refs/heads/main"}, deq
        w.assert_messages_well_formed()
        assert 'msg="zuul action" action=recheck user=@alice:localhost tenant=scs' in w.bridge.log()
    finally:
        if w:
            w.close()
        zuul.stop()
        shutil.rmtree(side, ignore_errors=True)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
