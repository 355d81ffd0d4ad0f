"""The scenarios: queue items in the states in which Zuul 14.3.0 reports them.

Each scenario function gets the World (tests/zuul_gen/zuul_world.py) and returns a Scenario:
the pipeline, the action whose reporters run, the item, and the words for index.json and the
README. The item's state follows what PipelineManager does before it calls the reporter
(zuul/manager/__init__.py, named per scenario), not what we would like it to be.

Times are fixed: T0 is 2025-12-07 08:00:00 UTC; each scenario places its events after it.
"""

from collections import namedtuple
from types import SimpleNamespace

from zuul.model import add_debug_line

import zuul.configloader as configloader

T0 = 1765094400.0
TOPIC = "zuul/{tenant}/{pipeline}/{project}/{branch}/{change}"
LOGS = "https://logs.example.com"

Scenario = namedtuple("Scenario", "name pipeline action item report_time description exercises")

_SCENARIOS = []


def scenario(fn):
    _SCENARIOS.append(fn)
    return fn


def all_scenarios():
    return list(_SCENARIOS)


def _mqtt(extra=""):
    return '      mqtt:\n        topic: "%s"\n%s' % (TOPIC, extra)


_RETURNED = "        include-returned-data: true\n"

CHECK = (
    "- pipeline:\n"
    "    name: check\n"
    "    description: Newly uploaded patchsets enter this pipeline to receive an initial vote.\n"
    "    manager: independent\n"
    "    trigger:\n"
    "      gerrit:\n"
    "        - event: patchset-created\n"
    "    start:\n" + _mqtt() +
    "    success:\n" + _mqtt(_RETURNED) +
    "    failure:\n" + _mqtt(_RETURNED) +
    "    no-jobs:\n" + _mqtt() +
    "    dequeue:\n" + _mqtt()
)

GATE = (
    "- pipeline:\n"
    "    name: gate\n"
    "    description: Changes that have been approved are enqueued in order in this pipeline.\n"
    "    manager: dependent\n"
    "    enqueue-message: 'Queued in {pipeline.name}: {item_url}'\n"
    "    footer-message: |-\n"
    "      For help with this report see https://docs.example.com/ci/gate.\n"
    "      Reply \"recheck\" to run the jobs again.\n"
    "    trigger:\n"
    "      gerrit:\n"
    "        - event: comment-added\n"
    "          approval:\n"
    "            - Workflow: 1\n"
    "    enqueue:\n" + _mqtt() +
    "    start:\n" + _mqtt() +
    "    success:\n" + _mqtt() +
    "    failure:\n" + _mqtt() +
    "    merge-conflict:\n" + _mqtt() +
    "    config-error:\n" + _mqtt() +
    "    dequeue:\n" + _mqtt()
)

PERIODIC = (
    "- pipeline:\n"
    "    name: periodic\n"
    "    manager: independent\n"
    "    disable-after-consecutive-failures: 3\n"
    "    trigger:\n"
    "      timer:\n"
    "        - time: '0 3 * * *'\n"
    "    success:\n" + _mqtt() +
    "    failure:\n" + _mqtt() +
    "    disabled:\n" + _mqtt()
)

RELEASE = (
    "- pipeline:\n"
    "    name: release\n"
    "    manager: independent\n"
    "    precedence: high\n"
    "    trigger:\n"
    "      gerrit:\n"
    "        - event: ref-updated\n"
    "          ref: ^refs/tags/.*$\n"
    "    success:\n" + _mqtt() +
    "    failure:\n" + _mqtt()
)


class Config:
    """Pipelines and tenants, parsed once."""

    def __init__(self, world):
        self.check = world.pipeline(CHECK)
        self.gate = world.pipeline(GATE)
        self.periodic = world.pipeline(PERIODIC)
        self.release = world.pipeline(RELEASE)
        self.tenant = world.tenant("example")
        self.whitelabel = world.tenant("acme", {"web-root": "https://tenant.example.com"})
        self.bare = world.tenant_without_web_root("example")


def _log_url(pipeline, change, job, build_uuid):
    return "%s/%s/%s/%s/%s/%s/%s/" % (LOGS, change.number[-2:], change.number, change.patchset,
                                      pipeline, job, build_uuid[:7])


# ---- one change in check: start, success, failure -------------------------------------------


