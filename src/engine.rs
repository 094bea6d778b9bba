//! The decision engine: an admission request, a read-only cluster view and
//! the settings in, a verdict out. Pure: no I/O, no clock, no client, so the
//! webhook, the offline `check` command, tests and benches share it.

use serde_json::Value;

use crate::admission::{AdmissionRequest, Operation};
use crate::baseline;
use std::sync::Arc;

use crate::cluster::{ClusterView, KnownWorkload, PolicyKind};
use crate::config::{Mode, Settings};
use crate::rules::{self, Action, Finding, RuleId, coverage};
use crate::workload::{self, WorkloadKind};

/// What the engine decided, with every finding and its effective action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub findings: Vec<(Finding, Action)>,
    /// In audit mode, the rules that would have denied the request (their
    /// findings are warnings in `findings`).
    pub audit_would_deny: Vec<RuleId>,
}

impl Verdict {
    pub fn allow() -> Self {
        Self::default()
    }

    pub fn allowed(&self) -> bool {
        !self.findings.iter().any(|(_, a)| *a == Action::Deny)
    }

    /// The denial message: every denying finding in full, rule ids first.
    pub fn denial_message(&self) -> Option<String> {
        let texts: Vec<String> = self
            .findings
            .iter()
            .filter(|(_, a)| *a == Action::Deny)
            .map(|(f, _)| f.full_text())
            .collect();
        (!texts.is_empty()).then(|| format!("netpol-guard: {}", texts.join("\n\n")))
    }

    /// One-line warnings, for `response.warnings`.
    pub fn warnings(&self) -> Vec<String> {
        self.findings
            .iter()
            .filter(|(_, a)| *a == Action::Warn)
            .map(|(f, _)| f.message.clone())
            .collect()
    }

    /// Rule ids of the findings that are not off, for logs and metrics.
    pub fn rule_ids(&self) -> Vec<&'static str> {
        self.findings.iter().map(|(f, _)| f.rule.as_str()).collect()
    }

    /// Audit mode: every denial becomes a warning that says so, except
    /// `baseline-protected`: the baseline's names are reserved in audit mode
    /// too, or a developer could squat one before the namespace is enforced.
    fn apply_audit_mode(&mut self) {
        for (f, action) in &mut self.findings {
            if *action == Action::Deny && f.rule != RuleId::BaselineProtected {
                *action = Action::Warn;
                self.audit_would_deny.push(f.rule);
                f.message = crate::text::truncate_chars(
                    &format!("audit mode, would deny: {}", f.message),
                    rules::MAX_WARNING_CHARS,
                );
            }
        }
    }

    fn push(&mut self, finding: Finding, settings: &Settings) {
        let action = finding.effective(settings.action(finding.rule));
        if action != Action::Off {
            self.findings.push((finding, action));
        }
    }
}

/// An object the engine could not judge. Requests from the API server are
/// validated before admission, so this mostly comes from offline input; the
/// webhook turns it into a denial that says what is wrong (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("{operation} {kind} request has no object")]
    NoObject {
        kind: String,
        operation: &'static str,
    },
    #[error("{0}")]
    Workload(#[from] workload::WorkloadError),
}

/// The namespace netpol-guard considers managed: labels match the configured
/// selector and the name is not excluded. Unknown namespaces are not managed.
pub fn is_managed(namespace: &str, view: &ClusterView, settings: &Settings) -> bool {
    view.namespace_labels(namespace)
        .is_some_and(|labels| settings.manages(namespace, labels))
}

/// The mode in force for a namespace (`Settings::mode_for` of its labels).
/// Cluster-scoped objects (empty namespace) get the configured mode.
pub fn mode_for(namespace: &str, view: &ClusterView, settings: &Settings) -> Mode {
    settings.mode_for(view.namespace_labels(namespace))
}

/// Whether the request's user or groups are exempt by config.
fn user_exempt(req: &AdmissionRequest, settings: &Settings) -> bool {
    let ex = &settings.config.exemptions;
    ex.users.contains(&req.user_info.username)
        || req.user_info.groups.iter().any(|g| ex.groups.contains(g))
}

/// Judges one admission request.
pub fn decide(
    req: &AdmissionRequest,
    view: &ClusterView,
    settings: &Settings,
) -> Result<Verdict, DecideError> {
    decide_with(req, view, settings, None)
}

