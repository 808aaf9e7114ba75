#!/usr/bin/env bash
# Host side of the testbed: preflight checks, packages, and the changes it makes to the
# machine (network namespaces, veths, guard rules, sysctls, mount propagation, cgroups),
# each with its undo. Sourced by testbed.sh.

APT_PACKAGES="containerd runc containernetworking-plugins iptables nftables conntrack catatonit busybox-static openssl curl iproute2 util-linux"
SYSCTLS_TOUCHED="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes fs.inotify.max_user_instances fs.inotify.max_user_watches"

preflight() {
  [ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces and runs a kubelet)"
  command -v go >/dev/null || die "Go is missing: the testbed builds Kubernetes with Go >= 1.26"
  local gov
  gov=$(go env GOVERSION)
  gov=${gov#go}
  [ "$(printf '%s\n%s\n' 1.26 "$gov" | sort -V | head -1)" = 1.26 ] || die "Go $gov is too old: the testbed needs Go >= 1.26"
  mkdir -p "$TPBED_STATE"
  local free_kb
  free_kb=$(df -Pk "$TPBED_STATE" | awk 'NR==2{print $4}')
  [ "$free_kb" -ge $((8 * 1024 * 1024)) ] || die "less than 8 GB free on $(df -P "$TPBED_STATE" | awk 'NR==2{print $6}') ($((free_kb / 1024)) MB): the build and the cluster need 8 GB"
  [ -d /proc/sys/net/bridge ] || die "kernel lacks bridge netfilter (/proc/sys/net/bridge missing)"
  [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || die "no memory cgroup controller"
  if [ -r /proc/config.gz ]; then
    local opt
    for opt in CONFIG_VETH CONFIG_BRIDGE CONFIG_OVERLAY_FS CONFIG_NF_TABLES CONFIG_NETFILTER_XT_MATCH_COMMENT; do
      zgrep -qE "^$opt=(y|m)" /proc/config.gz || die "kernel feature $opt is missing"
    done
  fi
}

install_packages() {
  local missing="" p
  for p in $APT_PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
  [ -n "$missing" ] || return 0
  echo "testbed: installing$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
}

save_sysctls() { # once per bring-up: the values to put back (the kubelet rewrites some)
  [ -f "$TPBED_STATE/sysctl.orig" ] && return 0
  local k
  for k in $SYSCTLS_TOUCHED; do echo "$k=$(sysctl -n "$k")"; done >"$TPBED_STATE/sysctl.orig"
  findmnt -no PROPAGATION / >"$TPBED_STATE/propagation.orig"
}

restore_sysctls() {
  [ -f "$TPBED_STATE/sysctl.orig" ] || return 0
  local line
  while read -r line; do sysctl -qw "$line" >/dev/null || true; done <"$TPBED_STATE/sysctl.orig"
}

undo_host_changes() {
  restore_sysctls
  rm -f "$TPBED_STATE/sysctl.orig"
  if [ "$(cat "$TPBED_STATE/propagation.orig" 2>/dev/null)" = private ]; then mount --make-rprivate /; fi
  rm -f "$TPBED_STATE/propagation.orig"
}

setup_host() {
  save_sysctls
  sysctl -qw fs.inotify.max_user_instances=512 fs.inotify.max_user_watches=524288
  mount --make-rshared /
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -e "$h/cgroup.procs" ] && mkdir -p "$h/tpbed"
  done
  if [ -d /sys/fs/cgroup/cpuset/tpbed ]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/tpbed/cpuset.cpus
    cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/tpbed/cpuset.mems
  fi
}

setup_network() {
  ip netns add $NODE_NS
  in_node ip link set lo up
  # The node IP sits on a bridge with no ports: anything routed there (the default route) dies
  # inside the node netns, so no cluster packet can leave the VM.
  in_node ip link add tpbed-null0 type bridge
  in_node ip link set tpbed-null0 up
  in_node ip addr add $NODE_IP/32 dev tpbed-null0
  in_node ip route add default dev tpbed-null0 src $NODE_IP
  in_node sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # root netns <-> node: tests and kubectl on the host reach the API at $HOST_NODE_IP:6443.
  ip link add tpbed-h type veth peer name tpbed-n
  ip link set tpbed-n netns $NODE_NS
  ip addr add $HOST_IP/30 dev tpbed-h
  ip link set tpbed-h up
  in_node ip addr add $HOST_NODE_IP/30 dev tpbed-n
  in_node ip link set tpbed-n up
  # The workstations: each its own netns and veth into the node netns, no default route; only
  # its API address's port 6443 answers it (the guard table drops the rest at raw priority,
  # before kube-proxy's NAT could send it to a Service or pod).
  setup_workstation $WS_NS tpbed-wsn tpbed-wsc $WS_NODE_IP $WS_IP
  setup_workstation $WS2_NS tpbed-ws2n tpbed-ws2c $WS2_NODE_IP $WS2_IP
  in_node nft -f - <<NFT
table inet tpbed_ws_guard {
  chain prerouting {
    type filter hook prerouting priority raw; policy accept;
    iifname "tpbed-wsn" ip daddr $WS_NODE_IP tcp dport 6443 accept
    iifname "tpbed-wsn" drop
    iifname "tpbed-ws2n" ip daddr $WS2_NODE_IP tcp dport 6443 accept
    iifname "tpbed-ws2n" drop
  }
}
NFT
  # Guards in the root netns: cluster addresses never go out of eth0 or anywhere but the veth.
  nft -f - <<NFT
table inet tpbed_guard {
  chain output {
    type filter hook output priority filter; policy accept;
    oifname != "tpbed-h" ip daddr { $CLUSTER_CIDRS } drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname { "tpbed-h" } drop
    ip daddr { $CLUSTER_CIDRS } drop
  }
}
NFT
}

setup_workstation() { # setup_workstation NETNS NODE_VETH WS_VETH NODE_SIDE_IP WS_SIDE_IP (/30 each)
  local ns=$1 node_veth=$2 ws_veth=$3 node_ip=$4 ws_ip=$5
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$node_veth" type veth peer name "$ws_veth"
  ip link set "$node_veth" netns $NODE_NS
  ip link set "$ws_veth" netns "$ns"
  in_node ip addr add "$node_ip/30" dev "$node_veth"
  in_node ip link set "$node_veth" up
  ip -n "$ns" addr add "$ws_ip/30" dev "$ws_veth"
  ip -n "$ns" link set "$ws_veth" up
  mkdir -p "/etc/netns/$ns"
  echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
}

teardown_network() {
  ip netns del $WS_NS 2>/dev/null || true
  ip netns del $WS2_NS 2>/dev/null || true
  ip netns del $NODE_NS 2>/dev/null || true
  ip link del tpbed-h 2>/dev/null || true
  nft delete table inet tpbed_guard 2>/dev/null || true
  rm -rf /etc/netns/$WS_NS /etc/netns/$WS2_NS
}

remove_cgroups() { # depth-first rmdir of every tpbed cgroup (after its processes are gone)
  local h
  for h in /sys/fs/cgroup/*/tpbed; do
    [ -d "$h" ] || continue
    find "$h" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}
