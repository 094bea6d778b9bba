//! Prometheus metrics, rendered in the text exposition format.
//!
//! Label values come from a fixed vocabulary (kinds outside the ones
//! netpol-guard judges are counted as `other`), so a client cannot grow the
//! series without bound by sending made-up kinds. The one open label,
//! `namespace`, only takes namespaces the cluster has.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

const KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "NetworkPolicy",
    "CiliumNetworkPolicy",
    "CiliumClusterwideNetworkPolicy",
    "Namespace",
];
const OPERATIONS: &[&str] = &["CREATE", "UPDATE", "DELETE", "CONNECT"];

/// A latency histogram over `BUCKETS`.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                self.buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Connections closed at once because `--max-connections` were open (one
/// listener per process, so one process-wide count).
pub static REFUSED_CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// The decision a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    Allowed,
    Warned,
    Denied,
    /// Allowed with a JSON Patch (the namespace mutation).
    Patched,
    /// The body was not an AdmissionReview (HTTP 400/413).
    Rejected,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Warned => "warned",
            Self::Denied => "denied",
            Self::Patched => "patched",
            Self::Rejected => "rejected",
        }
    }
}

/// endpoint, kind, operation, decision.
type RequestKey = (&'static str, &'static str, &'static str, Decision);

/// Labelled counters besides the request counter: name, help.
const COUNTERS: &[(&str, &str)] = &[
    (
        "netpol_guard_rule_findings_total",
        "Findings by rule id and effective action.",
    ),
    (
        "netpol_guard_audit_would_deny_total",
        "Requests audit mode let through that enforce mode would deny, by rule and namespace.",
    ),
    (
        "netpol_guard_watch_restarts_total",
        "Errors that restarted a watch of the API server, by resource.",
    ),
    (
        "netpol_guard_live_rereads_total",
        "Live re-reads of a namespace before a require-network-policy denial or a baseline-protected denial of a DELETE, by result (confirmed, overturned, error).",
    ),
    (
        "netpol_guard_live_reads_total",
        "Where the namespace snapshot behind each live re-read came from: read (this request read the API server), shared (a read another request started after this one arrived), reused (a read less than liveReadReuseMillis old).",
    ),
    (
        "netpol_guard_config_reloads_total",
        "Configuration reloads, by result (applied, invalid).",
    ),
    (
        "netpol_guard_reconcile_total",
        "Baseline reconciles of a namespace, by result (ok, error).",
    ),
    (
        "netpol_guard_tls_reloads_total",
        "Changes of the certificate files seen, by result (applied, invalid: the previous pair stays).",
    ),
    (
        "netpol_guard_policy_report_runs_total",
        "Background audits (leader only), by result (written, crd_absent: the PolicyReport CRDs are not installed, error).",
    ),
    (
        "netpol_guard_shed_requests_total",
        "Admission requests answered 503 because --max-in-flight were already being judged, by endpoint.",
    ),
    (
        "netpol_guard_baseline_changes_total",
        "Baseline policies written or removed, by action (created, restored, taken_over, deleted, released).",
    ),
    (
        "netpol_guard_event_failures_total",
        "Events the API server did not accept, by Event reason (BaselineCreated, BaselineRestored, BaselineImpact, InvalidConfig).",
    ),
    (
        "netpol_guard_list_skipped_total",
        "Workload or policy kinds skipped because the API server refused to list them (404, 403), by resource.",
    ),
];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    /// Labelled counters: name, then the rendered labels (`rule="x",...`).
    counters: Mutex<BTreeMap<&'static str, BTreeMap<String, u64>>>,
    /// Uncovered workloads per managed namespace (generator impact report).
    uncovered: Mutex<BTreeMap<String, u64>>,
    /// Namespaces whose baseline reconcile failed several times in a row.
    reconcile_failing: AtomicU64,
    reconcile_count: AtomicU64,
    reconcile_nanos: AtomicU64,
    /// From the request's arrival to its answer.
    admission: Histogram,
    /// From the request's body read to its answer: what netpol-guard does
    /// (parsing, judging, a live read), without waiting for the client's
    /// bytes, which over HTTP/2 on a busy API server can take longer than
    /// the rest (issue 16).
    judging: Histogram,
}

