//! Reading an object's metadata from its JSON: the one place that knows
//! where name, namespace and labels sit. Empty strings count as absent.

use serde_json::Value;

use crate::selector::Labels;

/// `metadata.name`, if set and not empty.
pub fn name(obj: &Value) -> Option<&str> {
    text(obj, "/metadata/name")
}

/// `metadata.namespace`, if set and not empty.
pub fn namespace(obj: &Value) -> Option<&str> {
    text(obj, "/metadata/namespace")
}

/// String labels of an object (non-string values are ignored).
pub fn labels(obj: &Value) -> Labels {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn text<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_namespaces_and_labels() {
        let o = json!({"metadata": {"name": "a", "namespace": "", "labels": {"x": "1", "n": 2}}});
        assert_eq!(name(&o), Some("a"));
        assert_eq!(namespace(&o), None);
        assert_eq!(labels(&o).len(), 1);
        assert_eq!(name(&json!({})), None);
    }
}
