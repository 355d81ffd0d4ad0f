"""Integration tests of the chatops room side: the real bridge with chatops configured,
commands sent by real users of the fake homeserver through /sync, replies and handover
notices checked in the room. Time is the test clock (ZMB_TEST_CLOCK)."""

import calendar
import json
import os
import shutil
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PAYLOADS, Bridge, World, free_port, periodic_report, wait_for  # noqa: E402
import html_spec  # noqa: E402
from tap import run, test  # noqa: E402

ALERTS = "!alerts:localhost"
ROUTES = '  { name = "all"; room = "#alerts:localhost"; }'
CHATOPS = """
chatops: {
  command_power_level = 50;
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
};
"""
# Monday 2026-01-12 09:00 UTC is the first handover after the start: alice -> bob.
HANDOVER = calendar.timegm((2026, 1, 12, 9, 0, 0, 0, 0, 0))


class ChatWorld(World):
    def __init__(self, now, routes=ROUTES, chatops=CHATOPS, hs_config=None):
        super().__init__(routes, hs_config=hs_config, extra=chatops, start_bridge=False)
        self.clock = os.path.join(self.dir, "clock")
        self.set_time(now)
        self.bridge = Bridge(self.dir, self.config, env={"ZMB_TEST_CLOCK": self.clock})
        self.bridge.wait_log("MQTT connected", 15)  # subscribed: a report published now is not lost
        self.bridge.wait_log("joined room", 10)
        # /sync has started once its first poll went out.
        wait_for(lambda: any("/sync" in r["path"] for r in self.hs.requests()), 10, "the first /sync")

    def close(self):
        html_spec.collect(self.hs)   # for the last test: every message must be current-spec HTML
        super().close()

    def set_time(self, t):
        with open(self.clock + ".tmp", "w") as f:
            f.write("%d\n" % t)
        os.replace(self.clock + ".tmp", self.clock)

    def say(self, sender, body, relates_to=None):
        content = {"msgtype": "m.text", "body": body}
        if relates_to:
            content["m.relates_to"] = relates_to
        return self.hs.inject(ALERTS, sender, content)

    def replies(self):
        """The bridge's messages: notices, and m.text where they ping someone."""
        return [e for e in self.hs.events(ALERTS) if e["content"].get("msgtype") == "m.notice"
                or (e["content"].get("msgtype") == "m.text" and e["sender"].startswith("@zuul-bot"))]


def with_chat(now, fn, routes=ROUTES, chatops=CHATOPS, hs_config=None):
    w = ChatWorld(now, routes, chatops, hs_config)
    try:
        fn(w)
    finally:
        w.close()


def reply_to(w, event_id, timeout=10):
    def find():
        for e in w.replies():
            rel = e["content"].get("m.relates_to") or {}
            if (rel.get("m.in_reply_to") or {}).get("event_id") == event_id:
                return e
        return None
    return wait_for(find, timeout, "a reply to %s" % event_id)


@test
def help_answers_a_member_with_power_and_refuses_one_without():
    def body(w):
        asked = w.say("@alice:localhost", "!zuul help")
        r = reply_to(w, asked)
        text = r["content"]["body"]
        assert text.startswith("Commands (for members with power level 50 or more):\n!zuul help: this list"), text
        assert "!zuul oncall:" in text and "!zuul status:" in text and not text.endswith("\n"), text
        assert r["content"]["m.mentions"] == {}, "a reply must not ping anybody"
        refused = w.say("@bob:localhost", "!zuul help")
        text = reply_to(w, refused)["content"]["body"]
        assert text == "Sorry, !zuul commands need power level 50 in this room; you have 0.", text
    with_chat(HANDOVER - 3600, body)


@test
def every_command_is_refused_to_a_member_without_power():
    def body(w):
        for i, cmd in enumerate(("help", "oncall", "claims", "status", "mute org/repo 1h", "unmute org/repo",
                                 "owners org/repo", "workflow")):
            w.set_time(HANDOVER - 3600 + 20 * i)   # within the budget of answers: 5 a minute
            asked = w.say("@bob:localhost", "!zuul " + cmd)
            text = reply_to(w, asked)["content"]["body"]
            assert text == "Sorry, !zuul commands need power level 50 in this room; you have 0.", (cmd, text)
        r = reply_to(w, w.say("@alice:localhost", "!zuul claims"))["content"]["body"]
        assert r == "No open failures in this room.", "a refused mute must not have muted anything: " + r
    with_chat(HANDOVER - 3600, body)


@test
def oncall_and_status_answer_with_the_rotation_and_the_connections():
    def body(w):
        r = reply_to(w, w.say("@alice:localhost", "!zuul oncall"))["content"]["body"]
        assert "@alice:localhost" in r and "@bob:localhost" in r and "12 Jan 09:00" in r, r
        r = reply_to(w, w.say("@alice:localhost", "!zuul status"))["content"]["body"]
        assert "MQTT connected" in r and "homeserver reachable" in r and "outbox 0" in r, r
    with_chat(HANDOVER - 3600, body)


