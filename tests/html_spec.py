"""html_spec: the Python twin of tests/html_check.h, a strict checker of formatted_body against
the HTML the current Matrix spec lets clients render, for messages only the running daemon sends.

Source: Matrix client-server API v1.19 (2026-07; the same text on matrix-spec main), module
"Instant Messaging", section "m.room.message msgtypes". tests/html_check.h has the whole list with
what changed when (font deprecated in v1.10, strike -> s, a name dropped in v1.12, mx-reply gone
in v1.13). Both checkers run the shared cases of tests/data/html-spec-cases.json, so they agree.

Integration tests call collect(hs) before they stop a fake homeserver; sent_problems() then
checks every content the bridge PUT to /send across the whole run."""

import json
import os
import re

MAX_DEPTH = 100

TAGS = frozenset(
    "del h1 h2 h3 h4 h5 h6 blockquote p a ul ol sup sub li b i u strong em s code hr br div "
    "table thead tbody tr th td caption pre span img details summary".split())

ATTRS = {
    "span": {"data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"},
    "a": {"target", "href"},
    "img": {"width", "height", "alt", "title", "src"},
    "ol": {"start"},
    "code": {"class"},
    "div": {"data-mx-maths"},
}

VOID = frozenset(("br", "hr", "img"))
# Elements an HTML parser would not leave inside a <p> (it closes the paragraph first).
BLOCKS = frozenset("p ul ol pre div blockquote table hr h1 h2 h3 h4 h5 h6 details".split())
ENTITY = re.compile(r"&(?:amp|lt|gt|quot|apos|nbsp|#[0-9]+|#[xX][0-9a-fA-F]+);")
NAME = re.compile(r"[a-z0-9-]+")
CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "html-spec-cases.json")


def _value_ok(tag, name, value):
    """The value rule of a permitted attribute; value None: written without =\"...\"."""
    if value is None:
        return name == "data-mx-spoiler"   # a maths element needs its source
    if name in ("data-mx-color", "data-mx-bg-color"):
        return re.fullmatch(r"#[0-9a-fA-F]{6}", value) is not None
    if tag == "a" and name == "href":
        # Stricter than the spec (which also allows ftp and magnet): the bridge writes only
        # http(s) and mailto, so anything else is a Zuul value leaking through.
        return re.match(r"https?://[^/]", value) is not None or re.match(r"mailto:.", value) is not None
    if name == "src":
        return re.match(r"mxc://.", value) is not None
    if name in ("start", "width", "height"):
        return re.fullmatch(r"[-0-9]+", value) is not None
    if name == "class":
        return re.fullmatch(r"language-\S+", value) is not None
    return True


def _decode(raw):
    """The few entities that matter to a URL's scheme; others become '?', as in the C twin."""
    def one(m):
        return {"&amp;": "&", "&quot;": '"'}.get(m.group(0), "?")
    return ENTITY.sub(one, raw)


class _Checker:
    def __init__(self, html):
        self.s, self.i, self.stack = html, 0, []

    def at(self, n=30):
        return self.s[self.i:self.i + n]

    def name(self, what):
        m = NAME.match(self.s, self.i)
        end = m.end() if m else self.i
        if not m or (end < len(self.s) and self.s[end].isalnum()):
            raise ValueError('%s name at "%s" is empty, too long or not lower case' % (what, self.at()))
        self.i = end
        return m.group(0)

    def text(self):
        parent = self.stack[-1] if self.stack else ""
        while self.i < len(self.s) and self.s[self.i] != "<":
            c = self.s[self.i]
            if parent in ("ul", "ol") and not c.isspace():
                raise ValueError('text directly in <%s> at "%s": only <li> belongs there' % (parent, self.at()))
            if c == ">":
                raise ValueError("unescaped '>' in text at \"%s\"" % self.at())
            if c == "&" and not ENTITY.match(self.s, self.i):
                raise ValueError("bare '&' or unknown entity at \"%s\"" % self.at())
            self.i += 1

    def placement(self, tag):
        parent = self.stack[-1] if self.stack else ""
        if tag == "li" and parent not in ("ul", "ol"):
            raise ValueError("<li> outside a list (in <%s>)" % parent)
        if parent in ("ul", "ol") and tag != "li":
            raise ValueError("<%s> directly in <%s>: only <li> belongs there" % (tag, parent))
        if "p" in self.stack and tag in BLOCKS:
            raise ValueError("block <%s> inside <p>: parsers close the paragraph first" % tag)
        if "a" in self.stack and tag == "a":
            raise ValueError("<a> inside <a>")

    def attribute(self, tag, seen):
        name = self.name("attribute")
        if name in seen:
            raise ValueError("<%s> has %s twice" % (tag, name))
        seen.add(name)
        if name not in ATTRS.get(tag, ()):
            raise ValueError("<%s %s> is not permitted by the spec" % (tag, name))
        if self.s[self.i:self.i + 1] != "=":
            if not _value_ok(tag, name, None):
                raise ValueError("<%s %s> needs a value" % (tag, name))
            return
        if self.s[self.i + 1:self.i + 2] != '"':
            raise ValueError("<%s %s=...>: the value is not double-quoted" % (tag, name))
        end = self.s.find('"', self.i + 2)
        if end < 0 or "<" in self.s[self.i + 2:end]:
            raise ValueError("<%s %s=...>: the value is not closed" % (tag, name))
        value = _decode(self.s[self.i + 2:end])
        self.i = end + 1
        if not _value_ok(tag, name, value):
            raise ValueError('<%s %s="%s">: value not permitted' % (tag, name, value[:60]))

    def open(self):
        tag = self.name("tag")
        if tag == "font":
            raise ValueError("<font> is deprecated since Matrix v1.10: use <span data-mx-color>")
        if tag not in TAGS:
            raise ValueError("<%s> is not in the spec's list of tags" % tag)
        self.placement(tag)
        seen = set()
        while self.s[self.i:self.i + 1] == " ":
            while self.s[self.i:self.i + 1] == " ":
                self.i += 1
            if self.s[self.i:self.i + 1] not in (">", "/"):
                self.attribute(tag, seen)
        if self.s[self.i:self.i + 1] == "/" and tag in VOID:
            self.i += 1
        if self.s[self.i:self.i + 1] != ">":
            raise ValueError("<%s ...> is not closed by '>' at \"%s\"" % (tag, self.at(20)))
        self.i += 1
        if tag in VOID:
            return
        if len(self.stack) == MAX_DEPTH:
            raise ValueError("tags nest deeper than %d" % MAX_DEPTH)
        self.stack.append(tag)

    def close(self):
        self.i += 1   # '/'
        tag = self.name("closing tag")
        if self.s[self.i:self.i + 1] != ">":
            raise ValueError("</%s is not closed by '>'" % tag)
        self.i += 1
        if tag in VOID:
            raise ValueError("</%s>: a void element has no closing tag" % tag)
        if not self.stack or self.stack[-1] != tag:
            raise ValueError("</%s> closes %s" % (tag, "<%s>" % self.stack[-1] if self.stack else "nothing open"))
        self.stack.pop()

    def run(self):
        while self.i < len(self.s):
            self.text()
            if self.i >= len(self.s):
                break
            self.i += 1   # '<'
            nxt = self.s[self.i:self.i + 1]
            if nxt == "/":
                self.close()
            elif nxt == "!":
                raise ValueError('comment or doctype at "%s"' % self.s[self.i - 1:self.i + 19])
            else:
                self.open()
        if self.stack:
            raise ValueError("<%s> is never closed" % self.stack[-1])


