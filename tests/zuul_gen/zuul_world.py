"""The smallest world in which Zuul's own MQTT reporter runs, built from Zuul's own classes.

Runs INSIDE the throwaway virtual environment that tests/zuul_gen/generate.py makes (it
imports zuul). What is real and what is a stub, and why:

- real: the gerrit and mqtt drivers and connections (zuul.driver.*), the pipeline parsed from
  YAML by zuul.configloader.PipelineParser (so its default messages and its reporters, with
  their validated config and action, are Zuul's), SystemAttributes.fromConfig for the web
  root, Tenant, GerritChange filled by GerritChange.updateFromHTTP from a Gerrit REST answer,
  Branch/Tag filled the way GerritConnection._getBranch/_getTag fill them, ChangeKey/CacheStat,
  EventInfo, QueueItem, ChangeQueue, BuildSet, Build, BuildEvent, FrozenJob, JobGraph (with
  its own freezeDependencies), ConfigurationError made by configloader.LocalAccumulator,
  ConfigurationErrorList, and the paho client inside MQTTConnection.
- stub: the pipeline manager (a PipelineManager needs a scheduler and ZooKeeper; the reporter
  reads only manager.tenant and manager.pipeline), and the socket under paho: the client's
  _send_publish is replaced by a recorder, so the bytes recorded are the ones paho would put
  on the wire after MQTTConnection.publish json.dumps'ed the message.

ZooKeeper-backed objects are filled with ZKObject._set, never saved. Where Zuul changes an
item's state through a ZooKeeper context (setReportedResult, setUnableToMerge, ...), the
helpers here set the same attributes and say which method they mirror.
"""

import configparser
import hashlib
import logging
import time
import urllib.parse
import uuid
from types import SimpleNamespace

import zuul.driver.gerrit
import zuul.driver.mqtt
import zuul.driver.timer
import zuul.model as model
from zuul import configloader
from zuul.lib.connections import ConnectionRegistry, DefaultConnection
from zuul.zk.change_cache import ChangeKey

GERRIT = "gerrit"
MQTT = "mqtt"
GERRIT_BASEURL = "https://review.example.com"
ZUUL_WEB_ROOT = "https://zuul.example.com/"


def uuid_for(label):
    """A stable uuid4-shaped hex string for a label (same label, same uuid, every run)."""
    digest = hashlib.sha256(label.encode("utf-8")).digest()[:16]
    return uuid.UUID(bytes=digest, version=4).hex


class Determinism:
    """Replaces time.time and uuid4 so that nothing Zuul stamps on its own varies between
    runs: Build(), BuildSet(), QueueItem() call uuid4() and time.time() in their constructors,
    and the reporter puts time.time() into 'timestamp'."""

    def __init__(self):
        self.now = 0.0
        self.scope = "unset"
        self.counter = 0

    def reset(self, scope, now):
        self.scope = scope
        self.counter = 0
        self.now = now

    def time(self):
        return self.now

    def uuid4(self):
        self.counter += 1
        digest = hashlib.sha256(("%s#%d" % (self.scope, self.counter)).encode()).digest()[:16]
        return uuid.UUID(bytes=digest, version=4)

    def install(self):
        time.time = self.time
        uuid.uuid4 = self.uuid4
        model.uuid4 = self.uuid4


class PublishRecorder:
    """Stands in for paho's socket: records what Client.publish would send."""

    def __init__(self):
        self.sent = []

    def attach(self, mqtt_connection):
        # MQTTConnection.onLoad sets this after client.connect(); publish() drops the message
        # while it is False.
        mqtt_connection.connected = True

        def _send_publish(mid, topic, payload=b"", qos=0, retain=False, dup=False, info=None, properties=None):
            self.sent.append(SimpleNamespace(topic=topic.decode("utf-8"), payload=bytes(payload), qos=qos, retain=retain))
            return 0  # MQTT_ERR_SUCCESS

        mqtt_connection.client._send_publish = _send_publish

    def take(self):
        sent, self.sent = self.sent, []
        return sent


