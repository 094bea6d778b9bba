//! Configuration sources and hot reload: the `netpol-guard` ConfigMap
//! (watched through the API) or a file (`--config`, polled, e.g. a mounted
//! ConfigMap). A new config applies to the next request; an invalid one is
//! rejected loudly (error log, metric, and an Event on the ConfigMap) and the
//! last good one stays in force.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::events::{Event, EventType};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::config::Settings;
use crate::config::store::SettingsStore;
use crate::metrics::Metrics;

/// The ConfigMap key holding the YAML document.
pub const CONFIG_KEY: &str = "config.yaml";
/// How often a config file is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);

/// Called with the configured log level after each successful reload.
pub type LogLevelHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Applies new config text, or rejects it and keeps the current settings.
/// Returns the error text when rejected.
pub fn apply(
    store: &SettingsStore,
    metrics: &Metrics,
    text: &str,
    source: &str,
    hook: Option<&LogLevelHook>,
) -> Result<(), String> {
    match Settings::from_yaml(text) {
        Ok(parsed) => {
            let warnings = parsed.warnings();
            let level = parsed.config.log_level.clone();
            let mode = parsed.config.mode;
            store.set(parsed);
            metrics.inc(
                "netpol_guard_config_reloads_total",
                &[("result", "applied")],
            );
            if let Some(h) = hook {
                h(&level);
            }
            tracing::info!(source, mode = mode.as_str(), "configuration applied");
            for warning in warnings {
                tracing::warn!(source, "{warning}");
            }
            Ok(())
        }
        Err(e) => {
            metrics.inc(
                "netpol_guard_config_reloads_total",
                &[("result", "invalid")],
            );
            tracing::error!(source, error = %e, "configuration rejected; the last good configuration stays in force");
            Err(e.to_string())
        }
    }
}

/// Polls `path` and applies it whenever its content changes. The first read
/// happened at start-up (a bad file stops start-up there).
pub fn spawn_file_watch(
    path: PathBuf,
    initial: String,
    store: SettingsStore,
    metrics: Arc<Metrics>,
    hook: Option<LogLevelHook>,
) {
    tokio::spawn(async move {
        let mut last = initial;
        let source = path.display().to_string();
        loop {
            tokio::time::sleep(FILE_POLL).await;
            match tokio::fs::read_to_string(&path).await {
                Ok(text) if text != last => {
                    let _ = apply(&store, &metrics, &text, &source, hook.as_ref());
                    last = text;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(source, error = %e, "cannot read the config file; keeping the current configuration")
                }
            }
        }
    });
}

/// Watches ConfigMap `namespace/name` and applies its `config.yaml` on every
/// change. Until it has been listed once, the config is not ready; a missing
/// ConfigMap means the built-in defaults.
pub fn spawn_configmap_watch(
    client: Client,
    namespace: String,
    name: String,
    store: SettingsStore,
    metrics: Arc<Metrics>,
    hook: Option<LogLevelHook>,
) {
    tokio::spawn(async move {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        let source = format!("configmap {namespace}/{name}");
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher(api, cfg).default_backoff().boxed();
        let mut seen_in_init = false;
        let mut last: Option<String> = None;
        while let Some(event) = stream.next().await {
            let cm = match event {
                Err(e) => {
                    metrics.inc(
                        "netpol_guard_watch_restarts_total",
                        &[("resource", "configmaps")],
                    );
                    tracing::warn!(source, error = %crate::cluster::apierror::describe_watch(&e), "config watch failed; retrying with backoff");
                    continue;
                }
                Ok(watcher::Event::Init) => {
                    seen_in_init = false;
                    continue;
                }
                Ok(watcher::Event::InitDone) => {
                    if !seen_in_init && !store.ready() {
                        tracing::info!(source, "ConfigMap not found: using the built-in defaults");
                        store.set_ready(true);
                    }
                    continue;
                }
                Ok(watcher::Event::Delete(_)) => {
                    tracing::warn!(source, "ConfigMap deleted; keeping the last configuration");
                    continue;
                }
                Ok(watcher::Event::InitApply(cm)) => {
                    seen_in_init = true;
                    cm
                }
                Ok(watcher::Event::Apply(cm)) => cm,
            };
            let text = cm
                .data
                .as_ref()
                .and_then(|d| d.get(CONFIG_KEY))
                .cloned()
                .unwrap_or_default();
            if last.as_deref() == Some(text.as_str()) {
                continue;
            }
            last = Some(text.clone());
            match apply(&store, &metrics, &text, &source, hook.as_ref()) {
                Ok(()) => {}
                Err(message) => {
                    if !store.ready() {
                        // A bad config at start-up: run on the defaults, loudly.
                        tracing::error!(
                            source,
                            "starting with the built-in defaults until the ConfigMap is fixed"
                        );
                        store.set_ready(true);
                    }
                    let event = Event {
                        type_: EventType::Warning,
                        reason: "InvalidConfig".into(),
                        note: Some(crate::text::truncate_bytes(
                            &format!("{message}; the last good configuration stays in force"),
                            1000,
                        )),
                        action: "Reload".into(),
                        secondary: None,
                    };
                    crate::cluster::events::record(&client, &metrics, &event, &cm.object_ref(&()))
                        .await;
                }
            }
        }
    });
}