@test
def a_command_in_a_thread_is_answered_in_that_thread():
    def body(w):
        root = w.say("@alice:localhost", "looking at the nightly failure")
        asked = w.say("@alice:localhost", "!zuul oncall",
                      relates_to={"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                                  "m.in_reply_to": {"event_id": root}})
        rel = reply_to(w, asked)["content"]["m.relates_to"]
        assert rel["rel_type"] == "m.thread" and rel["event_id"] == root and rel["is_falling_back"] is True, rel
    with_chat(HANDOVER - 3600, body)


@test
def bad_commands_get_a_short_error_and_other_messages_are_ignored():
    def body(w):
        w.say("@alice:localhost", "hello, nothing for the bot here")
        w.say("@alice:localhost", "!zuulish not our prefix")
        bad = w.say("@alice:localhost", "!zuul frobnicate <b>now</b>")
        text = reply_to(w, bad)["content"]["body"]
        assert text.startswith('unknown command "frobnicate"; the commands are help, oncall'), text
        assert "<b>" not in text and "now<" not in text, text
        time.sleep(1)
        assert len(w.replies()) == 1, [e["content"]["body"] for e in w.replies()]
    with_chat(HANDOVER - 3600, body)


@test
def commands_are_answered_once_even_across_a_restart():
    def body(w):
        asked = w.say("@alice:localhost", "!zuul status")
        reply_to(w, asked)
        assert w.bridge.stop() == 0
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        later = w.say("@alice:localhost", "!zuul oncall")
        reply_to(w, later)
        time.sleep(1)
        assert len(w.replies()) == 2, [e["content"]["body"] for e in w.replies()]
    with_chat(HANDOVER - 3600, body)


@test
def a_handover_is_announced_when_the_clock_passes_it():
    def body(w):
        time.sleep(0.5)                      # the first look only remembers the time
        w.set_time(HANDOVER + 5)
        notice = wait_for(lambda: [e for e in w.replies() if "handover" in e["content"]["body"]], 10,
                          "the handover notice")[0]
        c = notice["content"]
        assert "@alice:localhost hands over to @bob:localhost" in c["body"], c["body"]
        assert c["m.mentions"]["user_ids"] == ["@bob:localhost"], c
        assert c["msgtype"] == "m.text", "a notice would ping nobody (.m.rule.suppress_notices)"
        assert 'href="https://matrix.to/#/@bob:localhost"' in c["formatted_body"], c
        w.set_time(HANDOVER + 60)
        time.sleep(0.5)
        assert len([e for e in w.replies() if "handover" in e["content"]["body"]]) == 1
    with_chat(HANDOVER - 60, body)



def failure(buildset, project="SovereignCloudStack/standards", failed_jobs=("tox-py311",)):
    """A failure report of project whose failed builds are failed_jobs (others succeed)."""
    with open(os.path.join(PAYLOADS, "shared-modern-failure.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    ev["project"] = ev["changes"][0]["project"] = project
    builds = []
    for job in list(failed_jobs) + ["linters"]:
        b = dict(ev["buildset"]["builds"][0], job_name=job, result="FAILURE" if job in failed_jobs else "SUCCESS")
        b["change"] = dict(b["change"], project=project)    # a build names the change it tested
        builds.append(b)
    ev["buildset"]["builds"] = builds
    ev["buildset"]["retry_builds"] = []
    return json.dumps(ev)


def posted(w):
    return [e for e in w.hs.events(ALERTS) if e["content"].get("format") == "org.matrix.custom.html"
            and "Build failed" in e["content"]["body"]]


@test
def a_muted_project_is_counted_not_posted_and_unmute_says_how_many():
    def body(w):
        r = reply_to(w, w.say("@alice:localhost", "!zuul mute SovereignCloudStack/standards 2h"))
        text = r["content"]["body"]
        assert text.startswith("Muted failures of SovereignCloudStack/standards until "), text
        w.broker.publish("zuul/scs/check", payload=failure("m1"))
        w.broker.publish("zuul/scs/check", payload=failure("m2", project="osism/other"))
        wait_for(lambda: len(posted(w)) == 1, 10, "the unmuted project's failure")
        w.bridge.wait_log("report muted")
        assert "osism/other" in posted(w)[0]["content"]["body"]
        text = reply_to(w, w.say("@alice:localhost", "!zuul unmute SovereignCloudStack/standards"))["content"]["body"]
        assert text == "Unmuted SovereignCloudStack/standards: 1 failure went unposted while it was muted.", text
        w.broker.publish("zuul/scs/check", payload=failure("m3"))
        wait_for(lambda: len(posted(w)) == 2, 10, "the failure after the unmute")
    with_chat(HANDOVER - 3600, body)


@test
def a_job_mute_silences_only_failures_where_every_failed_job_is_muted():
    def body(w):
        reply_to(w, w.say("@alice:localhost", "!zuul mute SovereignCloudStack/standards tox-py311 1d"))
        w.broker.publish("zuul/scs/check", payload=failure("j1", failed_jobs=("tox-py311",)))
        w.broker.publish("zuul/scs/check", payload=failure("j2", failed_jobs=("tox-py311", "docs")))
        wait_for(lambda: len(posted(w)) == 1, 10, "the failure with an unmuted job")
        w.bridge.wait_log("report muted")
        assert "docs" in posted(w)[0]["content"]["body"]
    with_chat(HANDOVER - 3600, body)


@test
def a_mute_ends_with_a_notice_when_the_clock_passes_it_and_survives_a_restart():
    def body(w):
        reply_to(w, w.say("@alice:localhost", "!zuul mute SovereignCloudStack/standards 1h"))
        assert w.bridge.stop() == 0
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        w.broker.publish("zuul/scs/check", payload=failure("r1"))
        w.bridge.wait_log("report muted")
        assert posted(w) == []
        w.set_time(HANDOVER - 3600 + 2 * 3600)
        notice = wait_for(lambda: [e for e in w.replies() if "mute of" in e["content"]["body"]], 10,
                          "the end-of-mute notice")[0]
        assert notice["content"]["body"] == ("The mute of SovereignCloudStack/standards ended: 1 failure "
                                             "went unposted while it lasted."), notice["content"]["body"]
        w.broker.publish("zuul/scs/check", payload=failure("r2"))
        wait_for(lambda: len(posted(w)) == 1, 10, "the failure after the mute ended")
    with_chat(HANDOVER - 3600, body)



@test
def a_new_failure_mentions_the_on_call_and_other_reports_do_not():
    routes = ROUTES + """,
  { name = "quiet"; room = "#ops:localhost"; mention_oncall = false; }"""

    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("n1"))
        w.broker.publish_sample("shared-legacy-success.json")
        wait_for(lambda: len([e for e in w.hs.events(ALERTS) if "format" in e["content"]]) >= 2, 10, "both reports")
        fail = posted(w)[0]["content"]
        assert fail["m.mentions"] == {"user_ids": ["@alice:localhost"]}, fail.get("m.mentions")
        assert fail["msgtype"] == "m.text", "a notice would ping nobody (.m.rule.suppress_notices)"
        assert fail["formatted_body"].startswith('<a href="https://matrix.to/#/@alice:localhost">@alice:localhost</a><br>'), fail["formatted_body"][:120]
        assert fail["body"].startswith("@alice:localhost\n"), fail["body"][:60]
        ok = [e["content"] for e in w.hs.events(ALERTS) if "succeeded" in e["content"].get("body", "").lower()
              or "Build succeeded" in e["content"].get("body", "")]
        assert ok and ok[0]["m.mentions"] == {} and ok[0]["msgtype"] == "m.notice", ok
        quiet = wait_for(lambda: [e for e in w.hs.events("!ops:localhost") if "Build failed" in e["content"].get("body", "")],
                         10, "the quiet route's copy")
        assert quiet[0]["content"]["m.mentions"] == {}, quiet[0]["content"].get("m.mentions")
        assert quiet[0]["content"]["msgtype"] == "m.notice", quiet[0]["content"]["msgtype"]
    with_chat(HANDOVER - 3600, body, routes)



def react(w, sender, target, key):
    return w.hs.inject(ALERTS, sender, {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}},
                       kind="m.reaction")


def edits_of(w, target):
    return [e for e in w.hs.events(ALERTS)
            if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
            and e["content"]["m.relates_to"].get("event_id") == target]


def latest_edit(w, target, count):
    edits = wait_for(lambda: len(edits_of(w, target)) >= count and edits_of(w, target), 20,
                     "edit number %d of %s" % (count, target))
    return edits[-1]["content"]["m.new_content"]


def edit_saying(w, target, needle):
    """The newest edit's content once it contains needle. Where several edits of a message
    queue at once, a newer one supersedes the older unsent (deliver.c), so how many there
    are depends on timing; what the last one says does not."""
    def newest():
        edits = edits_of(w, target)
        return edits and needle in edits[-1]["content"]["m.new_content"]["body"] and edits[-1]
    return wait_for(newest, 10, "an edit of %s saying %r" % (target, needle))["content"]["m.new_content"]


@test
def reactions_claim_and_resolve_a_failure_and_the_bridge_edits_its_message():
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("c1"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        first = react(w, "@alice:localhost", root, "\U0001F440")
        new = latest_edit(w, root, 1)
        assert new["body"].startswith("\U0001F440 Claimed by @alice:localhost\n"), new["body"][:80]
        assert '<a href="https://matrix.to/#/@alice:localhost">@alice:localhost</a>' in new["formatted_body"]
        assert "Build failed" in new["body"], "the edit keeps the report"
        edit_event = edits_of(w, root)[-1]["content"]
        assert edit_event["body"].startswith("* "), edit_event["body"][:20]
        assert edit_event["m.mentions"] == {} and edit_event["msgtype"] == "m.notice", "an edit must not ping"
        react(w, "@bob:localhost", root, "\U0001F440")
        new = latest_edit(w, root, 2)
        assert new["body"].startswith("\U0001F440 Claimed by @alice:localhost and @bob:localhost\n"), new["body"][:80]
        w.hs.inject(ALERTS, "@alice:localhost", {}, kind="m.room.redaction", redacts=first)
        new = latest_edit(w, root, 3)
        assert new["body"].startswith("\U0001F440 Claimed by @bob:localhost\n"), new["body"][:80]
        react(w, "@bob:localhost", root, "\u2705\ufe0f")   # with the variation selector some clients send
        new = latest_edit(w, root, 4)
        assert new["body"].startswith("\u2705 Resolved by @bob:localhost\n\U0001F440 Claimed by @bob:localhost\n"), new["body"][:90]
    with_chat(HANDOVER - 3600, body)


@test
def a_claim_that_comes_before_the_answer_to_the_failures_send_still_claims_it():
    def body(w):
        # The homeserver takes the failure at once but answers the bridge 3 s later; the
        # claim comes through /sync meanwhile, right after the message itself.
        w.hs.faults([{"method": "PUT", "path": "/send/m.room.message/zmb\\.all\\.", "action": "late",
                      "seconds": 3, "count": 1}])
        w.broker.publish("zuul/scs/check", payload=failure("c9"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        react(w, "@alice:localhost", root, "\U0001F440")
        new = latest_edit(w, root, 1)
        assert new["body"].startswith("\U0001F440 Claimed by @alice:localhost\n"), new["body"][:80]
        assert [r for r in w.hs.requests() if r.get("fault") == "late"], "the late answer was not exercised"
    with_chat(HANDOVER - 3600, body)


@test
def other_reactions_and_reactions_to_other_messages_change_nothing():
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("c2"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        chat = w.say("@alice:localhost", "just chatting")
        react(w, "@alice:localhost", root, "\U0001F44D")      # thumbs up: not a claim
        react(w, "@alice:localhost", chat, "\U0001F440")      # a claim, but not on a failure
        w.hs.inject(ALERTS, "@zuul-bot:localhost",
                    {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "\U0001F440"}},
                    kind="m.reaction")                        # the bridge's own reaction
        marker = w.say("@alice:localhost", "!zuul status")
        reply_to(w, marker)                                   # everything before it was handled
        assert edits_of(w, root) == [], edits_of(w, root)
    with_chat(HANDOVER - 3600, body)


@test
def claims_survive_a_restart():
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("c3"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        react(w, "@alice:localhost", root, "\U0001F440")
        latest_edit(w, root, 1)
        assert w.bridge.stop() == 0
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        react(w, "@bob:localhost", root, "\U0001F440")
        new = latest_edit(w, root, 2)
        assert new["body"].startswith("\U0001F440 Claimed by @alice:localhost and @bob:localhost\n"), new["body"][:80]
    with_chat(HANDOVER - 3600, body)



periodic = periodic_report


def top_level_failures(w):
    return [e for e in posted(w) if "m.relates_to" not in e["content"]]


def in_thread_of(w, root):
    return [e for e in w.hs.events(ALERTS)
            if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.thread"
            and e["content"]["m.relates_to"].get("event_id") == root]


@test
def repeated_failures_go_into_one_thread_that_counts_and_recovers():
    def body(w):
        for night in range(3):
            w.broker.publish("zuul/scs/periodic-daily", payload=periodic("night%d" % night))
        root = wait_for(lambda: top_level_failures(w), 10, "the root")[0]
        wait_for(lambda: len(in_thread_of(w, root["event_id"])) == 2, 10, "two repeats in the thread")
        assert len(top_level_failures(w)) == 1, [e["content"]["body"][:40] for e in top_level_failures(w)]
        assert root["content"]["m.mentions"] == {"user_ids": ["@alice:localhost"]}
        for reply in in_thread_of(w, root["event_id"]):
            assert reply["content"]["m.mentions"] == {}, "a repeat must not ping again"
            assert reply["content"]["msgtype"] == "m.notice", reply["content"]["msgtype"]
        edit_saying(w, root["event_id"], "Failed 3 times since")
        # another job failing is another failure: a new root
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("other", failed_jobs=("other-job",)))
        wait_for(lambda: len(top_level_failures(w)) == 2, 10, "a second root for another job")
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("fixed", action="success"))
        wait_for(lambda: any("Recovered" in e["content"]["body"] for e in in_thread_of(w, root["event_id"])), 10,
                 "recovered in the thread")
        new = edit_saying(w, root["event_id"], "\u2705 Recovered")
        assert new["body"].startswith("\u2705 Recovered"), new["body"][:80]
        assert "Failed 3 times since" in new["body"]
        time.sleep(0.5)
        again = [e for e in w.hs.events(ALERTS) if "Build succeeded" in e["content"].get("body", "")]
        assert again == [], "the recovery is told in the thread, not posted again at the top"
        # after recovery the next failure starts a new thread
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("again"))
        wait_for(lambda: len(top_level_failures(w)) == 3, 10, "a new root after the recovery")
    with_chat(HANDOVER - 3600, body)



def explain(w, payload):
    """`explain -c` on the running bridge's config and state_dir: the decision lines."""
    path = os.path.join(w.dir, "next.json")
    with open(path, "w") as f:
        f.write(payload)
    p = w.bridge.cli("explain", "-c", w.bridge.conf, path)
    out = p.stdout.decode()
    assert p.returncode in (0, 1), (p.returncode, p.stderr.decode())
    assert "what it would become now" in out, (out, p.stderr.decode())
    return out.split("what it would become now", 1)[1]


@test
def explain_tells_what_the_next_report_would_do_from_a_live_state_dir():
    def body(w):
        first = explain(w, periodic("n0"))
        assert "route all (#alerts:localhost): a new message: a failure whose repeats will go into its thread" \
            in first, first
        for night in range(2):
            w.broker.publish("zuul/scs/periodic-daily", payload=periodic("night%d" % night))
        root = wait_for(lambda: top_level_failures(w), 10, "the root")[0]
        wait_for(lambda: len(in_thread_of(w, root["event_id"])) == 1, 10, "the repeat in the thread")
        # the bridge runs on: explain reads its state without disturbing it
        # (what a turn changed reaches state.db with its commit, which may follow the send)
        wait_for(lambda: "route all (#alerts:localhost): into the thread of %s: failed 3 times since" % root["event_id"]
                 in explain(w, periodic("night2")), 10, "explain to see the repeat counted")
        out = explain(w, periodic("fixed", action="success"))
        assert "told in the thread of %s: recovers a failure that failed 2 times since" % root["event_id"] in out, out
        # explain decided, it did not act: the next success really recovers, once
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("fixed", action="success"))
        wait_for(lambda: any("Recovered" in e["content"]["body"] for e in in_thread_of(w, root["event_id"])), 10,
                 "recovered in the thread")
        reply_to(w, w.say("@alice:localhost", "!zuul mute SovereignCloudStack/standards 2h"))
        wait_for(lambda: "muted in this room until 2026-01-12 10:00 UTC: counted, not posted"
                 in explain(w, periodic("later")), 10, "explain to see the mute")
        assert [e["event_id"] for e in top_level_failures(w)] == [root["event_id"]], "explain posts nothing"
    with_chat(HANDOVER - 3600, body)


@test
def explain_on_a_state_dir_the_bridge_never_used_decides_as_a_first_start_and_creates_nothing():
    def body(w):
        conf = os.path.join(w.dir, "fresh.conf")
        fresh = os.path.join(w.dir, "never-used")
        with open(conf, "w") as f:
            f.write(w.config.replace('state_dir = "', 'state_dir = "%s"; # ' % fresh, 1))
        p = w.bridge.cli("explain", "-c", conf, os.path.join(PAYLOADS, "shared-periodic-failure.json"))
        out = p.stdout.decode()
        assert "what it would become now (no state in %s yet: as on a first start)" % fresh in out, out
        assert "route all (#alerts:localhost): a new message" in out, out
        assert not os.path.exists(fresh), "explain must not create the state_dir"
    with_chat(HANDOVER - 3600, body)


ZUUL_CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "zuul-14.3.0")


def cycle_report(buildset, action="failure"):
    """Zuul 14.3.0's own report of a dependency cycle org/a + org/b in which org/b's
    tox-py311 failed (tests/data/zuul-14.3.0/cycle-failure.json), as a new buildset; as a
    success, every build succeeded."""
    with open(os.path.join(ZUUL_CORPUS, "cycle-failure.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    if action == "success":
        ev["action"], ev["buildset"]["result"], ev["message"] = "success", "SUCCESS", "Build succeeded."
        for b in ev["buildset"]["builds"]:
            b["result"] = "SUCCESS"
    return json.dumps(ev)


@test
def a_dependency_cycles_failure_is_filed_under_the_change_that_failed():
    """Zuul reports a cycle under its first change (org/a); the failed build tested org/b.
    The thread, the mute and the recovery follow org/b."""
    def body(w):
        w.broker.publish("zuul/example/gate/org/a/master/2001", payload=cycle_report("c1"))
        def roots():
            return [e for e in w.hs.events(ALERTS) if "zmb.failure" in e["content"]
                    and "m.relates_to" not in e["content"]]
        root = wait_for(roots, 10, "the cycle's failure")[0]
        assert root["content"]["zmb.failure"]["thread_key"] == "org/b|master|gate|tox-py311", \
            root["content"]["zmb.failure"]
        w.broker.publish("zuul/example/gate/org/a/master/2001", payload=cycle_report("c2"))
        wait_for(lambda: len(in_thread_of(w, root["event_id"])) == 1, 10, "the repeat in org/b's thread")
        # a mute of org/b silences it; of org/a it would not have
        reply_to(w, w.say("@alice:localhost", "!zuul mute org/a 1h"))
        w.broker.publish("zuul/example/gate/org/a/master/2001", payload=cycle_report("c3"))
        wait_for(lambda: len(in_thread_of(w, root["event_id"])) == 2, 10, "org/a's mute does not cover org/b")
        reply_to(w, w.say("@alice:localhost", "!zuul mute org/b 1h"))
        w.broker.publish("zuul/example/gate/org/a/master/2001", payload=cycle_report("c4"))
        w.bridge.wait_log("report muted")
        reply_to(w, w.say("@alice:localhost", "!zuul unmute org/b"))
        # the cycle's success recovers org/b's failure
        w.broker.publish("zuul/example/gate/org/a/master/2001", payload=cycle_report("ok", action="success"))
        wait_for(lambda: any("Recovered" in e["content"]["body"] for e in in_thread_of(w, root["event_id"])), 10,
                 "the recovery in org/b's thread")
        assert len(roots()) == 1, [e["content"]["body"][:60] for e in roots()]
    with_chat(HANDOVER - 3600, body)


@test
def a_failure_thread_survives_a_restart():
    def body(w):
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("before"))
        root = wait_for(lambda: top_level_failures(w), 10, "the root")[0]["event_id"]
        assert w.bridge.stop() == 0
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("after"))
        wait_for(lambda: len(in_thread_of(w, root)) == 1, 10, "the repeat in the thread after the restart")
        assert len(top_level_failures(w)) == 1
        assert "Failed 2 times since" in latest_edit(w, root, 1)["body"]
    with_chat(HANDOVER - 3600, body)


@test
def five_failing_nights_then_recovery_make_one_root_four_follow_ups_and_a_recovery():
    """The Chatops issue's story: a periodic job fails five nights in a row and then
    recovers. One root message, a thread of four follow-ups and a recovery; the root shows
    the count, the claimer and the final state."""
    def body(w):
        night = calendar.timegm((2026, 1, 13, 2, 0, 0, 0, 0, 0))
        for n in range(5):
            w.set_time(night + n * 86400)
            w.broker.publish("zuul/scs/periodic-daily", payload=periodic("story%d" % n))
            if n == 0:
                root = wait_for(lambda: top_level_failures(w), 10, "the root")[0]["event_id"]
                react(w, "@bob:localhost", root, "\U0001F440")
                latest_edit(w, root, 1)   # claimed before the clock moves: no escalation
            else:
                wait_for(lambda: len(in_thread_of(w, root)) == n, 10, "follow-up %d" % n)
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("story-ok", action="success"))
        wait_for(lambda: len(in_thread_of(w, root)) == 5, 10, "the recovery in the thread")
        assert len(top_level_failures(w)) == 1, "five nights must make one root"
        thread = in_thread_of(w, root)
        assert sum("Recovered" in e["content"]["body"] for e in thread) == 1, [e["content"]["body"][:30] for e in thread]
        assert sum("Build failed" in e["content"]["body"] for e in thread) == 4
        final = wait_for(lambda: [e for e in edits_of(w, root)
                                  if e["content"]["m.new_content"]["body"].startswith("\u2705 Recovered")], 10,
                         "the final edit")[-1]["content"]["m.new_content"]["body"]
        assert "Claimed by @bob:localhost" in final, final[:200]
        assert "Failed 5 times since Tue 13 Jan 02:00 UTC" in final, final[:200]
    with_chat(HANDOVER + 3600, body)


