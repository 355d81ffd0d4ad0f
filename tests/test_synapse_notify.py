"""Who the bridge's messages notify, measured the way a real client sees it: Synapse's own
push-rule evaluation, read back from GET /_matrix/client/v3/notifications of alice, bob and
carol (only=highlight: the actions set the "highlight" tweak). Pings reach exactly the people
meant; everything else, even Zuul text saying "@room" or a member's name, highlights nobody.
Time is the test clock (ZMB_TEST_CLOCK), so escalations, handovers and digests come on cue."""

import calendar
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import PAYLOADS, SynapseWorld, infra_failure_report, set_item_project, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402

EYES, CHECK = "\U0001F440", "\u2705"
ONCALL = """
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
"""
CHATOPS = "chatops: { command_power_level = 50;" + ONCALL + "};\n"
ESCALATING = ('chatops: { escalate_after = "1h"; fallback = ["@carol:localhost"]; fallback_after = "1h";'
              + ONCALL + "};\n")
ALL = '  { name = "all"; room = "#alerts:localhost"; }'
# Monday 2026-01-12 09:00 UTC: alice hands over to bob. Three in the morning: alice is on call.
HANDOVER = calendar.timegm((2026, 1, 12, 9, 0, 0, 0, 0, 0))
T0 = HANDOVER - 6 * 3600
# A display name the legacy rule .m.rule.contains_display_name would match in a body.
ALICE_NAME = "Alice Liddell"
BAIT = "@room: %s broke it, ask @alice:localhost" % ALICE_NAME


class NotifyWorld:
    """A SynapseWorld whose bridge runs on the test clock, with alice's display name set and
    optionally the bot a moderator (power 50: enough for "@room" under the legacy rules)."""

    def __init__(self, routes, chatops, now, rooms=("alerts",), bot_power=None):
        self.w = SynapseWorld(routes, rooms=rooms, extra=chatops, start_bridge=False)
        try:
            self.clock = os.path.join(self.w.dir, "clock")
            self.set_time(now)
            self.w.env["ZMB_TEST_CLOCK"] = self.clock
            hs = self.w.hs
            hs.call("PUT", "/_matrix/client/v3/profile/%s/displayname" % urllib.parse.quote(self.w.alice.user_id),
                    {"displayname": ALICE_NAME}, token=self.w.alice.token)
            if bot_power is not None:
                for room in self.w.rooms.values():
                    hs.set_power(self.w.alice, room, self.w.bot.user_id, bot_power)
            self.w.start_bridge()
        except BaseException:
            self.w.close()
            raise

    def set_time(self, t):
        with open(self.clock + ".tmp", "w") as f:
            f.write("%d\n" % t)
        os.replace(self.clock + ".tmp", self.clock)

    def __getattr__(self, name):
        return getattr(self.w, name)


def with_world(fn, routes=ALL, chatops=CHATOPS, now=T0, **kw):
    w = NotifyWorld(routes, chatops, now, **kw)
    try:
        fn(w)
        w.assert_messages_well_formed()
    finally:
        w.close()


def highlighted(notification):
    return any(isinstance(a, dict) and a.get("set_tweak") == "highlight" and a.get("value", True) is not False
               for a in notification["actions"])


def highlights(w, account):
    """The events Synapse's push rules highlighted for account, oldest first."""
    found = [n["event"] for n in w.hs.notifications(account) if highlighted(n)]
    return sorted(found, key=lambda e: e["origin_server_ts"])


def check_highlights(w, expected):
    """expected maps alice/bob/carol to the event ids that must highlight them, and nothing else."""
    got = {}
    for name in ("alice", "bob", "carol"):
        got[name] = highlights(w, getattr(w, name))
    bad = {name: ["%s %s: %s" % (e["event_id"], e["content"].get("msgtype"), e["content"].get("body", "")[:70])
                  for e in got[name]]
           for name in got if sorted(e["event_id"] for e in got[name]) != sorted(expected.get(name, []))}
    assert not bad, "highlighted other than %s: %s" % (expected, json.dumps(bad, indent=1))


def relation(e):
    return e["content"].get("m.relates_to") or {}


def top_level(w, room="alerts"):
    return [e for e in w.bot_messages(room) if not relation(e)]


def in_thread(w, root, room="alerts"):
    return [e for e in w.bot_messages(room) if relation(e).get("rel_type") == "m.thread"
            and relation(e).get("event_id") == root]


