//! `netpol-guard audit` against the fake API server (a test double that
//! speaks the real REST protocol to the real kube::Client): the real binary,
//! a cluster with covered, uncovered and exempt workloads across managed,
//! unmanaged, exempt and excluded namespaces, and the exact audit it gives.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::fake_apiserver::{self, FakeApiServer};
use crate::schemas;

const CONFIG: &str = r#"
exemptions:
  namespaces: [sandbox]
  workloadLabels:
  - matchLabels: {netpol-guard.io/exempt: "true"}
"#;

fn ns(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels}})
}

fn deployment(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "nginx",
                    "ports": [{"containerPort": 8080}]}]}}}})
}

fn netpol(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn baseline(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": "netpol-guard"}},
        "spec": spec})
}

/// The cluster every test audits.
fn cluster() -> Vec<Value> {
    let managed = json!({"platform.io/managed": "true", "team": "payments"});
    let deny_all = json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]});
    let dns = json!({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]});
    vec![
        // payments: managed, enforce, baseline present.
        ns("payments", managed),
        baseline("payments", "netpol-guard-default-deny", deny_all),
        baseline("payments", "netpol-guard-allow-dns", dns.clone()),
        netpol(
            "payments",
            "allow-api",
            json!({"podSelector": {"matchLabels": {"app": "api", "tier": "backend"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}),
        ),
        netpol(
            "payments",
            "open-egress",
            json!({"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Egress"],
                "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]}),
        ),
        deployment("payments", "api", json!({"app": "api", "tier": "backend"})),
        deployment(
            "payments",
            "worker",
            json!({"app": "worker", "tier": "backend"}),
        ),
        deployment(
            "payments",
            "debug",
            json!({"app": "debug", "netpol-guard.io/exempt": "true"}),
        ),
        // Owned by the api Deployment: judged at its controller, not counted.
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "api-7d9f", "namespace": "payments",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api",
                    "uid": "u-api", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "api"}},
                "template": {"metadata": {"labels": {"app": "api", "pod-template-hash": "7d9f"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "worker-x1", "namespace": "payments", "labels": {"app": "worker"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "worker-5c",
                    "uid": "u-rs", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
        // An operator's StatefulSet: judged itself, as the webhook judges it
        // when the operator creates it.
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "prometheus-main", "namespace": "payments",
                "ownerReferences": [{"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
                    "name": "main", "uid": "u-prom", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "prometheus"}}, "serviceName": "prometheus",
                "template": {"metadata": {"labels": {"app": "prometheus"}},
                    "spec": {"containers": [{"name": "p", "image": "prometheus",
                        "ports": [{"containerPort": 9090}]}]}}}}),
        // leaving: being deleted; audited, but no PolicyReport goes there.
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "leaving", "labels": {"team": "old"}},
            "status": {"phase": "Terminating"}}),
        deployment("leaving", "last", json!({"app": "last"})),
        // shop: managed in audit mode; its baseline is missing.
        ns(
            "shop",
            json!({"platform.io/managed": "true", "netpol-guard.io/mode": "audit", "team": "shop"}),
        ),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "postgres",
                        "ports": [{"containerPort": 5432}]}]}}}}),
        netpol(
            "shop",
            "web-or-slip",
            json!({"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}},
                    {"podSelector": {"matchLabels": {"role": "lb"}}}]}]}),
        ),
        json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "report", "namespace": "shop"},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        // legacy: not managed, no policy at all.
        ns("legacy", json!({"team": "legacy"})),
        deployment("legacy", "monolith", json!({"app": "monolith"})),
        json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "old-rc", "namespace": "legacy"},
            "spec": {"selector": {"app": "old"}, "template": {"metadata": {"labels": {"app": "old"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
        // sandbox: exempt by config; even a wide-open policy is not judged.
        ns("sandbox", json!({"platform.io/managed": "true"})),
        deployment("sandbox", "toy", json!({"app": "toy"})),
        netpol(
            "sandbox",
            "anything",
            json!({"podSelector": {}, "ingress": [{}]}),
        ),
        // kube-system: excluded.
        ns("kube-system", json!({})),
        deployment("kube-system", "coredns", json!({"k8s-app": "kube-dns"})),
        // Cluster-scoped Cilium policy open to the world.
        json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "world-in"},
            "spec": {"endpointSelector": {"matchLabels": {"role": "edge-gateway"}},
                "ingress": [{"fromEntities": ["world"]}]}}),
    ]
}

struct Cluster {
    fake: FakeApiServer,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// A cluster of `objects` alone.
    async fn of(objects: &[Value]) -> Cluster {
        let fake = FakeApiServer::start().await;
        for obj in objects {
            fake.apply_object(obj);
        }
        let dir = tempfile::tempdir().unwrap();
        fake.write_kubeconfig(dir.path().join("kubeconfig"))
            .unwrap();
        std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
        Cluster { fake, dir }
    }

