//! `netpol-guard connectivity` and `diff` as users run them: the Online
//! Boutique shape (twelve services, a deny-all, a policy per service), every
//! output format, `--focus`, `--exposure`, exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn boutique() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/online-boutique")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The application's call graph (its architecture diagram), each call on
/// the callee's port, and the shop's front door from anywhere; nothing else.
const BOUTIQUE: &str = "\
0.0.0.0-255.255.255.255[External] => boutique/frontend[Deployment] : TCP 8080
boutique/cartservice[Deployment] => boutique/redis-cart[Deployment] : TCP 6379
boutique/checkoutservice[Deployment] => boutique/cartservice[Deployment] : TCP 7070
boutique/checkoutservice[Deployment] => boutique/currencyservice[Deployment] : TCP 7000
boutique/checkoutservice[Deployment] => boutique/emailservice[Deployment] : TCP 8080
boutique/checkoutservice[Deployment] => boutique/paymentservice[Deployment] : TCP 50051
boutique/checkoutservice[Deployment] => boutique/productcatalogservice[Deployment] : TCP 3550
boutique/checkoutservice[Deployment] => boutique/shippingservice[Deployment] : TCP 50051
boutique/frontend[Deployment] => boutique/adservice[Deployment] : TCP 9555
boutique/frontend[Deployment] => boutique/cartservice[Deployment] : TCP 7070
boutique/frontend[Deployment] => boutique/checkoutservice[Deployment] : TCP 5050
boutique/frontend[Deployment] => boutique/currencyservice[Deployment] : TCP 7000
boutique/frontend[Deployment] => boutique/productcatalogservice[Deployment] : TCP 3550
boutique/frontend[Deployment] => boutique/recommendationservice[Deployment] : TCP 8080
boutique/frontend[Deployment] => boutique/shippingservice[Deployment] : TCP 50051
boutique/loadgenerator[Deployment] => boutique/frontend[Deployment] : TCP 8080
boutique/recommendationservice[Deployment] => boutique/productcatalogservice[Deployment] : TCP 3550
";

