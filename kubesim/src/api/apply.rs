//! Server-side apply (`PATCH` with `application/apply-patch+yaml`), as far
//! as helm v4 and `kubectl apply --server-side` need it:
//!
//! - create the object when it is absent;
//! - merge the applied configuration into the object with the strategic
//!   merge keys (api/patch.rs), lists without a key are atomic;
//! - `metadata.managedFields`: one `Apply` entry per field manager with the
//!   fields it applied (`FieldsV1`, built in `fields.rs`), so fields the
//!   same manager applied before but no longer applies are removed (unless
//!   another manager owns them too);
//! - conflicts with other managers' fields whose value would change → 409
//!   with the upstream message, unless `force=true` (which takes them over).
//!
//! Not simulated: `Update` entries for non-apply writes (so only apply
//! managers can conflict), merge keys beyond patch.rs, `x-kubernetes-map-type`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::fields::{FieldSet, Path, decode, encode, field_set, managed_part};
use super::http::Req;
use super::objects::check_url_name;
use super::patch::merge_map;
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;
use crate::sim::Sim;

/// Whether a list item matches a `k:`/`v:` path element.
fn item_matches(item: &Value, el: &str) -> bool {
    if let Some(k) = el.strip_prefix("k:") {
        let Ok(Value::Object(key)) = serde_json::from_str::<Value>(k) else {
            return false;
        };
        key.iter().all(|(f, v)| item.get(f) == Some(v))
    } else if let Some(v) = el.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|v| &v == item)
    } else {
        false
    }
}

/// The value at a field path.
fn lookup<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        cur = match el.strip_prefix("f:") {
            Some(f) => cur.get(f)?,
            None => cur.as_array()?.iter().find(|x| item_matches(x, el))?,
        };
    }
    Some(cur)
}

/// Remove the field (or list item) at a path.
fn remove(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for el in parent {
        let next = match el.strip_prefix("f:") {
            Some(f) => cur.get_mut(f),
            None => cur
                .as_array_mut()
                .and_then(|a| a.iter_mut().find(|x| item_matches(x, el))),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last.strip_prefix("f:") {
        Some(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        None => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|x| !item_matches(x, last));
            }
        }
    }
}

/// `.spec.template.spec.containers[name="web"].image`, as upstream prints paths.
fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| m.iter().map(|(f, v)| format!("{f}={v}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// One `managedFields` entry, as stored.
fn entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    sub: Option<&str>,
    time: &str,
    set: &FieldSet,
) -> Value {
    let mut e = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": encode(set),
    });
    if let Some(s) = sub {
        e["subresource"] = json!(s);
    }
    e
}

fn conflict_error(rt: &ResourceType, name: &str, conflicts: &[(String, String, Path)]) -> ApiError {
    let n = conflicts.len();
    let mut by_mgr: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (m, v, p) in conflicts {
        by_mgr
            .entry((m.clone(), v.clone()))
            .or_default()
            .push(display_path(p));
    }
    let message = if n == 1 {
        let (m, v, p) = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with \"{m}\" using {v}: {}",
            display_path(p)
        )
    } else {
        let mut s = format!("Apply failed with {n} conflicts: ");
        let parts: Vec<String> = by_mgr
            .iter()
            .map(|((m, v), ps)| {
                let mut x = format!("conflicts with \"{m}\" using {v}:");
                for p in ps {
                    x.push_str(&format!("\n- {p}"));
                }
                x
            })
            .collect();
        s.push_str(&parts.join("\n"));
        s
    };
    let mut e = ApiError::new(409, "Conflict", message);
    let mut d = json!({"name": name, "kind": rt.plural});
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d["causes"] = conflicts
        .iter()
        .map(|(m, v, p)| {
            json!({"reason": "FieldManagerConflict",
                   "message": format!("conflict with \"{m}\" using {v}"),
                   "field": display_path(p)})
        })
        .collect();
    e.details = Some(d);
    e
}

