"""The bridge against a real Synapse: the real binary between a real mosquitto and a real
homeserver (tests/synapse.py), with real users (alice 100, bob 50, carol 0) reacting,
redacting and commanding from their own accounts. What the room holds is read back from
Synapse itself (/messages, /event, relations), the way a client sees it."""

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import re  # noqa: E402
import urllib.parse  # noqa: E402

import room_view  # noqa: E402
import synapse  # noqa: E402
from harness import (BRIDGE_BIN, PAYLOADS, Bridge, SynapseWorld, World, payload_variant, periodic_report, run_in,  # noqa: E402
                     wait_for)
from tap import diag, run, skip_all, test  # noqa: E402

EYES, CHECK = "\U0001F440", "\u2705"
CHATOPS = """
chatops: {
  command_power_level = 50;
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
};
"""
ALL = '  { name = "all"; room = "#alerts:localhost"; }'


def with_world(routes, fn, **kw):
    run_in(SynapseWorld(routes, **kw), fn)


payload = payload_variant
periodic = periodic_report


def relation(e):
    return (e["content"].get("m.relates_to") or {})


def top_level(w, room="alerts"):
    return [e for e in w.bot_messages(room) if not relation(e)]


def in_thread(w, root, room="alerts"):
    return [e for e in w.bot_messages(room)
            if relation(e).get("rel_type") == "m.thread" and relation(e).get("event_id") == root]


def edits(w, root, room="alerts"):
    return [e for e in w.bot_messages(room)
            if relation(e).get("rel_type") == "m.replace" and relation(e).get("event_id") == root]


def aggregated(w, event_id, room="alerts"):
    """The event as Synapse serves it, with its aggregations (latest edit, thread summary)."""
    return w.hs.event(w.alice, w.rooms[room], event_id)


def latest_text(w, event_id, room="alerts"):
    """The text a client shows for event_id: its latest edit's m.new_content, as Synapse picks it."""
    return w.latest_body(event_id, room)


def wait_text(w, event_id, predicate, what, timeout=15):
    return wait_for(lambda: predicate(latest_text(w, event_id)) and latest_text(w, event_id), timeout, what)


@test
def reports_reach_the_rooms_they_were_routed_to_exactly_as_rendered():
    routes = """
  { name = "failures"; room = "#alerts:localhost"; match: { actions = ["failure"]; }; },
  { name = "periodic"; room = "#ops:localhost"; match: { pipelines = ["periodic-*"]; }; }
"""

    def body(w):
        w.broker.publish_sample("shared-modern-failure.json")    # check failure -> alerts only
        w.broker.publish_sample("shared-periodic-failure.json")  # periodic failure -> both
        w.broker.publish_sample("shared-modern-start.json")      # check start -> nowhere
        w.bridge.wait_log("report matches no route")
        wait_for(lambda: len(w.bot_messages("alerts")) >= 2 and len(w.bot_messages("ops")) >= 1, 20, "3 posts")
        time.sleep(0.5)
        alerts, ops = w.bot_messages("alerts"), w.bot_messages("ops")
        assert len(alerts) == 2 and len(ops) == 1, ([e["content"]["body"][:40] for e in alerts], len(ops))
        for event, route, sample in ((alerts[0], "failures", "shared-modern-failure.json"),
                                     (alerts[1], "failures", "shared-periodic-failure.json"),
                                     (ops[0], "periodic", "shared-periodic-failure.json")):
            r = subprocess.run([BRIDGE_BIN, "render", "-c", w.bridge.conf, "--route", route,
                                os.path.join(PAYLOADS, sample)], capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr
            rendered = json.loads(r.stdout)
            for key in ("msgtype", "body", "format", "formatted_body"):
                assert event["content"].get(key) == rendered.get(key), (key, event["content"].get(key), rendered.get(key))
            # /event serves the same content as /messages
            assert w.hs.event(w.bob, event["room_id"], event["event_id"])["content"] == event["content"]
    with_world(routes, body, rooms=("alerts", "ops"))


@test
def repeats_become_one_thread_and_the_recovery_closes_it_as_synapse_aggregates_them():
    def body(w):
        for night in range(3):
            w.broker.publish("zuul/scs/periodic-daily", payload=periodic("night%d" % night))
        root = wait_for(lambda: top_level(w), 15, "the root")[0]["event_id"]
        wait_for(lambda: len(in_thread(w, root)) == 2, 15, "two repeats in the thread")
        wait_text(w, root, lambda t: "Failed 3 times since" in t, "the counter on the root")
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("fixed", action="success"))
        text = wait_text(w, root, lambda t: t.startswith(CHECK + " Recovered"), "the recovery edit")
        assert "Failed 3 times since" in text, text[:200]
        thread = in_thread(w, root)
        assert len(thread) == 3 and "Recovered" in thread[-1]["content"]["body"], [e["content"]["body"][:40] for e in thread]
        summary = aggregated(w, root)["unsigned"]["m.relations"]["m.thread"]
        assert summary["count"] == 3, summary
        assert summary["latest_event"]["event_id"] == thread[-1]["event_id"], summary
        time.sleep(0.5)
        assert len(top_level(w)) == 1, "the success that closed the streak is not posted again at the top: %r" % (
            [e["content"]["body"][:40] for e in top_level(w)])
        # every edit was accepted by Synapse as a replacement of the root
        assert all(e["content"]["m.new_content"] for e in edits(w, root))
        w.assert_messages_well_formed()
    with_world(ALL, body, extra=CHATOPS)


