//! PolicyReports: netpol-guard's audit results in the `wgpolicyk8s.io/v1alpha2`
//! format that Kyverno and Policy Reporter use, so existing dashboards show
//! them.
//!
//! [`build`] is pure: one PolicyReport named `netpol-guard` per audited
//! namespace (an empty one says "audited, nothing found" and replaces stale
//! results) and one ClusterPolicyReport named `netpol-guard` for the
//! cluster-scoped resources. [`write`] applies them (server-side apply) and
//! removes netpol-guard's PolicyReports from namespaces the audit no longer
//! covers. Without the CRDs (`manifests/crds/`) it writes nothing and says so
//! ([`WriteOutcome::CrdAbsent`]), so the caller logs one line.
//!
//! The shape follows the CRD schema shipped in `manifests/crds/`: `result` is
//! one of pass/fail/warn/error/skip, `severity` one of
//! critical/high/medium/low/info, `policy` is required, `timestamp` needs
//! both `seconds` and `nanos`.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    Preconditions,
};
use kube::core::Status;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::baseline::{FIELD_MANAGER, MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::report::model::{self, Finding, ObjectRef};
use crate::vocab::{Action, RuleId};

/// The API group of the reports.
pub const GROUP: &str = "wgpolicyk8s.io";
/// The served version netpol-guard writes.
pub const VERSION: &str = "v1alpha2";
/// `apiVersion` of both report kinds.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// The namespaced report kind.
pub const POLICY_REPORT: &str = "PolicyReport";
/// The cluster-scoped report kind.
pub const CLUSTER_POLICY_REPORT: &str = "ClusterPolicyReport";
/// `metadata.name` of every report netpol-guard writes.
pub const REPORT_NAME: &str = "netpol-guard";
/// `results[].policy`: Policy Reporter groups by policy, rule and source.
pub const POLICY: &str = "netpol-guard";
/// `results[].source`: the engine that wrote the result.
pub const SOURCE: &str = "netpol-guard";
/// `app.kubernetes.io/name` on every report.
const NAME_KEY: &str = "app.kubernetes.io/name";
/// Longest `message` kept (bytes); a longer one is cut at a character
/// boundary and ends with "...". Keeps a namespace with many findings well
/// under the object size limit.
pub const MAX_MESSAGE: usize = 1024;

/// Most results in one report (about 600 bytes each with a 1 KiB message
/// cap, so well under etcd's 1.5 MiB per object).
pub const MAX_RESULTS: usize = 1000;
/// Set on a report whose results were cut to `MAX_RESULTS`.
pub const TRUNCATED_ANNOTATION: &str = "netpol-guard.io/results-left-out";

/// `results[].category` of workload results.
pub const CATEGORY_WORKLOADS: &str = "Workload isolation";
/// `results[].category` of policy results.
pub const CATEGORY_POLICIES: &str = "Policy hygiene";
/// `results[].category` of the network plugin's result (`cni-not-enforcing`).
pub const CATEGORY_ENFORCEMENT: &str = "Policy enforcement";

/// The resource a result is about (an ObjectReference in the report).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    /// `None` (or empty) for a cluster-scoped resource: its result goes to the
    /// ClusterPolicyReport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ResourceRef {
    /// The resource a report object names.
    pub fn of(object: &ObjectRef) -> Self {
        Self {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            namespace: (!object.namespace.is_empty()).then(|| object.namespace.clone()),
            name: object.name.clone(),
            uid: object.uid.clone(),
        }
    }

    /// The namespace, `None` for cluster-scoped (an empty string counts as none).
    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|n| !n.is_empty())
    }
}

/// `results[].result`. The CRD also knows `error` and `skip`, which
/// netpol-guard does not produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Warn,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Warn => "warn",
        }
    }
}

/// `results[].severity`, the CRD's enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// One audit finding (or pass) about one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportEntry {
    pub resource: ResourceRef,
    /// The rule id, e.g. `require-network-policy`.
    pub rule: String,
    pub outcome: Outcome,
    pub severity: Severity,
    pub message: String,
    /// `results[].category`, e.g. `Network Segmentation`.
    pub category: String,
    /// About the cluster as a whole: in the ClusterPolicyReport even when
    /// its resource is namespaced (`cni-not-enforcing` names a DaemonSet).
    #[serde(default)]
    pub cluster: bool,
}

