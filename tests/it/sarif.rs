//! `netpol-guard check --output sarif`: the real binary's output validates
//! against the SARIF 2.1.0 JSON schema and points at the right lines.
//!
//! The schema, `tests/it/schemas/sarif-2.1.0.json`, is vendored unmodified from
//! the crates.io package `serde-sarif` version 0.8.0, file `src/schema.json`
//! (sha256 af47e7b67f24efe74076621fd3a5fbe7398add9e84fe820c971219a385895cea).
//! It is the OASIS "Static Analysis Results Format (SARIF) Version 2.1.0 JSON
//! Schema" in its JSON Schema draft-07 form, `$id`
//! https://raw.githubusercontent.com/oasis-tcs/sarif-spec/master/Schemata/sarif-schema-2.1.0.json
//! (the file in oasis-tcs/sarif-spec has blank lines between members; this
//! copy has none). It is self-contained: every `$ref` is `#/definitions/...`.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::schemas;

/// Objects start at the lines the constants below say (the `apiVersion:` line
/// right after each `---`).
const MANIFESTS: &str = r#"# A shop as a team would commit it.
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    platform.io/managed: "true"
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-ingress
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: web
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          purpose: monitoring
    - podSelector:
        matchLabels:
          app: prometheus
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: egress-anywhere
  namespace: shop
spec:
  podSelector:
    matchLabels:
      app: batch
  policyTypes: [Egress]
  egress:
  - to:
    - ipBlock:
        cidr: 0.0.0.0/0
    ports:
    - protocol: TCP
      port: 443
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ledger
  namespace: shop
spec:
  selector:
    matchLabels:
      app: ledger
  template:
    metadata:
      labels:
        app: ledger
    spec:
      containers:
      - name: ledger
        image: ghcr.io/example/ledger:1.0.0
"#;

const SLIP_LINE: usize = 9; // NetworkPolicy shop/web-ingress
const WEB_LINE: usize = 28; // Deployment shop/web (covered: no finding)
const WORLD_LINE: usize = 46; // NetworkPolicy shop/egress-anywhere
const LEDGER_LINE: usize = 64; // Deployment shop/ledger (uncovered)

const FILE: &str = "deploy/shop manifests.yaml";

#[test]
fn the_vendored_schema_is_draft_07_and_self_contained() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/schemas/sarif-2.1.0.json"),
    )
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(
        schema["title"],
        "Static Analysis Results Format (SARIF) Version 2.1.0 JSON Schema"
    );
    assert_eq!(schema["properties"]["version"]["enum"], json!(["2.1.0"]));
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&schema, &mut all);
    assert!(all.len() > 100, "{}", all.len());
    assert!(
        all.iter().all(|r| r.starts_with("#/definitions/")),
        "{all:?}"
    );
    // Unmodified: the copy shipped in serde-sarif 0.8.0 has exactly these many bytes.
    assert_eq!(text.len(), 111_962);
}

/// Every violation of the schema, with where it is.
fn schema_errors(log: &Value) -> Vec<String> {
    schemas::sarif_validator()
        .iter_errors(log)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// A temp dir holding the manifests at `FILE`.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, MANIFESTS).unwrap();
    dir
}

fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_netpol-guard"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l == needle).unwrap() + 1
}

#[test]
fn the_fixture_objects_start_where_the_constants_say() {
    // Guard the constants against edits of MANIFESTS: each object's
    // `apiVersion:` line follows its `---`.
    let starts: Vec<usize> = MANIFESTS
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "---")
        .map(|(i, _)| i + 2)
        .collect();
    assert_eq!(starts, [SLIP_LINE, WEB_LINE, WORLD_LINE, LEDGER_LINE]);
    assert_eq!(
        line_of(MANIFESTS, "  name: egress-anywhere"),
        WORLD_LINE + 3
    );
    // ... and `check` itself reports these lines.
    let dir = workspace();
    let (code, out, err) = run_in(dir.path(), &["check", FILE]);
    assert_eq!(code, 1, "{out}{err}");
    for (line, what) in [
        (
            SLIP_LINE,
            "NetworkPolicy shop/web-ingress: WARN or-selector-slip",
        ),
        (
            WORLD_LINE,
            "NetworkPolicy shop/egress-anywhere: DENY world-cidr",
        ),
        (
            LEDGER_LINE,
            "Deployment shop/ledger: DENY require-network-policy",
        ),
    ] {
        assert!(out.contains(&format!("{FILE}:{line}: {what}\n")), "{out}");
    }
    assert!(!out.contains(&format!(":{WEB_LINE}:")), "{out}");
}

