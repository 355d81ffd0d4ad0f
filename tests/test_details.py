"""Integration tests of build details (issue #16): the real bridge between mosquitto and the
fake homeserver, with tests/fake_zuul_web.py as Zuul's web server and log server. The
report is posted at once, with its flakiness verdicts; why it failed follows as an edit of
the report's message, keeping its claim lines (and the claim edits keep the details); a
repeat in a failure's thread gets its own edit; nothing is ever asked of a host that
details.hosts does not list; a fetch that fails leaves one log line and the report as it was."""

import json
import os
import random
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_zuul_web import FakeZuulWeb, build_record, fixture, gz  # noqa: E402
from harness import World, free_port, payload_variant, wait_for  # noqa: E402
import html_spec  # noqa: E402
from tap import diag, run, test  # noqa: E402

ALERTS = "!alerts:localhost"
ALL = '  { name = "all"; room = "#alerts:localhost"; }'


def details_config(*servers, timeout="2s"):
    hosts = ", ".join('"127.0.0.1:%d"' % s.port for s in servers)
    return ('details: { hosts = [%s]; timeout = "%s"; max_download = "256KiB"; max_output = "1MiB"; };'
            % (hosts, timeout))


def failure(buildset, builds, action="failure", retry_builds=None, end_time=1732181120.9):
    """shared-modern-failure.json as another buildset: builds is a list of (job, uuid, result,
    web_url, log_url); the first is the template's tox-py311 entry, re-used for each."""
    ev = payload_variant("shared-modern-failure.json", buildset_uuid=buildset, action=action)
    template = ev["buildset"]["builds"][0]
    ev["buildset"]["builds"] = [dict(template, job_name=job, uuid=uuid, result=result, web_url=web, log_url=log,
                                     end_time=end_time)
                                for job, uuid, result, web, log in builds]
    ev["buildset"]["retry_builds"] = retry_builds or []
    ev["buildset"]["result"] = "FAILURE" if action == "failure" else "SUCCESS"
    ev["message"] = "Build failed." if action == "failure" else "Build succeeded."
    return json.dumps(ev)


def web_url(server, uuid):
    return "%s/t/scs/build/%s" % (server.url, uuid)


def log_url(server, uuid):
    return "%s/logs/%s/" % (server.url, uuid)


def messages(w):
    return w.hs.events(ALERTS)


