//! CreateContainerConfigError: the missing Secret, ConfigMap or key, and
//! the field of the pod template that refers to it.

use k8s_openapi::api::core::v1::Container;

use super::{Words, container_path};

/// What the kubelet could not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// "Secret" or "ConfigMap".
    pub kind: &'static str,
    pub name: String,
    pub key: Option<String>,
}

/// Parse the kubelet's messages: `configmap "app-config" not found`,
/// `secret "db" not found`, `couldn't find key password in Secret default/db`.
pub fn parse(message: &str) -> Option<Missing> {
    let m = message.trim().trim_start_matches("Error: ");
    for (prefix, kind) in [("configmap \"", "ConfigMap"), ("secret \"", "Secret")] {
        if let Some(rest) = m.strip_prefix(prefix)
            && let Some((name, tail)) = rest.split_once('"')
            && tail.trim() == "not found"
        {
            return Some(Missing {
                kind,
                name: name.to_string(),
                key: None,
            });
        }
    }
    let rest = m.strip_prefix("couldn't find key ")?;
    let (key, rest) = rest.split_once(" in ")?;
    let (kind, obj) = rest.split_once(' ')?;
    let kind = match kind {
        "ConfigMap" => "ConfigMap",
        "Secret" => "Secret",
        _ => return None,
    };
    let name = obj.rsplit('/').next().unwrap_or(obj).trim();
    Some(Missing {
        kind,
        name: name.to_string(),
        key: Some(key.to_string()),
    })
}

/// Where the container refers to it: `envFrom`, `env[DB_PASSWORD].valueFrom.secretKeyRef`.
pub fn reference(c: &Container, m: &Missing) -> Option<String> {
    let secret = m.kind == "Secret";
    for e in c.env.iter().flatten() {
        let Some(v) = &e.value_from else { continue };
        let hit = if secret {
            v.secret_key_ref
                .as_ref()
                .filter(|r| r.name == m.name && m.key.as_ref().is_none_or(|k| *k == r.key))
                .map(|_| "secretKeyRef")
        } else {
            v.config_map_key_ref
                .as_ref()
                .filter(|r| r.name == m.name && m.key.as_ref().is_none_or(|k| *k == r.key))
                .map(|_| "configMapKeyRef")
        };
        if let Some(field) = hit {
            return Some(format!("env[{}].valueFrom.{field}", e.name));
        }
    }
    if m.key.is_none() {
        for (i, e) in c.env_from.iter().flatten().enumerate() {
            let hit = if secret {
                e.secret_ref.as_ref().is_some_and(|r| r.name == m.name)
            } else {
                e.config_map_ref.as_ref().is_some_and(|r| r.name == m.name)
            };
            if hit {
                return Some(format!(
                    "envFrom[{i}].{}",
                    if secret { "secretRef" } else { "configMapRef" }
                ));
            }
        }
    }
    None
}

pub(crate) fn words(container: &str, evidence: &str, spec: Option<&Container>, ns: &str) -> Words {
    let path = container_path(container);
    let msg = evidence.trim_start_matches("Error: ");
    let Some(m) = parse(msg) else {
        return Words {
            summary: format!("container {container} cannot be created: {msg}"),
            fix: format!(
                "Fix what the message names in {path} (env, envFrom, volumeMounts, securityContext)."
            ),
        };
    };
    let field = spec
        .and_then(|c| reference(c, &m))
        .map(|f| format!("{path}.{f}"))
        .unwrap_or_else(|| format!("{path}.env[].valueFrom / envFrom"));
    let ns_text = if ns.is_empty() {
        String::new()
    } else {
        format!(" in namespace {ns}")
    };
    match &m.key {
        None => Words {
            summary: format!(
                "container {container} cannot start: {} {} does not exist{ns_text} (referenced by {field})",
                m.kind, m.name
            ),
            fix: format!(
                "Create {} {}{ns_text} before deploying, or fix the name in {field} (set optional: true there if the app can start without it).",
                m.kind, m.name
            ),
        },
        Some(key) => Words {
            summary: format!(
                "container {container} cannot start: {} {} has no key {key} (referenced by {field})",
                m.kind, m.name
            ),
            fix: format!(
                "Add the key {key} to {} {}{ns_text}, or fix the key in {field}.",
                m.kind, m.name
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_parsed() {
        assert_eq!(
            parse("configmap \"app-config\" not found"),
            Some(Missing {
                kind: "ConfigMap",
                name: "app-config".into(),
                key: None
            })
        );
        assert_eq!(
            parse("couldn't find key password in Secret default/db"),
            Some(Missing {
                kind: "Secret",
                name: "db".into(),
                key: Some("password".into())
            })
        );
        assert_eq!(parse("something else"), None);
    }

    #[test]
    fn the_field_is_named() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "web",
            "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            "envFrom": [{"configMapRef": {"name": "web-config"}}]
        }))
        .unwrap();
        let m = parse("couldn't find key password in Secret default/db").unwrap();
        assert_eq!(
            reference(&c, &m).as_deref(),
            Some("env[DB_PASSWORD].valueFrom.secretKeyRef")
        );
        let m = parse("configmap \"web-config\" not found").unwrap();
        assert_eq!(
            reference(&c, &m).as_deref(),
            Some("envFrom[0].configMapRef")
        );
    }
}
