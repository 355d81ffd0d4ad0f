"""Integration tests of acting on Zuul from the room (issue #17): the real bridge, a real
mosquitto, the fake homeserver and tests/fake_zuul_admin.py, which answers as Zuul 14.3.0's
admin API does and checks every token with Zuul's own claim rules. Members: alice (100) and
bob (50) are listed for tenant scs, dave (0) is listed but lacks the power, carol (50) is not
listed; Zuul's authorization rule grants alice only."""

import json
import os
import shutil
import sqlite3
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Bridge, World, free_port, infra_failure_report, periodic_report, wait_for  # noqa: E402
from tap import run, test  # noqa: E402
from zuul_world import FakeZuul, private_key_copy  # noqa: E402

ALERTS = "!alerts:localhost"
ROUTES = '  { name = "all"; room = "#alerts:localhost"; }'
ALICE, BOB, CAROL, DAVE = "@alice:localhost", "@bob:localhost", "@carol:localhost", "@dave:localhost"
HS_CONFIG = {
    "users": [{"user_id": "@zuul-bot:localhost", "tokens": ["bridge-token"]}] +
             [{"user_id": u, "tokens": [u[1:].split(":")[0] + "-token"]} for u in (ALICE, BOB, CAROL, DAVE)],
    "rooms": [{"room_id": ALERTS, "aliases": ["#alerts:localhost"], "name": "Alerts", "join_rule": "public",
               "creator": ALICE,
               "members": {ALICE: "join", BOB: "join", CAROL: "join", DAVE: "join", "@zuul-bot:localhost": "join"},
               "power_levels": {"users": {ALICE: 100, BOB: 50, CAROL: 50, "@zuul-bot:localhost": 50}}}],
}


class ActionWorld(World):
    def __init__(self, zuul_admins=(ALICE,)):
        super().__init__(ROUTES, hs_config=HS_CONFIG, start_bridge=False, extra="")
        self.zuul = FakeZuul(self.dir, zuul_admins, issuer="zuul-matrix-bridge-it")
        key = private_key_copy(self.dir)
        self.metrics_port = free_port()
        self.config += """
chatops: { command_power_level = 50; };
metrics: { listen = "127.0.0.1"; port = %d; };
actions: {
  issuer = "zuul-matrix-bridge-it"; audience = "zuul"; private_key_file = "%s";
  tenants = ( { name = "scs"; api = "%s"; users = ["%s", "%s", "%s"]; } );
};
""" % (self.metrics_port, key, self.zuul.url, ALICE, BOB, DAVE)
        self.clock = os.path.join(self.dir, "clock")
        self.tick()
        self.bridge = Bridge(self.dir, self.config, env={"ZMB_TEST_CLOCK": self.clock})
        self.bridge.wait_log("joined room", 10)
        self.bridge.wait_log("MQTT connected", 15)  # subscribed: a report published now is not lost
        wait_for(lambda: any("/sync" in r["path"] for r in self.hs.requests()), 10, "the first /sync")

    def tick(self, ahead=0):
        """The bridge's clock: now (plus ahead seconds), as Zuul's tokens are checked by the real time."""
        with open(self.clock + ".tmp", "w") as f:
            f.write("%d\n" % (time.time() + ahead))
        os.replace(self.clock + ".tmp", self.clock)

    def restart(self):
        assert self.bridge.stop() == 0
        self.bridge.start()
        self.bridge.wait_log("joined room", 10, count=2)

    def close(self):
        self.zuul.stop()
        super().close()

    def failure(self, buildset="bs-actions-1"):
        """A periodic failure of SovereignCloudStack/standards; its message (the thread root)."""
        self.broker.publish("zuul/scs/periodic-daily", periodic_report(buildset))

        def root():
            for e in self.hs.events(ALERTS):
                if "zmb.failure" in e["content"]:
                    return e
        return wait_for(root, 15, "the failure message")

    def say(self, sender, body, thread=None, reply=None):
        content = {"msgtype": "m.text", "body": body}
        if thread:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": thread, "is_falling_back": True,
                                       "m.in_reply_to": {"event_id": thread}}
        elif reply:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply}}
        return self.hs.inject(ALERTS, sender, content)

    def react(self, sender, target, key):
        return self.hs.inject(ALERTS, sender, {"m.relates_to": {"rel_type": "m.annotation", "event_id": target,
                                                                 "key": key}}, kind="m.reaction")

    def notices(self):
        return [e for e in self.hs.events(ALERTS) if e["content"].get("msgtype") == "m.notice"]

    def answer(self, needle, timeout=15):
        return wait_for(lambda: next((e for e in self.notices() if needle in e["content"]["body"]), None), timeout,
                        "a notice saying %r" % needle)

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            return r.read().decode()


