"""End-to-end: a client's watch across an etcd compaction (issue 6, must-show 3).

The official Python client (Debian python3-kubernetes, run with /usr/bin/python3) keeps a local copy of
the ConfigMaps of a namespace the way an informer does: list, then watch from the list's
resourceVersion, applying ADDED/MODIFIED/DELETED. The kubec server runs on a single-member etcd with
--etcd-compaction-interval 1s (the server's compactor, kube-apiserver's scheme) and a small watch
window for configmaps (--watch-cache-sizes configmaps#16).

1. list + watch: the copy follows live changes.
2. the client goes away; 40 writes happen; the server compacts etcd past the client's resourceVersion
   (a list at exactly that resourceVersion now answers 410 Expired — etcd's compaction).
3. the client resumes its watch from its last resourceVersion and gets 410 (an ERROR event with code
   410, which the Python client raises as ApiException(410) — as upstream, a watch older than the
   watch cache's window expires), re-lists, watches from the new list, follows more changes, and ends
   with exactly the server's final state.
"""
import os
import shutil
import time
import unittest

import harness
from test_etcd_ha import EtcdCluster

try:
    from kubernetes import client, config, watch
    from kubernetes.client.rest import ApiException
except ImportError:  # pragma: no cover - Debian python3-kubernetes missing
    raise unittest.SkipTest("python3-kubernetes is not installed")

NS = "compaction"


class Mirror:
    """The client's local copy: name -> data, and the resourceVersion it is at."""

    def __init__(self, v1):
        self.v1 = v1
        self.items = {}
        self.rv = None
        self.relists = 0

    def relist(self):
        lst = self.v1.list_namespaced_config_map(NS)
        self.items = {c.metadata.name: dict(c.data or {}) for c in lst.items}
        self.rv = lst.metadata.resource_version
        self.relists += 1

    def follow(self, n, timeout=10):
        """Applies n watch events from self.rv (ApiException 410 propagates)."""
        w = watch.Watch()
        seen = 0
        for ev in w.stream(self.v1.list_namespaced_config_map, NS, resource_version=self.rv,
                           timeout_seconds=timeout, allow_watch_bookmarks=False):
            obj = ev["object"]
            if ev["type"] in ("ADDED", "MODIFIED"):
                self.items[obj.metadata.name] = dict(obj.data or {})
            elif ev["type"] == "DELETED":
                self.items.pop(obj.metadata.name, None)
            self.rv = obj.metadata.resource_version
            seen += 1
            if seen == n:
                w.stop()
                break
        return seen


def cm(name, v):
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data={"v": str(v)})


class CompactionWatchTest(unittest.TestCase):
    def setUp(self):
        self.etcd = EtcdCluster(1).start()
        self.server = harness.Server(["--datastore", "etcd://" + self.etcd.endpoints,
                                      "--etcd-compaction-interval", "1s",
                                      "--watch-cache-sizes", "configmaps#16"])

    def tearDown(self):
        self.server.cleanup()
        if getattr(self.server, "log", None) and not self.server.log.closed:
            self.server.log.close()
        self.etcd.cleanup()

    def server_state(self, v1):
        return {c.metadata.name: dict(c.data or {}) for c in v1.list_namespaced_config_map(NS).items}

    def test_watch_across_compaction_relists(self):
        self.server.start(timeout=30)
        api = config.new_client_from_config(config_file=self.server.kubeconfig)
        v1 = client.CoreV1Api(api)
        v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
        for i in range(5):
            v1.create_namespaced_config_map(NS, cm("c%d" % i, 0))

        m = Mirror(v1)
        m.relist()
        self.assertEqual(len(m.items), 5)
        # 1. live changes reach the copy
        v1.patch_namespaced_config_map("c0", NS, {"data": {"v": "1"}})
        v1.delete_namespaced_config_map("c1", NS)
        v1.create_namespaced_config_map(NS, cm("c5", 0))
        self.assertEqual(m.follow(3), 3)
        self.assertEqual(m.items, self.server_state(v1))
        old_rv = m.rv

        # 2. the client is away: 40 writes, then the server's compactor passes old_rv
        for i in range(40):
            name = "c%d" % (i % 8)
            if i % 10 == 9:
                try:
                    v1.delete_namespaced_config_map(name, NS)
                except ApiException as e:
                    self.assertEqual(e.status, 404)
            else:
                try:
                    v1.patch_namespaced_config_map(name, NS, {"data": {"v": str(i)}})
                except ApiException as e:
                    self.assertEqual(e.status, 404)
                    v1.create_namespaced_config_map(NS, cm(name, i))
        deadline = time.time() + 15
        status = None
        while time.time() < deadline:
            status, body, _ = self.server.request(
                "GET", "/api/v1/namespaces/%s/configmaps?resourceVersion=%s&resourceVersionMatch=Exact" % (NS, old_rv))
            if status == 410:
                break
            time.sleep(0.3)
        self.assertEqual(status, 410, "etcd was not compacted past %s: %s" % (old_rv, body))
        self.assertEqual(body["reason"], "Expired")

        # 3. resume from old_rv: 410, re-list, watch on, same state as the server in the end
        with self.assertRaises(ApiException) as ctx:
            m.follow(1, timeout=5)
        self.assertEqual(ctx.exception.status, 410)
        self.assertNotEqual(m.items, self.server_state(v1))  # the copy is stale until it re-lists
        m.relist()
        self.assertEqual(m.relists, 2)
        v1.patch_namespaced_config_map("c2", NS, {"data": {"v": "final"}})
        v1.delete_namespaced_config_map("c3", NS)
        v1.create_namespaced_config_map(NS, cm("late", 1))
        self.assertEqual(m.follow(3), 3)
        final = self.server_state(v1)
        self.assertEqual(m.items, final)
        self.assertEqual(final["c2"], {"v": "final"})
        self.assertIn("late", final)
        self.assertNotIn("c3", final)
        api.close()
        self.assertEqual(self.server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
