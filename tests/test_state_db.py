#!/usr/bin/env python3
"""The state database against the real binary, with real files: a damaged state.db (emptied,
an index page overwritten) stops the bridge with exit status 3 and a line that names the file
and the fault, reset-state moves it aside; a full disk (a real tmpfs, so root only) refuses new
reports without acknowledging them, while the stored ones are delivered, before and after a
restart, and reports flow again once there is room."""

import errno
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Bridge, World, free_port, payload_variant, wait_for  # noqa: E402
from tap import run, test  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402

ALERTS = "!alerts:localhost"
ALL = '  { name = "all"; room = "#alerts:localhost"; }'
EXIT_STATE_DAMAGED = 3


def report(uuid):
    return json.dumps(payload_variant("shared-modern-failure.json", buildset_uuid=uuid))


def txn_ids(w):
    return [e.get("unsigned", {}).get("transaction_id", "") for e in w.hs.events(ALERTS)]


def posted(w, uuid):
    return any(uuid in t for t in txn_ids(w))


def health(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=5) as r:
            return r.status, json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read().decode())


def run_bridge_once(w, timeout=20):
    """Starts the bridge and waits for it to exit; its exit status and log."""
    w.bridge = Bridge(w.dir, w.config)
    try:
        status = w.bridge.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("the bridge kept running on a damaged state database:\n" + w.bridge.log())
    return status, w.bridge.log()


def made_by_the_bridge(reports=0):
    """A world whose state.db the bridge made (and queued `reports` in), bridge stopped."""
    w = World(ALL)
    for i in range(reports):
        w.broker.publish("zuul/x", report("made%028d" % i))
    if reports:
        wait_for(lambda: sum(posted(w, "made%028d" % i) for i in range(reports)) == reports, 20, "the posts")
    assert w.bridge.stop() == 0
    return w


@test
def an_empty_state_db_stops_the_bridge_with_status_3_until_reset_state_moves_it_aside():
    w = made_by_the_bridge()
    try:
        db = os.path.join(w.state, "state.db")
        os.truncate(db, 0)
        status, log = run_bridge_once(w)
        assert status == EXIT_STATE_DAMAGED, (status, log)
        assert "the state database is damaged; refusing to start" in log, log
        assert db + ": the state database exists but is empty (0 bytes)" in log, log
        assert "reset-state -c %s" % w.bridge.conf in log, log
        assert os.path.getsize(db) == 0  # left as it was found
        r = w.bridge.cli("reset-state", "-c", w.bridge.conf)
        assert r.returncode == 0, r
        aside = [f for f in os.listdir(w.state) if f.startswith("state.db.aside-")]
        assert aside and not os.path.exists(db), (os.listdir(w.state), r.stdout)
        assert b"moved " + db.encode() in r.stdout, r.stdout
        w.bridge = Bridge(w.dir, w.config)
        w.bridge.wait_log("MQTT connected", 10)
        w.broker.publish("zuul/x", report("afterreset000000000000000000000"))
        wait_for(lambda: posted(w, "afterreset000000000000000000000"), 15, "a post after the fresh start")
    finally:
        w.close()


@test
def reset_state_refuses_while_a_bridge_has_the_database_open():
    w = World(ALL)
    try:
        r = w.bridge.cli("reset-state", "-c", w.bridge.conf)
        assert r.returncode == 1 and b"a running bridge has it open" in r.stderr, r
        assert os.path.exists(os.path.join(w.state, "state.db"))
        assert not [f for f in os.listdir(w.state) if ".aside-" in f], os.listdir(w.state)
    finally:
        w.close()


@test
def a_corrupt_index_page_fails_quick_check_and_stops_the_bridge_with_status_3():
    w = made_by_the_bridge(reports=3)
    try:
        db = os.path.join(w.state, "state.db")
        con = sqlite3.connect(db)
        root = con.execute("SELECT rootpage FROM sqlite_master WHERE name = 'outbox_room'").fetchone()[0]
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        con.close()
        with open(db, "r+b") as f:
            f.seek((root - 1) * page_size)
            f.write(b"\xa5" * 64)
        status, log = run_bridge_once(w)
        assert status == EXIT_STATE_DAMAGED, (status, log)
        assert db + ": PRAGMA quick_check failed" in log, log
    finally:
        w.close()