/// The category of a rule's results: workload isolation for
/// `require-network-policy`, policy enforcement for `cni-not-enforcing`,
/// policy hygiene for the rest.
pub fn category(rule: RuleId) -> &'static str {
    match rule {
        RuleId::RequireNetworkPolicy => CATEGORY_WORKLOADS,
        RuleId::CniNotEnforcing => CATEGORY_ENFORCEMENT,
        _ => CATEGORY_POLICIES,
    }
}

/// A finding as a result: `fail` for what would be denied, `warn` for a
/// warning (audit-mode namespaces' would-be denials included); its severity
/// says what it is once enforced.
impl From<&Finding> for ReportEntry {
    fn from(f: &Finding) -> Self {
        ReportEntry {
            resource: ResourceRef::of(&f.object),
            rule: f.rule.as_str().to_string(),
            outcome: match f.action {
                Action::Deny => Outcome::Fail,
                Action::Warn | Action::Off => Outcome::Warn,
            },
            severity: match f.severity {
                model::Severity::High => Severity::High,
                model::Severity::Medium => Severity::Medium,
            },
            message: f.message.clone(),
            category: category(f.rule).to_string(),
            cluster: false,
        }
    }
}

/// Builds the reports for one audit, without I/O.
///
/// - One PolicyReport `netpol-guard` per namespace in `namespaces`, even with
///   no entries (an empty report replaces stale results). An entry in a
///   namespace missing from `namespaces` still gets that namespace's report:
///   nothing is dropped.
/// - One ClusterPolicyReport `netpol-guard` for the entries without a
///   namespace and those marked `cluster`, always (empty when there are
///   none, for the same reason).
///
/// Results are sorted by namespace, kind, name, rule (then apiVersion,
/// message, result), so the same audit gives the same objects. Every result
/// has `policy` and `source` `netpol-guard`, the timestamp `now` (seconds
/// since the epoch) and `scored: true`, except `warn` results, which the CRD
/// defines as the non-scored ones (`summary.warn`: "non-scored policies whose
/// requirements were not met"), as Kyverno writes them. Messages longer than
/// [`MAX_MESSAGE`] bytes are cut.
///
/// The order of the returned reports: the PolicyReports by namespace, then
/// the ClusterPolicyReport.
pub fn build(entries: &[ReportEntry], namespaces: &[String], now: i64) -> Vec<Value> {
    let mut by_ns: BTreeMap<&str, Vec<&ReportEntry>> = namespaces
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| (n.as_str(), Vec::new()))
        .collect();
    let mut cluster: Vec<&ReportEntry> = Vec::new();
    for e in entries {
        match e.resource.ns() {
            Some(ns) if !e.cluster => by_ns.entry(ns).or_default().push(e),
            _ => cluster.push(e),
        }
    }
    let mut out: Vec<Value> = by_ns
        .into_iter()
        .map(|(ns, entries)| report(POLICY_REPORT, Some(ns), entries, now))
        .collect();
    out.push(report(CLUSTER_POLICY_REPORT, None, cluster, now));
    out
}

fn report(kind: &str, namespace: Option<&str>, mut entries: Vec<&ReportEntry>, now: i64) -> Value {
    entries.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    let count = |o: Outcome| entries.iter().filter(|e| e.outcome == o).count();
    let summary = json!({
        "pass": count(Outcome::Pass),
        "fail": count(Outcome::Fail),
        "warn": count(Outcome::Warn),
        "error": 0,
        "skip": 0,
    });
    let mut metadata = json!({
        "name": REPORT_NAME,
        "labels": {MANAGED_BY_KEY: MANAGED_BY_VALUE, NAME_KEY: REPORT_NAME},
    });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    // An object is at most 1.5 MiB in etcd: past MAX_RESULTS, the passes go
    // first, then the warnings; the summary still counts everything and an
    // annotation says what was left out.
    if entries.len() > MAX_RESULTS {
        let left_out = entries.len() - MAX_RESULTS;
        let rank = |o: Outcome| match o {
            Outcome::Fail => 0,
            Outcome::Warn => 1,
            Outcome::Pass => 2,
        };
        let mut kept = entries.clone();
        kept.sort_by_key(|e| rank(e.outcome));
        kept.truncate(MAX_RESULTS);
        kept.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
        entries = kept;
        metadata["annotations"] = json!({TRUNCATED_ANNOTATION: format!(
            "{left_out} results left out (passes first, then warnings) to stay under the object size limit; the summary counts them all; netpol-guard audit lists everything"
        )});
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": metadata,
        "summary": summary,
        // Always present, even empty: applying the report then replaces
        // every earlier result.
        "results": entries.iter().map(|e| result(e, now)).collect::<Vec<_>>(),
    })
}

