//! SARIF 2.1.0 output (`check --output sarif`), for GitHub code scanning and
//! other SARIF viewers: one run whose driver lists every rule of the catalog
//! (with its documentation from `docs/rules.md` as help), and one result per
//! finding.
//!
//! Findings point either at a file and line (`check`, manifests in a
//! repository) or at a cluster object (`audit`, which reads a live cluster):
//! a [`Finding`] with a `source` gets a physical location (and its object as
//! a logical one), one without gets a logical location only.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::report::model::Finding;
use crate::vocab::{Action, RuleId};

/// The rule catalog's documentation; each rule's `### \`id\`` section becomes
/// its SARIF help.
const RULES_DOC: &str = include_str!("../../docs/rules.md");

/// The `$schema` every log names: the OASIS SARIF 2.1.0 schema (errata 01).
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// `uriBaseId` of file locations relative to the current directory; GitHub's
/// upload resolves it to the repository checkout.
pub const SRCROOT: &str = "%SRCROOT%";

/// The `partialFingerprints` key of every result.
pub const FINGERPRINT_KEY: &str = "netpolGuardFinding/v1";

/// A complete SARIF 2.1.0 log of one run. `errors` are objects that could not
/// be judged; they become tool execution notifications of level `error`.
/// File locations are made relative to the current directory (see
/// [`render_in`]).
pub fn render<'a>(findings: impl IntoIterator<Item = &'a Finding>, errors: &[String]) -> Value {
    let cwd = std::env::current_dir().ok();
    render_in(findings, errors, cwd.as_deref())
}

/// As [`render`], with file paths resolved against `cwd`: an absolute path
/// under `cwd` and a relative path become a relative URI with `uriBaseId`
/// `%SRCROOT%`; any other absolute path becomes a `file://` URI.
pub fn render_in<'a>(
    findings: impl IntoIterator<Item = &'a Finding>,
    errors: &[String],
    cwd: Option<&Path>,
) -> Value {
    let rules: Vec<Value> = RuleId::ALL.iter().map(|r| rule_descriptor(*r)).collect();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let results: Vec<Value> = findings
        .into_iter()
        .map(|f| {
            let key = fingerprint_base(f);
            let n = seen.entry(key.clone()).or_insert(0);
            *n += 1;
            result(f, &format!("{key}:{n}"), cwd)
        })
        .collect();
    let mut invocation = Map::new();
    invocation.insert("executionSuccessful".into(), Value::Bool(true));
    if !errors.is_empty() {
        let notes: Vec<Value> = errors
            .iter()
            .map(|e| json!({ "level": "error", "message": { "text": e } }))
            .collect();
        invocation.insert("toolExecutionNotifications".into(), Value::Array(notes));
    }
    json!({
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "netpol-guard",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "invocations": [Value::Object(invocation)],
            "results": results,
        }]
    })
}

/// SARIF level of a result's action: `deny` is an error, `warn` a warning.
fn level(action: Action) -> &'static str {
    match action {
        Action::Deny => "error",
        Action::Warn => "warning",
        Action::Off => "note",
    }
}

/// SARIF level of a rule's default action (`none` turns it off).
fn default_level(action: Action) -> &'static str {
    match action {
        Action::Deny => "error",
        Action::Warn => "warning",
        Action::Off => "none",
    }
}

/// `require-network-policy` -> `RequireNetworkPolicy`.
pub fn camel_case(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn rule_descriptor(rule: RuleId) -> Value {
    let id = rule.as_str();
    let help = rule_help(id).unwrap_or(rule.summary());
    let full = why_paragraph(help).unwrap_or_else(|| rule.summary().to_string());
    let default_action = rule.default_action();
    let severity = if default_action == Action::Deny {
        "8.0"
    } else {
        "5.0"
    };
    json!({
        "id": id,
        "name": camel_case(id),
        "shortDescription": { "text": rule.summary() },
        "fullDescription": { "text": full },
        "help": { "text": help, "markdown": help },
        "defaultConfiguration": { "level": default_level(default_action) },
        "properties": {
            "tags": ["security", "kubernetes", "network-policy"],
            "security-severity": severity,
        }
    })
}

/// The rule's section of `docs/rules.md`: from its `### \`id\`` heading to the
/// next heading of level 3 or less (headings inside code fences do not count),
/// without a trailing `---` rule.
pub fn rule_help(id: &str) -> Option<&'static str> {
    doc_section(RULES_DOC, id)
}

