//! The baseline reconciler: keeps `baseline::desired` in every managed
//! namespace (server-side apply, field manager `netpol-guard`), restores an
//! edited or deleted baseline policy within seconds (it watches the generated
//! policies, not only namespaces), removes the baseline when a namespace stops
//! being managed (`baseline.onUnmanage`), re-applies everything when the
//! config changes, and resyncs every namespace periodically.
//!
//! Names are fixed, so restarts never create duplicates, and only the
//! replica holding the Lease (`leader`) writes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::baseline::{self, ALLOW_DNS, DEFAULT_DENY};
use crate::cluster::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::config::{MODE_LABEL, Mode, OnUnmanage};
use crate::leader::Leadership;
use crate::server::AppState;

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "netpol-guard";
/// Every namespace is reconciled again this often, whatever happens.
const RESYNC: Duration = Duration::from_secs(300);
/// A failed reconcile is retried after this long.
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("API error on {what}: {source}")]
    Api { what: String, source: kube::Error },
}

struct Ctx {
    client: Client,
    state: Arc<AppState>,
    leadership: Leadership,
}

/// Runs the reconciler until the process ends. It writes only while this
/// replica is the leader; becoming leader reconciles every namespace.
pub fn spawn(client: Client, state: Arc<AppState>, leadership: Leadership) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let policies: Api<NetworkPolicy> = Api::all(client.clone());
    let generated =
        watcher::Config::default().labels(&format!("{MANAGED_BY_KEY}={MANAGED_BY_VALUE}"));
    let config_changes = futures::stream::unfold(state.settings_changes(), |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let became_leader = futures::stream::unfold(leadership.changes(), |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            if *rx.borrow_and_update() {
                return Some(((), rx));
            }
        }
    });
    let triggers = futures::stream::select(config_changes, became_leader);
    let ctx = Arc::new(Ctx {
        client,
        state,
        leadership,
    });
    let controller = Controller::new(namespaces, watcher::Config::default())
        .watches(policies, generated, |np| {
            np.metadata
                .namespace
                .map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .reconcile_all_on(triggers)
        .run(reconcile, error_policy, ctx);
    tokio::spawn(controller.for_each(|_| async {}));
}

fn error_policy(_ns: Arc<Namespace>, e: &GenerateError, ctx: Arc<Ctx>) -> Action {
    ctx.state
        .metrics
        .inc("netpol_guard_reconcile_total", &[("result", "error")]);
    tracing::warn!(error = %e, "baseline reconcile failed; retrying");
    Action::requeue(RETRY)
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, GenerateError> {
    let name = ns.name_any();
    if !ctx.leadership.is_leader() {
        // Another replica reconciles; gaining leadership reconciles all.
        return Ok(Action::requeue(RESYNC));
    }
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let settings = ctx.state.settings();
    let labels = ns.labels();
    let managed = !settings.is_excluded(&name) && settings.managed_selector.matches(labels);
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &name);
    if managed {
        let mode = labels
            .get(MODE_LABEL)
            .and_then(|m| Mode::parse(m))
            .unwrap_or(settings.config.mode);
        let desired = baseline::desired(&name, &settings, mode);
        for want in &desired {
            let policy = want
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let stored = get(&api, policy).await?;
            let action = match &stored {
                None => "created",
                Some(s) if baseline::drifted(s, want) => "restored",
                Some(_) => continue,
            };
            if !ctx.leadership.is_leader() {
                return Ok(Action::requeue(RESYNC));
            }
            api.patch(
                policy,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(want),
            )
            .await
            .map_err(|source| GenerateError::Api {
                what: format!("apply {name}/{policy}"),
                source,
            })?;
            ctx.state
                .metrics
                .inc("netpol_guard_baseline_changes_total", &[("action", action)]);
            tracing::info!(namespace = %name, policy, action, mode = mode.as_str(), "baseline policy written");
        }
        if mode == Mode::Audit {
            // Audit mode must not enforce: no default-deny.
            delete_ours(&ctx, &api, &name, DEFAULT_DENY).await?;
        }
    } else if settings.config.baseline.on_unmanage == OnUnmanage::Delete {
        for policy in [DEFAULT_DENY, ALLOW_DNS] {
            delete_ours(&ctx, &api, &name, policy).await?;
        }
    }
    ctx.state
        .metrics
        .inc("netpol_guard_reconcile_total", &[("result", "ok")]);
    Ok(Action::requeue(RESYNC))
}

async fn get(api: &Api<NetworkPolicy>, name: &str) -> Result<Option<Value>, GenerateError> {
    let found = api
        .get_opt(name)
        .await
        .map_err(|source| GenerateError::Api {
            what: format!("get {name}"),
            source,
        })?;
    Ok(found.and_then(|p| serde_json::to_value(p).ok()))
}

/// Deletes a baseline policy if it exists and carries netpol-guard's label
/// (a user's policy that happens to have the name is left alone).
async fn delete_ours(
    ctx: &Ctx,
    api: &Api<NetworkPolicy>,
    ns: &str,
    name: &str,
) -> Result<(), GenerateError> {
    let Some(stored) = get(api, name).await? else {
        return Ok(());
    };
    if !ctx.leadership.is_leader() {
        return Ok(());
    }
    if !crate::cluster::is_baseline(&stored) {
        return Ok(());
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(source) => {
            return Err(GenerateError::Api {
                what: format!("delete {ns}/{name}"),
                source,
            });
        }
    }
    ctx.state.metrics.inc(
        "netpol_guard_baseline_changes_total",
        &[("action", "deleted")],
    );
    tracing::info!(namespace = ns, policy = name, "baseline policy deleted");
    Ok(())
}
