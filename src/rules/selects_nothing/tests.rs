use super::*;
use crate::rules::assert_well_formed;
use serde_json::json;

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels}})
}

fn deployment(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
}

fn np(ns: &str, selector: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": ns},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}})
}

fn cnp(ns: &str, spec: Value) -> Value {
    json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "c", "namespace": ns}, "spec": spec})
}

fn ccnp(spec: Value) -> Value {
    json!({"apiVersion": "cilium.io/v2", "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "cc"}, "spec": spec})
}

fn endpoint(selector: Value) -> Value {
    json!({"endpointSelector": selector, "ingress": [{"fromEndpoints": [{"matchLabels": {"app": "web"}}]}]})
}

/// `payments` (labelled team=payments) with Deployment ledger (app=ledger)
/// and Deployment api (app=api, tier=web), plus `objects`.
fn view(objects: &[Value]) -> ClusterView {
    let mut v = ClusterView::new();
    for o in [
        namespace("payments", json!({"team": "payments"})),
        deployment("payments", "ledger", json!({"app": "ledger"})),
        deployment("payments", "api", json!({"app": "api", "tier": "web"})),
    ]
    .iter()
    .chain(objects)
    {
        v.add(o).unwrap();
    }
    v
}

fn judge(policy: &Value, view: &ClusterView) -> Vec<Finding> {
    let kind = match policy["kind"].as_str() {
        Some("NetworkPolicy") => PolicyKind::NetworkPolicy,
        Some("CiliumNetworkPolicy") => PolicyKind::CiliumNetworkPolicy,
        _ => PolicyKind::CiliumClusterwideNetworkPolicy,
    };
    let out = check(policy, kind, view);
    assert_well_formed(&out);
    assert!(out.iter().all(|f| f.rule == RuleId::PolicySelectsNothing));
    out
}

fn messages(policy: &Value, view: &ClusterView) -> Vec<String> {
    judge(policy, view).into_iter().map(|f| f.message).collect()
}

#[test]
fn a_typo_names_the_nearest_workload_and_the_label_that_differs() {
    let v = view(&[]);
    let found = judge(
        &np("payments", json!({"matchLabels": {"app": "ledgr"}})),
        &v,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].message,
        "policy-selects-nothing: podSelector app=ledgr matches no pods of the 2 workloads in \
         payments; did you mean app=ledger? payments/ledger has app=ledger, this policy wants \
         app=ledgr"
    );
    // It only warns by default, and denies when set to deny.
    assert_eq!(found[0].severity, crate::rules::Action::Deny);
    assert_eq!(
        RuleId::PolicySelectsNothing.default_action(),
        crate::rules::Action::Warn
    );
    let detail = found[0].detail.as_deref().unwrap();
    for part in [
        "selects none of the pods of the 2 workloads in payments: it enforces nothing",
        "they stay open",
        "stays blocked",
        "The nearest workload, Deployment payments/ledger, has pod labels app=ledger (and, set by \
         its controller with values not known in advance: pod-template-hash); they do not meet \
         app=ledgr.",
        "podSelector:\n  matchLabels:\n    app: ledger\n",
    ] {
        assert!(detail.contains(part), "{part}\n{detail}");
    }
    // The selector that matches raises nothing.
    assert!(
        judge(
            &np("payments", json!({"matchLabels": {"app": "ledger"}})),
            &v
        )
        .is_empty()
    );
}

#[test]
fn a_value_that_is_no_typo_gets_no_did_you_mean() {
    let v = view(&[]);
    assert_eq!(
        messages(
            &np("payments", json!({"matchLabels": {"app": "payments-api"}})),
            &v
        ),
        [
            "policy-selects-nothing: podSelector app=payments-api matches no pods of the 2 \
          workloads in payments; nearest: payments/api has app=api, this policy wants \
          app=payments-api"
        ]
    );
    // The workload missing fewest requirements is the nearest, whatever
    // the typos elsewhere.
    assert_eq!(
        messages(
            &np(
                "payments",
                json!({"matchLabels": {"app": "ledgr", "tier": "web"}})
            ),
            &v
        ),
        [
            "policy-selects-nothing: podSelector app=ledgr,tier=web matches no pods of the 2 \
          workloads in payments; nearest: payments/api has app=api, this policy wants app=ledgr"
        ]
    );
    // A case slip is a typo however short the value.
    assert_eq!(
        messages(&np("payments", json!({"matchLabels": {"app": "API"}})), &v)[0]
            .split("; ")
            .nth(1),
        Some("did you mean app=api? payments/api has app=api, this policy wants app=API")
    );
}

#[test]
fn every_operator_is_judged_as_the_api_server_matches() {
    let v = view(&[]);
    let expr = |key: &str, op: &str, values: &[&str]| {
        let mut r = json!({"key": key, "operator": op});
        if !values.is_empty() {
            r["values"] = json!(values);
        }
        np("payments", json!({"matchExpressions": [r]}))
    };
    // Selects a workload: nothing to say.
    for policy in [
        expr("app", "In", &["ledger", "other"]),
        expr("app", "NotIn", &["ledger"]),
        expr("tier", "NotIn", &["db"]),
        expr("tier", "Exists", &[]),
        expr("tier", "DoesNotExist", &[]),
    ] {
        assert_eq!(messages(&policy, &v), Vec::<String>::new(), "{policy}");
    }
    let tail = |policy: &Value| -> String {
        let m = messages(policy, &v);
        assert_eq!(m.len(), 1, "{policy}");
        m[0].split_once("; ").unwrap().1.to_string()
    };
    assert_eq!(
        tail(&expr("app", "In", &["ledgr", "legder"])),
        "did you mean app=ledger? payments/ledger has app=ledger, this policy wants app in (ledgr,legder)"
    );
    assert_eq!(
        tail(&expr("app", "NotIn", &["ledger", "api"])),
        "nearest: payments/api has app=api, this policy wants app notin (ledger,api)"
    );
    assert_eq!(
        tail(&expr("team", "Exists", &[])),
        "nearest: payments/api; no workload has a team label, this policy wants a team label"
    );
    assert_eq!(
        tail(&np(
            "payments",
            json!({"matchLabels": {"app": "ledger", "tier": "db"}})
        )),
        "nearest: payments/ledger has no tier label, this policy wants tier=db"
    );
    assert_eq!(
        tail(&expr("app", "DoesNotExist", &[])),
        "nearest: payments/api has app=api, this policy wants no app label"
    );
}

/// Labels a controller sets with values nobody knows in advance: a
/// selector that may select the pods through one might match, so it is
/// not reported; one that misses a known label is.
#[test]
fn labels_a_controller_sets_count_as_a_possible_match() {
    let mut v = view(&[]);
    v.add(&json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "payments"},
        "spec": {"template": {"metadata": {"labels": {"app": "db"}}}}}))
        .unwrap();
    for selector in [
        json!({"matchLabels": {"app": "ledger", "pod-template-hash": "7c9d8f6b5d"}}),
        json!({"matchLabels": {"app": "ledger"},
            "matchExpressions": [{"key": "pod-template-hash", "operator": "NotIn", "values": ["x"]}]}),
        json!({"matchExpressions": [{"key": "pod-template-hash", "operator": "DoesNotExist"}]}),
        json!({"matchLabels": {"statefulset.kubernetes.io/pod-name": "db-0"}}),
    ] {
        assert!(
            judge(&np("payments", selector.clone()), &v).is_empty(),
            "{selector}"
        );
    }
    let found = judge(
        &np(
            "payments",
            json!({"matchLabels": {"app": "ledgr", "pod-template-hash": "7c9d8f6b5d"}}),
        ),
        &v,
    );
    assert_eq!(
        found[0].message,
        "policy-selects-nothing: podSelector app=ledgr,pod-template-hash=7c9d8f6b5d matches no \
         pods of the 3 workloads in payments; did you mean app=ledger? payments/ledger has \
         app=ledger, this policy wants app=ledgr (and 1 more)"
    );
    assert!(found[0].detail.as_deref().unwrap().contains(
        "they do not meet app=ledgr, pod-template-hash=7c9d8f6b5d (set by its controller)."
    ));
}

