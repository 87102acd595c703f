//! What the simulated kubelet does with an image: a test states its scenario
//! in the image reference (`example/web:missing`), or overrides it through
//! the library API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The behaviour of a container started from an image.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageBehaviour {
    /// Pulled, started, Ready after `ready_after` (default ~1 s).
    Ok { ready_after: Duration },
    /// Manifest not found: a permanent pull error.
    Missing,
    /// Unauthorized / denied: a permanent pull error.
    Denied,
    /// `failures` transient pull failures (timeouts), then success.
    Flaky { failures: u32 },
    /// The reference does not parse: `InvalidImageName`.
    Invalid,
    /// Runs `after`, then exits with `exit_code` (and a log line and
    /// termination message), after every restart.
    Crash { after: Duration, exit_code: i32 },
    /// Ready after ~1 s, then exits 1 after `after` (and again after each restart).
    LateCrash { after: Duration },
    /// OOMKilled (exit 137) after `after`.
    Oom { after: Duration },
    /// Running, but the readiness probe fails forever (`Unhealthy` events).
    Unready,
}

impl ImageBehaviour {
    /// The default vocabulary, from the image reference alone. (`errors` is
    /// not the kubelet's: such an image runs like any other, and its pods
    /// answer 20 % of requests with 500 in the pod metrics, see `metrics`.)
    pub fn from_image(image: &str) -> ImageBehaviour {
        if !reference_is_valid(image) || image.contains("invalid") {
            return ImageBehaviour::Invalid;
        }
        // Only the last path component (name:tag) carries the scenario, so a
        // registry host or organisation named e.g. "crashy-org" does not.
        let last = image.rsplit('/').next().unwrap_or(image);
        // The first word of the vocabulary the name:tag contains wins
        // (`late-crash` before `crash`).
        let secs = Duration::from_secs;
        let vocabulary = [
            ("missing", ImageBehaviour::Missing),
            ("denied", ImageBehaviour::Denied),
            ("flaky", ImageBehaviour::Flaky { failures: 2 }),
            ("late-crash", ImageBehaviour::LateCrash { after: secs(10) }),
            (
                "crash",
                ImageBehaviour::Crash {
                    after: secs(1),
                    exit_code: 1,
                },
            ),
            ("oom", ImageBehaviour::Oom { after: secs(1) }),
            (
                "slow",
                ImageBehaviour::Ok {
                    ready_after: secs(20),
                },
            ),
            ("unready", ImageBehaviour::Unready),
        ];
        vocabulary
            .into_iter()
            .find(|(word, _)| last.contains(word))
            .map_or(
                ImageBehaviour::Ok {
                    ready_after: secs(1),
                },
                |(_, b)| b,
            )
    }
}

/// A loose check of an image reference in the form the container runtime
/// accepts: `[host[:port]/]path[:tag][@sha256:hex]`, lower-case path.
pub fn reference_is_valid(image: &str) -> bool {
    if image.is_empty() || image.len() > 4096 || image.trim() != image {
        return false;
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let Some(hex) = d.strip_prefix("sha256:") else {
            return false;
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return false;
        }
    }
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if !ok {
            return false;
        }
    }
    let mut comps: Vec<&str> = path.split('/').collect();
    // The first component is a host if it has a '.' or ':' or is "localhost".
    if comps.len() > 1
        && (comps[0].contains('.') || comps[0].contains(':') || comps[0] == "localhost")
    {
        let host = comps.remove(0);
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        {
            return false;
        }
    }
    !comps.is_empty()
        && comps.iter().all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
        })
}

/// Split `repo[:tag][@digest]` into (repository, tag). Tag defaults to "latest".
pub fn split_reference(image: &str) -> (String, String) {
    let rest = image.split('@').next().unwrap_or(image);
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[last_slash..].rfind(':') {
        Some(i) => (
            rest[..last_slash + i].to_string(),
            rest[last_slash + i + 1..].to_string(),
        ),
        None => (rest.to_string(), "latest".to_string()),
    }
}

/// A custom behaviour hook: returns Some to override the vocabulary.
pub type BehaviourFn = Arc<dyn Fn(&str) -> Option<ImageBehaviour> + Send + Sync>;

