#!/usr/bin/python3
"""test_fake_homeserver: checks the fake Matrix homeserver the bridge's integration tests use.

Starts tests/fake_homeserver.py as a subprocess (as the bridge tests will) and drives it over
real HTTP, keep-alive on one connection; one in-process test covers the importable class."""

import ctypes
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tap import run, test  # noqa: E402
import fake_homeserver  # noqa: E402

ALERTS = "!alerts:localhost"
OPS = "!ops:localhost"
PRIVATE = "!private:localhost"
BOT, ALICE, BOB = "@zuul-bot:localhost", "@alice:localhost", "@bob:localhost"


def q(s):
    """Percent-encodes one path segment, as a client must ('#', '!', ':' included)."""
    return urllib.parse.quote(s, safe="")


def _die_with_parent():
    # tap.run() ends with os._exit, so no cleanup code runs after the last point: have the
    # kernel send SIGTERM to the server when this process goes (Linux prctl PR_SET_PDEATHSIG).
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def start_server():
    tmp = tempfile.mkdtemp(prefix="fakehs-")
    config = fake_homeserver.default_config("localhost")
    # A second device for the bridge user, and a second token of its first device:
    # transaction ids are scoped per (user, device), as Synapse does since MSC3970.
    config["users"][0]["tokens"] = ["bridge-token", {"token": "bridge-token-2", "device_id": "SECOND"},
                                    {"token": "bridge-token-again", "device_id": "BRIDGE_TOKEN"}]
    config["rooms"].append({"room_id": PRIVATE, "aliases": ["#private:localhost"],
                            "join_rule": "invite", "members": {ALICE: "join"}})
    cfg_path = os.path.join(tmp, "rooms.json")
    with open(cfg_path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "fake_homeserver.py"),
                             "--port", "0", "--port-file", port_file, "--config", cfg_path],
                            preexec_fn=_die_with_parent)
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("fake homeserver did not start (exit %r)" % proc.poll())
        time.sleep(0.02)
    with open(port_file, encoding="ascii") as f:
        port = int(f.read())
    return proc, port, tmp


PROC, PORT, TMP = start_server()


class Client:
    """One keep-alive HTTP/1.1 connection; request() returns (status, json-or-text, headers)."""

    def __init__(self, timeout=10):
        self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)

    def request(self, method, path, body=None, token="bridge-token", headers=None):
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode("utf-8", "replace")
        return resp.status, parsed, resp


C = Client()
V3 = "/_matrix/client/v3"


def expect(got, status, errcode=None):
    """Asserts status (and errcode); returns the body."""
    st, body, _ = got
    assert st == status, "expected HTTP %d, got %d: %r" % (status, st, body)
    if errcode is not None:
        assert isinstance(body, dict) and body.get("errcode") == errcode, \
            "expected errcode %s, got %r" % (errcode, body)
        assert isinstance(body.get("error"), str), "error text missing in %r" % (body,)
    return body


def send(room, text, txn, token="bridge-token", etype="m.room.message", content=None,
         client=None):
    content = content if content is not None else {"msgtype": "m.notice", "body": text}
    path = "%s/rooms/%s/send/%s/%s" % (V3, q(room), etype, txn)
    return (client or C).request("PUT", path, content, token=token)


def timeline(room):
    return expect(C.request("GET", "/_fake/rooms/%s/events" % q(room), token=None), 200)


def reset():
    expect(C.request("POST", "/_fake/reset", token=None), 200)


def sync(params, token="bridge-token", client=None):
    return (client or C).request("GET", V3 + "/sync?" + urllib.parse.urlencode(params),
                                 token=token)


@test
def versions_needs_no_auth_and_lists_v1():
    body = expect(C.request("GET", "/_matrix/client/versions", token=None), 200)
    assert "v1.1" in body["versions"], body


@test
def missing_token_is_401_m_missing_token():
    expect(C.request("GET", V3 + "/account/whoami", token=None), 401, "M_MISSING_TOKEN")


@test
def unknown_token_is_401_m_unknown_token_without_soft_logout():
    body = expect(C.request("GET", V3 + "/account/whoami", token="nope"), 401, "M_UNKNOWN_TOKEN")
    assert body.get("soft_logout") is False, "expected soft_logout false, got %r" % body


@test
def whoami_returns_user_device_and_is_guest_false():
    body = expect(C.request("GET", V3 + "/account/whoami"), 200)
    assert body == {"user_id": BOT, "device_id": "BRIDGE_TOKEN", "is_guest": False}, body
    body = expect(C.request("GET", V3 + "/account/whoami", token="bridge-token-2"), 200)
    assert body["device_id"] == "SECOND", body


@test
def query_access_token_is_accepted_and_mixing_is_refused():
    body = expect(C.request("GET", V3 + "/account/whoami?access_token=alice-token", token=None),
                  200)
    assert body["user_id"] == ALICE, body
    expect(C.request("GET", V3 + "/account/whoami?access_token=alice-token"), 401,
           "M_MISSING_TOKEN")


