//! Kubernetes quantities (`250m`, `128Mi`, `1.5G`) as numbers, and the
//! cpu and memory a pod asks the scheduler for.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Parse a Kubernetes quantity scaled by `10^scale` (3 for millicores, 0 for
/// bytes), rounded up as `Quantity.MilliValue()` / `Value()` do. None when it
/// does not parse. (k8s-openapi keeps quantities as strings.)
fn parse_scaled(q: &str, scale: i32) -> Option<i64> {
    let s = q.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(end);
    let (int_part, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int_part.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let digits = format!("{int_part}{frac}");
    if digits.len() > 30 {
        return None;
    }
    let mantissa: i128 = digits.parse().ok()?;
    let mut exp10 = scale - frac.len() as i32;
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
        e if e.starts_with(['e', 'E']) => exp10 += e[1..].parse::<i32>().ok()?,
        _ => return None,
    }
    let mut v = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if exp10 >= 0 {
        v = v.checked_mul(10i128.checked_pow(exp10 as u32)?)?;
    } else {
        let d = 10i128.checked_pow(exp10.unsigned_abs())?;
        v = (v + d - 1) / d;
    }
    let v = i64::try_from(v).ok()?;
    Some(if neg { -v } else { v })
}

/// Millicores of a cpu quantity.
pub fn cpu_millis(q: &Quantity) -> Option<i64> {
    parse_scaled(&q.0, 3)
}

/// Bytes of a memory quantity.
pub fn bytes(q: &Quantity) -> Option<i64> {
    parse_scaled(&q.0, 0)
}

/// Millicores, always in `m` so numbers compare at a glance (`970m of 1000m`).
pub fn fmt_cpu(m: i64) -> String {
    format!("{m}m")
}

/// Bytes in the largest binary unit that divides them (`128Mi`, `4Gi`).
pub fn fmt_bytes(b: i64) -> String {
    for (unit, shift) in [
        ("Ei", 60),
        ("Pi", 50),
        ("Ti", 40),
        ("Gi", 30),
        ("Mi", 20),
        ("Ki", 10),
    ] {
        if b != 0 && b % (1i64 << shift) == 0 {
            return format!("{}{unit}", b >> shift);
        }
    }
    b.to_string()
}

/// cpu (millicores) and memory (bytes) a pod asks the scheduler for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu: i64,
    pub memory: i64,
}

/// The pod's effective requests, as the scheduler computes them: the sum over
/// containers, at least each init container's, plus the overhead. A
/// container with a limit but no request requests its limit (API defaulting).
pub fn pod_requests(spec: &PodSpec) -> Requests {
    let one = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref();
        let get = |name: &str, parse: fn(&Quantity) -> Option<i64>| {
            r.and_then(|r| r.requests.as_ref())
                .and_then(|m| m.get(name))
                .or_else(|| r.and_then(|r| r.limits.as_ref()).and_then(|m| m.get(name)))
                .and_then(parse)
                .unwrap_or(0)
        };
        Requests {
            cpu: get("cpu", cpu_millis),
            memory: get("memory", bytes),
        }
    };
    let mut sum = Requests::default();
    for c in &spec.containers {
        let r = one(c);
        sum.cpu += r.cpu;
        sum.memory += r.memory;
    }
    for c in spec.init_containers.iter().flatten() {
        let r = one(c);
        sum.cpu = sum.cpu.max(r.cpu);
        sum.memory = sum.memory.max(r.memory);
    }
    if let Some(o) = &spec.overhead {
        sum.cpu += o.get("cpu").and_then(cpu_millis).unwrap_or(0);
        sum.memory += o.get("memory").and_then(bytes).unwrap_or(0);
    }
    sum
}
