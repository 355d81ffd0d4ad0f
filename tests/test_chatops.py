"""Integration tests of the chatops room side: the real bridge with chatops configured,
commands sent by real users of the fake homeserver through /sync, replies and handover
notices checked in the room. Time is the test clock (ZMB_TEST_CLOCK)."""

import calendar
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PAYLOADS, Bridge, World, wait_for  # noqa: E402
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
    def __init__(self, now, routes=ROUTES):
        super().__init__(routes, extra=CHATOPS, start_bridge=False)
        self.clock = os.path.join(self.dir, "clock")
        self.set_time(now)
        self.bridge = Bridge(self.dir, self.config, env={"ZMB_TEST_CLOCK": self.clock})
        self.bridge.wait_log("joined room", 10)
        # /sync has started once its first poll went out.
        wait_for(lambda: any("/sync" in r["path"] for r in self.hs.requests()), 10, "the first /sync")

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
        return [e for e in self.hs.events(ALERTS) if e["content"].get("msgtype") == "m.notice"]


def with_chat(now, fn, routes=ROUTES):
    w = ChatWorld(now, routes)
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
        assert fail["formatted_body"].startswith('<a href="https://matrix.to/#/@alice:localhost">@alice:localhost</a><br>'), fail["formatted_body"][:120]
        assert fail["body"].startswith("@alice:localhost\n"), fail["body"][:60]
        ok = [e["content"] for e in w.hs.events(ALERTS) if "succeeded" in e["content"].get("body", "").lower()
              or "Build succeeded" in e["content"].get("body", "")]
        assert ok and "m.mentions" not in ok[0], ok
        quiet = wait_for(lambda: [e for e in w.hs.events("!ops:localhost") if "Build failed" in e["content"].get("body", "")],
                         10, "the quiet route's copy")
        assert "m.mentions" not in quiet[0]["content"], quiet[0]["content"].get("m.mentions")
    with_chat(HANDOVER - 3600, body, routes)



def react(w, sender, target, key):
    return w.hs.inject(ALERTS, sender, {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}},
                       kind="m.reaction")


def edits_of(w, target):
    return [e for e in w.hs.events(ALERTS)
            if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
            and e["content"]["m.relates_to"].get("event_id") == target]


def latest_edit(w, target, count):
    edits = wait_for(lambda: len(edits_of(w, target)) >= count and edits_of(w, target), 10,
                     "edit number %d of %s" % (count, target))
    return edits[-1]["content"]["m.new_content"]


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
        assert edit_event["m.mentions"] == {"user_ids": []}, "an edit must not ping"
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



def periodic(buildset, action="failure", failed_jobs=("scs-compliance-check-gx-scs-main",)):
    """The shared periodic-daily report of SovereignCloudStack/standards, as failure or success."""
    with open(os.path.join(PAYLOADS, "shared-periodic-failure.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    ev["action"] = action
    ev["buildset"]["result"] = "FAILURE" if action == "failure" else "SUCCESS"
    ev["message"] = "Build failed." if action == "failure" else "Build succeeded."
    for b in ev["buildset"]["builds"]:
        b["result"] = "FAILURE" if action == "failure" and b["job_name"] in failed_jobs else "SUCCESS"
    return json.dumps(ev)


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
            assert "m.mentions" not in reply["content"], "a repeat must not ping again"
        new = latest_edit(w, root["event_id"], 2)
        assert "Failed 3 times since" in new["body"], new["body"][:200]
        # another job failing is another failure: a new root
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("other", failed_jobs=("other-job",)))
        wait_for(lambda: len(top_level_failures(w)) == 2, 10, "a second root for another job")
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("fixed", action="success"))
        wait_for(lambda: any("Recovered" in e["content"]["body"] for e in in_thread_of(w, root["event_id"])), 10,
                 "recovered in the thread")
        new = latest_edit(w, root["event_id"], 3)
        assert new["body"].startswith("\u2705 Recovered"), new["body"][:80]
        assert "Failed 3 times since" in new["body"]
        # after recovery the next failure starts a new thread
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic("again"))
        wait_for(lambda: len(top_level_failures(w)) == 3, 10, "a new root after the recovery")
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


run()
