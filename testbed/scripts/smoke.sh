#!/usr/bin/env bash
# The testbed's smoke test: Services by ClusterIP and DNS, headless DNS, port-forward, exec and
# logs through the API server, a mutating webhook round trip, and negative controls proving
# that each workstation netns reaches nothing of the cluster but its API port. Sourced.

SMOKE_NS=tpbed-smoke
MANIFESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../manifests" && pwd)

check() { # DESC=... check CMD...: runs CMD, prints ok or fails the smoke test
  if "$@" >/dev/null 2>&1; then echo "smoke: ok   ${DESC:-}"; else die "smoke test failed: ${DESC:-}"; fi
}

ws_unreachable() { # ws_unreachable NETNS IP PORT: a TCP connect from that workstation netns must fail
  ! in_netns "$1" timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}
ws_reachable() { in_netns "$1" timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; }

in_client() { kctl -n $SMOKE_NS exec client -- node -e "$1"; }
fetch_js() { echo "fetch('$1').then(r => r.text()).then(t => { if (!t.startsWith('hello from web-')) process.exit(1) })"; }

port_forward_works() { # port_forward_works NETNS KUBECONFIG: kubectl port-forward from there, as telepod's transport will
  local ns=$1 kubeconfig=$2 pf out
  # nsenter itself (not the in_netns function's subshell) in the background: nsenter execs kubectl,
  # so $! is kubectl's pid and the kill below ends it instead of orphaning it.
  nsenter --net=/run/netns/"$ns" -- "$BIN/kubectl" --kubeconfig "$kubeconfig" -n $SMOKE_NS \
    port-forward deploy/web 18080:8080 >/dev/null 2>&1 9<&- &
  pf=$!
  for _ in $(seq 1 40); do
    out=$(in_netns "$ns" curl -s --max-time 2 http://127.0.0.1:18080/ 2>/dev/null) && break
    sleep 0.25
  done
  kill "$pf" 2>/dev/null; wait "$pf" 2>/dev/null || true
  [[ "$out" == "hello from web-"* ]]
}

webhook_mutates() {
  kctl -n $SMOKE_NS create configmap probe --from-literal=a=b >/dev/null &&
    [ "$(kctl -n $SMOKE_NS get configmap probe -o jsonpath='{.data.mutated}')" = yes ]
}

headless_resolves_to_pods() {
  local want got
  want=$(kctl -n $SMOKE_NS get pods -l app=web -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}' | sort | paste -sd,)
  got=$(in_client "require('dns').promises.resolve4('web-headless.$SMOKE_NS.svc.cluster.local').then(a => console.log(a.sort().join(',')))")
  [ -n "$want" ] && [ "$want" = "$got" ]
}

install_webhook() {
  local tmp
  tmp=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=tpbed-smoke-ca \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=hook -keyout "$tmp/tls.key" -out "$tmp/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:hook.%s.svc\n' $SMOKE_NS >"$tmp/ext"
  openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -days 1 \
    -extfile "$tmp/ext" -out "$tmp/tls.crt" 2>/dev/null
  kctl -n $SMOKE_NS create secret tls hook-tls --cert "$tmp/tls.crt" --key "$tmp/tls.key" >/dev/null
  kctl apply -f - >/dev/null <<YAML
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: { name: tpbed-smoke }
webhooks:
  - name: mutate.tpbed-smoke.test
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Fail
    timeoutSeconds: 5
    clientConfig:
      service: { namespace: $SMOKE_NS, name: hook, path: /mutate }
      caBundle: $(base64 -w0 "$tmp/ca.crt")
    namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: $SMOKE_NS } }
    rules: [{ operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [configmaps] }]
YAML
  rm -rf "$tmp"
}

smoke_cleanup() {
  kctl delete mutatingwebhookconfiguration tpbed-smoke --ignore-not-found >/dev/null 2>&1 || true
  kctl delete namespace $SMOKE_NS --ignore-not-found --wait="${1:-true}" --timeout=60s >/dev/null 2>&1 || true
}

workstation_checks() { # workstation_checks LABEL NETNS API_IP KUBECONFIG OTHER_WORKSTATION_API_IP CLUSTER_IP POD_IP
  local label=$1 ns=$2 api_ip=$3 kubeconfig=$4 other_api_ip=$5 cluster_ip=$6 pod_ip=$7
  DESC="kubectl port-forward from the $label netns" check port_forward_works "$ns" "$kubeconfig"
  DESC="$label reaches the API port" check ws_reachable "$ns" "$api_ip" 6443
  DESC="$label cannot reach a ClusterIP" check ws_unreachable "$ns" "$cluster_ip" 80
  DESC="$label cannot reach a pod IP" check ws_unreachable "$ns" "$pod_ip" 8080
  DESC="$label cannot reach kube-dns" check ws_unreachable "$ns" $DNS_IP 53
  DESC="$label cannot reach the kubelet" check ws_unreachable "$ns" "$api_ip" 10250
  DESC="$label cannot reach the node IP" check ws_unreachable "$ns" $NODE_IP 10250
  DESC="$label cannot reach the other workstation's API address" check ws_unreachable "$ns" "$other_api_ip" 6443
}

smoke() {
  smoke_cleanup true
  kctl apply -f "$MANIFESTS/smoke.yaml" >/dev/null
  install_webhook
  wait_for 90 "smoke workloads" kctl -n $SMOKE_NS wait --for=condition=Available deploy/web deploy/hook --timeout=5s
  wait_for 60 "smoke client pod" kctl -n $SMOKE_NS wait --for=condition=Ready pod/client --timeout=5s
  local cluster_ip pod_ip
  cluster_ip=$(kctl -n $SMOKE_NS get svc web -o jsonpath='{.spec.clusterIP}')
  pod_ip=$(kctl -n $SMOKE_NS get pods -l app=web -o jsonpath='{.items[0].status.podIP}')
  # kube-proxy programs a new Service within its sync period, which can end after the Deployment
  # is Available (seen once on a fresh cluster): wait for the rule before the checks.
  wait_for 30 "kube-proxy to route the smoke Service" in_client "$(fetch_js "http://$cluster_ip/")"
  DESC="Service by ClusterIP from a pod (exec)" check in_client "$(fetch_js "http://$cluster_ip/")"
  DESC="Service by DNS name from a pod" check in_client "$(fetch_js "http://web.$SMOKE_NS.svc.cluster.local/")"
  DESC="Service by short name from a pod" check in_client "$(fetch_js http://web/)"
  DESC="headless Service resolves to the pod IPs" check headless_resolves_to_pods
  DESC="kubectl logs" check bash -c "'$BIN/kubectl' --kubeconfig '$HOST_KUBECONFIG' -n $SMOKE_NS logs deploy/web | grep -q 'smoke-web listening'"
  DESC="mutating webhook round trip" check webhook_mutates
  workstation_checks "workstation" $WS_NS $WS_NODE_IP "$WS_KUBECONFIG" $WS2_NODE_IP "$cluster_ip" "$pod_ip"
  workstation_checks "workstation 2" $WS2_NS $WS2_NODE_IP "$WS2_KUBECONFIG" $WS_NODE_IP "$cluster_ip" "$pod_ip"
  smoke_cleanup false
}
