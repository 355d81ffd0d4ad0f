"""Integration tests of ownership and triage (issue #7): owners mentioned instead of the
on-call, the escalation chain owners -> on-call -> fallback with its delays, forwarding into
another room, runbook and hint under the failure, and the owners and workflow commands.
The real bridge, real mosquitto, the fake homeserver; time is the test clock."""

import calendar
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_homeserver import default_config  # noqa: E402
from harness import PAYLOADS, Bridge, World, infra_failure_report, set_item_project, wait_for  # noqa: E402
import html_spec  # noqa: E402
from tap import run, test  # noqa: E402

ALERTS = "!alerts:localhost"
PROVIDER = "!provider:localhost"
ROUTES = '  { name = "all"; room = "#alerts:localhost"; }'
CHATOPS = """
chatops: {
  escalate_after = "1h"; fallback = ["@carol:localhost"]; fallback_after = "1h";
  workflow = "Every failure has an owner.\\nReact with an eye to take it; a tick when it is fixed.";
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
};
owners = (
  { projects = ["SovereignCloudStack/*"]; users = ["@dave:localhost"];
    runbook = "https://wiki.example.org/scs"; hint = "Check the <mirror> status & recheck once."; },
  { projects = ["SovereignCloudStack/standards"]; jobs = ["tox-*"];
    users = ["@erin:localhost", "@frank:localhost"]; escalate_after = "30m";
    forward_room = "#provider:localhost"; forward_after = "10m"; },
  { projects = ["osism/*"]; forward_room = "#provider:localhost"; }
);
"""
# A Monday morning: alice is on call (the first handover is Mon 12 Jan 09:00).
T0 = calendar.timegm((2026, 1, 12, 3, 0, 0, 0, 0, 0))


def hs_config():
    config = default_config()
    bot, alice = "@zuul-bot:localhost", "@alice:localhost"
    config["rooms"].append({"room_id": PROVIDER, "aliases": ["#provider:localhost"], "name": "Provider",
                            "join_rule": "public", "creator": alice,
                            "members": {alice: "join", bot: "join"},
                            "power_levels": {"users": {alice: 100}}})
    return config


class OwnersWorld(World):
    def __init__(self, now, chatops=CHATOPS, routes=ROUTES):
        super().__init__(routes, hs_config=hs_config(), extra=chatops, start_bridge=False)
        self.clock = os.path.join(self.dir, "clock")
        self.set_time(now)
        self.bridge = Bridge(self.dir, self.config, env={"ZMB_TEST_CLOCK": self.clock})
        # the provider room is joined too when owners forward there
        self.bridge.wait_log("MQTT connected", 15)  # subscribed: a report published now is not lost
        self.bridge.wait_log("joined room", 10, count=2 if "forward_room" in chatops else 1)
        wait_for(lambda: any("/sync" in r["path"] for r in self.hs.requests()), 10, "the first /sync")

    def close(self):
        html_spec.collect(self.hs)   # for the last test: every message must be current-spec HTML
        super().close()

    def set_time(self, t):
        with open(self.clock + ".tmp", "w") as f:
            f.write("%d\n" % t)
        os.replace(self.clock + ".tmp", self.clock)

    def say(self, sender, body):
        return self.hs.inject(ALERTS, sender, {"msgtype": "m.text", "body": body})


def with_owners(now, fn, chatops=CHATOPS, routes=ROUTES):
    w = OwnersWorld(now, chatops, routes)
    try:
        fn(w)
    finally:
        w.close()


