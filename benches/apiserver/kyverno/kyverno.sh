#!/usr/bin/env bash
# Kyverno out of cluster on a control plane of tests/e2e/cluster.sh, for the
# apiserver benchmark (benches/apiserver/README.md, section Kyverno).
#
#   kyverno.sh up CPDIR     install Kyverno's CRDs, namespace, ServiceAccounts,
#                           ConfigMaps; start cmd/kyverno (admission) and
#                           cmd/background-controller (generate) on 127.0.0.1;
#                           apply the policies; wait until the policies are Ready
#                           and the webhooks registered; then restart either
#                           process that exits (as its Deployment would)
#   kyverno.sh down CPDIR   stop both, delete every Kyverno webhook configuration,
#                           the policies and the pending UpdateRequests (the CRDs
#                           and the kyverno namespace stay, so the next up is quick)
#   kyverno.sh status CPDIR
#
# Files in CPDIR: kyverno.pid, kyverno-background.pid, kyverno.port (webhook
# port), kyverno-metrics.port, kyverno-background-metrics.port, kyverno.env (the
# same as shell variables), logs/kyverno.log, logs/kyverno-background.log,
# kyverno-admission.kubeconfig, kyverno-background.kubeconfig.
# Env: KYVERNO_POLICIES (default policies.yaml beside this script; "none" applies
#      none), KYVERNO_WEBHOOK_TIMEOUT (seconds, default 10 as Kyverno's own default),
#      KYVERNO_EXTRA_ARGS (more flags for cmd/kyverno), KYVERNO_BG_EXTRA_ARGS (for
#      cmd/background-controller), KYVERNO_VERSION / NETPOL_GUARD_CACHE (see
#      build-kyverno.sh), KYVERNO_BIN (a bin directory to use instead of building).
#
# Identity: each process runs as its own ServiceAccount (kyverno:kyverno-admission-controller,
# kyverno:kyverno-background-controller, as the Helm chart names them) with a
# token from the TokenRequest API, bound to cluster-admin rather than the chart's
# narrower ClusterRoles: acceptable for a throw-away benchmark cluster, not for
# production. Separate identities matter: the admission controller is told the
# background controller's user (--backgroundServiceAccountName), whose writes to
# generated NetworkPolicies it must not treat as user changes.
# Security: every listener is bound to 127.0.0.1 (webhook, metrics; the
# controller-runtime metrics server, which the chart binds to :8080, is off).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
DIR="${2:-}"
[[ -n "$cmd" && -n "$DIR" ]] || { sed -n '2,36p' "$0" >&2; exit 2; }
[[ -d "$DIR" ]] || { echo "kyverno.sh: $DIR is not a directory" >&2; exit 2; }
DIR="$(cd "$DIR" && pwd)"
LOGS="$DIR/logs"
export KUBECONFIG="$DIR/admin.kubeconfig"
NS=kyverno
ADMISSION_SA=kyverno-admission-controller
BACKGROUND_SA=kyverno-background-controller
CA_SECRET=kyverno-svc.kyverno.svc.kyverno-tls-ca
TLS_SECRET=kyverno-svc.kyverno.svc.kyverno-tls-pair
POLICIES="${KYVERNO_POLICIES:-$HERE/policies.yaml}"
WEBHOOK_TIMEOUT="${KYVERNO_WEBHOOK_TIMEOUT:-10}"

