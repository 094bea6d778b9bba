//! Every row of the detection table, from DaemonSets as the plugins'
//! installers write them (cut to what matters, sidecars and init containers
//! kept).

use super::*;
use serde::Deserialize;
use serde_json::json;

use crate::workload::WorkloadKind;

/// The objects of a multi-document YAML stream.
fn objects(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn detect_yaml(yaml: &str) -> Verdict {
    detect(&objects(yaml))
}

/// (name, namespace/daemonset, version, enforces) of each plugin.
fn seen(v: &Verdict) -> Vec<(&str, String, Option<&str>, Enforces)> {
    v.plugins
        .iter()
        .map(|p| {
            (
                p.name,
                format!("{}/{}", p.namespace, p.daemon_set),
                p.version.as_deref(),
                p.enforces,
            )
        })
        .collect()
}

/// The finding of a not-enforcing verdict, checked for the catalog's
/// invariants.
fn finding(v: &Verdict) -> Finding {
    assert_eq!(v.state, State::NotEnforcing, "{v:#?}");
    let f = v.finding().unwrap();
    crate::rules::assert_well_formed(std::slice::from_ref(&f));
    assert_eq!(f.rule, RuleId::CniNotEnforcing);
    assert_eq!(f.severity, crate::rules::Action::Deny);
    f
}

fn no_finding(v: &Verdict) {
    assert_eq!(v.finding(), None, "{v:#?}");
    assert_eq!(v.culprit(), None);
}

/// kube-proxy runs everywhere and says nothing about policy.
const KUBE_PROXY: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-proxy
  namespace: kube-system
  labels: {k8s-app: kube-proxy}
spec:
  selector: {matchLabels: {k8s-app: kube-proxy}}
  template:
    metadata: {labels: {k8s-app: kube-proxy}}
    spec:
      hostNetwork: true
      containers:
      - name: kube-proxy
        image: registry.k8s.io/kube-proxy:v1.31.2
        command: [/usr/local/bin/kube-proxy, --config=/var/lib/kube-proxy/config.conf, --hostname-override=$(NODE_NAME)]
"#;

const CALICO_KUBE_SYSTEM: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
  namespace: kube-system
  uid: 4f7c1a52-0000-4000-8000-0000000000c1
  labels: {k8s-app: calico-node}
spec:
  selector: {matchLabels: {k8s-app: calico-node}}
  template:
    metadata: {labels: {k8s-app: calico-node}}
    spec:
      hostNetwork: true
      serviceAccountName: calico-node
      initContainers:
      - name: upgrade-ipam
        image: docker.io/calico/cni:v3.28.0
        command: [/opt/cni/bin/calico-ipam, -upgrade]
      - name: install-cni
        image: docker.io/calico/cni:v3.28.0
        command: [/opt/cni/bin/install]
      containers:
      - name: calico-node
        image: docker.io/calico/node:v3.28.0
        env:
        - {name: DATASTORE_TYPE, value: kubernetes}
        - {name: CALICO_NETWORKING_BACKEND, valueFrom: {configMapKeyRef: {name: calico-config, key: calico_backend}}}
        - {name: CLUSTER_TYPE, value: "k8s,bgp"}
        - {name: FELIX_DEFAULTENDPOINTTOHOSTACTION, value: ACCEPT}
"#;

#[test]
fn calico_node_in_kube_system_enforces() {
    let v = detect_yaml(&format!("{KUBE_PROXY}---{CALICO_KUBE_SYSTEM}"));
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "calico-node",
            "kube-system/calico-node".into(),
            Some("v3.28.0"),
            Enforces::Yes
        )]
    );
    assert_eq!(v.mode_not_verified, None);
    assert_eq!(
        v.summary,
        "calico-node v3.28.0 (kube-system/calico-node) enforces NetworkPolicy"
    );
    assert_eq!(
        v.plugins[0].uid.as_deref(),
        Some("4f7c1a52-0000-4000-8000-0000000000c1")
    );
    assert_eq!(v.enforcers().count(), 1);
    no_finding(&v);
}

#[test]
fn calico_node_of_the_tigera_operator_in_calico_system_enforces() {
    let v = detect_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: calico-node
  namespace: calico-system
  ownerReferences:
  - {apiVersion: operator.tigera.io/v1, kind: Installation, name: default, uid: u-1, controller: true}
spec:
  selector: {matchLabels: {k8s-app: calico-node}}
  template:
    metadata: {labels: {k8s-app: calico-node}}
    spec:
      initContainers:
      - {name: flexvol-driver, image: quay.io/calico/pod2daemon-flexvol:v3.29.1}
      - {name: install-cni, image: quay.io/calico/cni:v3.29.1, command: [/opt/cni/bin/install]}
      containers:
      - name: calico-node
        image: quay.io/calico/node:v3.29.1@sha256:0f1ea0a4b1d9d2e1f0d5a3c9a9c0e1b7d1f1f2b3c4d5e6f708192a3b4c5d6e7f
        env:
        - {name: CALICO_NETWORKING_BACKEND, value: bird}
"#,
    );
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "calico-node",
            "calico-system/calico-node".into(),
            Some("v3.29.1"),
            Enforces::Yes
        )]
    );
    no_finding(&v);
}

