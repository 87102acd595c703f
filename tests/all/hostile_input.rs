//! Hostile input: property tests of config and image-reference
//! parsing — 0 panics over 2 000 cases each — and label sanitising (always a
//! valid label value, ≤ 63 chars); a non-UTF-8 input is a clean exit 2.

use proptest::prelude::*;
use rollguard::config::{self, Env, INPUTS, is_label_value, sanitise_label_value};
use rollguard::image::{Reference, validate_tag_or_digest};

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    }
}

/// Values: over-long, control characters, any Unicode, near-valid forms.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,40}",
        "[\\x00-\\x1f\\x7f]{0,10}",
        "[a-z0-9./:@_-]{0,300}",
        Just("x".repeat(100_000)),
        "sha256:[0-9a-fé]{0,70}",
        "[0-9]{1,4}(ms|s|m|h|x)?",
    ]
}

fn env_strategy() -> impl Strategy<Value = Env> {
    proptest::collection::vec((0..INPUTS.len(), any::<bool>(), value()), 0..12).prop_map(|v| {
        let mut env = Env::new();
        env.insert("INPUT_WORKLOAD".into(), "deployment/web".into());
        env.insert("INPUT_TAG".into(), "v2".into());
        for (i, github, value) in v {
            let name = INPUTS[i].name.to_ascii_uppercase();
            let key = if github {
                format!("INPUT_{name}")
            } else {
                format!("ROLLGUARD_{}", name.replace('-', "_"))
            };
            env.insert(key, value);
        }
        env
    })
}

proptest! {
    #![proptest_config(cases())]

    /// 2 000 random environments: `from_env` returns Ok or one InputError, never panics.
    #[test]
    fn config_from_env_never_panics_2000_cases(env in env_strategy()) {
        match config::from_env(&env) {
            Ok(s) => { let _ = format!("{s:?}"); }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// 2 000 random strings: image reference parsing and tag validation never panic.
    #[test]
    fn image_reference_never_panics_2000_cases(s in value()) {
        if let Ok(r) = Reference::parse(&s) {
            let _ = r.with_tag_or_digest("v2");
            prop_assert!(!s.contains(char::is_whitespace));
        }
        let _ = validate_tag_or_digest(&s);
    }

    /// 2 000 random strings: a sanitised label value is always a valid one (regex, ≤ 63).
    #[test]
    fn sanitised_label_values_are_valid_2000_cases(s in value()) {
        if let Some(v) = sanitise_label_value(&s) {
            let re = regex_lite(&v);
            prop_assert!(re && v.len() <= 63 && is_label_value(&v), "{v:?}");
        }
    }
}

/// `(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?`, written out.
fn regex_lite(v: &str) -> bool {
    let b = v.as_bytes();
    b.is_empty()
        || (b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c)))
}

#[test]
fn non_utf8_input_is_an_error_naming_the_variable() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let vars = vec![
        (
            OsString::from("INPUT_TAG"),
            OsString::from_vec(vec![b'v', 0xff]),
        ),
        (OsString::from("UNRELATED"), OsString::from_vec(vec![0xfe])),
    ];
    let e = config::env_from_os(vars).unwrap_err();
    assert!(e.to_string().contains("INPUT_TAG"), "{e}");
    let ok = config::env_from_os(vec![(
        OsString::from("UNRELATED"),
        OsString::from_vec(vec![0xfe]),
    )]);
    assert!(ok.unwrap().is_empty());
}

#[test]
fn non_utf8_input_exits_2_from_the_binary() {
    use std::os::unix::ffi::OsStrExt;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rollguard"))
        .env_clear()
        .env("INPUT_WORKLOAD", "web")
        .env(
            "INPUT_TAG",
            std::ffi::OsStr::from_bytes(&[b'v', 0xff, 0x01]),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("INPUT_TAG") && stderr.contains("not valid UTF-8"),
        "{stderr}"
    );
}
