//! `netpol-guard audit`: what enforcement would do to a cluster, before it is
//! enforced. Seeds 000, 002 and 003 all start there: which namespaces have no
//! NetworkPolicy, which workloads nothing covers, which policies are wide open.
//!
//! Pure: objects in (read from the API server by `inventory`, or from
//! manifests by `check`), a report out. Every finding comes from one
//! [`Auditor::judge`] per object, which `check` calls too (and lists the
//! findings by file and line), so the two commands cannot disagree about an
//! object.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::admission;
use crate::baseline;
use crate::cluster::{ClusterView, PolicyKind};
use crate::cni;
use crate::config::{Mode, Settings};
use crate::engine::{self, DecideError};
use crate::report::model::{self, ExitCode, Finding, ObjectRef, Severity};
use crate::report::summary::{self, Cell, Paint, Tone};
use crate::rules::{Action, RuleId, coverage};
use crate::selector::Labels;
use crate::workload::{self, WorkloadKind};

/// The user `audit` judges as: no exemption by user applies to it.
pub const AUDIT_USER: &str = "netpol-guard-audit";

/// Whether netpol-guard judges a namespace, and why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceStatus {
    /// Labels match `managedNamespaces.selector`: workloads need a policy.
    Managed,
    /// Policies are judged, workloads are not required to be covered.
    Unmanaged,
    /// Listed in `exemptions.namespaces`: nothing there is judged.
    Exempt,
    /// Listed in `managedNamespaces.exclude`: never judged, never managed.
    Excluded,
    /// Objects name it but no Namespace object was given (offline input).
    Unknown,
}

impl NamespaceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "managed",
            Self::Unmanaged => "unmanaged",
            Self::Exempt => "exempt",
            Self::Excluded => "excluded",
            Self::Unknown => "unknown",
        }
    }
}

/// Whether a managed namespace has netpol-guard's baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BaselineState {
    /// Every baseline policy the namespace's mode calls for exists.
    Present,
    /// Some or all are missing (see `missingBaseline`): is the generator
    /// running?
    Missing,
    /// The namespace is not managed, so it has no baseline.
    NotManaged,
    /// Audit mode: no baseline on purpose (any policy that selects pods
    /// would enforce); switching to enforce creates it.
    None,
}

impl BaselineState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Missing => "missing",
            Self::NotManaged => "-",
            Self::None => "none",
        }
    }
}

/// What creating an uncovered workload would get now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCreate {
    /// `require-network-policy` denies it (managed, enforce).
    Denied,
    /// Allowed with a warning (managed namespace in audit mode, or the rule
    /// set to `warn`).
    Warned,
    /// Allowed: the namespace is not managed (or the rule is off), but
    /// default-deny would isolate it once it is.
    Allowed,
}

/// The policy closest to selecting an uncovered workload's pods.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NearestPolicy {
    pub kind: String,
    pub name: String,
    /// The selector requirements the pods do not meet (`app=web`).
    pub unmet: Vec<String>,
}

/// A workload whose pods no policy covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UncoveredWorkload {
    #[serde(flatten)]
    pub object: ObjectRef,
    /// Its pods' labels.
    pub labels: Labels,
    pub on_create: OnCreate,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_policy: Option<NearestPolicy>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkloadCounts {
    /// Workloads judged on their own (a Deployment counts, its ReplicaSets
    /// and Pods do not): covered + uncovered + exempt. One that cannot be
    /// read is in the report's `errors` instead.
    pub total: usize,
    pub covered: usize,
    pub uncovered: usize,
    /// Skipped by `exemptions` (labels or namespace) or an excluded namespace.
    pub exempt: usize,
}

/// Everything the audit found in one namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceAudit {
    pub name: String,
    pub status: NamespaceStatus,
    /// Being deleted (`status.phase: Terminating`): reported, but no
    /// PolicyReport is written there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
    /// The mode in force (label or config), for managed namespaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Policy objects of every kind (NetworkPolicy, CiliumNetworkPolicy).
    pub policies: usize,
    pub baseline: BaselineState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing_baseline: Vec<String>,
    pub workloads: WorkloadCounts,
    pub uncovered: Vec<UncoveredWorkload>,
    /// Covered workloads (for reports' `pass` results).
    pub covered: Vec<ObjectRef>,
    pub findings: Vec<Finding>,
}