fn is_fence(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// Level of an ATX heading (`#` to `######` then a space or the line end).
fn heading_level(line: &str) -> Option<usize> {
    let hashes = line.chars().take_while(|c| *c == '#').count();
    let rest = &line[hashes..];
    ((1..=6).contains(&hashes) && (rest.is_empty() || rest.starts_with(' '))).then_some(hashes)
}

fn doc_section<'a>(doc: &'a str, id: &str) -> Option<&'a str> {
    let heading = format!("### `{id}`");
    let mut start = None;
    let mut end = doc.len();
    let mut offset = 0;
    let mut in_fence = false;
    for line in doc.split_inclusive('\n') {
        let text = line.trim_end();
        if is_fence(text) {
            in_fence = !in_fence;
        } else if !in_fence {
            if start.is_none() {
                if text == heading {
                    start = Some(offset);
                }
            } else if heading_level(text).is_some_and(|l| l <= 3) {
                end = offset;
                break;
            }
        }
        offset += line.len();
    }
    let mut section = doc[start?..end].trim_end();
    while let Some(rest) = section.strip_suffix("---") {
        section = rest.trim_end();
    }
    Some(section)
}

/// The "**Why it is dangerous:**" paragraph of a rule's section, as one line
/// of plain text starting with a capital letter.
fn why_paragraph(section: &str) -> Option<String> {
    const MARK: &str = "**Why it is dangerous:**";
    let mut lines = section.lines().skip_while(|l| !l.starts_with(MARK));
    let first = lines.next()?.strip_prefix(MARK)?.trim();
    let mut text = first.to_string();
    for l in lines.take_while(|l| !l.trim().is_empty()) {
        text.push(' ');
        text.push_str(l.trim());
    }
    let mut chars = text.chars();
    let capital = chars.next()?.to_uppercase().chain(chars).collect();
    Some(capital)
}

/// FNV-1a, 64 bits: small, stable across releases and platforms.
fn fnv1a64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff; // a separator no UTF-8 text contains
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The hash of rule, kind, namespace and name (in hex). Results with the same
/// one (several findings of a rule in one object) are numbered `:1`, `:2`,
/// ... in order, as GitHub numbers its own line hashes.
fn fingerprint_base(f: &Finding) -> String {
    let o = &f.object;
    let h = fnv1a64(&[f.rule.as_str(), &o.kind, &o.namespace, &o.name]);
    format!("{h:016x}")
}

/// `namespace/Kind/name`, or `Kind/name` for a cluster-scoped object.
pub fn fully_qualified_name(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{namespace}/{kind}/{name}")
    }
}

fn logical_location(kind: &str, namespace: &str, name: &str) -> Value {
    json!({
        "name": name,
        "fullyQualifiedName": fully_qualified_name(kind, namespace, name),
        "kind": "resource",
    })
}