@test
def a_missing_state_db_in_an_existing_state_dir_is_a_first_start():
    w = World(ALL, start_bridge=False)
    try:
        os.makedirs(w.state, mode=0o700)
        w.bridge = Bridge(w.dir, w.config)
        w.bridge.wait_log("MQTT connected", 10)
        assert "store: new state database created" in w.bridge.log()
        w.broker.publish("zuul/x", report("firststart0000000000000000000000"))
        wait_for(lambda: posted(w, "firststart0000000000000000000000"), 15, "the post")
    finally:
        w.close()


# ---- a full disk -----------------------------------------------------------------------

def fill(path):
    """Writes path until the file system says ENOSPC, down to its last byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    chunk = b"\0" * 65536
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return
                chunk = chunk[:len(chunk) // 2]
    finally:
        os.close(fd)


def mount_tmpfs(path, size):
    os.makedirs(path, mode=0o700, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


@test
def a_full_disk_refuses_new_reports_and_delivers_stored_ones_before_and_after_a_restart():
    if os.geteuid() != 0:
        print("# SKIP not root: a real full disk needs a tmpfs, and mounting one needs root")
        return
    port = free_port()
    w = World(ALL, start_bridge=False, extra='metrics: { listen = "127.0.0.1"; port = %d; };' % port)
    disk = os.path.join(w.dir, "disk")
    w.state = os.path.join(disk, "state")
    w.config = w.config.replace('state_dir = "%s"' % os.path.join(w.dir, "state"),
                                'state_dir = "%s"' % w.state)
    mounted, why = mount_tmpfs(disk, "32m")
    if not mounted:
        print("# SKIP cannot mount a tmpfs: %s" % why)
        w.close()
        return
    filler = os.path.join(disk, "filler")
    early = ["early%027d" % i for i in range(2)]
    late = ["late%028d" % i for i in range(2)]
    refused = ["refused%025d" % i for i in range(2)]
    try:
        w.bridge = Bridge(w.dir, w.config)
        w.bridge.wait_log("MQTT connected", 10)
        w.bridge.wait_log("joined room", 10)
        # Stored, not delivered yet: the homeserver fails every send.
        w.hs.faults([{"method": "PUT", "path": "/send/", "status": 503, "count": -1}])
        for uuid in early + late:
            w.broker.publish("zuul/x", report(uuid))
        # Counted by route: the reports repeat one failure, so chatops queues edits of its
        # thread's root too (route chatops).
        w.bridge.wait_log('report queued" route=all', count=4, timeout=15)

        fill(filler)
        for uuid in refused:
            w.broker.publish("zuul/x", report(uuid))
        w.bridge.wait_log("MQTT intake paused", timeout=15)
        status, body = health(port)
        assert status == 503 and body["reason"] == "state database: disk full", (status, body)
        assert w.bridge.log().count('report queued" route=all') == 4, "a report was taken on the full disk"

        # Deliveries go on: the early reports go out now, the late ones after the restart.
        w.hs.clear_faults()
        w.hs.faults([{"method": "PUT", "path": "/send/.*late", "status": 503, "count": -1}])
        wait_for(lambda: all(posted(w, u) for u in early), 20, "the early reports, on the full disk")
        assert w.bridge.running(), w.bridge.log()

        # A restart on the disk filled to its last byte.
        assert w.bridge.stop() == 0, w.bridge.log()
        fill(filler)
        w.bridge.start()
        w.bridge.wait_log("MQTT intake paused", count=2, timeout=15)
        wait_for(lambda: health(port)[1].get("reason") == "state database: disk full", 10,
                 "/healthz to name the full disk after the restart")
        w.hs.clear_faults()
        wait_for(lambda: all(posted(w, u) for u in late), 20, "the late reports, after the restart")
        assert not any(posted(w, u) for u in refused), txn_ids(w)
        assert w.bridge.running(), w.bridge.log()

        # Room again: the broker redelivers what was refused, and new reports flow.
        os.unlink(filler)
        w.bridge.wait_log("MQTT intake resumed", timeout=15)
        w.broker.publish("zuul/x", report("afterspace0000000000000000000000"))
        wait_for(lambda: all(posted(w, u) for u in refused + ["afterspace0000000000000000000000"]), 20,
                 "the refused reports and a new one")
        status, body = health(port)
        assert "reason" not in body, body
        ids = txn_ids(w)
        assert len(ids) == len(set(ids)), ids  # nothing posted twice
    finally:
        if w.bridge:
            w.bridge.stop()
        subprocess.run(["umount", disk])
        w.close()


run()