#[test]
fn a_renamed_daemonset_is_known_by_its_containers_images() {
    // An installer that names the DaemonSet its own way, the container too:
    // the image tells.
    let v = detect_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: platform-net, namespace: platform-network}
spec:
  template:
    spec:
      containers:
      - {name: log-shipper, image: fluent/fluent-bit:3.1}
      - {name: node, image: mcr.microsoft.com/oss/calico/node:v3.24.6}
"#,
    );
    assert_eq!(
        seen(&v),
        [(
            "calico-node",
            "platform-network/platform-net".into(),
            Some("v3.24.6"),
            Enforces::Yes
        )]
    );
    // A look-alike image whose path does not end in calico/node is nothing.
    let v = detect_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: exporter, namespace: monitoring}
spec:
  template:
    spec:
      containers:
      - {name: node-exporter, image: quay.io/prometheus/node-exporter:v1.8.2}
      - {name: x, image: example.com/notcalico/node:1}
"#,
    );
    assert_eq!(v.state, State::Unknown);
    assert_eq!(v.plugins, []);
}

const CILIUM: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cilium
  namespace: kube-system
  labels: {k8s-app: cilium, app.kubernetes.io/part-of: cilium}
spec:
  selector: {matchLabels: {k8s-app: cilium}}
  template:
    metadata: {labels: {k8s-app: cilium}}
    spec:
      hostNetwork: true
      initContainers:
      - name: config
        image: quay.io/cilium/cilium:v1.16.3@sha256:62d2a09bbef840a46099ac4c69421c90f84f28d018d479749049011329aa7f28
        command: [cilium-dbg, build-config]
      - {name: mount-cgroup, image: "quay.io/cilium/cilium:v1.16.3"}
      containers:
      - name: cilium-agent
        image: quay.io/cilium/cilium:v1.16.3@sha256:62d2a09bbef840a46099ac4c69421c90f84f28d018d479749049011329aa7f28
        command: [cilium-agent]
        args: [--config-dir=/tmp/cilium/config-map]
        env:
        - name: K8S_NODE_NAME
          valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}
        - {name: CILIUM_K8S_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
"#;

#[test]
fn cilium_enforces_but_its_mode_is_not_verified() {
    let v = detect_yaml(&format!("{CILIUM}---{KUBE_PROXY}"));
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "cilium",
            "kube-system/cilium".into(),
            Some("v1.16.3"),
            Enforces::Yes
        )]
    );
    assert_eq!(v.mode_not_verified.as_deref(), Some(CILIUM_MODE));
    assert_eq!(
        v.summary,
        format!(
            "cilium v1.16.3 (kube-system/cilium) enforces NetworkPolicy (mode not verified: {CILIUM_MODE})"
        )
    );
    assert!(CILIUM_MODE.contains("cilium-config ConfigMap"));
    no_finding(&v);
}

#[test]
fn cilium_args_that_set_the_mode_are_verified() {
    let with = |args: &str| {
        detect_yaml(&CILIUM.replace(
            "args: [--config-dir=/tmp/cilium/config-map]",
            &format!("args: [--config-dir=/tmp/cilium/config-map, {args}]"),
        ))
    };
    for args in [
        "--enable-policy=default",
        "--enable-policy=always",
        "'--enable-policy', always",
    ] {
        let v = with(args);
        assert_eq!(v.state, State::Enforcing, "{args}");
        assert_eq!(v.mode_not_verified, None, "{args}");
    }
    for args in ["--enable-policy=never", "'--enable-policy', never"] {
        let v = with(args);
        let f = finding(&v);
        assert_eq!(
            f.message,
            "cni-not-enforcing: cilium v1.16.3 (kube-system/cilium): --enable-policy=never; NetworkPolicies are stored, none is enforced. Remove --enable-policy=never (Helm: policyEnforcementMode: default)."
        );
    }
    // The environment form, as in `CILIUM_ENABLE_POLICY`.
    let v = detect_yaml(&CILIUM.replace(
        "      - {name: CILIUM_K8S_NAMESPACE",
        "      - {name: CILIUM_ENABLE_POLICY, value: never}\n      - {name: CILIUM_K8S_NAMESPACE",
    ));
    assert_eq!(v.state, State::NotEnforcing);
}

#[test]
fn cilium_in_its_own_namespace_beside_the_azure_cni_enforces() {
    // AKS "Azure CNI powered by Cilium": azure-cns and cilium.
    let v = detect_yaml(&format!(
        "{}---{AZURE_CNS}",
        CILIUM.replace("namespace: kube-system", "namespace: cilium")
    ));
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [
            (
                "cilium",
                "cilium/cilium".into(),
                Some("v1.16.3"),
                Enforces::Yes
            ),
            (
                "azure-cni",
                "kube-system/azure-cns".into(),
                Some("v1.6.13"),
                Enforces::No
            ),
        ]
    );
    assert!(v.mode_not_verified.is_some());
    assert!(
        v.summary.starts_with(
            "cilium v1.16.3 (cilium/cilium), azure-cni v1.6.13 (kube-system/azure-cns): cilium enforces NetworkPolicy (mode not verified: "
        ),
        "{}",
        v.summary
    );
    no_finding(&v);
}

#[test]
fn antrea_agent_enforces() {
    let v = detect_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: antrea-agent
  namespace: kube-system
  labels: {app: antrea, component: antrea-agent}
spec:
  template:
    spec:
      initContainers:
      - {name: install-cni, image: antrea/antrea-agent-ubuntu:v2.2.0, command: [install_cni]}
      containers:
      - name: antrea-agent
        image: antrea/antrea-agent-ubuntu:v2.2.0
        command: [antrea-agent]
        args: [--config=/etc/antrea/antrea-agent.conf, --logtostderr=false]
      - name: antrea-ovs
        image: antrea/antrea-agent-ubuntu:v2.2.0
        command: [start_ovs]
"#,
    );
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "antrea-agent",
            "kube-system/antrea-agent".into(),
            Some("v2.2.0"),
            Enforces::Yes
        )]
    );
    no_finding(&v);
}

const WEAVE: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: weave-net
  namespace: kube-system
  labels: {name: weave-net}
spec:
  template:
    spec:
      hostNetwork: true
      initContainers:
      - {name: weave-init, image: "weaveworks/weave-kube:latest", command: [/home/weave/init.sh]}
      containers:
      - name: weave
        image: weaveworks/weave-kube:2.8.1
        command: [/home/weave/launch.sh]
        env:
        - {name: INIT_CONTAINER, value: "true"}
      - name: weave-npc
        image: weaveworks/weave-npc:2.8.1
        env:
        - name: HOSTNAME
          valueFrom: {fieldRef: {apiVersion: v1, fieldPath: spec.nodeName}}
"#;

#[test]
fn weave_net_enforces_through_weave_npc() {
    let v = detect_yaml(WEAVE);
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "weave-net",
            "kube-system/weave-net".into(),
            Some("2.8.1"),
            Enforces::Yes
        )]
    );
    no_finding(&v);
    // Without its policy controller, it enforces nothing.
    let cut = WEAVE.split("      - name: weave-npc").next().unwrap();
    let v = detect_yaml(cut);
    let f = finding(&v);
    assert!(
        f.message.starts_with(
            "cni-not-enforcing: weave-net 2.8.1 (kube-system/weave-net): no weave-npc container"
        ),
        "{}",
        f.message
    );
}

const KUBE_ROUTER: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-router
  namespace: kube-system
  labels: {k8s-app: kube-router, tier: node}
spec:
  template:
    spec:
      hostNetwork: true
      initContainers:
      - {name: install-cni, image: docker.io/cloudnativelabs/kube-router, command: [/bin/sh, -c]}
      containers:
      - name: kube-router
        image: docker.io/cloudnativelabs/kube-router:v2.2.1
        args:
        - --run-router=true
        - --run-firewall=true
        - --run-service-proxy=false
        - --bgp-graceful-restart=true
        env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
"#;

#[test]
fn kube_router_enforces_unless_its_firewall_is_off() {
    let v = detect_yaml(KUBE_ROUTER);
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "kube-router",
            "kube-system/kube-router".into(),
            Some("v2.2.1"),
            Enforces::Yes
        )]
    );
    // On by default.
    let v = detect_yaml(&KUBE_ROUTER.replace("        - --run-firewall=true\n", ""));
    assert_eq!(v.state, State::Enforcing);
    let v = detect_yaml(&KUBE_ROUTER.replace("--run-firewall=true", "--run-firewall=false"));
    let f = finding(&v);
    assert!(f.message.contains("--run-firewall=false"), "{}", f.message);
    let v = detect_yaml(&KUBE_ROUTER.replace("--run-firewall=true", "--run-firewall=maybe"));
    assert_eq!(v.state, State::Unknown);
    assert_eq!(
        v.summary,
        "kube-router v2.2.1 (kube-system/kube-router): cannot tell whether NetworkPolicy is enforced (kube-router: --run-firewall=maybe is no boolean)"
    );
    no_finding(&v);
}

const CANAL: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: canal
  namespace: kube-system
  labels: {k8s-app: canal}
