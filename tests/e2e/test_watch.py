"""End-to-end: watch and paged-list semantics over raw HTTPS, as client-go and the Python client rely on them.

Each watch is a real streaming request (http.client); a reader thread splits the body into lines and hands
the parsed events to the test through a queue, so every wait has a timeout and "no more events" can be
asserted. The checks follow upstream kube-apiserver behaviour:

- no resourceVersion: ADDED for every existing object, then live events;
- from resourceVersion r: exactly the events after r, in order, no duplicates;
- label selector: DELETED when an object stops matching, ADDED when it starts;
- timeoutSeconds ends the stream cleanly; sendInitialEvents ends its initial ADDED events with a BOOKMARK
  annotated k8s.io/initial-events-end=true; a revision older than the watch cache holds gets ERROR 410 Expired
  (--default-watch-cache-size and per resource --watch-cache-sizes); a watch from a revision seen before a
  restart replays exactly or gets 410, never a silent gap;
- watch=True (the Python client's spelling) streams;
- list with limit + continue visits every object exactly once; list with resourceVersion=<current> works.
"""
import http.client
import json
import queue
import threading
import time
import unittest
import urllib.parse

import harness

EOF_MARK = object()


def cm(name, labels=None, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data or {"v": "0"}}


class Watch:
    """One streaming watch; events() come from a reader thread through a queue."""

    def __init__(self, server, path, params):
        self.conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=server.ssl_context(), timeout=30)
        self.url = path + "?" + urllib.parse.urlencode(params)
        self.conn.request("GET", self.url, headers={"Authorization": "Bearer " + server.token(),
                                                    "Accept": "application/json"})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.q = queue.Queue()
        self.error = None
        self.ended = threading.Event()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
        else:
            self.body = self.resp.read()

    def _read(self):
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                if line.strip():
                    self.q.put(json.loads(line))
        except Exception as e:  # noqa: BLE001 - reported to the test via self.error
            self.error = e
        self.ended.set()
        self.q.put(EOF_MARK)

    def next(self, timeout=5):
        """The next event, EOF_MARK at the end of the stream, or None when nothing came within timeout."""
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def take(self, n, timeout=5):
        out = []
        deadline = time.time() + timeout
        while len(out) < n:
            ev = self.next(max(0.01, deadline - time.time()))
            if ev is None or ev is EOF_MARK:
                raise AssertionError("watch %s: got %d of %d events: %s (end=%s)" % (
                    self.url, len(out), n, summarize(out), ev is EOF_MARK))
            out.append(ev)
        return out

    def assert_quiet(self, tc, wait=0.5):
        ev = self.next(wait)
        if ev is not None:
            tc.fail("unexpected on %s: %s" % (self.url, "end of stream" if ev is EOF_MARK else summarize([ev])))

    def close(self):
        try:
            self.conn.sock and self.conn.sock.shutdown(2)
        except OSError:
            pass
        self.conn.close()


def summarize(events):
    return [(e["type"], e["object"].get("metadata", {}).get("name"), e["object"].get("metadata", {}).get("resourceVersion"))
            for e in events]


def key(e):
    return (e["type"], e["object"]["metadata"]["name"], int(e["object"]["metadata"]["resourceVersion"]))


