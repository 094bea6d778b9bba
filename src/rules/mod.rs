//! The rule catalog. Every rule has a stable id (public interface: config keys,
//! messages, docs and reports use it), a default action, and lives in one
//! module: `coverage` for workloads, `netpol` for NetworkPolicy, `cilium` for
//! the Cilium kinds, `selects_nothing` for policies that select no workload
//! (`check` and `audit` only).

pub mod cilium;
pub mod coverage;
pub mod netpol;
pub mod selects_nothing;

pub use crate::vocab::{Action, RuleId};

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