def failure(buildset, project="SovereignCloudStack/standards", failed_jobs=("tox-py311",)):
    with open(os.path.join(PAYLOADS, "shared-modern-failure.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    ev["project"] = ev["changes"][0]["project"] = project
    builds = []
    for job in list(failed_jobs) + ["linters"]:
        b = dict(ev["buildset"]["builds"][0], job_name=job, result="FAILURE" if job in failed_jobs else "SUCCESS")
        b["change"] = dict(b["change"], project=project)    # a build names its change's project too
        builds.append(b)
    ev["buildset"]["builds"] = builds
    ev["buildset"]["retry_builds"] = []
    return json.dumps(ev)


def roots(w):
    return [e for e in w.hs.events(ALERTS) if "Build failed" in e["content"].get("body", "")
            and "m.relates_to" not in e["content"]]


def root_of(w, project):
    # by the failure marker's thread key: the sample's links name its original project too
    return wait_for(lambda: [e for e in roots(w) if (e["content"].get("zmb.failure") or {})
                             .get("thread_key", "").startswith(project + "|")], 10,
                    "the failure of %s" % project)[0]


def in_thread(w, root):
    return [e for e in w.hs.events(ALERTS)
            if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.thread"
            and e["content"]["m.relates_to"].get("event_id") == root]


def forwards(w):
    return [e for e in w.hs.events(PROVIDER) if "Forwarded from" in e["content"].get("body", "")]


def reply_to(w, event_id, timeout=10):
    def find():
        for e in w.hs.events(ALERTS):
            rel = e["content"].get("m.relates_to") or {}
            if (rel.get("m.in_reply_to") or {}).get("event_id") == event_id:
                return e
        return None
    return wait_for(find, timeout, "a reply to %s" % event_id)


@test
def the_most_specific_owners_are_mentioned_instead_of_the_on_call():
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("o1"))
        w.broker.publish("zuul/scs/check", payload=failure("o2", project="SovereignCloudStack/docs",
                                                           failed_jobs=("build-docs",)))
        w.broker.publish("zuul/scs/check", payload=failure("o3", project="osism/testbed", failed_jobs=("deploy",)))
        job_rule = root_of(w, "SovereignCloudStack/standards")["content"]
        assert job_rule["m.mentions"] == {"user_ids": ["@erin:localhost", "@frank:localhost"]}, job_rule["m.mentions"]
        assert job_rule["body"].startswith("@erin:localhost @frank:localhost\n"), job_rule["body"][:80]
        project_rule = root_of(w, "SovereignCloudStack/docs")["content"]
        assert project_rule["m.mentions"] == {"user_ids": ["@dave:localhost"]}, project_rule["m.mentions"]
        assert job_rule["msgtype"] == project_rule["msgtype"] == "m.text", "a notice would ping nobody"
        nobody = root_of(w, "osism/testbed")["content"]
        assert nobody["m.mentions"] == {"user_ids": ["@alice:localhost"]}, \
            "a rule without users leaves the mention to the on-call"
        # forward_after 0: the provider hears of the osism failure with the failure itself
        note = wait_for(lambda: forwards(w), 10, "the forwarded notice")[0]["content"]
        assert "osism/testbed" in note["body"] and "#alerts:localhost" in note["body"], note["body"]
        root_id = root_of(w, "osism/testbed")["event_id"]
        assert "https://matrix.to/#/%21alerts%3Alocalhost/" + root_id.replace("$", "%24") in note["body"], note["body"]
        assert note["m.mentions"] == {} and note["msgtype"] == "m.notice", "a forwarded notice pings nobody"
        time.sleep(0.5)
        assert len(forwards(w)) == 1, [e["content"]["body"] for e in forwards(w)]
    with_owners(T0, body)


@test
def the_runbook_and_hint_of_the_owners_rule_are_shown_escaped():
    # (a javascript: runbook never gets this far: --check-config refuses it, tests/test_config.c)
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("h1", project="SovereignCloudStack/docs",
                                                           failed_jobs=("build-docs",)))
        w.broker.publish("zuul/scs/check", payload=failure("h2", project="osism/testbed", failed_jobs=("deploy",)))
        c = root_of(w, "SovereignCloudStack/docs")["content"]
        assert "What to do" in c["body"], c["body"]
        assert "Check the <mirror> status & recheck once." in c["body"], c["body"]
        assert "Check the &lt;mirror&gt; status &amp; recheck once." in c["formatted_body"], c["formatted_body"]
        assert 'href="https://wiki.example.org/scs"' in c["formatted_body"], c["formatted_body"]
        plain = root_of(w, "osism/testbed")["content"]
        assert "What to do" not in plain["body"], "a rule without runbook or hint adds nothing"
    with_owners(T0, body)


@test
def escalation_goes_owners_then_forward_then_on_call_then_fallback_across_a_restart():
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("e1"))
        root = root_of(w, "SovereignCloudStack/standards")["event_id"]

        def pings():
            return [e["content"] for e in in_thread(w, root) if "Still unclaimed" in e["content"]["body"]]

        w.set_time(T0 + 9 * 60)
        time.sleep(0.7)
        assert forwards(w) == [] and pings() == [], "nothing before forward_after"
        w.set_time(T0 + 10 * 60 + 5)
        wait_for(lambda: forwards(w), 10, "the forward after 10 minutes")
        assert pings() == [], "the on-call is not pinged before the owners' 30 minutes"
        assert w.bridge.stop() == 0                  # timers survive a restart
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=4)
        w.set_time(T0 + 30 * 60 + 5)
        first = wait_for(pings, 10, "the on-call ping after 30 minutes")[0]
        assert first["m.mentions"] == {"user_ids": ["@alice:localhost"]}, first["m.mentions"]
        w.set_time(T0 + 90 * 60 + 5)
        wait_for(lambda: len(pings()) == 2, 10, "the fallback ping an hour later")
        assert pings()[1]["m.mentions"] == {"user_ids": ["@carol:localhost"]}, pings()[1]["m.mentions"]
        time.sleep(0.5)
        assert len(forwards(w)) == 1, "the forward went out once, restart included"
    with_owners(T0, body)


