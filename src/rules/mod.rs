//! The rule catalog. Every rule has a stable id (public interface: config keys,
//! messages, docs and reports use it), a default action, and lives in one
//! module: `coverage` for workloads, `netpol` for NetworkPolicy, `cilium` for
//! the Cilium kinds.

pub mod cilium;
pub mod coverage;
pub mod netpol;

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

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Off => "off",
            Action::Warn => "warn",
            Action::Deny => "deny",
        })
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
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a rule found in one object.
///
/// `severity` is what the rule itself judges: `Deny` for the dangerous form,
/// `Warn` for its milder variant (e.g. an allow-all peer limited to a port).
/// The configured action then caps it: `deny` keeps the rule's judgement,
/// `warn` turns everything into warnings, `off` drops the finding. A rule whose
/// default action is `warn` reports `Deny` severity, so an admin who sets it to
/// `deny` gets denials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: RuleId,
    pub severity: Action,
    /// One line, at most `MAX_WARNING_CHARS`: what was found and the fix, in
    /// the form `<rule-id>: ...`. Sent alone as an admission warning.
    pub message: String,
    /// Longer explanation (why it is dangerous, a YAML fix) appended to the
    /// message in denials and reports, never in warnings.
    pub detail: Option<String>,
}

/// The API server may truncate admission warnings longer than this.
pub const MAX_WARNING_CHARS: usize = 256;

impl Finding {
    pub fn new(rule: RuleId, message: impl Into<String>) -> Self {
        Self {
            rule,
            severity: Action::Deny,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The full text for a denial or a report: message then detail.
    pub fn full_text(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}\n{}", self.message, d),
            None => self.message.clone(),
        }
    }

    /// Marks the milder variant of a rule, which only warns under `deny`.
    pub fn milder(mut self) -> Self {
        self.severity = Action::Warn;
        self
    }

    /// The action after applying the configured one for this rule.
    pub fn effective(&self, configured: Action) -> Action {
        configured.min(self.severity)
    }
}

/// The `request.object` of a shared admission fixture.
#[cfg(test)]
pub(crate) fn fixture_object(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../shared/fixtures/admission/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let review: serde_json::Value = serde_json::from_str(&text).unwrap();
    review["request"]["object"].clone()
}

/// The invariants every catalog finding keeps: one line of at most
/// `MAX_WARNING_CHARS` starting with its rule id, and a non-empty detail.
#[cfg(test)]
pub(crate) fn assert_well_formed(findings: &[Finding]) {
    for f in findings {
        assert!(
            f.message.chars().count() <= MAX_WARNING_CHARS,
            "too long: {}",
            f.message
        );
        assert!(
            f.message.starts_with(&format!("{}: ", f.rule.as_str())),
            "must start with the rule id: {}",
            f.message
        );
        assert!(!f.message.contains('\n'), "one line: {}", f.message);
        assert!(
            f.detail.as_deref().is_some_and(|d| !d.is_empty()),
            "{}",
            f.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in RuleId::ALL {
            assert_eq!(RuleId::parse(r.as_str()), Some(*r));
            assert!(seen.insert(r.as_str()));
        }
        assert_eq!(RuleId::parse("nope"), None);
    }

    #[test]
    fn configured_action_caps_severity() {
        let f = Finding::new(RuleId::AllowAllPeers, "x");
        assert_eq!(f.effective(Action::Deny), Action::Deny);
        assert_eq!(f.effective(Action::Warn), Action::Warn);
        assert_eq!(f.effective(Action::Off), Action::Off);
        let m = f.milder();
        assert_eq!(m.effective(Action::Deny), Action::Warn);
        assert_eq!(m.effective(Action::Off), Action::Off);
    }
}
