"""End-to-end: several kubec servers on one replicated etcd (issue 6, must-show 2).

A 3-member etcd cluster (Debian etcd-server, /usr/bin/etcd) runs on loopback ports of its own; two
`kubec server` processes (own ports, own data dirs and certificates) use it with all three endpoints
listed and short leader-election durations. The first server starts first and so leads the
kube-controller-manager and kube-scheduler Leases.

1. Deployments are created through the first server by 8 threads while a watch on the SECOND server
   collects ADDED events; one etcd member (the first listed endpoint) is SIGKILLed mid-load. Writes
   must go on (creates succeed after the kill), and every create that got a 201 must be in the final
   lists of both servers and must have reached the watch on the second one.
2. The server leading kube-controller-manager is SIGKILLed (usually the first one; if the etcd leader
   change of step 1 held writes longer than the renew deadline, leadership may already have moved,
   which is correct behaviour). Simulated nodes run in a separate `kubec agent` process connected to
   the surviving server (one agent only, so no two processes fight over Node names). The survivor's
   controllers and scheduler must hold both Leases within the lease duration (+ retry slack), and a
   new Deployment created through it must become Available on the sim nodes.

Every etcd member and server is killed in finally blocks; the data dirs are removed.
EtcdCluster is also used by the other test_etcd_*.py suites.
"""
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import harness

ETCD = "/usr/bin/etcd"
VERSION = os.environ.get("KUBECTL_VERSION", "1.33")
LEASE = 4      # --leader-elect-lease-duration (s)
RENEW = 3      # --leader-elect-renew-deadline (s)
RETRY = 0.5    # --leader-elect-retry-period (s)


class EtcdCluster:
    """n etcd members on free loopback ports, each its own process and data dir."""

    def __init__(self, n=3):
        if not os.path.exists(ETCD):
            raise unittest.SkipTest("no %s (Debian etcd-server)" % ETCD)
        self.dir = tempfile.mkdtemp(prefix="kubec-etcd-")
        self.n = n
        self.client_ports = [harness.free_port() for _ in range(n)]
        self.peer_ports = [harness.free_port() for _ in range(n)]
        self.procs = [None] * n
        self.logs = [None] * n

    @property
    def endpoints(self):
        return ",".join("127.0.0.1:%d" % p for p in self.client_ports)

    def start(self, timeout=30):
        cluster = ",".join("m%d=http://127.0.0.1:%d" % (i, self.peer_ports[i]) for i in range(self.n))
        for i in range(self.n):
            cu = "http://127.0.0.1:%d" % self.client_ports[i]
            pu = "http://127.0.0.1:%d" % self.peer_ports[i]
            self.logs[i] = open(os.path.join(self.dir, "etcd-%d.log" % i), "ab")
            self.procs[i] = subprocess.Popen(
                [ETCD, "--name", "m%d" % i, "--data-dir", os.path.join(self.dir, "m%d" % i),
                 "--listen-client-urls", cu, "--advertise-client-urls", cu, "--listen-peer-urls", pu,
                 "--initial-advertise-peer-urls", pu, "--initial-cluster", cluster,
                 "--initial-cluster-state", "new", "--initial-cluster-token", "kubec-e2e",
                 "--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "warn"],
                stdout=self.logs[i], stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        for i in range(self.n):
            while not self.healthy(i):
                if self.procs[i].poll() is not None or time.time() > deadline:
                    raise RuntimeError("etcd member %d did not become healthy:\n%s" % (i, self.read_log(i)))
                time.sleep(0.1)
        return self

    def healthy(self, i):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % self.client_ports[i], timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def read_log(self, i):
        try:
            with open(os.path.join(self.dir, "etcd-%d.log" % i), "rb") as f:
                return f.read().decode(errors="replace")[-3000:]
        except OSError:
            return ""

    def kill(self, i):
        p = self.procs[i]
        if p and p.poll() is None:
            p.kill()
            p.wait()

    def post(self, path, body, member=None):
        """One v3 JSON gateway call on a live member."""
        for i in ([member] if member is not None else range(self.n)):
            if self.procs[i] and self.procs[i].poll() is None:
                req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.client_ports[i], path),
                                             data=json.dumps(body).encode(), method="POST")
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.loads(r.read())
        raise RuntimeError("no live etcd member")

    def cleanup(self):
        for i in range(self.n):
            self.kill(i)
            if self.logs[i]:
                self.logs[i].close()
        shutil.rmtree(self.dir, ignore_errors=True)


def deployment(name, replicas=0):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": {"suite": "etcd-ha"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}]}}}}


