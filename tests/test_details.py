"""Integration tests of build details (issue #16): the real bridge between mosquitto and the
fake homeserver, with tests/fake_zuul_web.py as Zuul's web server and log server. The
report is posted at once; why it failed follows in its thread; nothing is ever asked of a
host that details.hosts does not list; a fetch that fails leaves one log line and the
report as it was."""

import json
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_zuul_web import FakeZuulWeb, build_record, fixture, gz  # noqa: E402
from harness import World, payload_variant, wait_for  # noqa: E402
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


def thread_replies(w, root_id):
    return [e for e in messages(w)
            if (e["content"].get("m.relates_to") or {}).get("rel_type") == "m.thread"
            and e["content"]["m.relates_to"].get("event_id") == root_id]


def answers(w, root_id):
    return [e for e in thread_replies(w, root_id) if e["content"]["body"].startswith("Why it failed")]


def assert_well_formed(content, where):
    problems = html_spec.content_problems(content, where)
    assert not problems, problems
    assert content["msgtype"] == "m.notice", content
    assert content["m.mentions"] == {}, "the answer pings nobody: %r" % content["m.mentions"]


class DetailsWorld(World):
    def __init__(self, *servers, timeout="2s", routes=ALL):
        super().__init__(routes, extra=details_config(*servers, timeout=timeout))


def with_details(fn, n_servers=1, timeout="2s"):
    servers = [FakeZuulWeb() for _ in range(n_servers)]
    w = None
    try:
        w = DetailsWorld(servers[0], timeout=timeout)
        fn(w, *servers)
    finally:
        if w:
            w.close()
        for s in servers:
            s.stop()


