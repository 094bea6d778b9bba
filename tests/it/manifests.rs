//! The deployment manifests, as `kubectl kustomize` renders them, keep the
//! properties that stop netpol-guard from locking up a cluster: short
//! timeouts, no side effects, kube-system and its own namespace excluded,
//! failurePolicy Fail only where the namespace opted in, two replicas spread
//! over nodes with a PodDisruptionBudget, a locked-down pod. A future edit
//! that drops one fails here.

use std::path::Path;
use std::process::Command;

use netpol_guard::certs;
use netpol_guard::config::{DEFAULT_CONFIG_YAML, Settings};
use netpol_guard::workload;
use serde_json::{Value, json};

const NAMESPACE: &str = "netpol-guard";
/// The eight workload kinds, as API resources.
const WORKLOAD_RESOURCES: [&str; 8] = [
    "cronjobs",
    "daemonsets",
    "deployments",
    "jobs",
    "pods",
    "replicasets",
    "replicationcontrollers",
    "statefulsets",
];
const POLICY_RESOURCES: [&str; 3] = [
    "ciliumclusterwidenetworkpolicies",
    "ciliumnetworkpolicies",
    "networkpolicies",
];

/// `kubectl kustomize DIR`, one JSON value per object.
fn render(dir: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(root.join(dir))
        .output()
        .unwrap_or_else(|e| {
            panic!("these tests need kubectl (client only) on PATH to render {dir}: {e}")
        });
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn default_settings() -> Settings {
    Settings::from_yaml(DEFAULT_CONFIG_YAML).unwrap()
}

/// The webhooks of a configuration, by name.
fn webhooks<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    find(objects, kind, certs::WEBHOOK_CONFIGURATION)["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .collect()
}

fn webhook<'a>(objects: &'a [Value], name: &str) -> &'a Value {
    [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ]
    .iter()
    .flat_map(|k| webhooks(objects, k))
    .find(|w| w["name"] == name)
    .unwrap_or_else(|| panic!("no webhook {name}"))
}

/// The resources a webhook's rules cover, with the operations of each.
fn covered(w: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for rule in w["rules"].as_array().unwrap() {
        for r in strings(&rule["resources"]) {
            out.push((r, strings(&rule["operations"])));
        }
    }
    out.sort();
    out
}

#[test]
fn every_webhook_is_bounded_side_effect_free_and_skips_the_system_namespaces() {
    let objects = render("manifests");
    let excluded_by_config = default_settings().config.managed_namespaces.exclude;
    let mut seen = Vec::new();
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        for w in webhooks(&objects, kind) {
            let name = w["name"].as_str().unwrap();
            seen.push(name.to_string());
            assert_eq!(w["admissionReviewVersions"], json!(["v1"]), "{name}");
            assert_eq!(w["sideEffects"], "None", "{name}");
            let timeout = w["timeoutSeconds"].as_u64().unwrap();
            assert!(
                (1..=5).contains(&timeout),
                "{name}: timeoutSeconds {timeout}"
            );
            let service = &w["clientConfig"]["service"];
            assert_eq!(service["name"], "netpol-guard", "{name}");
            assert_eq!(service["namespace"], NAMESPACE, "{name}");
            assert_eq!(service["port"], 443, "{name}");
            let path = if kind.starts_with("Mutating") {
                "/mutate"
            } else {
                "/validate"
            };
            assert_eq!(service["path"], path, "{name}");
            // The namespaces the cluster heals from are never sent to
            // netpol-guard, whatever their labels.
            let by_name: Vec<&Value> = w["namespaceSelector"]["matchExpressions"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: no namespaceSelector.matchExpressions"))
                .iter()
                .filter(|e| e["key"] == "kubernetes.io/metadata.name")
                .collect();
            assert_eq!(by_name.len(), 1, "{name}");
            assert_eq!(by_name[0]["operator"], "NotIn", "{name}");
            let skipped = strings(&by_name[0]["values"]);
            for ns in ["kube-system", NAMESPACE]
                .iter()
                .map(|s| s.to_string())
                .chain(excluded_by_config.iter().cloned())
            {
                assert!(
                    skipped.contains(&ns),
                    "{name} does not skip {ns}: {skipped:?}"
                );
            }
        }
    }
    seen.sort();
    let mut expected: Vec<String> = certs::VALIDATING_WEBHOOKS
        .iter()
        .chain(certs::MUTATING_WEBHOOKS.iter())
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    // The caBundle patch that `certs` writes names exactly these webhooks.
    assert_eq!(seen, expected);
}

