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
    /// The caller of `for_each_object` refused an object.
    #[error("{path}:{line}: {message}")]
    Object {
        path: String,
        line: usize,
        message: String,
    },
}

impl ManifestError {
    /// An error about `object`, pointing at where it was read.
    pub fn at(object: &SourcedObject, message: impl std::fmt::Display) -> Self {
        Self::Object {
            path: object.file.display().to_string(),
            line: object.line,
            message: message.to_string(),
        }
    }
}

/// Reads every manifest under `paths` (files, or directories walked
/// recursively for `.yaml`, `.yml` and `.json`, in sorted order).
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<SourcedObject>, ManifestError> {
    let mut out = Vec::new();
    for_each_object(paths, |o| {
        out.push(o);
        Ok(())
    })?;
    Ok(out)
}

/// As `load_paths`, handing each object to `f` as soon as it is read, so a
/// large state (a `kind: List` of 50,000 policies) is never held whole in
/// memory: only the file's text and one item at a time.
pub fn for_each_object(
    paths: &[PathBuf],
    mut f: impl FnMut(SourcedObject) -> Result<(), ManifestError>,
) -> Result<(), ManifestError> {
    for p in paths {
        for file in manifest_files(p)? {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
                path: file.display().to_string(),
                source,
            })?;
            parse_text_each(&text, &file, &mut f)?;
        }
    }
    Ok(())
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
    parse_text_each(text, file, &mut |o| {
        out.push(o);
        Ok(())
    })?;
    Ok(out)
}

type Sink<'a> = dyn FnMut(SourcedObject) -> Result<(), ManifestError> + 'a;