@test
def alias_lookup_needs_percent_encoding_and_unknown_is_404():
    body = expect(C.request("GET", V3 + "/directory/room/" + q("#alerts:localhost")), 200)
    assert body == {"room_id": ALERTS, "servers": ["localhost"]}, body
    expect(C.request("GET", V3 + "/directory/room/" + q("#nope:localhost")), 404, "M_NOT_FOUND")


@test
def join_invited_room_by_alias_is_idempotent():
    reset()
    before = len(timeline(OPS))
    for _ in range(2):
        body = expect(C.request("POST", V3 + "/join/" + q("#ops:localhost"), {}), 200)
        assert body == {"room_id": OPS}, body
    body = expect(C.request("POST", V3 + "/rooms/%s/join" % q(OPS), b""), 200)
    assert body == {"room_id": OPS}, body
    added = timeline(OPS)[before:]
    assert [(e["type"], e["state_key"], e["content"]["membership"]) for e in added] == \
        [("m.room.member", BOT, "join")], "expected exactly one join event, got %r" % added


@test
def join_invite_only_room_without_invite_is_403():
    expect(C.request("POST", V3 + "/rooms/%s/join" % q(PRIVATE), {}), 403, "M_FORBIDDEN")
    expect(C.request("POST", V3 + "/join/" + q("#private:localhost"), {}), 403, "M_FORBIDDEN")


@test
def join_unknown_room_or_alias_is_404():
    expect(C.request("POST", V3 + "/join/" + q("!nowhere:localhost"), {}), 404, "M_NOT_FOUND")
    expect(C.request("POST", V3 + "/join/" + q("#nowhere:localhost"), {}), 404, "M_NOT_FOUND")


@test
def send_stores_event_with_sender_type_and_txn():
    reset()
    body = expect(send(ALERTS, "build failed", "txn-a"), 200)
    assert body["event_id"].startswith("$"), body
    ev = timeline(ALERTS)[-1]
    assert ev["event_id"] == body["event_id"] and ev["sender"] == BOT \
        and ev["type"] == "m.room.message" and ev["room_id"] == ALERTS, ev
    assert ev["content"] == {"msgtype": "m.notice", "body": "build failed"}, ev
    assert ev["unsigned"]["transaction_id"] == "txn-a" and ev["origin_server_ts"] > 0, ev
    got = expect(C.request("GET", V3 + "/rooms/%s/event/%s" % (q(ALERTS), q(ev["event_id"]))),
                 200)
    assert got["content"]["body"] == "build failed", got
    expect(C.request("GET", V3 + "/rooms/%s/event/%s" % (q(ALERTS), q("$missing"))), 404,
           "M_NOT_FOUND")


@test
def resent_txn_with_same_token_returns_same_event_id_without_new_event():
    reset()
    expect(C.request("DELETE", "/_fake/requests", token=None), 200)
    first = expect(send(ALERTS, "once", "txn-dup"), 200)
    count = len(timeline(ALERTS))
    second = expect(send(ALERTS, "once", "txn-dup"), 200)
    assert second["event_id"] == first["event_id"], (first, second)
    assert len(timeline(ALERTS)) == count, "a repeated txnId added an event"
    reqs = [r for r in expect(C.request("GET", "/_fake/requests", token=None), 200)
            if "/send/" in r["path"]]
    assert len(reqs) == 2 and reqs[1].get("duplicate_txn") is True, reqs


@test
def same_txn_with_other_token_is_a_new_event():
    reset()
    a = expect(send(ALERTS, "one", "txn-x", token="bridge-token"), 200)
    b = expect(send(ALERTS, "one", "txn-x", token="bridge-token-2"), 200)
    c = expect(send(ALERTS, "one", "txn-x", token="alice-token"), 200)
    assert len({a["event_id"], b["event_id"], c["event_id"]}) == 3, (a, b, c)


@test
def same_txn_with_another_token_of_the_same_device_is_the_same_event():
    reset()
    a = expect(send(ALERTS, "one", "txn-d", token="bridge-token"), 200)
    b = expect(send(ALERTS, "one", "txn-d", token="bridge-token-again"), 200)
    assert a["event_id"] == b["event_id"], (a, b)


@test
def a_transaction_is_forgotten_after_24_hours_of_the_clock():
    clock = os.path.join(TMP, "txn-clock")
    with open(clock, "w") as f:
        f.write("1800000000\n")
    hs = fake_homeserver.FakeHomeserver(dict(fake_homeserver.default_config("localhost"), clock_file=clock))
    port = hs.start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def put(txn):
            c.request("PUT", "%s/rooms/%s/send/m.room.message/%s" % (V3, q(ALERTS), txn),
                      json.dumps({"msgtype": "m.text", "body": "x"}),
                      {"Authorization": "Bearer bridge-token", "Content-Type": "application/json"})
            r = c.getresponse()
            return json.loads(r.read())["event_id"]
        first = put("t24")
        with open(clock, "w") as f:
            f.write("%d\n" % (1800000000 + 24 * 3600))
        assert put("t24") == first, "still the same transaction at 24 hours"
        with open(clock, "w") as f:
            f.write("%d\n" % (1800000000 + 24 * 3600 + 2))
        assert put("t24") != first, "a transaction older than 24 hours is a new event"
    finally:
        hs.stop()