class WatchTest(harness.ServerTestCase):
    def ns(self, name):
        st, body, _ = self.server.request("POST", "/api/v1/namespaces",
                                          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.assertEqual(st, 201, body)
        return "/api/v1/namespaces/%s/configmaps" % name

    def create(self, base, obj):
        st, body, _ = self.server.request("POST", base, obj)
        self.assertEqual(st, 201, body)
        return body

    def merge(self, base, name, patch):
        st, body, _ = self.server.request("PATCH", base + "/" + name, patch,
                                          headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(st, 200, body)
        return body

    def delete(self, base, name):
        st, body, _ = self.server.request("DELETE", base + "/" + name)
        self.assertIn(st, (200, 202), body)
        return body

    def watch(self, base, **params):
        w = Watch(self.server, base, params)
        self.addCleanup(w.close)
        self.assertEqual(w.status, 200, getattr(w, "body", b""))
        return w

    def list_rv(self, base):
        st, body, _ = self.server.request("GET", base)
        self.assertEqual(st, 200, body)
        return body["metadata"]["resourceVersion"]

    def test_no_rv_sends_existing_then_live(self):
        base = self.ns("w-initial")
        for i in range(4):
            self.create(base, cm("pre-%d" % i))
        w = self.watch(base, watch="true")
        first = w.take(4)
        self.assertEqual(sorted((e["type"], e["object"]["metadata"]["name"]) for e in first),
                         [("ADDED", "pre-%d" % i) for i in range(4)])
        for e in first:
            self.assertEqual(e["object"]["kind"], "ConfigMap")
            self.assertEqual(e["object"]["apiVersion"], "v1")
        w.assert_quiet(self)
        # resourceVersion=0 ("any") starts the same way
        w0 = self.watch(base, watch="true", resourceVersion="0")
        self.assertEqual(sorted(key(e)[:2] for e in w0.take(4)), [("ADDED", "pre-%d" % i) for i in range(4)])
        w0.close()
        made = self.create(base, cm("live"))
        upd = self.merge(base, "live", {"data": {"v": "1"}})
        gone = self.delete(base, "live")
        evs = w.take(3)
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in evs],
                         [("ADDED", "live"), ("MODIFIED", "live"), ("DELETED", "live")])
        self.assertEqual(evs[0]["object"]["metadata"]["resourceVersion"], made["metadata"]["resourceVersion"])
        self.assertEqual(evs[1]["object"]["metadata"]["resourceVersion"], upd["metadata"]["resourceVersion"])
        self.assertEqual(evs[1]["object"]["data"], {"v": "1"})
        # the DELETED event carries the deletion's revision (the response's is checked in the replay test)
        self.assertGreater(int(evs[2]["object"]["metadata"]["resourceVersion"]), int(upd["metadata"]["resourceVersion"]))
        self.assertEqual(evs[2]["object"]["data"], {"v": "1"})
        w.assert_quiet(self)

    def test_watch_from_each_rv_replays_exact_suffix(self):
        base = self.ns("w-replay")
        sel = {"labelSelector": "suite=replay"}
        start_rv = int(self.list_rv(base))
        history = []  # (type, name, rv) in the order the server acknowledged them
        for i in range(8):
            o = self.create(base, cm("r%d" % i, {"suite": "replay"}))
            history.append(("ADDED", "r%d" % i, int(o["metadata"]["resourceVersion"])))
        for i in (1, 4, 6, 1):
            o = self.merge(base, "r%d" % i, {"data": {"v": str(len(history))}})
            history.append(("MODIFIED", "r%d" % i, int(o["metadata"]["resourceVersion"])))
        delete_rvs = []
        for i in (2, 6):
            o = self.delete(base, "r%d" % i)
            # nothing else writes on this server meanwhile: the list revision is the deletion's revision
            rv = int(self.list_rv(base))
            delete_rvs.append((int(o["metadata"]["resourceVersion"]), rv))
            history.append(("DELETED", "r%d" % i, rv))
        rvs = [h[2] for h in history]
        self.assertEqual(rvs, sorted(rvs), "acknowledged revisions not increasing")
        self.assertEqual(len(set(rvs)), len(rvs))
        for r in [start_rv] + rvs:
            want = [h for h in history if h[2] > r]
            w = self.watch(base, watch="true", resourceVersion=str(r), **sel)
            got = [key(e) for e in w.take(len(want))] if want else []
            self.assertEqual(got, want, "watch from resourceVersion %d" % r)
            w.assert_quiet(self, 0.3)
            w.close()
        # the replayed objects carry their state at that revision
        w = self.watch(base, watch="true", resourceVersion=str(start_rv), **sel)
        evs = w.take(len(history))
        self.assertEqual(evs[8]["object"]["data"], {"v": "8"})
        self.assertEqual(evs[11]["object"]["data"], {"v": "11"})
        # as upstream (etcd3 store), a delete answers with the object at the deletion's revision
        for got, want in delete_rvs:
            self.assertEqual(got, want, "DELETE response resourceVersion is not the deletion revision")

    def test_label_selector_transitions(self):
        base = self.ns("w-labels")
        self.create(base, cm("a", {"color": "red"}))
        self.create(base, cm("b", {"color": "blue"}))
        rv = self.list_rv(base)
        w = self.watch(base, watch="true", resourceVersion=rv, labelSelector="color=red")
        w.assert_quiet(self, 0.3)
        blue = self.merge(base, "a", {"metadata": {"labels": {"color": "blue"}}})
        ev = w.take(1)[0]
        self.assertEqual(key(ev), ("DELETED", "a", int(blue["metadata"]["resourceVersion"])))
        red = self.merge(base, "b", {"metadata": {"labels": {"color": "red"}}})
        ev = w.take(1)[0]
        self.assertEqual(key(ev), ("ADDED", "b", int(red["metadata"]["resourceVersion"])))
        self.assertEqual(ev["object"]["metadata"]["labels"], {"color": "red"})
        upd = self.merge(base, "b", {"data": {"v": "2"}})
        self.assertEqual(key(w.take(1)[0]), ("MODIFIED", "b", int(upd["metadata"]["resourceVersion"])))
        self.merge(base, "a", {"data": {"v": "3"}})  # still blue: nothing for this watch
        w.assert_quiet(self, 0.5)
        self.delete(base, "b")
        self.assertEqual(key(w.take(1)[0]), ("DELETED", "b", int(self.list_rv(base))))

    def test_field_selector_single_object(self):
        # what `kubectl get cm NAME -w` and `kubectl wait` do
        base = self.ns("w-field")
        self.create(base, cm("one"))
        self.create(base, cm("two"))
        w = self.watch(base, watch="true", fieldSelector="metadata.name=one")
        self.assertEqual(key(w.take(1)[0])[:2], ("ADDED", "one"))
        self.merge(base, "two", {"data": {"v": "x"}})
        upd = self.merge(base, "one", {"data": {"v": "y"}})
        self.assertEqual(key(w.take(1)[0]), ("MODIFIED", "one", int(upd["metadata"]["resourceVersion"])))
        w.assert_quiet(self, 0.3)

    def test_timeout_seconds_closes_cleanly(self):
        base = self.ns("w-timeout")
        t0 = time.time()
        w = self.watch(base, watch="true", resourceVersion=self.list_rv(base), timeoutSeconds="1")
        ev = w.next(10)
        took = time.time() - t0
        self.assertIs(ev, EOF_MARK, "expected the stream to end, got %s" % ev)
        self.assertIsNone(w.error, "stream did not end cleanly")
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 4.0)

    def test_send_initial_events_ends_with_bookmark(self):
        base = self.ns("w-sie")
        made = [self.create(base, cm("s%d" % i)) for i in range(3)]
        w = self.watch(base, watch="true", sendInitialEvents="true", resourceVersionMatch="NotOlderThan",
                       allowWatchBookmarks="true")
        evs = w.take(4)
        self.assertEqual(sorted((e["type"], e["object"]["metadata"]["name"]) for e in evs[:3]),
                         [("ADDED", "s%d" % i) for i in range(3)])
        bm = evs[3]
        self.assertEqual(bm["type"], "BOOKMARK", summarize(evs))
        self.assertEqual(bm["object"]["kind"], "ConfigMap")
        self.assertEqual(bm["object"]["metadata"].get("annotations"), {"k8s.io/initial-events-end": "true"})
        self.assertGreaterEqual(int(bm["object"]["metadata"]["resourceVersion"]),
                                max(int(m["metadata"]["resourceVersion"]) for m in made))
        live = self.create(base, cm("after"))
        ev = w.take(1)[0]
        self.assertEqual(key(ev), ("ADDED", "after", int(live["metadata"]["resourceVersion"])))
        # without allowWatchBookmarks upstream rejects sendInitialEvents; at least it must not hang silently
        st, body, _ = self.server.request("GET", base + "?watch=true&sendInitialEvents=true"
                                          "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1")
        self.assertIn(st, (200, 400, 422), body)

    def test_watch_capital_true(self):
        base = self.ns("w-python")
        self.create(base, cm("p0"))
        w = self.watch(base, watch="True")
        self.assertEqual(key(w.take(1)[0])[:2], ("ADDED", "p0"))
        made = self.create(base, cm("p1"))
        self.assertEqual(key(w.take(1)[0]), ("ADDED", "p1", int(made["metadata"]["resourceVersion"])))

    def test_watch_rv_strictly_increasing_across_namespaces(self):
        base1, base2 = self.ns("w-all-a"), self.ns("w-all-b")
        rv = self.list_rv("/api/v1/configmaps")
        w = self.watch("/api/v1/configmaps", watch="true", resourceVersion=rv)
        for i in range(5):
            self.create(base1 if i % 2 else base2, cm("x%d" % i))
        evs = w.take(5)
        got = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        self.assertEqual(got, sorted(got))
        self.assertEqual(len(set(got)), 5)
        self.assertEqual([e["object"]["metadata"]["namespace"] for e in evs],
                         ["w-all-b", "w-all-a", "w-all-b", "w-all-a", "w-all-b"])

    def test_list_limit_continue_pages_exactly_once(self):
        base = self.ns("w-pages")
        names = ["c%02d" % i for i in range(9)]
        for n in names:
            self.create(base, cm(n))
        seen, pages, cont = [], 0, None
        first_rv = None
        while True:
            q = "?limit=2" + ("&continue=" + urllib.parse.quote(cont) if cont else "")
            st, body, _ = self.server.request("GET", base + q)
            self.assertEqual(st, 200, body)
            pages += 1
            self.assertLessEqual(len(body["items"]), 2)
            seen += [i["metadata"]["name"] for i in body["items"]]
            first_rv = first_rv or body["metadata"]["resourceVersion"]
            cont = body["metadata"].get("continue")
            if not cont:
                self.assertNotIn("remainingItemCount", body["metadata"])
                break
            self.assertEqual(body["metadata"].get("remainingItemCount"), len(names) - len(seen))
            # pages of a continued list are served at the first page's revision
            self.assertEqual(body["metadata"]["resourceVersion"], first_rv)
            self.assertLess(pages, 20, "continue never ends")
        self.assertEqual(seen, names)
        self.assertEqual(pages, 5)

    def test_list_continue_is_a_consistent_snapshot(self):
        base = self.ns("w-snap")
        for n in ("a", "b", "c", "d"):
            self.create(base, cm(n))
        st, p1, _ = self.server.request("GET", base + "?limit=2")
        self.assertEqual(st, 200, p1)
        self.create(base, cm("e"))      # after the snapshot: not in this list
        self.delete(base, "d")          # deleted after the snapshot: still in this list
        self.merge(base, "c", {"data": {"v": "changed"}})
        seen = [i["metadata"]["name"] for i in p1["items"]]
        cont = p1["metadata"]["continue"]
        items = []
        while cont:
            st, body, _ = self.server.request("GET", base + "?limit=2&continue=" + urllib.parse.quote(cont))
            self.assertEqual(st, 200, body)
            items += body["items"]
            cont = body["metadata"].get("continue")
        seen += [i["metadata"]["name"] for i in items]
        self.assertEqual(seen, ["a", "b", "c", "d"])
        self.assertEqual(items[0]["data"], {"v": "0"}, "page 2 not served at the snapshot revision")

    def test_list_at_current_resource_version(self):
        base = self.ns("w-listrv")
        for n in ("l0", "l1", "l2"):
            self.create(base, cm(n))
        rv = self.list_rv(base)
        for q in ("?resourceVersion=" + rv, "?resourceVersion=" + rv + "&resourceVersionMatch=NotOlderThan",
                  "?resourceVersion=0"):
            st, body, _ = self.server.request("GET", base + q)
            self.assertEqual(st, 200, (q, body))
            self.assertEqual([i["metadata"]["name"] for i in body["items"]], ["l0", "l1", "l2"], q)
            self.assertGreaterEqual(int(body["metadata"]["resourceVersion"]), int(rv), q)
        st, body, _ = self.server.request("GET", base + "?resourceVersion=" + rv + "&resourceVersionMatch=Exact")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["metadata"]["resourceVersion"], rv)


