//! The schemas reports are checked against, shared by the test files: the
//! PolicyReport CRDs shipped in `manifests/crds/` and the SARIF 2.1.0 schema
//! vendored in `tests/it/schemas/` (see tests/it/sarif.rs for where it came
//! from).

use std::path::Path;

use serde_json::{Map, Value, json};

/// The `openAPIV3Schema` of the served v1alpha2 version of the CRD in
/// `manifests/crds/FILE`, and the CRD's kind.
fn crd_schema(file: &str) -> (String, Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/crds")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).unwrap();
            serde_json::to_value(v).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(docs.len(), 1, "{file}: one CRD");
    let crd = &docs[0];
    assert_eq!(crd["kind"], "CustomResourceDefinition");
    assert_eq!(crd["spec"]["group"], "wgpolicyk8s.io");
    let version = crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha2")
        .unwrap_or_else(|| panic!("{file}: no v1alpha2"));
    assert_eq!(version["served"], true, "{file}: v1alpha2 not served");
    (
        crd["spec"]["names"]["kind"].as_str().unwrap().to_string(),
        version["schema"]["openAPIV3Schema"].clone(),
    )
}

/// A Kubernetes structural schema as JSON Schema (draft 4, which OpenAPI 3.0
/// schemas follow):
/// - an object schema with `properties` gets `additionalProperties: false`
///   (unless it says otherwise or preserves unknown fields): the API server
///   silently prunes unknown fields, so a misspelt field must fail here;
/// - `nullable: true` admits null, `x-kubernetes-int-or-string` admits both;
/// - the other `x-kubernetes-*` extensions are dropped (they do not validate).
fn to_json_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match k.as_str() {
                    // Maps of names to schemas, not schemas.
                    "properties" | "definitions" | "patternProperties" => {
                        let inner = v
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s)))
                            .collect();
                        out.insert(k.clone(), Value::Object(inner));
                    }
                    "enum" | "required" | "default" | "example" | "description" => {
                        out.insert(k.clone(), v.clone());
                    }
                    k if k.starts_with("x-kubernetes-") => {}
                    "nullable" => {}
                    _ => {
                        out.insert(k.clone(), to_json_schema(v));
                    }
                }
            }
            if map.get("nullable") == Some(&json!(true))
                && let Some(t) = out.get("type").cloned()
            {
                out.insert("type".into(), json!([t, "null"]));
            }
            if map.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
                out.remove("type");
                out.insert(
                    "anyOf".into(),
                    json!([{"type": "integer"}, {"type": "string"}]),
                );
            }
            let preserves = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserves
            {
                out.insert("additionalProperties".into(), json!(false));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

pub struct ReportSchemas {
    policy_report: jsonschema::Validator,
    cluster_policy_report: jsonschema::Validator,
}

impl ReportSchemas {
    pub fn load() -> Self {
        let validator = |file: &str, kind: &str| {
            let (crd_kind, schema) = crd_schema(file);
            assert_eq!(crd_kind, kind);
            jsonschema::draft4::new(&to_json_schema(&schema))
                .unwrap_or_else(|e| panic!("{file}: not a usable schema: {e}"))
        };
        ReportSchemas {
            policy_report: validator("wgpolicyk8s.io_policyreports.yaml", "PolicyReport"),
            cluster_policy_report: validator(
                "wgpolicyk8s.io_clusterpolicyreports.yaml",
                "ClusterPolicyReport",
            ),
        }
    }

    /// The schema errors of a report, by its kind.
    pub fn errors(&self, report: &Value) -> Vec<String> {
        let validator = match report["kind"].as_str() {
            Some("PolicyReport") => &self.policy_report,
            Some("ClusterPolicyReport") => &self.cluster_policy_report,
            other => panic!("not a report kind: {other:?}"),
        };
        validator
            .iter_errors(report)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect()
    }
}

/// The pattern of `run.language` and `toolComponent.language` in the OASIS
/// file, with a stray `]`.
const LANGUAGE_PATTERN: &str = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";

/// The vendored schema, as a validator can compile it. The file is not
/// changed; in memory, the stray `]` of the two `language` patterns is
/// escaped (`\]`): that is what ECMAScript (Annex B) reads it as, but the
/// `jsonschema` crate checks every schema against the draft-07 meta-schema,
/// whose `regex` format rejects a lone `]`, and it offers no way to skip that
/// check. Our logs have no `language`, so this cannot hide a problem in them.
fn sarif_schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/schemas/sarif-2.1.0.json");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for def in ["run", "toolComponent"] {
        let pattern = &mut schema["definitions"][def]["properties"]["language"]["pattern"];
        assert_eq!(*pattern, LANGUAGE_PATTERN, "the vendored schema changed");
        *pattern = json!(LANGUAGE_PATTERN.replace("}]?", "}\\]?"));
    }
    schema
}

/// A draft-07 validator of the vendored schema that fetches nothing: the
/// schema is self-contained, and `offline` refuses any reference outside it.
/// Formats are asserted (the URIs must be `uri` / `uri-reference`).
pub fn sarif_validator() -> jsonschema::Validator {
    jsonschema::draft7::options()
        .offline()
        .should_validate_formats(true)
        .build(&sarif_schema())
        .unwrap()
}
