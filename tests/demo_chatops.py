"""demo_chatops: the chatops room in one scripted week, with the real bridge, a real
mosquitto and the fake homeserver on a test clock; writes the room as docs/examples/.

    tests/demo --chatops                 # or: python3 tests/demo_chatops.py [--out DIR] [--quiet]

The story (Tue 6 to Mon 12 Jan 2026, alice then bob on call, dave the fallback):
1. a periodic job fails in the night: the failure mentions the on-call (alice);
2. bob reacts 👀: the bridge edits the message to "Claimed by @bob";
3. it fails again the next two nights: follow-ups in the first one's thread, the first
   message counts them ("Failed 3 times since");
4. another failure nobody claims: after escalate_after (1h) the on-call is pinged in its
   thread, after fallback_after (1h more) the fallback;
5. commands and their replies: help, oncall, claims, status, mute, and one by a member
   without the power level (refused); the end of the mute is announced;
6. the job succeeds: "Recovered" in the first thread, the first message shows the final state;
7. Monday 09:00: the on-call handover is announced.

The rendered room (docs/examples/chatops-room.html) and its transcript (chatops-room.txt)
are normalised: event ids are numbered in room order and the real-time parts of the status
reply are replaced, so the files only change when the bridge's behaviour does
(tests/test_docs_examples.py checks that)."""

import argparse
import calendar
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PAYLOADS, ROOT, Bridge, World, wait_for  # noqa: E402

ROOM = "!alerts:localhost"
BOT, ALICE, BOB = "@zuul-bot:localhost", "@alice:localhost", "@bob:localhost"
CAROL, DAVE = "@carol:localhost", "@dave:localhost"
CLAIM, RESOLVE = "\U0001F440", "\u2705"

# The room: alice and dave moderate (power 100), bob may use commands (50), carol is new (0).
HS_CONFIG = {
    "users": [{"user_id": u, "tokens": [t]} for u, t in
              ((BOT, "bridge-token"), (ALICE, "alice-token"), (BOB, "bob-token"),
               (CAROL, "carol-token"), (DAVE, "dave-token"))],
    "rooms": [{"room_id": ROOM, "aliases": ["#alerts:localhost"], "name": "Zuul alerts",
               "join_rule": "public", "creator": ALICE,
               "members": {ALICE: "join", BOB: "join", CAROL: "join", DAVE: "join", BOT: "join"},
               "power_levels": {"users": {ALICE: 100, DAVE: 100, BOB: 50, BOT: 50}}}],
}

ROUTES = """
  # Failures of the periodic pipelines go to the alerts room.
  { name = "periodic"; room = "#alerts:localhost";
    match: { pipelines = ["periodic-*"]; actions = ["failure"]; }; }
"""

CHATOPS = """
chatops: {
  command_power_level = 50;
  threads = true;
  escalate_after = "1h";
  fallback = ["@dave:localhost"];
  # The room topic (an m.room.topic state event) would take an event id of the story and show
  # as a state line; tests/test_topic.py is where it is shown.
  topic = false;
  oncall: { members = ["@alice:localhost", "@bob:localhost"]; shift = "7d";
            handover = "Mon 09:00"; timezone = "UTC"; start = "2026-01-05"; };
};
"""


def at(day, hour, minute=0):
    """Unix time of January `day` 2026, hour:minute UTC."""
    return calendar.timegm((2026, 1, day, hour, minute, 0, 0, 0, 0))


def periodic(buildset, night, project="SovereignCloudStack/standards", job="scs-compliance-check-gx-scs-main",
             action="failure"):
    """The periodic-daily report of project whose build of job ran from night (02:00) for ~1h;
    buildset names it (its uuids are derived from that name, so every run is the same)."""
    with open(os.path.join(PAYLOADS, "shared-periodic-failure.json")) as f:
        ev = json.load(f)
    uuid = lambda what: hashlib.sha256(("%s/%s" % (buildset, what)).encode()).hexdigest()[:32]  # noqa: E731
    commit = hashlib.sha1(("%s/commit" % buildset).encode()).hexdigest()
    ev["action"] = action
    ev["project"] = project
    ev["change_url"] = "https://github.com/%s/commit/%s" % (project, commit)
    ev["commit_id"] = commit
    ev["changes"][0].update(project=project, change_url=ev["change_url"], commit_id=commit)
    ev["uuid"], ev["zuul_event_id"] = uuid("item"), uuid("event")
    ev["message"] = "Build failed." if action == "failure" else "Build succeeded."
    ev["trigger_time"], ev["enqueue_time"], ev["timestamp"] = night, night + 0.4, night + 3590.0
    bs = ev["buildset"]
    bs["uuid"] = uuid("buildset")
    bs["result"] = "FAILURE" if action == "failure" else "SUCCESS"
    build = bs["builds"][0]
    build.update(job_name=job, start_time=night + 60.0, execute_time=night + 50.0, end_time=night + 3570.0,
                 result="FAILURE" if action == "failure" else "SUCCESS")
    build["change"].update(project=project, change_url=ev["change_url"], commit_id=commit)
    build["uuid"], build["job_uuid"] = uuid("build"), uuid("job")
    build["web_url"] = "https://zuul.example.org/t/scs/build/%s" % build["uuid"]
    build["log_url"] = "https://logs.example.org/periodic-daily/%s/%s/" % (job, build["uuid"][:7])
    return json.dumps(ev)


