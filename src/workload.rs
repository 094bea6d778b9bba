//! Workloads: which object kinds run pods, and the labels those pods will carry.
//!
//! The pod labels come from the pod template, never from the workload's own
//! `metadata.labels` (StackRox's trap: a Deployment labelled `app: api` whose
//! pods are `app: worker` is covered by a policy for `app: worker`, not `api`).

use serde_json::Value;

use crate::config::ControllerKind;
use crate::selector::{Labels, UnknownKeys};

/// The eight workload kinds, by API group and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    ReplicationController,
    Job,
    CronJob,
}

impl WorkloadKind {
    /// Recognises a kind by its API group (`""` for core) and kind name.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        Some(match (group, kind) {
            ("", "Pod") => Self::Pod,
            ("", "ReplicationController") => Self::ReplicationController,
            ("apps", "Deployment") => Self::Deployment,
            ("apps", "StatefulSet") => Self::StatefulSet,
            ("apps", "DaemonSet") => Self::DaemonSet,
            ("apps", "ReplicaSet") => Self::ReplicaSet,
            ("batch", "Job") => Self::Job,
            ("batch", "CronJob") => Self::CronJob,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::ReplicationController => "ReplicationController",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
        }
    }

    /// JSON pointer to the pod template (`""` for a Pod, which is its own).
    fn template_pointer(self) -> &'static str {
        match self {
            Self::Pod => "",
            Self::CronJob => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        }
    }
}

/// A container port, for the suggested fix (`containerPort` + `protocol`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    pub port: i64,
    pub protocol: String,
}

/// What the pods of a workload will look like, as far as policies care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodShape {
    pub labels: Labels,
    /// Labels the pods' controller adds with values not known in advance
    /// (`pod-template-hash`, `controller-revision-hash`, ...): present on
    /// every pod, so a selector can only count on `Exists` for them
    /// (`Selector::selects`). Never also in `labels`.
    pub unknown_labels: UnknownKeys,
    pub ports: Vec<ContainerPort>,
    /// `spec.serviceAccountName` of the pod (Cilium can select on it).
    pub service_account: Option<String>,
    /// `spec.hostNetwork`: the pods share the node's network, where no
    /// NetworkPolicy applies (rule `host-network`).
    pub host_network: bool,
}

impl PodShape {
    /// Whether `selector` selects these pods whatever the values of the
    /// labels their controller sets (`Selector::selects`).
    pub fn selected_by(&self, selector: &crate::selector::Selector) -> bool {
        selector.selects(&self.labels, &self.unknown_labels) == crate::selector::Selects::Yes
    }
}

/// Why an object's pods could not be determined. The API server validates
/// objects before admission, so these only come from offline input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error("{kind} has no pod template at {pointer}")]
    NoTemplate { kind: &'static str, pointer: String },
    #[error("{kind} pod label {key:?} is not a string")]
    BadLabel { kind: &'static str, key: String },
    #[error("{kind} pod labels are not a map")]
    BadLabels { kind: &'static str },
}

/// The workload controllers that create Pods, by the `apiVersion` and
/// `kind` they write into their Pods' ownerReference. Compared exactly:
/// these are the only versions Kubernetes serves for them, and an owner of
/// a version it does not serve is never found absent by the garbage
/// collector, so a Pod naming one would live on unjudged.
/// `manifests/webhooks.yaml`'s `skip-controller-owned-pods` names the same.
pub const POD_CONTROLLERS: [(&str, &str); 5] = [
    ("apps/v1", "ReplicaSet"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("batch/v1", "Job"),
    ("v1", "ReplicationController"),
];

/// The `apiVersion` and `kind` of the object's controller: the
/// ownerReference with `controller: true` (Kubernetes allows one).
fn controller_of(obj: &Value) -> Option<(&str, &str)> {
    let r = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
    let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
    Some((text("apiVersion"), text("kind")))
}

/// True when a workload controller owns the Pod: its controller reference
/// names one of the `POD_CONTROLLERS`, or a kind the admin lists in
/// `controllerKinds`. The controller was judged when it was created, so the
/// Pod is not. Anything else named as controller (a ConfigMap, a kind of an
/// unknown group) does not exempt a Pod: anyone may write an
/// ownerReference.
pub fn is_controller_owned(obj: &Value, extra: &[ControllerKind]) -> bool {
    controller_of(obj).is_some_and(|(api_version, kind)| {
        POD_CONTROLLERS.contains(&(api_version, kind))
            || extra
                .iter()
                .any(|c| c.api_version == api_version && c.kind == kind)
    })
}

/// True when `check` and `audit` judge the object at its owner instead: a
/// Pod of a workload controller (as the webhook skips them, see
/// `is_controller_owned`), or another workload whose controller is itself
/// one of the eight kinds (a Deployment's ReplicaSets, a CronJob's Jobs),
/// whose pod template the owner's judgement already covered. A workload an
/// operator's custom resource controls (a StatefulSet of a Prometheus, a
/// ReplicaSet of an Argo Rollout) is judged itself, as the webhook judges it
/// when the operator creates it.
pub fn judged_at_owner(kind: WorkloadKind, obj: &Value, extra: &[ControllerKind]) -> bool {
    if kind == WorkloadKind::Pod {
        return is_controller_owned(obj, extra);
    }
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
                let group = text("apiVersion").rsplit_once('/').map_or("", |(g, _)| g);
                r.get("controller").and_then(Value::as_bool) == Some(true)
                    && WorkloadKind::from_group_kind(group, text("kind")).is_some()
            })
        })
}

