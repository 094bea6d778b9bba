//! The semantics, case by case. Each expected map was written from the
//! NetworkPolicy specification (kubernetes.io "Network Policies" and the
//! networking.k8s.io/v1 API reference) before the code printed anything.

use serde_json::{Value, json};

use super::render;

fn ns(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn deploy(ns: &str, name: &str, labels: Value, ports: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": ports}]}}}})
}

fn app(ns: &str, name: &str) -> Value {
    deploy(ns, name, json!({"app": name}), json!([]))
}

fn np(ns: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns}, "spec": spec})
}

fn lines(objects: &[Value]) -> Vec<String> {
    let m = super::map(objects).unwrap();
    render::txt(&m).lines().map(String::from).collect()
}

const ALL_V4: &str = "0.0.0.0-255.255.255.255[External]";

#[test]
fn without_policies_everything_connects_except_a_workload_to_itself() {
    assert_eq!(
        lines(&[app("a", "x"), app("a", "y")]),
        [
            format!("{ALL_V4} => a/x[Deployment] : All Connections"),
            format!("{ALL_V4} => a/y[Deployment] : All Connections"),
            format!("a/x[Deployment] => {ALL_V4} : All Connections"),
            "a/x[Deployment] => a/y[Deployment] : All Connections".into(),
            format!("a/y[Deployment] => {ALL_V4} : All Connections"),
            "a/y[Deployment] => a/x[Deployment] : All Connections".into(),
        ]
    );
}

#[test]
fn isolation_is_per_direction_and_only_for_selected_pods() {
    // y is isolated for ingress only: it still sends anywhere; x is untouched.
    let deny_in = np(
        "a",
        "deny-in",
        json!({"podSelector": {"matchLabels": {"app": "y"}}, "policyTypes": ["Ingress"]}),
    );
    assert_eq!(
        lines(&[app("a", "x"), app("a", "y"), deny_in]),
        [
            format!("{ALL_V4} => a/x[Deployment] : All Connections"),
            format!("a/x[Deployment] => {ALL_V4} : All Connections"),
            format!("a/y[Deployment] => {ALL_V4} : All Connections"),
            "a/y[Deployment] => a/x[Deployment] : All Connections".into(),
        ]
    );
    // Egress rules without policyTypes: Ingress AND Egress are isolated.
    let implicit = np(
        "a",
        "egress-only",
        json!({"podSelector": {"matchLabels": {"app": "y"}},
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "x"}}}], "ports": [{"port": 53, "protocol": "UDP"}]}]}),
    );
    assert_eq!(
        lines(&[app("a", "x"), app("a", "y"), implicit]),
        [
            format!("{ALL_V4} => a/x[Deployment] : All Connections"),
            format!("a/x[Deployment] => {ALL_V4} : All Connections"),
            "a/y[Deployment] => a/x[Deployment] : UDP 53".into(),
        ]
    );
}

#[test]
fn policies_add_up_and_both_sides_must_allow() {
    let objs = [
        app("a", "x"),
        app("a", "y"),
        np(
            "a",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        np(
            "a",
            "y-tcp",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "x"}}}], "ports": [{"port": 80}]}]}),
        ),
        np(
            "a",
            "y-udp",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "x"}}}], "ports": [{"port": 53, "protocol": "UDP"}]}]}),
        ),
        // x may send TCP 70-85 and UDP anywhere: the intersection is what flows.
        np(
            "a",
            "x-out",
            json!({"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": 70, "endPort": 85}, {"protocol": "UDP"}]}]}),
        ),
    ];
    assert_eq!(
        lines(&objs),
        [
            "a/x[Deployment] => 0.0.0.0-255.255.255.255[External] : TCP 70-85,UDP 1-65535"
                .to_string(),
            "a/x[Deployment] => a/y[Deployment] : TCP 80,UDP 53".into(),
        ]
    );
}

