//! Removing the canary, in every outcome: after the full rollout (or its
//! failure or cancel), and in the next run when a run was killed outright
//! (found by the canary's [`ANNOTATION`] / the StatefulSet's
//! [`PARTITION_ANNOTATION`]).

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{ANNOTATION, LABEL, PARTITION_ANNOTATION};
use crate::report::WorkloadReport;
use crate::workload::{Kind, WorkloadRef};

/// How often the removal is re-checked.
const POLL: Duration = Duration::from_millis(200);
/// How long a leftover canary's removal may take in the next run.
const LEFTOVER_WITHIN: Duration = Duration::from_secs(60);

/// The API path of a Deployment (for the second-signal delete).
pub fn deployment_path(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Delete the canary Deployment `name` (its ReplicaSet and pods go with it)
/// and wait until it and the pods of `selector` are gone, up to `within`.
/// At the deadline, pods still terminating count as removed (they are out
/// of the Service's endpoints); a live pod or the Deployment itself does not.
pub async fn delete_and_wait(
    client: &Client,
    ns: &str,
    name: &str,
    selector: &str,
    within: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match deployments.delete(name, &DeleteParams::foreground()).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {}
        Err(e) => {
            return Err(format!(
                "could not delete the canary deployment/{name}: {e}"
            ));
        }
    }
    let list = ListParams::default().labels(selector);
    loop {
        let gone = matches!(deployments.get_opt(name).await, Ok(None));
        let left = pods.list(&list).await.map(|l| l.items);
        if let (true, Ok(left)) = (gone, &left) {
            let live = left
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count();
            if left.is_empty() || (live == 0 && Instant::now() >= deadline) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            let pods_left = left.map(|l| l.len()).unwrap_or(0);
            return Err(format!(
                "deleted the canary deployment/{name}, but it{} was not gone within {}",
                if pods_left > 0 {
                    format!(" (and {pods_left} of its pods)")
                } else {
                    String::new()
                },
                humantime::format_duration(within)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The canary Deployment's pod selector (its matchLabels, which include [`LABEL`]).
fn selector_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_else(|| format!("{LABEL}=true"))
}

/// Put a StatefulSet's partition back to the value its canary saved, and
/// drop that annotation. `None`: no canary partition was set.
pub async fn restore_partition(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<i64>, String> {
    let Some((_, saved)) = saved_partition(client, ns, name).await? else {
        return Ok(None);
    };
    let original: i64 = saved.parse().unwrap_or(0);
    let patch = json!({
        "metadata": {"annotations": {PARTITION_ANNOTATION: null}},
        "spec": {"updateStrategy": {"rollingUpdate": {"partition": original}}},
    });
    merge_patch(client, ns, name, &patch)
        .await
        .map_err(|e| format!("could not restore the partition of statefulset/{name}: {e}"))?;
    Ok(Some(original))
}

/// The StatefulSet and the partition its canary saved, when one is saved.
async fn saved_partition(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<(StatefulSet, String)>, String> {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| format!("reading statefulset/{name}: {e}"))?;
    let saved = sts
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PARTITION_ANNOTATION))
        .cloned();
    Ok(saved.map(|saved| (sts, saved)))
}

async fn merge_patch(
    client: &Client,
    ns: &str,
    name: &str,
    patch: &serde_json::Value,
) -> Result<StatefulSet, kube::Error> {
    let params = PatchParams {
        field_manager: Some("rollguard".into()),
        ..Default::default()
    };
    Api::<StatefulSet>::namespaced(client.clone(), ns)
        .patch(name, &params, &Patch::Merge(patch))
        .await
}

/// A failed canary that was not rolled back (rollback=false, or the
/// rollback failed): the partition stays, so the stable ordinals keep the
/// previous version; its saved value is dropped so that no later run
/// restores it over the new template by itself.
async fn keep_partition(client: &Client, ns: &str, name: &str) -> Result<Option<String>, String> {
    let Some((sts, saved)) = saved_partition(client, ns, name).await? else {
        return Ok(None);
    };
    let now = sts
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0);
    let patch = json!({"metadata": {"annotations": {PARTITION_ANNOTATION: null}}});
    merge_patch(client, ns, name, &patch)
        .await
        .map_err(|e| format!("could not update statefulset/{name}: {e}"))?;
    Ok(Some(format!(
        "partition left at {now} (it was {saved}): the ordinals below {now} still run the previous version; set it back once the template is right"
    )))
}

/// The next run's part of the recovery: a canary left by a run that was
/// killed outright. A Deployment's `<name>-canary` carrying [`ANNOTATION`]
/// is deleted (the deploy lock is ours: no other run is using it); a
/// StatefulSet's saved partition is restored once its template was rolled
/// back. Returns what was done, for the run's output and report.
pub async fn remove_leftover(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    out: &mut (dyn Write + Send),
) -> Option<String> {
    match kind {
        "deployment" => {
            let canary = super::name_of(name);
            let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let found = api.get_opt(&canary).await.ok().flatten()?;
            let marker = found.metadata.annotations.as_ref()?.get(ANNOTATION)?;
            let m: Value = serde_json::from_str(marker).unwrap_or(Value::Null);
            let by = match (m["run"].as_str(), m["started"].as_str()) {
                (Some(run), Some(at)) => format!(" (run {run}, started {at})"),
                _ => String::new(),
            };
            let line = format!(
                "found a canary deployment/{canary} left by an interrupted rollguard run{by}: deleting it"
            );
            let _ = writeln!(out, "{}", crate::text::one_line(&line));
            let selector = selector_of(&found);
            let done = match delete_and_wait(client, ns, &canary, &selector, LEFTOVER_WITHIN).await
            {
                Ok(()) => format!("deleted the leftover canary deployment/{canary}"),
                Err(e) => e,
            };
            let _ = writeln!(out, "{done}");
            Some(format!("{line}; {done}"))
        }
        "statefulset" => match restore_partition(client, ns, name).await {
            Ok(Some(p)) => {
                let line = format!(
                    "found the canary partition of an interrupted rollguard run on statefulset/{name}: restored the partition to {p}"
                );
                let _ = writeln!(out, "{line}");
                Some(line)
            }
            Ok(None) => None,
            Err(e) => {
                let _ = writeln!(out, "{e}");
                Some(e)
            }
        },
        _ => None,
    }
}

/// The run is over: remove what is left of its canary. A Deployment's
/// canary (it passed and the full rollout ran) is deleted; a StatefulSet's
/// partition is restored when the template is the stable one again (rolled
/// back), and kept otherwise (a failed rollout left in place still has only
/// the canary's ordinals on the new version).
pub async fn after_run(client: &Client, ns: &str, w: &WorkloadRef, rep: &mut WorkloadReport) {
    match w.kind {
        Kind::Deployment => {
            let canary = super::name_of(&w.name);
            let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
            let Ok(Some(found)) = api.get_opt(&canary).await else {
                return;
            };
            if !found
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ANNOTATION))
            {
                return;
            }
            let selector = selector_of(&found);
            let note = match delete_and_wait(client, ns, &canary, &selector, LEFTOVER_WITHIN).await
            {
                Ok(()) => "deleted after the full rollout".to_string(),
                Err(e) => e,
            };
            crate::cancel::clear_canary();
            if let Some(c) = rep.canary.as_mut() {
                c.push_str(&format!("; {note}"));
            }
        }
        Kind::StatefulSet => {
            let rolled_back = rep
                .rollback
                .as_ref()
                .is_some_and(|r| r.attempted && r.confirmed);
            let done = if rolled_back {
                restore_partition(client, ns, &w.name)
                    .await
                    .map(|p| p.map(|p| format!("partition restored to {p}")))
            } else {
                keep_partition(client, ns, &w.name).await
            };
            match done {
                Ok(Some(note)) => match rep.canary.as_mut() {
                    Some(c) => c.push_str(&format!("; {note}")),
                    None => rep.notes.push(note),
                },
                Ok(None) => {}
                Err(e) => rep.notes.push(e),
            }
        }
        _ => {}
    }
}
