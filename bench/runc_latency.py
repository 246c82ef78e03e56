#!/usr/bin/env python3
"""runc_latency.py — bind -> Running latency of real containers for a cached image (issue 5, item 7).

Starts a registry on loopback (tests/e2e/registry_fixture.py), pushes a busybox image, starts `kubec
server` and `kubec agent --runtime runc`, warms the image cache with one pod, then creates N pods (default
100) one after another, each already bound (spec.nodeName set: creation is the bind), and measures from
the create request to the first watch event showing the pod Running with its container running. Pods
stay up while later ones start (the node fills to N containers). Prints p50/p90/p99/max and the same for
the agent's own part (from the "scheduled"/"created" stamp to the "started" stamp of the kubec.io/timeline
annotation, which leaves out the watch and client latency). A benchmark, not a test: it prints figures.

Needs root, runc, containernetworking-plugins and the registry fixture's tools. Loopback only, bounded.
Usage: sudo bench/runc_latency.py [--pods N] [--gap SECONDS] [--kubec PATH]
"""
import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import harness  # noqa: E402
import registry_fixture  # noqa: E402


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--gap", type=float, default=0.0,
                    help="seconds between one pod Running and the next create (default 0: back to back)")
    ap.add_argument("--kubec", default=os.environ.get("KUBEC_BIN") or os.path.join(HERE, "..", "build", "kubec"))
    a = ap.parse_args()
    # a SIGTERM (timeout, pkill) unwinds through the finally below like ^C does: without this the
    # server, the agent and its containers outlived an interrupted run and skewed later measurements
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    harness.KUBEC = a.kubec
    if os.geteuid() != 0 or not shutil.which("runc"):
        print("runc_latency: needs root and runc")
        return 2
    work = tempfile.mkdtemp(prefix="kubec-runc-bench-")
    reg = registry_fixture.Registry()
    reg.start()
    reg.push_busybox("bench", cmd=("/bin/sleep", "3600"))
    image = "%s/kubec/busybox:bench" % reg.host
    server = harness.Server().start()
    node = "runc-bench"
    log = open(os.path.join(work, "agent.log"), "ab")
    agent = subprocess.Popen([a.kubec, "agent", "--kubeconfig", server.kubeconfig, "--runtime", "runc", "--data-dir",
                              os.path.join(work, "agent"), "--node-name", node, "--port", str(harness.free_port()),
                              "--registry-ca-dir", reg.ca_dir, "--pod-workers", "8"], stdout=log,
                             stderr=subprocess.STDOUT)
    running = {}
    cv = threading.Condition()
    stop = threading.Event()

    def watcher():
        req = urllib.request.Request(server.url + "/api/v1/namespaces/default/pods?watch=1",
                                     headers={"Authorization": "Bearer " + server.token()})
        with urllib.request.urlopen(req, context=server.ssl_context(), timeout=600) as r:
            for line in r:
                if stop.is_set():
                    return
                ev = json.loads(line)
                p = ev["object"]
                cs = (p.get("status") or {}).get("containerStatuses") or [{}]
                if (p.get("status") or {}).get("phase") == "Running" and cs[0].get("state", {}).get("running"):
                    with cv:
                        running.setdefault(p["metadata"]["name"], (time.time(), p))
                        cv.notify_all()

    try:
        deadline = time.time() + 30
        while server.request("GET", "/api/v1/nodes/" + node)[0] != 200:
            if time.time() > deadline:
                raise RuntimeError("agent did not register")
            time.sleep(0.2)
        server.request("POST", "/api/v1/namespaces/default/secrets", reg.secret("regcred"))
        threading.Thread(target=watcher, daemon=True).start()
        time.sleep(0.5)

        uids = []

        def make(name):
            body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                    "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                             "imagePullSecrets": [{"name": "regcred"}],
                             "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent"}]}}
            t0 = time.time()
            st, obj, _ = server.request("POST", "/api/v1/namespaces/default/pods", body)
            assert st == 201, obj
            uids.append(obj["metadata"]["uid"])
            with cv:
                if not cv.wait_for(lambda: name in running, timeout=60):
                    raise RuntimeError("pod %s not Running in 60 s" % name)
            return running[name][0] - t0

        make("warm")  # pulls the image once: later pods find it cached
        lat = []
        for i in range(a.pods):
            lat.append(make("p%03d" % i))
            time.sleep(a.gap)
        agent_part, bind_part = [], []
        for i in range(a.pods):
            st, p, _ = server.request("GET", "/api/v1/namespaces/default/pods/p%03d" % i)
            tl = json.loads(((p.get("metadata") or {}).get("annotations") or {}).get("kubec.io/timeline", "{}"))
            start = tl.get("scheduled") or tl.get("created")
            if start and tl.get("started"):
                from datetime import datetime
                f = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()  # noqa: E731
                agent_part.append(f(tl["started"]) - f(start))
                bind_part.append(running["p%03d" % i][0] - f(start))
        def show(view, v):
            if v:
                ms = lambda x: "%.0f ms" % (x * 1000)  # noqa: E731
                print("  %s: p50 %s  p90 %s  p99 %s  max %s" %
                      (view, ms(pct(v, 50)), ms(pct(v, 90)), ms(pct(v, 99)), ms(max(v))))
        print("runc bind->Running, cached image, %d pods (sequential, %s, pods kept running):" %
              (a.pods, "%.2f s between one Running and the next create" % a.gap if a.gap else "back to back"))
        show("client view (create -> watch shows Running)", lat)
        show("agent view (timeline created/scheduled -> started)", agent_part)
        # upstream's pod startup SLI: creation (here the bind) -> a watch observes it running
        show("bind view (timeline created/scheduled -> watch shows Running)", bind_part)
        print("  target: p50 <= 100 ms, p99 <= 300 ms")
        # clean up: delete all, wait until gone
        for name in ["warm"] + ["p%03d" % i for i in range(a.pods)]:
            server.request("DELETE", "/api/v1/namespaces/default/pods/" + name)
        # the Pod objects may go before the agent has torn the sandboxes down: wait for the netns to go
        deadline = time.time() + 180
        while time.time() < deadline:
            if not any(os.path.exists("/run/netns/kubec-" + u) for u in uids):
                break
            time.sleep(0.5)
        return 0
    finally:
        stop.set()
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
        log.close()
        server.stop()
        server.cleanup()
        reg.close()
        root = os.path.join(work, "agent", "runc")
        if os.path.isdir(root):
            out = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True, text=True).stdout
            for c in out.split():
                subprocess.run(["runc", "--root", root, "delete", "--force", c], capture_output=True)
        subprocess.run("awk '{print $5}' /proc/self/mountinfo | grep '^%s/' | xargs -r -n1 umount -l" % work, shell=True)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
