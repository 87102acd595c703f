//! The REST verbs over the store: get, list, create, update, patch, delete,
//! deletecollection, and the status/scale/log/eviction subresources.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::watch as wch;

use super::http::{self, Req, Resp};
use super::objects::{DeleteOptions, create_in, delete_object, write_update};
use super::patch::{self, PatchType};
use super::routes::ResourceReq;
use super::selectors::{FieldSelector, LabelSelector};
use super::views::{from_view, render, respond_view, scale_view};
use super::{logs, ssar};
use crate::auth::Identity;
use crate::error::{ApiError, ApiResult};
use crate::resources::{ResourceType, res};
use crate::sim::Sim;

pub async fn handle(
    sim: &Arc<Sim>,
    req: &Req,
    r: &ResourceReq,
    verb: &str,
    identity: &Identity,
    shutdown: wch::Receiver<bool>,
) -> ApiResult<Resp> {
    let rt = r.rt;
    let ns = r.namespace.clone().unwrap_or_default();
    let name = r.name.clone().unwrap_or_default();
    let sub = r.sub.as_deref();
    if matches!(verb, "update" | "patch") && sim.faults.take_conflict(rt.plural, &ns, &name) {
        return Err(ApiError::conflict(rt, &name));
    }
    match verb {
        "get" => match sub {
            Some("log") => logs::get(sim, req, &ns, &name),
            Some("scale") => {
                let o = sim.store.get(rt, &ns, &name)?;
                Ok(http::json(200, &scale_view(rt, &o)))
            }
            _ => {
                let o = sim.store.get(rt, &ns, &name)?;
                if sub.is_none() && super::table::wants_table(req) {
                    let mut item = render(rt, &o);
                    let meta = json!({"resourceVersion": o["metadata"]["resourceVersion"]});
                    if let Some(m) = item.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    let list = json!({"metadata": meta, "items": [item]});
                    let include = req.q("includeObject") == Some("Object");
                    return Ok(http::json(
                        200,
                        &super::table::list_table(sim, rt, &list, include),
                    ));
                }
                Ok(http::json(200, &render(rt, &o)))
            }
        },
        "list" => list(sim, req, r),
        "watch" => super::watch::watch(sim, req, r, shutdown).await,
        "create" => {
            let body = decode_body(req)?;
            match (rt.group, rt.plural, sub) {
                ("authorization.k8s.io", "selfsubjectaccessreviews", _) => {
                    Ok(http::json(201, &ssar::access_review(identity, &body)?))
                }
                ("authorization.k8s.io", "selfsubjectrulesreviews", _) => {
                    let mut review = ssar::rules_review(identity, &body)?;
                    if sim.faults.incomplete_rules() {
                        review["status"]["resourceRules"] = json!([]);
                        review["status"]["incomplete"] = json!(true);
                    }
                    Ok(http::json(201, &review))
                }
                (_, _, Some("eviction")) => evict(sim, req, rt, &ns, &name, &body),
                _ => {
                    let created = create_in(sim, rt, &ns, body, req.dry_run())?;
                    Ok(http::json(201, &render(rt, &created)))
                }
            }
        }
        "update" => {
            let body = decode_body(req)?;
            let expect = body["metadata"]["resourceVersion"]
                .as_str()
                .map(String::from);
            let mut view = from_view(rt, body);
            if sub.is_none() {
                let old = sim.store.get(rt, &ns, &name)?;
                record_update(sim, req, &mut view, &old);
            }
            let out = write_update(
                sim,
                rt,
                &ns,
                &name,
                sub,
                view,
                expect.as_deref(),
                req.dry_run(),
            )?;
            Ok(http::json(200, &respond_view(rt, sub, &out)))
        }
        "patch" => {
            let ct = req.header(::http::header::CONTENT_TYPE);
            if PatchType::from_content_type(ct)? == PatchType::Apply {
                let (code, out) = super::apply::apply(sim, req, rt, &ns, &name, sub)?;
                return Ok(http::json(code, &respond_view(rt, sub, &out)));
            }
            let out = patch_object(sim, req, rt, &ns, &name, sub)?;
            Ok(http::json(200, &respond_view(rt, sub, &out)))
        }
        "delete" => delete(sim, req, rt, &ns, &name),
        "deletecollection" => delete_collection(sim, req, r),
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The body as JSON (YAML accepted too).
fn decode_body(req: &Req) -> ApiResult<Value> {
    let ct = req.header(::http::header::CONTENT_TYPE);
    let base = ct.split(';').next().unwrap_or("").trim();
    match base {
        "" | "application/json" | "*/*" => serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}"))),
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(&req.body),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            serde_yaml::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        other => Err(patch::unsupported(other)),
    }
}

/// An `Update` entry in `metadata.managedFields` for a PUT or PATCH, as the
/// API server records one per field manager: the `fieldManager` parameter,
/// else the User-Agent's first segment (`kubectl-set`, `rollguard`). The
/// field set is left empty: only server-side apply computes conflicts here.
fn record_update(sim: &Sim, req: &Req, next: &mut Value, old: &Value) {
    let manager = req
        .q("fieldManager")
        .map(str::to_string)
        .unwrap_or_else(|| {
            let ua = req.header(::http::header::USER_AGENT);
            ua.split('/').next().unwrap_or("").to_string()
        });
    if manager.is_empty() {
        return;
    }
    let mut entries: Vec<Value> = old["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    entries.retain(|e| !(e["manager"] == manager.as_str() && e["operation"] == "Update"));
    let time = sim
        .clock
        .now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| sim.clock.now())
        .to_string();
    entries.push(json!({
        "manager": manager,
        "operation": "Update",
        "apiVersion": old["apiVersion"],
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": {}
    }));
    next["metadata"]["managedFields"] = Value::Array(entries);
}

fn patch_object(
    sim: &Sim,
    req: &Req,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    sub: Option<&str>,
) -> ApiResult<Arc<Value>> {
    let ct = req.header(::http::header::CONTENT_TYPE);
    let pt = PatchType::from_content_type(ct)?;
    if pt == PatchType::Apply {
        return Err(patch::apply(pt, &Value::Null, &[]).unwrap_err());
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let old = sim.store.get(rt, ns, name)?;
        let old_rv = old["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let view = respond_view(rt, sub, &old);
        let patched = patch::apply(pt, &view, &req.body)?;
        let asked_rv = patched["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if !asked_rv.is_empty() && asked_rv != old_rv {
            return Err(ApiError::conflict(rt, name));
        }
        if let Some(uid) = patched["metadata"]["uid"].as_str()
            && old["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(ApiError::conflict(rt, name));
        }
        let mut back = from_view(rt, patched);
        if sub.is_none() {
            record_update(sim, req, &mut back, &old);
        }
        match write_update(sim, rt, ns, name, sub, back, Some(&old_rv), req.dry_run()) {
            Err(e)
                if e.code == 409
                    && e.reason == "Conflict"
                    && asked_rv.is_empty()
                    && attempt < 8 =>
            {
                continue;
            }
            r => return r,
        }
    }
}

fn delete_options(req: &Req) -> ApiResult<DeleteOptions> {
    let mut o = DeleteOptions::default();
    if !req.body.is_empty() {
        let b: Value = serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
        o.grace_period_seconds = b["gracePeriodSeconds"].as_i64();
        o.propagation_policy = b["propagationPolicy"].as_str().map(String::from);
        o.preconditions_uid = b["preconditions"]["uid"].as_str().map(String::from);
        o.preconditions_resource_version = b["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from);
        if b["orphanDependents"].as_bool() == Some(true) && o.propagation_policy.is_none() {
            o.propagation_policy = Some("Orphan".into());
        }
    }
    if let Some(g) = req.q("gracePeriodSeconds").and_then(|s| s.parse().ok()) {
        o.grace_period_seconds = Some(g);
    }
    if let Some(p) = req.q("propagationPolicy") {
        o.propagation_policy = Some(p.to_string());
    }
    if req.q("orphanDependents") == Some("true") && o.propagation_policy.is_none() {
        o.propagation_policy = Some("Orphan".into());
    }
    if let Some(p) = &o.propagation_policy
        && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            ),
        ));
    }
    Ok(o)
}

