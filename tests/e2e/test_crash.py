"""End-to-end: a crash (SIGKILL) or a SIGTERM under write load loses no acknowledged write.

16 client threads create ConfigMaps with unique names over keep-alive HTTPS as fast as they can. Meanwhile
the server is killed with SIGKILL at random moments and restarted on the same data dir and port. Each
thread records every name it sent and every name that got 201 (with the resourceVersion of the reply and
the moments the request was sent and the reply received). After the final restart:

- every acknowledged name is present, with the content the client sent and the acknowledged
  resourceVersion (creations are never rewritten);
- every present object was attempted and carries its own content (no phantom or torn objects);
- resourceVersions are unique, and if one acknowledgement arrived before another request was sent, the
  later write has the larger resourceVersion (a restart must never hand out a revision twice);
- the server still accepts writes, with a resourceVersion above every one acknowledged before.

A second crash test has threads that merge-patch their own object and threads that create and delete
objects: after the crash each object holds its newest acknowledged value (or a later attempted one), no
acknowledged deletion is undone and no acknowledged creation is lost. A third sends SIGTERM under load:
exit code 0, nothing acknowledged lost, and a prompt stop.
"""
import http.client
import json
import os
import random
import signal
import threading
import time
import unittest

import harness

THREADS = 16
NS = "crash"


def cm_body(name, tid, seq):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"writer": "t%d" % tid}},
            "data": {"name": name, "thread": str(tid), "seq": str(seq), "pad": name * 4}}


class Writer(threading.Thread):
    """Creates ConfigMaps t<tid>-<seq> until told to stop; reconnects whenever the server goes away."""

    def __init__(self, server, tid, stop_event):
        super().__init__(daemon=True)
        self.server, self.tid, self.stop_event = server, tid, stop_event
        self.token = server.token()
        self.attempted = set()
        self.acked = {}          # name -> (rv, t_sent, t_acked)
        self.unexpected = []     # (name, status, body) for statuses other than 201/429/503
        self.conn = None

    def connect(self):
        ctx = self.server.ssl_context()
        self.conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=ctx, timeout=10)

    def call(self, method, path, body=None, ctype="application/json"):
        """(status, parsed body) or None when the server went away and the outcome is unknown."""
        if self.conn is None:
            self.connect()
        try:
            self.conn.request(method, path, body=body, headers={
                "Authorization": "Bearer " + self.token, "Content-Type": ctype, "Accept": "application/json"})
            resp = self.conn.getresponse()
            payload = resp.read()
        except (OSError, http.client.HTTPException):
            # server went away (or is still starting): the write's fate is unknown
            self.conn.close()
            self.conn = None
            time.sleep(0.02)
            return None
        if resp.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        if resp.status in (429, 503):
            time.sleep(0.01)
        try:
            return resp.status, json.loads(payload)
        except ValueError:
            return resp.status, payload[:300]

    def run(self):
        try:
            self.loop()
        finally:
            if self.conn is not None:
                self.conn.close()

    def loop(self):
        seq = 0
        path = "/api/v1/namespaces/%s/configmaps" % NS
        while not self.stop_event.is_set():
            name = "t%d-%d" % (self.tid, seq)
            body = json.dumps(cm_body(name, self.tid, seq))
            seq += 1
            self.attempted.add(name)
            t_sent = time.monotonic()
            r = self.call("POST", path, body)
            t_acked = time.monotonic()
            if r is None or r[0] in (429, 503):
                continue
            if r[0] == 201:
                self.acked[name] = (int(r[1]["metadata"]["resourceVersion"]), t_sent, t_acked)
            else:
                self.unexpected.append((name, r[0], r[1]))


class Updater(Writer):
    """Merge-patches its own ConfigMap u<tid> with data.v = 1, 2, 3, ..."""

    def loop(self):
        path = "/api/v1/namespaces/%s/configmaps/u%d" % (NS, self.tid)
        self.last_acked = (0, None)   # (seq, rv) of the newest acknowledged patch
        self.tried = {0}
        seq = 0
        while not self.stop_event.is_set():
            seq += 1
            self.tried.add(seq)
            r = self.call("PATCH", path, json.dumps({"data": {"v": str(seq)}}), "application/merge-patch+json")
            if r is None or r[0] in (429, 503):
                continue
            if r[0] == 200 and r[1]["data"]["v"] == str(seq):
                self.last_acked = (seq, int(r[1]["metadata"]["resourceVersion"]))
            else:
                self.unexpected.append((path, r[0], r[1]))