@test
def a_claimed_failure_is_not_forwarded_later():
    def body(w):
        w.broker.publish("zuul/scs/check", payload=failure("c1"))
        root = root_of(w, "SovereignCloudStack/standards")["event_id"]
        w.hs.inject(ALERTS, "@erin:localhost",
                    {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "\U0001F440"}},
                    kind="m.reaction")
        wait_for(lambda: [e for e in w.hs.events(ALERTS)
                          if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"], 10,
                 "the claim edit")
        w.set_time(T0 + 3 * 3600)
        time.sleep(1)
        assert forwards(w) == [], "an owner took it: the provider need not hear of it"
        assert [e for e in in_thread(w, root) if "Still unclaimed" in e["content"]["body"]] == []
    with_owners(T0, body)


@test
def owners_and_workflow_commands_answer_from_the_config():
    def body(w):
        r = reply_to(w, w.say("@alice:localhost", "!zuul owners SovereignCloudStack/standards tox-py311"))
        text = r["content"]["body"]
        assert "@erin:localhost" in text and "@frank:localhost" in text and "line" in text, text
        assert "@dave:localhost" not in text.split("\n")[0], text
        assert r["content"]["m.mentions"] == {}, "a command reply pings nobody"
        text = reply_to(w, w.say("@alice:localhost", "!zuul owners nobody/owns-this"))["content"]["body"]
        assert text.startswith("Nobody owns nobody/owns-this"), text
        text = reply_to(w, w.say("@alice:localhost", "!zuul workflow"))["content"]["body"]
        assert text == "Every failure has an owner.\nReact with an eye to take it; a tick when it is fixed.", text
    with_owners(T0, body)


TRIAGE = CHATOPS + """
triage: { job_window = "30m"; };
"""


node_failure = infra_failure_report


def incidents(w):
    return [e for e in w.hs.events(ALERTS) if "m.relates_to" not in e["content"]
            and "zmb.failure" in e["content"]
            and e["content"]["zmb.failure"]["thread_key"].startswith("incident|")]


@test
def a_broken_node_pool_is_one_incident_and_a_real_failure_still_alerts_its_owner():
    """Issue #7's night: 12 periodic jobs of 6 projects fail with NODE_FAILURE -> one
    incident message, edited as it grows, no per-project alerts; an unrelated project's real
    test failure still gets its own alert mentioning its owner."""
    def body(w):
        projects = ["osism/p%d" % i for i in range(6)]
        for i, p in enumerate(projects):
            w.broker.publish("zuul/scs/periodic", payload=node_failure("n%d" % i, p, ["deploy", "upgrade"]))
            w.set_time(T0 + 60 * (i + 1))
        w.broker.publish("zuul/scs/check", payload=failure("real", project="SovereignCloudStack/docs",
                                                           failed_jobs=("build-docs",)))
        real = root_of(w, "SovereignCloudStack/docs")["content"]
        assert real["m.mentions"] == {"user_ids": ["@dave:localhost"]}, real["m.mentions"]
        w.bridge.wait_log("report absorbed into an infrastructure incident", 10, count=6)
        inc = wait_for(lambda: incidents(w), 10, "the incident message")
        assert len(inc) == 1, [e["content"]["body"][:60] for e in inc]
        assert inc[0]["content"]["m.mentions"] == {"user_ids": ["@alice:localhost"]}, "the incident pings the on-call"
        assert inc[0]["content"]["msgtype"] == "m.text", "a notice would ping nobody"
        per_project = [e for e in roots(w) if "osism/p" in e["content"]["body"]]
        assert per_project == [], "no per-project alerts for an infrastructure failure"
        root = inc[0]["event_id"]

        def edits():
            return [e["content"]["m.new_content"] for e in w.hs.events(ALERTS)
                    if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
                    and e["content"]["m.relates_to"]["event_id"] == root]
        final = wait_for(lambda: [c for c in edits() if all(p in c["body"] for p in projects)], 10,
                         "the incident edited to list all six projects")[-1]
        assert "NODE_FAILURE" in final["body"] and "upgrade" in final["body"], final["body"][:300]
        # claimable like any failure, across a restart
        assert w.bridge.stop() == 0
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=4)
        w.hs.inject(ALERTS, "@bob:localhost",
                    {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "\U0001F440"}},
                    kind="m.reaction")
        wait_for(lambda: [c for c in edits() if c["body"].startswith("\U0001F440 Claimed by @bob:localhost")], 10,
                 "the claim on the incident")
        # explain, on the live state_dir, tells that a seventh project would join it
        path = os.path.join(w.dir, "n7.json")
        with open(path, "w") as f:
            f.write(node_failure("n7", "osism/p7", ["deploy"]))
        out = w.bridge.cli("explain", "-c", w.bridge.conf, path).stdout.decode()
        assert "route all (#alerts:localhost): absorbed into the infrastructure incident " in out, out
        assert "(NODE_FAILURE in tenant scs, 7 projects so far)" in out, out  # this one included
        # a seventh project after the restart joins the same incident
        w.broker.publish("zuul/scs/periodic", payload=node_failure("n7", "osism/p7", ["deploy"]))
        wait_for(lambda: [c for c in edits() if "osism/p7" in c["body"]], 10, "the seventh project joining")
        assert len(incidents(w)) == 1
        # the window closes without new members: the message says so
        w.set_time(T0 + 3600 * 2)
        closed = wait_for(lambda: [c for c in edits() if "closed" in c["body"]], 10, "the closing edit")[-1]
        assert "Claimed by @bob:localhost" in closed["body"], closed["body"][:200]
    with_owners(T0, body, TRIAGE)


