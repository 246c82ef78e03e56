"""End-to-end: `kubec timeline deployment/NAME` against a real `kubec server --sim-nodes 3` (the node
agent's simulated nodes pull, start and ready the pods), read only through the public HTTP API with
the server's kubeconfig.

Covers (issue 7, Must show 3): a healthy Deployment — every stage present for the Deployment, the
ReplicaSet and every pod, in order, and the critical-path durations summing exactly to the total,
in JSON and in the terminal waterfall (bars fit $COLUMNS); a rollout to revision 2 and --revision 1;
one stuck in ImagePullBackOff (template annotation sim.kubec.io/fail=image-pull) — the output names
the stuck stage, how many pods wait there and the event message, exit code 2; one still starting
(sim.kubec.io/start-delay) — in progress, exit code 3; kubectl-style errors
(NotFound, unknown revision, bad flags) with exit code 1.

KUBEC_TIMELINE_CMD (optional, space separated) replaces `kubec timeline` (e.g. a development driver
before the subcommand is wired into the kubec binary).
"""
import json
import os
import subprocess
import time
import unittest

import harness

TIMEOUT = 40
STAGES = ["accepted", "replicaSetCreated", "created", "scheduled", "pulled", "started", "ready", "available"]
POD_STAGES = ["created", "scheduled", "pulled", "started", "ready"]
LABELS = ["Deployment accepted", "ReplicaSet created", "Pod created", "Pod scheduled", "Image pulled",
          "Container started", "Pod Ready", "Deployment Available"]


def timeline_cmd():
    env = os.environ.get("KUBEC_TIMELINE_CMD")
    return env.split() if env else [harness.KUBEC, "timeline"]


