"""End-to-end: what `kubec server` promises about starting, restarting and stopping.

- the first start creates ca.crt, serving.crt, token and kubeconfig.yaml (secrets mode 0600), and that
  kubeconfig works with unmodified kubectl; a second start on the same data dir reuses the CA and token;
- the first log line names the storage backend, and the log says how long start-up took;
- the serving certificate verifies against the CA for "localhost" and "127.0.0.1" (and not for other names);
- SIGTERM ends the server with exit code 0 within a few seconds, even with an open watch and an idle
  keep-alive connection;
- --write-kubeconfig writes a second, working copy with mode 0600; `kubec server --help` lists every flag;
- a request without a (valid) token gets 401 with a Status body; data survives a restart;
- a second server on a data dir that is in use refuses to start and leaves the first one intact.
"""
import http.client
import json
import os
import re
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import unittest

import harness

VERSION = os.environ.get("KUBECTL_VERSION", "1.33")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class LifecycleTest(unittest.TestCase):
    def new_server(self, *args, **kw):
        s = harness.Server(args, **kw)
        self.addCleanup(s.cleanup)
        return s

    def stop_ok(self, s, within=5.0):
        t0 = time.time()
        rc = s.stop(signal.SIGTERM)
        took = time.time() - t0
        self.assertEqual(rc, 0, "exit code %s on SIGTERM:\n%s" % (rc, s.read_log()[-3000:]))
        self.assertLess(took, within, "SIGTERM took %.1fs:\n%s" % (took, s.read_log()[-3000:]))

    def kubectl(self, kubeconfig, *args):
        cache = tempfile.mkdtemp(prefix="kubec-lc-cache-")
        cmd = [harness.kubectl_path(VERSION), "--kubeconfig", kubeconfig, "--cache-dir", cache] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        subprocess.run(["rm", "-rf", cache])
        return p

    def test_first_start_files_kubeconfig_and_restart_reuse(self):
        s = self.new_server().start()
        d = s.data_dir
        for f in ("ca.crt", "serving.crt", "token", "kubeconfig.yaml"):
            self.assertTrue(os.path.isfile(os.path.join(d, f)), f)
        self.assertEqual(mode(s.kubeconfig), 0o600, "kubeconfig.yaml mode")
        self.assertEqual(mode(os.path.join(d, "token")), 0o600, "token mode")
        for f in os.listdir(d):
            if f.endswith(".key"):
                self.assertEqual(mode(os.path.join(d, f)), 0o600, f)
        self.assertIn(b"-----BEGIN CERTIFICATE-----", read(os.path.join(d, "ca.crt")))
        token = s.token()
        self.assertGreaterEqual(len(token), 32, "token too short to be a secret")
        kc = read(s.kubeconfig).decode()
        self.assertIn("https://127.0.0.1:%d" % s.port, kc)
        self.assertIn(token, kc)

        p = self.kubectl(s.kubeconfig, "get", "ns")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.splitlines()[0].split(), ["NAME", "STATUS", "AGE"])
        names = [l.split()[0] for l in p.stdout.splitlines()[1:]]
        self.assertIn("default", names)
        self.assertIn("kube-system", names)

        log = s.read_log().splitlines()
        self.assertTrue(log, "empty log")
        self.assertIn("Using storage backend sqlite", log[0])
        self.assertRegex(s.read_log(), r"ready in [0-9]+(\.[0-9]+)? ?(ms|s)\b")

        # data written before a restart is there after it; the CA, token and kubeconfig are reused
        st, body, _ = s.request("POST", "/api/v1/namespaces/default/configmaps",
                                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"},
                                 "data": {"k": "v"}})
        self.assertEqual(st, 201, body)
        ca = read(os.path.join(d, "ca.crt"))
        self.stop_ok(s)
        s.start()
        self.assertEqual(read(os.path.join(d, "ca.crt")), ca, "CA regenerated on restart")
        self.assertEqual(s.token(), token, "token regenerated on restart")
        st, body, _ = s.request("GET", "/api/v1/namespaces/default/configmaps/keep")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["data"], {"k": "v"})
        p = self.kubectl(s.kubeconfig, "get", "configmap", "keep", "-o", "jsonpath={.data.k}")
        self.assertEqual((p.returncode, p.stdout), (0, "v"), p.stderr)
        self.assertEqual(mode(s.kubeconfig), 0o600)
        second_log = s.read_log().splitlines()
        self.assertEqual(sum("Using storage backend sqlite" in l for l in second_log), 2)
        self.stop_ok(s)

    def test_second_server_on_same_data_dir_refused(self):
        # docs/store.md: the store is flock()ed; a second server must not share (and corrupt) it
        s = self.new_server().start()
        self.addCleanup(self.stop_ok, s)
        st, body, _ = s.request("POST", "/api/v1/namespaces/default/configmaps",
                                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first"}})
        self.assertEqual(st, 201, body)
        token, ca = s.token(), read(os.path.join(s.data_dir, "ca.crt"))
        try:
            p = subprocess.run([harness.KUBEC, "server", "--data-dir", s.data_dir,
                                "--listen", "127.0.0.1:%d" % harness.free_port()],
                               capture_output=True, text=True, timeout=10)
        except subprocess.TimeoutExpired as e:   # run() has killed it
            self.fail("a second server on a busy data dir kept running:\n%s" % (e.stdout or b"").decode(errors="replace"))
        self.assertNotEqual(p.returncode, 0, "second server on a busy data dir started:\n" + p.stdout + p.stderr)
        self.assertIn("in use", p.stdout + p.stderr)
        self.assertEqual(s.token(), token)
        self.assertEqual(read(os.path.join(s.data_dir, "ca.crt")), ca)
        st, body, _ = s.request("POST", "/api/v1/namespaces/default/configmaps",
                                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second"}})
        self.assertEqual(st, 201, body)
        st, body, _ = s.request("GET", "/api/v1/namespaces/default/configmaps")
        self.assertEqual(sorted(i["metadata"]["name"] for i in body["items"]), ["first", "second"])

    def test_serving_cert_names(self):
        s = self.new_server().start()
        self.addCleanup(self.stop_ok, s)
        for name in ("localhost", "127.0.0.1"):
            ctx = ssl.create_default_context(cafile=os.path.join(s.data_dir, "ca.crt"))
            self.assertTrue(ctx.check_hostname)
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=name) as tls:
                    cert = tls.getpeercert()
            sans = cert.get("subjectAltName", ())
            self.assertIn(("DNS", "localhost"), sans)
            self.assertIn(("IP Address", "127.0.0.1"), sans)
        # and verification is real: another name is rejected
        ctx = ssl.create_default_context(cafile=os.path.join(s.data_dir, "ca.crt"))
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname="not-this-host.example")
        # via a URL with "localhost" too (hostname verification inside http.client)
        conn = http.client.HTTPSConnection("localhost", s.port, context=s.ssl_context(), timeout=5)
        conn.request("GET", "/readyz")
        self.assertEqual(conn.getresponse().status, 200)
        conn.close()

    def test_sigterm_with_open_watch_and_keepalive(self):
        s = self.new_server().start()
        hdrs = {"Authorization": "Bearer " + s.token(), "Accept": "application/json"}
        watch = http.client.HTTPSConnection("127.0.0.1", s.port, context=s.ssl_context(), timeout=30)
        watch.request("GET", "/api/v1/namespaces/default/configmaps?watch=true", headers=hdrs)
        wr = watch.getresponse()
        self.assertEqual(wr.status, 200)
        ka = http.client.HTTPSConnection("127.0.0.1", s.port, context=s.ssl_context(), timeout=30)
        ka.request("GET", "/api/v1/namespaces", headers=hdrs)
        r = ka.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertNotEqual((r.getheader("Connection") or "").lower(), "close")
        # a second request on the same connection proves it is kept alive
        ka.request("GET", "/api/v1/namespaces/default", headers=hdrs)
        r = ka.getresponse()
        self.assertEqual(r.status, 200)
        r.read()
        self.stop_ok(s, within=5.0)
        # the watch stream ended (cleanly or by close), it did not keep the process alive
        try:
            rest = wr.read()
        except (OSError, http.client.HTTPException):
            rest = b""
        for line in rest.splitlines():
            if line.strip():
                json.loads(line)
        watch.close()
        ka.close()
        self.assertIn("shutting down", s.read_log())

    def test_write_kubeconfig_copy(self):
        out = os.path.join(tempfile.mkdtemp(prefix="kubec-lc-kc-"), "sub", "admin.yaml")
        self.addCleanup(subprocess.run, ["rm", "-rf", os.path.dirname(os.path.dirname(out))])
        os.makedirs(os.path.dirname(out))
        s = self.new_server("--write-kubeconfig", out).start()
        self.addCleanup(self.stop_ok, s)
        self.assertTrue(os.path.isfile(out), "--write-kubeconfig file not written")
        self.assertEqual(mode(out), 0o600)
        self.assertEqual(mode(s.kubeconfig), 0o600)
        p = self.kubectl(out, "get", "ns", "default", "-o", "name")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "namespace/default"), p.stderr)

    def test_help_lists_every_flag(self):
        p = subprocess.run([harness.KUBEC, "server", "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout + p.stderr
        for flag in ("--data-dir", "--listen", "--write-kubeconfig", "--datastore", "--watch-cache-sizes",
                     "--default-watch-cache-size", "--max-requests-inflight"):
            self.assertRegex(text, r"(^|\s)%s\b" % re.escape(flag), flag)
        # an unknown flag is an error, not silently ignored
        p = subprocess.run([harness.KUBEC, "server", "--no-such-flag"], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--no-such-flag", p.stdout + p.stderr)

    def test_unauthenticated_is_401_status(self):
        s = self.new_server().start()
        self.addCleanup(self.stop_ok, s)
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
            st, body, hdrs = s.request("GET", "/api/v1/namespaces", token=False, headers=headers)
            self.assertEqual(st, 401, (headers, body))
            self.assertIsInstance(body, dict, body)
            self.assertEqual(body.get("kind"), "Status")
            self.assertEqual(body.get("apiVersion"), "v1")
            self.assertEqual(body.get("status"), "Failure")
            self.assertEqual(body.get("code"), 401)
            self.assertEqual(body.get("reason"), "Unauthorized")
            self.assertTrue(hdrs.get("Content-Type", "").startswith("application/json"), hdrs)
        # writes too, and nothing was created
        st, body, _ = s.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                               "metadata": {"name": "sneaky"}}, token=False)
        self.assertEqual(st, 401, body)
        st, body, _ = s.request("GET", "/api/v1/namespaces/sneaky")
        self.assertEqual(st, 404, body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
