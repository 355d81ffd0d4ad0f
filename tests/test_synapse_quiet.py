"""Quiet by default (issue #13), on a real Synapse with the minimal configuration a new
user writes: mqtt, matrix and one route, no chatops or triage group. The three stories
that used to flood the room: five failing nights of one periodic job, a broken node pool
failing one job in six projects, and a 👀 on a failure. And the one key that turns the
room side off, for those who want plain posting."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import SynapseWorld, infra_failure_report, periodic_report, run_in, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402

EYES, CHECK = "\U0001F440", "\u2705"
ALL = '  { name = "all"; room = "#alerts:localhost"; }'


def relation(e):
    return e["content"].get("m.relates_to") or {}


def top_level(w):
    return [e for e in w.bot_messages() if not relation(e)]


def in_thread(w, root):
    return [e for e in w.bot_messages() if relation(e).get("rel_type") == "m.thread"
            and relation(e).get("event_id") == root]


def wait_body(w, event_id, predicate, what, timeout=20):
    return wait_for(lambda: predicate(w.latest_body(event_id)) and w.latest_body(event_id), timeout, what)


@test
def five_failing_nights_are_one_root_with_a_thread_a_counter_a_claim_and_the_recovery():
    def body(w):
        room = w.rooms["alerts"]
        for night in range(5):
            w.broker.publish("zuul/scs/periodic-daily", payload=periodic_report("night%d" % night))
        root = wait_for(lambda: top_level(w), 20, "the first night's failure")[0]["event_id"]
        assert "sync: no saved token; starting from now" in w.bridge.log(), "the room side follows the room"
        wait_for(lambda: len(in_thread(w, root)) == 4, 20, "four repeats in its thread")
        wait_body(w, root, lambda t: "Failed 5 times since" in t, "the counter on the first message")
        w.hs.react(w.bob, room, root, EYES)
        wait_body(w, root, lambda t: t.startswith(EYES + " Claimed by @bob:localhost\n"), "bob's claim")
        # commands answer the moderators (bob, 50), and refuse the others (carol, 0)
        asked = {who: w.hs.say(getattr(w, who), room, "!zuul claims") for who in ("bob", "carol")}

        def answer_to(event_id):
            return [e["content"]["body"] for e in w.bot_messages()
                    if (relation(e).get("m.in_reply_to") or {}).get("event_id") == event_id]
        bob = wait_for(lambda: answer_to(asked["bob"]), 20, "the answer to bob")[0]
        carol = wait_for(lambda: answer_to(asked["carol"]), 20, "the answer to carol")[0]
        assert bob.startswith("Open failures in this room (1):") and "@bob:localhost" in bob, bob
        assert carol.startswith("Sorry, !zuul commands need power level 50 in this room; you have 0."), carol
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic_report("fixed", action="success"))
        text = wait_body(w, root, lambda t: t.startswith(CHECK + " Recovered"), "the recovery on the root")
        assert "Failed 5 times since" in text, text[:200]
        wait_for(lambda: "Recovered" in in_thread(w, root)[-1]["content"]["body"], 20, "the recovery in the thread")
        time.sleep(0.5)
        assert [e["event_id"] for e in top_level(w)] == [root], [e["content"]["body"][:50] for e in top_level(w)]
        w.assert_messages_well_formed()
    run_in(SynapseWorld(ALL), body)


@test
def a_broken_node_pool_in_six_projects_is_one_incident_which_a_reaction_claims():
    def body(w):
        for i in range(6):
            w.broker.publish("zuul/scs/periodic", payload=infra_failure_report("n%d" % i, "osism/p%d" % i, ["deploy"]))
        w.bridge.wait_log("report absorbed into an infrastructure incident", 20, count=5)
        incidents = wait_for(lambda: [e for e in top_level(w) if "NODE_FAILURE" in e["content"]["body"]], 20,
                             "the incident")
        time.sleep(0.5)
        tops = top_level(w)
        assert len(tops) == 1, [e["content"]["body"][:60] for e in tops]
        root = incidents[0]["event_id"]
        wait_body(w, root, lambda t: all("osism/p%d" % i in t for i in range(6)), "all six projects in the incident")
        assert tops[0]["content"]["m.mentions"] == {}, "nobody is on call: the incident pings nobody"
        w.hs.react(w.alice, w.rooms["alerts"], root, EYES)
        wait_body(w, root, lambda t: t.startswith(EYES + " Claimed by @alice:localhost"), "alice's claim")
        w.assert_messages_well_formed()
    run_in(SynapseWorld(ALL), body)


@test
def with_the_room_side_off_every_report_is_its_own_message_and_reactions_do_nothing():
    def body(w):
        for night in range(3):
            w.broker.publish("zuul/scs/periodic-daily", payload=periodic_report("night%d" % night))
        tops = wait_for(lambda: len(top_level(w)) == 3 and top_level(w), 20, "three messages")
        w.hs.react(w.bob, w.rooms["alerts"], tops[0]["event_id"], EYES)
        w.hs.say(w.bob, w.rooms["alerts"], "!zuul help")
        w.broker.publish("zuul/scs/periodic-daily", payload=periodic_report("fixed", action="success"))
        wait_for(lambda: len(top_level(w)) == 4, 20, "the success as a message of its own")
        time.sleep(1)
        msgs = w.bot_messages()
        assert len(msgs) == 4 and not any(relation(e) for e in msgs), [e["content"]["body"][:50] for e in msgs]
        assert "sync: " not in w.bridge.log(), "plain posting does not follow the room"
    run_in(SynapseWorld(ALL, extra="chatops: { enabled = false; };"), body)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