def _check_item(w, cfg, story, number, patchset, subject, owner, tenant=None):
    change = w.gerrit_change("org/project", number, patchset, subject, owner,
                             files=("client/api.py", "tests/test_api.py"))
    item = w.item(story, tenant or cfg.tenant, cfg.check, "", [change], T0 + 0.412345, T0 + 1.537861)
    w.configure(item)
    jobs = [
        w.job(item, story, "tox-linters", change),
        w.job(item, story, "tox-py311", change),
        w.job(item, story, "tox-py312", change, voting=False),
        w.job(item, story, "build-docs", change, dependencies=["tox-linters"]),
    ]
    w.freeze_job_graph(item, jobs)
    return item, change, jobs


@scenario
def start(w, cfg):
    item, change, jobs = _check_item(w, cfg, "check-1234", "1234", "2", "Add retries to the API client", "alice")
    return Scenario("start", cfg.check, "start", item, T0 + 31.0,
                    "check start: a Gerrit change's four jobs are frozen, none has a build yet",
                    ["start action and message 'Starting check jobs.'",
                     "builds without a build: only job_name, job_uuid and voting",
                     "a non-voting job", "zuul_ref set, buildset.result null", "queue name ''"])


@scenario
def success(w, cfg):
    item, change, jobs = _check_item(w, cfg, "check-1234", "1234", "2", "Add retries to the API client", "alice")
    starts = [T0 + 95.118, T0 + 96.402, T0 + 97.006, T0 + 402.777]
    ends = [T0 + 301.5, T0 + 1207.25, T0 + 1388.04, T0 + 610.9]
    for job, s, e in zip(jobs, starts, ends):
        b = w.build(item, "check-1234", job, "SUCCESS", s, e)
        b._set(_result_data={"zuul": {"log_url": _log_url("check", change, job.name, b.uuid)}})
        w.add_build(item, b)
    w.set_reported_result(item, "SUCCESS")
    return Scenario("success", cfg.check, "success", item, T0 + 1389.5,
                    "check success of the same item as start.json: every job SUCCESS",
                    ["same item uuid, buildset uuid and job uuids as start.json",
                     "log_url and web_url per build, dependencies and job_dependencies",
                     "include-returned-data: returned_data is {} once 'zuul' is removed"])


@scenario
def failure(w, cfg):
    story = "check-1235"
    item, change, jobs = _check_item(w, cfg, story, "1235", "1", "Drop the Python 3.10 support", "bob")
    linters, py311, py312, docs = jobs
    b = w.build(item, story, linters, "FAILURE", T0 + 95.5, T0 + 250.0)
    b._set(_result_data={"zuul": {"log_url": _log_url("check", change, "tox-linters", b.uuid)}})
    w.add_build(item, b)
    b = w.build(item, story, py311, "SUCCESS", T0 + 96.0, T0 + 1100.0)
    b._set(_result_data={"zuul": {"log_url": _log_url("check", change, "tox-py311", b.uuid)}})
    w.add_build(item, b)
    # QueueItem.setNodeRequestFailure: a fake build stamped start = end = execute = now.
    b = w.build(item, story, py312, "NODE_FAILURE", T0 + 700.0, T0 + 700.0, execute=T0 + 700.0,
                error_detail="Node(set) request 200-0000123456 failed")
    w.add_build(item, b)
    # QueueItem.setResult: a failed parent skips its dependents with a fake build.
    w.add_build(item, w.build(item, story, docs, "SKIPPED", None, None, execute=T0 + 250.0,
                              error_detail="Skipped due to failed job tox-linters"))
    w.set_reported_result(item, "FAILURE")
    return Scenario("failure", cfg.check, "failure", item, T0 + 1101.0,
                    "check failure: a voting FAILURE, a non-voting NODE_FAILURE, a SKIPPED dependent",
                    ["failure message 'Build failed.' (no job list: MQTT reports with_jobs=False)",
                     "SKIPPED fake build: start_time/end_time null, log_url null, web_url still set",
                     "NODE_FAILURE with start_time == end_time and no log_url"])


# ---- merge conflicts --------------------------------------------------------------------------


def _merge_conflict_item(w, cfg, pipeline, story, number, queue):
    change = w.gerrit_change("org/project", number, "3", "Rework the settings loader", "carol")
    item = w.item(story, cfg.tenant, pipeline, queue, [change], T0 + 5.25, T0 + 5.75)
    # PipelineManager.prepareItem: setConfiguration, then the merge; its failure arrives as a
    # MergeCompletedEvent and _onMergeCompleted calls item.setUnableToMerge(event.errors).
    w.configure(item)
    w.set_unable_to_merge(item, ["Error merging gerrit/org/project for %s,3" % number])
    w.set_reported_result(item, "MERGE_CONFLICT")
    return item


