"""registry_fixture.py — a real OCI registry on loopback for end-to-end tests.

Starts Debian's `docker-registry` (distribution 2.8) on a free 127.0.0.1 port with TLS from a test CA
and htpasswd (bcrypt) auth, builds small images from Debian's busybox-static with `umoci` and pushes
them with `skopeo`. It installs nothing: scripts/deps.sh does (docker-registry, apache2-utils, umoci,
skopeo, busybox-static, python3-cryptography). The server certificate can be re-issued expired or
valid (then the registry is restarted, as it reads its certificate at start).

    with Registry() as reg:               # started; always stopped on exit (and at interpreter exit)
        reg.push_busybox("v1")            # -> manifest digest
        reg.host                          # "127.0.0.1:PORT"
        reg.ca_dir                        # dir with "<host>.crt" (the per-registry CA layout)
        reg.secret("regcred")             # a kubernetes.io/dockerconfigjson Secret (dict)
        reg.reissue_cert(expired=True); reg.restart()
        reg.stop(); reg.start()

    Registry(auth="token") uses bearer tokens instead of basic auth: a token service (a thread of this
    process, HTTPS on its own port) checks the htpasswd user and issues ES256 JWTs carrying the requested
    repository actions, which the registry verifies against the signing certificate (x5c header).

Every wait is bounded; a registry that does not come up raises with the tail of its log.
"""
import atexit
import base64
import http.server
import threading
import urllib.parse
import datetime
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

REGISTRY_BIN = "/usr/bin/docker-registry"
TOOLS = {"docker-registry": REGISTRY_BIN, "htpasswd": "/usr/bin/htpasswd", "umoci": "/usr/bin/umoci",
         "skopeo": "/usr/bin/skopeo", "busybox": "/bin/busybox"}