def with_world(fn, **kw):
    w = ActionWorld(**kw)
    try:
        fn(w)
    finally:
        w.close()


def in_thread(e, root):
    rel = e["content"].get("m.relates_to") or {}
    return rel.get("rel_type") == "m.thread" and rel.get("event_id") == root


@test
def an_allowed_users_recheck_reaches_zuul_with_a_token_naming_them_and_others_are_refused():
    def body(w):
        root = w.failure()
        item = root["content"]["zmb.failure"]["item"]
        assert item == {"tenant": "scs", "project": "SovereignCloudStack/standards", "pipeline": "periodic-daily",
                        "ref": "refs/heads/main"}, item
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=root["event_id"])
        ok = w.answer("accepted by Zuul")
        assert in_thread(ok, root["event_id"]), ok["content"]
        assert ok["content"]["body"] == ("@alice:localhost asked for the recheck of refs/heads/main of "
                                         "SovereignCloudStack/standards in periodic-daily (tenant scs): accepted by "
                                         "Zuul (queued: its report follows as usual)."), ok["content"]["body"]
        assert ok["content"]["m.mentions"] == {}, ok["content"]
        [req] = w.zuul.requests("enqueue")
        assert req["method"] == "POST" and req["status"] == 200, req
        assert req["path"] == "/api/tenant/scs/project/SovereignCloudStack/standards/enqueue", req["path"]
        assert req["body"] == {"pipeline": "periodic-daily", "ref": "refs/heads/main", "oldrev": None,
                               "newrev": None}, req["body"]
        claims = req["claims"]
        assert claims["sub"] == ALICE and claims["iss"] == "zuul-matrix-bridge-it" and claims["aud"] == "zuul", claims
        assert 0 < claims["exp"] - claims["iat"] <= 120 and claims["jti"], claims

        # carol is not listed, dave lacks the power (as a reply, not in the thread), bob is
        # listed here but Zuul's rule does not grant him
        w.say(CAROL, "!zuul recheck", thread=root["event_id"])
        w.answer("Not done: @carol:localhost is not one of the users who may act on tenant scs.")
        w.say(DAVE, "> <@zuul-bot:localhost> Failure\n\n!zuul recheck", reply=root["event_id"])
        no = w.answer("Not done: @dave:localhost has power level 0 in this room; acting on Zuul needs 50.")
        assert in_thread(no, root["event_id"]), "a reply to the failure is answered in its thread"
        w.tick()
        w.say(BOB, "!zuul recheck", thread=root["event_id"])
        w.answer("@bob:localhost asked for the recheck of refs/heads/main of SovereignCloudStack/standards in "
                 "periodic-daily (tenant scs): refused by Zuul: not allowed by the tenant's authorization rules (403).")
        reqs = w.zuul.requests("enqueue")
        assert [r["claims"]["sub"] for r in reqs] == [ALICE, BOB], reqs
        # not in a failure's thread: nothing to act on
        w.say(ALICE, "!zuul recheck")
        w.answer("Say \"!zuul recheck\" in a failure's thread, or as a reply to the failure")
        # Zuul unreachable (curl tries a dropped keep-alive connection once more), and a
        # refusal with Zuul's reason
        w.zuul.call("POST", "/_fake/faults", [{"path": "enqueue", "action": "drop", "count": 2},
                                              {"path": "enqueue", "action": "respond", "status": 400,
                                               "body": "<h2>400 Bad Request</h2><p>Unknown pipeline</p>"}])
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=root["event_id"])
        w.answer("Zuul could not be reached (")
        w.say(ALICE, "!zuul recheck", thread=root["event_id"])
        w.answer("refused by Zuul: Unknown pipeline.")
        log = w.bridge.log()
        assert ('msg="zuul action" action=recheck user=@alice:localhost tenant=scs '
                'project=SovereignCloudStack/standards pipeline=periodic-daily ref=refs/heads/main '
                'outcome=accepted status=200') in log, log
        assert 'action=recheck user=@carol:localhost tenant=scs' in log and 'outcome=denied' in log, log
        assert 'user=@bob:localhost' in log and 'outcome=refused status=403' in log, log
        assert 'outcome=unreachable' in log, log
        m = w.metrics()
        for line in ('zmb_zuul_actions_total{outcome="accepted"} 1', 'zmb_zuul_actions_total{outcome="refused"} 2',
                     'zmb_zuul_actions_total{outcome="unreachable"} 1', 'zmb_zuul_actions_total{outcome="denied"} 2'):
            assert line in m, "expected %r in the metrics:\n%s" % (line, m)
        # no token in the log: not one Zuul received, nor any part of one (the header part
        # is the same in every token the bridge makes)
        tokens = [r["token"] for r in w.zuul.requests() if r.get("token")]
        assert tokens, w.zuul.requests()
        for token in tokens:
            for part in token.split("."):
                assert part not in log, "a token (or a part of it) was logged"
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]   # a clean exit (and no leak, under ASan)
    with_world(body)