class Story(World):
    """The broker, the fake homeserver and the bridge, all on one clock file."""

    def __init__(self, start, say):
        self.narrate = say
        fd, self.clock = tempfile.mkstemp(prefix="zmb-demo-clock-")
        os.close(fd)
        self.set_time(start)
        super().__init__(ROUTES, hs_config=dict(HS_CONFIG, clock_file=self.clock), extra=CHATOPS,
                         start_bridge=False)
        try:
            self.bridge = Bridge(self.dir, self.config, env={"ZMB_TEST_CLOCK": self.clock})
            self.bridge.wait_log("joined room", 10)
            self.bridge.wait_log("MQTT connected", 15)  # subscribed: a report published now is not lost
            wait_for(lambda: any("/sync" in r["path"] for r in self.hs.requests()), 10, "the first /sync")
        except Exception:
            self.close()
            raise

    def close(self):
        super().close()
        if os.path.exists(self.clock):
            os.unlink(self.clock)

    def set_time(self, t):
        with open(self.clock + ".tmp", "w") as f:
            f.write("%d\n" % t)
        os.replace(self.clock + ".tmp", self.clock)
        self.now = t

    # ----- what people and Zuul do -----

    def say(self, sender, body, relates_to=None):
        content = {"msgtype": "m.text", "body": body}
        if relates_to:
            content["m.relates_to"] = relates_to
        return self.hs.inject(ROOM, sender, content)

    def react(self, sender, target, key):
        return self.hs.inject(ROOM, sender, {"m.relates_to": {"rel_type": "m.annotation", "event_id": target,
                                                              "key": key}}, kind="m.reaction")

    def publish(self, payload):
        self.broker.publish("zuul/scs/periodic-daily", payload=payload)

    # ----- what the room shows -----

    def events(self):
        return self.hs.call("GET", "/_fake/rooms/%s/events" % urllib.parse.quote(ROOM, safe=""))

    def bot_messages(self):
        return [e for e in self.events() if e["type"] == "m.room.message" and e["sender"] == BOT]

    def roots(self):
        """The bridge's top-level failure messages."""
        return [e for e in self.bot_messages() if "zmb.failure" in e["content"]
                and "m.relates_to" not in e["content"]]

    def in_thread(self, root):
        return [e for e in self.bot_messages()
                if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.thread"
                and e["content"]["m.relates_to"].get("event_id") == root]

    def edits(self, target):
        return [e for e in self.bot_messages()
                if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"
                and e["content"]["m.relates_to"].get("event_id") == target]

    def wait_edits(self, target, count, what):
        return wait_for(lambda: len(self.edits(target)) >= count and self.edits(target), 10, what)[-1]

    def reply_to(self, event_id):
        def find():
            for e in self.bot_messages():
                rel = e["content"].get("m.relates_to") or {}
                if (rel.get("m.in_reply_to") or {}).get("event_id") == event_id:
                    return e
            return None
        return wait_for(find, 10, "the reply to %s" % event_id)

    def command(self, sender, text):
        reply = self.reply_to(self.say(sender, text))
        self.narrate("  %s> %s\n  bot> %s" % (sender.split(":")[0], text,
                                              reply["content"]["body"].replace("\n", "\n       ")))
        return reply

    def room(self, what):
        with urllib.request.urlopen(self.hs.url + "/_fake/rooms/%s/%s" % (urllib.parse.quote(ROOM, safe=""),
                                                                         what)) as r:
            return r.read().decode()