/// Escapes a label value for the text exposition format.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    escape_into(&mut out, v);
    out
}

/// Appends `v` to `out`, escaped for the text exposition format.
fn escape_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `k1="v1",k2="v2"`: the labels as rendered, and as counters are keyed.
fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>(),
    );
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_into(&mut out, v);
        out.push('"');
    }
    out
}

fn known(list: &[&'static str], v: &str) -> &'static str {
    list.iter().find(|k| **k == v).copied().unwrap_or("other")
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one admission request on `endpoint`.
    pub fn observe(
        &self,
        endpoint: &'static str,
        kind: &str,
        operation: &str,
        decision: Decision,
        took: Duration,
    ) {
        let key = (
            endpoint,
            known(KINDS, kind),
            known(OPERATIONS, operation),
            decision,
        );
        if let Ok(mut m) = self.requests.lock() {
            *m.entry(key).or_default() += 1;
        }
        self.admission.observe(took);
    }

    /// Records the time from a request's body read to its answer.
    pub fn observe_judging(&self, took: Duration) {
        self.judging.observe(took);
    }

    /// Counts a finding by rule id and effective action.
    pub fn finding(&self, rule: &'static str, action: &'static str) {
        self.inc(
            "netpol_guard_rule_findings_total",
            &[("rule", rule), ("action", action)],
        );
    }

    /// Adds one to a labelled counter (`name` must be listed in `COUNTERS`).
    pub fn inc(&self, name: &'static str, labels: &[(&str, &str)]) {
        debug_assert!(
            COUNTERS.iter().any(|(n, _)| *n == name),
            "{name} is not listed in COUNTERS, so it would never be rendered"
        );
        let rendered = render_labels(labels);
        if let Ok(mut m) = self.counters.lock() {
            let series = m.entry(name).or_default();
            match series.get_mut(rendered.as_str()) {
                Some(n) => *n += 1,
                None => {
                    series.insert(rendered, 1);
                }
            }
        }
    }

    /// Records how many existing workloads no policy covers in `namespace`.
    pub fn set_uncovered(&self, namespace: &str, n: usize) {
        if let Ok(mut m) = self.uncovered.lock() {
            m.insert(namespace.to_string(), n as u64);
        }
    }

    /// Drops a namespace's uncovered-workloads series (it is gone, or no
    /// longer managed), so the gauge does not report it forever.
    pub fn forget_uncovered(&self, namespace: &str) {
        if let Ok(mut m) = self.uncovered.lock() {
            m.remove(namespace);
        }
    }

    /// Sets how many namespaces' baseline reconciles keep failing.
    pub fn set_reconcile_failing(&self, n: usize) {
        self.reconcile_failing
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Records the duration of one baseline reconcile.
    pub fn reconcile_took(&self, took: Duration) {
        self.reconcile_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.reconcile_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The current value of a labelled counter (for tests and logs).
    pub fn get(&self, name: &'static str, labels: &[(&str, &str)]) -> u64 {
        let rendered = render_labels(labels);
        self.counters
            .lock()
            .ok()
            .and_then(|m| m.get(name)?.get(rendered.as_str()).copied())
            .unwrap_or(0)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP netpol_guard_admission_requests_total Admission requests by endpoint, kind, operation and decision.\n");
        out.push_str("# TYPE netpol_guard_admission_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((endpoint, kind, op, decision), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "netpol_guard_admission_requests_total{{endpoint=\"{endpoint}\",kind=\"{kind}\",operation=\"{op}\",decision=\"{}\"}} {n}",
                    decision.as_str()
                );
            }
        }
        if let Ok(m) = self.counters.lock() {
            for (name, help) in COUNTERS {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (labels, n) in m.get(name).into_iter().flatten() {
                    let _ = writeln!(out, "{name}{{{labels}}} {n}");
                }
            }
        }
        self.admission.render(
            "netpol_guard_admission_duration_seconds",
            "Time from request received to response ready.",
            &mut out,
        );
        self.judging.render(
            "netpol_guard_admission_judging_seconds",
            "Time from request body read to response ready (without waiting for the client's bytes).",
            &mut out,
        );
        out.push_str("# HELP netpol_guard_reconcile_duration_seconds Time spent reconciling namespaces' baselines.\n");
        out.push_str("# TYPE netpol_guard_reconcile_duration_seconds summary\n");
        let _ = writeln!(
            out,
            "netpol_guard_reconcile_duration_seconds_sum {}\nnetpol_guard_reconcile_duration_seconds_count {}",
            self.reconcile_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            self.reconcile_count.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP netpol_guard_reconcile_failing_namespaces Managed namespaces whose baseline reconcile failed 3 or more times in a row (each may be missing its baseline).\n# TYPE netpol_guard_reconcile_failing_namespaces gauge\nnetpol_guard_reconcile_failing_namespaces {}",
            self.reconcile_failing.load(Ordering::Relaxed)
        );
        out.push_str("# HELP netpol_guard_uncovered_workloads Existing workloads in a managed namespace that no policy covers (what default-deny isolates).\n");
        out.push_str("# TYPE netpol_guard_uncovered_workloads gauge\n");
        if let Ok(m) = self.uncovered.lock() {
            for (ns, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "netpol_guard_uncovered_workloads{{namespace=\"{}\"}} {n}",
                    escape(ns)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP netpol_guard_refused_connections_total Connections closed as they were accepted because --max-connections were open.\n# TYPE netpol_guard_refused_connections_total counter\nnetpol_guard_refused_connections_total {}",
            REFUSED_CONNECTIONS.load(Ordering::Relaxed)
        );
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_bounded_labels_and_histogram() {
        let m = Metrics::new();
        m.observe(
            "/validate",
            "Deployment",
            "CREATE",
            Decision::Denied,
            Duration::from_micros(300),
        );
        m.observe(
            "/validate",
            "Deployment",
            "CREATE",
            Decision::Denied,
            Duration::from_millis(2),
        );
        m.observe(
            "/validate",
            "MadeUp",
            "PATCH",
            Decision::Allowed,
            Duration::from_secs(3),
        );
        m.finding("world-cidr", "deny");
        let text = m.render(&[("netpol_guard_ready", "1 when ready.", 1.0)]);
        assert!(text.contains("netpol_guard_admission_requests_total{endpoint=\"/validate\",kind=\"Deployment\",operation=\"CREATE\",decision=\"denied\"} 2\n"), "{text}");
        assert!(
            text.contains("kind=\"other\",operation=\"other\",decision=\"allowed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "netpol_guard_rule_findings_total{rule=\"world-cidr\",action=\"deny\"} 1\n"
            )
        );
        assert!(
            text.contains("netpol_guard_admission_duration_seconds_bucket{le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("netpol_guard_admission_duration_seconds_bucket{le=\"0.0025\"} 2\n"));
        assert!(text.contains("netpol_guard_admission_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("netpol_guard_admission_duration_seconds_count 3\n"));
        assert!(text.contains("# TYPE netpol_guard_ready gauge\nnetpol_guard_ready 1\n"));
        // The judging histogram is apart from the one above.
        assert!(text.contains("netpol_guard_admission_judging_seconds_count 0\n"));
        m.observe_judging(Duration::from_micros(80));
        let text = m.render(&[]);
        assert!(
            text.contains("# TYPE netpol_guard_admission_judging_seconds histogram\nnetpol_guard_admission_judging_seconds_bucket{le=\"0.0001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("netpol_guard_admission_judging_seconds_count 1\n"));
        assert!(text.contains("netpol_guard_admission_duration_seconds_count 3\n"));
    }
}
