"""End-to-end: full-chain observability (issue 7).

One `kubec server --metrics-listen` plus a separate `kubec agent --sim-nodes 2 --metrics-listen` process.
After a Deployment became Available:
  - `promtool check metrics` accepts both /metrics pages, and every metric the issue names is there with
    its upstream labels (API server, storage, work queues, scheduler, kubelet, process);
  - histogram counts grow by at least the number of requests made between two reads;
  - `kubectl events --for Deployment/x --watch` and `kubectl get events --field-selector
    involvedObject.kind=Deployment --watch` (kubectl 1.27 and 1.33) receive the ScalingReplicaSet event of
    a new Deployment; `kubectl events --for deployment/x -o json` has lastTimestamp and message;
  - a crash-looping pod's BackOff is ONE Event object whose count grows;
  - the kubec.io/timeline annotation of a Running pod has created <= scheduled <= pulled <= started <= ready
    and the Deployment has "available".
"""
import datetime
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SERVER_METRICS_PORT = harness.free_port()
AGENT_METRICS_PORT = harness.free_port()
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
APISERVER_LABELS = {"verb", "dry_run", "group", "version", "resource", "subresource", "scope", "component"}


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


class Metrics:
    """A parsed Prometheus text page: family types and samples (name, labels, value)."""

    def __init__(self, text):
        self.text = text
        self.types = {}
        self.samples = []
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                self.types[name] = typ
            elif line and not line.startswith("#"):
                m = SAMPLE_RE.match(line)
                if not m:
                    raise AssertionError("unparsable sample line: %r" % line)
                self.samples.append((m.group(1), dict(LABEL_RE.findall(m.group(2) or "")), float(m.group(3))))

    def series(self, name):
        return [(labels, v) for n, labels, v in self.samples if n == name]

    def total(self, name, **match):
        return sum(v for labels, v in self.series(name) if all(labels.get(k) == x for k, x in match.items()))


def parse_ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ" if "." in s else "%Y-%m-%dT%H:%M:%SZ")