fn sort_key(e: &ReportEntry) -> (&str, &str, &str, &str, &str, &str, &str) {
    let r = &e.resource;
    (
        r.ns().unwrap_or(""),
        &r.kind,
        &r.name,
        &e.rule,
        &r.api_version,
        &e.message,
        e.outcome.as_str(),
    )
}

fn result(e: &ReportEntry, now: i64) -> Value {
    let r = &e.resource;
    let mut resource = json!({"apiVersion": r.api_version, "kind": r.kind, "name": r.name});
    if let Some(ns) = r.ns() {
        resource["namespace"] = json!(ns);
    }
    if let Some(uid) = r.uid.as_deref().filter(|u| !u.is_empty()) {
        resource["uid"] = json!(uid);
    }
    json!({
        "policy": POLICY,
        "rule": e.rule,
        "result": e.outcome.as_str(),
        "severity": e.severity.as_str(),
        "message": crate::text::truncate_bytes(&e.message, MAX_MESSAGE),
        "category": e.category,
        "source": SOURCE,
        "scored": e.outcome != Outcome::Warn,
        "timestamp": {"seconds": now, "nanos": 0},
        "resources": [resource],
    })
}

/// What [`write`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Reports applied (`namespaced` PolicyReports, `cluster`
    /// ClusterPolicyReports). PolicyReports of namespaces deleted in the
    /// meantime are skipped and not counted.
    Written { namespaced: usize, cluster: usize },
    /// The API server does not serve `wgpolicyk8s.io/v1alpha2` reports (the
    /// CRDs are not installed): nothing was written.
    CrdAbsent,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The API server refused a call. `resource` names the object or API
    /// (e.g. `PolicyReport payments/netpol-guard`), `message` is the API's.
    #[error("cannot {verb} {resource}: {message}")]
    Api {
        verb: &'static str,
        resource: String,
        /// The HTTP status code when the API server answered.
        code: Option<u16>,
        message: String,
        source: Box<kube::Error>,
    },
    /// A value passed to [`write`] is not a report [`build`] makes.
    #[error("not a netpol-guard report: {0}")]
    NotAReport(String),
}

impl ReportError {
    fn api(verb: &'static str, resource: String, source: kube::Error) -> Self {
        let (code, message) = match &source {
            kube::Error::Api(s) => (Some(s.code), s.message.clone()),
            other => (None, other.to_string()),
        };
        ReportError::Api {
            verb,
            resource,
            code,
            message,
            source: Box::new(source),
        }
    }
}

/// A report checked for the fields [`write`] needs.
struct Target<'a> {
    namespace: Option<&'a str>,
    name: &'a str,
    value: &'a Value,
}

impl Target<'_> {
    fn describe(&self) -> String {
        match self.namespace {
            Some(ns) => format!("{POLICY_REPORT} {ns}/{}", self.name),
            None => format!("{CLUSTER_POLICY_REPORT} {}", self.name),
        }
    }
}

fn target(report: &Value) -> Result<Target<'_>, ReportError> {
    let field = |p: &str| report.pointer(p).and_then(Value::as_str);
    let name = field("/metadata/name").filter(|n| !n.is_empty());
    let namespace = field("/metadata/namespace").filter(|n| !n.is_empty());
    let bad = || {
        ReportError::NotAReport(format!(
            "apiVersion {:?}, kind {:?}, namespace {:?}, name {:?}",
            field("/apiVersion"),
            field("/kind"),
            namespace,
            name
        ))
    };
    if field("/apiVersion") != Some(API_VERSION) {
        return Err(bad());
    }
    let name = name.ok_or_else(bad)?;
    match (field("/kind"), namespace) {
        (Some(POLICY_REPORT), Some(ns)) => Ok(Target {
            namespace: Some(ns),
            name,
            value: report,
        }),
        (Some(CLUSTER_POLICY_REPORT), None) => Ok(Target {
            namespace: None,
            name,
            value: report,
        }),
        _ => Err(bad()),
    }
}

fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, kind), plural)
}