class LogRecorder(logging.Handler):
    """Keeps what Zuul logs at ERROR while reporting (e.g. a missing web root)."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())

    def take(self):
        records, self.records = self.records, []
        return records


class World:
    def __init__(self):
        zuul_conf = configparser.ConfigParser()
        zuul_conf.read_string(
            "[connection %s]\ndriver=gerrit\nserver=review.example.com\nbaseurl=%s\nuser=zuul\n"
            "sshkey=/nonexistent\n"
            "[connection %s]\ndriver=mqtt\nserver=127.0.0.1\n"
            "[web]\nroot=%s\n" % (GERRIT, GERRIT_BASEURL, MQTT, ZUUL_WEB_ROOT)
        )
        # ConnectionRegistry() registers every driver, and the bubblewrap one runs `bwrap
        # --version`; build the registry with the two drivers needed and its own methods.
        registry = ConnectionRegistry.__new__(ConnectionRegistry)
        registry.drivers = {GERRIT: zuul.driver.gerrit.GerritDriver(), MQTT: zuul.driver.mqtt.MQTTDriver()}
        registry.connections = {}
        for name in (GERRIT, MQTT):
            config = dict(zuul_conf.items("connection %s" % name))
            registry.connections[name] = registry.drivers[config["driver"]].getConnection(name, config)
        # Drivers without connections get a DefaultConnection named after them
        # (ConnectionRegistry.configure); the periodic pipeline's trigger needs 'timer'.
        registry.drivers["timer"] = zuul.driver.timer.TimerDriver()
        registry.connections["timer"] = DefaultConnection(registry.drivers["timer"], "timer", {})
        self.registry = registry
        self.gerrit = registry.connections[GERRIT]
        # What GerritConnection._getRemoteVersion sets on load; >= 2.15 gives /c/<project>/+/<n> urls.
        self.gerrit.version = (3, 10, 0)
        self.mqtt = registry.connections[MQTT]
        self.recorder = PublishRecorder()
        self.recorder.attach(self.mqtt)
        self.system = model.SystemAttributes.fromConfig(zuul_conf)
        self.pcontext = configloader.ParseContext(registry, self.system, self.system, None)
        self.config_source = model.SourceContext(
            "review.example.com/org/project-config", "org/project-config", GERRIT, "master", "zuul.d/pipelines.yaml")

    def close(self):
        self.registry.drivers["timer"].stop()

    # ---- configuration ----------------------------------------------------------------------

    def pipeline(self, yaml_text):
        """A Pipeline parsed by Zuul's own PipelineParser from a `- pipeline:` YAML stanza."""
        data = configloader.safe_load_yaml(yaml_text, self.config_source)
        return self.pcontext.pipeline_parser.fromYaml(data[0]["pipeline"])

    def tenant(self, name, conf=None):
        """A Tenant whose web_root is set as configloader.TenantParser.fromYaml sets it."""
        conf = conf or {}
        tenant = model.Tenant(name)
        tenant.web_root = conf.get("web-root", self.system.web_root)
        if tenant.web_root and not tenant.web_root.endswith("/"):
            tenant.web_root += "/"
        return tenant

    def tenant_without_web_root(self, name):
        """A tenant of a Zuul whose zuul.conf has no [web] root and no tenant web-root."""
        tenant = model.Tenant(name)
        tenant.web_root = None
        return tenant

    def config_objects(self, yaml_text, project_name, path):
        """The ProjectConfig (if any) and the last Job variant of a config file, with the
        source context and start marks configloader gives them (for their repr)."""
        source = model.SourceContext("review.example.com/" + project_name, project_name, GERRIT, "master", path)
        project_config = job = None
        for stanza in configloader.safe_load_yaml(yaml_text, source):
            if "project" in stanza:
                project_config = model.ProjectConfig("review.example.com/" + project_name)
                project_config.source_context = source
                project_config.start_mark = stanza["project"]["_start_mark"]
            if "job" in stanza:
                job = model.Job(stanza["job"]["name"])
                job.source_context = source
                job.start_mark = stanza["job"]["_start_mark"]
        return project_config, job

    # ---- refs -------------------------------------------------------------------------------

    def project(self, name):
        return self.gerrit.source.getProject(name)

    def gerrit_change(self, project_name, number, patchset, subject, owner, branch="master", topic=None,
                      files=("README.rst",), seed=None):
        """A GerritChange as GerritConnection._getChange makes it (number and patchset strings)
        and GerritChange.updateFromHTTP fills it from the REST answer for the change."""
        seed = seed or "%s/%s,%s" % (project_name, number, patchset)
        sha = hashlib.sha1(seed.encode()).hexdigest()
        change = zuul.driver.gerrit.gerritmodel.GerritChange(None)
        change.number = str(number)
        change.patchset = str(patchset)
        shard = "%02d" % (int(number) % 100)
        rest = {
            "project": project_name,
            "branch": branch,
            "change_id": "I" + hashlib.sha1(("id" + seed).encode()).hexdigest(),
            "status": "NEW",
            "topic": topic,
            "hashtags": [],
            "work_in_progress": False,
            "owner": {"_account_id": 1000042, "name": owner.title(), "username": owner,
                      "email": "%s@example.com" % owner},
            "labels": {"Code-Review": {"all": []}, "Verified": {"all": []}},
            "submit_requirements": [],
            "current_revision": sha,
            "revisions": {
                sha: {
                    "_number": int(patchset),
                    "ref": "refs/changes/%s/%s/%s" % (shard, number, patchset),
                    "commit": {"message": "%s\n\nChange-Id: I%s\n" % (subject, sha)},
                }
            },
        }
        change_files = {name: {} for name in files}
        change.update(SimpleNamespace(zuul_query_ltime=1, format="HTTP", HTTP="HTTP", SSH="SSH",
                                      data=rest, files=change_files, commentable_files=change_files),
                      {}, self.gerrit)
        key = ChangeKey(GERRIT, None, "GerritChange", str(number), str(patchset))
        change.cache_stat = model.CacheStat(key, uuid_for("cache/" + seed), 1, 1, 0.0, 0, 0)
        return change

    def branch(self, project_name, branch, newrev):
        """A Branch as GerritConnection._getBranch makes it for a timer event (oldrev None)."""
        project = self.project(project_name)
        key = ChangeKey(GERRIT, project_name, "Branch", branch, "None..%s" % newrev)
        ref = model.Branch(project)
        ref.branch = branch
        ref.ref = "refs/heads/%s" % branch
        ref.oldrev = key.oldrev
        ref.newrev = key.newrev
        ref.url = self.gerrit._getWebUrl(project, sha=ref.newrev)
        ref.cache_stat = model.CacheStat(key, uuid_for("cache/branch/" + project_name), 1, 1, 0.0, 0, 0)
        return ref

    def tag(self, project_name, tag, oldrev, newrev):
        """A Tag as GerritConnection._getTag makes it for a ref-updated event."""
        project = self.project(project_name)
        key = ChangeKey(GERRIT, project_name, "Tag", tag, "%s..%s" % (oldrev, newrev))
        ref = model.Tag(project)
        ref.tag = tag
        ref.ref = "refs/tags/%s" % tag
        ref.oldrev = key.oldrev
        ref.newrev = key.newrev
        ref.url = self.gerrit._getWebUrl(project, sha=ref.newrev)
        ref.cache_stat = model.CacheStat(key, uuid_for("cache/tag/" + project_name + tag), 1, 1, 0.0, 0, 0)
        return ref

    # ---- queue items ------------------------------------------------------------------------

    def item(self, story, tenant, pipeline, queue_name, changes, trigger_time, enqueue_time):
        """A live QueueItem of `changes` in a ChangeQueue named queue_name, with a fresh BuildSet.
        The uuids derive from `story`, so two scenarios of one story share them."""
        # Stub: PipelineManager needs a scheduler and ZooKeeper; the reporter reads only these.
        manager = SimpleNamespace(tenant=tenant, pipeline=pipeline)
        queue = model.ChangeQueue()
        queue._set(name=queue_name, manager=manager)
        event = model.EventInfo()
        event.zuul_event_id = uuid_for(story + "/event")
        event.timestamp = trigger_time
        event.ref = changes[0].cache_stat.key.reference
        item = model.QueueItem()
        item._set(uuid=uuid_for(story + "/item"), queue=queue, changes=list(changes), event=event,
                  enqueue_time=enqueue_time, live=True, active=True)
        buildset = model.BuildSet()
        buildset._set(item=item, uuid=uuid_for(story + "/buildset"))
        item._set(current_build_set=buildset)
        return item

    @staticmethod
    def configure(item):
        """BuildSet.setConfiguration: the buildset has a zuul ref from now on."""
        item.current_build_set._set(configured=True, configured_time=time.time())

    @staticmethod
    def job(item, story, name, change, voting=True, dependencies=(), success_message=None,
            failure_message=None, other_changes=()):
        """A FrozenJob for `change` (other_changes: the refs it was deduplicated with)."""
        return model.FrozenJob.createInMemory(
            uuid=uuid_for("%s/job/%s/%s" % (story, name, change.cache_stat.key.reference)),
            name=name, voting=voting, ref=change.cache_stat.key.reference,
            other_refs=[c.cache_stat.key.reference for c in other_changes],
            dependencies=[model.JobDependency(d) for d in dependencies],
            success_message=success_message, failure_message=failure_message,
            type="regular", attempts=3)

    @staticmethod
    def freeze_job_graph(item, jobs):
        """Layout.createJobGraph's outcome: a JobGraph with frozen dependencies."""
        buildset = item.current_build_set
        graph = model.JobGraph(buildset.jobs)
        for job in jobs:
            graph.addJob(job)
        graph.freezeDependencies(logging.getLogger("zuul_gen"))
        buildset._set(job_graph=graph)
        return graph

    @staticmethod
    def build(item, story, job, result, start, end, attempt=1, log_url=None, result_data=None,
              events=(), error_detail=None, execute=None):
        """A Build as the executor client creates it and the scheduler completes it."""
        data = dict(result_data or {})
        if log_url is not None:
            data.setdefault("zuul", {})["log_url"] = log_url
        build = model.Build()
        build._set(uuid=uuid_for("%s/build/%s/%s/%d" % (story, job.name, job.ref, attempt)), job=job,
                   build_set=item.current_build_set, result=result,
                   execute_time=execute if execute is not None else (start - 12.25 if start else time.time()),
                   start_time=start, end_time=end, _result_data=data,
                   events=[model.BuildEvent(*e) for e in events], error_detail=error_detail,
                   zuul_event_id=item.event.zuul_event_id)
        return build

    @staticmethod
    def add_build(item, build):
        """BuildSet._addBuild without the ZooKeeper context."""
        buildset = item.current_build_set
        buildset.builds[build.job.uuid] = build
        buildset.tries.setdefault(build.job.uuid, 1)

    @staticmethod
    def add_retry_build(item, build):
        """BuildSet.addRetryBuild without the ZooKeeper context."""
        item.current_build_set.retry_builds.setdefault(build.job.uuid, []).append(build)
        item.current_build_set.tries[build.job.uuid] = item.current_build_set.tries.get(build.job.uuid, 1) + 1

    @staticmethod
    def set_reported_result(item, result):
        """QueueItem.setReportedResult: report_time and the buildset's result."""
        item._set(report_time=time.time())
        item.current_build_set._set(result=result)

    @staticmethod
    def set_unable_to_merge(item, errors):
        """QueueItem.setUnableToMerge(errors): merger errors become warning messages."""
        buildset = item.current_build_set
        buildset._set(unable_to_merge=True)
        buildset.warning_messages.extend(errors)

    def reset_all_builds(self, item, story):
        """QueueItem.resetAllBuilds (what PipelineManager.cancelJobs does to a configured
        item before it is dequeued): a fresh, unconfigured BuildSet, no job graph."""
        buildset = model.BuildSet()
        buildset._set(item=item, uuid=uuid_for(story + "/buildset-after-reset"))
        item._set(current_build_set=buildset, layout_uuid=None)

    @staticmethod
    def config_errors(item, errors):
        """BuildSet.setConfigErrors: a ConfigurationErrorList on the buildset."""
        error_list = model.ConfigurationErrorList()
        error_list._set(errors=list(errors))
        item.current_build_set._set(config_errors=error_list)

    def config_error(self, yaml_text, path, stanza, check):
        """A ConfigurationError as configloader produces it: the YAML is loaded by
        ZuulSafeLoader (marks and source context), `check(conf, accumulator)` raises what a
        parser raises or adds what it adds, and LocalAccumulator.addError writes the message
        with snippet and location."""
        source = model.SourceContext("review.example.com/org/project", "org/project", GERRIT, "master", path)
        data = configloader.safe_load_yaml(yaml_text, source)
        conf = data[0][stanza]
        errors = []
        accumulator = configloader.LocalAccumulator(errors).extend(stanza=stanza, conf=conf)
        with accumulator.catchErrors():
            check(conf, accumulator)
        if not errors:
            raise RuntimeError("the configuration check raised nothing")
        return errors[0], conf

    # ---- reporting --------------------------------------------------------------------------

    def report(self, pipeline, action, item):
        """Runs every reporter of the pipeline's `action` list, as PipelineManager.sendReport
        does, and returns what the MQTT connection published."""
        attribute = configloader.PipelineParser.reporter_actions[action]
        reporters = getattr(pipeline, attribute)
        if not reporters:
            raise RuntimeError("pipeline %s has no %s reporters" % (pipeline.name, action))
        for reporter in reporters:
            reporter.report(item)
        return self.recorder.take()
