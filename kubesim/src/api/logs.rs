//! `GET pods/<name>/log`: the lines the kubelet recorded in `sim.logs`.

use serde_json::Value;

use super::http::{self, Req, Resp};
use crate::clock::fmt_micro_time;
use crate::error::{ApiError, ApiResult};
use crate::resources::res;
use crate::sim::Sim;

fn names(pod: &Value, key: &str) -> Vec<String> {
    pod["spec"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn get(sim: &Sim, req: &Req, ns: &str, name: &str) -> ApiResult<Resp> {
    let pod = sim.store.get(res("pods"), ns, name)?;
    let containers = names(&pod, "containers");
    let inits = names(&pod, "initContainers");
    let container = match req.q("container").filter(|c| !c.is_empty()) {
        Some(c) => {
            if !containers.iter().chain(inits.iter()).any(|n| n == c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_string()
        }
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !inits.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    inits.join(" ")
                ));
            }
            return Err(ApiError::bad_request(msg));
        }
    };
    let previous = req.q_bool("previous");
    let entry = sim
        .logs
        .lock()
        .expect("logs lock")
        .get(&(ns.to_string(), name.to_string(), container.clone()))
        .cloned();
    let lines = match (entry, previous) {
        (Some(l), false) => l.current,
        (Some(l), true) => l
            .previous
            .ok_or_else(|| previous_missing(&container, name))?,
        (None, true) => return Err(previous_missing(&container, name)),
        (None, false) => return Err(waiting(&pod, &container, name)),
    };
    let mut lines: Vec<String> = lines;
    if let Some(n) = req.q("tailLines").and_then(|s| s.parse::<usize>().ok())
        && lines.len() > n
    {
        lines.drain(..lines.len() - n);
    }
    let ts = req
        .q_bool("timestamps")
        .then(|| fmt_micro_time(sim.clock.now()));
    let mut out = String::new();
    for l in &lines {
        if let Some(t) = &ts {
            out.push_str(t);
            out.push(' ');
        }
        out.push_str(l);
        out.push('\n');
    }
    if let Some(limit) = req.q("limitBytes").and_then(|s| s.parse::<usize>().ok())
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    Ok(http::full(200, "text/plain", out))
}

fn previous_missing(container: &str, pod: &str) -> ApiError {
    ApiError::bad_request(format!(
        "previous terminated container {container:?} in pod {pod:?} not found"
    ))
}

fn waiting(pod: &Value, container: &str, name: &str) -> ApiError {
    let status = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["status"]["initContainerStatuses"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .find(|s| s["name"].as_str() == Some(container));
    let reason = status
        .and_then(|s| s["state"]["waiting"]["reason"].as_str())
        .unwrap_or("ContainerCreating");
    let reason = match reason {
        "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image",
        r => r,
    };
    ApiError::bad_request(format!(
        "container {container:?} in pod {name:?} is waiting to start: {reason}"
    ))
}
