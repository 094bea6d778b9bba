//! `netpol-guard check`: the engine offline, for CI and GitOps. Every object
//! in the given manifests is judged as if it were created now, against a
//! cluster view built from the Namespaces and policies among them.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::cluster::manifests::{self, SourcedObject};
use crate::config::Settings;
use crate::report::audit::{self, Auditor, NamespaceAudit};
use crate::report::model::{self, ExitCode, Finding, ObjectRef, SourceLine};
use crate::report::summary::{self, Paint};
use crate::rules::Action;
use crate::workload::WorkloadKind;

/// The user `check` judges as (no exemption by user applies to it).
pub const CHECK_USER: &str = "netpol-guard-check";

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CheckReport {
    /// In input order; each has its `source` (file and line).
    pub findings: Vec<Finding>,
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
    /// 2 when something could not be judged, 1 when something would be
    /// denied, else 0.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::of(&self.errors, &self.findings)
    }

    pub fn denied(&self) -> usize {
        model::count(&self.findings, Action::Deny)
    }

    pub fn warned(&self) -> usize {
        model::count(&self.findings, Action::Warn)
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
            out.push_str(&summary::finding_block(f, paint));
        }
        for e in &self.errors {
            let _ = writeln!(out, "error: {e}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        if !self.namespaces.is_empty() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&audit::table(&self.namespaces, paint));
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

/// Judges already-read objects, each once: the findings by file and line,
/// and the per-namespace audit of the same judgements.
pub fn check_objects(
    objects: &[SourcedObject],
    settings: &Settings,
    default_namespace: &str,
) -> CheckReport {
    let mut report = CheckReport::default();
    let placed: Vec<Value> = objects
        .iter()
        .map(|o| with_namespace(&o.object, default_namespace))
        .collect();
    let mut auditor = Auditor::new(&placed, settings).from_manifests();
    let at = |o: &SourcedObject| SourceLine {
        file: o.file.display().to_string(),
        line: o.line,
    };
    for (i, e) in auditor.view_errors() {
        let s = at(&objects[*i]);
        report.errors.push(format!("{}:{}: {e}", s.file, s.line));
    }
    let mut unknown_namespaces = BTreeSet::new();
    for (o, obj) in objects.iter().zip(&placed) {
        let Some(judged) = auditor.judge(obj, CHECK_USER) else {
            continue;
        };
        report.judged += 1;
        let namespace = judged.namespace;
        if !namespace.is_empty()
            && WorkloadKind::from_group_kind(&judged.group, &judged.kind).is_some()
            && auditor.view().namespace_labels(&namespace).is_none()
        {
            unknown_namespaces.insert(namespace.clone());
        }
        // `check` names an object by its metadata.name as written: empty
        // for one named by generateName (the per-namespace table, as
        // `audit`, shows `generateName*`).
        let name = judged.name.unwrap_or_default();
        match judged.verdict {
            Ok(findings) => {
                report
                    .findings
                    .extend(findings.into_iter().map(|f| Finding {
                        object: ObjectRef {
                            name: name.clone(),
                            ..f.object
                        },
                        source: Some(at(o)),
                        ..f
                    }));
            }
            Err(e) => report.errors.push(format!(
                "{}:{}: {} {namespace}/{name}: {e}",
                o.file.display(),
                o.line,
                judged.kind
            )),
        }
    }
    report.namespaces = auditor.finish().namespaces;
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
    default_namespace_of(&mut obj, default_namespace);
    obj
}

/// Gives a namespaced object without a namespace `default_namespace`, as
/// `kubectl apply` does (`check` and `connectivity`).
pub fn default_namespace_of(obj: &mut Value, default_namespace: &str) {
    if !is_cluster_scoped(obj)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(line: usize, object: Value) -> SourcedObject {
        SourcedObject {
            object,
            file: PathBuf::from("in.yaml"),
            line,
        }
    }

    /// Issue 14: each object is judged once, and the per-namespace table is
    /// built from those judgements. It used to come from a second pass as
    /// `audit`'s user, so a finding that names the user (baseline-protected)
    /// said `netpol-guard-audit` in the table and `netpol-guard-check` in
    /// the list.
    #[test]
    fn the_table_holds_the_findings_the_list_shows() {
        let objects = [
            at(
                1,
                json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "payments", "labels": {"platform.io/managed": "true"}}}),
            ),
            at(
                6,
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                    "metadata": {"name": "netpol-guard-default-deny", "namespace": "payments"},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}),
            ),
            at(
                14,
                json!({"apiVersion": "batch/v1", "kind": "Job",
                    "metadata": {"generateName": "migrate-"},
                    "spec": {"template": {"metadata": {"labels": {"app": "migrate"}},
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}),
            ),
        ];
        let report = check_objects(&objects, &Settings::default(), "payments");
        assert_eq!(report.judged, 3);
        let rules: Vec<_> = report.findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["baseline-protected", "require-network-policy"]);
        assert!(
            report.findings[0]
                .message
                .starts_with("baseline-protected: netpol-guard-check may not create"),
            "{}",
            report.findings[0].message
        );
        // The same findings, without their file and line; `check` names the
        // Job as written (no name), the table as `audit` does.
        let table = &report.namespaces[0].findings;
        assert_eq!(report.namespaces[0].name, "payments");
        assert_eq!(table.len(), 2);
        for listed in &report.findings {
            let tabled = table.iter().find(|f| f.rule == listed.rule).unwrap();
            assert_eq!(tabled.source, None);
            assert_eq!(
                listed.source.as_ref().map(|s| (s.file.as_str(), s.line)),
                Some(("in.yaml", if listed.object.kind == "Job" { 14 } else { 6 }))
            );
            let name = if listed.object.kind == "Job" {
                "migrate-*"
            } else {
                listed.object.name.as_str()
            };
            assert_eq!(
                &Finding {
                    source: None,
                    object: ObjectRef {
                        name: name.to_string(),
                        ..listed.object.clone()
                    },
                    ..listed.clone()
                },
                tabled
            );
        }
        assert_eq!(report.findings[1].object.name, "");
        assert_eq!(report.exit_code(), ExitCode::Denied);
    }
}