spec:
  template:
    spec:
      hostNetwork: true
      initContainers:
      - {name: install-cni, image: docker.io/calico/cni:v3.28.0, command: [/opt/cni/bin/install]}
      containers:
      - name: calico-node
        image: docker.io/calico/node:v3.28.0
        env:
        - {name: CALICO_NETWORKING_BACKEND, value: none}
        - {name: CLUSTER_TYPE, value: "k8s,canal"}
      - name: kube-flannel
        image: docker.io/flannel/flannel:v0.25.1
        command: [/opt/bin/flanneld, --ip-masq, --kube-subnet-mgr]
"#;

#[test]
fn canal_enforces() {
    let v = detect_yaml(CANAL);
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "canal",
            "kube-system/canal".into(),
            Some("v3.28.0"),
            Enforces::Yes
        )]
    );
    assert_eq!(
        v.summary,
        "canal v3.28.0 (kube-system/canal) enforces NetworkPolicy"
    );
    no_finding(&v);
}

/// flannel's own manifest (kube-flannel.yml).
const FLANNEL: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: kube-flannel
  labels: {k8s-app: flannel, pod-security.kubernetes.io/enforce: privileged}
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kube-flannel-ds
  namespace: kube-flannel
  uid: 0d2b9a8e-0000-4000-8000-00000000f1a1
  labels: {tier: node, app: flannel, k8s-app: flannel}
spec:
  selector: {matchLabels: {app: flannel}}
  template:
    metadata: {labels: {tier: node, app: flannel}}
    spec:
      hostNetwork: true
      priorityClassName: system-node-critical
      serviceAccountName: flannel
      initContainers:
      - name: install-cni-plugin
        image: docker.io/flannel/flannel-cni-plugin:v1.5.1-flannel2
        command: [cp]
        args: [-f, /flannel, /opt/cni/bin/flannel]
      - name: install-cni
        image: docker.io/flannel/flannel:v0.25.7
        command: [cp]
        args: [-f, /etc/kube-flannel/cni-conf.json, /etc/cni/net.d/10-flannel.conflist]
      containers:
      - name: kube-flannel
        image: docker.io/flannel/flannel:v0.25.7
        command: [/opt/bin/flanneld]
        args: [--ip-masq, --kube-subnet-mgr]
        env:
        - name: POD_NAME
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - {name: EVENT_QUEUE_DEPTH, value: "5000"}
"#;

#[test]
fn flannel_alone_enforces_nothing() {
    let v = detect_yaml(&format!("{FLANNEL}---{KUBE_PROXY}"));
    assert_eq!(
        seen(&v),
        [(
            "flannel",
            "kube-flannel/kube-flannel-ds".into(),
            Some("v0.25.7"),
            Enforces::No
        )]
    );
    assert_eq!(
        v.summary,
        "flannel v0.25.7 (kube-flannel/kube-flannel-ds): nothing enforces NetworkPolicy (flannel: no policy engine)"
    );
    let f = finding(&v);
    assert_eq!(
        f.message,
        "cni-not-enforcing: flannel v0.25.7 (kube-flannel/kube-flannel-ds): no policy engine; NetworkPolicies are stored, none is enforced. Run Calico for policy beside it (canal) or switch to a CNI that enforces."
    );
    let detail = f.detail.unwrap();
    assert!(
        detail.contains("DaemonSet kube-flannel/kube-flannel-ds runs flannel, which routes pod traffic and enforces no NetworkPolicy (no policy engine)"),
        "{detail}"
    );
    assert!(detail.contains("cni-not-enforcing: off"), "{detail}");
    let culprit = v.culprit().unwrap();
    assert_eq!(
        culprit.uid.as_deref(),
        Some("0d2b9a8e-0000-4000-8000-00000000f1a1")
    );
}

#[test]
fn flannel_with_a_policy_engine_beside_it_enforces() {
    // Calico policy-only over flannel, as two DaemonSets.
    let calico = CALICO_KUBE_SYSTEM.replace(
        "        - {name: CLUSTER_TYPE, value: \"k8s,bgp\"}",
        "        - {name: CALICO_NETWORKING_BACKEND, value: none}",
    );
    let v = detect_yaml(&format!("{FLANNEL}---{calico}"));
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        v.summary,
        "flannel v0.25.7 (kube-flannel/kube-flannel-ds), calico-node v3.28.0 (kube-system/calico-node): calico-node enforces NetworkPolicy"
    );
    no_finding(&v);
    // kube-router with only its firewall on (k0s, or by hand).
    let policy_only = KUBE_ROUTER.replace("--run-router=true", "--run-router=false");
    assert_eq!(
        detect_yaml(&format!("{FLANNEL}---{policy_only}")).state,
        State::Enforcing
    );
    // Antrea in policy-only mode.
    let antrea = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: antrea-agent, namespace: kube-system}
spec:
  template:
    spec:
      containers:
      - {name: antrea-agent, image: "antrea/antrea-agent-ubuntu:v2.2.0", args: [--config=/etc/antrea/antrea-agent.conf]}
"#;
    assert_eq!(
        detect_yaml(&format!("{FLANNEL}---{antrea}")).state,
        State::Enforcing
    );
}

/// The VPC CNI's aws-node as EKS installs it (1.14 and later).
const AWS_NODE: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: aws-node
  namespace: kube-system
  labels: {k8s-app: aws-node, app.kubernetes.io/name: aws-node}
spec:
  template:
    spec:
      hostNetwork: true
      priorityClassName: system-node-critical
      initContainers:
      - name: aws-vpc-cni-init
        image: 602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni-init:v1.18.5-eksbuild.1
        env:
        - {name: DISABLE_TCP_EARLY_DEMUX, value: "false"}
      containers:
      - name: aws-node
        image: 602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon-k8s-cni:v1.18.5-eksbuild.1
        ports:
        - {containerPort: 61678, name: metrics}
        env:
        - {name: ADDITIONAL_ENI_TAGS, value: "{}"}
        - {name: NETWORK_POLICY_ENFORCING_MODE, value: standard}
        - {name: WARM_ENI_TARGET, value: "1"}
      - name: aws-eks-nodeagent
        image: 602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon/aws-network-policy-agent:v1.1.3-eksbuild.1
        args:
        - --enable-ipv6=false
        - --enable-network-policy=false
        - --enable-cloudwatch-logs=false
        - --enable-policy-event-logs=false
        - --metrics-bind-addr=:8162
        - --health-probe-bind-addr=:8163
        - --conntrack-cache-cleanup-period=300
"#;

#[test]
fn aws_node_enforces_only_with_its_agent_enabled() {
    let on = AWS_NODE.replace(
        "--enable-network-policy=false",
        "--enable-network-policy=true",
    );
    let v = detect_yaml(&on);
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [(
            "aws-node",
            "kube-system/aws-node".into(),
            Some("v1.18.5-eksbuild.1"),
            Enforces::Yes
        )]
    );
    assert_eq!(
        v.plugins[0].note.as_deref(),
        Some("aws-eks-nodeagent: --enable-network-policy=true")
    );
    no_finding(&v);

    let v = detect_yaml(AWS_NODE);
    let f = finding(&v);
    assert_eq!(
        f.message,
        "cni-not-enforcing: aws-node v1.18.5-eksbuild.1 (kube-system/aws-node): aws-eks-nodeagent: --enable-network-policy=false; NetworkPolicies are stored, none is enforced. Set enableNetworkPolicy: \"true\" in the vpc-cni add-on."
    );
    assert!(
        f.detail
            .unwrap()
            .contains("enableNetworkPolicy: \"true\"\n```"),
        "a YAML fix"
    );

    // The agent without the argument: off by default.
    let v = detect_yaml(&AWS_NODE.replace("        - --enable-network-policy=false\n", ""));
    let f = finding(&v);
    assert!(
        f.message
            .contains("aws-eks-nodeagent: no --enable-network-policy (off by default)"),
        "{}",
        f.message
    );

    // A bare boolean flag is true; a `$(VAR)` is read from the env.
    let bare = AWS_NODE.replace("--enable-network-policy=false", "--enable-network-policy");
    assert_eq!(detect_yaml(&bare).state, State::Enforcing);
    let mut var = objects(AWS_NODE).remove(0);
    let agent = &mut var["spec"]["template"]["spec"]["containers"][1];
    agent["args"][1] = json!("--enable-network-policy=$(ENABLE_NP)");
    agent["env"] = json!([{"name": "ENABLE_NP", "value": "true"}]);
    assert_eq!(detect(&[var]).state, State::Enforcing);
    // A variable set from elsewhere cannot be read: unknown.
    let unread = AWS_NODE.replace(
        "--enable-network-policy=false",
        "--enable-network-policy=$(FROM_CONFIGMAP)",
    );
    let v = detect_yaml(&unread);
    assert_eq!(v.state, State::Unknown);
    no_finding(&v);
}

#[test]
fn aws_node_without_the_agent_container_enforces_nothing() {
    // VPC CNI before 1.14: the one container.
    let old = AWS_NODE
        .split("      - name: aws-eks-nodeagent")
        .next()
        .unwrap()
        .replace("v1.18.5-eksbuild.1", "v1.12.6-eksbuild.2");
    let v = detect_yaml(&old);
    let f = finding(&v);
    assert_eq!(
        f.message,
        "cni-not-enforcing: aws-node v1.12.6-eksbuild.2 (kube-system/aws-node): no network policy agent container (VPC CNI before 1.14); NetworkPolicies are stored, none is enforced. Upgrade the VPC CNI to 1.14+ with enableNetworkPolicy, or add Calico."
    );
    // Calico for policy on EKS: enforcing.
    let v = detect_yaml(&format!("{old}---{CALICO_KUBE_SYSTEM}"));
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [
            (
                "aws-node",
                "kube-system/aws-node".into(),
                Some("v1.12.6-eksbuild.2"),
                Enforces::No
            ),
            (
                "calico-node",
                "kube-system/calico-node".into(),
                Some("v3.28.0"),
                Enforces::Yes
            ),
        ]
    );
    no_finding(&v);
}

