"""End-to-end: bad input over raw HTTPS. Every rejection must be a Status object (kind Status, status Failure,
the upstream reason and code, a message naming the problem) and must leave the store unchanged: the test
snapshots the objects (name, resourceVersion, content) before and after each bad request and compares.

Also checks that a client which sends half a request and stalls does not block anyone else (the server is
thread-per-connection), that a burst of 300 concurrent connections is served, and that SIGTERM still stops
the server promptly while such a stalled connection is open.
"""
import http.client
import json
import re
import socket
import ssl
import threading
import time
import unittest

import harness

NS = "bad"
DEPLOYS = "/apis/apps/v1/namespaces/%s/deployments" % NS
CMS = "/api/v1/namespaces/%s/configmaps" % NS
JSON = {"Content-Type": "application/json"}
POSITION = re.compile(r"(line|column|offset|byte|position|char(acter)?)\s*\d+", re.I)


def deployment(name, labels=None):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels or {"app": name})},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
    }


class BadInputTest(harness.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st, body, _ = cls.server.request("POST", "/api/v1/namespaces",
                                         {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        assert st == 201, (st, body)
        st, body, _ = cls.server.request("POST", DEPLOYS, deployment("anchor"))
        assert st == 201, (st, body)
        st, body, _ = cls.server.request("POST", CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                       "metadata": {"name": "cfg"}, "data": {"k": "v"}})
        assert st == 201, (st, body)
        # a controller may still be writing the anchor's status: wait until it is quiet, so that a changed
        # resourceVersion later really means the bad request wrote something
        deadline = time.time() + 10
        last = None
        while time.time() < deadline:
            rv = cls.server.request("GET", DEPLOYS + "/anchor")[1]["metadata"]["resourceVersion"]
            if rv == last:
                break
            last = rv
            time.sleep(1)

    # --- helpers -------------------------------------------------------------------------------------
    def req(self, method, path, body=None, headers=None, **kw):
        h = dict(JSON)
        h.update(headers or {})
        return self.server.request(method, path, body, headers=h, **kw)

    def snapshot(self):
        """Everything stored in the test namespace, plus the namespaces themselves."""
        snap = {}
        for path in (DEPLOYS, CMS, "/api/v1/namespaces"):
            st, body, _ = self.server.request("GET", path)
            self.assertEqual(st, 200, body)
            for item in body["items"]:
                m = item["metadata"]
                snap[(path, m["name"])] = (m["resourceVersion"], json.dumps(item, sort_keys=True))
        return snap

    def assertStatus(self, result, code, reason, *message_parts):
        st, body, hdrs = result
        self.assertEqual(st, code, body)
        self.assertIsInstance(body, dict, "error body is not a JSON Status: %r" % (body,))
        self.assertEqual(body.get("kind"), "Status", body)
        self.assertEqual(body.get("apiVersion"), "v1", body)
        self.assertEqual(body.get("status"), "Failure", body)
        self.assertEqual(body.get("reason"), reason, body)
        self.assertEqual(body.get("code"), code, body)
        self.assertTrue(body.get("message"), body)
        for part in message_parts:
            self.assertIn(part, body["message"], body)
        self.assertTrue(hdrs.get("Content-Type", "").startswith("application/json"), hdrs)
        return body

    def rejected(self, method, path, body, code, reason, *message_parts, headers=None, token=True):
        """Sends one bad request and checks the Status and that nothing stored changed."""
        before = self.snapshot()
        if token:
            result = self.req(method, path, body, headers=headers)
        else:
            result = self.server.request(method, path, body, headers=headers, token=False)
        status = self.assertStatus(result, code, reason, *message_parts)
        self.assertEqual(self.snapshot(), before, "a rejected %s %s changed what is stored" % (method, path))
        return status

    def causes(self, status):
        return [c.get("field") for c in (status.get("details") or {}).get("causes", [])]

    def anchor(self):
        st, body, _ = self.server.request("GET", DEPLOYS + "/anchor")
        self.assertEqual(st, 200, body)
        return body

    # --- malformed bodies ----------------------------------------------------------------------------
    def test_malformed_json(self):
        s = self.rejected("POST", DEPLOYS, '{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": x}',
                          400, "BadRequest")
        self.assertRegex(s["message"], POSITION, "message does not say where the JSON broke")
        s = self.rejected("POST", DEPLOYS, '{"apiVersion": "apps/v1",\n "kind": "Deployment",', 400, "BadRequest")
        self.assertRegex(s["message"], POSITION)
        self.rejected("PUT", DEPLOYS + "/anchor", '{"metadata": {"name": "anchor"', 400, "BadRequest")
        self.rejected("PATCH", DEPLOYS + "/anchor", '{"spec": ', 400, "BadRequest",
                      headers={"Content-Type": "application/merge-patch+json"})
        self.rejected("PATCH", DEPLOYS + "/anchor", '{"spec": ', 400, "BadRequest",
                      headers={"Content-Type": "application/strategic-merge-patch+json"})
        self.rejected("POST", DEPLOYS, "\x00\x01garbage", 400, "BadRequest")

    def test_unsupported_media_type(self):
        s = self.rejected("POST", DEPLOYS, json.dumps(deployment("m1")), 415, "UnsupportedMediaType",
                          headers={"Content-Type": "text/plain"})
        self.assertIn("application/json", s["message"])
        self.rejected("PATCH", DEPLOYS + "/anchor", json.dumps({"spec": {"replicas": 2}}), 415,
                      "UnsupportedMediaType", headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(self.anchor()["spec"]["replicas"], 1)

    def test_body_too_large(self):
        d = deployment("huge")
        d["metadata"]["annotations"] = {"blob": "x" * (3 * 1024 * 1024 + 16)}
        self.rejected("POST", DEPLOYS, d, 413, "RequestEntityTooLarge")
        self.assertEqual(self.req("GET", DEPLOYS + "/huge")[0], 404)

    def test_nesting_too_deep(self):
        body = json.dumps(deployment("deep"))[:-1] + ', "x": ' + "[" * 150 + "]" * 150 + "}"
        s = self.rejected("POST", DEPLOYS, body, 400, "BadRequest")
        self.assertIn("deep", s["message"])
        body = json.dumps(deployment("deep"))[:-1] + ', "x": ' + '{"a":' * 150 + "1" + "}" * 150 + "}"
        self.rejected("POST", DEPLOYS, body, 400, "BadRequest")
        # a deeply nested merge patch is refused the same way
        patch = '{"metadata": {"annotations": {"a": ' + "[" * 200 + "]" * 200 + "}}}"
        self.rejected("PATCH", DEPLOYS + "/anchor", patch, 400, "BadRequest",
                      headers={"Content-Type": "application/merge-patch+json"})

    # --- field validation ----------------------------------------------------------------------------
    def test_unknown_field_strict(self):
        d = deployment("strict")
        d["spec"]["foo"] = 1
        self.rejected("POST", DEPLOYS + "?fieldValidation=Strict", d, 400, "BadRequest",
                      'strict decoding error: unknown field "spec.foo"')
        d["spec"]["template"]["spec"]["containers"][0]["bar"] = "x"
        s = self.rejected("POST", DEPLOYS + "?fieldValidation=Strict", d, 400, "BadRequest",
                          'unknown field "spec.foo"')
        self.assertIn('unknown field "spec.template.spec.containers[0].bar"', s["message"])
        # also on update
        cur = self.anchor()
        cur["spec"]["foo"] = 1
        self.rejected("PUT", DEPLOYS + "/anchor?fieldValidation=Strict", cur, 400, "BadRequest",
                      'unknown field "spec.foo"')

    def test_unknown_field_warn(self):
        d = deployment("warned")
        d["spec"]["foo"] = 1
        st, body, hdrs = self.req("POST", DEPLOYS + "?fieldValidation=Warn", d)
        self.assertEqual(st, 201, body)
        self.assertEqual(body["kind"], "Deployment")
        self.assertNotIn("foo", body["spec"], "an unknown field was stored")
        self.assertIn("Warning", hdrs)
        self.assertRegex(hdrs["Warning"], r'^299 - ".*unknown field \\"spec\.foo\\".*"$')
        self.assertEqual(self.req("DELETE", DEPLOYS + "/warned")[0], 200)
        # Ignore drops it silently
        st, body, hdrs = self.req("POST", DEPLOYS + "?fieldValidation=Ignore", d)
        self.assertEqual(st, 201, body)
        self.assertNotIn("Warning", hdrs)
        self.assertEqual(self.req("DELETE", DEPLOYS + "/warned")[0], 200)

    def test_unknown_field_default_is_warn(self):
        # with no fieldValidation the server behaves as Warn: stored without the field, Warning header sent
        d = deployment("defaultwarn")
        d["spec"]["foo"] = 1
        st, body, hdrs = self.req("POST", DEPLOYS, d)
        self.assertEqual(st, 201, body)
        self.assertIn('unknown field \\"spec.foo\\"', hdrs.get("Warning", ""))
        st, stored, _ = self.req("GET", DEPLOYS + "/defaultwarn")
        self.req("DELETE", DEPLOYS + "/defaultwarn")
        self.assertNotIn("foo", stored["spec"], "an unknown field was stored")

    def test_unsupported_field_validation_value(self):
        # upstream validates CreateOptions/UpdateOptions: 422 Invalid, field fieldValidation
        self.rejected("POST", DEPLOYS + "?fieldValidation=Bogus", deployment("bogusfv"), 422, "Invalid",
                      "fieldValidation", 'Unsupported value: "Bogus"')
        self.rejected("PUT", DEPLOYS + "/anchor?fieldValidation=Bogus", self.anchor(), 422, "Invalid",
                      "fieldValidation")

    # --- validation (422) ----------------------------------------------------------------------------
    def test_invalid_name(self):
        s = self.rejected("POST", DEPLOYS, deployment("Bad_Name"), 422, "Invalid",
                          'Deployment.apps "Bad_Name" is invalid', "metadata.name", "RFC 1123")
        self.assertIn("metadata.name", self.causes(s))
        self.assertEqual(s["details"]["kind"], "Deployment")
        self.assertEqual(s["details"]["group"], "apps")
        self.rejected("POST", CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a" * 254}},
                      422, "Invalid", "metadata.name")
        self.rejected("POST", CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}},
                      422, "Invalid", "metadata.name", "name or generateName is required")

    def test_invalid_labels(self):
        d = deployment("badlabel")
        d["metadata"]["labels"]["bad key!"] = "v"
        s = self.rejected("POST", DEPLOYS, d, 422, "Invalid", "metadata.labels", "bad key!")
        self.assertIn("metadata.labels", self.causes(s))
        d = deployment("badvalue")
        d["metadata"]["labels"]["ok"] = "not ok!"
        self.rejected("POST", DEPLOYS, d, 422, "Invalid", "metadata.labels")
        # a bad label through a patch is refused and the object keeps its labels
        self.rejected("PATCH", DEPLOYS + "/anchor", {"metadata": {"labels": {"x": "-bad-"}}}, 422, "Invalid",
                      "metadata.labels", headers={"Content-Type": "application/merge-patch+json"})

    def test_invalid_quantities(self):
        d = deployment("negq")
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "-1"}}
        field = "spec.template.spec.containers[0].resources.limits[cpu]"
        s = self.rejected("POST", DEPLOYS, d, 422, "Invalid", field)
        self.assertIn(field, self.causes(s))
        # a string that is not a quantity at all: upstream fails decoding (400), a validator may say 422;
        # either way the message names the quantity format
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "abc"}}
        before = self.snapshot()
        st, body, hdrs = self.req("POST", DEPLOYS, d)
        self.assertIn(st, (400, 422), body)
        self.assertStatus((st, body, hdrs), st, "BadRequest" if st == 400 else "Invalid",
                          "quantities must match the regular expression")
        self.assertEqual(self.snapshot(), before)
        d["spec"]["template"]["spec"]["containers"][0]["resources"] = {
            "requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}
        self.rejected("POST", DEPLOYS, d, 422, "Invalid",
                      "spec.template.spec.containers[0].resources.requests", "less than or equal to memory limit")

    def test_selector_does_not_match_template(self):
        d = deployment("mismatch")
        d["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        s = self.rejected("POST", DEPLOYS, d, 422, "Invalid", "spec.template.metadata.labels",
                          "`selector` does not match template `labels`")
        self.assertIn("spec.template.metadata.labels", self.causes(s))
        # the same through an update of an existing object
        cur = self.anchor()
        cur["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
        self.rejected("PUT", DEPLOYS + "/anchor", cur, 422, "Invalid", "`selector` does not match template `labels`")

    # --- type and identity mismatches ----------------------------------------------------------------
    def test_kind_or_apiversion_mismatch(self):
        d = deployment("kind")
        d["kind"] = "ReplicaSet"
        self.rejected("POST", DEPLOYS, d, 400, "BadRequest", "ReplicaSet")
        d = deployment("apiv")
        d["apiVersion"] = "v1"
        self.rejected("POST", DEPLOYS, d, 400, "BadRequest", "v1", "apps/v1")
        cm = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrongkind"}}
        self.rejected("POST", CMS, cm, 400, "BadRequest", "Secret")

    def test_wrong_types(self):
        before = self.snapshot()
        for mutate in (lambda d: d["spec"].__setitem__("replicas", "three"),
                       lambda d: d["spec"].__setitem__("replicas", 1.5),
                       lambda d: d["metadata"].__setitem__("labels", ["a"]),
                       lambda d: d["spec"]["template"]["spec"].__setitem__("containers", {"name": "x"})):
            d = deployment("types")
            mutate(d)
            st, body, hdrs = self.req("POST", DEPLOYS, d)
            self.assertIn(st, (400, 422), body)
            self.assertStatus((st, body, hdrs), st, "BadRequest" if st == 400 else "Invalid")
        s = self.req("POST", DEPLOYS, dict(deployment("types"), spec={"replicas": "three"}))[1]
        self.assertIn("spec.replicas", s["message"])
        self.assertEqual(self.snapshot(), before)

    def test_secret_data_not_base64(self):
        secrets = "/api/v1/namespaces/%s/secrets" % NS
        self.rejected("POST", secrets, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                        "data": {"k": "not base64!"}}, 400, "BadRequest", "base64")
        self.assertEqual(self.req("GET", secrets + "/s")[0], 404)

    def test_malformed_yaml(self):
        self.rejected("POST", DEPLOYS, "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: [unclosed\n",
                      400, "BadRequest", headers={"Content-Type": "application/yaml"})
        self.rejected("POST", DEPLOYS, "apiVersion: apps/v1\n\tkind: Deployment\n", 400, "BadRequest",
                      headers={"Content-Type": "application/yaml"})

    def test_bad_query_parameters(self):
        self.rejected("GET", DEPLOYS + "?labelSelector=app%20in%20(x", None, 400, "BadRequest")
        self.rejected("GET", DEPLOYS + "?fieldSelector=spec.nosuchfield%3Dx", None, 400, "BadRequest",
                      "spec.nosuchfield")
        self.rejected("GET", DEPLOYS + "?resourceVersion=abc", None, 400, "BadRequest")
        self.rejected("GET", DEPLOYS + "?limit=abc", None, 400, "BadRequest")

    def test_bad_watch_timeout(self):
        # must be refused at once, not start a watch that never ends
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=self.server.ssl_context(),
                                           timeout=5)
        try:
            conn.request("GET", DEPLOYS + "?watch=true&timeoutSeconds=abc",
                         headers={"Authorization": "Bearer " + self.server.token()})
            try:
                r = conn.getresponse()
                body = r.read()
            except socket.timeout:
                self.fail("GET ?watch=true&timeoutSeconds=abc started a watch instead of answering 400")
        finally:
            conn.close()
        self.assertStatus((r.status, json.loads(body), dict(r.headers)), 400, "BadRequest")

    def test_bad_propagation_policy(self):
        # upstream validates DeleteOptions: 422 Invalid, and the object stays
        self.rejected("DELETE", DEPLOYS + "/anchor?propagationPolicy=Sideways", None, 422, "Invalid",
                      "propagationPolicy", 'Unsupported value: "Sideways"')
        self.rejected("DELETE", DEPLOYS + "/anchor", {"kind": "DeleteOptions", "apiVersion": "v1",
                                                      "propagationPolicy": "Sideways"}, 422, "Invalid",
                      "propagationPolicy")
        self.assertEqual(self.anchor()["metadata"]["name"], "anchor")

    def test_name_in_body_differs_from_url(self):
        cur = self.anchor()
        cur["metadata"]["name"] = "someone-else"
        self.rejected("PUT", DEPLOYS + "/anchor", cur, 400, "BadRequest", "does not match")

    def test_create_with_resource_version(self):
        d = deployment("withrv")
        d["metadata"]["resourceVersion"] = "5"
        self.rejected("POST", DEPLOYS, d, 400, "BadRequest",
                      "resourceVersion should not be set on objects to be created")

    def test_stale_resource_version_on_put(self):
        old = self.anchor()
        st, body, _ = self.req("PATCH", DEPLOYS + "/anchor", {"metadata": {"annotations": {"touch": "1"}}},
                               headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(st, 200, body)
        old["spec"]["replicas"] = 7
        s = self.rejected("PUT", DEPLOYS + "/anchor", old, 409, "Conflict",
                          'Operation cannot be fulfilled on deployments.apps "anchor": the object has been '
                          "modified; please apply your changes to the latest version and try again")
        self.assertEqual(s["details"]["name"], "anchor")
        self.assertEqual(self.anchor()["spec"]["replicas"], 1)
        # a resourceVersion that is not a number at all is not silently accepted either
        old["metadata"]["resourceVersion"] = "abc"
        before = self.snapshot()
        st, body, hdrs = self.req("PUT", DEPLOYS + "/anchor", old)
        self.assertIn(st, (400, 409, 422), body)
        self.assertEqual(body.get("kind"), "Status", body)
        self.assertEqual(self.snapshot(), before)

    def test_racing_unconditional_writes_all_succeed(self):
        """Writes without a resourceVersion never fail with 409 just because another write to the same object
        won the race: the server re-reads and retries (upstream's GuaranteedUpdate). Many patches and a
        status-free delete race on one ConfigMap; every patch is answered 200 and none is lost."""
        path = CMS + "/racing"
        st, body, _ = self.req("POST", CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "racing"}, "data": {}})
        self.assertEqual(st, 201, body)
        threads, per = 12, 30
        failures = []

        def patcher(t):
            for i in range(per):
                st, body, _ = self.req("PATCH", path, {"data": {"t%d-%d" % (t, i): "v"}},
                                       headers={"Content-Type": "application/merge-patch+json"})
                if st != 200:
                    failures.append((st, body))

        ts = [threading.Thread(target=patcher, args=(t,)) for t in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(failures[:3], [], "%d of %d unconditional patches failed" % (len(failures), threads * per))
        data = self.req("GET", path)[1]["data"]
        self.assertEqual(len(data), threads * per, "patches were lost")

        # a delete (no preconditions) racing with patches is not refused either
        stop = threading.Event()

        def toucher(t):
            i = 0
            while not stop.is_set():
                self.req("PATCH", path, {"data": {"late%d" % t: str(i)}},
                         headers={"Content-Type": "application/merge-patch+json"})
                i += 1

        ts = [threading.Thread(target=toucher, args=(t,)) for t in range(8)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        st, body, _ = self.req("DELETE", path)
        stop.set()
        for t in ts:
            t.join()
        self.assertEqual(st, 200, body)
        self.assertEqual(self.req("GET", path)[0], 404)

    # --- not found -----------------------------------------------------------------------------------
    def test_unknown_resource(self):
        for path in ("/apis/apps/v1/namespaces/%s/widgets" % NS, "/api/v1/gizmos", "/apis/nosuch.io/v1/things",
                     "/apis/apps/v9/deployments"):
            self.rejected("GET", path, None, 404, "NotFound", "the server could not find the requested resource")
        self.rejected("POST", "/apis/apps/v1/namespaces/%s/widgets" % NS, {"kind": "Widget"}, 404, "NotFound",
                      "the server could not find the requested resource")

    def test_missing_namespace(self):
        self.rejected("POST", "/apis/apps/v1/namespaces/x/deployments", deployment("orphan"), 404, "NotFound",
                      'namespaces "x" not found')
        self.rejected("POST", "/api/v1/namespaces/x/configmaps",
                      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
                      404, "NotFound", 'namespaces "x" not found')

    def test_delete_missing_object(self):
        s = self.rejected("DELETE", DEPLOYS + "/nope", None, 404, "NotFound", 'deployments.apps "nope" not found')
        self.assertEqual(s["details"]["name"], "nope")
        self.rejected("DELETE", CMS + "/nope", None, 404, "NotFound", 'configmaps "nope" not found')
        self.rejected("GET", DEPLOYS + "/nope", None, 404, "NotFound", 'deployments.apps "nope" not found')
        self.rejected("PATCH", DEPLOYS + "/nope", {"spec": {}}, 404, "NotFound", 'deployments.apps "nope" not found',
                      headers={"Content-Type": "application/merge-patch+json"})

    # --- patches -------------------------------------------------------------------------------------
    def test_json_patch_not_an_array(self):
        self.rejected("PATCH", DEPLOYS + "/anchor", {"op": "replace", "path": "/spec/replicas", "value": 3},
                      400, "BadRequest", headers={"Content-Type": "application/json-patch+json"})
        self.assertEqual(self.anchor()["spec"]["replicas"], 1)
        # a failing test operation leaves the object alone too
        st, body, hdrs = self.req("PATCH", DEPLOYS + "/anchor",
                                  [{"op": "test", "path": "/spec/replicas", "value": 99},
                                   {"op": "replace", "path": "/spec/replicas", "value": 3}],
                                  headers={"Content-Type": "application/json-patch+json"})
        self.assertIn(st, (409, 422, 400), body)
        self.assertEqual(body.get("kind"), "Status", body)
        self.assertEqual(self.anchor()["spec"]["replicas"], 1)

    # --- authentication ------------------------------------------------------------------------------
    def test_no_or_wrong_token(self):
        for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
                        {"Authorization": "Bearer " + self.server.token() + "x"}):
            for method, path, body in (("GET", DEPLOYS, None), ("POST", DEPLOYS, deployment("anon")),
                                       ("DELETE", DEPLOYS + "/anchor", None)):
                h = dict(JSON)
                h.update(headers or {})
                self.rejected(method, path, body, 401, "Unauthorized", headers=h, token=False)
        self.assertEqual(self.anchor()["metadata"]["name"], "anchor")

    def test_health_endpoints_without_token(self):
        for path in ("/healthz", "/livez", "/readyz"):
            st, body, _ = self.server.request("GET", path, token=False, raw=True)
            self.assertEqual(st, 200, body)
            self.assertEqual(body.strip(), b"ok")

    # --- slow and many clients -----------------------------------------------------------------------
    def raw_tls(self):
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        return self.server.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")

    def test_stalled_client_does_not_block_others(self):
        stalled = []
        try:
            # half a request line
            s1 = self.raw_tls()
            s1.sendall(b"GET /api/v1/namespa")
            stalled.append(s1)
            # full headers, half the announced body
            s2 = self.raw_tls()
            s2.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json"
                        "\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":" % (CMS, self.server.token())).encode())
            stalled.append(s2)
            # a TLS connection that never says anything
            stalled.append(self.raw_tls())
            started = time.time()
            for i in range(20):
                st, body, _ = self.req("GET", DEPLOYS + "/anchor")
                self.assertEqual(st, 200, body)
            st, body, _ = self.req("POST", CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "while-stalled"}})
            self.assertEqual(st, 201, body)
            self.assertLess(time.time() - started, 10, "requests were slowed down by stalled connections")
        finally:
            for s in stalled:
                s.close()
        self.assertEqual(self.req("DELETE", CMS + "/while-stalled")[0], 200)
        # the half-sent POST never created anything
        self.assertEqual(sorted(k[1] for k in self.snapshot() if k[0] == CMS), ["cfg"])

    def test_burst_of_300_connections(self):
        n = 300
        barrier = threading.Barrier(n, timeout=60)
        results = [None] * n
        token = self.server.token()
        ctx = self.server.ssl_context()

        def one(i):
            try:
                sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=60)
                tls = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
                barrier.wait()
                tls.sendall(("GET %s/anchor HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nAccept: "
                             "application/json\r\nConnection: close\r\n\r\n" % (DEPLOYS, token)).encode())
                data = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                tls.close()
                results[i] = data
            except Exception as e:  # collected and reported below
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        failures = []
        for i, r in enumerate(results):
            if not isinstance(r, bytes) or not r.startswith(b"HTTP/1.1 200") or b'"name":"anchor"' not in \
                    r.replace(b" ", b""):
                failures.append((i, r if not isinstance(r, bytes) else r[:200]))
        self.assertEqual(failures[:5], [], "%d of %d connections failed" % (len(failures), n))
        # and the server is still fine afterwards
        self.assertEqual(self.server.request("GET", "/readyz", token=False, raw=True)[0], 200)