class ExpiredTest(harness.ServerTestCase):
    server_args = ("--default-watch-cache-size", "10")

    def test_too_old_rv_is_410_expired(self):
        st, body, _ = self.server.request("POST", "/api/v1/namespaces",
                                          {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "old"}})
        self.assertEqual(st, 201, body)
        base = "/api/v1/namespaces/old/configmaps"
        rvs = []
        for i in range(25):
            st, o, _ = self.server.request("POST", base, cm("o%d" % i))
            self.assertEqual(st, 201, o)
            rvs.append(o["metadata"]["resourceVersion"])
            st, o, _ = self.server.request("PATCH", base + "/o%d" % i, {"data": {"v": "1"}},
                                           headers={"Content-Type": "application/merge-patch+json"})
            self.assertEqual(st, 200, o)
        w = Watch(self.server, base, {"watch": "true", "resourceVersion": rvs[1]})
        self.addCleanup(w.close)
        self.assertEqual(w.status, 200, getattr(w, "body", b""))
        ev = w.next(5)
        self.assertIsNotNone(ev, "no event for a too-old resourceVersion")
        self.assertIsNot(ev, EOF_MARK, "stream ended without an ERROR event")
        self.assertEqual(ev["type"], "ERROR", ev)
        self.assertEqual(ev["object"]["kind"], "Status")
        self.assertEqual(ev["object"]["code"], 410)
        self.assertEqual(ev["object"]["reason"], "Expired")
        self.assertEqual(ev["object"]["status"], "Failure")
        self.assertIs(w.next(5), EOF_MARK, "stream should end after the 410 ERROR event")
        # a recent revision is still served
        w2 = Watch(self.server, base, {"watch": "true", "resourceVersion": rvs[-2]})
        self.addCleanup(w2.close)
        self.assertEqual(w2.status, 200)
        evs = w2.take(2)
        self.assertEqual([e["type"] for e in evs], ["MODIFIED", "ADDED"])
        self.assertEqual(evs[1]["object"]["metadata"]["resourceVersion"], rvs[-1])


