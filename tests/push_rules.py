"""push_rules: the Matrix push-rule evaluation for the fake homeserver, over the default rule
set exactly as Synapse 1.163 serves it (tests/data/synapse-push-rules.json, read from
GET /_matrix/client/v3/pushrules/; tests/test_synapse.py checks the file against Synapse).

    actions = evaluate(event, user_id, room)   # room: display_name(u), power(u),
                                                # notification_level(key), member_count()

As in Synapse (and the spec since v1.7, intentional mentions): an event whose content has
the m.mentions property, even empty, skips the legacy mention rules (display name, user name,
"@room" in the body). Kinds are tried in the spec's order; the first matching enabled rule
decides."""

import json
import os
import re

RULES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "synapse-push-rules.json")
KIND_ORDER = ("override", "content", "room", "sender", "underride")
LEGACY_MENTION_RULES = {".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif"}

with open(RULES_FILE, encoding="utf-8") as _f:
    _TEMPLATE = _f.read()


def rules_for(user_id):
    """The default rules with the user's id and localpart filled in, in evaluation order."""
    localpart = user_id[1:].split(":", 1)[0]
    text = _TEMPLATE.replace('"$USER_ID"', json.dumps(user_id)).replace('"$LOCALPART"', json.dumps(localpart))
    rules = json.loads(text)
    return [(kind, rule) for kind in KIND_ORDER for rule in rules.get(kind, [])]


def _path(event, key):
    """The value at a dotted key; '\\.' is a literal dot (content.m\\.mentions.user_ids)."""
    value = event
    for part in re.split(r"(?<!\\)\.", key):
        part = part.replace("\\.", ".")
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _glob(pattern, value, words):
    """Synapse's event_match: case-insensitive glob; on content.body at word boundaries."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if words:
        return re.search(r"(?:^|\W)%s(?:\W|$)" % rx, value, re.IGNORECASE | re.DOTALL) is not None
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL) is not None


def _condition(cond, event, user_id, room):
    kind = cond.get("kind")
    if kind == "event_match":
        value = _path(event, cond["key"])
        return isinstance(value, str) and _glob(cond["pattern"], value, cond["key"] == "content.body")
    if kind == "event_property_is":
        value = _path(event, cond["key"])
        return value == cond["value"] and type(value) is type(cond["value"])
    if kind == "event_property_contains":
        value = _path(event, cond["key"])
        return isinstance(value, list) and cond["value"] in value
    if kind == "contains_display_name":
        name = room.display_name(user_id)
        body = _path(event, "content.body")
        return bool(name) and isinstance(body, str) and _glob(name, body, True)
    if kind == "sender_notification_permission":
        return room.power(event["sender"]) >= room.notification_level(cond["key"])
    if kind == "room_member_count":
        m = re.fullmatch(r"(==|<=|>=|<|>)?(\d+)", cond.get("is", ""))
        if not m:
            return False
        op, n, count = m.group(1) or "==", int(m.group(2)), room.member_count()
        return {"==": count == n, "<": count < n, ">": count > n, "<=": count <= n, ">=": count >= n}[op]
    return False   # an unknown condition never matches (spec)


def evaluate(event, user_id, room):
    """The actions of the first matching rule for user_id, or [] when none matches."""
    has_mentions = isinstance(event.get("content"), dict) and "m.mentions" in event["content"]
    for kind, rule in rules_for(user_id):
        if not rule.get("enabled", True):
            continue
        if has_mentions and rule["rule_id"] in LEGACY_MENTION_RULES:
            continue
        if kind == "content":
            conds = [{"kind": "event_match", "key": "content.body", "pattern": rule["pattern"]}]
        else:
            conds = rule.get("conditions", [])
        if all(_condition(c, event, user_id, room) for c in conds):
            return rule["actions"]
    return []


def highlights(actions):
    return any(isinstance(a, dict) and a.get("set_tweak") == "highlight" and a.get("value", True) is not False
               for a in actions)


def notifies(actions):
    return "notify" in actions
