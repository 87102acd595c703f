//! `analysis-query` templating: `{{ version }}`, `{{ version_label }}`,
//! `{{ namespace }}`, `{{ workload }}`, `{{ container }}`.
//!
//! Values go inside PromQL string literals (`{app="{{ workload }}"}`), so
//! they are escaped for one (`\` and `"` and line breaks). `{{ version_label }}`
//! is a label *name* (`{{ version_label }}="{{ version }}"`): the label key
//! as Kubernetes service discovery's `labelmap` writes it (every character
//! outside `[a-zA-Z0-9_]` becomes `_`: `app.kubernetes.io/version` →
//! `app_kubernetes_io_version`).

use std::sync::LazyLock;

use regex::Regex;

/// The placeholder names the query may use.
pub const NAMES: &[&str] = &[
    "version",
    "version_label",
    "namespace",
    "workload",
    "container",
];

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)?\s*\}\}").expect("regex"));

/// What the placeholders stand for in one rollout.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub version: String,
    /// The label key (`app.kubernetes.io/version`), made a label name here.
    pub version_label: String,
    pub namespace: String,
    pub workload: String,
    pub container: String,
}

/// `value` as the inside of a PromQL double-quoted string.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A label key as a Prometheus label name (`labelmap`'s rule).
pub fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Every placeholder must be one of [`NAMES`]: a one-line problem otherwise.
pub fn check(query: &str) -> Result<(), String> {
    for m in PLACEHOLDER.captures_iter(query) {
        let name = m.get(1).map_or("", |n| n.as_str());
        if !NAMES.contains(&name) {
            return Err(format!(
                "unknown placeholder \"{}\" (known: {})",
                crate::text::quote(m.get(0).map_or("", |m| m.as_str()), 60),
                NAMES
                    .iter()
                    .map(|n| format!("{{{{ {n} }}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(())
}

/// The query with every placeholder replaced (checked by [`check`] before).
pub fn render(query: &str, vars: &Vars) -> String {
    PLACEHOLDER
        .replace_all(query, |c: &regex::Captures<'_>| {
            match c.get(1).map_or("", |n| n.as_str()) {
                "version" => string_literal(&vars.version),
                "version_label" => label_name(&vars.version_label),
                "namespace" => string_literal(&vars.namespace),
                "workload" => string_literal(&vars.workload),
                "container" => string_literal(&vars.container),
                _ => String::new(),
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            version: "v2".into(),
            version_label: "app.kubernetes.io/version".into(),
            namespace: "shop".into(),
            workload: "web".into(),
            container: "api".into(),
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let q = r#"sum(rate(http_requests_total{namespace="{{ namespace }}",{{version_label}}="{{ version }}",app="{{ workload }}",c="{{ container }}"}[1m]))"#;
        check(q).unwrap();
        assert_eq!(
            render(q, &vars()),
            r#"sum(rate(http_requests_total{namespace="shop",app_kubernetes_io_version="v2",app="web",c="api"}[1m]))"#
        );
    }

    #[test]
    fn values_cannot_leave_the_string_literal() {
        let mut v = vars();
        v.version = "a\"}) or vector(1) #\\\n".into();
        let out = render("x{v=\"{{ version }}\"}", &v);
        assert_eq!(out, "x{v=\"a\\\"}) or vector(1) #\\\\\\n\"}");
        assert_eq!(label_name("9-x.y/z"), "_9_x_y_z");
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let e = check("up{a=\"{{ versoin }}\"}").unwrap_err();
        assert!(
            e.contains("{{ versoin }}") && e.contains("{{ version }}"),
            "{e}"
        );
        assert!(check("up{a=\"{{ }}\"}").is_err());
        check("up").unwrap();
    }
}