ESCALATING = CHATOPS.replace("command_power_level = 50;",
                             'command_power_level = 50; escalate_after = "1h"; fallback = ["@carol:localhost"];')


def escalations(w, root, room=ALERTS):
    return [e for e in w.hs.events(room)
            if (e["content"].get("m.relates_to") or {}).get("event_id") == root
            and "Still unclaimed" in e["content"].get("body", "")]


@test
def an_unclaimed_failure_pings_the_on_call_then_the_fallback_in_its_thread():
    start = HANDOVER - 4 * 3600          # alice is on call until the handover
    routes = ROUTES + """,
  { name = "quiet"; room = "#ops:localhost"; mention_oncall = false; }"""

    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("e1"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]
        marker = root["content"]["zmb.failure"]
        assert marker["route"] == "all" and marker["count"] == 1 and marker["txn"].startswith("zmb.all.failure."), marker
        quiet_root = wait_for(lambda: [e for e in w.hs.events("!ops:localhost")
                                       if "Build failed" in e["content"].get("body", "")], 10, "the quiet copy")[0]
        w.set_time(start + 3590)
        time.sleep(0.7)
        assert escalations(w, root["event_id"]) == [], "escalated before escalate_after"
        w.set_time(start + 3610)
        first = wait_for(lambda: escalations(w, root["event_id"]), 10, "the on-call ping")[0]["content"]
        assert first["body"].startswith("@alice:localhost\n\u23f0 Still unclaimed after 1h. You are on call"), first["body"]
        assert first["m.mentions"] == {"user_ids": ["@alice:localhost"]}, first["m.mentions"]
        assert first["msgtype"] == "m.text", "a notice would ping nobody (.m.rule.suppress_notices)"
        assert first["m.relates_to"]["rel_type"] == "m.thread", first["m.relates_to"]
        assert w.bridge.stop() == 0             # the step taken survives a restart
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        time.sleep(0.7)
        assert len(escalations(w, root["event_id"])) == 1, "a restart must not ping again"
        w.set_time(start + 2 * 3600 + 10)
        wait_for(lambda: len(escalations(w, root["event_id"])) == 2, 10, "the fallback ping")
        second = escalations(w, root["event_id"])[1]["content"]
        assert second["m.mentions"] == {"user_ids": ["@carol:localhost"]}, second["m.mentions"]
        assert second["msgtype"] == "m.text", second["msgtype"]
        assert "Escalating" in second["body"], second["body"]
        w.set_time(start + 5 * 3600)
        time.sleep(0.7)
        assert len(escalations(w, root["event_id"])) == 2, "nothing after the last step"
        assert escalations(w, quiet_root["event_id"], "!ops:localhost") == [], \
            "a route that does not mention the on-call does not escalate"
    with_chat(start, body, routes, ESCALATING)


