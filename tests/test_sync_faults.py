"""Integration tests of /sync against a misbehaving homeserver: the real bridge, a real
mosquitto and the fake homeserver, whose fault rules make it answer long polls at once with
nothing (a server or proxy ignoring timeout) or answer more than the bridge takes (over the
8 MiB cap). What must hold: the homeserver is not hammered, the bridge says what happens
(log, /metrics), and claims made afterwards are still seen."""

import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PAYLOADS, World, free_port, wait_for  # noqa: E402
from tap import run, test  # noqa: E402

ALERTS = "!alerts:localhost"
ROUTES = '  { name = "all"; room = "#alerts:localhost"; }'
EYES = "\U0001F440"   # the default claim reaction


class SyncWorld(World):
    """A bridge with /metrics, its /sync long poll out, and one failure posted to claim."""

    def __init__(self):
        self.metrics_port = free_port()
        super().__init__(ROUTES, extra='chatops: {};\nmetrics: { listen = "127.0.0.1"; port = %d; };' % self.metrics_port)
        wait_for(lambda: self.sync_requests(), 10, "the first /sync")
        self.broker.publish("zuul/scs/check", payload=failure("sync-faults"))
        self.root = wait_for(lambda: self.posted(), 10, "the failure message")[0]["event_id"]
        # The long poll now out was sent before any fault: a chat line answers it, so the
        # next poll is the first the fault applies to.
        wait_for(lambda: self.sync_requests()[-1]["query"].get("since"), 10, "a long poll")

    def sync_requests(self):
        return [r for r in self.hs.requests() if r["path"].endswith("/sync")]

    def posted(self):
        return [e for e in self.hs.events(ALERTS) if "Build failed" in e["content"].get("body", "")
                and not (e["content"].get("m.relates_to") or {}).get("rel_type")]

    def say(self, text):
        return self.hs.inject(ALERTS, "@alice:localhost", {"msgtype": "m.text", "body": text})

    def claim(self, sender="@alice:localhost"):
        return self.hs.inject(ALERTS, sender, {"m.relates_to": {"rel_type": "m.annotation",
                                                                 "event_id": self.root, "key": EYES}},
                              kind="m.reaction")

    def claimed_by(self, who):
        def edited():
            for e in self.hs.events(ALERTS):
                rel = e["content"].get("m.relates_to") or {}
                new = e["content"].get("m.new_content") or {}
                if rel.get("rel_type") == "m.replace" and rel.get("event_id") == self.root \
                        and ("Claimed by " + who) in new.get("body", ""):
                    return e
            return None
        return wait_for(edited, 15, "the edit saying the failure is claimed by " + who)

    def metric(self, name):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
        raise AssertionError("no metric %s on /metrics" % name)


def failure(buildset):
    with open(os.path.join(PAYLOADS, "shared-modern-failure.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    return json.dumps(ev)


def with_world(fn):
    w = SyncWorld()
    try:
        fn(w)
    finally:
        w.close()


@test
def a_homeserver_answering_long_polls_at_once_with_nothing_is_not_hammered():
    def body(w):
        w.hs.faults({"path": "/sync$", "action": "no_wait", "count": -1})
        w.say("wakes the poll sent before the fault")
        wait_for(lambda: any(r.get("fault") == "no_wait" for r in w.sync_requests()), 10, "a poll answered at once")
        before = len(w.sync_requests())
        time.sleep(5)
        polls = len(w.sync_requests()) - before
        # Without the back-off this was hundreds; the bound is generous on purpose.
        assert polls < 20, "%d /sync requests in 5 s against a homeserver that does not hold polls" % polls
        assert polls >= 1, "the bridge stopped polling"
        log = w.bridge.log()
        assert "sync: the homeserver answers long polls at once with nothing" in log, log
        assert w.metric("zmb_sync_empty_backoffs_total") >= 1

        # The homeserver holds polls again: a claim is seen, and the polls are long again.
        w.hs.clear_faults()
        w.claim()
        w.claimed_by("@alice:localhost")
        w.bridge.wait_log("sync: the homeserver holds long polls again; polling normally", 10)
        backoffs = w.metric("zmb_sync_empty_backoffs_total")
        before = len(w.sync_requests())
        time.sleep(3)
        after = w.sync_requests()
        assert len(after) - before <= 2, "polls not held again: %d in 3 s" % (len(after) - before)
        assert after[-1]["query"].get("timeout") == "30000" and after[-1]["query"].get("since"), after[-1]["query"]
        assert w.metric("zmb_sync_empty_backoffs_total") == backoffs
    with_world(body)


@test
def an_oversized_sync_answer_is_logged_counted_and_skipped_with_a_new_token():
    def body(w):
        assert w.metric("zmb_sync_oversized_total") == 0
        # The next poll with the usual timeline limit (50) gets a 9 MiB answer.
        w.hs.faults({"path": "/sync$", "action": "pad", "query": '"limit":50[,}]', "count": 1})
        w.say("wakes the poll sent before the fault")
        wait_for(lambda: w.sync_requests()[-1].get("fault") == "pad", 10, "the padded poll")
        w.say("answered in 9 MiB")
        w.bridge.wait_log("sync: a /sync answer was over the size cap; asking again for fewer events", 10)
        log = w.bridge.log()
        assert log.count("over the size cap") == 1, "one line per oversized answer:\n" + log
        said = [ln for ln in log.splitlines() if "over the size cap" in ln][0]
        assert "cap_bytes=8388608" in said and "new_timeline_limit=5" in said, said
        assert w.metric("zmb_sync_oversized_total") == 1

        # A claim after the oversize is seen, and the polls that follow carry new tokens.
        w.claim("@bob:localhost")
        w.claimed_by("@bob:localhost")
        reqs = w.sync_requests()
        i = max(n for n, r in enumerate(reqs) if r.get("fault") == "pad")
        big, smaller, later = reqs[i], reqs[i + 1], reqs[i + 2:]
        assert smaller["query"]["since"] == big["query"]["since"], (smaller["query"], big["query"])
        assert '"limit":5}' in smaller["query"]["filter"], smaller["query"]["filter"]
        assert later and all(r["query"].get("since") not in (None, big["query"]["since"]) for r in later), \
            [r["query"].get("since") for r in later]
        assert '"limit":50}' in later[-1]["query"]["filter"], later[-1]["query"]["filter"]
        assert w.metric("zmb_sync_oversized_total") == 1, "the oversize must not come back"
    with_world(body)


run()
