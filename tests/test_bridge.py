"""Integration tests of the live bridge: the real binary between a real mosquitto and the
project's fake homeserver. Each test builds its own world (broker, homeserver, bridge)."""

import json
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PAYLOADS, World, free_port, payload_variant, run_in, wait_for  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from tap import run, test  # noqa: E402

ALERTS = "!alerts:localhost"
OPS = "!ops:localhost"

TWO_ROUTES = """
  { name = "failures"; room = "#alerts:localhost";
    match: { actions = ["failure", "merge-conflict"]; }; },
  { name = "periodic"; room = "#ops:localhost";
    match: { pipelines = ["periodic-*"]; }; }
"""
ALL = '  { name = "all"; room = "#alerts:localhost"; }'


def bodies(events):
    return [e["content"]["body"] for e in events]


def with_world(routes, fn, **kw):
    run_in(World(routes, **kw), fn)


def variant(name, **changes):
    """A copy of a corpus payload with some top-level and buildset fields changed, as JSON."""
    return json.dumps(payload_variant(name, **changes))


@test
def reports_go_to_the_rooms_of_their_routes_and_filtered_ones_nowhere():
    def body(w):
        w.broker.publish_sample("shared-modern-failure.json")   # check failure -> alerts only
        w.broker.publish_sample("shared-periodic-failure.json")  # periodic failure -> both
        w.broker.publish_sample("shared-modern-start.json")      # check start -> nowhere
        w.broker.publish_sample("shared-legacy-success.json")    # check success -> nowhere
        wait_for(lambda: len(w.hs.events(ALERTS)) >= 2 and len(w.hs.events(OPS)) >= 1, 15, "3 posts")
        w.bridge.wait_log("report matches no route", count=2)
        time.sleep(0.5)
        alerts, ops = w.hs.events(ALERTS), w.hs.events(OPS)
        assert len(alerts) == 2 and len(ops) == 1, (bodies(alerts), bodies(ops))
        assert "tox-py311" in alerts[0]["content"]["body"]
        assert "scs-compliance-check-gx-scs-main" in alerts[1]["content"]["body"]
        assert "scs-compliance-check-gx-scs-main" in ops[0]["content"]["body"]
        for e in alerts + ops:
            c = e["content"]
            assert c["msgtype"] == "m.notice" and c["format"] == "org.matrix.custom.html", c
            assert c["m.mentions"] == {}, "a report pings nobody, not even by keyword"
    with_world(TWO_ROUTES, body)


@test
def garbage_payloads_are_logged_and_ignored_while_the_bridge_keeps_running():
    def body(w):
        w.broker.publish("zuul/scs/check", payload="not json at all \x1b[31m")
        w.broker.publish("zuul/scs/check", payload='["an", "array"]')
        w.broker.publish("zuul/scs/check", payload='{"no": "action"}')
        w.broker.publish("zuul/scs/check", path=os.path.join(PAYLOADS, "invalid", os.listdir(os.path.join(PAYLOADS, "invalid"))[0]))
        w.bridge.wait_log("payload is not a Zuul report", count=4)
        assert w.bridge.running()
        log = w.bridge.log()
        assert "topic=zuul/scs/check" in log and "preview=" in log, log[-2000:]
        assert "\x1b" not in log, "a control byte from the payload reached the log"
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "the valid report after the garbage")
    with_world(ALL, body)


@test
def the_same_report_published_twice_is_posted_once():
    def body(w):
        for _ in range(3):
            w.broker.publish_sample("shared-modern-failure.json")
        w.bridge.wait_log("duplicate report ignored", count=2)
        time.sleep(0.5)
        assert len(w.hs.events(ALERTS)) == 1, bodies(w.hs.events(ALERTS))
    with_world(ALL, body)


