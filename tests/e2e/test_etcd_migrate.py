"""End-to-end: `kubec datastore migrate` (issue 6, must-show 4).

A kubec server on its embedded SQLite store runs Deployments whose Pods run on simulated nodes; some
objects are updated and deleted so the store has history. The server is stopped, its store migrated
into a fresh single-member etcd, and the server started again on the same data dir with
--datastore etcd://...: `kubectl get -A deployments,replicasets,pods` (namespace and name of every row)
must be the same before and after, objects keep their uid and spec, the Deployments stay Available.
Also: migrating while the server runs is refused (the store's lock), and a second migration into the
now non-empty prefix is refused unless --force. A second test migrates a store whose history was
compacted (meta 'compacted' set with sqlite3 while the server is stopped, the logical step of the
backend's compaction): the state at the compacted revision is created first, the later history
replayed, and the server on etcd lists the same ConfigMaps with the same data.
"""
import os
import re
import sqlite3
import subprocess
import tempfile
import shutil
import time
import unittest

import harness
from test_etcd_ha import EtcdCluster

VERSION = os.environ.get("KUBECTL_VERSION", "1.33")


class MigrateTest(unittest.TestCase, harness.KubectlMixin):
    def setUp(self):
        self.kubectl_bin = harness.kubectl_path(VERSION)
        self.cache = tempfile.mkdtemp(prefix="kubec-kcache-")
        self.etcd = None
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.cleanup()
            if getattr(self.server, "log", None) and not self.server.log.closed:
                self.server.log.close()
        if self.etcd:
            self.etcd.cleanup()
        shutil.rmtree(self.cache, ignore_errors=True)

    def rows(self):
        p = self.k("get", "-A", "deployments,replicasets,pods", "--no-headers", "-o",
                   "custom-columns=KIND:.kind,NS:.metadata.namespace,NAME:.metadata.name,UID:.metadata.uid")
        return sorted(tuple(line.split()) for line in p.stdout.splitlines() if line.strip())

    def migrate(self, *extra):
        return harness.run([harness.KUBEC, "datastore", "migrate", "--from", self.server.data_dir,
                            "--to", "etcd://" + self.etcd.endpoints] + list(extra), timeout=120)

    def wait_available(self, names, ns="default"):
        for n in names:
            self.k("-n", ns, "wait", "--for=condition=Available", "--timeout=40s", "deployment/" + n, timeout=60)

    def test_migrate_sqlite_to_etcd(self):
        self.etcd = EtcdCluster(1).start()
        self.server = harness.Server(["--sim-nodes", "2"]).start()
        self.k("create", "namespace", "shop")
        self.k("create", "deployment", "web", "--image", "nginx:1.27", "--replicas", "3")
        self.k("create", "deployment", "api", "--image", "nginx:1.27", "--replicas", "2", "-n", "shop")
        self.k("create", "deployment", "gone", "--image", "nginx:1.27", "--replicas", "1")
        self.wait_available(["web", "gone"])
        self.wait_available(["api"], "shop")
        # history: a rollout (new ReplicaSet), a scale-down and a delete
        self.k("set", "image", "deployment/web", "nginx=nginx:1.28")
        self.k("-n", "shop", "scale", "deployment/api", "--replicas", "1")
        self.k("delete", "deployment", "gone", "--wait=true")
        self.k("rollout", "status", "deployment/web", "--timeout=40s", timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline:  # wait for the old pods to be gone so the state is settled
            before = self.rows()
            pods = [r for r in before if r[0] == "Pod"]
            if len(pods) == 4 and not any("gone" in r[2] for r in before):
                break
            time.sleep(0.5)
        self.assertEqual(len([r for r in before if r[0] == "Deployment"]), 2, before)
        self.assertEqual(len([r for r in before if r[0] == "Pod"]), 4, before)

        # a running server's store is locked: refused
        rc, out, err = self.migrate()
        self.assertNotEqual(rc, 0)
        self.assertIn("still running", err)

        self.assertEqual(self.server.stop(), 0)
        rc, out, err = self.migrate()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("current keys identical", out)
        # the prefix now holds the cluster: a second run is refused, --force replaces
        rc, out2, err2 = self.migrate()
        self.assertEqual(rc, 1)
        self.assertIn("--force", err2)
        rc, out3, err3 = self.migrate("--force")
        self.assertEqual(rc, 0, out3 + err3)

        self.server.log.close()
        self.server.extra_args = ["--sim-nodes", "2", "--datastore", "etcd://" + self.etcd.endpoints]
        self.server.start(timeout=30)
        self.assertIn("Using storage backend etcd", self.server.read_log().split("Received signal")[-1])
        after = self.rows()
        self.assertEqual(after, before)  # kind, namespace, name and uid of every row
        # the history came along: the rollout's revision annotation and the scale are there
        st, d, _ = self.server.request("GET", "/apis/apps/v1/namespaces/default/deployments/web")
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "2")
        st, d, _ = self.server.request("GET", "/apis/apps/v1/namespaces/shop/deployments/api")
        self.assertEqual(d["spec"]["replicas"], 1)
        self.wait_available(["web"])
        self.wait_available(["api"], "shop")
        time.sleep(2)
        self.assertEqual(self.rows(), before)  # controllers on etcd leave the state as it was
        self.assertEqual(self.server.stop(), 0)

    def test_migrate_compacted_store(self):
        self.etcd = EtcdCluster(1).start()
        self.server = harness.Server().start()
        for i in range(6):
            self.k("create", "configmap", "cm%d" % i, "--from-literal=v=%d" % i)
        st, body, _ = self.server.request("GET", "/api/v1/namespaces/default/configmaps")
        mid = int(body["metadata"]["resourceVersion"])
        for i in range(3):
            self.k("patch", "configmap", "cm%d" % i, "-p", '{"data":{"v":"changed"}}')
        self.k("delete", "configmap", "cm4")
        self.k("create", "configmap", "late", "--from-literal=v=late")
        before = self.k("get", "configmaps", "-o", "jsonpath={range .items[*]}{.metadata.name}={.data.v} {end}").stdout
        self.assertEqual(self.server.stop(), 0)
        db = sqlite3.connect(os.path.join(self.server.data_dir, "state.db"))
        db.execute("UPDATE meta SET v = ? WHERE k = 'compacted'", (mid,))
        db.commit()
        db.close()
        rc, out, err = self.migrate()
        self.assertEqual(rc, 0, out + err)
        m = re.search(r"compacted at (\d+)\) to \S+: (\d+) keys at the compacted revision, (\d+) puts and (\d+) deletes", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), mid)
        self.assertGreaterEqual(int(m.group(2)), 6 + 4)  # the 6 ConfigMaps, the namespaces, ...
        self.assertGreaterEqual(int(m.group(3)), 4)       # 3 patches + 1 create after mid
        self.assertGreaterEqual(int(m.group(4)), 1)       # the delete
        self.server.log.close()
        self.server.extra_args = ["--datastore", "etcd://" + self.etcd.endpoints]
        self.server.start(timeout=30)
        after = self.k("get", "configmaps", "-o", "jsonpath={range .items[*]}{.metadata.name}={.data.v} {end}").stdout
        self.assertEqual(after, before)
        self.assertIn("cm0=changed", after)
        self.assertNotIn("cm4=", after)
        self.assertEqual(self.server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