@test
def real_reactions_claim_and_resolve_and_a_redaction_takes_the_claim_back():
    def body(w):
        w.broker.publish_sample("shared-modern-failure.json")
        root = wait_for(lambda: top_level(w), 15, "the failure")[0]["event_id"]
        room = w.rooms["alerts"]
        eyes = w.hs.react(w.alice, room, root, EYES)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @alice:localhost\n"), "alice's claim")
        w.hs.react(w.bob, room, root, EYES)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @alice:localhost and @bob:localhost\n"),
                  "both claims")
        w.hs.redact(w.alice, room, eyes)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @bob:localhost\n"), "alice's claim taken back")
        w.hs.react(w.bob, room, root, CHECK + "\ufe0f")
        text = wait_text(w, root, lambda t: t.startswith(CHECK + " Resolved by @bob:localhost\n"), "bob's resolve")
        assert "Build failed" in text, text[:200]
        # the reactions Synapse aggregates on the root are exactly the live ones
        keys = sorted((e["sender"], e["content"]["m.relates_to"]["key"])
                      for e in w.hs.relations(w.alice, room, root, "m.annotation"))
        assert keys == [(w.bob.user_id, CHECK + "\ufe0f"), (w.bob.user_id, EYES)], keys
        w.assert_messages_well_formed()
    with_world(ALL, body, extra=CHATOPS)


def replies_to(w, event_id):
    return [e for e in w.bot_messages() if (relation(e).get("m.in_reply_to") or {}).get("event_id") == event_id]


@test
def commands_follow_the_rooms_real_power_levels():
    def body(w):
        room = w.rooms["alerts"]
        asked = w.hs.say(w.carol, room, "!zuul help")
        refusal = wait_for(lambda: replies_to(w, asked), 15, "the refusal to carol")[0]["content"]["body"]
        assert "power level" in refusal and "Commands" not in refusal, refusal
        asked = w.hs.say(w.bob, room, "!zuul help")
        answer = wait_for(lambda: replies_to(w, asked), 15, "the answer to bob")[0]["content"]["body"]
        assert answer.startswith("Commands (for members with power level 50 or more):"), answer
        w.hs.set_power(w.alice, room, w.carol.user_id, 50)
        asked = w.hs.say(w.carol, room, "!zuul help")
        answer = wait_for(lambda: replies_to(w, asked), 15, "the answer to carol at 50")[0]["content"]["body"]
        assert answer.startswith("Commands"), answer
        w.assert_messages_well_formed()
        w.hs.set_power(w.alice, room, w.bob.user_id, 0)
        asked = w.hs.say(w.bob, room, "!zuul help")
        refusal = wait_for(lambda: replies_to(w, asked), 15, "the refusal to bob at 0")[0]["content"]["body"]
        assert "Commands" not in refusal, refusal
    with_world(ALL, body, extra=CHATOPS)