impl NamespaceAudit {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            status: NamespaceStatus::Unknown,
            terminating: false,
            mode: None,
            policies: 0,
            baseline: BaselineState::NotManaged,
            missing_baseline: vec![],
            workloads: WorkloadCounts::default(),
            uncovered: vec![],
            covered: vec![],
            findings: vec![],
        }
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    pub namespaces: Vec<NamespaceAudit>,
    /// Findings on cluster-scoped objects (CiliumClusterwideNetworkPolicy),
    /// and about the cluster as a whole (`cni-not-enforcing`, on the
    /// DaemonSet of the plugin that enforces nothing).
    pub cluster_findings: Vec<Finding>,
    /// Objects that could not be judged (exit code 2).
    pub errors: Vec<String>,
    /// The network plugin seen among the DaemonSets, and whether it enforces
    /// NetworkPolicy. `None` when the audit did not read every namespace
    /// (`--namespace`, `--selector`) or judged manifests (`check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_plugin: Option<cni::Verdict>,
}

impl AuditReport {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.namespaces
            .iter()
            .flat_map(|n| &n.findings)
            .chain(&self.cluster_findings)
    }

    /// As for `check`: 2 when something could not be judged, 1 when
    /// something would be denied, else 0.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::of(&self.errors, self.findings())
    }

    /// Namespaces with no policy object at all (excluded ones left out:
    /// they are never judged).
    pub fn without_policies(&self) -> impl Iterator<Item = &NamespaceAudit> {
        self.namespaces
            .iter()
            .filter(|n| n.policies == 0 && n.status != NamespaceStatus::Excluded)
    }
}

fn namespace_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn is_namespace(obj: &Value) -> bool {
    obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && obj.get("kind").and_then(Value::as_str) == Some("Namespace")
}

/// Audits `objects`: Namespaces, policies of every kind, workloads of the
/// eight kinds (other kinds are judged too, and usually get no finding).
/// Namespaced objects must carry `metadata.namespace`. Every namespace that
/// is declared or named by an object gets an entry.
///
/// It also says which network plugin the DaemonSets show and whether it
/// enforces NetworkPolicy (`network_plugin`); when nothing does, a
/// `cni-not-enforcing` finding on the plugin's DaemonSet joins the
/// cluster findings.
pub fn audit(objects: &[Value], settings: &Settings) -> AuditReport {
    let mut auditor = Auditor::new(objects, settings);
    for obj in objects.iter().filter(|o| !is_namespace(o)) {
        auditor.judge(obj, AUDIT_USER);
    }
    let mut report = auditor.finish();
    let verdict = cni::detect(objects);
    if let Some(f) = network_finding(&verdict, settings) {
        report.cluster_findings.push(f);
        report.cluster_findings.sort_by(finding_order);
    }
    report.network_plugin = Some(verdict);
    report
}

/// The `cni-not-enforcing` finding of `verdict` with its configured action
/// (not softened by audit mode: no request is judged), on the DaemonSet of
/// the plugin that enforces nothing.
fn network_finding(verdict: &cni::Verdict, settings: &Settings) -> Option<Finding> {
    let f = verdict.finding()?;
    let p = verdict.culprit()?;
    let action = f.effective(settings.action(f.rule));
    if action == Action::Off {
        return None;
    }
    Some(Finding {
        object: ObjectRef {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            namespace: p.namespace.clone(),
            name: p.daemon_set.clone(),
            uid: p.uid.clone(),
        },
        source: None,
        rule: f.rule,
        action,
        severity: Severity::when_enforced(action),
        message: f.message,
        detail: f.detail,
    })
}

/// One object as the engine judged it.
#[derive(Debug)]
pub struct Judged {
    /// The object's API group and kind, as the request named them.
    pub group: String,
    pub kind: String,
    /// Its `metadata.namespace` (empty for cluster-scoped objects).
    pub namespace: String,
    /// Its `metadata.name` as written (`None` for one named by
    /// `generateName`).
    pub name: Option<String>,
    /// Its findings (the ones the audit recorded), or why it could not be
    /// judged.
    pub verdict: Result<Vec<Finding>, DecideError>,
}

