"""Integration test of the worked example of issue #7: config/team-of-four.conf.example, as
shipped, run by the real bridge against real mosquitto and the fake homeserver on a test
clock. Only what cannot work here is rewritten (paths, broker and homeserver addresses,
example.org -> localhost); the owners, rotation, escalation and triage are the example's own.
The night of the issue's "done when": a node pool breaks, 12 periodic jobs of 6 projects fail
with NODE_FAILURE -> one incident message, edited as it grows, no per-project alerts; a real
test failure of another project still gets its own alert mentioning its owner."""

import calendar
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_homeserver import default_config  # noqa: E402
from harness import BRIDGE_BIN, PAYLOADS, ROOT, Bridge, Broker, Homeserver, wait_for  # noqa: E402
from tap import run, test  # noqa: E402

EXAMPLE = os.path.join(ROOT, "config", "team-of-four.conf.example")
GUIDE = os.path.join(ROOT, "docs", "ownership.md")
TEAM = "!team-ci:localhost"
PROVIDER = "!cloud-provider:localhost"
BOT = "@zuul-bot:localhost"
ALICE, BOB, CAROL, DAVE, ERIN = ("@%s:localhost" % n for n in ("alice", "bob", "carol", "dave", "erin"))
OWNER = {"acme/api": ALICE, "acme/web": ALICE, "acme/deploy": BOB, "acme/testbed": BOB,
         "acme/docs": CAROL, "acme/standards": CAROL, "acme/images": DAVE, "acme/monitoring": DAVE}
# Tuesday 20 January 2026, 02:00 in Berlin (01:00 UTC): the third week of the rotation, so
# Carol is on call (Alice from 5 January, Bob from the 12th, Carol from the 19th, 09:00).
NIGHT = calendar.timegm((2026, 1, 20, 1, 0, 0, 0, 0, 0))
EYES = "\U0001F440"


def example_text():
    with open(EXAMPLE, encoding="utf-8") as f:
        return f.read()


def replace_once(text, old, new):
    """The example must still contain `old` exactly once: a changed example fails here, loudly."""
    assert text.count(old) == 1, "expected %r once in %s, found it %d times" % (old, EXAMPLE, text.count(old))
    return text.replace(old, new)


def rewrite(text, state_dir, broker_port, hs_url):
    """The example with only what must change for a test run changed."""
    text = replace_once(text, 'state_dir = "/var/lib/zuul-matrix-bridge";',
                        'state_dir = "%s";\ntemplate_dir = "%s";' % (state_dir, os.path.join(ROOT, "templates")))
    text = replace_once(text, 'host = "mqtt.example.org";', 'host = "127.0.0.1";')
    text = replace_once(text, "port = 1883;", "port = %d;" % broker_port)
    text = replace_once(text, 'homeserver = "https://matrix.example.org";',
                        'homeserver = "%s"; retry_min = "1s"; retry_max = "4s";' % hs_url)
    # User ids and room aliases: the fake homeserver's name is localhost. (Web links such as
    # https://wiki.example.org stay: they have no ':' before the host.)
    n = text.count(':example.org"')
    assert n >= 10, "expected the example's user ids and rooms on example.org, found %d" % n
    return text.replace(':example.org"', ':localhost"')


def hs_config():
    config = default_config()
    team = {u: "join" for u in (ALICE, BOB, CAROL, DAVE, ERIN, BOT)}
    # The team may use commands (power level 50, the default command_power_level).
    levels = {ALICE: 50, BOB: 50, CAROL: 50, DAVE: 50, ERIN: 100, BOT: 50}
    config["rooms"] = [
        {"room_id": TEAM, "aliases": ["#team-ci:localhost"], "name": "Team CI", "join_rule": "invite",
         "creator": ERIN, "members": team, "power_levels": {"users": levels}},
        {"room_id": PROVIDER, "aliases": ["#cloud-provider:localhost"], "name": "Cloud provider",
         "join_rule": "invite", "creator": ERIN, "members": {ERIN: "join", BOT: "join"},
         "power_levels": {"users": {ERIN: 100}}},
    ]
    return config


