"""Encrypted rooms against a real Synapse. The bridge cannot encrypt (no maintained C
library does Matrix encryption), so a route into an encrypted room must not post there in
the clear unless the operator said so: its reports are dead letters with the reason, the
room is named at start, in /healthz and in the metrics; with matrix.post_unencrypted the
bridge posts there unencrypted; a room encrypted later is noticed through /sync, and an
encrypted message (which the bot cannot read) is logged once, not silently ignored."""

import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from harness import PAYLOADS, SynapseWorld, free_port, wait_for  # noqa: E402
from tap import run, skip_all, test  # noqa: E402

CHATOPS = "chatops: { command_power_level = 50; };\n"
ROUTES = """
  { name = "plain"; room = "#alerts:localhost"; },
  { name = "secret"; room = "#secret:localhost"; }
"""
REFUSED = "room is encrypted and the bridge cannot encrypt"


def report(buildset):
    with open(os.path.join(PAYLOADS, "shared-modern-failure.json")) as f:
        ev = json.load(f)
    ev["buildset"]["uuid"] = buildset
    return json.dumps(ev)


def http_get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
        return r.read().decode()


def bot_posts(w, room, key):
    return [e for e in w.hs.messages(w.alice, room) if e["sender"] == w.bot.user_id
            and e["type"] == "m.room.message" and "/buildset/%s)" % key in e["content"].get("body", "")]


def dead_letters(w):
    return w.bridge.cli("dead-letters", "-c", w.bridge.conf).stdout.decode()


class EncryptedWorld(SynapseWorld):
    """#alerts plain and #secret encrypted, both routed, with metrics on a free port."""

    def __init__(self, extra="", matrix_extra=""):
        self.metrics_port = free_port()
        super().__init__(ROUTES, rooms=("alerts",), start_bridge=False,
                         extra=extra + 'metrics: { listen = "127.0.0.1"; port = %d; };' % self.metrics_port)
        self.rooms["secret"] = self.create_room("secret", encrypted=True)
        self.config = self.config.replace("matrix: { ", "matrix: { %s" % matrix_extra, 1)
        self.start_bridge()


def with_world(fn, **kw):
    w = EncryptedWorld(**kw)
    try:
        fn(w)
    finally:
        w.close()


@test
def an_encrypted_rooms_reports_are_dead_letters_that_say_why_and_health_names_the_room():
    def body(w):
        w.bridge.wait_log(REFUSED, 20)
        w.broker.publish("zuul/scs/check", payload=report("enc1"))
        wait_for(lambda: bot_posts(w, w.rooms["alerts"], "enc1"), 20, "the report in the plain room")
        wait_for(lambda: "room is encrypted" in dead_letters(w), 20, "the dead letter of #secret")
        listing = dead_letters(w)
        assert "1 dead letter" in listing and "#secret:localhost" in listing, listing
        assert bot_posts(w, w.rooms["secret"], "enc1") == [], "nothing may reach the encrypted room in the clear"
        health = json.loads(http_get(w.metrics_port, "/healthz"))
        assert health["rooms_encrypted"] == ["#secret:localhost"], health
        metrics = http_get(w.metrics_port, "/metrics")
        assert 'zmb_room_encrypted{room="#secret:localhost"} 1' in metrics, metrics
        assert 'zmb_room_encrypted{room="#alerts:localhost"} 0' in metrics, metrics
        assert w.bridge.log().count("level=error msg=\"" + REFUSED) == 1, "said once, loudly"
    with_world(body)


@test
def with_post_unencrypted_the_bridge_posts_into_the_encrypted_room_as_configured():
    def body(w):
        w.bridge.wait_log("room is encrypted; posting unencrypted there as matrix.post_unencrypted allows", 20)
        w.broker.publish("zuul/scs/check", payload=report("enc2"))
        got = wait_for(lambda: bot_posts(w, w.rooms["secret"], "enc2"), 20, "the report in #secret")
        assert got[0]["type"] == "m.room.message", got[0]
        health = json.loads(http_get(w.metrics_port, "/healthz"))
        assert health["rooms_encrypted"] == [], health
        assert "0 dead letters" in dead_letters(w), dead_letters(w)
    with_world(body, matrix_extra='post_unencrypted = ["#secret:localhost"]; ')


@test
def a_room_encrypted_later_is_noticed_and_an_encrypted_command_is_logged_once():
    def body(w):
        room = w.rooms["alerts"]
        w.broker.publish("zuul/scs/check", payload=report("bs-before"))
        wait_for(lambda: bot_posts(w, room, "bs-before"), 20, "the report before encryption")
        w.hs.call("PUT", "/_matrix/client/v3/rooms/%s/state/m.room.encryption/" % urllib.request.quote(room),
                  {"algorithm": "m.megolm.v1.aes-sha2"}, token=w.alice.token)
        wait_for(lambda: w.bridge.log().count(REFUSED) >= 2, 20, "the encryption noticed through /sync")
        w.broker.publish("zuul/scs/check", payload=report("bs-after"))
        wait_for(lambda: "bs-after" in dead_letters(w), 20, "the report after encryption as a dead letter")
        for n in range(2):   # what a client sends for "!zuul help" once the room is encrypted
            w.hs.send(w.alice, room, {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEn%d" % n,
                                      "device_id": "ALICEDEV", "sender_key": "c2VuZGVy",
                                      "session_id": "c2Vzc2lvbg"}, etype="m.room.encrypted")
        w.bridge.wait_log("an encrypted message cannot be read", 20)
        time.sleep(1)
        log = w.bridge.log()
        assert log.count('level=warn msg="an encrypted message cannot be read') == 1, "once per room"
        assert bot_posts(w, room, "bs-after") == [], "nothing in the clear after the room was encrypted"
    with_world(body, extra=CHATOPS)


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