@scenario
def merge_conflict(w, cfg):
    item = _merge_conflict_item(w, cfg, cfg.gate, "gate-1240", "1240", "integrated")
    return Scenario("merge-conflict", cfg.gate, "merge-conflict", item, T0 + 20.0,
                    "gate merge-conflict through the pipeline's own merge-conflict reporter",
                    ["the default merge-conflict-message: two paragraphs",
                     "a 'Warning:' section with the merger's error",
                     "the pipeline footer-message", "no job graph: builds []", "named queue"])


@scenario
def merge_conflict_via_failure(w, cfg):
    item = _merge_conflict_item(w, cfg, cfg.check, "check-1241", "1241", "")
    return Scenario("merge-conflict-via-failure", cfg.check, "merge-conflict", item, T0 + 20.0,
                    "check has no merge-conflict reporter, so Zuul uses its failure reporters",
                    ["action 'failure' with buildset.result 'MERGE_CONFLICT'",
                     "message is the merge-conflict-message with its Warning: section"])


# ---- configuration errors ---------------------------------------------------------------------

_BROKEN_JOB = """\
- job:
    name: org-project-functional
    parent: base
    nodset: ubuntu-noble
    run: playbooks/functional.yaml
    timeout: 3600
"""


def _config_error_item(w, cfg, pipeline, story, number, queue):
    change = w.gerrit_change("org/project", number, "1", "Add a functional test job", "dave",
                             files=("zuul.d/jobs.yaml", "playbooks/functional.yaml"))
    # The error configloader makes for the job stanza: JobParser.fromYaml starts with
    # self.schema(conf), which rejects the misspelt key.
    error, _ = w.config_error(_BROKEN_JOB, "zuul.d/jobs.yaml", "job",
                              lambda conf, acc: configloader.JobParser.schema(conf))
    item = w.item(story, cfg.tenant, pipeline, queue, [change], T0 + 7.0, T0 + 7.5)
    w.configure(item)
    # PipelineManager._loadDynamicLayout fails: item.setConfigErrors(errors), no job graph.
    w.config_errors(item, [error])
    w.set_reported_result(item, "CONFIG_ERROR")
    return item


@scenario
def config_error(w, cfg):
    item = _config_error_item(w, cfg, cfg.gate, "gate-1250", "1250", "integrated")
    return Scenario("config-error", cfg.gate, "config-error", item, T0 + 45.0,
                    "gate config-error: a misspelt job attribute in zuul.d/jobs.yaml",
                    ["configloader's multi-paragraph message: intro, error, stanza, YAML snippet, location",
                     "the pipeline footer-message", "builds []"])


@scenario
def config_error_via_failure(w, cfg):
    item = _config_error_item(w, cfg, cfg.check, "check-1251", "1251", "")
    return Scenario("config-error-via-failure", cfg.check, "config-error", item, T0 + 45.0,
                    "check has no config-error reporter, so Zuul uses its failure reporters",
                    ["action 'failure' with buildset.result 'CONFIG_ERROR'",
                     "message is the configuration error text"])


# ---- no jobs, enqueue, dequeue -----------------------------------------------------------------


@scenario
def no_jobs(w, cfg):
    change = w.gerrit_change("org/project", "1260", "1", "Fix a typo in the README", "erin",
                             files=("README.rst",))
    item = w.item("check-1260", cfg.tenant, cfg.check, "", [change], T0 + 3.0, T0 + 3.5)
    w.configure(item)
    # The project is in the pipeline but no job matched the files: an empty job graph.
    w.freeze_job_graph(item, [])
    w.set_reported_result(item, "NO_JOBS")
    return Scenario("no-jobs", cfg.check, "no-jobs", item, T0 + 12.0,
                    "check no-jobs: no job matched the change's files",
                    ["no-jobs action, empty message (no-jobs-message defaults to '')", "builds []",
                     "buildset.result 'NO_JOBS'"])


@scenario
def enqueue(w, cfg):
    change = w.gerrit_change("org/project", "1270", "4", "Make the cache size configurable", "frank")
    item = w.item("gate-1270", cfg.tenant, cfg.gate, "integrated", [change], T0 + 2.0, T0 + 2.25)
    # PipelineManager.addChange reports enqueue right after enqueueChanges: not configured yet.
    return Scenario("enqueue", cfg.gate, "enqueue", item, T0 + 2.5,
                    "gate enqueue: the item was just enqueued",
                    ["enqueue-message with {item_url}: the status page url (no buildset result yet)",
                     "zuul_ref null", "builds []", "footer-message"])


