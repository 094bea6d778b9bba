//! The report model: what `check` and `audit` found, before anyone renders
//! it. One [`Finding`] type carries a finding of the engine on one object,
//! wherever the object came from (a manifest file or a cluster); `sarif`,
//! `policyreport` and `summary` map it to their formats, and [`ExitCode`] is
//! the verdict both commands end with.
//!
//! It imports nothing from the other report modules, so they can all use it
//! without importing each other.

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::vocab::{Action, RuleId};
use crate::workload;

/// The object a finding (or a coverage result) is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped objects. Not serialised: reports list
    /// objects by namespace, or say it next to them (see [`Finding`]).
    #[serde(skip)]
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ObjectRef {
    /// The reference to `obj`, named as people see it (`generateName*` for
    /// an object the server names).
    pub fn of(obj: &Value) -> Self {
        let text = |p: &str| obj.pointer(p).and_then(Value::as_str).map(String::from);
        Self {
            api_version: text("/apiVersion").unwrap_or_default(),
            kind: text("/kind").unwrap_or_default(),
            namespace: text("/metadata/namespace").unwrap_or_default(),
            name: workload::display_name(obj, None),
            uid: text("/metadata/uid"),
        }
    }
}

/// Where a finding's object was read from: a manifest file (as the user
/// named it) and the 1-based line where the object starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub file: String,
    pub line: usize,
}

/// How serious a finding is: `high` for what the configured rules deny
/// under enforcement, `medium` for what they only warn about (a rule set to
/// `warn`, or its milder variants). In an audit-mode namespace a `high`
/// finding is only a warning, and its severity says what it will be once
/// enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
}

impl Severity {
    /// From the action the finding gets under enforcement.
    pub fn when_enforced(action: Action) -> Self {
        if action == Action::Deny {
            Severity::High
        } else {
            Severity::Medium
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
        }
    }
}

/// One finding of the engine on one object.
///
/// As JSON it takes one of two shapes, by where the object came from: read
/// from a file (`check`), `file`, `line`, `kind`, `namespace`, `name`,
/// `rule`, `action`, `message` and `detail`; read from a cluster (`audit`,
/// and `check`'s per-namespace table), `apiVersion`, `kind`, `name`, `uid`,
/// `namespace`, `rule`, `action`, `severity`, `message` and `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub object: ObjectRef,
    /// The manifest file and line, for an object read from one.
    pub source: Option<SourceLine>,
    pub rule: RuleId,
    /// The effective action: `deny` or `warn`.
    pub action: Action,
    pub severity: Severity,
    /// The one-line message.
    pub message: String,
    /// The longer explanation with a fix, if any.
    pub detail: Option<String>,
}

impl Finding {
    pub fn denied(&self) -> bool {
        self.action == Action::Deny
    }
}

#[derive(Serialize)]
struct InFile<'a> {
    file: &'a str,
    line: usize,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
    rule: &'static str,
    action: String,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InCluster<'a> {
    #[serde(flatten)]
    object: &'a ObjectRef,
    namespace: &'a str,
    rule: &'static str,
    action: String,
    severity: Severity,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl Serialize for Finding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let o = &self.object;
        match &self.source {
            Some(s) => InFile {
                file: &s.file,
                line: s.line,
                kind: &o.kind,
                namespace: &o.namespace,
                name: &o.name,
                rule: self.rule.as_str(),
                action: self.action.to_string(),
                message: &self.message,
                detail: self.detail.as_deref(),
            }
            .serialize(serializer),
            None => InCluster {
                object: o,
                namespace: &o.namespace,
                rule: self.rule.as_str(),
                action: self.action.to_string(),
                severity: self.severity,
                message: &self.message,
                detail: self.detail.as_deref(),
            }
            .serialize(serializer),
        }
    }
}

/// How `check` and `audit` end, for CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Nothing would be denied.
    Clean = 0,
    /// Something would be denied.
    Denied = 1,
    /// Something could not be read or judged (or the report not written).
    Unreadable = 2,
}

impl ExitCode {
    /// 2 when something could not be judged, 1 when something would be
    /// denied, else 0.
    pub fn of<'a>(errors: &[String], findings: impl IntoIterator<Item = &'a Finding>) -> Self {
        if !errors.is_empty() {
            ExitCode::Unreadable
        } else if findings.into_iter().any(Finding::denied) {
            ExitCode::Denied
        } else {
            ExitCode::Clean
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

/// How many of `findings` have `action`.
pub fn count<'a>(findings: impl IntoIterator<Item = &'a Finding>, action: Action) -> usize {
    findings.into_iter().filter(|f| f.action == action).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(source: Option<SourceLine>) -> Finding {
        Finding {
            object: ObjectRef {
                api_version: "networking.k8s.io/v1".into(),
                kind: "NetworkPolicy".into(),
                namespace: "shop".into(),
                name: "open".into(),
                uid: Some("u-1".into()),
            },
            source,
            rule: RuleId::WorldCidr,
            action: Action::Deny,
            severity: Severity::High,
            message: "world-cidr: too wide".into(),
            detail: None,
        }
    }

    #[test]
    fn a_finding_serialises_by_where_its_object_came_from() {
        let in_cluster = finding(None);
        assert_eq!(
            serde_json::to_string(&in_cluster).unwrap(),
            r#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","name":"open","uid":"u-1","namespace":"shop","rule":"world-cidr","action":"deny","severity":"high","message":"world-cidr: too wide"}"#
        );
        let in_file = Finding {
            detail: Some("why".into()),
            ..finding(Some(SourceLine {
                file: "a.yaml".into(),
                line: 3,
            }))
        };
        assert_eq!(
            serde_json::to_value(&in_file).unwrap(),
            json!({"file": "a.yaml", "line": 3, "kind": "NetworkPolicy", "namespace": "shop",
                "name": "open", "rule": "world-cidr", "action": "deny",
                "message": "world-cidr: too wide", "detail": "why"})
        );
        // An object alone leaves its namespace to the report around it.
        assert_eq!(
            serde_json::to_value(&in_cluster.object).unwrap(),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "name": "open", "uid": "u-1"})
        );
    }

    #[test]
    fn exit_codes_put_errors_before_denials() {
        let deny = finding(None);
        let warn = Finding {
            action: Action::Warn,
            ..finding(None)
        };
        assert_eq!(ExitCode::of(&[], []), ExitCode::Clean);
        assert_eq!(ExitCode::of(&[], [&warn]), ExitCode::Clean);
        assert_eq!(ExitCode::of(&[], [&warn, &deny]), ExitCode::Denied);
        assert_eq!(ExitCode::of(&["x".into()], [&deny]), ExitCode::Unreadable);
        assert_eq!(
            [ExitCode::Clean, ExitCode::Denied, ExitCode::Unreadable].map(ExitCode::code),
            [0, 1, 2]
        );
        assert_eq!(count([&warn, &deny, &deny], Action::Deny), 2);
    }
}
