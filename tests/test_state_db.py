#!/usr/bin/env python3
"""The state database against the real binary, with real files: a damaged state.db (emptied,
an index page overwritten) stops the bridge with exit status 3 and a line that names the file
and the fault, reset-state moves it aside; a full disk (a real tmpfs, so root only) refuses new
reports without acknowledging them, while the stored ones are delivered, before and after a
restart, and reports flow again once there is room; a disk filled between the bridge's look
at it and its commit rolls that batch back, and the bridge runs on the same way, posting
nothing twice."""

import array
import errno
import fcntl
import json
import os
import select
import sqlite3
import subprocess
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BRIDGE_BIN, Bridge, World, free_port, payload_variant, wait_for  # noqa: E402
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


def reports_committed(state_dir, keys):
    """Whether the reports of these keys are in the state database on disk (their batch is
    committed), read as another process reads it."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(state_dir, "state.db"), uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        row = db.execute("SELECT count(DISTINCT event_key) FROM txn WHERE event_key IN (%s)"
                         % ",".join("?" * len(keys)), keys).fetchone()
        return row[0] == len(keys)
    except sqlite3.Error:
        return False
    finally:
        db.close()


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
        # (counted by route: the room side's own messages, the repeats' counter edits, are queued too)
        w.bridge.wait_log('msg="report queued" route=all', count=4, timeout=15)
        # Queued is not yet stored: the disk fills only once their batch is committed.
        wait_for(lambda: reports_committed(w.state, early + late), 10, "the four reports committed")

        fill(filler)
        for uuid in refused:
            w.broker.publish("zuul/x", report(uuid))
        w.bridge.wait_log("MQTT intake paused", timeout=15)
        status, body = health(port)
        assert status == 503 and body["reason"] == "state database: disk full", (status, body)
        assert w.bridge.log().count('msg="report queued" route=all') == 4, "a report was taken on the full disk"

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


# ---- the disk filling between the look at it and the commit -----------------------------

F_SETPIPE_SZ = 1031
PIPE_PAGE = 4096


class PipedBridge(Bridge):
    """The bridge with its log in a pipe of one page, read into the log file by a thread,
    as a service's log goes to journald. hold_log() stops reading and fills the pipe, so the
    bridge stops at its next log line (blocked in write, as under a stalled journald) until
    release_log(): a point in its work the test can act at, without timing anything."""

    def __init__(self, workdir, config):
        self.pipe = None
        super().__init__(workdir, config, verbose=False)

    def start(self):
        r, w = os.pipe()
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_PAGE)
        os.set_blocking(r, False)
        self.pipe = (r, w)
        self.held = False
        self.lock = threading.Lock()
        self.draining = True
        args = [BRIDGE_BIN, "-c", self.conf]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=w, env=self.env)
        self.drainer = threading.Thread(target=self._drain_loop, daemon=True)
        self.drainer.start()

    def _drain(self):
        """Moves what the pipe holds into the log file (caller holds the lock)."""
        with open(self.log_path, "ab") as f:
            while True:
                try:
                    data = os.read(self.pipe[0], 65536)
                except BlockingIOError:
                    return
                if not data:
                    return
                f.write(data)

    def _drain_loop(self):
        while self.draining:
            select.select([self.pipe[0]], [], [], 0.05)
            with self.lock:
                if not self.held:
                    self._drain()

    def hold_log(self):
        """Stops reading the log and fills the pipe: the next line the bridge logs blocks it."""
        with self.lock:
            self.held = True
        # Our own open file description: O_NONBLOCK on the bridge's would reach its writes.
        pad = os.open("/proc/self/fd/%d" % self.pipe[1], os.O_WRONLY | os.O_NONBLOCK)
        try:
            for _ in range(10):
                self._drain()
                padded = 0
                for size in (PIPE_PAGE, 256, 16, 1):
                    while True:
                        try:
                            padded += os.write(pad, b"\n" * size)
                        except BlockingIOError:
                            break
                buf = array.array("i", [0])
                fcntl.ioctl(self.pipe[0], termios.FIONREAD, buf)
                if buf[0] == padded:
                    return os.path.getsize(self.log_path)  # the pipe holds only the padding
            raise AssertionError("the bridge kept logging while idle:\n" + self.log())
        finally:
            os.close(pad)

    def release_log(self):
        with self.lock:
            self.held = False

    def log(self):
        with self.lock:
            if not self.held:
                self._drain()
        return super().log()

    def stop(self, timeout=10):
        if self.pipe is None:
            return self.proc.returncode
        self.release_log()
        try:
            return super().stop(timeout)
        finally:
            self.draining = False
            self.drainer.join()
            with self.lock:
                self._drain()
            for fd in self.pipe:
                os.close(fd)
            self.pipe = None


def blocked_in_a_log_write(pid):
    with open("/proc/%d/wchan" % pid) as f:
        return "pipe_write" in f.read()  # anon_pipe_write since Linux 6.x


def committed(state, txns, delivered=()):
    """Whether a second connection (which sees only what is committed) finds the txn ids
    accepted, and those of `delivered` with their event ids."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(state, "state.db"), uri=True)
    try:
        for txn in list(txns) + list(delivered):
            row = con.execute("SELECT event_id FROM txn WHERE txn_id = ?", (txn,)).fetchone()
            if row is None or (txn in delivered and row[0] is None):
                return False
        return True
    finally:
        con.close()


