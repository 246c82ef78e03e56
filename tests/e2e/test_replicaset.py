"""End-to-end: the ReplicaSet controller and the garbage collector inside a real `kubec server`,
driven by unmodified kubectl 1.33 and raw API calls. No kubelet runs: the test plays it by
patching pod status (phase Running, condition Ready True) through the /status subresource.
"""
import json
import os
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness

VERSION = os.environ.get("KUBECTL_VERSION", "1.33")
TIMEOUT = 30


def rs_yaml(name, replicas, labels=None, extra_spec="", template_extra=""):
    labels = labels or {"app": name}
    lab = ", ".join("%s: %s" % kv for kv in labels.items())
    return """apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: %s
  labels: {%s}
spec:
  replicas: %d
%s  selector:
    matchLabels: {%s}
  template:
    metadata:
      labels: {%s}
    spec:
%s      containers:
      - name: web
        image: nginx:1.25
""" % (name, lab, replicas, extra_spec, lab, lab, template_extra)


class ReplicaSetTest(harness.KubectlMixin, harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kubectl_bin = harness.kubectl_path(VERSION)
        cls.cache = tempfile.mkdtemp(prefix="kubec-rs-cache-")
        cls.tmp = tempfile.mkdtemp(prefix="kubec-rs-files-")

    # ---- helpers ----

    def api(self, method, path, body=None, ctype=None, want=None):
        headers = {"Content-Type": ctype} if ctype else None
        status, obj, _ = self.server.request(method, path, body=body, headers=headers)
        if want is not None:
            self.assertEqual(status, want, "%s %s: %s" % (method, path, obj))
        return status, obj

    def ns(self, name):
        self.k("create", "namespace", name)
        return name

    def apply(self, ns, text):
        self.k("apply", "-n", ns, "-f", "-", input=text)

    def wait(self, what, fn, timeout=TIMEOUT):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = fn()
            if last:
                return last
            time.sleep(0.1)
        self.fail("timed out waiting for %s (last: %r)" % (what, last))

    def pods(self, ns, selector=None):
        path = "/api/v1/namespaces/%s/pods" % ns
        if selector:
            path += "?labelSelector=" + selector
        return self.api("GET", path, want=200)[1]["items"]

    def rs(self, ns, name):
        status, obj = self.api("GET", "/apis/apps/v1/namespaces/%s/replicasets/%s" % (ns, name))
        return obj if status == 200 else None

    def owned(self, ns, rs_obj):
        uid = rs_obj["metadata"]["uid"]
        return [p for p in self.pods(ns) if any(r.get("uid") == uid and r.get("controller")
                                                for r in p["metadata"].get("ownerReferences", []))]

    def wait_owned(self, ns, name, n):
        rs_obj = self.rs(ns, name)
        return self.wait("%d pods owned by %s" % (n, name),
                         lambda: (lambda ps: ps if len(ps) == n else None)(self.owned(ns, rs_obj)))

    def set_ready(self, ns, pod, ready=True):
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}]}}
        self.api("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, pod), body,
                 "application/merge-patch+json", want=200)

    def watch_pods(self, ns):
        """Counts ADDED/DELETED pod watch events of a namespace on a thread (the event recorder
        rate-limits Events, so they cannot count creations)."""
        counts = {"ADDED": 0, "DELETED": 0}
        req = urllib.request.Request(self.server.url + "/api/v1/namespaces/%s/pods?watch=true&timeoutSeconds=40" % ns,
                                     headers={"Authorization": "Bearer " + self.server.token()})
        resp = urllib.request.urlopen(req, context=self.server.ssl_context(), timeout=60)

        def run():
            try:
                for line in resp:
                    ev = json.loads(line)
                    if ev["type"] in counts:
                        counts[ev["type"]] += 1
            except Exception:
                pass
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return counts

    def status_of(self, ns, name):
        return (self.rs(ns, name) or {}).get("status", {})

    # ---- tests ----

    def test_create_scale_replace(self):
        ns = self.ns("rs-basic")
        self.apply(ns, rs_yaml("web", 3))
        pods = self.wait_owned(ns, "web", 3)
        rs_obj = self.rs(ns, "web")
        for p in pods:
            self.assertTrue(p["metadata"]["name"].startswith("web-"))
            self.assertEqual(p["metadata"]["labels"], {"app": "web"})
            ref = p["metadata"]["ownerReferences"][0]
            self.assertEqual((ref["apiVersion"], ref["kind"], ref["name"], ref["uid"]),
                             ("apps/v1", "ReplicaSet", "web", rs_obj["metadata"]["uid"]))
            self.assertIs(ref["controller"], True)
            self.assertIs(ref["blockOwnerDeletion"], True)
        self.wait("status replicas=3", lambda: self.status_of(ns, "web").get("replicas") == 3 and
                  self.status_of(ns, "web").get("fullyLabeledReplicas") == 3 and
                  self.status_of(ns, "web").get("observedGeneration") == rs_obj["metadata"]["generation"])
        # events name each created pod
        _, evs = self.api("GET", "/api/v1/namespaces/%s/events" % ns, want=200)
        created = {e["message"] for e in evs["items"] if e["reason"] == "SuccessfulCreate"}
        for p in pods:
            self.assertIn("Created pod: " + p["metadata"]["name"], created)

        # scale up, make two ready, scale down: the unready ones go first
        self.k("scale", "-n", ns, "rs/web", "--replicas=5")
        pods = self.wait_owned(ns, "web", 5)
        keep = sorted(p["metadata"]["name"] for p in pods[:2])
        for name in keep:
            self.set_ready(ns, name)
        self.wait("readyReplicas=2", lambda: self.status_of(ns, "web").get("readyReplicas") == 2 and
                  self.status_of(ns, "web").get("availableReplicas") == 2)
        self.k("scale", "-n", ns, "rs/web", "--replicas=2")
        pods = self.wait_owned(ns, "web", 2)
        self.assertEqual(sorted(p["metadata"]["name"] for p in pods), keep)
        self.wait("status replicas=2", lambda: self.status_of(ns, "web").get("replicas") == 2)
        _, evs = self.api("GET", "/api/v1/namespaces/%s/events" % ns, want=200)
        self.assertEqual(len([e for e in evs["items"] if e["reason"] == "SuccessfulDelete"]), 3)

        # a deleted pod is replaced by a new one
        victim = keep[0]
        self.k("delete", "-n", ns, "pod", victim)
        pods = self.wait("replacement", lambda: (lambda ps: ps if len(ps) == 2 and victim not in
                                                 [p["metadata"]["name"] for p in ps] else None)(
            self.owned(ns, self.rs(ns, "web"))))
        self.wait("readyReplicas=1", lambda: self.status_of(ns, "web").get("readyReplicas") == 1)
        # kubectl sees the same counts
        out = self.k("get", "-n", ns, "rs", "web", "--no-headers").stdout.split()
        self.assertEqual(out[:4], ["web", "2", "2", "1"])

    def test_min_ready_seconds(self):
        ns = self.ns("rs-minready")
        self.apply(ns, rs_yaml("slow", 1, extra_spec="  minReadySeconds: 3\n"))
        pod = self.wait_owned(ns, "slow", 1)[0]["metadata"]["name"]
        self.set_ready(ns, pod)
        self.wait("ready, not yet available", lambda: self.status_of(ns, "slow").get("readyReplicas") == 1)
        self.assertFalse(self.status_of(ns, "slow").get("availableReplicas"))
        self.wait("available after minReadySeconds",
                  lambda: self.status_of(ns, "slow").get("availableReplicas") == 1, timeout=15)
        self.set_ready(ns, pod, ready=False)
        self.wait("not ready again", lambda: not self.status_of(ns, "slow").get("readyReplicas") and
                  not self.status_of(ns, "slow").get("availableReplicas"))

    def test_adopt_and_release(self):
        ns = self.ns("rs-adopt")
        orphan = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "stray", "labels": {"app": "adopter"}},
                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        self.api("POST", "/api/v1/namespaces/%s/pods" % ns, orphan, want=201)
        self.apply(ns, rs_yaml("adopter", 1))
        pods = self.wait_owned(ns, "adopter", 1)
        self.assertEqual(pods[0]["metadata"]["name"], "stray")  # adopted, none created
        time.sleep(1)
        self.assertEqual(len(self.pods(ns)), 1)

        # relabel: the pod is released (ownerReference removed) and replaced
        self.k("label", "-n", ns, "pod", "stray", "app=other", "--overwrite")
        self.wait("stray released", lambda: not self.api("GET", "/api/v1/namespaces/%s/pods/stray" % ns)[1]
                  ["metadata"].get("ownerReferences"))
        pods = self.wait_owned(ns, "adopter", 1)
        self.assertNotEqual(pods[0]["metadata"]["name"], "stray")

    def test_failed_create_condition(self):
        ns = self.ns("rs-fail")
        self.apply(ns, rs_yaml("needpc", 1, template_extra="      priorityClassName: later\n"))

        def failure():
            for c in self.status_of(ns, "needpc").get("conditions", []):
                if c["type"] == "ReplicaFailure":
                    return c
        cond = self.wait("ReplicaFailure", failure)
        self.assertEqual((cond["status"], cond["reason"]), ("True", "FailedCreate"))
        self.assertIn("no PriorityClass with name later was found", cond["message"])
        _, evs = self.api("GET", "/api/v1/namespaces/%s/events" % ns, want=200)
        self.assertTrue(any(e["reason"] == "FailedCreate" and e["type"] == "Warning" and
                            e["message"].startswith("Error creating: ") for e in evs["items"]))
        self.api("POST", "/apis/scheduling.k8s.io/v1/priorityclasses",
                 {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                  "metadata": {"name": "later"}, "value": 1000}, want=201)
        self.wait_owned(ns, "needpc", 1)
        self.wait("condition cleared", lambda: failure() is None)

    def test_delete_background(self):
        ns = self.ns("rs-bg")
        self.apply(ns, rs_yaml("bg", 3))
        self.wait_owned(ns, "bg", 3)
        self.k("delete", "-n", ns, "rs", "bg")
        self.wait("pods collected", lambda: not self.pods(ns))
        self.assertIsNone(self.rs(ns, "bg"))

    def test_delete_orphan(self):
        ns = self.ns("rs-orphan")
        self.apply(ns, rs_yaml("orph", 2))
        self.wait_owned(ns, "orph", 2)
        self.k("delete", "-n", ns, "rs", "orph", "--cascade=orphan")
        self.wait("rs gone", lambda: self.rs(ns, "orph") is None)
        time.sleep(1)
        pods = self.pods(ns)
        self.assertEqual(len(pods), 2)
        for p in pods:
            self.assertFalse(p["metadata"].get("ownerReferences"))

    def test_delete_foreground(self):
        ns = self.ns("rs-fg")
        self.apply(ns, rs_yaml("fg", 2))
        pods = self.wait_owned(ns, "fg", 2)
        # a finalizer on one pod holds it, so we can see the owner wait for its dependents
        held = pods[0]["metadata"]["name"]
        self.api("PATCH", "/api/v1/namespaces/%s/pods/%s" % (ns, held),
                 {"metadata": {"finalizers": ["example.com/hold"]}}, "application/merge-patch+json", want=200)
        self.k("delete", "-n", ns, "rs", "fg", "--cascade=foreground", "--wait=false")
        self.wait("held pod terminating", lambda: self.api("GET", "/api/v1/namespaces/%s/pods/%s" % (ns, held))[1]
                  ["metadata"].get("deletionTimestamp"))
        self.wait("other pod gone", lambda: len(self.pods(ns)) == 1)
        rs_obj = self.rs(ns, "fg")
        self.assertIsNotNone(rs_obj, "owner must wait for blocking dependents")
        self.assertIn("foregroundDeletion", rs_obj["metadata"].get("finalizers", []))
        self.assertIn("deletionTimestamp", rs_obj["metadata"])
        time.sleep(1)
        self.assertIsNotNone(self.rs(ns, "fg"))
        self.assertEqual(len(self.pods(ns)), 1, "a deleting ReplicaSet must not create pods")
        self.api("PATCH", "/api/v1/namespaces/%s/pods/%s" % (ns, held),
                 {"metadata": {"finalizers": None}}, "application/merge-patch+json", want=200)
        self.wait("pods gone", lambda: not self.pods(ns))
        self.wait("rs gone", lambda: self.rs(ns, "fg") is None)

    def test_dangling_owner_reference(self):
        """Pods whose only owner never existed are collected, also when many appear at once while the
        scheduler writes their status (a delete that lost that race used to be taken as done)."""
        ns = self.ns("rs-dangling")

        def create(t):
            for i in range(t, 60, 6):
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "dangling-%d" % i, "ownerReferences": [
                           {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "never-was-%d" % i,
                            "uid": "00000000-0000-0000-0000-%012d" % i}]},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
                created.append(self.api("POST", "/api/v1/namespaces/%s/pods" % ns, pod)[0])

        created = []
        ts = [threading.Thread(target=create, args=(t,)) for t in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(created, [201] * 60)
        self.wait("dangling pods collected", lambda: self.pods(ns) == [])

    def test_second_owner_keeps_dependent(self):
        """A dependent with another live owner only loses the dangling reference; once that owner
        (a kind without a shared informer) goes too, the dependent is collected on resync."""
        ns = self.ns("rs-multi")
        self.apply(ns, rs_yaml("x1", 0))
        _, cm = self.api("POST", "/api/v1/namespaces/%s/configmaps" % ns,
                         {"metadata": {"name": "keeper"}, "data": {"k": "v"}}, want=201)
        rs_uid = self.rs(ns, "x1")["metadata"]["uid"]
        pod = {"metadata": {"name": "shared", "labels": {"app": "shared"}, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x1", "uid": rs_uid},
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "keeper", "uid": cm["metadata"]["uid"]}]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        self.api("POST", "/api/v1/namespaces/%s/pods" % ns, pod, want=201)
        self.k("delete", "-n", ns, "rs", "x1")
        path = "/api/v1/namespaces/%s/pods/shared" % ns
        refs = self.wait("dangling reference removed", lambda: (lambda r: r if len(r) == 1 else None)(
            self.api("GET", path, want=200)[1]["metadata"].get("ownerReferences", [])))
        self.assertEqual(refs[0]["kind"], "ConfigMap")
        self.api("DELETE", "/api/v1/namespaces/%s/configmaps/keeper" % ns, want=200)
        self.wait("collected after its last owner went", lambda: self.api("GET", path)[0] == 404, timeout=75)

    def test_list_and_deletecollection_by_label(self):
        ns = self.ns("rs-coll")
        self.apply(ns, rs_yaml("a1", 1, {"team": "a", "app": "a1"}))
        self.apply(ns, rs_yaml("a2", 1, {"team": "a", "app": "a2"}))
        self.apply(ns, rs_yaml("b1", 1, {"team": "b", "app": "b1"}))
        for name in ("a1", "a2", "b1"):
            self.wait_owned(ns, name, 1)
        _, lst = self.api("GET", "/apis/apps/v1/namespaces/%s/replicasets?labelSelector=team%%3Da" % ns, want=200)
        self.assertEqual(lst["kind"], "ReplicaSetList")
        self.assertEqual(sorted(i["metadata"]["name"] for i in lst["items"]), ["a1", "a2"])
        out = self.k("get", "-n", ns, "rs", "-l", "team=b", "-o", "name").stdout.split()
        self.assertEqual(out, ["replicaset.apps/b1"])
        self.api("DELETE", "/apis/apps/v1/namespaces/%s/replicasets?labelSelector=team%%3Da" % ns, want=200)
        self.wait("team a pods collected", lambda: not self.pods(ns, "team%3Da"))
        self.assertEqual(len(self.pods(ns, "team%3Db")), 1)
        self.assertIsNotNone(self.rs(ns, "b1"))

    def test_burst_creates_exactly(self):
        """Expectations: a large scale-up under a storm of pod events creates exactly the missing pods."""
        ns = self.ns("rs-burst")
        counts = self.watch_pods(ns)
        self.apply(ns, rs_yaml("many", 40))
        self.wait_owned(ns, "many", 40)
        self.k("scale", "-n", ns, "rs/many", "--replicas=25")
        self.wait_owned(ns, "many", 25)
        self.k("scale", "-n", ns, "rs/many", "--replicas=60")
        self.wait_owned(ns, "many", 60)
        time.sleep(1.5)
        self.assertEqual(len(self.pods(ns)), 60)
        self.assertEqual(dict(counts), {"ADDED": 75, "DELETED": 15})
        self.wait("status replicas=60", lambda: self.status_of(ns, "many").get("replicas") == 60)

    def test_deployment_chain(self):
        """The collector follows Deployment → ReplicaSet → Pod chains, background and foreground."""
        ns = self.ns("rs-chain")
        for name, cascade in (("bgdep", "background"), ("fgdep", "foreground")):
            self.k("create", "deployment", name, "-n", ns, "--image=nginx:1.25", "--replicas=2")
            self.wait("%s pods" % name, lambda: len(self.pods(ns, "app%%3D%s" % name)) == 2)
            self.k("delete", "deployment", name, "-n", ns, "--cascade=" + cascade)
            self.wait("%s pods collected" % name, lambda: not self.pods(ns, "app%%3D%s" % name))
            self.wait("%s replicasets collected" % name, lambda: not self.api(
                "GET", "/apis/apps/v1/namespaces/%s/replicasets?labelSelector=app%%3D%s" % (ns, name),
                want=200)[1]["items"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
