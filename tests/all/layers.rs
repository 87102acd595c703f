//! The crate's modules form layers and data flows one way: a module imports
//! only from its own layer or lower ones, and no set of modules imports each
//! other in a circle. Checked on the source text (`crate::`, `super::` and
//! `self::` paths outside comments and unit tests), so an upward import or a
//! new cycle fails here instead of growing silently. Only config (handed the
//! environment by the entry points) reads the environment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path prefix → layer. The longest matching prefix decides.
const LAYERS: &[(&str, u8)] = &[
    // The shared vocabulary: depends on nothing of the crate.
    ("k8s", 0),
    ("model", 0),
    ("text", 0),
    ("exit", 0),
    ("image", 0),
    ("retry", 0),
    // The environment, read once into typed settings (the metric gate's
    // inputs and its query vocabulary included).
    ("config", 1),
    ("analysis::settings", 1),
    ("analysis::condition", 1),
    ("analysis::template", 1),
    // The stages: pure rules per kind, watching, diagnosis, reports.
    ("kube_client", 2),
    ("diagnose", 2),
    ("preflight", 2),
    ("analysis", 2),
    ("canary", 2),
    ("stability", 2),
    ("superseded", 2),
    ("guards", 2),
    ("track", 2),
    ("report", 2),
    ("workload", 2),
    ("workload::deployment", 2),
    ("workload::statefulset", 2),
    ("workload::daemonset", 2),
    ("workload::replicationcontroller", 2),
    // Safety: the deploy lock, recovery of an interrupted run, cancels.
    ("lock", 3),
    ("recovery", 3),
    ("cancel", 3),
    ("canary::cleanup", 3),
    // The kinds' rollouts (their I/O), and their registration.
    ("workload::rollout", 4),
    ("workload::kinds", 4),
    ("workload::patch", 4),
    ("workload::prepare", 4),
    ("workload::template", 4),
    ("workload::deployment::rollout", 4),
    ("workload::deployment::tracker", 4),
    ("workload::statefulset::rollout", 4),
    ("workload::daemonset::rollout", 4),
    ("workload::replicationcontroller::rollout", 4),
    ("workload::replicationcontroller::apply", 4),
    ("workload::replicationcontroller::follow", 4),
    ("workload::deployment::canary", 4),
    ("workload::deployment::subject", 4),
    // The phases of a run.
    ("pipeline", 5),
    // The entry points.
    ("crate", 6),
    ("main", 6),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

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

/// `a/b.rs` → `a::b`, `a/mod.rs` → `a`, `lib.rs` → `crate`.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [one] if one == "lib" => "crate".into(),
        _ => parts.join("::"),
    }
}

/// The code of a file without comments and without its unit tests.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| {
            // A `//` inside a string (a URL) is not a comment.
            let mut in_str = false;
            let b = l.as_bytes();
            let mut cut = l.len();
            for i in 0..b.len() {
                match b[i] {
                    b'"' if i == 0 || b[i - 1] != b'\\' => in_str = !in_str,
                    b'/' if !in_str && b.get(i + 1) == Some(&b'/') => {
                        cut = i;
                        break;
                    }
                    _ => {}
                }
            }
            &l[..cut]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path a `use` tree or an inline path names after `prefix::`:
/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    fn tree(s: &[u8], i: &mut usize, base: &str, out: &mut Vec<String>) {
        let mut path = base.to_string();
        loop {
            let start = *i;
            while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
                *i += 1;
            }
            let seg = std::str::from_utf8(&s[start..*i]).unwrap();
            if !seg.is_empty() && seg != "self" {
                if !path.is_empty() {
                    path.push_str("::");
                }
                path.push_str(seg);
            }
            if s[*i..].starts_with(b"::{") {
                *i += 3;
                loop {
                    while *i < s.len() && s[*i].is_ascii_whitespace() {
                        *i += 1;
                    }
                    if *i >= s.len() || s[*i] == b'}' {
                        *i += 1;
                        break;
                    }
                    tree(s, i, &path, out);
                    while *i < s.len() && s[*i] != b',' && s[*i] != b'}' {
                        *i += 1;
                    }
                    if *i < s.len() && s[*i] == b',' {
                        *i += 1;
                    }
                }
                return;
            }
            if s[*i..].starts_with(b"::") {
                *i += 2;
                continue;
            }
            out.push(path);
            return;
        }
    }
    let s = code.as_bytes();
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        // `mycrate::` is not `crate::`; `super::super::` is read once.
        if at > 0 && (s[at - 1].is_ascii_alphanumeric() || s[at - 1] == b'_') {
            continue;
        }
        if code[..at].ends_with(prefix) {
            continue;
        }
        let mut i = at + prefix.len();
        tree(s, &mut i, "", &mut out);
    }
    out
}