/// What a 404 answer means.
#[derive(Debug, PartialEq, Eq)]
enum NotFound {
    /// The namespace does not exist (deleted since the audit).
    Namespace,
    /// Anything else: the resource type is not served.
    Resource,
}

fn classify_404(status: &Status) -> NotFound {
    match &status.details {
        Some(d) if d.kind == "namespaces" && d.group.is_empty() => NotFound::Namespace,
        _ => NotFound::Resource,
    }
}

/// Writes the reports [`build`] made for a full audit: applies each
/// (server-side apply, field manager `netpol-guard`, forced), then deletes
/// netpol-guard's PolicyReports in namespaces that have no report in
/// `reports` (the audit no longer covers them: excluded, or no longer
/// audited). Only PolicyReports named `netpol-guard` **and** labelled
/// `app.kubernetes.io/managed-by=netpol-guard` are ever deleted.
///
/// Pass every report of the audit: a namespace left out loses its report.
/// For an audit of some namespaces only, use [`write_partial`].
///
/// First one discovery request (`GET /apis/wgpolicyk8s.io/v1alpha2`): if the
/// API server does not serve the report kinds, returns
/// `Ok(WriteOutcome::CrdAbsent)` having written nothing (so does a 404 on the
/// first apply: the CRDs went away in between). If only one of the two CRDs
/// is installed, the reports of the other kind are skipped with a warning.
///
/// Errors: a refused apply of one report (invalid, too large, its namespace
/// being deleted, a 5xx: see `only_this_report`) does not stop the others,
/// and the first such error is returned at the end; 401, any other 403, and
/// a failure to reach the API server stop at once. A PolicyReport whose
/// namespace has been deleted is skipped.
pub async fn write(client: &Client, reports: &[Value]) -> Result<WriteOutcome, ReportError> {
    write_inner(client, reports, true).await
}

/// As [`write`], but deletes nothing: for an audit that covered only some
/// namespaces.
pub async fn write_partial(
    client: &Client,
    reports: &[Value],
) -> Result<WriteOutcome, ReportError> {
    write_inner(client, reports, false).await
}

/// Whether the API server serves either report kind (one discovery
/// request): the background audit asks first, so a cluster without the CRDs
/// is not listed every interval for nothing.
pub async fn installed(client: &Client) -> Result<bool, ReportError> {
    match client.list_api_group_resources(API_VERSION).await {
        Ok(list) => Ok(list
            .resources
            .iter()
            .any(|r| r.name == "policyreports" || r.name == "clusterpolicyreports")),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(ReportError::api("discover", API_VERSION.to_string(), e)),
    }
}

async fn write_inner(
    client: &Client,
    reports: &[Value],
    prune: bool,
) -> Result<WriteOutcome, ReportError> {
    // Check every report before the first request.
    let targets = reports.iter().map(target).collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Ok(WriteOutcome::Written {
            namespaced: 0,
            cluster: 0,
        });
    }

    let served = match client.list_api_group_resources(API_VERSION).await {
        Ok(list) => list.resources,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(WriteOutcome::CrdAbsent),
        Err(e) => return Err(ReportError::api("discover", API_VERSION.to_string(), e)),
    };
    let has = |plural: &str| served.iter().any(|r| r.name == plural);
    let (has_namespaced, has_cluster) = (has("policyreports"), has("clusterpolicyreports"));
    let wants_namespaced = targets.iter().any(|t| t.namespace.is_some());
    let wants_cluster = targets.iter().any(|t| t.namespace.is_none());
    if !(wants_namespaced && has_namespaced || wants_cluster && has_cluster) {
        return Ok(WriteOutcome::CrdAbsent);
    }
    for (wants, has, crd) in [
        (
            wants_namespaced,
            has_namespaced,
            "policyreports.wgpolicyk8s.io",
        ),
        (
            wants_cluster,
            has_cluster,
            "clusterpolicyreports.wgpolicyk8s.io",
        ),
    ] {
        if wants && !has {
            tracing::warn!(
                crd,
                "CRD not installed: these reports are not written (install manifests/crds)"
            );
        }
    }

    let namespaced_ar = api_resource(POLICY_REPORT, "policyreports");
    let cluster_ar = api_resource(CLUSTER_POLICY_REPORT, "clusterpolicyreports");
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let (mut namespaced, mut cluster) = (0, 0);
    let mut first_error: Option<ReportError> = None;
    for t in &targets {
        let api: Api<DynamicObject> = match t.namespace {
            Some(_) if !has_namespaced => continue,
            None if !has_cluster => continue,
            Some(ns) => Api::namespaced_with(client.clone(), ns, &namespaced_ar),
            None => Api::all_with(client.clone(), &cluster_ar),
        };
        match api.patch(t.name, &params, &Patch::Apply(t.value)).await {
            Ok(_) if t.namespace.is_some() => namespaced += 1,
            Ok(_) => cluster += 1,
            Err(kube::Error::Api(s))
                if s.code == 404
                    && t.namespace.is_some()
                    && classify_404(&s) == NotFound::Namespace =>
            {
                tracing::debug!(report = %t.describe(), "namespace gone: report skipped");
            }
            // The CRDs were removed since the discovery request.
            Err(kube::Error::Api(s))
                if s.code == 404
                    && namespaced + cluster == 0
                    && first_error.is_none()
                    && classify_404(&s) == NotFound::Resource =>
            {
                return Ok(WriteOutcome::CrdAbsent);
            }
            Err(kube::Error::Api(s)) if only_this_report(&s) => {
                let e = ReportError::api("apply", t.describe(), kube::Error::Api(s));
                tracing::warn!(error = %e, "report not written");
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(ReportError::api("apply", t.describe(), e)),
        }
    }

    if prune && has_namespaced {
        let keep: BTreeSet<&str> = targets.iter().filter_map(|t| t.namespace).collect();
        prune_stale(client, &namespaced_ar, &keep).await?;
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(WriteOutcome::Written {
            namespaced,
            cluster,
        }),
    }
}