/// Serve one apply request: `(status code, stored object)`.
pub fn apply(
    sim: &Sim,
    req: &Req,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    sub: Option<&str>,
) -> ApiResult<(u16, Arc<Value>)> {
    let manager = req
        .q("fieldManager")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests",
            )
        })?
        .to_string();
    let force = req.q_bool("force");
    let cfg: Value = serde_yaml::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    if !cfg.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration is not an object",
        ));
    }
    let api_version = cfg["apiVersion"].as_str().unwrap_or("").to_string();
    if api_version.is_empty() || cfg["kind"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind must be set in an applied configuration",
        ));
    }
    check_url_name(&cfg, name)?;
    let applied = managed_part(&cfg, sub == Some("status"));
    let new_set = field_set(&applied);
    let now = crate::clock::fmt_time(sim.clock.now());

    let mut attempt = 0;
    loop {
        attempt += 1;
        let old = match sim.store.get(rt, ns, name) {
            Ok(o) => o,
            Err(e) if e.code == 404 && sub.is_none() => {
                let mut obj = cfg.clone();
                obj["metadata"]["name"] = json!(name);
                if rt.namespaced {
                    obj["metadata"]["namespace"] = json!(ns);
                }
                obj["metadata"]["managedFields"] =
                    json!([entry(&manager, "Apply", &api_version, None, &now, &new_set)]);
                match super::objects::create_in(sim, rt, ns, obj, req.dry_run()) {
                    Err(e) if e.code == 409 && e.reason == "AlreadyExists" && attempt < 4 => {
                        continue;
                    }
                    r => return r.map(|o| (201, o)),
                }
            }
            Err(e) => return Err(e),
        };
        let old_rv = old["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if let Some(want) = cfg["metadata"]["resourceVersion"].as_str()
            && !want.is_empty()
            && want != old_rv
        {
            return Err(ApiError::conflict(rt, name));
        }
        // The managers and their sets, minus this manager's Apply entry.
        let mut mine_before = FieldSet::new();
        let mut others: Vec<(Value, FieldSet)> = Vec::new();
        for e in old["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let set = decode(&e["fieldsV1"]);
            let same_sub = e["subresource"].as_str() == sub;
            if e["manager"].as_str() == Some(&manager)
                && e["operation"].as_str() == Some("Apply")
                && same_sub
            {
                mine_before = set;
            } else {
                others.push((e, set));
            }
        }
        // Conflicts: fields another manager owns whose value would change.
        let mut conflicts: Vec<(String, String, Path)> = Vec::new();
        for (e, set) in &others {
            for p in set.intersection(&new_set) {
                if lookup(&old, p) != lookup(&applied, p) {
                    conflicts.push((
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["apiVersion"].as_str().unwrap_or("").to_string(),
                        p.clone(),
                    ));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                return Err(conflict_error(rt, name, &conflicts));
            }
            for (e, set) in others.iter_mut() {
                let m = e["manager"].as_str().unwrap_or("").to_string();
                for (cm, _, p) in &conflicts {
                    if *cm == m {
                        set.remove(p);
                    }
                }
            }
        }
        // Fields this manager stopped applying and nobody else owns go away.
        let mut next = (*old).clone();
        let mut dropped: Vec<&Path> = mine_before
            .difference(&new_set)
            .filter(|p| !others.iter().any(|(_, s)| s.contains(*p)))
            .collect();
        dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in dropped {
            remove(&mut next, p);
        }
        if let (Value::Object(om), Value::Object(am)) = (&mut next, &applied) {
            merge_map(om, am, &[])?;
        }
        let mut fields: Vec<Value> = others
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(mut e, s)| {
                e["fieldsV1"] = encode(&s);
                e
            })
            .collect();
        fields.push(entry(&manager, "Apply", &api_version, sub, &now, &new_set));
        next["metadata"]["managedFields"] = Value::Array(fields);
        match super::objects::write_update(
            sim,
            rt,
            ns,
            name,
            sub,
            next,
            Some(&old_rv),
            req.dry_run(),
        ) {
            Err(e) if e.code == 409 && e.reason == "Conflict" && attempt < 8 => continue,
            r => return r.map(|o| (200, o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fieldsv1_roundtrip() {
        let cfg = json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
              "template": {"spec": {"containers": [{"name": "web", "image": "web:1"}]}}}});
        let set = field_set(&cfg);
        let enc = encode(&set);
        assert_eq!(
            enc["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["."],
            json!({})
        );
        assert_eq!(enc["f:spec"]["f:selector"], json!({}));
        assert_eq!(decode(&enc), set);
    }

    #[test]
    fn remove_and_lookup() {
        let mut o = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}});
        let p: Path = vec![
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"a\"}".into(),
            "f:image".into(),
        ];
        assert_eq!(lookup(&o, &p), Some(&json!("x")));
        remove(&mut o, &p[..3]);
        assert_eq!(o, json!({"spec": {"containers": [{"name": "b"}]}}));
        assert_eq!(display_path(&p), ".spec.containers[name=\"a\"].image");
    }
}
