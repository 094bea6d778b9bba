//! `serve` without `--state`: the cluster view and the config come from an
//! API server, here the in-process `FakeApiServer` test double, reached by the
//! real binary through a kubeconfig.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{self, Server, shared};
use crate::fake_apiserver::{FakeApiServer, RequestMatcher, Served};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(shared(&format!("fixtures/admission/{name}"))).unwrap()
}

/// The live re-read's request: every policy of payments.
const PAYMENTS_POLICIES: &str = "/apis/networking.k8s.io/v1/namespaces/payments/networkpolicies";

/// A policy that covers the ledger Deployment of
/// `deployment-create-uncovered.json` (ingress from app=api).
fn ledger_policy() -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "ledger", "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "ledger"}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "api"}}}]}]}})
}

/// A fake API server holding the shared fixture cluster (payments managed,
/// its baseline, payments-api and postgres policies).
async fn fake_cluster() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    for o in netpol_guard::manifests::load_paths(&[common::fixtures_cluster()]).unwrap() {
        fake.apply_object(&o.object);
    }
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "netpol-guard", "labels": {"kubernetes.io/metadata.name": "netpol-guard"}}}));
    fake
}

fn start_live(fake: &FakeApiServer, extra: &[&str]) -> Served {
    // The generator (tested in tests/it/generator.rs) would share the paths
    // these tests inject faults on.
    let mut args = vec!["--namespace", "netpol-guard", "--no-baseline"];
    args.extend_from_slice(extra);
    fake.serve(&args, None)
}

async fn verdict(server: &Server, name: &str) -> Value {
    let mut c = server.connect().await;
    c.post("/validate", fixture(name)).await.json()["response"].clone()
}

async fn metrics(server: &Server) -> String {
    server.connect().await.get("/metrics").await.text()
}

/// Polls `check` every 100 ms for at most 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Drops every watch and holds the re-watches of `path` back for 5 s, so
/// only a live read can see what changes meanwhile.
fn starve_watch(fake: &FakeApiServer, path: &str) {
    fake.delay_requests(
        RequestMatcher::path(path).watch(true),
        Duration::from_secs(5),
        10,
    );
    fake.drop_watches();
}

