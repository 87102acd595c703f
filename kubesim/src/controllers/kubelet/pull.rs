//! EnsureImageExists and pulls: pull policy, presence on the node, pull
//! errors with back-off. When the image is there the caller creates the
//! container (`containers::create`), so a `true` return means "create now".

use std::collections::HashSet;

use jiff::Timestamp;

use super::ctx::Ctx;
use super::images::{fnv, pull_error};
use super::state::{BACKOFF_INITIAL, BACKOFF_MAX, CState, Ctr, add, draw};
use crate::scenario::ImageBehaviour;

/// A container whose image can never start: a warning `event` with `msg`,
/// the kubelet's `Error: <reason>` and the container left waiting for
/// `reason`. Returns false (nothing to create).
fn stuck(ctx: &mut Ctx<'_>, c: &mut Ctr, event: &'static str, reason: &str, msg: String) -> bool {
    ctx.event(c, "Warning", event, msg.clone());
    ctx.event(c, "Warning", "Failed", format!("Error: {reason}"));
    c.waiting = (reason.into(), Some(msg));
    c.state = CState::Stuck;
    false
}

/// EnsureImageExists: invalid name, pull policy, presence on the node;
/// true when the image is present and the container is to be created at `t`.
pub(super) fn begin_image_at(
    ctx: &mut Ctx<'_>,
    c: &mut Ctr,
    images: &mut HashSet<String>,
    t: Timestamp,
) -> bool {
    let behaviour = ctx.sim.behaviour(&c.image);
    if behaviour == ImageBehaviour::Invalid {
        let msg = format!(
            "Failed to apply default image tag \"{0}\": couldn't parse image name \"{0}\": invalid reference format",
            c.image
        );
        return stuck(ctx, c, "InspectFailed", "InvalidImageName", msg);
    }
    let policy = ctx.spec_of(c)["imagePullPolicy"]
        .as_str()
        .unwrap_or("IfNotPresent")
        .to_string();
    let present = images.contains(&c.image);
    match policy.as_str() {
        "Never" if !present => {
            let msg = format!(
                "Container image \"{}\" is not present with pull policy of Never",
                c.image
            );
            stuck(ctx, c, "ErrImageNeverPull", "ErrImageNeverPull", msg)
        }
        "Never" | "IfNotPresent" if present => {
            ctx.event(
                c,
                "Normal",
                "Pulled",
                format!("Container image \"{}\" already present on machine", c.image),
            );
            true
        }
        _ => {
            start_pull(ctx, c, t);
            false
        }
    }
}

pub(super) fn start_pull(ctx: &mut Ctx<'_>, c: &mut Ctr, t: Timestamp) {
    // A fresh pull: 300-600 ms (the captured pulls took 510-674 ms), one
    // in twenty slower by a second or so.
    let millis = draw(ctx.rng, 300, 300, 1000, 20).as_millis() as u64;
    ctx.event(
        c,
        "Normal",
        "Pulling",
        format!("Pulling image \"{}\"", c.image),
    );
    c.state = CState::Pulling {
        until: add(t, std::time::Duration::from_millis(millis)),
        millis,
    };
}

/// A pull finished at `t`: failed (back-off) or done; true when the
/// container is to be created at `t`.
pub(super) fn pull_done(
    ctx: &mut Ctx<'_>,
    c: &mut Ctr,
    images: &mut HashSet<String>,
    t: Timestamp,
    millis: u64,
) -> bool {
    let behaviour = ctx.sim.behaviour(&c.image);
    let fails = match &behaviour {
        ImageBehaviour::Missing | ImageBehaviour::Denied => true,
        ImageBehaviour::Flaky { failures } => c.pull_failures < *failures,
        _ => false,
    };
    if fails {
        c.pull_failures += 1;
        let msg = pull_error(&c.image, &behaviour);
        ctx.event(
            c,
            "Warning",
            "Failed",
            format!("Failed to pull image \"{}\": {msg}", c.image),
        );
        ctx.event(c, "Warning", "Failed", "Error: ErrImagePull".into());
        c.pull_backoff = if c.pull_backoff == 0 {
            BACKOFF_INITIAL
        } else {
            (c.pull_backoff * 2).min(BACKOFF_MAX)
        };
        c.waiting = ("ErrImagePull".into(), Some(msg.clone()));
        c.state = CState::PullErr {
            msg,
            show_at: add(t, std::time::Duration::from_secs(1)),
            shown: false,
            until: add(t, std::time::Duration::from_secs(c.pull_backoff)),
        };
        return false;
    }
    let size = 20_000_000 + fnv(&c.image, 9) % 60_000_000;
    ctx.event(
        c,
        "Normal",
        "Pulled",
        format!(
            "Successfully pulled image \"{}\" in {millis}ms ({millis}ms including waiting). Image size: {size} bytes.",
            c.image
        ),
    );
    images.insert(c.image.clone());
    c.pull_backoff = 0;
    true
}
