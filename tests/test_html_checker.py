"""test_html_checker: tests/html_spec.py, the Python twin of tests/html_check.h, accepts what
the current Matrix spec permits and refuses the rest, and agrees with the C checker.

No bridge, no sockets: the integration tests rely on this checker to judge the daemon's messages."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import html_spec  # noqa: E402
from tap import diag, run, test  # noqa: E402

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "html_check.h")


def c_array(name):
    """The strings of a NULL-terminated char array, or the pairs of html_check_attrs, in html_check.h."""
    with open(HEADER, encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"%s\[\] = \{(.*?)\};" % re.escape(name), text, re.S).group(1)
    return re.findall(r'"([^"]*)"', block)


@test
def the_shared_cases_the_spec_permits_pass():
    wrong = [(c["html"], c["why"], html_spec.check(c["html"])) for c in html_spec.cases()["accept"]
             if html_spec.check(c["html"])]
    assert wrong == [], "expected these to pass, got refusals:\n%s" % "\n".join(map(repr, wrong))


@test
def the_shared_cases_outside_the_spec_fail():
    refused = [(c, html_spec.check(c["html"])) for c in html_spec.cases()["refuse"]]
    for c, why in refused:
        diag("%-40.40s %s" % (c["html"], why))
    wrong = [c["html"] for c, why in refused if not why]
    assert wrong == [], "expected these to be refused: %r" % wrong


@test
def the_tag_and_attribute_lists_are_the_c_checkers():
    assert sorted(c_array("html_check_tags")) == sorted(html_spec.TAGS), \
        "expected the same tags as tests/html_check.h"
    pairs = c_array("html_check_attrs")
    c_attrs = {}
    for tag, name in zip(pairs[0::2], pairs[1::2]):
        c_attrs.setdefault(tag, set()).add(name)
    assert c_attrs == html_spec.ATTRS, "expected the same attributes, got C %r, Python %r" % (c_attrs, html_spec.ATTRS)


@test
def a_content_with_font_or_a_foreign_attribute_is_a_problem():
    font = {"msgtype": "m.notice", "body": "FAILURE", "format": "org.matrix.custom.html",
            "formatted_body": '<font data-mx-color="#cf222e">FAILURE</font>'}
    problems = html_spec.content_problems(font)
    assert len(problems) == 1 and "deprecated since Matrix v1.10" in problems[0], problems
    style = dict(font, formatted_body='<span style="color:red">FAILURE</span>')
    problems = html_spec.content_problems(style)
    assert len(problems) == 1 and "<span style> is not permitted" in problems[0], problems
    good = dict(font, formatted_body='<span data-mx-color="#cf222e">FAILURE</span>')
    assert html_spec.content_problems(good) == []


@test
def an_edit_is_checked_in_its_new_content_too():
    new = {"msgtype": "m.notice", "body": "x", "format": "org.matrix.custom.html",
           "formatted_body": "<font>x</font>"}
    edit = {"msgtype": "m.notice", "body": "* x", "format": "org.matrix.custom.html", "formatted_body": "* x",
            "m.new_content": new, "m.relates_to": {"rel_type": "m.replace", "event_id": "$e"}}
    problems = html_spec.content_problems(edit)
    assert len(problems) == 1 and "m.new_content" in problems[0], problems


@test
def format_without_html_and_html_of_pills_alone_are_problems():
    assert html_spec.content_problems({"body": "x", "format": "org.matrix.custom.html"}) != []
    assert html_spec.content_problems({"body": "x", "formatted_body": "x"}) != []
    pills = {"msgtype": "m.text", "body": "@a:hs\nStill unclaimed after 1h.", "format": "org.matrix.custom.html",
             "formatted_body": '<a href="https://matrix.to/#/@a:hs">@a:hs</a><br>'}
    problems = html_spec.content_problems(pills)
    assert len(problems) == 1 and "only pills" in problems[0], problems
    pills["formatted_body"] += "Still unclaimed after 1h."
    assert html_spec.content_problems(pills) == []
    only_mention = dict(pills, body="@a:hs", formatted_body='<a href="https://matrix.to/#/@a:hs">@a:hs</a>')
    assert html_spec.content_problems(only_mention) == []


run()
