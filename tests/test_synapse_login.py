"""The bridge logs in itself against a real Synapse: matrix.user with a password instead of
an access token. It keeps its device across restarts (so Synapse's per-device transaction
dedup still holds), refreshes expiring access tokens, and logs in again when its tokens are
revoked, without dead-lettering what it was sending meanwhile.

Between the bridge and Synapse sits a small forwarding proxy of this file, which records
the requests (method, path, status) and can swallow an answer after Synapse acted on it,
the way a connection lost at the worst moment would."""

import http.client
import http.server
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import Bridge, SynapseWorld, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402

ALL = '  { name = "all"; room = "#alerts:localhost"; }'
# The worlds' directories live in a directory of this run, not beside other runs' in /tmp:
# a run elsewhere that sweeps /tmp/zmb-syn-* must not pull the bridge log from under a test.
tempfile.tempdir = tempfile.mkdtemp(prefix="zmb-login-tests-")
PASSWORD = "zuul-bot-password"  # tests/synapse.py registers the bot with <localpart>-password


class Proxy:
    """HTTP forwarder to Synapse on a free loopback port. self.requests lists
    (method, path, status) of every forwarded request; while swallow(path_part) is set, a
    request whose path contains it reaches Synapse but its answer is dropped (the
    connection closes without a response)."""

    def __init__(self, upstream_port):
        proxy = self
        self.requests = []
        self.swallowing = None
        self.echoing = None
        self.issued = []    # access and refresh tokens of login and refresh answers, in order
        self.echoed = []    # tokens quoted back by echo_token()
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def echo(self, path):
                token = (self.headers.get("Authorization") or "").replace("Bearer ", "", 1)
                data = json.dumps({"errcode": "M_FORBIDDEN",
                                   "error": "token %s may not send here" % token}).encode()
                with proxy.lock:
                    proxy.echoed.append(token)
                    proxy.requests.append((self.command, path, 403))
                self.send_response(403)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                path = urllib.parse.urlsplit(self.path).path
                with proxy.lock:
                    echo = proxy.echoing and proxy.echoing in path
                if echo:
                    self.echo(path)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in
                           ("authorization", "content-type", "accept", "user-agent")}
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=120)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, ctype, retry = resp.status, resp.getheader("Content-Type"), resp.getheader("Retry-After")
                finally:
                    conn.close()
                if status == 200 and (path.endswith("/login") or path.endswith("/refresh")):
                    answer = json.loads(data)
                    with proxy.lock:
                        proxy.issued += [answer[k] for k in ("access_token", "refresh_token") if k in answer]
                with proxy.lock:
                    proxy.requests.append((self.command, path, status))
                    swallow = proxy.swallowing and proxy.swallowing in path
                if swallow:
                    self.close_connection = True
                    return
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                if retry:
                    self.send_header("Retry-After", retry)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A request cut off by Synapse's or the bridge's stop is no finding of the test.
        self.server.handle_error = lambda request, client_address: None
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def swallow(self, path_part):
        with self.lock:
            self.swallowing = path_part

    def echo_token(self, path_part):
        """From now on a request whose path contains path_part is not forwarded: the proxy
        answers 403 M_FORBIDDEN quoting the request's access token, as a careless
        homeserver or gateway might."""
        with self.lock:
            self.echoing = path_part

    def count(self, method, path_part, status=None):
        with self.lock:
            return sum(1 for m, p, s in self.requests
                       if m == method and path_part in p and (status is None or s == status))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class LoginWorld(SynapseWorld):
    """SynapseWorld with the bridge logging in as the bot with its password (from a 0600
    file) through a Proxy, instead of using the access token from the environment."""

    def __init__(self, synapse_config=None, routes=ALL):
        super().__init__(routes, start_bridge=False, synapse_config=synapse_config)
        self.proxy = Proxy(self.hs.port)
        secret = os.path.join(self.dir, "matrix-password")
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (self.bot.password + "\n").encode())
        os.close(fd)
        self.config = re.sub(r'matrix: \{ homeserver = "[^"]*";',
                             'matrix: { homeserver = "%s"; user = "zuul-bot"; password_file = "%s";'
                             % (self.proxy.url, secret), self.config)
        assert 'user = "zuul-bot"' in self.config, self.config
        # An empty variable counts as unset: the harness's token must not be offered too.
        self.env = {"ZMB_MATRIX_ACCESS_TOKEN": ""}

    def start_bridge(self, wait_joined=True):
        if self.bridge is None:
            self.bridge = Bridge(self.dir, self.config, env=self.env)
        else:
            self.bridge.start()  # same log file, appended
        self.bridge.wait_log("MQTT connected", 30)
        return self.bridge

    def publish(self, buildset):
        ev = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "payloads",
                                         "shared-periodic-failure.json")))
        ev["buildset"]["uuid"] = buildset
        # A job of its own per report: each is a new message, not a reply in a failure's thread.
        for b in ev["buildset"]["builds"]:
            b["job_name"] = "job-" + buildset
        self.broker.publish("zuul/scs/periodic-daily", payload=json.dumps(ev))

    def reports(self):
        """The bot's top-level messages in #alerts, as alice sees them."""
        return [e for e in self.bot_messages() if not e["content"].get("m.relates_to")]

    def bridge_devices(self):
        """The bot's devices the bridge made, read with the bot's registration token."""
        devices = self.hs.call("GET", "/_matrix/client/v3/devices", token=self.bot.token)["devices"]
        return [d for d in devices if d.get("display_name") == "zuul-matrix-bridge"]

    def logins(self):
        """device_id of each "logged in" line of the bridge log, in order."""
        return re.findall(r'msg="logged in to the homeserver".*? device_id=(\S+)', self.bridge.log())

    def check_no_secrets_logged(self):
        log = self.bridge.log()
        assert self.bot.password not in log, "the password is in the bridge log"
        assert "syt_" not in log, "an access token (syt_...) is in the bridge log"
        assert "refresh_token=" not in log or "refresh_token=yes" in log or "refresh_token=no" in log

    def close(self):
        super().close()
        self.proxy.close()


