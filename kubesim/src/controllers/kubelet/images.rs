//! Images: reference normalisation, ids, pull errors, EnsureImageExists and pulls.

use std::collections::HashSet;

use jiff::Timestamp;

use super::containers::create;
use super::{CState, Ctr, Ctx, add, draw};
use crate::scenario::ImageBehaviour;

/// `docker.io/library/nginx:latest` for `nginx`, `docker.io/example/web:1`
/// for `example/web:1`; references with a registry host are kept.
pub fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or("");
    let has_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_host {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or("");
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => full,
    }
}

/// The repository part of a normalised reference (no tag, no digest).
pub(super) fn repository(normalized: &str) -> &str {
    let name = normalized.split('@').next().unwrap_or(normalized);
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => &name[..slash + i],
        None => name,
    }
}

pub(super) fn fnv(data: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x1000_0000_01b3);
    for b in data.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x1000_0000_01b3);
    }
    h
}

/// A stable pseudo digest for an image reference.
fn digest(image: &str) -> String {
    (0..4).map(|i| format!("{:016x}", fnv(image, i))).collect()
}

pub(super) fn image_id(image: &str) -> String {
    let n = normalize_image(image);
    if let Some((repo, d)) = n.split_once('@') {
        return format!("{repo}@{d}");
    }
    format!("{}@sha256:{}", repository(&n), digest(&n))
}

pub(super) fn new_container_id() -> String {
    format!(
        "containerd://{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Go's `time.Duration` string for whole seconds: `10s`, `1m20s`, `5m0s`.
pub fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The registry host and path of a normalised reference, for messages.
fn registry_url(normalized: &str) -> String {
    let repo = repository(normalized);
    let tag = normalized
        .split('@')
        .next()
        .and_then(|n| n.rsplit('/').next())
        .and_then(|l| l.split_once(':'))
        .map_or("latest", |(_, t)| t);
    match repo.split_once('/') {
        Some(("docker.io", path)) => {
            format!("https://registry-1.docker.io/v2/{path}/manifests/{tag}")
        }
        Some((host, path)) => format!("https://{host}/v2/{path}/manifests/{tag}"),
        None => format!("https://{repo}/manifests/{tag}"),
    }
}

/// containerd's error for a failed pull.
pub(super) fn pull_error(image: &str, b: &ImageBehaviour) -> String {
    let n = normalize_image(image);
    match b {
        ImageBehaviour::Denied => format!(
            "rpc error: code = Unknown desc = failed to pull and unpack image \"{n}\": failed to resolve reference \"{n}\": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"
        ),
        ImageBehaviour::Flaky { .. } => format!(
            "rpc error: code = Unknown desc = failed to pull and unpack image \"{n}\": failed to resolve reference \"{n}\": failed to do request: Head \"{}\": dial tcp 104.16.98.215:443: i/o timeout",
            registry_url(&n)
        ),
        _ => format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{n}\": failed to resolve reference \"{n}\": {n}: not found"
        ),
    }
}

/// EnsureImageExists: invalid name, pull policy, presence on the node.
pub(super) fn begin_image_at(
    ctx: &mut Ctx<'_>,
    c: &mut Ctr,
    images: &mut HashSet<String>,
    t: Timestamp,
) {
    let behaviour = ctx.sim.behaviour(&c.image);
    if behaviour == ImageBehaviour::Invalid {
        let msg = format!(
            "Failed to apply default image tag \"{0}\": couldn't parse image name \"{0}\": invalid reference format",
            c.image
        );
        ctx.event(c, "Warning", "InspectFailed", msg.clone());
        ctx.event(c, "Warning", "Failed", "Error: InvalidImageName".into());
        c.waiting = ("InvalidImageName".into(), Some(msg));
        c.state = CState::Stuck;
        return;
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
            ctx.event(c, "Warning", "ErrImageNeverPull", msg.clone());
            ctx.event(c, "Warning", "Failed", "Error: ErrImageNeverPull".into());
            c.waiting = ("ErrImageNeverPull".into(), Some(msg));
            c.state = CState::Stuck;
        }
        "Never" | "IfNotPresent" if present => {
            ctx.event(
                c,
                "Normal",
                "Pulled",
                format!("Container image \"{}\" already present on machine", c.image),
            );
            create(ctx, c, t);
        }
        _ => start_pull(ctx, c, t),
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

pub(super) fn pull_done(
    ctx: &mut Ctx<'_>,
    c: &mut Ctr,
    images: &mut HashSet<String>,
    t: Timestamp,
    millis: u64,
) {
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
            super::BACKOFF_INITIAL
        } else {
            (c.pull_backoff * 2).min(super::BACKOFF_MAX)
        };
        c.waiting = ("ErrImagePull".into(), Some(msg.clone()));
        c.state = CState::PullErr {
            msg,
            show_at: add(t, std::time::Duration::from_secs(1)),
            shown: false,
            until: add(t, std::time::Duration::from_secs(c.pull_backoff)),
        };
        return;
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
    create(ctx, c, t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_normalisation() {
        assert_eq!(normalize_image("example/web:1"), "docker.io/example/web:1");
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(normalize_image("ghcr.io/o/app:2"), "ghcr.io/o/app:2");
        assert!(image_id("example/web:1").starts_with("docker.io/example/web@sha256:"));
        assert_eq!(
            image_id("example/web:1").len(),
            "docker.io/example/web@sha256:".len() + 64
        );
    }

    #[test]
    fn messages() {
        assert_eq!(go_duration(10), "10s");
        assert_eq!(go_duration(80), "1m20s");
        assert_eq!(go_duration(300), "5m0s");
        assert_eq!(
            pull_error("example/web:3-missing", &ImageBehaviour::Missing),
            "rpc error: code = NotFound desc = failed to pull and unpack image \"docker.io/example/web:3-missing\": failed to resolve reference \"docker.io/example/web:3-missing\": docker.io/example/web:3-missing: not found"
        );
        assert!(
            pull_error("example/web:flaky", &ImageBehaviour::Flaky { failures: 2 })
                .contains("i/o timeout")
        );
    }
}