def play(w):
    """The week, step by step; each step waits for the bridge's answer before the next."""
    say = w.narrate
    first_night = at(6, 2)

    say("Tue 6 Jan, 03:00: the nightly compliance check of SovereignCloudStack/standards fails")
    w.set_time(first_night + 3600)
    w.publish(periodic("night-1", first_night))
    root = wait_for(w.roots, 10, "the failure message")[0]["event_id"]

    say("03:20: bob claims it with 👀")
    w.set_time(first_night + 3600 + 20 * 60)
    w.react(BOB, root, CLAIM)
    w.wait_edits(root, 1, "the claim edit")
    w.set_time(first_night + 3600 + 25 * 60)
    w.say(BOB, "The gx-scs endpoint times out; I'm on it.",
          relates_to={"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                      "m.in_reply_to": {"event_id": root}})

    for n, day in ((2, 7), (3, 8)):
        say("%s %d Jan, 03:00: it fails again (night %d)" % ("Wed" if day == 7 else "Thu", day, n))
        w.set_time(at(day, 3))
        w.publish(periodic("night-%d" % n, at(day, 2)))
        wait_for(lambda: len(w.in_thread(root)) == n - 1, 10, "follow-up %d in the thread" % (n - 1))
        w.wait_edits(root, n, "the count on the first message")

    say("Thu 8 Jan, 03:10: osism/testbed's nightly deploy fails; nobody claims it")
    w.set_time(at(8, 3, 10))
    w.publish(periodic("testbed-1", at(8, 2), project="osism/testbed", job="testbed-deploy"))
    other = wait_for(lambda: len(w.roots()) == 2 and w.roots()[1], 10, "the second failure")["event_id"]
    say("04:10: still unclaimed after 1h: the on-call is pinged in its thread")
    w.set_time(at(8, 4, 10) + 5)
    wait_for(lambda: len(w.in_thread(other)) == 1, 10, "the escalation ping")
    say("05:10: still unclaimed 1h later: the fallback is pinged")
    w.set_time(at(8, 5, 10) + 5)
    wait_for(lambda: len(w.in_thread(other)) == 2, 10, "the fallback ping")

    say("Thu 8 Jan, 09:30: the team asks the bot")
    w.set_time(at(8, 9, 30))
    w.command(ALICE, "!zuul help")
    w.command(ALICE, "!zuul oncall")
    w.command(ALICE, "!zuul claims")
    w.command(ALICE, "!zuul status")
    w.command(ALICE, "!zuul mute osism/testbed 2h")
    w.command(CAROL, "!zuul claims")
    say("09:40: alice resolves the testbed failure with ✅")
    w.set_time(at(8, 9, 40))
    w.react(ALICE, other, RESOLVE)
    w.wait_edits(other, 1, "the resolve edit")
    say("10:15: a re-run of the testbed deploy fails while it is muted: counted, not posted")
    w.set_time(at(8, 10, 15))
    w.publish(periodic("testbed-rerun", at(8, 9, 15), project="osism/testbed", job="testbed-deploy"))
    w.bridge.wait_log("report muted")
    say("11:31: the mute has ended")
    w.set_time(at(8, 11, 31))
    wait_for(lambda: any("mute of" in e["content"].get("body", "") for e in w.bot_messages()), 10,
             "the end-of-mute notice")

    say("Fri 9 Jan, 03:00: the compliance check succeeds again")
    w.set_time(at(9, 3))
    w.publish(periodic("night-4", at(9, 2), action="success"))
    wait_for(lambda: any("Recovered" in e["content"]["body"] for e in w.in_thread(root)), 10,
             "the recovery in the thread")
    w.wait_edits(root, 4, "the final state on the first message")

    say("Mon 12 Jan, 09:00: bob takes over the on-call shift")
    w.set_time(at(12, 9) + 5)
    wait_for(lambda: any("handover" in e["content"].get("body", "") for e in w.bot_messages()), 10,
             "the handover notice")
    time.sleep(0.5)


def normalise(text, event_ids):
    """Stable text: event ids numbered in room order, real-time parts of the status reply replaced."""
    for n, eid in enumerate(event_ids, 1):
        placeholder = "$event%d" % n
        text = text.replace(eid, placeholder)
        text = text.replace(urllib.parse.quote(eid, safe=""), urllib.parse.quote(placeholder, safe=""))
    text = re.sub(r"last report \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, up [0-9a-z ]+\.",
                  "last report (real time), up (real time).", text)
    return text


def transcript(text):
    """The text view without the room's state events (joins, power levels, name)."""
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith("* "))


def run(out_dir, narrate=print):
    """Plays the story and writes chatops-room.html and chatops-room.txt to out_dir;
    returns the transcript."""
    w = Story(at(6, 2), narrate)
    try:
        try:
            play(w)
        except Exception:
            sys.stderr.write("the story stopped; the bridge's last log lines:\n%s\n"
                             % "\n".join(w.bridge.log().splitlines()[-20:]))
            raise
        ids = [e["event_id"] for e in w.events()]
        page = normalise(w.room("html"), ids)
        text = transcript(normalise(w.room("text"), ids))
    finally:
        w.close()
    os.makedirs(out_dir, exist_ok=True)
    for name, data in (("chatops-room.html", page), ("chatops-room.txt", text)):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
            f.write(data)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "examples"),
                    help="where to write chatops-room.html and .txt (default: docs/examples)")
    ap.add_argument("--quiet", action="store_true", help="do not print the story and the transcript")
    args = ap.parse_args()
    narrate = (lambda *a: None) if args.quiet else (lambda s: print(s, flush=True))
    narrate("starting mosquitto, the fake homeserver and zuul-matrix-bridge on a test clock ...")
    text = run(args.out, narrate)
    if not args.quiet:
        print("\n===== the room (%s), as text =====\n%s" % (ROOM, text.rstrip("\n")))
        print("===== the same room as a page: %s" % os.path.join(args.out, "chatops-room.html"))


if __name__ == "__main__":
    main()
