//! The one table of API kinds netpol-guard reads: the policy kinds that can
//! cover pods and the eight workload kinds, each with its group, version,
//! resource name and scope. The watches, the audit's inventory, the
//! generator's impact report and the view all take kinds from here.

use kube::api::{ApiResource, GroupVersionKind};

use crate::workload::WorkloadKind;

/// Which API kind a covering policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    NetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
}

/// An API kind as the API server serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKind {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// The resource name in URLs, e.g. `networkpolicies`.
    pub plural: &'static str,
    pub namespaced: bool,
}

impl ApiKind {
    const fn new(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        namespaced: bool,
    ) -> Self {
        Self {
            group,
            version,
            kind,
            plural,
            namespaced,
        }
    }

    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// For a dynamic `kube::Api`.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }
}

/// The policy kinds, in the order they are listed.
pub const POLICY_KINDS: [(PolicyKind, ApiKind); 3] = [
    (
        PolicyKind::NetworkPolicy,
        ApiKind::new(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        ),
    ),
    (
        PolicyKind::CiliumNetworkPolicy,
        ApiKind::new(
            "cilium.io",
            "v2",
            "CiliumNetworkPolicy",
            "ciliumnetworkpolicies",
            true,
        ),
    ),
    (
        PolicyKind::CiliumClusterwideNetworkPolicy,
        ApiKind::new(
            "cilium.io",
            "v2",
            "CiliumClusterwideNetworkPolicy",
            "ciliumclusterwidenetworkpolicies",
            false,
        ),
    ),
];

/// The workload kinds, in the order audits list them and reports name
/// workloads (Deployments first, bare Pods last).
pub const WORKLOAD_KINDS: [(WorkloadKind, ApiKind); 8] = [
    (
        WorkloadKind::Deployment,
        ApiKind::new("apps", "v1", "Deployment", "deployments", true),
    ),
    (
        WorkloadKind::StatefulSet,
        ApiKind::new("apps", "v1", "StatefulSet", "statefulsets", true),
    ),
    (
        WorkloadKind::DaemonSet,
        ApiKind::new("apps", "v1", "DaemonSet", "daemonsets", true),
    ),
    (
        WorkloadKind::ReplicaSet,
        ApiKind::new("apps", "v1", "ReplicaSet", "replicasets", true),
    ),
    (
        WorkloadKind::ReplicationController,
        ApiKind::new(
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            true,
        ),
    ),
    (
        WorkloadKind::Job,
        ApiKind::new("batch", "v1", "Job", "jobs", true),
    ),
    (
        WorkloadKind::CronJob,
        ApiKind::new("batch", "v1", "CronJob", "cronjobs", true),
    ),
    (
        WorkloadKind::Pod,
        ApiKind::new("", "v1", "Pod", "pods", true),
    ),
];

impl PolicyKind {
    /// The policy kind of an `apiVersion`/`kind` pair.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Self> {
        POLICY_KINDS
            .iter()
            .find(|(_, k)| k.kind == kind && k.api_version() == api_version)
            .map(|(p, _)| *p)
    }

    pub fn api(self) -> &'static ApiKind {
        // Every variant is in the table (a test checks it).
        &POLICY_KINDS[self as usize].1
    }

    pub fn as_str(self) -> &'static str {
        self.api().kind
    }
}

/// The table entry of a workload kind.
pub fn workload(kind: WorkloadKind) -> &'static ApiKind {
    WORKLOAD_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&WORKLOAD_KINDS[0].1, |(_, api)| api)
}

/// A workload kind's place in `WORKLOAD_KINDS` (report order).
pub fn workload_rank(kind: WorkloadKind) -> usize {
    WORKLOAD_KINDS
        .iter()
        .position(|(k, _)| *k == kind)
        .unwrap_or(WORKLOAD_KINDS.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_in_its_table_once_and_round_trips() {
        for (i, (p, api)) in POLICY_KINDS.iter().enumerate() {
            assert_eq!(*p as usize, i, "PolicyKind order matches the table");
            assert_eq!(
                PolicyKind::from_type(&api.api_version(), api.kind),
                Some(*p)
            );
            assert_eq!(p.as_str(), api.kind);
        }
        assert_eq!(
            PolicyKind::from_type("cilium.io/v3", "CiliumNetworkPolicy"),
            None
        );
        for (k, api) in WORKLOAD_KINDS {
            assert_eq!(k.as_str(), api.kind);
            assert_eq!(workload(k), &api);
            let group = api.group;
            assert_eq!(WorkloadKind::from_group_kind(group, api.kind), Some(k));
        }
        assert_eq!(workload(WorkloadKind::Pod).api_version(), "v1");
        assert_eq!(workload_rank(WorkloadKind::Deployment), 0);
        assert_eq!(workload_rank(WorkloadKind::Pod), 7);
    }
}
