"""End-to-end: the official Python client (Debian python3-kubernetes) against a real kubec server.

Covers the typed APIs (AppsV1Api, CoreV1Api), strategic-merge patch from a dict, optimistic concurrency on
replace, label and field selectors, delete with propagationPolicy in the query, watch.Watch().stream() with
timeout_seconds (the client sends watch=True with a capital T), and the DynamicClient, which discovers through
the legacy endpoints /version, /apis and /apis/apps/v1. Each test uses its own namespace.
"""
import threading
import time
import unittest

import harness

try:
    import kubernetes
    from kubernetes import client, config, dynamic, watch
    from kubernetes.client.rest import ApiException
except ImportError:  # the suite cannot run without the client; say so instead of failing obscurely
    raise unittest.SkipTest("python3-kubernetes is not installed")


def deployment(name, labels=None, replicas=1, image="nginx:1.25"):
    labels = dict(labels or {})
    labels.setdefault("app", name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


class PythonClientTest(harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.api_client = config.new_client_from_config(config_file=cls.server.kubeconfig)
        # also exercise the documented global entry point once
        config.load_kube_config(config_file=cls.server.kubeconfig)
        cls.apps = client.AppsV1Api(cls.api_client)
        cls.core = client.CoreV1Api(cls.api_client)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.api_client.close()
        finally:
            super().tearDownClass()

    def make_ns(self, name):
        ns = self.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        self.assertEqual(ns.metadata.name, name)
        return name

    def assertApiError(self, fn, status, reason=None):
        with self.assertRaises(ApiException) as cm:
            fn()
        self.assertEqual(cm.exception.status, status, cm.exception.body)
        if reason:
            self.assertIn('"reason":"%s"' % reason, cm.exception.body.replace(" ", ""))
        return cm.exception

    # --- Deployments through AppsV1Api -------------------------------------------------------------
    def test_deployment_crud_patch_conflict(self):
        ns = self.make_ns("py-crud")
        created = self.apps.create_namespaced_deployment(ns, deployment("web", replicas=2))
        self.assertIsInstance(created, client.V1Deployment)
        self.assertEqual(created.kind, "Deployment")
        self.assertEqual(created.api_version, "apps/v1")
        self.assertTrue(created.metadata.uid)
        self.assertTrue(created.metadata.resource_version)
        self.assertIsNotNone(created.metadata.creation_timestamp)
        self.assertEqual(created.spec.replicas, 2)

        got = self.apps.read_namespaced_deployment("web", ns)
        self.assertEqual(got.metadata.uid, created.metadata.uid)
        self.assertEqual(got.spec.template.spec.containers[0].image, "nginx:1.25")

        # a dict body is sent as application/strategic-merge-patch+json: the containers list merges by name,
        # so the port survives although the patch does not mention it
        patched = self.apps.patch_namespaced_deployment("web", ns, {
            "metadata": {"labels": {"tier": "frontend"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
        })
        self.assertEqual(patched.spec.replicas, 3)
        c = patched.spec.template.spec.containers
        self.assertEqual(len(c), 1)
        self.assertEqual(c[0].image, "nginx:1.27")
        self.assertEqual([p.container_port for p in c[0].ports], [80])
        self.assertEqual(patched.metadata.labels, {"app": "web", "tier": "frontend"})
        self.assertNotEqual(patched.metadata.resource_version, created.metadata.resource_version)
        self.assertGreater(patched.metadata.generation, created.metadata.generation)

        # a list body is sent as application/json-patch+json
        jp = self.apps.patch_namespaced_deployment("web", ns, [
            {"op": "replace", "path": "/spec/replicas", "value": 4}])
        self.assertEqual(jp.spec.replicas, 4)

        # replace with the resourceVersion we read before the patches -> 409 Conflict, nothing written
        stale = self.api_client.sanitize_for_serialization(got)
        stale["spec"]["replicas"] = 9
        err = self.assertApiError(lambda: self.apps.replace_namespaced_deployment("web", ns, stale), 409, "Conflict")
        self.assertIn("the object has been modified", err.body)
        self.assertEqual(self.apps.read_namespaced_deployment("web", ns).spec.replicas, 4)

        # replace with the current resourceVersion works; controllers write status concurrently, so a
        # client retries read-modify-replace on 409 as client-go's RetryOnConflict does
        for attempt in range(10):
            cur = self.apps.read_namespaced_deployment("web", ns)
            cur.spec.replicas = 5
            try:
                replaced = self.apps.replace_namespaced_deployment("web", ns, cur)
                break
            except ApiException as e:
                if e.status != 409 or attempt == 9:
                    raise
        self.assertEqual(replaced.spec.replicas, 5)
        self.assertNotEqual(replaced.metadata.resource_version, cur.metadata.resource_version)

        # creating it again is AlreadyExists
        self.assertApiError(lambda: self.apps.create_namespaced_deployment(ns, deployment("web")), 409,
                            "AlreadyExists")
        self.assertApiError(lambda: self.apps.read_namespaced_deployment("nope", ns), 404, "NotFound")

    def test_list_with_selectors(self):
        ns = self.make_ns("py-select")
        specs = {
            "a": {"env": "prod", "tier": "web"},
            "b": {"env": "dev", "tier": "web"},
            "c": {"env": "staging"},
            "d": {},
        }
        for name, labels in specs.items():
            self.apps.create_namespaced_deployment(ns, deployment(name, labels=labels))

        def names(**kw):
            lst = self.apps.list_namespaced_deployment(ns, **kw)
            self.assertIsInstance(lst, client.V1DeploymentList)
            self.assertTrue(lst.metadata.resource_version)
            return sorted(d.metadata.name for d in lst.items)

        self.assertEqual(names(), ["a", "b", "c", "d"])
        self.assertEqual(names(label_selector="env=prod"), ["a"])
        self.assertEqual(names(label_selector="env==prod"), ["a"])
        self.assertEqual(names(label_selector="env!=prod"), ["b", "c", "d"])
        self.assertEqual(names(label_selector="env in (dev,staging)"), ["b", "c"])
        self.assertEqual(names(label_selector="env notin (dev,staging)"), ["a", "d"])
        self.assertEqual(names(label_selector="tier"), ["a", "b"])
        self.assertEqual(names(label_selector="!tier"), ["c", "d"])
        self.assertEqual(names(label_selector="tier=web,env!=dev"), ["a"])
        self.assertEqual(names(label_selector="app=c"), ["c"])
        self.assertEqual(names(field_selector="metadata.name=b"), ["b"])
        self.assertEqual(names(field_selector="metadata.name!=b"), ["a", "c", "d"])
        self.assertEqual(names(field_selector="metadata.namespace=%s" % ns), ["a", "b", "c", "d"])
        self.assertEqual(names(field_selector="metadata.name=a", label_selector="env=prod"), ["a"])
        self.assertEqual(names(field_selector="metadata.name=a", label_selector="env=dev"), [])
        # an all-namespaces list sees them too
        every = self.apps.list_deployment_for_all_namespaces(label_selector="env=prod")
        self.assertIn((ns, "a"), [(d.metadata.namespace, d.metadata.name) for d in every.items])
        # a malformed selector is a 400, not an empty list
        self.assertApiError(lambda: names(label_selector="env in (prod"), 400, "BadRequest")

    def test_pagination_dry_run_scale(self):
        ns = self.make_ns("py-more")
        for i in range(5):
            self.apps.create_namespaced_deployment(ns, deployment("p%d" % i))
        # limit/continue: a server may return everything, but if it returns less it must hand out a continue
        # token that yields the rest exactly once
        names, token, pages = [], None, 0
        while True:
            kw = {"limit": 2}
            if token:
                kw["_continue"] = token
            page = self.apps.list_namespaced_deployment(ns, **kw)
            pages += 1
            self.assertLessEqual(len(page.items), 5)
            names += [d.metadata.name for d in page.items]
            token = page.metadata._continue
            if not token:
                break
            self.assertEqual(len(page.items), 2, "a page that is not the last must be full")
            self.assertLess(pages, 10)
        self.assertEqual(sorted(names), ["p%d" % i for i in range(5)])

        # dryRun=All answers like a create but stores nothing
        dry = self.apps.create_namespaced_deployment(ns, deployment("dry"), dry_run="All")
        self.assertEqual(dry.metadata.name, "dry")
        self.assertApiError(lambda: self.apps.read_namespaced_deployment("dry", ns), 404, "NotFound")

        # the scale subresource
        sc = self.apps.read_namespaced_deployment_scale("p0", ns)
        self.assertIsInstance(sc, client.V1Scale)
        self.assertEqual(sc.spec.replicas, 1)
        self.apps.patch_namespaced_deployment_scale("p0", ns, {"spec": {"replicas": 4}})
        self.assertEqual(self.apps.read_namespaced_deployment("p0", ns).spec.replicas, 4)
        st = self.apps.read_namespaced_deployment_status("p0", ns)
        self.assertEqual(st.metadata.name, "p0")

    def test_delete_foreground_in_query(self):
        ns = self.make_ns("py-delete")
        self.apps.create_namespaced_deployment(ns, deployment("gone"))
        self.apps.delete_namespaced_deployment("gone", ns, propagation_policy="Foreground")
        # Foreground leaves the object with deletionTimestamp and the foregroundDeletion finalizer until the
        # garbage collector has removed its dependents; either that or already gone is correct
        deadline = time.time() + 10
        state = None
        while time.time() < deadline:
            try:
                d = self.apps.read_namespaced_deployment("gone", ns)
            except ApiException as e:
                self.assertEqual(e.status, 404, e.body)
                state = "gone"
                break
            self.assertIsNotNone(d.metadata.deletion_timestamp, "Foreground delete left no deletionTimestamp")
            self.assertIn("foregroundDeletion", d.metadata.finalizers or [])
            state = "terminating"
            time.sleep(0.2)
        self.assertIn(state, ("gone", "terminating"))
        # a missing object is 404
        self.assertApiError(lambda: self.apps.delete_namespaced_deployment("never", ns), 404, "NotFound")

    # --- Core objects --------------------------------------------------------------------------------
    def test_core_configmap_secret_namespace(self):
        ns = self.make_ns("py-core")
        names = [n.metadata.name for n in self.core.list_namespace().items]
        self.assertIn(ns, names)
        self.assertIn("default", names)

        cm = self.core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings", labels={"k": "v"}), data={"a": "1", "b": "two"}))
        self.assertEqual(cm.data, {"a": "1", "b": "two"})
        lst = self.core.list_namespaced_config_map(ns, label_selector="k=v")
        self.assertEqual([c.metadata.name for c in lst.items], ["settings"])

        sec = self.core.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name="creds"), type="Opaque", data={"password": "aHVudGVyMg=="}))
        self.assertEqual(sec.type, "Opaque")
        got = self.core.read_namespaced_secret("creds", ns)
        self.assertEqual(got.data, {"password": "aHVudGVyMg=="})
        self.assertEqual([s.metadata.name for s in self.core.list_namespaced_secret(ns).items if
                          s.metadata.name == "creds"], ["creds"])

        self.core.delete_namespaced_config_map("settings", ns)
        self.core.delete_namespaced_secret("creds", ns)
        self.assertEqual(self.core.list_namespaced_config_map(ns, field_selector="metadata.name=settings").items, [])
        self.assertApiError(lambda: self.core.read_namespaced_secret("creds", ns), 404, "NotFound")

        # deleting a namespace: it disappears, or stays Terminating with a deletionTimestamp
        self.core.delete_namespace(ns)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                n = self.core.read_namespace(ns)
            except ApiException as e:
                self.assertEqual(e.status, 404, e.body)
                break
            self.assertIsNotNone(n.metadata.deletion_timestamp)
            self.assertEqual(n.status.phase, "Terminating")
            time.sleep(0.2)
        # nothing new may be created in a namespace that is being deleted (or is gone)
        with self.assertRaises(ApiException) as cm:
            self.core.create_namespaced_config_map(ns, {"metadata": {"name": "late"}})
        self.assertIn(cm.exception.status, (403, 404), cm.exception.body)

    def test_secret_string_data(self):
        ns = self.make_ns("py-secret")
        self.core.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name="creds"), type="Opaque",
            data={"password": "aHVudGVyMg=="}, string_data={"user": "admin", "password": "override"}))
        # stringData is write-only: merged into data (base64, winning over data) and never returned
        got = self.core.read_namespaced_secret("creds", ns)
        self.assertFalse(got.string_data)
        self.assertEqual(got.data, {"user": "YWRtaW4=", "password": "b3ZlcnJpZGU="})
        # a data value that is not base64 is refused
        with self.assertRaises(ApiException) as cm:
            self.core.create_namespaced_secret(ns, {"metadata": {"name": "bad"}, "data": {"k": "not base64!"}})
        self.assertEqual(cm.exception.status, 400, cm.exception.body)

    def test_watch_added_modified_deleted(self):
        ns = self.make_ns("py-watch")
        self.core.create_namespaced_config_map(ns, {"metadata": {"name": "w"}, "data": {"v": "0"}})
        # a decoy that the field selector must filter out
        self.core.create_namespaced_config_map(ns, {"metadata": {"name": "other"}, "data": {"v": "0"}})
        go = threading.Event()
        errors = []

        def mutate():
            try:
                if not go.wait(10):
                    return
                self.core.patch_namespaced_config_map("other", ns, {"data": {"v": "x"}})
                self.core.patch_namespaced_config_map("w", ns, {"data": {"v": "1"}})
                self.core.delete_namespaced_config_map("w", ns)
            except Exception as e:  # reported from the main thread
                errors.append(e)

        t = threading.Thread(target=mutate, daemon=True)
        t.start()
        w = watch.Watch()
        seen = []
        started = time.time()
        for ev in w.stream(self.core.list_namespaced_config_map, ns, field_selector="metadata.name=w",
                           timeout_seconds=10):
            obj = ev["object"]
            self.assertIsInstance(obj, client.V1ConfigMap)
            self.assertEqual(obj.metadata.name, "w")
            seen.append((ev["type"], (obj.data or {}).get("v")))
            if ev["type"] == "ADDED":
                go.set()  # the other thread changes the object only once the watch is established
            if ev["type"] == "DELETED":
                w.stop()
        t.join(10)
        self.assertEqual(errors, [])
        self.assertEqual([s[0] for s in seen], ["ADDED", "MODIFIED", "DELETED"], seen)
        self.assertEqual(seen[1][1], "1")
        self.assertLess(time.time() - started, 10, "watch did not deliver promptly")

    def test_watch_timeout_ends_stream(self):
        ns = self.make_ns("py-watch-timeout")
        # with nothing to report the server must end the watch after timeoutSeconds
        started = time.time()
        events = list(watch.Watch().stream(self.core.list_namespaced_config_map, ns, timeout_seconds=2))
        took = time.time() - started
        self.assertEqual(events, [])
        self.assertGreaterEqual(took, 1.5)
        self.assertLess(took, 8)

    def test_watch_deployments_from_resource_version(self):
        ns = self.make_ns("py-watch-rv")
        lst = self.apps.list_namespaced_deployment(ns)
        rv = lst.metadata.resource_version
        self.apps.create_namespaced_deployment(ns, deployment("late"))
        types = []
        for ev in watch.Watch().stream(self.apps.list_namespaced_deployment, ns, resource_version=rv,
                                       timeout_seconds=5):
            self.assertIsInstance(ev["object"], client.V1Deployment)
            types.append((ev["type"], ev["object"].metadata.name))
            if ev["object"].metadata.name == "late":
                break
        self.assertEqual(types[0], ("ADDED", "late"))

    # --- DynamicClient (legacy discovery) ------------------------------------------------------------
    def test_dynamic_client(self):
        ns = self.make_ns("py-dynamic")
        dyn = dynamic.DynamicClient(config.new_client_from_config(config_file=self.server.kubeconfig))
        deps = dyn.resources.get(api_version="apps/v1", kind="Deployment")
        self.assertTrue(deps.namespaced)
        created = deps.create(body=deployment("dyn"), namespace=ns)
        self.assertEqual(created.metadata.name, "dyn")
        got = deps.get(name="dyn", namespace=ns)
        self.assertEqual(got.spec.replicas, 1)
        self.assertEqual(got.kind, "Deployment")
        lst = deps.get(namespace=ns)
        self.assertEqual(lst.kind, "DeploymentList")
        self.assertEqual([i.metadata.name for i in lst.items], ["dyn"])
        cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
        cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dc"}, "data": {"x": "y"}},
                   namespace=ns)
        self.assertEqual(cms.get(name="dc", namespace=ns).data.x, "y")
        nss = dyn.resources.get(api_version="v1", kind="Namespace")
        self.assertFalse(nss.namespaced)
        self.assertIn(ns, [i.metadata.name for i in nss.get().items])
        with self.assertRaises(kubernetes.dynamic.exceptions.NotFoundError):
            deps.get(name="missing", namespace=ns)
        with self.assertRaises(kubernetes.dynamic.exceptions.ResourceNotFoundError):
            dyn.resources.get(api_version="apps/v1", kind="NoSuchKind")


if __name__ == "__main__":
    unittest.main(verbosity=2)
