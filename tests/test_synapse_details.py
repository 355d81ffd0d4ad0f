"""Build details (issue #16) against a real Synapse: the report is posted at once, and the
edit that adds why it failed (the failing task, its error lines, the error detail, the
verdict) is accepted by Synapse and aggregated as the message's latest content, under the
claim lines; a claim after it keeps the details; a repeat in the failure's thread gets its
own details edit. Zuul's web server and log server are tests/fake_zuul_web.py on loopback."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synapse  # noqa: E402
from fake_zuul_web import FakeZuulWeb, build_record, fixture, gz  # noqa: E402
from harness import SynapseWorld, payload_variant, wait_for  # noqa: E402
from tap import diag, run, skip_all, test  # noqa: E402

EYES = "\U0001F440"
ALL = '  { name = "all"; room = "#alerts:localhost"; }'


def relation(e):
    return e["content"].get("m.relates_to") or {}


def top_level(w):
    return [e for e in w.bot_messages() if not relation(e)]


def in_thread(w, root):
    return [e for e in w.bot_messages() if relation(e).get("rel_type") == "m.thread"
            and relation(e).get("event_id") == root]


def edits_of(w, target):
    return [e for e in w.bot_messages() if relation(e).get("rel_type") == "m.replace"
            and relation(e).get("event_id") == target]


def wait_body(w, event_id, predicate, what, timeout=20):
    return wait_for(lambda: predicate(w.latest_body(event_id)) and w.latest_body(event_id), timeout, what)


def failure(zuul, buildset, uuid, end_time):
    """shared-modern-failure.json as another buildset whose one build, tox-py311, has its
    build page and logs on the fake Zuul."""
    ev = payload_variant("shared-modern-failure.json", buildset_uuid=buildset)
    build = dict(ev["buildset"]["builds"][0], uuid=uuid, result="FAILURE", end_time=end_time,
                 web_url="%s/t/scs/build/%s" % (zuul.url, uuid), log_url="%s/logs/%s/" % (zuul.url, uuid))
    ev["buildset"]["builds"] = [build]
    ev["buildset"]["retry_builds"] = []
    return json.dumps(ev)


@test
def synapse_takes_the_details_edit_as_the_latest_content_under_the_claim_and_in_the_thread():
    zuul = FakeZuulWeb()
    w = None
    try:
        w = SynapseWorld(ALL, extra='details: { hosts = ["127.0.0.1:%d"]; timeout = "10s"; };' % zuul.port)
        first, again = "syndetails00000000000000000000001", "syndetails00000000000000000000002"
        # The first build's record comes a second late: the room claims it before.
        zuul.serve("/api/tenant/scs/build/" + first,
                   build_record(first, "FAILURE", error_detail="Ansible ran out of patience"), delay=1.5)
        zuul.serve("/logs/%s/job-output.json.gz" % first, gz(fixture("job-output-tox.json")))
        zuul.serve("/logs/%s/job-output.json.gz" % again, gz(fixture("job-output-loop.json")))
        w.broker.publish("zuul/scs/periodic-daily", payload=failure(zuul, "syn-bs-1", first, 1732181000.0))
        root = wait_for(lambda: top_level(w), 20, "the failure report")[0]
        assert "Failed task" not in root["content"]["body"], "the report is posted at once"
        w.hs.react(w.alice, w.rooms["alerts"], root["event_id"], EYES)
        wait_body(w, root["event_id"], lambda t: t.startswith(EYES + " Claimed by @alice:localhost\n"), "the claim")
        text = wait_body(w, root["event_id"], lambda t: "Failed task" in t, "the details edit, as Synapse has it")
        assert text.startswith(EYES + " Claimed by @alice:localhost\n"), text[:200]
        assert "Failed task Run tox testenv on ubuntu-jammy (rc 1): non-zero return code" in text, text
        assert "ERROR: InvocationError for command" in text and "Error: Ansible ran out of patience" in text, text
        # The same job fails again: a repeat in the thread, its verdict posted with it and its
        # own details in its own edit; the root counts it and keeps its details.
        w.broker.publish("zuul/scs/periodic-daily", payload=failure(zuul, "syn-bs-2", again, 1732182000.0))
        repeat = wait_for(lambda: in_thread(w, root["event_id"]), 20, "the repeat in the thread")[0]
        assert "failed the last 2 runs in a row" in repeat["content"]["body"], repeat["content"]["body"]
        repeat_text = wait_body(w, repeat["event_id"], lambda t: "Failed task" in t, "the repeat's details edit")
        assert "Failed task Check each cloud on controller (rc 3)" in repeat_text, repeat_text
        root_text = wait_body(w, root["event_id"], lambda t: "Failed 2 times" in t, "the count on the root")
        assert "Claimed by @alice:localhost" in root_text and "Failed task Run tox testenv" in root_text, root_text
        # Synapse's aggregation picked the newest edit, and each edit replaces the event it names.
        replaced = w.hs.event(w.alice, w.rooms["alerts"], repeat["event_id"])["unsigned"]["m.relations"]["m.replace"]
        assert replaced["event_id"] == edits_of(w, repeat["event_id"])[-1]["event_id"], replaced
        diag("%d edits of the root, %d of the repeat" % (len(edits_of(w, root["event_id"])),
                                                         len(edits_of(w, repeat["event_id"]))))
        w.assert_messages_well_formed()
    finally:
        if w:
            w.close()
        zuul.stop()


if __name__ == "__main__":
    ok, why = synapse.available()
    if not ok:
        skip_all("Synapse cannot be installed here: " + why)
    run()
