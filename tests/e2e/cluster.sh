#!/usr/bin/env bash
# A throw-away Kubernetes control plane on 127.0.0.1 for the e2e suite (and
# for trying netpol-guard by hand): etcd, kube-apiserver and
# kube-controller-manager of a current Kubernetes, built once by
# build-control-plane.sh. No kubelet, no scheduler: Pods stay Pending.
#
#   cluster.sh up DIR            start all three; writes DIR/admin.kubeconfig
#   cluster.sh down DIR          stop them (the data in DIR stays)
#   cluster.sh restart-apiserver DIR
#   cluster.sh restart-kcm DIR [--shared-credentials]
#                                kube-controller-manager with
#                                --use-service-account-credentials=false: every
#                                controller acts as its own user
#                                (e2e:controller-manager, in system:masters)
#   cluster.sh status DIR
#
# Env: NETPOL_GUARD_E2E_AUDIT_POLICY=FILE turns on the API server's audit log
# (DIR/logs/audit.log, JSON) with that audit Policy; unset (the e2e suite), none.
#
# Security: throw-away certificates and static tokens in DIR, RBAC on, every
# port bound to 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
DIR="${2:-}"
[[ -n "$cmd" && -n "$DIR" ]] || { sed -n '2,24p' "$0" >&2; exit 2; }
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PKI="$DIR/pki"
LOGS="$DIR/logs"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bin_dir() {
  if [[ -n "${NETPOL_GUARD_E2E_BIN:-}" ]]; then echo "$NETPOL_GUARD_E2E_BIN"; else "$HERE/build-control-plane.sh"; fi
}

