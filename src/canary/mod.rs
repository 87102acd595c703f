//! The canary step: before the full rollout, a few pods of the new version
//! run beside the stable ones and receive their share of the Service's
//! traffic (Services select by app labels, so the canary's pods are
//! endpoints like any other). They are judged by the same rules as the full
//! rollout, then held for `canary-hold`. Pass: the full rollout proceeds
//! and the canary is removed once the new version serves everywhere. Fail:
//! the canary is removed and the stable version never changed.
//!
//! - a Deployment gets a temporary `<name>-canary` Deployment
//!   (`workload/deployment/canary.rs`):
//!   the same pod template with our image, version label and the canary
//!   label [`LABEL`], which its own selector includes so the stable
//!   Deployment's ReplicaSets never adopt its pods;
//! - a StatefulSet uses the `partition` of its rolling update
//!   (`workload/template/canary.rs`): only the ordinals at or above `replicas − canary`
//!   take the new template until the canary passes;
//! - every outcome removes the canary ([`cleanup`]): failure, timeout, a
//!   cancel, a second signal, and a run killed outright (the next run's
//!   recovery finds it by [`ANNOTATION`]).

pub mod cleanup;

use std::time::Duration;

use crate::config::IntOrPercent;

/// The label on the canary's pods (and in its selector); stable tracking
/// excludes pods that carry it.
pub const LABEL: &str = "rollguard.dev/canary";
/// On the canary Deployment: which run made it and when (JSON).
pub const ANNOTATION: &str = "rollguard.dev/canary";
/// On a StatefulSet during its canary: the partition to restore.
pub const PARTITION_ANNOTATION: &str = "rollguard.dev/canary-partition";

/// The name of a Deployment's canary.
pub fn name_of(workload: &str) -> String {
    format!("{workload}-canary")
}

/// The canary's pod count for `replicas`: percentages round up, at least
/// one, and fewer than `replicas` (else it is the full rollout).
pub fn pods_for(canary: IntOrPercent, replicas: i32, workload: &str) -> Result<i32, String> {
    let n = canary.resolve(replicas, true).max(1);
    if n >= replicas {
        return Err(format!(
            "canary: {n} pod{} is not fewer than the {replicas} replica{} of {workload}; lower the canary or scale the workload up",
            if n == 1 { "" } else { "s" },
            if replicas == 1 { "" } else { "s" },
        ));
    }
    Ok(n)
}

/// The stable workload's pod selector without the canary's pods.
pub fn without_canary(selector: &str) -> String {
    if selector.is_empty() {
        format!("!{LABEL}")
    } else {
        format!("{selector},!{LABEL}")
    }
}

/// What the canary exposed: "canary: 1 of 4 pods for 45s".
pub fn exposure(pods: i32, replicas: i32, exposed: Duration) -> String {
    // Tenths under a minute (a crash is often caught within a second).
    let took = if exposed < Duration::from_secs(60) {
        format!("{:.1}s", exposed.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(exposed.as_secs())).to_string()
    };
    format!("canary: {pods} of {replicas} pods for {took}")
}

/// The line that opens a canary's hold.
pub fn hold_line(hold: Duration) -> String {
    format!(
        "canary rolled out; holding it for {}",
        humantime::format_duration(hold)
    )
}

/// The canary marker annotation's value.
pub fn marker(run: &str, started: &str, workload: &str) -> String {
    serde_json::json!({"run": run, "started": started, "workload": workload}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_up_and_stay_below_replicas() {
        assert_eq!(pods_for(IntOrPercent::Int(1), 4, "deployment/web"), Ok(1));
        assert_eq!(pods_for(IntOrPercent::Percent(10), 4, "d"), Ok(1));
        assert_eq!(pods_for(IntOrPercent::Percent(30), 10, "d"), Ok(3));
        assert_eq!(pods_for(IntOrPercent::Percent(26), 10, "d"), Ok(3));
        let e = pods_for(IntOrPercent::Int(4), 4, "deployment/web").unwrap_err();
        assert!(
            e.contains("not fewer than the 4 replicas of deployment/web"),
            "{e}"
        );
        assert!(pods_for(IntOrPercent::Percent(100), 3, "d").is_err());
        assert!(pods_for(IntOrPercent::Int(1), 1, "d").is_err());
    }

    #[test]
    fn names_selectors_and_exposure() {
        assert_eq!(name_of("web"), "web-canary");
        assert_eq!(without_canary("app=web"), "app=web,!rollguard.dev/canary");
        assert_eq!(
            exposure(1, 4, Duration::from_millis(45_700)),
            "canary: 1 of 4 pods for 45.7s"
        );
        assert_eq!(
            exposure(2, 10, Duration::from_millis(125_700)),
            "canary: 2 of 10 pods for 2m 5s"
        );
        let m: serde_json::Value =
            serde_json::from_str(&marker("r", "t", "deployment/web")).unwrap();
        assert_eq!(m["workload"], "deployment/web");
    }
}
