//! Property tests: nothing a client sends to /validate or /mutate panics the
//! server; every answer is a well-formed AdmissionReview (HTTP 200) or a
//! plain 400/413. Runs the real router in-process for many cases per second.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use netpol_guard::cluster::ClusterView;
use netpol_guard::config::Settings;
use netpol_guard::manifests;
use netpol_guard::webhook::{AppState, router};
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

use crate::common;

fn app() -> axum::Router {
    let objs = manifests::load_paths(&[common::fixtures_cluster()]).unwrap();
    let mut view = ClusterView::new();
    for o in &objs {
        view.add(&o.object).unwrap();
    }
    let state: Arc<AppState> = AppState::new(Settings::default(), view);
    state.set_ready(true);
    router(state)
}

fn fixtures() -> Vec<Value> {
    let dir = common::shared("fixtures/admission");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        out.push(serde_json::from_str(&text).unwrap());
    }
    out
}

fn post(app: &axum::Router, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = app
            .clone()
            .oneshot(Request::post(path).body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (
            status,
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
    })
}

/// The answer must be 400/413 plain text, or 200 with a review echoing `uid`.
fn assert_well_formed(status: u16, body: &[u8], uid: Option<&str>) {
    match status {
        200 => {
            let v: Value = serde_json::from_slice(body).expect("200 carries JSON");
            assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
            assert_eq!(v["kind"], "AdmissionReview");
            let resp = &v["response"];
            assert!(resp["allowed"].is_boolean(), "{v}");
            if let Some(uid) = uid {
                assert_eq!(resp["uid"], uid);
            }
            if resp["allowed"] == false {
                assert_eq!(resp["status"]["code"], 403);
                assert!(!resp["status"]["message"].as_str().unwrap_or("").is_empty());
            }
        }
        400 | 413 => assert!(!body.is_empty(), "a rejection says why"),
        other => panic!("unexpected HTTP {other}: {}", String::from_utf8_lossy(body)),
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("CREATE"),
            Just("UPDATE"),
            Just("DELETE"),
            Just("In"),
            Just("0.0.0.0/0"),
            Just("world")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,8}",
                    Just("matchLabels".to_string()),
                    Just("podSelector".to_string()),
                    Just("ingress".to_string()),
                    Just("spec".to_string()),
                    Just("labels".to_string())
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer in a value (objects and arrays walked).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| {
            pointers(
                c,
                format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                out,
            )
        }),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let app = app();
        for path in ["/validate", "/mutate"] {
            let (status, resp) = post(&app, path, body.clone());
            assert_well_formed(status, &resp, None);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let app = app();
        let (status, resp) = post(&app, "/validate", serde_json::to_vec(&v).unwrap());
        assert_well_formed(status, &resp, None);
    }

    /// Real reviews with one node replaced by arbitrary JSON: reaches deep
    /// into the engine with malformed objects, selectors and policies.
    #[test]
    fn mutated_fixtures_never_panic(pick in any::<prop::sample::Index>(), node in any::<prop::sample::Index>(), v in arb_json()) {
        let all = fixtures();
        let mut review = all[pick.index(all.len())].clone();
        let mut ptrs = Vec::new();
        pointers(&review, String::new(), &mut ptrs);
        let ptr = ptrs[node.index(ptrs.len())].clone();
        if let Some(slot) = review.pointer_mut(&ptr) {
            *slot = v;
        }
        let uid = review.pointer("/request/uid").and_then(Value::as_str).map(String::from);
        let app = app();
        let (status, resp) = post(&app, "/validate", serde_json::to_vec(&review).unwrap());
        // When the request still parses, the uid must be echoed.
        assert_well_formed(status, &resp, if status == 200 { uid.as_deref() } else { None });
    }
}
