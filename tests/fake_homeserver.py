#!/usr/bin/python3
"""fake_homeserver: an in-memory Matrix homeserver (client-server API subset) for integration tests.

The bridge's integration tests run against it instead of Synapse, so where the spec is vague it
answers the way Synapse does (noted beside each such choice). Standard library only; loopback only.

Run:    fake_homeserver.py --port 0 --port-file PATH [--config rooms.json] [--server-name localhost]
Import: hs = FakeHomeserver(config); port = hs.start(); ...; hs.stop()

Matrix endpoints (r0 and v3 prefixes): versions, account/whoami, directory/room, join, rooms/*/join,
leave, invite, kick, ban, unban, send (txn-idempotent per user, device and path, for 24 hours), state (GET/PUT), redact, event,
messages, joined_rooms, notifications, sync (long poll, filters), user/*/filter; v1 relations.
Test control (no auth, not logged): /_fake/requests, /_fake/rooms/ID/{events,html,text,inject},
/_fake/faults, /_fake/reset.

Fault rules (POST /_fake/faults, a rule or a list): "path" (regex on the path), "method",
"query" (regex on the decoded query string), "count" (-1: until DELETE /_fake/faults), and
"action": respond (status, errcode, error, body, retry_after_ms), hang (seconds), drop,
delay (seconds, then the real answer), late (the real answer, handled at once and sent
seconds later: the event is in the room while its sender still waits), no_wait (the real answer as if the request had
asked timeout=0: a homeserver or proxy that does not hold long polls), pad (the real
answer with a filler key of pad_bytes bytes added, default 9 MiB: an oversized /sync).

Choices worth knowing (Synapse behaviour unless said otherwise):
- send/state/redact to an unknown room: 403 M_FORBIDDEN "Unknown room" (Synapse's
  create_event); to a room the user is not joined to: 403 M_FORBIDDEN.
- join of an unknown room id: 404 M_NOT_FOUND "No known servers"; unknown alias: 404 M_NOT_FOUND.
- Room version 12 ("room_version": "12" in a room's config): its creators (the create event's
  sender and additional_creators) outrank every power level and are not put in `users`.
- /sync: an unparseable since token is 400 M_UNKNOWN "Invalid stream token"; a token from the
  future (e.g. kept across /_fake/reset) is bounded to the current position, as Synapse's
  bound_future_token does. There is no M_UNKNOWN_POS in /sync v2. Stream positions keep
  growing across /_fake/reset, so a running client's token stays meaningful.
- /sync applies a filter's `rooms`/`not_rooms` to joined and left rooms, not to invites (an
  invite comes even with `"rooms": []`), as Synapse does.
- /sync omits empty top-level sections ("rooms", "presence", "account_data"), as Synapse does;
  each returned joined room always has timeline, state, account_data, ephemeral.
- Default timeline limit 10; relations default limit 5, dir=b (newest first).
- /messages takes a page of `limit` events, then applies the filter: a page of other users'
  chatter is an empty chunk with an `end`, and `end` is absent only once no event is left
  (the spec: "an empty chunk does not necessarily imply that no more events are available").
  Synapse applies a filter's senders and types in SQL but history visibility after taking
  the page, so it answers such pages too; the fake makes them common.
- A failed request is not remembered by the transaction cache (only successes are replayed).
  Transactions are keyed by (user, device, path) as Synapse does since MSC3970 (two tokens
  of one device share them) and forgotten after 24 hours of the fake's clock.
- m.reaction with the same sender, key and target twice: 400 M_DUPLICATE_ANNOTATION.
- "rc_message" in the config ({"per_second", "burst_count"}; users in "rc_message_exempt"
  are not limited): Synapse's leaky bucket per user on every event the user makes (sends,
  redactions, state, joins, leaves); a refused one gets 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After, answered after 0.5 s as
  Synapse does. Off by default, as for a bot whose limit was lifted with the admin API.
- Push rules: every event is evaluated for each joined member but its sender with Synapse's
  default rules (tests/push_rules.py over tests/data/synapse-push-rules.json, as Synapse
  serves them); what notifies is listed by /notifications (only=highlight: highlights).
- Relations are checked as Synapse does: the target in another room, unknown (and no other
  event relates to it), a thread rooted at an event that itself has a relation, an
  annotation without key or with a key over 500 characters: 400 M_UNKNOWN.
- An event is too large (413 M_TOO_LARGE) when its canonical JSON plus PDU_OVERHEAD bytes,
  Synapse's own additions, is over 65,536 bytes.
- /sync answers are cached as Synapse's sync_response_cache_duration does (2 minutes; off with
  "sync_cache_seconds": 0): the same request (user, device, timeout, since, filter as sent,
  full_state) gets the same answer, events' ages written anew; empty answers and answers whose
  next_batch is their since are not kept. So a fresh start within two minutes of an identical
  one gets the older next_batch, and the next poll brings what was sent since.
- An event's unsigned.age is real time since the fake took it, as Synapse's age_ts.
- "clock_file" in the config (not Synapse): origin_server_ts comes from that file
  (seconds since the epoch, like the bridge's ZMB_TEST_CLOCK), so a scripted story's events
  carry its own times; the room views then show times in UTC, the text view one per message.
"""

import argparse
import base64
import copy
import hashlib
import json
import math
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import push_rules  # noqa: E402
import room_view  # noqa: E402

DEFAULT_TIMELINE_LIMIT = 10
DEFAULT_RELATIONS_LIMIT = 5
MAX_EVENT_BYTES = 65536
# What Synapse adds to a client's event before it checks the size (auth_events,
# prev_events, hashes, signatures, depth, origin_server_ts...): measured on Synapse 1.163
# by tests/test_synapse.py's size test, which fails when the two drift apart.
PDU_OVERHEAD = 480
# Synapse maps (room, sender, device, txn_id) to the event it made for 24 hours.
TXN_RETENTION_MS = 24 * 3600 * 1000
SPEC_VERSIONS = ["r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8",
                 "v1.9", "v1.10", "v1.11"]


class MatrixError(Exception):
    """An error answer: {"errcode","error"} plus extra fields, with its HTTP status."""

    def __init__(self, status, errcode, error, extra=None, headers=None):
        super().__init__(error)
        self.status = status
        self.errcode = errcode
        self.error = error
        self.extra = extra or {}
        self.pause = 0.0   # seconds to hold the answer back (Synapse does for 429)
        self.headers = headers or {}

    def body(self):
        out = {"errcode": self.errcode, "error": self.error}
        out.update(self.extra)
        return out


def default_config(server_name="localhost"):
    """The configuration used without --config: a bridge user, alice, bob and two rooms."""
    s = server_name
    bot, alice, bob = "@zuul-bot:" + s, "@alice:" + s, "@bob:" + s
    return {
        "server_name": s,
        "users": [
            {"user_id": bot, "tokens": ["bridge-token"]},
            {"user_id": alice, "tokens": ["alice-token"]},
            {"user_id": bob, "tokens": ["bob-token"]},
        ],
        "rooms": [
            {"room_id": "!alerts:" + s, "aliases": ["#alerts:" + s], "name": "Alerts",
             "join_rule": "public", "creator": alice,
             "members": {alice: "join", bob: "join", bot: "join"},
             "power_levels": {"users": {alice: 100, bot: 50}}},
            {"room_id": "!ops:" + s, "aliases": ["#ops:" + s], "name": "Ops",
             "join_rule": "invite", "creator": alice,
             "members": {alice: "join", bot: "invite"},
             "power_levels": {"users": {alice: 100, bot: 50}}},
        ],
    }


def load_config(path=None, server_name=None):
    """Reads a JSON config; keys it has replace the defaults' ("users", "rooms")."""
    given = {}
    if path:
        with open(path, encoding="utf-8") as f:
            given = json.load(f)
    name = server_name or given.get("server_name") or "localhost"
    config = default_config(name)
    config.update(given)
    config["server_name"] = name
    return config


