#!/usr/bin/env bash
# The cluster's processes: PKI and kubeconfigs from kubeadm's phases, then etcd, the control
# plane, containerd, the kubelet and kube-proxy as plain processes in the node netns, started
# with `nsenter --net` (not `ip netns exec`, which hides the cgroup mounts). Sourced by testbed.sh.

CONFIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../config" && pwd)
COMPONENTS="etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy"

make_pki() { # cached: fixed addresses make the certificates valid for every run
  local stamp
  stamp=$(cat "$CONFIG_DIR/kubeadm.yaml" "$BIN/.tpbed.stamp" | sha256sum | cut -c1-16)
  if [ "$(cat "$PKI/.stamp" 2>/dev/null)" = "$stamp" ] && [ -f "$WS_KUBECONFIG" ] && [ -f "$WS2_KUBECONFIG" ]; then return 0; fi
  rm -rf "$PKI" "$KC"
  mkdir -p "$PKI" "$KC"
  "$BIN/kubeadm" init phase certs all --config "$CONFIG_DIR/kubeadm.yaml" >/dev/null
  "$BIN/kubeadm" init phase kubeconfig all --config "$CONFIG_DIR/kubeadm.yaml" --kubeconfig-dir "$KC" >/dev/null
  "$BIN/kubeadm" kubeconfig user --config "$CONFIG_DIR/kubeadm.yaml" --client-name system:kube-proxy >"$KC/kube-proxy.conf" 2>/dev/null
  sed "s#server: https://.*#server: https://$HOST_NODE_IP:6443#" "$KC/admin.conf" >"$HOST_KUBECONFIG"
  sed "s#server: https://.*#server: https://$WS_NODE_IP:6443#" "$KC/admin.conf" >"$WS_KUBECONFIG"
  sed "s#server: https://.*#server: https://$WS2_NODE_IP:6443#" "$KC/admin.conf" >"$WS2_KUBECONFIG"
  chmod 0644 "$WS_KUBECONFIG" "$WS2_KUBECONFIG" # read by unprivileged tests in the workstation netns too
  echo "$stamp" >"$PKI/.stamp"
}

start_component() { # start_component NAME CMD...: in the node netns, detached, logged, pid recorded
  local name=$1; shift
  setsid nsenter --net=/run/netns/$NODE_NS -- "$@" >"$TPBED_LOG/$name.log" 2>&1 </dev/null 9<&- &
  echo $! >"$TPBED_RUN/$name.pid"
}

component_alive() {
  local pid
  pid=$(cat "$TPBED_RUN/$1.pid" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

apiserver_ready() { "$BIN/kubectl" --kubeconfig "$KC/super-admin.conf" --server "https://$HOST_NODE_IP:6443" get --raw /readyz; }

start_apiserver() {
  start_component kube-apiserver "$BIN/kube-apiserver" \
    --advertise-address=$NODE_IP --bind-address=0.0.0.0 --secure-port=6443 \
    --etcd-servers=http://127.0.0.1:2379 --service-cluster-ip-range=$SERVICE_CIDR --allow-privileged=true \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --client-ca-file=$PKI/ca.crt --tls-cert-file=$PKI/apiserver.crt --tls-private-key-file=$PKI/apiserver.key \
    --kubelet-client-certificate=$PKI/apiserver-kubelet-client.crt --kubelet-client-key=$PKI/apiserver-kubelet-client.key \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file=$PKI/sa.pub --service-account-signing-key-file=$PKI/sa.key \
    --proxy-client-cert-file=$PKI/front-proxy-client.crt --proxy-client-key-file=$PKI/front-proxy-client.key \
    --requestheader-client-ca-file=$PKI/front-proxy-ca.crt --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra-
}

start_control_plane() {
  start_component etcd "$BIN/etcd" --name tpbed --data-dir "$TPBED_ETCD" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster tpbed=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
  wait_for 30 etcd in_node curl -sf http://127.0.0.1:2379/health
  start_apiserver
  wait_for 90 kube-apiserver apiserver_ready
  # kubeadm's phases issue admin.conf for the group kubeadm:cluster-admins; `kubeadm init` would
  # bind it, the phases do not (without it port-forward, exec and logs are forbidden).
  "$BIN/kubectl" --kubeconfig "$KC/super-admin.conf" --server "https://$HOST_NODE_IP:6443" \
    create clusterrolebinding kubeadm:cluster-admins --clusterrole=cluster-admin \
    --group=kubeadm:cluster-admins >/dev/null
  start_component kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig=$KC/controller-manager.conf --authentication-kubeconfig=$KC/controller-manager.conf \
    --authorization-kubeconfig=$KC/controller-manager.conf --bind-address=127.0.0.1 --leader-elect=false \
    --use-service-account-credentials=true --cluster-signing-cert-file=$PKI/ca.crt \
    --cluster-signing-key-file=$PKI/ca.key --root-ca-file=$PKI/ca.crt \
    --service-account-private-key-file=$PKI/sa.key --service-cluster-ip-range=$SERVICE_CIDR \
    --cluster-cidr=$POD_CIDR --allocate-node-cidrs=false \
    --requestheader-client-ca-file=$PKI/front-proxy-ca.crt --client-ca-file=$PKI/ca.crt
  start_component kube-scheduler "$BIN/kube-scheduler" --kubeconfig=$KC/scheduler.conf \
    --authentication-kubeconfig=$KC/scheduler.conf --authorization-kubeconfig=$KC/scheduler.conf \
    --bind-address=127.0.0.1 --leader-elect=false
}

node_ready() {
  kctl get node tpbed-node -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}

start_node() {
  mkdir -p "$TPBED_DATA/cni-conf" "$TPBED_DATA/kubelet" "$TPBED_RUN/containerd"
  cp "$CONFIG_DIR/cni.conflist" "$TPBED_DATA/cni-conf/10-tpbed.conflist"
  install -m 0755 "$(dirname "$CONFIG_DIR")/scripts/runc-wrapper.sh" "$BIN/runc"
  start_component containerd containerd --config "$CONFIG_DIR/containerd.toml"
  wait_for 30 containerd ctr -a "$CONTAINERD_SOCK" version
  import_images
  start_component kubelet "$BIN/kubelet" --config "$CONFIG_DIR/kubelet.yaml" \
    --kubeconfig "$KC/kubelet.conf" --hostname-override tpbed-node --node-ip $NODE_IP \
    --root-dir "$TPBED_DATA/kubelet"
  wait_for 120 "the node to be Ready" node_ready
  restore_sysctls # the kubelet rewrote some global kernel settings at start
  start_component kube-proxy "$BIN/kube-proxy" --config "$CONFIG_DIR/kube-proxy.yaml"
}

start_dns() {
  kctl apply -f "$(dirname "$CONFIG_DIR")/manifests/coredns.yaml" >/dev/null
  wait_for 120 "CoreDNS to be ready" kctl -n kube-system rollout status deploy/coredns --timeout=5s
}

restart_apiserver() { # for e2e tests of clients that must survive an API server restart
  stop_pid "$(cat "$TPBED_RUN/kube-apiserver.pid")"
  start_apiserver
  wait_for 90 kube-apiserver apiserver_ready
}