async fn wait_ready(server: &Server) {
    eventually("readyz 200", || async {
        server.connect().await.get("/readyz").await.status == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_initial_lists_then_judges_from_the_api() {
    let fake = fake_cluster().await;
    // Hold the NetworkPolicy list back: the server must not be ready before it.
    fake.delay_requests(
        RequestMatcher::path("/apis/networking.k8s.io/v1/networkpolicies").watch(false),
        Duration::from_secs(2),
        1,
    );
    let live = start_live(&fake, &[]);
    let s = &live.server;
    let r = s.connect().await.get("/readyz").await;
    assert_eq!(
        r.status,
        503,
        "ready before the lists arrived: {}",
        r.text()
    );
    wait_ready(s).await;
    assert_eq!(
        verdict(s, "deployment-create-covered.json").await["allowed"],
        true
    );
    assert_eq!(
        verdict(s, "statefulset-create-covered.json").await["allowed"],
        true
    );
    let denied = verdict(s, "deployment-create-uncovered.json").await;
    assert_eq!(denied["allowed"], false);
    assert!(
        denied["status"]["message"]
            .as_str()
            .unwrap()
            .contains("require-network-policy: Deployment payments/ledger")
    );
    let m = metrics(s).await;
    assert!(m.contains("netpol_guard_cache_policies 4\n"), "{m}");
    assert!(m.contains("netpol_guard_cache_namespaces 5\n"), "{m}");
    assert!(
        m.contains("netpol_guard_live_rereads_total{result=\"confirmed\"} 1\n"),
        "{m}"
    );
    // Absent Cilium CRDs: logged once per kind, never retried in a hot loop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs: Vec<String> = s
        .early_logs
        .iter()
        .cloned()
        .chain(s.stderr.try_iter())
        .collect();
    let crd_lines = logs
        .iter()
        .filter(|l| l.contains("CRD not installed"))
        .count();
    assert_eq!(crd_lines, 2, "{logs:#?}");
    assert!(fake.count_requests("GET", "/apis/cilium.io/v2/ciliumnetworkpolicies") <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_created_just_before_its_workload_is_found_by_the_live_re_read() {
    let fake = fake_cluster().await;
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    // Starve the watch: drop it and hold the re-watch back, so only a live
    // read can know about the new policy.
    starve_watch(&fake, "/apis/networking.k8s.io/v1/networkpolicies");
    fake.apply_object(&ledger_policy());
    tokio::time::sleep(Duration::from_millis(1)).await;
    let v = verdict(s, "deployment-create-uncovered.json").await;
    assert_eq!(v["allowed"], true, "{v}");
    let m = metrics(s).await;
    assert!(
        m.contains("netpol_guard_live_rereads_total{result=\"overturned\"} 1\n"),
        "{m}"
    );
    assert!(fake.count_requests("GET", PAYMENTS_POLICIES) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_policies_deny_and_a_dropped_watch_recovers() {
    let fake = fake_cluster().await;
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    assert_eq!(
        verdict(s, "deployment-create-covered.json").await["allowed"],
        true
    );
    fake.delete_object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some("payments"),
        "payments-api",
    );
    eventually("the deleted policy no longer covers", || async {
        verdict(s, "deployment-create-covered.json").await["allowed"] == false
    })
    .await;
    // Drop every watch; a policy created afterwards reaches the cache.
    fake.drop_watches();
    fake.apply_object(
        &json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "after-drop", "namespace": "payments"},
        "spec": {"podSelector": {"matchLabels": {"app": "payments-api"}}, "ingress": [{}]}}),
    );
    eventually("cache sees the policy created after the drop", || async {
        metrics(s).await.contains("netpol_guard_cache_policies 4\n")
    })
    .await;
    assert_eq!(
        verdict(s, "deployment-create-covered.json").await["allowed"],
        true
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_errors_are_retried_with_backoff_and_counted() {
    let fake = fake_cluster().await;
    fake.fail_requests(
        RequestMatcher::path("/apis/networking.k8s.io/v1/networkpolicies").watch(false),
        500,
        2,
    );
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    let m = metrics(s).await;
    assert!(
        m.contains("netpol_guard_watch_restarts_total{resource=\"networkpolicies\"} 2\n"),
        "{m}"
    );
    assert_eq!(
        verdict(s, "deployment-create-uncovered.json").await["allowed"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_missing_from_the_cache_is_read_live() {
    let fake = fake_cluster().await;
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    starve_watch(&fake, "/api/v1/namespaces");
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "fresh", "labels": {"platform.io/managed": "true"}}}));
    let mut review: Value =
        serde_json::from_slice(&fixture("deployment-create-uncovered.json")).unwrap();
    review["request"]["namespace"] = json!("fresh");
    review["request"]["object"]["metadata"]["namespace"] = json!("fresh");
    let r = s
        .connect()
        .await
        .post("/validate", serde_json::to_vec(&review).unwrap())
        .await
        .json();
    assert_eq!(
        r["response"]["allowed"], false,
        "a managed namespace unknown to the cache is judged: {r}"
    );
    // When the live read fails too, the request is refused with the reason.
    review["request"]["namespace"] = json!("fresher");
    fake.fail_requests(
        RequestMatcher::method_path("GET", "/api/v1/namespaces/fresher"),
        500,
        5,
    );
    let r = s
        .connect()
        .await
        .post("/validate", serde_json::to_vec(&review).unwrap())
        .await
        .json();
    assert_eq!(r["response"]["allowed"], false);
    let m = r["response"]["status"]["message"].as_str().unwrap();
    assert!(m.contains("namespace fresher is not in netpol-guard's cache yet and reading it from the API server failed"), "{m}");
}

fn configmap(config: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "netpol-guard", "namespace": "netpol-guard"},
        "data": {"config.yaml": config}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmap_is_hot_reloaded_and_a_broken_one_is_rejected_and_reported() {
    let fake = fake_cluster().await;
    fake.apply_object(&configmap("mode: enforce\n"));
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    assert_eq!(
        verdict(s, "deployment-create-uncovered.json").await["allowed"],
        false
    );

    fake.apply_object(&configmap("rules:\n  require-network-policy: warn\n"));
    eventually("the new config applies", || async {
        verdict(s, "deployment-create-uncovered.json").await["allowed"] == true
    })
    .await;

    fake.apply_object(&configmap(
        "rules:\n  require-network-policy: warn\nmanagedNamespace: {}\n",
    ));
    eventually("the broken config is counted", || async {
        metrics(s)
            .await
            .contains("netpol_guard_config_reloads_total{result=\"invalid\"} 1\n")
    })
    .await;
    let v = verdict(s, "deployment-create-uncovered.json").await;
    assert_eq!(v["allowed"], true, "the last good config stays in force");
    eventually("an InvalidConfig event on the ConfigMap", || async {
        fake.list_objects("events.k8s.io/v1", "Event")
            .iter()
            .chain(fake.list_objects("v1", "Event").iter())
            .any(|e| {
                e["reason"] == "InvalidConfig"
                    && e["regarding"]["name"]
                        .as_str()
                        .or(e["involvedObject"]["name"].as_str())
                        == Some("netpol-guard")
                    && e.to_string().contains("unknown field `managedNamespace`")
            })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_mode_label_switches_audit_and_enforce_live() {
    let fake = fake_cluster().await;
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    assert_eq!(
        verdict(s, "deployment-create-uncovered.json").await["allowed"],
        false
    );
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments",
        "labels": {"kubernetes.io/metadata.name": "payments", "platform.io/managed": "true", "netpol-guard.io/mode": "audit"}}}));
    eventually("audit mode via the namespace label", || async {
        let v = verdict(s, "deployment-create-uncovered.json").await;
        v["allowed"] == true
            && v["warnings"][0]
                .as_str()
                .is_some_and(|w| w.starts_with("audit mode, would deny: require-network-policy"))
    })
    .await;
}

/// Issue 13: once the Namespace watch has listed every namespace, a
/// namespaceSelector that matches all of them is any-namespace-peer; a new
/// namespace it does not match ends that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selector_that_matches_every_namespace_the_watch_lists_is_denied() {
    let fake = fake_cluster().await;
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    let mut review: Value =
        serde_json::from_slice(&fixture("networkpolicy-create-and.json")).unwrap();
    review["request"]["object"]["spec"] = json!({"podSelector": {"matchLabels": {"app": "api"}},
        "policyTypes": ["Ingress"], "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "In",
             "values": ["payments", "legacy", "monitoring", "kube-system", "netpol-guard"]}]}}]}]});
    let body = serde_json::to_vec(&review).unwrap();
    let r = s
        .connect()
        .await
        .post("/validate", body.clone())
        .await
        .json();
    assert_eq!(r["response"]["allowed"], false, "{r}");
    let m = r["response"]["status"]["message"].as_str().unwrap();
    assert!(
        m.starts_with(
            "netpol-guard: any-namespace-peer: ingress rule 0, peer 0: namespaceSelector "
        ),
        "{m}"
    );
    assert!(
        m.contains(" matches all 5 namespaces today (new ones only if labelled to match)"),
        "{m}"
    );
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "fresh", "labels": {"kubernetes.io/metadata.name": "fresh"}}}));
    eventually("a sixth namespace the selector does not match", || async {
        let r = s
            .connect()
            .await
            .post("/validate", body.clone())
            .await
            .json();
        r["response"]["allowed"] == true
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_cilium_crds_are_watched_and_their_policies_cover_workloads() {
    let fake = fake_cluster().await;
    fake.set_cilium_installed(true);
    fake.apply_object(
        &json!({"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "ledger", "namespace": "payments"},
        "spec": {"endpointSelector": {"matchLabels": {"k8s:app": "ledger"}},
            "egress": [{"toEndpoints": [{"matchLabels": {"app": "postgres"}}]}]}}),
    );
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    eventually("the CNP reaches the cache", || async {
        metrics(s).await.contains("netpol_guard_cache_policies 5\n")
    })
    .await;
    assert_eq!(
        verdict(s, "deployment-create-uncovered.json").await["allowed"],
        true
    );
    assert!(
        fake.count_requests("GET", "/apis/cilium.io/v2/ciliumnetworkpolicies") >= 2,
        "listed then watched"
    );
}

/// Issue 13: every live read is caused by an admission request, which
/// anyone who reaches the webhook port can forge. 200 forged reviews for an
/// unknown namespace made 200 policy LISTs, and each forged uncovered
/// workload a full re-read. Reads are now coalesced per namespace, an
/// absent namespace is remembered and never listed, and a request for one
/// is denied (the API server never sends such a request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_reviews_cannot_amplify_into_api_server_reads() {
    let fake = fake_cluster().await;
    let live = start_live(&fake, &[]);
    wait_ready(&live.server).await;
    let forged = String::from_utf8(fixture("deployment-create-uncovered.json"))
        .unwrap()
        .replace("\"payments\"", "\"no-such-namespace\"");
    let before = fake.requests().len();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let server_addr = live.server.connect().await;
        let body = forged.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = server_addr;
            c.post("/validate", body).await.json()["response"].clone()
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r["allowed"], false, "{r}");
        let m = r["status"]["message"].as_str().unwrap();
        assert!(
            m.contains("namespace no-such-namespace is not in netpol-guard's cache yet"),
            "{m}"
        );
    }
    let calls: Vec<_> = fake.requests().into_iter().skip(before).collect();
    let lists = calls
        .iter()
        .filter(|r| r.path.contains("/namespaces/no-such-namespace/"))
        .count();
    let gets = calls
        .iter()
        .filter(|r| r.path.ends_with("/namespaces/no-such-namespace"))
        .count();
    assert_eq!(
        lists, 0,
        "nothing is listed in a namespace that does not exist"
    );
    assert!(
        gets <= 5,
        "{gets} reads of an absent namespace for 200 reviews"
    );

    // 100 uncovered workloads at once in a real namespace: one re-read in
    // flight at a time, shared by the requests waiting for it.
    let before = fake.requests().len();
    let body = String::from_utf8(fixture("deployment-create-uncovered.json")).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let mut c = live.server.connect().await;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            c.post("/validate", body).await.json()["response"]["allowed"].clone()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), false);
    }
    let lists = fake
        .requests()
        .into_iter()
        .skip(before)
        .filter(|r| r.method == "GET" && r.path.ends_with("/namespaces/payments/networkpolicies"))
        .count();
    // Requests that arrive while a read runs share the next one, and a read
    // less than liveReadReuseMillis (1 s) old answers the ones after it;
    // the rate limit bounds the rest. 100 reviews of a debug build take
    // well under a second here, but a loaded machine may need a second read.
    assert!(
        lists <= 2,
        "{lists} policy LISTs for 100 concurrent denials"
    );
    println!("100 concurrent denials: {lists} policy LISTs");
}

