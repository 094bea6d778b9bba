//! `netpol-guard check`: the engine offline, for CI and GitOps. Every object
//! in the given manifests is judged as if it were created now, against a
//! cluster view built from the Namespaces and policies among them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::admission;
use crate::cluster::ClusterView;
use crate::cluster::manifests::{self, SourcedObject};
use crate::config::Settings;
use crate::engine;
use crate::report::audit::{self, AuditReport, NamespaceAudit};
use crate::report::summary::{self, Paint};
use crate::rules::Action;
use crate::workload::WorkloadKind;

/// The user `check` judges as (no exemption by user applies to it).
pub const CHECK_USER: &str = "netpol-guard-check";

/// Exit codes, for CI.
pub const EXIT_CLEAN: i32 = 0;
pub const EXIT_DENIED: i32 = 1;
pub const EXIT_UNREADABLE: i32 = 2;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CheckFinding {
    pub file: String,
    pub line: usize,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub rule: String,
    pub action: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CheckReport {
    pub findings: Vec<CheckFinding>,
    /// Objects that could not be judged (exit code 2).
    pub errors: Vec<String>,
    /// Things the reader should know, e.g. a namespace missing from the input.
    pub notes: Vec<String>,
    pub judged: usize,
    /// Per namespace of the input: policies, covered and uncovered
    /// workloads, findings by severity (what `audit` reports for a cluster).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<NamespaceAudit>,
}

impl CheckReport {
    pub fn exit_code(&self) -> i32 {
        if !self.errors.is_empty() {
            EXIT_UNREADABLE
        } else if self.findings.iter().any(|f| f.action == "deny") {
            EXIT_DENIED
        } else {
            EXIT_CLEAN
        }
    }

    pub fn denied(&self) -> usize {
        self.findings.iter().filter(|f| f.action == "deny").count()
    }

    pub fn warned(&self) -> usize {
        self.findings.iter().filter(|f| f.action == "warn").count()
    }

    /// Human-readable output, without colour.
    pub fn to_text(&self) -> String {
        self.to_text_painted(Paint::NEVER)
    }

    /// Human-readable output: the findings by file and line, the
    /// per-namespace table, and a summary line.
    pub fn to_text_painted(&self, paint: Paint) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let _ = writeln!(
                out,
                "{}:{}: {} {}/{}: {} {}",
                f.file,
                f.line,
                f.kind,
                f.namespace,
                f.name,
                summary::action_label(paint, &f.action),
                f.rule
            );
            let _ = writeln!(out, "  {}", f.message);
            if let Some(d) = &f.detail {
                for line in d.lines() {
                    let _ = writeln!(out, "  {line}");
                }
            }
        }
        for e in &self.errors {
            let _ = writeln!(out, "error: {e}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        if !self.namespaces.is_empty() {
            let table = AuditReport {
                namespaces: self.namespaces.clone(),
                ..AuditReport::default()
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&audit::table(&table, paint));
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "{} objects judged: {} denied, {} warned, {} errors",
            self.judged,
            self.denied(),
            self.warned(),
            self.errors.len()
        );
        out
    }
}

/// Reads the manifests and judges them. `Err` is unreadable input (exit 2).
pub fn check_paths(
    paths: &[PathBuf],
    settings: &Settings,
    default_namespace: &str,
) -> Result<CheckReport, String> {
    let objects = manifests::load_paths(paths).map_err(|e| e.to_string())?;
    Ok(check_objects(&objects, settings, default_namespace))
}

/// Judges already-read objects.
pub fn check_objects(
    objects: &[SourcedObject],
    settings: &Settings,
    default_namespace: &str,
) -> CheckReport {
    let mut report = CheckReport::default();
    let mut view = ClusterView::new();
    let placed: Vec<Value> = objects
        .iter()
        .map(|o| with_namespace(&o.object, default_namespace))
        .collect();
    for (o, obj) in objects.iter().zip(&placed) {
        if let Err(e) = view.add(obj) {
            report
                .errors
                .push(format!("{}:{}: {e}", o.file.display(), o.line));
        }
    }
    let mut unknown_namespaces = BTreeSet::new();
    for (o, obj) in objects.iter().zip(&placed) {
        let Some(req) = admission::create_request(obj, CHECK_USER) else {
            continue;
        };
        report.judged += 1;
        let namespace = req.namespace.clone().unwrap_or_default();
        if !namespace.is_empty()
            && WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind).is_some()
            && view.namespace_labels(&namespace).is_none()
        {
            unknown_namespaces.insert(namespace.clone());
        }
        let name = req.name.clone().unwrap_or_default();
        match engine::decide_existing(&req, &view, settings) {
            Ok(verdict) => {
                for (f, action) in verdict.findings {
                    report.findings.push(CheckFinding {
                        file: o.file.display().to_string(),
                        line: o.line,
                        kind: req.kind.kind.clone(),
                        namespace: namespace.clone(),
                        name: name.clone(),
                        rule: f.rule.as_str().to_string(),
                        action: match action {
                            Action::Deny => "deny",
                            Action::Warn => "warn",
                            Action::Off => "off",
                        }
                        .to_string(),
                        message: f.message,
                        detail: f.detail,
                    });
                }
            }
            Err(e) => report.errors.push(format!(
                "{}:{}: {} {namespace}/{name}: {e}",
                o.file.display(),
                o.line,
                req.kind.kind
            )),
        }
    }
    // The same objects through `audit`: the per-namespace picture.
    report.namespaces = audit::audit(&placed, settings).namespaces;
    for ns in unknown_namespaces {
        report.notes.push(format!(
            "namespace {ns} is not among the inputs, so it was treated as unmanaged; add its Namespace manifest to judge its workloads"
        ));
    }
    report
}

fn is_cluster_scoped(obj: &Value) -> bool {
    matches!(
        obj.get("kind").and_then(Value::as_str),
        Some(
            "Namespace"
                | "CiliumClusterwideNetworkPolicy"
                | "ClusterRole"
                | "ClusterRoleBinding"
                | "CustomResourceDefinition"
                | "ValidatingWebhookConfiguration"
                | "MutatingWebhookConfiguration"
                | "PersistentVolume"
                | "StorageClass"
                | "PriorityClass"
                | "Node"
        )
    )
}

/// Objects without a namespace land in the default one, as `kubectl apply` does.
fn with_namespace(obj: &Value, default_namespace: &str) -> Value {
    let mut obj = obj.clone();
    if !is_cluster_scoped(&obj)
        && obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_none()
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert(
            "namespace".into(),
            Value::String(default_namespace.to_string()),
        );
    }
    obj
}