@test
def rc_message_limits_sends_per_user_as_synapse_does():
    config = dict(fake_homeserver.default_config("localhost"), rc_message={"per_second": 2, "burst_count": 3},
                  rc_message_exempt=["@alice:localhost"])
    hs = fake_homeserver.FakeHomeserver(config)
    port = hs.start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

        def put(txn, token="bridge-token"):
            c.request("PUT", "%s/rooms/%s/send/m.room.message/%s" % (V3, q(ALERTS), txn),
                      json.dumps({"msgtype": "m.text", "body": "x"}),
                      {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, json.loads(r.read()), r
        assert [put("b%d" % i)[0] for i in range(3)] == [200, 200, 200], "the burst"
        start = time.monotonic()
        status, body, resp = put("b3")
        took = time.monotonic() - start
        assert status == 429 and body["errcode"] == "M_LIMIT_EXCEEDED", (status, body)
        assert 0 < body["retry_after_ms"] <= 500, body
        assert resp.getheader("Retry-After") == "1", resp.getheaders()
        assert took >= 0.45, "Synapse holds a 429 back for 0.5 s; took %.2f s" % took
        assert put("b0")[0] == 200, "a repeated transaction is answered from the cache, not limited"
        assert [put("a%d" % i, "alice-token")[0] for i in range(6)] == [200] * 6, "alice is exempt"
        time.sleep(body["retry_after_ms"] / 1000.0)
        assert put("b3")[0] == 200, "after retry_after_ms the refused transaction goes through"
    finally:
        hs.stop()


@test
def kick_ban_and_unban_follow_synapses_rules():
    reset()
    room = "%s/rooms/%s" % (V3, q(ALERTS))
    bob = "@bob:localhost"
    expect(C.request("POST", room + "/kick", {"user_id": ALICE}, token="bob-token"), 403, "M_FORBIDDEN")
    expect(C.request("POST", room + "/ban", {"user_id": bob, "reason": "spam"}, token="alice-token"), 200)
    expect(send(ALERTS, "hi", "banned-1", token="bob-token"), 403, "M_FORBIDDEN")
    expect(C.request("POST", room + "/kick", {"user_id": bob}, token="alice-token"), 403, "M_FORBIDDEN")
    expect(C.request("POST", room + "/unban", {"user_id": bob}, token="alice-token"), 200)
    expect(C.request("POST", room + "/unban", {"user_id": bob}, token="alice-token"), 403, "M_FORBIDDEN")
    member = [e for e in timeline(ALERTS) if e["type"] == "m.room.member" and e.get("state_key") == bob]
    assert [e["content"]["membership"] for e in member][-2:] == ["ban", "leave"], member
    assert member[-2]["content"].get("reason") == "spam", member[-2]
    expect(C.request("POST", room + "/kick", {}, token="alice-token"), 400, "M_MISSING_PARAM")


@test
def relations_are_checked_as_synapse_checks_them():
    reset()
    root = expect(send(ALERTS, "root", "r-root", token="alice-token"), 200)["event_id"]
    other_room = expect(send(PRIVATE, "elsewhere", "r-else", token="alice-token"), 200)["event_id"]

    def related(txn, rel, etype="m.room.message"):
        content = {"msgtype": "m.text", "body": "x", "m.relates_to": rel} if etype == "m.room.message" \
            else {"m.relates_to": rel}
        return send(ALERTS, None, txn, token="alice-token", etype=etype, content=content)
    expect(related("r1", {"rel_type": "m.thread", "event_id": "$unknown"}), 400, "M_UNKNOWN")
    expect(related("r2", {"rel_type": "m.replace", "event_id": other_room}), 400, "M_UNKNOWN")
    reply = expect(related("r3", {"rel_type": "m.thread", "event_id": root}), 200)["event_id"]
    expect(related("r4", {"rel_type": "m.thread", "event_id": reply}), 400, "M_UNKNOWN")
    expect(related("r5", {"rel_type": "m.annotation", "event_id": root}, "m.reaction"), 400, "M_UNKNOWN")
    expect(related("r6", {"rel_type": "m.annotation", "event_id": root, "key": "k" * 501}, "m.reaction"), 400,
           "M_UNKNOWN")
    expect(related("r7", {"rel_type": "m.annotation", "event_id": root, "key": "ok"}, "m.reaction"), 200)
    # a relation without an event id is no relation to Synapse: sent as it is
    expect(related("r8", {"rel_type": "m.thread"}), 200)


@test
def send_body_must_be_a_json_object():
    expect(send(ALERTS, None, "bad1", content="{not json"), 400, "M_NOT_JSON")
    expect(send(ALERTS, None, "bad2", content="[1, 2]"), 400, "M_BAD_JSON")
    expect(send(ALERTS, None, "bad3", content=b""), 400, "M_NOT_JSON")


@test
def send_to_room_not_joined_or_unknown_is_403():
    reset()
    expect(send(OPS, "hi", "t1"), 403, "M_FORBIDDEN")  # only invited
    expect(send("!nowhere:localhost", "hi", "t2"), 403, "M_FORBIDDEN")  # Synapse: Unknown room


@test
def unknown_endpoint_is_404_and_wrong_method_is_405_unrecognized():
    expect(C.request("GET", V3 + "/no/such/thing"), 404, "M_UNRECOGNIZED")
    expect(C.request("POST", V3 + "/account/whoami", {}), 405, "M_UNRECOGNIZED")


@test
def error_replies_keep_the_connection_alive():
    C.request("GET", "/_matrix/client/versions", token=None)
    sock = C.conn.sock
    for _ in range(5):
        expect(send(ALERTS, None, "ka", content="{"), 400, "M_NOT_JSON")
        expect(C.request("GET", V3 + "/account/whoami"), 200)
    assert C.conn.sock is sock, "the server closed a keep-alive connection"


@test
def initial_sync_has_joined_room_state_timeline_and_invite():
    reset()
    sent = expect(send(ALERTS, "hello", "init-1"), 200)["event_id"]
    body = expect(sync({"timeout": "5000"}), 200)  # an initial sync never waits
    assert body["next_batch"], body
    room = body["rooms"]["join"][ALERTS]
    for key in ("timeline", "state", "account_data", "ephemeral"):
        assert key in room, "rooms.join.%s missing" % key
    events = room["timeline"]["events"]
    assert events[-1]["event_id"] == sent and "room_id" not in events[-1], events[-1]
    assert events[-1]["unsigned"]["transaction_id"] == "init-1", events[-1]
    state_types = {e["type"] for e in room["state"]["events"]} | {e["type"] for e in events}
    assert {"m.room.create", "m.room.power_levels", "m.room.member"} <= state_types, state_types
    assert isinstance(room["timeline"]["limited"], bool) and room["timeline"]["prev_batch"]
    invite = body["rooms"]["invite"][OPS]["invite_state"]["events"]
    assert any(e["type"] == "m.room.member" and e["state_key"] == BOT
               and e["content"]["membership"] == "invite" for e in invite), invite
    assert PRIVATE not in body["rooms"]["join"], "a room the bot is not in was synced"


@test
def invites_come_whatever_the_filters_room_list_says_as_synapse_sends_them():
    reset()
    for rooms in ([ALERTS], []):
        body = expect(sync({"filter": json.dumps({"room": {"rooms": rooms}})}), 200)
        assert OPS in body["rooms"]["invite"], (rooms, body.get("rooms"))
        assert list(body["rooms"].get("join", {})) == rooms, (rooms, body.get("rooms"))


@test
def incremental_sync_long_poll_wakes_on_new_event():
    reset()
    since = expect(sync({}), 200)["next_batch"]
    poller = Client(timeout=15)

    def later():  # on the main connection, while the poller's is busy
        time.sleep(0.3)
        send(ALERTS, "wake up", "wake-1", token="alice-token")
    sender = threading.Thread(target=later)
    start = time.monotonic()
    sender.start()
    try:
        body = expect(sync({"since": since, "timeout": "10000"}, client=poller), 200)
    finally:
        sender.join()
    took = time.monotonic() - start
    assert 0.2 < took < 3, "long poll took %.2fs, expected a wake-up after ~0.3s" % took
    events = body["rooms"]["join"][ALERTS]["timeline"]["events"]
    assert [e["content"]["body"] for e in events] == ["wake up"], events
    assert "transaction_id" not in events[0]["unsigned"], "txn id leaked to another user"
    assert body["rooms"]["join"][ALERTS]["timeline"]["limited"] is False


@test
def incremental_sync_times_out_with_no_rooms():
    reset()  # no cached answer of an earlier test: a fresh /sync says where the stream is now
    since = expect(sync({}), 200)["next_batch"]
    start = time.monotonic()
    body = expect(sync({"since": since, "timeout": "300"}), 200)
    took = time.monotonic() - start
    assert 0.25 < took < 2, "timeout 300ms took %.2fs" % took
    assert "rooms" not in body and body["next_batch"] == since, body


@test
def sync_filter_by_room_and_type_inline_and_uploaded():
    reset()
    since = expect(sync({}), 200)["next_batch"]
    expect(send(ALERTS, "msg", "f1", token="alice-token"), 200)
    target = expect(send(ALERTS, "msg", "f0", token="alice-token"), 200)["event_id"]
    expect(send(ALERTS, None, "f2", token="alice-token", etype="m.reaction",
                content={"m.relates_to": {"rel_type": "m.annotation",
                                          "event_id": target, "key": "👀"}}), 200)
    inline = json.dumps({"room": {"rooms": [ALERTS], "timeline": {"types": ["m.reaction"]}}})
    body = expect(sync({"since": since, "filter": inline}), 200)
    types = [e["type"] for e in body["rooms"]["join"][ALERTS]["timeline"]["events"]]
    assert types == ["m.reaction"], types
    fid = expect(C.request("POST", V3 + "/user/%s/filter" % q(BOT),
                           {"room": {"rooms": [OPS]}}), 200)["filter_id"]
    body = expect(sync({"since": since, "filter": fid, "timeout": "0"}), 200)
    assert "rooms" not in body, "room filter let %r through" % body.get("rooms")
    expect(sync({"since": since, "filter": "999"}), 400, "M_INVALID_PARAM")
    expect(sync({"filter": "{broken"}), 400, "M_NOT_JSON")


@test
def sync_limited_when_more_events_than_limit():
    reset()
    since = expect(sync({}), 200)["next_batch"]
    for i in range(5):
        expect(send(ALERTS, "n%d" % i, "lim-%d" % i), 200)
    flt = json.dumps({"room": {"timeline": {"limit": 2}}})
    tl = expect(sync({"since": since, "filter": flt}), 200)["rooms"]["join"][ALERTS]["timeline"]
    assert tl["limited"] is True, tl
    assert [e["content"]["body"] for e in tl["events"]] == ["n3", "n4"], tl["events"]
    flt = json.dumps({"room": {"timeline": {"limit": 5}}})
    tl = expect(sync({"since": since, "filter": flt}), 200)["rooms"]["join"][ALERTS]["timeline"]
    assert tl["limited"] is False and len(tl["events"]) == 5, tl


@test
def bad_since_token_is_400_and_future_token_is_bounded():
    reset()  # no cached answer of an earlier test: a fresh /sync says where the stream is now
    expect(sync({"since": "garbage"}), 400, "M_UNKNOWN")
    body = expect(sync({"since": "s999999999", "timeout": "0"}), 200)
    now = expect(sync({}), 200)["next_batch"]
    assert body["next_batch"] == now, "future token not bounded: %r vs %r" % (body, now)


@test
def sync_answers_are_cached_for_two_minutes_as_synapse_does():
    reset()
    first = expect(sync({}), 200)
    expect(send(ALERTS, "later", "cache-1", token="alice-token"), 200)
    again = expect(sync({}), 200)
    assert again["next_batch"] == first["next_batch"], "the same fresh /sync within 2 minutes is Synapse's cached answer"
    other = expect(sync({"timeout": "1"}), 200)
    assert other["next_batch"] != first["next_batch"], "another request (timeout) is computed anew"
    body = expect(sync({"since": first["next_batch"], "timeout": "0"}), 200)
    [ev] = [e for e in body["rooms"]["join"][ALERTS]["timeline"]["events"] if e["content"].get("body") == "later"]
    time.sleep(0.3)
    cached = expect(sync({"since": first["next_batch"], "timeout": "0"}), 200)
    [ev2] = [e for e in cached["rooms"]["join"][ALERTS]["timeline"]["events"] if e["content"].get("body") == "later"]
    assert ev2["event_id"] == ev["event_id"] and ev2["unsigned"]["age"] >= ev["unsigned"]["age"] + 250, (ev, ev2)
    empty_since = body["next_batch"]
    assert "rooms" not in expect(sync({"since": empty_since, "timeout": "0"}), 200)
    expect(send(ALERTS, "after the empty answer", "cache-2", token="alice-token"), 200)
    body = expect(sync({"since": empty_since, "timeout": "0"}), 200)
    assert any(e["content"].get("body") == "after the empty answer"
               for e in body["rooms"]["join"][ALERTS]["timeline"]["events"]), "an empty answer is not kept"


@test
def fault_500_three_times_then_200():
    expect(C.request("POST", "/_fake/faults", [{"method": "PUT", "path": "/send/",
                                                "status": 500, "count": 3}], token=None), 200)
    for i in range(3):
        expect(send(ALERTS, "x", "fault-%d" % i), 500, "M_UNKNOWN")
    expect(send(ALERTS, "x", "fault-ok"), 200)
    rules = expect(C.request("GET", "/_fake/faults", token=None), 200)["rules"]
    assert rules[0]["remaining"] == 0 and rules[0]["hits"] == 3, rules
    expect(C.request("DELETE", "/_fake/faults", token=None), 200)


@test
def fault_429_has_retry_after_ms_and_header():
    expect(C.request("POST", "/_fake/faults", [{"path": "/send/", "status": 429,
                                                "retry_after_ms": 1500}], token=None), 200)
    st, body, resp = send(ALERTS, "x", "rl-1")
    assert st == 429 and body["errcode"] == "M_LIMIT_EXCEEDED", body
    assert body["retry_after_ms"] == 1500, body
    assert resp.getheader("Retry-After") == "2", resp.getheader("Retry-After")
    expect(send(ALERTS, "x", "rl-1"), 200)  # count defaults to 1


@test
def fault_drop_closes_connection_without_response():
    expect(C.request("POST", "/_fake/faults", [{"path": "/whoami", "action": "drop"}],
                     token=None), 200)
    other = Client()
    try:
        other.request("GET", V3 + "/account/whoami")
        raise AssertionError("expected the connection to be dropped, got a response")
    except (http.client.RemoteDisconnected, ConnectionError):
        pass
    expect(C.request("GET", V3 + "/account/whoami"), 200)


@test
def fault_hang_is_released_by_delete_faults():
    expect(C.request("POST", "/_fake/faults", [{"path": "/whoami", "action": "hang",
                                                "seconds": 10}], token=None), 200)
    other = Client(timeout=8)
    outcome = {}

    def hang():
        start = time.monotonic()
        try:
            other.request("GET", V3 + "/account/whoami")
            outcome["result"] = "answered"
        except (http.client.RemoteDisconnected, ConnectionError):
            outcome["result"] = "closed"
        outcome["took"] = time.monotonic() - start
    t = threading.Thread(target=hang)
    t.start()
    time.sleep(0.4)
    assert t.is_alive(), "the hung request finished early: %r" % outcome
    expect(C.request("DELETE", "/_fake/faults", token=None), 200)
    t.join(5)
    assert outcome.get("result") == "closed" and outcome["took"] < 3, outcome


@test
def fault_delay_answers_normally_after_the_delay():
    expect(C.request("POST", "/_fake/faults", [{"path": "/whoami", "action": "delay",
                                                "seconds": 0.3}], token=None), 200)
    start = time.monotonic()
    expect(C.request("GET", V3 + "/account/whoami"), 200)
    assert time.monotonic() - start >= 0.28, "delay not applied"


@test
def fault_no_wait_answers_a_long_poll_at_once_where_its_query_matches():
    reset()  # no cached answer of an earlier test: a fresh /sync says where the stream is now
    now = expect(sync({}), 200)["next_batch"]
    expect(C.request("POST", "/_fake/faults", [{"path": "/sync$", "action": "no_wait", "count": -1,
                                                "query": "since=s[0-9]+&"}], token=None), 200)
    try:
        start = time.monotonic()
        body = expect(sync({"since": now, "timeout": "5000", "x": "1"}), 200)
        took = time.monotonic() - start
        assert took < 2 and body["next_batch"] == now and "rooms" not in body, (took, body)
        start = time.monotonic()   # the query does not match (since is last): held as asked
        body = expect(sync({"timeout": "600", "since": now}), 200)
        assert time.monotonic() - start >= 0.55 and "rooms" not in body, body
    finally:
        expect(C.request("DELETE", "/_fake/faults", token=None), 200)


@test
def fault_pad_adds_a_filler_to_the_real_answer():
    expect(C.request("POST", "/_fake/faults", [{"path": "/sync$", "action": "pad", "pad_bytes": 1000}],
                     token=None), 200)
    body = expect(sync({}), 200)
    assert body["next_batch"].startswith("s") and len(body["org.example.fake.padding"]) == 1000, sorted(body)
    assert "org.example.fake.padding" not in expect(sync({}), 200), "count defaults to 1"


@test
def inject_reaction_shows_in_relations():
    reset()
    root = expect(send(ALERTS, "job failed", "rel-root"), 200)["event_id"]
    react = expect(C.request("POST", "/_fake/rooms/%s/inject" % q(ALERTS), {
        "sender": ALICE, "type": "m.reaction",
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": root,
                                     "key": "👀"}}}, token=None), 200)["event_id"]
    reply = expect(send(ALERTS, None, "rel-thread", token="bob-token", content={
        "msgtype": "m.text", "body": "on it",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}}), 200)["event_id"]
    base = "/_matrix/client/v1/rooms/%s/relations/%s" % (q(ALERTS), q(root))
    chunk = expect(C.request("GET", base), 200)["chunk"]
    assert [e["event_id"] for e in chunk] == [reply, react], "newest first expected: %r" % chunk
    chunk = expect(C.request("GET", base + "/m.annotation/m.reaction"), 200)["chunk"]
    assert [e["event_id"] for e in chunk] == [react] and chunk[0]["sender"] == ALICE, chunk
    page = expect(C.request("GET", base + "?limit=1"), 200)
    assert len(page["chunk"]) == 1 and page.get("next_batch"), page
    rest = expect(C.request("GET", base + "?limit=1&from=" + page["next_batch"]), 200)
    assert [e["event_id"] for e in rest["chunk"]] == [react], rest
    expect(C.request("GET", "/_matrix/client/v1/rooms/%s/relations/%s" % (q(ALERTS),
                                                                         q("$nope"))), 404,
           "M_NOT_FOUND")


