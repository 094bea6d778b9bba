//! The namespace mutation (`autoManage`): new namespaces get the managed
//! label, so no team can forget to opt in. Pure, like the engine: the request
//! and settings in, an RFC 6902 JSON Patch (or nothing) out.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::Value;

use crate::admission::{AdmissionRequest, Operation};
use crate::config::{MODE_LABEL, Settings};

/// Label a namespace owner sets to `"false"` to opt out of `autoManage`.
pub const OPT_OUT_LABEL: &str = "netpol-guard.io/managed";

/// The labels to add to a namespace being created, as a JSON Patch; `None`
/// when there is nothing to do. Labels already present are never changed,
/// so the patch is idempotent under webhook reinvocation.
pub fn namespace_patch(req: &AdmissionRequest, settings: &Settings) -> Option<Patch> {
    let cfg = &settings.config;
    if !cfg.auto_manage
        || req.operation != Operation::Create
        || (req.kind.group.as_str(), req.kind.kind.as_str()) != ("", "Namespace")
    {
        return None;
    }
    let ns = req.object.as_ref()?;
    let name = ns
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .or(req.name.as_deref())?;
    if settings.is_excluded(name) {
        return None;
    }
    let labels = ns.pointer("/metadata/labels").and_then(Value::as_object);
    let has = |k: &str| labels.is_some_and(|l| l.contains_key(k));
    if labels
        .and_then(|l| l.get(OPT_OUT_LABEL))
        .and_then(Value::as_str)
        == Some("false")
    {
        return None;
    }
    let mut wanted: Vec<(String, String)> = cfg
        .managed_namespaces
        .selector
        .match_labels
        .iter()
        .filter(|(k, _)| !has(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(mode) = cfg.auto_manage_mode
        && !has(MODE_LABEL)
    {
        wanted.push((MODE_LABEL.to_string(), mode.as_str().to_string()));
    }
    if wanted.is_empty() {
        return None;
    }
    let add = |path: PointerBuf, value: Value| PatchOperation::Add(AddOperation { path, value });
    let ops = if labels.is_none() {
        // No labels map yet: add it whole (a per-key add would fail).
        let map = wanted
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        vec![add(
            PointerBuf::from_tokens(["metadata", "labels"]),
            Value::Object(map),
        )]
    } else {
        wanted
            .into_iter()
            .map(|(k, v)| {
                add(
                    PointerBuf::from_tokens(["metadata", "labels", k.as_str()]),
                    Value::String(v),
                )
            })
            .collect()
    };
    Some(Patch(ops))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{GroupVersionKind, UserInfo};
    use serde_json::json;

    fn ns_create(metadata: Value, dry_run: bool) -> AdmissionRequest {
        AdmissionRequest {
            uid: "u".into(),
            kind: GroupVersionKind {
                group: String::new(),
                version: "v1".into(),
                kind: "Namespace".into(),
            },
            sub_resource: None,
            name: metadata
                .get("name")
                .and_then(Value::as_str)
                .map(String::from),
            namespace: None,
            operation: Operation::Create,
            user_info: UserInfo::default(),
            object: Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})),
            old_object: None,
            dry_run: Some(dry_run),
        }
    }

    fn on(yaml: &str) -> Settings {
        Settings::from_yaml(&format!("autoManage: true\n{yaml}")).unwrap()
    }

    /// Applies the patch the way the API server does and returns the labels.
    fn patched_labels(req: &AdmissionRequest, settings: &Settings) -> Option<Value> {
        let patch = namespace_patch(req, settings)?;
        let mut obj = req.object.clone().unwrap();
        json_patch::patch(&mut obj, &patch).unwrap();
        Some(obj["metadata"]["labels"].clone())
    }

    #[test]
    fn labels_absent_get_the_whole_map() {
        let req = ns_create(json!({"name": "team-a"}), false);
        let patch = namespace_patch(&req, &on("")).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([{"op": "add", "path": "/metadata/labels", "value": {"platform.io/managed": "true"}}])
        );
    }

    #[test]
    fn labels_present_get_one_escaped_add_per_key() {
        let req = ns_create(json!({"name": "team-a", "labels": {"team": "a"}}), false);
        let patch = namespace_patch(&req, &on("autoManageMode: audit\n")).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/labels/platform.io~1managed", "value": "true"},
                {"op": "add", "path": "/metadata/labels/netpol-guard.io~1mode", "value": "audit"}
            ])
        );
        assert_eq!(
            patched_labels(&req, &on("autoManageMode: audit\n")).unwrap(),
            json!({"team": "a", "platform.io/managed": "true", "netpol-guard.io/mode": "audit"})
        );
    }

    #[test]
    fn idempotent_under_reinvocation_and_never_overrides() {
        let req = ns_create(json!({"name": "team-a"}), false);
        let labels = patched_labels(&req, &on("")).unwrap();
        let again = ns_create(json!({"name": "team-a", "labels": labels}), false);
        assert!(namespace_patch(&again, &on("")).is_none());
        // An explicit value of the managed key is the owner's choice.
        let explicit = ns_create(
            json!({"name": "x", "labels": {"platform.io/managed": "false"}}),
            false,
        );
        assert!(namespace_patch(&explicit, &on("")).is_none());
    }

    #[test]
    fn opt_out_excluded_names_off_and_other_requests_get_nothing() {
        let opt_out = ns_create(
            json!({"name": "x", "labels": {"netpol-guard.io/managed": "false"}}),
            false,
        );
        assert!(namespace_patch(&opt_out, &on("")).is_none());
        assert!(
            namespace_patch(&ns_create(json!({"name": "kube-public"}), false), &on("")).is_none()
        );
        assert!(
            namespace_patch(
                &ns_create(json!({"name": "x"}), false),
                &Settings::default()
            )
            .is_none()
        );
        let mut update = ns_create(json!({"name": "x"}), false);
        update.operation = Operation::Update;
        assert!(namespace_patch(&update, &on("")).is_none());
        let mut pod = ns_create(json!({"name": "x"}), false);
        pod.kind.kind = "Pod".into();
        assert!(namespace_patch(&pod, &on("")).is_none());
        // `netpol-guard.io/managed: "true"` is not an opt-out.
        let opt_in = ns_create(
            json!({"name": "x", "labels": {"netpol-guard.io/managed": "true"}}),
            false,
        );
        assert!(namespace_patch(&opt_in, &on("")).is_some());
    }

    #[test]
    fn dry_run_gets_the_same_patch() {
        let wet = namespace_patch(&ns_create(json!({"name": "a"}), false), &on(""));
        let dry = namespace_patch(&ns_create(json!({"name": "a"}), true), &on(""));
        assert_eq!(wet, dry);
        assert!(dry.is_some());
    }
}