def check(html):
    """None when html holds to the spec's subset (see tests/html_check.h); else the first problem."""
    try:
        _Checker(html or "").run()
    except ValueError as e:
        return str(e)
    return None


PILL = re.compile(r'<a href="https://matrix\.to/#/@[^"]*">[^<]*</a>')


def content_problems(content, what="content"):
    """Problems of one m.room.message content: its formatted_body and m.new_content's hold to
    the spec, format and formatted_body come together, and the HTML says more than the pills
    of its mentions when the body does (HTML clients show only formatted_body)."""
    problems = []
    fmt, html = content.get("format"), content.get("formatted_body")
    if (fmt is None) != (html is None) or (fmt is not None and fmt != "org.matrix.custom.html"):
        problems.append("%s: format %r with formatted_body %s" % (what, fmt, "set" if html else "missing"))
    if html is not None:
        why = check(html)
        if why:
            problems.append("%s: %s\n  in: %s" % (what, why, html[:300]))
        words = re.sub(r"<[^>]*>", "", PILL.sub("", html)).strip()
        body_words = "\n".join(line for line in (content.get("body") or "").splitlines()
                               if not re.fullmatch(r"(@\S+ ?)+", line)).strip()
        if body_words and not words:
            problems.append("%s: formatted_body is only pills, the body says %r" % (what, body_words[:80]))
    new = content.get("m.new_content")
    if isinstance(new, dict):
        problems += content_problems(new, what + ", m.new_content")
    return problems


_collected = []


def collect(hs):
    """Keeps every content the bridge PUT to /send on hs (before the test stops it)."""
    try:
        for r in hs.sends():
            if isinstance(r.get("body"), dict):
                _collected.append((r["path"], r["body"]))
    except Exception:   # a homeserver that is already gone has nothing more to give
        pass


def collected():
    return list(_collected)


def sent_problems():
    """(number of contents checked, their problems) over everything collect() kept."""
    problems = []
    for path, content in _collected:
        problems += content_problems(content, path.rsplit("/", 1)[-1])
    return len(_collected), problems


def cases():
    """The shared cases: {"accept": [{"html", "why"}...], "refuse": [...]}."""
    with open(CASES, encoding="utf-8") as f:
        return json.load(f)


def kinds():
    """How many collected contents of each kind: the kind in the transaction id
    (zmb.ROUTE.KIND.KEY: failure, claims, handover, escalation...) and the relation, to show
    what a run covered."""
    counts = {}
    for path, content in _collected:
        parts = path.rsplit("/", 1)[-1].split(".")
        kind = parts[2] if len(parts) > 3 and parts[0] == "zmb" else "?"
        rel = (content.get("m.relates_to") or {}).get("rel_type")
        key = kind + (" (%s)" % rel if rel else "")
        counts[key] = counts.get(key, 0) + 1
    return counts


def check_everything_sent(filtered):
    """The body of an integration test's last test point: every collected content holds to the
    spec. filtered: the run was limited to some tests, so an empty collection is no failure."""
    n, problems = sent_problems()
    for key, count in sorted(kinds().items()):
        print("# %4d x %s" % (count, key))
    assert n > 0 or filtered, "expected the tests above to have the bridge send something"
    assert problems == [], "expected every formatted_body to hold to the Matrix spec's HTML, got:\n" + \
        "\n".join(problems[:20])
