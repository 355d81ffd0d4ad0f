"""Integration tests of the live bridge's metrics listener under slow clients: real sockets
against the real binary. Clients that trickle one byte of an endless request now and then
must neither keep /healthz from answering (a container's health check) nor hold their
connections for ever."""

import json
import os
import socket
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import World, free_port, run_in, wait_for  # noqa: E402
from tap import run, test  # noqa: E402

ALL = '  { name = "all"; room = "#alerts:localhost"; }'
LIMIT = 16          # METRICS_MAX_CONNECTIONS in src/metrics.c
TRICKLERS = LIMIT + 4


def get(port, path, timeout):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def is_open(sock):
    """True while the server has not closed the connection (it never answers a trickler)."""
    try:
        return sock.recv(1, socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


class Tricklers:
    """n connections that each send the start of a request, then one more byte of a header
    name every `every` seconds, so that no idle timeout ever fires and the request never
    completes."""

    def __init__(self, port, n, every=1.0):
        self.socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow")
            s.setblocking(False)  # with a timeout, even MSG_DONTWAIT would wait for data
            self.socks.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, args=(every,), daemon=True)
        self.thread.start()

    def _trickle(self, every):
        while not self.stop.wait(every):
            for s in self.socks:
                try:
                    s.send(b"y", socket.MSG_DONTWAIT)
                except OSError:
                    pass  # closed by the server: counted by open_count()

    def open_count(self):
        return sum(1 for s in self.socks if is_open(s))

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


@test
def healthz_answers_while_slow_clients_hold_every_connection_and_they_are_cut_off():
    port = free_port()

    def body(w):
        t = Tricklers(port, TRICKLERS)
        try:
            # Every slot is taken by a trickler and they keep trickling meanwhile.
            w.bridge.wait_log("metrics: listening")
            threading.Event().wait(2.5)
            for probe in range(3):
                status, text = get(port, "/healthz", timeout=30)
                assert status in (200, 503) and json.loads(text)["mqtt"] in ("connected", "disconnected"), (
                    status, text)
                # Answered by making room, not by waiting until the slow ones were dropped:
                # all but the oldest few (one per newcomer) still hold their connections.
                still = t.open_count()
                assert still >= LIMIT - 1 - probe, "only %d of %d trickling clients still connected when " \
                    "/healthz #%d answered: it waited for them instead of being served at once" % (
                        still, TRICKLERS, probe + 1)
            # However busily they trickle, each is closed within the connection deadline.
            wait_for(lambda: t.open_count() == 0, 30, "every trickling client to be disconnected", 0.5)
            status, text = get(port, "/metrics", timeout=30)
            assert status == 200 and "zmb_reports_received_total" in text, (status, text[:200])
        finally:
            t.close()
        assert w.bridge.running(), "the bridge exited"
    run_in(World(ALL, extra='metrics: { listen = "127.0.0.1"; port = %d; };' % port), body)


run()