/// The module graph: module → the modules its code names. A module naming
/// its own descendants (declaring or re-exporting them) is not an edge.
fn graph(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(root, f)).collect();
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut g = BTreeMap::new();
    for f in &files {
        let m = module_of(root, f);
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        let parent = m.rsplit_once("::").map(|(p, _)| p.to_string());
        let mut deps = BTreeSet::new();
        let mut add = |p: String| {
            if let Some(d) = resolve(&p) {
                deps.insert(d);
            }
        };
        for p in paths_after(&code, "crate::") {
            add(p);
        }
        for p in paths_after(&code, "super::") {
            // `super::super::x`: one level up per `super`.
            let mut base = parent.clone();
            let mut rest = p.as_str();
            while let Some(r) = rest.strip_prefix("super::") {
                base = base.and_then(|b| b.rsplit_once("::").map(|(p, _)| p.to_string()));
                rest = r;
            }
            match base {
                Some(base) => add(format!("{base}::{rest}")),
                None => add(rest.to_string()),
            }
        }
        for p in paths_after(&code, "self::") {
            add(format!("{m}::{p}"));
        }
        let own = |d: &String| d == &m || d.starts_with(&format!("{m}::")) || m == "crate";
        deps.retain(|d| !own(d));
        g.insert(m, deps);
    }
    g
}

/// Every set of modules that import each other in a circle (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let l = t.low[v].min(t.low[w]);
                t.low.insert(v, l);
            } else if t.on.contains(w) {
                let l = t.low[v].min(t.index[w]);
                t.low.insert(v, l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(p, _)| module == *p || module.starts_with(&format!("{p}::")))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, l)| *l)
}

#[test]
fn no_module_imports_in_a_circle() {
    let g = graph(&src());
    let found = cycles(&g);
    let shown: Vec<String> = found
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .map(|m| {
                    let to: Vec<&str> = g[m]
                        .iter()
                        .filter(|d| c.contains(d))
                        .map(String::as_str)
                        .collect();
                    format!("{m} → {}", to.join(", "))
                })
                .collect();
            edges.join("; ")
        })
        .collect();
    assert!(found.is_empty(), "import cycles: {}", shown.join(" | "));
}

#[test]
fn imports_point_down_the_layers() {
    let g = graph(&src());
    let mut wrong = Vec::new();
    for (m, deps) in &g {
        let Some(lm) = layer(m) else {
            wrong.push(format!("{m} has no layer: add it to LAYERS"));
            continue;
        };
        for d in deps {
            match layer(d) {
                Some(ld) if ld <= lm => {}
                Some(ld) => wrong.push(format!("{m} (layer {lm}) imports {d} (layer {ld})")),
                None => wrong.push(format!("{d} has no layer: add it to LAYERS")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_cycles_and_upward_imports() {
    // The parser: groups, nesting, `self`, and paths inside code.
    let p = paths_after(
        "use crate::a::{b, c::{d, self}};\nlet x = crate::e::f(1); // crate::g",
        "crate::",
    );
    assert_eq!(p, ["a::b", "a::c::d", "a::c", "e::f", "g"]);
    assert_eq!(
        code_of("let u = \"http://x\"; // crate::no"),
        "let u = \"http://x\"; "
    );
    // A cycle made on purpose is found; the real tree's modules are known.
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "pub mod c;\nuse crate::b::X;\n").unwrap();
    std::fs::write(dir.join("a/c.rs"), "use super::super::b::Z;\n").unwrap();
    std::fs::write(dir.join("b.rs"), "use crate::a::c::Y;\n").unwrap();
    let g = graph(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycles(&g), vec![vec!["a::c".to_string(), "b".to_string()]]);
    assert_eq!(layer("workload::deployment::status"), Some(2));
    assert_eq!(layer("workload::deployment::rollout"), Some(4));
    assert_eq!(layer("pipeline::group"), Some(5));
}

#[test]
fn only_config_and_the_entry_points_read_the_environment() {
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