/// What the objects `check` and `audit` judge come from, which decides what
/// `policy-selects-nothing` may conclude from the workloads among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inputs {
    /// Manifests (`check`): part of a cluster. A namespace's workloads
    /// among them are taken to be its workloads (when there is at least
    /// one), but a CiliumClusterwideNetworkPolicy selects in every
    /// namespace, most of which are elsewhere: it is not judged.
    Manifests,
    /// A cluster's objects (`audit`, the background audit): every
    /// namespace's workloads.
    #[default]
    Cluster,
}

/// [`decide`], plus for an existing object (`check`, `audit`) the rules
/// the webhook does not apply.
fn decide_with(
    req: &AdmissionRequest,
    view: &ClusterView,
    settings: &Settings,
    existing: Option<Inputs>,
) -> Result<Verdict, DecideError> {
    let mut verdict = judge(req, view, settings, existing)?;
    let namespace = req.namespace.as_deref().unwrap_or("");
    if mode_for(namespace, view, settings) == Mode::Audit {
        verdict.apply_audit_mode();
    }
    Ok(verdict)
}

/// Judges an object that exists (or would be created), for `check` and
/// `audit`: `req` is its CREATE request (`admission::create_request`). The
/// same as [`decide`], except that a workload judged at its owner
/// (`workload::judged_at_owner`: a Deployment's ReplicaSets, a CronJob's
/// Jobs, the Pods of a workload controller or of a kind in `controllerKinds`)
/// gets no findings: reporting it again for
/// every revision would bury the one finding that matters. Nor does
/// netpol-guard's own baseline (`baseline::is_ours`). A policy is also
/// judged by `policy-selects-nothing`, which the webhook does not apply
/// (applying a policy before its workload is the recommended order),
/// against a cluster's objects ([`Inputs::Cluster`]; `check` uses
/// [`decide_existing_in`]).
pub fn decide_existing(
    req: &AdmissionRequest,
    view: &ClusterView,
    settings: &Settings,
) -> Result<Verdict, DecideError> {
    decide_existing_in(req, view, settings, Inputs::Cluster)
}

/// [`decide_existing`], for objects that come from `inputs`.
pub fn decide_existing_in(
    req: &AdmissionRequest,
    view: &ClusterView,
    settings: &Settings,
    inputs: Inputs,
) -> Result<Verdict, DecideError> {
    let owned = WorkloadKind::from_group_kind(&req.kind.group, &req.kind.kind)
        .zip(req.object.as_ref())
        .is_some_and(|(kind, obj)| {
            workload::judged_at_owner(kind, obj, &settings.config.controller_kinds)
        });
    // netpol-guard's own baseline, found in the cluster or in an export of
    // it: not a developer creating a policy with a reserved name. A squatter
    // (same name, not written by netpol-guard) is reported.
    let baseline = (req.kind.group.as_str(), req.kind.kind.as_str())
        == ("networking.k8s.io", "NetworkPolicy")
        && req.object.as_ref().is_some_and(baseline::is_ours);
    if owned || baseline {
        return Ok(Verdict::allow());
    }
    decide_with(req, view, settings, Some(inputs))
}