def with_world(fn, **kw):
    os.makedirs(tempfile.tempdir, exist_ok=True)
    w = LoginWorld(**kw)
    try:
        fn(w)
    finally:
        w.close()
        try:
            os.rmdir(tempfile.tempdir)  # empty unless ZMB_KEEP_TEST_DIRS kept the world
        except OSError:
            pass


@test
def logs_in_with_a_password_keeps_its_device_and_a_resend_after_restart_is_not_posted_twice():
    def body(w):
        w.start_bridge()
        w.bridge.wait_log("logged in to the homeserver", 30)
        first = w.logins()
        assert len(first) == 1, w.bridge.log()[-3000:]
        device = first[0]
        w.bridge.wait_log("joined room", 30)
        assert [d["device_id"] for d in w.bridge_devices()] == [device], w.bridge_devices()

        # Synapse posts the report but its answer is lost: the report stays in the outbox.
        w.proxy.swallow("/send/")
        w.publish("bs-restart")
        wait_for(lambda: len(w.reports()) == 1, 30, "the report in the room")
        wait_for(lambda: w.proxy.count("PUT", "/send/") >= 1, 10, "the send")
        sends = [p for m, p, s in w.proxy.requests if m == "PUT" and "/send/" in p]
        assert w.bridge.stop() == 0
        w.proxy.swallow(None)

        # The restart logs in on the same device and sends the same transaction again:
        # Synapse answers with the event it already has instead of posting a second one.
        w.start_bridge()
        wait_for(lambda: len(w.logins()) == 2, 30, "the second login")
        wait_for(lambda: w.proxy.count("PUT", sends[0], status=200) >= 1, 30,
                 "the same transaction sent again and answered")
        time.sleep(2)
        assert len(w.reports()) == 1, "posted %d times" % len(w.reports())
        assert w.logins()[1] == device, w.logins()
        assert [d["device_id"] for d in w.bridge_devices()] == [device], w.bridge_devices()
        # The login asked for the device id it had.
        assert w.proxy.count("POST", "/_matrix/client/v3/login", status=200) == 2
        w.check_no_secrets_logged()
    with_world(body)


@test
def refreshes_a_five_second_access_token_and_keeps_posting():
    def body(w):
        w.start_bridge()
        w.bridge.wait_log("logged in to the homeserver", 30)
        assert "refresh_token=yes" in w.bridge.log(), w.bridge.log()[-2000:]
        w.bridge.wait_log("joined room", 30)
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 24:
            w.publish("bs-refresh-%d" % n)
            n += 1
            time.sleep(2)
        wait_for(lambda: len(w.reports()) == n, 30, "all %d reports in the room" % n)
        refreshes = w.proxy.count("POST", "/_matrix/client/v3/refresh", status=200)
        assert refreshes >= 4, "only %d refreshes in %.0fs of 5 s tokens" % (refreshes, time.monotonic() - start)
        # One login only: the refreshes carried the session.
        assert w.proxy.count("POST", "/_matrix/client/v3/login") == 1, w.proxy.requests
        log = w.bridge.log()
        assert "dead letters" not in log and "delivery failed" not in log, log[-3000:]
        w.check_no_secrets_logged()
    with_world(body, synapse_config={"refreshable_access_token_lifetime": "5s"})