@test
def claims_and_threads_are_rebuilt_from_the_room_after_state_dir_is_lost():
    def body(w):
        room = w.rooms["alerts"]
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("n1"))
        root = wait_for(lambda: top_level(w), 15, "the root")[0]["event_id"]
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("n2"))
        wait_for(lambda: len(in_thread(w, root)) == 1, 15, "the first repeat")
        w.hs.react(w.alice, room, root, EYES)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @alice:localhost\n"), "alice's claim")
        assert w.bridge.stop() == 0
        shutil.rmtree(w.state)
        w.start_bridge()
        w.bridge.wait_log("rebuilt", 20)
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("n3"))
        wait_for(lambda: len(in_thread(w, root)) == 2, 20, "the repeat after the rebuild in the same thread")
        text = wait_text(w, root, lambda t: "Failed 3 times since" in t, "the counter continued")
        assert text.startswith(EYES + " Claimed by @alice:localhost\n"), text[:200]
        w.assert_messages_well_formed()
        assert len(top_level(w)) == 1, [e["content"]["body"][:40] for e in top_level(w)]
    with_world(ALL, body, extra=CHATOPS)


@test
def a_full_outbox_goes_out_exactly_once_and_in_order_across_a_crash_and_an_outage():
    def body(w):
        w.hs.stop()                      # the homeserver is away: reports wait in the outbox
        n = 30
        for i in range(n):
            w.broker.publish("zuul/scs/check", payload=json.dumps(
                payload("shared-modern-failure.json", buildset_uuid="full%02d" % i)))
        w.bridge.wait_log("report queued", 20, count=n)
        w.bridge.kill9()                 # crash with everything queued
        w.hs.start()
        w.start_bridge()
        wait_for(lambda: w.bridge.log().count("msg=delivered") >= 5, 20, "some deliveries")
        w.bridge.kill9()                 # crash again in the middle of the drain
        w.start_bridge()
        # the reports, as the room side posts them by default: the first at the top, the
        # repeats in its thread; the counter edits of the first are not reports
        def reports():
            return [e for e in w.bot_messages()
                    if (e["content"].get("m.relates_to") or {}).get("rel_type") != "m.replace"]
        wait_for(lambda: len(reports()) >= n, 30, "all %d reports" % n)
        time.sleep(1)
        bodies = [e["content"]["body"] for e in reports()]
        keys = [b.split("/buildset/")[1].split(")")[0] for b in bodies]
        assert keys == ["full%02d" % i for i in range(n)], keys
    with_world(ALL, body)


# Both sides of a differential story run on one fixed test clock: a minute turning between
# the two runs must not make the rooms differ ("Failed 2 times since ...").
STORY_TIME = 1799996400   # Fri 2027-01-15 07:00 UTC


def clock_env(workdir):
    path = os.path.join(workdir, "clock")
    with open(path, "w") as f:
        f.write("%d\n" % STORY_TIME)
    return {"ZMB_TEST_CLOCK": path}


def fake_world_on_the_clock(routes, extra):
    """The fake homeserver's world with the bridge on the fixed story clock, /sync running."""
    w = World(routes, extra=extra, start_bridge=False)
    w.bridge = Bridge(w.dir, w.config, env=clock_env(w.dir))
    w.bridge.wait_log("MQTT connected", 15)  # subscribed: a report published now is not lost
    w.bridge.wait_log("joined room", 10)
    wait_for(lambda: any("/sync" in r["path"] for r in w.hs.requests()), 10, "the first /sync")
    return w


def synapse_world_on_the_clock(routes, extra):
    w = SynapseWorld(routes, extra=extra, start_bridge=False)
    w.env.update(clock_env(w.dir))
    w.start_bridge()
    return w


def assert_same_room(rooms):
    """rooms["fake"] and rooms["synapse"] (normalised texts) are equal, else a diff says where."""
    if rooms["fake"] != rooms["synapse"]:
        import difflib
        raise AssertionError("the rooms differ:\n" + "\n".join(difflib.unified_diff(
            rooms["fake"].splitlines(), rooms["synapse"].splitlines(), "fake", "synapse", lineterm="")))


def fake_room_events(w, room="!alerts:localhost"):
    evs = w.hs.call("GET", "/_fake/rooms/%s/events" % urllib.parse.quote(room, safe=""))
    return evs.get("events", evs) if isinstance(evs, dict) else evs


