//! A StatefulSet's canary: the `partition` of its rolling update. The
//! template patch also sets partition = replicas − canary, so only the
//! highest ordinals take the new version; they are judged and held like a
//! rollout, then the saved partition is restored and the full rollout
//! goes on. On failure the template is rolled back with the partition
//! still set (the stable ordinals were never touched), and the partition
//! is restored afterwards ([`crate::canary::cleanup::after_run`]).

use std::io::Write;

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{TemplateKind, TemplateSubject};
use crate::canary::PARTITION_ANNOTATION;
use crate::config::Canary;
use crate::exit::ExitCode;
use crate::guards::Guards;
use crate::k8s::objects::match_labels_selector;
use crate::model::Progress;
use crate::report::WorkloadReport;
use crate::stability::Stability;
use crate::track::{self, Ended, Watch};
use crate::workload::deployment::{Plan, pointer_segment};
use crate::workload::rollout::{Ctx, gate_for, gate_summary};
use crate::workload::{WorkloadRef, statefulset as sts};
use crate::{Stop, stop};

fn replicas(raw: &Value) -> i32 {
    raw.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1) as i32
}

/// Add the canary's partition (and the partition to restore, as
/// [`PARTITION_ANNOTATION`]) to the template patch of `raw`. The canary's
/// pod count, or bad input.
pub(crate) fn plan(
    raw: &Value,
    c: Canary,
    w: &WorkloadRef,
    patch: &mut Value,
) -> Result<i32, Stop> {
    let replicas = replicas(raw);
    let pods = crate::canary::pods_for(c.pods, replicas, &w.to_string())
        .map_err(|e| stop(ExitCode::BadInput, e))?;
    let original = sts::partition(raw);
    let partition = i64::from(replicas - pods);
    let Some(ops) = patch.as_array_mut() else {
        return Err(stop(
            ExitCode::BadInput,
            format!("canary: no patch planned for {w}"),
        ));
    };
    let op = match raw.pointer("/spec/updateStrategy") {
        Some(u) if u.get("rollingUpdate").is_some_and(Value::is_object) => json!({
            "op": "add", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": partition
        }),
        Some(u) if u.is_object() => json!({
            "op": "add", "path": "/spec/updateStrategy/rollingUpdate", "value": {"partition": partition}
        }),
        _ => json!({
            "op": "add", "path": "/spec/updateStrategy",
            "value": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
        }),
    };
    ops.push(op);
    // The plan's own ops created the annotations map when there was none.
    ops.push(json!({
        "op": "add",
        "path": format!("/metadata/annotations/{}", pointer_segment(PARTITION_ANNOTATION)),
        "value": original.to_string(),
    }));
    Ok(pods)
}

/// How the hold ended.
pub enum Hold {
    /// Passed; the partition is restored, the full rollout may follow.
    Passed,
    /// The canary's pods failed; `revision` is the bad update revision.
    Failed {
        ended: Ended,
        revision: Option<String>,
    },
}

/// Follow and hold the canary ordinals after the patch (`generation`, whose
/// template is `ours`); on a pass, restore the partition.
#[allow(clippy::too_many_arguments)] // the run's context, one per argument
pub(crate) async fn hold<K: TemplateKind>(
    ctx: &Ctx<'_>,
    c: Canary,
    w: &WorkloadRef,
    raw: &Value,
    generation: i64,
    ours: &Value,
    plan: &Plan,
    rep: &mut WorkloadReport,
    out: &mut (dyn Write + Send),
) -> Hold {
    let (client, ns, s) = (&ctx.client, ctx.ns.as_str(), ctx.settings);
    let replicas = replicas(raw);
    let pods = crate::canary::pods_for(c.pods, replicas, &w.to_string()).unwrap_or(1);
    let selector = match_labels_selector(raw);
    let name = w.name.clone();
    let mut watch = Watch::start::<StatefulSet>(client, ns, Some(&name), &selector);
    let _ = writeln!(
        out,
        "canary of {w}: ordinals {}..{} take the new version (partition {}), then held for {}",
        replicas - pods,
        replicas - 1,
        replicas - pods,
        humantime::format_duration(c.hold)
    );
    let min_ready = raw.pointer("/spec/minReadySeconds").and_then(Value::as_i64);
    let mut guards = Guards::new(
        client.clone(),
        ns,
        Stability::window_for(s.stable_for, min_ready),
        s.scale_up_grace,
        1,
    );
    let started = Instant::now();
    let deadline = started + s.timeout;
    let mut gate = gate_for(ctx, w, &plan.version, &plan.container, out);
    let mut subject =
        TemplateSubject::<K>::new(&mut watch, &name, generation, ours, &plan.container);
    let ended = track::follow(
        &mut subject,
        &ctx.limits,
        deadline,
        c.hold,
        &mut guards,
        gate.as_mut(),
        &mut *out,
    )
    .await;
    rep.analysis = gate_summary(rep.analysis.take(), gate);
    let exposure = crate::canary::exposure(pods, replicas, started.elapsed());
    match ended {
        Ended::Succeeded(_) => {
            rep.canary = Some(format!("{exposure}, passed"));
            match crate::canary::cleanup::restore_partition(client, ns, &name).await {
                Ok(p) => {
                    let _ = writeln!(
                        out,
                        "canary passed ({exposure}); partition back to {}: rolling out every pod",
                        p.unwrap_or(0)
                    );
                    Hold::Passed
                }
                Err(e) => {
                    let _ = writeln!(out, "{e}");
                    Hold::Failed {
                        ended: Ended::TimedOut {
                            progress: Progress::default(),
                            signals: Vec::new(),
                        },
                        revision: None,
                    }
                }
            }
        }
        ended => {
            let what = if matches!(ended, Ended::TimedOut { .. }) {
                "timed out"
            } else {
                "failed"
            };
            rep.canary = Some(format!("{exposure}, {what}"));
            let _ = writeln!(
                out,
                "canary {what} ({exposure}): the ordinals below {} were never changed",
                replicas - pods
            );
            let revision = watch
                .snapshot()
                .object(&name)
                .and_then(|o| sts::update_revision(o, generation));
            Hold::Failed { ended, revision }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IntOrPercent;
    use std::time::Duration;

    #[test]
    fn the_patch_sets_the_partition_and_saves_the_old_one() {
        let raw = json!({"metadata": {"name": "db"}, "spec": {"replicas": 4,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}}});
        let w = WorkloadRef {
            kind: crate::workload::Kind::StatefulSet,
            name: "db".into(),
        };
        let c = Canary {
            pods: IntOrPercent::Int(1),
            hold: Duration::from_secs(1),
        };
        let mut patch = json!([]);
        assert_eq!(plan(&raw, c, &w, &mut patch).ok(), Some(1));
        assert_eq!(
            patch[0]["path"],
            "/spec/updateStrategy/rollingUpdate/partition"
        );
        assert_eq!(patch[0]["value"], 3);
        assert_eq!(patch[1]["value"], "0");
        let mut patch = json!([]);
        let bare = json!({"spec": {"replicas": 2}});
        assert!(plan(&bare, c, &w, &mut patch).is_ok());
        assert_eq!(patch[0]["value"]["rollingUpdate"]["partition"], 1);
        let one = json!({"spec": {"replicas": 1}});
        assert!(plan(&one, c, &w, &mut json!([])).is_err());
    }
}