@test
def state_put_is_power_checked_and_unchanged_state_adds_no_event():
    reset()
    path = V3 + "/rooms/%s/state/m.room.topic/" % q(ALERTS)
    first = expect(C.request("PUT", path, {"topic": "CI"}), 200)["event_id"]
    count = len(timeline(ALERTS))
    again = expect(C.request("PUT", path, {"topic": "CI"}), 200)["event_id"]
    assert again == first and len(timeline(ALERTS)) == count, "unchanged state added an event"
    body = expect(C.request("GET", path), 200)
    assert body == {"topic": "CI"}, body
    expect(C.request("PUT", path, {"topic": "bob's"}, token="bob-token"), 403, "M_FORBIDDEN")
    expect(C.request("GET", V3 + "/rooms/%s/state/m.room.avatar/" % q(ALERTS)), 404,
           "M_NOT_FOUND")


@test
def redact_empties_content_and_records_redacted_because():
    reset()
    msg = expect(send(ALERTS, "oops", "red-1"), 200)["event_id"]
    red = expect(C.request("PUT", V3 + "/rooms/%s/redact/%s/red-txn" % (q(ALERTS), q(msg)),
                           {"reason": "typo"}), 200)["event_id"]
    again = expect(C.request("PUT", V3 + "/rooms/%s/redact/%s/red-txn" % (q(ALERTS), q(msg)),
                             {"reason": "typo"}), 200)["event_id"]
    assert red == again, "redaction txn not idempotent"
    ev = expect(C.request("GET", V3 + "/rooms/%s/event/%s" % (q(ALERTS), q(msg))), 200)
    assert ev["content"] == {} and ev["unsigned"]["redacted_because"]["event_id"] == red, ev
    expect(C.request("PUT", V3 + "/rooms/%s/redact/%s/red-2" % (q(ALERTS), q(msg)), {},
                     token="bob-token"), 403, "M_FORBIDDEN")


