//! Reads what `audit` judges from the API server: Namespaces, the policy
//! kinds, and the eight workload kinds. Lists are paged (500 objects a
//! page), so a large cluster is read in bounded memory on the API server's
//! side and progress can be shown; the Cilium kinds are skipped when their
//! CRDs are absent. Workloads a controller owns are dropped as they arrive
//! and the others are cut to what judging reads (`workload::slim`; for
//! DaemonSets also their containers' images, args and env, from which
//! `cni` tells the network plugin), so the memory held is proportional to
//! the cluster's top-level workloads, not to its Pods.
//!
//! A kind the API server refuses to list (404 on an old server or a missing
//! aggregated API, 403 for an RBAC gap) is skipped with its reason, and the
//! rest is read: one gap must not hide every other finding. NetworkPolicies
//! are the exception: without them every workload would look uncovered.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Api, Client};
use serde_json::Value;

use crate::workload::{self, WorkloadKind};

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// One namespace only (lists are namespaced: cheaper on a big cluster).
    pub namespace: Option<String>,
    /// Only namespaces whose labels match (kubectl syntax, checked by the
    /// API server).
    pub selector: Option<String>,
}

/// Why the cluster could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot list {resource}: {}", crate::cluster::apierror::describe(.source))]
    List {
        resource: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("namespace {0} does not exist")]
    NoNamespace(String),
    #[error("cannot read namespace {namespace}: {}", crate::cluster::apierror::describe(.source))]
    Namespace {
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

/// A progress event, for a progress line on stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still reading `resource`: `count` objects so far.
    Reading {
        resource: &'static str,
        count: usize,
    },
    /// `resource` read: `count` objects listed (`None`: its CRD is not
    /// installed).
    Done {
        resource: &'static str,
        count: Option<usize>,
    },
    /// `resource` could not be listed and is left out (`reason`: HTTP
    /// status, reason and the API's message).
    Skipped {
        resource: &'static str,
        reason: String,
    },
}

/// A kind left out of the inventory, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub resource: &'static str,
    pub reason: String,
}

/// What was read.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Every object, with `apiVersion` and `kind` set.
    pub objects: Vec<Value>,
    /// Kinds that could not be listed.
    pub skipped: Vec<Skipped>,
}

/// The one kind an audit cannot do without.
const REQUIRED: &str = "networkpolicies";

const PAGE: u32 = 500;
/// Times a list is started again after its continue token expired.
const MAX_RESTARTS: u32 = 3;

/// Reads the objects of `scope`, each with its `apiVersion` and `kind` set
/// (list items come without them). Objects in namespaces outside the scope
/// are dropped; cluster-scoped policies are always read, since they cover
/// pods everywhere.
pub async fn fetch(
    client: &Client,
    scope: &Scope,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Inventory, InventoryError> {
    let ns_resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "Namespace"),
        "namespaces",
    );
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    let namespaces: Api<DynamicObject> = Api::all_with(client.clone(), &ns_resource);
    if let Some(name) = &scope.namespace {
        match namespaces.get_opt(name).await {
            Ok(Some(ns)) => objects.push(typed(ns, &ns_resource)),
            Ok(None) => return Err(InventoryError::NoNamespace(name.clone())),
            Err(source) => {
                return Err(InventoryError::Namespace {
                    namespace: name.clone(),
                    source,
                });
            }
        }
        progress(Progress::Done {
            resource: "namespaces",
            count: Some(1),
        });
    } else {
        let mut params = ListParams::default();
        if let Some(sel) = &scope.selector {
            params = params.labels(sel);
        }
        let list = list_all(&namespaces, params, "namespaces", &ns_resource, progress)
            .await?
            .unwrap_or_default();
        objects.extend(list);
    }
    let selected: std::collections::BTreeSet<String> = objects
        .iter()
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
        .map(String::from)
        .collect();
    let policies = crate::cluster::kinds::POLICY_KINDS.iter().map(|(_, k)| k);
    let workloads = crate::cluster::kinds::WORKLOAD_KINDS.iter().map(|(_, k)| k);
    for api in policies.chain(workloads) {
        let (plural, namespaced) = (api.plural, api.namespaced);
        let resource = api.api_resource();
        let api: Api<DynamicObject> = match (&scope.namespace, namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        let list = match list_all(&api, ListParams::default(), plural, &resource, progress).await {
            Ok(Some(list)) => list,
            Ok(None) => continue,
            Err(InventoryError::List { resource, source })
                if resource != REQUIRED
                    && matches!(
                        crate::cluster::apierror::status_code(&source),
                        Some(403 | 404)
                    ) =>
            {
                let reason = crate::cluster::apierror::describe(&source);
                progress(Progress::Skipped {
                    resource,
                    reason: reason.clone(),
                });
                skipped.push(Skipped { resource, reason });
                continue;
            }
            Err(e) => return Err(e),
        };
        objects.extend(list.into_iter().filter(|o| {
            !namespaced
                || o.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|ns| selected.contains(ns))
        }));
    }
    Ok(Inventory { objects, skipped })
}

/// Every page of a list; `None` when the resource does not exist (a CRD
/// that is not installed answers 404).
async fn list_all(
    api: &Api<DynamicObject>,
    params: ListParams,
    name: &'static str,
    resource: &ApiResource,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Option<Vec<Value>>, InventoryError> {
    let first = params.limit(PAGE);
    let mut params = first.clone();
    let mut out = Vec::new();
    let mut read = 0;
    let mut restarts = 0;
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            // The continue token expired (the API server compacted past it,
            // about 5 minutes on a large cluster): start the list again,
            // a few times, rather than fail the whole audit.
            Err(kube::Error::Api(s)) if s.code == 410 && restarts < MAX_RESTARTS => {
                restarts += 1;
                out.clear();
                read = 0;
                params = first.clone();
                continue;
            }
            Err(kube::Error::Api(s)) if s.code == 404 && resource.group == "cilium.io" => {
                progress(Progress::Done {
                    resource: name,
                    count: None,
                });
                return Ok(None);
            }
            Err(source) => {
                return Err(InventoryError::List {
                    resource: name,
                    source,
                });
            }
        };
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        let workload = WorkloadKind::from_group_kind(&resource.group, &resource.kind);
        read += page.items.len();
        for obj in page.items {
            let obj = typed(obj, resource);
            match workload {
                // Judged and counted at its controller: not kept at all.
                // Most Pods and ReplicaSets of a cluster are such. Pods of
                // the config's `controllerKinds` are kept (this does not
                // read the config); the audit, which does, skips them.
                Some(kind) if workload::judged_at_owner(kind, &obj, &[]) => {}
                // What detecting the network plugin reads too (images,
                // args, env): DaemonSets are few.
                Some(WorkloadKind::DaemonSet) => out.push(crate::cni::keep_for_detection(
                    &obj,
                    workload::slim(WorkloadKind::DaemonSet, &obj),
                )),
                Some(kind) => out.push(workload::slim(kind, &obj)),
                None => out.push(obj),
            }
        }
        match next {
            Some(token) => {
                progress(Progress::Reading {
                    resource: name,
                    count: read,
                });
                params = params.continue_token(&token);
            }
            None => break,
        }
    }
    progress(Progress::Done {
        resource: name,
        count: Some(read),
    });
    Ok(Some(out))
}

/// The object as JSON, with the `apiVersion` and `kind` list items lack.
fn typed(obj: DynamicObject, resource: &ApiResource) -> Value {
    let mut value = serde_json::to_value(&obj).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String(resource.api_version.clone()),
        );
        map.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    value
}
