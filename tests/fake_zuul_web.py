"""fake_zuul_web: a Zuul web server and log server for the build-details tests, on a free
loopback port in a thread of the test process: it serves what the test puts on its paths
(Zuul API build records, job-output files gzipped or plain, redirects, slow answers) and
records every request it gets, so a test can assert that nothing was asked of it.

    web = FakeZuulWeb()
    web.serve("/api/tenant/scs/build/UUID", build_record("UUID", "FAILURE"))
    web.serve("/logs/UUID/job-output.json.gz", gzip.compress(data), content_type="application/gzip")
    web.redirect("/logs/UUID/job-output.json", "http://127.0.0.1:OTHER/x")
    ... web.paths() ... web.stop()
"""

import gzip
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.environ.get("ZMB_SOURCE_ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DETAILS = os.path.join(ROOT, "tests", "data", "details")


def fixture(name):
    """The bytes of a file in tests/data/details/."""
    with open(os.path.join(DETAILS, name), "rb") as f:
        return f.read()


def build_record(uuid, result, error_detail=None, job="tox-py311", log_url=None):
    """A build as Zuul's API answers GET /api/tenant/T/build/UUID (BuildConverter.toDict)."""
    return json.dumps({
        "_id": 4711, "uuid": uuid, "job_name": job, "result": result, "held": False,
        "execute_time": "2024-11-21T09:20:40", "start_time": "2024-11-21T09:20:51",
        "end_time": "2024-11-21T09:25:20", "duration": 269.5, "voting": True, "log_url": log_url,
        "nodeset": "ubuntu-jammy", "error_detail": error_detail, "final": True, "artifacts": [],
        "provides": [], "ref": {"project": "SovereignCloudStack/standards", "branch": "main"},
        "pipeline": "check", "event_id": "c0ffee", "event_timestamp": "2024-11-21T09:19:50",
        "queue_item_uuid": "b2c4", "buildset": {"uuid": "5e7a", "refs": []},
    }).encode()


def gz(data):
    return gzip.compress(data if isinstance(data, bytes) else data.encode())


class FakeZuulWeb:
    def __init__(self):
        self.routes = {}
        self.log = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with owner.lock:
                    owner.log.append({"path": self.path, "headers": dict(self.headers)})
                    route = owner.routes.get(self.path)
                if route is None:
                    self._answer(404, b'{"message": "not found"}', "application/json", {}, 0)
                    return
                self._answer(route["status"], route["body"], route["content_type"], route["headers"], route["delay"])

            def _answer(self, status, body, ctype, headers, delay):
                try:
                    if delay:
                        # Headers at once, the body late: the bridge's timeout covers the whole file.
                        self.send_response(status)
                        self.send_header("Content-Type", ctype)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.flush()
                        time.sleep(delay)
                        self.wfile.write(body)
                        return
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the bridge gave up (a timeout, a cap): that is what the test wants

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # a client that hung up (the bridge giving up) is no error of the test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, path, body, status=200, content_type="application/json", headers=None, delay=0):
        with self.lock:
            self.routes[path] = {"status": status, "body": body, "content_type": content_type,
                                 "headers": headers or {}, "delay": delay}

    def redirect(self, path, location, status=302):
        self.serve(path, b"", status=status, content_type="text/plain", headers={"Location": location})

    def paths(self):
        with self.lock:
            return [r["path"] for r in self.log]

    def requests(self):
        with self.lock:
            return list(self.log)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