/// `metadata.name`, or `generateName` followed by `*` for objects named by the server.
pub fn display_name(obj: &Value, fallback: Option<&str>) -> String {
    let meta = obj.get("metadata");
    if let Some(n) = meta.and_then(|m| m.get("name")).and_then(Value::as_str) {
        return n.to_string();
    }
    if let Some(n) = fallback.filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    match meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
    {
        Some(g) => format!("{g}*"),
        None => "(unnamed)".to_string(),
    }
}

/// The labels and ports the workload's pods will have.
pub fn pod_shape(kind: WorkloadKind, obj: &Value) -> Result<PodShape, WorkloadError> {
    let pointer = kind.template_pointer();
    let template = obj
        .pointer(pointer)
        .filter(|t| t.is_object())
        .ok_or_else(|| WorkloadError::NoTemplate {
            kind: kind.as_str(),
            pointer: if pointer.is_empty() {
                "/".into()
            } else {
                pointer.replace('/', ".")
            },
        })?;
    let mut labels = Labels::new();
    match template.pointer("/metadata/labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let v = v.as_str().ok_or_else(|| WorkloadError::BadLabel {
                    kind: kind.as_str(),
                    key: k.clone(),
                })?;
                labels.insert(k.clone(), v.to_string());
            }
        }
        Some(_) => {
            return Err(WorkloadError::BadLabels {
                kind: kind.as_str(),
            });
        }
    }
    let mut unknown_labels = UnknownKeys::new();
    controller_labels(kind, obj, &mut labels, &mut unknown_labels);
    let spec = template.get("spec");
    let mut ports = Vec::new();
    for c in spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(port) = p.get("containerPort").and_then(Value::as_i64) {
                let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                let cp = ContainerPort {
                    port,
                    protocol: protocol.to_string(),
                };
                if !ports.contains(&cp) {
                    ports.push(cp);
                }
            }
        }
    }
    let service_account = spec
        .and_then(|s| s.get("serviceAccountName"))
        .and_then(Value::as_str)
        .map(String::from);
    let host_network = spec
        .and_then(|s| s.get("hostNetwork"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(PodShape {
        labels,
        unknown_labels,
        ports,
        host_network,
        service_account,
    })
}

/// The labels a workload's pods get beyond its pod template's, from
/// Kubernetes itself (kube-controller-manager's controllers, and the Job
/// API, which adds its selector labels to the template when the Job is
/// created). A value nobody knows before the pods exist goes into
/// `unknown`, and replaces a template label of the same key, as the
/// controllers overwrite it. A bare Pod, a ReplicaSet and a
/// ReplicationController get nothing added.
fn controller_labels(
    kind: WorkloadKind,
    obj: &Value,
    labels: &mut Labels,
    unknown: &mut UnknownKeys,
) {
    let mut set_unknown = |labels: &mut Labels, key: &str| {
        labels.remove(key);
        unknown.insert(key.to_string());
    };
    match kind {
        // The deployment controller's ReplicaSets carry the template's hash,
        // on their pod template and selector.
        WorkloadKind::Deployment => set_unknown(labels, "pod-template-hash"),
        // The revision, the pod's name (`<name>-<ordinal>`) and its ordinal.
        WorkloadKind::StatefulSet => {
            for key in [
                "controller-revision-hash",
                "statefulset.kubernetes.io/pod-name",
                "apps.kubernetes.io/pod-index",
            ] {
                set_unknown(labels, key);
            }
        }
        WorkloadKind::DaemonSet => {
            set_unknown(labels, "controller-revision-hash");
            set_unknown(labels, "pod-template-generation");
        }
        WorkloadKind::Job | WorkloadKind::CronJob => {
            let job = if kind == WorkloadKind::Job {
                Some(obj)
            } else {
                obj.pointer("/spec/jobTemplate")
            };
            let spec = job.and_then(|j| j.get("spec"));
            // `manualSelector: true`: the Job's author picks the labels,
            // Kubernetes adds none.
            let manual = spec
                .and_then(|s| s.get("manualSelector"))
                .and_then(Value::as_bool)
                == Some(true);
            if !manual {
                // Added to the template when absent: the Job's name and uid
                // (a CronJob's Jobs get generated names). The webhook sees a
                // Job after that, with the values in its template.
                let name = (kind == WorkloadKind::Job)
                    .then(|| obj.pointer("/metadata/name").and_then(Value::as_str))
                    .flatten();
                for (key, value) in [
                    ("job-name", name),
                    ("batch.kubernetes.io/job-name", name),
                    ("controller-uid", None),
                    ("batch.kubernetes.io/controller-uid", None),
                ] {
                    if labels.contains_key(key) {
                        continue;
                    }
                    match value {
                        Some(v) => {
                            labels.insert(key.to_string(), v.to_string());
                        }
                        None => set_unknown(labels, key),
                    }
                }
            }
            // An Indexed Job's pods carry their completion index.
            let indexed = spec
                .and_then(|s| s.get("completionMode"))
                .and_then(Value::as_str)
                == Some("Indexed");
            if indexed {
                set_unknown(labels, "batch.kubernetes.io/job-completion-index");
            }
        }
        WorkloadKind::Pod | WorkloadKind::ReplicaSet | WorkloadKind::ReplicationController => {}
    }
}

/// The object cut down to what judging it as a workload reads: apiVersion,
/// kind, the identifying metadata (name, generateName, namespace, uid,
/// labels, ownerReferences) and, of its pod template, the labels, the
/// containers' ports and the service account. A full Pod or Deployment
/// (status, managedFields, env, volumes) is ten to a hundred times bigger;
/// the background audit holds every workload of the cluster at once, inside
/// the webhook's memory limit.
pub fn slim(kind: WorkloadKind, obj: &Value) -> Value {
    let pick = |from: Option<&Value>, keys: &[&str]| -> Value {
        let mut out = serde_json::Map::new();
        if let Some(map) = from.and_then(Value::as_object) {
            for k in keys {
                if let Some(v) = map.get(*k) {
                    out.insert((*k).to_string(), v.clone());
                }
            }
        }
        Value::Object(out)
    };
    let mut out = pick(Some(obj), &["apiVersion", "kind"]);
    out["metadata"] = pick(
        obj.get("metadata"),
        &[
            "name",
            "generateName",
            "namespace",
            "uid",
            "labels",
            "ownerReferences",
        ],
    );
    let Some(template) = obj.pointer(kind.template_pointer()) else {
        return out;
    };
    let spec = template.get("spec");
    let mut pod_spec = pick(spec, &["serviceAccountName", "hostNetwork"]);
    if let Some(containers) = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
    {
        pod_spec["containers"] = Value::Array(
            containers
                .iter()
                .map(|c| pick(Some(c), &["name", "ports"]))
                .collect(),
        );
    }
    if kind == WorkloadKind::Pod {
        out["spec"] = pod_spec;
        return out;
    }
    let mut slim_template = serde_json::json!({"spec": pod_spec});
    slim_template["metadata"] = pick(template.get("metadata"), &["labels"]);
    // Rebuild the path to the template (`/spec/template`,
    // `/spec/jobTemplate/spec/template`), innermost first.
    let mut node = slim_template;
    for key in kind
        .template_pointer()
        .rsplit('/')
        .filter(|k| !k.is_empty())
    {
        node = serde_json::json!({ key: node });
    }
    // What decides the labels Kubernetes adds to a Job's pods
    // (`controller_labels`).
    let job_spec = match kind {
        WorkloadKind::Job => obj.get("spec"),
        WorkloadKind::CronJob => obj.pointer("/spec/jobTemplate/spec"),
        _ => None,
    };
    let job_keys = pick(job_spec, &["manualSelector", "completionMode"]);
    let slim_job_spec = match kind {
        WorkloadKind::Job => node.get_mut("spec"),
        WorkloadKind::CronJob => node.pointer_mut("/spec/jobTemplate/spec"),
        _ => None,
    };
    if let (Some(Value::Object(to)), Value::Object(from)) = (slim_job_spec, job_keys) {
        to.extend(from);
    }
    if let Some(spec) = node.get("spec") {
        out["spec"] = spec.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judged_at_owner_only_when_the_owner_is_a_workload_or_for_pods() {
        let owned = |api_version: &str, kind: &str| {
            json!({"metadata": {"name": "x", "ownerReferences": [
                {"apiVersion": api_version, "kind": kind, "name": "o", "uid": "u", "controller": true}]}})
        };
        let rs = WorkloadKind::ReplicaSet;
        assert!(judged_at_owner(rs, &owned("apps/v1", "Deployment"), &[]));
        assert!(judged_at_owner(
            WorkloadKind::Job,
            &owned("batch/v1", "CronJob"),
            &[]
        ));
        // An operator's resource: the workload is judged itself.
        assert!(!judged_at_owner(
            rs,
            &owned("argoproj.io/v1alpha1", "Rollout"),
            &[]
        ));
        assert!(!judged_at_owner(
            WorkloadKind::StatefulSet,
            &owned("monitoring.coreos.com/v1", "Prometheus"),
            &[]
        ));
        // A Pod of a workload controller, or of a kind the admin lists.
        let pod = WorkloadKind::Pod;
        assert!(judged_at_owner(pod, &owned("apps/v1", "ReplicaSet"), &[]));
        let taskrun = owned("tekton.dev/v1", "TaskRun");
        assert!(!judged_at_owner(pod, &taskrun, &[]));
        let listed = [ControllerKind {
            api_version: "tekton.dev/v1".into(),
            kind: "TaskRun".into(),
        }];
        assert!(judged_at_owner(pod, &taskrun, &listed));
        // Not a controller reference.
        let mut not_controller = owned("apps/v1", "Deployment");
        not_controller["metadata"]["ownerReferences"][0]["controller"] = json!(false);
        assert!(!judged_at_owner(rs, &not_controller, &[]));
        assert!(!judged_at_owner(
            rs,
            &json!({"metadata": {"name": "x"}}),
            &[]
        ));
    }

    /// Issue 13: a bare Pod naming a ConfigMap (or anything) as its
    /// controller was skipped like a ReplicaSet's. Only the five workload
    /// controllers count, by exact apiVersion and kind, and the kinds an
    /// admin lists in `controllerKinds`.
    #[test]
    fn only_workload_controllers_own_pods() {
        let owned = |api_version: &str, kind: &str| {
            json!({"metadata": {"name": "x", "ownerReferences": [
                {"apiVersion": "v1", "kind": "Secret", "name": "s", "uid": "s"},
                {"apiVersion": api_version, "kind": kind, "name": "o", "uid": "u", "controller": true}]}})
        };
        for (api_version, kind) in POD_CONTROLLERS {
            assert!(
                is_controller_owned(&owned(api_version, kind), &[]),
                "{api_version} {kind}"
            );
        }
        let strimzi = [ControllerKind {
            api_version: "core.strimzi.io/v1beta2".into(),
            kind: "StrimziPodSet".into(),
        }];
        for (api_version, kind) in [
            ("v1", "ConfigMap"),
            ("example.com/v1", "ReplicaSet"),
            // A version Kubernetes does not serve: the garbage collector
            // would never find such an owner absent.
            ("apps/v2", "ReplicaSet"),
            ("extensions/v1beta1", "ReplicaSet"),
            ("apps/v1", "Deployment"),
            ("batch/v1", "CronJob"),
            ("apps/v1", "replicaset"),
            ("core.strimzi.io/v1", "StrimziPodSet"),
        ] {
            assert!(
                !is_controller_owned(&owned(api_version, kind), &strimzi),
                "{api_version} {kind}"
            );
        }
        assert!(is_controller_owned(
            &owned("core.strimzi.io/v1beta2", "StrimziPodSet"),
            &strimzi
        ));
        assert!(!is_controller_owned(
            &owned("core.strimzi.io/v1beta2", "StrimziPodSet"),
            &[]
        ));
    }

    #[test]
    fn slim_keeps_everything_judging_reads() {
        let containers = json!([{"name": "c", "image": "x", "env": [{"name": "A", "value": "b"}],
            "ports": [{"containerPort": 8080, "protocol": "UDP"}]}]);
        let template = json!({"metadata": {"labels": {"app": "a"}, "annotations": {"x": "y"}},
            "spec": {"serviceAccountName": "sa", "containers": containers, "volumes": []}});
        let meta = json!({"name": "n", "namespace": "ns", "uid": "u", "labels": {"l": "1"},
            "ownerReferences": [{"controller": true, "kind": "X", "name": "o", "uid": "o", "apiVersion": "v1"}],
            "managedFields": [{"manager": "kubectl"}], "resourceVersion": "7"});
        for kind in [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::ReplicaSet,
            WorkloadKind::ReplicationController,
            WorkloadKind::Job,
            WorkloadKind::CronJob,
            WorkloadKind::Pod,
        ] {
            let obj = match kind {
                WorkloadKind::Pod => json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "n", "namespace": "ns", "labels": {"app": "a"}},
                    "spec": template["spec"], "status": {"phase": "Running"}}),
                WorkloadKind::CronJob => {
                    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                    "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template,
                        "manualSelector": true, "backoffLimit": 1}}}})
                }
                WorkloadKind::Job => {
                    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
                    "spec": {"completionMode": "Indexed", "completions": 3, "template": template}})
                }
                _ => json!({"apiVersion": "apps/v1", "kind": kind.as_str(), "metadata": meta,
                    "spec": {"replicas": 3, "template": template}, "status": {"replicas": 3}}),
            };
            let slim = slim(kind, &obj);
            assert_eq!(
                pod_shape(kind, &slim),
                pod_shape(kind, &obj),
                "{kind:?}: {slim}"
            );
            assert!(pod_shape(kind, &slim).unwrap().ports.len() == 1, "{kind:?}");
            assert_eq!(
                is_controller_owned(&slim, &[]),
                is_controller_owned(&obj, &[])
            );
            assert_eq!(display_name(&slim, None), "n");
            assert_eq!(slim.pointer("/metadata/namespace"), Some(&json!("ns")));
            let text = slim.to_string();
            for gone in [
                "managedFields",
                "env",
                "volumes",
                "status",
                "annotations",
                "image",
                "completions",
                "backoffLimit",
            ] {
                assert!(!text.contains(gone), "{kind:?} kept {gone}: {text}");
            }
        }
    }

    #[test]
    fn template_labels_not_workload_labels() {
        // StackRox's trap: metadata.labels says api, the pods say worker.
        let d = json!({"metadata": {"name": "w", "labels": {"app": "api"}},
            "spec": {"template": {"metadata": {"labels": {"app": "worker"}}, "spec": {}}}});
        let s = pod_shape(WorkloadKind::Deployment, &d).unwrap();
        assert_eq!(s.labels, Labels::from([("app".into(), "worker".into())]));
    }

    #[test]
    fn cronjob_labels_come_from_the_job_template() {
        let c = json!({"metadata": {"name": "n", "labels": {"app": "wrong"}},
            "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": {"app": "report"}}}}}}});
        let s = pod_shape(WorkloadKind::CronJob, &c).unwrap();
        assert_eq!(s.labels, Labels::from([("app".into(), "report".into())]));
    }

    #[test]
    fn job_gets_the_labels_its_controller_adds() {
        let j = json!({"metadata": {"name": "migrate-db"},
            "spec": {"template": {"metadata": {"labels": {"app": "m"}}}}});
        let s = pod_shape(WorkloadKind::Job, &j).unwrap();
        assert_eq!(
            s.labels.get("job-name").map(String::as_str),
            Some("migrate-db")
        );
        assert_eq!(
            s.labels
                .get("batch.kubernetes.io/job-name")
                .map(String::as_str),
            Some("migrate-db")
        );
        assert_eq!(
            s.unknown_labels,
            keys(&["batch.kubernetes.io/controller-uid", "controller-uid"])
        );
    }

    fn keys(k: &[&str]) -> UnknownKeys {
        k.iter().map(|k| k.to_string()).collect()
    }

    /// Issue 13: coverage was judged on the template's labels alone, but
    /// the controllers add labels to the real pods, most with values nobody
    /// knows in advance. Checked against Kubernetes' own keys
    /// (`DefaultDeploymentUniqueLabelKey`, `ControllerRevisionHashLabelKey`,
    /// `StatefulSetPodNameLabel`, `PodIndexLabel`, the DaemonSet's
    /// `pod-template-generation`, the Job API's selector labels and
    /// `JobCompletionIndexAnnotation`).
    #[test]
    fn controllers_add_labels_with_unknown_values() {
        let template = json!({"metadata": {"labels": {"app": "a", "pod-template-hash": "mine",
            "controller-revision-hash": "mine"}}});
        let shape = |kind: WorkloadKind, spec: Value| {
            let mut spec = spec;
            if kind == WorkloadKind::CronJob {
                spec["jobTemplate"]["spec"]["template"] = template.clone();
            } else {
                spec["template"] = template.clone();
            }
            pod_shape(
                kind,
                &json!({"metadata": {"name": "n", "uid": "u-1"}, "spec": spec}),
            )
            .unwrap()
        };
        let s = shape(WorkloadKind::Deployment, json!({}));
        assert_eq!(s.unknown_labels, keys(&["pod-template-hash"]));
        // The controller overwrites a template label of the same key.
        assert_eq!(
            s.labels,
            Labels::from([
                ("app".into(), "a".into()),
                ("controller-revision-hash".into(), "mine".into())
            ])
        );
        let s = shape(WorkloadKind::StatefulSet, json!({}));
        assert_eq!(
            s.unknown_labels,
            keys(&[
                "apps.kubernetes.io/pod-index",
                "controller-revision-hash",
                "statefulset.kubernetes.io/pod-name"
            ])
        );
        assert!(!s.labels.contains_key("controller-revision-hash"));
        let s = shape(WorkloadKind::DaemonSet, json!({}));
        assert_eq!(
            s.unknown_labels,
            keys(&["controller-revision-hash", "pod-template-generation"])
        );
        // An Indexed Job: its name is known, its pods' index and uid are not.
        let s = shape(WorkloadKind::Job, json!({"completionMode": "Indexed"}));
        assert_eq!(s.labels.get("job-name").map(String::as_str), Some("n"));
        assert_eq!(
            s.unknown_labels,
            keys(&[
                "batch.kubernetes.io/controller-uid",
                "batch.kubernetes.io/job-completion-index",
                "controller-uid"
            ])
        );
        // The labels the Job API already put into the template are known.
        let j = json!({"metadata": {"name": "n", "uid": "u-1"}, "spec": {"template": {"metadata":
            {"labels": {"controller-uid": "u-1", "batch.kubernetes.io/controller-uid": "u-1"}}}}});
        let s = pod_shape(WorkloadKind::Job, &j).unwrap();
        assert!(s.unknown_labels.is_empty(), "{s:?}");
        assert_eq!(
            s.labels.get("controller-uid").map(String::as_str),
            Some("u-1")
        );
        // manualSelector: the author picks the labels, none are added.
        let s = shape(WorkloadKind::Job, json!({"manualSelector": true}));
        assert!(s.unknown_labels.is_empty());
        assert!(!s.labels.contains_key("job-name"));
        // A CronJob's Jobs get generated names: every Job label is unknown.
        let s = shape(WorkloadKind::CronJob, json!({}));
        assert_eq!(
            s.unknown_labels,
            keys(&[
                "batch.kubernetes.io/controller-uid",
                "batch.kubernetes.io/job-name",
                "controller-uid",
                "job-name"
            ])
        );
        let s = shape(
            WorkloadKind::CronJob,
            json!({"jobTemplate": {"spec": {"manualSelector": true}}}),
        );
        assert!(s.unknown_labels.is_empty());
        // Bare Pods, ReplicaSets and ReplicationControllers: nothing added.
        for kind in [
            WorkloadKind::ReplicaSet,
            WorkloadKind::ReplicationController,
        ] {
            let s = shape(kind, json!({}));
            assert!(s.unknown_labels.is_empty(), "{kind:?}");
            assert_eq!(s.labels.len(), 3, "{kind:?}");
        }
        let p = pod_shape(WorkloadKind::Pod, &template).unwrap();
        assert!(p.unknown_labels.is_empty());
        assert_eq!(p.labels.len(), 3);
    }

    #[test]
    fn pod_is_its_own_template_and_ports_are_collected() {
        let p = json!({"metadata": {"name": "debug", "labels": {"run": "debug"}},
            "spec": {"containers": [
                {"name": "a", "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]},
                {"name": "b", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
                "serviceAccountName": "sa"}});
        let s = pod_shape(WorkloadKind::Pod, &p).unwrap();
        assert_eq!(s.labels.get("run").map(String::as_str), Some("debug"));
        assert_eq!(
            s.ports,
            vec![
                ContainerPort {
                    port: 8080,
                    protocol: "TCP".into()
                },
                ContainerPort {
                    port: 53,
                    protocol: "UDP".into()
                }
            ]
        );
        assert_eq!(s.service_account.as_deref(), Some("sa"));
    }

    #[test]
    fn missing_template_and_bad_labels_are_errors() {
        let e = pod_shape(WorkloadKind::Deployment, &json!({"spec": {}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Deployment has no pod template at .spec.template"
        );
        let e = pod_shape(
            WorkloadKind::Deployment,
            &json!({"spec": {"template": {"metadata": {"labels": {"a": 1}}}}}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"a\" is not a string"));
        // A template without labels is fine: its pods simply have none.
        let s = pod_shape(WorkloadKind::Deployment, &json!({"spec": {"template": {}}})).unwrap();
        assert!(s.labels.is_empty());
    }

    #[test]
    fn controller_ownership() {
        assert!(is_controller_owned(
            &json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": true}]}}),
            &[]
        ));
        assert!(!is_controller_owned(
            &json!({"metadata": {"ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet"}]}}),
            &[]
        ));
        // Without its apiVersion, a kind alone proves nothing.
        assert!(!is_controller_owned(
            &json!({"metadata": {"ownerReferences": [
            {"kind": "ReplicaSet", "controller": true}]}}),
            &[]
        ));
        assert!(!is_controller_owned(&json!({"metadata": {}}), &[]));
    }

    #[test]
    fn kinds_need_the_right_group() {
        assert_eq!(
            WorkloadKind::from_group_kind("apps", "Deployment"),
            Some(WorkloadKind::Deployment)
        );
        assert_eq!(WorkloadKind::from_group_kind("", "Deployment"), None);
        assert_eq!(
            WorkloadKind::from_group_kind("batch", "CronJob"),
            Some(WorkloadKind::CronJob)
        );
        assert_eq!(WorkloadKind::from_group_kind("example.com", "Pod"), None);
    }

    #[test]
    fn display_name_falls_back_to_generate_name() {
        assert_eq!(display_name(&json!({"metadata": {"name": "a"}}), None), "a");
        assert_eq!(
            display_name(&json!({"metadata": {"generateName": "x-"}}), None),
            "x-*"
        );
        assert_eq!(display_name(&json!({}), Some("req")), "req");
    }
}
