"""demo: runs the bridge between a real mosquitto and a real Synapse (installed from PyPI
into a cached virtual environment by tests/synapse.py), publishes sample reports the way
Zuul's MQTT reporter does, and prints what reached each room, read back from Synapse.
The rooms are also written as HTML pages (as a chat client would show them) to .demo/.
Without PyPI it falls back to the project's fake homeserver, and says so.

    tests/demo [--fake] [--no-wait] [--out DIR]

In a terminal the demo then waits for Enter, so the rooms can be watched live from any
Matrix client (it prints the homeserver URL, a user and its password)."""

import argparse
import os
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import room_view  # noqa: E402
import synapse  # noqa: E402
from harness import ROOT, SynapseWorld, World, wait_for  # noqa: E402

ROUTES = """
  # Every failure of any pipeline, to the alerts room.
  { name = "failures"; room = "#alerts:localhost";
    match: { actions = ["failure", "merge-conflict", "config-error"]; }; },
  # Periodic pipelines, whatever the result, to the ops room.
  { name = "periodic"; room = "#ops:localhost";
    match: { pipelines = ["periodic-*"]; }; }
"""
ROOMS = ("alerts", "ops")

SAMPLES = [
    "shared-modern-start.json",
    "shared-modern-failure.json",
    "shared-legacy-success.json",
    "shared-periodic-failure.json",
    "action-merge-conflict.json",
    "action-config-error.json",
    "post-branch-push.json",
]


def publish_samples(w):
    published = 0
    for name in SAMPLES:
        if not os.path.exists(os.path.join(ROOT, "tests", "data", "payloads", name)):
            continue
        ev = w.broker.publish_sample(name)
        published += 1
        print("published %-32s action=%-15s pipeline=%s" % (name, ev.get("action"), ev.get("pipeline")))
    wait_for(lambda: w.bridge.log().count("report queued") + w.bridge.log().count("matches no route") >= published,
             20, "every sample to be handled")
    return w.bridge.log().count("report queued")


def synapse_rooms(w, queued):
    """(alias, room id, events) of each room, read back from Synapse as alice sees them."""
    def bot_posts():
        return sum(len(w.bot_messages(name)) for name in ROOMS)
    wait_for(lambda: bot_posts() >= queued, 30, "every post to reach Synapse")
    for name in ROOMS:
        events = [e for e in w.hs.messages(w.alice, w.rooms[name]) if "state_key" not in e]
        yield "#%s:localhost" % name, w.rooms[name], events


def room_topic(w, room_id):
    """The room's topic as alice reads it from Synapse, once the bridge has set it."""
    path = "/_matrix/client/v3/rooms/%s/state/m.room.topic" % urllib.request.quote(room_id, safe="")

    def read():
        try:
            return w.hs.call("GET", path, token=w.alice.token).get("topic")
        except synapse.MatrixError:
            return None
    return wait_for(read, 10, "the room's topic")


def fake_rooms(w, queued):
    wait_for(lambda: len(w.hs.sends()) >= queued, 20, "every post")
    time.sleep(0.3)
    for name in ROOMS:
        room = "!%s:localhost" % name
        events = w.hs.call("GET", "/_fake/rooms/%s/events" % urllib.request.quote(room, safe=""))
        events = events.get("events", events) if isinstance(events, dict) else events
        yield "#%s:localhost" % name, room, [e for e in events if "state_key" not in e]


def main():
    ap = argparse.ArgumentParser(description="the bridge end to end, with sample reports")
    ap.add_argument("--fake", action="store_true", help="use the fake homeserver even when Synapse can be installed")
    ap.add_argument("--no-wait", action="store_true", help="stop at once instead of waiting for Enter")
    ap.add_argument("--out", default=os.path.join(ROOT, ".demo"), help="where the room pages go (default .demo/)")
    args = ap.parse_args()
    out_dir = args.out
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)

    real, why = (False, "--fake was given") if args.fake else synapse.available()
    if real:
        print("starting mosquitto, Synapse %s and zuul-matrix-bridge ..." % synapse.SYNAPSE_VERSION)
        w = SynapseWorld(ROUTES, rooms=ROOMS, start_bridge=False)
        for room_id in w.rooms.values():  # a moderator's level: the bridge keeps the room's topic
            w.hs.set_power(w.alice, room_id, w.bot.user_id, 50)
        w.start_bridge()
    else:
        print("Synapse cannot be used (%s):\nusing the project's fake homeserver instead.\n" % why.splitlines()[0])
        print("starting mosquitto, the fake homeserver and zuul-matrix-bridge ...")
        w = World(ROUTES)
    try:
        print("bridge config: %s\n" % w.bridge.conf)
        queued = publish_samples(w)
        rooms = synapse_rooms(w, queued) if real else fake_rooms(w, queued)
        for alias, room_id, events in rooms:
            path = os.path.join(out_dir, alias.split(":")[0].lstrip("#") + ".html")
            with open(path, "w") as f:
                f.write(room_view.render_html("%s (%s)" % (alias, room_id), events))
            print("\n===== %s (%s), as text =====" % (alias, room_id))
            if real:
                print("topic: %s\n" % room_topic(w, room_id).replace("\n", "\n       "))
            print(room_view.render_text(events).strip())
            print("===== the same room as a page: %s" % path)
        print("\nbridge log (last lines):")
        print("\n".join(w.bridge.log().strip().splitlines()[-6:]))
        if real:
            print("\nWatch the rooms live from any Matrix client (Element, nheko, ...):")
            print("  homeserver: %s" % w.hs.url)
            print("  user:       %s   password: %s   (bob: %s)" % (w.alice.localpart, w.alice.password, w.bob.password))
            print("  rooms:      %s" % ", ".join("#%s:localhost" % n for n in ROOMS))
            print("  publish more: mosquitto_pub -h 127.0.0.1 -p %d -q 1 -t zuul/scs/check -f REPORT.json"
                  % w.broker.port)
            if sys.stdin.isatty() and not args.no_wait:
                input("Press Enter to stop everything. ")
    finally:
        w.close()


main()
