"""Integration tests of the room topic the bridge keeps (issue #17 item 6): the real bridge
against the fake homeserver, the topic read back through the client API as a member reads it.
Time is the test clock (ZMB_TEST_CLOCK), so a handover passes when the test says."""

import calendar
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Bridge, World, wait_for  # noqa: E402
from tap import run, test  # noqa: E402

ALERTS = "!alerts:localhost"
ALICE, BOB, BOT = "@alice:localhost", "@bob:localhost", "@zuul-bot:localhost"
ROUTES = '  { name = "all"; room = "#alerts:localhost"; }'
ONCALL = """
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
"""
CHATOPS = "chatops: {%s};" % ONCALL
# Monday 2026-01-12 09:00 UTC is the first handover after the start: alice -> bob.
HANDOVER = calendar.timegm((2026, 1, 12, 9, 0, 0, 0, 0, 0))
WORKFLOW = "Workflow: \U0001F440 claim \u00b7 \u2705 resolve \u00b7 !zuul help"
ALICE_ON_CALL = "On call: @alice:localhost until Mon 12 Jan 09:00 UTC, then @bob:localhost"
BOB_ON_CALL = "On call: @bob:localhost until Mon 19 Jan 09:00 UTC, then @alice:localhost"
TOPIC_PATH = "/_matrix/client/v3/rooms/%s/state/m.room.topic"


class TopicWorld(World):
    """Broker, fake homeserver and bridge, the bridge started after `before(world)` (to set the
    room up as people left it) with the test clock at `now`."""

    def __init__(self, now, chatops=CHATOPS, hs_config=None, before=None):
        super().__init__(ROUTES, hs_config=hs_config, extra=chatops, start_bridge=False)
        self.clock = os.path.join(self.dir, "clock")
        self.set_time(now)
        if before:
            before(self)
        self.bridge = Bridge(self.dir, self.config, env={"ZMB_TEST_CLOCK": self.clock})
        self.bridge.wait_log("joined room", 10)
        self.bridge.wait_log("MQTT connected", 15)  # subscribed: a report published now is not lost

    def set_time(self, t):
        with open(self.clock + ".tmp", "w") as f:
            f.write("%d\n" % t)
        os.replace(self.clock + ".tmp", self.clock)

    def client(self, method, path, token="alice-token", body=None):
        """A member's client call: (status, JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.hs.url + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + token,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def topic(self, room=ALERTS):
        """The room's topic content as a member reads it, or None without one."""
        status, body = self.client("GET", TOPIC_PATH % urllib.request.quote(room, safe=""))
        return body if status == 200 else None

    def topic_text(self, room=ALERTS):
        t = self.topic(room)
        return t.get("topic") if t else None

    def set_topic(self, text, room=ALERTS, token="alice-token"):
        status, body = self.client("PUT", TOPIC_PATH % urllib.request.quote(room, safe=""), token,
                                   {"topic": text})
        assert status == 200, (status, body)

    def wait_topic(self, text, room=ALERTS, timeout=10):
        return wait_for(lambda: self.topic_text(room) == text, timeout,
                        "the topic %r (it is %r)" % (text, self.topic_text(room)))


def with_world(fn, now=HANDOVER - 3600, **kw):
    w = TopicWorld(now, **kw)
    try:
        fn(w)
    finally:
        w.close()


def bot_topic_requests(w):
    """The bridge's own requests about m.room.topic (people's clients use other tokens)."""
    return [r for r in w.hs.requests() if r.get("token") == "bridge-token" and "m.room.topic" in r["decoded_path"]]


def bot_put_count(w):
    return len([r for r in bot_topic_requests(w) if r["method"] == "PUT"])


def rooms_config(room_version="10", creator=ALICE, users=None, events=None):
    """The default users and one #alerts room with the given power levels."""
    pl = {"users": users if users is not None else {ALICE: 100, BOT: 50}}
    if events:
        pl["events"] = events
    return {
        "users": [{"user_id": BOT, "tokens": ["bridge-token"]},
                  {"user_id": ALICE, "tokens": ["alice-token"]},
                  {"user_id": BOB, "tokens": ["bob-token"]}],
        "rooms": [{"room_id": ALERTS, "aliases": ["#alerts:localhost"], "name": "Alerts",
                   "join_rule": "public", "creator": creator, "room_version": room_version,
                   "members": {ALICE: "join", BOB: "join", BOT: "join"}, "power_levels": pl}],
    }