#[test]
fn workloads_are_judged_only_in_managed_namespaces_and_fail_closed() {
    let objects = render("manifests");
    let w = webhook(&objects, "workloads.netpol-guard.io");
    assert_eq!(w["failurePolicy"], "Fail");
    // The API server never calls it for unmanaged namespaces: the selector is
    // the config's managedNamespaces.selector.
    let managed =
        serde_json::to_value(&default_settings().config.managed_namespaces.selector).unwrap();
    assert_eq!(
        w["namespaceSelector"]["matchLabels"],
        managed["matchLabels"]
    );
    let create_update = vec!["CREATE".to_string(), "UPDATE".to_string()];
    assert_eq!(
        covered(w),
        WORKLOAD_RESOURCES
            .iter()
            .map(|r| (r.to_string(), create_update.clone()))
            .collect::<Vec<_>>()
    );
    // Controller-owned pods are skipped before the call, as the engine does.
    let conditions = w["matchConditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0]["name"], "skip-controller-owned-pods");
    let expr = conditions[0]["expression"].as_str().unwrap();
    assert!(
        expr.starts_with("!(request.kind.kind == 'Pod' && has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller && ("),
        "{expr}"
    );
    assert_eq!(
        skipped_owners(expr),
        workload::POD_CONTROLLERS
            .iter()
            .map(|(v, k)| (v.to_string(), k.to_string()))
            .collect::<Vec<_>>(),
        "{expr}"
    );
}

/// The (apiVersion, kind) pairs the `skip-controller-owned-pods` expression
/// lets a Pod's controller be, read from its clauses
/// `(r.apiVersion == 'V' && r.kind == 'K')` and
/// `(r.apiVersion == 'V' && r.kind in ['K1', 'K2'])`, joined by `||`.
/// Issue 13: it skipped a Pod whatever its controller was (a ConfigMap).
fn skipped_owners(expr: &str) -> Vec<(String, String)> {
    let quoted = |s: &str| -> String {
        let s = s.trim();
        assert!(
            s.len() >= 2 && s.starts_with('\'') && s.ends_with('\''),
            "not a quoted string: {s}"
        );
        s[1..s.len() - 1].to_string()
    };
    let mut out = Vec::new();
    for clause in expr.split(" || ") {
        let (_, rest) = clause
            .split_once("r.apiVersion == ")
            .unwrap_or_else(|| panic!("clause without r.apiVersion: {clause}"));
        let (version, kinds) = rest
            .split_once(" && r.kind ")
            .unwrap_or_else(|| panic!("clause without r.kind: {clause}"));
        let kinds = kinds.trim_end_matches(')');
        let kinds: Vec<String> = if let Some(list) = kinds.strip_prefix("in [") {
            list.trim_end_matches(']').split(',').map(quoted).collect()
        } else {
            vec![quoted(kinds.strip_prefix("== ").unwrap_or_else(|| {
                panic!("r.kind neither == nor in: {clause}")
            }))]
        };
        for k in kinds {
            out.push((quoted(version), k));
        }
    }
    out
}

#[test]
fn policies_fail_closed_in_managed_namespaces_and_open_elsewhere() {
    let objects = render("manifests");
    let managed =
        serde_json::to_value(&default_settings().config.managed_namespaces.selector).unwrap();
    let all_ops = vec![
        "CREATE".to_string(),
        "DELETE".to_string(),
        "UPDATE".to_string(),
    ];

    let w = webhook(&objects, "policies.netpol-guard.io");
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(
        w["namespaceSelector"]["matchLabels"],
        managed["matchLabels"]
    );
    assert_eq!(
        covered(w),
        POLICY_RESOURCES
            .iter()
            .map(|r| (r.to_string(), all_ops.clone()))
            .collect::<Vec<_>>()
    );

    let w = webhook(&objects, "policies-unmanaged.netpol-guard.io");
    assert_eq!(w["failurePolicy"], "Ignore");
    assert!(w["namespaceSelector"].get("matchLabels").is_none());
    let (key, value) = managed["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    assert!(
        w["namespaceSelector"]["matchExpressions"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": key, "operator": "NotIn", "values": [value]})),
        "{w}"
    );
    // Cluster-wide Cilium policies ignore namespaceSelector: only the
    // fail-closed webhook lists them, so they are not judged twice.
    assert_eq!(
        covered(w),
        ["ciliumnetworkpolicies", "networkpolicies"]
            .iter()
            .map(|r| (r.to_string(), all_ops.clone()))
            .collect::<Vec<_>>()
    );

    let w = webhook(&objects, "namespaces.netpol-guard.io");
    assert_eq!(
        w["failurePolicy"], "Ignore",
        "a mutation must never block namespace creation"
    );
    assert_eq!(
        covered(w),
        vec![("namespaces".to_string(), vec!["CREATE".to_string()])]
    );
}

#[test]
fn the_deployment_is_highly_available_and_locked_down() {
    let objects = render("manifests");
    let d = find(&objects, "Deployment", "netpol-guard");
    assert_eq!(d["metadata"]["namespace"], NAMESPACE);
    assert!(d["spec"]["replicas"].as_u64().unwrap() >= 2);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &d["spec"]["template"]["spec"];
    let labels = &d["spec"]["template"]["metadata"]["labels"];
    assert_eq!(d["spec"]["selector"]["matchLabels"], *labels);

    // Spread over nodes.
    let spread = pod["topologySpreadConstraints"].as_array().unwrap();
    let by_node = spread
        .iter()
        .find(|c| c["topologyKey"] == "kubernetes.io/hostname")
        .expect("a spread constraint over nodes");
    assert_eq!(by_node["whenUnsatisfiable"], "DoNotSchedule");
    assert_eq!(by_node["maxSkew"], 1);
    assert_eq!(by_node["labelSelector"]["matchLabels"], *labels);

    // Pod-level hardening.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["serviceAccountName"], "netpol-guard");
    assert_eq!(pod["automountServiceAccountToken"], true);
    let sa = find(&objects, "ServiceAccount", "netpol-guard");
    assert_eq!(sa["automountServiceAccountToken"], false);

    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc.get("privileged").is_none_or(|p| p == false));
    for what in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"][what][r].is_string(),
                "resources.{what}.{r} missing"
            );
        }
    }

    // Probes on the serving port.
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["scheme"], "HTTPS", "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "https", "{probe}");
    }
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(port("https"), 8443);
    assert_eq!(port("metrics"), 9090);

    // The TLS Secret, mounted read-only where the args read it.
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["secret"]["secretName"] == certs::SECRET_NAME)
        .expect("the TLS Secret volume");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the TLS Secret mount");
    assert_eq!(mount["readOnly"], true);
    let dir = mount["mountPath"].as_str().unwrap();
    let args = strings(&c["args"]);
    assert!(
        args.contains(&format!("--tls-cert={dir}/tls.crt")),
        "{args:?}"
    );
    assert!(
        args.contains(&format!("--tls-key={dir}/tls.key")),
        "{args:?}"
    );
    assert!(
        args.contains(&"--addr=0.0.0.0:8443".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--metrics-addr=0.0.0.0:9090".to_string()),
        "{args:?}"
    );
    // No --config: the ConfigMap is watched through the API (hot reload).
    assert!(!args.iter().any(|a| a.starts_with("--config")), "{args:?}");

    // PodDisruptionBudget: a drain never takes the last replica.
    let pdb = find(&objects, "PodDisruptionBudget", "netpol-guard");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"], *labels);

    // The Service the webhooks call: 443 to the container's 8443.
    let svc = find(&objects, "Service", "netpol-guard");
    assert_eq!(svc["spec"]["selector"], *labels);
    let https = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == 443)
        .expect("Service port 443");
    assert_eq!(https["targetPort"], "https");
}

