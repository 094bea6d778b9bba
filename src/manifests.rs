//! Reading Kubernetes manifests from files: YAML (multi-document) or JSON,
//! `kind: List` (and typed lists such as `NetworkPolicyList`) expanded, each
//! object remembered with its file and line so findings can point at it.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One object read from a manifest, with where it was found.
#[derive(Debug, Clone)]
pub struct SourcedObject {
    pub object: Value,
    pub file: PathBuf,
    /// 1-based line where the object's document starts.
    pub line: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not valid YAML/JSON: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: a manifest must be an object with apiVersion and kind")]
    NotAnObject { path: String, line: usize },
}

/// Reads every manifest under `paths` (files, or directories walked
/// recursively for `.yaml`, `.yml` and `.json`, in sorted order).
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<SourcedObject>, ManifestError> {
    let mut out = Vec::new();
    for p in paths {
        for file in manifest_files(p)? {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                path: file.display().to_string(),
                source,
            })?;
            out.extend(parse_text(&text, &file)?);
        }
    }
    Ok(out)
}

fn manifest_files(p: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: p.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(p).map_err(read_err)?;
    if !meta.is_dir() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut files = Vec::new();
    for e in entries {
        if e.is_dir() {
            files.extend(manifest_files(&e)?);
        } else if e
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "yaml" | "yml" | "json"))
        {
            files.push(e);
        }
    }
    Ok(files)
}

/// Parses the text of one file into objects.
pub fn parse_text(text: &str, file: &Path) -> Result<Vec<SourcedObject>, ManifestError> {
    let mut out = Vec::new();
    for (line, doc) in split_documents(text) {
        let value: Value = if doc.trim_start().starts_with('{') {
            serde_json::from_str(doc).map_err(|e| ManifestError::Parse {
                path: file.display().to_string(),
                line: line + e.line().saturating_sub(1),
                message: e.to_string(),
            })?
        } else {
            serde_yaml::from_str(doc).map_err(|e| ManifestError::Parse {
                path: file.display().to_string(),
                line: line + e.location().map_or(0, |l| l.line().saturating_sub(1)),
                message: e.to_string(),
            })?
        };
        if value.is_null() {
            continue; // an empty document, or only comments
        }
        push_object(value, file, line, &mut out)?;
    }
    Ok(out)
}

fn push_object(
    value: Value,
    file: &Path,
    line: usize,
    out: &mut Vec<SourcedObject>,
) -> Result<(), ManifestError> {
    let not_object = || ManifestError::NotAnObject {
        path: file.display().to_string(),
        line,
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(not_object)?;
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some_and(Value::is_array))
    {
        let Value::Object(mut map) = value else {
            return Err(not_object());
        };
        if let Some(Value::Array(items)) = map.remove("items") {
            for item in items {
                push_object(item, file, line, out)?;
            }
        }
        return Ok(());
    }
    if value.get("apiVersion").and_then(Value::as_str).is_none() {
        return Err(not_object());
    }
    out.push(SourcedObject {
        object: value,
        file: file.to_path_buf(),
        line,
    });
    Ok(())
}

/// Splits YAML text at `---` document markers, returning each document with
/// the 1-based line its content starts on.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        let is_marker = trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "...";
        if is_marker {
            docs.push((start_line, &text[start_byte..offset]));
            // Content after `--- ` on the same line belongs to the next document.
            let rest = if trimmed.starts_with("--- ") {
                4
            } else {
                line.len()
            };
            start_byte = offset + rest.min(line.len());
            start_line = i + 1 + usize::from(rest >= line.len());
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|(line, d)| {
            // Report the first line with content, not the blank lines above it.
            let skipped = d
                .lines()
                .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                .count();
            (line + skipped, d)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<SourcedObject> {
        parse_text(text, Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn multi_document_yaml_with_lines() {
        let objs = parse(
            "# header\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
        );
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].line, 3);
        assert_eq!(objs[1].object["metadata"]["name"], "b");
        assert_eq!(objs[1].line, 9);
    }

    #[test]
    fn lists_are_expanded() {
        let objs = parse(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n",
        );
        assert_eq!(objs.len(), 2);
        let objs = parse(
            r#"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "x"}}]}"#,
        );
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].object["kind"], "NetworkPolicy");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = parse_text(
            "apiVersion: v1\nkind: Namespace\n---\nkind: [\n",
            Path::new("bad.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("bad.yaml:5: not valid YAML/JSON"), "{e}");
        let e = parse_text("- a\n- b\n", Path::new("l.yaml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "l.yaml:1: a manifest must be an object with apiVersion and kind"
        );
    }

    #[test]
    fn reads_directories_recursively_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("sub/a.json"),
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let objs = load_paths(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<_> = objs
            .iter()
            .map(|o| o.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "a"]);
        assert!(load_paths(&[dir.path().join("missing")]).is_err());
    }
}