#[test]
fn an_empty_selector_never_raises_it() {
    let v = view(&[]);
    for policy in [
        np("payments", json!({})),
        np("payments", Value::Null),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "payments"}, "spec": {"policyTypes": ["Ingress"]}}),
        cnp("payments", endpoint(json!({}))),
        ccnp(endpoint(json!({}))),
    ] {
        assert!(judge(&policy, &v).is_empty(), "{policy}");
    }
}

#[test]
fn a_namespace_without_workloads_never_raises_it() {
    let v = view(&[namespace("empty", json!({}))]);
    for policy in [
        np("empty", json!({"matchLabels": {"app": "ledgr"}})),
        np("elsewhere", json!({"matchLabels": {"app": "ledgr"}})),
        cnp("empty", endpoint(json!({"matchLabels": {"app": "ledgr"}}))),
    ] {
        assert!(judge(&policy, &v).is_empty(), "{policy}");
    }
    // Nor a view that knows no workload at all.
    let mut bare = ClusterView::new();
    bare.add(&namespace("payments", json!({}))).unwrap();
    assert!(judge(&np("payments", json!({"matchLabels": {"app": "x"}})), &bare).is_empty());
    assert!(judge(&ccnp(endpoint(json!({"matchLabels": {"app": "x"}}))), &bare).is_empty());
}