fn result(f: &Finding, fingerprint: &str, cwd: Option<&Path>) -> Value {
    // GitHub code scanning shows `message.text` (its first line in alert
    // lists, all of it on the alert) and ignores a result's
    // `message.markdown`, so the explanation and the YAML fix go into the
    // text after a blank line, where line breaks are kept.
    let text = match &f.detail {
        Some(d) if !d.trim().is_empty() => format!("{}\n\n{}", f.message, d.trim_end()),
        _ => f.message.clone(),
    };
    let o = &f.object;
    let mut location = Map::new();
    match &f.source {
        Some(source) => {
            let mut physical = Map::new();
            physical.insert(
                "artifactLocation".into(),
                artifact_location(&source.file, cwd),
            );
            if source.line >= 1 {
                physical.insert("region".into(), json!({ "startLine": source.line }));
            }
            location.insert("physicalLocation".into(), Value::Object(physical));
            location.insert(
                "logicalLocations".into(),
                json!([logical_location(&o.kind, &o.namespace, &o.name)]),
            );
        }
        None => {
            let mut logical = logical_location(&o.kind, &o.namespace, &o.name);
            if !o.api_version.is_empty()
                && let Some(m) = logical.as_object_mut()
            {
                m.insert("properties".into(), json!({ "apiVersion": o.api_version }));
            }
            location.insert("logicalLocations".into(), json!([logical]));
        }
    }
    let mut r = Map::new();
    r.insert("ruleId".into(), Value::String(f.rule.as_str().into()));
    if let Some(i) = RuleId::ALL.iter().position(|r| *r == f.rule) {
        r.insert("ruleIndex".into(), json!(i));
    }
    r.insert("level".into(), Value::String(level(f.action).into()));
    r.insert("message".into(), json!({ "text": text }));
    r.insert("locations".into(), json!([Value::Object(location)]));
    r.insert(
        "partialFingerprints".into(),
        json!({ FINGERPRINT_KEY: fingerprint }),
    );
    Value::Object(r)
}

/// `artifactLocation` for a path as the user gave it.
fn artifact_location(path: &str, cwd: Option<&Path>) -> Value {
    let p = Path::new(path);
    if !p.is_absolute() {
        let rel = path.replace('\\', "/");
        let rel = rel.trim_start_matches("./");
        return json!({ "uri": percent_encode(rel), "uriBaseId": SRCROOT });
    }
    if let Some(cwd) = cwd {
        let relative = p.strip_prefix(cwd).ok().map(Path::to_path_buf).or_else(|| {
            let (p, cwd) = (p.canonicalize().ok()?, cwd.canonicalize().ok()?);
            p.strip_prefix(cwd).ok().map(Path::to_path_buf)
        });
        if let Some(rel) = relative {
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            return json!({ "uri": percent_encode(&parts.join("/")), "uriBaseId": SRCROOT });
        }
    }
    let mut abs = path.replace('\\', "/");
    if !abs.starts_with('/') {
        abs.insert(0, '/'); // a drive letter: file:///C:/...
    }
    json!({ "uri": format!("file://{}", percent_encode_keep(&abs, b"/:")) })
}

/// Percent-encodes everything but unreserved characters and `/` (RFC 3986),
/// so a file name with spaces, `#`, `%` or non-ASCII letters is a valid URI
/// reference.
fn percent_encode(s: &str) -> String {
    percent_encode_keep(s, b"/")
}