/// Every rule on one request; `existing` for `check` and `audit`
/// ([`decide_with`]).
fn judge(
    req: &AdmissionRequest,
    view: &ClusterView,
    settings: &Settings,
    existing: Option<Inputs>,
) -> Result<Verdict, DecideError> {
    // Status, scale and other subresources never change what pods run with.
    if req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        return Ok(Verdict::allow());
    }
    let namespace = req.namespace.as_deref().unwrap_or("");
    if !namespace.is_empty() && settings.is_excluded(namespace) {
        return Ok(Verdict::allow());
    }
    let group = req.kind.group.as_str();
    let kind = req.kind.kind.as_str();
    let mut verdict = Verdict::allow();
    // Exempt requests skip every rule but baseline-protected, which has its
    // own list of who may change the baseline.
    let exempt = user_exempt(req, settings)
        || settings
            .config
            .exemptions
            .namespaces
            .iter()
            .any(|n| n == namespace);
    if exempt {
        if (group, kind) == ("networking.k8s.io", "NetworkPolicy") {
            judge_baseline_change(req, namespace, view, settings, &mut verdict);
        }
        return Ok(verdict);
    }
    if let Some(wk) = WorkloadKind::from_group_kind(group, kind) {
        judge_workload(req, wk, namespace, view, settings, &mut verdict)?;
    } else {
        match (group, kind) {
            ("networking.k8s.io", "NetworkPolicy") => {
                judge_baseline_change(req, namespace, view, settings, &mut verdict);
                if let Some(obj) = changed_object(req) {
                    for f in rules::netpol::check_in_view(obj, view, settings) {
                        verdict.push(f, settings);
                    }
                    if existing.is_some() {
                        let kind = PolicyKind::NetworkPolicy;
                        for f in rules::selects_nothing::check(obj, kind, view) {
                            verdict.push(f, settings);
                        }
                    }
                }
                judge_coverage_loss(
                    req,
                    PolicyKind::NetworkPolicy,
                    namespace,
                    view,
                    settings,
                    &mut verdict,
                );
            }
            ("cilium.io", "CiliumNetworkPolicy" | "CiliumClusterwideNetworkPolicy") => {
                if let Some(obj) = changed_object(req) {
                    let clusterwide = kind == "CiliumClusterwideNetworkPolicy";
                    for f in rules::cilium::check(obj, clusterwide, settings) {
                        verdict.push(f, settings);
                    }
                    let selects_nothing = match existing {
                        Some(Inputs::Cluster) => true,
                        Some(Inputs::Manifests) => !clusterwide,
                        None => false,
                    };
                    if selects_nothing {
                        let kind = if clusterwide {
                            PolicyKind::CiliumClusterwideNetworkPolicy
                        } else {
                            PolicyKind::CiliumNetworkPolicy
                        };
                        for f in rules::selects_nothing::check(obj, kind, view) {
                            verdict.push(f, settings);
                        }
                    }
                }
                if kind == "CiliumNetworkPolicy" {
                    judge_coverage_loss(
                        req,
                        PolicyKind::CiliumNetworkPolicy,
                        namespace,
                        view,
                        settings,
                        &mut verdict,
                    );
                }
            }
            _ => {}
        }
    }
    Ok(verdict)
}

/// The object of a CREATE or UPDATE (what would be stored).
fn changed_object(req: &AdmissionRequest) -> Option<&Value> {
    match req.operation {
        Operation::Create | Operation::Update => req.object.as_ref().filter(|o| !o.is_null()),
        Operation::Delete | Operation::Connect => None,
    }
}

fn judge_workload(
    req: &AdmissionRequest,
    kind: WorkloadKind,
    namespace: &str,
    view: &ClusterView,
    settings: &Settings,
    verdict: &mut Verdict,
) -> Result<(), DecideError> {
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Ok(()); // deletes are never blocked
    }
    if !is_managed(namespace, view, settings) {
        return Ok(());
    }
    let obj = changed_object(req).ok_or_else(|| DecideError::NoObject {
        kind: kind.as_str().to_string(),
        operation: req.operation.as_str(),
    })?;
    // A Pod of a workload controller (or of a kind in `controllerKinds`):
    // judged at its controller. Anything else named as controller (a
    // ConfigMap) does not exempt it. Who sends the request is not checked,
    // so a Pod naming a real ReplicaSet that does not select it passes
    // (docs/operations.md, threat model).
    if kind == WorkloadKind::Pod
        && workload::is_controller_owned(obj, &settings.config.controller_kinds)
    {
        return Ok(());
    }
    // A Deployment's new ReplicaSet, a CronJob's Job, written by their
    // controller: judged when the owner was admitted. Judging them again
    // would stall the rollout of an owner admitted before its namespace was
    // managed (existing workloads keep working until fixed). Only from the
    // controllers themselves: anyone can write an ownerReference.
    if kind != WorkloadKind::Pod
        && WORKLOAD_CONTROLLERS.contains(&req.user_info.username.as_str())
        && workload::judged_at_owner(kind, obj, &[])
    {
        return Ok(());
    }
    let name = workload::display_name(obj, req.name.as_deref());
    let pods = workload::pod_shape(kind, obj)?;
    // Named by an admin in `exemptions.workloads`: nothing else exempts a
    // workload from host-network.
    if named_exempt(settings, namespace, kind, &name) {
        return Ok(());
    }
    if pods.host_network {
        judge_host_network(req, kind, namespace, &name, verdict, settings);
    }
    if label_exempt(settings, &pods) {
        return Ok(());
    }
    let subject = coverage::Subject {
        kind,
        namespace,
        name: &name,
        pods: &pods,
    };
    let Some(finding) = coverage::check(&subject, view, settings) else {
        return Ok(());
    };
    // An update to a workload that was already uncovered is let through with
    // a warning, so existing workloads can still roll out (Kyverno's
    // allowExistingViolations); it never becomes less covered than it was.
    if req.operation == Operation::Update
        && let Some(old) = req.old_object.as_ref().filter(|o| !o.is_null())
        && let Ok(old_pods) = workload::pod_shape(kind, old)
    {
        let old_subject = coverage::Subject {
            pods: &old_pods,
            ..subject
        };
        if !coverage::is_covered(&old_subject, view, settings) {
            verdict.push(coverage::existing_violation(&subject), settings);
            return Ok(());
        }
    }
    verdict.push(finding, settings);
    Ok(())
}