@scenario
def dequeue(w, cfg):
    story = "check-1234"
    item, change, jobs = _check_item(w, cfg, story, "1234", "2", "Add retries to the API client", "alice")
    # Two builds were running when a new patchset arrived.
    w.add_build(item, w.build(item, story, jobs[0], None, T0 + 95.118, None))
    w.add_build(item, w.build(item, story, jobs[1], None, T0 + 96.402, None))
    # Scheduler.removeItem -> PipelineManager.removeItem -> cancelJobs(item): running builds
    # get CANCELED and, as the buildset has a zuul ref, item.resetAllBuilds() replaces it
    # with a fresh one; then dequeueItem -> setReportedResult('DEQUEUED') -> reportDequeue.
    w.reset_all_builds(item, story)
    w.set_reported_result(item, "DEQUEUED")
    return Scenario("dequeue", cfg.check, "dequeue", item, T0 + 240.0,
                    "check dequeue of a started item (new patchset): Zuul resets the buildset first",
                    ["message 'Build canceled.'",
                     "builds [] although four jobs were frozen and two were running",
                     "buildset.uuid differs from the start report's; item uuid is the same",
                     "zuul_ref null", "buildset.result 'DEQUEUED'"])


@scenario
def dequeue_needing_change(w, cfg):
    change = w.gerrit_change("org/project", "1280", "2", "Use the new settings loader", "grace")
    item = w.item("gate-1280", cfg.tenant, cfg.gate, "integrated", [change], T0 + 4.0, T0 + 4.5)
    w.configure(item)
    # _processOneItem: the needed change 1241 can no longer merge: cancelJobs(item) resets the
    # buildset, setDequeuedNeedingChange(msg), reportItem -> failure.
    w.reset_all_builds(item, "gate-1280")
    item._set(dequeued_needing_change="Change %s/c/org/project/+/1241 is needed." % "https://review.example.com")
    w.set_reported_result(item, "FAILURE")
    return Scenario("dequeue-needing-change", cfg.gate, "failure", item, T0 + 400.0,
                    "gate failure of an item dequeued because a change it needs cannot merge",
                    ["message 'This change depends on a change that failed to merge.' plus the needed change",
                     "failure action with builds []", "footer-message"])


# ---- dependency cycle ---------------------------------------------------------------------------


@scenario
def cycle_failure(w, cfg):
    story = "gate-cycle"
    change_a = w.gerrit_change("org/a", "2001", "1", "Rename the client option", "heidi", topic="rename-option")
    change_b = w.gerrit_change("org/b", "2002", "2", "Follow the client option rename", "ivan",
                               topic="rename-option")
    item = w.item(story, cfg.tenant, cfg.gate, "integrated", [change_a, change_b], T0 + 8.0, T0 + 8.5)
    w.configure(item)
    unit_a = w.job(item, story, "tox-py311", change_a)
    unit_b = w.job(item, story, "tox-py311", change_b)
    # One job deduplicated across both changes (JobGraph.deduplicateJobs): its ref is org/a's,
    # other_refs holds org/b's.
    integration = w.job(item, story, "integration", change_a, other_changes=[change_b])
    w.freeze_job_graph(item, [unit_a, unit_b, integration])
    for job, result, s, e in ((unit_a, "SUCCESS", T0 + 60.0, T0 + 500.0),
                              (unit_b, "FAILURE", T0 + 61.0, T0 + 410.0),
                              (integration, "SUCCESS", T0 + 62.0, T0 + 2100.0)):
        b = w.build(item, story, job, result, s, e)
        change = item.getChangeForJob(job)
        b._set(_result_data={"zuul": {"log_url": _log_url("gate", change, job.name, b.uuid)}})
        w.add_build(item, b)
    w.set_reported_result(item, "FAILURE")
    return Scenario("cycle-failure", cfg.gate, "failure", item, T0 + 2101.0,
                    "gate failure of a dependency cycle: org/a 2001,1 and org/b 2002,2 in one item",
                    ["changes[] with two entries; top-level fields describe only changes[0] (org/a)",
                     "the same job name twice, one per change, told apart by build.change",
                     "a deduplicated job reported under org/a",
                     "cycle message: 'This change is part of a dependency cycle that failed.' + Related changes list",
                     "MQTT topic from changes[0] only",
                     "changes[].topic 'rename-option'; Zuul sends no top-level topic"])


# ---- job messages, retries, events, artifacts, returned data -----------------------------------