#[test]
fn the_configmap_is_the_documented_default_and_names_the_real_service_account() {
    let objects = render("manifests");
    let cm = find(&objects, "ConfigMap", "netpol-guard");
    assert_eq!(cm["metadata"]["namespace"], NAMESPACE);
    let text = cm["data"]["config.yaml"].as_str().unwrap();
    assert_eq!(
        text, DEFAULT_CONFIG_YAML,
        "manifests/config.yaml drifted from src/config/default-config.yaml"
    );
    let settings = Settings::from_yaml(text).unwrap();
    let sa = find(&objects, "ServiceAccount", "netpol-guard");
    assert_eq!(
        settings.config.service_account,
        format!(
            "system:serviceaccount:{}:{}",
            sa["metadata"]["namespace"].as_str().unwrap(),
            sa["metadata"]["name"].as_str().unwrap()
        )
    );
}

#[test]
fn rbac_is_least_privilege() {
    let objects = render("manifests");
    for kind in ["ClusterRole", "Role"] {
        let role = find(&objects, kind, "netpol-guard");
        for rule in role["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !strings(&rule[field]).contains(&"*".to_string()),
                    "{kind}: wildcard {field}: {rule}"
                );
            }
            assert!(
                !strings(&rule["resources"]).contains(&"secrets".to_string()),
                "{kind} grants secrets: {rule}"
            );
        }
    }
    let verbs_for = |kind: &str, resource: &str| -> Vec<String> {
        let mut v: Vec<String> = find(&objects, kind, "netpol-guard")["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| strings(&r["resources"]).contains(&resource.to_string()))
            .flat_map(|r| strings(&r["verbs"]))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        verbs_for("ClusterRole", "namespaces"),
        ["get", "list", "watch"]
    );
    assert_eq!(
        verbs_for("ClusterRole", "networkpolicies"),
        [
            "create", "delete", "get", "list", "patch", "update", "watch"
        ]
    );
    // Writing an existing policy (patch, update) and deleting one are
    // limited to the baseline's names, the configured extra policies'
    // included (issue 15); create cannot be limited by name.
    let shipped = Settings::from_yaml(
        find(&objects, "ConfigMap", "netpol-guard")["data"]["config.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let rules = find(&objects, "ClusterRole", "netpol-guard")["rules"]
        .as_array()
        .unwrap()
        .clone();
    for rule in rules
        .iter()
        .filter(|r| strings(&r["resources"]).contains(&"networkpolicies".to_string()))
    {
        let verbs = strings(&rule["verbs"]);
        let writes = verbs
            .iter()
            .any(|v| ["update", "patch", "delete"].contains(&v.as_str()));
        if writes {
            let mut names: Vec<String> = netpol_guard::baseline::reserved_names(&shipped)
                .into_iter()
                .map(String::from)
                .collect();
            names.sort();
            assert_eq!(strings(&rule["resourceNames"]), names, "{rule}");
        }
    }
    // Reports: patch and delete only the ones named netpol-guard.
    for rule in rules.iter().filter(|r| {
        let res = strings(&r["resources"]);
        res.contains(&"policyreports".to_string())
            || res.contains(&"clusterpolicyreports".to_string())
    }) {
        let verbs = strings(&rule["verbs"]);
        if verbs.iter().any(|v| v == "patch" || v == "delete") {
            assert_eq!(strings(&rule["resourceNames"]), ["netpol-guard"], "{rule}");
        }
    }
    assert_eq!(
        verbs_for("ClusterRole", "ciliumnetworkpolicies"),
        ["get", "list", "watch"]
    );
    // Every workload kind is watched (the slim workload cache) and listed
    // (the background audit), and never written.
    for resource in WORKLOAD_RESOURCES {
        assert_eq!(
            verbs_for("ClusterRole", resource),
            ["list", "watch"],
            "{resource}"
        );
    }
    // PolicyReports: server-side apply (create, patch), and list + delete
    // for the stale ones; the ClusterPolicyReport is only ever applied.
    assert_eq!(
        verbs_for("ClusterRole", "policyreports"),
        ["create", "delete", "list", "patch"]
    );
    assert_eq!(
        verbs_for("ClusterRole", "clusterpolicyreports"),
        ["create", "patch"]
    );
    for rule in find(&objects, "ClusterRole", "netpol-guard")["rules"]
        .as_array()
        .unwrap()
    {
        let resources = strings(&rule["resources"]);
        if resources.iter().any(|r| r.ends_with("policyreports")) {
            assert_eq!(strings(&rule["apiGroups"]), ["wgpolicyk8s.io"], "{rule}");
        }
    }
    assert!(
        verbs_for("ClusterRole", "configmaps").is_empty(),
        "ConfigMaps only in its own namespace"
    );
    assert!(
        verbs_for("ClusterRole", "leases").is_empty(),
        "Leases only in its own namespace"
    );
    // Its own ConfigMap, by name.
    let role = find(&objects, "Role", "netpol-guard");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    let cm_rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| strings(&r["resources"]) == ["configmaps"])
        .unwrap();
    assert_eq!(cm_rule["resourceNames"], json!(["netpol-guard"]));
    assert_eq!(strings(&cm_rule["verbs"]), ["get", "list", "watch"]);
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let b = find(&objects, kind, "netpol-guard");
        assert_eq!(
            b["subjects"],
            json!([{"kind": "ServiceAccount", "name": "netpol-guard", "namespace": NAMESPACE}])
        );
    }
}

