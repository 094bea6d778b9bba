//! Whether netpol-guard's own identity may write the configured extra
//! baseline policies. RBAC limits its update, patch and delete of
//! NetworkPolicies to the baseline's names (`resourceNames` in
//! manifests/rbac.yaml); a name added in `baseline.extraPolicies` but not
//! there fails every reconcile. So at start-up, and whenever the configured
//! names change, each one is asked of the API server (a
//! SelfSubjectAccessReview per name and verb, which any authenticated
//! identity may create) and a WARN line names each verb refused.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::config::store::SettingsStore;

/// The verbs the generator uses on an existing baseline policy: apply
/// (patch), take over (update), delete.
pub const VERBS: [&str; 3] = ["patch", "update", "delete"];

/// Checks the configured extra policies' names now (once the config is
/// loaded) and again whenever they change, until the process ends.
pub fn spawn(client: Client, settings: SettingsStore) {
    tokio::spawn(async move {
        let mut changes = settings.changes();
        let mut checked: Option<Vec<String>> = None;
        loop {
            if settings.ready() {
                let names: Vec<String> = settings
                    .get()
                    .extra_baseline
                    .iter()
                    .map(|e| e.name.clone())
                    .collect();
                if checked.as_ref() != Some(&names) {
                    for name in &names {
                        check(&client, name).await;
                    }
                    checked = Some(names);
                }
            }
            // A change, or a look at `ready` again a little later.
            if let Ok(Err(_)) =
                tokio::time::timeout(Duration::from_secs(2), changes.changed()).await
            {
                return;
            }
        }
    });
}

/// Asks whether this identity may use each of [`VERBS`] on NetworkPolicy
/// `name` in every namespace, and logs a WARN for those it may not.
async fn check(client: &Client, name: &str) {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut refused = Vec::new();
    for verb in VERBS {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some("networking.k8s.io".into()),
                    resource: Some("networkpolicies".into()),
                    verb: Some(verb.into()),
                    name: Some(name.into()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(answer) if answer.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => refused.push(verb),
            Err(e) => {
                tracing::warn!(policy = name, error = %crate::cluster::apierror::describe(&e),
                    "cannot check whether netpol-guard may write this extra baseline policy (SelfSubjectAccessReview)");
                return;
            }
        }
    }
    if !refused.is_empty() {
        tracing::warn!(policy = name, refused = refused.join(","), "{REFUSED}");
    }
}

/// The WARN line's message (the policy and the refused verbs are fields).
pub const REFUSED: &str = "netpol-guard's ServiceAccount may not write this extra baseline policy \
    (baseline.extraPolicies): add its name to the resourceNames of the update/patch/delete rule of the \
    netpol-guard ClusterRole (manifests/rbac.yaml), or it cannot be created, restored or removed";