def sync_token(w):
    db = sqlite3.connect(os.path.join(w.state, "state.db"))
    try:
        row = db.execute("SELECT value FROM kv WHERE key = 'sync.next_batch'").fetchone()
        return row[0] if row else None
    finally:
        db.close()


def set_sync_token(w, token):
    db = sqlite3.connect(os.path.join(w.state, "state.db"))
    try:
        db.execute("UPDATE kv SET value = ? WHERE key = 'sync.next_batch'", (token,))
        db.commit()
    finally:
        db.close()


@test
def a_recheck_reaction_and_a_command_act_once_though_sync_replays_them_and_edits_never_act():
    def body(w):
        root = w.failure()
        before = wait_for(lambda: sync_token(w), 10, "a stored /sync position")
        w.tick()
        w.react(ALICE, root["event_id"], "\U0001F501")
        w.answer("accepted by Zuul")
        w.say(ALICE, "!zuul recheck", thread=root["event_id"])
        wait_for(lambda: len(w.zuul.requests("enqueue")) == 2, 15, "two rechecks")
        wait_for(lambda: len([e for e in w.notices() if "accepted by Zuul" in e["content"]["body"]]) == 2, 15,
                 "two answers")
        # an edit of a command, and an edit that makes a message a command: neither acts
        said = w.say(ALICE, "!zuul recheck please", thread=root["event_id"])
        w.answer("!zuul recheck takes no arguments")
        for target in (said, w.say(ALICE, "hello", thread=root["event_id"])):
            w.hs.inject(ALERTS, ALICE, {"msgtype": "m.text", "body": "* !zuul recheck",
                                        "m.new_content": {"msgtype": "m.text", "body": "!zuul recheck"},
                                        "m.relates_to": {"rel_type": "m.replace", "event_id": target}})
        # after a restart from the position before the reaction, /sync brings all of it again
        wait_for(lambda: sync_token(w) != before, 10, "a newer stored /sync position")
        assert w.bridge.stop() == 0
        set_sync_token(w, before)
        w.tick()
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=2)
        w.bridge.wait_log("an action's event was seen before; not acting again", 15, count=2)
        time.sleep(1.5)
        assert len(w.zuul.requests("enqueue")) == 2, w.zuul.requests("enqueue")
        answers = [e for e in w.notices() if "accepted by Zuul" in e["content"]["body"]]
        assert len(answers) == 2, answers
        assert w.bridge.log().count('msg="zuul action"') == 2, w.bridge.log()
        # state_dir lost: the failures come back from the room's history, its commands do not act
        assert w.bridge.stop() == 0
        shutil.rmtree(w.state)
        w.tick()
        w.bridge.start()
        w.bridge.wait_log("rebuilt failures and claims from the room's history", 20)
        wait_for(lambda: os.path.exists(os.path.join(w.state, "state.db")) and sync_token(w), 10,
                 "the first /sync position after the rebuild")
        time.sleep(1.5)
        assert len(w.zuul.requests("enqueue")) == 2, w.zuul.requests("enqueue")
        # ...and the failure read back still knows its item
        w.say(ALICE, "!zuul recheck", thread=root["event_id"])
        wait_for(lambda: len(w.zuul.requests("enqueue")) == 3, 15, "a recheck after the rebuild")
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
    with_world(body)