/// An audit under way: the view of every object, the namespaces, and the
/// findings and coverage of the objects judged so far. [`audit`] judges
/// every object but the Namespaces; `check` judges them all and keeps each
/// object's findings too.
pub struct Auditor<'a> {
    settings: &'a Settings,
    /// Where the objects come from (`Auditor::from_manifests`).
    inputs: engine::Inputs,
    view: ClusterView,
    spaces: BTreeMap<String, NamespaceAudit>,
    report: AuditReport,
    /// `ClusterView::add` errors, by the index of the object.
    view_errors: Vec<(usize, String)>,
}

impl<'a> Auditor<'a> {
    /// Builds the view of `objects` and their namespaces' entries (status,
    /// mode, baseline); nothing is judged yet.
    pub fn new(objects: &[Value], settings: &'a Settings) -> Self {
        let mut report = AuditReport::default();
        let mut view = ClusterView::new();
        let mut view_errors = Vec::new();
        for (i, obj) in objects.iter().enumerate() {
            if let Err(e) = view.add(obj) {
                report.errors.push(e.to_string());
                view_errors.push((i, e.to_string()));
            }
        }
        let spaces = namespaces(objects, &view, settings);
        Self {
            settings,
            inputs: engine::Inputs::Cluster,
            view,
            spaces,
            report,
            view_errors,
        }
    }

    /// Judges the objects as manifests, part of a cluster (`check`), rather
    /// than a cluster's objects (`engine::Inputs`).
    pub fn from_manifests(mut self) -> Self {
        self.inputs = engine::Inputs::Manifests;
        self
    }

    /// The view every object is judged against.
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// The objects the view could not take in (they are judged all the
    /// same): their index in `objects` and why.
    pub fn view_errors(&self) -> &[(usize, String)] {
        &self.view_errors
    }

    /// Judges one object of `objects` as `user` creating it now, and records
    /// its findings and, for a workload, its coverage (a Namespace object is
    /// judged, but the audit lists no findings on Namespaces). `None` when
    /// it is no object (no apiVersion or kind).
    pub fn judge(&mut self, obj: &Value, user: &str) -> Option<Judged> {
        let req = admission::create_request(obj, user)?;
        let namespace = req.namespace.clone().unwrap_or_default();
        let object = ObjectRef::of(obj);
        let settings = self.settings;
        let judged = |verdict| Judged {
            group: req.kind.group.clone(),
            kind: req.kind.kind.clone(),
            namespace: namespace.clone(),
            name: req.name.clone(),
            verdict,
        };
        let verdict = match engine::decide_existing_in(&req, &self.view, settings, self.inputs) {
            Ok(v) => v,
            Err(e) => {
                if !is_namespace(obj) {
                    self.report.errors.push(format!(
                        "{} {}/{}: {e}",
                        object.kind, namespace, object.name
                    ));
                }
                return Some(judged(Err(e)));
            }
        };
        let findings: Vec<Finding> = verdict
            .findings
            .iter()
            .map(|(f, action)| Finding {
                object: object.clone(),
                source: None,
                rule: f.rule,
                action: *action,
                severity: Severity::when_enforced(f.effective(settings.action(f.rule))),
                message: f.message.clone(),
                detail: f.detail.clone(),
            })
            .collect();
        if !is_namespace(obj) {
            let rule_action = verdict
                .findings
                .iter()
                .find(|(f, _)| f.rule == RuleId::RequireNetworkPolicy)
                .map(|(_, a)| *a);
            self.record(&req, obj, object, rule_action, findings.clone());
        }
        Some(judged(Ok(findings)))
    }