class ProtocolGarbageTest(harness.ServerTestCase):
    """Broken HTTP and TLS does not take the server down; every case is followed by a normal request."""

    def alive(self):
        st, body, _ = self.server.request("GET", "/api/v1/namespaces/default")
        self.assertEqual(st, 200, body)

    def exchange(self, payload, tls=True, read=True):
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        try:
            if tls:
                sock = self.server.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
            try:
                sock.sendall(payload)
            except (ssl.SSLError, BrokenPipeError, ConnectionResetError):
                pass  # the server may close early on oversized input; then read what it said, if anything
            if not read:
                return b""
            data = b""
            try:
                while len(data) < 65536:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except (socket.timeout, ConnectionResetError, ssl.SSLError):
                pass
            return data
        finally:
            sock.close()

    def status_of(self, data):
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else None

    def test_plain_bytes_on_tls_port(self):
        self.exchange(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", tls=False)
        self.exchange(b"\x16\x03\x01\x00\xff" + b"\x00" * 64, tls=False)
        self.exchange(bytes(range(256)) * 8, tls=False)
        self.alive()

    def test_broken_request_lines(self):
        for payload in (b"\r\n\r\n", b"GARBAGE\r\n\r\n", b"GET\r\n\r\n",
                        b"GET /api HTTP/9.9\r\nHost: x\r\n\r\n",
                        b"GET /api HTTP/1.1\r\nNo-Colon-Header\r\n\r\n",
                        b"POST /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                        b"POST /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
                        b"POST /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"):
            data = self.exchange(payload)
            st = self.status_of(data)
            self.assertTrue(st is None or 400 <= st < 500 or st == 505, (payload, data[:200]))
        self.alive()

    def test_oversized_headers_and_url(self):
        data = self.exchange(b"GET /api HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\n")
        st = self.status_of(data)
        self.assertTrue(st is None or st in (400, 413, 414, 431), data[:200])
        data = self.exchange(b"GET /" + b"a" * (1024 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        st = self.status_of(data)
        self.assertTrue(st is None or st in (400, 404, 414, 431), data[:200])
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(20000))
        data = self.exchange(b"GET /api HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        st = self.status_of(data)
        self.assertTrue(st is None or st in (400, 413, 431), data[:200])
        self.alive()

    def test_many_half_open_tls_handshakes(self):
        socks = []
        try:
            for _ in range(50):
                s = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
                s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then silence
                socks.append(s)
            started = time.time()
            self.alive()
            self.assertLess(time.time() - started, 5)
        finally:
            for s in socks:
                s.close()
        self.alive()


class StopWithStalledClientTest(unittest.TestCase):
    """SIGTERM ends the server within the harness limit even while a client holds a half-sent request."""

    def test_sigterm_with_stalled_connection(self):
        server = harness.Server().start()
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            tls = server.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
            tls.sendall(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\n")
            idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # not even a handshake
            time.sleep(0.3)
            started = time.time()
            rc = server.stop()
            self.assertEqual(rc, 0, server.read_log()[-3000:])
            self.assertLess(time.time() - started, 15)
            tls.close()
            idle.close()
        finally:
            server.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
