#!/usr/bin/env bash
# telepod's testbed: a real one-node Kubernetes (upstream, built from Go modules) in its own
# network namespace, plus two "workstation" netns that each reach only the API server.
# Usage: testbed.sh up | down | status [--json] | smoke | build | restart-apiserver     (see testbed/README.md)
set -euo pipefail
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH GOTOOLCHAIN=local
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for part in common host build-kube images cluster down smoke; do
  # shellcheck source=/dev/null
  source "$here/scripts/$part.sh"
done
KUBE_VERSION=$(awk '$1=="k8s.io/kubernetes"{print $2; exit}' "$here/kube/go.mod")

healthy() {
  local name
  for name in $COMPONENTS; do component_alive "$name" || return 1; done
  # Both workstations (a testbed made before the second one existed is rebuilt by `up`).
  for name in $WS_NS $WS2_NS; do [ -e "/run/netns/$name" ] || return 1; done
  [ -f "$WS2_KUBECONFIG" ] || return 1
  apiserver_ready >/dev/null 2>&1 && node_ready 2>/dev/null &&
    [ "$(kctl -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = 1 ]
}

cmd_status() {
  local ready=false
  healthy && ready=true
  if [ "${1:-}" = --json ]; then
    printf '{"ready":%s,"kubernetesVersion":"%s","kubeconfig":"%s","kubectl":"%s","workstation":{"netns":"%s","kubeconfig":"%s"},"workstation2":{"netns":"%s","kubeconfig":"%s"},"images":{"node":"%s"}}\n' \
      "$ready" "$KUBE_VERSION" "$HOST_KUBECONFIG" "$BIN/kubectl" "$WS_NS" "$WS_KUBECONFIG" "$WS2_NS" "$WS2_KUBECONFIG" "$NODE_IMAGE"
  else
    echo "ready: $ready; kubernetes $KUBE_VERSION; kubeconfig $HOST_KUBECONFIG; workstation netns $WS_NS (kubeconfig $WS_KUBECONFIG); workstation 2 netns $WS2_NS (kubeconfig $WS2_KUBECONFIG)"
  fi
}

on_up_failure() {
  local rc=$?
  [ $rc = 0 ] && return 0
  echo "testbed: up failed (exit $rc); last log lines:" >&2
  local f
  for f in "$TPBED_LOG"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 5 "$f" >&2; }; done
  echo "testbed: run 'npm run testbed -- down' to clear what was started" >&2
}

cmd_up() {
  preflight
  local t0=$SECONDS
  if healthy; then
    echo "testbed: already up and healthy ($((SECONDS - t0)) s)"
    return 0
  fi
  trap on_up_failure EXIT
  phase "clearing leftovers"; teardown
  phase "packages"; install_packages
  phase "build (cached by stamp)"; build_all
  phase "images"; build_images
  phase "pki and kubeconfigs"; make_pki
  phase "host and network"
  mkdir -p "$TPBED_RUN" "$TPBED_DATA" "$TPBED_LOG"
  rm -f "$TPBED_LOG"/*.log
  setup_host
  setup_network
  phase "control plane"; start_control_plane
  phase "node"; start_node
  phase "cluster DNS"; start_dns
  phase "smoke test"; smoke
  phase_end
  trap - EXIT
  echo "testbed: up in $((SECONDS - t0)) s"
}

exec 9<"${BASH_SOURCE[0]}"
flock -w 300 9 || die "another testbed command is still running (lock on $0)"
case "${1:-}" in
  up) cmd_up ;;
  down) [ "$(id -u)" = 0 ] || die "must run as root"; teardown; echo "testbed: down" ;;
  status) cmd_status "${2:-}" ;;
  smoke) smoke ;;
  restart-apiserver) restart_apiserver ;;
  build) preflight; build_all; build_images ;;
  *) echo "usage: npm run testbed -- up|down|status [--json]|smoke|build|restart-apiserver" >&2; exit 2 ;;
esac