def recorded_event_id(state, txn):
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(state, "state.db"), uri=True)
    try:
        row = con.execute("SELECT event_id FROM txn WHERE txn_id = ?", (txn,)).fetchone()
        return row and row[0]
    finally:
        con.close()


def room_txn_ids(w, room):
    return [e.get("unsigned", {}).get("transaction_id", "") for e in w.hs.events(room)]


def zuul_report(uuid, project, action="failure"):
    return json.dumps(payload_variant("shared-modern-failure.json", buildset_uuid=uuid, project=project,
                                      action=action))


LIVE_AND_BACKLOG = """  { name = "live"; room = "#alerts:localhost"; edit_start = true; match: { projects = ["live/*"]; }; },
  { name = "backlog"; room = "#ops:localhost"; }"""
OPS = "!ops:localhost"


def world_on_a_small_disk(routes, extra=""):
    """A world (bridge not started) whose state_dir is on a 32 MiB tmpfs at w.dir/disk, with
    its metrics on w.metrics_port; None (said why) when that cannot be had here. Its MQTT
    window is one report: each is committed at the end of the loop turn that took it, before
    its sends go out (they leave in a later turn)."""
    if os.geteuid() != 0:
        print("# SKIP not root: a real full disk needs a tmpfs, and mounting one needs root")
        return None
    port = free_port()
    w = World(routes, start_bridge=False, mqtt_extra='protocol = "5"; receive_maximum = 1;',
              extra='metrics: { listen = "127.0.0.1"; port = %d; };\n%s' % (port, extra))
    w.metrics_port = port
    w.disk = os.path.join(w.dir, "disk")
    w.state = os.path.join(w.disk, "state")
    w.config = w.config.replace('state_dir = "%s"' % os.path.join(w.dir, "state"), 'state_dir = "%s"' % w.state)
    mounted, why = mount_tmpfs(w.disk, "32m")
    if not mounted:
        print("# SKIP cannot mount a tmpfs: %s" % why)
        w.close()
        return None
    return w


def hold_fill_release(w, publish, filler):
    """Holds the bridge at its next log line, has it take a report (publish()), fills the
    disk while it is held, lets it go on to its commit. Returns the first line it logged."""
    held_at = w.bridge.hold_log()
    publish()
    wait_for(lambda: blocked_in_a_log_write(w.bridge.proc.pid), 15, "the bridge to stop at its next log line")
    fill(filler)
    w.bridge.release_log()
    w.bridge.wait_log("state database full in mid-batch: the batch is rolled back", 15)
    with open(w.bridge.log_path, errors="replace") as f:
        f.seek(held_at)
        return next(line for line in f.read().splitlines() if line.strip())


