#!/usr/bin/env bash
# Installs or builds what internal/testenv starts, into a cache directory, and says what it
# did. Idempotent: a second run only checks stamps and takes seconds.
#   etcd            Debian's etcd-server (apt-get), or already on PATH
#   kube-apiserver  built from the Go module proxy in ./kubeapiserver (its own go.mod)
#   vault           built from the Go module proxy in ./vault (v1.21.1; its own go.mod)
#   helm, kustomize the real CLIs, from ./clis, for the post-renderer and KRM function tests
#   kubeseal        upstream Sealed Secrets v0.27.1, from ./kubeseal, for the interop tests
#   argocd-cmp-server, argocd-cmpclient
#                   Argo CD v3.6.1's CMP server and, built from Argo CD's own client code, a
#                   client that talks to it as the repo-server does, from ./argocd. Argo CD
#                   needs Go 1.27: that module alone is built with GOTOOLCHAIN=go1.27.3, which
#                   the go command fetches from the module proxy like any module.
set -euo pipefail

bin=${1:?usage: install.sh BIN_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$bin"
bin=$(cd "$bin" && pwd)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# etcd ----------------------------------------------------------------------------------
if command -v etcd >/dev/null 2>&1; then
  echo "testenv: etcd present: $(etcd --version 2>/dev/null | head -1)"
else
  echo "testenv: installing etcd-server from Debian"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq etcd-server >/dev/null
  # The package starts a system etcd on the default ports; tests use their own on free ports.
  as_root systemctl disable --now etcd >/dev/null 2>&1 || true
  echo "testenv: installed $(etcd --version | head -1)"
fi

# build_tool NAME DIR PKG: build PKG in the tools module DIR unless the stamp (a hash of
# the module's go.mod, go.sum and Go files) matches the cached binary's. TOOLCHAIN, when set
# in the environment, is the Go toolchain that module needs.
build_tool() {
  local name=$1 dir=$2 pkg=$3
  local stamp
  stamp=$(cd "$dir" && cat go.mod go.sum $(find . -name '*.go' | LC_ALL=C sort) | sha256sum | cut -c1-16)
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "testenv: $name present ($bin/$name, stamp $stamp)"
    return
  fi
  echo "testenv: building $name from the Go module proxy (several minutes on a cold machine)"
  local start=$SECONDS
  (cd "$dir" && GOTOOLCHAIN=${TOOLCHAIN:-local} go build -trimpath -ldflags='-s -w' -o "$bin/$name.tmp" "$pkg")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$stamp" >"$bin/$name.stamp"
  echo "testenv: built $name in $((SECONDS - start))s"
}

build_tool kube-apiserver "$here/kubeapiserver" k8s.io/kubernetes/cmd/kube-apiserver
build_tool vault "$here/vault" github.com/hashicorp/vault
build_tool helm "$here/clis" helm.sh/helm/v3/cmd/helm
build_tool kustomize "$here/clis" sigs.k8s.io/kustomize/kustomize/v5
build_tool kubeseal "$here/kubeseal" github.com/bitnami-labs/sealed-secrets/cmd/kubeseal
TOOLCHAIN=go1.27.3 build_tool argocd-cmp-server "$here/argocd" ./cmpserver
TOOLCHAIN=go1.27.3 build_tool argocd-cmpclient "$here/argocd" ./cmpclient

# Argo CD's stock install manifest, from the same module, for the install overlay test.
acd=$(cd "$here/argocd" && GOTOOLCHAIN=go1.27.3 go mod download -json github.com/argoproj/argo-cd/v3 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
cp "$acd/manifests/install.yaml" "$bin/argocd-install.yaml"
chmod 0644 "$bin/argocd-install.yaml"
echo "testenv: argocd-install.yaml present (Argo CD's stock manifests/install.yaml)"
