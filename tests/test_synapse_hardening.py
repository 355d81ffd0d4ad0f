"""Hardening against a real Synapse: reactions and redactions count only in the failure's
own room, and a redaction takes a claim back only as Synapse applies it (the claimer's own,
or a moderator's). Real accounts (alice 100, bob 50, carol 0) in two real rooms, #alerts
and #ops; what the room shows is read back from Synapse.

Synapse refuses the cross-room attempts of its own users (400 "Relations must be in the
same room", 400 "Cannot redact event from a different room") and carol's redaction (403),
so against one server these tests hold with or without the bridge's checks: they pin
what a real homeserver lets through. The bridge's own checks matter for events that come
over federation from a server that does not know the failure's room (it cannot check the
relation) or does not enforce; tests/test_chatops.py injects those and fails without them."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import SynapseWorld, run_in, wait_for  # noqa: E402
from tap import diag, run, skip_all, test  # noqa: E402

EYES, CHECK = "\U0001F440", "\u2705"
CHATOPS = """
chatops: {
  command_power_level = 50;
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
};
"""
# #ops is followed by the bridge (commands, reactions) but gets no reports.
ROUTES = """
  { name = "all"; room = "#alerts:localhost"; },
  { name = "ops"; room = "#ops:localhost"; match: { pipelines = ["never-*"]; }; }"""


def with_rooms(fn):
    run_in(SynapseWorld(ROUTES, rooms=("alerts", "ops"), extra=CHATOPS), fn)


def relation(e):
    return e["content"].get("m.relates_to") or {}


def the_failure(w):
    w.broker.publish_sample("shared-modern-failure.json")
    return wait_for(lambda: [e for e in w.bot_messages("alerts") if not relation(e)], 15, "the failure")[0]["event_id"]


def edits(w, root):
    return [e for e in w.bot_messages("alerts")
            if relation(e).get("rel_type") == "m.replace" and relation(e).get("event_id") == root]


def latest_text(w, event_id):
    return w.latest_body(event_id)


def wait_text(w, event_id, predicate, what, timeout=15):
    return wait_for(lambda: predicate(latest_text(w, event_id)) and latest_text(w, event_id), timeout, what)


def handled(w, room):
    """Waits for the bridge's answer to a command alice sends in room now: whatever the
    bridge got from that room before it has been handled."""
    asked = w.hs.say(w.alice, w.rooms[room], "!zuul status")
    wait_for(lambda: [e for e in w.bot_messages(room)
                      if (relation(e).get("m.in_reply_to") or {}).get("event_id") == asked], 15,
             "the answer in #" + room)


def attempt(what, fn):
    """Runs one request of an attacker; Synapse may refuse it. Returns the status (200 or the refusal's)."""
    try:
        fn()
        diag("Synapse accepted " + what)
        return 200
    except synapse.MatrixError as e:
        diag("Synapse refused %s: %s" % (what, e))
        return e.status


@test
def a_resolve_sent_in_another_room_does_not_resolve_the_failure():
    def body(w):
        root = the_failure(w)
        # bob is in both rooms: his ✅ in #ops names the #alerts failure
        attempt("a ✅ in #ops naming the #alerts failure",
                lambda: w.hs.react(w.bob, w.rooms["ops"], root, CHECK))
        handled(w, "ops")
        handled(w, "alerts")
        time.sleep(1)
        assert edits(w, root) == [], [e["content"]["m.new_content"]["body"][:40] for e in edits(w, root)]
        assert "Resolved" not in latest_text(w, root)
    with_rooms(body)


@test
def a_redaction_sent_in_another_room_keeps_the_claim():
    def body(w):
        root = the_failure(w)
        eyes = w.hs.react(w.alice, w.rooms["alerts"], root, EYES)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @alice:localhost\n"), "alice's claim")
        attempt("a redaction in #ops naming alice's 👀 in #alerts",
                lambda: w.hs.redact(w.alice, w.rooms["ops"], eyes))
        handled(w, "ops")
        handled(w, "alerts")
        time.sleep(1)
        assert len(edits(w, root)) == 1, [e["content"]["m.new_content"]["body"][:40] for e in edits(w, root)]
        assert latest_text(w, root).startswith(EYES + " Claimed by @alice:localhost\n"), latest_text(w, root)[:80]
    with_rooms(body)


@test
def carol_cannot_redact_alices_claim_and_alice_can():
    def body(w):
        root = the_failure(w)
        room = w.rooms["alerts"]
        eyes = w.hs.react(w.alice, room, root, EYES)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @alice:localhost\n"), "alice's claim")
        status = attempt("carol (power 0) redacting alice's 👀", lambda: w.hs.redact(w.carol, room, eyes))
        assert status == 403, "Synapse let a member at power 0 redact another's reaction: %s" % status
        handled(w, "alerts")
        assert len(edits(w, root)) == 1 and latest_text(w, root).startswith(EYES + " Claimed by @alice:localhost\n")
        w.hs.redact(w.alice, room, eyes)
        wait_text(w, root, lambda t: t.startswith("Unclaimed\n"), "alice's claim taken back by alice")
    with_rooms(body)


@test
def a_moderator_redacting_a_claim_takes_it_back():
    """bob (50, the room's redact level) removes carol's 👀: it is gone from the room for
    every client and for a rebuild, so the claim goes too."""
    def body(w):
        root = the_failure(w)
        room = w.rooms["alerts"]
        eyes = w.hs.react(w.carol, room, root, EYES)
        wait_text(w, root, lambda t: t.startswith(EYES + " Claimed by @carol:localhost\n"), "carol's claim")
        w.hs.redact(w.bob, room, eyes)
        wait_text(w, root, lambda t: t.startswith("Unclaimed\n"), "carol's claim removed by a moderator")
        assert w.hs.relations(w.alice, room, root, "m.annotation") == [], "Synapse still shows the reaction"
    with_rooms(body)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
