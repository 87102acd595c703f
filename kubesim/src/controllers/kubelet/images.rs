//! Images: reference normalisation, ids and pull error messages.

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