/// Kinds whose DELETE answers the object rather than a Status.
fn returns_object(rt: &ResourceType) -> bool {
    rt.group.is_empty() && matches!(rt.plural, "pods" | "namespaces")
}

fn success_status(rt: &ResourceType, obj: &Value) -> Value {
    let mut details =
        json!({"name": obj["metadata"]["name"], "kind": rt.plural, "uid": obj["metadata"]["uid"]});
    if !rt.group.is_empty() {
        details["group"] = json!(rt.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn delete(
    sim: &Sim,
    req: &Req,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
) -> ApiResult<Resp> {
    let opts = delete_options(req)?;
    if req.dry_run() {
        let o = sim.store.get(rt, ns, name)?;
        return Ok(http::json(200, &render(rt, &o)));
    }
    let gone = if rt.group.is_empty() && rt.plural == "namespaces" {
        delete_namespace(sim, name, &opts)?
    } else {
        delete_object(sim, rt, ns, name, &opts)?
    };
    let still_there = sim.store.get(rt, ns, name).is_ok();
    if still_there || returns_object(rt) {
        Ok(http::json(200, &render(rt, &gone)))
    } else {
        Ok(http::json(200, &success_status(rt, &gone)))
    }
}

/// Delete a namespace and everything in it (at once: no Terminating phase).
fn delete_namespace(sim: &Sim, name: &str, opts: &DeleteOptions) -> ApiResult<Arc<Value>> {
    let nsr = res("namespaces");
    sim.store.get(nsr, "", name)?;
    for rt in crate::resources::RESOURCES {
        if !rt.namespaced || rt.group == "events.k8s.io" {
            continue;
        }
        let (items, _) = sim.store.list(rt, Some(name));
        for it in items {
            let n = it["metadata"]["name"].as_str().unwrap_or("");
            let _ = sim.store.delete(rt, name, n);
        }
    }
    delete_object(sim, nsr, "", name, opts)
}

fn delete_collection(sim: &Sim, req: &Req, r: &ResourceReq) -> ApiResult<Resp> {
    let rt = r.rt;
    let opts = delete_options(req)?;
    let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(rt, req.q("fieldSelector").unwrap_or(""))?;
    let (items, _) = sim.store.list(rt, r.namespace.as_deref());
    let mut out = Vec::new();
    for it in items {
        if !labels.matches(&it["metadata"]["labels"]) || !fields.matches(&it) {
            continue;
        }
        let ns = it["metadata"]["namespace"].as_str().unwrap_or("");
        let name = it["metadata"]["name"].as_str().unwrap_or("");
        if req.dry_run() {
            out.push(render(rt, &it));
            continue;
        }
        match delete_object(sim, rt, ns, name, &opts) {
            Ok(o) => out.push(render(rt, &o)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(http::json(
        200,
        &json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": out}),
    ))
}

fn evict(
    sim: &Sim,
    req: &Req,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    body: &Value,
) -> ApiResult<Resp> {
    let mut opts = DeleteOptions::default();
    if let Some(d) = body.get("deleteOptions") {
        opts.grace_period_seconds = d["gracePeriodSeconds"].as_i64();
    }
    if !req.dry_run() {
        delete_object(sim, rt, ns, name, &opts)?;
    } else {
        sim.store.get(rt, ns, name)?;
    }
    Ok(http::json(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// The opaque `continue` token: the list's resourceVersion and the last key served.
fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{ns}/{name}\u{0}")});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.to_string())
}

fn decode_continue(tok: &str) -> ApiResult<(u64, String, String)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"]
        .as_str()
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}');
    let (ns, name) = start.split_once('/').ok_or_else(bad)?;
    Ok((rv, ns.to_string(), name.to_string()))
}

fn list(sim: &Sim, req: &Req, r: &ResourceReq) -> ApiResult<Resp> {
    let rt = r.rt;
    let labels = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(rt, req.q("fieldSelector").unwrap_or(""))?;
    let (items, store_rv) = sim.store.list(rt, r.namespace.as_deref());
    let (list_rv, after) = match req.q("continue").filter(|s| !s.is_empty()) {
        Some(tok) => {
            let (rv, ns, name) = decode_continue(tok)?;
            (rv, Some((ns, name)))
        }
        None => (store_rv, None),
    };
    let key = |o: &Value| {
        (
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            o["metadata"]["name"].as_str().unwrap_or("").to_string(),
        )
    };
    let mut matching: Vec<&Arc<Value>> = items
        .iter()
        .filter(|o| labels.matches(&o["metadata"]["labels"]) && fields.matches(o))
        .filter(|o| after.as_ref().is_none_or(|a| key(o) > *a))
        .collect();
    let limit = req
        .q("limit")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let mut meta = json!({"resourceVersion": list_rv.to_string()});
    if let Some(l) = limit
        && matching.len() > l
    {
        let remaining = matching.len() - l;
        matching.truncate(l);
        if let Some(last) = matching.last() {
            let (ns, name) = key(last);
            meta["continue"] = json!(encode_continue(list_rv, &ns, &name));
            meta["remainingItemCount"] = json!(remaining);
        }
    }
    let out: Vec<Value> = matching
        .into_iter()
        .map(|o| {
            let mut v = render(rt, o);
            if let Some(m) = v.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            v
        })
        .collect();
    let list = json!({
        "kind": format!("{}List", rt.kind),
        "apiVersion": rt.api_version(),
        "metadata": meta,
        "items": out,
    });
    if super::table::wants_table(req) {
        let include = req.q("includeObject") == Some("Object");
        return Ok(http::json(
            200,
            &super::table::list_table(sim, rt, &list, include),
        ));
    }
    Ok(http::json(200, &list))
}