#[test]
fn cilium_keys_lose_their_source_prefix_and_each_spec_is_judged() {
    let v = view(&[]);
    for selector in [
        json!({"matchLabels": {"k8s:app": "ledger"}}),
        json!({"matchLabels": {"any:app": "api", "tier": "web"}}),
        json!({"matchExpressions": [{"key": "k8s:tier", "operator": "Exists"}]}),
    ] {
        let policy = cnp("payments", endpoint(selector.clone()));
        assert!(judge(&policy, &v).is_empty(), "{selector}");
    }
    assert_eq!(
        messages(
            &cnp(
                "payments",
                endpoint(json!({"matchLabels": {"k8s:app": "ledgr"}}))
            ),
            &v
        ),
        [
            "policy-selects-nothing: endpointSelector k8s:app=ledgr matches no pods of the 2 \
          workloads in payments; did you mean app=ledger? payments/ledger has app=ledger, this \
          policy wants app=ledgr"
        ]
    );
    // `specs`: each one, located; a node policy and a non-pod label
    // source (`reserved:`) are not about pods.
    let policy = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
    "metadata": {"name": "c", "namespace": "payments"},
    "spec": endpoint(json!({"matchLabels": {"app": "api"}})),
    "specs": [
        endpoint(json!({"matchLabels": {"app": "ledger"}})),
        endpoint(json!({"matchLabels": {"k8s:app": "apj"}})),
        {"nodeSelector": {"matchLabels": {"role": "nonexistent"}}, "ingress": [{}]},
        endpoint(json!({"matchLabels": {"reserved:host": ""}})),
    ]});
    let m = messages(&policy, &v);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with(
            "policy-selects-nothing: specs[1] endpointSelector k8s:app=apj matches no pods"
        ),
        "{}",
        m[0]
    );
    let found = judge(&policy, &v);
    assert!(
        found[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("endpointSelector:\n  matchLabels:\n    app: api\n"),
        "{:?}",
        found[0].detail
    );
}