    /// Records one judged object's findings and, for a workload, its
    /// coverage.
    fn record(
        &mut self,
        req: &admission::AdmissionRequest,
        obj: &Value,
        object: ObjectRef,
        rule_action: Option<Action>,
        findings: Vec<Finding>,
    ) {
        let settings = self.settings;
        let report = &mut self.report;
        let Some(ns) = self.spaces.get_mut(&object.namespace) else {
            report.cluster_findings.extend(findings);
            return;
        };
        if let Some(kind) = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind)
            && !workload::judged_at_owner(kind, obj, &settings.config.controller_kinds)
        {
            let namespace = object.namespace.as_str();
            match coverage_of(kind, obj, &object, ns.status, &self.view, settings) {
                Ok(Coverage::Exempt) => {
                    ns.workloads.exempt += 1;
                    ns.workloads.total += 1;
                }
                Ok(Coverage::Covered) => {
                    ns.covered.push(object.clone());
                    ns.workloads.total += 1;
                }
                Ok(Coverage::Uncovered(labels, nearest)) => {
                    ns.uncovered.push(UncoveredWorkload {
                        object: object.clone(),
                        labels,
                        on_create: match rule_action {
                            Some(Action::Deny) => OnCreate::Denied,
                            Some(Action::Warn) => OnCreate::Warned,
                            _ => OnCreate::Allowed,
                        },
                        nearest_policy: nearest,
                    });
                    ns.workloads.total += 1;
                }
                Err(e) => report
                    .errors
                    .push(format!("{} {namespace}/{}: {e}", object.kind, object.name)),
            }
            ns.workloads.covered = ns.covered.len();
            ns.workloads.uncovered = ns.uncovered.len();
        }
        ns.findings.extend(findings);
    }

    /// The audit of the objects judged.
    pub fn finish(mut self) -> AuditReport {
        for ns in self.spaces.values_mut() {
            ns.uncovered.sort_by(|a, b| a.object.cmp(&b.object));
            ns.covered.sort();
            ns.findings.sort_by(finding_order);
        }
        self.report.cluster_findings.sort_by(finding_order);
        self.report.namespaces = self.spaces.into_values().collect();
        self.report
    }
}

/// An entry for every namespace that is declared or named by an object,
/// with its status, mode and baseline.
fn namespaces(
    objects: &[Value],
    view: &ClusterView,
    settings: &Settings,
) -> BTreeMap<String, NamespaceAudit> {
    let mut spaces: BTreeMap<String, NamespaceAudit> = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let mut network_policies: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for obj in objects {
        if is_namespace(obj) {
            let name = workload::display_name(obj, None);
            declared.insert(name.clone());
            spaces
                .entry(name.clone())
                .or_insert_with(|| NamespaceAudit::new(&name))
                .terminating =
                obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
        } else if let Some(ns) = namespace_of(obj) {
            spaces
                .entry(ns.to_string())
                .or_insert_with(|| NamespaceAudit::new(ns));
            let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            if PolicyKind::from_type(api_version, kind) == Some(PolicyKind::NetworkPolicy)
                && let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str)
            {
                network_policies.entry(ns).or_default().insert(name);
            }
        }
    }
    for (name, ns) in &mut spaces {
        ns.policies = view.policy_objects(name);
        ns.status = if settings.is_excluded(name) {
            NamespaceStatus::Excluded
        } else if settings.config.exemptions.namespaces.contains(name) {
            NamespaceStatus::Exempt
        } else if !declared.contains(name) {
            NamespaceStatus::Unknown
        } else if engine::is_managed(name, view, settings) {
            NamespaceStatus::Managed
        } else {
            NamespaceStatus::Unmanaged
        };
        // Exempt namespaces can be managed too, and keep their baseline.
        if engine::is_managed(name, view, settings) {
            let mode = engine::mode_for(name, view, settings);
            ns.mode = Some(mode);
            let have = network_policies.get(name.as_str());
            ns.missing_baseline = baseline::desired(name, settings, mode)
                .iter()
                .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str))
                .filter(|p| !have.is_some_and(|h| h.contains(p)))
                .map(String::from)
                .collect();
            ns.baseline = if !ns.missing_baseline.is_empty() {
                BaselineState::Missing
            } else if mode == Mode::Audit {
                BaselineState::None
            } else {
                BaselineState::Present
            };
        }
    }
    spaces
}

/// Findings in a namespace by object, then rule id and message.
fn finding_order(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    (&a.object.kind, &a.object.name, a.rule.as_str(), &a.message).cmp(&(
        &b.object.kind,
        &b.object.name,
        b.rule.as_str(),
        &b.message,
    ))
}

enum Coverage {
    Exempt,
    Covered,
    Uncovered(Labels, Option<NearestPolicy>),
}