@test
def a_disk_filled_between_the_check_and_the_commit_rolls_the_batch_back_and_the_bridge_runs_on():
    # (one job failing in three backlog projects would be an incident: triage is not the point here)
    w = world_on_a_small_disk(LIVE_AND_BACKLOG, extra="triage: { enabled = false; };")
    if not w:
        return
    port, disk = w.metrics_port, w.disk
    # The backlog's sends hang for the whole test: no time-out, no retry, no log line.
    w.config = w.config.replace('request_timeout = "5s"', 'request_timeout = "600s"')
    filler = os.path.join(disk, "filler")
    stored = ["stored%026d" % i for i in range(3)]  # projects backlog/*: #ops only
    build = "build%027d" % 0                       # live/x: started, then failed in the lost batch
    refused = ["refused%025d" % i for i in range(2)]
    after = "afterspace0000000000000000000000"
    try:
        w.bridge = PipedBridge(w.dir, w.config)
        w.bridge.wait_log("MQTT connected", 10)
        w.bridge.wait_log("joined room", 10, count=2)
        w.hs.faults([{"method": "PUT", "path": r"/send/m\.room\.message/zmb\.backlog\.", "action": "hang",
                      "seconds": 600, "count": -1}])
        for i, uuid in enumerate(stored):
            w.broker.publish("zuul/x", zuul_report(uuid, "backlog/s%d" % i))
        w.broker.publish("zuul/x", zuul_report(build, "live/x", "start"))
        wait_for(lambda: "zmb.live.start." + build in room_txn_ids(w, ALERTS), 15, "the start report")
        wait_for(lambda: any("zmb.backlog." in r["path"] for r in w.hs.requests()), 15,
                 "the backlog's first send, hanging")
        # All of it committed, the start's delivery too: the batch to be lost holds the failure alone.
        wait_for(lambda: committed(w.state, ["zmb.backlog.failure." + u for u in stored] +
                                   ["zmb.backlog.start." + build], delivered=["zmb.live.start." + build]),
                 15, "the stored reports and the start's delivery, committed")

        # The failure is taken (the disk has room), then held at its decision's log line,
        # after its outbox row and before the commit; meanwhile the disk fills.
        first = hold_fill_release(w, lambda: w.broker.publish("zuul/x", zuul_report(build, "live/x", "failure")),
                                  filler)
        assert "report edits its start report" in first and build in first, first
        assert "deliveries_forgotten=2 " in w.bridge.log(), w.bridge.log()  # the edit and #ops' message
        w.bridge.wait_log("MQTT intake paused", 15)
        status, body = health(port)
        assert status == 503 and body["reason"] == "state database: disk full", (status, body)
        assert w.bridge.running(), w.bridge.log()
        # The edit was on its way when the batch was lost: it arrives, unrecorded.
        w.bridge.wait_log("a send from a batch the store lost has finished", 15)
        assert "status=accepted" in w.bridge.log().split("a send from a batch the store lost has finished")[1]
        assert "zmb.live.failure." + build in room_txn_ids(w, ALERTS)
        assert not committed(w.state, ["zmb.live.failure." + build])

        # Stored reports are delivered on the full disk; new ones wait at the broker.
        w.hs.clear_faults()
        wait_for(lambda: all("zmb.backlog.failure." + u in room_txn_ids(w, OPS) for u in stored) and
                 "zmb.backlog.start." + build in room_txn_ids(w, OPS), 20, "the stored reports, on the full disk")
        for i, uuid in enumerate(refused):
            w.broker.publish("zuul/x", zuul_report(uuid, "live/r%d" % i))
        assert health(port)[1].get("reason") == "state database: disk full"
        assert not any(u in t for u in refused for t in room_txn_ids(w, ALERTS) + room_txn_ids(w, OPS))
        assert "zmb.backlog.failure." + build not in room_txn_ids(w, OPS)  # forgotten, not sent

        # Room again: the broker sends the lost failure and the refused reports again.
        os.unlink(filler)
        w.bridge.wait_log("MQTT intake resumed", timeout=15)
        w.broker.publish("zuul/x", zuul_report(after, "live/z"))
        want_alerts = ["zmb.live.start." + build, "zmb.live.failure." + build] + \
            ["zmb.live.failure." + u for u in refused + [after]]
        want_ops = ["zmb.backlog.failure." + u for u in stored + [build] + refused + [after]] + \
            ["zmb.backlog.start." + build]
        wait_for(lambda: set(want_alerts) <= set(room_txn_ids(w, ALERTS)) and
                 set(want_ops) <= set(room_txn_ids(w, OPS)), 20, "every report, once there is room")
        for room, want in ((ALERTS, want_alerts), (OPS, want_ops)):
            ids = room_txn_ids(w, room)
            assert len(ids) == len(set(ids)), ids  # nothing posted twice
            reports = [t for t in ids if not t.startswith("zmb.chatops.")]  # chatops' own edits aside
            assert sorted(reports) == sorted(want), (room, ids)
        # The lost edit went out twice, the second time answered with the first's event.
        edit = [r for r in w.hs.sends() if r["path"].endswith("/zmb.live.failure." + build)]
        assert len(edit) == 2 and [bool(r.get("duplicate_txn")) for r in edit] == [False, True], edit
        event = [e["event_id"] for e in w.hs.events(ALERTS)
                 if e.get("unsigned", {}).get("transaction_id") == "zmb.live.failure." + build]
        assert recorded_event_id(w.state, "zmb.live.failure." + build) == event[0], event
        assert "reason" not in health(port)[1]
        assert w.bridge.running(), w.bridge.log()
        assert "stopping without acknowledging" not in w.bridge.log()
        assert w.bridge.stop() == 0, w.bridge.log()
    finally:
        if w.bridge:
            w.bridge.stop()
        subprocess.run(["umount", disk])
        w.close()