/// Cilium gives every endpoint its namespace, its namespace's labels and
/// its service account as labels: selectors on them are not typos.
#[test]
fn cilium_namespace_and_service_account_keys_are_known_or_unknown_never_guessed() {
    let mut v = view(&[]);
    v.add(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "worker", "namespace": "payments"},
        "spec": {"template": {"metadata": {"labels": {"app": "worker"}},
            "spec": {"serviceAccountName": "worker-sa"}}}}))
        .unwrap();
    for selector in [
        json!({"matchLabels": {"k8s:io.kubernetes.pod.namespace": "payments", "app": "ledger"}}),
        json!({"matchLabels": {"io.cilium.k8s.policy.serviceaccount": "worker-sa"}}),
        json!({"matchLabels": {"k8s:io.cilium.k8s.policy.serviceaccount": "default", "app": "api"}}),
        json!({"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": "payments"}}),
        json!({"matchLabels": {"io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "payments"}}),
        // The cluster's name (cluster mesh) is not known.
        json!({"matchLabels": {"k8s:io.cilium.k8s.policy.cluster": "east", "app": "api"}}),
    ] {
        let policy = cnp("payments", endpoint(selector.clone()));
        assert!(judge(&policy, &v).is_empty(), "{selector}");
    }
    // Too long for the selector as written: the message leaves it out.
    let m = messages(
        &cnp(
            "payments",
            endpoint(
                json!({"matchLabels": {"k8s:io.cilium.k8s.policy.serviceaccount": "worker-ss"}}),
            ),
        ),
        &v,
    );
    assert_eq!(m.len(), 1);
    assert!(
        m[0].starts_with(
            "policy-selects-nothing: endpointSelector matches no pods of the 3 workloads in \
             payments; did you mean io.cilium.k8s.policy.serviceaccount=worker-sa? \
             payments/worker has io.cilium.k8s.policy.serviceaccount=worker-sa, this policy"
        ),
        "{}",
        m[0]
    );
    let team = |value: &str| {
        cnp(
            "payments",
            endpoint(json!({"matchLabels": {"k8s:io.cilium.k8s.namespace.labels.team": value}})),
        )
    };
    assert_eq!(judge(&team("infra"), &v).len(), 1);
    // Without the Namespace object its labels are unknown (but not its
    // name): nothing is said about them.
    let mut unknown = ClusterView::new();
    unknown
        .add(&deployment("payments", "ledger", json!({"app": "ledger"})))
        .unwrap();
    assert!(judge(&team("infra"), &unknown).is_empty());
    let by_name = cnp(
        "payments",
        endpoint(
            json!({"matchLabels": {"io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name": "paymnts"}}),
        ),
    );
    assert_eq!(judge(&by_name, &unknown).len(), 1);
}

#[test]
fn a_clusterwide_policy_is_judged_against_every_namespace() {
    let v = view(&[
        namespace("shop", json!({})),
        deployment("shop", "cart", json!({"app": "cart"})),
    ]);
    for selector in [
        json!({"matchLabels": {"app": "cart"}}),
        json!({"matchLabels": {"app": "ledger", "k8s:io.kubernetes.pod.namespace": "payments"}}),
    ] {
        assert!(
            judge(&ccnp(endpoint(selector.clone())), &v).is_empty(),
            "{selector}"
        );
    }
    assert_eq!(
        messages(&ccnp(endpoint(json!({"matchLabels": {"app": "crat"}}))), &v),
        [
            "policy-selects-nothing: endpointSelector app=crat matches no pods of the 3 workloads \
          in the cluster; did you mean app=cart? shop/cart has app=cart, this policy wants \
          app=crat"
        ]
    );
    // The namespace is a label like any other, typos included.
    let m = messages(
        &ccnp(endpoint(
            json!({"matchLabels": {"app": "cart", "k8s:io.kubernetes.pod.namespace": "shops"}}),
        )),
        &v,
    );
    assert_eq!(m.len(), 1);
    assert!(
        m[0].ends_with(
            "in the cluster; did you mean io.kubernetes.pod.namespace=shop? shop/cart has \
             io.kubernetes.pod.namespace=shop, this policy wants io.kubernetes.pod.namespace=shops"
        ),
        "{}",
        m[0]
    );
}

#[test]
fn every_workload_kind_is_a_candidate_with_its_pod_template() {
    let template = json!({"metadata": {"labels": {"app": "x"}}});
    for (api_version, kind, spec) in [
        ("v1", "Pod", Value::Null),
        ("apps/v1", "Deployment", json!({"template": template})),
        ("apps/v1", "StatefulSet", json!({"template": template})),
        ("apps/v1", "DaemonSet", json!({"template": template})),
        ("apps/v1", "ReplicaSet", json!({"template": template})),
        ("v1", "ReplicationController", json!({"template": template})),
        ("batch/v1", "Job", json!({"template": template})),
        (
            "batch/v1",
            "CronJob",
            json!({"jobTemplate": {"spec": {"template": template}}}),
        ),
    ] {
        let mut obj = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "w", "namespace": "ns"}});
        if spec.is_null() {
            obj["metadata"]["labels"] = json!({"app": "x"});
        } else {
            obj["spec"] = spec;
        }
        let mut v = ClusterView::new();
        v.add(&obj).unwrap();
        assert!(
            judge(&np("ns", json!({"matchLabels": {"app": "x"}})), &v).is_empty(),
            "{kind}"
        );
        let m = messages(&np("ns", json!({"matchLabels": {"app": "y"}})), &v);
        assert_eq!(
            m,
            [
                "policy-selects-nothing: podSelector app=y matches no pods of the 1 workload in ns; \
              did you mean app=x? ns/w has app=x, this policy wants app=y"
            ],
            "{kind}"
        );
    }
}