@test
def dequeue_and_autohold_wait_for_the_askers_confirmation_even_across_a_restart():
    def body(w):
        root = w.failure()
        rid = root["event_id"]
        w.say(ALICE, "!zuul dequeue", thread=rid)
        q = w.answer("@alice:localhost asks for the dequeue of refs/heads/main of SovereignCloudStack/standards in "
                     "periodic-daily (tenant scs). @alice:localhost, react \u2705 to this message within 5 minutes")
        assert in_thread(q, rid), q
        w.react(BOB, q["event_id"], "\u2705")          # not the asker: nothing
        w.restart()                                    # in the middle of the confirmation
        assert w.zuul.requests("dequeue") == []
        w.tick()
        w.react(ALICE, q["event_id"], "\u2705\ufe0f")
        w.answer("asked for the dequeue of refs/heads/main of SovereignCloudStack/standards in periodic-daily "
                 "(tenant scs): accepted by Zuul.")
        [req] = w.zuul.requests("dequeue")
        assert req["body"] == {"pipeline": "periodic-daily", "ref": "refs/heads/main"}, req["body"]
        assert req["claims"]["sub"] == ALICE, req["claims"]
        w.react(ALICE, q["event_id"], "\U0001F44D")   # confirmed already: nothing more
        time.sleep(1)
        assert len(w.zuul.requests("dequeue")) == 1

        # an autohold confirmed too late does nothing
        w.say(ALICE, "!zuul autohold scs-compliance-check-gx-scs-main 2 look at the node", thread=rid)
        q = w.answer("asks for the autohold of job scs-compliance-check-gx-scs-main (2 failed builds) for "
                     "refs/heads/main")
        w.tick(ahead=301)
        w.react(ALICE, q["event_id"], "\u2705")
        w.answer("its confirmation came after 5 minutes")
        assert w.zuul.requests("autohold") == []
        # in time, it holds exactly this ref
        w.tick()
        w.say(ALICE, "!zuul autohold scs-compliance-check-gx-scs-main 2 look at the node\nplease", thread=rid)
        q = wait_for(lambda: [e for e in w.notices() if "asks for the autohold" in e["content"]["body"]][1:], 15,
                     "the second question")[0]
        w.react(ALICE, q["event_id"], "\u2705")
        w.answer("(2 failed builds) for refs/heads/main of SovereignCloudStack/standards in periodic-daily "
                 "(tenant scs): accepted by Zuul.")
        [req] = w.zuul.requests("autohold")
        assert req["body"] == {"job": "scs-compliance-check-gx-scs-main", "count": 2, "change": None,
                               "ref": "refs/heads/main", "reason": "look at the node\nplease",
                               "node_hold_expiration": None}, req["body"]
        [hold] = w.zuul.holds()
        w.tick()
        w.say(ALICE, "!zuul autoholds", thread=rid)
        w.answer("Autoholds of tenant scs (1):\n- %s: github.com/SovereignCloudStack/standards "
                 "scs-compliance-check-gx-scs-main, ref refs/heads/main, held 0 of 2: look at the node\nplease"
                 % hold["id"])
        w.say(ALICE, "!zuul autohold delete %s" % hold["id"], thread=rid)
        w.answer("removal of autohold %s (tenant scs): accepted by Zuul." % hold["id"])
        assert w.zuul.holds() == []
        # carol may not even ask
        w.say(CAROL, "!zuul dequeue", thread=rid)
        w.answer("Not done: @carol:localhost is not one of the users")
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
    with_world(body)


def incident_of(w):
    """The incident message (the thread root of an infrastructure incident)."""
    return next((e for e in w.hs.events(ALERTS) if "m.relates_to" not in e["content"]
                 and e["content"].get("zmb.failure", {}).get("thread_key", "").startswith("incident|")), None)