def normalised_room(events):
    """The room as text, with event ids numbered in order of appearance and without state:
    what a member reads, independent of which homeserver minted the ids."""
    text = room_view.render_text([e for e in events if "state_key" not in e])
    ids = {}
    return re.sub(r"\$[A-Za-z0-9_\-.:]+", lambda m: ids.setdefault(m.group(0), "$%d" % (len(ids) + 1)), text)


@test
def the_fake_homeserver_and_synapse_end_with_the_same_room_for_the_same_story():
    """The differential test: one story (a failure, a claim, a repeat, a command, the
    recovery) played against both homeservers gives the same room, as a member reads it."""
    def story(publish, react, say, events):
        """Each step waits for what a member would see next, not for a number of events:
        how many edits go out depends on timing (a newer edit supersedes a queued one)."""
        def text():
            return normalised_room(events())

        def see(*needles, what):
            wait_for(lambda: all(n in text() for n in needles), 20, what, interval=0.2)
        publish(periodic("d1"))
        see("Build failed", what="the root")
        root = [e for e in events() if e.get("sender") == "@zuul-bot:localhost"
                and e["type"] == "m.room.message"][0]["event_id"]
        react(root, EYES)
        see("Claimed by @alice:localhost", what="the claim edit")
        publish(periodic("d2"))
        see("Failed 2 times", "    @zuul-bot:localhost: \u274c Build failed", what="the repeat and its counter")
        say("!zuul help")
        see("Commands (for members", what="the answer to alice")
        publish(periodic("ok", action="success"))
        see("\u2705 Recovered", "Recovered: the next run succeeded", what="the recovery")
        time.sleep(1)
        return text()

    rooms = {}
    fake = fake_world_on_the_clock(ALL, CHATOPS)
    try:
        rooms["fake"] = story(
            lambda p: fake.broker.publish("zuul/scs/periodic-daily", payload=p),
            lambda target, key: fake.hs.inject("!alerts:localhost", "@alice:localhost",
                                               {"m.relates_to": {"rel_type": "m.annotation", "event_id": target,
                                                                 "key": key}}, kind="m.reaction"),
            lambda body: fake.hs.inject("!alerts:localhost", "@alice:localhost", {"msgtype": "m.text", "body": body}),
            lambda: fake_room_events(fake))
    finally:
        fake.close()
    real = synapse_world_on_the_clock(ALL, CHATOPS)
    try:
        room = real.rooms["alerts"]
        rooms["synapse"] = story(
            lambda p: real.broker.publish("zuul/scs/periodic-daily", payload=p),
            lambda target, key: real.hs.react(real.alice, room, target, key),
            lambda body: real.hs.say(real.alice, room, body),
            lambda: real.hs.messages(real.alice, room))
    finally:
        real.close()
    assert_same_room(rooms)
    assert "Recovered" in rooms["synapse"] and EYES in rooms["synapse"], rooms["synapse"]


