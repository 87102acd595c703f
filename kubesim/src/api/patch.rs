//! The three patch types: JSON patch (RFC 6902), JSON merge patch (RFC 7386)
//! and strategic merge patch with the upstream merge keys and directives.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Which patch a Content-Type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Ok(Self::Json),
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(Self::Apply),
            other => Err(unsupported(other)),
        }
    }
}

pub fn unsupported(ct: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json; got {ct:?}"
        ),
    )
}

/// Apply `body` (a patch of type `pt`) to `doc`.
pub fn apply(pt: PatchType, doc: &Value, body: &[u8]) -> ApiResult<Value> {
    match pt {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut out = doc.clone();
            json_patch::patch(&mut out, &p).map_err(|e| {
                let mut err = ApiError::new(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request",
                );
                err.details = Some(serde_json::json!({"causes": [{"reason": "FieldValueInvalid", "message": e.to_string()}]}));
                err
            })?;
            Ok(out)
        }
        PatchType::Merge => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut out = doc.clone();
            json_patch::merge(&mut out, &p);
            Ok(out)
        }
        PatchType::Strategic => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let Value::Object(pm) = p else {
                return Err(ApiError::bad_request(
                    "strategic merge patch must be a JSON object",
                ));
            };
            let mut out = doc.clone();
            if !out.is_object() {
                out = Value::Object(Map::new());
            }
            if let Value::Object(om) = &mut out {
                merge_map(om, &pm, &[])?;
            }
            Ok(out)
        }
        PatchType::Apply => Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "server-side apply is served by api::apply, not by patch::apply",
        )),
    }
}