def edits(w, root, room="alerts"):
    return [e for e in w.bot_messages(room) if relation(e).get("rel_type") == "m.replace"
            and relation(e).get("event_id") == root]


def latest_text(w, event_id, room="alerts"):
    return w.latest_body(event_id, room)


def wait_text(w, event_id, predicate, what, room="alerts", timeout=15):
    return wait_for(lambda: predicate(latest_text(w, event_id, room)) and latest_text(w, event_id, room), timeout, what)


def load(name):
    with open(os.path.join(PAYLOADS, name)) as f:
        return json.load(f)


def failure(buildset, message="Build failed.", project="SovereignCloudStack/standards",
            failed_jobs=("deploy-alice",), action="failure"):
    """A check report of project; failed_jobs fail (linters succeeds), or all succeed."""
    ev = load("shared-modern-failure.json")
    ev["action"] = action
    ev["buildset"]["uuid"] = buildset
    ev["message"] = message
    ev["project"] = ev["changes"][0]["project"] = project
    ok = action != "failure"
    ev["buildset"]["result"] = "SUCCESS" if ok else "FAILURE"
    ev["buildset"]["builds"] = [dict(ev["buildset"]["builds"][0], job_name=job,
                                     result="SUCCESS" if ok or job not in failed_jobs else "FAILURE")
                                for job in list(failed_jobs) + ["linters"]]
    ev["buildset"]["retry_builds"] = []
    set_item_project(ev, project)   # the builds tested that change
    return json.dumps(ev)


node_failure = infra_failure_report


def settle(w, room="alerts", quiet=1.0, timeout=20):
    """Waits until the bot has posted nothing new for `quiet` seconds: the edits and replies
    the last step causes are in the room (and their push actions with them)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        n = len(w.bot_messages(room))
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)


@test
def a_new_failure_highlights_the_on_call_only_though_zuul_names_room_and_members():
    """The report says "@room", @alice:localhost and alice's display name, and the bot may
    notify the room: only bob, on call, is highlighted. Its repeats in the thread, the claim
    and resolve edits from real reactions, the recovery and the success report highlight
    nobody."""
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("n1", BAIT))
        root = wait_for(lambda: top_level(w), 15, "the failure")[0]
        for text in ("@room", "@alice:localhost", ALICE_NAME, "deploy-alice"):
            assert text in root["content"]["body"], (text, root["content"]["body"][:300])
        check_highlights(w, {"bob": [root["event_id"]]})
        for i in (2, 3):
            w.broker.publish("zuul/scs/check", payload=failure("n%d" % i, BAIT))
        wait_for(lambda: len(in_thread(w, root["event_id"])) == 2, 15, "two repeats in the thread")
        room = w.rooms["alerts"]
        w.hs.react(w.alice, room, root["event_id"], EYES)
        wait_text(w, root["event_id"], lambda t: t.startswith(EYES + " Claimed by @alice:localhost\n"), "the claim")
        w.hs.react(w.carol, room, root["event_id"], CHECK)
        wait_text(w, root["event_id"], lambda t: t.startswith(CHECK + " Resolved by @carol:localhost\n"), "the resolve")
        w.broker.publish("zuul/scs/check", payload=failure("n4", "Build succeeded. " + BAIT, action="success"))
        wait_text(w, root["event_id"], lambda t: t.startswith(CHECK + " Recovered"), "the recovery")
        settle(w)
        assert len(edits(w, root["event_id"])) >= 4, len(edits(w, root["event_id"]))
        check_highlights(w, {"bob": [root["event_id"]]})
    with_world(body, now=HANDOVER + 3600, bot_power=50)


@test
def an_unclaimed_failure_escalates_to_the_on_call_then_the_fallback_and_the_digest_pings_nobody():
    """Two failures ping alice, on call; bob claims one. The other is still unclaimed after an
    hour: alice is pinged in its thread, an hour later carol (the fallback). The digest at
    08:00 lists it and highlights nobody; the claim edit neither."""
    routes = '  { name = "all"; room = "#alerts:localhost"; digest_at = "08:00"; }'

    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("e1", BAIT))
        root = wait_for(lambda: top_level(w), 15, "the failure")[0]["event_id"]
        w.broker.publish("zuul/scs/check", payload=failure("e2", BAIT, project="SovereignCloudStack/docs"))
        claimed = wait_for(lambda: len(top_level(w)) == 2 and top_level(w), 15, "the second failure")[1]["event_id"]
        w.hs.react(w.bob, w.rooms["alerts"], claimed, EYES)
        wait_text(w, claimed, lambda t: t.startswith(EYES + " Claimed by @bob:localhost\n"), "bob's claim")
        w.set_time(T0 + 3600 + 5)
        first = wait_for(lambda: in_thread(w, root), 15, "the on-call ping")[0]
        assert "You are on call" in first["content"]["body"], first["content"]["body"]
        w.set_time(T0 + 2 * 3600 + 10)
        second = wait_for(lambda: len(in_thread(w, root)) == 2 and in_thread(w, root), 15, "the fallback ping")[1]
        w.set_time(T0 + 5 * 3600 + 5)                    # 08:00:05, the digest
        digest = wait_for(lambda: [e for e in top_level(w) if e["content"]["body"].startswith("Daily digest")], 15,
                          "the digest")[0]
        assert "SovereignCloudStack/standards" in digest["content"]["body"], digest["content"]["body"]
        settle(w)
        assert in_thread(w, claimed) == [], "a claimed failure does not escalate"
        check_highlights(w, {"alice": [root, claimed, first["event_id"]], "carol": [second["event_id"]]})
    with_world(body, routes=routes, chatops=ESCALATING, bot_power=50)


@test
def the_owners_of_a_failure_are_highlighted_instead_of_the_on_call_and_the_forward_pings_nobody():
    owners = """