def mute_count(state, project):
    """The count of the mute of project as committed in state.db (None: no such mute)."""
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(state, "state.db"), uri=True)
    try:
        row = con.execute("SELECT value FROM kv WHERE key = 'chatops.mutes'").fetchone()
    finally:
        con.close()
    counts = [m.get("count") for m in json.loads(row[0]) if m.get("project") == project] if row else []
    return counts[0] if counts else None


@test
def a_mute_counts_a_report_of_a_lost_batch_once():
    # The room side's copy of the mutes changed with the lost batch: it is read again from
    # the store, so the report the broker sends again is counted once, not twice.
    w = world_on_a_small_disk(ALL, extra="chatops: { command_power_level = 50; };")
    if not w:
        return
    filler = os.path.join(w.disk, "filler")
    muted = ["muted%027d" % i for i in range(2)]
    try:
        w.bridge = PipedBridge(w.dir, w.config)
        w.bridge.wait_log("MQTT connected", 10)
        asked = w.hs.inject(ALERTS, "@alice:localhost", {"msgtype": "m.text", "body": "!zuul mute live/m 2h"})
        wait_for(lambda: any(((e["content"].get("m.relates_to") or {}).get("m.in_reply_to") or {})
                             .get("event_id") == asked for e in w.hs.events(ALERTS)), 10, "the mute's answer")
        w.broker.publish("zuul/x", zuul_report(muted[0], "live/m"))
        wait_for(lambda: mute_count(w.state, "live/m") == 1, 10, "the first muted report, counted and committed")

        first = hold_fill_release(w, lambda: w.broker.publish("zuul/x", zuul_report(muted[1], "live/m")), filler)
        assert "report muted" in first and muted[1] in first, first
        assert mute_count(w.state, "live/m") == 1
        status, body = health(w.metrics_port)
        assert status == 503 and body["reason"] == "state database: disk full", (status, body)
        assert w.bridge.running(), w.bridge.log()

        os.unlink(filler)
        w.bridge.wait_log("MQTT intake resumed", timeout=15)
        # The broker's second delivery of the lost report, decided and committed.
        wait_for(lambda: w.bridge.log().count("key=" + muted[1]) == 2 and mute_count(w.state, "live/m") != 1, 15,
                 "the lost report, counted again")
        assert mute_count(w.state, "live/m") == 2, mute_count(w.state, "live/m")
        asked = w.hs.inject(ALERTS, "@alice:localhost", {"msgtype": "m.text", "body": "!zuul unmute live/m"})
        answer = wait_for(lambda: [e for e in w.hs.events(ALERTS) if ((e["content"].get("m.relates_to") or {})
                                   .get("m.in_reply_to") or {}).get("event_id") == asked], 10, "the unmute's answer")
        assert answer[0]["content"]["body"] == "Unmuted live/m: 2 failures went unposted while it was muted.", answer
        assert not [t for t in room_txn_ids(w, ALERTS) if "muted" in t]  # counted, never posted
        assert w.bridge.stop() == 0, w.bridge.log()
    finally:
        if w.bridge:
            w.bridge.stop()
        subprocess.run(["umount", w.disk])
        w.close()


run()
