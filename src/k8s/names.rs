//! Kubernetes name and label rules: DNS labels, label keys and values.
//! Pure functions shared by input validation and the workload kinds.

/// RFC 1123 label (namespaces, container names).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A valid label value: ≤ 63 chars, `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?` (empty allowed by
/// Kubernetes, but not useful as a version: rejected here).
pub fn is_label_value(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
        && s.bytes().all(|b| alnum(b) || b"-_.".contains(&b))
}

/// A qualified label key: `[prefix/]name`, prefix a DNS subdomain ≤ 253, name ≤ 63.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty() && p.len() <= 253 && p.split('.').all(is_dns_label);
        if !ok {
            return Err("is not a valid label key: the prefix must be a DNS subdomain (e.g. app.kubernetes.io/version)".into());
        }
    }
    if !is_label_value(name) {
        return Err("is not a valid label key: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    Ok(())
}

/// Make a label value from a tag: invalid characters become '-', trimmed to
/// 63 and to alphanumeric ends. A digest becomes its first 12 hex digits.
pub fn sanitise_label_value(tag: &str) -> Option<String> {
    let tag = match tag.strip_prefix("sha256:") {
        // chars, not bytes: never slices inside a UTF-8 character.
        Some(hex) => format!("sha256-{}", hex.chars().take(12).collect::<String>()),
        None => tag.to_string(),
    };
    let mapped: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cut: String = mapped.chars().take(63).collect();
    let trimmed = cut.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_keys() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("-web"));
        assert!(!is_dns_label("Web"));
        assert!(is_label_value("v1.2_3"));
        assert!(!is_label_value(""));
        assert_eq!(sanitise_label_value("v2").as_deref(), Some("v2"));
        assert_eq!(
            sanitise_label_value("-feat/x+1-").as_deref(),
            Some("feat-x-1")
        );
        assert_eq!(sanitise_label_value(&"a".repeat(100)).unwrap().len(), 63);
        assert_eq!(
            sanitise_label_value("sha256:0123456789abcdef").as_deref(),
            Some("sha256-0123456789ab")
        );
        assert!(check_label_key("app.kubernetes.io/version").is_ok());
        assert!(check_label_key("Bad Key").is_err());
    }
}