@test
def a_recheck_of_an_incident_reenqueues_each_absorbed_item_once_at_most_twenty():
    """A broken node pool: 23 reports of 22 distinct items (one twice) become one incident.
    `recheck` in its thread re-enqueues the first 20 distinct items, one call and token each,
    and says in one summary what Zuul answered and how many were left out; a 🔁 on the
    incident is the same by its reactor; dequeue is pointed at a failure's thread."""
    def body(w):
        projects = ["org/gone"] + ["org/p%02d" % i for i in range(21)]
        w.zuul.call("POST", "/_fake/projects", {"tenant": "scs", "projects": projects[1:]})
        for i, p in enumerate(projects):
            w.broker.publish("zuul/scs/periodic-daily",
                             infra_failure_report("inc-%d" % i, p, ["deploy"]))
        w.broker.publish("zuul/scs/periodic-daily", infra_failure_report("inc-again", projects[1], ["deploy"]))
        w.bridge.wait_log("report absorbed into an infrastructure incident", 20, count=23)
        inc = wait_for(lambda: incident_of(w), 15, "the incident message")
        rid = inc["event_id"]
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=rid)
        summary = w.answer("of this incident: accepted by Zuul", 20)
        assert in_thread(summary, rid), summary["content"]
        lines = summary["content"]["body"].split("\n")
        assert lines[0] == ("@alice:localhost asked for the recheck of 20 items of this incident: accepted by "
                            "Zuul: 19 of 20."), lines[0]
        assert lines[1] == ("- refs/heads/main of org/gone in periodic-daily: refused by Zuul: Unknown "
                            "project"), lines[1]
        assert lines[2:21] == ["- refs/heads/main of %s in periodic-daily: accepted" % p for p in projects[1:20]], \
            lines[2:21]
        assert lines[21:] == ["2 more items were left out: one recheck takes at most 20."], lines[21:]
        reqs = w.zuul.requests("enqueue")
        assert sorted(r["path"] for r in reqs) == sorted(
            "/api/tenant/scs/project/%s/enqueue" % p for p in projects[:20]), [r["path"] for r in reqs]
        assert all(r["body"] == {"pipeline": "periodic-daily", "ref": "refs/heads/main", "oldrev": None,
                                 "newrev": None} for r in reqs), reqs
        assert [r["claims"]["sub"] for r in reqs] == [ALICE] * 20, [r["claims"] for r in reqs]
        assert len({r["claims"]["jti"] for r in reqs}) == 20, "one token per call"
        log = w.bridge.log()
        assert log.count('msg="zuul action" action=recheck user=@alice:localhost tenant=scs') == 20, log
        assert ('project=org/gone pipeline=periodic-daily ref=refs/heads/main outcome=refused status=404') in log, log

        # a 🔁 on the incident: the same, by bob, whom Zuul's rules refuse
        w.tick()
        w.react(BOB, rid, "\U0001F501")
        refused = w.answer("@bob:localhost asked for the recheck of 20 items of this incident: accepted by Zuul: "
                           "0 of 20.", 20)
        assert in_thread(refused, rid), refused["content"]
        assert "- refs/heads/main of org/p00 in periodic-daily: refused by Zuul: not allowed by the tenant's " \
               "authorization rules" in refused["content"]["body"], refused["content"]["body"]
        reqs = w.zuul.requests("enqueue")
        assert [r["claims"]["sub"] for r in reqs].count(BOB) == 20, [r["claims"]["sub"] for r in reqs]
        # carol is not listed: nothing is called, and it is said why
        w.say(CAROL, "!zuul recheck", thread=rid)
        no = w.answer("Not done: no item of this incident may be rechecked by @carol:localhost:")
        assert "- refs/heads/main of org/gone in periodic-daily (tenant scs): @carol:localhost is not one of the " \
               "users who may act on tenant scs" in no["content"]["body"], no["content"]["body"]
        # dequeue and autohold act on one failure
        w.say(ALICE, "!zuul dequeue", thread=rid)
        w.answer("A dequeue acts on one failure, not on an incident: say \"!zuul dequeue\" in that failure's thread.")
        time.sleep(1)
        assert len(w.zuul.requests("enqueue")) == 40 and w.zuul.requests("dequeue") == []
        # an incident of a tenant the bridge does not act on: skipped, and said why
        other = json.loads(infra_failure_report("inc-other", "org/elsewhere", ["deploy"]))
        other["tenant"] = "other"
        w.broker.publish("zuul/other/periodic-daily", json.dumps(other))
        inc2 = wait_for(lambda: [e for e in w.hs.events(ALERTS) if "m.relates_to" not in e["content"] and
                                 e["content"].get("zmb.failure", {}).get("thread_key", "").startswith(
                                     "incident|other-")], 15, "the other tenant's incident")[0]
        w.react(ALICE, inc2["event_id"], "\U0001F501")
        no = w.answer("Not done: no item of this incident may be rechecked by @alice:localhost:\n"
                      "- refs/heads/main of org/elsewhere in periodic-daily (tenant other): the bridge does not act on "
                      "tenant other (it is not in actions.tenants).")
        assert in_thread(no, inc2["event_id"]), no["content"]
        # a restart reads nothing again as new
        w.restart()
        time.sleep(1.5)
        assert len(w.zuul.requests("enqueue")) == 40
        assert 'action=recheck user=@alice:localhost outcome=denied reason="no item of this incident' in \
            w.bridge.log(), w.bridge.log()[-3000:]
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
    with_world(body)


