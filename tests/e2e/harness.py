"""harness.py — start a real `kubec server` for an end-to-end test and drive it with real clients.

Each test gets its own port (picked free by the OS) and its own data directory, so suites run side by
side. The server is stopped with SIGTERM at the end and must exit 0 within 15 s; a test that leaves the
server running fails. Used by every tests/e2e/test_*.py (stdlib unittest only, run with /usr/bin/python3).
"""
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

KUBEC = os.environ.get("KUBEC_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "kubec")
KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"


def kubectl_path(version):
    """The unmodified kubectl of that minor version, or Debian's /usr/bin/kubectl as a fallback."""
    p = os.path.join(KUBECTL_DIR, "kubectl." + version)
    if os.path.exists(p):
        return p
    if shutil.which("kubectl"):
        return shutil.which("kubectl")
    raise unittest.SkipTest("no kubectl %s on this machine" % version)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, extra_args=(), data_dir=None, port=None):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kubec-e2e-")
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.proc = None
        self.log_path = os.path.join(self.data_dir, "server.log")

    @property
    def kubeconfig(self):
        return os.path.join(self.data_dir, "kubeconfig.yaml")

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([KUBEC, "server", "--data-dir", self.data_dir,
                                      "--listen", "127.0.0.1:%d" % self.port] + self.extra_args,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        ctx = ssl._create_unverified_context()
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kubec server exited with %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                with urllib.request.urlopen(self.url + "/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200 and os.path.exists(self.kubeconfig):
                        return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("kubec server not ready in %ss:\n%s" % (timeout, self.read_log()))

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def token(self):
        with open(os.path.join(self.data_dir, "token")) as f:
            return f.read().strip()

    def ssl_context(self):
        return ssl.create_default_context(cafile=os.path.join(self.data_dir, "ca.crt"))

    def request(self, method, path, body=None, headers=None, token=True, raw=False):
        """One HTTPS request; returns (status, parsed JSON or bytes, headers)."""
        h = {"Accept": "application/json"}
        if token:
            h["Authorization"] = "Bearer " + self.token()
        if headers:
            h.update(headers)
        data = body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as r:
                payload = r.read()
                status, hdrs = r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            payload, status, hdrs = e.read(), e.code, dict(e.headers)
        if raw:
            return status, payload, hdrs
        try:
            return status, json.loads(payload) if payload else None, hdrs
        except ValueError:
            return status, payload, hdrs

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stops the server; returns its exit code. SIGTERM must end it cleanly."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("kubec server did not stop within %ss of signal %s" % (timeout, sig))
        self.log.close()
        return rc

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class ServerTestCase(unittest.TestCase):
    """One server for the whole class; SIGTERM must stop it with exit code 0."""
    server_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = Server(cls.server_args).start()

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.server.stop()
            if rc != 0:
                raise AssertionError("kubec server exited %s on SIGTERM:\n%s" % (rc, cls.server.read_log()[-4000:]))
        finally:
            cls.server.cleanup()


class KubectlMixin:
    """`self.k(...)`: run the test's kubectl (cls.kubectl_bin) against self.server with the class's own
    discovery cache (cls.cache); by default a non-zero exit fails the test with kubectl's output."""
    kubectl_timeout = 60

    def k(self, *args, ok=True, input=None, timeout=None):
        cmd = [self.kubectl_bin, "--kubeconfig", self.server.kubeconfig, "--cache-dir", self.cache] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, input=input,
                           timeout=timeout or self.kubectl_timeout)
        if ok:
            self.assertEqual(p.returncode, 0, "kubectl %s failed: %s%s" % (" ".join(args), p.stdout, p.stderr))
        return p


def run(cmd, env=None, input=None, timeout=60):
    p = subprocess.run(cmd, env=env, input=input, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr
