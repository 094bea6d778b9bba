//! What the generator knows of the policies it generated without asking
//! the API server: a watch of the policies that carry its managed-by label,
//! indexed per namespace, plus this replica's own writes that the watch has
//! not delivered yet.
//!
//! Reconciling a namespace used to GET each baseline policy and LIST the
//! labelled ones, every time: 16 to 20 requests per newly managed
//! namespace, counting the reconciles its own writes trigger, and 2,000
//! namespaces labelled at once took 2 minutes to converge
//! (docs/benchmarks.md, issue 16). From this index, a namespace whose
//! baseline is in place costs no request, and a new one only its writes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use crate::logging::lock_ignoring_poison;

/// How long a write of this replica stands in for the watch. A watch event
/// follows a write within milliseconds; should one be lost (a watch that
/// relisted past it), the index is trusted again after this.
const WRITE_STANDS_FOR: Duration = Duration::from_secs(30);

/// Namespace -> policy name -> the policy, cut down (`slim`), as JSON
/// text: a reconcile parses the two or three it reads, and a JSON tree per
/// policy would cost several times the memory (what the live view's model
/// paid, docs/benchmarks.md).
type ByNamespace = HashMap<String, BTreeMap<String, Box<str>>>;

/// The generated policies, as the watch last delivered them.
pub struct Generated {
    inner: Mutex<Inner>,
    /// Turns true when the watch has listed once.
    synced: tokio::sync::watch::Sender<bool>,
}

impl Default for Generated {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            synced: tokio::sync::watch::Sender::new(false),
        }
    }
}

#[derive(Default)]
struct Inner {
    listed: ByNamespace,
    /// A (re)list in progress: it replaces `listed` whole when it ends, so
    /// a policy deleted while the watch was down goes too.
    relist: Option<ByNamespace>,
    /// This replica's writes not yet delivered by the watch: without them
    /// a reconcile that runs right after one would take a policy it has
    /// just created for a missing one, write it again and report it twice.
    written: HashMap<(String, String), (Instant, Value)>,
}

impl Generated {
    /// Follows one watch event. Called before the event triggers a
    /// reconcile, so the reconcile it triggers sees it.
    pub fn observe(&self, event: &Event<NetworkPolicy>) {
        let mut inner = lock_ignoring_poison(&self.inner);
        match event {
            Event::Init => inner.relist = Some(ByNamespace::new()),
            Event::InitApply(p) => {
                if let (Some(relist), Some((ns, name, v))) = (inner.relist.as_mut(), slim(p)) {
                    relist.entry(ns).or_default().insert(name, v);
                }
            }
            Event::InitDone => {
                inner.listed = inner.relist.take().unwrap_or_default();
                self.synced.send_replace(true);
                // The list is the truth as of its end; writes after it
                // arrive as events.
                inner.written.clear();
            }
            Event::Apply(p) => {
                if let Some((ns, name, v)) = slim(p) {
                    inner.written.remove(&(ns.clone(), name.clone()));
                    inner.listed.entry(ns).or_default().insert(name, v);
                }
            }
            Event::Delete(p) => {
                if let (Some(ns), Some(name)) =
                    (p.metadata.namespace.clone(), p.metadata.name.clone())
                {
                    inner.written.remove(&(ns.clone(), name.clone()));
                    if let Some(m) = inner.listed.get_mut(&ns) {
                        m.remove(&name);
                        if m.is_empty() {
                            inner.listed.remove(&ns);
                        }
                    }
                }
            }
        }
    }

    /// Waits up to `timeout` for the watch's first list: the first
    /// reconciles start with it, and would otherwise fail and back off.
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.subscribe();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|synced| *synced)).await,
            Ok(Ok(_))
        )
    }

    /// Records a policy this replica has just written (the API server's
    /// answer), until the watch delivers it.
    pub fn wrote(&self, ns: &str, name: &str, obj: &Value, now: Instant) {
        let mut inner = lock_ignoring_poison(&self.inner);
        inner
            .written
            .retain(|_, (at, _)| now.saturating_duration_since(*at) < WRITE_STANDS_FOR);
        if let Some(v) = slim_value(obj) {
            inner.written.insert((ns.into(), name.into()), (now, v));
        }
    }

    /// Policy `name` of `ns` carrying the managed-by label, as this
    /// replica last wrote it or else as the watch last delivered it.
    pub fn get(&self, ns: &str, name: &str, now: Instant) -> Option<Value> {
        lock_ignoring_poison(&self.inner).get(ns, name, now)
    }

    /// Every policy of `ns` carrying the managed-by label.
    pub fn in_namespace(&self, ns: &str, now: Instant) -> Vec<Value> {
        let inner = lock_ignoring_poison(&self.inner);
        let mut names: Vec<&String> = inner
            .listed
            .get(ns)
            .into_iter()
            .flatten()
            .map(|(n, _)| n)
            .collect();
        for ((wns, name), (at, _)) in &inner.written {
            if wns == ns && now.saturating_duration_since(*at) < WRITE_STANDS_FOR {
                names.push(name);
            }
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|n| inner.get(ns, n, now))
            .collect()
    }
}

impl Inner {
    fn get(&self, ns: &str, name: &str, now: Instant) -> Option<Value> {
        match self.fresh_write(ns, name, now) {
            Some(v) => Some(v.clone()),
            None => self
                .listed
                .get(ns)
                .and_then(|m| m.get(name))
                .and_then(|text| serde_json::from_str(text).ok()),
        }
    }

    fn fresh_write(&self, ns: &str, name: &str, now: Instant) -> Option<&Value> {
        self.written
            .get(&(ns.to_string(), name.to_string()))
            .filter(|(at, _)| now.saturating_duration_since(*at) < WRITE_STANDS_FOR)
            .map(|(_, v)| v)
    }
}

/// A watched policy: its namespace, name, and what the reconciler reads
/// (JSON text).
fn slim(p: &NetworkPolicy) -> Option<(String, String, Box<str>)> {
    let ns = p.metadata.namespace.clone()?;
    let name = p.metadata.name.clone()?;
    let v = slim_value(&serde_json::to_value(p).ok()?)?;
    Some((ns, name, v.to_string().into_boxed_str()))
}

/// What `baseline::exactly_as_desired` and `baseline::is_ours` read of a
/// policy: its name, namespace, labels, annotations and spec, and of each
/// managedFields entry its manager and whether it owns part of the spec
/// (the field sets themselves are most of an object's bytes).
fn slim_value(obj: &Value) -> Option<Value> {
    let meta = obj.get("metadata")?;
    let mut m = serde_json::Map::new();
    for key in ["name", "namespace", "labels", "annotations"] {
        if let Some(v) = meta.get(key) {
            m.insert(key.into(), v.clone());
        }
    }
    if let Some(entries) = meta.get("managedFields").and_then(Value::as_array) {
        let entries: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut out = json!({"manager": e.get("manager").cloned().unwrap_or(Value::Null)});
                if e.pointer("/fieldsV1/f:spec").is_some() {
                    out["fieldsV1"] = json!({"f:spec": {}});
                }
                out
            })
            .collect();
        m.insert("managedFields".into(), Value::Array(entries));
    }
    let mut out = json!({"metadata": Value::Object(m)});
    if let Some(spec) = obj.get("spec") {
        out["spec"] = spec.clone();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ns: &str, name: &str, port: u16) -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns,
                "labels": {"app.kubernetes.io/managed-by": "netpol-guard"},
                "managedFields": [{"manager": "netpol-guard", "operation": "Apply",
                    "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {"f:podSelector": {}}}}]},
            "spec": {"podSelector": {}, "egress": [{"ports": [{"port": port}]}]}}))
        .unwrap()
    }

    #[test]
    fn a_relist_replaces_the_index_whole_and_marks_it_synced() {
        let g = Generated::default();
        let now = Instant::now();
        g.observe(&Event::Apply(policy("a", "netpol-guard-allow-dns", 53)));
        assert!(!*g.synced.borrow());
        g.observe(&Event::Init);
        g.observe(&Event::InitApply(policy(
            "b",
            "netpol-guard-default-deny",
            1,
        )));
        // Until the list ends, the index is the old one.
        assert!(g.get("a", "netpol-guard-allow-dns", now).is_some());
        g.observe(&Event::InitDone);
        assert!(*g.synced.borrow());
        assert_eq!(g.get("a", "netpol-guard-allow-dns", now), None);
        let b = g.get("b", "netpol-guard-default-deny", now).unwrap();
        assert_eq!(
            b,
            json!({"metadata": {"name": "netpol-guard-default-deny", "namespace": "b",
                    "labels": {"app.kubernetes.io/managed-by": "netpol-guard"},
                    "managedFields": [{"manager": "netpol-guard", "fieldsV1": {"f:spec": {}}}]},
                "spec": {"podSelector": {}, "egress": [{"ports": [{"port": 1}]}]}})
        );
    }

    #[test]
    fn an_own_write_stands_until_the_watch_delivers_it_or_it_grows_old() {
        let g = Generated::default();
        let t0 = Instant::now();
        g.observe(&Event::Init);
        g.observe(&Event::InitDone);
        let written = serde_json::to_value(policy("a", "netpol-guard-allow-dns", 53)).unwrap();
        g.wrote("a", "netpol-guard-allow-dns", &written, t0);
        assert_eq!(
            g.get("a", "netpol-guard-allow-dns", t0).unwrap()["spec"]["egress"][0]["ports"][0]["port"],
            53
        );
        assert_eq!(g.in_namespace("a", t0).len(), 1);
        // Past its time, the (empty) index is the truth again.
        assert_eq!(
            g.get("a", "netpol-guard-allow-dns", t0 + WRITE_STANDS_FOR),
            None
        );
        assert!(g.in_namespace("a", t0 + WRITE_STANDS_FOR).is_empty());
        // The watch delivers a later version (someone edited it): the
        // watch wins from then on.
        g.wrote("a", "netpol-guard-allow-dns", &written, t0);
        g.observe(&Event::Apply(policy("a", "netpol-guard-allow-dns", 5353)));
        assert_eq!(
            g.get("a", "netpol-guard-allow-dns", t0).unwrap()["spec"]["egress"][0]["ports"][0]["port"],
            5353
        );
        // Deleted: gone, write or not.
        g.wrote("a", "netpol-guard-allow-dns", &written, t0);
        g.observe(&Event::Delete(policy("a", "netpol-guard-allow-dns", 5353)));
        assert_eq!(g.get("a", "netpol-guard-allow-dns", t0), None);
        assert!(g.in_namespace("a", t0).is_empty());
    }
}
