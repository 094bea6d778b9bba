//! The published cluster view: one writer, any number of readers (as
//! kube-runtime's reflector splits its `Writer` and `Store`). The watches,
//! or `--state` loading, own the `ViewWriter`; the webhook, the generator
//! and the reporter hold `ViewStore`s and only read. A view is replaced
//! whole: a reader clones the `Arc` it needs and never holds a lock across
//! work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::ClusterView;

struct Shared {
    view: RwLock<Arc<ClusterView>>,
    /// Every required watch has listed once (or the state file was read).
    ready: AtomicBool,
}

/// Reads the latest published view. Cheap to clone.
#[derive(Clone)]
pub struct ViewStore(Arc<Shared>);

/// Publishes views. There is one per store.
pub struct ViewWriter(Arc<Shared>);

/// A writer and its store, starting from `view` (not ready).
pub fn store(view: ClusterView) -> (ViewWriter, ViewStore) {
    let shared = Arc::new(Shared {
        view: RwLock::new(Arc::new(view)),
        ready: AtomicBool::new(false),
    });
    (ViewWriter(shared.clone()), ViewStore(shared))
}

impl ViewStore {
    /// The latest view.
    pub fn view(&self) -> Arc<ClusterView> {
        match self.0.view.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether the view has been filled once.
    pub fn ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst)
    }
}

impl ViewWriter {
    /// Replaces the view readers get.
    pub fn publish(&self, view: Arc<ClusterView>) {
        match self.0.view.write() {
            Ok(mut g) => *g = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
    }

    pub fn set_ready(&self) {
        self.0.ready.store(true, Ordering::SeqCst);
    }

    pub fn ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst)
    }

    /// A reader of this writer's views.
    pub fn store(&self) -> ViewStore {
        ViewStore(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_what_the_writer_publishes() {
        let (writer, reader) = store(ClusterView::new());
        assert!(!reader.ready());
        let mut v = ClusterView::new();
        v.add(&serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}))
            .unwrap();
        writer.publish(Arc::new(v));
        writer.set_ready();
        assert!(reader.ready());
        assert_eq!(reader.view().namespace_count(), 1);
        assert_eq!(writer.store().view().namespace_count(), 1);
    }
}
