//! The AdmissionReview wire format (`admission.k8s.io/v1`), as kube-apiserver
//! sends and expects it. Only the fields netpol-guard reads are typed; objects
//! stay JSON (less `metadata.managedFields`, see `lean_object`) so any kind,
//! including CRDs, passes through unchanged.

use serde::de::{
    self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const API_VERSION: &str = "admission.k8s.io/v1";

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Connect => "CONNECT",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `request` of an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: UserInfo,
    /// The object, without `metadata.managedFields` (see [`lean_object`]).
    #[serde(default, deserialize_with = "lean_object")]
    pub object: Option<Value>,
    /// As `object`.
    #[serde(default, deserialize_with = "lean_object")]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// Reads `object` or `oldObject` (`null` is `None`, as for any
/// `Option<Value>`) into a `Value`, leaving out `metadata.managedFields`: the
/// API server's record of which client set which field. Nothing in
/// netpol-guard reads it, and in what kube-apiserver sends it is the largest
/// part of the object and the most costly to build (a deep tree of small
/// maps, typically a third of the body). It is still parsed, through the
/// same deserializer calls, so what the request is refused for is unchanged:
/// a syntax error, a number out of range or nesting deeper than serde_json's
/// recursion limit there is reported exactly as before; only no tree is
/// built. Everything else is kept as sent.
fn lean_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    struct LeanOption;
    impl<'de> Visitor<'de> for LeanOption {
        type Value = Option<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a Kubernetes object or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(Lean::Object).map(Some)
        }
    }
    d.deserialize_option(LeanOption)
}

/// Where `lean_object` is in the object: at its top (where `metadata` is
/// looked for), or in `metadata` (where `managedFields` is left out).
#[derive(Clone, Copy)]
enum Lean {
    Object,
    Metadata,
}

impl<'de> DeserializeSeed<'de> for Lean {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Anything but a map is read as `Value` reads it.
impl<'de> Visitor<'de> for Lean {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Value::deserialize(v.into_deserializer())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Value::deserialize(v.into_deserializer())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Value::deserialize(v.into_deserializer())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Value::deserialize(v.into_deserializer())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Value::deserialize(v.into_deserializer())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Value::deserialize(v.into_deserializer())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match (self, key.as_str()) {
                (Lean::Object, "metadata") => {
                    let metadata = map.next_value_seed(Lean::Metadata)?;
                    out.insert(key, metadata);
                }
                (Lean::Metadata, "managedFields") => {
                    map.next_value::<Skip>()?;
                    // A repeated key replaces the earlier value, as in a `Value`.
                    out.remove("managedFields");
                }
                _ => {
                    let value = map.next_value::<Value>()?;
                    out.insert(key, value);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses any JSON value and keeps nothing. Unlike `IgnoredAny`, every
/// level goes through `deserialize_any`, so serde_json's recursion limit
/// applies as it does to a `Value`.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionReviewIn {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<AdmissionRequest>,
}

/// Why a body is not an AdmissionReview we can judge (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("body is not valid JSON: {0}")]
    Json(serde_json::Error),
    #[error("body is not an AdmissionReview request: {0}")]
    Shape(serde_json::Error),
    #[error(
        "expected apiVersion {API_VERSION} and kind AdmissionReview, got {api_version:?} {kind:?}"
    )]
    Version { api_version: String, kind: String },
    #[error("AdmissionReview has no request")]
    NoRequest,
}

/// Parses a request body into its `request`, rejecting anything else.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    // JSON is UTF-8. Checked first, over the whole body: the typed parse
    // below skips the fields it does not read without looking inside their
    // strings.
    let Ok(text) = std::str::from_utf8(body) else {
        let e = serde_json::from_slice::<Value>(body)
            .err()
            .unwrap_or_else(|| serde::de::Error::custom("body is not UTF-8"));
        return Err(ReviewError::Json(e));
    };
    // One pass straight into the typed review: going through a `Value` first
    // rebuilt every object tree twice, the largest cost per request. Only on
    // failure is the body parsed again, to say whether it is not JSON at all
    // or JSON of the wrong shape, whatever the first error's category: a
    // shape error may come before a syntax error further on, and a value of
    // the wrong shape can read as a syntax error (an empty `{}` where an enum
    // is expected says "expected value").
    // The second parse goes into a `Value`, not `IgnoredAny`: serde_json
    // skips ignored values without its recursion limit, so 100k nested `[`
    // would read as "valid JSON of the wrong shape" (tests/it/drills.rs drill 4).
    let review: AdmissionReviewIn =
        serde_json::from_str(text).map_err(|e| match serde_json::from_str::<Value>(text) {
            Err(syntax) => ReviewError::Json(syntax),
            Ok(_) => ReviewError::Shape(e),
        })?;
    let api_version = review.api_version.unwrap_or_default();
    let kind = review.kind.unwrap_or_default();
    if api_version != API_VERSION || kind != "AdmissionReview" {
        // Echoed in the 400 and the log: a sender's 1 MB string stays there.
        return Err(ReviewError::Version {
            api_version: crate::text::truncate_chars(&api_version, 64),
            kind: crate::text::truncate_chars(&kind, 64),
        });
    }
    review.request.ok_or(ReviewError::NoRequest)
}

