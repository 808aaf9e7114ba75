#!/usr/bin/env bash
# Regenerates go.mod/go.sum of the testbed's multi-call binary for one Kubernetes version:
# k8s.io/kubernetes requires its staging modules at v0.0.0 with replace directives that a
# dependant does not inherit, so each one is pointed at its published v0.<minor>.<patch> twin.
# Run by hand when moving to another version; CI only builds from the committed files.
set -euo pipefail
cd "$(dirname "$0")"
KV=${1:-1.35.4}
SV=0.${KV#1.}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
gomod=$(go mod download -json "k8s.io/kubernetes@v$KV" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
rm -f go.mod go.sum
go mod init telepod.dev/testbed/kube
go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$gomod")"
godebug=$(awk '$1=="godebug"{print $2; exit}' "$gomod")
[ -n "$godebug" ] && go mod edit -godebug="$godebug"
for m in $(awk '$2=="v0.0.0"{print $1}' "$gomod" | grep '^k8s.io/'); do
  go mod edit -replace="$m=$m@v$SV"
done
go mod edit -require="k8s.io/kubernetes@v$KV"
go mod tidy
