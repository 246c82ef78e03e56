"""End-to-end: `kubec stress` against a real `kubec server` with sim nodes (`--sim-nodes`), over HTTP
through the server's kubeconfig.

Covers (issue 8): a small run (20 Deployments x 3) exits 0 and report.json holds every stage for every
pod; report.html renders in headless Chromium with its SVG plots (a screenshot is kept as an artifact);
a threshold that must fail (Ready:p99=1ms) prints a WARN line and exits 1; the image-pull-fail preset
reports the stuck pods by reason and exits 3; cleanup leaves no object with the run label; the job file
(-f) with flags overriding it; --keep; bad flags.

KUBEC_STRESS_CMD (optional, space separated) replaces `kubec stress` (e.g. a development driver).
Artifacts (report.html, report.json, report.png) go to $KUBEC_ARTIFACT_DIR, else ./stress-artifacts
(ctest runs this in the build tree's tests/e2e).
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

RUN_LABEL = "kubec.io/stress-run"
STAGES = ["CreateAccepted", "ReplicaSetCreated", "PodCreated", "Scheduled", "Started", "Ready"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def stress_cmd():
    env = os.environ.get("KUBEC_STRESS_CMD")
    return env.split() if env else [harness.KUBEC, "stress"]


def stress_available():
    try:
        p = subprocess.run(stress_cmd() + ["--help"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return p.returncode == 0 and "--deployments" in p.stdout


def server_has_sim():
    p = subprocess.run([harness.KUBEC, "server", "--help"], capture_output=True, text=True, timeout=10)
    return "--sim-nodes" in p.stdout + p.stderr


def artifact_dir():
    d = os.environ.get("KUBEC_ARTIFACT_DIR") or os.path.join(os.getcwd(), "stress-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


class StressCase(harness.ServerTestCase):
    server_args = ()

    @classmethod
    def setUpClass(cls):
        if not stress_available():
            raise unittest.SkipTest("`kubec stress` is not available in this build")
        if not server_has_sim():
            raise unittest.SkipTest("`kubec server --sim-nodes` is not available in this build")
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="kubec-stress-")

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def stress(self, *args, timeout=300):
        env = dict(os.environ, KUBECONFIG=self.server.kubeconfig)
        p = subprocess.run(stress_cmd() + list(args), capture_output=True, text=True, timeout=timeout, env=env)
        return p.returncode, p.stdout, p.stderr

    def labelled(self, run):
        """Objects of every kind the run creates that still carry its label."""
        left = {}
        for path in ("/apis/apps/v1/deployments", "/apis/apps/v1/replicasets", "/api/v1/pods", "/api/v1/namespaces"):
            code, body, _ = self.server.request("GET", "%s?labelSelector=%s%%3D%s" % (path, RUN_LABEL, run))
            self.assertEqual(code, 200, body)
            left[path] = [i["metadata"]["name"] for i in body["items"]]
        return {k: v for k, v in left.items() if v}


class SmallRunTest(StressCase):
    server_args = ("--sim-nodes", "4")

    def test_small_run_every_stage_report_and_cleanup(self):
        rep = os.path.join(self.tmp, "small")
        rc, out, err = self.stress("--deployments", "20", "--replicas", "3", "--concurrency", "8",
                                   "--timeout", "120s", "--report", rep)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("Result: PASSED", out)
        for stage in STAGES + ["Available"]:
            self.assertRegex(out, r"(?m)^%s\s+\d+ " % stage)
        with open(os.path.join(rep, "report.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["exitCode"], 0)
        self.assertTrue(doc["passed"])
        self.assertEqual(doc["config"]["deployments"], 20)
        self.assertIn("gitVersion", doc["serverVersion"])
        # every stage for every pod, and each stage no earlier than the one before it
        self.assertEqual(len(doc["pods"]), 60)
        for pod in doc["pods"]:
            self.assertTrue(pod["ready"], pod)
            self.assertTrue(pod["node"].startswith("sim"), pod)
            self.assertEqual(sorted(pod["stagesMs"]), sorted(STAGES), pod)
            chain = [pod["stagesMs"][s] for s in STAGES[1:]]
            self.assertEqual(chain, sorted(chain), pod)
            self.assertGreater(pod["stagesMs"]["CreateAccepted"], 0, pod)
        self.assertEqual(len({p["deployment"] for p in doc["pods"]}), 20)
        for d in doc["deployments"]:
            self.assertTrue(d["available"], d)
            self.assertIn("Available", d["stagesMs"], d)
        for stage in STAGES:
            s = doc["stages"][stage]
            self.assertEqual(s["count"], 60, stage)
            self.assertEqual(s["missing"], 0, stage)
            self.assertLessEqual(s["P50"], s["P90"])
            self.assertLessEqual(s["P90"], s["P99"])
            self.assertLessEqual(s["P99"], s["max"])
        self.assertEqual(doc["stages"]["Available"]["count"], 20)
        tp = doc["throughput"]
        self.assertEqual(tp["podsReady"], 60)
        self.assertGreater(tp["averagePodsReadyPerSecond"], 0)
        self.assertGreaterEqual(tp["peakPodsReadyPerSecond"], tp["averagePodsReadyPerSecond"] * 0.999)
        self.assertEqual(doc["api"]["create"]["errors"], 0)
        self.assertGreaterEqual(doc["api"]["create"]["requests"], 21)  # namespace + 20 Deployments
        self.assertGreater(doc["serverRSS"]["beforeBytes"], 0)
        self.assertGreater(doc["serverRSS"]["afterBytes"], 0)
        self.assertEqual(doc["series"]["readyOverTime"][-1][1], 60)
        # cleanup: waited until gone, nothing left with the run label
        self.assertTrue(doc["cleanup"]["complete"], doc["cleanup"])
        self.assertEqual(self.labelled(doc["run"]), {})
        self.check_html(rep)

    def check_html(self, rep):
        html = os.path.join(rep, "report.html")
        with open(html) as f:
            text = f.read()
        self.assertNotRegex(text, r"(src|href)=\"https?:", "report.html must open offline")
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        self.assertIsNotNone(chromium, "headless Chromium is needed (scripts/deps.sh installs `chromium`)")
        art = artifact_dir()
        shutil.copy(html, os.path.join(art, "report.html"))
        shutil.copy(os.path.join(rep, "report.json"), os.path.join(art, "report.json"))
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.tmp)
        flags = [chromium] + CHROMIUM_FLAGS + ["--user-data-dir=" + profile]
        url = "file://" + os.path.abspath(html)
        p = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        dom = p.stdout
        for stage in STAGES + ["Available"]:
            m = re.search(r'<svg id="lat-%s"[^>]*>(.*?)</svg>' % stage, dom, re.S)
            self.assertIsNotNone(m, "latency plot of %s missing from the rendered DOM" % stage)
            self.assertGreater(m.group(1).count('class="bar"'), 0, stage)
            self.assertIn("P99", m.group(1))
        m = re.search(r'<svg id="ready-over-time"[^>]*>(.*?)</svg>', dom, re.S)
        self.assertIsNotNone(m)
        self.assertIn("<polyline", m.group(1))
        m = re.search(r'<svg id="rate-over-time"[^>]*>(.*?)</svg>', dom, re.S)
        self.assertIsNotNone(m)
        self.assertGreater(m.group(1).count('class="bar"'), 0)
        shot = os.path.join(art, "report.png")
        if os.path.exists(shot):
            os.remove(shot)
        p = subprocess.run(flags + ["--screenshot=" + shot, "--window-size=1200,2000", url], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(shot), 20000)  # a blank page compresses to a few KB
        shutil.copy(shot, os.path.join(self.tmp, "report.png"))

    def test_threshold_breach_warns_and_exits_1(self):
        rc, out, err = self.stress("--deployments", "4", "--replicas", "2", "--threshold", "Ready:p99=1ms",
                                   "--threshold", "Scheduled:p99=10m", "-o", "json")
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"WARN P99 Ready latency \([\d.]+(ms|s)\) higher than configured threshold: 1\.0ms")
        self.assertNotIn("Scheduled latency", err)  # 10 minutes is not breached
        doc = json.loads(out)
        th = {t["stage"]: t for t in doc["thresholds"]}
        self.assertFalse(th["Ready"]["passed"])
        self.assertTrue(th["Scheduled"]["passed"])
        self.assertEqual(doc["exitCode"], 1)
        self.assertEqual(self.labelled(doc["run"]), {})

    def test_job_file_with_flag_override(self):
        job = os.path.join(self.tmp, "job.yaml")
        with open(job, "w") as f:
            f.write("deployments: 3\nreplicas: 3\nnamespaces: 2\nconcurrency: 2\n"
                    "requests:\n  cpu: 10m\n  memory: 16Mi\nthreshold:\n  - Ready:p99=10m\n  - Available:max=10m\n")
        rc, out, err = self.stress("-f", job, "--replicas", "1", "-o", "json")
        self.assertEqual(rc, 0, out + err)
        doc = json.loads(out)
        self.assertEqual(doc["config"]["deployments"], 3)
        self.assertEqual(doc["config"]["replicas"], 1)  # the flag wins over the file
        self.assertEqual(doc["config"]["requests"], {"cpu": "10m", "memory": "16Mi"})
        self.assertEqual(len(doc["thresholds"]), 2)
        self.assertEqual(len(doc["pods"]), 3)
        self.assertEqual(len({p["namespace"] for p in doc["pods"]}), 2)

    def test_churn_scales_rolls_and_deletes(self):
        rc, out, err = self.stress("--deployments", "4", "--replicas", "2", "--churn", "--churn-image",
                                   "registry.k8s.io/pause:3.10", "--timeout", "120s", "-o", "json")
        self.assertEqual(rc, 0, out + err)
        doc = json.loads(out)
        churn = doc["churn"]
        for phase in ("scaleUp", "rollout", "delete"):
            self.assertTrue(churn[phase]["complete"], churn)
        self.assertEqual(churn["scaleUp"]["replicas"], 3)  # 2 + 50 %, rounded up
        self.assertEqual(churn["rollout"]["image"], "registry.k8s.io/pause:3.10")
        self.assertEqual(doc["api"]["patch"]["requests"], 8)  # one scale and one rollout patch each
        self.assertEqual(doc["api"]["patch"]["errors"], 0)
        self.assertEqual(len(doc["pods"]), 8)  # the creation phase's pods only
        self.assertEqual(self.labelled(doc["run"]), {})

    def test_keep_leaves_the_objects(self):
        rc, out, err = self.stress("--deployments", "2", "--replicas", "1", "--keep", "-o", "json")
        self.assertEqual(rc, 0, out + err)
        run = json.loads(out)["run"]
        left = self.labelled(run)
        self.assertEqual(len(left.get("/apis/apps/v1/deployments", [])), 2, left)
        self.assertEqual(len(left.get("/api/v1/pods", [])), 2, left)
        for ns in left["/api/v1/namespaces"]:
            code, body, _ = self.server.request("DELETE", "/api/v1/namespaces/" + ns)
            self.assertIn(code, (200, 202), body)

    def test_bad_flags_exit_2(self):
        rc, out, err = self.stress("--threshold", "Ready:p77=1s")
        self.assertEqual(rc, 2)
        self.assertIn("unknown metric p77", err)
        rc, out, err = self.stress("--deployments", "0")
        self.assertEqual(rc, 2)
        self.assertIn("--deployments", err)


class ImagePullFailTest(StressCase):
    server_args = ("--sim-nodes", "2", "--sim-profile", "image-pull-fail")

    def test_stuck_pods_by_reason(self):
        rep = os.path.join(self.tmp, "fail")
        rc, out, err = self.stress("--deployments", "3", "--replicas", "2", "--stuck-after", "3s", "--timeout", "90s",
                                   "--report", rep)
        self.assertEqual(rc, 3, out + err)
        m = re.search(r"STUCK 6 pods not Ready:(.*)", err)
        self.assertIsNotNone(m, err)
        self.assertRegex(m.group(1), r"(ImagePullBackOff|ErrImagePull) \d")
        self.assertRegex(err, r"stress-r[0-9a-f]+-0/stress-\d-[a-z0-9]+-[a-z0-9]+ \(node sim-\d\): "
                              r"(ImagePullBackOff|ErrImagePull)")
        with open(os.path.join(rep, "report.json")) as f:
            doc = json.load(f)
        self.assertEqual(doc["stuck"]["count"], 6)
        self.assertEqual(sum(doc["stuck"]["byReason"].values()), 6)
        self.assertTrue(set(doc["stuck"]["byReason"]) <= {"ImagePullBackOff", "ErrImagePull"}, doc["stuck"])
        self.assertFalse(doc["passed"])
        self.assertEqual(doc["stages"]["Ready"]["count"], 0)
        self.assertEqual(doc["stages"]["Scheduled"]["count"], 6)  # they got that far
        self.assertTrue(doc["cleanup"]["complete"], doc["cleanup"])
        self.assertEqual(self.labelled(doc["run"]), {})


if __name__ == "__main__":
    unittest.main(verbosity=2)