owners = ( { projects = ["SovereignCloudStack/standards"]; users = ["@carol:localhost"];
             forward_room = "#provider:localhost"; } );
"""

    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("o1", BAIT))
        root = wait_for(lambda: top_level(w), 15, "the failure")[0]
        assert root["content"]["m.mentions"] == {"user_ids": ["@carol:localhost"]}, root["content"]["m.mentions"]
        wait_for(lambda: w.bot_messages("provider"), 15, "the forward")
        settle(w, "provider")
        check_highlights(w, {"carol": [root["event_id"]]})
    with_world(body, chatops=CHATOPS + owners, rooms=("alerts", "provider"), bot_power=50)


@test
def a_handover_highlights_who_takes_over_and_not_who_hands_over():
    def body(w):
        time.sleep(1.5)                                  # the first look only remembers the time
        w.set_time(HANDOVER + 5)
        notice = wait_for(lambda: [e for e in w.bot_messages() if "handover" in e["content"]["body"]], 15,
                          "the handover notice")[0]
        assert "@alice:localhost hands over to @bob:localhost" in notice["content"]["body"], notice["content"]
        settle(w)
        check_highlights(w, {"bob": [notice["event_id"]]})
    with_world(body, now=HANDOVER - 60)


@test
def a_start_report_edited_into_a_failure_highlights_the_on_call_once_through_the_edit():
    """The edit's own m.mentions names the on-call: Synapse evaluates .m.rule.is_user_mention
    before .m.rule.suppress_edits, so that edit (an m.text) is the one ping; later claim edits
    name nobody new and are silent."""
    routes = '  { name = "all"; room = "#alerts:localhost"; edit_start = true; }'

    def body(w):
        start = load("shared-modern-start.json")
        start["buildset"]["uuid"] = "s1"
        start["message"] = BAIT
        w.broker.publish("zuul/scs/check", payload=json.dumps(start))
        root = wait_for(lambda: top_level(w), 15, "the start report")[0]["event_id"]
        w.broker.publish("zuul/scs/check", payload=failure("s1", BAIT))
        edit = wait_for(lambda: edits(w, root), 15, "the result edited into the start")[0]
        assert edit["content"]["m.new_content"]["body"].startswith("@alice:localhost\n"), edit["content"]["body"][:80]
        w.hs.react(w.carol, w.rooms["alerts"], root, EYES)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @carol:localhost\n"), "carol's claim")
        settle(w)
        check_highlights(w, {"alice": [edit["event_id"]]})
    with_world(body, routes=routes, bot_power=50)


@test
def an_incident_highlights_only_the_on_call_of_the_route_that_mentions_though_jobs_name_room_and_members():
    """Six projects fail on broken nodes with jobs called "@room" and "alice-deploy": one
    incident per room. The route without mention_oncall pings nobody; the other pings alice,
    on call, once. Growing edits ping nobody."""
    routes = """
  { name = "all"; room = "#alerts:localhost"; mention_oncall = false; },
  { name = "ops"; room = "#ops:localhost"; }"""
    triage = CHATOPS + 'triage: { job_window = "30m"; };\n'

    def body(w):
        for i in range(6):
            w.broker.publish("zuul/scs/periodic", payload=node_failure("i%d" % i, "osism/p%d" % i,
                                                                       ["@room", "alice-deploy", ALICE_NAME]))
            w.set_time(T0 + 60 * (i + 1))
        w.bridge.wait_log("report absorbed into an infrastructure incident", 15, count=12)
        quiet = wait_for(lambda: top_level(w), 15, "the incident in alerts")
        loud = wait_for(lambda: top_level(w, "ops"), 15, "the incident in ops")
        assert len(quiet) == 1 and len(loud) == 1, (len(quiet), len(loud))
        assert "@room" in quiet[0]["content"]["body"] and "alice-deploy" in quiet[0]["content"]["body"], \
            quiet[0]["content"]["body"][:300]
        settle(w)
        settle(w, "ops")
        check_highlights(w, {"alice": [loud[0]["event_id"]]})
    with_world(body, routes=routes, chatops=triage, rooms=("alerts", "ops"), bot_power=50)


def many_builds(buildset, project, n, failed, name_len=120, action="failure"):
    """A report of n builds with long job names, the first `failed` of them failed."""
    ev = json.loads(failure(buildset, project=project, action=action))
    template = ev["buildset"]["builds"][0]
    ev["buildset"]["builds"] = [dict(template, job_name=("job-%03d-" % k).ljust(name_len, "x"), uuid="%s-%03d" % (buildset, k),
                                     result="FAILURE" if action == "failure" and k < failed else "SUCCESS")
                                for k in range(n)]
    return json.dumps(ev)


# Builds of 120-character names that make a report of about 50 KB with the default template.
BIG_BUILDS = 66


def content_bytes(event):
    return len(json.dumps(event["content"], separators=(",", ":"), ensure_ascii=False).encode())


@test
def reports_near_the_size_cap_are_claimed_and_recovered_by_edits_synapse_accepts():
    """Synapse refuses an event whose canonical JSON is over 65,536 bytes (413 M_TOO_LARGE),
    and an edit carries its content twice. A 50 KB report (66 builds, long names) and a
    report of 50 failed jobs (its failure marker lists them all) are posted, claimed with a
    real eyes reaction from alice and recovered: every message and edit is accepted, the
    latest edit of each is what Synapse aggregates, and nothing is a dead letter."""
    def body(w):
        w.broker.publish("zuul/scs/check", payload=many_builds("big1", "SovereignCloudStack/big", BIG_BUILDS, 5))
        w.broker.publish("zuul/scs/check", payload=many_builds("big2", "SovereignCloudStack/jobs", 50, 50))
        roots = wait_for(lambda: len(top_level(w)) == 2 and top_level(w), 20, "both large failures")
        by_project = {("big" if "SovereignCloudStack/big" in e["content"]["body"] else "jobs"): e for e in roots}
        big, jobs = by_project["big"], by_project["jobs"]
        assert content_bytes(big) > 48000, content_bytes(big)      # an edit of it twice over would be refused
        assert "job-%03d-" % (BIG_BUILDS - 1) in big["content"]["body"], "nothing was left out of the big report"
        for root in (big, jobs):
            w.hs.react(w.alice, w.rooms["alerts"], root["event_id"], EYES)
        for root in (big, jobs):
            wait_text(w, root["event_id"], lambda t: t.startswith(EYES + " Claimed by @alice:localhost\n"),
                      "alice's claim on %s" % root["event_id"])
        w.broker.publish("zuul/scs/check", payload=many_builds("ok1", "SovereignCloudStack/big", BIG_BUILDS, 0, action="success"))
        w.broker.publish("zuul/scs/check", payload=many_builds("ok2", "SovereignCloudStack/jobs", 50, 0, action="success"))
        for root in (big, jobs):
            text = wait_text(w, root["event_id"], lambda t: t.startswith(CHECK + " Recovered"),
                             "the recovery edit of %s" % root["event_id"], timeout=20)
            assert "Claimed by @alice:localhost" in text and "Build failed" in text, text[:300]
            assert len(edits(w, root["event_id"])) == 2, len(edits(w, root["event_id"]))
        settle(w)
        assert all(content_bytes(e) <= 63488 for e in w.bot_messages()), \
            sorted(content_bytes(e) for e in w.bot_messages())[-3:]
        assert "dead letters" not in w.bridge.log(), [l for l in w.bridge.log().splitlines() if "dead" in l][:3]
    with_world(body)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
