//! Configuration: one YAML document, the same schema from `--config FILE`
//! and from the `netpol-guard` ConfigMap (`reload`). Parsing is strict: an
//! unknown key or a bad value is an error that names the key and the line,
//! because a typo in a security setting must never silently fall back to a
//! default.

pub mod reload;
pub mod store;

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::selector::{LabelSelector, Selector, SelectorError};
use crate::vocab::{Action, RuleId};

/// The documented defaults, printed by `netpol-guard config default`. A test
/// checks that parsing this text gives exactly `Config::default()`.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default-config.yaml");

pub use crate::vocab::{Directions, MODE_LABEL, Mode};

/// What to do with a namespace's baseline when it stops being managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnmanage {
    #[default]
    Delete,
    Keep,
}

/// A port of the DNS allow policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsPort {
    pub protocol: String,
    pub port: u16,
}

/// The baseline netpol-guard generates in managed namespaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Baseline {
    /// Namespace of the cluster DNS pods.
    pub dns_namespace: String,
    /// Labels of the cluster DNS pods.
    pub dns_pod_labels: std::collections::BTreeMap<String, String>,
    /// Ports the DNS allow opens.
    pub dns_ports: Vec<DnsPort>,
    /// Optional node-local DNS cache address, e.g. 169.254.20.10/32.
    pub node_local_dns_cidr: Option<String>,
    /// Remove the baseline when a namespace stops being managed, or keep it.
    pub on_unmanage: OnUnmanage,
    /// Admin-defined baseline policies, generated as `netpol-guard-<name>`
    /// in every managed namespace in enforce mode (`baseline::desired`).
    pub extra_policies: Vec<ExtraPolicy>,
}

/// One `baseline.extraPolicies` entry as written: a name (without the
/// `netpol-guard-` prefix) and a NetworkPolicy spec. The spec is parsed
/// strictly and judged by the rule catalog when the config loads
/// (`baseline::compile_extra_policies`); `Settings::extra_baseline` holds
/// the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraPolicy {
    pub name: String,
    pub spec: serde_json::Value,
}

impl Default for Baseline {
    fn default() -> Self {
        Self {
            dns_namespace: "kube-system".into(),
            dns_pod_labels: [("k8s-app".to_string(), "kube-dns".to_string())].into(),
            dns_ports: vec![
                DnsPort {
                    protocol: "UDP".into(),
                    port: 53,
                },
                DnsPort {
                    protocol: "TCP".into(),
                    port: 53,
                },
            ],
            node_local_dns_cidr: None,
            on_unmanage: OnUnmanage::Delete,
            extra_policies: vec![],
        }
    }
}

/// Requests netpol-guard lets through without judging. Decided by cluster
/// admins here, never by an annotation a developer could set on a workload.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Exemptions {
    /// Namespaces whose requests are not judged (they can still be managed,
    /// so they keep their baseline).
    pub namespaces: Vec<String>,
    /// Workloads whose pod labels match any of these selectors are exempt
    /// from require-network-policy.
    pub workload_labels: Vec<LabelSelector>,
    /// Users (e.g. a trusted deploy bot) whose requests are not judged.
    pub users: Vec<String>,
    /// Groups whose members' requests are not judged.
    pub groups: Vec<String>,
    /// Single workloads, named by a cluster admin, exempt from
    /// require-network-policy and host-network (e.g. a node agent's
    /// DaemonSet). Nothing a developer sets on the object can exempt it.
    pub workloads: Vec<WorkloadRef>,
}

/// One workload by namespace, kind (`DaemonSet`, `Deployment`, ...) and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadRef {
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