#[test]
fn peers_pod_namespace_both_and_or() {
    let objs = [
        ns("a", json!({"team": "a"})),
        ns("b", json!({"team": "b"})),
        ns("c", json!({"team": "c"})),
        app("a", "server"),
        app("a", "client"),
        app("b", "client"),
        app("b", "other"),
        app("c", "client"),
        np(
            "a",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        // podSelector alone: a/client only (the policy's own namespace).
        np(
            "a",
            "same-ns",
            json!({"podSelector": {"matchLabels": {"app": "server"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 1}]}]}),
        ),
        // namespaceSelector and podSelector in ONE peer: b/client only.
        np(
            "a",
            "and",
            json!({"podSelector": {"matchLabels": {"app": "server"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "b"}},
                "podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 2}]}]}),
        ),
        // Two peers (OR): every pod of c, and client pods of a.
        np(
            "a",
            "or",
            json!({"podSelector": {"matchLabels": {"app": "server"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "c"}}},
                {"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 3}]}]}),
        ),
    ];
    let into_server: Vec<String> = lines(&objs)
        .into_iter()
        .filter(|l| l.contains("=> a/server"))
        .collect();
    assert_eq!(
        into_server,
        [
            "a/client[Deployment] => a/server[Deployment] : TCP 1,3",
            "b/client[Deployment] => a/server[Deployment] : TCP 2",
            "c/client[Deployment] => a/server[Deployment] : TCP 3",
        ]
    );
}

#[test]
fn ip_blocks_split_the_outside_exactly_and_match_no_pod() {
    let objs = [
        app("a", "x"),
        app("a", "y"),
        np(
            "a",
            "y-in",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                "ports": [{"port": 443}]}]}),
        ),
    ];
    assert_eq!(
        lines(&objs),
        [
            "0.0.0.0-255.255.255.255[External] => a/x[Deployment] : All Connections".to_string(),
            "10.0.0.0-10.0.255.255[External] => a/y[Deployment] : TCP 443".into(),
            "10.2.0.0-10.255.255.255[External] => a/y[Deployment] : TCP 443".into(),
            "a/x[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections".into(),
            "a/y[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections".into(),
            "a/y[Deployment] => a/x[Deployment] : All Connections".into(),
        ]
    );
}

#[test]
fn named_ports_resolve_on_the_destination_and_protocols_print_in_order() {
    let ports = json!([
        {"name": "http", "containerPort": 8080},
        {"name": "dns", "containerPort": 5353, "protocol": "UDP"},
        {"name": "sig", "containerPort": 9000, "protocol": "SCTP"}]);
    let objs = [
        deploy("a", "x", json!({"app": "x"}), json!([])),
        deploy("a", "y", json!({"app": "y"}), ports),
        np(
            "a",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        // Ingress names y's own ports; "dns" over TCP matches no port.
        np(
            "a",
            "y-in",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"ports": [{"port": "http"}, {"port": "dns", "protocol": "TCP"},
                {"port": "dns", "protocol": "UDP"}, {"port": "sig", "protocol": "SCTP"}]}]}),
        ),
        // Egress names the destination's ports: y's, and nothing outside.
        np(
            "a",
            "x-out",
            json!({"podSelector": {"matchLabels": {"app": "x"}},
            "egress": [{"ports": [{"port": "http"}, {"port": "sig", "protocol": "SCTP"}, {"port": "dns", "protocol": "UDP"}]}]}),
        ),
    ];
    assert_eq!(
        lines(&objs),
        [
            "0.0.0.0-255.255.255.255[External] => a/y[Deployment] : SCTP 9000,TCP 8080,UDP 5353",
            "a/x[Deployment] => a/y[Deployment] : SCTP 9000,TCP 8080,UDP 5353",
        ]
    );
}

#[test]
fn an_empty_rule_allows_everyone_and_owned_pods_are_their_workload() {
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "x-5d", "namespace": "a", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": "u", "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "x-5d-abc", "namespace": "a", "labels": {"app": "x"}, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x-5d", "uid": "v", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let objs = [
        app("a", "x"),
        rs,
        pod,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": "a", "labels": {"run": "debug"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        np(
            "a",
            "x-open",
            json!({"podSelector": {"matchLabels": {"app": "x"}},
            "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": []}),
        ),
    ];
    assert_eq!(
        lines(&objs),
        [
            "0.0.0.0-255.255.255.255[External] => a/debug[Pod] : All Connections",
            "0.0.0.0-255.255.255.255[External] => a/x[Deployment] : All Connections",
            "a/debug[Pod] => 0.0.0.0-255.255.255.255[External] : All Connections",
            "a/debug[Pod] => a/x[Deployment] : All Connections",
        ]
    );
}

#[test]
fn identical_workloads_connect_to_each_other_but_not_to_themselves() {
    assert_eq!(
        lines(&[
            app("a", "x"),
            deploy("a", "x2", json!({"app": "x"}), json!([]))
        ])
        .into_iter()
        .filter(|l| !l.contains("External"))
        .collect::<Vec<_>>(),
        [
            "a/x2[Deployment] => a/x[Deployment] : All Connections",
            "a/x[Deployment] => a/x2[Deployment] : All Connections",
        ]
    );
}