class ObservabilityTest(harness.ServerTestCase):
    server_args = ("--metrics-listen", "127.0.0.1:%d" % SERVER_METRICS_PORT)

    @classmethod
    def setUpClass(cls):
        if not shutil.which("promtool"):
            raise unittest.SkipTest("promtool (Debian package prometheus) is not installed")
        super().setUpClass()
        cls.env = dict(os.environ, KUBECONFIG=cls.server.kubeconfig)
        cls.agent_log = open(os.path.join(cls.server.data_dir, "agent.log"), "ab")
        cls.agent = subprocess.Popen([harness.KUBEC, "agent", "--kubeconfig", cls.server.kubeconfig, "--sim-nodes", "2",
                                      "--sim-profile", "realistic", "--node-name-prefix", "obs",
                                      "--metrics-listen", "127.0.0.1:%d" % AGENT_METRICS_PORT],
                                     stdout=cls.agent_log, stderr=subprocess.STDOUT)
        try:
            cls.wait_cls(lambda: cls.agent_healthy(), "agent /healthz")
            cls.kubectl_ok("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
            cls.wait_cls(lambda: cls.deployment_available("web"), "deployment web Available", timeout=60)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "agent", None) and cls.agent.poll() is None:
                cls.agent.terminate()
                try:
                    rc = cls.agent.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    cls.agent.kill()
                    cls.agent.wait()
                    raise AssertionError("kubec agent did not stop within 15 s of SIGTERM")
                if rc != 0:
                    raise AssertionError("kubec agent exited %s on SIGTERM" % rc)
        finally:
            if getattr(cls, "agent_log", None):
                cls.agent_log.close()
            super().tearDownClass()

    # ---------- helpers ----------

    @classmethod
    def wait_cls(cls, fn, what, timeout=30, interval=0.2):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if fn():
                return
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s\nserver log:\n%s" % (what, cls.server.read_log()[-3000:]))

    def wait(self, fn, what, timeout=30, interval=0.2):
        self.wait_cls(fn, what, timeout, interval)

    @classmethod
    def agent_healthy(cls):
        if cls.agent.poll() is not None:
            raise AssertionError("kubec agent exited %s" % cls.agent.returncode)
        try:
            return http_get("http://127.0.0.1:%d/healthz" % AGENT_METRICS_PORT, timeout=1) == (200, "ok")
        except OSError:
            return False

    @classmethod
    def kubectl_ok(cls, *args, version="1.33", timeout=60):
        rc, out, err = harness.run([harness.kubectl_path(version)] + list(args), env=cls.env, timeout=timeout)
        if rc != 0:
            raise AssertionError("kubectl %s failed (%s): %s" % (" ".join(args), rc, err))
        return out

    @classmethod
    def deployment_available(cls, name):
        st, d, _ = cls.server.request("GET", "/apis/apps/v1/namespaces/default/deployments/" + name)
        if st != 200:
            return False
        return any(c.get("type") == "Available" and c.get("status") == "True"
                   for c in d.get("status", {}).get("conditions", []))

    def scrape(self, port):
        st, text = http_get("http://127.0.0.1:%d/metrics" % port)
        self.assertEqual(st, 200)
        return text

    def promtool(self, text, what):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "promtool check metrics on the %s's /metrics:\n%s%s" %
                         (what, p.stdout[-3000:], p.stderr[-3000:]))

    def assert_family(self, m, name, typ, labels=None, values=None):
        """The family is declared with this type; its series carry exactly `labels` (when given), and
        label `values` = (label, {expected values}) all occur."""
        self.assertEqual(m.types.get(name), typ, "%s: missing or wrong TYPE" % name)
        sample = name + "_count" if typ == "histogram" else name
        series = m.series(sample)
        if labels is not None:
            self.assertTrue(series, "%s: no series" % name)
            for lab, _ in series:
                self.assertEqual(set(lab), set(labels), "%s: labels %s" % (name, sorted(lab)))
        if typ == "histogram":
            for lab, count in series:  # the +Inf bucket equals the count
                inf = [v for l2, v in m.series(name + "_bucket") if l2.get("le") == "+Inf" and
                       {k: x for k, x in l2.items() if k != "le"} == lab]
                self.assertEqual(inf, [count], "%s%s: +Inf bucket vs count" % (name, lab))
        if values:
            key, want = values
            got = {lab.get(key) for lab, _ in series}
            self.assertTrue(want <= got, "%s: %s values %s, want at least %s" % (name, key, got, want))

    # ---------- metrics ----------

    def test_server_metrics(self):
        text = self.scrape(SERVER_METRICS_PORT)
        self.promtool(text, "API server")
        m = Metrics(text)
        self.assert_family(m, "apiserver_request_duration_seconds", "histogram", APISERVER_LABELS)
        # buckets 0.005 … 60 as upstream
        les = {l["le"] for l, _ in m.series("apiserver_request_duration_seconds_bucket")}
        self.assertTrue({"0.005", "0.025", "1", "60", "+Inf"} <= les, les)
        self.assertEqual(m.types.get("apiserver_request_total"), "counter")
        for lab, _ in m.series("apiserver_request_total"):
            self.assertTrue({"code", "verb", "group", "version", "resource", "subresource", "scope"} <= set(lab), lab)
        self.assert_family(m, "apiserver_current_inflight_requests", "gauge", {"request_kind"},
                           ("request_kind", {"readOnly", "mutating"}))
        self.assert_family(m, "apiserver_longrunning_requests", "gauge")
        self.assert_family(m, "apiserver_storage_objects", "gauge", {"resource"},
                           ("resource", {"pods", "deployments.apps", "replicasets.apps"}))
        self.assert_family(m, "etcd_request_duration_seconds", "histogram", {"operation", "type"})
        for fam, typ in (("workqueue_depth", "gauge"), ("workqueue_adds_total", "counter"),
                         ("workqueue_queue_duration_seconds", "histogram"),
                         ("workqueue_work_duration_seconds", "histogram")):
            self.assert_family(m, fam, typ, {"name"}, ("name", {"deployment", "replicaset"}))
        self.assert_family(m, "scheduler_pending_pods", "gauge", {"queue"},
                           ("queue", {"active", "backoff", "unschedulable", "gated"}))
        self.assert_family(m, "scheduler_schedule_attempts_total", "counter", {"result", "profile"},
                           ("result", {"scheduled"}))
        self.assert_family(m, "scheduler_scheduling_attempt_duration_seconds", "histogram")
        self.assert_family(m, "scheduler_preemption_attempts_total", "counter")
        self.assert_family(m, "scheduler_plugin_execution_duration_seconds", "histogram")
        for fam, typ in (("process_resident_memory_bytes", "gauge"), ("process_cpu_seconds_total", "counter"),
                         ("process_start_time_seconds", "gauge")):
            self.assert_family(m, fam, typ, set())
        self.assertGreater(m.total("process_resident_memory_bytes"), 0)

    def test_agent_metrics(self):
        text = self.scrape(AGENT_METRICS_PORT)
        self.promtool(text, "agent")
        m = Metrics(text)
        ops = {"run_podsandbox", "pull_image", "create_container", "start_container", "container_status"}
        self.assert_family(m, "kubelet_runtime_operations_duration_seconds", "histogram", {"operation_type"},
                           ("operation_type", ops))
        les = sorted(float(l["le"]) for l, _ in m.series("kubelet_runtime_operations_duration_seconds_bucket")
                     if l["operation_type"] == "pull_image" and l["le"] != "+Inf")
        self.assertEqual(len(les), 14)  # ExponentialBuckets(.005, 2.5, 14)
        for i, le in enumerate(les):  # the exposition prints bounds with 6 significant digits
            self.assertAlmostEqual(le, 0.005 * 2.5 ** i, delta=le * 1e-5)
        self.assert_family(m, "kubelet_runtime_operations_total", "counter", {"operation_type"},
                           ("operation_type", ops))
        self.assert_family(m, "kubelet_runtime_operations_errors_total", "counter", {"operation_type"})
        # 2 pods: one sandbox, one pull (the realistic profile takes 200-800 ms), one start each
        self.assertGreaterEqual(m.total("kubelet_runtime_operations_total", operation_type="run_podsandbox"), 2)
        self.assertGreaterEqual(m.total("kubelet_runtime_operations_duration_seconds_count",
                                        operation_type="pull_image"), 2)
        pull_sum = m.total("kubelet_runtime_operations_duration_seconds_sum", operation_type="pull_image")
        self.assertGreater(pull_sum, 0.15 * 2, "asynchronous pulls are timed from first call to completion")
        self.assert_family(m, "kubelet_image_pull_duration_seconds", "histogram", {"image_size_in_bytes"})
        self.assertGreaterEqual(m.total("kubelet_image_pull_duration_seconds_count"), 2)
        self.assert_family(m, "kubelet_pod_start_sli_duration_seconds", "histogram", {"first_with_network"})
        self.assertGreaterEqual(m.total("kubelet_pod_start_sli_duration_seconds_count"), 2)
        self.assert_family(m, "kubelet_running_pods", "gauge", set())
        self.assertGreaterEqual(m.total("kubelet_running_pods"), 2)
        self.assert_family(m, "kubelet_running_containers", "gauge", {"container_state"})
        self.assertGreaterEqual(m.total("kubelet_running_containers", container_state="running"), 2)
        for fam, typ in (("process_resident_memory_bytes", "gauge"), ("process_cpu_seconds_total", "counter"),
                         ("process_start_time_seconds", "gauge")):
            self.assert_family(m, fam, typ, set())

    def test_histogram_counts_grow(self):
        n = 25
        before = Metrics(self.scrape(SERVER_METRICS_PORT))
        for i in range(n):
            st, _, _ = self.server.request("GET", "/api/v1/namespaces/default")
            self.assertEqual(st, 200)
            st, _, _ = self.server.request("POST", "/api/v1/namespaces/default/configmaps",
                                           {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "grow-%d" % i}, "data": {"k": "v"}})
            self.assertEqual(st, 201)
        after = Metrics(self.scrape(SERVER_METRICS_PORT))
        sel = dict(verb="GET", resource="namespaces", subresource="")
        for name in ("apiserver_request_duration_seconds_count", "apiserver_request_total"):
            self.assertGreaterEqual(after.total(name, **sel) - before.total(name, **sel), n, name)
        sel = dict(verb="POST", resource="configmaps")
        self.assertGreaterEqual(after.total("apiserver_request_duration_seconds_count", **sel) -
                                before.total("apiserver_request_duration_seconds_count", **sel), n)
        self.assertGreaterEqual(after.total("etcd_request_duration_seconds_count", operation="create",
                                            type="configmaps") -
                                before.total("etcd_request_duration_seconds_count", operation="create",
                                             type="configmaps"), n)
        self.assertGreaterEqual(after.total("apiserver_storage_objects", resource="configmaps"), n)

    # ---------- events ----------

    def watch_for(self, cmd, pattern, action, version, timeout=40):
        """Runs a watching kubectl, performs action, returns the first output line matching pattern."""
        p = subprocess.Popen([harness.kubectl_path(version)] + cmd, env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in p.stdout], daemon=True).start()
        seen = []
        try:
            time.sleep(1.5)  # let the list+watch start, so the event arrives through the watch
            action()
            deadline = time.time() + timeout
            while time.time() < deadline:
                try:
                    line = lines.get(timeout=0.5)
                except queue.Empty:
                    if p.poll() is not None:
                        break
                    continue
                seen.append(line)
                if re.search(pattern, line):
                    return line
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
        self.fail("kubectl %s (%s) never printed /%s/; output:\n%s" % (" ".join(cmd), version, pattern,
                                                                       "".join(seen)[-3000:]))

    def test_events_watch(self):
        for version in ("1.27", "1.33"):
            v = version.replace(".", "")
            name = "evw-%s" % v
            with self.subTest(kubectl=version, cmd="events --for"):
                line = self.watch_for(["events", "--for", "Deployment/" + name, "--watch"],
                                      r"ScalingReplicaSet.*Scaled up replica set %s-[a-z0-9]+ (from 0 )?to 1" % name,
                                      lambda: self.kubectl_ok("create", "deployment", name, "--image=nginx:1.25",
                                                              version=version), version)
                self.assertIn("Normal", line)
            name2 = "evg-%s" % v
            with self.subTest(kubectl=version, cmd="get events --field-selector"):
                line = self.watch_for(["get", "events", "--field-selector", "involvedObject.kind=Deployment",
                                       "--watch"], r"deployment/%s\b.*ScalingReplicaSet|ScalingReplicaSet.*%s-" %
                                      (name2, name2),
                                      lambda: self.kubectl_ok("create", "deployment", name2, "--image=nginx:1.25",
                                                              version=version), version)
                self.assertIn("Scaled up replica set %s-" % name2, line)

    def test_events_json(self):
        out = self.kubectl_ok("events", "--for", "deployment/web", "-o", "json")
        items = json.loads(out)["items"]
        self.assertTrue(items, "no events for deployment/web")
        for ev in items:
            self.assertTrue(ev.get("lastTimestamp"), ev)
            self.assertTrue(ev.get("message"), ev)
        self.assertTrue(any(ev["reason"] == "ScalingReplicaSet" and
                            re.match(r"Scaled up replica set web-[a-z0-9]+ (from 0 )?to 2", ev["message"]) for ev in items),
                        [ev["message"] for ev in items])

    def test_crashloop_backoff_is_one_event(self):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "crasher", "annotations": {"sim.kubec.io/fail": "crash"}},
               "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
        st, _, _ = self.server.request("POST", "/api/v1/namespaces/default/pods", pod)
        self.assertEqual(st, 201)

        def backoffs():
            st, lst, _ = self.server.request("GET", "/api/v1/namespaces/default/events?fieldSelector=" +
                                             "involvedObject.name%3Dcrasher")
            self.assertEqual(st, 200)
            return [e for e in lst["items"] if e["reason"] == "BackOff"]

        self.wait(lambda: backoffs(), "a BackOff event of pod crasher", timeout=60)
        first = backoffs()
        self.assertEqual(len(first), 1, first)
        self.wait(lambda: backoffs()[0].get("count", 1) > first[0].get("count", 1), "the BackOff count to grow",
                  timeout=90, interval=0.5)
        later = backoffs()
        self.assertEqual(len(later), 1, "a crash loop must stay ONE BackOff Event: %s" % later)
        self.assertEqual(later[0]["metadata"]["name"], first[0]["metadata"]["name"])
        self.assertGreaterEqual(parse_ts(later[0]["lastTimestamp"]), parse_ts(first[0]["lastTimestamp"]))
        self.assertEqual(later[0]["firstTimestamp"], first[0]["firstTimestamp"])

    # ---------- timeline ----------

    def test_timeline(self):
        st, d, _ = self.server.request("GET", "/apis/apps/v1/namespaces/default/deployments/web")
        self.assertEqual(st, 200)
        dtl = json.loads(d["metadata"]["annotations"]["kubec.io/timeline"])
        self.assertIn("created", dtl)
        self.assertIn("available", dtl, dtl)
        st, pods, _ = self.server.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        self.assertEqual(st, 200)
        running = [p for p in pods["items"] if p["status"].get("phase") == "Running"]
        self.assertEqual(len(running), 2)
        stages = ["created", "scheduled", "pulled", "started", "ready"]
        for p in running:
            tl = json.loads(p["metadata"]["annotations"]["kubec.io/timeline"])
            for s in stages:
                self.assertIn(s, tl, "%s: %s" % (p["metadata"]["name"], tl))
                self.assertRegex(tl[s], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
            times = [parse_ts(tl[s]) for s in stages]
            self.assertEqual(times, sorted(times), "%s: stages out of order: %s" % (p["metadata"]["name"], tl))
            # the Deployment (2 replicas, maxUnavailable 0) is Available only once both pods are Ready
            self.assertLessEqual(parse_ts(dtl["created"]), times[0])
            self.assertLessEqual(times[-1], parse_ts(dtl["available"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
