//! Redaction of values that look like secrets in container log lines
//! before they go into a report (CI log, PR comment, Slack).

use std::sync::LazyLock;

use regex::Regex;

const MASK: &str = "[REDACTED]";

struct Rule {
    re: Regex,
    /// Replacement; `$pre` keeps the part before the value.
    with: &'static str,
}

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rule = |re: &str, with: &'static str| Rule {
        re: Regex::new(re).expect("redaction pattern"),
        with,
    };
    vec![
        // Credentials in URLs: scheme://user:password@host
        rule(
            r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)[^\s@/]+@",
            "${pre}[REDACTED]@",
        ),
        // Authorization headers.
        rule(
            r"(?i)(?P<pre>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}",
            "${pre}[REDACTED]",
        ),
        // JSON Web Tokens anywhere.
        rule(
            r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            MASK,
        ),
        // AWS access key ids.
        rule(r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b", MASK),
        // Well-known token prefixes (GitHub, GitLab, Slack).
        rule(
            r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,})",
            MASK,
        ),
        // key=value / key: value where the key names a secret.
        rule(
            r#"(?i)(?P<pre>\b[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credentials?|auth)[\w.-]*["']?\s*[=:]\s*["']?)(?:(?i:bearer|basic)\s+)?[^\s"',;&]+"#,
            "${pre}[REDACTED]",
        ),
        // A long base64-ish string shortly after a word like secret or key.
        rule(
            r"(?i)(?P<pre>\b(?:secret|key)s?\b\W{1,5}(?:\w+\W{1,3}){0,2})[A-Za-z0-9+/_=-]{24,}",
            "${pre}[REDACTED]",
        ),
    ]
});

/// The line with values that look like secrets replaced by `[REDACTED]`.
pub fn redact(line: &str) -> String {
    let mut s = line.to_string();
    for r in RULES.iter() {
        if r.re.is_match(&s) {
            s = r.re.replace_all(&s, r.with).into_owned();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn key_value_secrets() {
        assert_eq!(redact("DB_PASSWORD=hunter2"), "DB_PASSWORD=[REDACTED]");
        assert_eq!(
            redact("connecting with password: hunter2 to db"),
            "connecting with password: [REDACTED] to db"
        );
        assert_eq!(
            redact(r#"{"api_key": "abc123def", "user": "bob"}"#),
            r#"{"api_key": "[REDACTED]", "user": "bob"}"#
        );
        assert_eq!(redact("token=abc&next=1"), "token=[REDACTED]&next=1");
        assert_eq!(
            redact("GITHUB_TOKEN: ghp_aaaaaaaaaaaaaaaaaaaaaaaa"),
            "GITHUB_TOKEN: [REDACTED]"
        );
    }

    #[test]
    fn bearer_jwt_and_urls() {
        assert_eq!(
            redact("Authorization: Bearer abcdefghijklmnop.qrs"),
            "Authorization: [REDACTED]"
        );
        assert_eq!(
            redact("sending header Bearer abcdefghijklmnop"),
            "sending header Bearer [REDACTED]"
        );
        assert_eq!(
            redact("dial postgres://app:s3cr3t@db:5432/app failed"),
            "dial postgres://app:[REDACTED]@db:5432/app failed"
        );
        assert_eq!(
            redact("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature_x"),
            "jwt [REDACTED]"
        );
    }

    #[test]
    fn cloud_keys_and_long_secrets() {
        assert_eq!(
            redact("using AKIAIOSFODNN7EXAMPLE for s3"),
            "using [REDACTED] for s3"
        );
        assert_eq!(
            redact("loaded signing key abcdEFGHijklMNOPqrstUVWXyz0123456789+/=="),
            "loaded signing key [REDACTED]"
        );
        assert_eq!(
            redact("xoxb-123456789012-abcdefghij is the slack bot"),
            "[REDACTED] is the slack bot"
        );
    }

    #[test]
    fn ordinary_lines_are_kept() {
        for l in [
            "Error: cannot connect to database at db:5432",
            "listening on :8080",
            "GET /healthz 200 3ms",
            "key not found: user 42",
            "tokenizer ready",
            "secret sauce",
        ] {
            assert_eq!(redact(l), l);
        }
    }
}