/// The kubelet's view of images: overrides, the declared registry, the vocabulary.
#[derive(Clone, Default)]
pub struct Scenarios {
    /// Exact image reference → behaviour.
    pub overrides: BTreeMap<String, ImageBehaviour>,
    /// Declared repositories → existing tags. Any other tag of a declared
    /// repository is not found.
    pub registry: BTreeMap<String, Vec<String>>,
    pub hook: Option<BehaviourFn>,
    /// Exact image reference → what its app writes to the termination-log
    /// file when it fails (see [`Scenarios::termination_message`]).
    pub termination_messages: BTreeMap<String, String>,
}

impl std::fmt::Debug for Scenarios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenarios")
            .field("overrides", &self.overrides)
            .field("registry", &self.registry)
            .field("hook", &self.hook.is_some())
            .field("termination_messages", &self.termination_messages)
            .finish()
    }
}

/// What an app that writes its termination log (`termlog` in the tag)
/// writes there before exiting with an error.
pub const TERMINATION_LOG_LINE: &str = "Error: cannot connect to database at db:5432";

impl Scenarios {
    /// What the app of `image` writes to its terminationMessagePath when it
    /// fails: an override, or the fatal error line when the tag contains
    /// `termlog`; by default nothing (most apps never write the file).
    pub fn termination_message(&self, image: &str) -> Option<String> {
        if let Some(m) = self.termination_messages.get(image) {
            return Some(m.clone());
        }
        let last = image.rsplit('/').next().unwrap_or(image);
        last.contains("termlog")
            .then(|| TERMINATION_LOG_LINE.to_string())
    }

    /// What happens when a container runs `image`.
    pub fn behaviour(&self, image: &str) -> ImageBehaviour {
        if let Some(b) = self.overrides.get(image) {
            return b.clone();
        }
        if let Some(hook) = &self.hook
            && let Some(b) = hook(image)
        {
            return b;
        }
        if reference_is_valid(image) {
            let (repo, tag) = split_reference(image);
            if let Some(tags) = self.registry.get(&repo)
                && !image.contains('@')
                && !tags.contains(&tag)
            {
                return ImageBehaviour::Missing;
            }
        }
        ImageBehaviour::from_image(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary() {
        use ImageBehaviour::*;
        assert_eq!(ImageBehaviour::from_image("example/web:missing"), Missing);
        assert_eq!(ImageBehaviour::from_image("example/web:v10-denied"), Denied);
        assert_eq!(
            ImageBehaviour::from_image("example/web:flaky"),
            Flaky { failures: 2 }
        );
        assert_eq!(ImageBehaviour::from_image("Example/Web:1"), Invalid);
        assert_eq!(ImageBehaviour::from_image("example/web:invalid"), Invalid);
        assert!(matches!(
            ImageBehaviour::from_image("example/web:late-crash"),
            LateCrash { .. }
        ));
        assert!(matches!(
            ImageBehaviour::from_image("example/web:crash"),
            Crash { exit_code: 1, .. }
        ));
        assert!(matches!(
            ImageBehaviour::from_image("example/web:oom"),
            Oom { .. }
        ));
        assert_eq!(ImageBehaviour::from_image("example/web:unready"), Unready);
        assert_eq!(
            ImageBehaviour::from_image("example/web:slow"),
            Ok {
                ready_after: Duration::from_secs(20)
            }
        );
        assert_eq!(
            ImageBehaviour::from_image("crash-org.io:5000/team/web:2"),
            Ok {
                ready_after: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn reference_validation() {
        assert!(reference_is_valid("nginx"));
        assert!(reference_is_valid("localhost:5000/a/b:1.2_x"));
        assert!(reference_is_valid(&format!(
            "a/b@sha256:{}",
            "a".repeat(64)
        )));
        assert!(!reference_is_valid("a/b:"));
        assert!(!reference_is_valid("a//b"));
        assert!(!reference_is_valid("a/b:bad tag"));
        assert!(!reference_is_valid("a/b@sha256:xyz"));
    }

    #[test]
    fn declared_registry_makes_other_tags_missing() {
        let mut s = Scenarios::default();
        s.registry
            .insert("example/api".into(), vec!["v1".into(), "v2".into()]);
        assert!(matches!(
            s.behaviour("example/api:v2"),
            ImageBehaviour::Ok { .. }
        ));
        assert_eq!(s.behaviour("example/api:v10"), ImageBehaviour::Missing);
        assert_eq!(
            split_reference("h:5000/a/b"),
            ("h:5000/a/b".into(), "latest".into())
        );
    }
}