/// How a list field merges, from the upstream `patchStrategy`/`patchMergeKey`.
pub(crate) enum ListStrategy {
    /// Merge elements by this key.
    Key(&'static str),
    /// A set of primitives (e.g. `finalizers`).
    Primitive,
    /// Replace as a whole.
    Atomic,
}

pub(crate) fn strategy(path: &[String], field: &str) -> ListStrategy {
    let parent = path.last().map(String::as_str).unwrap_or("");
    let in_container = path.iter().any(|p| {
        matches!(
            p.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        )
    });
    match field {
        "containers" | "initContainers" | "ephemeralContainers" => ListStrategy::Key("name"),
        "env" | "imagePullSecrets" | "volumes" | "resourceClaims" => ListStrategy::Key("name"),
        "ports" if in_container => ListStrategy::Key("containerPort"),
        "ports" if parent == "spec" => ListStrategy::Key("port"),
        "volumeMounts" => ListStrategy::Key("mountPath"),
        "volumeDevices" => ListStrategy::Key("devicePath"),
        "conditions" => ListStrategy::Key("type"),
        "ownerReferences" => ListStrategy::Key("uid"),
        "hostAliases" => ListStrategy::Key("ip"),
        "topologySpreadConstraints" => ListStrategy::Key("topologyKey"),
        "finalizers" => ListStrategy::Primitive,
        _ => ListStrategy::Atomic,
    }
}

const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList/";

/// Remove directive keys from a value being inserted as a whole.
fn strip(v: &Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.get("$patch").and_then(Value::as_str) == Some("delete") {
                return None;
            }
            let mut out = Map::new();
            for (k, x) in m {
                if k.starts_with('$') {
                    continue;
                }
                if x.is_null() {
                    continue;
                }
                if let Some(y) = strip(x) {
                    out.insert(k.clone(), y);
                }
            }
            Some(Value::Object(out))
        }
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .filter(|x| !(x.is_object() && x.get("$patch").is_some()))
                .filter_map(strip)
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

pub(crate) fn merge_map(
    orig: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    path: &[String],
) -> ApiResult<()> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *orig = match strip(&Value::Object(patch.clone())) {
                Some(Value::Object(m)) => m,
                _ => Map::new(),
            };
            return Ok(());
        }
        Some("delete") => {
            orig.clear();
            return Ok(());
        }
        Some("merge") | None => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other:?}"
            )));
        }
    }
    for (k, pv) in patch {
        if k.starts_with('$') {
            if let Some(field) = k.strip_prefix(DELETE_PRIMITIVE)
                && let (Some(Value::Array(list)), Some(del)) = (orig.get_mut(field), pv.as_array())
            {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if pv.is_null() {
            orig.remove(k);
            continue;
        }
        let mut sub_path = path.to_vec();
        sub_path.push(k.clone());
        match pv {
            Value::Object(pm) => {
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    orig.remove(k);
                    continue;
                }
                match orig.get_mut(k) {
                    Some(Value::Object(om)) => merge_map(om, pm, &sub_path)?,
                    _ => {
                        let mut fresh = Map::new();
                        merge_map(&mut fresh, pm, &sub_path)?;
                        orig.insert(k.clone(), Value::Object(fresh));
                    }
                }
            }
            Value::Array(pa) => {
                let order = patch
                    .get(&format!("{SET_ORDER}{k}"))
                    .and_then(Value::as_array);
                match strategy(path, k) {
                    ListStrategy::Key(key) => {
                        let mut list = match orig.remove(k) {
                            Some(Value::Array(a)) => a,
                            _ => Vec::new(),
                        };
                        merge_list(&mut list, pa, key, &sub_path)?;
                        if let Some(order) = order {
                            reorder(&mut list, order, |x| x.get(key).cloned());
                        }
                        orig.insert(k.clone(), Value::Array(list));
                    }
                    ListStrategy::Primitive => {
                        let mut list = match orig.remove(k) {
                            Some(Value::Array(a)) => a,
                            _ => Vec::new(),
                        };
                        if pa
                            .iter()
                            .any(|x| x.get("$patch").and_then(Value::as_str) == Some("replace"))
                        {
                            list = pa.iter().filter(|x| !x.is_object()).cloned().collect();
                        } else {
                            for x in pa {
                                if !list.contains(x) {
                                    list.push(x.clone());
                                }
                            }
                        }
                        if let Some(order) = order {
                            reorder(&mut list, order, |x| Some(x.clone()));
                        }
                        orig.insert(k.clone(), Value::Array(list));
                    }
                    ListStrategy::Atomic => {
                        if let Some(v) = strip(pv) {
                            orig.insert(k.clone(), v);
                        }
                    }
                }
            }
            other => {
                orig.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        orig.retain(|k, _| keep.contains(&k.as_str()));
    }
    Ok(())
}

fn merge_list(list: &mut Vec<Value>, patch: &[Value], key: &str, path: &[String]) -> ApiResult<()> {
    if patch
        .iter()
        .any(|x| x.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *list = patch
            .iter()
            .filter(|x| x.get("$patch").is_none())
            .filter_map(strip)
            .collect();
        return Ok(());
    }
    for item in patch {
        let Value::Object(pm) = item else {
            list.push(item.clone());
            continue;
        };
        let kv = pm.get(key);
        let pos = kv.and_then(|kv| list.iter().position(|x| x.get(key) == Some(kv)));
        if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(kv) = kv {
                list.retain(|x| x.get(key) != Some(kv));
            }
            continue;
        }
        match pos {
            Some(i) => {
                if let Value::Object(om) = &mut list[i] {
                    merge_map(om, pm, path)?;
                }
            }
            None => {
                let mut fresh = Map::new();
                merge_map(&mut fresh, pm, path)?;
                list.push(Value::Object(fresh));
            }
        }
    }
    Ok(())
}

/// `$setElementOrder`: elements named in `order` come in that order; the
/// others keep their relative order after them.
fn reorder<F>(list: &mut Vec<Value>, order: &[Value], key_of: F)
where
    F: Fn(&Value) -> Option<Value>,
{
    let order_keys: Vec<Value> = order
        .iter()
        .map(|o| match o {
            Value::Object(m) => m.values().next().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        })
        .collect();
    let mut ordered: Vec<Value> = Vec::with_capacity(list.len());
    for k in &order_keys {
        if let Some(i) = list.iter().position(|x| key_of(x).as_ref() == Some(k)) {
            ordered.push(list.remove(i));
        }
    }
    ordered.append(list);
    *list = ordered;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(doc: Value, p: Value) -> Value {
        apply(PatchType::Strategic, &doc, p.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn set_image_with_element_order() {
        let doc = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "web:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "side", "image": "side:1"}]}}}});
        let out = smp(
            doc,
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "side"}],
                "containers": [{"image": "web:2", "name": "web"}]}}}}),
        );
        let cs = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["image"], "web:2");
        assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
        assert_eq!(cs[1]["image"], "side:1");
        assert_eq!(cs.as_array().unwrap().len(), 2);
    }

    #[test]
    fn directives() {
        let doc = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1", "y": "2"}},
            "spec": {"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                     "tolerations": [{"key": "k"}], "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = smp(
            doc,
            json!({"metadata": {"labels": {"x": null}, "$deleteFromPrimitiveList/finalizers": ["a"]},
                   "spec": {"env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}],
                            "tolerations": [{"key": "z"}],
                            "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"y": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            out["spec"]["env"],
            json!([{"name": "B", "value": "2"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(out["spec"]["tolerations"], json!([{"key": "z"}]));
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn json_patch_test_failure_is_422() {
        let e = apply(
            PatchType::Json,
            &json!({"spec": {"replicas": 1}}),
            br#"[{"op":"test","path":"/spec/replicas","value":2}]"#,
        )
        .unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(e.reason, "Invalid");
    }
}