@test
def requests_refused_while_the_refresh_answer_is_lost_wait_and_are_resent():
    def body(w):
        w.start_bridge()
        w.bridge.wait_log("logged in to the homeserver", 30)
        w.bridge.wait_log("joined room", 30)
        # Synapse refreshes but the bridge never hears it: its token expires meanwhile, and
        # the old refresh token stays good (Synapse revokes it only once a new token is used).
        w.proxy.swallow("/refresh")
        wait_for(lambda: w.proxy.count("POST", "/refresh") >= 1, 15, "a refresh")
        time.sleep(5)  # the 5 s token has expired now
        w.publish("bs-expired")
        wait_for(lambda: w.proxy.count("PUT", "/send/", status=401) >= 1, 15, "the send refused")
        w.proxy.swallow(None)
        wait_for(lambda: len(w.reports()) == 1, 30, "the refused report, resent")
        assert w.proxy.count("POST", "/_matrix/client/v3/login") == 1, w.proxy.requests
        assert w.proxy.count("POST", "/refresh", status=200) >= 2, w.proxy.requests
        log = w.bridge.log()
        assert "token refused (soft logout); resending" in log, log[-3000:]
        assert "dead letters" not in log, log[-3000:]
        w.check_no_secrets_logged()
    with_world(body, synapse_config={"refreshable_access_token_lifetime": "5s"})


@test
def a_refreshed_token_quoted_by_the_homeserver_is_redacted_from_log_and_dead_letters():
    def body(w):
        w.start_bridge()
        w.bridge.wait_log("logged in to the homeserver", 30)
        w.bridge.wait_log("joined room", 30)
        wait_for(lambda: w.proxy.count("POST", "/_matrix/client/v3/refresh", status=200) >= 1, 30, "a refresh")
        w.proxy.echo_token("/send/")
        w.publish("bs-echoed")
        w.bridge.wait_log("moved to dead letters", 30)
        with w.proxy.lock:
            echoed, first_login = list(w.proxy.echoed), list(w.proxy.issued[:2])
            issued = list(w.proxy.issued)
        # The token quoted back is one the bridge got from a refresh, not from its login.
        assert echoed and echoed[0] in issued and echoed[0] not in first_login, (echoed, issued)
        log = w.bridge.log()
        dead = [ln for ln in log.splitlines() if "moved to dead letters" in ln]
        assert dead and "token [redacted] may not send here" in dead[0], dead
        for token in issued:
            assert token not in log, "a token of the session is in the bridge log"
        # delivery bookkeeping reaches state.db within its commit interval (100 ms)
        listing = wait_for(lambda: (lambda out: "token [redacted] may not send here" in out and out)(
            w.bridge.cli("dead-letters", "-c", w.bridge.conf).stdout.decode()), 10, "the dead letter in the listing")
        assert not any(token in listing for token in issued), "a token is in the dead letters"
        w.check_no_secrets_logged()
    with_world(body, synapse_config={"refreshable_access_token_lifetime": "5s"})


@test
def logs_in_again_after_its_sessions_are_logged_out_and_delivers_the_queued_report():
    def body(w):
        w.start_bridge()
        w.bridge.wait_log("logged in to the homeserver", 30)
        w.bridge.wait_log("joined room", 30)
        device = w.logins()[0]
        w.publish("bs-before")
        wait_for(lambda: len(w.reports()) == 1, 30, "the first report")

        # Every token of the bot goes, the bridge's included (and its device with them).
        w.hs.call("POST", "/_matrix/client/v3/logout/all", {}, token=w.bot.token)
        w.bot.token = w.hs.call("POST", "/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "zuul-bot"},
            "password": w.bot.password})["access_token"]
        # (the bridge's /sync long poll meets the 401 at once and it may log in again any
        # moment from now: its device is gone only for that long)

        w.publish("bs-after")
        wait_for(lambda: len(w.reports()) == 2, 30, "the report queued while the token was gone")
        wait_for(lambda: len(w.logins()) == 2, 10, "the second login")
        assert w.logins()[1] == device, w.logins()
        refused = w.proxy.count("PUT", "/send/", status=401) + w.proxy.count("GET", "/sync", status=401)
        assert refused >= 1, w.proxy.requests  # it was refused first
        log = w.bridge.log()
        assert "access token refused; logging in again" in log, log[-3000:]
        assert "dead letters" not in log and "delivery failed" not in log, log[-3000:]
        assert [d["device_id"] for d in w.bridge_devices()] == [device], w.bridge_devices()
        w.check_no_secrets_logged()
    with_world(body)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