@test
def after_the_dedup_retention_a_replay_is_sent_again_and_the_homeserver_keeps_it_single():
    """dedup_retention bounds what the bridge remembers (its state does not grow forever);
    a report replayed after that is queued again under the same txnId, which the
    homeserver recognises, so the room still shows it once. (A success: an open failure
    is remembered as long as it is open, with its thread.)"""
    def body(w):
        w.broker.publish_sample("action-success-gerrit.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "the first post")
        w.broker.publish_sample("action-success-gerrit.json")
        w.bridge.wait_log("duplicate report ignored")      # within the retention
        assert w.bridge.stop() == 0
        time.sleep(1.5)                                   # older than dedup_retention now
        w.bridge.start()                                  # the first prune runs 1 s after start
        w.bridge.wait_log("retention: old reports forgotten", 10)
        w.broker.publish_sample("action-success-gerrit.json")
        wait_for(lambda: len(w.hs.sends()) == 2, 10, "the replay sent again")
        sends = w.hs.sends()
        assert sends[0]["path"] == sends[1]["path"], [s["path"] for s in sends]
        assert [s["status"] for s in sends] == [200, 200], sends
        time.sleep(0.3)
        assert len(w.hs.events(ALERTS)) == 1, bodies(w.hs.events(ALERTS))
    with_world(ALL, body, extra='dedup_retention = "1s";')


@test
def server_errors_are_retried_until_the_report_is_posted_once():
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "status": 502, "count": 2, "errcode": "M_UNKNOWN"}])
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 20, "the post after two 502s")
        sends = w.hs.sends()
        assert [s["status"] for s in sends] == [502, 502, 200], [s["status"] for s in sends]
        txns = {s["path"].rsplit("/", 1)[1] for s in sends}
        assert len(txns) == 1, "each retry must reuse the transaction id: %s" % txns
        assert w.bridge.log().count("delivery failed; will retry") >= 1
    with_world(ALL, body)


@test
def rate_limiting_pauses_sends_for_retry_after_ms():
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "status": 429, "count": 1,
                      "errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500}])
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 20, "the post after a 429")
        sends = w.hs.sends()
        assert [s["status"] for s in sends] == [429, 200], sends
        gap = sends[1]["time"] - sends[0]["time"]
        assert gap >= 1.4, "the retry came %.2fs after the 429, before retry_after_ms" % gap
        assert "rate limited" in w.bridge.log()
    with_world(ALL, body)


@test
def a_resource_limit_403_is_waited_out_and_the_report_posted_once():
    """Synapse over its monthly active users (or disabled by its admin) answers 403
    M_RESOURCE_LIMIT_EXCEEDED; the spec says back off: the report is fine, the server is not."""
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "status": 403, "count": 2, "body": {
            "errcode": "M_RESOURCE_LIMIT_EXCEEDED", "error": "Monthly Active User Limit Exceeded",
            "admin_contact": "mailto:admin@example.org", "limit_type": "monthly_active_user"}}])
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 20, "the post once the limit is lifted")
        sends = w.hs.sends()
        assert [s["status"] for s in sends] == [403, 403, 200], [s["status"] for s in sends]
        assert len({s["path"].rsplit("/", 1)[1] for s in sends}) == 1, "one transaction id"
        log = w.bridge.log()
        assert "moved to dead letters" not in log, log[-2000:]
        assert "admin_contact mailto:admin@example.org" in log, log[-2000:]
        p = w.bridge.cli("dead-letters", "-c", w.bridge.conf)
        assert "0 dead letters" in p.stdout.decode(), p.stdout
    with_world(ALL, body)


@test
def a_permanent_error_dead_letters_the_report_and_the_cli_can_retry_it():
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "status": 403, "count": 1,
                      "errcode": "M_FORBIDDEN", "error": "You are not allowed to send"}])
        w.broker.publish_sample("shared-modern-failure.json")
        w.bridge.wait_log("moved to dead letters", 10)
        w.broker.publish_sample("shared-periodic-failure.json")  # the next one still flows
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "the next report")
        # the CLI reads what is committed: the move is logged when it joins the batch
        def listing_with_one():
            p = w.bridge.cli("dead-letters", "-c", w.bridge.conf)
            return p.returncode == 0 and "1 dead letter" in p.stdout.decode() and p.stdout.decode()
        listing = wait_for(listing_with_one, 10, "the dead letter, committed")
        assert "M_FORBIDDEN" in listing, listing
        dead_id = listing.split("\t", 1)[0]
        p = w.bridge.cli("dead-letters", "-c", w.bridge.conf, "--retry", dead_id)
        assert p.returncode == 0, p
        w.bridge.signal(signal.SIGHUP)
        wait_for(lambda: len(w.hs.events(ALERTS)) == 2, 10, "the retried dead letter")
        wait_for(lambda: "0 dead letters" in w.bridge.cli("dead-letters", "-c", w.bridge.conf).stdout.decode(), 10,
                 "no dead letter left")
    with_world(ALL, body)


def reports(w):
    """The reports in the room: what routes posted, without the room side's edits."""
    return [e for e in w.hs.events(ALERTS) if e["unsigned"].get("transaction_id", "").startswith("zmb.all.")]


