//! Our patches, re-checked instead of clobbering on a conflict: a lost
//! response of a landed patch is recognised, a resourceVersion-only change
//! is patched again, and anyone else's template change is never overwritten.

use serde_json::Value;

use super::marker::{Marker, get, json_patch, mark, marker_of, path_of};
use crate::workload::deployment as dep;

/// Send our rollout patch; on 409/422 (a conflict, or a repeat of a patch
/// whose response was lost) re-read and re-check instead of failing or
/// clobbering:
/// - the object carries our marker → our patch landed: its current state is the answer;
/// - the template is still the one we planned from (only the
///   resourceVersion moved, e.g. a status or annotation write) → retry with
///   the new resourceVersion in the patch's `test` op (at most 3 times);
/// - anything else (someone changed the template) → the original error.
pub async fn patch_rechecked(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
    patch: &mut Value,
    previous_template: &Value,
    marker: &mut Marker,
) -> Result<Value, kube::Error> {
    let path = path_of(kind, ns, name);
    let mut attempts = 0;
    loop {
        let err = match json_patch(client, &path, patch).await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => kube::Error::Api(s),
            Err(e) => return Err(e),
        };
        attempts += 1;
        let Ok(current) = get(client, &path).await else {
            return Err(err);
        };
        if marker_of(&current).as_ref() == Some(&*marker) {
            tracing::info!("our patch of {kind}/{name} had landed (its response was lost)");
            return Ok(current);
        }
        let template = current
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        if attempts > 3
            || dep::normalised_template(&template) != dep::normalised_template(previous_template)
        {
            return Err(err);
        }
        let rv = current
            .pointer("/metadata/resourceVersion")
            .cloned()
            .unwrap_or(Value::Null);
        tracing::info!(
            "{kind}/{name} changed (resourceVersion only) between our read and our patch: re-checked, patching again"
        );
        if let Some(op) = patch.as_array_mut().and_then(|ops| {
            ops.iter_mut()
                .find(|op| op["path"] == "/metadata/resourceVersion")
        }) {
            op["value"] = rv;
        }
        // The patch now lands on this object's generation: bind the marker to it.
        if marker.generation != 0 {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            marker.generation = generation + 1;
            mark(patch, marker);
        }
    }
}

/// Send the rollback patch; on 409/422 re-read: if the template already is
/// the previous one (our rollback landed, its response was lost), that is
/// the answer; otherwise the original error (never clobber another writer).
pub async fn rollback_rechecked(
    client: &kube::Client,
    kind: &str,
    ns: &str,
    name: &str,
    patch: &Value,
    previous_template: &Value,
) -> Result<Value, kube::Error> {
    let path = path_of(kind, ns, name);
    let mut tries = 0;
    loop {
        let err = match json_patch(client, &path, patch).await {
            Ok(v) => return Ok(v),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => kube::Error::Api(s),
            Err(e) => return Err(e),
        };
        tries += 1;
        let Ok(current) = get(client, &path).await else {
            return Err(err);
        };
        let template = current
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(Value::Null);
        if dep::normalised_template(&template) == dep::normalised_template(previous_template) {
            return Ok(current);
        }
        // A bare 409 (no test failed: an injected or storage conflict) is worth one more try.
        let conflict = matches!(&err, kube::Error::Api(s) if s.code == 409);
        if !conflict || tries > 3 {
            return Err(err);
        }
    }
}
