#!/usr/bin/env bash
export PATH=/usr/local/go/bin:$PATH
# Builds the testbed's Go binaries (the Kubernetes+etcd multi-call binary and CoreDNS) into
# $TPBED_STATE/bin, skipping each build whose stamp (hash of its module files and the Go
# version) is unchanged. Sourced by testbed.sh; also runnable alone.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${TPBED_STATE:=/var/lib/tpbed}"
KUBE_VERSION=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/kube/go.mod")
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
bin="$TPBED_STATE/bin"

stamp_of() { # dir -> hash of its Go sources and the toolchain
  (cd "$1" && find . -name '*.go' -o -name 'go.mod' -o -name 'go.sum' | sort | xargs cat; go version) | sha256sum | cut -c1-16
}

build_one() { # name moddir pkg ldflags
  local name=$1 dir=$2 pkg=$3 ldflags=$4 stamp
  stamp=$(stamp_of "$dir")
  if [ -x "$bin/$name" ] && [ "$(cat "$bin/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "build: $name up to date ($stamp)"; return 0
  fi
  echo "build: $name ($stamp), this takes a while on a cold cache"
  local t0=$SECONDS
  mkdir -p "$bin"
  (cd "$dir" && go build -p "$(nproc)" -trimpath -tags selinux,notest,grpcnotrace \
     -ldflags "$ldflags" -o "$bin/$name.new" "$pkg")
  mv "$bin/$name.new" "$bin/$name"
  echo "$stamp" > "$bin/.$name.stamp"
  echo "build: $name done in $((SECONDS - t0)) s"
}

build_all() {
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ldf="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ldf="$ldf -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  build_one tpbed "$here/kube" ./cmd/tpbed "$ldf"
  for p in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl kubeadm etcd; do
    ln -sfn tpbed "$bin/$p"
  done
  build_one coredns "$here/coredns" . "-s -w"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then build_all; fi