def is_edit(e):
    return (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.replace"


def reports(w):
    """The bridge's messages that are neither edits nor thread replies, oldest first."""
    return [e for e in messages(w) if not is_edit(e)
            and (e["content"].get("m.relates_to") or {}).get("rel_type") != "m.thread"]


def thread_replies(w, root_id):
    return [e for e in messages(w)
            if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.thread"
            and e["content"]["m.relates_to"].get("event_id") == root_id]


def edits_of(w, target):
    return [e for e in messages(w) if is_edit(e) and e["content"]["m.relates_to"].get("event_id") == target]


def edit_saying(w, target, needle, timeout=10):
    """The newest edit of target once its new content says needle (a newer edit queued
    behind an unsent one supersedes it: how many there are depends on timing)."""
    def newest():
        edits = edits_of(w, target)
        return edits and needle in edits[-1]["content"]["m.new_content"]["body"] and edits[-1]
    return wait_for(newest, timeout, "an edit of %s saying %r" % (target, needle))


def assert_well_formed(content, where):
    problems = html_spec.content_problems(content, where)
    assert not problems, problems
    assert content["msgtype"] == "m.notice", content
    assert content["m.mentions"] == {}, "it pings nobody: %r" % content["m.mentions"]


def assert_quiet_edit(edit, where):
    """A details edit: current-spec HTML in both contents, a notice that pings nobody."""
    assert_well_formed(edit["content"], where)
    assert_well_formed(edit["content"]["m.new_content"], where + " (new content)")


class DetailsWorld(World):
    def __init__(self, *servers, timeout="2s", routes=ALL, extra=""):
        self.metrics_port = free_port()
        super().__init__(routes, extra=details_config(*servers, timeout=timeout) + extra +
                         '\nmetrics: { listen = "127.0.0.1"; port = %d; };' % self.metrics_port)

    def metrics(self):
        """The /metrics samples as {"name{labels}": value}."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
            text = r.read().decode()
        return {l.rsplit(" ", 1)[0]: float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                if l and not l.startswith("#")}


def with_details(fn, n_servers=1, timeout="2s", extra=""):
    servers = [FakeZuulWeb() for _ in range(n_servers)]
    w = None
    try:
        w = DetailsWorld(servers[0], timeout=timeout, extra=extra)
        fn(w, *servers)
    finally:
        if w:
            w.close()
        for s in servers:
            s.stop()


@test
def the_report_comes_at_once_with_its_verdict_and_why_it_failed_follows_as_its_edit():
    def body(w, zuul):
        u, ok = "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", "2b3c4d5e6f7a4b8c9d0e1f2a3b4c5d6e"
        # The job passed before (posted too: the route takes every report).
        w.broker.publish("zuul/scs/check", payload=failure("bs-passed", [
            ("tox-py311", "passed00000000000000000000000001", "SUCCESS", None, None)], action="success",
            end_time=1732180000.0))
        wait_for(lambda: w.bridge.log().count("key=bs-passed"), 10, "the success")
        # The job's failure-message replaced the result in the report; the API has the true one.
        zuul.serve("/api/tenant/scs/build/" + u, build_record(u, "POST_FAILURE", error_detail="The log upload failed"))
        zuul.serve("/logs/%s/job-output.json.gz" % u, gz(fixture("job-output-tox.json")),
                   content_type="application/gzip")
        payload = failure("bs-first", [("tox-py311", u, "tox failed: see the contributor docs", web_url(zuul, u),
                                        log_url(zuul, u)),
                                       ("scs-check-gx-scs", ok, "SUCCESS", web_url(zuul, ok), log_url(zuul, ok))],
                          retry_builds=[{"job_name": "tox-py311", "uuid": "retried-1", "result": "RETRY",
                                         "web_url": web_url(zuul, "retried-1"), "log_url": None}])
        t0 = time.monotonic()
        w.broker.publish("zuul/scs/check", payload=payload)
        report = wait_for(lambda: [e for e in reports(w) if e["content"]["body"].startswith("\u274c")], 10,
                          "the report")[0]
        t_report = time.monotonic() - t0
        edit = edit_saying(w, report["event_id"], "Failed task")
        t_edit = time.monotonic() - t0
        diag("report %.2f s after the publish, its details edit %.2f s after it" % (t_report, t_edit - t_report))
        first = report["content"]["body"]
        # The verdict needs no fetch: it is in the report as first posted, nothing else is.
        assert "first failure after 1 success: new (after 1 retried build in this buildset)" in first, first
        assert "Failed task" not in first and "Error:" not in first, "the report itself is not held back"
        assert_quiet_edit(edit, "the details edit")
        new = edit["content"]["m.new_content"]
        text, html = new["body"], new["formatted_body"]
        assert "first failure after 1 success: new" in text, text
        assert "Zuul's result: POST_FAILURE" in text, text
        assert "Error: The log upload failed" in text, text
        assert "Failed task Run tox testenv on ubuntu-jammy (rc 1): non-zero return code" in text, text
        assert "ERROR: InvocationError for command" in text and "py311: commands failed" in text, text
        assert "<pre><code>" in html and "<b>Run tox testenv</b>" in html, html
        assert "Check for optional lint config" not in text, "an ignored failure is not the cause"
        # The report is otherwise the same: the whole report, edited, not an answer beside it.
        assert text.startswith(first.split("\n- ")[0]), (first[:200], text[:200])
        assert thread_replies(w, report["event_id"]) == [], "no answer in the thread any more"
        # One build record and one job output: the success and the retried build are not fetched.
        assert sorted(zuul.paths()) == sorted(["/api/tenant/scs/build/" + u, "/logs/%s/job-output.json.gz" % u]), \
            zuul.paths()
        assert any(r["headers"].get("User-Agent", "").startswith("zuul-matrix-bridge/") for r in zuul.requests())
        # The same report again (MQTT redelivers): no second fetch, no second edit.
        w.broker.publish("zuul/scs/check", payload=payload)
        w.bridge.wait_log("duplicate report ignored")
        time.sleep(0.5)
        assert len([e for e in edits_of(w, report["event_id"]) if "Failed task" in
                    e["content"]["m.new_content"]["body"]]) == 1
        assert len(zuul.paths()) == 2, zuul.paths()
        m = w.metrics()
        assert (m['zmb_details_fetches_total{outcome="ok"}'], m['zmb_details_fetches_total{outcome="failed"}'],
                m["zmb_details_edits_total"]) == (2, 0, 1), m
        # The success's and the retried build's URLs are not even considered: nothing refused.
        assert m["zmb_details_refused_urls_total"] == 0, m
    with_details(body)


@test
def hostile_job_output_is_quoted_escaped_and_pings_nobody():
    def body(w, zuul):
        u = "hostile0000000000000000000000001"
        # No .gz: the plain file, as Zuul's web UI falls back.
        zuul.serve("/logs/%s/job-output.json" % u, fixture("job-output-hostile.json"))
        zuul.serve("/api/tenant/scs/build/" + u,
                   build_record(u, "FAILURE", error_detail="\x1b[31m@room\x1b[0m <b>bold</b> & \u202egone"))
        w.broker.publish("zuul/scs/check", payload=failure("bs-hostile", [
            ("tox-py311", u, "FAILURE", web_url(zuul, u), log_url(zuul, u))]))
        report = wait_for(lambda: reports(w), 10, "the report")[0]
        edit = edit_saying(w, report["event_id"], "Error:")
        assert_quiet_edit(edit, "the hostile edit")
        c = edit["content"]["m.new_content"]
        html, text = c["formatted_body"], c["body"]
        for bad in ("<script", "<img", 'href="https://evil', "<b>evil", "<i>role", "<b>bold"):
            assert bad not in html, (bad, html)
        assert "&lt;script&gt;" in html and "&lt;img src=x&gt;" in html, html
        assert "\x1b" not in text and "\x1b" not in html and "\u202e" not in text, repr(text)
        assert "Error: @room <b>bold</b> & gone" in text, text
        assert "\ufffd" in text, "invalid UTF-8 shows as U+FFFD"
        assert "progress 100%" in text and "progress 10%" not in text, text
        assert [p for p in zuul.paths() if "job-output" in p] == ["/logs/%s/job-output.json.gz" % u,
                                                                  "/logs/%s/job-output.json" % u], zuul.paths()
    with_details(body)


@test
def nothing_is_fetched_from_a_host_not_listed_not_even_by_redirect():
    def body(w, zuul, other):
        a, b, c = "unlisted000000000000000000000001", "redirected000000000000000000001", "byname0000000000000000000000001"
        other.serve("/logs/%s/job-output.json.gz" % a, gz(fixture("job-output-tox.json")))
        # a: its web_url is on the unlisted server; its log server redirects there.
        zuul.redirect("/logs/%s/job-output.json.gz" % a, "%s/logs/%s/job-output.json.gz" % (other.url, a))
        # b: redirected within the listed server: followed.
        zuul.redirect("/logs/%s/job-output.json.gz" % b, "/moved/%s/job-output.json.gz" % b, status=301)
        zuul.serve("/moved/%s/job-output.json.gz" % b, gz(fixture("job-output-loop.json")))
        # c: the listed server under another name (localhost is not 127.0.0.1 in details.hosts).
        by_name = "http://localhost:%d/logs/%s/" % (zuul.port, c)
        w.broker.publish("zuul/scs/check", payload=failure("bs-unlisted", [
            ("tox-py311", a, "FAILURE", web_url(other, a), log_url(zuul, a)),
            ("compliance", b, "FAILURE", web_url(zuul, b) + "x", log_url(zuul, b)),
            ("lint", c, "FAILURE", "http://localhost:%d/t/scs/build/%s" % (zuul.port, c), by_name)]))
        report = wait_for(lambda: reports(w), 10, "the report")[0]
        text = edit_saying(w, report["event_id"], "Failed task")["content"]["m.new_content"]["body"]
        # Only compliance's task: the others were not fetched (one task line in the report).
        assert "Failed task Check each cloud on controller (rc 3): non-zero return code" in text, text
        assert text.count("Failed task") == 1, text
        assert other.paths() == [], "the unlisted server was asked: %r" % other.paths()
        assert not any(c in p for p in zuul.paths()), zuul.paths()
        assert sorted(zuul.paths()) == sorted(["/logs/%s/job-output.json.gz" % a, "/logs/%s/job-output.json.gz" % b,
                                               "/moved/%s/job-output.json.gz" % b]), zuul.paths()
        log = w.bridge.wait_log("build details not fetched")
        log = w.bridge.log()
        assert "HTTP 302 redirect not fetched: 127.0.0.1:%d is not in details.hosts" % other.port in log, log[-3000:]
    with_details(body, n_servers=2)


@test
def failed_fetches_leave_the_report_as_it_was_with_one_log_line_each():
    def body(w, zuul):
        slow, bomb, big = "slow0000000000000000000000000001", "bomb0000000000000000000000000001", \
            "big00000000000000000000000000001"
        zuul.serve("/logs/%s/job-output.json.gz" % slow, gz(fixture("job-output-tox.json")), delay=4)
        # 2 MiB of JSON packs into a few KiB: over max_output once unpacked.
        zuul.serve("/logs/%s/job-output.json.gz" % bomb, gz(b"[" + b" " * (2 * 1024 * 1024) + b"]"))
        # 300 KiB that do not compress: over max_download on the wire.
        zuul.serve("/logs/%s/job-output.json.gz" % big, random.Random(16).randbytes(300 * 1024))
        t0 = time.monotonic()
        w.broker.publish("zuul/scs/check", payload=failure("bs-broken", [
            ("tox-py311", slow, "FAILURE", web_url(zuul, slow), log_url(zuul, slow)),
            ("lint", bomb, "FAILURE", web_url(zuul, bomb), log_url(zuul, bomb)),
            ("docs", big, "FAILURE", web_url(zuul, big), log_url(zuul, big))]))
        report = wait_for(lambda: reports(w), 10, "the report")[0]
        w.bridge.wait_log("build details not fetched", timeout=10, count=3)
        took = time.monotonic() - t0
        diag("three failed fetches settled %.2f s after the publish (timeout 2 s)" % took)
        log = w.bridge.log()
        lines = [l for l in log.splitlines() if "build details not fetched" in l]
        assert len(lines) == 3, lines
        by_build = {u: [l for l in lines if "build=" + u in l] for u in (slow, bomb, big)}
        assert all(len(v) == 1 for v in by_build.values()), by_build
        assert "timed out after 2 s (details.timeout)" in by_build[slow][0], by_build[slow]
        assert "over the size cap after gunzip (details.max_output is 1048576 bytes)" in by_build[bomb][0], \
            by_build[bomb]
        assert "more than 262144 bytes to download (details.max_download)" in by_build[big][0], by_build[big]
        assert "/api/tenant/scs/build/%s: HTTP 404" % slow in by_build[slow][0], by_build[slow]
        time.sleep(0.5)
        # Nothing fetched: no edit, the report alone.
        msgs = messages(w)
        assert [m["event_id"] for m in msgs] == [report["event_id"]], [m["content"]["body"][:80] for m in msgs]
        assert "details: nothing fetched to add to the report" in log, log[-2000:]
        assert w.bridge.running()
    with_details(body)


@test
def a_failure_after_successes_is_new_and_one_that_recovered_before_is_flaky():
    def body(w, zuul):
        runs = [("s1", "success"), ("s2", "success"), ("f1", "failure"), ("s3", "success"), ("f2", "failure")]
        for n, (name, action) in enumerate(runs):
            u = "run-%s-000000000000000000000000" % name
            w.broker.publish("zuul/scs/periodic", payload=failure(
                "bs-" + name, [("tox-py311", u, "FAILURE" if action == "failure" else "SUCCESS",
                                web_url(zuul, u), log_url(zuul, u))],
                action=action, end_time=1732181000.0 + 60 * n))
            w.bridge.wait_log("key=bs-" + name)
        # The verdicts are in the failure reports as first posted (nothing was there to
        # fetch: 404 everywhere, so no edit follows).
        def verdicts():
            found = [l.strip() for e in reports(w) for l in e["content"]["body"].split("\n")
                     if l.startswith("  ") and ("new" in l or "flaky" in l)]
            return found if len(found) >= 2 else None
        found = wait_for(verdicts, 15, "two verdicts")
        assert found == ["first failure after 2 successes: new", "failed 2 of the last 5 runs: flaky"], found
        w.bridge.wait_log("build details not fetched", count=2)
        assert w.bridge.log().count("build details not fetched") == 2
        assert not any(is_edit(e) and "Failed task" in e["content"]["m.new_content"]["body"] for e in messages(w))
        # The room asks which jobs are flaky.
        asked = w.hs.inject(ALERTS, "@alice:localhost", {"msgtype": "m.text", "body": "!zuul flaky"})

        def reply():
            for e in messages(w):
                rel = e["content"].get("m.relates_to") or {}
                if (rel.get("m.in_reply_to") or {}).get("event_id") == asked:
                    return e
            return None
        c = wait_for(reply, 15, "the answer to !zuul flaky")["content"]
        assert c["body"] == ("Flaky jobs of this room's routes, flakiest first (1):\n"
                             "- tox-py311 (SovereignCloudStack/standards, main): failed 2 of the last 5 runs, "
                             "recovered by itself 1 time"), c["body"]
        assert_well_formed(c, "the flaky list")
        other = w.hs.inject(ALERTS, "@alice:localhost", {"msgtype": "m.text", "body": "!zuul flaky osism/testbed"})
        def other_reply():
            for e in messages(w):
                if ((e["content"].get("m.relates_to") or {}).get("m.in_reply_to") or {}).get("event_id") == other:
                    return e
            return None
        body = wait_for(other_reply, 15, "the answer about osism/testbed")["content"]["body"]
        assert body.startswith("No flaky jobs of osism/testbed among the last runs"), body
    with_details(body)


@test
def a_reload_that_drops_the_details_group_stops_the_fetching():
    def body(w, zuul):
        first, second = "reload0000000000000000000000001", "reload0000000000000000000000002"
        for u in (first, second):
            zuul.serve("/logs/%s/job-output.json.gz" % u, gz(fixture("job-output-tox.json")))
        w.broker.publish("zuul/scs/check", payload=failure("bs-reload-1", [
            ("tox-py311", first, "FAILURE", web_url(zuul, first), log_url(zuul, first))]))
        report = wait_for(lambda: reports(w), 10, "the first report")[0]
        edit_saying(w, report["event_id"], "Failed task")
        w.bridge.write_config(w.config.replace(details_config(zuul), ""))
        w.bridge.signal(signal.SIGHUP)
        w.bridge.wait_log("configuration reloaded")
        asked = len(zuul.paths())
        w.broker.publish("zuul/scs/check", payload=failure("bs-reload-2", [
            ("tox-py311", second, "FAILURE", web_url(zuul, second), log_url(zuul, second))],
            end_time=1732182000.0))
        # The same job failing again: a repeat, in the first one's thread.
        wait_for(lambda: thread_replies(w, report["event_id"]), 10, "the second report")
        time.sleep(1.0)
        assert len(zuul.paths()) == asked, zuul.paths()[asked:]
        assert w.bridge.running()
    with_details(body)


def react(w, sender, target, key):
    return w.hs.inject(ALERTS, sender, {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}},
                       kind="m.reaction")


@test
def the_details_edit_keeps_the_claim_and_the_claim_edits_keep_the_details():
    def body(w, zuul):
        u = "claimed000000000000000000000001"
        # The job output comes late: the room claims the failure before the details are in.
        zuul.serve("/logs/%s/job-output.json.gz" % u, gz(fixture("job-output-tox.json")), delay=2)
        zuul.serve("/api/tenant/scs/build/" + u, build_record(u, "FAILURE"))
        w.broker.publish("zuul/scs/check", payload=failure("bs-claimed", [
            ("tox-py311", u, "FAILURE", web_url(zuul, u), log_url(zuul, u))]))
        root = wait_for(lambda: reports(w), 10, "the report")[0]["event_id"]
        react(w, "@alice:localhost", root, "\U0001F440")
        claim = edit_saying(w, root, "Claimed by @alice:localhost")["content"]["m.new_content"]
        assert "Failed task" not in claim["body"], "the claim came first: " + claim["body"]
        # The details edit, made after the claim, says both.
        edit = edit_saying(w, root, "Failed task")
        assert_quiet_edit(edit, "the details edit of a claimed failure")
        new = edit["content"]["m.new_content"]
        assert new["body"].startswith("\U0001F440 Claimed by @alice:localhost\n"), new["body"][:200]
        assert "Failed task Run tox testenv on ubuntu-jammy (rc 1)" in new["body"], new["body"]
        # The failure marker stays in the new content, so claims can be rebuilt from the room.
        assert new["zmb.failure"]["txn"], new
        # A resolve after the details edit: the claim edit is made from the stored content,
        # which has the details now.
        react(w, "@bob:localhost", root, "\u2705")
        resolved = edit_saying(w, root, "Resolved by @bob:localhost")["content"]["m.new_content"]["body"]
        assert "Claimed by @alice:localhost" in resolved, resolved
        assert "Failed task Run tox testenv on ubuntu-jammy (rc 1)" in resolved, resolved
        assert "ERROR: InvocationError for command" in resolved, resolved
    with_details(body, timeout="6s")


@test
def a_details_edit_of_a_failure_nobody_touched_adds_no_claim_line():
    def body(w, zuul):
        u = "untouched00000000000000000000001"
        zuul.serve("/logs/%s/job-output.json.gz" % u, gz(fixture("job-output-tox.json")))
        w.broker.publish("zuul/scs/check", payload=failure("bs-untouched", [
            ("tox-py311", u, "FAILURE", web_url(zuul, u), log_url(zuul, u))]))
        report = wait_for(lambda: reports(w), 10, "the report")[0]
        new = edit_saying(w, report["event_id"], "Failed task")["content"]["m.new_content"]
        # Its first line is the report's own: no "Unclaimed" put on top by the edit.
        assert new["body"].split("\n")[0] == report["content"]["body"].split("\n")[0], new["body"][:200]
        assert "Unclaimed" not in new["body"], new["body"][:200]
    with_details(body)


@test
def a_repeat_in_the_failures_thread_gets_its_own_details_edit():
    def body(w, zuul):
        first, again = "repeat00000000000000000000000001", "repeat00000000000000000000000002"
        zuul.serve("/logs/%s/job-output.json.gz" % first, gz(fixture("job-output-tox.json")))
        zuul.serve("/logs/%s/job-output.json.gz" % again, gz(fixture("job-output-loop.json")))
        w.broker.publish("zuul/scs/periodic", payload=failure("bs-repeat-1", [
            ("tox-py311", first, "FAILURE", web_url(zuul, first), log_url(zuul, first))], end_time=1732181000.0))
        root = wait_for(lambda: reports(w), 10, "the failure")[0]["event_id"]
        edit_saying(w, root, "Failed task Run tox testenv")
        w.broker.publish("zuul/scs/periodic", payload=failure("bs-repeat-2", [
            ("tox-py311", again, "FAILURE", web_url(zuul, again), log_url(zuul, again))], end_time=1732182000.0))
        repeat = wait_for(lambda: thread_replies(w, root), 10, "the repeat in the thread")[0]
        # The repeat, as first posted, has its verdict already.
        assert "failed the last 2 runs in a row" in repeat["content"]["body"], repeat["content"]["body"]
        assert "Failed task" not in repeat["content"]["body"], repeat["content"]["body"]
        edit = edit_saying(w, repeat["event_id"], "Failed task")
        assert_quiet_edit(edit, "the repeat's details edit")
        text = edit["content"]["m.new_content"]["body"]
        assert "Failed task Check each cloud on controller (rc 3): non-zero return code" in text, text
        assert "Run tox testenv" not in text, "the repeat shows its own build: " + text
        assert "failed the last 2 runs in a row" in text, text
        # The root counts the repeat, and keeps its own details.
        root_text = edit_saying(w, root, "Failed 2 times")["content"]["m.new_content"]["body"]
        assert "Failed task Run tox testenv" in root_text and "Check each cloud" not in root_text, root_text
    with_details(body)


@test
def without_the_room_side_the_report_is_edited_all_the_same():
    def body(w, zuul):
        u = "nochatops0000000000000000000001"
        zuul.serve("/logs/%s/job-output.json.gz" % u, gz(fixture("job-output-tox.json")))
        w.broker.publish("zuul/scs/check", payload=failure("bs-nochatops", [
            ("tox-py311", u, "FAILURE", web_url(zuul, u), log_url(zuul, u))]))
        report = wait_for(lambda: reports(w), 10, "the report")[0]
        edit = edit_saying(w, report["event_id"], "Failed task Run tox testenv")
        assert_quiet_edit(edit, "the details edit without chatops")
        assert "zmb.failure" not in edit["content"]["m.new_content"], "no claimable failure without chatops"
    with_details(body, extra="\nchatops: { enabled = false; };")


@test
def without_a_details_group_nothing_is_fetched():
    zuul = FakeZuulWeb()
    w = World(ALL)
    try:
        u = "nodetails0000000000000000000001"
        w.broker.publish("zuul/scs/check", payload=failure("bs-none", [
            ("tox-py311", u, "FAILURE", web_url(zuul, u), log_url(zuul, u))]))
        report = wait_for(lambda: reports(w), 10, "the report")[0]
        time.sleep(1.0)
        assert zuul.paths() == [], zuul.paths()
        assert thread_replies(w, report["event_id"]) == [] and edits_of(w, report["event_id"]) == []
    finally:
        w.close()
        zuul.stop()


run()
