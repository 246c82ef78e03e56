"""End-to-end: the Deployment controller inside a real `kubec server` (with the ReplicaSet
controller creating pods), driven by unmodified kubectl 1.33 and raw API calls.

No kubelet runs: the test plays it by patching pod status (phase Running, condition Ready True)
through the /status subresource, only when and for the pods it chooses.
"""
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness

VERSION = os.environ.get("KUBECTL_VERSION", "1.33")
TIMEOUT = 40


def deploy_yaml(name, replicas, image="nginx:1.25", strategy="", extra_spec=""):
    return """apiVersion: apps/v1
kind: Deployment
metadata:
  name: %s
spec:
  replicas: %d
%s%s  selector:
    matchLabels: {app: %s}
  template:
    metadata:
      labels: {app: %s}
    spec:
      containers:
      - name: web
        image: %s
""" % (name, replicas, strategy, extra_spec, name, name, image)


class DeploymentTest(harness.KubectlMixin, harness.ServerTestCase):
    kubectl_timeout = 90
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kubectl_bin = harness.kubectl_path(VERSION)
        cls.cache = tempfile.mkdtemp(prefix="kubec-deploy-cache-")

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

    def wait(self, what, fn, timeout=TIMEOUT, tick=None):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if tick:
                tick()
            last = fn()
            if last:
                return last
            time.sleep(0.1)
        self.fail("timed out waiting for %s (last: %r)" % (what, last))

    def deploy(self, ns, name):
        return self.api("GET", "/apis/apps/v1/namespaces/%s/deployments/%s" % (ns, name), want=200)[1]

    def replicasets(self, ns, name):
        items = self.api("GET", "/apis/apps/v1/namespaces/%s/replicasets" % ns, want=200)[1]["items"]
        return sorted([rs for rs in items if rs["metadata"]["name"].startswith(name + "-")],
                      key=lambda rs: int(rs["metadata"].get("annotations", {}).get(
                          "deployment.kubernetes.io/revision", "0")))

    def pods(self, ns):
        return self.api("GET", "/api/v1/namespaces/%s/pods" % ns, want=200)[1]["items"]

    def set_ready(self, ns, pod):
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}}
        self.api("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (ns, pod), body, "application/merge-patch+json")

    def kubelet(self, ns, limit=None):
        """Marks not-yet-ready live pods of ns Ready (at most `limit` per call)."""
        n = 0
        for p in self.pods(ns):
            if p["metadata"].get("deletionTimestamp"):
                continue
            conds = p.get("status", {}).get("conditions", [])
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                continue
            if limit is not None and n >= limit:
                break
            self.set_ready(ns, p["metadata"]["name"])
            n += 1

    def cond(self, d, t):
        for c in d.get("status", {}).get("conditions", []):
            if c["type"] == t:
                return c
        return None

    def complete(self, ns, name):
        d = self.deploy(ns, name)
        st, want = d.get("status", {}), d["spec"]["replicas"]
        ok = (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and
              st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want and
              st.get("availableReplicas", 0) == want)
        return d if ok else None

    def roll_out(self, ns, name):
        return self.wait("%s rolled out" % name, lambda: self.complete(ns, name), tick=lambda: self.kubelet(ns))

    def events(self, ns, reason):
        items = self.api("GET", "/api/v1/namespaces/%s/events" % ns, want=200)[1]["items"]
        return [e["message"] for e in items if e.get("reason") == reason]

    # ---- tests ----

    def test_create_to_available(self):
        ns = self.ns("d-create")
        self.apply(ns, deploy_yaml("web", 3))
        rs = self.wait("replica set", lambda: self.replicasets(ns, "web"))[0]
        d = self.deploy(ns, "web")
        h = rs["metadata"]["labels"]["pod-template-hash"]
        self.assertEqual(rs["metadata"]["name"], "web-" + h)
        self.assertTrue(h and set(h) <= set("bcdfghjklmnpqrstvwxz2456789"), h)
        self.assertEqual(rs["spec"]["selector"]["matchLabels"], {"app": "web", "pod-template-hash": h})
        self.assertEqual(rs["spec"]["template"]["metadata"]["labels"], {"app": "web", "pod-template-hash": h})
        ann = rs["metadata"]["annotations"]
        self.assertEqual(ann["deployment.kubernetes.io/revision"], "1")
        self.assertEqual(ann["deployment.kubernetes.io/desired-replicas"], "3")
        self.assertEqual(ann["deployment.kubernetes.io/max-replicas"], "4")  # 3 + ceil(25% of 3)
        ref = rs["metadata"]["ownerReferences"][0]
        self.assertEqual((ref["kind"], ref["name"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]),
                         ("Deployment", "web", d["metadata"]["uid"], True, True))
        self.assertEqual(rs["spec"]["replicas"], 3)
        self.wait("3 pods", lambda: len(self.pods(ns)) == 3)
        d = self.wait("Available=False before pods are ready",
                      lambda: (lambda d: d if (self.cond(d, "Available") or {}).get("status") == "False" else None)(
                          self.deploy(ns, "web")))
        self.assertEqual(self.cond(d, "Available")["reason"], "MinimumReplicasUnavailable")
        self.assertEqual(self.cond(d, "Available")["message"], "Deployment does not have minimum availability.")
        d = self.roll_out(ns, "web")
        st = d["status"]
        self.assertEqual((st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]),
                         (3, 3, 3, 3))
        self.assertNotIn("unavailableReplicas", st)
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "1")
        av = self.cond(d, "Available")
        self.assertEqual((av["status"], av["reason"], av["message"]),
                         ("True", "MinimumReplicasAvailable", "Deployment has minimum availability."))
        pr = self.wait("NewReplicaSetAvailable", lambda: (lambda c: c if c and c["reason"] == "NewReplicaSetAvailable"
                                                           else None)(self.cond(self.deploy(ns, "web"), "Progressing")))
        self.assertEqual(pr["message"], 'ReplicaSet "web-%s" has successfully progressed.' % h)
        p = self.k("rollout", "status", "-n", ns, "deployment/web", "--timeout=30s")
        self.assertIn('deployment "web" successfully rolled out', p.stdout)
        self.assertIn("Scaled up replica set web-%s from 0 to 3" % h, self.events(ns, "ScalingReplicaSet"))
        # kubectl get shows the counts from status
        out = self.k("get", "-n", ns, "deployment", "web", "--no-headers").stdout.split()
        self.assertEqual(out[:4], ["web", "3/3", "3", "3"])

    def test_rolling_update(self):
        ns = self.ns("d-rolling")
        strat = "  strategy:\n    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}\n"
        self.apply(ns, deploy_yaml("web", 4, strategy=strat))
        self.roll_out(ns, "web")
        old = self.replicasets(ns, "web")[0]
        self.k("set", "image", "-n", ns, "deployment/web", "web=nginx:1.26")
        rss = self.wait("new replica set", lambda: (lambda r: r if len(r) == 2 else None)(self.replicasets(ns, "web")))
        new = rss[1]
        self.assertNotEqual(new["metadata"]["name"], old["metadata"]["name"])
        self.assertEqual(new["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2")
        self.assertEqual(new["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26")
        # maxUnavailable 0: nothing old goes before a new pod is ready; surge 1 caps the total at 5.
        time.sleep(1.0)
        rss = self.replicasets(ns, "web")
        self.assertEqual([rs["spec"]["replicas"] for rs in rss], [4, 1])
        self.assertLessEqual(len([p for p in self.pods(ns) if not p["metadata"].get("deletionTimestamp")]), 5)
        # one pod at a time: each ready new pod lets one old pod go
        for step in range(1, 5):
            self.wait("old RS at %d" % (4 - step), lambda: self.replicasets(ns, "web")[0]["spec"]["replicas"] <= 4 - step,
                      tick=lambda: self.kubelet(ns, limit=1))
            live = [p for p in self.pods(ns) if not p["metadata"].get("deletionTimestamp")]
            self.assertLessEqual(len(live), 5)
        d = self.roll_out(ns, "web")
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2")
        self.assertEqual([rs["spec"]["replicas"] for rs in self.replicasets(ns, "web")], [0, 4])
        msgs = self.events(ns, "ScalingReplicaSet")
        self.assertIn("Scaled down replica set %s from 4 to 3" % old["metadata"]["name"], msgs)
        self.assertIn("Scaled up replica set %s from 1 to 2" % new["metadata"]["name"], msgs)
        p = self.k("rollout", "status", "-n", ns, "deployment/web", "--timeout=30s")
        self.assertIn('deployment "web" successfully rolled out', p.stdout)

    def watch_pods(self, ns, seen, stop):
        """Records every pod watch event of ns into seen (list of (type, name, hash))."""
        url = self.server.url + "/api/v1/namespaces/%s/pods?watch=true&timeoutSeconds=60" % ns
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + self.server.token()})
        ctx = self.server.ssl_context()
        with urllib.request.urlopen(req, context=ctx, timeout=70) as r:
            for line in r:
                if stop.is_set():
                    break
                ev = json.loads(line)
                o = ev["object"]
                seen.append((ev["type"], o["metadata"]["name"], o["metadata"].get("labels", {}).get("pod-template-hash"),
                             bool(o["metadata"].get("deletionTimestamp"))))

    def test_recreate_never_mixes(self):
        ns = self.ns("d-recreate")
        self.apply(ns, deploy_yaml("web", 3, strategy="  strategy: {type: Recreate}\n"))
        self.roll_out(ns, "web")
        old_hash = self.replicasets(ns, "web")[0]["metadata"]["labels"]["pod-template-hash"]
        seen, stop = [], threading.Event()
        t = threading.Thread(target=self.watch_pods, args=(ns, seen, stop), daemon=True)
        t.start()
        time.sleep(0.5)
        self.k("set", "image", "-n", ns, "deployment/web", "web=nginx:1.26")
        d = self.roll_out(ns, "web")
        stop.set()
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2")
        time.sleep(0.5)
        live = {}
        mixed = False
        for typ, name, h, deleting in list(seen):
            if typ == "DELETED":
                live.pop(name, None)
            else:
                live[name] = h
            hashes = set(live.values())
            if old_hash in hashes and len(hashes) > 1:
                mixed = True
        self.assertTrue(any(h != old_hash for _, _, h, _ in seen), seen)
        self.assertFalse(mixed, "old and new pods existed together: %r" % seen)
        rss = self.replicasets(ns, "web")
        self.assertEqual([rs["spec"]["replicas"] for rs in rss], [0, 3])
        msgs = self.events(ns, "ScalingReplicaSet")
        self.assertIn("Scaled down replica set web-%s from 3 to 0" % old_hash, msgs)

    def test_revision_history_limit(self):
        ns = self.ns("d-history")
        self.apply(ns, deploy_yaml("web", 1, extra_spec="  revisionHistoryLimit: 1\n"))
        self.roll_out(ns, "web")
        for tag in ("1.26", "1.27", "1.28"):
            self.k("set", "image", "-n", ns, "deployment/web", "web=nginx:" + tag)
            self.wait("generation observed", lambda: self.deploy(ns, "web")["status"].get("observedGeneration") ==
                      self.deploy(ns, "web")["metadata"]["generation"])
            self.roll_out(ns, "web")
        rss = self.wait("old replica sets cleaned up",
                        lambda: (lambda r: r if len(r) == 2 else None)(self.replicasets(ns, "web")))
        revs = [rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in rss]
        self.assertEqual(revs, ["3", "4"])
        self.assertEqual(rss[1]["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28")

    def test_undo_history_pause_resume_restart(self):
        ns = self.ns("d-rollout")
        self.apply(ns, deploy_yaml("web", 2))
        self.roll_out(ns, "web")
        first = self.replicasets(ns, "web")[0]
        self.k("set", "image", "-n", ns, "deployment/web", "web=nginx:1.26")
        self.wait("revision 2", lambda: len(self.replicasets(ns, "web")) == 2)
        self.roll_out(ns, "web")
        out = self.k("rollout", "history", "-n", ns, "deployment/web").stdout
        self.assertIn("REVISION", out)
        self.assertIn("CHANGE-CAUSE", out)
        self.assertEqual([l.split()[0] for l in out.splitlines()[2:] if l.strip()], ["1", "2"])
        out = self.k("rollout", "history", "-n", ns, "deployment/web", "--revision=1").stdout
        self.assertIn("nginx:1.25", out)

        # undo: the first RS is reused and renumbered to revision 3
        out = self.k("rollout", "undo", "-n", ns, "deployment/web").stdout
        self.assertIn("deployment.apps/web rolled back", out)
        rs = self.wait("revision 3", lambda: (lambda r: r if r["metadata"]["annotations"].get(
            "deployment.kubernetes.io/revision") == "3" else None)(
            self.api("GET", "/apis/apps/v1/namespaces/%s/replicasets/%s" % (ns, first["metadata"]["name"]))[1]))
        self.assertEqual(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"], "1")
        d = self.roll_out(ns, "web")
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3")
        self.assertEqual(len(self.replicasets(ns, "web")), 2)
        self.assertEqual(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.25")

        # pause: template changes do not roll out
        self.assertIn("deployment.apps/web paused", self.k("rollout", "pause", "-n", ns, "deployment/web").stdout)
        self.k("set", "image", "-n", ns, "deployment/web", "web=nginx:1.27")
        pr = self.wait("DeploymentPaused", lambda: (lambda c: c if c and c["reason"] == "DeploymentPaused" else None)(
            self.cond(self.deploy(ns, "web"), "Progressing")))
        self.assertEqual((pr["status"], pr["message"]), ("Unknown", "Deployment is paused"))
        time.sleep(1.5)
        self.assertEqual(len(self.replicasets(ns, "web")), 2)
        # scaling still works while paused
        self.k("scale", "-n", ns, "deployment/web", "--replicas=3")
        self.wait("scaled while paused", lambda: sum(rs["spec"]["replicas"] for rs in self.replicasets(ns, "web")) == 3)
        self.assertEqual(len(self.replicasets(ns, "web")), 2)
        self.assertIn("deployment.apps/web resumed", self.k("rollout", "resume", "-n", ns, "deployment/web").stdout)
        self.wait("rollout after resume", lambda: len(self.replicasets(ns, "web")) == 3)
        d = self.roll_out(ns, "web")
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "4")

        # restart: a template annotation change makes a new RS
        self.assertIn("deployment.apps/web restarted", self.k("rollout", "restart", "-n", ns, "deployment/web").stdout)
        rss = self.wait("restart RS", lambda: (lambda r: r if len(r) == 4 else None)(self.replicasets(ns, "web")))
        self.assertIn("kubectl.kubernetes.io/restartedAt", rss[-1]["spec"]["template"]["metadata"]["annotations"])
        d = self.roll_out(ns, "web")
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "5")
        p = self.k("rollout", "status", "-n", ns, "deployment/web", "--timeout=30s")
        self.assertIn('deployment "web" successfully rolled out', p.stdout)

    def test_progress_deadline_exceeded(self):
        ns = self.ns("d-deadline")
        self.apply(ns, deploy_yaml("slow", 1, extra_spec="  progressDeadlineSeconds: 2\n"))
        rs = self.wait("replica set", lambda: self.replicasets(ns, "slow"))[0]
        pr = self.wait("ProgressDeadlineExceeded", lambda: (lambda c: c if c and c["reason"] ==
                                                             "ProgressDeadlineExceeded" else None)(
            self.cond(self.deploy(ns, "slow"), "Progressing")), timeout=30)
        self.assertEqual(pr["status"], "False")
        self.assertEqual(pr["message"], 'ReplicaSet "%s" has timed out progressing.' % rs["metadata"]["name"])
        p = self.k("rollout", "status", "-n", ns, "deployment/slow", "--timeout=20s", ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('deployment "slow" exceeded its progress deadline', p.stderr)

    def test_adopts_orphan_replicaset(self):
        ns = self.ns("d-adopt")
        self.apply(ns, deploy_yaml("web", 1))
        rs = self.wait("replica set", lambda: self.replicasets(ns, "web"))[0]
        # orphan it, then watch the controller take it back rather than create another one
        self.api("PATCH", "/apis/apps/v1/namespaces/%s/replicasets/%s" % (ns, rs["metadata"]["name"]),
                 {"metadata": {"ownerReferences": None}}, "application/merge-patch+json", want=200)
        self.wait("re-adopted", lambda: (self.replicasets(ns, "web")[0]["metadata"].get("ownerReferences") or [{}])[0]
                  .get("uid") == self.deploy(ns, "web")["metadata"]["uid"])
        self.assertEqual(len(self.replicasets(ns, "web")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