#[test]
fn the_online_boutique_map_is_its_call_graph() {
    let dir = boutique();
    let (code, out, err) = run(&["connectivity", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, BOUTIQUE);
}

#[test]
fn every_format_carries_the_same_connections() {
    let dir = boutique();
    let dir = dir.to_str().unwrap();
    let (code, csv, _) = run(&["connectivity", "--output", "csv", dir]);
    assert_eq!(code, 0);
    assert!(csv.starts_with("src,dst,conn\n0.0.0.0-255.255.255.255[External],boutique/frontend[Deployment],TCP 8080\n"), "{csv}");
    assert_eq!(csv.lines().count(), 18);
    let (_, md, _) = run(&["connectivity", "--output", "md", dir]);
    assert!(
        md.contains(
            "| boutique/cartservice[Deployment] | boutique/redis-cart[Deployment] | TCP 6379 |"
        ),
        "{md}"
    );
    let (_, json, _) = run(&["connectivity", "--output", "json", dir]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["connections"].as_array().unwrap().len(), 17);
    assert_eq!(v["workloads"].as_array().unwrap().len(), 12);
    let (_, dot, _) = run(&["connectivity", "--output", "dot", dir]);
    assert!(dot.starts_with("digraph connectivity {"), "{dot}");
    assert!(dot.contains("label=\"namespace boutique\""), "{dot}");
    assert!(dot.contains("\"boutique/cartservice[Deployment]\" -> \"boutique/redis-cart[Deployment]\" [label=\"TCP 6379\"];"), "{dot}");
}

#[test]
fn svg_and_html_come_from_graphviz_or_say_it_is_missing() {
    let dir = boutique();
    let dir = dir.to_str().unwrap();
    let has_dot = Command::new("dot").arg("-V").output().is_ok();
    let (code, svg, err) = run(&["connectivity", "--output", "svg", dir]);
    if !has_dot {
        assert_eq!(code, 2);
        assert!(
            err.contains(
                "Graphviz's `dot`, which is not installed (Debian/Ubuntu: apt install graphviz)"
            ),
            "{err}"
        );
        return;
    }
    assert_eq!(code, 0, "{err}");
    assert!(svg.contains("<svg"), "{svg}");
    assert!(
        svg.contains("redis&#45;cart") || svg.contains("redis-cart"),
        "{svg}"
    );
    let (code, html, err) = run(&["connectivity", "--output", "html", dir]);
    assert_eq!(code, 0, "{err}");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg"));
    assert!(!html.contains("<?xml"), "inline svg has no prolog");
    assert!(
        !html.contains("http://") || !html.contains("<script src"),
        "self-contained"
    );
    assert!(html.contains("<td>boutique/loadgenerator[Deployment]</td><td>boutique/frontend[Deployment]</td><td>TCP 8080</td>"));
}

#[test]
fn focus_and_exposure() {
    let dir = boutique();
    let dir = dir.to_str().unwrap();
    let (code, out, _) = run(&["connectivity", "--focus", "boutique/redis-cart", dir]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "boutique/cartservice[Deployment] => boutique/redis-cart[Deployment] : TCP 6379\n"
    );
    let (code, _, err) = run(&["connectivity", "--focus", "nope", dir]);
    assert_eq!(code, 2);
    assert!(err.contains("--focus nope: no such workload"), "{err}");
    let (code, out, _) = run(&["connectivity", "--exposure", dir]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "boutique/frontend[Deployment]\n  from outside the cluster (0.0.0.0-255.255.255.255): TCP 8080\n"
    );
}

#[test]
fn unreadable_input_exits_2() {
    let (code, _, err) = run(&["connectivity", "/does/not/exist"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("netpol-guard connectivity: "), "{err}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\nspec:\n  podSelector: {}\n  ingress: [{ports: [{port: 0}]}]\n",
    )
    .unwrap();
    let (code, _, err) = run(&["connectivity", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("NetworkPolicy default/p: ingress[0].ports[0]: ports are 1-65535"),
        "{err}"
    );
}

#[test]
fn diff_exit_codes_and_formats() {
    let base = boutique();
    let head = tempfile::tempdir().unwrap();
    for f in ["namespace.yaml", "workloads.yaml", "policies.yaml"] {
        let mut text = std::fs::read_to_string(base.join(f)).unwrap();
        if f == "policies.yaml" {
            // The pull request opens redis to the frontend.
            text = text.replace(
                "\"from\": [{\"podSelector\": {\"matchLabels\": {\"app\": \"cartservice\"}}}], \"ports\": [{\"protocol\": \"TCP\", \"port\": 6379}]",
                "\"from\": [{\"podSelector\": {\"matchLabels\": {\"app\": \"cartservice\"}}}, {\"podSelector\": {\"matchLabels\": {\"app\": \"frontend\"}}}], \"ports\": [{\"protocol\": \"TCP\", \"port\": 6379}]",
            );
            text = text.replace(
                "\"egress\": [{\"to\": [{\"podSelector\": {\"matchLabels\": {\"app\": \"adservice\"}}}]",
                "\"egress\": [{\"to\": [{\"podSelector\": {\"matchLabels\": {\"app\": \"redis-cart\"}}}], \"ports\": [{\"protocol\": \"TCP\", \"port\": 6379}]}, {\"to\": [{\"podSelector\": {\"matchLabels\": {\"app\": \"adservice\"}}}]",
            );
        }
        std::fs::write(head.path().join(f), text).unwrap();
    }
    let (b, h) = (base.to_str().unwrap(), head.path().to_str().unwrap());
    let (code, out, err) = run(&["diff", b, b]);
    assert_eq!(
        (code, out.as_str()),
        (0, "No connection or workload changed.\n"),
        "{err}"
    );
    let (code, out, err) = run(&["diff", b, h]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out,
        "added: boutique/frontend[Deployment] => boutique/redis-cart[Deployment] : TCP 6379\n"
    );
    // Closing it again: changes, but opens nothing.
    let (code, _, _) = run(&["diff", "--fail-on", "added", h, b]);
    assert_eq!(code, 0);
    let (code, _, _) = run(&["diff", "--fail-on", "added", b, h]);
    assert_eq!(code, 1);
    let (_, md, _) = run(&["diff", "--output", "md", b, h]);
    assert!(md.contains("1 added, 0 removed, 0 changed; 0 workloads added, 0 removed. **This change opens new connections.**"), "{md}");
    assert!(md.contains("| added | boutique/frontend[Deployment] | boutique/redis-cart[Deployment] | No Connections | TCP 6379 |"), "{md}");
    let (_, csv, _) = run(&["diff", "--output", "csv", b, h]);
    assert_eq!(
        csv,
        "diff-type,source,destination,old,new\nadded,boutique/frontend[Deployment],boutique/redis-cart[Deployment],No Connections,TCP 6379\n"
    );
    let (_, json, _) = run(&["diff", "--output", "json", b, h]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["diffType"], "added");
    let (code, _, err) = run(&["diff", b, "/does/not/exist"]);
    assert_eq!(code, 2, "{err}");
}

/// `--cluster` reads the same objects through the API server (the fake
/// here; tests/e2e has the real one): a Deployment's ReplicaSet and Pods
/// are the Deployment, and the map equals the one from the manifests.
#[tokio::test]
async fn the_cluster_map_equals_the_manifests_map() {
    use crate::fake_apiserver::FakeApiServer;
    let fake = FakeApiServer::start().await;
    let dir = boutique();
    let objects = netpol_guard::manifests::load_paths(std::slice::from_ref(&dir)).unwrap();
    for o in &objects {
        fake.apply_object(&o.object);
    }
    // What a cluster adds: the frontend's ReplicaSet and one of its Pods.
    fake.apply_object(&serde_json::json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "frontend-6b8d", "namespace": "boutique", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "frontend", "uid": "u", "controller": true}]},
        "spec": {"selector": {"matchLabels": {"app": "frontend"}}, "template": {
            "metadata": {"labels": {"app": "frontend", "pod-template-hash": "6b8d"}},
            "spec": {"containers": [{"name": "server", "image": "i"}]}}}}));
    fake.apply_object(&serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "frontend-6b8d-x", "namespace": "boutique",
            "labels": {"app": "frontend", "pod-template-hash": "6b8d"}, "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "frontend-6b8d", "uid": "v", "controller": true}]},
        "spec": {"containers": [{"name": "server", "image": "i"}]}}));
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    fake.write_kubeconfig(&kubeconfig).unwrap();
    let kc = kubeconfig.to_str().unwrap().to_string();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(&["connectivity", "--cluster", "--kubeconfig", &kc])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, BOUTIQUE);
}