log() { echo "kyverno.sh: $*" >&2; }
k() { kubectl --request-timeout=30s "$@"; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

running() { [[ -f "$DIR/$1.pid" ]] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

stop() {
  local name="$1"
  if running "$name"; then
    local pid; pid=$(cat "$DIR/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/$name.pid"
}

launch() { # NAME ENV... -- ARGS...: in its own session, as cluster.sh does
  local name="$1"; shift
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  mkdir -p "$LOGS"
  echo "=== $(date -Is) $*" >> "$LOGS/$name.log"
  setsid env "${envs[@]}" "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$DIR/$name.pid"
}

must_run() { # NAME
  running "$1" && return 0
  log "$1 exited; last lines of $LOGS/$1.log:"
  tail -30 "$LOGS/$1.log" >&2
  exit 1
}

kubeconfig_for() { # SA FILE: a kubeconfig with a fresh 48 h token of SA
  local sa="$1" file="$2" token server ca
  token=$(k -n "$NS" create token "$sa" --duration=48h)
  server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  ca=$(k config view --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  (umask 077; cat > "$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: $sa
  user:
    token: $token
contexts:
- name: e2e
  context: {cluster: e2e, user: $sa}
current-context: e2e
KC
  )
}

install() {
  log "applying Kyverno's CRDs"
  local crds=() f
  while IFS= read -r f; do crds+=(-f "$f"); done < <("$HERE/build-kyverno.sh" --crds)
  # Server-side: some CRDs are too large for the last-applied annotation.
  k apply --server-side --force-conflicts "${crds[@]}" >/dev/null
  k wait --for=condition=Established --timeout=60s crd \
    clusterpolicies.kyverno.io policies.kyverno.io updaterequests.kyverno.io >/dev/null

  # The namespace, identities and ConfigMaps the Helm chart creates, with the
  # chart's default values (charts/kyverno/values.yaml: config, metricsConfig).
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: $NS
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: $ADMISSION_SA, namespace: $NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: $BACKGROUND_SA, namespace: $NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kyverno-bench:admission-controller"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: $ADMISSION_SA, namespace: $NS}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "kyverno-bench:background-controller"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: $BACKGROUND_SA, namespace: $NS}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kyverno, namespace: $NS}
data:
  enableDefaultRegistryMutation: "true"
  defaultRegistry: docker.io
  generateSuccessEvents: "false"
  excludeGroups: system:nodes
  updateRequestThreshold: "1000"
  webhooks: '{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["kube-system"]},{"key":"kubernetes.io/metadata.name","operator":"NotIn","values":["$NS"]}]}}'
  webhookAnnotations: '{"admissions.enforcer/disabled":"true"}'
  resourceFilters: >-
    [Event,*,*] [*/*,kube-system,*] [*/*,kube-public,*] [*/*,kube-node-lease,*]
    [Node,*,*] [Node/?*,*,*] [APIService,*,*] [APIService/?*,*,*] [TokenReview,*,*]
    [SubjectAccessReview,*,*] [SelfSubjectAccessReview,*,*] [Binding,*,*] [Pod/binding,*,*]
    [ReplicaSet,*,*] [ReplicaSet/?*,*,*] [EphemeralReport,*,*] [ClusterEphemeralReport,*,*]
    [*/*,$NS,*]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kyverno-metrics, namespace: $NS}
data:
  bucketBoundaries: "0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 25, 30"
  metricsExposure: '{"kyverno_policy_execution_duration_seconds":{"disabledLabelDimensions":["resource_namespace","resource_request_operation"]},"kyverno_admission_review_duration_seconds":{"disabledLabelDimensions":["resource_namespace"]},"kyverno_policy_rule_info_total":{"disabledLabelDimensions":["resource_namespace","policy_namespace"]},"kyverno_policy_results_total":{"disabledLabelDimensions":["resource_namespace","policy_namespace"]},"kyverno_admission_requests_total":{"disabledLabelDimensions":["resource_namespace"]}}'
YAML
}

readiness() { # PORT: Kyverno's readiness probe (true once its TLS pair is valid)
  curl -fsk --max-time 2 "https://127.0.0.1:$1/health/readiness" >/dev/null 2>&1
}

webhook_kinds() { # the resources in Kyverno's resource validating webhooks
  k get validatingwebhookconfiguration kyverno-resource-validating-webhook-cfg -o json 2>/dev/null \
    | jq -r '[.webhooks[]?.rules[]?.resources[]?] | unique | join(" ")' 2>/dev/null || true
}

# The two processes, with the flags the chart passes by default except
# where out of cluster needs otherwise (serverIP, host/port bindings,
# kubeconfig). They read bin, port, mport and bport from `up`.
launch_admission() {
  # shellcheck disable=SC2086
  launch kyverno \
    KYVERNO_NAMESPACE=$NS KYVERNO_SERVICEACCOUNT_NAME=$ADMISSION_SA KYVERNO_ROLE_NAME=kyverno:admission-controller \
    KYVERNO_DEPLOYMENT=kyverno-admission-controller KYVERNO_SVC=kyverno-svc KYVERNO_POD_NAME=kyverno-admission-bench-0 \
    INIT_CONFIG=kyverno METRICS_CONFIG=kyverno-metrics \
    -- "$bin/kyverno" \
    --kubeconfig="$DIR/kyverno-admission.kubeconfig" \
    --serverIP="127.0.0.1:$port" \
    --webhookServerHost=127.0.0.1 --webhookServerPort="$port" \
    --caSecretName=$CA_SECRET --tlsSecretName=$TLS_SECRET --tlsKeyAlgorithm=RSA \
    --backgroundServiceAccountName="system:serviceaccount:$NS:$BACKGROUND_SA" \
    --webhookTimeout="$WEBHOOK_TIMEOUT" \
    --resyncPeriod=15m --crdWatcher=false \
    --disableMetrics=false --otelConfig=prometheus --metricsHost=127.0.0.1 --metricsPort="$mport" \
    --controllerRuntimeMetricsAddress=0 \
    --admissionReports=true \
    --autoUpdateWebhooks=true --excludeBootstrapResources=false \
    --enableConfigMapCaching=true --enableDeferredLoading=true --dumpPayload=false \
    --forceFailurePolicyIgnore=false --generateValidatingAdmissionPolicy=true \
    --generateMutatingAdmissionPolicy=false --dumpPatches=false \
    --maxAPICallResponseLength=2000000 --apiCallTimeout=30s --maxGlobalContextEntries=0 \
    --loggingFormat=text --disableLogColor --v=2 --omitEvents=PolicyApplied,PolicySkipped \
    --enablePolicyException=false --protectManagedResources=false \
    --allowInsecureRegistry=false --enableTuf=false \
    ${KYVERNO_EXTRA_ARGS:-}
}

launch_background() {
  launch kyverno-background \
    KYVERNO_NAMESPACE=$NS KYVERNO_SERVICEACCOUNT_NAME=$BACKGROUND_SA \
    KYVERNO_DEPLOYMENT=kyverno-background-controller KYVERNO_POD_NAME=kyverno-background-bench-0 \
    INIT_CONFIG=kyverno METRICS_CONFIG=kyverno-metrics \
    -- "$bin/background-controller" \
    --kubeconfig="$DIR/kyverno-background.kubeconfig" \
    --resyncPeriod=15m \
    --disableMetrics=false --otelConfig=prometheus --metricsHost=127.0.0.1 --metricsPort="$bport" \
    --controllerRuntimeMetricsAddress=0 \
    --enableConfigMapCaching=true --enableDeferredLoading=true \
    --maxAPICallResponseLength=2000000 --apiCallTimeout=30s --maxGlobalContextEntries=0 \
    --loggingFormat=text --disableLogColor --v=2 --omitEvents=PolicyApplied,PolicySkipped \
    --enablePolicyException=false \
    ${KYVERNO_BG_EXTRA_ARGS:-}

}

# Out of cluster nothing restarts a Kyverno process that exits; in a cluster
# its Deployment would. Kyverno's admission process exits when it loses its
# Lease, and under a generate burst its own client-side rate limiter starved
# the renewal (docs/benchmarks.md, issue 16). Restarted a second later, as a
# kubelet would; each restart is a line in kyverno-supervisor.log.
supervise() {
  while sleep 1; do
    [[ -f "$DIR/supervisor.pid" ]] || exit 0
    if ! running kyverno; then log "restarting kyverno (it exited)"; launch_admission; fi
    if ! running kyverno-background; then log "restarting kyverno-background (it exited)"; launch_background; fi
  done
}

up() {
  [[ -f "$KUBECONFIG" ]] || { log "no $KUBECONFIG: start the control plane first (tests/e2e/cluster.sh up $DIR)"; exit 1; }
  local bin start
  start=$(date +%s)
  bin="${KYVERNO_BIN:-$("$HERE/build-kyverno.sh")}"
  if running kyverno || running kyverno-background; then
    log "already running (pids $(cat "$DIR/kyverno.pid" 2>/dev/null) $(cat "$DIR/kyverno-background.pid" 2>/dev/null)); run down first"
    exit 1
  fi
  install
  kubeconfig_for "$ADMISSION_SA" "$DIR/kyverno-admission.kubeconfig"
  kubeconfig_for "$BACKGROUND_SA" "$DIR/kyverno-background.kubeconfig"

  local port mport bport
  port=$(free_port); mport=$(free_port); bport=$(free_port)
  echo "$port" > "$DIR/kyverno.port"
  echo "$mport" > "$DIR/kyverno-metrics.port"
  echo "$bport" > "$DIR/kyverno-background-metrics.port"

  launch_admission
  launch_background

  log "waiting for the admission controller (webhook 127.0.0.1:$port) to be ready"
  local ok=""
  for _ in $(seq 1200); do
    must_run kyverno; must_run kyverno-background
    if readiness "$port" && k get validatingwebhookconfiguration kyverno-policy-validating-webhook-cfg >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.25
  done
  [[ -n "$ok" ]] || { log "not ready within 300 s; see $LOGS/kyverno.log"; tail -30 "$LOGS/kyverno.log" >&2; exit 1; }

  if [[ "$POLICIES" != none ]]; then
    log "applying $POLICIES"
    local tries=0
    until k apply -f "$POLICIES" >/dev/null 2>"$DIR/kyverno-apply.err"; do
      tries=$((tries + 1))
      [[ $tries -lt 30 ]] || { cat "$DIR/kyverno-apply.err" >&2; exit 1; }
      sleep 1
    done
    k wait --for=condition=Ready --timeout=120s -f "$POLICIES" >/dev/null
    # The resource webhooks are rewritten after the policies are cached: wait
    # until they cover what the policies match.
    local kinds=""
    ok=""
    for _ in $(seq 600); do
      must_run kyverno
      kinds=$(webhook_kinds)
      if [[ " $kinds " == *" deployments "* && " $kinds " == *" pods "* \
         && " $kinds " == *" networkpolicies "* && " $kinds " == *" namespaces "* ]]; then ok=1; break; fi
      sleep 0.25
    done
    [[ -n "$ok" ]] || { log "resource webhooks not registered within 150 s (have: $kinds)"; exit 1; }
  fi
  must_run kyverno-background
  {
    echo "KYVERNO_PID=$(cat "$DIR/kyverno.pid")"
    echo "KYVERNO_BACKGROUND_PID=$(cat "$DIR/kyverno-background.pid")"
    echo "KYVERNO_WEBHOOK_PORT=$port"
    echo "KYVERNO_METRICS_URL=http://127.0.0.1:$mport/metrics"
    echo "KYVERNO_BACKGROUND_METRICS_URL=http://127.0.0.1:$bport/metrics"
    echo "KYVERNO_BIN=$bin"
    echo "KYVERNO_VERSION=$(basename "$(dirname "$bin")" | sed 's/^kyverno-//')"
  } > "$DIR/kyverno.env"
  supervise >>"$LOGS/kyverno-supervisor.log" 2>&1 </dev/null &
  echo $! > "$DIR/supervisor.pid"
  log "up in $(( $(date +%s) - start )) s: webhook https://127.0.0.1:$port, metrics http://127.0.0.1:$mport/metrics and http://127.0.0.1:$bport/metrics; $DIR/kyverno.env"
}

down() {
  stop supervisor
  stop kyverno
  stop kyverno-background
  if [[ -f "$KUBECONFIG" ]] && k get --raw /readyz >/dev/null 2>&1; then
    # Out of cluster Kyverno does not remove its webhooks when it stops (it
    # only does so when its Deployment is going away): remove them here, first,
    # so that nothing calls a webhook that is gone.
    k delete validatingwebhookconfiguration -l webhook.kyverno.io/managed-by --ignore-not-found >/dev/null
    k delete mutatingwebhookconfiguration -l webhook.kyverno.io/managed-by --ignore-not-found >/dev/null
    local name
    for name in kyverno-policy-validating-webhook-cfg kyverno-resource-validating-webhook-cfg \
      kyverno-exception-validating-webhook-cfg kyverno-cel-exception-validating-webhook-cfg \
      kyverno-global-context-validating-webhook-cfg kyverno-cleanup-validating-webhook-cfg \
      kyverno-ttl-validating-webhook-cfg; do
      k delete validatingwebhookconfiguration "$name" --ignore-not-found >/dev/null
    done
    for name in kyverno-policy-mutating-webhook-cfg kyverno-resource-mutating-webhook-cfg \
      kyverno-verify-mutating-webhook-cfg; do
      k delete mutatingwebhookconfiguration "$name" --ignore-not-found >/dev/null
    done
    # ValidatingAdmissionPolicies Kyverno may have generated from its policies.
    k delete validatingadmissionpolicybindings -l app.kubernetes.io/managed-by=kyverno --ignore-not-found >/dev/null 2>&1 || true
    k delete validatingadmissionpolicies -l app.kubernetes.io/managed-by=kyverno --ignore-not-found >/dev/null 2>&1 || true
    if k get crd clusterpolicies.kyverno.io >/dev/null 2>&1; then
      # (kubectl warns that kyverno.io/v1 ClusterPolicy is deprecated since 1.17.)
      k delete clusterpolicies.kyverno.io --all --ignore-not-found --wait=false >/dev/null 2>&1
      k delete updaterequests.kyverno.io -n "$NS" --all --ignore-not-found --wait=false >/dev/null
    fi
    # The leases, so that the next up takes the lead at once.
    k -n "$NS" delete lease --all --ignore-not-found >/dev/null 2>&1 || true
    local left
    left=$(k get validatingwebhookconfiguration,mutatingwebhookconfiguration -o name | grep -c kyverno || true)
    [[ "$left" == 0 ]] || { log "$left Kyverno webhook configurations are left"; exit 1; }
  else
    log "the API server does not answer: webhook configurations not removed"
  fi
  rm -f "$DIR/kyverno.env"
}

case "$cmd" in
  up) up ;;
  down) down ;;
  status)
    for p in kyverno kyverno-background; do
      if running "$p"; then echo "$p: running (pid $(cat "$DIR/$p.pid"))"; else echo "$p: stopped"; fi
    done
    ;;
  *) sed -n '2,36p' "$0" >&2; exit 2 ;;
esac