@test
def five_projects_failing_the_same_job_on_broken_nodes_form_an_incident_a_sixth_joins_later():
    """Issue #7's test list: an incident formed from 5 projects failing the same job within
    the window, and a sixth joining later; none of them gets an alert of its own."""
    def body(w):
        for i in range(5):
            w.broker.publish("zuul/scs/periodic", payload=node_failure("f%d" % i, "osism/f%d" % i, ["deploy"]))
        inc = wait_for(lambda: incidents(w), 10, "the incident")
        assert len(inc) == 1
        root = inc[0]["event_id"]

        def latest():
            edits = [e["content"]["m.new_content"]["body"] for e in w.hs.events(ALERTS)
                     if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
                     and e["content"]["m.relates_to"]["event_id"] == root]
            return edits[-1] if edits else inc[0]["content"]["body"]
        wait_for(lambda: all("osism/f%d" % i in latest() for i in range(5)), 10, "all five projects listed")
        assert "osism/f5" not in latest()
        w.set_time(T0 + 20 * 60)                   # later, still within the 30 minute window
        w.broker.publish("zuul/scs/periodic", payload=node_failure("f5", "osism/f5", ["deploy"]))
        wait_for(lambda: "osism/f5" in latest(), 10, "the sixth project joining")
        assert len(incidents(w)) == 1
        assert not [e for e in roots(w) if (e["content"].get("zmb.failure") or {}).get("thread_key", "")
                    .startswith("osism/f")], "no alert of their own"
    with_owners(T0, body, TRIAGE)


@test
def one_job_failing_on_three_projects_becomes_an_incident_and_the_earlier_alerts_point_at_it():
    def body(w):
        for i in range(2):
            w.broker.publish("zuul/scs/check", payload=failure("s%d" % i, project="osism/s%d" % i,
                                                               failed_jobs=("tox-docs",)))
        first = [root_of(w, "osism/s%d" % i)["event_id"] for i in range(2)]
        w.broker.publish("zuul/scs/check", payload=failure("s2", project="osism/s2", failed_jobs=("tox-docs",)))
        inc = wait_for(lambda: incidents(w), 10, "the incident of the spread job")
        assert "tox-docs" in inc[0]["content"]["body"], inc[0]["content"]["body"][:200]
        for root in first:
            note = wait_for(lambda: [e for e in in_thread(w, root) if "infrastructure incident" in e["content"]["body"]],
                            10, "the note in an earlier alert's thread")[0]["content"]
            assert note["m.mentions"] == {}, note
        w.bridge.wait_log("report absorbed into an infrastructure incident")
        assert not [e for e in roots(w) if (e["content"].get("zmb.failure") or {}).get("thread_key", "")
                    .startswith("osism/s2|")], "the third project's failure is part of the incident"
        w.broker.publish("zuul/scs/check", payload=failure("own", project="osism/s3", failed_jobs=("unit",)))
        root_of(w, "osism/s3")            # its own job: its own alert
        assert len(incidents(w)) == 1
    with_owners(T0, body, TRIAGE)