@test
def the_topic_names_the_on_call_and_the_workflow_and_follows_the_handover():
    def body(w):
        w.wait_topic(ALICE_ON_CALL + "\n" + WORKFLOW)
        content = w.topic()
        # Spec v1.15: the plain topic again as the text/plain representation of m.topic.
        assert content["m.topic"] == {"m.text": [{"mimetype": "text/plain", "body": content["topic"]}]}, content
        assert bot_put_count(w) == 1, w.hs.requests()
        w.set_time(HANDOVER + 5)
        w.wait_topic(BOB_ON_CALL + "\n" + WORKFLOW)
        time.sleep(0.5)
        assert bot_put_count(w) == 2, "one PUT per change, got %d" % bot_put_count(w)
    with_world(body)


@test
def an_unchanged_topic_is_not_sent_again_after_a_restart_and_a_reload_adds_the_note():
    def body(w):
        w.wait_topic(ALICE_ON_CALL + "\n" + WORKFLOW)
        assert w.bridge.stop() == 0
        before = len(w.hs.requests())
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        # /sync brings the room's state (its topic) at start: give the bridge time to act,
        # were it going to.
        wait_for(lambda: sum(1 for r in w.hs.requests()[before:] if "/sync" in r["path"]) >= 2, 10,
                 "the restarted bridge's /sync")
        time.sleep(1)
        assert bot_put_count(w) == 1, "an unchanged topic must not be sent again: %d PUTs" % bot_put_count(w)
        w.bridge.write_config(w.config.replace("chatops: {", 'chatops: { topic_note = "Runbook: https://wiki/ci";'))
        w.bridge.signal(signal.SIGHUP)
        w.wait_topic(ALICE_ON_CALL + "\n" + WORKFLOW + "\nRunbook: https://wiki/ci")
        assert bot_put_count(w) == 2
    with_world(body)


@test
def a_topic_people_wrote_stays_first():
    def body(w):
        w.wait_topic("Nightly CI of the team. Be kind.\n\n" + ALICE_ON_CALL + "\n" + WORKFLOW)
        # Someone replaces the whole topic: theirs stays, the bridge's lines come back after it.
        w.set_topic("Release week!")
        w.wait_topic("Release week!\n\n" + ALICE_ON_CALL + "\n" + WORKFLOW)
        # A handover replaces only the bridge's own lines.
        w.set_time(HANDOVER + 5)
        w.wait_topic("Release week!\n\n" + BOB_ON_CALL + "\n" + WORKFLOW)
        assert bot_put_count(w) == 3, bot_put_count(w)
    with_world(body, before=lambda w: w.set_topic("Nightly CI of the team. Be kind."))


@test
def with_topic_false_the_bridge_sends_no_topic():
    def body(w):
        wait_for(lambda: sum(1 for r in w.hs.requests() if "/sync" in r["path"]) >= 2, 10, "/sync")
        time.sleep(0.5)                              # the first look at the rotation only remembers the time
        w.set_time(HANDOVER + 5)                     # a handover would change the topic
        w.bridge.wait_log("on-call handover announced")
        time.sleep(1)
        assert bot_topic_requests(w) == [], bot_topic_requests(w)
        assert w.topic_text() == "Alerts topic by people", w.topic_text()
    with_world(body, chatops="chatops: { topic = false; %s };" % ONCALL,
               before=lambda w: w.set_topic("Alerts topic by people"))


@test
def turning_the_topic_off_takes_the_bridges_lines_out_once_and_keeps_peoples_text():
    def body(w):
        w.wait_topic("Nightly CI of the team.\n\n" + ALICE_ON_CALL + "\n" + WORKFLOW)
        w.bridge.write_config(w.config.replace("chatops: {", "chatops: { topic = false;"))
        w.bridge.signal(signal.SIGHUP)
        w.wait_topic("Nightly CI of the team.")
        w.bridge.wait_log("the bridge's lines were taken out of the room's topic")
        puts = bot_put_count(w)
        assert puts == 2, puts
        # Off, it stays out: not at a handover, not after a restart, not when people edit.
        w.set_time(HANDOVER + 5)
        w.bridge.wait_log("on-call handover announced")
        w.set_topic("Release week!")
        assert w.bridge.stop() == 0
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        time.sleep(1.5)
        assert bot_put_count(w) == puts, bot_topic_requests(w)
        assert w.topic_text() == "Release week!", w.topic_text()
    with_world(body, before=lambda w: w.set_topic("Nightly CI of the team."))


