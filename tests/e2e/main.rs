//! End-to-end suite on a real Kubernetes control plane: kube-apiserver,
//! etcd and kube-controller-manager (tests/e2e/cluster.sh), netpol-guard
//! installed from `manifests/` as shipped (RBAC, ConfigMap, CRDs, webhook
//! configurations with only `clientConfig` pointed at a loopback balancer),
//! two `netpol-guard serve` replicas authenticated with the ServiceAccount's
//! own token. Every journey asserts what kubectl and the API show.
//!
//! Run it with `tests/e2e/run.sh` (builds the control plane once, cached).
//! Plain `cargo test` skips it with a printed reason. Arguments filter the
//! journeys by name: `tests/e2e/run.sh leader`.
//!
//! The journeys run in order on one control plane: each leaves the cluster
//! as it found it (config restored, replicas running), so they can also run
//! alone.

mod apply;
mod balancer;
mod cluster;
mod install;
mod journeys;
mod replica;

use std::panic::AssertUnwindSafe;
use std::time::Instant;

pub use cluster::ControlPlane;
pub use install::Env;

/// One journey: its name and its body. A journey fails by panicking, with
/// the assertion that failed.
pub struct Journey {
    pub name: &'static str,
    pub run: fn(&Env),
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::var_os("NETPOL_GUARD_E2E").is_none() {
        println!(
            "e2e: skipped: the real control plane was not requested. Run tests/e2e/run.sh \
             (it builds kube-apiserver, kube-controller-manager and etcd {} once, then caches them).",
            cluster::K8S_VERSION
        );
        println!("e2e: 0 passed, 0 failed, 1 skipped");
        return;
    }
    // One line per failed assertion, without a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        println!("e2e:   FAILED at {at}: {message}");
    }));
    let selected: Vec<Journey> = journeys::all()
        .into_iter()
        .filter(|j| filters.is_empty() || filters.iter().any(|f| j.name.contains(f.as_str())))
        .collect();
    let started = Instant::now();
    let env = match std::panic::catch_unwind(Env::start) {
        Ok(env) => env,
        Err(_) => {
            println!("e2e: setup failed (see above)");
            println!("e2e: 0 passed, {} failed", selected.len());
            std::process::exit(1);
        }
    };
    println!(
        "e2e: control plane {} and two netpol-guard replicas ready in {:.1} s (logs in {})",
        env.cluster.version,
        started.elapsed().as_secs_f64(),
        env.cluster.dir.display()
    );
    let (mut passed, mut failed) = (0, Vec::new());
    for journey in &selected {
        let t = Instant::now();
        println!("e2e: journey {} ...", journey.name);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (journey.run)(&env)));
        let secs = t.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                println!("e2e: journey {} ok ({secs:.1} s)", journey.name);
                passed += 1;
            }
            Err(_) => {
                println!("e2e: journey {} FAILED ({secs:.1} s)", journey.name);
                failed.push(journey.name);
                // Leave the next journey a working installation.
                env.heal();
            }
        }
    }
    println!(
        "e2e: {} journeys in {:.1} s; logs in {}",
        selected.len(),
        started.elapsed().as_secs_f64(),
        env.cluster.dir.display()
    );
    if !failed.is_empty() {
        println!("e2e: failed: {}", failed.join(", "));
    }
    println!("e2e: {passed} passed, {} failed", failed.len());
    drop(env);
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