    async fn start() -> Cluster {
        let fake = FakeApiServer::start().await;
        fake.set_cilium_installed(true);
        for obj in cluster() {
            fake.apply_object(&obj);
        }
        let dir = tempfile::tempdir().unwrap();
        fake.write_kubeconfig(dir.path().join("kubeconfig"))
            .unwrap();
        std::fs::write(dir.path().join("config.yaml"), CONFIG).unwrap();
        Cluster { fake, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `netpol-guard audit ARGS` against the fake, config from the
    /// cluster.
    async fn audit_cluster_config(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = vec![
            "audit".into(),
            "--kubeconfig".into(),
            self.path("kubeconfig").display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        run(all).await
    }

    /// Runs `netpol-guard audit ARGS` against the fake, with the test config.
    async fn audit(&self, args: &[&str]) -> Output {
        let kubeconfig = self.path("kubeconfig");
        let config = self.path("config.yaml");
        let mut all: Vec<String> = vec![
            "audit".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "--config".into(),
            config.display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        run(all).await
    }
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
            .args(&args)
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[tokio::test]
async fn the_text_audit_of_a_mixed_cluster_is_exact() {
    let c = Cluster::start().await;
    let out = c.audit(&[]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    let expected = r#"NAMESPACE    STATUS     MODE     POLICIES  BASELINE  WORKLOADS  COVERED  UNCOVERED  EXEMPT  HIGH  MEDIUM
kube-system  excluded   -               0  -                 1        -          -       1     -       -
leaving      unmanaged  -               0  -                 1        0          1       0     0       0
legacy       unmanaged  -               0  -                 2        0          2       0     0       0
payments     managed    enforce         4  present           4        1          2       1     3       0
sandbox      exempt     enforce         1  missing           1        -          -       1     -       -
shop         managed    audit           1  none              2        1          1       0     1       1

Namespaces with no NetworkPolicy at all: leaving (unmanaged), legacy (unmanaged)

leaving (unmanaged, terminating)
  uncovered Deployment last: no policy covers its pods; allowed today (namespace not managed); default-deny would isolate it
    pod labels: app=last
    nearest policy: none in this namespace grants traffic

legacy (unmanaged)
  uncovered Deployment monolith: no policy covers its pods; allowed today (namespace not managed); default-deny would isolate it
    pod labels: app=monolith
    nearest policy: none in this namespace grants traffic
  uncovered ReplicationController old-rc: no policy covers its pods; allowed today (namespace not managed); default-deny would isolate it
    pod labels: app=old
    nearest policy: none in this namespace grants traffic

payments (managed, enforce)
  uncovered Deployment worker: no policy covers its pods; require-network-policy would deny it if created now
    pod labels: app=worker, tier=backend
    nearest policy: NetworkPolicy allow-api (pods lack app=api)
  uncovered StatefulSet prometheus-main: no policy covers its pods; require-network-policy would deny it if created now
    pod labels: app=prometheus
    nearest policy: NetworkPolicy open-egress (pods lack app=api)
  DENY NetworkPolicy open-egress: world-cidr: egress rule 0, peer 0: ipBlock 0.0.0.0/0 allows traffic to every IPv4 address (limit /8). Fix: list the exact CIDRs you need, or add them to allowedCidrs.

sandbox (exempt, enforce)
  ! baseline missing: netpol-guard-default-deny, netpol-guard-allow-dns (netpol-guard serve creates it; is it running with a leader?)

shop (managed, audit)
  uncovered StatefulSet db: no policy covers its pods; require-network-policy would only warn (audit mode or rule set to warn)
    pod labels: app=db
    nearest policy: NetworkPolicy web-or-slip (pods lack app=web)
  WARN NetworkPolicy web-or-slip: or-selector-slip: ingress rule 0: peer 0 (namespaceSelector only) and peer 1 (podSelector only) are ORed: all pods of those namespaces, or those pods of this namespace. Fix: if you meant AND, put both selectors in one peer.

cluster-scoped
  WARN CiliumClusterwideNetworkPolicy world-in: policy-selects-nothing: endpointSelector role=edge-gateway matches no pods of the 11 workloads in the cluster; nearest: kube-system/coredns; no workload has a role label, this policy wants role=edge-gateway
  DENY CiliumClusterwideNetworkPolicy world-in: world-entity: ingress rule 0, fromEntities[0]: entity world admits traffic from every address outside the cluster. Fix: use fromCIDRSet with the exact source ranges, or fromEndpoints.

network plugin: unknown: no known network plugin DaemonSet found (k3s and some managed clusters enforce from outside any DaemonSet)

6 namespaces (2 without any policy), 11 workloads (6 uncovered): 4 denied, 3 warned, 0 errors
"#;
    assert_eq!(text, expected);
    // Progress goes to stderr (one line per resource when not a terminal),
    // never into the report.
    let err = stderr(&out);
    for line in [
        "audit: namespaces: 6",
        "audit: networkpolicies: 6",
        "audit: ciliumclusterwidenetworkpolicies: 1",
        "audit: pods: 1",
    ] {
        assert!(err.lines().any(|l| l == line), "{line:?} in {err}");
    }
    assert!(!text.contains('\x1b'), "no colour in a pipe");
}

/// The entry of namespace `name` in a JSON audit.
fn namespace<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no namespace {name}"))
}

/// Writes `objects` as one multi-document YAML file per namespace (and one
/// for cluster-scoped objects), as a GitOps repository would hold them.
fn write_manifests(dir: &Path, objects: &[Value]) {
    let mut files: std::collections::BTreeMap<String, String> = Default::default();
    for o in objects {
        let ns = o
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("cluster");
        let file = files.entry(format!("{ns}.yaml")).or_default();
        file.push_str("---\n");
        file.push_str(&serde_yaml::to_string(o).unwrap());
    }
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// The JSON report without the long `detail` texts (checked separately).
fn without_details(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("detail");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[tokio::test]
async fn the_json_audit_of_a_mixed_cluster_is_exact() {
    let c = Cluster::start().await;
    let out = c.audit(&["--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Value = serde_json::from_str(EXPECTED_JSON).unwrap();
    assert_eq!(without_details(report.clone()), expected);
    // Every denial or warning of a workload carries the fix: a policy for
    // exactly its pods.
    let payments = namespace(&report, "payments");
    let worker = &payments["findings"][0];
    assert_eq!(worker["name"], "worker");
    let detail = worker["detail"].as_str().unwrap();
    assert!(
        detail.contains("Fix: apply a NetworkPolicy like this one BEFORE the Deployment"),
        "{detail}"
    );
    assert!(
        detail.contains("      app: \"worker\"\n      tier: \"backend\"\n"),
        "{detail}"
    );
}

/// `audit --output json` for `cluster()`, `detail` fields left out.
const EXPECTED_JSON: &str = r##"{
  "clusterFindings": [
    {
      "action": "warn",
      "apiVersion": "cilium.io/v2",
      "kind": "CiliumClusterwideNetworkPolicy",
      "message": "policy-selects-nothing: endpointSelector role=edge-gateway matches no pods of the 11 workloads in the cluster; nearest: kube-system/coredns; no workload has a role label, this policy wants role=edge-gateway",
      "name": "world-in",
      "namespace": "",
      "rule": "policy-selects-nothing",
      "severity": "medium",
      "uid": "00000000-0000-4000-8000-00000000001a"
    },
    {
      "action": "deny",
      "apiVersion": "cilium.io/v2",
      "kind": "CiliumClusterwideNetworkPolicy",
      "message": "world-entity: ingress rule 0, fromEntities[0]: entity world admits traffic from every address outside the cluster. Fix: use fromCIDRSet with the exact source ranges, or fromEndpoints.",
      "name": "world-in",
      "namespace": "",
      "rule": "world-entity",
      "severity": "high",
      "uid": "00000000-0000-4000-8000-00000000001a"
    }
  ],
  "errors": [],
  "networkPlugin": {
    "plugins": [],
    "state": "unknown",
    "summary": "no known network plugin DaemonSet found (k3s and some managed clusters enforce from outside any DaemonSet)"
  },
  "namespaces": [
    {
      "baseline": "notManaged",
      "covered": [],
      "findings": [],
      "name": "kube-system",
      "policies": 0,
      "status": "excluded",
      "uncovered": [],
      "workloads": {
        "covered": 0,
        "exempt": 1,
        "total": 1,
        "uncovered": 0
      }
    },
    {
      "baseline": "notManaged",
      "covered": [],
      "findings": [],
      "name": "leaving",
      "policies": 0,
      "status": "unmanaged",
      "terminating": true,
      "uncovered": [
        {
          "apiVersion": "apps/v1",
          "kind": "Deployment",
          "labels": {
            "app": "last"
          },
          "name": "last",
          "onCreate": "allowed",
          "uid": "00000000-0000-4000-8000-00000000000d"
        }
      ],
      "workloads": {
        "covered": 0,
        "exempt": 0,
        "total": 1,
        "uncovered": 1
      }
    },
    {
      "baseline": "notManaged",
      "covered": [],
      "findings": [],
      "name": "legacy",
      "policies": 0,
      "status": "unmanaged",
      "uncovered": [
        {
          "apiVersion": "apps/v1",
          "kind": "Deployment",
          "labels": {
            "app": "monolith"
          },
          "name": "monolith",
          "onCreate": "allowed",
          "uid": "00000000-0000-4000-8000-000000000013"
        },
        {
          "apiVersion": "v1",
          "kind": "ReplicationController",
          "labels": {
            "app": "old"
          },
          "name": "old-rc",
          "onCreate": "allowed",
          "uid": "00000000-0000-4000-8000-000000000014"
        }
      ],
      "workloads": {
        "covered": 0,
        "exempt": 0,
        "total": 2,
        "uncovered": 2
      }
    },
    {
      "baseline": "present",
      "covered": [
        {
          "apiVersion": "apps/v1",
          "kind": "Deployment",
          "name": "api",
          "uid": "00000000-0000-4000-8000-000000000006"
        }
      ],
      "findings": [
        {
          "action": "deny",
          "apiVersion": "apps/v1",
          "kind": "Deployment",
          "message": "require-network-policy: Deployment payments/worker: no NetworkPolicy selects its pods (pod labels: app=worker, tier=backend). Apply a NetworkPolicy for them first.",
          "name": "worker",
          "namespace": "payments",
          "rule": "require-network-policy",
          "severity": "high",
          "uid": "00000000-0000-4000-8000-000000000007"
        },
        {
          "action": "deny",
          "apiVersion": "networking.k8s.io/v1",
          "kind": "NetworkPolicy",
          "message": "world-cidr: egress rule 0, peer 0: ipBlock 0.0.0.0/0 allows traffic to every IPv4 address (limit /8). Fix: list the exact CIDRs you need, or add them to allowedCidrs.",
          "name": "open-egress",
          "namespace": "payments",
          "rule": "world-cidr",
          "severity": "high",
          "uid": "00000000-0000-4000-8000-000000000005"
        },
        {
          "action": "deny",
          "apiVersion": "apps/v1",
          "kind": "StatefulSet",
          "message": "require-network-policy: StatefulSet payments/prometheus-main: no NetworkPolicy selects its pods (pod labels: app=prometheus). Apply a NetworkPolicy for them first.",
          "name": "prometheus-main",
          "namespace": "payments",
          "rule": "require-network-policy",
          "severity": "high",
          "uid": "00000000-0000-4000-8000-00000000000b"
        }
      ],
      "mode": "enforce",
      "name": "payments",
      "policies": 4,
      "status": "managed",
      "uncovered": [
        {
          "apiVersion": "apps/v1",
          "kind": "Deployment",
          "labels": {
            "app": "worker",
            "tier": "backend"
          },
          "name": "worker",
          "nearestPolicy": {
            "kind": "NetworkPolicy",
            "name": "allow-api",
            "unmet": [
              "app=api"
            ]
          },
          "onCreate": "denied",
          "uid": "00000000-0000-4000-8000-000000000007"
        },
        {
          "apiVersion": "apps/v1",
          "kind": "StatefulSet",
          "labels": {
            "app": "prometheus"
          },
          "name": "prometheus-main",
          "nearestPolicy": {
            "kind": "NetworkPolicy",
            "name": "open-egress",
            "unmet": [
              "app=api"
            ]
          },
          "onCreate": "denied",
          "uid": "00000000-0000-4000-8000-00000000000b"
        }
      ],
      "workloads": {
        "covered": 1,
        "exempt": 1,
        "total": 4,
        "uncovered": 2
      }
    },
    {
      "baseline": "missing",
      "covered": [],
      "findings": [],
      "missingBaseline": [
        "netpol-guard-default-deny",
        "netpol-guard-allow-dns"
      ],
      "mode": "enforce",
      "name": "sandbox",
      "policies": 1,
      "status": "exempt",
      "uncovered": [],
      "workloads": {
        "covered": 0,
        "exempt": 1,
        "total": 1,
        "uncovered": 0
      }
    },
    {
      "baseline": "none",
      "covered": [
        {
          "apiVersion": "batch/v1",
          "kind": "CronJob",
          "name": "report",
          "uid": "00000000-0000-4000-8000-000000000011"
        }
      ],
      "findings": [
        {
          "action": "warn",
          "apiVersion": "networking.k8s.io/v1",
          "kind": "NetworkPolicy",
          "message": "or-selector-slip: ingress rule 0: peer 0 (namespaceSelector only) and peer 1 (podSelector only) are ORed: all pods of those namespaces, or those pods of this namespace. Fix: if you meant AND, put both selectors in one peer.",
          "name": "web-or-slip",
          "namespace": "shop",
          "rule": "or-selector-slip",
          "severity": "medium",
          "uid": "00000000-0000-4000-8000-000000000010"
        },
        {
          "action": "warn",
          "apiVersion": "apps/v1",
          "kind": "StatefulSet",
          "message": "audit mode, would deny: require-network-policy: StatefulSet shop/db: no NetworkPolicy selects its pods (pod labels: app=db). Apply a NetworkPolicy for them first.",
          "name": "db",
          "namespace": "shop",
          "rule": "require-network-policy",
          "severity": "high",
          "uid": "00000000-0000-4000-8000-00000000000f"
        }
      ],
      "mode": "audit",
      "name": "shop",
      "policies": 1,
      "status": "managed",
      "uncovered": [
        {
          "apiVersion": "apps/v1",
          "kind": "StatefulSet",
          "labels": {
            "app": "db"
          },
          "name": "db",
          "nearestPolicy": {
            "kind": "NetworkPolicy",
            "name": "web-or-slip",
            "unmet": [
              "app=web"
            ]
          },
          "onCreate": "warned",
          "uid": "00000000-0000-4000-8000-00000000000f"
        }
      ],
      "workloads": {
        "covered": 1,
        "exempt": 0,
        "total": 2,
        "uncovered": 1
      }
    }
  ]
}"##;

/// The findings of a report as comparable rows.
fn rows(findings: &[Value]) -> Vec<(String, String, String, String, String, String)> {
    let mut out: Vec<_> = findings
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_string();
            (
                s("kind"),
                s("namespace"),
                s("name"),
                s("rule"),
                s("action"),
                s("message"),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn check_and_audit_give_the_same_findings_for_the_same_objects() {
    let c = Cluster::start().await;
    let audit = c.audit(&["--output", "json"]).await;
    let audit: Value = serde_json::from_slice(&audit.stdout).unwrap();
    let mut from_audit: Vec<Value> = audit["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["findings"].as_array().unwrap().clone())
        .collect();
    from_audit.extend(audit["clusterFindings"].as_array().unwrap().clone());
    // The one difference by design (issue 15): `audit` judges whether a
    // CiliumClusterwideNetworkPolicy selects anything among every
    // namespace's workloads; `check` does not, as manifests hold only part
    // of a cluster. (world-in selects role=edge-gateway, which nothing has.)
    let (clusterwide_selects_nothing, from_audit): (Vec<Value>, Vec<Value>) =
        from_audit.into_iter().partition(|f| {
            f["kind"] == "CiliumClusterwideNetworkPolicy" && f["rule"] == "policy-selects-nothing"
        });
    assert_eq!(clusterwide_selects_nothing.len(), 1);

    let repo = c.path("repo");
    std::fs::create_dir(&repo).unwrap();
    write_manifests(&repo, &cluster());
    let check = run(vec![
        "check".into(),
        "--output".into(),
        "json".into(),
        "--config".into(),
        c.path("config.yaml").display().to_string(),
        repo.display().to_string(),
    ])
    .await;
    assert_eq!(check.status.code(), Some(1), "{}", stderr(&check));
    let check: Value = serde_json::from_slice(&check.stdout).unwrap();
    let from_check = check["findings"].as_array().unwrap();
    assert_eq!(rows(from_check), rows(&from_audit));
    assert_eq!(from_check.len(), 6, "{from_check:#?}");
    // The details (the fixes) are the same too.
    let details = |v: &[Value]| {
        let mut d: Vec<String> = v.iter().map(|f| f["detail"].to_string()).collect();
        d.sort();
        d
    };
    assert_eq!(details(from_check), details(&from_audit));
}

#[tokio::test]
async fn a_namespace_audit_reads_only_that_namespace() {
    let c = Cluster::start().await;
    c.fake.clear_requests();
    let out = c
        .audit(&["--namespace", "payments", "--output", "json"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = report["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["payments"]);
    // Cluster-scoped findings belong to a whole-cluster audit, and so does
    // the network plugin: kube-system's DaemonSets were not read.
    assert_eq!(report["clusterFindings"], json!([]));
    assert_eq!(report.get("networkPlugin"), None);
    assert_eq!(report["namespaces"][0]["workloads"]["uncovered"], 2);
    // Namespaced lists: a big cluster is not read for one namespace.
    let requests = c.fake.requests();
    let paths: Vec<String> = requests.iter().map(|r| r.path.clone()).collect();
    for plural in [
        "deployments",
        "pods",
        "networkpolicies",
        "replicationcontrollers",
    ] {
        assert!(
            paths
                .iter()
                .any(|p| p.ends_with(&format!("/namespaces/payments/{plural}"))),
            "{plural}: {paths:#?}"
        );
        assert!(
            !paths.iter().any(|p| p.ends_with(&format!("/v1/{plural}"))),
            "{plural} listed cluster-wide: {paths:#?}"
        );
    }

    let missing = c.audit(&["--namespace", "nope"]).await;
    assert_eq!(missing.status.code(), Some(2));
    assert_eq!(
        stderr(&missing),
        "netpol-guard audit: namespace nope does not exist\n"
    );
    assert_eq!(stdout(&missing), "");
}

#[tokio::test]
async fn a_selector_audit_covers_the_matching_namespaces() {
    let c = Cluster::start().await;
    let out = c.audit(&["--selector", "team in (shop,legacy)"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let table: Vec<&str> = text.lines().take(3).collect();
    assert_eq!(
        table,
        [
            "NAMESPACE  STATUS     MODE   POLICIES  BASELINE  WORKLOADS  COVERED  UNCOVERED  EXEMPT  HIGH  MEDIUM",
            "legacy     unmanaged  -             0  -                 2        0          2       0     0       0",
            "shop       managed    audit         1  none              2        1          1       0     1       1",
        ]
    );
    assert!(!text.contains("cluster-scoped"), "{text}");
    assert!(!text.contains("network plugin:"), "{text}");
    assert!(text.ends_with(
        "2 namespaces (1 without any policy), 4 workloads (3 uncovered): 0 denied, 2 warned, 0 errors\n"
    ), "{text}");
    let bad = c.audit(&["--selector", "team in (("]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("cannot list namespaces"),
        "{}",
        stderr(&bad)
    );
}

#[tokio::test]
async fn colour_only_when_asked_or_on_a_terminal() {
    let c = Cluster::start().await;
    let always = stdout(&c.audit(&["--color", "always"]).await);
    assert!(
        always.contains("\x1b[1;31m1\x1b[0m"),
        "uncovered count in red: {always}"
    );
    assert!(always.contains("\x1b[32mmanaged\x1b[0m"), "{always}");
    // Colour never changes the alignment: strip it and the text is the same.
    let plain = stdout(&c.audit(&["--color", "never"]).await);
    let stripped = regex_lite_strip(&always);
    assert_eq!(stripped, plain);
    // auto: stdout is a pipe here, so no colour.
    assert!(!stdout(&c.audit(&[]).await).contains('\x1b'));
}

/// Removes ANSI SGR sequences (`ESC [ ... m`).
fn regex_lite_strip(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        if ch == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

#[tokio::test]
async fn audit_sarif_validates_and_names_the_objects() {
    let c = Cluster::start().await;
    let out = c.audit(&["--output", "sarif"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<String> = schemas::sarif_validator()
        .iter_errors(&log)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut results: Vec<(String, String, String)> = log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ruleId"].as_str().unwrap().to_string(),
                r["level"].as_str().unwrap().to_string(),
                r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    results.sort();
    let row = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        results,
        [
            row(
                "or-selector-slip",
                "warning",
                "shop/NetworkPolicy/web-or-slip"
            ),
            row(
                "policy-selects-nothing",
                "warning",
                "CiliumClusterwideNetworkPolicy/world-in"
            ),
            row(
                "require-network-policy",
                "error",
                "payments/Deployment/worker"
            ),
            row(
                "require-network-policy",
                "error",
                "payments/StatefulSet/prometheus-main"
            ),
            row("require-network-policy", "warning", "shop/StatefulSet/db"),
            row("world-cidr", "error", "payments/NetworkPolicy/open-egress"),
            row(
                "world-entity",
                "error",
                "CiliumClusterwideNetworkPolicy/world-in"
            ),
        ]
    );
}

#[tokio::test]
async fn write_reports_writes_valid_policy_reports_with_pass_and_fail() {
    let c = Cluster::start().await;
    c.fake.set_policy_reports_installed(true);
    let out = c.audit(&["--write-reports", "--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).ends_with(
            "PolicyReports written: 4 PolicyReport(s), 1 ClusterPolicyReport(s) (kubectl get policyreports -A)\n"
        ),
        "{}",
        stderr(&out)
    );
    let schemas = schemas::ReportSchemas::load();
    let reports = c
        .fake
        .list_objects("wgpolicyk8s.io/v1alpha2", "PolicyReport");
    let cluster = c
        .fake
        .list_objects("wgpolicyk8s.io/v1alpha2", "ClusterPolicyReport");
    assert_eq!(cluster.len(), 1);
    for r in reports.iter().chain(&cluster) {
        let errors = schemas.errors(r);
        assert!(errors.is_empty(), "{errors:#?}\n{r:#}");
        assert_eq!(r["metadata"]["name"], "netpol-guard");
    }
    // Excluded namespaces get no report (nothing there is judged), nor
    // namespaces being deleted (the API server would refuse it).
    let mut namespaces: Vec<&str> = reports
        .iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap())
        .collect();
    namespaces.sort();
    assert_eq!(namespaces, ["legacy", "payments", "sandbox", "shop"]);
    let payments = reports
        .iter()
        .find(|r| r["metadata"]["namespace"] == "payments")
        .unwrap();
    assert_eq!(
        payments["summary"],
        json!({"pass": 1, "fail": 3, "warn": 0, "error": 0, "skip": 0})
    );
    let results: Vec<(String, String, String, String)> = payments["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap().to_string();
            (
                s(&r["resources"][0]["name"]),
                s(&r["rule"]),
                s(&r["result"]),
                s(&r["severity"]),
            )
        })
        .collect();
    let row = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        results,
        [
            row("api", "require-network-policy", "pass", "high"),
            row("worker", "require-network-policy", "fail", "high"),
            row("open-egress", "world-cidr", "fail", "high"),
            row("prometheus-main", "require-network-policy", "fail", "high"),
        ]
    );
    let shop = reports
        .iter()
        .find(|r| r["metadata"]["namespace"] == "shop")
        .unwrap();
    assert_eq!(
        shop["summary"],
        json!({"pass": 1, "fail": 0, "warn": 2, "error": 0, "skip": 0})
    );
    assert_eq!(cluster[0]["summary"]["fail"], 1);
    assert_eq!(cluster[0]["results"][0]["resources"][0]["name"], "world-in");
    // ... and world-in selects nothing in the cluster (issue 15): a warning.
    assert_eq!(cluster[0]["summary"]["warn"], 1);
    let rules: Vec<(&str, &str)> = cluster[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["rule"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert!(
        rules.contains(&("policy-selects-nothing", "warn")),
        "{rules:?}"
    );

    // Without the CRDs: one line, the audit itself unchanged.
    let bare = Cluster::start().await;
    let out = bare.audit(&["--write-reports"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.ends_with("PolicyReport CRDs (wgpolicyk8s.io/v1alpha2) are not installed: no reports written (kubectl apply -k manifests/crds)\n"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("PolicyReport")).count(),
        1,
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_exit_2_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let out = run(vec![
        "audit".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--config".into(),
        "/dev/null".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.starts_with("netpol-guard audit: cannot list namespaces: "),
        "{err}"
    );
    assert_eq!(stdout(&out), "");
}

/// Issue 14: an audit whose report cannot be written is no clean audit.
/// With standard output on /dev/full (every write fails with ENOSPC) it
/// used to panic (exit 101); it exits 2 with one line saying what failed,
/// and writes no PolicyReports.
#[tokio::test]
async fn an_audit_that_cannot_write_its_report_is_exit_2() {
    let c = Cluster::start().await;
    c.fake.set_policy_reports_installed(true);
    for (output, name) in [("text", "text"), ("json", "JSON"), ("sarif", "SARIF")] {
        let args: Vec<String> = [
            "audit",
            "--kubeconfig",
            &c.path("kubeconfig").display().to_string(),
            "--config",
            &c.path("config.yaml").display().to_string(),
            "--output",
            output,
            "--write-reports",
        ]
        .map(String::from)
        .to_vec();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
                .args(&args)
                .stdout(std::fs::File::create("/dev/full").unwrap())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{output}: {err}");
        assert!(
            err.ends_with(&format!(
                "\nnetpol-guard audit: cannot write the {name} output to standard output: No space left on device (os error 28)\n"
            )),
            "{err}"
        );
    }
    assert!(
        c.fake
            .list_objects("wgpolicyk8s.io/v1alpha2", "PolicyReport")
            .is_empty()
    );
}

#[tokio::test]
async fn a_large_cluster_is_read_in_pages_and_counted_once() {
    let c = Cluster::start().await;
    // 1,200 bare Pods (3 pages of 500) and 1,200 Pods a ReplicaSet owns.
    for i in 0..1200 {
        c.fake.apply_object(&json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("bare-{i:04}"), "namespace": "legacy", "labels": {"app": "bare"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
        c.fake.apply_object(&json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("owned-{i:04}"), "namespace": "legacy", "labels": {"app": "monolith"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "monolith-1",
                    "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}));
    }
    c.fake.clear_requests();
    let out = c.audit(&["--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).lines().any(|l| l == "audit: pods: 2401"),
        "{}",
        stderr(&out)
    );
    let pages: Vec<String> = c
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods")
        .map(|r| r.query.clone())
        .collect();
    assert_eq!(pages.len(), 5, "{pages:#?}");
    assert!(pages.iter().all(|q| q.contains("limit=500")), "{pages:#?}");
    assert!(
        pages[4].contains("continue=fake-continue-2000"),
        "{pages:#?}"
    );

    // A continue token that expired (410 Gone) mid-list: the list starts
    // again and the audit is the same.
    c.fake.clear_requests();
    c.fake
        .fail_requests(fake_apiserver::RequestMatcher::path("/api/v1/pods"), 410, 1);
    let again = c.audit(&["--output", "json"]).await;
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert_eq!(again.stdout, out.stdout);
    let pods = c
        .fake
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods")
        .count();
    assert_eq!(pods, 6, "one failed page, then the five pages again");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let legacy = namespace(&report, "legacy");
    // Each bare Pod is a workload; the owned ones are their ReplicaSet's.
    assert_eq!(legacy["workloads"]["total"], 1202);
    assert_eq!(legacy["workloads"]["uncovered"], 1202);
}

#[tokio::test]
async fn without_config_the_webhooks_configmap_is_used() {
    let c = Cluster::start().await;
    // No ConfigMap: the defaults, and stderr says so. sandbox is then an
    // ordinary managed namespace (its exemption came from the test config).
    let out = c.audit_cluster_config(&["--namespace", "sandbox"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "note: ConfigMap netpol-guard/netpol-guard not found: judging with the built-in defaults\n"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("\nsandbox    managed  enforce"),
        "{}",
        stdout(&out)
    );
    // The webhook's ConfigMap: its exemptions apply.
    c.fake
        .apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "data": {"config.yaml": CONFIG}}));
    let out = c.audit_cluster_config(&["--namespace", "sandbox"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("note:"), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\nsandbox    exempt  enforce"),
        "{}",
        stdout(&out)
    );
    // Unreadable (here: forbidden): no guessing, exit 2.
    c.fake.fail_requests(
        fake_apiserver::RequestMatcher::path("/configmaps/netpol-guard"),
        403,
        1,
    );
    let out = c.audit_cluster_config(&["--namespace", "sandbox"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .starts_with("netpol-guard audit: cannot read ConfigMap netpol-guard/netpol-guard ("),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out)
            .ends_with("pass --config FILE (netpol-guard config default prints the defaults)\n")
    );
    assert_eq!(stdout(&out), "");
}

// ---------------------------------------------------------------------------
// The network plugin (cni-not-enforcing)
// ---------------------------------------------------------------------------

fn daemonset(ns: &str, name: &str, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": ns, "labels": {"k8s-app": name}},
        "spec": {"selector": {"matchLabels": {"k8s-app": name}},
            "template": {"metadata": {"labels": {"k8s-app": name}},
                "spec": {"hostNetwork": true, "containers": containers}}}})
}

/// kube-proxy, which every kubeadm cluster runs: no network plugin.
fn kube_proxy() -> Value {
    daemonset(
        "kube-system",
        "kube-proxy",
        json!([{"name": "kube-proxy", "image": "registry.k8s.io/kube-proxy:v1.31.2",
            "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf"]}]),
    )
}

fn flannel() -> Value {
    daemonset(
        "kube-flannel",
        "kube-flannel-ds",
        json!([{"name": "kube-flannel", "image": "docker.io/flannel/flannel:v0.25.7",
            "command": ["/opt/bin/flanneld"], "args": ["--ip-masq", "--kube-subnet-mgr"],
            "env": [{"name": "EVENT_QUEUE_DEPTH", "value": "5000"}]}]),
    )
}

/// Calico for policy only (no networking of its own), beside flannel.
fn calico_policy_only() -> Value {
    daemonset(
        "kube-system",
        "calico-node",
        json!([{"name": "calico-node", "image": "docker.io/calico/node:v3.28.0",
            "env": [{"name": "CALICO_NETWORKING_BACKEND", "value": "none"}]}]),
    )
}

/// aws-node of the VPC CNI 1.18, its agent's `--enable-network-policy`
/// set to `enabled`.
fn aws_node(enabled: &str) -> Value {
    daemonset(
        "kube-system",
        "aws-node",
        json!([
            {"name": "aws-node",
                "image": "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.5-eksbuild.1",
                "ports": [{"containerPort": 61678, "name": "metrics"}],
                "env": [{"name": "NETWORK_POLICY_ENFORCING_MODE", "value": "standard"}]},
            {"name": "aws-eks-nodeagent",
                "image": "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon/aws-network-policy-agent:v1.1.3-eksbuild.1",
                "args": ["--enable-ipv6=false", format!("--enable-network-policy={enabled}"),
                    "--enable-cloudwatch-logs=false", "--metrics-bind-addr=:8162"]}
        ]),
    )
}

/// (resource namespace/name, rule, result) of each result of the
/// ClusterPolicyReport.
fn cluster_results(fake: &FakeApiServer) -> Vec<(String, String, String)> {
    let reports = fake.list_objects("wgpolicyk8s.io/v1alpha2", "ClusterPolicyReport");
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let errors = schemas::ReportSchemas::load().errors(&reports[0]);
    assert!(errors.is_empty(), "{errors:#?}\n{:#}", reports[0]);
    reports[0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let res = &r["resources"][0];
            (
                format!("{}/{}", s(&res["namespace"]), s(&res["name"])),
                s(&r["rule"]),
                s(&r["result"]),
            )
        })
        .collect()
}

const FLANNEL_FINDING: &str = "cni-not-enforcing: flannel v0.25.7 (kube-flannel/kube-flannel-ds): no policy engine; NetworkPolicies are stored, none is enforced. Run Calico for policy beside it (canal) or switch to a CNI that enforces.";

#[tokio::test]
async fn flannel_alone_fails_the_audit_and_calico_beside_it_passes() {
    let c = Cluster::of(&[
        ns("kube-system", json!({})),
        ns("kube-flannel", json!({})),
        kube_proxy(),
        flannel(),
    ])
    .await;
    c.fake.set_policy_reports_installed(true);
    let out = c.audit(&["--write-reports"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "\ncluster-scoped\n  DENY DaemonSet kube-flannel-ds: {FLANNEL_FINDING}\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("\n\nnetwork plugin: flannel v0.25.7 (kube-flannel/kube-flannel-ds): nothing enforces NetworkPolicy (flannel: no policy engine)\n\n"),
        "{text}"
    );
    assert!(text.ends_with(": 1 denied, 0 warned, 0 errors\n"), "{text}");
    // In the ClusterPolicyReport, on the DaemonSet (with its namespace), and
    // in no namespace's PolicyReport.
    assert_eq!(
        cluster_results(&c.fake),
        [(
            "kube-flannel/kube-flannel-ds".to_string(),
            "cni-not-enforcing".to_string(),
            "fail".to_string()
        )]
    );
    let report = &c
        .fake
        .list_objects("wgpolicyk8s.io/v1alpha2", "ClusterPolicyReport")[0];
    assert_eq!(report["results"][0]["message"], FLANNEL_FINDING);
    assert_eq!(report["results"][0]["category"], "Policy enforcement");
    assert_eq!(report["results"][0]["severity"], "high");
    for r in c
        .fake
        .list_objects("wgpolicyk8s.io/v1alpha2", "PolicyReport")
    {
        assert!(
            !r["results"].to_string().contains("cni-not-enforcing"),
            "{r:#}"
        );
    }

    // JSON: the verdict and the finding.
    let out = c.audit(&["--output", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["networkPlugin"],
        json!({"state": "not-enforcing",
            "plugins": [{"name": "flannel", "namespace": "kube-flannel",
                "daemonSet": "kube-flannel-ds", "version": "v0.25.7",
                "enforces": "no", "note": "no policy engine"}],
            "summary": "flannel v0.25.7 (kube-flannel/kube-flannel-ds): nothing enforces NetworkPolicy (flannel: no policy engine)"})
    );
    let finding = without_details(report["clusterFindings"][0].clone());
    let uid = finding["uid"].clone();
    assert!(uid.is_string(), "{finding:#}");
    assert_eq!(
        finding,
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "kube-flannel-ds",
            "namespace": "kube-flannel", "uid": uid, "rule": "cni-not-enforcing",
            "action": "deny", "severity": "high", "message": FLANNEL_FINDING})
    );
    assert!(
        report["clusterFindings"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("cni-not-enforcing: off")
    );

    // Set to warn, it no longer fails the audit.
    std::fs::write(
        c.path("config.yaml"),
        format!("{CONFIG}rules:\n  cni-not-enforcing: warn\n"),
    )
    .unwrap();
    let out = c.audit(&[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("  WARN DaemonSet kube-flannel-ds: cni-not-enforcing: "),
        "{}",
        stdout(&out)
    );
    std::fs::write(c.path("config.yaml"), CONFIG).unwrap();

    // Calico for policy beside flannel: enforcing, clean, and a pass.
    c.fake.apply_object(&calico_policy_only());
    let out = c.audit(&["--write-reports"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("\n\nnetwork plugin: flannel v0.25.7 (kube-flannel/kube-flannel-ds), calico-node v3.28.0 (kube-system/calico-node): calico-node enforces NetworkPolicy\n\n"),
        "{text}"
    );
    assert!(!text.contains("cni-not-enforcing"), "{text}");
    assert_eq!(
        cluster_results(&c.fake),
        [(
            "kube-system/calico-node".to_string(),
            "cni-not-enforcing".to_string(),
            "pass".to_string()
        )]
    );
}

#[tokio::test]
async fn the_vpc_cni_is_judged_by_its_agents_argument_as_listed() {
    // The arguments survive the inventory's cut of each DaemonSet.
    for (enabled, code, line) in [
        (
            "true",
            0,
            "network plugin: aws-node v1.18.5-eksbuild.1 (kube-system/aws-node) enforces NetworkPolicy\n",
        ),
        (
            "false",
            1,
            "network plugin: aws-node v1.18.5-eksbuild.1 (kube-system/aws-node): nothing enforces NetworkPolicy (aws-node: aws-eks-nodeagent: --enable-network-policy=false)\n",
        ),
    ] {
        let c = Cluster::of(&[
            ns("kube-system", json!({})),
            kube_proxy(),
            aws_node(enabled),
        ])
        .await;
        let out = c.audit(&[]).await;
        assert_eq!(out.status.code(), Some(code), "{enabled}: {}", stderr(&out));
        assert!(stdout(&out).contains(line), "{enabled}: {}", stdout(&out));
    }
}

#[tokio::test]
async fn no_plugin_daemonset_is_unknown_and_no_alarm() {
    // k3s, or a managed cluster that enforces from outside any DaemonSet.
    let c = Cluster::of(&[ns("kube-system", json!({})), kube_proxy()]).await;
    c.fake.set_policy_reports_installed(true);
    let out = c.audit(&["--write-reports"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\nnetwork plugin: unknown: no known network plugin DaemonSet found (k3s and some managed clusters enforce from outside any DaemonSet)\n"),
        "{}",
        stdout(&out)
    );
    assert_eq!(cluster_results(&c.fake), []);
    let out = c.audit(&["--output", "json"]).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["networkPlugin"]["state"], "unknown");
    assert_eq!(report["clusterFindings"], json!([]));
}
