"""End-to-end: unmodified kubectl (version from $KUBECTL_VERSION, e.g. 1.27) against a real kubec server.

Every step checks kubectl's exit code and what it printed, as a user would read it.
"""
import json
import os
import subprocess
import tempfile
import time
import unittest

import harness

VERSION = os.environ.get("KUBECTL_VERSION", "1.33")
MINOR = int(VERSION.split(".")[1])

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: my-app
  labels: {app: my-app}
spec:
  replicas: 3
  selector:
    matchLabels: {app: my-app}
  template:
    metadata:
      labels: {app: my-app}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
"""


class KubectlTest(harness.KubectlMixin, harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kubectl_bin = harness.kubectl_path(VERSION)
        cls.cache = tempfile.mkdtemp(prefix="kubec-kubectl-cache-")
        cls.tmp = tempfile.mkdtemp(prefix="kubec-kubectl-files-")

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def ns(self, name):
        p = self.k("create", "namespace", name)
        self.assertIn("namespace/%s created" % name, p.stdout)
        return name

    def test_apply_twice_get_describe(self):
        ns = self.ns("apply")
        f1 = self.write("d1.yaml", DEPLOY)
        self.assertIn("deployment.apps/my-app created", self.k("apply", "-n", ns, "-f", f1).stdout)
        self.assertIn("deployment.apps/my-app unchanged", self.k("apply", "-n", ns, "-f", f1).stdout)
        f2 = self.write("d2.yaml", DEPLOY.replace("nginx:1.25", "nginx:1.27").replace("replicas: 3", "replicas: 4"))
        self.assertIn("deployment.apps/my-app configured", self.k("apply", "-n", ns, "-f", f2).stdout)
        out = self.k("get", "-n", ns, "deploy", "my-app", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation}").stdout
        self.assertEqual(out, "4 nginx:1.27 2")
        # the port list survived the strategic merge (merge key containerPort)
        ports = self.k("get", "-n", ns, "deploy", "my-app", "-o", "jsonpath={.spec.template.spec.containers[0].ports[*].containerPort}").stdout
        self.assertEqual(ports, "80")
        table = self.k("get", "-n", ns, "deployments").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"])
        self.assertTrue(table[1].startswith("my-app"), table)
        self.assertIn("0/4", table[1])
        wide = self.k("get", "-n", ns, "deployments", "-o", "wide").stdout.splitlines()
        self.assertEqual(wide[0].split()[5:], ["CONTAINERS", "IMAGES", "SELECTOR"])
        self.assertEqual(wide[1].split()[5:], ["web", "nginx:1.27", "app=my-app"])
        y = self.k("get", "-n", ns, "deploy", "my-app", "-o", "yaml").stdout
        self.assertIn("kind: Deployment", y)
        self.assertIn("revisionHistoryLimit: 10", y)  # defaulted by the server
        self.assertIn("progressDeadlineSeconds: 600", y)
        self.assertIn("maxSurge: 25%", y)
        d = self.k("describe", "-n", ns, "deployment", "my-app").stdout
        self.assertRegex(d, r"Name:\s+my-app")
        self.assertRegex(d, r"Replicas:\s+4 desired")
        self.assertRegex(d, r"Image:\s+nginx:1.27")
        allns = self.k("get", "deploy", "-A").stdout
        self.assertIn(ns, allns)

    def test_get_watch_sees_change(self):
        ns = self.ns("watch")
        self.k("apply", "-n", ns, "-f", self.write("w.yaml", DEPLOY))
        cmd = [self.kubectl_bin, "--kubeconfig", self.server.kubeconfig, "--cache-dir", self.cache,
               "get", "-n", ns, "deploy", "-w", "--request-timeout=0"]
        w = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            self.k("scale", "-n", ns, "deploy/my-app", "--replicas=6")
            deadline = time.time() + 15
            lines = []
            while time.time() < deadline:
                line = w.stdout.readline()
                lines.append(line)
                if "0/6" in line:
                    break
            self.assertTrue(any("0/6" in l for l in lines), lines)
        finally:
            w.kill()
            w.wait()

    def test_scale_label_annotate_patch(self):
        ns = self.ns("verbs")
        self.k("apply", "-n", ns, "-f", self.write("v.yaml", DEPLOY))
        self.assertIn("scaled", self.k("scale", "-n", ns, "deployment/my-app", "--replicas=5").stdout)
        self.assertIn("scaled", self.k("scale", "-n", ns, "deployment/my-app", "--current-replicas=5", "--replicas=2").stdout)
        self.assertIn("labeled", self.k("label", "-n", ns, "deploy", "my-app", "tier=web").stdout)
        self.assertIn("deployment.apps/my-app annotate", self.k("annotate", "-n", ns, "deploy", "my-app", "owner=team-a").stdout)
        self.k("patch", "-n", ns, "deploy", "my-app", "--type=json", "-p", '[{"op":"replace","path":"/spec/replicas","value":7}]')
        self.k("patch", "-n", ns, "deploy", "my-app", "--type=merge", "-p", '{"spec":{"minReadySeconds":3}}')
        self.k("patch", "-n", ns, "deploy", "my-app", "--type=strategic", "-p",
               '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}')
        out = self.k("get", "-n", ns, "deploy", "my-app", "-o",
                     "jsonpath={.spec.replicas} {.spec.minReadySeconds} {.metadata.labels.tier} "
                     "{.metadata.annotations.owner} {.spec.template.spec.containers[0].image} "
                     "{.spec.template.spec.containers[0].ports[0].containerPort}").stdout
        self.assertEqual(out, "7 3 web team-a nginx:1.28 80")
        # every writer's managedFields entry survives the others' writes (a Deployment's current version is
        # read from the tree the cache shares with the controllers, its managedFields from the stored bytes)
        mf = json.loads(self.k("get", "-n", ns, "deploy", "my-app", "-o", "json", "--show-managed-fields").stdout)
        entries = {e["manager"]: e for e in mf["metadata"]["managedFields"]}
        for m in ("kubectl-client-side-apply", "kubectl-label", "kubectl-annotate", "kubectl-patch"):
            self.assertIn(m, entries, sorted(entries))
        self.assertIn("f:tier", entries["kubectl-label"]["fieldsV1"]["f:metadata"]["f:labels"])
        self.assertIn("f:owner", entries["kubectl-annotate"]["fieldsV1"]["f:metadata"]["f:annotations"])
        self.assertIn("f:minReadySeconds", entries["kubectl-patch"]["fieldsV1"]["f:spec"])
        self.assertTrue(any(e.get("subresource") == "status" or "f:status" in e.get("fieldsV1", {})
                            for e in entries.values()), sorted(entries))
        # selectors
        names = self.k("get", "-n", ns, "deploy", "-l", "tier=web", "-o", "name").stdout.split()
        self.assertEqual(names, ["deployment.apps/my-app"])
        self.assertEqual(self.k("get", "-n", ns, "deploy", "-l", "tier notin (web)", "-o", "name").stdout.strip(), "")
        # a failing JSON-patch test op is refused and changes nothing
        p = self.k("patch", "-n", ns, "deploy", "my-app", "--type=json", "-p",
                   '[{"op":"test","path":"/spec/replicas","value":99},{"op":"replace","path":"/spec/replicas","value":1}]', ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(self.k("get", "-n", ns, "deploy", "my-app", "-o", "jsonpath={.spec.replicas}").stdout, "7")

    def test_server_side_apply(self):
        ns = self.ns("ssa")
        f = self.write("s.yaml", DEPLOY)
        self.assertIn("serverside-applied", self.k("apply", "--server-side", "-n", ns, "-f", f).stdout)
        f2 = self.write("s2.yaml", DEPLOY.replace("replicas: 3", "replicas: 2"))
        self.assertIn("serverside-applied", self.k("apply", "--server-side", "-n", ns, "-f", f2).stdout)
        self.assertEqual(self.k("get", "-n", ns, "deploy", "my-app", "-o", "jsonpath={.spec.replicas}").stdout, "2")
        mf = json.loads(self.k("get", "-n", ns, "deploy", "my-app", "-o", "json", "--show-managed-fields").stdout)
        managers = [e["manager"] for e in mf["metadata"]["managedFields"]]
        self.assertIn("kubectl", managers)
        # an object first created with client-side apply migrates to server-side apply
        ns2 = self.ns("ssa-migrate")
        self.k("apply", "-n", ns2, "-f", f)
        self.assertIn("serverside-applied", self.k("apply", "--server-side", "-n", ns2, "-f", f2).stdout)
        self.assertEqual(self.k("get", "-n", ns2, "deploy", "my-app", "-o", "jsonpath={.spec.replicas}").stdout, "2")

    def test_create_generators(self):
        ns = self.ns("gen")  # create namespace: protobuf body from 1.32+
        self.assertIn("deployment.apps/web created",
                      self.k("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=2", "--port=80").stdout)
        self.assertIn("configmap/cfg created", self.k("create", "configmap", "cfg", "-n", ns, "--from-literal=a=b").stdout)
        self.assertIn("secret/sec created", self.k("create", "secret", "generic", "sec", "-n", ns, "--from-literal=k=v").stdout)
        self.assertIn("serviceaccount/robot created", self.k("create", "serviceaccount", "robot", "-n", ns).stdout)
        pcname = "prio-%d" % MINOR
        self.assertIn("priorityclass.scheduling.k8s.io/%s created" % pcname,
                      self.k("create", "priorityclass", pcname, "--value=1000", "--description=test").stdout)
        out = self.k("get", "-n", ns, "deploy", "web", "-o",
                     "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}").stdout
        self.assertEqual(out, "2 nginx:1.25 80")
        self.assertEqual(self.k("get", "-n", ns, "cm", "cfg", "-o", "jsonpath={.data.a}").stdout, "b")
        self.assertEqual(self.k("get", "-n", ns, "secret", "sec", "-o", "jsonpath={.data.k}").stdout, "dg==")
        self.assertEqual(self.k("get", "pc", pcname, "-o", "jsonpath={.value}").stdout, "1000")
        pcs = self.k("get", "pc").stdout.splitlines()
        self.assertEqual(pcs[0].split(), ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"])
        # as upstream's serviceaccounts controller: a new namespace gets its "default" ServiceAccount
        for _ in range(50):
            if self.k("get", "-n", ns, "serviceaccount", "default", ok=False).returncode == 0:
                break
            time.sleep(0.1)
        self.assertEqual(self.k("get", "-n", ns, "sa", "default", "-o", "jsonpath={.metadata.name}").stdout, "default")
        p = self.k("create", "deployment", "web", "-n", ns, "--image=nginx", ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('deployments.apps "web" already exists', p.stderr)

    def test_wait_condition_and_delete(self):
        ns = self.ns("wait")
        self.k("apply", "-n", ns, "-f", self.write("wt.yaml", DEPLOY))
        # the deployment controller reports Progressing once it has created the ReplicaSet
        p = self.k("wait", "-n", ns, "--for=condition=Progressing", "deployment/my-app", "--timeout=30s")
        self.assertIn("deployment.apps/my-app condition met", p.stdout)
        # a condition written through the status subresource, as a kubelet does
        self.k("run", "-n", ns, "solo", "--image=nginx:1.25")
        status = {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        code, body, _ = self.server.request("PATCH", "/api/v1/namespaces/%s/pods/solo/status" % ns,
                                            json.dumps(status),
                                            headers={"Content-Type": "application/strategic-merge-patch+json"})
        self.assertEqual(code, 200, body)
        p = self.k("wait", "-n", ns, "--for=condition=Ready", "pod/solo", "--timeout=20s")
        self.assertIn("pod/solo condition met", p.stdout)
        self.assertIn('deployment.apps "my-app" deleted', self.k("delete", "-n", ns, "deployment", "my-app").stdout)
        p = self.k("get", "-n", ns, "deployment", "my-app", ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn('deployments.apps "my-app" not found', p.stderr)

    def test_discovery_explain_raw(self):
        ar = self.k("api-resources").stdout
        for line in ("deployments", "replicasets", "priorityclasses", "leases"):
            self.assertIn(line, ar)
        self.assertRegex(ar, r"deployments\s+deploy\s+apps/v1\s+true\s+Deployment")
        v = json.loads(self.k("get", "--raw", "/version").stdout)
        self.assertEqual(v["major"], "1")
        self.assertTrue(v["gitVersion"].startswith("v1."))
        ex = self.k("explain", "deployment.spec.strategy").stdout
        self.assertIn("rollingUpdate", ex)
        self.assertIn("type", ex)
        nss = self.k("get", "ns").stdout
        for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.assertIn(n, nss)

    def test_namespace_delete_removes_contents(self):
        ns = self.ns("gone")
        self.k("create", "configmap", "x", "-n", ns, "--from-literal=a=b")
        self.k("delete", "namespace", ns, "--timeout=30s")
        p = self.k("get", "namespace", ns, ok=False)
        self.assertIn('namespaces "%s" not found' % ns, p.stderr)
        p = self.k("create", "configmap", "y", "-n", ns, "--from-literal=a=b", ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('namespaces "%s" not found' % ns, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