def missing_tools():
    """Names of the programs (or python modules) this fixture needs that are not installed."""
    out = [n for n, p in TOOLS.items() if not os.access(p, os.X_OK)]
    try:
        import cryptography  # noqa: F401
    except ImportError:
        out.append("python3-cryptography")
    return out


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _die_with_parent():
    """preexec_fn: the registry gets SIGKILL if the test process dies (even by SIGKILL, e.g. a ctest
    timeout), so no registry outlives its test."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _run(cmd, timeout=120, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(cmd), p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
    return p.stdout


class TestCA:
    """A CA key/cert and server certificates it signs (python3-cryptography)."""

    def __init__(self, name="kubec test registry CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subj = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))

    def pem(self):
        from cryptography.hazmat.primitives import serialization
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cert_path, key_path, ip="127.0.0.1", expired=False):
        """Writes a server certificate for ip; expired: valid from 10 days ago until 1 day ago.
        Returns its notAfter (a UTC datetime)."""
        import ipaddress
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        nb, na = (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)) if expired else \
            (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=7))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry " + ip)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na)
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)),
                                                            x509.DNSName("localhost")]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .sign(self.key, hashes.SHA256()))
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(key_path, 0o600)
        return na


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenService:
    """The registry's bearer-token realm: GET /token?service=..&scope=repository:NAME:ACTIONS with
    optional basic credentials. Valid credentials get the requested actions; none get an anonymous
    token without access (the registry then answers 401); wrong ones get 401."""

    def __init__(self, reg, service, issuer):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        self.reg, self.service, self.issuer = reg, service, issuer
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubec test token signer")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=30))
                     .sign(self.key, hashes.SHA256()))
        self.bundle = os.path.join(reg.dir, "token-signer.crt")
        with open(self.bundle, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        self.port = _free_port()
        self.requests = []  # (user or None, scope, granted)
        self.httpd = None

    def token(self, user, scope):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        access = []
        if user and scope:
            typ, name, actions = scope.split(":", 2)
            access.append({"type": typ, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 600, "nbf": now - 60,
                  "iat": now, "jti": os.urandom(8).hex(), "access": access}
        signing_input = (_b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())).encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return signing_input.decode() + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def start(self):
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                scope = (q.get("scope") or [""])[0]
                user = None
                h = self.headers.get("Authorization", "")
                if h.startswith("Basic "):
                    u, _, p = base64.b64decode(h[6:]).decode().partition(":")
                    if (u, p) != (svc.reg.user, svc.reg.password):
                        svc.requests.append((u, scope, False))
                        self.send_response(401)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"details":"invalid username or password"}')
                        return
                    user = u
                svc.requests.append((user, scope, bool(user)))
                body = json.dumps({"token": svc.token(user, scope), "expires_in": 600}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.reg.cert_path, self.reg.key_path)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        h, self.httpd = self.httpd, None
        if h:
            h.shutdown()
            h.server_close()


class Registry:
    def __init__(self, user="kcuser", password="kc-pass-1", workdir=None, auth="htpasswd"):
        miss = missing_tools()
        if miss:
            raise RuntimeError("registry fixture needs: " + ", ".join(miss) + " (run scripts/deps.sh)")
        self.user, self.password = user, password
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="kubec-registry-")
        self.port = _free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.proc = None
        self.ca = TestCA()
        self.ca_dir = os.path.join(self.dir, "ca")          # <host>.crt for kubec
        self.skopeo_certs = os.path.join(self.dir, "skopeo-certs")
        self.storage = os.path.join(self.dir, "storage")
        self.cert_path = os.path.join(self.dir, "server.crt")
        self.key_path = os.path.join(self.dir, "server.key")
        self.log_path = os.path.join(self.dir, "registry.log")
        self.ca_file = os.path.join(self.dir, "ca.crt")        # the test CA alone (PEM)
        self.layout = os.path.join(self.dir, "oci")
        for d in (self.ca_dir, self.skopeo_certs, self.storage):
            os.makedirs(d, exist_ok=True)
        for p in (os.path.join(self.ca_dir, self.host + ".crt"), os.path.join(self.skopeo_certs, "ca.crt"),
                  os.path.join(self.dir, "ca.crt")):
            with open(p, "wb") as f:
                f.write(self.ca.pem())
        self.not_after = self.ca.issue(self.cert_path, self.key_path)
        _run(["htpasswd", "-Bbc", os.path.join(self.dir, "htpasswd"), user, password])
        self.tokens = TokenService(self, "kubec-test-registry", "kubec-test-issuer") if auth == "token" else None
        self._write_config()
        atexit.register(self.stop)

    # ---- lifecycle ----
    def _write_config(self):
        # YAML written by hand (JSON is YAML): no PyYAML needed.
        cfg = {"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
               "storage": {"filesystem": {"rootdirectory": self.storage}, "delete": {"enabled": True}},
               "http": {"addr": self.host, "tls": {"certificate": self.cert_path, "key": self.key_path}},
               "auth": {"htpasswd": {"realm": "kubec-test", "path": os.path.join(self.dir, "htpasswd")}}}
        if self.tokens:
            cfg["auth"] = {"token": {"realm": "https://127.0.0.1:%d/token" % self.tokens.port,
                                     "service": self.tokens.service, "issuer": self.tokens.issuer,
                                     "rootcertbundle": self.tokens.bundle}}
        with open(os.path.join(self.dir, "config.yml"), "w") as f:
            json.dump(cfg, f, indent=1)

    def start(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            return
        if self.tokens and not self.tokens.httpd:
            self.tokens.start()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", os.path.join(self.dir, "config.yml")],
                                     stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited %d: %s" % (self.proc.returncode, self.log_tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("docker-registry did not listen on %s within %ds: %s" % (self.host, timeout, self.log_tail()))

    def stop(self):
        """Stops the registry (the token service keeps running: it is a different host in real life)."""
        p, self.proc = self.proc, None
        if not p or p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        except ProcessLookupError:
            pass

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        self.stop()
        if self.tokens:
            self.tokens.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *a):
        self.close()

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def reissue_cert(self, expired=False):
        """New server certificate (expired or valid); takes effect at the next (re)start."""
        self.not_after = self.ca.issue(self.cert_path, self.key_path, expired=expired)
        return self.not_after

    # ---- credentials ----
    def secret(self, name, user=None, password=None, namespace="default"):
        """A kubernetes.io/dockerconfigjson Secret for this registry."""
        u, p = user or self.user, password if password is not None else self.password
        doc = {"auths": {self.host: {"username": u, "password": p,
                                     "auth": base64.b64encode(("%s:%s" % (u, p)).encode()).decode()}}}
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                "metadata": {"name": name, "namespace": namespace},
                "data": {".dockerconfigjson": base64.b64encode(json.dumps(doc).encode()).decode()}}

    # ---- images ----
    def _layout_init(self):
        if not os.path.isdir(self.layout):
            _run(["umoci", "init", "--layout", self.layout])

    def push_busybox(self, tag, repo="kubec/busybox", files=None, remove=(),
                     cmd=("/bin/sh", "-c", "echo hello; sleep 3600"), docker_format=False, zstd=False):
        """Builds an image (busybox-static with applet links, /etc/kc-tag = tag, extra files {path: text},
        paths in remove deleted in a second layer, i.e. whiteouts) and pushes it as repo:tag (OCI media
        types, or Docker schema 2 with docker_format; zstd-compressed layers with zstd). Returns the
        manifest digest the registry stores."""
        self._layout_init()
        src = "%s:%s" % (self.layout, tag)
        _run(["umoci", "new", "--image", src])
        bundle = os.path.join(self.dir, "bundle-" + tag)
        shutil.rmtree(bundle, ignore_errors=True)
        _run(["umoci", "unpack", "--image", src, bundle])
        rootfs = os.path.join(bundle, "rootfs")
        for d in ("bin", "etc", "tmp"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        shutil.copy2("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
        for applet in ("sh", "echo", "cat", "ls", "sleep", "wget", "true", "false", "env", "id"):
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
        files = dict(files or {})
        files.setdefault("etc/kc-tag", tag + "\n")
        for rm in remove:
            files.setdefault(rm, "to be removed\n")
        for path, text in files.items():
            p = os.path.join(rootfs, path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w") as f:
                f.write(text)
        _run(["umoci", "repack", "--refresh-bundle", "--image", src, bundle])
        if remove:
            for rm in remove:
                p = os.path.join(rootfs, rm)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
            _run(["umoci", "repack", "--image", src, bundle])
        args = ["umoci", "config", "--image", src, "--os", "linux",
                "--architecture", "amd64", "--config.env", "PATH=/bin"]
        for c in cmd:
            args += ["--config.cmd", c]
        _run(args)
        shutil.rmtree(bundle, ignore_errors=True)
        _run(["skopeo", "copy", "--quiet", "--dest-creds", "%s:%s" % (self.user, self.password),
              "--dest-cert-dir", self.skopeo_certs] + (["--format", "v2s2"] if docker_format else []) +
             (["--dest-compress", "--dest-compress-format", "zstd"] if zstd else []) +
             ["oci:" + src, "docker://%s/%s:%s" % (self.host, repo, tag)], timeout=180)
        return self.manifest_digest(repo, tag)

    def _request(self, method, path, body=None, headers=None):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "ca.crt"))
        req = urllib.request.Request("https://%s%s" % (self.host, path), data=body, method=method)
        if self.tokens:
            repo = path[len("/v2/"):].rsplit("/", 2)[0]  # /v2/<repo>/manifests/<ref>
            req.add_header("Authorization", "Bearer " + self.tokens.token(self.user, "repository:%s:pull,push" % repo))
        else:
            req.add_header("Authorization", "Basic " + base64.b64encode(
                ("%s:%s" % (self.user, self.password)).encode()).decode())
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, dict(r.headers), r.read()

    def manifest(self, repo, ref):
        """(digest, mediaType, document) of repo:ref as the registry serves it."""
        _, h, body = self._request("GET", "/v2/%s/manifests/%s" % (repo, ref), headers={"Accept": ", ".join([
            "application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json"])})
        return "sha256:" + hashlib.sha256(body).hexdigest(), h.get("Content-Type"), json.loads(body)

    def manifest_digest(self, repo, ref):
        return self.manifest(repo, ref)[0]

    def push_index(self, repo, tag, platforms, docker_list=False):
        """Pushes an OCI image index (or a Docker manifest list): platforms = [(os, arch, digest), ...]."""
        ms = []
        for os_, arch, dg in platforms:
            _, mt, doc = self.manifest(repo, dg)
            raw = self._request("GET", "/v2/%s/manifests/%s" % (repo, dg),
                                headers={"Accept": mt})[2]
            ms.append({"mediaType": mt, "digest": dg, "size": len(raw), "platform": {"os": os_, "architecture": arch}})
        mt = "application/vnd.docker.distribution.manifest.list.v2+json" if docker_list else \
            "application/vnd.oci.image.index.v1+json"
        idx = json.dumps({"schemaVersion": 2, "mediaType": mt, "manifests": ms}).encode()
        self._request("PUT", "/v2/%s/manifests/%s" % (repo, tag), body=idx, headers={"Content-Type": mt})
        return "sha256:" + hashlib.sha256(idx).hexdigest()

    def blob_file(self, digest):
        """Path of a blob's bytes in the registry's storage (to corrupt it in tests)."""
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")