# Chatops without owners: the catch-up is about what the room sees after an absence.
CATCHUP = CHATOPS.split("owners = (")[0].replace('escalate_after = "1h";', 'escalate_after = "1h"; catch_up_after = "10m";')


def success(buildset, project):
    with open(os.path.join(PAYLOADS, "shared-modern-failure.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    ev["project"] = ev["changes"][0]["project"] = project
    ev["action"] = "success"
    ev["message"] = "Build succeeded."
    ev["buildset"]["result"] = "SUCCESS"
    ev["buildset"]["builds"] = [dict(ev["buildset"]["builds"][0], job_name="deploy", result="SUCCESS")]
    ev["buildset"]["retry_builds"] = []
    set_item_project(ev, project)   # the builds tested that change
    return json.dumps(ev)


def summaries(w):
    return [e["content"] for e in w.hs.events(ALERTS) if e["content"].get("body", "").startswith("While the bridge was away")]


def failures_of(w, project):
    return [e for e in w.hs.events(ALERTS) if "Build failed" in e["content"].get("body", "")
            and project in e["content"]["body"]]


@test
def after_a_homeserver_outage_recovered_failures_are_one_summary_and_open_ones_still_alert():
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "action": "drop", "count": 100000}])
        w.broker.publish("zuul/scs/check", payload=failure("away1", project="osism/one", failed_jobs=("deploy",)))
        w.bridge.wait_log("delivery failed; will retry")
        w.set_time(T0 + 15 * 60)
        w.bridge.wait_log("catching up after an absence")
        w.broker.publish("zuul/scs/check", payload=success("away1ok", "osism/one"))
        w.broker.publish("zuul/scs/check", payload=failure("away2", project="osism/two", failed_jobs=("deploy",)))
        w.bridge.wait_log("report left to the catch-up summary")
        w.bridge.wait_log("report queued", count=2)
        w.hs.clear_faults()
        summary = wait_for(lambda: summaries(w), 20, "the catch-up summary")[0]
        assert "osism/one" in summary["body"] and "osism/two" not in summary["body"], summary["body"]
        assert summary["m.mentions"] == {}, "a summary pings nobody"
        wait_for(lambda: failures_of(w, "osism/two"), 20, "the open failure, posted on its own")
        time.sleep(0.5)
        assert failures_of(w, "osism/one") == [], "a failure the summary covers must not be posted"
        assert not [e for e in w.hs.events(ALERTS) if "Build succeeded" in e["content"].get("body", "")]
        assert len(summaries(w)) == 1
    with_owners(T0, body, CATCHUP)


@test
def after_a_broker_outage_recovered_failures_are_one_summary():
    def body(w):
        w.broker.stop()
        w.bridge.wait_log("MQTT disconnected", 10)
        w.set_time(T0 + 15 * 60)              # the broker was gone longer than catch_up_after
        time.sleep(0.3)
        w.broker.start()
        w.bridge.wait_log("catching up after an absence", 20)
        # What Zuul reports as the broker comes back is the bridge's backlog: read while its
        # deliveries are held (until 2 s pass without a report).
        w.broker.publish("zuul/scs/check", payload=failure("b1", project="osism/one", failed_jobs=("deploy",)))
        w.broker.publish("zuul/scs/check", payload=success("b1ok", "osism/one"))
        w.broker.publish("zuul/scs/check", payload=failure("b2", project="osism/two", failed_jobs=("deploy",)))
        summary = wait_for(lambda: summaries(w), 20, "the catch-up summary")[0]
        assert "osism/one" in summary["body"] and "osism/two" not in summary["body"], summary["body"]
        wait_for(lambda: failures_of(w, "osism/two"), 20, "the open failure, posted on its own")
        time.sleep(0.5)
        assert failures_of(w, "osism/one") == [], "a failure the summary covers must not be posted"
    with_owners(T0, body, CATCHUP)


