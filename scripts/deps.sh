#!/usr/bin/env bash
# deps.sh — installs every Debian and npm package kubec's build and tests need (idempotent, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(cmake gcc make pkg-config libjansson-dev libmicrohttpd-dev libsqlite3-dev libssl-dev
      libcurl4-openssl-dev libfyaml-dev libcmocka-dev libjemalloc-dev python3 python3-kubernetes curl ca-certificates etcd-server etcd-client prometheus chromium
      libarchive-dev libzstd-dev docker-registry apache2-utils umoci skopeo busybox-static python3-cryptography
      runc containernetworking-plugins iproute2)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm: this machine image ships them; a bare Debian 12 gets Debian's packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
# kubectl: the machines carry 1.27–1.33 under /usr/lib/google-cloud-sdk/bin; elsewhere use Debian's client.
if ! ls /usr/lib/google-cloud-sdk/bin/kubectl.1.* >/dev/null 2>&1 && ! command -v kubectl >/dev/null; then
  missing+=(kubernetes-client)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# @kubernetes/client-node 1.x for the JavaScript client tests (2.x does not load on Node 20).
if [ ! -d tests/e2e/js/node_modules/@kubernetes/client-node ]; then
  (cd tests/e2e/js && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
