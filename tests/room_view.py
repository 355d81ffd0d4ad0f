"""room_view: a Matrix room's events as a person reads them, in plain text and as an HTML
page: edits applied, reactions counted, thread replies nested under their root.

Shared by the fake homeserver's /_fake/rooms/ROOM/text and /html views and by the demo,
which renders the rooms it reads back from a real Synapse the same way."""

import html
import re
import time

def room_items(events):
    """Messages with edits applied, reactions counted and thread replies nested."""
    items, top, edits = {}, [], {}
    for ev in events:
        content = ev["content"]
        rel = content.get("m.relates_to") if isinstance(content.get("m.relates_to"), dict) \
            else {}
        rel_type, target = rel.get("rel_type"), rel.get("event_id")
        if ev["type"] == "m.reaction":
            if rel_type == "m.annotation" and target in items:
                counts = items[target]["reactions"]
                counts[rel.get("key", "")] = counts.get(rel.get("key", ""), 0) + 1
            continue
        if ev["type"] == "m.room.redaction":
            continue
        if rel_type == "m.replace" and target is not None:
            edits.setdefault(target, []).append(ev)
            continue
        item = {"event": ev, "content": content, "edited": False, "reactions": {},
                "children": [], "state": "state_key" in ev}
        items[ev["event_id"]] = item
        if rel_type == "m.thread" and target in items:
            items[target]["children"].append(item)
        else:
            top.append(item)
    for target, evs in edits.items():
        item = items.get(target)
        if item is None:
            continue
        for ev in evs:  # the last edit by the original sender wins
            new = ev["content"].get("m.new_content")
            if ev["sender"] == item["event"]["sender"] and isinstance(new, dict):
                item["content"], item["edited"] = new, True
    return top

def _when(ev, test_clock):
    if test_clock:
        return time.strftime("%a %d %b %Y %H:%M UTC", time.gmtime(ev["origin_server_ts"] / 1000))
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ev["origin_server_ts"] / 1000))

def _describe_state(ev):
    detail = ev["content"].get("membership") or ev["content"].get("name") \
        or ev["content"].get("alias") or ev["content"].get("join_rule") or ""
    return "%s %s %s" % (ev["type"], ev["state_key"], detail)

def render_text(events, test_clock=False):
    """The room as plain text: edits applied, reactions counted, thread replies indented."""
    lines = []

    def emit(item, depth):
        ev, content = item["event"], item["content"]
        pad = "    " * depth
        if item["state"]:
            lines.append("%s* %s %s" % (pad, ev["sender"], _describe_state(ev)))
            return
        body = content.get("body")
        if body is None:
            body = "(redacted)" if "redacted_because" in (ev.get("unsigned") or {}) else \
                "(%s)" % ev["type"]
        body_lines = str(body).split("\n")
        when = time.strftime("[%a %d %b %H:%M] ", time.gmtime(ev["origin_server_ts"] / 1000)) \
            if test_clock else ""
        first = "%s%s%s: %s" % (pad, when, ev["sender"], body_lines[0])
        lines.append(first + (" (edited)" if item["edited"] and len(body_lines) == 1 else ""))
        for i, extra in enumerate(body_lines[1:], 2):
            lines.append("%s    %s%s" % (pad, extra, " (edited)" if item["edited"]
                                           and i == len(body_lines) else ""))
        if item["reactions"]:
            lines.append("%s    [%s]" % (pad, ", ".join(
                "%s %d" % (k, n) for k, n in item["reactions"].items())))
        for child in item["children"]:
            emit(child, depth + 1)

    for item in room_items(events):
        emit(item, 0)
    return "\n".join(lines) + "\n"

def _reply_note(ev, events_by_id):
    """' · in reply to SENDER: "first words"' for a rich reply (HTML), else ''."""
    rel = ev["content"].get("m.relates_to")
    if not isinstance(rel, dict) or rel.get("is_falling_back") is True:
        return ""               # a thread's fallback reply is no real reply
    target = rel.get("m.in_reply_to")
    target = events_by_id.get(target.get("event_id")) if isinstance(target, dict) else None
    if target is None:
        return ""
    body = str(target["content"].get("body", "")).split("\n")[0]
    if len(body) > 60:
        body = body[:59] + "\u2026"
    return " &middot; in reply to <b>%s</b>: <q>%s</q>" % (html.escape(target["sender"]),
                                                           html.escape(body))

def render_html(title, events, test_clock=False):
    """The room as a page: the bridge's HTML in sandboxed frames, threads nested."""
    esc = html.escape
    events_by_id = {ev["event_id"]: ev for ev in events}
    out = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>%s</title>"
           % esc(title),
           "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto}"
           ".msg{border-left:3px solid #ccc;margin:.6em 0;padding:.2em .6em}"
           ".thread{margin-left:2.5em}.meta{color:#666;font-size:.85em}"
           "pre{white-space:pre-wrap}.notice pre{color:#555}"
           ".state{color:#888;font-size:.8em;margin:.2em 0}"
           "iframe{width:100%;border:1px solid #eee;resize:vertical}"
           ".reactions span{display:inline-block;border:1px solid #ccc;border-radius:1em;"
           "padding:0 .5em;margin-right:.3em}</style></head><body>",
           "<h1>%s</h1>" % esc(title)]

    def emit(item):
        ev, content = item["event"], item["content"]
        if item["state"]:
            out.append("<div class='state'>%s &middot; %s %s</div>" % (
                esc(_when(ev, test_clock)), esc(ev["sender"]), esc(_describe_state(ev))))
            return
        notice = content.get("msgtype") == "m.notice"
        out.append("<div class='msg%s' id='%s'>" % (" notice" if notice else "", esc(ev["event_id"])))
        out.append("<div class='meta'><b>%s</b> &middot; %s%s%s</div>" % (
            esc(ev["sender"]), esc(_when(ev, test_clock)), " (edited)" if item["edited"] else "",
            _reply_note(ev, events_by_id)))
        formatted = content.get("formatted_body") \
            if content.get("format") == "org.matrix.custom.html" else None
        if formatted is not None:
            # The bridge's HTML is shown as is, but in a sandbox: no scripts, no navigation.
            rows = 2 + len(re.findall(r"<br|<p|<li|<tr|<h\d|\n", str(formatted)))
            out.append("<iframe sandbox='' style='height:%.1fem' srcdoc='%s'></iframe>" % (
                min(1.6 * rows, 60), esc("<meta charset='utf-8'>" + str(formatted),
                                         quote=True)))
        elif content.get("body") is not None:
            out.append("<pre>%s</pre>" % esc(str(content["body"])))
        elif "redacted_because" in (ev.get("unsigned") or {}):
            out.append("<i>(redacted)</i>")
        else:
            out.append("<i>(%s)</i>" % esc(ev["type"]))
        if item["reactions"]:
            out.append("<div class='reactions'>%s</div>" % "".join(
                "<span>%s %d</span>" % (esc(k), n) for k, n in item["reactions"].items()))
        if item["children"]:
            out.append("<div class='thread'>")
            for child in item["children"]:
                emit(child)
            out.append("</div>")
        out.append("</div>")

    for item in room_items(events):
        emit(item)
    out.append("</body></html>\n")
    return "".join(out)