pub use crate::workload::ControllerKind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// `enforce` denies; `audit` turns every denial into a warning. A namespace
    /// label `netpol-guard.io/mode: audit|enforce` overrides it.
    pub mode: Mode,
    /// Which namespaces netpol-guard enforces `require-network-policy` in.
    pub managed_namespaces: ManagedNamespaces,
    /// What traffic a policy must grant to cover a workload.
    pub directions: Directions,
    /// Per-rule action: `deny`, `warn` or `off`.
    pub rules: RuleActions,
    /// CIDRs that `world-cidr` always accepts (e.g. a corporate egress range).
    pub allowed_cidrs: Vec<String>,
    /// The widest CIDR accepted without `allowedCidrs`.
    pub cidr_limits: CidrLimits,
    /// The cluster's pod and service CIDRs (IPv4 and IPv6): an IP block
    /// that covers one, or half of one, is denied by `cluster-cidr-peer`.
    /// Empty: the rule only warns about blocks that overlap the private
    /// ranges where clusters usually live.
    pub cluster_cidrs: Vec<String>,
    /// The user netpol-guard itself runs as (may change baseline policies).
    pub service_account: String,
    /// Largest AdmissionReview body accepted; larger ones get HTTP 413.
    pub max_body_bytes: usize,
    /// Requests that are not judged.
    pub exemptions: Exemptions,
    /// Operators' custom resources whose Pods, like those of a ReplicaSet,
    /// Job, StatefulSet, DaemonSet or ReplicationController, are not judged
    /// one by one (the webhook's matchCondition must name them too).
    pub controller_kinds: Vec<ControllerKind>,
    /// The baseline policies generated in managed namespaces.
    pub baseline: Baseline,
    /// Add the managed label to new namespaces (mutating webhook).
    pub auto_manage: bool,
    /// With `autoManage`, also label new namespaces with this mode
    /// (`netpol-guard.io/mode`), e.g. `audit` to start every namespace in audit.
    pub auto_manage_mode: Option<Mode>,
    /// How long a live re-read from the API server may take before a
    /// require-network-policy denial is confirmed from the cache alone.
    pub live_read_timeout_millis: u64,
    /// How old a live read of a namespace may be and still answer the next
    /// denial there (0: every denial waits for a read that started after it
    /// arrived). Bounds the API server reads a flood of denials causes.
    pub live_read_reuse_millis: u64,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`, or a tracing
    /// filter); the NETPOL_GUARD_LOG environment variable overrides it.
    pub log_level: String,
    /// The background audit that keeps PolicyReports current.
    pub policy_reports: PolicyReports,
}

/// `policyReports`: `serve` (its leader) audits the cluster every
/// `intervalSeconds` and writes the results as PolicyReports, so dashboards
/// that read them (Policy Reporter, Kyverno's UI) show netpol-guard's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PolicyReports {
    /// Seconds between audits; 0 turns the background audit off.
    pub interval_seconds: u64,
}

impl Default for PolicyReports {
    fn default() -> Self {
        Self {
            interval_seconds: 600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ManagedNamespaces {
    /// Namespace label selector that makes a namespace managed.
    pub selector: LabelSelector,
    /// Namespace names never managed nor checked, whatever their labels.
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CidrLimits {
    /// Shortest IPv4 prefix accepted (8 accepts /8 and narrower).
    pub ipv4_min_prefix: u8,
    /// Shortest IPv6 prefix accepted.
    pub ipv6_min_prefix: u8,
}

impl Default for CidrLimits {
    fn default() -> Self {
        Self {
            ipv4_min_prefix: 8,
            ipv6_min_prefix: 32,
        }
    }
}

impl Default for ManagedNamespaces {
    fn default() -> Self {
        Self {
            selector: LabelSelector {
                match_labels: [("platform.io/managed".to_string(), "true".to_string())].into(),
                match_expressions: vec![],
            },
            exclude: [
                "kube-system",
                "kube-public",
                "kube-node-lease",
                "netpol-guard",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Enforce,
            managed_namespaces: ManagedNamespaces::default(),
            directions: Directions::Any,
            rules: RuleActions::default(),
            allowed_cidrs: vec![],
            cidr_limits: CidrLimits::default(),
            cluster_cidrs: vec![],
            service_account: "system:serviceaccount:netpol-guard:netpol-guard".to_string(),
            max_body_bytes: 4 * 1024 * 1024,
            exemptions: Exemptions::default(),
            controller_kinds: vec![],
            baseline: Baseline::default(),
            auto_manage: false,
            auto_manage_mode: None,
            live_read_timeout_millis: 1000,
            live_read_reuse_millis: 1000,
            log_level: "info".into(),
            policy_reports: PolicyReports::default(),
        }
    }
}

/// Per-rule actions, indexed by `RuleId`; rules not listed keep their default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleActions {
    actions: Vec<Action>,
}

impl Default for RuleActions {
    fn default() -> Self {
        Self {
            actions: RuleId::ALL.iter().map(|r| r.default_action()).collect(),
        }
    }
}

impl RuleActions {
    pub fn get(&self, rule: RuleId) -> Action {
        self.actions
            .get(rule as usize)
            .copied()
            .unwrap_or_else(|| rule.default_action())
    }

    pub fn set(&mut self, rule: RuleId, action: Action) {
        if let Some(slot) = self.actions.get_mut(rule as usize) {
            *slot = action;
        }
    }
}

impl Serialize for RuleActions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(RuleId::ALL.len()))?;
        for r in RuleId::ALL {
            m.serialize_entry(r.as_str(), &self.get(*r))?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for RuleActions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuleActions;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of rule id to deny, warn or off")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RuleActions, E> {
                Ok(RuleActions::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RuleActions, A::Error> {
                let mut out = RuleActions::default();
                while let Some(key) = map.next_key::<String>()? {
                    let rule = RuleId::parse(&key)
                        .ok_or_else(|| de::Error::unknown_field(&key, RuleId::IDS))?;
                    out.set(rule, map.next_value()?);
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}

/// A configuration error, with the key and line where the YAML parser knows them.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid config: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("invalid config: managedNamespaces.selector: {0}")]
    Selector(#[from] SelectorError),
    #[error("invalid config: allowedCidrs: {0}")]
    Cidr(#[from] crate::cidr::CidrError),
    #[error("invalid config: {key}: {problem}")]
    Value { key: &'static str, problem: String },
    /// A `baseline.extraPolicies` entry, by its position and name.
    #[error("invalid config: baseline.extraPolicies[{index}] ({name}): {problem}")]
    ExtraPolicy {
        index: usize,
        name: String,
        problem: String,
    },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// A validated configuration with its derived, ready-to-use parts, so the
/// request path never re-parses selectors or CIDRs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub managed_selector: Selector,
    pub allowed_cidrs: Vec<Cidr>,
    /// `clusterCidrs`, parsed.
    pub cluster_cidrs: Vec<Cidr>,
    pub exempt_workloads: Vec<Selector>,
    /// `baseline.extraPolicies`, validated: each policy's name in the
    /// cluster and its spec as the API server stores it.
    pub extra_baseline: Vec<crate::baseline::ExtraBaseline>,
}

impl Settings {
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let managed_selector = Selector::compile(&config.managed_namespaces.selector)?;
        let exempt_workloads = config
            .exemptions
            .workload_labels
            .iter()
            .map(Selector::compile)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Value {
                key: "exemptions.workloadLabels",
                problem: e.to_string(),
            })?;
        if let Some(c) = &config.baseline.node_local_dns_cidr {
            c.parse::<Cidr>().map_err(|e| ConfigError::Value {
                key: "baseline.nodeLocalDnsCidr",
                problem: e.to_string(),
            })?;
        }
        if config.baseline.dns_ports.is_empty() {
            return Err(ConfigError::Value {
                key: "baseline.dnsPorts",
                problem: "must list at least one port".into(),
            });
        }
        for p in &config.baseline.dns_ports {
            if !matches!(p.protocol.as_str(), "UDP" | "TCP" | "SCTP") || p.port == 0 {
                return Err(ConfigError::Value {
                    key: "baseline.dnsPorts",
                    problem: format!(
                        "{}/{} is not a protocol (UDP, TCP, SCTP) and port 1-65535",
                        p.protocol, p.port
                    ),
                });
            }
        }
        for c in &config.controller_kinds {
            check_controller_kind(c)?;
        }
        if config.log_level.trim().is_empty() {
            return Err(ConfigError::Value {
                key: "logLevel",
                problem: "must not be empty (e.g. info)".into(),
            });
        }
        let interval = config.policy_reports.interval_seconds;
        if interval != 0 && !(10..=86_400).contains(&interval) {
            return Err(ConfigError::Value {
                key: "policyReports.intervalSeconds",
                problem: format!(
                    "{interval} is outside 10..=86400 (or 0 to turn the background audit off): each audit lists every workload of the cluster"
                ),
            });
        }
        if config.live_read_timeout_millis == 0 || config.live_read_timeout_millis > 10_000 {
            return Err(ConfigError::Value {
                key: "liveReadTimeoutMillis",
                problem: format!("{} is outside 1..=10000", config.live_read_timeout_millis),
            });
        }
        if config.live_read_reuse_millis > 10_000 {
            return Err(ConfigError::Value {
                key: "liveReadReuseMillis",
                problem: format!("{} is outside 0..=10000", config.live_read_reuse_millis),
            });
        }
        let allowed_cidrs = config
            .allowed_cidrs
            .iter()
            .map(|c| c.parse())
            .collect::<Result<Vec<Cidr>, _>>()?;
        let cluster_cidrs = config
            .cluster_cidrs
            .iter()
            .map(|c| c.parse())
            .collect::<Result<Vec<Cidr>, _>>()
            .map_err(|e| ConfigError::Value {
                key: "clusterCidrs",
                problem: e.to_string(),
            })?;
        if config.cidr_limits.ipv4_min_prefix > 32 {
            return Err(ConfigError::Value {
                key: "cidrLimits.ipv4MinPrefix",
                problem: format!("{} is more than 32", config.cidr_limits.ipv4_min_prefix),
            });
        }
        if config.cidr_limits.ipv6_min_prefix > 128 {
            return Err(ConfigError::Value {
                key: "cidrLimits.ipv6MinPrefix",
                problem: format!("{} is more than 128", config.cidr_limits.ipv6_min_prefix),
            });
        }
        if config.max_body_bytes < 1024 {
            return Err(ConfigError::Value {
                key: "maxBodyBytes",
                problem: format!("{} is below the 1024-byte minimum", config.max_body_bytes),
            });
        }
        if config.service_account.trim().is_empty() {
            return Err(ConfigError::Value {
                key: "serviceAccount",
                problem: "must not be empty".into(),
            });
        }
        let mut settings = Self {
            config,
            managed_selector,
            allowed_cidrs,
            cluster_cidrs,
            exempt_workloads,
            extra_baseline: vec![],
        };
        // Last: the extra policies are judged by the rule catalog with
        // these very settings (rule actions, CIDR limits).
        settings.extra_baseline = crate::baseline::compile_extra_policies(&settings)?;
        Ok(settings)
    }

    /// Parses and validates YAML text (an empty document means all defaults).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let config: Config = if text.trim().is_empty() {
            Config::default()
        } else {
            serde_yaml::from_str(text)?
        };
        Self::new(config)
    }

    /// What an admin should know about a valid config: settings that do
    /// less than they seem. Logged at WARN when a config is loaded.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.config.exemptions.workload_labels.is_empty() {
            out.push(
                "exemptions.workloadLabels exempts workloads by pod labels, which whoever writes a workload sets: \
                 any developer can exempt their own workload this way. Prefer exemptions.workloads (namespace, \
                 kind, name), or make sure admission control keeps developers from setting those labels."
                    .to_string(),
            );
        }
        // What the rule catalog only warns about in an extra policy.
        for (index, extra) in self.extra_baseline.iter().enumerate() {
            for w in &extra.warnings {
                out.push(format!(
                    "baseline.extraPolicies[{index}] ({}): {w}",
                    extra.configured
                ));
            }
        }
        out
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    pub fn action(&self, rule: RuleId) -> Action {
        self.config.rules.get(rule)
    }

    /// Whether netpol-guard manages the namespace `namespace` with these
    /// labels: they match the managed-namespace selector and the name is not
    /// excluded. The one answer the webhook, the generator and the audit
    /// share; each passes the labels it has (the generator those of the
    /// Namespace it is reconciling, not a view that may lag).
    pub fn manages(&self, namespace: &str, labels: &crate::selector::Labels) -> bool {
        !self.is_excluded(namespace) && self.managed_selector.matches(labels)
    }

    /// The mode in force for a namespace with these labels: its
    /// `netpol-guard.io/mode` label when that says `enforce` or `audit`,
    /// else the configured one (also for an unknown namespace, `None`).
    pub fn mode_for(&self, labels: Option<&crate::selector::Labels>) -> Mode {
        labels
            .and_then(|l| l.get(MODE_LABEL))
            .and_then(|m| Mode::parse(m))
            .unwrap_or(self.config.mode)
    }

    /// Excluded namespaces are never managed and never checked.
    pub fn is_excluded(&self, namespace: &str) -> bool {
        self.config
            .managed_namespaces
            .exclude
            .iter()
            .any(|n| n == namespace)
    }
}

/// A `controllerKinds` entry must be an `apiVersion` Kubernetes accepts in
/// an ownerReference (`group/version`, or `version` for the core group) and
/// a kind, and not one of the workload kinds netpol-guard judges itself.
fn check_controller_kind(c: &ControllerKind) -> Result<(), ConfigError> {
    let bad = |problem: String| ConfigError::Value {
        key: "controllerKinds",
        problem,
    };
    let (group, version) = c
        .api_version
        .split_once('/')
        .unwrap_or(("", &c.api_version));
    if version.is_empty() || version.contains('/') || c.api_version.trim() != c.api_version {
        return Err(bad(format!(
            "apiVersion {:?} is not group/version (e.g. kubevirt.io/v1)",
            c.api_version
        )));
    }
    if c.kind.is_empty() || c.kind.trim() != c.kind {
        return Err(bad(format!(
            "{}: kind {:?} is not a kind name",
            c.api_version, c.kind
        )));
    }
    if crate::workload::WorkloadKind::from_group_kind(group, &c.kind).is_some() {
        return Err(bad(format!(
            "{} {} is a workload kind netpol-guard judges itself; the Pods of ReplicaSets, Jobs, \
             StatefulSets, DaemonSets and ReplicationControllers are always judged at their controller",
            c.api_version, c.kind
        )));
    }
    Ok(())
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            config: Config::default(),
            managed_selector: Selector::compile(&Config::default().managed_namespaces.selector)
                .unwrap_or_default(),
            allowed_cidrs: vec![],
            cluster_cidrs: vec![],
            exempt_workloads: vec![],
            extra_baseline: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One answer to "managed?" and "which mode?" for the webhook (through
    /// `engine::is_managed`) and the generator.
    #[test]
    fn manages_and_mode_for_are_of_name_labels_and_settings() {
        let s = Settings::from_yaml(
            "managedNamespaces:\n  selector: {matchLabels: {team: a}}\n  exclude: [kube-system]\nmode: audit\n",
        )
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| -> crate::selector::Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(s.manages("shop", &labels(&[("team", "a")])));
        assert!(!s.manages("shop", &labels(&[("team", "b")])));
        assert!(
            !s.manages("kube-system", &labels(&[("team", "a")])),
            "excluded by name"
        );
        assert_eq!(s.mode_for(None), Mode::Audit);
        assert_eq!(
            s.mode_for(Some(&labels(&[(MODE_LABEL, "enforce")]))),
            Mode::Enforce
        );
        assert_eq!(
            s.mode_for(Some(&labels(&[(MODE_LABEL, "bogus")]))),
            Mode::Audit
        );
    }

    #[test]
    fn documented_defaults_parse_to_the_built_in_defaults() {
        let s = Settings::from_yaml(DEFAULT_CONFIG_YAML).unwrap();
        assert_eq!(s.config, Config::default());
        for r in RuleId::ALL {
            assert!(
                DEFAULT_CONFIG_YAML.contains(&format!("  {}: {}", r.as_str(), r.default_action())),
                "default-config.yaml documents {r}"
            );
        }
    }

    /// The commented `extraPolicies` example of `config default`, as an
    /// admin would uncomment it, is a valid config.
    #[test]
    fn the_documented_extra_policy_example_is_valid() {
        let example: String = DEFAULT_CONFIG_YAML
            .lines()
            .skip_while(|l| !l.starts_with("  # extraPolicies:"))
            .take_while(|l| l.starts_with("  # "))
            .map(|l| format!("  {}\n", &l["  # ".len()..]))
            .collect();
        assert!(example.starts_with("  extraPolicies:\n  - name: allow-prometheus-scrape"));
        let s = Settings::from_yaml(&format!("baseline:\n{example}")).unwrap();
        assert_eq!(s.extra_baseline.len(), 1);
        assert_eq!(
            s.extra_baseline[0].name,
            "netpol-guard-allow-prometheus-scrape"
        );
        assert!(s.warnings().is_empty(), "{:?}", s.warnings());
        assert!(DEFAULT_CONFIG_YAML.contains("\n  extraPolicies: []\n"));
    }

    #[test]
    fn empty_config_is_the_defaults() {
        assert_eq!(Settings::from_yaml("").unwrap().config, Config::default());
        assert_eq!(Settings::from_yaml("{}").unwrap().config, Config::default());
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name_and_line() {
        let e = Settings::from_yaml("directions: any\nmanagedNamespace:\n  exclude: []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `managedNamespace`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn unknown_rule_id_is_rejected() {
        let e = Settings::from_yaml("rules:\n  require-netpol: warn\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `require-netpol`"), "{e}");
        assert!(
            e.contains("require-network-policy"),
            "lists the valid ids: {e}"
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        let e = Settings::from_yaml("rules:\n  world-cidr: block\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `block`"), "{e}");
        let e = Settings::from_yaml("directions: sideways\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sideways"), "{e}");
        let e = Settings::from_yaml("allowedCidrs: [10.0.0.0/40]\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("allowedCidrs") && e.contains("10.0.0.0/40"),
            "{e}"
        );
        let e = Settings::from_yaml("cidrLimits:\n  ipv4MinPrefix: 40\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cidrLimits.ipv4MinPrefix"), "{e}");
        let e = Settings::from_yaml(
            "managedNamespaces:\n  selector:\n    matchExpressions: [{key: a, operator: In}]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("managedNamespaces.selector"), "{e}");
    }

    #[test]
    fn cluster_cidrs_parse_and_a_bad_one_is_named() {
        let s = Settings::from_yaml(
            "clusterCidrs: [10.244.0.0/16, 10.96.0.0/12, 'fd00:10:244::/56']\n",
        )
        .unwrap();
        assert_eq!(
            s.cluster_cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["10.244.0.0/16", "10.96.0.0/12", "fd00:10:244::/56"]
        );
        assert!(Settings::default().cluster_cidrs.is_empty());
        for (bad, why) in [
            ("10.244.0.0/33", "prefix length too long"),
            ("10.244.0.0", "missing /prefix"),
            ("pods", "missing /prefix"),
        ] {
            let e = Settings::from_yaml(&format!("clusterCidrs: [10.96.0.0/12, '{bad}']\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!(
                    "invalid config: clusterCidrs: \"{bad}\" is not a CIDR block"
                )),
                "{e}"
            );
            assert!(e.contains(why), "{e}");
        }
        let e = Settings::from_yaml("clusterCidrs: 10.244.0.0/16\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("clusterCidrs"), "{e}");
    }

    #[test]
    fn a_label_exemption_is_warned_about() {
        assert!(Settings::default().warnings().is_empty());
        let s = Settings::from_yaml(
            "exemptions:\n  workloadLabels:\n  - matchLabels: {tier: system}\n",
        )
        .unwrap();
        assert_eq!(s.warnings().len(), 1);
        assert!(
            s.warnings()[0]
                .starts_with("exemptions.workloadLabels exempts workloads by pod labels")
        );
        let s = Settings::from_yaml(
            "exemptions:\n  workloads:\n  - {namespace: monitoring, kind: DaemonSet, name: node-exporter}\n",
        )
        .unwrap();
        assert!(s.warnings().is_empty());
    }

    #[test]
    fn mode_exemptions_and_baseline_parse_and_validate() {
        let s = Settings::from_yaml(
            "mode: audit\nexemptions:\n  namespaces: [ci]\n  users: [bot]\n  groups: [admins]\n  workloadLabels:\n  - matchLabels: {netpol-guard.io/exempt: \"true\"}\nbaseline:\n  nodeLocalDnsCidr: 169.254.20.10/32\n  onUnmanage: keep\n",
        )
        .unwrap();
        assert_eq!(s.config.mode, Mode::Audit);
        assert_eq!(s.config.baseline.on_unmanage, OnUnmanage::Keep);
        assert_eq!(s.exempt_workloads.len(), 1);
        let e = Settings::from_yaml("mode: dry\n").unwrap_err().to_string();
        assert!(e.contains("unknown variant `dry`"), "{e}");
        let e = Settings::from_yaml("baseline:\n  nodeLocalDnsCidr: 169.254.20.10\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("baseline.nodeLocalDnsCidr"), "{e}");
        let e = Settings::from_yaml("baseline:\n  dnsPorts: [{protocol: ICMP, port: 53}]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("baseline.dnsPorts"), "{e}");
        let e = Settings::from_yaml("exemptions:\n  users: bot\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exemptions.users") || e.contains("invalid type"),
            "{e}"
        );
        let e = Settings::from_yaml("liveReadTimeoutMillis: 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("liveReadTimeoutMillis"), "{e}");
        let e = Settings::from_yaml("liveReadReuseMillis: 10001\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("liveReadReuseMillis") && e.contains("0..=10000"),
            "{e}"
        );
        let s = Settings::from_yaml("liveReadReuseMillis: 0\n").unwrap();
        assert_eq!(s.config.live_read_reuse_millis, 0);
    }

    #[test]
    fn controller_kinds_parse_and_validate() {
        let s = Settings::from_yaml(
            "controllerKinds:\n- {apiVersion: kubevirt.io/v1, kind: VirtualMachineInstance}\n- {apiVersion: core.strimzi.io/v1beta2, kind: StrimziPodSet}\n",
        )
        .unwrap();
        assert_eq!(
            s.config.controller_kinds,
            [
                ControllerKind {
                    api_version: "kubevirt.io/v1".into(),
                    kind: "VirtualMachineInstance".into()
                },
                ControllerKind {
                    api_version: "core.strimzi.io/v1beta2".into(),
                    kind: "StrimziPodSet".into()
                }
            ]
        );
        for (yaml, want) in [
            (
                "controllerKinds: [{apiVersion: kubevirt.io/, kind: VirtualMachineInstance}]",
                "invalid config: controllerKinds: apiVersion \"kubevirt.io/\" is not group/version",
            ),
            (
                "controllerKinds: [{apiVersion: a/b/v1, kind: X}]",
                "apiVersion \"a/b/v1\" is not group/version",
            ),
            (
                "controllerKinds: [{apiVersion: example.com/v1, kind: \"\"}]",
                "example.com/v1: kind \"\" is not a kind name",
            ),
            (
                "controllerKinds: [{apiVersion: apps/v1, kind: Deployment}]",
                "apps/v1 Deployment is a workload kind netpol-guard judges itself",
            ),
            (
                "controllerKinds: [{apiVersion: batch/v1, kind: Job}]",
                "batch/v1 Job is a workload kind netpol-guard judges itself",
            ),
            ("controllerKinds: [{kind: X}]", "missing field `apiVersion`"),
            (
                "controllerKinds: [{apiVersion: example.com/v1, kind: X, username: bot}]",
                "unknown field `username`",
            ),
        ] {
            let e = Settings::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn rule_overrides_apply_and_others_keep_defaults() {
        let s = Settings::from_yaml(
            "rules:\n  require-network-policy: warn\n  or-selector-slip: off\n",
        )
        .unwrap();
        assert_eq!(s.action(RuleId::RequireNetworkPolicy), Action::Warn);
        assert_eq!(s.action(RuleId::OrSelectorSlip), Action::Off);
        assert_eq!(s.action(RuleId::WorldCidr), Action::Deny);
    }
}
