"""demo: runs the bridge between a real mosquitto and the fake homeserver, publishes
sample reports the way Zuul's MQTT reporter does, and prints what reached each room.
The rooms are also written as HTML pages (as a chat client would show them) to .demo/."""

import os
import shutil
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, World, wait_for  # noqa: E402

ROUTES = """
  # Every failure of any pipeline, to the alerts room.
  { name = "failures"; room = "#alerts:localhost";
    match: { actions = ["failure", "merge-conflict", "config-error"]; }; },
  # Periodic pipelines, whatever the result, to the ops room.
  { name = "periodic"; room = "#ops:localhost";
    match: { pipelines = ["periodic-*"]; }; }
"""

SAMPLES = [
    "shared-modern-start.json",
    "shared-modern-failure.json",
    "shared-legacy-success.json",
    "shared-periodic-failure.json",
    "action-merge-conflict.json",
    "action-config-error.json",
    "post-branch-push.json",
]


def main():
    out_dir = os.path.join(ROOT, ".demo")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    print("starting mosquitto, the fake homeserver and zuul-matrix-bridge ...")
    w = World(ROUTES)
    try:
        print("bridge config: %s\n" % w.bridge.conf)
        published = 0
        for name in SAMPLES:
            if not os.path.exists(os.path.join(ROOT, "tests", "data", "payloads", name)):
                continue
            ev = w.broker.publish_sample(name)
            published += 1
            print("published %-32s action=%-15s pipeline=%s" % (name, ev.get("action"), ev.get("pipeline")))
        wait_for(lambda: w.bridge.log().count("report queued") + w.bridge.log().count("matches no route") >= published,
                 15, "every sample to be handled")
        wait_for(lambda: len(w.hs.sends()) >= w.bridge.log().count("report queued"), 15, "every post")
        time.sleep(0.3)
        for room, alias in (("!alerts:localhost", "#alerts"), ("!ops:localhost", "#ops")):
            quoted = urllib.request.quote(room, safe="")
            with urllib.request.urlopen(w.hs.url + "/_fake/rooms/%s/text" % quoted) as r:
                text = r.read().decode()
            with urllib.request.urlopen(w.hs.url + "/_fake/rooms/%s/html" % quoted) as r:
                page = r.read()
            path = os.path.join(out_dir, alias.lstrip("#") + ".html")
            with open(path, "wb") as f:
                f.write(page)
            print("\n===== %s (%s), as text =====\n%s" % (alias, room, text.strip()))
            print("===== the same room as a page: %s" % path)
        print("\nbridge log (last lines):")
        print("\n".join(w.bridge.log().strip().splitlines()[-8:]))
    finally:
        w.close()


main()