/// Whether a workload's pods are covered, whether or not its namespace is
/// managed (an unmanaged namespace's uncovered workloads are what
/// default-deny would isolate once it is).
fn coverage_of(
    kind: WorkloadKind,
    obj: &Value,
    object: &ObjectRef,
    status: NamespaceStatus,
    view: &ClusterView,
    settings: &Settings,
) -> Result<Coverage, workload::WorkloadError> {
    if matches!(status, NamespaceStatus::Excluded | NamespaceStatus::Exempt) {
        return Ok(Coverage::Exempt);
    }
    let pods = workload::pod_shape(kind, obj)?;
    if settings
        .exempt_workloads
        .iter()
        .any(|s| pods.selected_by(s))
    {
        return Ok(Coverage::Exempt);
    }
    let namespace = object.namespace.as_str();
    let subject = coverage::Subject {
        kind,
        namespace,
        name: &object.name,
        pods: &pods,
    };
    if coverage::is_covered(&subject, view, settings) {
        return Ok(Coverage::Covered);
    }
    let nearest = view
        .nearest_policy(
            namespace,
            &pods.labels,
            &pods.unknown_labels,
            pods.service_account.as_deref(),
        )
        .map(|n| NearestPolicy {
            kind: n.policy.kind.as_str().to_string(),
            name: n.policy.name.clone(),
            unmet: n.unmet,
        });
    Ok(Coverage::Uncovered(pods.labels, nearest))
}

/// The per-namespace table (the terminal summary).
pub fn table(namespaces: &[NamespaceAudit], paint: Paint) -> String {
    let header = [
        "NAMESPACE",
        "STATUS",
        "MODE",
        "POLICIES",
        "BASELINE",
        "WORKLOADS",
        "COVERED",
        "UNCOVERED",
        "EXEMPT",
        "HIGH",
        "MEDIUM",
    ];
    let rows: Vec<Vec<Cell>> = namespaces
        .iter()
        .map(|n| {
            let judged = !matches!(
                n.status,
                NamespaceStatus::Excluded | NamespaceStatus::Exempt
            );
            let num = |v: usize, bad: Tone| {
                if !judged {
                    Cell::plain("-")
                } else if v > 0 {
                    Cell::new(v.to_string(), bad)
                } else {
                    Cell::plain(v.to_string())
                }
            };
            let managed = n.status == NamespaceStatus::Managed;
            vec![
                Cell::plain(n.name.clone()),
                Cell::new(
                    n.status.as_str(),
                    if managed { Tone::Good } else { Tone::Dim },
                ),
                Cell::plain(n.mode.map_or("-", Mode::as_str)),
                if n.policies == 0 && judged {
                    Cell::new("0", if managed { Tone::Bad } else { Tone::Warn })
                } else {
                    Cell::plain(n.policies.to_string())
                },
                Cell::new(
                    n.baseline.as_str(),
                    match n.baseline {
                        BaselineState::Missing => Tone::Bad,
                        BaselineState::Present => Tone::Good,
                        BaselineState::NotManaged | BaselineState::None => Tone::Plain,
                    },
                ),
                Cell::plain(n.workloads.total.to_string()),
                num(n.workloads.covered, Tone::Plain),
                num(
                    n.workloads.uncovered,
                    if managed { Tone::Bad } else { Tone::Warn },
                ),
                Cell::plain(n.workloads.exempt.to_string()),
                num(n.count(Severity::High), Tone::Bad),
                num(n.count(Severity::Medium), Tone::Warn),
            ]
        })
        .collect();
    summary::render_table(&header, &rows, paint)
}

