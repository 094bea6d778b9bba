//! Two replicas, one Lease holder: handovers on SIGTERM, SIGSTOP and hung
//! API calls, and never two writers.

use std::time::{Duration, Instant};

use netpol_guard::baseline::{ALLOW_DNS, DEFAULT_DENY};

use crate::cluster::{eventually, stderr};
use crate::install::{Env, SERVICE_ACCOUNT};
use crate::replica::Replica;

/// How long the Lease is valid without renewal (`leader::LEASE_DURATION`).
const LEASE: Duration = Duration::from_secs(15);

/// Deletes a baseline policy as netpol-guard's own identity (the only one
/// baseline-protected lets through), so the leader has something to write.
fn drift(env: &Env, ns: &str) {
    let out = env.cluster.kubectl(&[
        "--as",
        SERVICE_ACCOUNT,
        "delete",
        "networkpolicy",
        "-n",
        ns,
        ALLOW_DNS,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A replica's baseline writes in namespace `ns`, after log line `skip`
/// (a config change restored by an earlier journey may rewrite others).
fn writes(r: &Replica, skip: usize, ns: &str) -> usize {
    r.logged(skip, "baseline policy written")
        .iter()
        .filter(|l| l["namespace"] == ns)
        .count()
}

pub fn one_lease_holder_and_only_it_writes(env: &Env) {
    let leader = env.wait_leader(Duration::from_secs(20));
    let follower = env.other(&leader.name);
    let (l0, f0) = (leader.logs().len(), follower.logs().len());
    env.namespace("lease-a", true, None);
    env.wait_baseline(
        "lease-a",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    assert_eq!(
        writes(leader, l0, "lease-a"),
        2,
        "the leader wrote both policies"
    );
    assert_eq!(
        follower.logged(f0, "baseline policy written").len(),
        0,
        "the follower wrote nothing, anywhere"
    );
    assert_eq!(env.lease_holder().as_deref(), Some(leader.name.as_str()));
}

pub fn sigterm_releases_the_lease(env: &Env) {
    let leader = env.wait_leader(Duration::from_secs(20));
    let follower = env.other(&leader.name);
    let old = leader.name.clone();
    let started = Instant::now();
    leader.terminate();
    let new = eventually(
        Duration::from_secs(5),
        "the other replica to lead within 5 s",
        || env.lease_holder().filter(|h| *h != old),
    );
    println!(
        "e2e:   {new} leads {:.1} s after SIGTERM to {old}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(new, follower.name);
    assert!(
        !leader.logged(0, "lease released").is_empty(),
        "the leader logged releasing the Lease"
    );
    leader.start();
    assert_eq!(env.lease_holder().as_deref(), Some(follower.name.as_str()));
}

pub fn sigstop_hands_over_and_the_stopped_one_writes_nothing(env: &Env) {
    env.namespace("lease-b", true, None);
    env.wait_baseline(
        "lease-b",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    let stopped = env.wait_leader(Duration::from_secs(20));
    let other = env.other(&stopped.name);
    let index = env.index(&stopped.name);
    let started = Instant::now();
    stopped.sigstop();
    // Its readiness probe would fail: the Service stops sending it requests.
    env.balancer.disable(index);
    std::thread::sleep(Duration::from_millis(300));
    let skip = stopped.logs().len();
    // Work for a leader while it is stopped.
    drift(env, "lease-b");
    let new = eventually(
        LEASE + Duration::from_secs(4),
        "the other replica to take over",
        || env.lease_holder().filter(|h| *h != stopped.name),
    );
    let took = started.elapsed();
    println!(
        "e2e:   {new} leads {:.1} s after SIGSTOP",
        took.as_secs_f64()
    );
    assert_eq!(new, other.name);
    // Lease duration plus one renew period (2 s), plus what this test's
    // measuring costs: its 100 ms polling, each poll a kubectl call, and
    // the follower's own request latency on a busy machine.
    assert!(
        took <= LEASE + Duration::from_secs(2) + Duration::from_millis(1500),
        "takeover took {took:?}"
    );
    env.wait_baseline(
        "lease-b",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    // Resumed: it must not write before it holds the Lease again.
    let resume_skip = stopped.logs().len();
    assert_eq!(resume_skip, skip, "a stopped process logs nothing");
    stopped.sigcont();
    stopped.wait_ready();
    env.balancer.enable(index);
    drift(env, "lease-b");
    env.wait_baseline(
        "lease-b",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<serde_json::Value> = stopped.logs().into_iter().skip(skip).collect();
    let first_write = after
        .iter()
        .position(|l| l["message"] == "baseline policy written");
    let regained = after
        .iter()
        .position(|l| l["message"] == "leadership changed" && l["leader"] == true);
    if let Some(w) = first_write {
        assert!(
            regained.is_some_and(|g| g < w),
            "{} wrote after SIGCONT before it held the Lease again: {:?}",
            stopped.name,
            after[w]
        );
    }
    assert_eq!(env.lease_holder().as_deref(), Some(other.name.as_str()));
}

pub fn hung_api_calls_end_leadership(env: &Env) {
    env.namespace("lease-c", true, None);
    env.wait_baseline(
        "lease-c",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    let leader = env.wait_leader(Duration::from_secs(20));
    let other = env.other(&leader.name);
    let index = env.index(&leader.name);
    let skip = leader.logs().len();
    let other_skip = other.logs().len();
    let started = Instant::now();
    env.links[index].pause();
    // Its Lease calls now hang. Within the Lease duration it must stop
    // acting as leader, before the other may take over.
    let lost = eventually(
        LEASE + Duration::from_secs(5),
        "the hung leader to step down",
        || {
            leader
                .logged(skip, "leadership changed")
                .into_iter()
                .find(|l| l["leader"] == false)
        },
    );
    let stepped_down = started.elapsed();
    let gained = eventually(
        LEASE + Duration::from_secs(6),
        "the other replica to lead",
        || {
            other
                .logged(other_skip, "leadership changed")
                .into_iter()
                .find(|l| l["leader"] == true)
        },
    );
    println!(
        "e2e:   hung leader stepped down after {:.1} s; {} took over",
        stepped_down.as_secs_f64(),
        other.name
    );
    assert!(stepped_down < LEASE, "stepped down after {stepped_down:?}");
    let ts = |l: &serde_json::Value| l["timestamp"].as_str().unwrap_or_default().to_string();
    assert!(
        ts(&lost) < ts(&gained),
        "never two leaders: lost at {}, gained at {}",
        ts(&lost),
        ts(&gained)
    );
    // Work while it hangs goes to the new leader only.
    drift(env, "lease-c");
    env.wait_baseline(
        "lease-c",
        &[ALLOW_DNS, DEFAULT_DENY],
        Duration::from_secs(15),
    );
    env.links[index].resume();
    assert_eq!(env.lease_holder().as_deref(), Some(other.name.as_str()));
}