@scenario
def custom_job_messages(w, cfg):
    story = "check-1300"
    change = w.gerrit_change("org/project", "1300", "5", "Document the retry settings", "judy")
    item = w.item(story, cfg.tenant, cfg.check, "", [change], T0 + 1.0, T0 + 1.25)
    w.configure(item)
    docs = w.job(item, story, "build-docs", change, success_message="Docs preview is ready",
                 failure_message="Docs did not build")
    lint = w.job(item, story, "tox-linters", change, failure_message="Style check failed, see the log")
    unit = w.job(item, story, "tox-py311", change, success_message="Unit tests passed")
    w.freeze_job_graph(item, [docs, lint, unit])
    for job, result, s, e in ((docs, "SUCCESS", T0 + 70.0, T0 + 300.0), (lint, "FAILURE", T0 + 71.0, T0 + 180.0),
                              (unit, "SUCCESS", T0 + 72.0, T0 + 900.0)):
        b = w.build(item, story, job, result, s, e)
        b._set(_result_data={"zuul": {"log_url": _log_url("check", change, job.name, b.uuid)}})
        w.add_build(item, b)
    # A retried first attempt of build-docs: formatJobResult replaces every result but SUCCESS
    # by the job's failure_message, so the RETRY is reported as "Docs did not build".
    retry = w.build(item, story, docs, "RETRY", T0 + 20.0, T0 + 65.0, attempt=0)
    w.add_retry_build(item, retry)
    w.set_reported_result(item, "FAILURE")
    return Scenario("custom-job-messages", cfg.check, "failure", item, T0 + 901.0,
                    "check failure where jobs set success-message and failure-message",
                    ["result 'Docs preview is ready' for a SUCCESS, 'Style check failed, see the log' for a FAILURE",
                     "result 'Unit tests passed' for a SUCCESS",
                     "a RETRY attempt in retry_builds reported as 'Docs did not build' (failure-message)",
                     "nothing in the payload marks a result as a custom text"])


@scenario
def retried_builds_events(w, cfg):
    story = "check-1310"
    change = w.gerrit_change("org/project", "1310", "1", "Build the container image once", "mallory")
    item = w.item(story, cfg.tenant, cfg.check, "", [change], T0 + 1.0, T0 + 1.5)
    w.configure(item)
    registry = w.job(item, story, "buildset-registry", change)
    image = w.job(item, story, "build-image", change, dependencies=["buildset-registry"])
    test = w.job(item, story, "test-image", change, dependencies=["build-image"])
    w.freeze_job_graph(item, [registry, image, test])
    # The registry job pauses until its dependents are done (Scheduler._doBuildPausedEvent,
    # PipelineManager._resumeBuilds), and a snapshot was taken (BuildStatusEvent).
    b = w.build(item, story, registry, "SUCCESS", T0 + 50.0, T0 + 1900.0, events=[
        (T0 + 180.5, "paused"), (T0 + 1850.25, "resumed"),
        (T0 + 1860.0, "snapshot started"), (T0 + 1880.0, "snapshot completed")])
    b._set(_result_data={"zuul": {"log_url": _log_url("check", change, "buildset-registry", b.uuid)}})
    w.add_build(item, b)
    # build-image was retried twice: an unreachable node, then a pre-run failure.
    for attempt, (s, e) in enumerate(((T0 + 185.0, T0 + 240.0), (T0 + 245.0, T0 + 420.0)), 1):
        r = w.build(item, story, image, "RETRY", s, e, attempt=attempt)
        r._set(_result_data={"zuul": {"log_url": _log_url("check", change, "build-image", r.uuid)}})
        w.add_retry_build(item, r)
    b = w.build(item, story, image, "SUCCESS", T0 + 430.0, T0 + 1300.0, attempt=3)
    b._set(_result_data={"zuul": {"log_url": _log_url("check", change, "build-image", b.uuid)}})
    w.add_build(item, b)
    b = w.build(item, story, test, "SUCCESS", T0 + 1310.0, T0 + 1840.0)
    b._set(_result_data={"zuul": {"log_url": _log_url("check", change, "test-image", b.uuid)}})
    w.add_build(item, b)
    w.set_reported_result(item, "SUCCESS")
    return Scenario("retried-builds-events", cfg.check, "success", item, T0 + 1901.0,
                    "check success with a paused registry job and a twice-retried image build",
                    ["events: paused, resumed, snapshot started, snapshot completed",
                     "retry_builds: two RETRY attempts with their own uuids, log_url and web_url",
                     "a chain of job dependencies"])