fn parse_text_each(text: &str, file: &Path, f: &mut Sink<'_>) -> Result<(), ManifestError> {
    for (line, doc) in split_documents(text) {
        let value: Value = if doc.trim_start().starts_with('{') {
            // JSON: a List's items are handed over one by one while parsing.
            let mut failed = None;
            let mut de = serde_json::Deserializer::from_str(doc);
            let seed = json_stream::Document {
                file,
                line,
                sink: &mut *f,
                failed: &mut failed,
            };
            let parsed = serde::de::DeserializeSeed::deserialize(seed, &mut de)
                .and_then(|v| de.end().map(|()| v));
            if let Some(e) = failed {
                return Err(e);
            }
            match parsed {
                Ok(Some(v)) => v,
                Ok(None) => continue, // a List, already handed over
                Err(e) => {
                    return Err(ManifestError::Parse {
                        path: file.display().to_string(),
                        line: line + e.line().saturating_sub(1),
                        message: e.to_string(),
                    });
                }
            }
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
        push_object(value, file, line, f)?;
    }
    Ok(())
}

fn is_list_kind(kind: &str) -> bool {
    kind.ends_with("List")
}

fn push_object(
    value: Value,
    file: &Path,
    line: usize,
    out: &mut Sink<'_>,
) -> Result<(), ManifestError> {
    let not_object = || ManifestError::NotAnObject {
        path: file.display().to_string(),
        line,
    };
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(not_object)?;
    if is_list_kind(kind) && value.get("items").is_some_and(Value::is_array) {
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
    out(SourcedObject {
        object: value,
        file: file.to_path_buf(),
        line,
    })
}

/// Streaming parse of one JSON document: when its `kind` is a list kind and
/// comes before `items` (as kubectl and most tools write it), each item is
/// handed to the sink as soon as it is parsed instead of building the whole
/// list first. Otherwise the document is returned whole.
mod json_stream {
    use std::fmt;
    use std::path::Path;

    use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};

    use super::{ManifestError, Sink, is_list_kind, push_object};

    pub(super) struct Document<'a, 's> {
        pub file: &'a Path,
        pub line: usize,
        pub sink: &'a mut Sink<'s>,
        /// The sink's own error (serde only carries a message).
        pub failed: &'a mut Option<ManifestError>,
    }

    impl<'de> DeserializeSeed<'de> for Document<'_, '_> {
        /// `None` when the items were streamed.
        type Value = Option<Value>;

        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Document<'_, '_> {
        type Value = Option<Value>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a Kubernetes object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Map::new();
            let mut streamed = false;
            while let Some(key) = map.next_key::<String>()? {
                let list = fields
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(is_list_kind);
                if key == "items" && list && !streamed {
                    map.next_value_seed(Items {
                        file: self.file,
                        line: self.line,
                        sink: &mut *self.sink,
                        failed: &mut *self.failed,
                    })?;
                    streamed = true;
                } else {
                    fields.insert(key, map.next_value()?);
                }
            }
            Ok((!streamed).then_some(Value::Object(fields)))
        }

        // Anything but an object: returned as is (and refused by the caller).
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(Value::Bool(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(Value::from(v)))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(Value::from(v)))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(Value::from(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Value::from(v)))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Some(Value::Null))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(v) = seq.next_element::<Value>()? {
                items.push(v);
            }
            Ok(Some(Value::Array(items)))
        }
    }

    struct Items<'a, 's> {
        file: &'a Path,
        line: usize,
        sink: &'a mut Sink<'s>,
        failed: &'a mut Option<ManifestError>,
    }

    impl<'de> DeserializeSeed<'de> for Items<'_, '_> {
        type Value = ();

        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Items<'_, '_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of Kubernetes objects in `items`")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(item) = seq.next_element::<Value>()? {
                if let Err(e) = push_object(item, self.file, self.line, self.sink) {
                    *self.failed = Some(e);
                    return Err(A::Error::custom("stopped"));
                }
            }
            Ok(())
        }
    }
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

    const NS: &str = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"NAME"}}"#;

    fn ns(name: &str) -> String {
        NS.replace("NAME", name)
    }

    #[test]
    fn a_json_list_is_handed_over_item_by_item_and_a_refusal_stops_it() {
        let text = format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{},{},{}]}}",
            ns("a"),
            ns("b"),
            ns("c")
        );
        let file = Path::new("state.json");
        let mut seen = Vec::new();
        let err = parse_text_each(&text, file, &mut |o| {
            let name = o.object["metadata"]["name"].as_str().unwrap().to_string();
            if name == "b" {
                return Err(ManifestError::at(&o, "no b here"));
            }
            seen.push(name);
            Ok(())
        })
        .unwrap_err();
        // `a` was handed over before `c` was parsed; the sink's own error
        // comes back, with the place.
        assert_eq!(seen, ["a"]);
        assert_eq!(err.to_string(), "state.json:1: no b here");
    }

    #[test]
    fn a_json_list_with_kind_after_items_and_nested_lists_reads_the_same() {
        let streamed = parse(&format!(
            "{{\"kind\":\"List\",\"apiVersion\":\"v1\",\"items\":[{},{{\"kind\":\"NamespaceList\",\"apiVersion\":\"v1\",\"items\":[{}]}}]}}",
            ns("a"),
            ns("b")
        ));
        let buffered = parse(&format!(
            "{{\"items\":[{},{{\"kind\":\"NamespaceList\",\"apiVersion\":\"v1\",\"items\":[{}]}}],\"kind\":\"List\",\"apiVersion\":\"v1\"}}",
            ns("a"),
            ns("b")
        ));
        for objs in [streamed, buffered] {
            let names: Vec<_> = objs
                .iter()
                .map(|o| o.object["metadata"]["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["a", "b"]);
        }
        // A List whose items is not a list, and a document that is not an
        // object, are clear errors.
        let e = parse_text(
            r#"{"kind":"List","apiVersion":"v1","items":{}}"#,
            Path::new("t.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("t.json:1: not valid YAML/JSON: invalid type: map, expected a list of Kubernetes objects"), "{e}");
        let e = parse_text("[1, 2]", Path::new("t.json"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "t.json:1: a manifest must be an object with apiVersion and kind"
        );
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