class TeamWorld:
    """Broker, fake homeserver and the bridge running the rewritten example, at `now`."""

    def __init__(self, now):
        self.dir = tempfile.mkdtemp(prefix="zmb-team-")
        self.broker = Broker(self.dir)
        self.hs = Homeserver(self.dir, hs_config())
        self.clock = os.path.join(self.dir, "clock")
        self.set_time(now)
        self.config = rewrite(example_text(), os.path.join(self.dir, "state"), self.broker.port, self.hs.url)
        self.bridge = Bridge(self.dir, self.config, env={"ZMB_TEST_CLOCK": self.clock})
        self.bridge.wait_log("MQTT connected", 15)  # subscribed: a report published now is not lost
        self.bridge.wait_log("joined room", 10, count=2)
        wait_for(lambda: any("/sync" in r["path"] for r in self.hs.requests()), 10, "the first /sync")

    def set_time(self, t):
        with open(self.clock + ".tmp", "w") as f:
            f.write("%d\n" % t)
        os.replace(self.clock + ".tmp", self.clock)

    def say(self, sender, body):
        return self.hs.inject(TEAM, sender, {"msgtype": "m.text", "body": body})

    def messages(self, room=TEAM):
        return self.hs.events(room)

    def close(self):
        for stop in (self.bridge.stop, self.broker.stop, self.hs.stop):
            try:
                stop()
            except Exception:
                pass
        if not os.environ.get("ZMB_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)


def with_team(now, fn):
    w = TeamWorld(now)
    try:
        fn(w)
    finally:
        w.close()


def report(buildset, project, jobs, pipeline="periodic-daily"):
    """A failure report of the acme tenant; jobs maps each job name to its result."""
    with open(os.path.join(PAYLOADS, "shared-periodic-failure.json")) as f:
        text = f.read()
    # The sample is SovereignCloudStack/standards in tenant scs: its names, links included.
    ev = json.loads(text.replace("SovereignCloudStack/standards", project).replace("/t/scs/", "/t/acme/"))
    ev["tenant"], ev["pipeline"] = "acme", pipeline
    ev["buildset"]["uuid"] = buildset
    template = ev["buildset"]["builds"][0]
    ev["buildset"]["builds"] = [dict(copy.deepcopy(template), job_name=job, result=result,
                                     uuid="%s-%s" % (buildset, job), change=None,
                                     web_url="https://zuul.example.org/t/acme/build/%s-%s" % (buildset, job),
                                     log_url="https://logs.example.org/%s/%s/" % (buildset, job))
                                for job, result in jobs.items()]
    ev["buildset"]["retry_builds"] = []
    return json.dumps(ev)


def relation(e):
    return e["content"].get("m.relates_to") or {}


def roots(w):
    """The bridge's top-level failure alerts (not incidents, edits or thread replies)."""
    return [e for e in w.messages() if "Build failed" in e["content"].get("body", "") and not relation(e)]


def incidents(w):
    return [e for e in w.messages() if not relation(e) and "zmb.failure" in e["content"]
            and e["content"]["zmb.failure"]["thread_key"].startswith("incident|")]


def edits_of(w, event_id, room=TEAM):
    return [e["content"]["m.new_content"] for e in w.messages(room)
            if relation(e).get("rel_type") == "m.replace" and relation(e).get("event_id") == event_id]


def in_thread(w, root):
    return [e for e in w.messages() if relation(e).get("rel_type") == "m.thread" and relation(e).get("event_id") == root]


def reply_to(w, event_id, timeout=10):
    def find():
        for e in w.messages():
            if (relation(e).get("m.in_reply_to") or {}).get("event_id") == event_id:
                return e
        return None
    return wait_for(find, timeout, "a reply to %s" % event_id)


def mentions(content):
    return (content.get("m.mentions") or {}).get("user_ids", [])


@test
def the_example_passes_check_config_with_only_the_template_dir_pointed_at_the_source():
    d = tempfile.mkdtemp(prefix="zmb-team-check-")
    try:
        conf = os.path.join(d, "team.conf")
        with open(conf, "w") as f:
            f.write(example_text() + '\ntemplate_dir = "%s";\n' % os.path.join(ROOT, "templates"))
        env = dict(os.environ, ZMB_MATRIX_ACCESS_TOKEN="token")
        p = subprocess.run([BRIDGE_BIN, "--check-config", "-c", conf], capture_output=True, env=env, timeout=30)
        assert p.returncode == 0, "expected the example to be valid, got %d: %s" % (p.returncode, p.stderr.decode())
        assert "OK (1 route)" in p.stdout.decode(), p.stdout
        with open(conf, "w") as f:
            f.write(rewrite(example_text(), os.path.join(d, "state"), 1883, "http://127.0.0.1:8008"))
        p = subprocess.run([BRIDGE_BIN, "--check-config", "-c", conf], capture_output=True, env=env, timeout=30)
        assert p.returncode == 0, "expected the rewritten example to be valid, got: %s" % p.stderr.decode()
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def a_broken_node_pool_is_one_incident_and_a_real_failure_alerts_its_owner():
    """Issue #7's done-when, with the worked example config."""
    broken = ["acme/api", "acme/deploy", "acme/testbed", "acme/docs", "acme/images", "acme/monitoring"]

    def jobs_of(project):
        name = project.split("/")[1]
        return ["%s-nightly-build" % name, "%s-nightly-integration" % name]

    def body(w):
        for i, project in enumerate(broken):
            w.set_time(NIGHT + 60 * i)
            w.broker.publish("zuul/acme/periodic-daily",
                             payload=report("pool%d" % i, project, {j: "NODE_FAILURE" for j in jobs_of(project)}))
        w.set_time(NIGHT + 60 * 7)
        w.broker.publish("zuul/acme/periodic-daily",
                         payload=report("web1", "acme/web", {"web-browser-tests": "FAILURE", "web-lint": "SUCCESS"}))
        alert = wait_for(lambda: [e for e in roots(w) if "acme/web" in e["content"]["body"]], 10,
                         "the alert of acme/web's real failure")
        w.bridge.wait_log("report absorbed into an infrastructure incident", 10, count=6)

        # The real failure: its own alert, mentioning its owner (not the on-call), with
        # the runbook and hint of acme/web's rule.
        assert len(alert) == 1, [e["content"]["body"][:60] for e in alert]
        web = alert[0]["content"]
        assert mentions(web) == [ALICE], "expected acme/web's owner mentioned, got %s" % mentions(web)
        assert web["body"].startswith(ALICE + "\n"), web["body"][:80]
        assert "web-browser-tests" in web["body"], web["body"]
        assert "Browser tests flake on slow nodes" in web["body"], web["body"]
        assert 'href="https://wiki.example.org/team/web"' in web["formatted_body"], web["formatted_body"]

        # The broken pool: exactly one incident message, mentioning the on-call.
        inc = wait_for(lambda: incidents(w), 10, "the incident message")
        time.sleep(0.5)
        inc = incidents(w)
        assert len(inc) == 1, "expected one incident message, got %s" % [e["content"]["body"][:60] for e in inc]
        first = inc[0]["content"]
        assert mentions(first) == [CAROL], "expected the incident to ping Carol (on call), got %s" % mentions(first)
        assert "NODE_FAILURE" in first["body"] and "acme" in first["body"], first["body"][:200]
        assert "acme/api" in first["body"] and "acme/monitoring" not in first["body"], \
            "expected the first message to list only the first project, got:\n" + first["body"]

        # ... edited as it grows, until it lists all 12 jobs of the 6 projects.
        all_jobs = [j for p in broken for j in jobs_of(p)]
        final = wait_for(lambda: [c for c in edits_of(w, inc[0]["event_id"])
                                  if all(j in c["body"] for j in all_jobs)], 10,
                         "the incident edited to list all 12 jobs")[-1]
        assert all(p in final["body"] for p in broken), final["body"]
        assert "12 failed builds in 6 projects" in final["body"], final["body"]
        # Edits queued together collapse into the newest (deliver.c supersedes the older
        # unsent ones), so how many went out depends on timing; that it was edited does not.
        assert len(edits_of(w, inc[0]["event_id"])) >= 1, "expected the message edited as it grew"

        # No per-project alerts: nothing else names the broken projects, nobody but the
        # on-call is pinged about them, and the provider's room hears nothing.
        assert [e for e in roots(w) if any(p in e["content"]["body"] for p in broken)] == [], \
            "expected no per-project alert for an infrastructure failure"
        about = [e for e in w.messages() if any(p in e["content"].get("body", "") for p in broken)]
        assert {u for e in about for u in mentions(e["content"])} == {CAROL}, \
            [(e["content"]["body"][:50], mentions(e["content"])) for e in about]
        failures = [e for e in w.messages() if not relation(e) and "zmb.failure" in e["content"]]
        assert [e["event_id"] for e in failures] == [inc[0]["event_id"], alert[0]["event_id"]], \
            "expected two failure messages in the room: the incident and acme/web's alert, got %s" % \
            [e["content"]["body"][:80] for e in failures]
        assert w.messages(PROVIDER) == [], [e["content"]["body"] for e in w.messages(PROVIDER)]

        # Carol claims the incident; when the window passes without new failures it closes.
        w.hs.inject(TEAM, CAROL, {"m.relates_to": {"rel_type": "m.annotation", "event_id": inc[0]["event_id"],
                                                   "key": EYES}}, kind="m.reaction")
        wait_for(lambda: [c for c in edits_of(w, inc[0]["event_id"])
                          if c["body"].startswith(EYES + " Claimed by " + CAROL)], 10, "the claim on the incident")
        w.set_time(NIGHT + 3600)
        closed = wait_for(lambda: [c for c in edits_of(w, inc[0]["event_id"]) if "closed" in c["body"]], 10,
                          "the closing edit")[-1]
        assert "Claimed by " + CAROL in closed["body"], closed["body"][:200]
        assert [e for e in in_thread(w, inc[0]["event_id"]) if "Still unclaimed" in e["content"]["body"]] == [], \
            "a claimed incident escalates to nobody"

        # Nobody took the web failure (posted at 01:07): Carol an hour later, Erin two more.
        def pings():
            return [e["content"] for e in in_thread(w, alert[0]["event_id"])
                    if "Still unclaimed" in e["content"]["body"]]
        w.set_time(NIGHT + 67 * 60 + 5)
        assert mentions(wait_for(pings, 10, "the on-call ping at 02:07")[0]) == [CAROL], pings()
        w.set_time(NIGHT + 187 * 60 + 5)
        wait_for(lambda: len(pings()) == 2, 10, "the fallback ping at 04:07")
        assert mentions(pings()[1]) == [ERIN], pings()[1]
    with_team(NIGHT, body)


@test
def the_owners_rules_answer_owners_for_every_repository_and_the_workflow():
    def body(w):
        for i, (project, owner) in enumerate(sorted(OWNER.items())):
            w.set_time(NIGHT + 15 * i)   # 4 a minute: within a member's budget of answers (5)
            text = reply_to(w, w.say(ERIN, "!zuul owners " + project))["content"]["body"]
            assert text.startswith("%s: owned by %s," % (project, owner)), \
                "expected %s owned by %s, got: %s" % (project, owner, text)
            assert "https://wiki.example.org/team/" + project.split("/")[1] in text, text
        text = reply_to(w, w.say(BOB, "!zuul owners acme/testbed testbed-deploy-k8s"))["content"]["body"]
        assert text.startswith("acme/testbed (job testbed-deploy-k8s): owned by " + BOB), text
        assert "#cloud-provider:localhost after 30m" in text and "2h" in text, text
        # docs/ownership.md quotes these two replies (with the example's server name).
        with open(GUIDE, encoding="utf-8") as f:
            guide = f.read().split("\n")
        web = reply_to(w, w.say(BOB, "!zuul owners acme/web"))["content"]["body"]
        for reply in (web, text):
            quoted = reply.replace(":localhost", ":example.org").replace("%3Alocalhost", "%3Aexample.org")
            assert quoted in guide, "expected docs/ownership.md to quote the reply as it is now:\n" + quoted
        text = reply_to(w, w.say(BOB, "!zuul owners acme/playground"))["content"]["body"]
        assert text.startswith("Nobody owns acme/playground"), text
        text = reply_to(w, w.say(DAVE, "!zuul oncall"))["content"]["body"]
        assert text.startswith("now %s until Mon 26 Jan" % CAROL) and DAVE in text, text
        text = reply_to(w, w.say(ALICE, "!zuul workflow"))["content"]["body"]
        expected = re.search(r'workflow = ((?:"(?:[^"\\]|\\.)*"\s*)+);', example_text()).group(1)
        expected = "".join(json.loads(s) for s in re.findall(r'"(?:[^"\\]|\\.)*"', expected))
        assert text == expected, "expected the example's workflow text, got:\n" + text
    with_team(NIGHT, body)


@test
def a_testbed_deploy_failure_goes_to_bob_then_the_provider_then_carol_then_erin():
    """The forwarding rule: Bob is mentioned; unclaimed for 30 minutes, the provider's room
    gets a notice; after 2 hours the on-call, 2 hours later the fallback."""
    def body(w):
        w.broker.publish("zuul/acme/periodic-daily",
                         payload=report("tb1", "acme/testbed", {"testbed-deploy-k8s": "FAILURE"}))
        root = wait_for(lambda: roots(w), 10, "the testbed alert")[0]
        assert mentions(root["content"]) == [BOB], mentions(root["content"])
        assert "status.provider.example.org" in root["content"]["body"], root["content"]["body"]

        def pings():
            return [e["content"] for e in in_thread(w, root["event_id"]) if "Still unclaimed" in e["content"]["body"]]

        w.set_time(NIGHT + 29 * 60)
        time.sleep(0.7)
        assert w.messages(PROVIDER) == [] and pings() == [], "nothing before 30 minutes"
        w.set_time(NIGHT + 30 * 60 + 5)
        note = wait_for(lambda: w.messages(PROVIDER), 10, "the notice in the provider's room")[0]["content"]
        assert "acme/testbed" in note["body"] and "#team-ci:localhost" in note["body"], note["body"]
        w.set_time(NIGHT + 119 * 60)
        time.sleep(0.7)
        assert pings() == [], "the on-call waits the rule's 2 hours"
        w.set_time(NIGHT + 120 * 60 + 5)
        first = wait_for(pings, 10, "the on-call ping after 2h")[0]
        assert mentions(first) == [CAROL], mentions(first)
        w.set_time(NIGHT + 240 * 60 + 5)
        wait_for(lambda: len(pings()) == 2, 10, "the fallback ping 2h later")
        assert mentions(pings()[1]) == [ERIN], mentions(pings()[1])
        assert len(w.messages(PROVIDER)) == 1, "one notice to the provider"
    with_team(NIGHT, body)


def anchor_of(heading):
    """GitHub's anchor of a heading: lower case, spaces to '-', other punctuation dropped."""
    return "".join(c for c in heading.strip().lower().replace(" ", "-") if c.isalnum() or c in "-_")


@test
def the_ownership_guide_links_to_files_and_headings_that_exist():
    # (README.md's links are checked by tests/test_docs.c.)
    problems = []
    for path in (GUIDE,):
        with open(path, encoding="utf-8") as f:
            doc = f.read()
        for target in re.findall(r"\]\(([^)\s]+)\)", doc):
            if "://" in target:
                continue
            file, _, frag = target.partition("#")
            linked = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(linked):
                problems.append("%s: %s: no such file" % (path, target))
            elif frag and linked.endswith(".md"):
                with open(linked, encoding="utf-8") as f:
                    anchors = {anchor_of(m) for m in re.findall(r"^#+ (.*)$", f.read(), re.M)}
                if frag not in anchors:
                    problems.append("%s: %s: no heading with that anchor" % (path, target))
    assert problems == [], "expected every link to lead somewhere, got:\n" + "\n".join(problems)
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "](docs/ownership.md)" in readme and "](config/team-of-four.conf.example)" in readme, \
        "expected the README to link the guide and the example"


@test
def the_config_quoted_in_the_ownership_guide_is_the_example():
    """Every block of docs/ownership.md marked as quoted from the example is in it, verbatim."""
    mark = "<!-- quoted from config/team-of-four.conf.example -->"
    with open(GUIDE, encoding="utf-8") as f:
        lines = f.read().split("\n")
    example = example_text().expandtabs(4).split("\n")
    blocks, problems = 0, []
    for i, line in enumerate(lines):
        if line.strip() != mark:
            continue
        assert lines[i + 1].startswith("```"), "%s:%d: expected a fenced block after the mark" % (GUIDE, i + 2)
        end = lines.index("```", i + 2)
        block = lines[i + 2:end]
        blocks += 1
        if not any(example[k:k + len(block)] == block for k in range(len(example))):
            problems.append("%s:%d: the block is not in the example (tabs as 4 spaces)" % (GUIDE, i + 3))
    assert blocks >= 5, "expected the guide to quote the example section by section, found %d blocks" % blocks
    assert problems == [], "\n".join(problems)


run()