/// Whether an API error concerns one report only, so the others are still
/// written: it is invalid or too big (422, 413, or a 500 from the storage
/// size limit), its namespace is being deleted (403 NamespaceTerminating),
/// the server had trouble with it (5xx, 409). Authentication and
/// authorization (401, any other 403) would fail every report: stop.
fn only_this_report(s: &Status) -> bool {
    match s.code {
        401 => false,
        403 => {
            s.details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
                || s.message.contains("because it is being terminated")
        }
        _ => true,
    }
}

/// Deletes netpol-guard's PolicyReports (name and label) outside `keep`.
async fn prune_stale(
    client: &Client,
    ar: &ApiResource,
    keep: &BTreeSet<&str>,
) -> Result<(), ReportError> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), ar);
    let ours = ListParams::default().labels(&format!("{MANAGED_BY_KEY}={MANAGED_BY_VALUE}"));
    let list = all.list(&ours).await.map_err(|e| {
        ReportError::api(
            "list",
            format!("{POLICY_REPORT}s labelled {MANAGED_BY_KEY}={MANAGED_BY_VALUE}"),
            e,
        )
    })?;
    for report in list.items {
        let Some(ns) = report.metadata.namespace.as_deref() else {
            continue;
        };
        let name = report.metadata.name.as_deref().unwrap_or_default();
        let labelled = report
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(MANAGED_BY_KEY))
            .is_some_and(|v| v == MANAGED_BY_VALUE);
        if name != REPORT_NAME || !labelled || keep.contains(ns) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
        // Only the object that was listed, not one recreated since.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: report.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => tracing::info!(namespace = ns, "stale PolicyReport deleted"),
            Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => {}
            Err(e) => {
                return Err(ReportError::api(
                    "delete",
                    format!("{POLICY_REPORT} {ns}/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        ns: Option<&str>,
        kind: &str,
        name: &str,
        rule: &str,
        outcome: Outcome,
    ) -> ReportEntry {
        ReportEntry {
            resource: ResourceRef {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                namespace: ns.map(str::to_string),
                name: name.into(),
                uid: None,
            },
            rule: rule.into(),
            outcome,
            severity: Severity::High,
            message: format!("{kind} {name}: {rule}"),
            category: "Network Segmentation".into(),
            cluster: false,
        }
    }

    #[test]
    fn enums_serialise_as_the_crd_spells_them() {
        for (o, s) in [
            (Outcome::Pass, "pass"),
            (Outcome::Fail, "fail"),
            (Outcome::Warn, "warn"),
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), json!(s));
            assert_eq!(o.as_str(), s);
        }
        for (v, s) in [
            (Severity::Critical, "critical"),
            (Severity::High, "high"),
            (Severity::Medium, "medium"),
            (Severity::Low, "low"),
            (Severity::Info, "info"),
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), json!(s));
            assert_eq!(v.as_str(), s);
        }
    }

    #[test]
    fn every_namespace_gets_a_report_and_the_cluster_report_is_last() {
        let entries = [
            entry(Some("b"), "Deployment", "x", "r", Outcome::Fail),
            entry(
                None,
                "CiliumClusterwideNetworkPolicy",
                "c",
                "r",
                Outcome::Warn,
            ),
            entry(Some("z"), "Deployment", "y", "r", Outcome::Pass),
        ];
        let ns = ["b".to_string(), "a".to_string(), "a".to_string()];
        let reports = build(&entries, &ns, 7);
        let ids: Vec<(String, String)> = reports
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_string(),
                    r["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("PolicyReport".into(), "a".into()),
                ("PolicyReport".into(), "b".into()),
                // not in `namespaces`, still reported
                ("PolicyReport".into(), "z".into()),
                ("ClusterPolicyReport".into(), String::new()),
            ]
        );
        assert_eq!(reports[0]["results"], json!([]));
        assert_eq!(reports[1]["summary"]["fail"], 1);
        assert_eq!(reports[3]["summary"]["warn"], 1);
        assert_eq!(reports[3]["results"][0]["scored"], false);
        assert_eq!(reports[1]["results"][0]["scored"], true);
    }

    #[test]
    fn an_entry_about_the_cluster_goes_to_the_cluster_report_with_its_namespace() {
        let mut ds = entry(
            Some("kube-flannel"),
            "DaemonSet",
            "kube-flannel-ds",
            "cni-not-enforcing",
            Outcome::Fail,
        );
        ds.cluster = true;
        let reports = build(&[ds], &["payments".to_string()], 7);
        assert_eq!(reports.len(), 2, "no PolicyReport for kube-flannel");
        assert_eq!(reports[0]["metadata"]["namespace"], "payments");
        assert_eq!(reports[0]["results"], json!([]));
        assert_eq!(reports[1]["kind"], CLUSTER_POLICY_REPORT);
        assert_eq!(reports[1]["summary"]["fail"], 1);
        assert_eq!(
            reports[1]["results"][0]["resources"],
            json!([{"apiVersion": "apps/v1", "kind": "DaemonSet",
                "namespace": "kube-flannel", "name": "kube-flannel-ds"}])
        );
        assert_eq!(category(RuleId::CniNotEnforcing), CATEGORY_ENFORCEMENT);
        assert_eq!(category(RuleId::RequireNetworkPolicy), CATEGORY_WORKLOADS);
        assert_eq!(category(RuleId::WorldCidr), CATEGORY_POLICIES);
    }

    #[test]
    fn results_are_sorted_whatever_the_input_order() {
        let mut entries = vec![
            entry(Some("a"), "StatefulSet", "s", "r1", Outcome::Fail),
            entry(Some("a"), "Deployment", "b", "r2", Outcome::Fail),
            entry(Some("a"), "Deployment", "b", "r1", Outcome::Pass),
            entry(Some("a"), "Deployment", "a", "r9", Outcome::Warn),
        ];
        let one = build(&entries, &[], 1);
        entries.reverse();
        assert_eq!(build(&entries, &[], 1), one);
        let order: Vec<String> = one[0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}/{}/{}",
                    r["resources"][0]["kind"].as_str().unwrap(),
                    r["resources"][0]["name"].as_str().unwrap(),
                    r["rule"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            order,
            [
                "Deployment/a/r9",
                "Deployment/b/r1",
                "Deployment/b/r2",
                "StatefulSet/s/r1"
            ]
        );
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(crate::text::truncate_bytes("short", 10), "short");
        let long = "é".repeat(MAX_MESSAGE);
        let cut = crate::text::truncate_bytes(&long, MAX_MESSAGE);
        assert!(cut.len() <= MAX_MESSAGE, "{}", cut.len());
        assert!(cut.ends_with("..."));
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn write_accepts_only_reports_build_makes() {
        for r in build(&[entry(Some("a"), "Pod", "p", "r", Outcome::Fail)], &[], 1) {
            target(&r).unwrap();
        }
        for bad in [
            json!({}),
            json!({"apiVersion": API_VERSION, "kind": "PolicyReport", "metadata": {"name": "x"}}),
            json!({"apiVersion": API_VERSION, "kind": "ClusterPolicyReport", "metadata": {"name": "x", "namespace": "a"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "a"}}),
            json!({"apiVersion": API_VERSION, "kind": "PolicyReport", "metadata": {"namespace": "a"}}),
        ] {
            assert!(
                matches!(target(&bad), Err(ReportError::NotAReport(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_404_for_a_missing_namespace_is_not_a_missing_crd() {
        // The Status bodies a real API server sends.
        let status = |v: Value| -> Status { serde_json::from_value(v).unwrap() };
        let missing_ns = status(json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
            "reason": "NotFound", "message": "namespaces \"gone\" not found",
            "details": {"name": "gone", "kind": "namespaces"}
        }));
        assert_eq!(classify_404(&missing_ns), NotFound::Namespace);
        let missing_resource = status(json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
            "reason": "NotFound", "message": "the server could not find the requested resource",
            "details": {}
        }));
        assert_eq!(classify_404(&missing_resource), NotFound::Resource);
        let no_details =
            status(json!({"code": 404, "reason": "NotFound", "message": "404 page not found"}));
        assert_eq!(classify_404(&no_details), NotFound::Resource);
    }

    #[test]
    fn errors_that_concern_one_report_do_not_stop_the_others() {
        let status = |v: Value| -> Status { serde_json::from_value(v).unwrap() };
        // What kube-apiserver answers for a create in a namespace being deleted.
        let terminating = status(json!({"code": 403, "reason": "Forbidden",
            "message": "policyreports.wgpolicyk8s.io \"netpol-guard\" is forbidden: unable to create new content in namespace gone because it is being terminated",
            "details": {"name": "netpol-guard", "group": "wgpolicyk8s.io", "kind": "policyreports",
                "causes": [{"reason": "NamespaceTerminating", "message": "namespace gone is being terminated", "field": "metadata.namespace"}]}}));
        assert!(only_this_report(&terminating));
        let rbac = status(json!({"code": 403, "reason": "Forbidden",
            "message": "policyreports.wgpolicyk8s.io is forbidden: User \"x\" cannot patch resource"}));
        assert!(!only_this_report(&rbac));
        assert!(!only_this_report(&status(
            json!({"code": 401, "reason": "Unauthorized", "message": "Unauthorized"})
        )));
        for code in [409, 413, 422, 500, 503] {
            assert!(
                only_this_report(&status(json!({"code": code, "message": "x"}))),
                "{code}"
            );
        }
    }

    #[test]
    fn a_report_past_max_results_keeps_failures_first_and_says_so() {
        let mut entries = Vec::new();
        for i in 0..MAX_RESULTS {
            entries.push(entry(
                Some("big"),
                "Pod",
                &format!("pass-{i:04}"),
                "require-network-policy",
                Outcome::Pass,
            ));
        }
        for i in 0..10 {
            entries.push(entry(
                Some("big"),
                "Pod",
                &format!("fail-{i}"),
                "require-network-policy",
                Outcome::Fail,
            ));
            entries.push(entry(
                Some("big"),
                "Pod",
                &format!("warn-{i}"),
                "require-network-policy",
                Outcome::Warn,
            ));
        }
        let reports = build(&entries, &["big".to_string()], 1);
        let big = &reports[0];
        let results = big["results"].as_array().unwrap();
        assert_eq!(results.len(), MAX_RESULTS);
        let count = |r: &str| results.iter().filter(|x| x["result"] == r).count();
        assert_eq!(
            (count("fail"), count("warn"), count("pass")),
            (10, 10, MAX_RESULTS - 20)
        );
        // The summary counts everything.
        assert_eq!(
            big["summary"],
            json!({"pass": MAX_RESULTS, "fail": 10, "warn": 10, "error": 0, "skip": 0})
        );
        assert_eq!(
            big["metadata"]["annotations"][TRUNCATED_ANNOTATION],
            "20 results left out (passes first, then warnings) to stay under the object size limit; the summary counts them all; netpol-guard audit lists everything"
        );
        // Still sorted, and a report under the cap has no annotation.
        let names: Vec<&str> = results
            .iter()
            .map(|r| r["resources"][0]["name"].as_str().unwrap())
            .collect();
        assert!(names.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            build(&entries[..5], &[], 1)[0]["metadata"]
                .get("annotations")
                .is_none()
        );
    }
}