@test
def a_bot_without_the_power_warns_once_and_tries_again_when_the_levels_change():
    warning = "the bot may not set this room's topic"

    def body(w):
        w.bridge.wait_log(warning)
        line = [ln for ln in w.bridge.log().splitlines() if warning in ln][0]
        assert "room=#alerts:localhost" in line and "level_needed=75" in line and "power level 50" in line, line
        w.set_time(HANDOVER + 5)                     # a handover: still no power, still quiet
        w.bridge.wait_log("on-call handover announced")
        time.sleep(1)
        assert bot_put_count(w) == 0, "no PUT without the power: %d" % bot_put_count(w)
        assert w.bridge.log().count(warning) == 1, w.bridge.log()
        assert w.topic_text() is None
        # An admin gives the bot the level: the topic follows without a restart.
        status, pl = w.client("GET", "/_matrix/client/v3/rooms/%s/state/m.room.power_levels" %
                              urllib.request.quote(ALERTS, safe=""))
        pl["users"][BOT] = 75
        status, _ = w.client("PUT", "/_matrix/client/v3/rooms/%s/state/m.room.power_levels" %
                             urllib.request.quote(ALERTS, safe=""), body=pl)
        assert status == 200
        w.wait_topic(BOB_ON_CALL + "\n" + WORKFLOW)
        assert w.bridge.running()
    with_world(body, hs_config=rooms_config(users={ALICE: 100, BOT: 50}, events={"m.room.topic": 75}))


@test
def a_refusal_by_the_homeserver_is_said_once_and_not_retried():
    warning = "the bot may not set this room's topic"

    def before(w):
        w.hs.faults({"path": "state/m.room.topic", "method": "PUT", "count": -1, "action": "respond",
                     "status": 403, "errcode": "M_FORBIDDEN", "error": "You don't have permission"})

    def body(w):
        w.bridge.wait_log(warning)
        line = [ln for ln in w.bridge.log().splitlines() if warning in ln][0]
        assert "M_FORBIDDEN" in line and "level_needed=50" in line, line
        w.set_time(HANDOVER + 5)
        w.bridge.wait_log("on-call handover announced")
        time.sleep(1)
        assert bot_put_count(w) == 1, "a refused topic is not asked again: %d PUTs" % bot_put_count(w)
        assert w.bridge.log().count(warning) == 1, w.bridge.log()
    with_world(body, before=before)


@test
def another_refusal_is_said_once_and_tried_again_when_people_change_the_topic():
    refused = "the homeserver refused the room's topic"

    def before(w):
        w.hs.faults({"path": "state/m.room.topic", "method": "PUT", "count": 1, "action": "respond",
                     "status": 400, "errcode": "M_BAD_JSON", "error": "no"})

    def body(w):
        w.bridge.wait_log(refused)
        time.sleep(0.5)
        assert bot_put_count(w) == 1 and w.bridge.log().count(refused) == 1, w.bridge.log()
        w.set_topic("Fresh start")
        w.wait_topic("Fresh start\n\n" + ALICE_ON_CALL + "\n" + WORKFLOW)
        assert bot_put_count(w) == 2
    with_world(body, before=before)


@test
def the_creator_of_a_version_12_room_sets_the_topic_without_a_level_in_users():
    def body(w):
        w.wait_topic(ALICE_ON_CALL + "\n" + WORKFLOW)
        _, pl = w.client("GET", "/_matrix/client/v3/rooms/%s/state/m.room.power_levels" %
                         urllib.request.quote(ALERTS, safe=""))
        assert BOT not in pl["users"], pl
        assert "may not set" not in w.bridge.log()
    with_world(body, hs_config=rooms_config(room_version="12", creator=BOT, users={ALICE: 150},
                                            events={"m.room.topic": 100}))


if __name__ == "__main__":
    run()