@test
def the_report_comes_at_once_and_why_it_failed_follows_in_its_thread():
    def body(w, zuul):
        u, ok = "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a", "2b3c4d5e6f7a4b8c9d0e1f2a3b4c5d6e"
        # The job's failure-message replaced the result in the report; the API has the true one.
        zuul.serve("/api/tenant/scs/build/" + u, build_record(u, "FAILURE"))
        zuul.serve("/logs/%s/job-output.json.gz" % u, gz(fixture("job-output-tox.json")),
                   content_type="application/gzip")
        payload = failure("bs-first", [("tox-py311", u, "tox failed: see the contributor docs", web_url(zuul, u),
                                        log_url(zuul, u)),
                                       ("scs-check-gx-scs", ok, "SUCCESS", web_url(zuul, ok), log_url(zuul, ok))],
                          retry_builds=[{"job_name": "tox-py311", "uuid": "retried-1", "result": "RETRY",
                                         "web_url": web_url(zuul, "retried-1"), "log_url": None}])
        t0 = time.monotonic()
        w.broker.publish("zuul/scs/check", payload=payload)
        report = wait_for(lambda: messages(w), 10, "the report")[0]
        t_report = time.monotonic() - t0
        answer = wait_for(lambda: answers(w, report["event_id"]), 10, "why it failed, in the report's thread")[0]
        t_answer = time.monotonic() - t0
        diag("report %.2f s after the publish, why it failed %.2f s after it" % (t_report, t_answer - t_report))
        assert "Why it failed" not in report["content"]["body"], "the report itself is not held back"
        c = answer["content"]
        assert_well_formed(c, "the answer")
        text = c["body"]
        assert "tox-py311 (result FAILURE)" in text, text
        assert 'task "Run tox testenv" (role tox) on ubuntu-jammy, run playbook, rc 1: non-zero return code' in text, text
        assert "ERROR: InvocationError for command" in text and "py311: commands failed" in text, text
        assert "Check for optional lint config" not in text, "an ignored failure is not the cause"
        assert "scs-check-gx-scs" not in text, text
        # One build record and one job output: the success and the retried build are not fetched.
        assert sorted(zuul.paths()) == sorted(["/api/tenant/scs/build/" + u, "/logs/%s/job-output.json.gz" % u]), \
            zuul.paths()
        assert any(r["headers"].get("User-Agent", "").startswith("zuul-matrix-bridge/") for r in zuul.requests())
        # The same report again (MQTT redelivers): no second fetch, no second answer.
        w.broker.publish("zuul/scs/check", payload=payload)
        w.bridge.wait_log("duplicate report ignored")
        time.sleep(0.5)
        assert len(answers(w, report["event_id"])) == 1
        assert len(zuul.paths()) == 2, zuul.paths()
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
        report = wait_for(lambda: messages(w), 10, "the report")[0]
        c = wait_for(lambda: answers(w, report["event_id"]), 10, "the answer")[0]["content"]
        assert_well_formed(c, "the hostile answer")
        html, text = c["formatted_body"], c["body"]
        for bad in ("<script", "<img", "<a ", "<b>evil", "<i>role", "<b>bold"):
            assert bad not in html, (bad, html)
        assert "&lt;script&gt;" in html and "&lt;img src=x&gt;" in html, html
        assert "\x1b" not in text and "\x1b" not in html and "\u202e" not in text, repr(text)
        assert "error detail: @room <b>bold</b> & gone" in text, text
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
        report = wait_for(lambda: messages(w), 10, "the report")[0]
        text = wait_for(lambda: answers(w, report["event_id"]), 10, "the answer")[0]["content"]["body"]
        assert 'compliance: task "Check each cloud"' in text, text
        assert "tox-py311" not in text and "lint" not in text, text
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
        report = wait_for(lambda: messages(w), 10, "the report")[0]
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
        # Nothing to say (first runs, nothing fetched): no answer, no edit, the report alone.
        msgs = messages(w)
        assert [m["event_id"] for m in msgs] == [report["event_id"]], [m["content"]["body"][:80] for m in msgs]
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
        def verdicts():
            found = [e["content"]["body"] for e in messages(w) if e["content"]["body"].startswith("Why it failed")]
            return found if len(found) >= 2 else None
        found = wait_for(verdicts, 15, "two answers")
        assert found[0] == "Why it failed:\n- tox-py311: first failure after 2 successes: new", found
        assert found[1] == "Why it failed:\n- tox-py311: failed 2 of the last 5 runs: flaky", found
        # Nothing was there to fetch (404 everywhere): one log line per failed build, and the verdict.
        assert w.bridge.log().count("build details not fetched") == 2
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
        report = wait_for(lambda: messages(w), 10, "the first report")[0]
        wait_for(lambda: answers(w, report["event_id"]), 10, "the first answer")
        w.bridge.write_config(w.config.replace(details_config(zuul), ""))
        w.bridge.signal(signal.SIGHUP)
        w.bridge.wait_log("configuration reloaded")
        asked = len(zuul.paths())
        w.broker.publish("zuul/scs/check", payload=failure("bs-reload-2", [
            ("tox-py311", second, "FAILURE", web_url(zuul, second), log_url(zuul, second))],
            end_time=1732182000.0))
        wait_for(lambda: len(messages(w)) >= 3, 10, "the second report")
        time.sleep(1.0)
        assert len(zuul.paths()) == asked, zuul.paths()[asked:]
        assert w.bridge.running()
    with_details(body)


@test
def without_a_details_group_nothing_is_fetched():
    zuul = FakeZuulWeb()
    w = World(ALL)
    try:
        u = "nodetails0000000000000000000001"
        w.broker.publish("zuul/scs/check", payload=failure("bs-none", [
            ("tox-py311", u, "FAILURE", web_url(zuul, u), log_url(zuul, u))]))
        report = wait_for(lambda: messages(w), 10, "the report")[0]
        time.sleep(1.0)
        assert zuul.paths() == [], zuul.paths()
        assert thread_replies(w, report["event_id"]) == []
    finally:
        w.close()
        zuul.stop()


run()
