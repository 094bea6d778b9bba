//! Audit results as PolicyReports: the results of an `audit::AuditReport`
//! (its findings, mapped in `policyreport`, and the covered workloads),
//! `audit --write-reports`, and the background audit in
//! `serve` that keeps the reports current (leader only, every
//! `policyReports.intervalSeconds`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kube::Client;

use crate::cluster::inventory::{self, Scope};
use crate::cni;
use crate::config::store::SettingsStore;
use crate::generate::leader::Leadership;
use crate::metrics::Metrics;
use crate::report::audit::{self, AuditReport, NamespaceStatus};
use crate::report::policyreport::{
    self, CATEGORY_WORKLOADS, Outcome, ReportEntry, ReportError, ResourceRef, WriteOutcome,
};
use crate::rules::RuleId;

/// What the background audit reads (the settings in force) and counts with.
pub struct Shared {
    pub settings: SettingsStore,
    pub metrics: Arc<Metrics>,
}

/// The report results of an audit: every finding (`fail` for what would be
/// denied, `warn` for warnings, including audit-mode namespaces' would-be
/// denials), a `pass` of `require-network-policy` for every covered
/// workload of a managed namespace, so dashboards show coverage and not
/// only failures, and a `pass` of `cni-not-enforcing` for each network
/// plugin that enforces NetworkPolicy. The cluster findings and the
/// network plugin's results go to the ClusterPolicyReport. An unknown
/// network plugin gets no result.
pub fn entries(report: &AuditReport) -> Vec<ReportEntry> {
    let mut out: Vec<ReportEntry> = report
        .namespaces
        .iter()
        .flat_map(|n| &n.findings)
        .map(ReportEntry::from)
        .collect();
    out.extend(report.cluster_findings.iter().map(|f| ReportEntry {
        cluster: true,
        ..ReportEntry::from(f)
    }));
    if let Some(v) = report
        .network_plugin
        .as_ref()
        .filter(|v| v.state == cni::State::Enforcing)
    {
        out.extend(v.enforcers().map(|p| {
            let mut message = format!(
                "{}: {} enforces NetworkPolicy.",
                RuleId::CniNotEnforcing,
                p.display()
            );
            if let Some(why) = &v.mode_not_verified {
                message.push_str(&format!(" Mode not verified: {why}."));
            }
            ReportEntry {
                resource: ResourceRef {
                    api_version: "apps/v1".into(),
                    kind: "DaemonSet".into(),
                    namespace: Some(p.namespace.clone()),
                    name: p.daemon_set.clone(),
                    uid: p.uid.clone(),
                },
                rule: RuleId::CniNotEnforcing.as_str().to_string(),
                outcome: Outcome::Pass,
                severity: policyreport::Severity::High,
                message,
                category: policyreport::category(RuleId::CniNotEnforcing).to_string(),
                cluster: true,
            }
        }));
    }
    for ns in &report.namespaces {
        if ns.status != NamespaceStatus::Managed {
            continue;
        }
        out.extend(ns.covered.iter().map(|w| ReportEntry {
            resource: ResourceRef::of(w),
            rule: RuleId::RequireNetworkPolicy.as_str().to_string(),
            outcome: Outcome::Pass,
            severity: policyreport::Severity::High,
            message: format!(
                "require-network-policy: {} {}/{} is covered: a policy selects its pods and allows their traffic.",
                w.kind, ns.name, w.name
            ),
            category: CATEGORY_WORKLOADS.to_string(),
            cluster: false,
        }));
    }
    out
}

