//! Object writes as the API server makes them, below the HTTP verbs: create
//! and update with defaulting, validation and admission, and delete with
//! graceful pod termination and orphaning. The REST verbs, server-side apply
//! and the controllers all write through here.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::views::{from_view, has_status, render};
use super::{defaults, validate};
use crate::clock::fmt_time;
use crate::error::{ApiError, ApiResult};
use crate::resources::{self, ResourceType, res};
use crate::sim::Sim;

/// Options of a DELETE (body `DeleteOptions` or query parameters).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub preconditions_uid: Option<String>,
    pub preconditions_resource_version: Option<String>,
}

/// Clear what a client may not set on create and default/validate.
pub(crate) fn create_in(
    sim: &Sim,
    rt: &'static ResourceType,
    ns: &str,
    body: Value,
    dry_run: bool,
) -> ApiResult<Arc<Value>> {
    let mut obj = from_view(rt, body);
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if rt.namespaced {
        if let Some(bns) = obj["metadata"]["namespace"].as_str()
            && !bns.is_empty()
            && bns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if sim.store.get(res("namespaces"), "", ns).is_err() {
            return Err(ApiError::not_found(res("namespaces"), ns));
        }
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            m.remove(k);
        }
    }
    if has_status(rt)
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    defaults::apply(rt, &mut obj);
    if obj["metadata"]["name"].as_str().is_none_or(str::is_empty)
        && obj["metadata"]["generateName"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        return Err(ApiError::name_required(rt));
    }
    validate::validate(rt, &obj, None)?;
    if rt.group.is_empty() && rt.plural == "pods" {
        crate::admission::admit_pod(sim, ns, &mut obj)?;
    }
    if dry_run {
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            let prefix = obj["metadata"]["generateName"]
                .as_str()
                .unwrap_or("")
                .to_string();
            obj["metadata"]["name"] = json!(format!("{prefix}{}", crate::store::random_suffix(5)));
        }
        obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
        obj["metadata"]["creationTimestamp"] = json!(crate::clock::fmt_time(sim.clock.now()));
        if rt.namespaced {
            obj["metadata"]["namespace"] = json!(ns);
        }
        if rt.has_generation {
            obj["metadata"]["generation"] = json!(1);
        }
        return Ok(Arc::new(render(rt, &obj)));
    }
    sim.store.create(rt, ns, obj)
}

/// A body that names an object must name the one on the URL it is sent to.
pub(crate) fn check_url_name(body: &Value, name: &str) -> ApiResult<()> {
    match body["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// Compose the next stored object from a write to the main resource or a
/// subresource, then default, validate and store it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_update(
    sim: &Sim,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    view: Value,
    expect_rv: Option<&str>,
    dry_run: bool,
) -> ApiResult<Arc<Value>> {
    let old = sim.store.get(rt, ns, name)?;
    if !view.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request is not a JSON object",
        ));
    }
    check_url_name(&view, name)?;
    if rt.namespaced
        && let Some(bns) = view["metadata"]["namespace"].as_str()
        && !bns.is_empty()
        && bns != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut next = match sub {
        Some("status") => {
            let mut n = (*old).clone();
            n["status"] = view.get("status").cloned().unwrap_or(json!({}));
            n
        }
        Some("scale") => {
            let replicas = view["spec"]["replicas"].as_i64().unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    &[(
                        "spec.replicas",
                        format!("Invalid value: {replicas}: must be greater than or equal to 0"),
                    )],
                ));
            }
            let mut n = (*old).clone();
            n["spec"]["replicas"] = json!(replicas);
            n
        }
        _ => {
            let mut n = view;
            if has_status(rt) {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            n
        }
    };
    // Server-managed metadata survives client writes.
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old["metadata"].get(k) {
            Some(v) => next["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = next["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    defaults::apply(rt, &mut next);
    validate::validate(rt, &next, Some(&old))?;
    if let Some(want) = expect_rv
        && !want.is_empty()
        && old["metadata"]["resourceVersion"].as_str() != Some(want)
    {
        return Err(ApiError::conflict(rt, name));
    }
    if dry_run {
        next["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        next["metadata"]["uid"] = old["metadata"]["uid"].clone();
        next["metadata"]["creationTimestamp"] = old["metadata"]["creationTimestamp"].clone();
        return Ok(Arc::new(render(rt, &next)));
    }
    next["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
    sim.store.update(rt, ns, name, next, expect_rv)
}

/// The resource type of an object from its `apiVersion`/`kind`.
pub fn resource_of(obj: &Value) -> ApiResult<&'static ResourceType> {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    resources::by_kind(group, kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no resource for apiVersion {api_version:?} kind {kind:?}"
        ))
    })
}