/// A workload a cluster admin named in `exemptions.workloads`.
fn named_exempt(settings: &Settings, namespace: &str, kind: WorkloadKind, name: &str) -> bool {
    settings
        .config
        .exemptions
        .workloads
        .iter()
        .any(|w| w.namespace == namespace && w.kind == kind.as_str() && w.name == name)
}

/// A workload whose pod labels match `exemptions.workloadLabels`.
fn label_exempt(settings: &Settings, pods: &workload::PodShape) -> bool {
    settings
        .exempt_workloads
        .iter()
        .any(|s| pods.selected_by(s))
}

/// `uncovers-workloads`: a policy UPDATE or DELETE in a managed namespace
/// after which existing workloads that it covered are covered by nothing.
/// Their pods keep running, cut off by default-deny, and nobody is told, so
/// the request gets a warning naming them. The workloads come from the
/// view (the live watches' slim cache), never from a read per request; a
/// view that does not know every workload says nothing. Workloads exempt
/// from `require-network-policy`, or on the host network (where no policy
/// applies), are left out. Not raised while the namespace is being deleted,
/// nor for the controllers that delete its contents: a configured `deny`
/// must never block namespace deletion.
fn judge_coverage_loss(
    req: &AdmissionRequest,
    kind: PolicyKind,
    namespace: &str,
    view: &ClusterView,
    settings: &Settings,
    verdict: &mut Verdict,
) {
    if !matches!(req.operation, Operation::Update | Operation::Delete)
        || view.is_terminating(namespace)
        || CONTROLLER_IDENTITIES.contains(&req.user_info.username.as_str())
        || req.user_info.username == GARBAGE_COLLECTOR
        || req.user_info.username == settings.config.service_account
        || !is_managed(namespace, view, settings)
    {
        return;
    }
    let Some(existing) = view.workloads(namespace).filter(|w| !w.is_empty()) else {
        return;
    };
    let Some(old) = req.old_object.as_ref().filter(|o| !o.is_null()) else {
        return;
    };
    let name = workload::display_name(old, req.name.as_deref());
    // A new object that cannot be compiled is another rule's (or the API
    // server's) to reject.
    let Ok(after) = view.with_policy_replaced(namespace, kind, &name, changed_object(req)) else {
        return;
    };
    let mut lost: Vec<&Arc<KnownWorkload>> = existing
        .iter()
        .filter(|w| {
            !w.pods.host_network
                && !named_exempt(settings, namespace, w.kind, &w.name)
                && !label_exempt(settings, &w.pods)
        })
        .filter(|w| {
            let subject = coverage::Subject::of(w, namespace);
            coverage::is_covered(&subject, view, settings)
                && !coverage::is_covered(&subject, &after, settings)
        })
        .collect();
    if lost.is_empty() {
        return;
    }
    lost.sort_by(|a, b| a.report_order().cmp(&b.report_order()));
    let lost: Vec<String> = lost.iter().map(|w| w.label()).collect();
    let verb = if req.operation == Operation::Delete {
        "deleting"
    } else {
        "this change to"
    };
    let policy = format!("{} {namespace}/{name}", kind.as_str());
    verdict.push(
        coverage::coverage_loss(verb, &policy, namespace, &lost),
        settings,
    );
}