class RestartWatchTest(unittest.TestCase):
    """An informer reconnects after a server restart with the last revision it saw: it must get either
    exactly the events after it or a 410 Expired (then it relists), never a silent gap."""

    def test_watch_from_revision_before_restart(self):
        s = harness.Server().start()
        self.addCleanup(s.cleanup)
        base = "/api/v1/namespaces/default/configmaps"
        history = []
        for i in range(3):
            st, o, _ = s.request("POST", base, cm("before-%d" % i))
            self.assertEqual(st, 201, o)
            history.append(("ADDED", "before-%d" % i, int(o["metadata"]["resourceVersion"])))
        seen_rv = history[0][2]
        self.assertEqual(s.stop(), 0)
        s.start()
        for i in range(2):
            st, o, _ = s.request("POST", base, cm("after-%d" % i))
            self.assertEqual(st, 201, o)
            history.append(("ADDED", "after-%d" % i, int(o["metadata"]["resourceVersion"])))
        self.assertGreater(history[3][2], history[2][2], "revisions went backwards across the restart")
        w = Watch(s, base, {"watch": "true", "resourceVersion": str(seen_rv)})
        self.addCleanup(w.close)
        self.assertEqual(w.status, 200, getattr(w, "body", b""))
        first = w.next(5)
        self.assertIsNotNone(first, "no event at all")
        self.assertIsNot(first, EOF_MARK, "stream ended without an event")
        if first["type"] == "ERROR":
            self.assertEqual((first["object"]["code"], first["object"]["reason"]), (410, "Expired"))
            print("410 Expired after restart")
        else:
            got = [key(first)] + [key(e) for e in w.take(3)]
            self.assertEqual(got, history[1:], "events after the pre-restart revision")
            print("replayed across restart")
            w.assert_quiet(self, 0.3)
        w.close()
        self.assertEqual(s.stop(), 0)


