//! Containers that exit: crash loops (with the exit code, the termination
//! message and the previous instance's log tail), exit 0 ("meant to
//! exit?"), and OOM kills with the memory limit.

use k8s_openapi::api::core::v1::Container;

use super::{Signal, Words, container_path, resource};

pub(crate) fn crash_words(container: &str, sigs: &[&Signal]) -> Words {
    let exit = sigs.iter().find_map(|s| s.exit_code);
    let restarts = sigs.iter().map(|s| s.restarts).max().unwrap_or(0);
    let path = container_path(container);
    let times = if restarts == 1 {
        "once".to_string()
    } else {
        format!("{restarts} times")
    };
    let termination = sigs
        .iter()
        .find_map(|s| s.message.split_once(", termination message: "))
        .map(|(_, m)| format!(": {m}"))
        .unwrap_or_default();
    match exit {
        Some(0) => Words {
            summary: format!(
                "container {container} exits with code 0 (Completed) and is restarted ({times} so far): is it meant to exit?"
            ),
            fix: format!(
                "A Deployment restarts every container that exits, even successfully. If {container} is a run-to-completion task, run it as a Job (restartPolicy: OnFailure); if it is a server, keep its main process in the foreground ({path}.command/args, the image's CMD)."
            ),
        },
        Some(code @ (126 | 127)) => Words {
            summary: format!(
                "container {container} cannot start its command (exit code {code}{}), restarted {times}",
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
                "container {container} was killed (exit code 137, SIGKILL) and restarted {times}"
            ),
            fix: format!(
                "Something killed the process: a failing livenessProbe ({path}.livenessProbe) or a memory kill outside the limit. Check the pod's events and the previous instance's log lines."
            ),
        },
        code => Words {
            summary: format!(
                "container {container} exits with code {} and is restarted ({times} so far){termination}",
                code.map_or("unknown".into(), |c| c.to_string())
            ),
            fix: format!(
                "The new version fails at start-up: read the previous instance's last log lines (kubectl logs POD -c {container} --previous) and fix that error, e.g. its configuration ({path}.env) or a dependency it cannot reach."
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