#[test]
fn host_network_and_cilium_are_notes_not_connections() {
    let mut host = app("a", "agent");
    host["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    let cnp = json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "c", "namespace": "a"}, "spec": {"endpointSelector": {}}});
    let m = super::map(&[host, app("a", "x"), cnp]).unwrap();
    assert!(m.connections.iter().all(|c| !c.line().contains("agent")));
    assert_eq!(m.host_network.len(), 1);
    assert_eq!(
        m.notes,
        [
            "a/agent[Deployment]: hostNetwork: its pods use the node's network, where NetworkPolicy does not apply; they reach and are reached like the node, so the map shows no connection for them",
            "CiliumNetworkPolicy a/c: not analysed (Cilium policies are not part of the map yet; the connections it allows or denies are not shown)",
        ]
    );
}

#[test]
fn exposure_names_every_namespace_future_namespaces_and_outside() {
    let objs = [
        ns("a", json!({})),
        ns("b", json!({})),
        app("a", "api"),
        app("a", "db"),
        app("b", "web"),
        np(
            "a",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress"]}),
        ),
        np(
            "a",
            "api",
            json!({"podSelector": {"matchLabels": {"app": "api"}},
            "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 8080}]},
                {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 443}]}]}),
        ),
    ];
    let m = super::map(&objs).unwrap();
    assert_eq!(
        render::exposure_txt(&m.exposure),
        "a/api[Deployment]\n  from every namespace: TCP 8080\n  from namespaces that do not exist yet: TCP 8080\n  from outside the cluster (0.0.0.0-255.255.255.255): TCP 443\n\
         b/web[Deployment]\n  from every namespace: All Connections\n  from namespaces that do not exist yet: All Connections\n  from outside the cluster (0.0.0.0-255.255.255.255): All Connections\n"
    );
}

#[test]
fn bad_policies_are_errors() {
    for (spec, why) in [
        (
            json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]}),
            "is not a CIDR block",
        ),
        (
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]}),
            "ports are 1-65535",
        ),
        (
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}),
            "endPort is at least port",
        ),
        (
            json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]}),
            "TCP, UDP or SCTP",
        ),
        (
            json!({"podSelector": {}, "ingress": [{"from": [{}]}]}),
            "needs podSelector, namespaceSelector or ipBlock",
        ),
    ] {
        let e = super::map(&[np("a", "bad", spec)]).unwrap_err().to_string();
        assert!(e.starts_with("NetworkPolicy a/bad: ingress[0]"), "{e}");
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn diff_lists_added_removed_changed_and_workloads() {
    let base = vec![
        app("a", "x"),
        app("a", "y"),
        app("a", "z"),
        np(
            "a",
            "deny",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        ),
        np(
            "a",
            "x-y",
            json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "x"}}}], "ports": [{"port": 80}]}]}),
        ),
        np(
            "a",
            "x-out",
            json!({"podSelector": {"matchLabels": {"app": "x"}}, "egress": [{}]}),
        ),
    ];
    let mut head = base.clone();
    head.retain(|o| o["metadata"]["name"] != "z");
    head[3] = np(
        "a",
        "x-y",
        json!({"podSelector": {"matchLabels": {"app": "y"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "x"}}}], "ports": [{"port": 80}, {"port": 443}]}]}),
    );
    head.push(app("a", "w"));
    head.push(np(
        "a",
        "w-in",
        json!({"podSelector": {"matchLabels": {"app": "w"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "x"}}}]}]}),
    ));
    let (old, new) = (super::map(&base).unwrap(), super::map(&head).unwrap());
    let changes = super::diff::diff(&old, &new);
    assert_eq!(
        render::diff_txt(&changes),
        "added: a/x[Deployment] => a/w[Deployment] : All Connections\n\
         changed: a/x[Deployment] => a/y[Deployment] : TCP 80 -> TCP 80,443\n\
         workload-added: a/w[Deployment]\n\
         workload-removed: a/z[Deployment]\n"
    );
    assert!(changes.iter().any(super::Change::opens));
    assert!(super::diff::diff(&old, &old).is_empty());
}