class PerResourceCacheSizeTest(harness.ServerTestCase):
    """--watch-cache-sizes sizes one resource's history; the others keep the default."""
    server_args = ("--watch-cache-sizes", "configmaps#10")

    def test_only_configmaps_expire(self):
        first = {}
        for kind, path in (("ConfigMap", "configmaps"), ("Secret", "secrets")):
            base = "/api/v1/namespaces/default/" + path
            for i in range(30):
                st, o, _ = self.server.request("POST", base, {"apiVersion": "v1", "kind": kind,
                                                              "metadata": {"name": "n%d" % i}})
                self.assertEqual(st, 201, o)
                first.setdefault(path, o["metadata"]["resourceVersion"])
        w = Watch(self.server, "/api/v1/namespaces/default/configmaps",
                  {"watch": "true", "resourceVersion": first["configmaps"]})
        self.addCleanup(w.close)
        ev = w.next(5)
        self.assertTrue(isinstance(ev, dict) and ev["type"] == "ERROR" and ev["object"]["code"] == 410, ev)
        w2 = Watch(self.server, "/api/v1/namespaces/default/secrets",
                   {"watch": "true", "resourceVersion": first["secrets"]})
        self.addCleanup(w2.close)
        evs = w2.take(29)
        self.assertEqual([e["object"]["metadata"]["name"] for e in evs], ["n%d" % i for i in range(1, 30)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