const AZURE_CNS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: azure-cns
  namespace: kube-system
  labels: {k8s-app: azure-cns, kubernetes.azure.com/managedby: aks}
spec:
  template:
    spec:
      hostNetwork: true
      initContainers:
      - {name: cni-installer, image: mcr.microsoft.com/containernetworking/azure-cni:v1.6.13, command: [/dropgz]}
      containers:
      - name: cns-container
        image: mcr.microsoft.com/containernetworking/azure-cns:v1.6.13
        args: [-c, tcp://$(CNSIpAddress):$(CNSPort), -t, $(CNSLogTarget), -o, $(CNSLogDir)]
        env:
        - {name: CNSIpAddress, value: 127.0.0.1}
        - {name: CNSPort, value: "10090"}
"#;

const AZURE_NPM: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: azure-npm
  namespace: kube-system
  labels: {app: azure-npm, addonmanager.kubernetes.io/mode: EnsureExists}
spec:
  template:
    spec:
      hostNetwork: true
      containers:
      - name: azure-npm
        image: mcr.microsoft.com/containernetworking/azure-npm:v1.5.34
        env:
        - {name: NPM_CONFIG, value: /etc/azure-npm/azure-npm.json}
"#;

#[test]
fn azure_cni_enforces_only_with_azure_npm() {
    let v = detect_yaml(AZURE_CNS);
    let f = finding(&v);
    assert_eq!(
        f.message,
        "cni-not-enforcing: azure-cni v1.6.13 (kube-system/azure-cns): no azure-npm, Calico or Cilium; NetworkPolicies are stored, none is enforced. Turn on a policy engine: az aks update --network-policy azure, calico or cilium."
    );
    let v = detect_yaml(&format!("{AZURE_CNS}---{AZURE_NPM}"));
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        seen(&v),
        [
            (
                "azure-cni",
                "kube-system/azure-cns".into(),
                Some("v1.6.13"),
                Enforces::No
            ),
            (
                "azure-npm",
                "kube-system/azure-npm".into(),
                Some("v1.5.34"),
                Enforces::Yes
            ),
        ]
    );
    no_finding(&v);
    // aks-engine's network monitor DaemonSet is Azure CNI too.
    let monitor = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: azure-cni-networkmonitor, namespace: kube-system}
spec:
  template:
    spec:
      containers:
      - {name: azure-cnms, image: "mcr.microsoft.com/containernetworking/networkmonitor:v1.1.8"}
"#;
    assert_eq!(detect_yaml(monitor).state, State::NotEnforcing);
    // Known by the DaemonSet's name alone (a mirrored image), the version
    // from its first container.
    let mirrored = AZURE_CNS.replace(
        "image: mcr.microsoft.com/containernetworking/azure-cns:v1.6.13",
        "image: registry.example.com/mirror/cns:v1.6.13",
    );
    assert_eq!(
        seen(&detect_yaml(&mirrored)),
        [(
            "azure-cni",
            "kube-system/azure-cns".into(),
            Some("v1.6.13"),
            Enforces::No
        )]
    );
    let npm_win = AZURE_NPM
        .replace(
            "name: azure-npm\n  namespace",
            "name: azure-npm-win\n  namespace",
        )
        .replace(
            "image: mcr.microsoft.com/containernetworking/azure-npm:v1.5.34",
            "image: registry.example.com/mirror/npm:v1.5.34",
        )
        .replace("      - name: azure-npm\n", "      - name: npm\n");
    assert_eq!(
        seen(&detect_yaml(&npm_win)),
        [(
            "azure-npm",
            "kube-system/azure-npm-win".into(),
            Some("v1.5.34"),
            Enforces::Yes
        )]
    );
}

const KINDNET: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: kindnet
  namespace: kube-system
  labels: {tier: node, app: kindnet, k8s-app: kindnet}