@test
def after_the_bridge_was_stopped_the_backlog_is_summarised_before_anything_is_posted():
    def body(w):
        assert w.bridge.stop() == 0
        w.set_time(T0 + 3600)                 # an hour later; the broker kept what Zuul sent
        w.broker.publish("zuul/scs/check", payload=failure("gone1", project="osism/one", failed_jobs=("deploy",)))
        w.broker.publish("zuul/scs/check", payload=failure("gone2", project="osism/one", failed_jobs=("deploy",)))
        w.broker.publish("zuul/scs/check", payload=success("gone1ok", "osism/one"))
        w.broker.publish("zuul/scs/check", payload=failure("gone3", project="osism/two", failed_jobs=("deploy",)))
        w.bridge.start()
        summary = wait_for(lambda: summaries(w), 20, "the catch-up summary")[0]
        assert "osism/one" in summary["body"] and "failed 2 times" in summary["body"], summary["body"]
        wait_for(lambda: failures_of(w, "osism/two"), 20, "the open failure, posted on its own")
        time.sleep(0.5)
        assert failures_of(w, "osism/one") == [], [e["content"]["body"][:60] for e in failures_of(w, "osism/one")]
        # a short stop is no absence: nothing is summarised
        assert w.bridge.stop() == 0
        w.set_time(T0 + 3600 + 60)
        w.broker.publish("zuul/scs/check", payload=failure("short1", project="osism/three", failed_jobs=("deploy",)))
        w.broker.publish("zuul/scs/check", payload=success("short1ok", "osism/three"))
        w.bridge.start()
        wait_for(lambda: failures_of(w, "osism/three"), 20, "the failure after a short stop")
        assert len(summaries(w)) == 1
    with_owners(T0, body, CATCHUP)


@test
def the_daily_digest_lists_open_unclaimed_failures_at_its_time_and_is_silent_when_none():
    routes = '  { name = "all"; room = "#alerts:localhost"; digest_at = "08:00"; }'

    def digests():
        return [e["content"] for e in w_box[0].hs.events(ALERTS) if e["content"].get("body", "").startswith("Daily digest")]

    w_box = []

    def body(w):
        w_box.append(w)
        w.broker.publish("zuul/scs/check", payload=failure("d1", project="SovereignCloudStack/docs",
                                                           failed_jobs=("build-docs",)))
        w.broker.publish("zuul/scs/check", payload=failure("d2"))
        docs = root_of(w, "SovereignCloudStack/docs")["event_id"]
        claimed = root_of(w, "SovereignCloudStack/standards")["event_id"]
        w.hs.inject(ALERTS, "@erin:localhost",
                    {"m.relates_to": {"rel_type": "m.annotation", "event_id": claimed, "key": "\U0001F440"}},
                    kind="m.reaction")
        wait_for(lambda: [e for e in w.hs.events(ALERTS)
                          if (e["content"].get("m.relates_to") or {}).get("event_id") == claimed
                          and e["content"]["m.relates_to"].get("rel_type") == "m.replace"], 10, "the claim")
        w.set_time(T0 + 5 * 3600 - 10)        # 07:59:50
        time.sleep(0.7)
        assert digests() == [], "no digest before 08:00"
        w.set_time(T0 + 5 * 3600 + 5)         # 08:00:05
        d = wait_for(digests, 10, "the digest at 08:00")[0]
        lines = d["body"].split("\n")
        assert lines[0] == "Daily digest, Mon 12 Jan 2026: 1 open failure nobody has claimed", lines
        assert lines[1].startswith("- SovereignCloudStack/docs (main) check: build-docs: open 5h, owner @dave:localhost"), lines
        assert docs.replace("$", "%24") in lines[1], lines[1]
        assert d["m.mentions"] == {}, "a digest informs, it does not page"
        w.hs.inject(ALERTS, "@dave:localhost",
                    {"m.relates_to": {"rel_type": "m.annotation", "event_id": docs, "key": "\u2705"}},
                    kind="m.reaction")
        wait_for(lambda: [e for e in w.hs.events(ALERTS)
                          if (e["content"].get("m.relates_to") or {}).get("event_id") == docs
                          and e["content"]["m.relates_to"].get("rel_type") == "m.replace"], 10, "the resolve")
        w.set_time(T0 + 29 * 3600 + 5)        # the next day, 08:00:05: nothing is open
        time.sleep(1)
        assert len(digests()) == 1, "a digest with nothing to say is not posted"
        w.bridge.wait_log("daily digest: nothing open and unclaimed")
    with_owners(T0, body, routes=routes)


@test
def every_message_the_bridge_sent_holds_to_the_specs_html():
    """Last on purpose: judges what the tests above had the bridge send (tests/html_spec.py)."""
    html_spec.check_everything_sent(filtered=len(sys.argv) > 1)


run()