/// `host-network`: pods with `hostNetwork: true` share the node's network
/// namespace, where no NetworkPolicy applies: whatever the policies say,
/// they reach and are reached like the node. In a managed namespace that
/// is a hole in the segmentation, so it is denied unless a cluster admin
/// names the workload in `exemptions.workloads`. An update of a workload
/// that already used the host network only warns, so it can still roll out.
fn judge_host_network(
    req: &AdmissionRequest,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
    verdict: &mut Verdict,
    settings: &Settings,
) {
    let already = req.operation == Operation::Update
        && req
            .old_object
            .as_ref()
            .and_then(|old| workload::pod_shape(kind, old).ok())
            .is_some_and(|p| p.host_network);
    let kind = kind.as_str();
    let message = if already {
        format!(
            "host-network: {kind} {namespace}/{name} already used the host network; this update is allowed, but new \
             workloads like it are denied. Remove hostNetwork, or ask a cluster admin to exempt it."
        )
    } else {
        format!(
            "host-network: {kind} {namespace}/{name}: its pods use the node's network (hostNetwork: true), where no \
             NetworkPolicy applies. Remove hostNetwork, or ask a cluster admin to exempt it."
        )
    };
    let mut finding = rules::netpol::finding(RuleId::HostNetwork, message).with_detail(format!(
        "Why: namespace {namespace} is managed by netpol-guard, so its pods must be segmented by NetworkPolicy; a pod on \
         the host network is not subject to any policy and can reach, and be reached by, whatever the node can.\nFix: run \
         it without hostNetwork (expose a containerPort, use a Service), or, for a node agent that needs it, a cluster \
         admin adds it to exemptions.workloads in netpol-guard's config:\n  exemptions:\n    workloads:\n    - \
         {{namespace: {namespace}, kind: {kind}, name: {name}}}"
    ));
    if already {
        finding.severity = Action::Warn;
    }
    verdict.push(finding, settings);
}

/// `baseline-protected`: in a managed namespace, the names of the baseline
/// (`baseline::reserved_names`: the built-ins and the configured
/// `baseline.extraPolicies`) are netpol-guard's alone, by name, whatever
/// the object says: only netpol-guard's own identity may CREATE, UPDATE or
/// DELETE a policy with such a name there. Anywhere, only it may set the
/// managed-by label. Audit mode does not soften this rule (see
/// `Verdict::apply_audit_mode`): a squatted name would become the
/// "baseline" the moment the namespace is enforced.
///
/// A DELETE is also allowed while its namespace is terminating, whoever
/// sends it: kube-controller-manager's namespace controller deletes the
/// namespace's contents as its own service account with
/// `--use-service-account-credentials`, but as the controller manager's
/// user (whatever a distribution calls it) without, and a denial would leave
/// the namespace in Terminating forever. The known controller identities
/// are allowed too, for when the view has not seen the deletionTimestamp yet.
fn judge_baseline_change(
    req: &AdmissionRequest,
    namespace: &str,
    view: &ClusterView,
    settings: &Settings,
    verdict: &mut Verdict,
) {
    let user = req.user_info.username.as_str();
    if user == settings.config.service_account {
        return;
    }
    let Some(obj) = req
        .object
        .as_ref()
        .filter(|o| !o.is_null())
        .or(req.old_object.as_ref())
    else {
        return;
    };
    let name = workload::display_name(obj, req.name.as_deref());
    let reserved = is_managed(namespace, view, settings) && baseline::is_reserved(&name, settings);
    let describe_selector =
        || crate::selector::describe(&settings.config.managed_namespaces.selector);
    let (message, detail) = match req.operation {
        Operation::Create | Operation::Update if reserved => {
            let verb = if req.operation == Operation::Create {
                "create"
            } else {
                "change"
            };
            (
                format!(
                    "baseline-protected: {user} may not {verb} NetworkPolicy {namespace}/{name}: the name is reserved for netpol-guard's baseline \
                     in managed namespace {namespace}. Give your policy another name."
                ),
                format!(
                    "Why: netpol-guard keeps its baseline (default-deny, the DNS allow and any policies cluster admins add to it) under these names in every managed namespace, in \
                     audit mode too; a policy of yours with the name would pass for the baseline, or be replaced by it.\nFix: name your \
                     policy differently (policies add up, so yours and the baseline both apply). The baseline itself is configured by \
                     cluster admins in netpol-guard's config; to stop managing the namespace, remove its managed label ({}).",
                    describe_selector()
                ),
            )
        }
        Operation::Create | Operation::Update if sets_managed_by(req) => (
            format!(
                "baseline-protected: {user} may not label NetworkPolicy {namespace}/{name} {}={}: only netpol-guard labels its own \
                 policies. Remove the label.",
                baseline::MANAGED_BY_KEY,
                baseline::MANAGED_BY_VALUE
            ),
            format!(
                "Why: the label marks the policies netpol-guard generates and keeps; a policy that carried it could pass for \
                 netpol-guard's.\nFix: remove the {} label, or give it another value.",
                baseline::MANAGED_BY_KEY
            ),
        ),
        Operation::Delete
            if reserved
                && !CONTROLLER_IDENTITIES.contains(&user)
                && !view.is_terminating(namespace) =>
        {
            (
                format!(
                    "baseline-protected: {user} may not delete NetworkPolicy {namespace}/{name}: it is netpol-guard's baseline \
                     for managed namespace {namespace}. Add your own NetworkPolicy instead."
                ),
                format!(
                    "Why: the baseline (default-deny, the DNS allow and any policies cluster admins add to it) keeps every pod of a managed namespace isolated unless a \
                     policy allows its traffic; removing or loosening it silently opens the namespace.\nFix: leave it as it is \
                     and add NetworkPolicies that allow the traffic you need (they add to the baseline). To stop managing the \
                     namespace, a cluster admin removes its managed label ({}); netpol-guard then removes the baseline itself.",
                    describe_selector()
                ),
            )
        }
        _ => return,
    };
    verdict.push(
        // The user and name come from the request: one line within the limit.
        rules::netpol::finding(RuleId::BaselineProtected, message).with_detail(detail),
        settings,
    );
}