/// The text report: the table, then the details grouped by namespace, then
/// one summary line.
pub fn to_text(report: &AuditReport, paint: Paint) -> String {
    use std::fmt::Write as _;
    let mut out = table(&report.namespaces, paint);
    let without: Vec<String> = report
        .without_policies()
        .map(|n| format!("{} ({})", n.name, n.status.as_str()))
        .collect();
    if !without.is_empty() {
        let _ = writeln!(
            out,
            "\n{} {}",
            paint.apply("Namespaces with no NetworkPolicy at all:", Tone::Bold),
            without.join(", ")
        );
    }
    for n in &report.namespaces {
        let policy_findings: Vec<&Finding> = n
            .findings
            .iter()
            .filter(|f| f.rule != RuleId::RequireNetworkPolicy)
            .collect();
        let missing = n.baseline == BaselineState::Missing;
        if n.uncovered.is_empty() && policy_findings.is_empty() && !missing {
            continue;
        }
        let mut head = format!("\n{} ({}", n.name, n.status.as_str());
        if let Some(mode) = n.mode {
            let _ = write!(head, ", {}", mode.as_str());
        }
        if n.terminating {
            head.push_str(", terminating");
        }
        head.push(')');
        let _ = writeln!(out, "{}", paint.apply(&head, Tone::Bold));
        if missing {
            let _ = writeln!(
                out,
                "  {} baseline missing: {} (netpol-guard serve creates it; is it running with a leader?)",
                paint.apply("!", Tone::Bad),
                n.missing_baseline.join(", ")
            );
        }
        for w in &n.uncovered {
            let (what, tone) = match w.on_create {
                OnCreate::Denied => (
                    "require-network-policy would deny it if created now",
                    Tone::Bad,
                ),
                OnCreate::Warned => (
                    "require-network-policy would only warn (audit mode or rule set to warn)",
                    Tone::Warn,
                ),
                OnCreate::Allowed if n.status == NamespaceStatus::Managed => (
                    "allowed: require-network-policy is off (default-deny isolates it)",
                    Tone::Warn,
                ),
                OnCreate::Allowed => (
                    "allowed today (namespace not managed); default-deny would isolate it",
                    Tone::Warn,
                ),
            };
            let _ = writeln!(
                out,
                "  {} {} {}: no policy covers its pods; {}",
                paint.apply("uncovered", tone),
                w.object.kind,
                w.object.name,
                what
            );
            let _ = writeln!(
                out,
                "    pod labels: {}",
                crate::selector::format_labels(&w.labels)
            );
            match &w.nearest_policy {
                Some(p) => {
                    let _ = writeln!(
                        out,
                        "    nearest policy: {} {} (pods lack {})",
                        p.kind,
                        p.name,
                        if p.unmet.is_empty() {
                            "nothing: it selects them but grants no traffic in the required direction".to_string()
                        } else {
                            p.unmet.join(", ")
                        }
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "    nearest policy: none in this namespace grants traffic"
                    );
                }
            }
        }
        for f in policy_findings {
            out.push_str(&summary::finding_line(f, paint));
        }
    }
    if !report.cluster_findings.is_empty() {
        let _ = writeln!(out, "\n{}", paint.apply("cluster-scoped", Tone::Bold));
        for f in &report.cluster_findings {
            out.push_str(&summary::finding_line(f, paint));
        }
    }
    for e in &report.errors {
        let _ = writeln!(out, "{} {e}", paint.apply("error:", Tone::Bad));
    }
    if let Some(v) = &report.network_plugin {
        let _ = write!(out, "\n{}", network_line(v, paint));
    }
    let count = |a: Action| model::count(report.findings(), a);
    let uncovered: usize = report.namespaces.iter().map(|n| n.uncovered.len()).sum();
    let workloads: usize = report.namespaces.iter().map(|n| n.workloads.total).sum();
    let _ = writeln!(
        out,
        "\n{} ({} without any policy), {} ({} uncovered): {} denied, {} warned, {} errors",
        plural(report.namespaces.len(), "namespace"),
        without.len(),
        plural(workloads, "workload"),
        uncovered,
        count(Action::Deny),
        count(Action::Warn),
        report.errors.len()
    );
    out
}

/// `network plugin: ...`, one line: green when it enforces, red when
/// nothing does, plain when unknown.
pub fn network_line(v: &cni::Verdict, paint: Paint) -> String {
    let (lead, tone) = match v.state {
        cni::State::Enforcing => ("", Tone::Good),
        cni::State::NotEnforcing => ("", Tone::Bad),
        cni::State::Unknown => ("unknown: ", Tone::Plain),
    };
    format!(
        "{} {}\n",
        paint.apply("network plugin:", Tone::Bold),
        paint.apply(&format!("{lead}{}", v.summary), tone)
    )
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