/// Issue 16: a flood of denials kept one re-read running back to back (30
/// reads per 100 denials). A read now answers the denials of the next
/// `liveReadReuseMillis` too, unless a policy write of the namespace passed
/// through this replica meanwhile; 0 turns reuse off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recent_re_read_answers_the_next_denials_until_a_policy_is_written() {
    let fake = fake_cluster().await;
    // A long window, so a slow machine cannot let the read expire mid-test.
    fake.apply_object(&configmap("liveReadReuseMillis: 10000\n"));
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    let lists = || fake.count_requests("GET", PAYMENTS_POLICIES);
    let ledger = ledger_policy();

    assert_eq!(
        verdict(s, "deployment-create-uncovered.json").await["allowed"],
        false
    );
    assert_eq!(lists(), 1, "the first denial reads the namespace");

    // The policy lands through the other replica (this one sees no review
    // of it) while the watch is starved: the recent read answers, and the
    // denial stands. This is the price of the window, and why it is short.
    starve_watch(&fake, "/apis/networking.k8s.io/v1/networkpolicies");
    fake.apply_object(&ledger);
    let v = verdict(s, "deployment-create-uncovered.json").await;
    assert_eq!(v["allowed"], false, "{v}");
    assert_eq!(lists(), 1, "the second denial reuses the read");

    // A policy write of payments through this replica: the next denial
    // reads again, finds the ledger policy, and is overturned.
    let mut c = s.connect().await;
    let r = c
        .post("/validate", fixture("networkpolicy-create-and.json"))
        .await
        .json();
    assert_eq!(r["response"]["allowed"], true, "{r}");
    let v = verdict(s, "deployment-create-uncovered.json").await;
    assert_eq!(v["allowed"], true, "{v}");
    assert_eq!(lists(), 2);
    let m = metrics(s).await;
    for line in [
        "netpol_guard_live_reads_total{source=\"read\"} 2\n",
        "netpol_guard_live_reads_total{source=\"reused\"} 1\n",
        "netpol_guard_live_rereads_total{result=\"confirmed\"} 2\n",
        "netpol_guard_live_rereads_total{result=\"overturned\"} 1\n",
    ] {
        assert!(m.contains(line), "{line} in {m}");
    }

    // With reuse off, every denial waits for a read of its own.
    fake.apply_object(&configmap("liveReadReuseMillis: 0\n"));
    fake.delete_object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some("payments"),
        "ledger",
    );
    eventually("reuse is off and the ledger policy gone", || async {
        verdict(s, "deployment-create-uncovered.json").await["allowed"] == false
    })
    .await;
    let before = lists();
    assert_eq!(
        verdict(s, "deployment-create-uncovered.json").await["allowed"],
        false
    );
    assert_eq!(
        verdict(s, "deployment-create-uncovered.json").await["allowed"],
        false
    );
    assert_eq!(lists(), before + 2);
}