spec:
  selector: {matchLabels: {app: kindnet}}
  template:
    metadata: {labels: {tier: node, app: kindnet, k8s-app: kindnet}}
    spec:
      hostNetwork: true
      serviceAccountName: kindnet
      containers:
      - name: kindnet-cni
        image: docker.io/kindest/kindnetd:TAG
        env:
        - name: HOST_IP
          valueFrom: {fieldRef: {fieldPath: status.hostIP}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - {name: POD_SUBNET, value: 10.244.0.0/16}
"#;

fn kindnet_with(tag: &str) -> Verdict {
    detect_yaml(&format!("{}---{KUBE_PROXY}", KINDNET.replace("TAG", tag)))
}

#[test]
fn kindnet_enforces_from_kind_v0_24_on() {
    // kind v0.23.0 and older.
    for tag in ["v20240513-cd2ac642", "v20230809-80a64d96", "0.5.4"] {
        let v = kindnet_with(tag);
        let f = finding(&v);
        assert!(
            f.message
                .contains("kindnetd before kind v0.24 has no NetworkPolicy controller")
                || f.message.contains("kindnetd before kindnet v1.3.0"),
            "{tag}: {}",
            f.message
        );
        assert!(
            f.message.contains("Upgrade kind to v0.24+"),
            "{}",
            f.message
        );
    }
    assert_eq!(
        finding(&kindnet_with("v20240513-cd2ac642")).message,
        "cni-not-enforcing: kindnet v20240513-cd2ac642 (kube-system/kindnet): kindnetd before kind v0.24 has no NetworkPolicy controller; NetworkPolicies are stored, none is enforced. Upgrade kind to v0.24+ or install a policy engine (Calico)."
    );
    // kind v0.24.0 and later, and the standalone kindnet from v1.3.0.
    for tag in [
        "v20240813-c6f155d6",
        "v20250214-acbabc1a",
        "v1.3.0",
        "v1.8.5",
    ] {
        let v = kindnet_with(tag);
        assert_eq!(v.state, State::Enforcing, "{tag}");
        no_finding(&v);
    }
    assert_eq!(kindnet_with("v1.2.0").state, State::NotEnforcing);
    // Builds between the two kind releases, `latest`, a digest: unknown.
    for image_tag in ["v20240620-1b5e3a1c", "latest"] {
        let v = kindnet_with(image_tag);
        assert_eq!(v.state, State::Unknown, "{image_tag}");
        no_finding(&v);
    }
    let v = detect_yaml(&KINDNET.replace(
        "kindnetd:TAG",
        "kindnetd@sha256:e59a687ca28ae274a2fc92f1e2f5f1c739f353178a43a23aafc71adb802ed166",
    ));
    assert_eq!(v.state, State::Unknown);
    assert_eq!(
        v.summary,
        "kindnet (kube-system/kindnet): cannot tell whether NetworkPolicy is enforced (kindnet: its image tag is no known kindnetd release (kind v0.24 and kindnet v1.3.0 added NetworkPolicy))"
    );
}

#[test]
fn kindnet_with_network_policy_off_or_a_separate_policy_daemonset() {
    let off = KINDNET.replace("TAG", "v20240813-c6f155d6").replace(
        "        env:\n        - name: HOST_IP",
        "        args: [-network-policy=false]\n        env:\n        - name: HOST_IP",
    );
    let f = finding(&detect_yaml(&off));
    assert!(
        f.message.contains(": --network-policy=false;"),
        "{}",
        f.message
    );
    // An old kindnetd with kube-network-policies beside it (as kind's
    // development builds installed it).
    let knp = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-network-policies, namespace: kube-system}
spec:
  template:
    spec:
      hostNetwork: true
      containers:
      - name: kube-network-policies
        image: registry.k8s.io/networking/kube-network-policies:v0.2.0
        args: [/bin/netpol, -v, "2"]
"#;
    let v = detect_yaml(&format!(
        "{}---{knp}",
        KINDNET.replace("TAG", "v20240513-cd2ac642")
    ));
    assert_eq!(v.state, State::Enforcing);
    assert_eq!(
        v.summary,
        "kindnet v20240513-cd2ac642 (kube-system/kindnet), kube-network-policies v0.2.0 (kube-system/kube-network-policies): kube-network-policies enforces NetworkPolicy"
    );
}

#[test]
fn no_known_plugin_is_unknown_never_an_alarm() {
    let v = detect(&[]);
    assert_eq!(v.state, State::Unknown);
    assert_eq!(v.summary, NOTHING_FOUND);
    no_finding(&v);
    // Only kube-proxy and a node agent.
    let v = detect_yaml(&format!(
        "{KUBE_PROXY}---{}",
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-exporter, namespace: monitoring}
spec:
  template:
    spec:
      containers:
      - {name: node-exporter, image: "quay.io/prometheus/node-exporter:v1.8.2"}
"#
    ));
    assert_eq!(v.state, State::Unknown);
    assert_eq!(v.plugins, []);
    no_finding(&v);
}

#[test]
fn k3s_shows_no_plugin_daemonset() {
    // k3s runs flannel and its policy controller inside the server binary:
    // the DaemonSets are ServiceLB's, and the manifests are Deployments.
    let v = detect_yaml(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: svclb-traefik-1f5e2c3a
  namespace: kube-system
  labels: {objectset.rio.cattle.io/hash: 1f5e2c3a, svccontroller.k3s.cattle.io/svcname: traefik}
spec:
  template:
    spec:
      containers:
      - name: lb-tcp-80
        image: rancher/klipper-lb:v0.4.9
        env:
        - {name: SRC_PORT, value: "80"}
        - {name: DEST_PROTO, value: TCP}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system}
spec:
  template:
    spec:
      containers:
      - {name: coredns, image: "rancher/mirrored-coredns-coredns:1.11.3"}
"#,
    );
    assert_eq!(v.state, State::Unknown);
    assert_eq!(v.summary, NOTHING_FOUND);
    no_finding(&v);
}