fn percent_encode_keep(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || keep.contains(&b)
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{ObjectRef, Severity, SourceLine};

    #[test]
    fn every_rule_has_a_docs_section_with_why_and_fix() {
        for r in RuleId::ALL {
            let section = rule_help(r.as_str())
                .unwrap_or_else(|| panic!("docs/rules.md has no section for {r}"));
            assert!(section.starts_with(&format!("### `{r}`\n")), "{section}");
            assert!(section.contains("**Fix"), "{r}: no fix in {section}");
            assert!(why_paragraph(section).is_some(), "{r}: no why paragraph");
            assert!(!section.ends_with("---"), "{r}: {section}");
        }
        assert_eq!(rule_help("no-such-rule"), None);
    }

    #[test]
    fn docs_section_ends_at_next_heading_not_at_hashes_in_code() {
        let doc = "# Title\n\n### `a`\n\ntext a\n\n```yaml\n# a comment, not a heading\n## nor this\n```\n\nmore a\n\n#### sub\n\nstill a\n\n---\n\n## Next\n\n### `b`\n\ntext b\n";
        assert_eq!(
            doc_section(doc, "a"),
            Some(
                "### `a`\n\ntext a\n\n```yaml\n# a comment, not a heading\n## nor this\n```\n\nmore a\n\n#### sub\n\nstill a"
            )
        );
        assert_eq!(doc_section(doc, "b"), Some("### `b`\n\ntext b"));
        assert_eq!(doc_section(doc, "c"), None);
    }

    #[test]
    fn real_docs_sections_are_cut_at_the_right_places() {
        // The first section has a YAML comment (`# namespace ...`) in a fence.
        let s = rule_help("require-network-policy").unwrap();
        assert!(s.contains("# namespace payments is labelled"), "{s}");
        assert!(s.trim_end().ends_with("```"), "{s}");
        assert!(!s.contains("### `baseline-protected`"), "{s}");
        // The last NetworkPolicy rule is followed by `---` and a level-2 heading.
        let s = rule_help("dns-single-protocol").unwrap();
        assert!(!s.contains("Cilium"), "{s}");
        assert!(s.ends_with("```"), "{s}");
        assert_eq!(
            why_paragraph(rule_help("world-cidr").unwrap()).unwrap(),
            "A block this wide reaches the whole internet (and every internal range), so a compromised pod can exfiltrate data or be reached from anywhere. Except lists are easy to get wrong and do not make the block narrow."
        );
    }

    #[test]
    fn rule_descriptors_cover_the_catalog_in_order() {
        let log = render_in(&[], &[], None);
        let rules = log["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap();
        assert_eq!(rules.len(), RuleId::ALL.len());
        for (r, d) in RuleId::ALL.iter().zip(rules) {
            assert_eq!(d["id"], r.as_str());
            assert_eq!(d["shortDescription"]["text"], r.summary());
            assert_eq!(d["help"]["markdown"], rule_help(r.as_str()).unwrap());
        }
        let wc = &rules[RuleId::ALL
            .iter()
            .position(|r| *r == RuleId::WorldCidr)
            .unwrap()];
        assert_eq!(wc["name"], "WorldCidr");
        assert_eq!(wc["defaultConfiguration"]["level"], "error");
        assert_eq!(wc["properties"]["security-severity"], "8.0");
        let slip = &rules[RuleId::ALL
            .iter()
            .position(|r| *r == RuleId::OrSelectorSlip)
            .unwrap()];
        assert_eq!(slip["defaultConfiguration"]["level"], "warning");
        assert_eq!(slip["properties"]["security-severity"], "5.0");
        assert_eq!(
            log["runs"][0]["invocations"][0]["executionSuccessful"],
            true
        );
        assert!(
            log["runs"][0]["invocations"][0]
                .get("toolExecutionNotifications")
                .is_none()
        );
    }

    fn object_finding(namespace: &str) -> Finding {
        Finding {
            object: ObjectRef {
                api_version: "networking.k8s.io/v1".into(),
                kind: "NetworkPolicy".into(),
                namespace: namespace.into(),
                name: "open".into(),
                uid: None,
            },
            source: None,
            rule: RuleId::WorldCidr,
            action: Action::Deny,
            severity: Severity::High,
            message: "world-cidr: egress rule 0, peer 0: too wide".into(),
            detail: None,
        }
    }

    #[test]
    fn object_location_is_a_logical_location_only() {
        let log = render_in(&[object_finding("shop")], &[], None);
        let r = &log["runs"][0]["results"][0];
        assert_eq!(
            r["locations"],
            json!([{
                "logicalLocations": [{
                    "name": "open",
                    "fullyQualifiedName": "shop/NetworkPolicy/open",
                    "kind": "resource",
                    "properties": { "apiVersion": "networking.k8s.io/v1" },
                }]
            }])
        );
        assert_eq!(r["ruleId"], "world-cidr");
        assert_eq!(r["ruleIndex"], 3);
        assert_eq!(r["level"], "error");
        assert_eq!(
            r["message"],
            json!({ "text": "world-cidr: egress rule 0, peer 0: too wide" })
        );
        let cluster = render_in(&[object_finding("")], &[], None);
        assert_eq!(
            cluster["runs"][0]["results"][0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
            "NetworkPolicy/open"
        );
    }

    #[test]
    fn fingerprints_ignore_lines_and_number_repeats() {
        let at = |line: usize, name: &str| Finding {
            object: ObjectRef {
                api_version: "networking.k8s.io/v1".into(),
                kind: "NetworkPolicy".into(),
                namespace: "shop".into(),
                name: name.into(),
                uid: None,
            },
            source: Some(SourceLine {
                file: "a.yaml".into(),
                line,
            }),
            rule: RuleId::WorldCidr,
            action: Action::Deny,
            severity: Severity::High,
            message: format!("world-cidr: at {line}"),
            detail: Some("why".into()),
        };
        let fp = |log: &Value, i: usize| {
            log["runs"][0]["results"][i]["partialFingerprints"][FINGERPRINT_KEY]
                .as_str()
                .unwrap()
                .to_string()
        };
        let a = render_in(&[at(3, "open"), at(3, "open"), at(9, "other")], &[], None);
        let b = render_in(&[at(40, "open")], &[], None);
        assert_eq!(fp(&a, 0), fp(&b, 0));
        assert!(fp(&a, 0).ends_with(":1"));
        assert_eq!(fp(&a, 1), fp(&a, 0).replace(":1", ":2"));
        assert_ne!(fp(&a, 2).split(':').next(), fp(&a, 0).split(':').next());
        // FNV-1a 64 of "world-cidr", 0xff, "NetworkPolicy", 0xff, "shop", 0xff, "open".
        assert_eq!(fp(&a, 0).len(), 16 + 2);
        assert_eq!(fnv1a64(&["a"]), 0xaf63_dc4c_8601_ec8c);
        // The file's object also becomes a logical location; the detail
        // follows the message after a blank line.
        let r = &a["runs"][0]["results"][0];
        assert_eq!(
            r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
            "shop/NetworkPolicy/open"
        );
        assert_eq!(r["message"]["text"], "world-cidr: at 3\n\nwhy");
    }

    #[test]
    fn artifact_uris_are_relative_with_forward_slashes() {
        let cwd = Path::new("/work/repo");
        assert_eq!(
            artifact_location("deploy/app.yaml", Some(cwd)),
            json!({ "uri": "deploy/app.yaml", "uriBaseId": "%SRCROOT%" })
        );
        assert_eq!(
            artifact_location("./deploy\\win dows.yaml", Some(cwd)),
            json!({ "uri": "deploy/win%20dows.yaml", "uriBaseId": "%SRCROOT%" })
        );
        assert_eq!(
            artifact_location("/work/repo/deploy/app.yaml", Some(cwd)),
            json!({ "uri": "deploy/app.yaml", "uriBaseId": "%SRCROOT%" })
        );
        assert_eq!(
            artifact_location("/elsewhere/a#b.yaml", Some(cwd)),
            json!({ "uri": "file:///elsewhere/a%23b.yaml" })
        );
    }

    #[test]
    fn errors_become_error_notifications() {
        let log = render_in(
            &[],
            &["a.yaml:3: Deployment x/y: no pod template".into()],
            None,
        );
        assert_eq!(
            log["runs"][0]["invocations"][0],
            json!({
                "executionSuccessful": true,
                "toolExecutionNotifications": [{
                    "level": "error",
                    "message": { "text": "a.yaml:3: Deployment x/y: no pod template" },
                }],
            })
        );
        assert_eq!(log["runs"][0]["results"], json!([]));
    }

    #[test]
    fn camel_case_names() {
        assert_eq!(camel_case("require-network-policy"), "RequireNetworkPolicy");
        assert_eq!(camel_case("world-cidr"), "WorldCidr");
    }
}
