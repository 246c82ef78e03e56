"""End-to-end: the node agent with simulated nodes (`kubec agent --sim-nodes N`) against a real
`kubec server`, over HTTP with the server's kubeconfig, checked with raw API calls and kubectl 1.33.

Covers: Node registration (Ready, zones, capacity, labels), Lease renewal, a pod bound to a sim node
going Running/Ready with a pod IP and upstream's event wording, deletion, the image-pull-fail preset
(ErrImagePull -> ImagePullBackOff with growing back-off), the crashloop preset (CrashLoopBackOff with a
growing restartCount), clean SIGTERM of the agent, and — when the server runs the node lifecycle
controller — a stopped agent's nodes going Unknown with the unreachable taints.

KUBEC_AGENT_CMD (optional, space separated) replaces `kubec agent` (e.g. a development driver);
KUBEC_E2E_NLC_CMD (optional) starts an external node lifecycle controller with the kubeconfig appended.
"""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import harness

VERSION = os.environ.get("KUBECTL_VERSION", "1.33")
GRACE = 4  # node monitor grace period given to the lifecycle controller (seconds)


def agent_cmd():
    env = os.environ.get("KUBEC_AGENT_CMD")
    return env.split() if env else [harness.KUBEC, "agent"]


def agent_available():
    try:
        p = subprocess.run(agent_cmd() + ["--help"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return p.returncode == 0 and "--sim-nodes" in p.stdout


class Agent:
    def __init__(self, server, nodes, profile="fast", prefix="sim", extra=()):
        self.log_path = os.path.join(server.data_dir, "agent-%s.log" % prefix)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(agent_cmd() + ["--kubeconfig", server.kubeconfig, "--sim-nodes", str(nodes),
                                                    "--sim-profile", profile, "--node-name-prefix", prefix,
                                                    "--node-lease-renew-interval", "1"] + list(extra),
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("kubec agent did not stop within 15 s of SIGTERM")
        self.log.close()
        return rc


class SimAgentTest(harness.KubectlMixin, unittest.TestCase):
    server_env = {}

    @classmethod
    def setUpClass(cls):
        if not agent_available():
            raise unittest.SkipTest("`kubec agent` is not available in this build")
        old = dict(os.environ)
        os.environ.update(cls.server_env)
        try:
            cls.server = harness.Server().start()
        finally:
            os.environ.clear()
            os.environ.update(old)
        cls.kubectl_bin = harness.kubectl_path(VERSION)
        cls.cache = tempfile.mkdtemp(prefix="kubec-sim-cache-")
        cls.agents = []
        cls.nlc = None
        nlc = os.environ.get("KUBEC_E2E_NLC_CMD")
        if nlc:
            env = dict(os.environ, KUBEC_NODE_MONITOR_GRACE_PERIOD=str(GRACE))
            cls.nlc = subprocess.Popen(nlc.split() + [cls.server.kubeconfig], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)

    @classmethod
    def tearDownClass(cls):
        try:
            for a in cls.agents:
                a.stop()
            if cls.nlc:
                cls.nlc.send_signal(signal.SIGTERM)
                cls.nlc.wait(timeout=15)
            rc = cls.server.stop()
            if rc != 0:
                raise AssertionError("kubec server exited %s on SIGTERM" % rc)
        finally:
            cls.server.cleanup()

    # ---- helpers ----

    def start_agent(self, nodes, profile="fast", prefix="sim", extra=()):
        a = Agent(self.server, nodes, profile, prefix, extra)
        self.agents.append(a)
        self.wait(lambda: all(self.node_ready(self.node("%s-%d" % (prefix, i))) for i in range(nodes)),
                  "nodes %s-* Ready" % prefix, agent=a)
        return a

    def api(self, method, path, body=None, want=None):
        status, obj, _ = self.server.request(method, path, body=body)
        if want is not None:
            self.assertEqual(status, want, "%s %s -> %s %s" % (method, path, status, obj))
        return status, obj

    def node(self, name):
        status, obj = self.api("GET", "/api/v1/nodes/" + name)
        return obj if status == 200 else None

    @staticmethod
    def cond(obj, typ):
        for c in ((obj or {}).get("status") or {}).get("conditions") or []:
            if c.get("type") == typ:
                return c
        return {}

    def node_ready(self, node):
        return self.cond(node, "Ready").get("status") == "True"

    def pod(self, name, ns="default"):
        status, obj = self.api("GET", "/api/v1/namespaces/%s/pods/%s" % (ns, name))
        return obj if status == 200 else None

    def wait(self, fn, what, timeout=30, agent=None, interval=0.2):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(interval)
        self.fail("timed out waiting for %s%s" % (what, ("\nagent log:\n" + agent.read_log()[-3000:]) if agent else ""))

    def make_pod(self, name, image, node=None, annotations=None, scheduler="kubec-e2e-none"):
        """A pod no scheduler picks up (unknown schedulerName); bound with pods/binding, or created on node."""
        spec = {"schedulerName": scheduler, "terminationGracePeriodSeconds": 5,
                "containers": [{"name": "web", "image": image}]}
        if node:
            spec["nodeName"] = node
        md = {"name": name}
        if annotations:
            md["annotations"] = annotations
        self.api("POST", "/api/v1/namespaces/default/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": md,
                                                            "spec": spec}, want=201)

    def bind(self, name, node):
        self.api("POST", "/api/v1/namespaces/default/pods/%s/binding" % name,
                 {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                  "target": {"apiVersion": "v1", "kind": "Node", "name": node}}, want=201)

    def events_for(self, pod):
        _, obj = self.api("GET", "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3D" + pod,
                          want=200)
        return obj.get("items") or []

    @staticmethod
    def waiting_reason(pod):
        cs = ((pod or {}).get("status") or {}).get("containerStatuses") or [{}]
        return ((cs[0].get("state") or {}).get("waiting") or {}).get("reason")

    # ---- tests ----

    def test_nodes_pod_lifecycle_and_lease(self):
        a = self.start_agent(3, "fast", "f")
        zones = set()
        for i in range(3):
            n = self.node("f-%d" % i)
            labels = n["metadata"]["labels"]
            self.assertEqual(labels["kubernetes.io/hostname"], "f-%d" % i)
            self.assertEqual(labels["kubernetes.io/os"], "linux")
            self.assertEqual(labels["kubernetes.io/arch"], "amd64")
            zones.add(labels["topology.kubernetes.io/zone"])
            cap = n["status"]["capacity"]
            self.assertEqual((cap["cpu"], cap["memory"], cap["pods"]), ("4", "16Gi", "110"))
            self.assertIn("ephemeral-storage", n["status"]["allocatable"])
            for t in ("MemoryPressure", "DiskPressure", "PIDPressure"):
                self.assertEqual(self.cond(n, t).get("status"), "False", t)
            self.assertEqual(self.cond(n, "Ready").get("reason"), "KubeletReady")
            self.assertEqual(n["status"]["nodeInfo"]["operatingSystem"], "linux")
        self.assertEqual(zones, {"zone-a", "zone-b", "zone-c"})
        out = self.k("get", "nodes").stdout
        self.assertRegex(out, r"f-1\s+Ready")

        # Lease: exists in kube-node-lease and its renewTime advances
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/f-0"
        _, l1 = self.api("GET", path, want=200)
        self.assertEqual(l1["spec"]["holderIdentity"], "f-0")
        self.wait(lambda: self.api("GET", path)[1]["spec"]["renewTime"] != l1["spec"]["renewTime"],
                  "lease renewTime to advance", timeout=10)

        # a pod bound with pods/binding goes Running and Ready
        self.make_pod("web", "nginx:1.25")
        self.bind("web", "f-1")
        p = self.wait(lambda: (lambda p: p if p and p["status"].get("phase") == "Running" and
                               self.cond(p, "Ready").get("status") == "True" else None)(self.pod("web")),
                      "pod web Running and Ready", agent=a)
        st = p["status"]
        self.assertTrue(st["podIP"].startswith("10.42.1."), st["podIP"])
        self.assertEqual(st["hostIP"], self.node("f-1")["status"]["addresses"][0]["address"])
        self.assertIn("startTime", st)
        cs = st["containerStatuses"][0]
        self.assertTrue(cs["ready"] and cs["started"])
        self.assertEqual(cs["restartCount"], 0)
        self.assertIn("running", cs["state"])
        self.assertTrue(cs["containerID"] and cs["imageID"])
        for t in ("Initialized", "ContainersReady", "PodScheduled"):
            self.assertEqual(self.cond(p, t).get("status"), "True", t)
        self.assertRegex(self.k("get", "pods", "web").stdout, r"web\s+1/1\s+Running\s+0")
        evs = self.wait(lambda: (lambda e: e if {"Pulling", "Pulled", "Created", "Started"} <= {x["reason"] for x in e}
                                 else None)(self.events_for("web")), "kubelet events", agent=a)
        msgs = {e["reason"]: e["message"] for e in evs}
        self.assertEqual(msgs["Pulling"], 'Pulling image "nginx:1.25"')
        self.assertRegex(msgs["Pulled"], r'^Successfully pulled image "nginx:1\.25" in \S+ \(\S+ including waiting\)\. '
                                         r'Image size: \d+ bytes\.$')
        self.assertEqual(msgs["Created"], "Created container: web")
        self.assertEqual(msgs["Started"], "Started container web")
        self.assertEqual({e["source"]["component"] for e in evs}, {"kubelet"})

        # a pod created with spec.nodeName (no binding) runs too; its IP differs
        self.make_pod("web2", "nginx:1.25", node="f-1")
        p2 = self.wait(lambda: (lambda p: p if p and p["status"].get("podIP") and
                                p["status"].get("phase") == "Running" else None)(self.pod("web2")), "web2 Running")
        self.assertNotEqual(p2["status"]["podIP"], st["podIP"])

        # status is written only when it changes: resourceVersion stays put while nothing happens
        rv = self.pod("web")["metadata"]["resourceVersion"]
        time.sleep(2)
        self.assertEqual(self.pod("web")["metadata"]["resourceVersion"], rv)

        # deletion: the pod object goes away (after the agent has stopped its containers)
        self.k("delete", "pod", "web", "web2", "--wait=false")
        self.wait(lambda: self.pod("web") is None and self.pod("web2") is None, "pods deleted", timeout=20, agent=a)

        self.assertEqual(a.stop(), 0, a.read_log()[-2000:])

    def test_node_template_and_realistic_profile(self):
        tmpl = os.path.join(self.server.data_dir, "node-template.yaml")
        with open(tmpl, "w") as f:
            f.write("capacity:\n  cpu: 8\n  memory: 32Gi\nlabels:\n  node-role.kubernetes.io/worker: \"\"\n"
                    "taints:\n- key: dedicated\n  value: gpu\n  effect: NoSchedule\n")
        a = self.start_agent(2, "realistic", "tp", extra=["--sim-node-template", tmpl])
        n = self.node("tp-1")
        self.assertEqual((n["status"]["capacity"]["cpu"], n["status"]["capacity"]["memory"]), ("8", "32Gi"))
        self.assertEqual(n["status"]["allocatable"]["cpu"], "8")
        self.assertEqual(n["status"]["capacity"]["pods"], "110")
        self.assertIn("node-role.kubernetes.io/worker", n["metadata"]["labels"])
        self.assertEqual(n["metadata"]["labels"]["topology.kubernetes.io/zone"], "zone-b")
        self.assertEqual(n["spec"]["taints"], [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
        self.assertRegex(self.k("get", "nodes", "tp-0").stdout, r"tp-0\s+Ready\s+worker")
        # realistic: a pull of 200-800 ms shows up in the Pulled event; the start-delay annotation holds the pod
        self.make_pod("slow", "nginx:1.27", node="tp-0", annotations={"sim.kubec.io/start-delay": "3s"})
        self.wait(lambda: self.waiting_reason(self.pod("slow")) == "ContainerCreating", "ContainerCreating")
        t0 = time.time()
        self.wait(lambda: (self.pod("slow") or {}).get("status", {}).get("phase") == "Running", "slow Running",
                  timeout=15)
        self.assertGreater(time.time() - t0, 1.5)
        pulled = [e["message"] for e in self.events_for("slow") if e["reason"] == "Pulled"]
        self.assertEqual(len(pulled), 1)
        m = re.search(r" in (\d+)ms |in ([\d.]+)s ", pulled[0])
        took = int(m.group(1)) if m and m.group(1) else float(m.group(2)) * 1000 if m else -1
        self.assertTrue(150 <= took <= 3000, pulled)
        self.api("DELETE", "/api/v1/namespaces/default/pods/slow", want=200)
        self.assertEqual(a.stop(), 0)

    def test_image_pull_backoff(self):
        a = self.start_agent(1, "image-pull-fail", "ipf")
        self.make_pod("ipf", "registry.example/none:1", node="ipf-0")
        seen = []  # (time, reason) on each change of the waiting reason
        t0 = time.time()
        while time.time() - t0 < 45:
            r = self.waiting_reason(self.pod("ipf"))
            if not seen or seen[-1][1] != r:
                seen.append((time.time(), r))
            if [x[1] for x in seen].count("ErrImagePull") >= 3:
                break
            time.sleep(0.1)
        reasons = [x[1] for x in seen if x[1]]
        self.assertIn("ErrImagePull", reasons, seen)
        self.assertIn("ImagePullBackOff", reasons, seen)
        pulls = [t for t, r in seen if r == "ErrImagePull"]
        self.assertGreaterEqual(len(pulls), 3, "three failed pulls within 45 s: %s" % seen)
        gap1, gap2 = pulls[1] - pulls[0], pulls[2] - pulls[1]
        self.assertAlmostEqual(gap1, 10, delta=2.5)   # 10 s back-off, then 20 s
        self.assertAlmostEqual(gap2, 20, delta=2.5)
        p = self.pod("ipf")
        self.assertEqual(p["status"]["phase"], "Pending")
        self.assertEqual(self.cond(p, "Ready").get("status"), "False")
        self.wait(lambda: "ImagePullBackOff" in self.k("get", "pods", "ipf").stdout, "kubectl shows ImagePullBackOff",
                  timeout=25)
        evs = self.events_for("ipf")
        msgs = [(e["reason"], e["message"]) for e in evs]
        self.assertIn(("BackOff", 'Back-off pulling image "registry.example/none:1"'), msgs)
        self.assertIn(("Failed", "Error: ErrImagePull"), msgs)
        self.assertTrue(any(r == "Failed" and m.startswith('Failed to pull image "registry.example/none:1": ')
                            for r, m in msgs), msgs)
        pulling = [e for e in evs if e["reason"] == "Pulling"]
        self.assertGreaterEqual(sum(e.get("count", 1) for e in pulling), 3)
        self.api("DELETE", "/api/v1/namespaces/default/pods/ipf", want=200)
        self.assertEqual(a.stop(), 0)

    def test_crashloop(self):
        a = self.start_agent(1, "crashloop", "cl")
        self.make_pod("cl", "busybox:1.36", node="cl-0")
        p = self.wait(lambda: (lambda p: p if p and (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 2
                               else None)(self.pod("cl")), "restartCount >= 2", timeout=30, agent=a)
        cs = p["status"]["containerStatuses"][0]
        last = cs["lastState"]["terminated"]
        self.assertEqual(last["exitCode"], 1)
        self.assertEqual(last["reason"], "Error")
        self.wait(lambda: self.waiting_reason(self.pod("cl")) == "CrashLoopBackOff", "CrashLoopBackOff", timeout=10)
        p = self.pod("cl")
        self.assertEqual(p["status"]["phase"], "Running")
        w = p["status"]["containerStatuses"][0]["state"]["waiting"]
        self.assertRegex(w["message"], r"^back-off (10|20)s restarting failed container=web pod=cl_default\(")
        self.assertRegex(self.k("get", "pods", "cl").stdout, r"cl\s+0/1\s+CrashLoopBackOff\s+[2-9]")
        uid = p["metadata"]["uid"]
        msgs = [(e["reason"], e["message"]) for e in self.events_for("cl")]
        self.assertIn(("BackOff", "Back-off restarting failed container web in pod cl_default(%s)" % uid), msgs)
        self.api("DELETE", "/api/v1/namespaces/default/pods/cl", want=200)
        self.assertEqual(a.stop(), 0)


def server_runs_lifecycle():
    if os.environ.get("KUBEC_E2E_NLC_CMD"):
        return True
    p = subprocess.run([harness.KUBEC, "server", "--help"], capture_output=True, text=True, timeout=10)
    return "--sim-nodes" in p.stdout + p.stderr


class NodeLifecycleTest(SimAgentTest):
    """A stopped agent's nodes go Unknown with the unreachable taints; a restarted one clears them."""
    server_env = {"KUBEC_NODE_MONITOR_GRACE_PERIOD": str(GRACE)}

    @classmethod
    def setUpClass(cls):
        if not server_runs_lifecycle():
            raise unittest.SkipTest("the node lifecycle controller is not wired into `kubec server` yet")
        super().setUpClass()

    def test_nodes_go_unknown_then_recover(self):
        a = self.start_agent(2, "fast", "lc")
        # one pod tolerates unreachable nodes for 1 s only, one has no toleration (300 s by default)
        self.api("POST", "/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "short"},
            "spec": {"nodeName": "lc-0", "containers": [{"name": "web", "image": "nginx:1.25"}],
                     "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                      "effect": "NoExecute", "tolerationSeconds": 1}]}}, want=201)
        self.make_pod("long", "nginx:1.25", node="lc-0")
        self.wait(lambda: all((self.pod(n) or {}).get("status", {}).get("phase") == "Running" for n in ("short", "long")),
                  "pods Running", agent=a)
        self.assertEqual(a.stop(), 0)
        self.agents.remove(a)

        def unknown():
            n = self.node("lc-0")
            taints = {(t["key"], t["effect"]) for t in n["spec"].get("taints") or []}
            return self.cond(n, "Ready").get("status") == "Unknown" and \
                ("node.kubernetes.io/unreachable", "NoExecute") in taints and \
                ("node.kubernetes.io/unreachable", "NoSchedule") in taints
        self.wait(unknown, "node lc-0 Unknown with unreachable taints", timeout=GRACE + 20)
        self.assertEqual(self.cond(self.node("lc-0"), "Ready").get("reason"), "NodeStatusUnknown")
        self.assertRegex(self.k("get", "nodes", "lc-1").stdout, r"lc-1\s+NotReady")
        self.wait(lambda: (self.pod("short") or {}).get("metadata", {}).get("deletionTimestamp") or
                  self.pod("short") is None, "pod with tolerationSeconds 1 evicted", timeout=15)
        long = self.pod("long")
        self.assertIsNotNone(long)
        self.assertNotIn("deletionTimestamp", long["metadata"])
        evs = [e["message"] for e in self.events_for("short") if e["reason"] == "TaintManagerEviction"]
        self.assertEqual(evs, ["Marking for deletion Pod default/short"])
        self.start_agent(2, "fast", "lc")
        self.wait(lambda: not (self.node("lc-0")["spec"].get("taints")), "taints removed", timeout=GRACE + 20)

    # the inherited tests run once, in SimAgentTest
    test_nodes_pod_lifecycle_and_lease = None
    test_image_pull_backoff = None
    test_crashloop = None
    test_node_template_and_realistic_profile = None


if __name__ == "__main__":
    unittest.main(verbosity=2)