/// Whether the request puts netpol-guard's managed-by label on a policy
/// that did not carry it.
fn sets_managed_by(req: &AdmissionRequest) -> bool {
    let labelled = |o: Option<&Value>| o.is_some_and(baseline::has_managed_by_label);
    labelled(req.object.as_ref()) && !labelled(req.old_object.as_ref())
}

/// The users kube-controller-manager's workload controllers write
/// ReplicaSets and Jobs as: their own service accounts
/// (`--use-service-account-credentials`), or the controller manager's user.
pub const WORKLOAD_CONTROLLERS: [&str; 3] = [
    "system:serviceaccount:kube-system:deployment-controller",
    "system:serviceaccount:kube-system:cronjob-controller",
    "system:kube-controller-manager",
];

/// The garbage collector deletes objects whose owner is gone: a policy an
/// operator's custom resource owned, say. It cannot be told to wait.
const GARBAGE_COLLECTOR: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

/// The users kube-controller-manager deletes namespaces' contents as: the
/// namespace controller's own service account
/// (`--use-service-account-credentials=true`, the kubeadm default), and the
/// controller manager's user in kubeadm-style clusters without it.
pub const CONTROLLER_IDENTITIES: [&str; 2] = [
    "system:serviceaccount:kube-system:namespace-controller",
    "system:kube-controller-manager",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{GroupVersionKind, UserInfo};
    use serde_json::json;

    /// Found by `cargo fuzz run admission`: a long (or multi-line) user name
    /// made the baseline-protected warning longer than the API server keeps.
    #[test]
    fn baseline_protected_warning_is_one_line_within_the_limit() {
        let mut view = ClusterView::new();
        view.add(&json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "pay", "labels": {"platform.io/managed": "true"}}}))
            .unwrap();
        let settings = Settings::from_yaml("rules: {baseline-protected: warn}").unwrap();
        let req = AdmissionRequest {
            uid: "u".into(),
            kind: GroupVersionKind {
                group: "networking.k8s.io".into(),
                version: "v1".into(),
                kind: "NetworkPolicy".into(),
            },
            sub_resource: None,
            name: Some("netpol-guard-default-deny".into()),
            namespace: Some("pay".into()),
            operation: Operation::Delete,
            user_info: UserInfo {
                username: format!("alice\n{}@example.com", "e".repeat(300)),
                groups: vec![],
            },
            object: None,
            old_object: Some(json!({"metadata": {"name": "netpol-guard-default-deny",
                "namespace": "pay", "labels": {"app.kubernetes.io/managed-by": "netpol-guard"}}})),
            dry_run: None,
        };
        let verdict = decide(&req, &view, &settings).unwrap();
        let warnings = verdict.warnings();
        assert_eq!(verdict.rule_ids(), ["baseline-protected"]);
        assert_eq!(warnings.len(), 1);
        let w = &warnings[0];
        assert!(w.chars().count() <= rules::MAX_WARNING_CHARS, "{w}");
        assert!(!w.chars().any(char::is_control), "{w:?}");
        assert!(w.starts_with("baseline-protected: alice "), "{w}");
    }
}
