"""The bridge's life in a real room on a real Synapse (tests/synapse.py): its history read back
after state_dir is lost, however much others said since; kicked, banned and invited back.
What the room holds is read back from Synapse, the way a client sees it."""

import json
import os
import shutil
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import SynapseWorld, free_port, payload_variant, periodic_report, run_in, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402

CHATOPS = """
chatops: { command_power_level = 50; };
"""
ALL = '  { name = "all"; room = "#alerts:localhost"; }'
REBUILT = "rebuilt failures and claims"
REMOVED = "the bot was removed from the room"


def with_world(routes, fn, **kw):
    run_in(SynapseWorld(routes, **kw), fn)


payload = payload_variant


def periodic(buildset):
    """The shared periodic-daily failure of SovereignCloudStack/standards, one buildset."""
    return periodic_report(buildset)


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


def check_failure(buildset):
    """A check-pipeline failure of its own buildset: three of them are three reports."""
    return json.dumps(payload("shared-modern-failure.json", buildset_uuid=buildset))


def buildsets_posted(w, keys):
    """The buildsets among keys that the bot's messages (edits aside) name, in room order."""
    out = []
    for e in w.bot_messages():
        if relation(e).get("rel_type") == "m.replace":
            continue
        out += [k for k in keys if k in e["content"].get("body", "")]
    return out


def http_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.read().decode()


def metrics_extra(port):
    return CHATOPS + 'metrics: { listen = "127.0.0.1"; port = %d; };' % port


def waits_while_out_then_all_arrive_once_in_order(w, port, remove, readmit, how):
    room, alerts = w.rooms["alerts"], "#alerts:localhost"
    remove(room)
    w.bridge.wait_log(REMOVED, 20)
    line = [ln for ln in w.bridge.log().splitlines() if REMOVED in ln][0]
    assert "membership=%s" % how in line and "by=@alice:localhost" in line, line
    health = json.loads(http_get(port, "/healthz"))
    assert health["rooms_not_joined"] == [alerts], health
    assert 'zmb_room_joined{room="%s"} 0' % alerts in http_get(port, "/metrics")
    keys = ["out%d-%s" % (i, how) for i in range(3)]
    for k in keys:
        w.broker.publish("zuul/scs/check", payload=check_failure(k))
    w.bridge.wait_log("report queued", 20, count=3)
    time.sleep(2)  # time enough for a send to be tried and refused
    assert buildsets_posted(w, keys) == [], buildsets_posted(w, keys)
    listing = w.bridge.cli("dead-letters", "-c", w.bridge.conf).stdout.decode()
    assert "0 dead letters" in listing, listing
    readmit(room)
    w.hs.invite(w.alice, room, w.bot.user_id)
    wait_for(lambda: len(buildsets_posted(w, keys)) >= 3, 30, "the three waiting reports")
    time.sleep(1)
    assert buildsets_posted(w, keys) == keys, buildsets_posted(w, keys)
    metrics = http_get(port, "/metrics")
    assert 'zmb_room_joined{room="%s"} 1' % alerts in metrics, metrics
    assert 'zmb_room_removals_total{room="%s"} 1' % alerts in metrics, metrics
    assert 'zmb_route_reports_failed_total{route="all"} 0' in metrics, metrics
    assert json.loads(http_get(port, "/healthz"))["rooms_not_joined"] == []
    assert w.bridge.log().count(REMOVED) == 1, "one removal, logged once"


@test
def kicked_the_reports_wait_and_after_an_invite_all_arrive_once_in_order():
    port = free_port()

    def body(w):
        waits_while_out_then_all_arrive_once_in_order(
            w, port, lambda room: w.hs.kick(w.alice, room, w.bot.user_id), lambda room: None, "leave")
    with_world(ALL, body, extra=metrics_extra(port))


@test
def banned_the_reports_wait_and_after_unban_and_invite_all_arrive_once_in_order():
    port = free_port()

    def body(w):
        waits_while_out_then_all_arrive_once_in_order(
            w, port, lambda room: w.hs.ban(w.alice, room, w.bot.user_id),
            lambda room: w.hs.unban(w.alice, room, w.bot.user_id), "ban")
    with_world(ALL, body, extra=metrics_extra(port))


@test
def a_room_the_bot_was_never_invited_to_keeps_its_reports_until_the_invite():
    """#late exists at start, but nobody invited the bot: the join is refused (403), its
    reports wait; the invite names the room only by its id, so the bridge knows it by the
    canonical alias Synapse puts in the invite's stripped state."""
    routes = ALL + ',\n  { name = "late"; room = "#late:localhost"; }'

    def body(w):
        late = w.hs.create_room(w.alice, "late")
        w.start_bridge(wait_joined=False)
        w.bridge.wait_log("cannot join room; its reports wait in the outbox until the bot is invited", 20)
        w.bridge.wait_log("joined room", 20)
        w.broker.publish("zuul/scs/check", payload=check_failure("late1"))
        wait_for(lambda: buildsets_posted(w, ["late1"]), 20, "the report in #alerts")
        listing = w.bridge.cli("dead-letters", "-c", w.bridge.conf).stdout.decode()
        assert "0 dead letters" in listing, listing
        w.hs.invite(w.alice, late, w.bot.user_id)
        w.bridge.wait_log("invited into the room; joining", 20)
        got = wait_for(lambda: [e for e in w.hs.messages(w.alice, late) if e["sender"] == w.bot.user_id
                                and "late1" in e["content"].get("body", "")], 20, "the report in #late")
        assert len(got) == 1, got
    with_world(routes, body, extra=CHATOPS, start_bridge=False)


