"""The room topic the bridge keeps (issue #17 item 6), on a real Synapse: read back as a member
reads it, the topic of a route room names the on-call and the workflow; in a room version 12
room the bot created it sets the topic without being in `users`; where the bot's power is below
the topic's level Synapse keeps the members' topic and the bridge says so once and runs on."""

import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import SynapseWorld, run_in, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402

ROUTES = """  { name = "alerts"; room = "#alerts:localhost"; },
  { name = "quiet"; room = "#quiet:localhost"; },
  { name = "owned"; room = "#owned:localhost"; }"""
CHATOPS = """
chatops: {
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
};
"""
ONCALL_LINE = re.compile(r"On call: @(alice|bob):localhost until Mon \d\d \w\w\w 09:00 UTC, then @(alice|bob):localhost$")
WORKFLOW = "Workflow: \U0001F440 claim \u00b7 \u2705 resolve \u00b7 !zuul help"
PEOPLES = "The quiet room: only the nightly jobs. Ask alice."
WARNING = "the bot may not set this room's topic"


def topic_path(room_id):
    return "/_matrix/client/v3/rooms/%s/state/m.room.topic" % urllib.parse.quote(room_id, safe="")


def topic(w, name):
    """The room's m.room.topic content as alice's client reads it, or None."""
    try:
        return w.hs.call("GET", topic_path(w.rooms[name]), token=w.alice.token)
    except synapse.MatrixError as e:
        if e.status == 404:
            return None
        raise


def text(w, name):
    t = topic(w, name)
    return t.get("topic") if t else None


def setup(w):
    """alerts: the bot at 50 (the topic's level); quiet: the bot at 0 and a topic the members
    wrote; owned: a version 12 room the bot created, where the topic needs 150."""
    w.hs.set_power(w.alice, w.rooms["alerts"], w.bot.user_id, 50)
    w.hs.call("PUT", topic_path(w.rooms["quiet"]), {"topic": PEOPLES}, token=w.alice.token)
    owned = w.hs.call("POST", "/_matrix/client/v3/createRoom",
                      {"room_alias_name": "owned", "preset": "private_chat", "room_version": "12",
                       "invite": [w.alice.user_id],
                       "power_level_content_override": {"users": {w.alice.user_id: 100},
                                                        "events": {"m.room.topic": 150}}},
                      token=w.bot.token)["room_id"]
    w.hs.join(w.alice, owned)
    w.rooms["owned"] = owned


@test
def the_topic_names_the_on_call_and_the_workflow_where_the_bot_may_set_it():
    def body(w):
        setup(w)
        w.start_bridge()
        for name in ("alerts", "owned"):
            t = wait_for(lambda: text(w, name), 30, "the topic of #%s" % name)
            lines = t.split("\n")
            assert len(lines) == 2 and ONCALL_LINE.match(lines[0]) and lines[1] == WORKFLOW, (name, t)
            content = topic(w, name)
            assert content["m.topic"] == {"m.text": [{"mimetype": "text/plain", "body": t}]}, content
        pl = w.hs.call("GET", "/_matrix/client/v3/rooms/%s/state/m.room.power_levels" %
                       urllib.parse.quote(w.rooms["owned"], safe=""), token=w.alice.token)
        assert w.bot.user_id not in pl.get("users", {}), "a version 12 creator is not listed: %r" % pl
        # quiet: the bot has 0 where the topic needs 50. Synapse keeps the members' topic,
        # the bridge says so once, names the level, and goes on.
        w.bridge.wait_log(WARNING, 30)
        lines = [ln for ln in w.bridge.log().splitlines() if WARNING in ln]
        assert len(lines) == 1 and "room=#quiet:localhost" in lines[0] and "level_needed=50" in lines[0] \
            and "power level 0" in lines[0], lines
        time.sleep(3)
        assert text(w, "quiet") == PEOPLES, text(w, "quiet")
        assert w.bridge.log().count(WARNING) == 1, [ln for ln in w.bridge.log().splitlines() if WARNING in ln]
        assert w.bridge.running()
        # The bridge's one topic per room is all it sent: an unchanged text is not sent again.
        mine = [e for e in w.hs.messages(w.alice, w.rooms["alerts"]) if e["type"] == "m.room.topic"
                and e["sender"] == w.bot.user_id]
        assert len(mine) == 1, mine
        # The room's admin gives the bot the level: the topic follows, the members' text first.
        w.hs.set_power(w.alice, w.rooms["quiet"], w.bot.user_id, 50)
        wait_for(lambda: text(w, "quiet") == PEOPLES + "\n\n" + text(w, "alerts"), 30,
                 "the bridge's lines after the members' topic in #quiet")
    run_in(SynapseWorld(ROUTES, rooms=("alerts", "quiet"), extra=CHATOPS, start_bridge=False), body)


if __name__ == "__main__":
    if not synapse.available():
        skip_all("Synapse is not installed and cannot be (offline)")
    run()