def incident_item_report(buildset, project, action):
    """A periodic report of project's refs/heads/main with every build ended as the action
    says (success or failure): the next report of an incident's rechecked item."""
    ev = json.loads(infra_failure_report(buildset, project, ["deploy"], result=action.upper()))
    ev["action"] = action
    ev["buildset"]["result"] = action.upper()
    if "message" in ev:
        ev["message"] = "Build succeeded." if action == "success" else "Build failed."
    return ev


def group_notices(w):
    return [e for e in w.notices() if e["content"]["body"].startswith("The next report")
            and "of this incident's items" in e["content"]["body"].split("\n")[0]]


@test
def an_incident_recheck_links_its_items_next_reports_together():
    """The next reports of an incident's rechecked items are said in one notice in its thread:
    when every item reported, or ten minutes after the first waiting line, saying how many are
    still to come; never one notice per item."""
    def body(w):
        projects = ["org/g%02d" % i for i in range(3)]
        w.zuul.call("POST", "/_fake/projects", {"tenant": "scs", "projects": projects})
        for i, p in enumerate(projects):
            w.broker.publish("zuul/scs/periodic-daily", infra_failure_report("grp-%d" % i, p, ["deploy"]))
        w.bridge.wait_log("report absorbed into an infrastructure incident", 20, count=3)
        rid = wait_for(lambda: incident_of(w), 15, "the incident message")["event_id"]
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=rid)
        w.answer("asked for the recheck of 3 items of this incident: accepted by Zuul: 3 of 3.", 20)
        for i, p in enumerate(projects[:2]):
            w.broker.publish("zuul/scs/periodic-daily", json.dumps(incident_item_report("grp-next-%d" % i, p, "success")))
        w.bridge.wait_log("grp-next-1", 10)
        time.sleep(1.5)
        assert group_notices(w) == [] and follow_notices(w) == [], "the third item has not reported yet"
        w.tick(ahead=11 * 60)
        [first] = wait_for(lambda: group_notices(w), 15, "the notice of the first two")
        assert in_thread(first, rid), first["content"]
        lines = first["content"]["body"].split("\n")
        assert lines[0] == ("The next reports of the recheck of this incident's items (asked for by "
                            "@alice:localhost):"), lines[0]
        # each line links its report: the room's message (the recovery is said in the room)
        for line, p in zip(sorted(lines[1:3]), projects[:2]):
            prefix = "- refs/heads/main of %s in periodic-daily: success, posted here: https://matrix.to/#/" \
                     "%%21alerts%%3Alocalhost/" % p
            assert line.startswith(prefix), (line, prefix)
            linked = urllib.parse.unquote(line[len(prefix):])
            assert [e for e in w.hs.events(ALERTS) if e["event_id"] == linked and e["sender"] == "@zuul-bot:localhost"], line
        assert lines[3:] == ["1 more to come."], lines
        w.broker.publish("zuul/scs/periodic-daily", json.dumps(incident_item_report("grp-next-2", projects[2], "success")))
        wait_for(lambda: len(group_notices(w)) == 2, 15, "the notice of the last one")
        last = group_notices(w)[1]["content"]["body"]
        assert last.startswith("The next report of the recheck of this incident's items (asked for by "
                               "@alice:localhost):\n- refs/heads/main of org/g02 in periodic-daily: success, "), last
        assert len(last.split("\n")) == 2, last
        time.sleep(1)
        grouped = {e["event_id"] for e in group_notices(w)}
        per_item = [e for e in follow_notices(w) if e["event_id"] not in grouped]
        assert len(group_notices(w)) == 2 and per_item == [], [e["content"]["body"] for e in w.notices()]
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
    with_world(body)