@scenario
def artifacts_manifest(w, cfg):
    story = "check-1320"
    change = w.gerrit_change("org/project", "1320", "2", "Publish the docs preview", "nina")
    item = w.item(story, cfg.tenant, cfg.check, "", [change], T0 + 1.0, T0 + 1.5)
    w.configure(item)
    docs = w.job(item, story, "build-docs", change)
    image = w.job(item, story, "build-image", change)
    w.freeze_job_graph(item, [docs, image])
    b = w.build(item, story, docs, "SUCCESS", T0 + 60.0, T0 + 400.0)
    b._set(_result_data={
        "zuul": {
            "log_url": _log_url("check", change, "build-docs", b.uuid),
            # Relative urls are joined to log_url by get_artifacts_from_result_data.
            "artifacts": [
                {"name": "Zuul Manifest", "url": "zuul-manifest.json", "metadata": {"type": "zuul_manifest"}},
                {"name": "Docs preview", "url": "docs/html/", "metadata": {"type": "docs_site"}},
            ],
        },
        "docs_pages": 212,
    })
    w.add_build(item, b)
    b = w.build(item, story, image, "SUCCESS", T0 + 61.0, T0 + 800.0)
    b._set(_result_data={
        "zuul": {
            "log_url": _log_url("check", change, "build-image", b.uuid),
            "artifacts": [
                {"name": "Zuul Manifest", "url": "zuul-manifest.json", "metadata": {"type": "zuul_manifest"}},
                {"name": "Container image", "url": "https://registry.example.com/org/project:change_1320",
                 "metadata": {"type": "container_image", "repository": "registry.example.com/org/project",
                              "tag": "change_1320"}},
            ],
        },
    })
    w.add_build(item, b)
    w.set_reported_result(item, "SUCCESS")
    return Scenario("artifacts-manifest", cfg.check, "success", item, T0 + 801.0,
                    "check success whose builds return artifacts, among them the zuul_manifest",
                    ["artifacts with relative urls joined to the log_url, an absolute url kept",
                     "metadata type zuul_manifest, docs_site, container_image",
                     "returned_data without the 'zuul' key (docs_pages)"])


@scenario
def returned_data_nonfinite(w, cfg):
    story = "check-1330"
    change = w.gerrit_change("org/project", "1330", "1", "Add the benchmark job", "oscar")
    item = w.item(story, cfg.tenant, cfg.check, "", [change], T0 + 1.0, T0 + 1.5)
    w.configure(item)
    bench = w.job(item, story, "benchmark", change)
    w.freeze_job_graph(item, [bench])
    b = w.build(item, story, bench, "SUCCESS", T0 + 60.0, T0 + 660.0)
    b._set(_result_data={
        "zuul": {"log_url": _log_url("check", change, "benchmark", b.uuid)},
        # zuul_return data as a job returns it: Python's json.dumps writes these as
        # Infinity, -Infinity and NaN (allow_nan defaults to True).
        "benchmark": {"p50_ms": 12.5, "p99_ms": float("inf"), "min_ms": float("-inf"),
                      "stddev_ms": float("nan"), "runs": 1000},
    })
    w.add_build(item, b)
    w.set_reported_result(item, "SUCCESS")
    return Scenario("returned-data-nonfinite", cfg.check, "success", item, T0 + 661.0,
                    "check success whose returned data holds float('inf'), -inf and NaN",
                    ["Infinity, -Infinity and NaN in returned_data: what Zuul sends, though not strict JSON"])


# ---- web roots ------------------------------------------------------------------------------------


@scenario
def whitelabel_success(w, cfg):
    story = "acme-check-1400"
    item, change, jobs = _check_item(w, cfg, story, "1400", "1", "Whitelabel tenant change", "peggy",
                                     tenant=cfg.whitelabel)
    for job in jobs:
        b = w.build(item, story, job, "SUCCESS", T0 + 90.0, T0 + 600.0)
        b._set(_result_data={"zuul": {"log_url": _log_url("check", change, job.name, b.uuid)}})
        w.add_build(item, b)
    w.set_reported_result(item, "SUCCESS")
    return Scenario("whitelabel-success", cfg.check, "success", item, T0 + 601.0,
                    "check success in tenant acme whose web-root is https://tenant.example.com (whitelabeled)",
                    ["tenant_web_root 'https://tenant.example.com/' (no /t/<tenant>/)",
                     "web_url https://tenant.example.com/build/<uuid>"])


