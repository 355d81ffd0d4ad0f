"""Acting on Zuul against a real Synapse (issue #17): real accounts (alice 100, bob 50, carol 0)
in a real room, the bridge, and tests/fake_zuul_admin.py, which checks each token with Zuul
14.3.0's own claim rules. alice and bob are listed for tenant scs; Zuul's rule grants alice.
What the room shows is read back from Synapse; the replays are Synapse's own: a /sync from an
older position after a restart, and the whole history read again when state_dir is lost."""

import os
import shutil
import sqlite3
import sys
import tempfile
import time

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


def sync_position(w):
    path = os.path.join(w.state, "state.db")
    if not os.path.exists(path):
        return None
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT value FROM kv WHERE key = 'sync.next_batch'").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None  # the first start is still building it
    finally:
        db.close()


def calls(zuul):
    return {kind: len(zuul.requests(kind)) for kind in ("enqueue", "dequeue", "autohold")}


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
        assert 'msg="zuul action" action=recheck user=@alice:localhost tenant=scs' in w.bridge.log()

        # an edit never acts: neither one that turns a message into a command nor one of a command
        hello = w.hs.say(w.alice, room, "hello", relates_to=in_thread)
        for target in (hello, w.hs.say(w.alice, room, "!zuul recheck please", relates_to=in_thread)):
            w.hs.send(w.alice, room, {"msgtype": "m.text", "body": "* !zuul recheck",
                                      "m.new_content": {"msgtype": "m.text", "body": "!zuul recheck"},
                                      "m.relates_to": {"rel_type": "m.replace", "event_id": target}})
        notice_saying(w, rid, "!zuul recheck takes no arguments")

        # a confirmation given while the bridge is down is acted on once it is back
        w.hs.say(w.alice, room, "!zuul autohold scs-compliance-check-gx-scs-main 1 node broken", relates_to=in_thread)
        q = notice_saying(w, rid, "asks for the autohold of job scs-compliance-check-gx-scs-main (1 failed build)")
        before = wait_for(lambda: sync_position(w), 10, "a stored /sync position")
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
        w.hs.react(w.alice, room, q["event_id"], CHECK)
        w.bridge.start()
        notice_saying(w, rid, "(1 failed build) for refs/heads/main of SovereignCloudStack/standards in "
                              "periodic-daily (tenant scs): accepted by Zuul.")
        [hold] = zuul.requests("autohold")
        assert hold["claims"]["sub"] == "@alice:localhost" and hold["body"]["count"] == 1, hold
        assert calls(zuul) == {"enqueue": 1, "dequeue": 1, "autohold": 1}, calls(zuul)

        # Synapse replays: /sync from the position before the confirmation, then the whole
        # history when state_dir is lost. Nothing acts again; the failure keeps its item.
        wait_for(lambda: sync_position(w) not in (None, before), 10, "a newer /sync position")
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
        db = sqlite3.connect(os.path.join(w.state, "state.db"))
        db.execute("UPDATE kv SET value = ? WHERE key = 'sync.next_batch'", (before,))
        db.commit()
        db.close()
        w.bridge.start()
        wait_for(lambda: sync_position(w) != before, 20, "the replayed /sync read")
        time.sleep(1.5)
        assert calls(zuul) == {"enqueue": 1, "dequeue": 1, "autohold": 1}, calls(zuul)
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
        shutil.rmtree(w.state)
        rebuilt = w.bridge.log().count("rebuilt failures and claims from the room's history")
        w.bridge.start()
        w.bridge.wait_log("rebuilt failures and claims from the room's history", 30, count=rebuilt + 1)
        wait_for(lambda: sync_position(w), 20, "the first /sync position after the rebuild")
        time.sleep(1.5)
        assert calls(zuul) == {"enqueue": 1, "dequeue": 1, "autohold": 1}, calls(zuul)
        w.hs.react(w.alice, room, rid, "\U0001F501")
        wait_for(lambda: calls(zuul)["enqueue"] == 2, 20, "a recheck by reaction after the rebuild")
        assert zuul.requests("enqueue")[1]["claims"]["sub"] == "@alice:localhost"
        w.assert_messages_well_formed()
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