def follow_notices(w):
    return [e for e in w.notices() if e["content"]["body"].startswith("The next report of the recheck of ")]


@test
def after_an_accepted_recheck_the_thread_links_the_items_next_report_once_whatever_its_result():
    """Issue #17, item 4: the next report of a rechecked item is linked in the failure's
    thread: a failure (posted in the thread) by its message, a success (the room is spared
    it) by its build's page; a start report is not that report; a wait ends after a day."""
    def body(w):
        root = w.failure("bs-follow-1")
        rid = root["event_id"]
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=rid)
        w.answer("accepted by Zuul (queued")
        # it fails again: the repeat goes into the thread, and the thread links it
        w.broker.publish("zuul/scs/periodic-daily", periodic_report("bs-follow-2"))
        [note] = wait_for(lambda: follow_notices(w), 15, "the link to the next report")
        assert in_thread(note, rid), note["content"]
        prefix = ("The next report of the recheck of refs/heads/main of SovereignCloudStack/standards in "
                  "periodic-daily (asked for by @alice:localhost): failure, posted here: https://matrix.to/#/"
                  "%21alerts%3Alocalhost/")
        text = note["content"]["body"]
        assert text.startswith(prefix), text
        linked = urllib.parse.unquote(text[len(prefix):])
        [repeat] = [e for e in w.hs.events(ALERTS) if e["event_id"] == linked]
        assert in_thread(repeat, rid) and repeat["sender"] == "@zuul-bot:localhost", repeat
        assert "scs-compliance-check-gx-scs-main" in repeat["content"]["body"], repeat["content"]["body"]
        assert not repeat["content"]["body"].startswith("The next report"), "the link is to the report itself"
        # the item's reports after that are not linked again
        w.broker.publish("zuul/scs/periodic-daily", periodic_report("bs-follow-3"))
        w.bridge.wait_log("bs-follow-3", 10)
        time.sleep(1)
        assert len(follow_notices(w)) == 1, follow_notices(w)

        # 🔁, then its start and its success: the success is linked by its build's page
        w.tick()
        w.react(BOB, rid, "\U0001F501")   # Zuul refuses bob: nothing waits
        w.answer("@bob:localhost asked for the recheck of refs/heads/main of SovereignCloudStack/standards in "
                 "periodic-daily (tenant scs): refused by Zuul")
        w.react(ALICE, rid, "\U0001F501")
        wait_for(lambda: len([e for e in w.notices() if "@alice:localhost asked for the recheck" in
                              e["content"]["body"] and "accepted" in e["content"]["body"]]) == 2, 15,
                 "the second accepted recheck")
        w.broker.publish("zuul/scs/periodic-daily", periodic_report("bs-follow-4", action="start"))
        w.broker.publish("zuul/scs/periodic-daily", periodic_report("bs-follow-4", action="success"))
        wait_for(lambda: len(follow_notices(w)) == 2, 15, "the link to the success")
        text = follow_notices(w)[1]["content"]["body"]
        url = json.loads(periodic_report("bs-follow-4", action="success"))["buildset"]["builds"][0]["web_url"]
        assert text == ("The next report of the recheck of refs/heads/main of SovereignCloudStack/standards in "
                        "periodic-daily (asked for by @alice:localhost): success, not posted here (quiet), its "
                        "build: %s" % url), text
        assert in_thread(follow_notices(w)[1], rid)

        # a recheck whose report does not come within a day is no longer followed
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=rid)
        wait_for(lambda: len(w.zuul.requests("enqueue")) == 4, 15, "the fourth recheck")
        w.bridge.wait_log('msg="zuul action" action=recheck', 10, count=4)
        w.tick(ahead=25 * 3600)
        w.bridge.wait_log("a recheck's next report did not come within a day", 10)
        w.broker.publish("zuul/scs/periodic-daily", periodic_report("bs-follow-5"))
        w.bridge.wait_log("bs-follow-5", 10)
        time.sleep(1)
        assert len(follow_notices(w)) == 2, follow_notices(w)
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
    with_world(body)