class Watch:
    """A raw streaming watch; ADDED names go to a set (reader thread)."""

    def __init__(self, server, path):
        self.conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=60)
        self.conn.request("GET", path, headers={"Authorization": "Bearer " + server.token(),
                                                "Accept": "application/json"})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        self.added = set()
        self.errors = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                ev = json.loads(line)
                with self.lock:
                    if ev["type"] == "ADDED":
                        self.added.add(ev["object"]["metadata"]["name"])
                    elif ev["type"] == "ERROR":
                        self.errors.append(ev)
        except Exception as e:  # noqa: BLE001 - the test reports what the watch saw
            self.errors.append(repr(e))

    def seen(self):
        with self.lock:
            return set(self.added)

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except Exception:  # noqa: BLE001
            pass
        self.conn.close()


def lease_holder(server, name):
    st, body, _ = server.request("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/" + name)
    return body["spec"].get("holderIdentity") if st == 200 else None


def identity_of(server):
    m = re.search(r"leader election: candidate (\S+) for the lease", server.read_log())
    return m.group(1) if m else None


class EtcdHATest(unittest.TestCase, harness.KubectlMixin):
    def setUp(self):
        self.kubectl_bin = harness.kubectl_path(VERSION)
        self.cache = tempfile.mkdtemp(prefix="kubec-kcache-")
        self.etcd = None
        self.agent = None
        self.servers = []

    def tearDown(self):
        if self.agent and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()
        for s in self.servers:
            s.cleanup()
            if getattr(s, "log", None) and not s.log.closed:
                s.log.close()
        if self.etcd:
            self.etcd.cleanup()
        shutil.rmtree(self.cache, ignore_errors=True)

    def start_server(self, extra=()):
        s = harness.Server(["--datastore", "etcd://" + self.etcd.endpoints, "--leader-elect",
                            "--leader-elect-lease-duration", "%ds" % LEASE,
                            "--leader-elect-renew-deadline", "%ds" % RENEW,
                            "--leader-elect-retry-period", "%gs" % RETRY] + list(extra))
        self.servers.append(s)
        return s.start(timeout=30)

    def create_many(self, server, names, results):
        """Creates names through server from 8 threads; results[name] = HTTP status (0: no answer)."""
        q = queue.Queue()
        for n in names:
            q.put(n)

        def worker():
            while True:
                try:
                    n = q.get_nowait()
                except queue.Empty:
                    return
                try:
                    st, _, _ = server.request("POST", "/apis/apps/v1/namespaces/default/deployments",
                                              deployment(n))
                except Exception:  # noqa: BLE001 - a broken connection is "no answer"
                    st = 0
                results[n] = (st, time.time())
        ts = [threading.Thread(target=worker) for _ in range(8)]
        for t in ts:
            t.start()
        return ts

    def names_in(self, server):
        st, body, _ = server.request("GET", "/apis/apps/v1/namespaces/default/deployments?labelSelector=suite%3Detcd-ha")
        self.assertEqual(st, 200, body)
        return {d["metadata"]["name"] for d in body["items"]}

    def test_two_servers_member_loss_and_leader_loss(self):
        self.etcd = EtcdCluster(3).start()
        a = self.start_server()
        b = self.start_server()
        # A started first: it holds both Leases; B is a candidate only.
        deadline = time.time() + 10
        while time.time() < deadline and not (identity_of(a) and
                                              lease_holder(a, "kube-controller-manager") == identity_of(a) and
                                              lease_holder(a, "kube-scheduler") == identity_of(a)):
            time.sleep(0.2)
        self.assertEqual(lease_holder(b, "kube-controller-manager"), identity_of(a), a.read_log()[-2000:])
        self.assertEqual(lease_holder(b, "kube-scheduler"), identity_of(a))
        self.assertNotIn("acquired the lease", b.read_log())

        # --- 1. load through A, watch through B, kill one etcd member mid-load ---
        st, body, _ = b.request("GET", "/apis/apps/v1/namespaces/default/deployments")
        w = Watch(b, "/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion=%s"
                  % body["metadata"]["resourceVersion"])
        try:
            results = {}
            names = ["ha-%03d" % i for i in range(240)]
            threads = self.create_many(a, names, results)
            while len(results) < 60:
                time.sleep(0.01)
            t_kill = time.time()
            self.etcd.kill(0)  # the first listed endpoint: the store must fail over
            for t in threads:
                t.join(timeout=120)
            ok = {n for n, (st, _) in results.items() if st == 201}
            after = {n for n, (st, t) in results.items() if st == 201 and t > t_kill + 0.5}
            failed = {n: st for n, (st, _) in results.items() if st != 201}
            self.assertEqual(len(results), len(names))
            print("\ncreates: %d acknowledged, %d after the member kill, failed: %s" % (len(ok), len(after), failed))
            self.assertGreater(len(after), 50, "writes did not continue after the member was killed: %s" % failed)
            # writes may fail only while etcd changes leader (5xx, or no answer); never as a 4xx
            self.assertEqual({n: st for n, st in failed.items() if 0 < st < 500}, {})
            self.assertLess(len(failed), 60, failed)
            # no acknowledged write lost: both servers list every 201
            self.assertEqual(ok - self.names_in(a), set())
            self.assertEqual(ok - self.names_in(b), set())
            # and the watch on B saw each of them
            deadline = time.time() + 15
            while time.time() < deadline and not ok <= w.seen():
                time.sleep(0.1)
            self.assertEqual(ok - w.seen(), set(), "watch errors: %s" % w.errors)
            self.assertEqual(w.errors, [])
        finally:
            w.close()

        # --- 2. SIGKILL the leader: the other takes over and a new Deployment becomes Available ---
        ida, idb = identity_of(a), identity_of(b)
        self.assertNotEqual(ida, idb)
        leader, survivor = (a, b) if lease_holder(b, "kube-controller-manager") == ida else (b, a)
        ids = identity_of(survivor)
        agent_log = open(os.path.join(survivor.data_dir, "agent.log"), "ab")
        self.agent = subprocess.Popen([harness.KUBEC, "agent", "--kubeconfig", survivor.kubeconfig, "--sim-nodes", "2",
                                       "--node-name-prefix", "sim", "--node-lease-renew-interval", "1"],
                                      stdout=agent_log, stderr=subprocess.STDOUT)
        agent_log.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            st, body, _ = survivor.request("GET", "/api/v1/nodes")
            ready = [n for n in body.get("items", []) if any(
                c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))]
            if len(ready) == 2:
                break
            time.sleep(0.2)
        self.assertEqual(len(ready), 2, body)
        t0 = time.time()
        leader.stop(sig=signal.SIGKILL)
        took = {}
        deadline = t0 + LEASE + 15
        while time.time() < deadline and len(took) < 2:
            for lease in ("kube-controller-manager", "kube-scheduler"):
                if lease not in took and lease_holder(survivor, lease) == ids:
                    took[lease] = time.time() - t0
            time.sleep(0.1)
        print("leases held by the survivor after: %s" % {k: round(v, 1) for k, v in took.items()})
        self.assertEqual(len(took), 2, "no takeover: %s\n%s" % (took, survivor.read_log()[-3000:]))
        for lease, secs in took.items():
            # the lease runs out LEASE s after the survivor last saw a renewal (<= the kill), then one retry
            self.assertLess(secs, LEASE + 3 * RETRY + 2, "%s taken after %.1f s" % (lease, secs))
        # the controller-manager Lease changed hands (the scheduler one may already have been the
        # survivor's, if leadership split during the etcd leader change)
        st, body, _ = survivor.request(
            "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")
        self.assertGreaterEqual(body["spec"]["leaseTransitions"], 1)
        st, body, _ = survivor.request("GET", "/api/v1/namespaces/kube-system/events")
        msgs = [e["message"] for e in body["items"] if e["reason"] == "LeaderElection"]
        self.assertIn("%s became leader" % ids, msgs)
        b = survivor

        dep = deployment("after-failover", replicas=2)
        dep["metadata"]["labels"] = {"suite": "after"}
        st, body, _ = b.request("POST", "/apis/apps/v1/namespaces/default/deployments", dep)
        self.assertEqual(st, 201, body)
        self.server = b  # KubectlMixin.k talks to self.server
        self.k("wait", "--for=condition=Available", "--timeout=40s",
               "deployment/after-failover", timeout=60)
        st, body, _ = b.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dafter-failover")
        self.assertEqual(len(body["items"]), 2)
        for p in body["items"]:
            self.assertTrue(p["spec"].get("nodeName", "").startswith("sim"), p["spec"])
            self.assertEqual(p["status"]["phase"], "Running")
        # clean shutdown of the survivor (components stopped, Lease released) and of the agent
        self.agent.send_signal(signal.SIGTERM)
        self.assertEqual(self.agent.wait(timeout=15), 0)
        self.assertEqual(b.stop(), 0, b.read_log()[-3000:])
        self.assertIn("not leading kube-system/kube-scheduler any more", b.read_log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