@scenario
def no_web_root_failure(w, cfg):
    story = "bare-check-1410"
    item, change, jobs = _check_item(w, cfg, story, "1410", "1", "Change on a Zuul without web root", "quentin",
                                     tenant=cfg.bare)
    for job, result in zip(jobs, ("FAILURE", "SUCCESS", "SUCCESS", "SUCCESS")):
        b = w.build(item, story, job, result, T0 + 90.0, T0 + 600.0)
        b._set(_result_data={"zuul": {"log_url": _log_url("check", change, job.name, b.uuid)}})
        w.add_build(item, b)
    w.set_reported_result(item, "FAILURE")
    return Scenario("no-web-root-failure", cfg.check, "failure", item, T0 + 601.0,
                    "check failure on a Zuul with no [web] root and no tenant web-root",
                    ["tenant_web_root null (Zuul logs an error formatting it)",
                     "web_url is the relative 'build/<uuid>' (urljoin(None, ...))"])


# ---- refs without a change ------------------------------------------------------------------------


@scenario
def periodic_branch(w, cfg):
    story = "periodic-master"
    ref = w.branch("org/project", "master", "4f1c1e3b9d2a7c6e5f8a9b0c1d2e3f4a5b6c7d8e")
    item = w.item(story, cfg.tenant, cfg.periodic, "", [ref], T0 - 18000.0 + 0.003, T0 - 18000.0 + 0.5)
    w.configure(item)
    nightly = w.job(item, story, "nightly-integration", ref)
    w.freeze_job_graph(item, [nightly])
    b = w.build(item, story, nightly, "TIMED_OUT", T0 - 17900.0, T0 - 7100.0)
    b._set(_result_data={"zuul": {"log_url": "%s/periodic/review.example.com/org/project/master/"
                                              "nightly-integration/%s/" % (LOGS, b.uuid[:7])}})
    w.add_build(item, b)
    w.set_reported_result(item, "FAILURE")
    return Scenario("periodic-branch", cfg.periodic, "failure", item, T0 - 7099.0,
                    "periodic (timer) failure of a Branch item: no change at all",
                    ["change, patchset, owner, commit_id, topic are '' (the Branch has no such attribute)",
                     "ref refs/heads/master, change_url a gitweb commit url",
                     "topic contains 'None' for {change}", "TIMED_OUT"])


@scenario
def periodic_disabled(w, cfg):
    story = "periodic-master-disabled"
    ref = w.branch("org/project", "master", "4f1c1e3b9d2a7c6e5f8a9b0c1d2e3f4a5b6c7d8e")
    item = w.item(story, cfg.tenant, cfg.periodic, "", [ref], T0 + 68400.0, T0 + 68400.5)
    w.configure(item)
    nightly = w.job(item, story, "nightly-integration", ref)
    w.freeze_job_graph(item, [nightly])
    w.add_build(item, w.build(item, story, nightly, "FAILURE", T0 + 68500.0, T0 + 70000.0))
    # _reportItem: the pipeline is disabled after consecutive failures, so the disabled
    # reporters run instead of the failure ones; their action is 'disabled'.
    w.set_reported_result(item, "FAILURE")
    return Scenario("periodic-disabled", cfg.periodic, "disabled", item, T0 + 70001.0,
                    "periodic failure reported by the 'disabled' reporters (disable-after-consecutive-failures)",
                    ["action 'disabled' with buildset.result FAILURE and the failure message",
                     "a build without log_url"])


@scenario
def tag_release(w, cfg):
    story = "release-2.4.0"
    ref = w.tag("org/project", "2.4.0", "0000000000000000000000000000000000000000",
                "9a8b7c6d5e4f30211234567890abcdef12345678")
    item = w.item(story, cfg.tenant, cfg.release, "", [ref], T0 + 100.0, T0 + 100.5)
    w.configure(item)
    publish = w.job(item, story, "release-python", ref)
    w.freeze_job_graph(item, [publish])
    b = w.build(item, story, publish, "SUCCESS", T0 + 160.0, T0 + 460.0)
    b._set(_result_data={"zuul": {"log_url": "%s/release/org/project/2.4.0/release-python/%s/" % (LOGS, b.uuid[:7])}})
    w.add_build(item, b)
    w.set_reported_result(item, "SUCCESS")
    return Scenario("tag-release", cfg.release, "success", item, T0 + 461.0,
                    "release success of a Tag item (refs/tags/2.4.0)",
                    ["branch '' (a Tag has no branch attribute)", "topic has 'None' for branch and change",
                     "commit_id '' although the tag has a newrev"])


