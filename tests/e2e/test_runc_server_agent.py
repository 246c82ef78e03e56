"""End-to-end: `kubec server --agent` — the API server with an in-process node agent running this machine
with runc (the way issue 5's must-shows are run), against a real registry (registry_fixture.py).

A Deployment pulling a private image with an imagePullSecret runs real processes (runc list), kubectl
logs reads them through the in-process agent's log API, a rolling update to a second tag replaces the
containers, and deleting the Deployment leaves no runc container behind. The agent finds the registry's
CA in <server data dir>/agent/registry-ca/<host:port>.crt. Needs root, runc, the CNI plugins, the
registry fixture's tools and a free port 10250 (the in-process agent's log API); skips otherwise.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness
import test_runc

try:
    import registry_fixture
except ImportError:  # pragma: no cover
    registry_fixture = None


def port_busy(port):
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


class ServerAgentTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = test_runc.why_unusable()
        if not why and port_busy(10250):
            why = "port 10250 (the in-process agent's log API) is in use"
        if why:
            raise unittest.SkipTest("server --agent e2e: " + why)
        cls.kubectl_bin = harness.kubectl_path("1.33")
        cls.reg = registry_fixture.Registry()
        cls.reg.start()
        cls.reg.push_busybox("v1")
        cls.reg.push_busybox("v2")
        cls.data = tempfile.mkdtemp(prefix="kubec-server-agent-")
        ca = os.path.join(cls.data, "agent", "registry-ca")
        os.makedirs(ca)
        shutil.copy(os.path.join(cls.reg.ca_dir, cls.reg.host + ".crt"), ca)
        cls.server = harness.Server(["--agent"], data_dir=cls.data).start()
        cls.node = socket.gethostname()
        test_runc.wait(lambda: cls.server.request("GET", "/api/v1/nodes/" + cls.node)[0] == 200, 30,
                       what="the in-process agent's node")
        st, _, _ = cls.server.request("POST", "/api/v1/namespaces/default/secrets", cls.reg.secret("regcred"))
        assert st == 201, st

    @classmethod
    def tearDownClass(cls):
        try:
            if getattr(cls, "server", None):
                rc = cls.server.stop()
                assert rc == 0, "server exited %s:\n%s" % (rc, cls.server.read_log()[-3000:])
        finally:
            if getattr(cls, "reg", None):
                cls.reg.close()
            root = os.path.join(getattr(cls, "data", "/nonexistent"), "agent", "runc")
            if os.path.isdir(root):  # the agent leaves containers running at shutdown, as a kubelet restart
                out = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True, text=True).stdout
                for c in out.split():
                    subprocess.run(["runc", "--root", root, "delete", "--force", c], capture_output=True)
            if getattr(cls, "data", None):
                subprocess.run("awk '{print $5}' /proc/self/mountinfo | grep '^%s/' | xargs -r -n1 umount -l"
                               % cls.data, shell=True)
                shutil.rmtree(cls.data, ignore_errors=True)

    def k(self, *args, input=None):
        p = subprocess.run([self.kubectl_bin, "--kubeconfig", self.server.kubeconfig] + list(args), input=input,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, "kubectl %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p.stdout

    def pods(self):
        items = json.loads(self.k("get", "pods", "-l", "app=web", "-o", "json"))["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def running(self, tag, n=2):
        ps = self.pods()
        ok = len(ps) == n and all(p["spec"]["containers"][0]["image"].endswith(":" + tag) and
                                  ((p.get("status") or {}).get("containerStatuses") or [{}])[0].get("ready")
                                  for p in ps)
        return ok and ps

    def runc_ids(self):
        out = subprocess.run(["runc", "--root", os.path.join(self.data, "agent", "runc"), "list", "-q"],
                             capture_output=True, text=True).stdout
        return set(out.split())

    def test_deployment_rollout_logs(self):
        image = "%s/kubec/busybox:%s" % (self.reg.host, "v1")
        d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
             "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                      "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                      "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                          "terminationGracePeriodSeconds": 1, "imagePullSecrets": [{"name": "regcred"}],
                          "containers": [{"name": "main", "image": image,
                                          "command": ["sh", "-c", "echo hello from $(cat /etc/kc-tag); exec sleep 3600"],
                                          "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}}}}
        self.k("apply", "-f", "-", input=json.dumps(d))
        ps = test_runc.wait(lambda: self.running("v1"), 60, what="2 pods Running and Ready on v1")
        ids_v1 = self.runc_ids()
        for p in ps:
            self.assertIn(p["metadata"]["uid"], " ".join(ids_v1))
            self.assertIn("hello from v1", self.k("logs", p["metadata"]["name"]))
        self.k("set", "image", "deployment/web", "main=%s/kubec/busybox:v2" % self.reg.host)
        ps = test_runc.wait(lambda: self.running("v2"), 90, what="rolled to v2")
        self.k("rollout", "status", "deployment/web", "--timeout=60s")
        try:
            test_runc.wait(lambda: not (self.runc_ids() & ids_v1), 30, what="v1 containers gone")
        except AssertionError as e:  # say what is left and what the pods show
            raise AssertionError("%s\nleft: %s\npods: %s\nserver log tail:\n%s" % (
                e, self.runc_ids() & ids_v1, self.k("get", "pods", "-o", "wide"), self.server.read_log()[-3000:]))
        for p in ps:
            self.assertIn("hello from v2", self.k("logs", p["metadata"]["name"]))
        self.k("delete", "deployment", "web")
        # on failure say what is left: this caught a container the agent had lost track of (runc.c,
        # rc_remove_sandbox), with the Deployment and its pods already gone
        try:
            test_runc.wait(lambda: not self.runc_ids(), 30, what="no runc container left")
        except AssertionError as e:
            raise AssertionError("%s\nleft: %s\nobjects: %s\nserver log tail:\n%s" % (
                e, self.runc_ids(), self.k("get", "deployments,replicasets,pods", "-o", "wide"),
                self.server.read_log()[-4000:]))
        test_runc.wait(lambda: not json.loads(self.k("get", "pods", "-o", "json"))["items"], 30,
                       what="pods gone (sandboxes torn down)")
        netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for p in ps:
            self.assertNotIn(p["metadata"]["uid"], netns)


if __name__ == "__main__":
    unittest.main(verbosity=2)