def timeline_available():
    try:
        p = subprocess.run(timeline_cmd() + ["--help"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return p.returncode == 0 and "deployment/NAME" in p.stdout


def server_has_sim_nodes():
    p = subprocess.run([harness.KUBEC, "server", "--help"], capture_output=True, text=True, timeout=10)
    return "--sim-nodes" in p.stdout + p.stderr


def deployment(name, replicas, image="nginx:1.25", annotations=None):
    tmpl_meta = {"labels": {"app": name}}
    if annotations:
        tmpl_meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": tmpl_meta,
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


class TimelineTest(harness.ServerTestCase):
    server_args = ("--sim-nodes", "3")

    @classmethod
    def setUpClass(cls):
        if not timeline_available():
            raise unittest.SkipTest("`kubec timeline` is not available in this build")
        if not server_has_sim_nodes():
            raise unittest.SkipTest("`kubec server --sim-nodes` is not available in this build")
        super().setUpClass()

    # ---- helpers ----

    def timeline(self, *args, columns=None):
        env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
        if columns:
            env["COLUMNS"] = str(columns)
        cmd = timeline_cmd() + list(args) + ["--kubeconfig", self.server.kubeconfig]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def timeline_json(self, *args):
        rc, out, err = self.timeline(*(list(args) + ["-o", "json"]))
        self.assertIn(rc, (0, 2, 3), "timeline %s failed (%d): %s" % (args, rc, err))
        return rc, json.loads(out)

    def api(self, method, path, body=None, ctype=None):
        headers = {"Content-Type": ctype} if ctype else None
        status, obj, _ = self.server.request(method, path, body=body, headers=headers)
        self.assertLess(status, 300, "%s %s: %s %s" % (method, path, status, obj))
        return obj

    def create(self, obj):
        return self.api("POST", "/apis/apps/v1/namespaces/default/deployments", obj)

    def wait_timeline(self, name, want_rc, *args, until=None):
        """Polls `kubec timeline -o json` until it exits with want_rc (and, when given, until(doc)
        holds); returns the JSON."""
        deadline = time.time() + TIMEOUT
        rc, doc = None, None
        while time.time() < deadline:
            rc, doc = self.timeline_json("deployment/" + name, *args)
            if rc == want_rc and (until is None or until(doc)):
                return doc
            time.sleep(0.3)
        self.fail("timeline of %s: exit %s, want %s; last output:\n%s" % (name, rc, want_rc,
                                                                        json.dumps(doc, indent=1)[:4000]))

    def check_complete(self, doc, replicas, first=True):
        self.assertTrue(doc["complete"])
        self.assertIsNone(doc["waiting"])
        stages = {s["stage"]: s for s in doc["stages"]}
        self.assertEqual([s["stage"] for s in doc["stages"]], STAGES)
        want = STAGES if first else STAGES[1:]
        for name in want:
            self.assertTrue(stages[name]["present"], "stage %s missing: %s" % (name, stages[name]))
            self.assertIsNotNone(stages[name]["criticalMicros"], name)
        # every stamp per pod, in order, none before the ReplicaSet
        self.assertEqual(len(doc["pods"]), replicas)
        rs_created = doc["replicaSet"]["created"]["offsetMicros"]
        ready = []
        for pod in doc["pods"]:
            prev = rs_created
            for st in POD_STAGES:
                t = pod["stages"][st]
                self.assertIsNotNone(t, "pod %s has no %s" % (pod["name"], st))
                self.assertGreaterEqual(t["offsetMicros"], prev, "pod %s: %s before the previous stage: %s"
                                        % (pod["name"], st, pod["stages"]))
                prev = t["offsetMicros"]
            ready.append(prev)
        if first:
            self.assertEqual(doc["deployment"]["accepted"]["offsetMicros"], 0)
            self.assertGreaterEqual(rs_created, 0)
        avail = doc["deployment"]["available"]["offsetMicros"]
        self.assertGreaterEqual(avail, min(ready))
        self.assertEqual(doc["totalMicros"], avail)
        # the critical-path durations are each >= 0 and sum exactly to the total
        crit = [stages[s]["criticalMicros"] for s in want]
        self.assertTrue(all(c >= 0 for c in crit), crit)
        self.assertEqual(sum(crit), doc["totalMicros"])
        # per-pod aggregates: p50 <= p99 <= max, one duration per pod
        for st in POD_STAGES:
            s = stages[st]
            self.assertEqual(s["count"], replicas, st)
            self.assertLessEqual(s["p50Micros"], s["p99Micros"])
            self.assertLessEqual(s["p99Micros"], s["maxMicros"])
            self.assertLessEqual(s["startMicros"], s["endMicros"])

    # ---- tests ----

    def test_healthy_deployment(self):
        self.create(deployment("web", 3))
        doc = self.wait_timeline("web", 0)
        self.assertEqual(doc["deployment"]["name"], "web")
        self.assertEqual(doc["replicaSet"]["revision"], 1)
        self.check_complete(doc, 3)

        # the terminal waterfall: every stage with a bar, within the width, and the total
        rc, out, err = self.timeline("deployment/web", columns=90)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertIn("Available", lines[0])
        for label in LABELS:
            row = [ln for ln in lines if ln.startswith(label)]
            self.assertTrue(row, "no row for %s in:\n%s" % (label, out))
            self.assertTrue("█" in row[0] or "▏" in row[0], "no bar for %s: %r" % (label, row[0]))
        for ln in lines:
            self.assertLessEqual(len(ln), 90, "line wider than COLUMNS=90: %r" % ln)
        self.assertTrue(any(ln.startswith("Total: ") for ln in lines), out)
        self.assertIn("P99", out)
        # the same in another form of the argument
        rc2, out2, _ = self.timeline("deployment", "web", "-n", "default", columns=90)
        self.assertEqual(rc2, 0)
        self.assertIn("Deployment default/web", out2)

        # a rollout: revision 2 becomes the default, revision 1 stays reachable
        self.api("PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
                 {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}},
                 ctype="application/strategic-merge-patch+json")
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            rc, doc2 = self.timeline_json("deployment/web")
            if rc == 0 and doc2["replicaSet"]["revision"] == 2:
                break
            time.sleep(0.3)
        self.assertEqual((rc, doc2["replicaSet"]["revision"]), (0, 2), json.dumps(doc2)[:3000])
        self.check_complete(doc2, 3, first=False)
        rc, doc1 = self.timeline_json("deployment/web", "--revision", "1")
        self.assertEqual(doc1["replicaSet"]["name"], doc["replicaSet"]["name"])
        rc, out, err = self.timeline("deployment/web", "--revision", "9")
        self.assertEqual(rc, 1)
        self.assertIn("unable to find revision 9", err)

    def test_stuck_in_image_pull_backoff(self):
        self.create(deployment("stuck", 2, image="registry.example/missing:1",
                               annotations={"sim.kubec.io/fail": "image-pull"}))
        # both pods stuck (the first may get there while the second still pulls)
        doc = self.wait_timeline("stuck", 2, until=lambda d: (d.get("waiting") or {}).get("pods") == 2)
        w = doc["waiting"]
        self.assertFalse(doc["complete"])
        self.assertEqual(w["stage"], "pulled")
        self.assertTrue(w["stuck"])
        self.assertEqual(w["pods"], 2)
        self.assertIn(w["reason"], ("ImagePullBackOff", "ErrImagePull"))
        self.assertIn("registry.example/missing:1", w["message"])
        for pod in doc["pods"]:
            self.assertIsNotNone(pod["stages"]["scheduled"])
            self.assertIsNone(pod["stages"]["pulled"])
        # wait for the back-off proper, then check the wording of the terminal output
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            rc, out, err = self.timeline("deployment/stuck")
            if "ImagePullBackOff" in out:
                break
            time.sleep(0.3)
        self.assertEqual(rc, 2, err)
        self.assertIn('Stuck in stage "Image pulled": 2/2 pods waiting', out)
        self.assertIn('Pods waiting in ImagePullBackOff: Back-off pulling image "registry.example/missing:1"', out)
        self.assertIn('Failed to pull image "registry.example/missing:1"', out)
        self.assertIn("not Available", out)

    def test_in_progress(self):
        # the sim runtime holds the container start for a minute: not stuck, still progressing
        self.create(deployment("slow", 1, annotations={"sim.kubec.io/start-delay": "60s"}))
        # the pod passes through the earlier stages (scheduled, pulled) on its way: wait until the
        # one it waits in is the held container start, which it cannot leave for a minute
        doc = self.wait_timeline("slow", 3, until=lambda d: (d.get("waiting") or {}).get("stage") == "started")
        self.assertFalse(doc["complete"])
        self.assertEqual(doc["waiting"]["stage"], "started")
        self.assertFalse(doc["waiting"]["stuck"])
        self.assertEqual(doc["waiting"]["pods"], 1)
        self.assertGreater(doc["totalMicros"], 0)
        rc, out, _ = self.timeline("deployment/slow")
        self.assertEqual(rc, 3)
        self.assertIn('In progress in stage "Container started": 1/1 pods waiting', out)
        self.assertIn("not Available yet", out)

    def test_errors_as_kubectl(self):
        rc, out, err = self.timeline("deployment/nope")
        self.assertEqual(rc, 1)
        self.assertEqual(err, 'Error from server (NotFound): deployments.apps "nope" not found\n')
        self.assertEqual(out, "")
        rc, out, err = self.timeline("deployment/nope", "-n", "elsewhere")
        self.assertEqual(rc, 1)
        self.assertIn("(NotFound)", err)
        rc, _, err = self.timeline("pod/x")
        self.assertEqual(rc, 1)
        self.assertIn("deployments only", err)
        rc, _, err = self.timeline("deployment/x", "-o", "yaml")
        self.assertEqual(rc, 1)
        self.assertIn("output format", err)
        rc, _, err = self.timeline()
        self.assertEqual(rc, 1)


if __name__ == "__main__":
    unittest.main()