@test
def a_stop_waits_five_seconds_for_a_zuul_call_and_one_that_cannot_finish_is_told_unknown_never_resent():
    """SIGTERM while Zuul is slow to answer: the call that answers within the grace is said
    and audited; one that does not is recorded as interrupted, the next start says in its
    thread that its outcome is unknown, and it is not sent again."""
    def body(w):
        root = w.failure("bs-stop-1")
        rid = root["event_id"]
        # Zuul answers after 2 s: the stop waits for it
        w.zuul.call("POST", "/_fake/faults", {"path": "enqueue", "action": "delay", "seconds": 2})
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=rid)
        wait_for(lambda: w.zuul.requests("enqueue"), 15, "the recheck reaching Zuul")
        began = time.time()
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
        assert 1 <= time.time() - began < 4.5, "the stop waited %.1fs" % (time.time() - began)
        [req] = w.zuul.requests("enqueue")
        assert req["status"] == 200 and req["claims"]["sub"] == ALICE, req
        log = w.bridge.log()
        assert 'action=recheck user=@alice:localhost tenant=scs' in log and 'outcome=accepted status=200' in log, log
        assert "interrupted" not in log, log
        # the answer was queued before the stop: the next start says it
        w.tick()
        w.bridge.start()
        ok = w.answer("@alice:localhost asked for the recheck of refs/heads/main of SovereignCloudStack/standards in "
                      "periodic-daily (tenant scs): accepted by Zuul")
        assert in_thread(ok, rid), ok["content"]

        # Zuul does not answer within 5 s: interrupted, told after the restart, not resent
        w.bridge.wait_log("joined room", 10, count=2)
        w.zuul.call("POST", "/_fake/faults", {"path": "enqueue", "action": "hang", "seconds": 9})
        w.tick()
        w.say(ALICE, "!zuul recheck", thread=rid)
        wait_for(lambda: len(w.zuul.requests("enqueue")) == 2, 15, "the second recheck reaching Zuul")
        began = time.time()
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
        assert 4.5 <= time.time() - began < 7.5, "the stop waited %.1fs" % (time.time() - began)
        log = w.bridge.log()
        assert "zuul action interrupted by the stop; its outcome is unknown" in log, log[-3000:]
        assert log.count('msg="zuul action" action=recheck') == 1, "no outcome is audited for it"
        w.tick()
        w.bridge.start()
        unknown = w.answer("@alice:localhost asked for the recheck of refs/heads/main of "
                           "SovereignCloudStack/standards in periodic-daily (tenant scs): the bridge stopped before "
                           "Zuul answered, so its outcome is unknown: check Zuul's status page. It is not sent again.")
        assert in_thread(unknown, rid), unknown["content"]
        w.bridge.wait_log("joined room", 10, count=3)
        time.sleep(2)
        assert len(w.zuul.requests("enqueue")) == 2, w.zuul.requests("enqueue")
        assert len([e for e in w.notices() if "outcome is unknown" in e["content"]["body"]]) == 1
        # and a third start says it no more
        assert w.bridge.stop() == 0
        w.bridge.start()
        w.bridge.wait_log("joined room", 10, count=4)
        time.sleep(1.5)
        assert len([e for e in w.notices() if "outcome is unknown" in e["content"]["body"]]) == 1
        assert len(w.zuul.requests("enqueue")) == 2
        assert w.bridge.stop() == 0, w.bridge.log()[-3000:]
    with_world(body)


if __name__ == "__main__":
    run()
