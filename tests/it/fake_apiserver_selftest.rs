//! Tests of the fake Kubernetes API server test double, driven through the
//! real `kube::Client`, `kube::runtime::watcher` and reflector.

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchParams,
};
use kube::core::WatchEvent;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::fake_apiserver::{FakeApiServer, RequestMatcher};

/// Bound for anything that waits on the fake.
const WAIT: Duration = Duration::from_secs(10);

fn api_error(err: kube::Error) -> Box<kube::core::Status> {
    match err {
        kube::Error::Api(status) => status,
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

fn netpol(ns: &str, name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    })
}

fn rv_of<K: kube::Resource>(obj: &K) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .expect("resourceVersion")
        .parse()
        .expect("numeric rv")
}

/// Next watcher event, skipping errors (which the watcher recovers from).
async fn next_event<K, S>(stream: &mut S) -> watcher::Event<K>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.next().await {
                Some(Ok(event)) => return event,
                Some(Err(_)) => continue,
                None => panic!("watcher stream ended"),
            }
        }
    })
    .await
    .expect("timed out waiting for a watcher event")
}

/// Skip events until `pred` holds; returns that event.
async fn wait_for<K, S>(
    stream: &mut S,
    mut pred: impl FnMut(&watcher::Event<K>) -> bool,
) -> watcher::Event<K>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
{
    tokio::time::timeout(WAIT, async {
        loop {
            let event = next_event(stream).await;
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .expect("timed out waiting for the expected watcher event")
}

fn is_apply_of<K: ResourceExt>(event: &watcher::Event<K>, name: &str) -> bool {
    matches!(event, watcher::Event::Apply(o) | watcher::Event::InitApply(o) if o.name_any() == name)
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_create_get_list_delete_and_errors() {
    let fake = FakeApiServer::start().await;
    let api: Api<Namespace> = Api::all(fake.client());

    for (name, env) in [("alpha", "prod"), ("beta", "dev"), ("gamma", "prod")] {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"env": env}}
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &ns).await.unwrap();
        assert_eq!(created.name_any(), name);
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.creation_timestamp.is_some());
        assert_eq!(created.metadata.generation, Some(1));
        assert_eq!(created.metadata.namespace, None);
    }
    api.patch(
        "gamma",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
    )
    .await
    .unwrap();

    let got = api.get("beta").await.unwrap();
    assert_eq!(got.labels().get("env").map(String::as_str), Some("dev"));
    assert_eq!(got.status.unwrap().phase.as_deref(), Some("Active"));

    let names = |list: kube::core::ObjectList<Namespace>| {
        list.items.iter().map(|n| n.name_any()).collect::<Vec<_>>()
    };
    let select = |s: &str| ListParams::default().labels(s);
    assert_eq!(
        names(api.list(&ListParams::default()).await.unwrap()),
        ["alpha", "beta", "gamma"]
    );
    assert_eq!(
        names(api.list(&select("env=prod")).await.unwrap()),
        ["alpha", "gamma"]
    );
    assert_eq!(
        names(api.list(&select("env==prod,!team")).await.unwrap()),
        ["alpha"]
    );
    assert_eq!(
        names(api.list(&select("env!=prod")).await.unwrap()),
        ["beta"]
    );
    assert_eq!(
        names(api.list(&select("env in (dev, qa)")).await.unwrap()),
        ["beta"]
    );
    assert_eq!(
        names(api.list(&select("env notin (dev)")).await.unwrap()),
        ["alpha", "gamma"]
    );
    assert_eq!(names(api.list(&select("team")).await.unwrap()), ["gamma"]);
    let by_field = ListParams::default().fields("metadata.name=beta");
    assert_eq!(names(api.list(&by_field).await.unwrap()), ["beta"]);
    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.metadata.resource_version.as_deref(), Some("4"));

    let err = api_error(api.get("missing").await.unwrap_err());
    assert_eq!(err.code, 404);
    assert_eq!(err.reason, "NotFound");
    assert_eq!(err.message, "namespaces \"missing\" not found");
    let details = err.details.expect("details");
    assert_eq!(details.name, "missing");
    assert_eq!(details.kind, "namespaces");

    let dup: Namespace = serde_json::from_value(json!({"metadata": {"name": "alpha"}})).unwrap();
    let err = api_error(api.create(&PostParams::default(), &dup).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    let deleted = api.delete("alpha", &DeleteParams::default()).await.unwrap();
    assert_eq!(deleted.left().expect("deleted object").name_any(), "alpha");
    assert_eq!(api_error(api.get("alpha").await.unwrap_err()).code, 404);
    let err = api_error(
        api.delete("alpha", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert!(fake.get_object("v1", "Namespace", None, "alpha").is_none());
    assert_eq!(fake.list_objects("v1", "Namespace").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn network_policy_apply_merge_json_patch_and_conflicts() {
    let fake = FakeApiServer::start().await;
    let api: Api<NetworkPolicy> = Api::namespaced(fake.client(), "default");
    let ssa = PatchParams::apply("netpol-guard").force();

    let created = api
        .patch(
            "deny",
            &ssa,
            &Patch::Apply(netpol("default", "deny", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    let rv1 = rv_of(&created);
    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(created.metadata.generation, Some(1));
    let uid = created.metadata.uid.clone().unwrap();

    let patch_req = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("PATCH recorded");
    assert_eq!(
        patch_req.path,
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/deny"
    );
    assert_eq!(patch_req.field_manager.as_deref(), Some("netpol-guard"));
    assert_eq!(
        patch_req.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert!(patch_req.query.contains("force=true"));

    let mut changed = netpol("default", "deny", json!({"b": "2"}));
    changed["spec"]["policyTypes"] = json!(["Ingress", "Egress"]);
    let updated = api
        .patch("deny", &ssa, &Patch::Apply(&changed))
        .await
        .unwrap();
    let rv2 = rv_of(&updated);
    assert!(rv2 > rv1);
    assert_eq!(updated.metadata.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(updated.metadata.generation, Some(2));
    assert_eq!(
        updated
            .spec
            .as_ref()
            .unwrap()
            .policy_types
            .as_ref()
            .unwrap()
            .len(),
        2
    );
    // Labels are merged by the fake's simplified apply.
    assert_eq!(updated.labels().len(), 2);

    // Applying the same object again is a no-op, like on a real server.
    let same = api
        .patch("deny", &ssa, &Patch::Apply(&changed))
        .await
        .unwrap();
    assert_eq!(rv_of(&same), rv2);

    let merged = api
        .patch(
            "deny",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    let rv3 = rv_of(&merged);
    assert!(rv3 > rv2);
    assert_eq!(merged.annotations().get("x").map(String::as_str), Some("y"));
    assert_eq!(
        merged.metadata.generation,
        Some(2),
        "metadata-only change keeps generation"
    );

    let ops = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/policyTypes/1", "value": "Egress"},
        {"op": "remove", "path": "/spec/policyTypes/1"},
    ]))
    .unwrap();
    let json_patched = api
        .patch("deny", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert!(rv_of(&json_patched) > rv3);
    assert_eq!(
        json_patched.spec.unwrap().policy_types,
        Some(vec!["Ingress".to_string()])
    );
    assert_eq!(
        fake.requests().last().unwrap().content_type.as_deref(),
        Some("application/json-patch+json")
    );

    // A failing JSON patch test op is rejected as Invalid.
    let bad = serde_json::from_value(
        json!([{"op": "test", "path": "/spec/policyTypes/0", "value": "Egress"}]),
    )
    .unwrap();
    let err = api_error(
        api.patch("deny", &PatchParams::default(), &Patch::Json::<()>(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    // Strategic merge patches are treated as merge patches.
    let strategic = api
        .patch(
            "deny",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"s": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.labels().get("s").map(String::as_str), Some("1"));

    // Merge patch of a missing object is 404 (only apply creates).
    let err = api_error(
        api.patch("nope", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    assert_eq!(
        err.message,
        "networkpolicies.networking.k8s.io \"nope\" not found"
    );
    assert_eq!(err.details.unwrap().group, "networking.k8s.io");

    // Update with a stale resourceVersion conflicts; with the current one it works.
    let mut stale = created.clone();
    stale.metadata.managed_fields = None;
    let err = api_error(
        api.replace("deny", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    let mut current = api.get("deny").await.unwrap();
    current.labels_mut().insert("replaced".into(), "yes".into());
    let replaced = api
        .replace("deny", &PostParams::default(), &current)
        .await
        .unwrap();
    assert!(rv_of(&replaced) > rv_of(&current));

    // dryRun=All does not store.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let obj: NetworkPolicy = serde_json::from_value(netpol("default", "dry", json!({}))).unwrap();
    api.create(&dry, &obj).await.unwrap();
    assert!(
        fake.get_object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some("default"),
            "dry"
        )
        .is_none()
    );

    let stored = fake
        .get_object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some("default"),
            "deny",
        )
        .unwrap();
    assert_eq!(stored["kind"], "NetworkPolicy");
    assert_eq!(stored["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(fake.count_requests("PATCH", "/networkpolicies/deny"), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_requires_field_manager() {
    let fake = FakeApiServer::start().await;
    let client = fake.client();
    let req = http_request(
        "PATCH",
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies/x",
        Some("application/apply-patch+yaml"),
        serde_json::to_vec(&netpol("default", "x", json!({}))).unwrap(),
    );
    let err = api_error(client.request::<Value>(req).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));

    // YAML bodies work for apply.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n";
    let req = http_request(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/y?fieldManager=test",
        Some("application/apply-patch+yaml"),
        yaml.as_bytes().to_vec(),
    );
    let created: Value = client.request(req).await.unwrap();
    assert_eq!(created["data"]["k"], "v");
    assert_eq!(created["metadata"]["namespace"], "default");
}

fn http_request(
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> axum::http::Request<Vec<u8>> {
    let mut builder = axum::http::Request::builder().method(method).uri(path);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_sees_changes_and_recovers_after_dropped_watches() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&netpol("ns1", "existing", json!({})));
    let api: Api<NetworkPolicy> = Api::all(fake.client());
    let mut stream = watcher(api, watcher::Config::default()).boxed();

    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::Init
    ));
    assert!(is_apply_of(&next_event(&mut stream).await, "existing"));
    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::InitDone
    ));

    fake.apply_object(&netpol("ns2", "created", json!({})));
    let event = next_event(&mut stream).await;
    assert!(
        matches!(&event, watcher::Event::Apply(o) if o.name_any() == "created" && o.namespace().as_deref() == Some("ns2"))
    );

    fake.delete_object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some("ns1"),
        "existing",
    )
    .expect("deleted");
    let event = next_event(&mut stream).await;
    assert!(matches!(&event, watcher::Event::Delete(o) if o.name_any() == "existing"));

    let watches_before = fake.requests().iter().filter(|r| r.is_watch()).count();
    assert!(fake.open_watches() >= 1);
    fake.drop_watches();
    fake.apply_object(&netpol("ns2", "after-drop", json!({})));
    wait_for(&mut stream, |e| is_apply_of(e, "after-drop")).await;
    let watches_after = fake.requests().iter().filter(|r| r.is_watch()).count();
    assert!(
        watches_after > watches_before,
        "watcher must have re-watched"
    );

    // The resumed watch still delivers live events.
    fake.apply_object(&netpol("ns2", "later", json!({})));
    wait_for(&mut stream, |e| is_apply_of(e, "later")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_with_label_selector_sees_objects_leave_the_selection() {
    let fake = FakeApiServer::start().await;
    let api: Api<NetworkPolicy> = Api::namespaced(fake.client(), "team");
    let mut stream = watcher(api, watcher::Config::default().labels("app=web")).boxed();
    wait_for(&mut stream, |e| matches!(e, watcher::Event::InitDone)).await;

    fake.apply_object(&netpol("other", "wrong-ns", json!({"app": "web"})));
    fake.apply_object(&netpol("team", "no-match", json!({"app": "db"})));
    fake.apply_object(&netpol("team", "web", json!({"app": "web"})));
    // The first event must be the only matching object.
    assert!(is_apply_of(&next_event(&mut stream).await, "web"));

    fake.apply_object(&netpol("team", "web", json!({"app": "db"})));
    let event = next_event(&mut stream).await;
    assert!(matches!(&event, watcher::Event::Delete(o) if o.name_any() == "web"));
}

#[tokio::test(flavor = "multi_thread")]
async fn streaming_list_watcher_works() {
    let fake = FakeApiServer::start().await;
    fake.apply_object(&netpol("default", "one", json!({})));
    let api: Api<NetworkPolicy> = Api::all(fake.client());
    let mut stream = watcher(api, watcher::Config::default().streaming_lists()).boxed();
    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::Init
    ));
    assert!(is_apply_of(&next_event(&mut stream).await, "one"));
    assert!(matches!(
        next_event(&mut stream).await,
        watcher::Event::InitDone
    ));
    fake.apply_object(&netpol("default", "two", json!({})));
    assert!(is_apply_of(&next_event(&mut stream).await, "two"));
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.is_watch() && r.query.contains("sendInitialEvents=true"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reflector_store_becomes_ready_and_follows_changes() {
    let fake = FakeApiServer::start().await;
    for name in ["a", "b"] {
        fake.apply_object(&netpol("default", name, json!({})));
    }
    let api: Api<NetworkPolicy> = Api::all(fake.client());
    let (reader, writer) = reflector::store();
    let rf = reflector(writer, watcher(api, watcher::Config::default()));
    let driver = tokio::spawn(rf.applied_objects().for_each(|_| async {}));

    tokio::time::timeout(WAIT, reader.wait_until_ready())
        .await
        .expect("store ready in time")
        .expect("writer alive");
    let mut names: Vec<String> = reader.state().iter().map(|o| o.name_any()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);

    fake.apply_object(&netpol("default", "c", json!({})));
    fake.delete_object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some("default"),
        "a",
    );
    tokio::time::timeout(WAIT, async {
        loop {
            let mut names: Vec<String> = reader.state().iter().map(|o| o.name_any()).collect();
            names.sort();
            if names == ["b", "c"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("store follows create and delete");
    driver.abort();
}

fn cilium_api(client: Client, namespaced: bool) -> Api<DynamicObject> {
    if namespaced {
        let gvk = GroupVersionKind::gvk("cilium.io", "v2", "CiliumNetworkPolicy");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "ciliumnetworkpolicies");
        Api::namespaced_with(client, "default", &ar)
    } else {
        let gvk = GroupVersionKind::gvk("cilium.io", "v2", "CiliumClusterwideNetworkPolicy");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "ciliumclusterwidenetworkpolicies");
        Api::all_with(client, &ar)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cilium_resources_exist_only_when_installed() {
    let fake = FakeApiServer::start().await;
    let client = fake.client();
    let cnp = cilium_api(client.clone(), true);
    let ccnp = cilium_api(client.clone(), false);

    let err = api_error(cnp.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(api_error(ccnp.get("x").await.unwrap_err()).code, 404);
    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().all(|g| g.name != "cilium.io"));
    assert!(groups.groups.iter().any(|g| g.name == "networking.k8s.io"));
    assert_eq!(
        api_error(
            client
                .list_api_group_resources("cilium.io/v2")
                .await
                .unwrap_err()
        )
        .code,
        404
    );

    fake.set_cilium_installed(true);
    assert!(
        cnp.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": "l7"},
        "spec": {"endpointSelector": {}},
    }))
    .unwrap();
    let created = cnp.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.namespace().as_deref(), Some("default"));
    assert_eq!(
        cnp.get("l7").await.unwrap().data["spec"],
        json!({"endpointSelector": {}})
    );

    let cluster_obj = json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumClusterwideNetworkPolicy",
        "metadata": {"name": "cw"},
        "spec": {"endpointSelector": {}},
    });
    ccnp.patch(
        "cw",
        &PatchParams::apply("netpol-guard"),
        &Patch::Apply(&cluster_obj),
    )
    .await
    .unwrap();
    let listed = ccnp.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].namespace(), None);

    let groups = client.list_api_groups().await.unwrap();
    assert!(groups.groups.iter().any(|g| g.name == "cilium.io"));
    let resources = client
        .list_api_group_resources("cilium.io/v2")
        .await
        .unwrap();
    let mut names: Vec<(String, bool)> = resources
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.namespaced))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("ciliumclusterwidenetworkpolicies".to_string(), false),
            ("ciliumnetworkpolicies".to_string(), true)
        ]
    );
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    assert!(discovery.has_group("cilium.io"));
    let aggregated = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    assert!(aggregated.has_group("cilium.io"));
    assert!(aggregated.has_group("apps"));

    // Uninstalling makes the resources disappear again (stored objects stay).
    fake.set_cilium_installed(false);
    assert_eq!(api_error(cnp.get("l7").await.unwrap_err()).code, 404);
    assert_eq!(
        fake.list_objects("cilium.io/v2", "CiliumNetworkPolicy")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_reports_toggle() {
    let fake = FakeApiServer::start().await;
    let gvk = GroupVersionKind::gvk("wgpolicyk8s.io", "v1alpha2", "PolicyReport");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "policyreports");
    let api: Api<DynamicObject> = Api::namespaced_with(fake.client(), "default", &ar);
    assert_eq!(
        api_error(api.list(&ListParams::default()).await.unwrap_err()).code,
        404
    );
    fake.set_policy_reports_installed(true);
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_builtin_resource_supports_crud() {
    let fake = FakeApiServer::start().await;
    let client = fake.client();
    let kinds = [
        ("", "v1", "Namespace", "namespaces", false),
        ("", "v1", "ConfigMap", "configmaps", true),
        ("", "v1", "Event", "events", true),
        ("", "v1", "Pod", "pods", true),
        ("", "v1", "Service", "services", true),
        ("events.k8s.io", "v1", "Event", "events", true),
        ("apps", "v1", "Deployment", "deployments", true),
        ("apps", "v1", "StatefulSet", "statefulsets", true),
        ("apps", "v1", "DaemonSet", "daemonsets", true),
        ("apps", "v1", "ReplicaSet", "replicasets", true),
        ("batch", "v1", "Job", "jobs", true),
        ("batch", "v1", "CronJob", "cronjobs", true),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        ),
        ("coordination.k8s.io", "v1", "Lease", "leases", true),
    ];
    for (group, version, kind, plural, namespaced) in kinds {
        let ar =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(client.clone(), "ns-a", &ar)
        } else {
            Api::all_with(client.clone(), &ar)
        };
        let obj = DynamicObject::new("obj-1", &ar);
        let created = api.create(&PostParams::default(), &obj).await.unwrap();
        assert_eq!(created.types.as_ref().unwrap().kind, kind, "{kind}");
        assert_eq!(api.get("obj-1").await.unwrap().name_any(), "obj-1");
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        assert_eq!(
            all.list(&ListParams::default()).await.unwrap().items.len(),
            1,
            "{kind}"
        );
        api.delete("obj-1", &DeleteParams::default()).await.unwrap();
        assert!(
            api.list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty(),
            "{kind}"
        );
    }
    // Typed access to an object seeded through the handle.
    fake.apply_object(&json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}}},
    }));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "prod");
    assert_eq!(
        deployments.get("web").await.unwrap().metadata.generation,
        Some(1)
    );
    // Status subresource updates only touch status.
    let patched = deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 3}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().replicas, Some(3));
    assert_eq!(patched.spec.replicas, None);
    assert_eq!(patched.metadata.generation, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_failures_and_delays() {
    let fake = FakeApiServer::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(fake.client());
    fake.apply_object(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"k": "v"}}));

    fake.fail_requests(RequestMatcher::method_path("GET", "/configmaps/cm"), 500, 1);
    let err = api_error(api.get("cm").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    assert_eq!(api.get("cm").await.unwrap().data.unwrap()["k"], "v");
    assert_eq!(
        fake.count_requests("GET", "/namespaces/default/configmaps/cm"),
        2
    );

    // kube's client retries 503 by itself, so a single injected 503 is invisible.
    fake.fail_requests(
        RequestMatcher::method_path("GET", "/configmaps/cm").watch(false),
        503,
        1,
    );
    let before = fake.count_requests("GET", "/configmaps/cm");
    api.get("cm").await.unwrap();
    assert_eq!(fake.count_requests("GET", "/configmaps/cm"), before + 2);

    // A matcher on another method does not fire.
    fake.fail_requests(
        RequestMatcher::method_path("DELETE", "/configmaps/cm"),
        409,
        1,
    );
    api.get("cm").await.unwrap();
    let err = api_error(
        api.delete("cm", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    fake.delay_requests(
        RequestMatcher::path("/configmaps/cm"),
        Duration::from_millis(300),
        1,
    );
    let start = Instant::now();
    api.get("cm").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));

    fake.clear_requests();
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_from_compacted_resource_version_gets_410() {
    let fake = FakeApiServer::start().await;
    let api: Api<NetworkPolicy> = Api::all(fake.client());
    fake.apply_object(&netpol("default", "a", json!({})));
    let old_rv = fake.resource_version().to_string();
    fake.apply_object(&netpol("default", "b", json!({})));

    // Before compaction, a watch from old_rv replays the later event.
    let mut events = api
        .watch(&WatchParams::default().timeout(5), &old_rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, WatchEvent::Added(o) if o.name_any() == "b"));
    drop(events);

    fake.compact();
    let mut events = api
        .watch(&WatchParams::default().timeout(5), &old_rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Error(status) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
        }
        other => panic!("expected 410 ERROR event, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(WAIT, events.try_next())
            .await
            .unwrap()
            .unwrap()
            .is_none()
    );

    // A watcher whose resume point was compacted away gets 410 and relists.
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    wait_for(&mut stream, |e| matches!(e, watcher::Event::InitDone)).await;
    fake.apply_object(&netpol("default", "c", json!({})));
    wait_for(&mut stream, |e| is_apply_of(e, "c")).await;
    // A write to another resource moves the compaction point past the
    // watcher's last resourceVersion.
    fake.apply_object(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bump"}}),
    );
    fake.compact();
    fake.drop_watches();
    let saw_410 = tokio::time::timeout(WAIT, async {
        let mut saw_410 = false;
        loop {
            match stream.next().await.expect("watcher stream ended") {
                Err(watcher::Error::WatchError(status)) if status.code == 410 => saw_410 = true,
                Ok(watcher::Event::Init) => return saw_410,
                _ => {}
            }
        }
    })
    .await
    .expect("watcher relists in time");
    assert!(
        saw_410,
        "watcher must have seen the 410 Expired ERROR event"
    );
    let mut relisted = Vec::new();
    loop {
        match next_event(&mut stream).await {
            watcher::Event::InitApply(o) => relisted.push(o.name_any()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event during relist: {other:?}"),
        }
    }
    assert_eq!(relisted, ["a", "b", "c"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bookmarks_are_sent_when_allowed() {
    let fake = FakeApiServer::start().await;
    let api: Api<NetworkPolicy> = Api::all(fake.client());
    fake.apply_object(&netpol("default", "a", json!({})));
    let rv = fake.resource_version().to_string();
    let mut events = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    let first = tokio::time::timeout(WAIT, events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubeconfig_points_a_client_at_the_fake() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    fake.write_kubeconfig(&path).unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        config.cluster_url.to_string().trim_end_matches('/'),
        fake.url()
    );
    assert_eq!(config.default_namespace, "default");
    let client = Client::try_from(config).unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "37")
    );
    assert_eq!(version.git_version, "v1.37.0");
    assert_eq!(fake.count_requests("GET", "/version"), 1);
}