#[test]
fn netpol_guard_runs_under_its_own_network_policy() {
    let objects = render("manifests");
    let np = find(&objects, "NetworkPolicy", "netpol-guard");
    let d = find(&objects, "Deployment", "netpol-guard");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        d["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Egress", "Ingress"]);
    let ports = |rules: &Value| -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> = rules
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["ports"].as_array().unwrap().iter())
            .map(|p| {
                (
                    p["protocol"].as_str().unwrap().to_string(),
                    p["port"].as_u64().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    };
    // Every rule is limited to ports (none lets all traffic through).
    assert_eq!(
        ports(&np["spec"]["ingress"]),
        [("TCP".to_string(), 8443), ("TCP".to_string(), 9090)]
    );
    assert_eq!(
        ports(&np["spec"]["egress"]),
        [
            ("TCP".to_string(), 53),
            ("TCP".to_string(), 443),
            ("TCP".to_string(), 6443),
            ("UDP".to_string(), 53)
        ]
    );
    // DNS only to the cluster DNS pods in kube-system (both selectors in one
    // peer: AND).
    let dns = &np["spec"]["egress"][0]["to"];
    assert_eq!(
        *dns,
        json!([{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
        }])
    );
}

#[test]
fn every_namespaced_object_lives_in_the_netpol_guard_namespace() {
    let objects = render("manifests");
    let cluster_scoped = [
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ];
    for o in &objects {
        let kind = o["kind"].as_str().unwrap();
        if cluster_scoped.contains(&kind) {
            assert!(o["metadata"].get("namespace").is_none(), "{kind}");
        } else {
            assert_eq!(
                o["metadata"]["namespace"], NAMESPACE,
                "{kind} {}",
                o["metadata"]["name"]
            );
        }
    }
    let ns = find(&objects, "Namespace", NAMESPACE);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn the_cert_manager_overlay_issues_the_mounted_secret_and_injects_the_ca() {
    let objects = render("certs/cert-manager");
    let serving = objects
        .iter()
        .find(|o| o["kind"] == "Certificate" && o["spec"]["secretName"] == certs::SECRET_NAME)
        .expect("a Certificate for the mounted Secret");
    let name = serving["metadata"]["name"].as_str().unwrap();
    assert_eq!(serving["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        strings(&serving["spec"]["dnsNames"]),
        [
            "netpol-guard",
            "netpol-guard.netpol-guard",
            "netpol-guard.netpol-guard.svc",
            "netpol-guard.netpol-guard.svc.cluster.local"
        ]
    );
    assert!(strings(&serving["spec"]["usages"]).contains(&"server auth".to_string()));
    // Its issuer is an Issuer in the same namespace, backed by a CA.
    let issuer = find(
        &objects,
        "Issuer",
        serving["spec"]["issuerRef"]["name"].as_str().unwrap(),
    );
    assert!(issuer["spec"]["ca"]["secretName"].is_string(), "{issuer}");
    for kind in [
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ] {
        let cfg = find(&objects, kind, certs::WEBHOOK_CONFIGURATION);
        assert_eq!(
            cfg["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            format!("{NAMESPACE}/{name}"),
            "{kind}"
        );
    }
    // Everything in the base is still there.
    assert_eq!(
        objects
            .iter()
            .filter(|o| !o["apiVersion"]
                .as_str()
                .unwrap()
                .starts_with("cert-manager.io/"))
            .count(),
        render("manifests").len()
    );
}

#[test]
fn the_policyreport_crds_are_a_separate_optional_install() {
    let crds = render("manifests/crds");
    let mut names: Vec<&str> = crds
        .iter()
        .map(|o| {
            assert_eq!(o["kind"], "CustomResourceDefinition");
            o["metadata"]["name"].as_str().unwrap()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "clusterpolicyreports.wgpolicyk8s.io",
            "policyreports.wgpolicyk8s.io"
        ]
    );
    for crd in &crds {
        let served: Vec<&str> = crd["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["served"] == true)
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert!(served.contains(&"v1alpha2"), "{served:?}");
    }
    // Not part of the base: Kyverno or Policy Reporter may own them already.
    assert!(
        render("manifests")
            .iter()
            .all(|o| o["kind"] != "CustomResourceDefinition")
    );
}