@test
def kill_9_while_sends_hang_then_restart_delivers_every_report_exactly_once():
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "action": "hang", "seconds": 30, "count": -1}])
        for i in range(5):
            w.broker.publish("zuul/scs/check", payload=variant("shared-modern-failure.json", buildset_uuid="b%030d" % i))
        w.bridge.wait_log("report queued", count=5)
        wait_for(lambda: len(w.hs.sends()) >= 1, 10, "a hanging send")
        w.bridge.kill9()
        w.hs.clear_faults()
        w.bridge.start()
        wait_for(lambda: len(reports(w)) >= 5, 20, "5 posts after the restart")
        time.sleep(1)
        evs = reports(w)
        txns = [e["unsigned"].get("transaction_id") for e in evs]
        assert len(evs) == 5, "expected each report once, got %d: %s" % (len(evs), txns)
        assert len(set(txns)) == 5, txns
    with_world(ALL, body)


@test
def reports_published_while_the_bridge_is_down_arrive_after_it_restarts():
    def body(w):
        assert w.bridge.stop() == 0
        w.broker.publish_sample("shared-modern-failure.json")
        w.broker.publish_sample("shared-periodic-failure.json")
        w.bridge.start()
        wait_for(lambda: len(w.hs.events(ALERTS)) == 2, 15, "both reports published while away")
    with_world(ALL, body)


@test
def reports_published_during_a_broker_restart_before_the_bridge_reconnects_arrive():
    """The persistent session (clean_session = false) outlives the broker restart: what Zuul
    publishes before the bridge is back is queued for it and delivered once."""
    def body(w):
        w.broker.stop()                       # mosquitto saves its sessions as it stops
        w.bridge.wait_log("MQTT disconnected", 10)
        w.broker.start()
        w.broker.publish_sample("shared-modern-failure.json")
        w.bridge.wait_log("MQTT connected", 20, count=2)
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "the report queued during the restart")
        time.sleep(0.5)
        assert len(w.hs.events(ALERTS)) == 1, "delivered once"
    with_world(ALL, body)


@test
def a_broker_restart_is_survived_and_later_reports_arrive():
    def body(w):
        w.broker.stop()
        w.bridge.wait_log("MQTT disconnected", 10)
        w.broker.start()
        w.bridge.wait_log("MQTT connected", 20, count=2)
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "the report after the broker restart")
        assert w.bridge.log().count("MQTT disconnected") == 1, "a state change must be logged once"
    with_world(ALL, body)


@test
def sigterm_exits_0_within_5_seconds_even_with_a_hanging_homeserver():
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "action": "hang", "seconds": 30, "count": -1}])
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.sends()) >= 1, 10, "a hanging send")
        start = time.monotonic()
        w.bridge.signal(signal.SIGTERM)
        code = w.bridge.proc.wait(10)
        took = time.monotonic() - start
        assert code == 0, "exit status %d" % code
        assert took < 5, "took %.1fs to stop" % took
        assert "outbox=1" in w.bridge.log(), w.bridge.log()[-500:]
    with_world(ALL, body)


@test
def sighup_reloads_routes_and_a_bad_config_keeps_the_old_one():
    def body(w):
        bad = w.config.replace('name = "all";', 'name = "all"; bogus = 1;')
        w.bridge.write_config(bad)
        w.bridge.signal(signal.SIGHUP)
        w.bridge.wait_log("reload failed", 10)
        assert "bogus" in w.bridge.log()
        w.broker.publish_sample("shared-modern-start.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "a post under the old config")
        only_failures = w.config.replace('{ name = "all"; room = "#alerts:localhost"; }',
                                         '{ name = "all"; room = "#alerts:localhost"; match: { actions = ["failure"]; }; }')
        w.bridge.write_config(only_failures)
        w.bridge.signal(signal.SIGHUP)
        w.bridge.wait_log("configuration reloaded", 10)
        w.broker.publish_sample("shared-legacy-success.json")   # filtered now
        w.broker.publish_sample("shared-modern-failure.json")   # still posted
        wait_for(lambda: len(w.hs.events(ALERTS)) == 2, 10, "the failure after the reload")
        time.sleep(0.5)
        assert len(w.hs.events(ALERTS)) == 2
    with_world(ALL, body)


@test
def every_log_line_about_a_report_names_its_buildset_and_route():
    def body(w):
        w.hs.faults([{"method": "PUT", "path": "/send/", "status": 502, "count": 1}])
        w.broker.publish_sample("shared-modern-failure.json")
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 15, "the post")
        w.bridge.wait_log("duplicate report ignored")
        about_reports = [ln for ln in w.bridge.log().splitlines()
                         if any(m in ln for m in ("report queued", "duplicate report", "delivered",
                                                  "delivery failed", "retry scheduled", "dead letters"))]
        assert len(about_reports) >= 4, about_reports
        for ln in about_reports:
            assert "key=5e7a9c1b3d5f47a9b1c3e5a7c9e1b3d5" in ln and "route=all" in ln, ln
    with_world(ALL, body)