/// Create an object as `POST` would (defaulting, validation), bypassing HTTP.
pub fn create_object(sim: &Sim, obj: Value) -> ApiResult<Arc<Value>> {
    let rt = resource_of(&obj)?;
    let ns = if rt.namespaced {
        obj["metadata"]["namespace"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string()
    } else {
        String::new()
    };
    create_in(sim, rt, &ns, obj, false)
}

/// Delete an object as `DELETE` would: graceful for bound pods, immediate
/// otherwise; `Orphan` strips the dependents' ownerReferences first.
pub fn delete_object(
    sim: &Sim,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Arc<Value>> {
    let cur = sim.store.get(rt, ns, name)?;
    let preconditions = [
        ("UID", "uid", &opts.preconditions_uid),
        (
            "ResourceVersion",
            "resourceVersion",
            &opts.preconditions_resource_version,
        ),
    ];
    for (field, key, want) in preconditions {
        let have = cur["metadata"][key].as_str().unwrap_or("");
        if let Some(want) = want
            && want != have
        {
            return Err(ApiError::conflict_precondition(rt, name, field, want, have));
        }
    }
    if rt.group.is_empty() && rt.plural == "pods" {
        let bound = cur["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let terminating = !cur["metadata"]["deletionTimestamp"].is_null();
        let grace = opts
            .grace_period_seconds
            .or_else(|| cur["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30)
            .max(0);
        if bound && grace > 0 {
            if terminating {
                // Shortening an ongoing graceful deletion is allowed; otherwise a no-op.
                let cur_grace = cur["metadata"]["deletionGracePeriodSeconds"]
                    .as_i64()
                    .unwrap_or(i64::MAX);
                if grace >= cur_grace {
                    return Ok(cur);
                }
            }
            let at = sim.clock.now() + Duration::from_secs(grace as u64);
            return sim.store.modify(rt, ns, name, |o| {
                o["metadata"]["deletionTimestamp"] = json!(fmt_time(at));
                o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                Ok(true)
            });
        }
    }
    if opts.propagation_policy.as_deref() == Some("Orphan")
        && let Some(uid) = cur["metadata"]["uid"].as_str()
    {
        orphan_dependents(sim, uid);
    }
    sim.store.delete(rt, ns, name)
}

/// Remove ownerReferences pointing at `uid` from every object.
fn orphan_dependents(sim: &Sim, uid: &str) {
    for rt in resources::RESOURCES {
        if rt.group == "events.k8s.io" {
            continue;
        }
        let (items, _) = sim.store.list(rt, None);
        for it in items {
            let refs = it["metadata"]["ownerReferences"].as_array();
            if !refs.is_some_and(|r| r.iter().any(|o| o["uid"].as_str() == Some(uid))) {
                continue;
            }
            let ns = it["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = it["metadata"]["name"].as_str().unwrap_or("").to_string();
            let _ = sim.store.modify(rt, &ns, &name, |o| {
                if let Some(m) = o["metadata"].as_object_mut() {
                    let keep: Vec<Value> = m
                        .get("ownerReferences")
                        .and_then(|v| v.as_array())
                        .map(|a| {
                            a.iter()
                                .filter(|r| r["uid"].as_str() != Some(uid))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    if keep.is_empty() {
                        m.remove("ownerReferences");
                    } else {
                        m.insert("ownerReferences".into(), Value::Array(keep));
                    }
                }
                Ok(true)
            });
        }
    }
}
