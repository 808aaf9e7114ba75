#!/usr/bin/env bash
# Teardown: stops every process of the testbed and removes its mounts, network namespaces,
# cgroups and rules, and puts back the kernel settings it changed. Safe to run at any time
# (also with nothing running); `up` runs it first to clear leftovers of an earlier run.

stop_pid() { # stop_pid PID: TERM, then KILL after 10 s
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -KILL "$pid" 2>/dev/null || true
}

ancestors() { # this shell and its parents, never to be killed even if their command line names our paths
  local p=$$
  while [ "${p:-0}" -gt 1 ]; do echo "$p"; p=$(ps -o ppid= -p "$p" | tr -d ' '); done
}

our_pids() { # processes of ours: naming our paths (components, containerd, shims) or in our cgroups
  {
    pgrep -f "$TPBED_STATE/|$TPBED_RUN/|$TPBED_ETCD|testbed/config/containerd.toml" || true
    find /sys/fs/cgroup/*/tpbed -name cgroup.procs -exec cat {} + 2>/dev/null || true
  } | sort -u | grep -vxF -f <(ancestors) || true
}

our_mounts() { # mount points under our paths, deepest first
  awk '{print $5}' /proc/self/mountinfo | grep -E "^($TPBED_DATA|$TPBED_RUN|/run/netns/tpbed-)" | sort -r || true
}

teardown() {
  local name pid
  # Pods first (the kubelet would restart them), then the node, then the control plane.
  for name in kube-proxy kubelet; do
    pid=$(cat "$TPBED_RUN/$name.pid" 2>/dev/null) && stop_pid "$pid"
  done
  if [ -S "$CONTAINERD_SOCK" ]; then
    local c
    for c in $(ctr -a "$CONTAINERD_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$CONTAINERD_SOCK" -n k8s.io tasks kill -s KILL "$c" >/dev/null 2>&1 || true
    done
  fi
  for name in containerd kube-scheduler kube-controller-manager kube-apiserver etcd; do
    pid=$(cat "$TPBED_RUN/$name.pid" 2>/dev/null) && stop_pid "$pid"
  done
  # Whatever is left (shims, pod processes, a component whose pid file was lost).
  local round
  for round in 1 2 3; do
    local pids
    pids=$(our_pids)
    [ -n "$pids" ] || break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  done
  local m
  for m in $(our_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  teardown_network
  remove_cgroups
  rm -rf "$TPBED_RUN" "$TPBED_DATA" "$TPBED_ETCD"
  undo_host_changes
}