pki() {
  [[ -f "$PKI/ca.crt" ]] && return 0
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
      -subj "/CN=netpol-guard-e2e-ca" 2>/dev/null
    cat > apiserver.ext <<EXT
subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, IP:10.96.0.1
extendedKeyUsage = serverAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver" 2>/dev/null
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    # The API server's client certificate for calling webhooks (netpol-guard
    # serve --client-ca pki/ca.crt), handed over by its AdmissionConfiguration.
    cat > webhook-client.ext <<EXT
extendedKeyUsage = clientAuth
EXT
    openssl req -newkey rsa:2048 -nodes -keyout webhook-client.key -out webhook-client.csr \
      -subj "/CN=kube-apiserver-webhook-client" 2>/dev/null
    openssl x509 -req -in webhook-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile webhook-client.ext -out webhook-client.crt 2>/dev/null
    cat > webhook-kubeconfig.yaml <<KC
apiVersion: v1
kind: Config
users:
- name: "*"
  user:
    client-certificate: $PKI/webhook-client.crt
    client-key: $PKI/webhook-client.key
KC
    cat > admission-config.yaml <<AC
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $PKI/webhook-kubeconfig.yaml
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: $PKI/webhook-kubeconfig.yaml
AC
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    # user,name,uid,"groups"
    {
      echo "$(openssl rand -hex 16),admin,uid-admin,\"system:masters\""
      echo "$(openssl rand -hex 16),system:kube-controller-manager,uid-kcm"
      echo "$(openssl rand -hex 16),e2e:controller-manager,uid-kcm-shared,\"system:masters\""
    } > tokens.csv
    chmod 600 ./*.key tokens.csv
  )
}

token_of() { awk -F, -v u="$1" '$2==u {print $1}' "$PKI/tokens.csv"; }

kubeconfig() { # FILE USER
  local file="$1" user="$2"
  cat > "$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://127.0.0.1:$(cat "$DIR/apiserver.port")
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    token: $(token_of "$user")
contexts:
- name: e2e
  context: {cluster: e2e, user: $user}
current-context: e2e
KC
  chmod 600 "$file"
}

running() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

stop() {
  local name="$1"
  if running "$name"; then
    local pid; pid=$(cat "$DIR/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/$name.pid"
}

launch() { # NAME ARGS...: in its own session, so a test runner's signals do not reach it
  local name="$1"; shift
  mkdir -p "$LOGS"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$DIR/$name.pid"
}

wait_healthy() { # NAME URL [curl args]
  local name="$1" url="$2"; shift 2
  for _ in $(seq 600); do
    if curl -fsS --max-time 2 "$@" "$url" >/dev/null 2>&1; then return 0; fi
    running "$name" || { echo "cluster.sh: $name exited; last lines of $LOGS/$name.log:" >&2; tail -20 "$LOGS/$name.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "cluster.sh: $name not healthy within 60 s; see $LOGS/$name.log" >&2
  exit 1
}

start_etcd() {
  local bin; bin=$(bin_dir)
  [[ -f "$DIR/etcd.port" ]] || free_port > "$DIR/etcd.port"
  [[ -f "$DIR/etcd-peer.port" ]] || free_port > "$DIR/etcd-peer.port"
  local port peer; port=$(cat "$DIR/etcd.port"); peer=$(cat "$DIR/etcd-peer.port")
  launch etcd "$bin/etcd" --name e2e --data-dir "$DIR/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "e2e=http://127.0.0.1:$peer" \
    --unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
  wait_healthy etcd "http://127.0.0.1:$port/health"
}

start_apiserver() {
  local bin; bin=$(bin_dir)
  [[ -f "$DIR/apiserver.port" ]] || free_port > "$DIR/apiserver.port"
  local port; port=$(cat "$DIR/apiserver.port")
  # Opt-in audit log (benches/apiserver counts requests per user and user
  # agent from it): NETPOL_GUARD_E2E_AUDIT_POLICY names an audit Policy file.
  local audit=()
  if [[ -n "${NETPOL_GUARD_E2E_AUDIT_POLICY:-}" ]]; then
    mkdir -p "$LOGS"
    # One file, never rotated (the default rotates at 100 MB): the bench
    # reads it by byte offsets.
    audit=(--audit-policy-file "$NETPOL_GUARD_E2E_AUDIT_POLICY" --audit-log-path "$LOGS/audit.log"
      --audit-log-format json --audit-log-mode blocking --audit-log-maxsize 0)
  fi
  launch kube-apiserver "$bin/kube-apiserver" "${audit[@]}" \
    --etcd-servers "http://127.0.0.1:$(cat "$DIR/etcd.port")" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --token-auth-file "$PKI/tokens.csv" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" \
    --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged=true \
    --endpoint-reconciler-type none \
    --admission-control-config-file "$PKI/admission-config.yaml" \
    --profiling=false \
    --v 1
  wait_healthy kube-apiserver "https://127.0.0.1:$port/readyz" --cacert "$PKI/ca.crt" \
    -H "Authorization: Bearer $(token_of admin)"
}

start_kcm() { # [--shared-credentials]
  local bin; bin=$(bin_dir)
  local user=system:kube-controller-manager per_controller=true
  if [[ "${1:-}" == "--shared-credentials" ]]; then
    user=e2e:controller-manager per_controller=false
  fi
  kubeconfig "$DIR/kcm.kubeconfig" "$user"
  echo "$per_controller" > "$DIR/kcm.per-controller"
  launch kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$DIR/kcm.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 \
    --leader-elect=false \
    --use-service-account-credentials="$per_controller" \
    --service-account-private-key-file "$PKI/sa.key" \
    --root-ca-file "$PKI/ca.crt" \
    --controllers '*' \
    --concurrent-namespace-syncs 5 \
    --v 1
  # Ready when the serviceaccount controller has done its first round.
  for _ in $(seq 600); do
    if kubectl --kubeconfig "$DIR/admin.kubeconfig" -n default get serviceaccount default >/dev/null 2>&1; then return 0; fi
    running kube-controller-manager || { echo "cluster.sh: kube-controller-manager exited; see $LOGS/kube-controller-manager.log" >&2; tail -20 "$LOGS/kube-controller-manager.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "cluster.sh: no default ServiceAccount within 60 s; see $LOGS/kube-controller-manager.log" >&2
  exit 1
}

case "$cmd" in
  up)
    pki
    running etcd || start_etcd
    running kube-apiserver || start_apiserver
    kubeconfig "$DIR/admin.kubeconfig" admin
    running kube-controller-manager || start_kcm
    echo "cluster.sh: up; export KUBECONFIG=$DIR/admin.kubeconfig" >&2
    ;;
  down)
    stop kube-controller-manager; stop kube-apiserver; stop etcd
    ;;
  restart-apiserver)
    stop kube-apiserver; start_apiserver
    ;;
  restart-kcm)
    stop kube-controller-manager; start_kcm "${3:-}"
    ;;
  status)
    for p in etcd kube-apiserver kube-controller-manager; do
      if running "$p"; then echo "$p: running (pid $(cat "$DIR/$p.pid"))"; else echo "$p: stopped"; fi
    done
    ;;
  *) sed -n '2,24p' "$0" >&2; exit 2 ;;
esac
