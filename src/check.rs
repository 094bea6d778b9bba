//! `netpol-guard check`: the engine offline, for CI and GitOps. Every object
//! in the given manifests is judged as if it were created now, against a
//! cluster view built from the Namespaces and policies among them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::admission::{AdmissionRequest, GroupVersionKind, Operation, UserInfo};
use crate::cluster::ClusterView;
use crate::config::Settings;
use crate::engine;
use crate::manifests::{self, SourcedObject};
use crate::rules::Action;
use crate::workload::WorkloadKind;

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

    /// Human-readable output.
    pub fn to_text(&self) -> String {
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
                f.action.to_uppercase(),
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
        let Some(req) = as_create_request(obj) else {
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
        match engine::decide(&req, &view, settings) {
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

/// The AdmissionRequest the API server would send for creating `obj`.
fn as_create_request(obj: &Value) -> Option<AdmissionRequest> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(AdmissionRequest {
        uid: String::new(),
        kind: GroupVersionKind {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        },
        sub_resource: None,
        name: obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(String::from),
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(String::from),
        operation: Operation::Create,
        user_info: UserInfo {
            username: "netpol-guard-check".into(),
            groups: vec![],
        },
        object: Some(obj.clone()),
        old_object: None,
        dry_run: Some(true),
    })
}