def _glob_match(pattern, value):
    # Matrix filters allow '*' as a wildcard in types, nothing else.
    if "*" not in pattern:
        return pattern == value
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value) is not None


class EventFilter:
    """A RoomEventFilter: types/not_types (with '*'), senders/not_senders, rooms/not_rooms."""

    def __init__(self, obj):
        if not isinstance(obj, dict):
            raise MatrixError(400, "M_BAD_JSON", "Filter sections must be objects")
        for key in ("types", "not_types", "senders", "not_senders", "rooms", "not_rooms"):
            v = obj.get(key)
            if v is not None and (not isinstance(v, list)
                                  or not all(isinstance(x, str) for x in v)):
                raise MatrixError(400, "M_BAD_JSON", "'%s' must be a list of strings" % key)
        self.types = obj.get("types")
        self.not_types = obj.get("not_types") or []
        self.senders = obj.get("senders")
        self.not_senders = obj.get("not_senders") or []
        self.rooms = obj.get("rooms")
        self.not_rooms = obj.get("not_rooms") or []
        limit = obj.get("limit")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise MatrixError(400, "M_BAD_JSON", "'limit' must be an integer >= 1")
        self.limit = limit

    def allows(self, ev):
        t, sender, room = ev["type"], ev["sender"], ev["room_id"]
        if any(_glob_match(p, t) for p in self.not_types):
            return False
        if self.types is not None and not any(_glob_match(p, t) for p in self.types):
            return False
        if sender in self.not_senders or (self.senders is not None and sender not in self.senders):
            return False
        if room in self.not_rooms or (self.rooms is not None and room not in self.rooms):
            return False
        return True


class SyncFilter:
    """The parts of a /sync filter this server honours."""

    def __init__(self, obj):
        if not isinstance(obj, dict):
            raise MatrixError(400, "M_BAD_JSON", "Filter must be a JSON object")
        room = obj.get("room") or {}
        if not isinstance(room, dict):
            raise MatrixError(400, "M_BAD_JSON", "'room' must be an object")
        section = EventFilter({k: room[k] for k in ("rooms", "not_rooms") if k in room})
        self.rooms, self.not_rooms = section.rooms, section.not_rooms
        self.timeline = EventFilter(room.get("timeline") or {})
        self.state = EventFilter(room.get("state") or {})
        self.include_leave = bool(room.get("include_leave", False))
        self.timeline_limit = self.timeline.limit or DEFAULT_TIMELINE_LIMIT

    def room_allowed(self, room_id):
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


class Room:
    def __init__(self, room_id, version):
        self.room_id = room_id
        self.version = version
        self.events = []  # the timeline, in stream order
        self.state = {}   # (type, state_key) -> current state event

    def membership(self, user_id):
        ev = self.state.get(("m.room.member", user_id))
        return ev["content"].get("membership") if ev else None

    def join_rule(self):
        ev = self.state.get(("m.room.join_rules", ""))
        return ev["content"].get("join_rule", "invite") if ev else "invite"

    def power_levels(self):
        ev = self.state.get(("m.room.power_levels", ""))
        return ev["content"] if ev else {}

    def creators_outrank(self):
        """Room version 12 (MSC4289): creators have a power above every level, and are not
        listed in m.room.power_levels' users (Synapse refuses them there)."""
        return self.version == "org.matrix.hydra.11" or (self.version.isdigit() and int(self.version) >= 12)

    def creators(self):
        ev = self.state.get(("m.room.create", ""))
        if not ev:
            return []
        return [ev["sender"]] + list(ev["content"].get("additional_creators", []))

    def user_level(self, user_id):
        if self.creators_outrank() and user_id in self.creators():
            return math.inf
        pl = self.power_levels()
        return int(pl.get("users", {}).get(user_id, pl.get("users_default", 0)))

    def joined_members(self):
        return [key[1] for key, ev in self.state.items()
                if key[0] == "m.room.member" and ev["content"].get("membership") == "join"]


class _PushRoom:
    """What push rules ask of a room: names, power levels, the member count."""

    def __init__(self, room):
        self.room = room

    def display_name(self, user_id):
        ev = self.room.state.get(("m.room.member", user_id))
        return ev["content"].get("displayname") if ev else None

    def power(self, user_id):
        return self.room.user_level(user_id)

    def notification_level(self, key):
        return int((self.room.power_levels().get("notifications") or {}).get(key, 50))

    def member_count(self):
        return len(self.room.joined_members())


# Content keys that survive redaction (room versions up to 10, plus v11's additions).
_REDACTION_KEEP = {
    "m.room.member": ("membership", "join_authorised_via_users_server"),
    "m.room.join_rules": ("join_rule", "allow"),
    "m.room.power_levels": ("ban", "events", "events_default", "invite", "kick", "redact",
                            "state_default", "users", "users_default"),
    "m.room.history_visibility": ("history_visibility",),
}


