//! Containers that exit: crash loops (with the exit code, the termination
//! message and the previous instance's log tail), exit 0 ("meant to
//! exit?"), and OOM kills with the memory limit.

use k8s_openapi::api::core::v1::Container;

use super::{Signal, Words, container_path, resource};

/// The crashing pods by name: `app-7d9-x2x`, `app-7d9-x2x and 2 more`.
fn pod_names(sigs: &[&Signal]) -> String {
    let mut pods: Vec<&str> = sigs.iter().map(|s| s.pod.as_str()).collect();
    pods.sort();
    pods.dedup();
    match pods.as_slice() {
        [] => "the pod".to_string(),
        [one] => format!("pod {one}"),
        [first, rest @ ..] => format!("pod {first} (and {} more)", rest.len()),
    }
}

pub(crate) fn crash_words(container: &str, sigs: &[&Signal]) -> Words {
    let exit = sigs.iter().find_map(|s| s.exit_code);
    let restarts = sigs.iter().map(|s| s.restarts).max().unwrap_or(0);
    let path = container_path(container);
    // Caught at the first exit (inside the stability window), or after restarts.
    let (restarted, so_far) = match restarts {
        0 => (
            "(its first exit; not restarted yet)".to_string(),
            "(its first exit; not restarted yet)".to_string(),
        ),
        1 => (
            "restarted once".to_string(),
            "and is restarted (once so far)".to_string(),
        ),
        n => (
            format!("restarted {n} times"),
            format!("and is restarted ({n} times so far)"),
        ),
    };
    let termination = sigs
        .iter()
        .find_map(|s| s.message.split_once(", termination message: "))
        .map(|(_, m)| format!(": {m}"))
        .unwrap_or_default();
    match exit {
        Some(0) => Words {
            summary: format!(
                "container {container} exits with code 0 (Completed) {so_far}: is it meant to exit?"
            ),
            fix: format!(
                "A Deployment restarts every container that exits, even successfully. If {container} is a run-to-completion task, run it as a Job (restartPolicy: OnFailure); if it is a server, keep its main process in the foreground ({path}.command/args, the image's CMD)."
            ),
        },
        Some(code @ (126 | 127)) => Words {
            summary: format!(
                "container {container} cannot start its command (exit code {code}{}), {restarted}",
                if code == 127 {
                    ": not found"
                } else {
                    ": not executable"
                }
            ),
            fix: format!(
                "Fix {path}.command/args or the image's ENTRYPOINT/CMD: the program is missing from the new image or not executable."
            ),
        },
        Some(137) => Words {
            summary: format!(
                "container {container} was killed (exit code 137, SIGKILL), {restarted}"
            ),
            fix: format!(
                "Something killed the process: a failing livenessProbe ({path}.livenessProbe) or a memory kill outside the limit. Check the pod's events and the previous instance's log lines."
            ),
        },
        code => Words {
            summary: format!(
                "container {container} exits with code {} {so_far}{termination}",
                code.map_or("unknown".into(), |c| c.to_string())
            ),
            fix: format!(
                "The new version fails at start-up: the last log lines of {}'s previous instance (in this report) show the error; fix it, e.g. the configuration ({path}.env) or a dependency it cannot reach.",
                pod_names(sigs)
            ),
        },
    }
}

pub(crate) fn oom_words(container: &str, spec: Option<&Container>) -> Words {
    let path = container_path(container);
    match resource(spec, "limits", "memory") {
        Some(limit) => Words {
            summary: format!(
                "container {container} was OOMKilled: it used more than its memory limit of {limit}"
            ),
            fix: format!(
                "Limit {limit}: raise {path}.resources.limits.memory (and requests.memory with it), or fix the leak or memory growth of the new version."
            ),
        },
        None => Words {
            summary: format!(
                "container {container} was OOMKilled: the node ran out of memory (the container has no memory limit)"
            ),
            fix: format!(
                "Set {path}.resources.requests.memory and limits.memory to what the new version needs so it is placed on a node with room, or fix its memory growth."
            ),
        },
    }
}
