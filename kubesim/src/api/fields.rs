//! Managed fields of server-side apply: the set of field paths a manager's
//! applied configuration owns, and its `FieldsV1` encoding.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::patch::{ListStrategy, strategy};

/// One path element in FieldsV1 form: `f:name`, `k:{"name":"web"}`, `v:"x"`.
pub(super) type Path = Vec<String>;

/// A set of owned field paths (leaves and list items).
pub type FieldSet = BTreeSet<Path>;

/// Metadata the server owns: never part of an applied field set.
pub(super) const SERVER_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Fields that are atomic in the upstream schema (replaced as a whole).
pub(super) fn atomic_map(names: &[String], field: &str) -> bool {
    field == "selector" && names.last().is_some_and(|p| p == "spec")
}

/// The applied configuration without the fields apply does not manage.
pub(super) fn managed_part(cfg: &Value, keep_status: bool) -> Value {
    let mut c = cfg.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if !keep_status {
            m.remove("status");
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in SERVER_META {
                meta.remove(*k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    c
}

/// The field set of an applied configuration.
pub fn field_set(cfg: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = cfg {
        collect_map(m, &mut Vec::new(), &mut Vec::new(), &mut out);
    }
    out
}

pub(super) fn collect_map(
    m: &Map<String, Value>,
    path: &mut Path,
    names: &mut Vec<String>,
    out: &mut FieldSet,
) {
    for (k, v) in m {
        if v.is_null() {
            continue;
        }
        path.push(format!("f:{k}"));
        collect_field(v, k, path, names, out);
        path.pop();
    }
}

pub(super) fn collect_field(
    v: &Value,
    field: &str,
    path: &mut Path,
    names: &mut Vec<String>,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() && !atomic_map(names, field) => {
            names.push(field.to_string());
            collect_map(m, path, names, out);
            names.pop();
        }
        Value::Array(items) => match strategy(names, field) {
            ListStrategy::Key(key) => {
                names.push(field.to_string());
                for it in items {
                    let Value::Object(im) = it else { continue };
                    let Some(kv) = im.get(key) else { continue };
                    path.push(format!("k:{}", json!({ key: kv })));
                    out.insert(path.clone());
                    collect_map(im, path, names, out);
                    path.pop();
                }
                names.pop();
            }
            ListStrategy::Primitive => {
                for it in items {
                    path.push(format!("v:{it}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListStrategy::Atomic => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// Encode a field set as `fieldsV1`.
pub fn encode(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for p in set {
        let mut node = &mut root;
        for el in p {
            let next = node
                .entry(el.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            node = match next {
                Value::Object(m) => m,
                _ => unreachable!("fieldsV1 nodes are objects"),
            };
        }
    }
    // A node that is itself owned and has children gets a "." entry.
    fn mark(node: &mut Map<String, Value>, path: &mut Path, set: &FieldSet) {
        for (k, v) in node.iter_mut() {
            path.push(k.clone());
            if let Value::Object(m) = v
                && !m.is_empty()
            {
                mark(m, path, set);
                if set.contains(path) {
                    m.insert(".".into(), json!({}));
                }
            }
            path.pop();
        }
    }
    mark(&mut root, &mut Vec::new(), set);
    Value::Object(root)
}

/// Decode `fieldsV1` into a field set.
pub fn decode(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut Path, out: &mut FieldSet) {
        let Value::Object(m) = v else { return };
        if (m.is_empty() || m.contains_key(".")) && !path.is_empty() {
            out.insert(path.clone());
        }
        for (k, x) in m {
            if k == "." {
                continue;
            }
            path.push(k.clone());
            walk(x, path, out);
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}
