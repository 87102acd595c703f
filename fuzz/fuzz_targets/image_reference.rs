//! Any string → image reference parsing, tag validation and label
//! sanitising never panic; a sanitised label value is always valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollguard::config::{is_label_value, sanitise_label_value};
use rollguard::image::{Reference, validate_tag_or_digest};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(r) = Reference::parse(&s) {
        let _ = r.with_tag_or_digest("v2");
        if let Some(v) = r.version_source() {
            let _ = sanitise_label_value(v);
        }
    }
    let _ = validate_tag_or_digest(&s);
    if let Some(v) = sanitise_label_value(&s) {
        assert!(is_label_value(&v), "{v:?} from {s:?}");
    }
});