class Deleter(Writer):
    """Creates d<tid>-<seq> and deletes two of every three again; records acknowledged creations and deletions."""

    def loop(self):
        base = "/api/v1/namespaces/%s/configmaps" % NS
        self.deleted = set()     # acknowledged deletions
        self.live = set()        # acknowledged creations whose deletion was never attempted
        seq = 0
        while not self.stop_event.is_set():
            name = "d%d-%d" % (self.tid, seq)
            seq += 1
            self.attempted.add(name)
            r = self.call("POST", base, json.dumps(cm_body(name, self.tid, seq - 1)))
            if r is None or r[0] != 201:
                if r is not None and r[0] not in (429, 503):
                    self.unexpected.append((name, r[0], r[1]))
                continue
            if seq % 3 == 0 or self.stop_event.is_set():
                self.live.add(name)   # every third one stays
                continue
            r = self.call("DELETE", base + "/" + name)
            if r is None or r[0] in (429, 503):
                continue
            if r[0] == 200:
                self.deleted.add(name)
            else:
                self.unexpected.append((name, r[0], r[1]))


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.server = harness.Server().start()
        st, body, _ = self.server.request("POST", "/api/v1/namespaces",
                                          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        self.assertEqual(st, 201, body)

    def tearDown(self):
        self.server.cleanup()

    def start_writers(self, kinds=(Writer,) * THREADS):
        self.stop_event = threading.Event()
        self.writers = [kind(self.server, i, self.stop_event) for i, kind in enumerate(kinds)]
        for w in self.writers:
            w.start()

    def stop_writers(self):
        self.stop_event.set()
        for w in self.writers:
            w.join(30)
            self.assertFalse(w.is_alive(), "writer thread stuck")

    def acked_count(self):
        return sum(len(w.acked) for w in self.writers)

    def wait_for_acks(self, n, timeout=10):
        """Waits until at least n more writes have been acknowledged, so every kill happens under load."""
        target = self.acked_count() + n
        deadline = time.time() + timeout
        while self.acked_count() < target:
            self.assertLess(time.time(), deadline, "writers made no progress:\n" + self.server.read_log()[-3000:])
            time.sleep(0.01)

    def check_everything(self):
        attempted, acked, unexpected = set(), {}, []
        for w in self.writers:
            attempted |= w.attempted
            acked.update(w.acked)
            unexpected += w.unexpected
        self.assertEqual(unexpected[:5], [], "unexpected statuses during load")
        self.assertGreater(len(acked), 200, "too few acknowledged writes for a meaningful test")

        st, lst, _ = self.server.request("GET", "/api/v1/namespaces/%s/configmaps" % NS)
        self.assertEqual(st, 200, lst)
        present = {}
        for item in lst["items"]:
            name = item["metadata"]["name"]
            self.assertNotIn(name, present, "object listed twice")
            present[name] = item

        lost = sorted(set(acked) - set(present))
        self.assertEqual(lost[:10], [], "%d acknowledged writes lost (of %d)" % (len(lost), len(acked)))
        phantom = sorted(set(present) - attempted)
        self.assertEqual(phantom[:10], [], "objects nobody created")
        for name, item in present.items():
            tid, seq = name[1:].split("-")
            want = cm_body(name, int(tid), int(seq))
            self.assertEqual(item.get("data"), want["data"], "content of %s" % name)
            self.assertEqual(item["metadata"].get("labels"), want["metadata"]["labels"], name)
            self.assertEqual(item["metadata"].get("namespace"), NS)
            self.assertTrue(item["metadata"].get("uid"), name)
            if name in acked:
                self.assertEqual(int(item["metadata"]["resourceVersion"]), acked[name][0],
                                 "%s: stored resourceVersion differs from the acknowledged one" % name)

        # single-object reads agree with the list
        for name in random.Random(1).sample(sorted(acked), min(40, len(acked))):
            st, obj, _ = self.server.request("GET", "/api/v1/namespaces/%s/configmaps/%s" % (NS, name))
            self.assertEqual(st, 200, obj)
            self.assertEqual(obj["data"], present[name]["data"], name)
            self.assertEqual(int(obj["metadata"]["resourceVersion"]), acked[name][0], name)

        rvs = [int(i["metadata"]["resourceVersion"]) for i in present.values()]
        self.assertEqual(len(rvs), len(set(rvs)), "duplicate resourceVersions among stored objects")
        ack_rvs = [v[0] for v in acked.values()]
        self.assertEqual(len(ack_rvs), len(set(ack_rvs)), "the same resourceVersion acknowledged twice")

        # real-time order: a write sent after another was acknowledged must get a larger revision
        by_sent = sorted(acked.values(), key=lambda v: v[1])
        by_ack = sorted(acked.values(), key=lambda v: v[2])
        j, max_rv_before = 0, 0
        bad = []
        for rv, t_sent, _ in by_sent:
            while j < len(by_ack) and by_ack[j][2] < t_sent:
                max_rv_before = max(max_rv_before, by_ack[j][0])
                j += 1
            if rv <= max_rv_before:
                bad.append((rv, max_rv_before))
        self.assertEqual(bad[:5], [], "%d writes got a revision not above an earlier acknowledged one" % len(bad))
        # and per thread, creation order is revision order
        for w in self.writers:
            seqs = sorted(w.acked.items(), key=lambda kv: int(kv[0].split("-")[1]))
            revs = [v[0] for _, v in seqs]
            self.assertEqual(revs, sorted(revs), "thread %d: revisions out of creation order" % w.tid)

        # still accepts writes, above every revision ever acknowledged
        st, obj, _ = self.server.request("POST", "/api/v1/namespaces/%s/configmaps" % NS,
                                         cm_body("after-0", 0, 0))
        self.assertEqual(st, 201, obj)
        self.assertGreater(int(obj["metadata"]["resourceVersion"]), max(ack_rvs))
        st, obj, _ = self.server.request("GET", "/api/v1/namespaces/%s/configmaps/after-0" % NS)
        self.assertEqual(st, 200, obj)
        return len(acked), len(attempted)

    def test_sigkill_under_load(self):
        rng = random.Random(os.environ.get("KUBEC_CRASH_SEED") or time.time())
        kills = rng.randint(3, 4)
        self.start_writers()
        try:
            for _ in range(kills):
                self.wait_for_acks(50)
                time.sleep(rng.uniform(0.5, 4.0))
                rc = self.server.stop(signal.SIGKILL, timeout=5)
                self.assertEqual(rc, -signal.SIGKILL)
                self.server.start()
            self.wait_for_acks(50)
            time.sleep(0.5)
        finally:
            self.stop_writers()
        acked, attempted = self.check_everything()
        print("sigkill x%d: %d acknowledged of %d attempted" % (kills, acked, attempted))
        rc = self.server.stop()
        self.assertEqual(rc, 0, self.server.read_log()[-3000:])

    def test_sigkill_updates_and_deletes(self):
        """Acknowledged updates and deletions survive a crash as creations do."""
        for i in range(8):
            st, body, _ = self.server.request("POST", "/api/v1/namespaces/%s/configmaps" % NS,
                                              {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "u%d" % i}, "data": {"v": "0"}})
            self.assertEqual(st, 201, body)
        self.start_writers([Updater] * 8 + [Deleter] * 8)
        try:
            for _ in range(2):
                self.wait_for_updates(200)
                time.sleep(random.uniform(0.3, 2.0))
                self.assertEqual(self.server.stop(signal.SIGKILL, timeout=5), -signal.SIGKILL)
                self.server.start()
            self.wait_for_updates(100)
        finally:
            self.stop_writers()
        unexpected = [u for w in self.writers for u in w.unexpected]
        self.assertEqual(unexpected[:5], [], "unexpected statuses during load")
        st, lst, _ = self.server.request("GET", "/api/v1/namespaces/%s/configmaps" % NS)
        self.assertEqual(st, 200, lst)
        present = {i["metadata"]["name"]: i for i in lst["items"]}
        deleted = live = 0
        for w in self.writers:
            if isinstance(w, Updater):
                obj = present["u%d" % w.tid]
                v = int(obj["data"]["v"])
                acked_seq, acked_rv = w.last_acked
                self.assertIn(v, w.tried, "u%d holds a value never written" % w.tid)
                self.assertGreaterEqual(v, acked_seq, "u%d lost acknowledged update %d (has %d)" % (w.tid, acked_seq, v))
                if v == acked_seq and acked_rv is not None:
                    self.assertEqual(int(obj["metadata"]["resourceVersion"]), acked_rv)
            else:
                back = sorted(w.deleted & set(present))
                self.assertEqual(back, [], "acknowledged deletions undone by the crash")
                missing = sorted(w.live - set(present))
                self.assertEqual(missing, [], "acknowledged creations lost")
                deleted += len(w.deleted)
                live += len(w.live)
        for name in present:
            if name.startswith("d"):
                self.assertIn(name, set().union(*(w.attempted for w in self.writers)), "phantom " + name)
        self.assertGreater(deleted, 50)
        self.assertGreater(live, 20)
        print("updates+deletes: %d deletions acknowledged, updates at %s" % (
            deleted, [w.last_acked[0] for w in self.writers if isinstance(w, Updater)]))
        self.assertEqual(self.server.stop(), 0, self.server.read_log()[-3000:])

    def wait_for_updates(self, n, timeout=10):
        def total():
            return sum(w.last_acked[0] for w in self.writers if isinstance(w, Updater) and hasattr(w, "last_acked"))
        target = total() + n
        deadline = time.time() + timeout
        while total() < target:
            self.assertLess(time.time(), deadline, "updaters made no progress:\n" + self.server.read_log()[-3000:])
            time.sleep(0.01)

    def test_sigterm_under_load(self):
        self.start_writers()
        try:
            self.wait_for_acks(300)
            t0 = time.time()
            rc = self.server.stop(signal.SIGTERM, timeout=15)
            took = time.time() - t0
        finally:
            self.stop_writers()
        self.assertEqual(rc, 0, "SIGTERM under load: exit %s\n%s" % (rc, self.server.read_log()[-3000:]))
        log = self.server.read_log()
        self.server.start()
        acked, attempted = self.check_everything()
        print("sigterm: %d acknowledged of %d attempted, stopped in %.2fs" % (acked, attempted, took))
        rc = self.server.stop()
        self.assertEqual(rc, 0, self.server.read_log()[-3000:])
        # checked last so a slow shutdown does not hide a lost write
        self.assertLess(took, 5, "SIGTERM under load took %.1fs\n%s" % (took, log[-3000:]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