/// Issue 16: a caller that gave up on a slow live read
/// (`liveReadTimeoutMillis`) dropped the request mid-flight, and the next
/// denial started another read while the API server was still serving the
/// first: 2 in flight from one replica under a flood of denials. The read
/// now runs to its end in a task of its own, holding the namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_whose_caller_gave_up_still_holds_the_namespace() {
    let fake = fake_cluster().await;
    fake.apply_object(&configmap(
        "liveReadTimeoutMillis: 200\nliveReadReuseMillis: 0\n",
    ));
    let live = start_live(&fake, &[]);
    let s = &live.server;
    wait_ready(s).await;
    let lists = || fake.count_requests("GET", PAYMENTS_POLICIES);
    let before = lists();
    fake.delay_requests(
        RequestMatcher::path(PAYMENTS_POLICIES).watch(false),
        Duration::from_secs(3),
        1,
    );
    let started = Instant::now();
    for _ in 0..3 {
        // Each gives up after 200 ms; the cache's denial stands.
        let v = verdict(s, "deployment-create-uncovered.json").await;
        assert_eq!(v["allowed"], false, "{v}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the held LIST must still be in flight for this to test anything"
    );
    assert_eq!(
        lists(),
        before + 1,
        "one LIST in flight, not one per caller"
    );
    // Once the held read ends, the next denial reads again.
    eventually("a new read after the held one", || async {
        verdict(s, "deployment-create-uncovered.json").await;
        lists() >= before + 2
    })
    .await;
}