@test
def a_claimed_failure_is_not_escalated_until_the_claim_is_taken_back():
    start = HANDOVER - 4 * 3600

    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("e2"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        claim = react(w, "@bob:localhost", root, "\U0001F440")
        latest_edit(w, root, 1)
        w.set_time(start + 3 * 3600)
        time.sleep(0.7)
        assert escalations(w, root) == [], "a claimed failure must not escalate"
        w.hs.inject(ALERTS, "@bob:localhost", {}, kind="m.room.redaction", redacts=claim)
        ping = wait_for(lambda: escalations(w, root), 10, "the escalation after the unclaim")
        assert len(ping) == 1, "both steps that came due go out as one message"
        assert ping[0]["content"]["m.mentions"] == {"user_ids": ["@alice:localhost", "@carol:localhost"]}, \
            ping[0]["content"]["m.mentions"]
        assert "Still unclaimed after 3h" in ping[0]["content"]["body"], ping[0]["content"]["body"]
    with_chat(start, body, chatops=ESCALATING)


OPS = "!ops:localhost"
TWO_ROOMS = ROUTES + """,
  { name = "ops"; room = "#ops:localhost"; mention_oncall = false; }"""


def handled_in_ops(w):
    """Waits until the bridge answered a command sent in #ops now: everything injected in
    #ops before it has been handled."""
    asked = w.hs.inject(OPS, "@alice:localhost", {"msgtype": "m.text", "body": "!zuul status"})
    wait_for(lambda: any((e["content"].get("m.relates_to") or {}).get("m.in_reply_to", {}).get("event_id") == asked
                         for e in w.hs.events(OPS)), 10, "the reply in #ops")


@test
def a_resolve_sent_in_another_room_neither_resolves_nor_stops_the_escalation():
    """Hardening: a reaction counts only in its failure's room. A member of #ops (not of
    #alerts' choosing) names the #alerts failure's event id in a ✅ sent in #ops."""
    start = HANDOVER - 4 * 3600

    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("x1"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        w.hs.inject(OPS, "@bob:localhost",
                    {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "\u2705"}},
                    kind="m.reaction")
        handled_in_ops(w)
        time.sleep(0.5)
        assert edits_of(w, root) == [], \
            ["a ✅ in #ops edited the #alerts failure"] + [e["content"]["m.new_content"]["body"][:40] for e in edits_of(w, root)]
        w.set_time(start + 3610)
        wait_for(lambda: escalations(w, root), 10, "the escalation the ✅ in #ops must not stop")
    with_chat(start, body, TWO_ROOMS, ESCALATING)


@test
def a_redaction_in_another_room_keeps_the_claim_and_its_sender_in_the_room_takes_it_back():
    """Hardening: a redaction unclaims only in the claim's room. alice's redaction in #ops
    names her 👀 in #alerts: the claim stays and the escalation waits; her redaction in
    #alerts takes it back and the escalation comes."""
    start = HANDOVER - 4 * 3600

    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("x2"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        claim = react(w, "@alice:localhost", root, "\U0001F440")
        latest_edit(w, root, 1)
        w.hs.inject(OPS, "@alice:localhost", {}, kind="m.room.redaction", redacts=claim)
        handled_in_ops(w)
        time.sleep(0.5)
        assert len(edits_of(w, root)) == 1, [e["content"]["m.new_content"]["body"][:40] for e in edits_of(w, root)]
        w.set_time(start + 3610)
        time.sleep(0.7)
        assert escalations(w, root) == [], "a redaction in #ops took the #alerts claim back"
        w.hs.inject(ALERTS, "@alice:localhost", {}, kind="m.room.redaction", redacts=claim)
        new = latest_edit(w, root, 2)
        assert new["body"].startswith("Unclaimed\n"), new["body"][:80]
        wait_for(lambda: escalations(w, root), 10, "the escalation after alice took her claim back")
    with_chat(start, body, TWO_ROOMS, ESCALATING)


@test
def a_redaction_by_a_member_without_power_keeps_anothers_claim():
    """The fake homeserver, like a room over federation, lets bob's (power 0) redaction of
    alice's 👀 in: the bridge checks it as a homeserver applies it, and keeps the claim."""
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("x4"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        claim = react(w, "@alice:localhost", root, "\U0001F440")
        latest_edit(w, root, 1)
        w.hs.inject(ALERTS, "@bob:localhost", {}, kind="m.room.redaction", redacts=claim)
        reply_to(w, w.say("@alice:localhost", "!zuul status"))
        time.sleep(0.5)
        assert len(edits_of(w, root)) == 1, [e["content"]["m.new_content"]["body"][:40] for e in edits_of(w, root)]
    with_chat(HANDOVER - 3600, body)


@test
def a_moderator_redacting_a_claim_takes_it_back():
    """The reaction is gone from the room for every client and for a rebuild: the claim
    follows the room. alice has power 100, the redact level is 50."""
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("x3"))
        root = wait_for(lambda: posted(w), 10, "the failure message")[0]["event_id"]
        claim = react(w, "@bob:localhost", root, "\U0001F440")
        latest_edit(w, root, 1)
        w.hs.inject(ALERTS, "@alice:localhost", {}, kind="m.room.redaction", redacts=claim)
        new = latest_edit(w, root, 2)
        assert new["body"].startswith("Unclaimed\n"), new["body"][:80]
    with_chat(HANDOVER - 3600, body)


@test
def claims_lists_the_open_failures_with_claimer_age_and_link():
    def body(w):
        r = reply_to(w, w.say("@alice:localhost", "!zuul claims"))["content"]
        assert r["body"] == "No open failures in this room.", r["body"]
        w.broker.publish("zuul/scs/check", payload=failure("l1"))
        w.broker.publish("zuul/scs/check", payload=failure("l2", project="osism/other", failed_jobs=("docs",)))
        wait_for(lambda: len(posted(w)) == 2, 10, "both failures")
        first, second = posted(w)
        react(w, "@bob:localhost", first["event_id"], "\U0001F440")
        latest_edit(w, first["event_id"], 1)
        w.set_time(HANDOVER - 3600 + 1800)
        r = reply_to(w, w.say("@alice:localhost", "!zuul claims"))["content"]
        lines = r["body"].split("\n")
        assert lines[0] == "Open failures in this room (2):", r["body"]
        assert lines[1].startswith("- SovereignCloudStack/standards (main) check: tox-py311: open 30m, "
                                   "claimed by @bob:localhost https://matrix.to/#/"), lines[1]
        assert lines[1].endswith("/" + first["event_id"].replace("$", "%24")), lines[1]
        assert lines[2].startswith("- osism/other (main) check: docs: open 30m, unclaimed"), lines[2]
        assert "<b>unclaimed</b>" in r["formatted_body"] and r["m.mentions"] == {}, r
        react(w, "@alice:localhost", second["event_id"], "\u2705")
        latest_edit(w, second["event_id"], 1)
        r = reply_to(w, w.say("@alice:localhost", "!zuul claims"))["content"]
        assert r["body"].startswith("Open failures in this room (1):\n- SovereignCloudStack"), r["body"]
        # a resolved failure is closed: the same failure again starts a new root, not a thread
        w.broker.publish("zuul/scs/check", payload=failure("l3", project="osism/other", failed_jobs=("docs",)))
        wait_for(lambda: len(top_level_failures(w)) == 3, 10, "a new root after the resolve")
    with_chat(HANDOVER - 3600, body)


@test
def claims_and_threads_are_rebuilt_from_the_room_when_the_state_is_lost():
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("lost1"))
        w.broker.publish("zuul/scs/check", payload=failure("lost2", project="osism/other", failed_jobs=("docs",)))
        wait_for(lambda: len(posted(w)) == 2, 10, "both failures")
        first, second = [e["event_id"] for e in posted(w)]
        react(w, "@alice:localhost", first, "\U0001F440")
        latest_edit(w, first, 1)
        react(w, "@bob:localhost", second, "\u2705")
        latest_edit(w, second, 1)
        assert w.bridge.stop() == 0
        shutil.rmtree(w.state)                          # state_dir lost
        w.bridge.start()
        w.bridge.wait_log("rebuilt failures and claims from the room's history", 10, count=2)
        log = [l for l in w.bridge.log().splitlines() if "rebuilt failures" in l][-1]
        assert "failures=2" in log and "claims=2" in log, log
        react(w, "@bob:localhost", first, "\U0001F440")   # alice's claim was read back
        new = latest_edit(w, first, 2)
        # (the order may differ: the read-back claim carries the server's time, not the test clock's)
        claimed = new["body"].split("\n")[0]
        assert claimed in ("\U0001F440 Claimed by @alice:localhost and @bob:localhost",
                           "\U0001F440 Claimed by @bob:localhost and @alice:localhost"), new["body"][:90]
        w.broker.publish("zuul/scs/check", payload=failure("lost3"))   # a repeat joins the old thread
        wait_for(lambda: len(in_thread_of(w, first)) == 1, 10, "the repeat in the rebuilt thread")
        assert len(top_level_failures(w)) == 2, "the repeat must not start a new root"
        r = reply_to(w, w.say("@alice:localhost", "!zuul claims"))["content"]["body"]
        assert r.startswith("Open failures in this room (1):\n- SovereignCloudStack/standards"), r
    with_chat(HANDOVER - 3600, body)


def start_report(buildset):
    with open(os.path.join(PAYLOADS, "shared-modern-start.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    return json.dumps(ev)


@test
def with_edit_start_the_result_replaces_the_start_report():
    routes = '  { name = "all"; room = "#alerts:localhost"; edit_start = true; }'

    def body(w):
        w.broker.publish("zuul/scs/check", payload=start_report("s1"))
        start = wait_for(lambda: [e for e in w.hs.events(ALERTS) if "format" in e["content"]], 10, "the start")[0]
        w.broker.publish("zuul/scs/check", payload=failure("s1"))
        edit = wait_for(lambda: edits_of(w, start["event_id"]), 10, "the start edited into the result")[0]
        new = edit["content"]["m.new_content"]
        assert "Build failed" in new["body"], new["body"][:100]
        assert edit["content"]["m.mentions"] == {"user_ids": ["@alice:localhost"]}, "the result pings the on-call"
        assert edit["content"]["msgtype"] == "m.text", "an edit that is a notice pings nobody"
        assert new["zmb.failure"]["txn"] == "zmb.all.start.s1", new["zmb.failure"]
        tops = [e for e in w.hs.events(ALERTS) if "format" in e["content"] and "m.relates_to" not in e["content"]]
        assert [e["event_id"] for e in tops] == [start["event_id"]], ("no second top-level message",
                                                                      [e["content"]["body"][:60] for e in tops])
        react(w, "@bob:localhost", start["event_id"], "\U0001F440")   # the start message is the failure now
        claimed = latest_edit(w, start["event_id"], 2)
        assert claimed["body"].startswith("\U0001F440 Claimed by @bob:localhost\nBuild failed") or \
            "Claimed by @bob:localhost" in claimed["body"][:80], claimed["body"][:120]
        assert "Build failed" in claimed["body"], claimed["body"][:200]
        # the same failure again: its start report points at the thread instead
        w.broker.publish("zuul/scs/check", payload=start_report("s2"))
        start2 = wait_for(lambda: [e for e in w.hs.events(ALERTS) if "format" in e["content"]
                                   and "m.relates_to" not in e["content"] and e["event_id"] != start["event_id"]],
                          10, "the second start")[0]
        w.broker.publish("zuul/scs/check", payload=failure("s2"))
        wait_for(lambda: len(in_thread_of(w, start["event_id"])) == 1, 10, "the repeat in the thread")
        pointer = wait_for(lambda: edits_of(w, start2["event_id"]), 10, "the second start edited")[0]
        assert "failed again: followed in the thread" in pointer["content"]["m.new_content"]["body"], pointer
    with_chat(HANDOVER - 3600, body, routes)


def metric_value(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
    raise AssertionError("no metric " + name)


@test
def a_flood_of_commands_gets_a_few_answers_and_a_failure_after_it_goes_first():
    """The probe of issue #15: a member without power sends 60 "!zuul help" under the
    homeserver's rate limit (1/s, burst 10). Five refusals are queued (the budget of a
    member a minute), the other 55 are dropped: one warning, counted. A failure published
    after the flood is sent before the answers still waiting: the first answer's send
    hangs, so it is in flight and the other two wait when the failure comes. Then they
    follow, in order, each once."""
    port = free_port()
    chatops = CHATOPS + 'metrics: { listen = "127.0.0.1"; port = %d; };\n' % port

    def body(w):
        w.hs.faults([{"method": "PUT", "path": r"/send/m\.room\.message/zmb\.chatops\.reply\.",
                      "action": "hang", "seconds": 30, "count": 1}])
        asked = [w.say("@bob:localhost", "!zuul help") for _ in range(60)]
        wait_for(lambda: metric_value(port, "zmb_command_answers_dropped_total") == 55, 20,
                 "55 commands dropped")
        w.broker.publish("zuul/scs/check", payload=failure("after-the-flood"))
        w.bridge.wait_log('msg="report queued" route=all')
        w.hs.clear_faults()   # the hung answer's connection drops; curl or the bridge sends it again

        def answered():
            return [e for e in w.replies()
                    if ((e["content"].get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id") in asked]
        wait_for(lambda: len(answered()) == 5 and posted(w), 15, "five answers and the failure")
        wait_for(lambda: metric_value(port, "zmb_outbox_depth") == 0, 10, "an empty outbox")
        answers = answered()
        assert len(answers) == 5, [a["content"]["body"] for a in answers]
        assert [a["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] for a in answers] == asked[:5], \
            "the answers go to the first five commands, in their order"
        assert all(a["content"]["body"].startswith("Sorry, !zuul commands need power level 50") for a in answers)
        order = [e["event_id"] for e in w.hs.events(ALERTS)]
        report = order.index(posted(w)[0]["event_id"])
        assert all(report < order.index(a["event_id"]) for a in answers[1:]), \
            "the failure must reach the room before the answers waiting when it came: %r" % [
                e["content"]["body"][:40] for e in w.hs.events(ALERTS)]
        log = w.bridge.log()
        assert log.count('level=warn msg="room commands over budget') == 1, log
        assert metric_value(port, "zmb_command_answers_dropped_total") == 55
        assert metric_value(port, "zmb_delivery_rate_limited_total") == 0, "the answers fit the burst"
        assert metric_value(port, 'zmb_route_reports_posted_total{route="chatops"}') == 5
        # A minute later (the test clock) bob has answers again, and a new window's first
        # silence is logged again.
        w.set_time(HANDOVER - 3600 + 60)
        for _ in range(6):
            asked.append(w.say("@bob:localhost", "!zuul help"))
        wait_for(lambda: metric_value(port, "zmb_command_answers_dropped_total") == 56, 10, "the 6th dropped")
        wait_for(lambda: len(answered()) == 10, 10, "five more answers")
        assert w.bridge.log().count('level=warn msg="room commands over budget') == 2
    with_chat(HANDOVER - 3600, body, chatops=chatops,
              hs_config={"rc_message": {"per_second": 1, "burst_count": 10}})


@test
def every_message_the_bridge_sent_holds_to_the_specs_html():
    """Last on purpose: judges what the tests above had the bridge send (tests/html_spec.py)."""
    html_spec.check_everything_sent(filtered=len(sys.argv) > 1)


run()
