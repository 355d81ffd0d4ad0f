"""test_docs_examples: the rendered chatops examples in docs/examples/ are what the bridge
posts now. Replays tests/demo_chatops.py's story with the real bridge and compares, and
checks that the transcript excerpts quoted in README.md and docs/chatops.md are in it.

When the bridge's messages change on purpose: `tests/demo --chatops` writes the new files."""

import difflib
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_chatops  # noqa: E402
from harness import ROOT  # noqa: E402
from tap import diag, run, test  # noqa: E402

EXAMPLES = os.path.join(ROOT, "docs", "examples")
NAMES = ("chatops-room.txt", "chatops-room.html")
# A fenced block right after this comment quotes docs/examples/chatops-room.txt.
EXCERPT_MARK = "<!-- excerpt of docs/examples/chatops-room.txt -->"

_played = {}


def played():
    """The story's output, played once per run of this file: {file name: text}."""
    if not _played:
        out = tempfile.mkdtemp(prefix="zmb-docs-examples-")
        try:
            demo_chatops.run(out, narrate=lambda *a: None)
            for name in NAMES:
                with open(os.path.join(out, name), encoding="utf-8") as f:
                    _played[name] = f.read()
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return _played


def committed(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return f.read()


def assert_same(name):
    want, got = committed(name), played()[name]
    if want == got:
        return
    # The HTML page is one long line per message: split at tags so the diff points somewhere.
    split = (lambda s: s.replace("><", ">\n<").splitlines()) if name.endswith(".html") else str.splitlines
    diff = list(difflib.unified_diff(split(want), split(got), "docs/examples/" + name, "what the bridge posts now",
                                     lineterm="", n=1))
    diag("\n".join(diff[:60]) + ("\n... (%d more diff lines)" % (len(diff) - 60) if len(diff) > 60 else ""))
    raise AssertionError("docs/examples/%s differs from what the bridge posts now (diff above); if the change "
                         "is intended, run tests/demo --chatops and commit the new examples" % name)


@test
def the_transcript_example_is_what_the_bridge_posts_now():
    assert_same("chatops-room.txt")


@test
def the_room_page_example_is_what_the_bridge_posts_now():
    assert_same("chatops-room.html")


@test
def the_story_shows_claim_thread_escalation_commands_and_recovery():
    """The examples are only worth comparing while the story still shows what the docs describe."""
    text = played()["chatops-room.txt"]
    for needle in ("\U0001F440 Claimed by @bob:localhost", "Failed 3 times since Tue 06 Jan 03:00 UTC",
                   "    [Wed 07 Jan 03:00] @zuul-bot:localhost: \u274c Build failed.",
                   "\u23f0 Still unclaimed after 1h. You are on call", "\u2705 Resolved by @alice:localhost",
                   "Commands (for members with power level 50 or more):", "Open failures in this room (2):",
                   "Sorry, !zuul commands need power level 50 in this room; you have 0.",
                   "Muted failures of osism/testbed until Thu 08 Jan 11:30 UTC",
                   "    [Fri 09 Jan 03:00] @zuul-bot:localhost: \u2705 Recovered: the next run succeeded.",
                   "On-call handover: @alice:localhost hands over to @bob:localhost"):
        assert needle in text, "expected %r in the transcript, got:\n%s" % (needle, text)
    first = text.splitlines()[0]
    assert first.startswith("[Tue 06 Jan 03:00] @zuul-bot:localhost: \u2705 Recovered"), \
        "expected the first failure to show its final state first, got %r" % first
    assert "%24event" in text and "(real time)" in text, "expected normalised event ids and status times"


def excerpts(path):
    """The fenced blocks marked as transcript excerpts in path: [(line number, [lines])]."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        lines = f.read().splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.strip() != EXCERPT_MARK:
            continue
        assert i + 1 < len(lines) and lines[i + 1].startswith("```"), \
            "%s:%d: expected a fenced block after the excerpt mark" % (path, i + 1)
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, "%s:%d: unterminated fenced block" % (path, i + 2)
        found.append((i + 3, lines[i + 2:end]))
    return found


def excerpt_problem(block, transcript):
    """None when block's lines appear in the transcript in order, else (index in block, what
    is wrong). The first line may be anywhere; after it, lines follow each other unless a
    line of only "…" (any indentation) skips some. A line ending in " …" is a shortened
    transcript line (its start must match)."""
    pos = 0
    skipping = True
    for i, line in enumerate(block):
        if line.strip() == "\u2026":
            skipping = True
            continue
        if line.endswith(" \u2026"):
            match = lambda t, want=line[:-2]: t.startswith(want)  # noqa: E731
        else:
            match = lambda t, want=line: t == want  # noqa: E731
        if skipping:
            nxt = next((k for k in range(pos, len(transcript)) if match(transcript[k])), None)
        else:
            nxt = pos if pos < len(transcript) and match(transcript[pos]) else None
        if nxt is None:
            return i, "%r is not %s" % (line, "in the transcript (after the excerpt's previous line)" if skipping
                                        else "the transcript's next line after the excerpt's previous one")
        pos, skipping = nxt + 1, False
    return None


@test
def the_excerpts_in_the_readme_and_chatops_guide_are_quoted_from_the_transcript():
    transcript = committed("chatops-room.txt").splitlines()
    total, problems = 0, []
    for path in ("README.md", os.path.join("docs", "chatops.md")):
        blocks = excerpts(path)
        if not blocks:
            problems.append("%s: expected at least one %s" % (path, EXCERPT_MARK))
        for first_line, block in blocks:
            total += 1
            problem = excerpt_problem(block, transcript)
            if problem:
                problems.append("%s:%d: %s" % (path, first_line + problem[0], problem[1]))
    assert problems == [], "expected the excerpts to be quoted from docs/examples/chatops-room.txt, got:\n" + \
        "\n".join(problems)
    assert total >= 3, "expected the docs to quote the transcript at least 3 times, found %d" % total


def anchor_of(heading):
    """GitHub's anchor of a heading: lower case, spaces to '-', other punctuation dropped."""
    return "".join(c for c in heading.strip().lower().replace(" ", "-") if c.isalnum() or c in "-_")