#[test]
fn diff_is_symmetric_and_opens_only_on_more_traffic() {
    let a = super::map(&[app("a", "x"), app("a", "y")]).unwrap();
    let b = super::map(&[
        app("a", "x"),
        app("a", "y"),
        np("a", "y", json!({"podSelector": {"matchLabels": {"app": "y"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "x"}}}], "ports": [{"port": 80}]}]})),
    ])
    .unwrap();
    let forward = super::diff::diff(&a, &b);
    let back = super::diff::diff(&b, &a);
    assert_eq!(forward.len(), back.len());
    // Tightening y: nothing opens; loosening back opens.
    assert!(!forward.iter().any(super::Change::opens), "{forward:?}");
    assert!(back.iter().any(super::Change::opens), "{back:?}");
    assert_eq!(
        render::diff_txt(&forward),
        "removed: 0.0.0.0-255.255.255.255[External] => a/y[Deployment] : All Connections\n\
         changed: a/x[Deployment] => a/y[Deployment] : All Connections -> TCP 80\n"
    );
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::{Change, Connectivity, Node, diff::diff, map};

    fn labels() -> impl Strategy<Value = Value> {
        (prop::sample::select(vec!["x", "y", "z"]), any::<bool>()).prop_map(|(app, front)| {
            if front {
                json!({"app": app, "tier": "front"})
            } else {
                json!({"app": app})
            }
        })
    }

    fn workload() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["a", "b"]),
            0u8..6,
            labels(),
            any::<bool>(),
        )
            .prop_map(|(ns, n, labels, http)| {
                let ports = if http {
                    json!([{"name": "http", "containerPort": 8080}])
                } else {
                    json!([{"name": "http", "containerPort": 80}, {"name": "dns", "containerPort": 53, "protocol": "UDP"}])
                };
                super::deploy(ns, &format!("w{n}"), labels, ports)
            })
    }

    fn selector() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!({})),
            prop::sample::select(vec!["x", "y", "z"])
                .prop_map(|a| json!({"matchLabels": {"app": a}})),
            Just(json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})),
        ]
    }

    fn peer() -> impl Strategy<Value = Value> {
        prop_oneof![
            selector().prop_map(|s| json!({"podSelector": s})),
            prop::sample::select(vec!["a", "b"]).prop_map(|t| json!({"namespaceSelector": {"matchLabels": {"team": t}}})),
            (prop::sample::select(vec!["a", "b"]), selector())
                .prop_map(|(t, s)| json!({"namespaceSelector": {"matchLabels": {"team": t}}, "podSelector": s})),
            Just(json!({"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}})),
            Just(json!({"ipBlock": {"cidr": "0.0.0.0/0"}})),
        ]
    }

    fn port() -> impl Strategy<Value = Value> {
        prop::sample::select(vec![
            json!({"port": 80}),
            json!({"port": 8080}),
            json!({"port": "http"}),
            json!({"port": 1000, "endPort": 2000}),
            json!({"port": 53, "protocol": "UDP"}),
            json!({"port": "dns", "protocol": "UDP"}),
            json!({"protocol": "SCTP"}),
        ])
    }

    fn rule(peers_key: &'static str) -> impl Strategy<Value = Value> {
        (
            prop::collection::vec(peer(), 0..3),
            prop::collection::vec(port(), 0..3),
        )
            .prop_map(move |(peers, ports)| {
                let mut r = serde_json::Map::new();
                if !peers.is_empty() {
                    r.insert(peers_key.into(), json!(peers));
                }
                if !ports.is_empty() {
                    r.insert("ports".into(), json!(ports));
                }
                Value::Object(r)
            })
    }

    fn policy() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["a", "b"]),
            0u8..8,
            selector(),
            prop::sample::select(vec![vec!["Ingress"], vec!["Egress"], vec!["Ingress", "Egress"]]),
            prop::collection::vec(rule("from"), 0..3),
            prop::collection::vec(rule("to"), 0..3),
        )
            .prop_map(|(ns, n, sel, types, ingress, egress)| {
                super::np(
                    ns,
                    &format!("p{n}"),
                    json!({"podSelector": sel, "policyTypes": types, "ingress": ingress, "egress": egress}),
                )
            })
    }

    fn cluster() -> impl Strategy<Value = Vec<Value>> {
        (
            prop::collection::vec(workload(), 1..6),
            prop::collection::vec(policy(), 0..5),
        )
            .prop_map(|(mut w, p)| {
                let mut all = vec![
                    super::ns("a", json!({"team": "a"})),
                    super::ns("b", json!({"team": "b"})),
                ];
                all.append(&mut w);
                all.extend(p);
                all
            })
    }

    fn txt(objects: &[Value]) -> String {
        super::render::txt(&map(objects).unwrap())
    }

    /// IPv4 ranges of an external node's label text.
    fn ranges(n: &Node) -> Vec<(u32, u32)> {
        let Node::External { ranges } = n else {
            return vec![];
        };
        ranges
            .split(',')
            .filter_map(|r| r.split_once('-'))
            .filter_map(|(a, b)| {
                Some((
                    u32::from(a.parse::<std::net::Ipv4Addr>().ok()?),
                    u32::from(b.parse::<std::net::Ipv4Addr>().ok()?),
                ))
            })
            .collect()
    }

    /// Every connection of `old` is in `new` with at least its ports. The
    /// outside is cut wherever some ipBlock draws a line, so a new rule may
    /// cut it differently: there, every address of an old range must still
    /// reach (or be reached) with at least the old ports.
    fn contained(old: &Connectivity, new: &Connectivity) -> Result<(), String> {
        for c in &old.connections {
            let external =
                matches!(c.src, Node::External { .. }) || matches!(c.dst, Node::External { .. });
            if !external {
                let Some(n) = new
                    .connections
                    .iter()
                    .find(|n| n.src == c.src && n.dst == c.dst)
                else {
                    return Err(format!("lost {}", c.line()));
                };
                if c.conn.intersect(&n.conn) != c.conn {
                    return Err(format!("narrowed {} to {}", c.line(), n.conn));
                }
                continue;
            }
            let (pod, old_ext, inbound) = match (&c.src, &c.dst) {
                (Node::External { .. }, pod) => (pod, &c.src, true),
                (pod, ext) => (pod, ext, false),
            };
            let mut covered: Vec<(u32, u32)> = new
                .connections
                .iter()
                .filter(|n| {
                    if inbound {
                        &n.dst == pod
                    } else {
                        &n.src == pod
                    }
                })
                .filter(|n| c.conn.intersect(&n.conn) == c.conn)
                .flat_map(|n| ranges(if inbound { &n.src } else { &n.dst }))
                .collect();
            covered.sort_unstable();
            for (s, e) in ranges(old_ext) {
                let mut next = u64::from(s);
                for &(cs, ce) in &covered {
                    if u64::from(cs) <= next && u64::from(ce) >= next {
                        next = u64::from(ce) + 1;
                    }
                }
                if next <= u64::from(e) {
                    return Err(format!("lost part of {}", c.line()));
                }
            }
        }
        Ok(())
    }

    fn mirrored(c: &Change) -> Change {
        match c.clone() {
            Change::Added { src, dst, new } => Change::Removed { src, dst, old: new },
            Change::Removed { src, dst, old } => Change::Added { src, dst, new: old },
            Change::Changed { src, dst, old, new } => Change::Changed {
                src,
                dst,
                old: new,
                new: old,
            },
            Change::WorkloadAdded(n) => Change::WorkloadRemoved(n),
            Change::WorkloadRemoved(n) => Change::WorkloadAdded(n),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_policy_that_selects_nothing_changes_nothing(objects in cluster(), ingress in prop::collection::vec(rule("from"), 0..2)) {
            let mut more = objects.clone();
            more.push(super::np("a", "nothing", json!({
                "podSelector": {"matchLabels": {"app": "nobody"}},
                "policyTypes": ["Ingress", "Egress"], "ingress": ingress})));
            prop_assert_eq!(txt(&objects), txt(&more));
        }

        #[test]
        fn adding_an_allow_to_isolated_pods_never_removes_a_connection(objects in cluster(), extra in rule("from"), which in any::<prop::sample::Index>()) {
            // A rule added to a policy that already isolates ingress
            // isolates no pod anew: it can only allow more.
            let isolating: Vec<usize> = objects.iter().enumerate()
                .filter(|(_, o)| o["kind"] == "NetworkPolicy"
                    && o["spec"]["policyTypes"].as_array().is_some_and(|t| t.contains(&json!("Ingress"))))
                .map(|(i, _)| i)
                .collect();
            prop_assume!(!isolating.is_empty());
            let i = isolating[which.index(isolating.len())];
            let mut more = objects.clone();
            more[i]["spec"]["ingress"].as_array_mut().unwrap().push(extra);
            let (old, new) = (map(&objects).unwrap(), map(&more).unwrap());
            prop_assert!(contained(&old, &new).is_ok(), "{:?}", contained(&old, &new));
        }

        #[test]
        fn diff_of_a_map_with_itself_is_empty_and_diff_mirrors(a in cluster(), b in cluster()) {
            let (ma, mb) = (map(&a).unwrap(), map(&b).unwrap());
            prop_assert!(diff(&ma, &ma).is_empty());
            let mut forward: Vec<String> = diff(&ma, &mb).iter().map(|c| mirrored(c).line()).collect();
            let mut back: Vec<String> = diff(&mb, &ma).iter().map(Change::line).collect();
            forward.sort();
            back.sort();
            prop_assert_eq!(forward, back);
        }
    }
}
