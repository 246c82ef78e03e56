"""test_images.py — image pulls against a real registry (docker-registry with TLS + htpasswd).

Drives the node's image store through `kubec images pull|ls|prune --local DIR` (KC_IMAGE_TOOL, the
same code as the agent's) and checks each failure cause a user must be told about: unauthorized
(naming the secret), expired certificate (with its expiry date), unknown authority, manifest unknown,
registry unreachable, digest mismatch, invalid name — plus the successful paths: basic auth, image
index → linux/amd64, whiteouts across layers, cached image without the registry, prune.
Every command is bounded by a timeout; the registry is stopped in tearDownClass and at exit.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from registry_fixture import Registry  # noqa: E402

REPO = "kubec/busybox"


def tool_cmd():
    t = os.environ.get("KC_IMAGE_TOOL")
    if t and os.access(t, os.X_OK):
        return [t]
    return [os.environ.get("KUBEC_BIN", "kubec"), "images"]


class RegistryCase(unittest.TestCase):
    """A class-wide registry with images pushed, and docker-config files for a good and a bad secret."""

    @staticmethod
    def start(cls, reg, push, prefix):
        cls.reg = reg
        try:
            reg.start()
            push(reg)
        except Exception:
            reg.close()
            raise
        cls.tmp = tempfile.mkdtemp(prefix=prefix)
        cls.secrets = {}
        for name, pw in (("regcred", None), ("badcred", "wrong-password")):
            p = os.path.join(cls.tmp, name + ".json")
            with open(p, "w") as f:
                json.dump(reg.secret(name, password=pw), f)
            cls.secrets[name] = p

    @classmethod
    def tearDownClass(cls):
        cls.reg.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)


class ImagesTest(RegistryCase):
    @classmethod
    def setUpClass(cls):
        def push(reg):
            cls.v1 = reg.push_busybox("v1", files={"etc/only-in-v1": "x\n"}, remove=["etc/removed"])
            cls.v2 = reg.push_busybox("v2")
        RegistryCase.start(cls, Registry(), push, "kubec-images-")

    def setUp(self):
        self.store = tempfile.mkdtemp(prefix="store-", dir=self.tmp)
        self.reg.start()  # a test that stopped it may have failed half-way

    def images(self, *args, secret="regcred", ca=True, store=None, timeout=90):
        cmd = tool_cmd() + list(args) + ["--local", store or self.store]
        if secret:
            cmd += ["--secret", self.secrets[secret]]
        if ca:
            cmd += ["--ca-dir", self.reg.ca_dir]
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        self.elapsed = time.time() - t0
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            self.fail("no JSON from %s: rc=%d stdout=%r stderr=%r" % (cmd, p.returncode, p.stdout, p.stderr))
        return p.returncode, out

    def pull(self, ref, **kw):
        return self.images("pull", ref, **kw)

    def pull_ok(self, ref, **kw):
        rc, out = self.pull(ref, **kw)
        self.assertEqual(rc, 0, out)
        return out

    def pull_fails(self, ref, *words, **kw):
        rc, out = self.pull(ref, **kw)
        self.assertEqual(rc, 1, out)
        for w in words:
            self.assertIn(w, out["message"])
        return out

    def ref(self, tag):
        return "%s/%s:%s" % (self.reg.host, REPO, tag)

    # ---- success paths ----
    def test_pull_basic_auth(self):
        out = self.pull_ok(self.ref("v1"))
        self.assertEqual(out["ref"], self.ref("v1"))
        self.assertEqual(out["digest"], self.v1)  # the registry's manifest digest is the image ID
        root = out["rootfs"]
        self.assertTrue(os.access(os.path.join(root, "bin", "busybox"), os.X_OK))
        self.assertEqual(os.readlink(os.path.join(root, "bin", "sh")), "busybox")
        with open(os.path.join(root, "etc", "kc-tag")) as f:
            self.assertEqual(f.read(), "v1\n")
        self.assertTrue(os.path.exists(os.path.join(root, "etc", "only-in-v1")))
        # etc/removed was added in layer 1 and whited out in layer 2
        self.assertFalse(os.path.exists(os.path.join(root, "etc", "removed")))
        self.assertFalse(any(n.startswith(".wh.") for n in os.listdir(os.path.join(root, "etc"))))
        self.assertEqual(out["config"]["config"]["Cmd"], ["/bin/sh", "-c", "echo hello; sleep 3600"])
        self.assertGreater(out["sizeBytes"], 500000)  # busybox-static is ~1 MB
        # the busybox in the rootfs runs
        p = subprocess.run([os.path.join(root, "bin", "busybox"), "echo", "ok"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.stdout, "ok\n")
        rc, ls = self.images("ls", secret=None, ca=False)
        self.assertEqual(rc, 0)
        self.assertEqual(len(ls), 1)
        self.assertIn(self.ref("v1"), ls[0]["names"])
        self.assertIn("%s/%s@%s" % (self.reg.host, REPO, self.v1), ls[0]["names"])
        self.assertEqual(ls[0]["sizeBytes"], out["sizeBytes"])

    def test_cached_image_needs_no_registry(self):
        self.pull_ok(self.ref("v2"))
        self.reg.stop()
        try:
            out = self.pull_ok(self.ref("v2"), secret=None, ca=False)  # IfNotPresent: served from the store
            self.assertEqual(out["digest"], self.v2)
            rc, out = self.images("pull", self.ref("v2"), "--force")  # Always: must ask the registry
            self.assertEqual(rc, 1)
            self.assertIn("unreachable", out["message"])
        finally:
            self.reg.start()

    def test_removed_rootfs_is_rebuilt(self):
        out = self.pull_ok(self.ref("v1"))
        shutil.rmtree(out["rootfs"])  # e.g. someone cleaned the node's disk by hand
        again = self.pull_ok(self.ref("v1"))
        self.assertEqual(again["rootfs"], out["rootfs"])
        self.assertTrue(os.access(os.path.join(again["rootfs"], "bin", "busybox"), os.X_OK))

    def test_index_resolves_linux_amd64(self):
        idx = self.reg.push_index(REPO, "multi", [("linux", "arm64", self.v1), ("linux", "amd64", self.v2)])
        out = self.pull_ok(self.ref("multi"))
        self.assertEqual(out["digest"], self.v2)
        with open(os.path.join(out["rootfs"], "etc", "kc-tag")) as f:
            self.assertEqual(f.read(), "v2\n")
        out = self.pull_ok("%s/%s@%s" % (self.reg.host, REPO, idx), store=tempfile.mkdtemp(dir=self.tmp))
        self.assertEqual(out["digest"], self.v2)

    def test_docker_media_types(self):
        d = self.reg.push_busybox("docker", docker_format=True)
        _, mt, _ = self.reg.manifest(REPO, d)
        self.assertEqual(mt, "application/vnd.docker.distribution.manifest.v2+json")
        lst = self.reg.push_index(REPO, "dockerlist", [("linux", "amd64", d), ("windows", "amd64", self.v1)],
                                  docker_list=True)
        self.assertEqual(self.reg.manifest(REPO, lst)[1], "application/vnd.docker.distribution.manifest.list.v2+json")
        out = self.pull_ok(self.ref("dockerlist"))
        self.assertEqual(out["digest"], d)
        with open(os.path.join(out["rootfs"], "etc", "kc-tag")) as f:
            self.assertEqual(f.read(), "docker\n")

    def test_zstd_layers(self):
        d = self.reg.push_busybox("zstd", zstd=True)
        _, _, man = self.reg.manifest(REPO, d)
        self.assertTrue(all(l["mediaType"].endswith("+zstd") for l in man["layers"]), man["layers"])
        out = self.pull_ok(self.ref("zstd"))
        with open(os.path.join(out["rootfs"], "etc", "kc-tag")) as f:
            self.assertEqual(f.read(), "zstd\n")

    def test_secret_for_another_registry(self):
        p = os.path.join(self.tmp, "othercred.json")
        sec = self.reg.secret("othercred")
        doc = json.loads(base64.b64decode(sec["data"][".dockerconfigjson"]))
        doc["auths"] = {"other.example:5000": doc["auths"][self.reg.host]}
        sec["data"][".dockerconfigjson"] = base64.b64encode(json.dumps(doc).encode()).decode()
        with open(p, "w") as f:
            json.dump(sec, f)
        self.secrets["othercred"] = p
        self.pull_fails(self.ref("v1"), "unauthorized", 'none of the pull secrets ("othercred")', secret="othercred")

    def test_silent_registry_times_out_as_unreachable(self):
        # a listener that accepts and never answers (a black-holed registry): bounded, and said so
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        try:
            out = self.pull_fails("127.0.0.1:%d/%s:v1" % (s.getsockname()[1], REPO), "unreachable", "timed out")
            self.assertLess(self.elapsed, 25)
        finally:
            s.close()

    def test_stale_cache_and_force_pull(self):
        first = self.reg.push_busybox("moving", files={"etc/gen": "1\n"})
        self.assertEqual(self.pull_ok(self.ref("moving"))["digest"], first)
        second = self.reg.push_busybox("moving", files={"etc/gen": "2\n"})
        self.assertNotEqual(first, second)
        # IfNotPresent: the cached (now stale) image
        self.assertEqual(self.pull_ok(self.ref("moving"))["digest"], first)
        # Always: the tag is re-resolved; the name moves to the new image
        rc, out = self.images("pull", self.ref("moving"), "--force")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["digest"], second)
        with open(os.path.join(out["rootfs"], "etc", "gen")) as f:
            self.assertEqual(f.read(), "2\n")
        rc, ls = self.images("ls", secret=None, ca=False)
        owners = [i for i in ls if self.ref("moving") in i["names"]]
        self.assertEqual(len(owners), 1)
        self.assertIn(second, owners[0]["names"])
        self.assertEqual(len(ls), 2)  # the old image stays (by digest) until pruned

    def test_prune_frees_the_store(self):
        a = self.pull_ok(self.ref("v1"))
        self.pull_ok(self.ref("v2"))
        rc, out = self.images("prune", "--keep", self.ref("v2"), secret=None, ca=False)
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["freedBytes"], a["sizeBytes"])
        self.assertFalse(os.path.exists(a["rootfs"]))
        rc, ls = self.images("ls", secret=None, ca=False)
        self.assertEqual([self.ref("v2") in i["names"] for i in ls], [True])
        rc, out = self.images("prune", secret=None, ca=False)
        self.assertGreater(out["freedBytes"], 0)
        self.assertEqual(os.listdir(os.path.join(self.store, "rootfs")), [])
        self.assertEqual(os.listdir(os.path.join(self.store, "blobs", "sha256")), [])

    # ---- failure causes ----
    def test_no_credentials_unauthorized(self):
        self.pull_fails(self.ref("v1"), "unauthorized", "no imagePullSecret", secret=None)
        self.assertEqual(os.listdir(os.path.join(self.store, "rootfs")), [])

    def test_missing_secret_is_named(self):
        self.secrets["gone"] = os.path.join(self.tmp, "regcred-gone")  # no such file = no such Secret
        self.pull_fails(self.ref("v1"), "unauthorized", "regcred-gone", "not found", secret="gone")

    def test_wrong_credentials_name_the_secret(self):
        out = self.pull_fails(self.ref("v1"), "unauthorized", '"badcred"', secret="badcred")
        self.assertEqual(out["reason"], "ErrImagePull")

    def test_unknown_authority(self):
        self.pull_fails(self.ref("v1"), "unknown authority", self.reg.host, ca=False)

    def test_missing_tag_manifest_unknown(self):
        self.pull_fails(self.ref("no-such-tag"), "manifest unknown", "no-such-tag")

    def test_invalid_name(self):
        out = self.pull_fails("%s/Kubec/BusyBox:v1" % self.reg.host, "lowercase")
        self.assertEqual(out["reason"], "InvalidImageName")

    def test_registry_stopped_unreachable(self):
        self.reg.stop()
        try:
            self.pull_fails(self.ref("v1"), "unreachable", self.reg.host)
            self.assertLess(self.elapsed, 30)
        finally:
            self.reg.start()

    def test_expired_certificate_then_renewed(self):
        na = self.reg.reissue_cert(expired=True)
        self.reg.restart()
        try:
            out = self.pull_fails(self.ref("v1"), "certificate expired", na.strftime("%Y-%m-%d %H:%M:%S"))
            self.assertIn(self.reg.host, out["message"])
        finally:
            self.reg.reissue_cert(expired=False)
            self.reg.restart()
        self.pull_ok(self.ref("v1"))  # renewed: the same pull now succeeds

    def test_digest_mismatch_refused(self):
        # a third image so that corrupting its layer does not disturb the other tests
        dg = self.reg.push_busybox("corrupt", files={"etc/unique": str(time.time())})
        _, _, man = self.reg.manifest(REPO, dg)
        layer = man["layers"][-1]["digest"]
        path = self.reg.blob_file(layer)
        with open(path, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0xFF]))
        out = self.pull_fails(self.ref("corrupt"), "digest mismatch", layer, "refused")
        self.assertEqual(out["reason"], "ErrImagePull")
        self.assertEqual(os.listdir(os.path.join(self.store, "rootfs")), [])
        self.assertNotIn(layer.split(":")[1], os.listdir(os.path.join(self.store, "blobs", "sha256")))


class BearerTokenTest(RegistryCase):
    """The registry delegates auth to a token service (WWW-Authenticate: Bearer realm=...)."""

    @classmethod
    def setUpClass(cls):
        def push(reg):
            cls.v1 = reg.push_busybox("v1")
        RegistryCase.start(cls, Registry(auth="token"), push, "kubec-images-bearer-")

    def pull(self, secret):
        cmd = tool_cmd() + ["pull", "%s/%s:v1" % (self.reg.host, REPO), "--local", tempfile.mkdtemp(dir=self.tmp),
                            "--ca-dir", self.reg.ca_dir]
        if secret:
            cmd += ["--secret", self.secrets[secret]]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])

    def test_token_with_credentials(self):
        del self.reg.tokens.requests[:]
        rc, out = self.pull("regcred")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["digest"], self.v1)
        # one token for the pull, asked with the secret's user for exactly this repository
        self.assertEqual(self.reg.tokens.requests, [("kcuser", "repository:%s:pull" % REPO, True)])

    def test_concurrent_pulls_coalesced(self):
        tool = os.environ.get("KC_IMAGE_CONCURRENT")
        if not tool:
            self.skipTest("KC_IMAGE_CONCURRENT not set (run through ctest)")
        del self.reg.tokens.requests[:]
        p = subprocess.run([tool, tempfile.mkdtemp(dir=self.tmp), self.reg.ca_dir, self.secrets["regcred"],
                            "%s/%s:v1" % (self.reg.host, REPO), "8"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = json.loads(p.stdout)
        self.assertEqual(out, {"ok": 8, "digests": [self.v1], "errors": []})
        # eight callers, one pull: a single token request reached the token service
        self.assertEqual(len(self.reg.tokens.requests), 1, self.reg.tokens.requests)

    def test_anonymous_token_is_unauthorized(self):
        rc, out = self.pull(None)
        self.assertEqual(rc, 1)
        self.assertIn("unauthorized", out["message"])
        self.assertIn("no imagePullSecret", out["message"])

    def test_rejected_by_token_service_names_secret(self):
        rc, out = self.pull("badcred")
        self.assertEqual(rc, 1)
        self.assertIn("unauthorized", out["message"])
        self.assertIn('"badcred"', out["message"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
