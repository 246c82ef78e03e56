"""End-to-end: joining a node agent with the server's join token (k3s style).

`kubec server` writes DATA-DIR/node-token = K10<sha256 of ca.crt>::<node credential>. `kubec agent
--server URL --token TOKEN` fetches GET /cacerts without trusting it, checks the hash, then talks to the
server trusting that CA alone with the credential as its bearer token. Covered: an agent (sim nodes)
joins and runs a pod; a token with a wrong CA hash is refused with a message naming both hashes; a
malformed token is refused; the credential has node rights only (403 for Deployments); /cacerts is
public and hashes to the token's hash; the token survives a server restart.
"""
import hashlib
import json
import os
import signal
import ssl
import subprocess
import time
import unittest
import urllib.request

import harness


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


class JoinTest(harness.ServerTestCase):
    def token(self):
        with open(os.path.join(self.server.data_dir, "node-token")) as f:
            return f.read().strip()

    def agent(self, token, *extra):
        return subprocess.Popen([harness.KUBEC, "agent", "--server", self.server.url, "--token", token] + list(extra),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def as_node(self, method, path, body=None):
        cred = self.token().split("::", 1)[1]
        return self.server.request(method, path, body, headers={"Authorization": "Bearer " + cred}, token=False)

    def test_token_format_and_cacerts(self):
        tok = self.token()
        self.assertRegex(tok, r"^K10[0-9a-f]{64}::node:[0-9a-f]{64}$")
        with urllib.request.urlopen(self.server.url + "/cacerts", context=ssl._create_unverified_context()) as r:
            ca = r.read()
        self.assertEqual(hashlib.sha256(ca).hexdigest(), tok[3:67])
        with open(os.path.join(self.server.data_dir, "ca.crt"), "rb") as f:
            self.assertEqual(f.read(), ca)

    def test_node_credential_has_node_rights_only(self):
        self.assertEqual(self.as_node("GET", "/api/v1/nodes")[0], 200)
        self.assertEqual(self.as_node("GET", "/api/v1/pods")[0], 200)
        st, body, _ = self.as_node("GET", "/apis/apps/v1/deployments")
        self.assertEqual(st, 403, body)
        self.assertIn("forbidden", body["message"])
        st, _, _ = self.as_node("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                                "metadata": {"name": "nope"}})
        self.assertEqual(st, 403)
        st, _, _ = self.as_node("POST", "/api/v1/namespaces/default/pods", {"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "nope"}, "spec": {"containers": [{"name": "a", "image": "x"}]}})
        self.assertEqual(st, 403)
        st, _, _ = self.server.request("GET", "/api/v1/nodes", headers={"Authorization": "Bearer node:0000"},
                                       token=False)
        self.assertEqual(st, 401)

    def test_agent_joins_and_runs_a_pod(self):
        p = self.agent(self.token(), "--sim-nodes", "2", "--node-name-prefix", "joined",
                       "--node-lease-renew-interval", "2")
        try:
            wait(lambda: self.server.request("GET", "/api/v1/nodes/joined-1")[0] == 200, 20, "joined nodes")
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "onjoined", "namespace": "default"},
                   "spec": {"nodeName": "joined-0", "containers": [{"name": "a", "image": "busybox"}]}}
            st, body, _ = self.server.request("POST", "/api/v1/namespaces/default/pods", pod)
            self.assertEqual(st, 201, body)
            wait(lambda: (self.server.request("GET", "/api/v1/namespaces/default/pods/onjoined")[1] or {})
                 .get("status", {}).get("phase") == "Running", 20, "pod Running on a joined node")
            st, lease, _ = self.server.request("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/joined-0")
            self.assertEqual(st, 200, lease)
        finally:
            p.send_signal(signal.SIGTERM)
            out = p.communicate(timeout=20)[0]
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("matches the join token's hash", out)

    def test_wrong_ca_hash_refused(self):
        tok = self.token()
        bad = "K10" + ("0" * 64) + tok[67:]
        p = self.agent(bad, "--sim-nodes", "1", "--node-name-prefix", "intruder")
        out = p.communicate(timeout=30)[0]
        self.assertEqual(p.returncode, 1, out)
        self.assertIn("refusing to join", out)
        self.assertIn(tok[3:67], out)  # what the server's CA hashes to
        self.assertIn("0" * 64, out)   # what the token expected
        self.assertEqual(self.server.request("GET", "/api/v1/nodes/intruder-0")[0], 404)

    def test_malformed_token_refused(self):
        p = self.agent("K10abc::x", "--sim-nodes", "1")
        out = p.communicate(timeout=30)[0]
        self.assertEqual(p.returncode, 1, out)
        self.assertIn("malformed join token", out)

    def test_zz_token_survives_restart(self):
        before = self.token()
        self.assertEqual(self.server.stop(), 0)
        self.server.start()
        self.assertEqual(self.token(), before)
        self.assertEqual(self.as_node("GET", "/api/v1/nodes")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