/// The reports of an audit, built at `now` (seconds since the epoch). Every
/// namespace that is judged gets one; excluded namespaces do not (nothing
/// there is judged), nor namespaces being deleted (the API server refuses
/// new objects there). The ClusterPolicyReport only for a whole-cluster
/// audit.
pub fn build(report: &AuditReport, whole_cluster: bool, now: i64) -> Vec<serde_json::Value> {
    let skipped: std::collections::HashSet<&str> = report
        .namespaces
        .iter()
        .filter(|n| n.status == NamespaceStatus::Excluded || n.terminating)
        .map(|n| n.name.as_str())
        .collect();
    let skip = |name: &str| skipped.contains(name);
    let namespaces: Vec<String> = report
        .namespaces
        .iter()
        .filter(|n| !skip(&n.name))
        .map(|n| n.name.clone())
        .collect();
    let entries: Vec<ReportEntry> = entries(report)
        .into_iter()
        .filter(|e| e.cluster || !e.resource.namespace.as_deref().is_some_and(skip))
        .collect();
    let mut reports = policyreport::build(&entries, &namespaces, now);
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

/// How often the loop looks at the config between rounds: an interval
/// change (or turning the audit on) applies within this, without a restart.
const RECHECK: Duration = Duration::from_secs(30);

/// The background audit of `serve`: while this replica leads, audits the
/// whole cluster every `policyReports.intervalSeconds` and writes the
/// reports. The interval is read again every `RECHECK`, rounds are at least
/// an interval apart even if leadership flaps, a round stops as soon as
/// leadership is lost (a follower never writes), and the judging runs on the
/// blocking pool so admission requests and Lease renewals are never stalled
/// behind it. Without the CRDs it logs one line and keeps checking (one
/// discovery request a round), so installing them later is enough.
pub fn spawn(client: Client, state: Shared, leadership: Leadership) {
    let state = Arc::new(state);
    tokio::spawn(async move {
        let mut leading = leadership.changes();
        let mut said_absent = false;
        let mut last_round: Option<Instant> = None;
        loop {
            if !leadership.is_leader() {
                if leading.changed().await.is_err() {
                    return; // the election stopped: so does the audit
                }
                continue;
            }
            let interval = state.settings.get().config.policy_reports.interval_seconds;
            let due = interval != 0
                && last_round.is_none_or(|t| t.elapsed() >= Duration::from_secs(interval));
            if !due {
                let wait = match (interval, last_round) {
                    (0, _) | (_, None) => RECHECK,
                    (i, Some(t)) => Duration::from_secs(i)
                        .saturating_sub(t.elapsed())
                        .min(RECHECK),
                };
                leading.borrow_and_update();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    Ok(()) = leading.changed() => {}
                }
                continue;
            }
            last_round = Some(Instant::now());
            let started = Instant::now();
            // Cancelled (dropped mid-way) when leadership is lost.
            leading.borrow_and_update();
            let outcome = tokio::select! {
                outcome = run_once(&client, &state, &leadership) => outcome,
                Ok(()) = leading.changed() => Ok(None),
            };
            match outcome.transpose() {
                Some(outcome) => record(&state, outcome, started, &mut said_absent),
                None => tracing::info!("background audit stopped: leadership lost"),
            }
        }
    });
}

fn record(
    state: &Shared,
    outcome: Result<WriteOutcome, RoundError>,
    started: Instant,
    said_absent: &mut bool,
) {
    let result = match &outcome {
        Ok(WriteOutcome::CrdAbsent) => "crd_absent",
        Ok(WriteOutcome::Written { .. }) => "written",
        Err(_) => "error",
    };
    state.metrics.inc(
        "netpol_guard_policy_report_runs_total",
        &[("result", result)],
    );
    match outcome {
        Ok(WriteOutcome::CrdAbsent) => {
            if !*said_absent {
                tracing::info!(
                    "PolicyReport CRDs (wgpolicyk8s.io/v1alpha2) are not installed: background audit reports skipped until they are (kubectl apply -k manifests/crds)"
                );
                *said_absent = true;
            }
        }
        Ok(WriteOutcome::Written {
            namespaced,
            cluster,
        }) => {
            *said_absent = false;
            tracing::info!(
                namespaced,
                cluster,
                millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "background audit: PolicyReports written"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "background audit failed; retrying next interval");
        }
    }
}

/// Why a background audit round failed.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Inventory(#[from] inventory::InventoryError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("the audit task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// One round: read the cluster, judge it with the current settings (on the
/// blocking pool: it is CPU work proportional to the cluster), and write,
/// unless leadership was lost meanwhile (`None`).
pub async fn run_once(
    client: &Client,
    state: &Arc<Shared>,
    leadership: &Leadership,
) -> Result<Option<WriteOutcome>, RoundError> {
    if !policyreport::installed(client).await? {
        return Ok(Some(WriteOutcome::CrdAbsent));
    }
    let inventory = inventory::fetch(client, &Scope::default(), &mut |_| {}).await?;
    for skipped in &inventory.skipped {
        state.metrics.inc(
            "netpol_guard_list_skipped_total",
            &[("resource", skipped.resource)],
        );
        tracing::warn!(resource = skipped.resource, error = %skipped.reason,
            "background audit: cannot list this kind; it is left out of the reports");
    }
    let objects = inventory.objects;
    let settings = state.settings.get();
    let reports = tokio::task::spawn_blocking(move || {
        build(&audit::audit(&objects, &settings), true, now_seconds())
    })
    .await?;
    if !leadership.is_leader() {
        return Ok(None);
    }
    Ok(Some(policyreport::write(client, &reports).await?))
}
