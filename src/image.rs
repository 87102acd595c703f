//! Container image references: `[host[:port]/]path[:tag][@sha256:hex]`, as
//! the container runtime accepts them (distribution/reference grammar).

/// The longest repository name (registry host and path) a registry accepts.
pub const NAME_MAX: usize = 255;

/// What the new image is, as the user said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageChange {
    /// A full reference.
    Image(String),
    /// Only the tag (or `@digest`) of the current image changes.
    Tag(String),
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Everything before `:tag` / `@digest` (host and path).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, String> {
        if s.is_empty() {
            return Err("is empty".into());
        }
        if s.trim() != s || s.contains(char::is_whitespace) {
            return Err("contains whitespace".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        // distribution/reference: NameTotalLengthMax, host and path together.
        if repository.len() > NAME_MAX {
            return Err(format!(
                "has a repository name of {} characters (at most {NAME_MAX})",
                repository.chars().count()
            ));
        }
        let mut comps: Vec<&str> = repository.split('/').collect();
        if comps.len() > 1
            && (comps[0].contains('.') || comps[0].contains(':') || comps[0] == "localhost")
        {
            let host = comps.remove(0);
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
            {
                return Err(format!("has an invalid registry host \"{host}\""));
            }
        }
        for c in &comps {
            let ok = !c.is_empty()
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !ok {
                return Err(format!(
                    "is not a valid image reference: path component \"{c}\" must be lower-case letters, digits and . _ -"
                ));
            }
        }
        Ok(Reference {
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The same repository with a new tag (`v2`) or digest (`sha256:…`).
    pub fn with_tag_or_digest(&self, tag_or_digest: &str) -> String {
        if tag_or_digest.starts_with("sha256:") {
            format!("{}@{}", self.repository, tag_or_digest)
        } else {
            format!("{}:{}", self.repository, tag_or_digest)
        }
    }

    /// The tag, else the digest: what a version label is made from.
    pub fn version_source(&self) -> Option<&str> {
        self.tag.as_deref().or(self.digest.as_deref())
    }
}

fn validate_digest(d: &str) -> Result<(), String> {
    let hex = d
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("has digest \"{d}\" that does not start with sha256:"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "has digest \"{d}\" that is not 64 lower-case hex digits"
        ));
    }
    Ok(())
}

fn validate_tag(t: &str) -> Result<(), String> {
    let ok = !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "has tag \"{t}\" that is not valid (at most 128 letters, digits, '_', '.', '-', not starting with '.' or '-')"
        ))
    }
}

/// A `tag` input: a tag or a `sha256:` digest.
pub fn validate_tag_or_digest(t: &str) -> Result<(), String> {
    if t.starts_with("sha256:") {
        validate_digest(t).map_err(|e| e.replacen("has digest", "is a digest", 1))
    } else {
        validate_tag(t).map_err(|_| {
            "is not a valid tag (at most 128 letters, digits, '_', '.', '-', not starting with '.' or '-')".to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        let r = Reference::parse("registry.example.com:5000/team/api:v2").unwrap();
        assert_eq!(r.repository, "registry.example.com:5000/team/api");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(
            r.with_tag_or_digest("v3"),
            "registry.example.com:5000/team/api:v3"
        );
        let r = Reference::parse("example/api").unwrap();
        assert_eq!(r.tag, None);
        assert!(Reference::parse("Example/API:v1").is_err());
        assert!(Reference::parse("example/api:").is_err());
        assert!(Reference::parse("example/api@sha256:abc").is_err());
        assert!(validate_tag_or_digest("v2.1-rc_1").is_ok());
        assert!(validate_tag_or_digest("-bad").is_err());
    }
}
