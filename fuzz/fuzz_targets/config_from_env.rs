//! Any environment → `config::from_env` returns Ok or an error, never panics.
//! The input is split into lines `NAME=VALUE`; names are steered towards
//! rollguard's inputs so the fuzzer reaches the validation code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollguard::config::{self, Env, INPUTS};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut env = Env::new();
    for line in text.split('\n') {
        let (name, value) = line.split_once('=').unwrap_or((line, ""));
        // A leading digit picks one of our inputs and a spelling.
        let name = match name.as_bytes().first() {
            Some(b) if b.is_ascii_digit() => {
                let spec = &INPUTS[(*b as usize * 7 + name.len()) % INPUTS.len()];
                if b % 2 == 0 {
                    format!("INPUT_{}", spec.name.to_ascii_uppercase())
                } else {
                    format!("ROLLGUARD_{}", spec.name.to_ascii_uppercase().replace('-', "_"))
                }
            }
            _ => name.to_string(),
        };
        env.insert(name, value.to_string());
    }
    if let Ok(s) = config::from_env(&env) {
        // Whatever was accepted renders.
        let _ = format!("{s:?}");
    }
    let _ = config::env_from_os(
        env.into_iter()
            .map(|(k, v)| (std::ffi::OsString::from(k), std::ffi::OsString::from(v))),
    );
});