# ---- footer, debug, warnings -----------------------------------------------------------------------


_DEBUG_ZUUL_YAML = """\
- project:
    gate:
      debug: true
      jobs:
        - tox-py311
- job:
    name: tox-py311
    vars:
      tox_envlist: py311
"""

_ZUUL_JOBS_YAML = """\
- job:
    name: tox-py311
    parent: tox
    description: Run unit tests for a Python project under cPython version 3.11.
"""


@scenario
def footer_debug(w, cfg):
    story = "gate-1500"
    change = w.gerrit_change("org/project", "1500", "3", "Turn on debug for the gate", "rupert",
                             files=(".zuul.yaml",))
    item = w.item(story, cfg.tenant, cfg.gate, "integrated", [change], T0 + 1.0, T0 + 1.5)
    w.configure(item)
    job = w.job(item, story, "tox-py311", change)
    w.freeze_job_graph(item, [job])
    b = w.build(item, story, job, "SUCCESS", T0 + 40.0, T0 + 700.0)
    b._set(_result_data={"zuul": {"log_url": _log_url("gate", change, "tox-py311", b.uuid)}})
    w.add_build(item, b)
    # Layout.createJobGraph with a project-pipeline 'debug: true': the ProjectPipelineConfig's
    # lines (getProjectPipelineConfig), then extendJobGraph/collectJobs lines via
    # add_debug_line, each naming the repr of a real ProjectConfig or Job variant.
    project_config, own_variant = w.config_objects(_DEBUG_ZUUL_YAML, "org/project", ".zuul.yaml")
    _, base_variant = w.config_objects(_ZUUL_JOBS_YAML, "opendev/zuul-jobs", "zuul.d/python-jobs.yaml")
    messages = item.current_build_set.debug_messages
    messages.append("Project %s matched" % (project_config,))
    add_debug_line(messages, "Freezing job graph")
    add_debug_line(messages, "Freezing job tox-py311", indent=1)
    add_debug_line(messages, "Collecting job variants for tox-py311", indent=3)
    add_debug_line(messages, "Variant {variant} matched".format(variant=repr(base_variant)), indent=3)
    add_debug_line(messages, "Pipeline variant {variant} matched".format(variant=repr(own_variant)), indent=2)
    w.set_reported_result(item, "SUCCESS")
    return Scenario("footer-debug", cfg.gate, "success", item, T0 + 701.0,
                    "gate success with the pipeline footer-message and the item's debug information",
                    ["'Debug information:' section with indented lines",
                     "footer-message after it, separated by a newline"])


@scenario
def warnings_failure(w, cfg):
    story = "check-1510"
    change = w.gerrit_change("org/project", "1510", "1", "Use the deprecated nodeset", "sybil",
                             files=(".zuul.yaml",))
    item = w.item(story, cfg.tenant, cfg.check, "", [change], T0 + 1.0, T0 + 1.5)
    w.configure(item)
    # A configuration warning (severity warning: not blocking) as configloader records it.
    warning, _ = w.config_error(
        "- job:\n    name: legacy-functional\n    branches: ^(?!stable/).*$\n    run: playbooks/legacy.yaml\n",
        ".zuul.yaml", "job", _branches_regex)
    w.config_errors(item, [warning])
    job = w.job(item, story, "legacy-functional", change)
    w.freeze_job_graph(item, [job])
    b = w.build(item, story, job, "FAILURE", T0 + 40.0, T0 + 500.0)
    b._set(_result_data={"zuul": {"log_url": _log_url("check", change, "legacy-functional", b.uuid),
                                  "warnings": ["The nodeset ubuntu-focal is deprecated; use ubuntu-noble"]}})
    w.add_build(item, b)
    # Scheduler._doBuildCompletedEvent appends the zuul_return warnings to the buildset.
    item.current_build_set.warning_messages.append("The nodeset ubuntu-focal is deprecated; use ubuntu-noble")
    w.set_reported_result(item, "FAILURE")
    return Scenario("warnings-failure", cfg.check, "failure", item, T0 + 501.0,
                    "check failure with a configuration warning and a warning returned by the job",
                    ["two 'Warning:' sections: the config warning's full text, then the buildset warnings"])


def _branches_regex(conf, accumulator):
    """JobParser reads 'branches' inside pcontext.confAttr (an error context naming the
    attribute) and make_regex adds a RegexDeprecation warning for a Perl-only regex."""
    key = next(k for k in conf if k == "branches")
    configloader.make_regex(conf[key], SimpleNamespace(accumulator=accumulator.extend(attr=key)))
