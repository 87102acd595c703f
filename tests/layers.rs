//! Imports point down: the leaf modules import nothing of the crate,
//! config only leaves, the report sinks neither the safety layer nor the
//! pipeline, and only config (handed the environment by the entry points)
//! reads the environment. Checked on the source text, so a new upward import
//! fails here rather than growing a cycle.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `(file, module)` for every `crate::module` a file names, outside comments.
fn crate_refs(files: &[PathBuf]) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        let shown = f.strip_prefix(src()).unwrap().display().to_string();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let module: String = code[i + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                refs.push((shown.clone(), module));
            }
        }
    }
    refs
}

fn files_under(rel: &str) -> Vec<PathBuf> {
    let p = src().join(rel);
    let mut out = Vec::new();
    if p.is_dir() {
        rust_files(&p, &mut out);
    } else {
        out.push(p);
    }
    out
}

fn assert_only(rel: &str, allowed: &[&str]) {
    let bad: Vec<_> = crate_refs(&files_under(rel))
        .into_iter()
        .filter(|(_, m)| !allowed.contains(&m.as_str()))
        .collect();
    assert!(bad.is_empty(), "{rel} imports upwards: {bad:?}");
}

fn assert_none_of(rel: &str, forbidden: &[&str]) {
    let bad: Vec<_> = crate_refs(&files_under(rel))
        .into_iter()
        .filter(|(_, m)| forbidden.contains(&m.as_str()))
        .collect();
    assert!(bad.is_empty(), "{rel} imports upwards: {bad:?}");
}

/// The stages and layers above the report sinks.
const ABOVE_REPORT: &[&str] = &[
    "lock",
    "cancel",
    "recovery",
    "orchestrate",
    "track",
    "guards",
    "stability",
    "superseded",
    "preflight",
    "kube_client",
];

#[test]
fn leaves_import_nothing_of_the_crate() {
    assert_only("k8s", &[]);
    assert_only("model", &[]);
}

#[test]
fn config_imports_only_leaves() {
    // `workload` for WorkloadRef and its parser, until they move to k8s.
    assert_only(
        "config",
        &["config", "text", "image", "k8s", "exit", "workload"],
    );
    let workload_refs = crate_refs(&files_under("config"))
        .into_iter()
        .filter(|(_, m)| m == "workload")
        .count();
    assert!(
        workload_refs <= 2,
        "config leans on workload more: {workload_refs}"
    );
}

#[test]
fn report_and_safety_layers_point_down() {
    assert_none_of("report", ABOVE_REPORT);
    // lock: acquire/renew/release with typed options; no cancel, no sinks.
    assert_none_of("lock.rs", &["cancel", "report", "orchestrate"]);
    // The sinks are called by publish, never the reverse.
    for sink in ["github.rs", "gitlab.rs", "slack.rs", "deployments.rs"] {
        let text = std::fs::read_to_string(src().join("report").join(sink)).unwrap();
        assert!(
            !text.contains("super::publish"),
            "report/{sink} imports publish"
        );
    }
}

#[test]
fn only_config_and_the_binary_read_the_environment() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    for f in files {
        let rel = f.strip_prefix(src()).unwrap().display().to_string();
        // The binary and the library's entry point hand the environment to config.
        if rel == "main.rs" || rel == "lib.rs" || rel.starts_with("config") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in [
            "std::env::var",
            "env::vars",
            "config::Env",
            "&Env",
            "env.get(",
        ] {
            assert!(
                !text.contains(needle),
                "{rel} reads the environment ({needle})"
            );
        }
    }
}
