//! Configuration: one YAML document, the same schema from `--config FILE` and
//! (later) the `netpol-guard` ConfigMap. Parsing is strict: an unknown key or a
//! bad value is an error that names the key and the line, because a typo in a
//! security setting must never silently fall back to a default.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;
use crate::rules::{Action, RuleId};
use crate::selector::{LabelSelector, Selector, SelectorError};

/// The documented defaults, printed by `netpol-guard config default`. A test
/// checks that parsing this text gives exactly `Config::default()`.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("default-config.yaml");

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
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
    /// The user netpol-guard itself runs as (may change baseline policies).
    pub service_account: String,
    /// Largest AdmissionReview body accepted; larger ones get HTTP 413.
    pub max_body_bytes: usize,
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
            managed_namespaces: ManagedNamespaces::default(),
            directions: Directions::Any,
            rules: RuleActions::default(),
            allowed_cidrs: vec![],
            cidr_limits: CidrLimits::default(),
            service_account: "system:serviceaccount:netpol-guard:netpol-guard".to_string(),
            max_body_bytes: 4 * 1024 * 1024,
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
}

impl Settings {
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let managed_selector = Selector::compile(&config.managed_namespaces.selector)?;
        let allowed_cidrs = config
            .allowed_cidrs
            .iter()
            .map(|c| c.parse())
            .collect::<Result<Vec<Cidr>, _>>()?;
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
        Ok(Self {
            config,
            managed_selector,
            allowed_cidrs,
        })
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

    /// Excluded namespaces are never managed and never checked.
    pub fn is_excluded(&self, namespace: &str) -> bool {
        self.config
            .managed_namespaces
            .exclude
            .iter()
            .any(|n| n == namespace)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            config: Config::default(),
            managed_selector: Selector::compile(&Config::default().managed_namespaces.selector)
                .unwrap_or_default(),
            allowed_cidrs: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
