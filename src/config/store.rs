//! The settings in force, shared by everything that reads them. Replaced
//! whole on reload; readers clone the `Arc` and never hold a lock across
//! work. Subscribers (the generator) are told of every change.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::Settings;

struct Shared {
    settings: RwLock<Arc<Settings>>,
    /// A config has been loaded (file, ConfigMap, or the built-in default).
    ready: AtomicBool,
    /// Bumped on every change.
    generation: tokio::sync::watch::Sender<u64>,
}

/// The settings in force. Cheap to clone.
#[derive(Clone)]
pub struct SettingsStore(Arc<Shared>);

impl SettingsStore {
    /// Starts from `settings`, not yet marked loaded.
    pub fn new(settings: Settings) -> Self {
        Self(Arc::new(Shared {
            settings: RwLock::new(Arc::new(settings)),
            ready: AtomicBool::new(false),
            generation: tokio::sync::watch::Sender::new(0),
        }))
    }

    pub fn get(&self) -> Arc<Settings> {
        match self.0.settings.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the settings (marking them loaded); the next reader gets them.
    pub fn set(&self, settings: Settings) {
        let new = Arc::new(settings);
        match self.0.settings.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
        self.0.ready.store(true, Ordering::SeqCst);
        self.0.generation.send_modify(|g| *g += 1);
    }

    /// Notified on every change.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.generation.subscribe()
    }

    pub fn ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst)
    }

    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::SeqCst);
    }
}
