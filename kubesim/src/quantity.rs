//! Kubernetes resource quantities (`100m`, `0.5`, `2`, `128Mi`, `1G`, `1e3`):
//! parsing to integer millicores / bytes, rounded up as the API server's
//! `Quantity.MilliValue()` / `Value()` do, and formatting back in the
//! canonical forms `kubectl` shows.
//!
//! (No well-kept crate parses these; k8s-openapi keeps quantities as strings.)

/// A parsed quantity: `mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

fn parse(s: &str) -> Option<Parsed> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int_part}{frac_part}");
    // Keep the mantissa within i128 comfortably.
    if digits.len() > 30 {
        return None;
    }
    let mut mantissa: i128 = digits.parse().ok()?;
    if neg {
        mantissa = -mantissa;
    }
    let mut exp10 = -(frac_part.len() as i32);
    let mut exp2 = 0u32;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))?;
            let e: i32 = exp.parse().ok()?;
            if !(-30..=30).contains(&e) {
                return None;
            }
            exp10 += e;
        }
    }
    Some(Parsed {
        mantissa,
        exp10,
        exp2,
    })
}

/// `p × 10^shift`, rounded up (towards +∞) to an integer.
fn scaled_ceil(p: Parsed, shift: i32) -> Option<i64> {
    let mut m = p.mantissa.checked_mul(1i128.checked_shl(p.exp2)?)?;
    let e = p.exp10 + shift;
    if e >= 0 {
        m = m.checked_mul(10i128.checked_pow(e as u32)?)?;
    } else {
        let d = 10i128.checked_pow((-e) as u32)?;
        let q = m.div_euclid(d);
        m = if m.rem_euclid(d) != 0 { q + 1 } else { q };
    }
    i64::try_from(m).ok()
}

/// A cpu quantity in millicores (`"100m"` → 100, `"0.5"` → 500, `"2"` → 2000).
pub fn cpu_millis(s: &str) -> Option<i64> {
    scaled_ceil(parse(s)?, 3)
}

/// A memory/storage quantity in bytes (`"128Mi"` → 134217728, `"1G"` → 10^9).
pub fn bytes(s: &str) -> Option<i64> {
    scaled_ceil(parse(s)?, 0)
}

/// A plain count (`"110"` → 110).
pub fn value(s: &str) -> Option<i64> {
    scaled_ceil(parse(s)?, 0)
}

/// Millicores in canonical form: `"2"` for whole cores, `"1500m"` otherwise.
pub fn format_cpu(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Bytes in canonical binary form: the largest of `Ei…Ki` that divides exactly.
pub fn format_bytes(bytes: i64) -> String {
    if bytes == 0 {
        return "0".into();
    }
    for (suffix, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        let unit = 1i64 << shift;
        if bytes % unit == 0 {
            return format!("{}{suffix}", bytes / unit);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("100m"), Some(100));
        assert_eq!(cpu_millis("0.5"), Some(500));
        assert_eq!(cpu_millis("2"), Some(2000));
        assert_eq!(cpu_millis("1200m"), Some(1200));
        assert_eq!(cpu_millis("0.1"), Some(100));
        assert_eq!(cpu_millis("1e3"), Some(1_000_000));
        assert_eq!(cpu_millis("100u"), Some(1), "rounded up");
        assert_eq!(cpu_millis("1k"), Some(1_000_000));
        assert_eq!(cpu_millis(""), None);
        assert_eq!(cpu_millis("abc"), None);
        assert_eq!(cpu_millis("1.2.3"), None);
        assert_eq!(cpu_millis("1x"), None);
    }

    #[test]
    fn memory() {
        assert_eq!(bytes("128Mi"), Some(128 << 20));
        assert_eq!(bytes("4Gi"), Some(4 << 30));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("1E3"), Some(1000));
        assert_eq!(bytes("512"), Some(512));
        assert_eq!(bytes("0.5Ki"), Some(512));
        assert_eq!(bytes("-1Ki"), Some(-1024));
        assert_eq!(bytes("Mi"), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(format_cpu(2000), "2");
        assert_eq!(format_cpu(1500), "1500m");
        assert_eq!(format_bytes(4 << 30), "4Gi");
        assert_eq!(format_bytes(1536 << 20), "1536Mi");
        assert_eq!(format_bytes(1000), "1000");
        assert_eq!(format_bytes(0), "0");
        assert_eq!(value("110"), Some(110));
    }
}
