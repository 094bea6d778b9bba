//! Audit results as PolicyReports: the mapping from an `audit::AuditReport`
//! to report results, `audit --write-reports`, and the background audit in
//! `serve` that keeps the reports current (leader only, every
//! `policyReports.intervalSeconds`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube::Client;

use crate::audit::{self, AuditReport, NamespaceStatus, ObjectFinding, ObjectRef};
use crate::inventory::{self, Scope};
use crate::leader::Leadership;
use crate::policyreport::{self, Outcome, ReportEntry, ReportError, ResourceRef, WriteOutcome};
use crate::rules::RuleId;
use crate::server::AppState;

/// `results[].category` of workload results.
pub const CATEGORY_WORKLOADS: &str = "Workload isolation";
/// `results[].category` of policy results.
pub const CATEGORY_POLICIES: &str = "Policy hygiene";

fn resource(object: &ObjectRef, namespace: &str) -> ResourceRef {
    ResourceRef {
        api_version: object.api_version.clone(),
        kind: object.kind.clone(),
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        name: object.name.clone(),
        uid: object.uid.clone(),
    }
}

fn entry(f: &ObjectFinding) -> ReportEntry {
    ReportEntry {
        resource: resource(&f.object, &f.namespace),
        rule: f.rule.clone(),
        outcome: if f.action == "deny" {
            Outcome::Fail
        } else {
            Outcome::Warn
        },
        severity: match f.severity {
            audit::Severity::High => policyreport::Severity::High,
            audit::Severity::Medium => policyreport::Severity::Medium,
        },
        message: f.message.clone(),
        category: category(&f.rule).to_string(),
    }
}

fn category(rule: &str) -> &'static str {
    if rule == RuleId::RequireNetworkPolicy.as_str() {
        CATEGORY_WORKLOADS
    } else {
        CATEGORY_POLICIES
    }
}

/// The report results of an audit: every finding (`fail` for what would be
/// denied, `warn` for warnings, including audit-mode namespaces' would-be
/// denials), and a `pass` of `require-network-policy` for every covered
/// workload of a managed namespace, so dashboards show coverage and not
/// only failures.
pub fn entries(report: &AuditReport) -> Vec<ReportEntry> {
    let mut out: Vec<ReportEntry> = report.findings().map(entry).collect();
    for ns in &report.namespaces {
        if ns.status != NamespaceStatus::Managed {
            continue;
        }
        out.extend(ns.covered.iter().map(|w| ReportEntry {
            resource: resource(w, &ns.name),
            rule: RuleId::RequireNetworkPolicy.as_str().to_string(),
            outcome: Outcome::Pass,
            severity: policyreport::Severity::High,
            message: format!(
                "require-network-policy: {} {}/{} is covered: a policy selects its pods and allows their traffic.",
                w.kind, ns.name, w.name
            ),
            category: CATEGORY_WORKLOADS.to_string(),
        }));
    }
    out
}

/// The reports of an audit, built at `now` (seconds since the epoch). Every
/// namespace that is judged gets one (excluded namespaces do not: nothing
/// there is judged); the ClusterPolicyReport only for a whole-cluster audit.
pub fn build(report: &AuditReport, whole_cluster: bool, now: i64) -> Vec<serde_json::Value> {
    let namespaces: Vec<String> = report
        .namespaces
        .iter()
        .filter(|n| n.status != NamespaceStatus::Excluded)
        .map(|n| n.name.clone())
        .collect();
    let mut reports = policyreport::build(&entries(report), &namespaces, now);
    if !whole_cluster {
        reports.retain(|r| {
            r.get("kind").and_then(serde_json::Value::as_str)
                != Some(policyreport::CLUSTER_POLICY_REPORT)
        });
    }
    reports
}

/// Writes an audit's reports. A whole-cluster audit also removes
/// netpol-guard's reports from namespaces it no longer judges; a scoped one
/// touches only its namespaces.
pub async fn write(
    client: &Client,
    report: &AuditReport,
    whole_cluster: bool,
    now: i64,
) -> Result<WriteOutcome, ReportError> {
    let reports = build(report, whole_cluster, now);
    if whole_cluster {
        policyreport::write(client, &reports).await
    } else {
        policyreport::write_partial(client, &reports).await
    }
}

/// One line about what `write` did.
pub fn describe(outcome: &WriteOutcome) -> String {
    match outcome {
        WriteOutcome::Written { namespaced, cluster } => format!(
            "PolicyReports written: {namespaced} PolicyReport(s), {cluster} ClusterPolicyReport(s) (kubectl get policyreports -A)"
        ),
        WriteOutcome::CrdAbsent => "PolicyReport CRDs (wgpolicyk8s.io/v1alpha2) are not installed: no reports written (kubectl apply -k manifests/crds)".to_string(),
    }
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How long to wait when the background audit is off, before looking at
/// the config again.
const OFF_RECHECK: Duration = Duration::from_secs(30);

/// The background audit of `serve`: while this replica leads, audits the
/// whole cluster every `policyReports.intervalSeconds` (read at each round,
/// so a config change applies without a restart) and writes the reports.
/// Without the CRDs it logs one line and keeps checking each interval, so
/// installing them later is enough.
pub fn spawn(client: Client, state: Arc<AppState>, leadership: Leadership) {
    tokio::spawn(async move {
        let mut leading = leadership.changes();
        let mut said_absent = false;
        loop {
            if !leadership.is_leader() {
                if leading.changed().await.is_err() {
                    return; // the election stopped: so does the audit
                }
                continue;
            }
            let interval = state.settings().config.policy_reports.interval_seconds;
            if interval == 0 {
                tokio::time::sleep(OFF_RECHECK).await;
                continue;
            }
            let started = Instant::now();
            match run_once(&client, &state).await {
                Ok(WriteOutcome::CrdAbsent) => {
                    state.metrics.inc(
                        "netpol_guard_policy_report_runs_total",
                        &[("result", "crd_absent")],
                    );
                    if !said_absent {
                        tracing::info!(
                            "PolicyReport CRDs (wgpolicyk8s.io/v1alpha2) are not installed: background audit reports skipped until they are (kubectl apply -k manifests/crds)"
                        );
                        said_absent = true;
                    }
                }
                Ok(WriteOutcome::Written {
                    namespaced,
                    cluster,
                }) => {
                    said_absent = false;
                    state.metrics.inc(
                        "netpol_guard_policy_report_runs_total",
                        &[("result", "written")],
                    );
                    tracing::info!(
                        namespaced,
                        cluster,
                        millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                        "background audit: PolicyReports written"
                    );
                }
                Err(e) => {
                    state.metrics.inc(
                        "netpol_guard_policy_report_runs_total",
                        &[("result", "error")],
                    );
                    tracing::warn!(error = %e, "background audit failed; retrying next interval");
                }
            }
            // Wake early if leadership is lost: a follower must not write.
            // (A closed channel disables that branch: `Leadership::always`.)
            leading.borrow_and_update();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(interval)) => {}
                Ok(()) = leading.changed() => {}
            }
        }
    });
}

/// Why a background audit round failed.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Inventory(#[from] inventory::InventoryError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// One round: read the cluster, judge it with the current settings, write.
pub async fn run_once(client: &Client, state: &AppState) -> Result<WriteOutcome, RoundError> {
    if !policyreport::installed(client).await? {
        return Ok(WriteOutcome::CrdAbsent);
    }
    let objects = inventory::fetch(client, &Scope::default(), &mut |_| {}).await?;
    let report = audit::audit(&objects, &state.settings());
    Ok(write(client, &report, true, now_seconds()).await?)
}