@test
def leave_messages_and_joined_rooms_follow_membership():
    reset()
    rooms = expect(C.request("GET", V3 + "/joined_rooms"), 200)["joined_rooms"]
    assert rooms == [ALERTS], rooms
    expect(send(ALERTS, "first", "m1"), 200)
    expect(send(ALERTS, "second", "m2"), 200)
    page = expect(C.request("GET", V3 + "/rooms/%s/messages?dir=b&limit=2" % q(ALERTS)), 200)
    assert [e["content"]["body"] for e in page["chunk"]] == ["second", "first"], page
    since = expect(sync({}), 200)["next_batch"]
    expect(C.request("POST", V3 + "/rooms/%s/leave" % q(ALERTS), {}), 200)
    body = expect(sync({"since": since}), 200)
    left = body["rooms"]["leave"][ALERTS]["timeline"]["events"]
    assert left[-1]["content"]["membership"] == "leave", left
    expect(send(ALERTS, "gone", "m3"), 403, "M_FORBIDDEN")
    expect(C.request("POST", V3 + "/rooms/%s/join" % q(ALERTS), {}), 200)  # public room


@test
def html_and_text_pages_show_messages_edits_reactions_threads():
    reset()
    root = expect(send(ALERTS, "nightly failed", "h1", content={
        "msgtype": "m.notice", "body": "nightly failed", "format": "org.matrix.custom.html",
        "formatted_body": "<b>nightly</b> failed <script>alert(1)</script>"}), 200)["event_id"]
    expect(send(ALERTS, None, "h2", content={
        "msgtype": "m.notice", "body": "* nightly failed twice",
        "m.new_content": {"msgtype": "m.notice", "body": "nightly failed twice",
                          "format": "org.matrix.custom.html",
                          "formatted_body": "<b>nightly</b> failed twice <script>x()</script>"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": root}}), 200)
    for tok in ("alice-token", "bob-token"):
        expect(send(ALERTS, None, "h3", token=tok, etype="m.reaction", content={
            "m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "✅"}}), 200)
    expect(send(ALERTS, None, "h4", token="alice-token", content={
        "msgtype": "m.text", "body": "fixed in 1234",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root}}), 200)
    st, page, resp = C.request("GET", "/_fake/rooms/%s/html" % q(ALERTS), token=None)
    assert st == 200 and resp.getheader("Content-Type").startswith("text/html"), st
    assert "failed twice" in page and "(edited)" in page and "✅ 2" in page, page
    assert "<script>" not in page and "sandbox=''" in page, "unsandboxed HTML in page"
    assert "class='thread'" in page and "fixed in 1234" in page, page
    st, text, _ = C.request("GET", "/_fake/rooms/%s/text" % q(ALERTS), token=None)
    lines = text.splitlines()
    assert "%s: nightly failed twice (edited)" % BOT in lines, text
    assert "    [✅ 2]" in lines and "    %s: fixed in 1234" % ALICE in lines, text


@test
def reset_restores_rooms_memberships_and_txns():
    expect(C.request("POST", V3 + "/join/" + q(OPS), {}), 200)
    expect(send(OPS, "before reset", "reset-txn"), 200)
    old_since = expect(sync({}), 200)["next_batch"]
    reset()
    assert not any(e["type"] == "m.room.message" for e in timeline(OPS)), "events survived"
    expect(send(OPS, "after reset", "reset-txn"), 403, "M_FORBIDDEN")  # bot invited again
    body = expect(sync({"since": old_since, "timeout": "0"}), 200)
    assert int(body["next_batch"][1:]) > int(old_since[1:]), "stream went back: %r" % body
    assert expect(C.request("GET", "/_fake/faults", token=None), 200)["rules"] == []


@test
def requests_log_hides_authorization_but_names_token():
    expect(C.request("DELETE", "/_fake/requests", token=None), 200)
    expect(send(ALERTS, "logged", "log-1", token="alice-token"), 200)
    reqs = expect(C.request("GET", "/_fake/requests", token=None), 200)
    assert len(reqs) == 1, "expected only the send to be logged, got %r" % reqs
    r = reqs[0]
    assert r["method"] == "PUT" and r["token"] == "alice-token" and r["status"] == 200, r
    assert r["body"] == {"msgtype": "m.notice", "body": "logged"}, r
    assert not any(k.lower() == "authorization" for k in r["headers"]), r["headers"]
    assert r["decoded_path"].endswith("/rooms/%s/send/m.room.message/log-1" % ALERTS), r


@test
def in_process_server_with_default_config():
    hs = fake_homeserver.FakeHomeserver()
    port = hs.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", V3 + "/directory/room/" + q("#ops:localhost"),
                     headers={"Authorization": "Bearer bob-token"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 200 and body["room_id"] == OPS, body
        conn.close()
    finally:
        hs.stop()


@test
def a_clock_file_dates_events_and_the_views_show_times_and_replies():
    tmp = tempfile.mkdtemp(prefix="fakehs-clock-")
    clock = os.path.join(tmp, "clock")
    with open(clock, "w", encoding="ascii") as f:
        f.write("1767664800\n")                       # Tue 06 Jan 2026 02:00 UTC
    config = fake_homeserver.default_config("localhost")
    config["clock_file"] = clock
    hs = fake_homeserver.FakeHomeserver(config)
    hs.start()
    try:
        with hs.cond:
            room = hs.rooms[ALERTS]
            asked = hs._append(room, ALICE, "m.room.message", {"msgtype": "m.text", "body": "!zuul oncall"})
            with open(clock, "w", encoding="ascii") as f:
                f.write("1767664860.5\n")             # a minute later
            hs._append(room, BOT, "m.room.message", {
                "msgtype": "m.notice", "body": "now @alice:localhost",
                "m.relates_to": {"m.in_reply_to": {"event_id": asked["event_id"]}}})
            hs._append(room, BOB, "m.room.message", {
                "msgtype": "m.text", "body": "in the thread",
                "m.relates_to": {"rel_type": "m.thread", "event_id": asked["event_id"], "is_falling_back": True,
                                 "m.in_reply_to": {"event_id": asked["event_id"]}}})
            assert asked["origin_server_ts"] == 1767664800000, asked["origin_server_ts"]
            assert room.events[-1]["origin_server_ts"] == 1767664860500, room.events[-1]["origin_server_ts"]
            age = hs.client_event(asked)["unsigned"]["age"]
            assert 0 <= age < 5000, "expected the age in real time (Synapse's age_ts), not the clock file's: %r" % age
            text = hs._render_text(room).splitlines()
            page = hs._render_html(room)
        assert "[Tue 06 Jan 02:00] %s: !zuul oncall" % ALICE in text, text
        assert "[Tue 06 Jan 02:01] %s: now @alice:localhost" % BOT in text, text
        assert "    [Tue 06 Jan 02:01] %s: in the thread" % BOB in text, "thread reply nested under its root"
        assert "Tue 06 Jan 2026 02:01 UTC" in page, page
        assert "<div class='msg notice'" in page, "a notice is marked as one"
        assert page.count("in reply to <b>%s</b>: <q>!zuul oncall</q>" % ALICE) == 1, \
            "expected the rich reply (and not the thread's fallback) to name what it answers"
        with open(clock, "w", encoding="ascii") as f:
            f.write("not a number\n")
        assert abs(hs.now_ms() - time.time() * 1000) < 5000, "an unreadable clock file means real time"
    finally:
        hs.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@test
def without_a_clock_file_the_text_view_has_no_times():
    hs = fake_homeserver.FakeHomeserver()
    with hs.cond:
        hs._append(hs.rooms[ALERTS], ALICE, "m.room.message", {"msgtype": "m.text", "body": "hello"})
        text = hs._render_text(hs.rooms[ALERTS]).splitlines()
    assert "%s: hello" % ALICE in text, text


@test
def sigterm_stops_server_and_removes_port_file():
    PROC.send_signal(signal.SIGTERM)
    rc = PROC.wait(5)
    assert rc == 0, "exit status %r" % rc
    assert not os.path.exists(os.path.join(TMP, "port")), "port file left behind"
    shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    run()