def fake_as(w, token, method, path, body):
    """A request to the fake homeserver as one of its users (the harness's call() has no token)."""
    req = urllib.request.Request(w.hs.url + path, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


@test
def a_kick_and_the_invite_back_give_the_same_room_on_the_fake_and_on_synapse():
    """The bot is kicked, three reports come meanwhile, the bot is invited back: on both
    homeservers nothing is lost, nothing is posted twice, the order holds, and the rooms
    read the same (the kick and the rejoin are state: what members read are the reports)."""
    def story(publish, kick, invite, events):
        publish(json.dumps(payload("shared-modern-failure.json", buildset_uuid="k0")))
        wait_for(lambda: "/buildset/k0)" in normalised_room(events()), 20, "the report before the kick")
        kick()
        for n in (1, 2, 3):
            publish(json.dumps(payload("shared-modern-failure.json", buildset_uuid="k%d" % n)))
        time.sleep(1.5)
        assert "/buildset/k1)" not in normalised_room(events()), "posted while kicked"
        invite()
        wait_for(lambda: "/buildset/k3)" in normalised_room(events()), 20, "the waiting reports after the invite")
        time.sleep(1)
        text = normalised_room(events())
        order = [text.index("/buildset/k%d)" % n) for n in range(4)]
        assert order == sorted(order) and all(text.count("/buildset/k%d)" % n) == 1 for n in range(4)), text
        return text

    rooms = {}
    fake = fake_world_on_the_clock(ALL, CHATOPS)
    try:
        quoted = urllib.parse.quote("!alerts:localhost", safe="")
        rooms["fake"] = story(
            lambda p: fake.broker.publish("zuul/scs/check", payload=p),
            lambda: fake_as(fake, "alice-token", "POST", "/_matrix/client/v3/rooms/%s/kick" % quoted,
                            {"user_id": "@zuul-bot:localhost", "reason": "too noisy"}),
            lambda: fake_as(fake, "alice-token", "POST", "/_matrix/client/v3/rooms/%s/invite" % quoted,
                            {"user_id": "@zuul-bot:localhost"}),
            lambda: fake_room_events(fake))
        fake_log = fake.bridge.log()
    finally:
        fake.close()
    real = synapse_world_on_the_clock(ALL, CHATOPS)
    try:
        room = real.rooms["alerts"]
        rooms["synapse"] = story(
            lambda p: real.broker.publish("zuul/scs/check", payload=p),
            lambda: real.hs.kick(real.alice, room, real.bot.user_id, reason="too noisy"),
            lambda: real.hs.invite(real.alice, room, real.bot.user_id),
            lambda: real.hs.messages(real.alice, room))
        real_log = real.bridge.log()
    finally:
        real.close()
    assert_same_room(rooms)
    for log in (fake_log, real_log):
        assert log.count("the bot was removed from the room") == 1, log[-2000:]
        assert "dead letter" not in log


# Events that test the push rules' corners, sent by (sender, type, content): legacy mentions
# with and without m.mentions, notices, room mentions by a moderator (bob, 50) and by a member
# at 0 (carol), an edit that mentions, a reaction, word boundaries and case.
PUSH_PROBES = [
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "hello alice"}),
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "hello alice", "m.mentions": {}}),
    ("bob", "m.room.message", {"msgtype": "m.notice", "body": "x", "m.mentions": {"user_ids": ["@alice:localhost"]}}),
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "x", "m.mentions": {"user_ids": ["@alice:localhost"]}}),
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "@room look"}),
    ("carol", "m.room.message", {"msgtype": "m.text", "body": "@room look"}),
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "look", "m.mentions": {"room": True}}),
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "* y", "m.mentions": {"user_ids": ["@carol:localhost"]},
                               "m.new_content": {"msgtype": "m.text", "body": "y"},
                               "m.relates_to": {"rel_type": "m.replace", "event_id": "$PREVIOUS"}}),
    ("bob", "m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$PREVIOUS", "key": "x"}}),
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "alicea carolb"}),
    ("carol", "m.room.message", {"msgtype": "m.notice", "body": "@room alice"}),
    ("bob", "m.room.message", {"msgtype": "m.text", "body": "ALICE!"}),
]


def play_push_probes(send):
    """Sends the probes through send(sender, type, content) -> event id; an edit and a
    reaction point at the event before them."""
    previous = None
    for n, (sender, etype, content) in enumerate(PUSH_PROBES):
        content = json.loads(json.dumps(content).replace("$PREVIOUS", previous or "$none"))
        content["zmb.n"] = n
        event_id = send(sender, etype, content)
        if etype == "m.room.message" and "m.relates_to" not in content:
            previous = event_id


def push_outcome(notifications):
    """[(probe number, highlighted)] of a user's /notifications, in probe order."""
    return sorted((n["event"]["content"]["zmb.n"], any(isinstance(a, dict) and a.get("set_tweak") == "highlight"
                                                      and a.get("value", True) is not False for a in n["actions"]))
                  for n in notifications if "zmb.n" in n["event"]["content"])