@test
def a_new_bridge_whose_only_room_has_not_invited_it_yet_takes_reports_and_joins_on_the_invite():
    """A first start (no state, so the rooms' history is read before reports are taken) in
    which no route room can be joined yet: there is no history to read, so reports are
    taken and wait, /sync runs anyway, and the invite lets them out."""
    routes = '  { name = "late"; room = "#late:localhost"; }'

    def body(w):
        late = w.hs.create_room(w.alice, "late")
        w.start_bridge(wait_joined=False)
        w.bridge.wait_log("cannot join room; its reports wait in the outbox until the bot is invited", 20)
        w.bridge.wait_log("rooms' history known; taking reports", 20)
        w.broker.publish("zuul/scs/check", payload=check_failure("first1"))
        w.bridge.wait_log("report queued", 20)
        w.hs.invite(w.alice, late, w.bot.user_id)
        w.bridge.wait_log("invited into the room; joining", 20)
        got = wait_for(lambda: [e for e in w.hs.messages(w.alice, late) if e["sender"] == w.bot.user_id
                                and "first1" in e["content"].get("body", "")], 20, "the report in #late")
        assert len(got) == 1, got
    with_world(routes, body, extra=CHATOPS, start_bridge=False, rooms=())


@test
def without_chatops_a_refused_send_pauses_the_room_and_a_reload_after_the_invite_rejoins():
    """No chatops, no /sync: the kick shows at the first send (403 "not in room"), and only a
    reload (or a restart) joins again once the bot is invited."""
    port = free_port()

    def body(w):
        room = w.rooms["alerts"]
        w.hs.kick(w.alice, room, w.bot.user_id)
        keys = ["quiet%d" % i for i in range(3)]
        for k in keys:
            w.broker.publish("zuul/scs/check", payload=check_failure(k))
        w.bridge.wait_log(REMOVED, 20)
        w.bridge.wait_log("report queued", 20, count=3)
        time.sleep(1)
        listing = w.bridge.cli("dead-letters", "-c", w.bridge.conf).stdout.decode()
        assert "0 dead letters" in listing, listing
        assert json.loads(http_get(port, "/healthz"))["rooms_not_joined"] == ["#alerts:localhost"]
        w.hs.invite(w.alice, room, w.bot.user_id)
        w.bridge.signal(signal.SIGHUP)
        wait_for(lambda: len(buildsets_posted(w, keys)) >= 3, 30, "the three waiting reports")
        time.sleep(1)
        assert buildsets_posted(w, keys) == keys, buildsets_posted(w, keys)
        assert 'zmb_room_removals_total{room="#alerts:localhost"} 1' in http_get(port, "/metrics")
    with_world(ALL, body, extra='metrics: { listen = "127.0.0.1"; port = %d; };' % port)


@test
def a_homeserver_disabled_by_its_admin_answers_resource_limit_and_the_report_waits():
    """Synapse with hs_disabled answers every send 403 M_RESOURCE_LIMIT_EXCEEDED (limit_type
    hs_disabled, api/auth_blocking.py): the report waits and is posted once it is lifted."""
    def body(w):
        w.hs.restart(config={"hs_disabled": True, "hs_disabled_message": "Down for maintenance",
                             "admin_contact": "mailto:admin@localhost"})
        w.broker.publish("zuul/scs/check", payload=check_failure("limited"))
        w.bridge.wait_log("M_RESOURCE_LIMIT_EXCEEDED", 30)
        time.sleep(1)
        lines = [ln for ln in w.bridge.log().splitlines() if "M_RESOURCE_LIMIT_EXCEEDED" in ln and "level=warn" in ln]
        assert lines and "delivery failed; will retry" in lines[0], lines
        assert "limit_type hs_disabled" in lines[0] and "admin_contact mailto:admin@localhost" in lines[0], lines[0]
        listing = w.bridge.cli("dead-letters", "-c", w.bridge.conf).stdout.decode()
        assert "0 dead letters" in listing, listing
        w.hs.restart(config={"hs_disabled": False})
        wait_for(lambda: buildsets_posted(w, ["limited"]), 30, "the report once the limit is lifted")
        time.sleep(1)
        assert buildsets_posted(w, ["limited"]) == ["limited"]
        assert "moved to dead letters" not in w.bridge.log()
    with_world(ALL, body)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
