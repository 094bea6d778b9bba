//! Workloads: which object kinds run pods, and the labels those pods will carry.
//!
//! The pod labels come from the pod template, never from the workload's own
//! `metadata.labels` (StackRox's trap: a Deployment labelled `app: api` whose
//! pods are `app: worker` is covered by a policy for `app: worker`, not `api`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::selector::{Labels, UnknownKeys};

/// `controllerKinds`: a kind of an operator's custom resource that creates
/// Pods itself, by the `apiVersion` and `kind` its Pods' controller
/// ownerReference carries (e.g. `kubevirt.io/v1` `VirtualMachineInstance`).
/// Pods with such a controller are not judged, like those of the five
/// built-in workload controllers (`workload::POD_CONTROLLERS`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerKind {
    /// Compared exactly, version included: list each version the operator
    /// writes into ownerReferences.
    pub api_version: String,
    pub kind: String,
}

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

/// A container port: for the suggested fix (`containerPort` + `protocol`)
/// and for named ports in the connectivity map (`name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerPort {
    pub port: i64,
    pub protocol: String,
    pub name: Option<String>,
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
                    name: p.get("name").and_then(Value::as_str).map(String::from),
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
mod tests;
