//! The vocabulary every layer shares: rule ids and their default actions,
//! actions, the directions coverage is judged in, and the enforcement mode.
//! It sits at the bottom of the crate and imports nothing from it, so that
//! `config`, `rules` and `cluster` can all use it without importing each
//! other.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a rule does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Off,
    Warn,
    Deny,
}

impl Action {
    /// The word config, reports and metrics use: `off`, `warn`, `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::Warn => "warn",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! rules {
    ($($variant:ident => $id:literal, $default:ident, $summary:literal;)*) => {
        /// Stable rule identifiers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum RuleId { $($variant),* }

        impl RuleId {
            pub const ALL: &'static [RuleId] = &[$(RuleId::$variant),*];
            /// The ids, in the same order as `ALL`.
            pub const IDS: &'static [&'static str] = &[$($id),*];

            /// The id users see and write in config, e.g. `require-network-policy`.
            pub fn as_str(self) -> &'static str {
                match self { $(RuleId::$variant => $id),* }
            }

            /// The action when the config does not set one.
            pub fn default_action(self) -> Action {
                match self { $(RuleId::$variant => Action::$default),* }
            }

            /// One line: what the rule finds.
            pub fn summary(self) -> &'static str {
                match self { $(RuleId::$variant => $summary),* }
            }

            pub fn parse(s: &str) -> Option<RuleId> {
                match s { $($id => Some(RuleId::$variant),)* _ => None }
            }
        }
    };
}

rules! {
    RequireNetworkPolicy => "require-network-policy", Deny,
        "a workload in a managed namespace whose pods no NetworkPolicy selects";
    AllowAllPeers => "allow-all-peers", Deny,
        "an ingress/egress rule with no from/to (a Cilium rule with toPorts and no peer): every source or destination";
    AnyNamespacePeer => "any-namespace-peer", Deny,
        "a peer namespaceSelector: {} that matches every pod in every namespace";
    WorldCidr => "world-cidr", Deny,
        "an IP block wider than the configured limit, such as 0.0.0.0/0";
    ClusterCidrPeer => "cluster-cidr-peer", Deny,
        "an IP block that covers the cluster's pod or service CIDRs (clusterCidrs), letting pods in by IP";
    OrSelectorSlip => "or-selector-slip", Warn,
        "a namespaceSelector peer next to a podSelector peer: OR where AND was meant";
    ImplicitIngressIsolation => "implicit-ingress-isolation", Warn,
        "egress rules without policyTypes, which also isolates ingress";
    DnsSingleProtocol => "dns-single-protocol", Warn,
        "port 53 opened on UDP only or TCP only";
    BaselineProtected => "baseline-protected", Deny,
        "a change to or deletion of a netpol-guard baseline policy";
    WorldEntity => "world-entity", Deny,
        "a Cilium peer entity world, world-ipv4, world-ipv6 or all, or its reserved: label";
    FqdnWildcard => "fqdn-wildcard", Deny,
        "a Cilium toFQDNs pattern made only of wildcards (*, *.*, **.*) that allows every name";
    AnyEndpointPeer => "any-endpoint-peer", Deny,
        "a Cilium peer matching every endpoint or service: {}, the cluster entity (warns when limited to one namespace)";
    DefaultDenyDisabled => "default-deny-disabled", Warn,
        "a Cilium enableDefaultDeny that turns default deny off";
    NamespaceLabelsIgnored => "namespace-labels-ignored", Warn,
        "io.cilium.k8s.namespace.labels selectors that a namespaced CNP ignores";
    NodeEntity => "node-entity", Warn,
        "a Cilium peer of nodes or unmanaged endpoints: host, remote-node, unmanaged, fromNodes/toNodes {}";
    HostNetwork => "host-network", Deny,
        "a workload in a managed namespace whose pods use the node's network (hostNetwork: true)";
    UncoversWorkloads => "uncovers-workloads", Warn,
        "a policy update or delete that leaves existing workloads of a managed namespace uncovered";
    PolicySelectsNothing => "policy-selects-nothing", Warn,
        "a policy whose pod selector matches none of its namespace's workloads (check, audit), such as a label typo";
    CniNotEnforcing => "cni-not-enforcing", Deny,
        "a network plugin that enforces no NetworkPolicy (flannel alone, AWS VPC CNI or Azure CNI without their policy agents, older kindnet): audit only";
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which traffic a NetworkPolicy must grant for a workload to count as covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Directions {
    /// Ingress or egress (one policy granting either is enough).
    #[default]
    Any,
    Ingress,
    Egress,
    /// Both directions, possibly from different policies.
    Both,
}

/// Whether denials are enforced, or only reported as warnings (gradual rollout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// Every would-be denial is allowed and returned as a warning.
    Audit,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "enforce" => Some(Mode::Enforce),
            "audit" => Some(Mode::Audit),
            _ => None,
        }
    }
}

/// Namespace label that overrides `mode` for one namespace.
pub const MODE_LABEL: &str = "netpol-guard.io/mode";
