//! Image pull failures: not found, unauthorized, invalid reference,
//! transient registry errors (reported on timeout only).

use super::{Cause, Words, container_path};

pub(crate) fn words(cause: Cause, image: &str, container: &str, evidence: &str) -> Words {
    let field = format!("{}.image", container_path(container));
    match cause {
        Cause::ImageNotFound => Words {
            summary: format!("image {image} does not exist in the registry"),
            fix: format!(
                "Push {image} to the registry (did the build publish this tag?), or deploy a tag that exists: the image is {field}, set by this step's image/tag input."
            ),
        },
        Cause::ImageUnauthorized => Words {
            summary: format!(
                "the registry refused to serve {image} to the nodes (unauthorized or denied)"
            ),
            fix: format!(
                "Give the pods pull credentials: add an imagePullSecrets entry to spec.template.spec (or to the pods' service account) for this registry, or make the repository readable by the nodes. Registries also answer \"denied\" for a repository that does not exist, so check the name in {field}."
            ),
        },
        Cause::InvalidImage => Words {
            summary: format!("\"{image}\" is not a valid image reference"),
            fix: format!(
                "Fix {field}: [registry/]repository[:tag][@sha256:digest], repository in lower case, tag of letters, digits, '_', '.', '-'."
            ),
        },
        _ => Words {
            summary: format!(
                "pulling {image} kept failing with network or registry errors until the timeout"
            ),
            fix: if evidence.contains("timeout") || evidence.contains("dial tcp") {
                "The nodes could not reach the registry in time: check the registry's status and the nodes' network (egress, DNS, proxy), then run the deploy again.".to_string()
            } else {
                "Check the registry's status and the nodes' access to it, then run the deploy again.".to_string()
            },
        },
    }
}