@test
def the_fakes_push_rules_are_synapses():
    """Synapse serves the default push rules the fake evaluates, and the same probes notify
    and highlight the same members on both."""
    import fake_homeserver
    import push_rules
    real = SynapseWorld(ALL, start_bridge=False)
    try:
        served = real.hs.call("GET", "/_matrix/client/v3/pushrules/", token=real.alice.token)["global"]
        for kind in push_rules.KIND_ORDER:
            want = [r for k, r in push_rules.rules_for(real.alice.user_id) if k == kind]
            assert served.get(kind, []) == want, "Synapse's %s rules differ from %s" % (kind, push_rules.RULES_FILE)
        room = real.rooms["alerts"]
        accounts = {"alice": real.alice, "bob": real.bob, "carol": real.carol}
        play_push_probes(lambda who, etype, content: real.hs.send(accounts[who], room, content, etype=etype))
        time.sleep(0.5)
        at_synapse = {name: push_outcome(real.hs.notifications(a, only_highlight=False)) for name, a in accounts.items()}
    finally:
        real.close()
    users = {name: "@%s:localhost" % name for name in ("alice", "bob", "carol")}
    config = {"users": [{"user_id": u, "tokens": [name + "-token"]} for name, u in users.items()],
              "rooms": [{"room_id": "!alerts:localhost", "aliases": ["#alerts:localhost"], "creator": users["alice"],
                         "members": {u: "join" for u in users.values()},
                         "power_levels": {"users": {users["alice"]: 100, users["bob"]: 50}}}]}
    fake = fake_homeserver.FakeHomeserver(dict(fake_homeserver.default_config("localhost"), **config))
    port = fake.start()
    try:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        counter = [0]

        def request(method, path, token, body=None):
            conn.request(method, path, json.dumps(body) if body is not None else None,
                         {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            r = conn.getresponse()
            return json.loads(r.read())

        def fake_send(who, etype, content):
            counter[0] += 1
            return request("PUT", "/_matrix/client/v3/rooms/%s/send/%s/p%d" % (
                urllib.parse.quote("!alerts:localhost", safe=""), etype, counter[0]), who + "-token", content)["event_id"]
        play_push_probes(fake_send)
        at_fake = {name: push_outcome(request("GET", "/_matrix/client/v3/notifications", name + "-token")["notifications"])
                   for name in users}
    finally:
        fake.stop()
    diag("Synapse: %r" % at_synapse)
    assert at_fake == at_synapse, "fake %r\nSynapse %r" % (at_fake, at_synapse)
    # the corners the bridge relies on, spelled out
    assert (3, True) in at_synapse["alice"] and not any(n == 2 for n, _ in at_synapse["alice"]), at_synapse
    assert (1, True) not in at_synapse["alice"] and (0, True) in at_synapse["alice"], at_synapse


def largest_body_accepted(send):
    """The longest ASCII body of an m.text message the homeserver takes (send(n) -> status)."""
    lo, hi = 60000, 65536          # lo is accepted, hi is not
    assert send(lo) == 200 and send(hi) == 413, "the limit is not between %d and %d" % (lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if send(mid) == 200:
            lo = mid
        else:
            hi = mid
    return lo


@test
def the_fake_refuses_an_event_for_its_size_where_synapse_does():
    import fake_homeserver
    real = SynapseWorld(ALL, start_bridge=False)
    try:
        room = real.rooms["alerts"]
        real.hs.join(real.bot, room)

        def synapse_send(n):
            try:
                real.hs.send(real.bot, room, {"msgtype": "m.text", "body": "x" * n})
                return 200
            except synapse.MatrixError as e:
                return e.status
        at_synapse = largest_body_accepted(synapse_send)
    finally:
        real.close()
    fake = fake_homeserver.FakeHomeserver(fake_homeserver.default_config("localhost"))
    port = fake.start()
    try:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        counter = [0]

        def fake_send(n):
            counter[0] += 1
            conn.request("PUT", "/_matrix/client/v3/rooms/%s/send/m.room.message/s%d" % (
                urllib.parse.quote("!alerts:localhost", safe=""), counter[0]),
                json.dumps({"msgtype": "m.text", "body": "x" * n}),
                {"Authorization": "Bearer bridge-token", "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            return r.status
        at_fake = largest_body_accepted(fake_send)
    finally:
        fake.stop()
    diag("largest body: Synapse %d bytes, fake %d bytes" % (at_synapse, at_fake))
    # Room ids and event ids differ in length between the two; a few dozen bytes of slack.
    assert abs(at_synapse - at_fake) <= 64, (at_synapse, at_fake)


def rate_limit_answers(put):
    """Sends at once under 2/s with a burst of 3, right after the bot's join (which counts):
    (statuses of three sends, the 429's retry_after_ms, its Retry-After header, how long the
    429 took, the status of a fourth send right after the 429)."""
    statuses = [put("rl%d" % i)[0] for i in range(2)]
    start = time.monotonic()
    status, body, retry_after = put("rl2")
    took = time.monotonic() - start
    return statuses + [status], body.get("retry_after_ms"), retry_after, took, put("rl3")[0]


@test
def the_fake_rate_limits_the_way_synapse_does():
    import http.client
    import fake_homeserver
    real = SynapseWorld(ALL, start_bridge=False, bot_ratelimit=(2, 3))
    try:
        room = real.rooms["alerts"]
        real.hs.join(real.bot, room)
        conn = http.client.HTTPConnection("127.0.0.1", real.hs.port, timeout=10)

        def synapse_put(txn):
            conn.request("PUT", "/_matrix/client/v3/rooms/%s/send/m.room.message/%s" % (urllib.parse.quote(room), txn),
                         json.dumps({"msgtype": "m.text", "body": "x"}),
                         {"Authorization": "Bearer " + real.bot.token, "Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read()), r.getheader("Retry-After")
        at_synapse = rate_limit_answers(synapse_put)
    finally:
        real.close()
    config = fake_homeserver.default_config("localhost")
    config["rooms"][1]["members"]["@zuul-bot:localhost"] = "invite"
    fake = fake_homeserver.FakeHomeserver(dict(config, rc_message={"per_second": 2, "burst_count": 3}))
    port = fake.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        # as with Synapse, the bot's own join is one of its events
        conn.request("POST", "/_matrix/client/v3/join/%s" % urllib.parse.quote("#ops:localhost", safe=""), "{}",
                     {"Authorization": "Bearer bridge-token", "Content-Type": "application/json"})
        assert conn.getresponse().read() and True

        def fake_put(txn):
            conn.request("PUT", "/_matrix/client/v3/rooms/%s/send/m.room.message/%s" % (
                urllib.parse.quote("!alerts:localhost", safe=""), txn), json.dumps({"msgtype": "m.text", "body": "x"}),
                {"Authorization": "Bearer bridge-token", "Content-Type": "application/json"})
            r = conn.getresponse()
            return r.status, json.loads(r.read()), r.getheader("Retry-After")
        at_fake = rate_limit_answers(fake_put)
    finally:
        fake.stop()
    diag("Synapse: %r; fake: %r" % (at_synapse, at_fake))
    for got in (at_synapse, at_fake):
        statuses, retry_ms, header, took, after = got
        assert statuses == [200, 200, 429], got
        assert retry_ms is not None and 0 < retry_ms <= 500 and header == "1", got
        assert took >= 0.45 and after == 200, got   # the 0.5 s hold let the bucket drain


@test
def the_readmes_demo_runs_against_synapse_and_says_how_to_watch_it():
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), "zmb-demo-test-%d" % os.getpid())
    try:
        r = subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.py"),
                            "--no-wait", "--out", out], capture_output=True, text=True, timeout=180,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "starting mosquitto, Synapse %s and zuul-matrix-bridge" % synapse.SYNAPSE_VERSION in r.stdout, r.stdout[:500]
        assert "fake homeserver" not in r.stdout, r.stdout[:500]
        assert "homeserver: http://127.0.0.1:" in r.stdout and "password: alice-password" in r.stdout, r.stdout[-800:]
        # the seven samples: five failures reach #alerts, the periodic one #ops too
        alerts = r.stdout.split("===== #alerts:localhost")[1].split("===== the same room")[0]
        ops = r.stdout.split("===== #ops:localhost")[1].split("===== the same room")[0]
        assert alerts.count("@zuul-bot:localhost: ") == 5 and ops.count("@zuul-bot:localhost: ") == 1, (alerts, ops)
        # the topic the bridge keeps, as Synapse has it
        assert "topic: Workflow: \U0001F440 claim \u00b7 \u2705 resolve \u00b7 !zuul help" in alerts, alerts[:500]
        with open(os.path.join(out, "alerts.html")) as f:
            page = f.read()
        assert page.count("<iframe sandbox=''") == 5, page[:500]
    finally:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