/// The AdmissionReview of a developer deleting policy `name` in payments.
fn policy_delete_review(name: &str) -> Vec<u8> {
    let mut review: Value =
        serde_json::from_slice(&fixture("networkpolicy-delete-baseline.json")).unwrap();
    let req = &mut review["request"];
    req["name"] = json!(name);
    req["oldObject"]["metadata"]["name"] = json!(name);
    req["oldObject"]["metadata"]["labels"] = json!({});
    serde_json::to_vec(&review).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_delete_names_the_workloads_it_uncovers_from_the_watched_workloads() {
    let fake = fake_cluster().await;
    let template = |app: &str| json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
    fake.apply_object(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "payments"},
        "spec": {"selector": {"matchLabels": {"app": "payments-api"}}, "template": template("payments-api")}}));
    // A bare Pod, read by its metadata alone, and a Pod of a ReplicaSet
    // (judged at its owner: never named).
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "debug", "namespace": "payments", "labels": {"app": "payments-api"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}));
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-5d4f-x", "namespace": "payments", "labels": {"app": "payments-api"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-5d4f", "uid": "u", "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "x"}]}}));
    let live = start_live(&fake, &[]);
    wait_ready(&live.server).await;
    let warnings = || async {
        let mut c = live.server.connect().await;
        let r = c
            .post("/validate", policy_delete_review("payments-api"))
            .await
            .json();
        assert_eq!(r["response"]["allowed"], true, "{r}");
        r["response"]["warnings"].clone()
    };
    eventually("the warning names the Deployment and the bare Pod", || async {
        warnings().await
            == json!(["uncovers-workloads: deleting NetworkPolicy payments/payments-api leaves Deployment api, Pod debug \
                       without a policy that grants their pods traffic. Cover them first."])
    })
    .await;
    // The watches follow deletions: with the Deployment and the Pod gone,
    // the delete uncovers nothing.
    fake.delete_object("apps/v1", "Deployment", Some("payments"), "api");
    fake.delete_object("v1", "Pod", Some("payments"), "debug");
    eventually("no warning once they are gone", || async {
        warnings().await.is_null()
    })
    .await;
}