#[test]
fn only_daemonsets_count() {
    // calico-kube-controllers is a Deployment; a Pod of flannel is judged
    // at its DaemonSet, never alone.
    let v = detect(&[
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "calico-kube-controllers", "namespace": "kube-system"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "calico-node", "image": "docker.io/calico/node:v3.28.0"}]}}}}),
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kube-flannel-ds-x7k2p", "namespace": "kube-flannel"},
            "spec": {"containers": [{"name": "kube-flannel", "image": "docker.io/flannel/flannel:v0.25.7"}]}}),
        json!({"apiVersion": "extensions/v1beta1", "kind": "DaemonSet",
            "metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel"},
            "spec": {"template": {"spec": {"containers": [{"name": "kube-flannel"}]}}}}),
    ]);
    assert_eq!(v.state, State::Unknown);
    assert_eq!(v.plugins, []);
}

#[test]
fn what_the_inventory_keeps_of_a_daemonset_is_enough() {
    let all = objects(&format!("{AWS_NODE}---{FLANNEL}---{CILIUM}"));
    let slim: Vec<Value> = all
        .iter()
        .map(|o| {
            if is_daemonset(o) {
                keep_for_detection(o, crate::workload::slim(WorkloadKind::DaemonSet, o))
            } else {
                o.clone()
            }
        })
        .collect();
    assert_eq!(detect(&slim), detect(&all));
    // Each container keeps its name and ports (what judging reads) and
    // what detection reads; nothing else.
    let ds = &slim[0];
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][1],
        json!({"name": "aws-eks-nodeagent",
            "image": "602401143452.dkr.ecr.us-west-2.amazonaws.com/amazon/aws-network-policy-agent:v1.1.3-eksbuild.1",
            "args": ["--enable-ipv6=false", "--enable-network-policy=false",
                "--enable-cloudwatch-logs=false", "--enable-policy-event-logs=false",
                "--metrics-bind-addr=:8162", "--health-probe-bind-addr=:8163",
                "--conntrack-cache-cleanup-period=300"]})
    );
    assert_eq!(
        ds["spec"]["template"]["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 61678, "name": "metrics"}])
    );
    // Without the extra fields, the agent's argument is gone and so is the
    // verdict: the inventory must keep them.
    let bare = crate::workload::slim(WorkloadKind::DaemonSet, &all[0]);
    assert_eq!(
        detect(&[bare]).plugins[0].note.as_deref(),
        Some("aws-eks-nodeagent: no --enable-network-policy (off by default)")
    );
}

#[test]
fn the_verdict_serialises_for_json_output() {
    let v = detect_yaml(FLANNEL);
    assert_eq!(
        serde_json::to_value(&v).unwrap(),
        json!({
            "state": "not-enforcing",
            "plugins": [{"name": "flannel", "namespace": "kube-flannel",
                "daemonSet": "kube-flannel-ds", "version": "v0.25.7",
                "enforces": "no", "note": "no policy engine"}],
            "summary": "flannel v0.25.7 (kube-flannel/kube-flannel-ds): nothing enforces NetworkPolicy (flannel: no policy engine)"
        })
    );
    let v = detect_yaml(CILIUM);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["state"], "enforcing");
    assert_eq!(json["modeNotVerified"], CILIUM_MODE);
    assert_eq!(
        serde_json::to_value(detect(&[])).unwrap(),
        json!({"state": "unknown", "plugins": [], "summary": NOTHING_FOUND})
    );
    assert_eq!(
        [State::Enforcing, State::NotEnforcing, State::Unknown].map(State::as_str),
        ["enforcing", "not-enforcing", "unknown"]
    );
}

#[test]
fn messages_stay_one_line_within_the_limit_whatever_the_names() {
    let long = "x".repeat(200);
    let v = detect_yaml(
        &FLANNEL
            .replace("name: kube-flannel-ds", &format!("name: {long}"))
            .replace(
                "namespace: kube-flannel\n",
                "namespace: \"kube\\nflannel\"\n",
            ),
    );
    let f = finding(&v);
    assert!(f.message.ends_with("..."), "{}", f.message);
}

#[test]
fn several_plugins_that_do_not_enforce_are_counted_in_the_message() {
    let v = detect_yaml(&format!("{FLANNEL}---{AZURE_CNS}"));
    let f = finding(&v);
    assert!(
        f.message.starts_with(
            "cni-not-enforcing: flannel v0.25.7 (kube-flannel/kube-flannel-ds) (and 1 more): no policy engine;"
        ),
        "{}",
        f.message
    );
}