#[test]
fn long_selectors_are_cut_so_the_message_stays_one_line() {
    let v = view(&[]);
    let many: serde_json::Map<String, Value> = (0..30)
        .map(|i| (format!("example.com/key-{i}"), json!("value")))
        .collect();
    let found = judge(&np("payments", json!({"matchLabels": many})), &v);
    assert_eq!(found.len(), 1);
    assert!(found[0].message.chars().count() <= MAX_WARNING_CHARS);
    assert!(
        found[0].message.contains("nearest: payments/api"),
        "{}",
        found[0].message
    );
}

#[test]
fn nearest_miss_is_pure_and_ranks_candidates() {
    let mk = |name: &str, labels: &[(&str, &str)]| KnownWorkload {
        kind: crate::workload::WorkloadKind::Deployment,
        name: name.to_string(),
        pods: crate::workload::PodShape {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            unknown_labels: UnknownKeys::new(),
            ports: vec![],
            service_account: None,
            host_network: false,
        },
    };
    let (a, b) = (
        mk("a", &[("app", "web")]),
        mk("b", &[("app", "wbe"), ("tier", "x")]),
    );
    let candidates = [Candidate::pods("ns", &a), Candidate::pods("ns", &b)];
    let sel = Selector::from_value(Some(&json!({"matchLabels": {"app": "wb"}}))).unwrap();
    let n = nearest_miss(&sel, &candidates).unwrap();
    // Both miss one requirement and both are one edit away: the first by
    // name.
    assert_eq!(n.candidate.workload.name, "a");
    assert_eq!(n.suggestion.as_deref(), Some("web"));
    let sel = Selector::from_value(Some(&json!({"matchLabels": {"app": "wbe"}}))).unwrap();
    assert!(nearest_miss(&sel, &candidates).is_none());
    assert!(nearest_miss(&Selector::everything(), &candidates).is_none());
    assert!(nearest_miss(&sel, &[]).is_none());
    assert_eq!(edit_distance("ledgr", "ledger"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
    assert_eq!(yaml_scalar("true"), "\"true\"");
    assert_eq!(yaml_scalar("8080"), "\"8080\"");
    assert_eq!(yaml_scalar("ledger"), "ledger");
}