@test
def the_access_token_never_appears_in_the_log():
    def body(w):
        w.broker.publish_sample("shared-modern-failure.json")
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "a post")
        w.bridge.stop()
        assert "bridge-token" not in w.bridge.log()
    with_world(ALL, body)



@test
def systemd_hears_ready_watchdog_reloading_and_stopping():
    sock_dir = tempfile.mkdtemp(prefix="zmb-notify-")
    path = os.path.join(sock_dir, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    got = []

    def drain():
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except socket.timeout:
                return got

    w = World(ALL, start_bridge=False)
    try:
        from harness import Bridge
        w.bridge = Bridge(w.dir, w.config, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        wait_for(lambda: any("READY=1" in m for m in drain()), 10, "READY=1")
        log = w.bridge.log()
        assert "joined room" in log and "MQTT connected" in log, "READY=1 came before MQTT and the rooms"
        assert any(m.startswith("STATUS=mqtt connected, rooms 1/1 joined") for m in got), got
        wait_for(lambda: any("WATCHDOG=1" in m for m in drain()), 5, "WATCHDOG=1")
        got.clear()
        w.bridge.signal(signal.SIGHUP)
        wait_for(lambda: any("READY=1" in m for m in drain()), 10, "READY=1 after the reload")
        first = [m for m in got if "RELOADING=1" in m or "READY=1" in m]
        assert "RELOADING=1" in first[0] and "READY=1" in first[-1], got
        got.clear()
        w.bridge.signal(signal.SIGTERM)
        assert w.bridge.proc.wait(10) == 0
        assert any("STOPPING=1" in m for m in drain()), got
    finally:
        w.close()
        sock.close()



def scrape(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric %s in:\n%s" % (name, text))


@test
def metrics_and_health_are_served_by_the_running_bridge():
    port = free_port()
    w = World(ALL, extra='metrics: { listen = "127.0.0.1"; port = %d; };' % port)
    try:
        w.broker.publish_sample("shared-modern-failure.json")
        w.broker.publish_sample("shared-modern-failure.json")   # a duplicate
        w.broker.publish("zuul/x", payload="garbage")           # rejected
        wait_for(lambda: len(w.hs.events(ALERTS)) == 1, 10, "the post")
        w.bridge.wait_log("duplicate report ignored")
        w.bridge.wait_log("payload is not a Zuul report")
        status, ctype, text = scrape(port, "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
        assert metric(text, "zmb_reports_received_total") == 3, text
        assert metric(text, "zmb_reports_rejected_total") == 1
        assert metric(text, 'zmb_route_reports_routed_total{route="all"}') == 1
        assert metric(text, 'zmb_route_reports_deduplicated_total{route="all"}') == 1
        wait_for(lambda: metric(scrape(port, "/metrics")[2], 'zmb_route_reports_posted_total{route="all"}') == 1,
                 5, "posted to reach 1")
        text = scrape(port, "/metrics")[2]
        assert metric(text, "zmb_delivery_latency_seconds_count") == 1
        assert metric(text, "zmb_mqtt_connected") == 1 and metric(text, "zmb_matrix_reachable") == 1
        assert metric(text, "zmb_outbox_depth") == 0
        # the database's size at start and at each retention step: within the file and its WAL
        db = os.path.join(w.state, "state.db")
        on_disk = os.path.getsize(db) + (os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0)
        assert 4096 <= metric(text, "zmb_state_db_bytes") <= on_disk, (metric(text, "zmb_state_db_bytes"), on_disk)
        status, ctype, body = scrape(port, "/healthz")
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["mqtt"] == "connected", body
        w.broker.stop()
        w.bridge.wait_log("MQTT disconnected")
        status, _, body = scrape(port, "/healthz")
        assert status == 503 and json.loads(body)["mqtt"] == "disconnected", (status, body)
    finally:
        w.close()


run()