def link_problems(path):
    """Relative links of the Markdown file path whose file or #anchor does not exist."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        doc = f.read()
    problems = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, frag = target.partition("#")
        linked = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        full = os.path.join(ROOT, linked)
        if not os.path.exists(full):
            problems.append("%s: no such file" % target)
        elif frag and linked.endswith(".md"):
            with open(full, encoding="utf-8") as f:
                anchors = {anchor_of(m) for m in re.findall(r"^#+ (.*)$", f.read(), re.M)}
            if frag not in anchors:
                problems.append("%s: no heading with that anchor in %s" % (target, linked))
    return problems


@test
def the_chatops_guide_links_to_files_and_headings_that_exist():
    problems = link_problems(os.path.join("docs", "chatops.md"))
    assert problems == [], "expected every link of docs/chatops.md to lead somewhere, got:\n" + "\n".join(problems)
    assert anchor_of("`chatops.claim_reaction`") == "chatopsclaim_reaction"
    assert anchor_of("A failure arrives: the on-call is mentioned") == "a-failure-arrives-the-on-call-is-mentioned"


@test
def the_excerpt_check_notices_a_changed_skipped_or_reordered_line():
    transcript = ["a: one", "    b: two", "c: three four"]
    assert excerpt_problem(["a: one", "    b: two"], transcript) is None
    assert excerpt_problem(["a: one", "\u2026", "c: three five"], transcript) == \
        (2, "'c: three five' is not in the transcript (after the excerpt's previous line)")
    assert excerpt_problem(["a: one", "\u2026", "c: three \u2026"], transcript) is None
    assert excerpt_problem(["    b: two", "c: three four"], transcript) is None, "the first line may be anywhere"
    assert excerpt_problem(["a: one", "c: three four"], transcript) is not None, "a skip needs a … line"
    assert excerpt_problem(["a: one", "b: two"], transcript) is not None, "indentation counts"
    assert excerpt_problem(["    b: two", "a: one"], transcript) is not None, "order counts"
    assert excerpt_problem(["c: three five"], transcript) is not None, "a changed line"


run()