/// `response.status`: a metav1.Status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub status: String,
    pub code: u16,
    pub reason: String,
    pub message: String,
}

/// `response` of an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Base64 of a JSON Patch (RFC 6902).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

impl AdmissionResponse {
    pub fn allow(uid: &str) -> Self {
        Self {
            uid: uid.to_string(),
            allowed: true,
            status: None,
            warnings: vec![],
            patch_type: None,
            patch: None,
        }
    }

    /// A denial: HTTP 403 Forbidden, the message kubectl shows the user.
    pub fn deny(uid: &str, message: String) -> Self {
        Self {
            allowed: false,
            status: Some(Status {
                status: "Failure".into(),
                code: 403,
                reason: "Forbidden".into(),
                message,
            }),
            ..Self::allow(uid)
        }
    }

    pub fn into_review(self) -> AdmissionReviewOut {
        AdmissionReviewOut {
            api_version: API_VERSION,
            kind: "AdmissionReview",
            response: self,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReviewOut {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub response: AdmissionResponse,
}

/// The AdmissionRequest the API server would send for creating `obj` as
/// `user` (a dry run): how `check` and `audit` judge objects that exist.
pub fn create_request(obj: &Value, user: &str) -> Option<AdmissionRequest> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Some(AdmissionRequest {
        uid: String::new(),
        kind: GroupVersionKind {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
        },
        sub_resource: None,
        name: obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(String::from),
        namespace: obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(String::from),
        operation: Operation::Create,
        user_info: UserInfo {
            username: user.to_string(),
            groups: vec![],
        },
        object: Some(obj.clone()),
        old_object: None,
        dry_run: Some(true),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_body_is_either_not_json_or_the_wrong_shape() {
        let not_json = |b: &str| matches!(parse_review(b.as_bytes()), Err(ReviewError::Json(_)));
        let shape = |b: &str| matches!(parse_review(b.as_bytes()), Err(ReviewError::Shape(_)));
        let not_json_bytes = |b: &[u8]| matches!(parse_review(b), Err(ReviewError::Json(_)));
        assert!(not_json("{\"apiVersion\": "));
        assert!(not_json(&"[".repeat(1000)));
        assert!(shape(r#"{"apiVersion": 5}"#));
        assert!(shape(r#"{"request": {"uid": []}}"#));
        // The shape error comes first, but the body is not JSON at all.
        assert!(not_json(r#"{"apiVersion": 5, "kind": }"#));
        // Found by `cargo fuzz run admission`: serde reports `{}` where an
        // enum is expected as a syntax error, but the body is valid JSON.
        assert!(shape(r#"{"request": {"operation": {}}}"#));
        // ... and a string that is not UTF-8 is not JSON, whatever its place,
        // even in a field that is not read.
        assert!(not_json_bytes(b"\"\r\xff\""));
        assert!(not_json_bytes(
            b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", \"x\": \"\xc3\"}"
        ));
        assert!(not_json_bytes(b"\xff"));
        assert!(shape(
            r#"{"request": {"operation": {"CREATE": 1, "x": 2}}}"#
        ));
        // A field given twice in the typed part is ambiguous: refused, where
        // a `Value` would keep the last (found by `cargo fuzz run admission`).
        assert!(shape(
            r#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod", "version": "v2"}, "operation": "CREATE"}}"#
        ));
        // Nesting deeper than serde_json's limit in the object is not JSON
        // we accept. (In a field nobody reads it is skipped without
        // recursion, iteratively, so it cannot overflow the stack either.)
        let deep = format!(
            r#"{{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {{"object": {}{}}}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        match parse_review(deep.as_bytes()) {
            Err(ReviewError::Json(e)) => {
                assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }

    use super::*;

    #[test]
    fn parses_a_minimal_review() {
        let r = parse_review(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u1","kind":{"group":"apps","version":"v1","kind":"Deployment"},
            "operation":"CREATE","namespace":"ns","object":{"a":1}}}"#,
        )
        .unwrap();
        assert_eq!(r.uid, "u1");
        assert_eq!(r.operation, Operation::Create);
        assert_eq!(r.kind.kind, "Deployment");
        assert_eq!(r.object, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn objects_are_kept_whole_but_for_managed_fields() {
        // As kube-apiserver sends it after `kubectl apply` (the load test's
        // most frequent body): managedFields, last-applied annotation.
        let body = include_bytes!("../benches/load/review-deployment-applied.json");
        let mut expected: Value = serde_json::from_slice(body).unwrap();
        let object = expected["request"]["object"].as_object_mut().unwrap();
        let metadata = object["metadata"].as_object_mut().unwrap();
        assert!(metadata.remove("managedFields").is_some());
        let r = parse_review(body).unwrap();
        assert_eq!(r.object.as_ref(), Some(&expected["request"]["object"]));
        assert!(
            r.object.as_ref().unwrap()["metadata"]["annotations"]
                .get("kubectl.kubernetes.io/last-applied-configuration")
                .is_some()
        );

        let review = |request: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","kind":{{"kind":"Pod"}},"operation":"UPDATE",{request}}}}}"#
            )
        };
        let parse = |request: &str| parse_review(review(request).as_bytes());
        // Absent or null: no object, as for any `Option<Value>`.
        let r = parse(r#""object":null"#).unwrap();
        assert_eq!((r.object, r.old_object), (None, None));
        // Anywhere else, and in oldObject too: as sent, less managedFields
        // (all of them when the key is repeated).
        let r = parse(
            r#""object":{"metadata":{"managedFields":[{"manager":"m"}],"name":"a","managedFields":{}},
                "spec":{"managedFields":1},"x":[{"metadata":{"managedFields":2}}]},
               "oldObject":{"metadata":{"managedFields":[],"labels":{"app":"a"}}}"#,
        )
        .unwrap();
        assert_eq!(
            r.object,
            Some(
                serde_json::json!({"metadata": {"name": "a"}, "spec": {"managedFields": 1},
                "x": [{"metadata": {"managedFields": 2}}]})
            )
        );
        assert_eq!(
            r.old_object,
            Some(serde_json::json!({"metadata": {"labels": {"app": "a"}}}))
        );
        // Objects of any shape are kept as they are.
        for object in [
            "5",
            "\"s\"",
            "[1,{\"metadata\":{}}]",
            "{\"metadata\":[1]}",
            "1.5",
            "true",
        ] {
            let r = parse(&format!(r#""object":{object}"#)).unwrap();
            assert_eq!(
                r.object,
                Some(serde_json::from_str::<Value>(object).unwrap()),
                "{object}"
            );
        }
        // What is left out is still parsed: refused for what a `Value`
        // refuses, with the same error.
        for managed_fields in [
            format!("{}{}", "[".repeat(200), "]".repeat(200)),
            "[1e999]".to_string(),
            "[tru]".to_string(),
            "{\"a\":}".to_string(),
        ] {
            let body = review(&format!(
                r#""object":{{"metadata":{{"managedFields":{managed_fields}}}}}"#
            ));
            let before = serde_json::from_str::<Value>(&body)
                .unwrap_err()
                .to_string();
            match parse_review(body.as_bytes()) {
                Err(ReviewError::Json(e)) => assert_eq!(e.to_string(), before),
                other => panic!("{managed_fields}: {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_what_is_not_a_v1_review() {
        let e = |b: &[u8]| parse_review(b).unwrap_err().to_string();
        assert!(e(b"not json").starts_with("body is not valid JSON"));
        assert!(e(b"[]").starts_with("body is not an AdmissionReview request"));
        assert_eq!(
            e(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#),
            "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got \"admission.k8s.io/v1beta1\" \"AdmissionReview\""
        );
        assert_eq!(
            e(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            "AdmissionReview has no request"
        );
        assert!(e(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}"#)
            .contains("missing field"));
        assert!(e(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"PATCH"}}"#)
            .contains("unknown variant `PATCH`"));
    }

    #[test]
    fn deny_serialises_as_the_api_server_expects() {
        let out =
            serde_json::to_value(AdmissionResponse::deny("u", "no".into()).into_review()).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": "u", "allowed": false,
                    "status": {"status": "Failure", "code": 403, "reason": "Forbidden", "message": "no"}}})
        );
    }
}
