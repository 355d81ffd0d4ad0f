"""A night of periodic failures against a real Synapse that rate-limits the bot, as Synapse
does by default (rc_message: 0.2/s, burst 10, shared by all rooms). The limit here is 1/s
with a burst of 10, set through Synapse's admin API (override_ratelimit), to keep the run
short: the bridge meets the same 429 answers, only more often per minute.

The night: 8 periodic jobs fail 5 times each (40 failure reports, published at once, as a
broker backlog arrives), alice claims two of them with a real 👀, and one job recovers.
The room must end up with every fact, in order, nothing twice, and no more events than
the facts need: an edit that a newer edit of the same message replaced before it went out
is not sent."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import PAYLOADS, SynapseWorld, set_item_project, wait_for  # noqa: E402
from tap import diag, run, skip_all, test  # noqa: E402

EYES = "\U0001F440"
CHATOPS = "chatops: { command_power_level = 50; };"
ALL = '  { name = "all"; room = "#alerts:localhost"; }'
JOBS = 8
NIGHTS = 5


def periodic(project, buildset, action="failure"):
    with open(os.path.join(PAYLOADS, "shared-periodic-failure.json")) as f:
        ev = json.load(f)
    ev["project"] = ev["changes"][0]["project"] = project
    ev["buildset"]["uuid"] = buildset
    ev["action"] = action
    ev["buildset"]["result"] = "FAILURE" if action == "failure" else "SUCCESS"
    ev["message"] = "Build failed." if action == "failure" else "Build succeeded."
    for b in ev["buildset"]["builds"]:
        b["result"] = "FAILURE" if action == "failure" else "SUCCESS"
        # each project's own jobs: one job failing in many projects would be an incident
        b["job_name"] = "%s-%s" % (b["job_name"], project.rsplit("/", 1)[-1])
    set_item_project(ev, project)   # the builds tested that change
    return json.dumps(ev)


def rel(e):
    return e["content"].get("m.relates_to") or {}


@test
def a_night_of_forty_failures_under_the_rate_limit_arrives_whole_in_order_and_once():
    def body(w):
        room = w.rooms["alerts"]
        projects = ["org/project-%d" % j for j in range(JOBS)]
        started = time.monotonic()
        for night in range(NIGHTS):
            for p in projects:
                w.broker.publish("zuul/scs/periodic-daily", payload=periodic(p, "%s-n%d" % (p[-1], night)))
        w.bridge.wait_log("report queued", 30, count=JOBS * NIGHTS)

        def roots():
            return {e["content"]["body"].split("Project: ")[1].split()[0]: e["event_id"]
                    for e in w.bot_messages() if not rel(e) and "Build failed" in e["content"]["body"]}
        wait_for(lambda: len(roots()) >= 2, 60, "the first two roots")
        r = roots()
        for p in projects[:2]:
            w.hs.react(w.alice, room, r[p], EYES)
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic(projects[0], "fixed", action="success"))

        def settled():
            msgs = w.bot_messages()
            thread = [e for e in msgs if rel(e).get("rel_type") == "m.thread"]
            recovered = [e for e in thread if "Recovered" in e["content"]["body"]]
            return len(roots()) == JOBS and len(thread) == JOBS * (NIGHTS - 1) + 1 and recovered
        wait_for(settled, 900, "every root, repeat and the recovery", interval=1)
        # the last edits go out after the recovery's thread reply: wait for the final states
        r = roots()

        latest = w.latest_body
        wait_for(lambda: all("Failed %d times" % NIGHTS in latest(r[p]) for p in projects), 120,
                 "every root's final count", interval=1)
        wait_for(lambda: latest(r[projects[0]]).startswith("\u2705 Recovered")
                 and EYES + " Claimed by @alice:localhost" in latest(r[projects[1]]), 120,
                 "the recovery and the claim on the roots", interval=1)
        drained = time.monotonic() - started
        time.sleep(3)  # nothing more may come
        msgs = w.bot_messages()
        txns = [e["unsigned"].get("transaction_id") for e in msgs if "transaction_id" in e.get("unsigned", {})]
        assert len(txns) == len(set(txns)), "a transaction id twice"
        # in order per job: the repeats of a job follow its root in the order they were published
        for p in projects:
            thread = [e for e in msgs if rel(e).get("rel_type") == "m.thread" and rel(e).get("event_id") == r[p]]
            keys = [e["content"]["body"].split("/buildset/")[1].split(")")[0] for e in thread
                    if "Build failed" in e["content"]["body"]]
            assert keys == ["%s-n%d" % (p[-1], n) for n in range(1, NIGHTS)], (p, keys)
        edits = [e for e in msgs if rel(e).get("rel_type") == "m.replace"]
        log = w.bridge.log()
        limited = log.count("rate limited")
        superseded = log.count("superseded by a newer edit")
        diag("%d events (%d roots, %d thread replies, %d edits) in %.0f s; 429 answers: %d; edits superseded: %d"
             % (len(msgs), JOBS, len(msgs) - JOBS - len(edits), len(edits), drained, limited, superseded))
        assert limited > 0, "the test must have met Synapse's rate limit"
        assert superseded > 0, "edits of a root queued behind each other must collapse"
        # the facts need: 8 roots, 32 repeats, 1 recovery; per root at most one edit per
        # change the room could see before the next one was queued
        assert len(edits) < JOBS * (NIGHTS - 1) + 3, "%d edits for %d repeats" % (len(edits), JOBS * (NIGHTS - 1))
        assert "dead letter" not in log, [line for line in log.splitlines() if "dead letter" in line][:3]
        w.assert_messages_well_formed()
    # ZMB_NIGHT_SERVER_LIMITS=1: Synapse's own defaults (0.2/s), for the README's numbers.
    limit = "server" if os.environ.get("ZMB_NIGHT_SERVER_LIMITS") else (1, 10)
    w = SynapseWorld(ALL, extra=CHATOPS, bot_ratelimit=limit)
    try:
        body(w)
    finally:
        w.close()


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