/// (ruleId, level, startLine, fullyQualifiedName) of every result, in order.
fn summary(log: &Value) -> Vec<(String, String, u64, String)> {
    log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let loc = &r["locations"][0];
            (
                r["ruleId"].as_str().unwrap().to_string(),
                r["level"].as_str().unwrap().to_string(),
                loc["physicalLocation"]["region"]["startLine"]
                    .as_u64()
                    .unwrap(),
                loc["logicalLocations"][0]["fullyQualifiedName"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn expected_summary() -> Vec<(String, String, u64, String)> {
    [
        (
            "or-selector-slip",
            "warning",
            SLIP_LINE,
            "shop/NetworkPolicy/web-ingress",
        ),
        (
            "world-cidr",
            "error",
            WORLD_LINE,
            "shop/NetworkPolicy/egress-anywhere",
        ),
        // No workload of shop has app=batch (issue 15).
        (
            "policy-selects-nothing",
            "warning",
            WORLD_LINE,
            "shop/NetworkPolicy/egress-anywhere",
        ),
        (
            "require-network-policy",
            "error",
            LEDGER_LINE,
            "shop/Deployment/ledger",
        ),
    ]
    .into_iter()
    .map(|(r, l, n, q)| (r.into(), l.into(), n as u64, q.into()))
    .collect()
}

#[test]
fn sarif_output_validates_and_points_at_the_objects() {
    let dir = workspace();
    let (code, out, err) = run_in(dir.path(), &["check", "--output", "sarif", FILE]);
    assert_eq!(code, 1, "exit code as for text: something is denied\n{err}");
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schema_errors(&log), Vec::<String>::new());

    assert_eq!(log["version"], "2.1.0");
    assert_eq!(
        log["$schema"],
        "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
    );
    let runs = log["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "netpol-guard");
    assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
    let rules = driver["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, netpol_guard::rules::RuleId::IDS);
    assert_eq!(run["invocations"], json!([{ "executionSuccessful": true }]));

    assert_eq!(summary(&log), expected_summary());
    for r in run["results"].as_array().unwrap() {
        // Each result's ruleIndex points at its rule's descriptor.
        let i = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[i]["id"], r["ruleId"]);
        // The path as given, relative, with forward slashes and %-escapes.
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"],
            json!({ "uri": "deploy/shop%20manifests.yaml", "uriBaseId": "%SRCROOT%" })
        );
        let text = r["message"]["text"].as_str().unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("{}: ", r["ruleId"].as_str().unwrap())),
            "{text}"
        );
        assert!(
            text.contains("\n\n"),
            "the detail follows after a blank line: {text}"
        );
        let fp = r["partialFingerprints"]["netpolGuardFinding/v1"]
            .as_str()
            .unwrap();
        assert!(fp.len() == 18 && fp.ends_with(":1"), "{fp}");
    }
    let world = &run["results"][1];
    assert!(
        world["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with("world-cidr: egress rule 0, peer 0: ipBlock 0.0.0.0/0"),
        "{world}"
    );
    let world_rule = &rules[world["ruleIndex"].as_u64().unwrap() as usize];
    assert_eq!(world_rule["defaultConfiguration"]["level"], "error");
    assert_eq!(world_rule["properties"]["security-severity"], "8.0");
    assert!(
        world_rule["help"]["markdown"]
            .as_str()
            .unwrap()
            .starts_with("### `world-cidr`\n\n**Default:** deny.")
    );
}

#[test]
fn absolute_paths_under_the_current_directory_become_relative_uris() {
    let dir = workspace();
    let abs = dir.path().join("deploy");
    let (code, out, err) = run_in(
        dir.path(),
        &["check", "--output", "sarif", abs.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{err}");
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schema_errors(&log), Vec::<String>::new());
    assert_eq!(summary(&log), expected_summary());
    for r in log["runs"][0]["results"].as_array().unwrap() {
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"],
            json!({ "uri": "deploy/shop%20manifests.yaml", "uriBaseId": "%SRCROOT%" })
        );
    }
    // Outside the current directory: an absolute file URI, still valid.
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, out, _) = run_in(
        elsewhere.path(),
        &["check", "--output", "sarif", abs.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    let log: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(schema_errors(&log), Vec::<String>::new());
    let uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"]
        .as_str()
        .unwrap();
    assert!(uri.starts_with("file:///"), "{uri}");
    assert!(uri.ends_with("/deploy/shop%20manifests.yaml"), "{uri}");
}

#[test]
fn exit_codes_match_text_output_for_clean_and_unreadable_input() {
    let dir = tempfile::tempdir().unwrap();
    // Clean: the namespace, the policy without its OR slip, the covered workload.
    let namespace: String = MANIFESTS
        .lines()
        .take(SLIP_LINE - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    let clean: String = MANIFESTS
        .lines()
        .take(WORLD_LINE - 2)
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace(
            "    - namespaceSelector:\n        matchLabels:\n          purpose: monitoring\n",
            "",
        );
    std::fs::write(dir.path().join("clean.yaml"), &clean).unwrap();
    // Unreadable: a Deployment without a pod template cannot be judged.
    std::fs::write(
        dir.path().join("broken.yaml"),
        format!(
            "{namespace}apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: empty\n  namespace: shop\nspec: {{}}\n"
        ),
    )
    .unwrap();
    for (file, want) in [("clean.yaml", 0), ("broken.yaml", 2)] {
        let (text_code, text, _) = run_in(dir.path(), &["check", file]);
        let (code, out, err) = run_in(dir.path(), &["check", "--output", "sarif", file]);
        assert_eq!((text_code, code), (want, want), "{file}: {text}{err}");
        let log: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(schema_errors(&log), Vec::<String>::new(), "{file}");
        assert_eq!(log["runs"][0]["results"], json!([]), "{file}: {text}");
        let inv = &log["runs"][0]["invocations"][0];
        if want == 0 {
            assert_eq!(*inv, json!({ "executionSuccessful": true }));
        } else {
            let notes = inv["toolExecutionNotifications"].as_array().unwrap();
            assert_eq!(notes.len(), 1, "{inv}");
            assert_eq!(notes[0]["level"], "error");
            let msg = notes[0]["message"]["text"].as_str().unwrap();
            assert!(
                msg.starts_with(&format!("broken.yaml:{SLIP_LINE}: Deployment shop/empty: ")),
                "{msg}"
            );
            assert!(text.contains(&format!("error: {msg}\n")), "{text}");
        }
    }
}

#[test]
fn the_validator_rejects_invalid_sarif() {
    let dir = workspace();
    let (_, out, _) = run_in(dir.path(), &["check", "--output", "sarif", FILE]);
    let good: Value = serde_json::from_str(&out).unwrap();
    assert!(schemas::sarif_validator().is_valid(&good));

    let mut bad_level = good.clone();
    bad_level["runs"][0]["results"][0]["level"] = json!("fatal");
    assert_eq!(
        schema_errors(&bad_level),
        [r#"/runs/0/results/0/level: "fatal" is not one of "none", "note" or 2 other candidates"#]
    );

    let mut bad_version = good.clone();
    bad_version["version"] = json!("2.0");
    assert!(!schemas::sarif_validator().is_valid(&bad_version));

    let mut bad_line = good.clone();
    bad_line["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] =
        json!(0);
    assert!(!schemas::sarif_validator().is_valid(&bad_line));

    let mut unknown_field = good.clone();
    unknown_field["runs"][0]["results"][0]["severity"] = json!("high");
    assert!(!schemas::sarif_validator().is_valid(&unknown_field));

    let mut bad_uri = good;
    bad_uri["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] =
        json!("deploy/shop manifests.yaml");
    assert_eq!(
        schema_errors(&bad_uri),
        [
            r#"/runs/0/results/0/locations/0/physicalLocation/artifactLocation/uri: "deploy/shop manifests.yaml" is not a "uri-reference""#
        ],
        "a space is not allowed in a uri-reference"
    );
}