class FakeHomeserver:
    """The whole server state (guarded by one lock) plus the HTTP server that exposes it."""

    def __init__(self, config=None, verbose=False):
        self.config = copy.deepcopy(config) if config else default_config()
        self.server_name = self.config.get("server_name", "localhost")
        self.verbose = verbose
        self.cond = threading.Condition(threading.RLock())
        self.pos = 0            # global stream position; never goes back, not even on reset
        self.stopping = False
        self.release_gen = 0    # bumped by DELETE /_fake/faults to release hung requests
        self.salt = os.urandom(8).hex()
        self.clock_file = self.config.get("clock_file")
        # Synapse's rc_message (opt-in here: tests lift it for the bot, as
        # docs/operations.md advises): {"per_second": 0.2, "burst_count": 10}; per user.
        self.rc_message = self.config.get("rc_message")
        self.rc_exempt = set(self.config.get("rc_message_exempt", []))
        self.rc_counts = {}   # user -> (action_count, time_start)
        # Synapse's sync_response_cache_duration, 2 minutes by default; "sync_cache_seconds": 0 turns it off.
        self.sync_cache_seconds = float(self.config.get("sync_cache_seconds", 120))
        self.httpd = None
        self.thread = None
        self.requests = []
        self._reset()

    # ----- lifecycle -----

    def start(self, port=0):
        """Starts serving on 127.0.0.1 in a background thread; returns the port."""
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.hs = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-homeserver",
                                       daemon=True)
        self.thread.start()
        return self.httpd.server_address[1]

    @property
    def port(self):
        return self.httpd.server_address[1] if self.httpd else None

    def stop(self):
        """Stops serving; wakes long polls and hung requests so their threads can end."""
        with self.cond:
            self.stopping = True
            self.release_gen += 1
            self.cond.notify_all()
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.httpd = None

    # ----- state construction -----

    def _reset(self):
        with self.cond:
            self.users = {}      # user_id -> {"user_id", ...}
            self.tokens = {}     # token -> (user_id, device_id)
            self.rooms = {}      # room_id -> Room
            self.aliases = {}    # alias -> room_id
            self.events_by_id = {}
            self.txns = {}       # (user, device, path) -> (status, body, when_ms)
            self.filters = {}    # user_id -> [filter objects]
            self.sync_cache = {}  # request key -> (expiry on time.monotonic, answer)
            self.notifications = {}  # user_id -> [what GET /notifications lists], oldest first
            self.faults = []
            self.requests = []
            self.release_gen += 1
            for u in self.config.get("users", []):
                self._add_user(u)
            for r in self.config.get("rooms", []):
                self._add_room(r)
            self.cond.notify_all()

    def _add_user(self, spec):
        user_id = spec["user_id"]
        self.users[user_id] = spec
        tokens = spec.get("tokens") or ([spec["token"]] if "token" in spec else [])
        for t in tokens:
            if isinstance(t, dict):
                token, device = t["token"], t.get("device_id")
            else:
                token, device = t, None
            if not device:
                device = re.sub(r"[^A-Za-z0-9_]", "_", token).upper() or "DEVICE"
            self.tokens[token] = (user_id, device)

    def _add_room(self, spec):
        room_id = spec["room_id"]
        room = Room(room_id, str(spec.get("room_version", "10")))
        self.rooms[room_id] = room
        aliases = list(spec.get("aliases", []))
        if spec.get("alias"):
            aliases.insert(0, spec["alias"])
        for a in aliases:
            self.aliases[a] = room_id
        members = spec.get("members", {})
        creator = spec.get("creator") or next(
            (u for u, m in members.items() if m == "join"), None) or next(iter(self.users), "")
        pl = {"users": {} if room.creators_outrank() else {creator: 100}, "users_default": 0, "events_default": 0,
              "state_default": 50, "ban": 50, "kick": 50, "redact": 50, "invite": 0,
              "events": {"m.room.name": 50, "m.room.power_levels": 100,
                         "m.room.history_visibility": 100, "m.room.canonical_alias": 50}}
        given = spec.get("power_levels", {})
        for k, v in given.items():
            if k in ("users", "events"):
                pl[k].update(v)
            else:
                pl[k] = v
        create = {"room_version": room.version}
        if room.version in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10"):
            create["creator"] = creator
        self._append(room, creator, "m.room.create", create, state_key="")
        self._append(room, creator, "m.room.member", self._member_content(creator, "join"),
                     state_key=creator)
        self._append(room, creator, "m.room.power_levels", pl, state_key="")
        self._append(room, creator, "m.room.join_rules",
                     {"join_rule": spec.get("join_rule", "public")}, state_key="")
        self._append(room, creator, "m.room.history_visibility",
                     {"history_visibility": "shared"}, state_key="")
        if aliases:
            content = {"alias": aliases[0]}
            if len(aliases) > 1:
                content["alt_aliases"] = aliases[1:]
            self._append(room, creator, "m.room.canonical_alias", content, state_key="")
        if spec.get("name"):
            self._append(room, creator, "m.room.name", {"name": spec["name"]}, state_key="")
        for user, membership in members.items():
            if user == creator:
                continue
            sender = user if membership in ("join", "leave") else creator
            self._append(room, sender, "m.room.member",
                         self._member_content(user, membership), state_key=user)

    @staticmethod
    def _member_content(user_id, membership):
        content = {"membership": membership}
        if membership == "join":
            content["displayname"] = user_id[1:].split(":", 1)[0]
        return content

    def now_ms(self):
        """Wall time for events: the clock file when configured (unreadable: real time)."""
        if self.clock_file:
            try:
                with open(self.clock_file, encoding="ascii") as f:
                    return int(round(float(f.read().strip()) * 1000))
            except (OSError, ValueError):
                pass
        return int(time.time() * 1000)

    def _new_event_id(self):
        digest = hashlib.sha256(("%s/%d" % (self.salt, self.pos)).encode()).digest()
        return "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _append(self, room, sender, etype, content, state_key=None, token=None, txn_id=None,
                redacts=None):
        """Adds an event to a room's timeline (and state); wakes /sync. Lock held."""
        self.pos += 1
        ev = {"event_id": self._new_event_id(), "type": etype, "sender": sender,
              "room_id": room.room_id, "origin_server_ts": self.now_ms(),
              "content": content, "unsigned": {},
              "_pos": self.pos, "_token": token, "_txn_id": txn_id, "_received": time.time()}
        if state_key is not None:
            ev["state_key"] = state_key
            old = room.state.get((etype, state_key))
            if old:
                ev["unsigned"] = {"replaces_state": old["event_id"],
                                  "prev_content": old["content"]}
            room.state[(etype, state_key)] = ev
        if redacts is not None:
            ev["redacts"] = redacts
            if room.version not in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "10"):
                ev["content"] = dict(content, redacts=redacts)
            target = self.events_by_id.get(redacts)
            if target and target["room_id"] == room.room_id:
                self._apply_redaction(target, ev)
        room.events.append(ev)
        self._push(room, ev)
        self.events_by_id[ev["event_id"]] = ev
        self.cond.notify_all()
        return ev

    def _push(self, room, ev):
        """Synapse's push-rule evaluation for every member but the sender (push_rules.py):
        what notifies a member is listed by GET /notifications, highlights included."""
        public = self._public(ev)
        view = _PushRoom(room)
        for user in room.joined_members():
            if user == ev["sender"]:
                continue
            actions = push_rules.evaluate(public, user, view)
            if push_rules.notifies(actions):
                self.notifications.setdefault(user, []).append(
                    {"event": public, "room_id": room.room_id, "actions": actions, "read": False,
                     "ts": ev["origin_server_ts"], "profile_tag": None})

    def _apply_redaction(self, target, redaction):
        keep = _REDACTION_KEEP.get(target["type"])
        if target["type"] == "m.room.create":
            content = dict(target["content"])
        else:
            content = {k: v for k, v in target["content"].items() if keep and k in keep}
        # Rebind rather than mutate: responses being built may hold the old dicts.
        target["content"] = content
        target["unsigned"] = {"redacted_because": self._public(redaction, with_room_id=True)}

    # ----- serialisation -----

    @staticmethod
    def _public(ev, with_room_id=True):
        out = {k: copy.deepcopy(v) for k, v in ev.items() if not k.startswith("_")}
        if not with_room_id:
            out.pop("room_id", None)
        return out

    def client_event(self, ev, token=None, with_room_id=True, show_txn=False):
        """An event as a client sees it; transaction_id only for the device that sent it."""
        out = self._public(ev, with_room_id)
        unsigned = out.setdefault("unsigned", {})
        # Synapse's age is real time since it took the event (age_ts), whatever the clock file says.
        unsigned["age"] = max(0, int((time.time() - ev.get("_received", time.time())) * 1000))
        if ev.get("_txn_id") is not None and (show_txn or (token and ev["_token"] == token)):
            unsigned["transaction_id"] = ev["_txn_id"]
        return out

    # ----- request entry points (called by the HTTP handler) -----

    def log_request(self, method, raw_path, query, headers, token, body_bytes):
        record = {"seq": 0, "time": time.time(), "method": method, "path": raw_path,
                  "decoded_path": urllib.parse.unquote(raw_path), "query": query,
                  "headers": {k: v for k, v in headers.items() if k.lower() != "authorization"},
                  "token": token, "body": None, "status": None}
        if body_bytes:
            try:
                record["body"] = json.loads(body_bytes)
            except ValueError:
                record["body_text"] = body_bytes.decode("utf-8", "replace")
        with self.cond:
            record["seq"] = len(self.requests) + 1
            self.requests.append(record)
        return record

    def note(self, record, **fields):
        """Adds fields to a logged request (under the lock: GET /_fake/requests copies it)."""
        with self.cond:
            record.update(fields)

    def take_fault(self, method, raw_path, raw_query=""):
        """The first fault rule matching this request (its count used up by one), or None."""
        with self.cond:
            for rule in self.faults:
                if rule["remaining"] == 0:
                    continue
                if rule.get("method") and rule["method"].upper() != method:
                    continue
                if not re.search(rule.get("path", ""), raw_path):
                    continue
                if rule.get("query") and not re.search(rule["query"], urllib.parse.unquote(raw_query)):
                    continue
                if rule["remaining"] > 0:
                    rule["remaining"] -= 1
                rule["hits"] += 1
                return dict(rule)
        return None

    def wait_released(self, seconds):
        """Holds a 'hang' fault until DELETE /_fake/faults, reset, stop, or the time is up."""
        with self.cond:
            gen = self.release_gen
            self.cond.wait_for(lambda: self.release_gen != gen, timeout=seconds)

    def handle_matrix(self, method, raw_path, query, headers, body_bytes, record):
        """Routes a /_matrix request; returns (status, body_object, extra_headers)."""
        match = None
        path_known = False
        for rmethod, regex, name, needs_auth in _ROUTES:
            m = regex.fullmatch(raw_path)
            if not m:
                continue
            path_known = True
            if rmethod == method:
                match = (m, name, needs_auth)
                break
        if match is None:
            if method == "OPTIONS" and path_known:
                return 200, {}, {}  # CORS preflight, as Synapse answers it
            if path_known:
                raise MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request")
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        m, name, needs_auth = match
        args = [urllib.parse.unquote(g) if g is not None else None for g in m.groups()]
        ctx = _Ctx(query, body_bytes, raw_path, record)
        if needs_auth:
            ctx.user, ctx.device, ctx.token = self._authenticate(query, headers)
        return getattr(self, "_api_" + name)(ctx, *args)

    def _authenticate(self, query, headers):
        header = headers.get("Authorization")
        qtoken = query.get("access_token")
        if header is not None and qtoken is not None:
            raise MatrixError(401, "M_MISSING_TOKEN",
                              "Mixing Authorization headers and access_token query parameters.")
        if header is not None:
            parts = header.split(" ", 1)
            if len(parts) != 2 or parts[0] != "Bearer" or not parts[1].strip():
                raise MatrixError(401, "M_MISSING_TOKEN", "Invalid Authorization header.")
            token = parts[1].strip()
        elif qtoken is not None:
            token = qtoken
        else:
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token.")
        with self.cond:
            found = self.tokens.get(token)
        if not found:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Unrecognised access token.",
                              {"soft_logout": False})
        return found[0], found[1], token

    # ----- helpers for handlers -----

    @staticmethod
    def _json_object(body_bytes, allow_empty=False):
        if not body_bytes.strip():
            if allow_empty:
                return {}
            raise MatrixError(400, "M_NOT_JSON", "Content not JSON.")
        try:
            obj = json.loads(body_bytes)
        except ValueError:
            raise MatrixError(400, "M_NOT_JSON", "Content not JSON.") from None
        if not isinstance(obj, dict):
            raise MatrixError(400, "M_BAD_JSON", "Content must be a JSON object.")
        return obj

    def _room_for_event(self, room_id):
        room = self.rooms.get(room_id)
        if room is None:
            raise MatrixError(403, "M_FORBIDDEN", "Unknown room")  # Synapse's create_event
        return room

    def _require_joined(self, room, user):
        if room.membership(user) != "join":
            raise MatrixError(403, "M_FORBIDDEN",
                              "User %s not in room %s" % (user, room.room_id))

    def _require_level(self, room, user, etype, is_state):
        pl = room.power_levels()
        default = pl.get("state_default", 50) if is_state else pl.get("events_default", 0)
        needed = int(pl.get("events", {}).get(etype, default))
        have = room.user_level(user)
        if have < needed:
            raise MatrixError(403, "M_FORBIDDEN",
                              "You don't have permission to post that to the room. "
                              "user_level (%d) < send_level (%d)" % (have, needed))

    def _check_size(self, ev_like):
        """Synapse refuses an event whose whole PDU, as canonical JSON, is over 65,536 bytes:
        the content plus what the server adds (auth and prev events, hashes, signatures,
        depth, timestamps). PDU_OVERHEAD stands for the latter, measured against Synapse."""
        canonical = json.dumps(ev_like, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        if len(canonical.encode()) + PDU_OVERHEAD > MAX_EVENT_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "event too large")

    def _ratelimit(self, user):
        """Synapse's Ratelimiter (api/ratelimiting.py) for event sends: a leaky bucket per
        user; a refused action is not counted; the 429 says when the next one fits."""
        if not self.rc_message or user in self.rc_exempt:
            return
        rate = float(self.rc_message.get("per_second", 0.2))
        burst = float(self.rc_message.get("burst_count", 10))
        now = time.monotonic()
        count, start = self.rc_counts.get(user, (0.0, now))
        performed = count - (now - start) * rate
        if performed < 0:
            count, start, performed = 0.0, now, 0.0
        if performed > burst - 1:
            allowed_at = max(now, start + (count - burst + 1) / rate)
            retry_ms = int((allowed_at - now) * 1000)
            err = MatrixError(429, "M_LIMIT_EXCEEDED", "Too Many Requests", {"retry_after_ms": retry_ms},
                              {"Retry-After": str(math.ceil(retry_ms / 1000))})
            err.pause = 0.5
            raise err
        self.rc_counts[user] = (count + 1, start)

    def _with_txn(self, ctx, fn):
        """Runs fn once per (user, device, request path), as Synapse keys transactions
        (MSC3970); a repeat within TXN_RETENTION_MS gets the first answer. Errors are not
        remembered, so a request refused (429, 5xx) runs again when retried."""
        key = (ctx.user, ctx.device, urllib.parse.unquote(ctx.raw_path.split("?", 1)[0]))
        with self.cond:
            now = self.now_ms()
            seen = self.txns.get(key)
            if seen and now - seen[2] <= TXN_RETENTION_MS:
                ctx.record["duplicate_txn"] = True
                return seen[0], copy.deepcopy(seen[1]), {}
            status, body, headers = fn()
            self.txns[key] = (status, copy.deepcopy(body), now)
            return status, body, headers

    # ----- Matrix API handlers: each returns (status, body, headers) -----

    def _api_versions(self, ctx):
        return 200, {"versions": SPEC_VERSIONS, "unstable_features": {}}, {}

    def _api_whoami(self, ctx):
        return 200, {"user_id": ctx.user, "device_id": ctx.device, "is_guest": False}, {}

    def _api_directory(self, ctx, alias):
        if not alias.startswith("#") or ":" not in alias:
            raise MatrixError(400, "M_INVALID_PARAM", "Expected room alias string")
        with self.cond:
            room_id = self.aliases.get(alias)
        if room_id is None:
            raise MatrixError(404, "M_NOT_FOUND", "Room alias %s not found" % alias)
        return 200, {"room_id": room_id, "servers": [self.server_name]}, {}

    def _api_join(self, ctx, target):
        self._json_object(ctx.body, allow_empty=True)
        with self.cond:
            if target.startswith("#"):
                room_id = self.aliases.get(target)
                if room_id is None:
                    raise MatrixError(404, "M_NOT_FOUND", "Room alias %s not found" % target)
            elif target.startswith("!"):
                room_id = target
            else:
                raise MatrixError(400, "M_INVALID_PARAM",
                                  "%s was not legal room ID or room alias" % target)
            return self._join(ctx, room_id)

    def _api_join_room(self, ctx, room_id):
        self._json_object(ctx.body, allow_empty=True)
        with self.cond:
            return self._join(ctx, room_id)

    def _join(self, ctx, room_id):
        room = self.rooms.get(room_id)
        if room is None:
            raise MatrixError(404, "M_NOT_FOUND", "No known servers")
        membership = room.membership(ctx.user)
        if membership == "join":
            return 200, {"room_id": room_id}, {}  # already joined: no new event
        if membership == "ban":
            raise MatrixError(403, "M_FORBIDDEN", "You are banned from this room")
        if room.join_rule() != "public" and membership != "invite":
            raise MatrixError(403, "M_FORBIDDEN", "You are not invited to this room.")
        self._ratelimit(ctx.user)   # every event a user makes counts, memberships too
        self._append(room, ctx.user, "m.room.member", self._member_content(ctx.user, "join"),
                     state_key=ctx.user, token=ctx.token)
        return 200, {"room_id": room_id}, {}

    def _api_leave(self, ctx, room_id):
        self._json_object(ctx.body, allow_empty=True)
        with self.cond:
            room = self.rooms.get(room_id)
            if room is None:
                raise MatrixError(404, "M_NOT_FOUND", "Not a known room")
            if room.membership(ctx.user) not in ("join", "invite"):
                raise MatrixError(403, "M_FORBIDDEN",
                                  "User %s not in room %s" % (ctx.user, room_id))
            self._ratelimit(ctx.user)
            self._append(room, ctx.user, "m.room.member", {"membership": "leave"},
                         state_key=ctx.user, token=ctx.token)
            return 200, {}, {}

    def _api_invite(self, ctx, room_id):
        body = self._json_object(ctx.body)
        target = body.get("user_id")
        if not isinstance(target, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing user_id")
        with self.cond:
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            if room.user_level(ctx.user) < int(room.power_levels().get("invite", 0)):
                raise MatrixError(403, "M_FORBIDDEN", "You don't have permission to invite users")
            if room.membership(target) in ("join", "ban"):
                raise MatrixError(403, "M_FORBIDDEN", "%s is already in the room." % target)
            self._append(room, ctx.user, "m.room.member", {"membership": "invite"},
                         state_key=target, token=ctx.token)
            return 200, {}, {}

    def _membership_change(self, ctx, room_id, action):
        """kick, ban and unban as Synapse checks them: the sender is in the room, has the
        room's kick or ban level and (kick, ban) outranks the target; a kick needs the target
        joined or invited, an unban a banned target."""
        body = self._json_object(ctx.body)
        target = body.get("user_id")
        if not isinstance(target, str):
            raise MatrixError(400, "M_MISSING_PARAM", "Missing user_id")
        with self.cond:
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            needed = int(room.power_levels().get("kick" if action == "kick" else "ban", 50))
            mine, theirs = room.user_level(ctx.user), room.user_level(target)
            if mine < needed or (action != "unban" and target != ctx.user and mine <= theirs):
                raise MatrixError(403, "M_FORBIDDEN", "You don't have permission to %s this user" % action)
            now = room.membership(target)
            if action == "kick" and now not in ("join", "invite"):
                raise MatrixError(403, "M_FORBIDDEN", "The target user is not in the room")
            if action == "unban" and now != "ban":
                raise MatrixError(403, "M_FORBIDDEN", "The target user is not banned")
            content = {"membership": "ban" if action == "ban" else "leave"}
            if isinstance(body.get("reason"), str):
                content["reason"] = body["reason"]
            self._ratelimit(ctx.user)
            self._append(room, ctx.user, "m.room.member", content, state_key=target, token=ctx.token)
            return 200, {}, {}

    def _api_kick(self, ctx, room_id):
        return self._membership_change(ctx, room_id, "kick")

    def _api_ban(self, ctx, room_id):
        return self._membership_change(ctx, room_id, "ban")

    def _api_unban(self, ctx, room_id):
        return self._membership_change(ctx, room_id, "unban")

    def _api_send(self, ctx, room_id, etype, txn_id):
        def do():
            content = self._json_object(ctx.body)
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            self._require_level(room, ctx.user, etype, False)
            self._check_size({"type": etype, "content": content, "sender": ctx.user,
                              "room_id": room_id})
            self._check_relation(room, content)
            if etype == "m.reaction":
                self._check_duplicate_annotation(room, ctx.user, content)
            self._ratelimit(ctx.user)
            ev = self._append(room, ctx.user, etype, content, token=ctx.token, txn_id=txn_id)
            return 200, {"event_id": ev["event_id"]}, {}
        return self._with_txn(ctx, do)

    def _check_relation(self, room, content):
        """Synapse's checks of a relation (handlers/message.py _validate_event_relation)."""
        rel = content.get("m.relates_to")
        if not isinstance(rel, dict) or not isinstance(rel.get("rel_type"), str) \
                or not isinstance(rel.get("event_id"), str):
            return
        parent = self.events_by_id.get(rel["event_id"])
        if parent is None:
            if not any(isinstance(e["content"].get("m.relates_to"), dict)
                       and e["content"]["m.relates_to"].get("event_id") == rel["event_id"] for e in room.events):
                raise MatrixError(400, "M_UNKNOWN", "Can't send relation to unknown event")
            return
        if parent["room_id"] != room.room_id:
            raise MatrixError(400, "M_UNKNOWN", "Relations must be in the same room")
        if rel["rel_type"] == "m.annotation":
            key = rel.get("key")
            if not isinstance(key, str):
                raise MatrixError(400, "M_UNKNOWN", "Missing aggregation key")
            if len(key) > 500:
                raise MatrixError(400, "M_UNKNOWN", "Aggregation key is too long")
        parent_rel = parent["content"].get("m.relates_to")
        if rel["rel_type"] == "m.thread" and isinstance(parent_rel, dict) \
                and isinstance(parent_rel.get("rel_type"), str) and isinstance(parent_rel.get("event_id"), str):
            raise MatrixError(400, "M_UNKNOWN", "Cannot start threads from an event with a relation")

    def _check_duplicate_annotation(self, room, user, content):
        rel = content.get("m.relates_to")
        if not isinstance(rel, dict) or rel.get("rel_type") != "m.annotation":
            return
        for ev in room.events:
            r = ev["content"].get("m.relates_to")
            if (ev["type"] == "m.reaction" and ev["sender"] == user and isinstance(r, dict)
                    and r.get("event_id") == rel.get("event_id")
                    and r.get("key") == rel.get("key")):
                raise MatrixError(400, "M_DUPLICATE_ANNOTATION", "Can't send same reaction twice")

    def _api_put_state(self, ctx, room_id, etype, state_key):
        state_key = state_key or ""
        content = self._json_object(ctx.body)
        with self.cond:
            room = self._room_for_event(room_id)
            if not (etype == "m.room.member" and state_key == ctx.user):
                self._require_joined(room, ctx.user)
                self._require_level(room, ctx.user, etype, True)
            self._check_size({"type": etype, "content": content, "state_key": state_key})
            old = room.state.get((etype, state_key))
            if old and old["content"] == content and old["sender"] == ctx.user:
                return 200, {"event_id": old["event_id"]}, {}  # Synapse: unchanged state, no event
            self._ratelimit(ctx.user)
            ev = self._append(room, ctx.user, etype, content, state_key=state_key, token=ctx.token)
            return 200, {"event_id": ev["event_id"]}, {}

    def _api_get_state(self, ctx, room_id, etype, state_key):
        with self.cond:
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            ev = room.state.get((etype, state_key or ""))
            if ev is None:
                raise MatrixError(404, "M_NOT_FOUND", "Event not found.")
            if ctx.query.get("format") == "event":   # as Synapse: the whole client event
                return 200, self.client_event(ev, ctx.token), {}
            return 200, copy.deepcopy(ev["content"]), {}

    def _api_get_all_state(self, ctx, room_id):
        with self.cond:
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            evs = sorted(room.state.values(), key=lambda e: e["_pos"])
            return 200, [self.client_event(e, ctx.token) for e in evs], {}

    def _api_redact(self, ctx, room_id, event_id, txn_id):
        def do():
            body = self._json_object(ctx.body, allow_empty=True)
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            target = self.events_by_id.get(event_id)
            if target and target["sender"] != ctx.user:
                if room.user_level(ctx.user) < int(room.power_levels().get("redact", 50)):
                    raise MatrixError(403, "M_FORBIDDEN",
                                      "You don't have permission to redact events")
            self._ratelimit(ctx.user)
            ev = self._append(room, ctx.user, "m.room.redaction", body, token=ctx.token,
                              txn_id=txn_id, redacts=event_id)
            return 200, {"event_id": ev["event_id"]}, {}
        return self._with_txn(ctx, do)

    def _api_get_event(self, ctx, room_id, event_id):
        with self.cond:
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            ev = self.events_by_id.get(event_id)
            if ev is None or ev["room_id"] != room_id:
                raise MatrixError(404, "M_NOT_FOUND", "Event not found.")
            return 200, self.client_event(ev, ctx.token), {}

    def _api_notifications(self, ctx):
        """Newest first, as Synapse lists them; only=highlight keeps the highlights."""
        with self.cond:
            found = list(reversed(self.notifications.get(ctx.user, [])))
        if ctx.query.get("only") == "highlight":
            found = [n for n in found if push_rules.highlights(n["actions"])]
        return 200, {"notifications": copy.deepcopy(found)}, {}

    def _api_joined_rooms(self, ctx):
        with self.cond:
            rooms = [r.room_id for r in self.rooms.values() if r.membership(ctx.user) == "join"]
        return 200, {"joined_rooms": rooms}, {}

    def _parse_pos(self, token, param):
        m = re.fullmatch(r"s(\d+)", token or "")
        if not m:
            raise MatrixError(400, "M_INVALID_PARAM", "Invalid %s token" % param)
        return int(m.group(1))

    def _parse_limit(self, query, default):
        raw = query.get("limit")
        if raw is None:
            return default
        try:
            limit = int(raw)
        except ValueError:
            raise MatrixError(400, "M_INVALID_PARAM", "limit must be an integer") from None
        if limit < 0:
            raise MatrixError(400, "M_INVALID_PARAM", "limit must be >= 0")
        return min(limit, 1000)

    def _api_messages(self, ctx, room_id):
        direction = ctx.query.get("dir", "b")
        if direction not in ("b", "f"):
            raise MatrixError(400, "M_INVALID_PARAM", "dir must be 'b' or 'f'")
        limit = self._parse_limit(ctx.query, 10)
        flt = EventFilter(self._parse_filter_json(ctx.query["filter"])) \
            if "filter" in ctx.query else EventFilter({})
        with self.cond:
            room = self._room_for_event(room_id)
            self._require_joined(room, ctx.user)
            if direction == "b":
                start = self._parse_pos(ctx.query["from"], "from") if "from" in ctx.query \
                    else self.pos
                evs = [e for e in reversed(room.events) if e["_pos"] <= start]
            else:
                start = self._parse_pos(ctx.query["from"], "from") if "from" in ctx.query else 0
                evs = [e for e in room.events if e["_pos"] > start]
            # A page of `limit` events is taken first and filtered after, so a page whose
            # events were all filtered out is an empty chunk that still has an end. `end` is
            # left out only when no event at all is left in that direction (Synapse's
            # get_messages: "if not limited and not events").
            page = evs[:limit]
            chunk = [e for e in page if flt.allows(e)]
            out = {"chunk": [self.client_event(e, ctx.token) for e in chunk],
                   "start": "s%d" % start, "state": []}
            if page:
                last = page[-1]["_pos"]
                out["end"] = "s%d" % (last - 1 if direction == "b" else last)
            return 200, out, {}

    def _api_relations(self, ctx, room_id, event_id, rel_type, event_type):
        direction = ctx.query.get("dir", "b")
        if direction not in ("b", "f"):
            raise MatrixError(400, "M_INVALID_PARAM", "dir must be 'b' or 'f'")
        limit = self._parse_limit(ctx.query, DEFAULT_RELATIONS_LIMIT)
        with self.cond:
            room = self.rooms.get(room_id)
            if room is None or room.membership(ctx.user) != "join":
                raise MatrixError(403, "M_FORBIDDEN",
                                  "User %s not in room %s" % (ctx.user, room_id))
            parent = self.events_by_id.get(event_id)
            if parent is None or parent["room_id"] != room_id:
                raise MatrixError(404, "M_NOT_FOUND", "Unknown parent event.")
            related = []
            for ev in room.events:
                rel = ev["content"].get("m.relates_to")
                if not isinstance(rel, dict) or rel.get("event_id") != event_id:
                    continue
                if rel_type is not None and rel.get("rel_type") != rel_type:
                    continue
                if event_type is not None and ev["type"] != event_type:
                    continue
                related.append(ev)
            if direction == "b":
                related.reverse()
            if "from" in ctx.query:
                start = self._parse_pos(ctx.query["from"], "from")
                related = [e for e in related
                           if (e["_pos"] < start if direction == "b" else e["_pos"] > start)]
            chunk = related[:limit]
            out = {"chunk": [self.client_event(e, ctx.token) for e in chunk]}
            if len(related) > limit and chunk:
                out["next_batch"] = "s%d" % chunk[-1]["_pos"]
            if "from" in ctx.query:
                out["prev_batch"] = ctx.query["from"]
            return 200, out, {}

    # ----- filters and /sync -----

    @staticmethod
    def _parse_filter_json(text):
        try:
            return json.loads(text)
        except ValueError:
            raise MatrixError(400, "M_NOT_JSON", "Invalid filter JSON") from None

    def _api_create_filter(self, ctx, user_id):
        if user_id != ctx.user:
            raise MatrixError(403, "M_FORBIDDEN", "Cannot create filters for other users")
        obj = self._json_object(ctx.body)
        SyncFilter(obj)  # validates
        with self.cond:
            lst = self.filters.setdefault(ctx.user, [])
            lst.append(obj)
            return 200, {"filter_id": str(len(lst) - 1)}, {}

    def _api_get_filter(self, ctx, user_id, filter_id):
        if user_id != ctx.user:
            raise MatrixError(403, "M_FORBIDDEN", "Cannot get filters for other users")
        with self.cond:
            lst = self.filters.get(ctx.user, [])
            if not filter_id.isdigit() or int(filter_id) >= len(lst):
                raise MatrixError(404, "M_NOT_FOUND", "No such filter")
            return 200, copy.deepcopy(lst[int(filter_id)]), {}

    def _resolve_filter(self, user, text):
        if text is None:
            return SyncFilter({})
        if text.startswith("{"):
            return SyncFilter(self._parse_filter_json(text))
        with self.cond:
            lst = self.filters.get(user, [])
            if not text.isdigit() or int(text) >= len(lst):
                raise MatrixError(400, "M_INVALID_PARAM", "No such filter")
            return SyncFilter(lst[int(text)])

    def _api_sync(self, ctx):
        if "from" in ctx.query:
            raise MatrixError(400, "M_UNKNOWN",
                              "'from' is not a valid query parameter. Did you mean 'since'?")
        try:
            timeout = int(ctx.query.get("timeout", "0"))
        except ValueError:
            raise MatrixError(400, "M_INVALID_PARAM",
                              "Query parameter 'timeout' must be an integer") from None
        full_state = ctx.query.get("full_state", "false") == "true"
        flt = self._resolve_filter(ctx.user, ctx.query.get("filter"))
        since = ctx.query.get("since")
        deadline = time.monotonic() + max(timeout, 0) / 1000.0
        # Synapse's sync response cache (handlers/sync.py): an answer is kept for
        # sync_response_cache_duration (2 minutes) after it was made, keyed by user, device,
        # timeout, since, the filter as sent and full_state, and given again to the same
        # request; not an empty answer, nor one whose next_batch is its since.
        cache_key = (ctx.user, ctx.device, timeout, since, ctx.query.get("filter"), full_state)
        with self.cond:
            cached = self.sync_cache.get(cache_key)
            if cached and cached[0] > time.monotonic():
                return 200, self._refresh_ages(copy.deepcopy(cached[1])), {}
            since_pos = None
            if since is not None:
                m = re.fullmatch(r"s(\d+)", since)
                if not m:
                    raise MatrixError(400, "M_UNKNOWN", "Invalid stream token")
                since_pos = min(int(m.group(1)), self.pos)  # bound tokens from the future
            while True:
                result, nonempty = self._sync_result(ctx, since_pos, flt, full_state)
                if nonempty or since_pos is None or full_state or self.stopping:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            if nonempty and result.get("next_batch") != since and self.sync_cache_seconds > 0:
                self.sync_cache[cache_key] = (time.monotonic() + self.sync_cache_seconds, copy.deepcopy(result))
            return 200, result, {}

    def _refresh_ages(self, result):
        """A cached answer's events with their age as of now: Synapse caches the result and
        writes each answer anew."""
        for section in ("join", "leave"):
            for room in ((result.get("rooms") or {}).get(section) or {}).values():
                for part in ("timeline", "state"):
                    for e in (room.get(part) or {}).get("events") or []:
                        ev = self.events_by_id.get(e.get("event_id"))
                        if ev is not None:
                            e.setdefault("unsigned", {})["age"] = max(
                                0, int((time.time() - ev.get("_received", time.time())) * 1000))
        return result

    def _state_between(self, room, after_pos, before_pos, flt):
        """State events with after_pos < pos < before_pos, the latest per key."""
        latest = {}
        for ev in room.events:
            if ev["_pos"] >= before_pos:
                break
            if "state_key" in ev and ev["_pos"] > after_pos:
                latest[(ev["type"], ev["state_key"])] = ev
        return [e for e in sorted(latest.values(), key=lambda e: e["_pos"]) if flt.allows(e)]

    def _timeline(self, room, after_pos, upto_pos, flt, ctx):
        evs = [e for e in room.events
               if (after_pos is None or e["_pos"] > after_pos) and e["_pos"] <= upto_pos
               and flt.timeline.allows(e)]
        limit = flt.timeline_limit
        limited = len(evs) > limit
        evs = evs[-limit:]
        start_pos = evs[0]["_pos"] if evs else upto_pos + 1
        timeline = {"events": [self.client_event(e, ctx.token, with_room_id=False) for e in evs],
                    "limited": limited, "prev_batch": "s%d" % (start_pos - 1)}
        return timeline, start_pos, limited

    def _sync_result(self, ctx, since_pos, flt, full_state):
        joined, invited, left = {}, {}, {}
        for room in self.rooms.values():
            member = room.state.get(("m.room.member", ctx.user))
            if member is None:
                continue
            membership = member["content"].get("membership")
            # Synapse applies a filter's room list to joined and left rooms only: an invite
            # comes whatever the list says, even an empty one.
            if membership != "invite" and not flt.room_allowed(room.room_id):
                continue
            if membership == "join":
                newly = since_pos is not None and member["_pos"] > since_pos
                timeline, start_pos, limited = self._timeline(room, since_pos, self.pos, flt, ctx)
                if since_pos is None or full_state or newly:
                    state = self._state_between(room, -1, start_pos, flt.state)
                elif limited:
                    state = self._state_between(room, since_pos, start_pos, flt.state)
                else:
                    state = []
                if since_pos is not None and not full_state and not timeline["events"] \
                        and not state:
                    continue
                joined[room.room_id] = {
                    "timeline": timeline,
                    "state": {"events": [self.client_event(e, ctx.token, with_room_id=False)
                                         for e in state]},
                    "account_data": {"events": []},
                    "ephemeral": {"events": []},
                    "unread_notifications": {"highlight_count": 0, "notification_count": 0},
                    "summary": {},
                }
            elif membership == "invite":
                if since_pos is None or member["_pos"] > since_pos:
                    invited[room.room_id] = {"invite_state": {"events": self._stripped_state(
                        room, member, ctx)}}
            elif membership in ("leave", "ban"):
                if (since_pos is not None and member["_pos"] > since_pos) or \
                        (since_pos is None and flt.include_leave):
                    timeline, _, _ = self._timeline(room, since_pos, member["_pos"], flt, ctx)
                    left[room.room_id] = {"timeline": timeline, "state": {"events": []},
                                          "account_data": {"events": []}}
        result = {"next_batch": "s%d" % self.pos, "device_one_time_keys_count": {},
                  "device_unused_fallback_key_types": []}
        rooms = {}
        if joined:
            rooms["join"] = joined
        if invited:
            rooms["invite"] = invited
        if left:
            rooms["leave"] = left
        if rooms:
            result["rooms"] = rooms
        return result, bool(rooms)

    def _stripped_state(self, room, member, ctx):
        out = []
        for key in (("m.room.create", ""), ("m.room.join_rules", ""), ("m.room.name", ""),
                    ("m.room.canonical_alias", ""), ("m.room.avatar", ""),
                    ("m.room.encryption", "")):
            ev = room.state.get(key)
            if ev:
                out.append({k: copy.deepcopy(ev[k])
                            for k in ("type", "state_key", "content", "sender")})
        out.append(self.client_event(member, ctx.token, with_room_id=False))
        return out

    # ----- test control API -----

    def handle_fake(self, method, raw_path, body_bytes):
        """The /_fake/ control API; returns (status, body, headers) where body may be bytes."""
        path = raw_path[len("/_fake"):]
        if path == "/requests":
            if method == "GET":
                with self.cond:
                    return 200, copy.deepcopy(self.requests), {}
            if method == "DELETE":
                with self.cond:
                    self.requests = []
                return 200, {}, {}
        elif path == "/faults":
            if method == "GET":
                with self.cond:
                    return 200, {"rules": copy.deepcopy(self.faults)}, {}
            if method == "POST":
                return self._add_faults(body_bytes)
            if method == "DELETE":
                with self.cond:
                    self.faults = []
                    self.release_gen += 1
                    self.cond.notify_all()
                return 200, {}, {}
        elif path == "/reset":
            if method == "POST":
                self._reset()
                return 200, {}, {}
        else:
            m = re.fullmatch(r"/rooms/([^/]+)/(events|html|text|inject)", path)
            if m:
                room_id, what = urllib.parse.unquote(m.group(1)), m.group(2)
                wanted = "POST" if what == "inject" else "GET"
                if method != wanted:
                    raise MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request")
                with self.cond:
                    room = self.rooms.get(room_id)
                    if room is None:
                        raise MatrixError(404, "M_NOT_FOUND", "Unknown room %s" % room_id)
                    if what == "events":
                        return 200, [self.client_event(e, show_txn=True) for e in room.events], {}
                    if what == "inject":
                        return self._inject(room, body_bytes)
                    if what == "text":
                        return 200, self._render_text(room).encode(), \
                            {"Content-Type": "text/plain; charset=utf-8"}
                    return 200, self._render_html(room).encode(), {
                        "Content-Type": "text/html; charset=utf-8",
                        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
            raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
        raise MatrixError(405, "M_UNRECOGNIZED", "Unrecognized request")

    def _add_faults(self, body_bytes):
        try:
            rules = json.loads(body_bytes or b"null")
        except ValueError:
            raise MatrixError(400, "M_NOT_JSON", "Content not JSON.") from None
        if isinstance(rules, dict):
            rules = [rules]
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise MatrixError(400, "M_BAD_JSON", "Expected a list of fault rules")
        prepared = []
        for r in rules:
            rule = dict(r)
            rule.setdefault("path", "")
            for key in ("path", "query"):
                try:
                    re.compile(rule.get(key) or "")
                except re.error as e:
                    raise MatrixError(400, "M_BAD_JSON", "Bad %s regex: %s" % (key, e)) from None
            rule.setdefault("action", "respond")
            if rule["action"] not in ("respond", "hang", "drop", "delay", "late", "no_wait", "pad"):
                raise MatrixError(400, "M_BAD_JSON", "Unknown action %r" % rule["action"])
            rule.setdefault("status", 500)
            rule.setdefault("count", 1)
            rule["remaining"] = int(rule["count"])
            rule["hits"] = 0
            prepared.append(rule)
        with self.cond:
            self.faults.extend(prepared)
            return 200, {"rules": len(self.faults)}, {}

    def _inject(self, room, body_bytes):
        body = self._json_object(body_bytes)
        sender, etype = body.get("sender"), body.get("type")
        if not isinstance(sender, str) or not isinstance(etype, str):
            raise MatrixError(400, "M_BAD_JSON", "'sender' and 'type' are required strings")
        content = body.get("content", {})
        if not isinstance(content, dict):
            raise MatrixError(400, "M_BAD_JSON", "'content' must be an object")
        redacts = body.get("redacts")
        if etype == "m.room.redaction" and redacts is None:
            redacts = content.get("redacts")
            if redacts is None:
                raise MatrixError(400, "M_BAD_JSON", "a redaction needs 'redacts'")
        ev = self._append(room, sender, etype, content, state_key=body.get("state_key"),
                          redacts=redacts if etype == "m.room.redaction" else None)
        return 200, {"event_id": ev["event_id"]}, {}

    # ----- human views of a room (tests/room_view.py, shared with the Synapse demo) -----

    def _render_text(self, room):
        return room_view.render_text(room.events, test_clock=bool(self.clock_file))

    def _render_html(self, room):
        return room_view.render_html(room.room_id, room.events, test_clock=bool(self.clock_file))


class _Ctx:
    """What one request handler needs: who asked, the query, the raw body."""

    def __init__(self, query, body, raw_path, record):
        self.query, self.body, self.raw_path, self.record = query, body, raw_path, record
        self.user = self.device = self.token = None


_C = r"/_matrix/client/(?:r0|v3)"
_SEG = r"([^/]+)"
_ROUTES = [(m, re.compile(p), n, a) for m, p, n, a in [
    ("GET", r"/_matrix/client/versions", "versions", False),
    ("GET", _C + r"/account/whoami", "whoami", True),
    ("GET", _C + r"/directory/room/" + _SEG, "directory", True),
    ("POST", _C + r"/join/" + _SEG, "join", True),
    ("POST", _C + r"/rooms/" + _SEG + r"/join", "join_room", True),
    ("POST", _C + r"/rooms/" + _SEG + r"/leave", "leave", True),
    ("POST", _C + r"/rooms/" + _SEG + r"/invite", "invite", True),
    ("POST", _C + r"/rooms/" + _SEG + r"/kick", "kick", True),
    ("POST", _C + r"/rooms/" + _SEG + r"/ban", "ban", True),
    ("POST", _C + r"/rooms/" + _SEG + r"/unban", "unban", True),
    ("PUT", _C + r"/rooms/" + _SEG + r"/send/" + _SEG + "/" + _SEG, "send", True),
    ("PUT", _C + r"/rooms/" + _SEG + r"/state/" + _SEG + r"(?:/([^/]*))?", "put_state", True),
    ("GET", _C + r"/rooms/" + _SEG + r"/state/" + _SEG + r"(?:/([^/]*))?", "get_state", True),
    ("GET", _C + r"/rooms/" + _SEG + r"/state", "get_all_state", True),
    ("PUT", _C + r"/rooms/" + _SEG + r"/redact/" + _SEG + "/" + _SEG, "redact", True),
    ("GET", _C + r"/rooms/" + _SEG + r"/event/" + _SEG, "get_event", True),
    ("GET", _C + r"/rooms/" + _SEG + r"/messages", "messages", True),
    ("GET", _C + r"/joined_rooms", "joined_rooms", True),
    ("GET", _C + r"/notifications", "notifications", True),
    ("GET", _C + r"/sync", "sync", True),
    ("POST", _C + r"/user/" + _SEG + r"/filter", "create_filter", True),
    ("GET", _C + r"/user/" + _SEG + r"/filter/" + _SEG, "get_filter", True),
    ("GET", r"/_matrix/client/v1/rooms/" + _SEG + r"/relations/" + _SEG
     + r"(?:/([^/]+))?(?:/([^/]+))?", "relations", True),
]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHomeserver/1.0"
    timeout = 300  # an idle keep-alive connection is closed after this many seconds
    # Headers and body go out in separate writes; without TCP_NODELAY each answer would
    # wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if self.server.hs.verbose:
            sys.stderr.write("fake_homeserver: %s\n" % (fmt % args))

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status, body, headers=None):
        headers = dict(headers or {})
        if not isinstance(body, bytes):
            body = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store, must-revalidate")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _dispatch(self):
        hs = self.server.hs
        split = urllib.parse.urlsplit(self.path)
        raw_path = split.path
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(split.query,
                                                             keep_blank_values=True).items()}
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._send(400, {"errcode": "M_BAD_JSON", "error": "Unreadable body"})
            self.close_connection = True
            return
        if raw_path.startswith("/_fake/"):
            try:
                status, out, headers = hs.handle_fake(self.command, raw_path, body)
            except MatrixError as e:
                status, out, headers = e.status, e.body(), e.headers
            self._send(status, out, headers)
            return

        token = None
        auth = self.headers.get("Authorization")
        if auth and auth.startswith("Bearer "):
            token = auth[len("Bearer "):].strip()
        elif "access_token" in query:
            token = query["access_token"]
        logged_query = {k: v for k, v in query.items() if k != "access_token"}
        record = hs.log_request(self.command, raw_path, logged_query, dict(self.headers.items()),
                                token, body)

        fault = hs.take_fault(self.command, raw_path, split.query)
        if fault:
            action = fault["action"]
            hs.note(record, fault=action)
            if action == "drop":
                self._abort()
                return
            if action == "hang":
                hs.wait_released(float(fault.get("seconds", 30)))
                self._abort()
                return
            if action == "delay":
                time.sleep(float(fault.get("seconds", 1)))
            elif action == "no_wait":
                query["timeout"] = "0"
            elif action in ("pad", "late"):
                pass   # below, once the real answer is there
            else:
                status, out, headers = self._fault_response(fault)
                hs.note(record, status=status)
                self._send(status, out, headers)
                return

        try:
            status, out, headers = hs.handle_matrix(self.command, raw_path, query, self.headers,
                                                    body, record)
        except MatrixError as e:
            if e.pause:
                time.sleep(e.pause)   # outside the lock: other clients go on meanwhile
            status, out, headers = e.status, e.body(), e.headers
        except Exception as e:  # a bug here must show up as a 500, not a hung client
            traceback.print_exc()
            status, out, headers = 500, {"errcode": "M_UNKNOWN", "error": repr(e)}, {}
        hs.note(record, status=status)
        if fault and fault["action"] == "late":
            time.sleep(float(fault.get("seconds", 1)))
        if fault and fault["action"] == "pad" and isinstance(out, dict):
            out = dict(out, **{"org.example.fake.padding": "x" * int(fault.get("pad_bytes", 9 * 1024 * 1024))})
            hs.note(record, padded_bytes=len(json.dumps(out)))
            try:
                self._send(status, out, headers)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True   # the client refused the body, as it should
            return
        self._send(status, out, headers)

    @staticmethod
    def _fault_response(fault):
        status = int(fault.get("status", 500))
        errcode = fault.get("errcode") or ("M_LIMIT_EXCEEDED" if status == 429 else "M_UNKNOWN")
        out = fault.get("body")
        if out is None:
            out = {"errcode": errcode,
                   "error": fault.get("error") or ("Too Many Requests" if status == 429
                                                   else "Injected fault")}
        headers = {}
        retry = fault.get("retry_after_ms")
        if retry is None and status == 429:
            retry = 1000
        if retry is not None:
            if isinstance(out, dict):
                out["retry_after_ms"] = int(retry)
            headers["Retry-After"] = str(math.ceil(int(retry) / 1000))
        return status, out, headers

    def _abort(self):
        # No response at all: the client sees the connection close.
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _dispatch


def main(argv=None):
    ap = argparse.ArgumentParser(description="In-memory fake Matrix homeserver for tests.")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any free one)")
    ap.add_argument("--port-file", help="write the chosen port here (atomically) once ready")
    ap.add_argument("--config", help="JSON file with users and rooms (see default_config())")
    ap.add_argument("--server-name", help="server name in ids (default: localhost)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    hs = FakeHomeserver(load_config(args.config, args.server_name), verbose=args.verbose)
    port = hs.start(args.port)
    if args.port_file:
        tmp = args.port_file + ".tmp.%d" % os.getpid()
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    sys.stderr.write("fake_homeserver: listening on http://127.0.0.1:%d\n" % port)
    sys.stderr.flush()

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    hs.stop()
    if args.port_file:
        try:
            os.unlink(args.port_file)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
