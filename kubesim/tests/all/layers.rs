// Over 500 lines with its unit tests: kept one self-contained file so another crate can copy it whole.
//! The module graph of a crate, read from its sources, and the import cycles
//! in it.
//!
//! A module is a file. An edge `a -> b` means a file names something of file
//! `b`: a `use` of it, or a path in code (`crate::x::f(..)`, `super::g`,
//! `self::child::T`, `child::h()` for a declared child, a name imported by
//! `use`, and paths inside macro calls). Declaring `mod child;` is not an
//! edge: the parent owning a child says nothing about who uses whom.
//! Inline modules (`mod tests { use super::*; }`) belong to their file.
//!
//! Self-contained (needs `syn` with `full` and `visit`, and `proc-macro2`) so
//! another crate's layering test can use the same file.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// A module path inside the crate: `[]` is the crate root, `["api", "rest"]`
/// is `crate::api::rest`.
pub type ModPath = Vec<String>;

/// The files of a crate's module tree and, per file, the files it depends on
/// with one example path that made each edge.
#[derive(Debug, Default)]
pub struct Graph {
    pub edges: BTreeMap<ModPath, BTreeMap<ModPath, String>>,
}

/// The module name as written in Rust (`crate` for the root).
pub fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

/// The import cycles of the crate whose root file is `src_root/crate_root_file`
/// (e.g. `lib.rs`): one cycle per strongly connected group of files, written
/// as the module names along it, first name repeated at the end.
pub fn cycles(src_root: &Path, crate_root_file: &str) -> Vec<Vec<String>> {
    let graph = read_crate(src_root, crate_root_file);
    graph
        .cycles()
        .into_iter()
        .map(|c| c.iter().map(|m| name(m)).collect())
        .collect()
}

/// Every cycle of the crate, one line per edge with the path that made it,
/// for a failure message; empty when there is none.
pub fn explain_cycles(src_root: &Path, crate_root_file: &str) -> String {
    let graph = read_crate(src_root, crate_root_file);
    let mut out = Vec::new();
    for (cycle, group) in graph.cycles().into_iter().zip(graph.groups()) {
        let names: Vec<String> = cycle.iter().map(|m| name(m)).collect();
        out.push(format!("import cycle: {}", names.join(" -> ")));
        out.push(explain(&graph, &cycle));
        if group.len() > cycle.len() - 1 {
            let all: Vec<String> = group.iter().map(|m| name(m)).collect();
            out.push(format!("  (one of the cycles among: {})", all.join(", ")));
        }
    }
    out.join("\n")
}

/// The edges from modules under `from` to modules under `to` (module
/// prefixes such as `["api"]`), as `a -> b (path)` lines: for rules like
/// "the API server never imports the controllers".
pub fn edges_between(graph: &Graph, from: &[&str], to: &[&str]) -> Vec<String> {
    let under =
        |m: &ModPath, p: &[&str]| m.len() >= p.len() && m.iter().zip(p).all(|(a, b)| a == b);
    let mut out = Vec::new();
    for (a, targets) in &graph.edges {
        if !under(a, from) {
            continue;
        }
        for (b, why) in targets {
            if under(b, to) {
                out.push(format!("{} -> {} ({why})", name(a), name(b)));
            }
        }
    }
    out
}

/// One line per edge of a cycle, with the path that made it.
pub fn explain(graph: &Graph, cycle: &[ModPath]) -> String {
    let mut out = Vec::new();
    for pair in cycle.windows(2) {
        let why = graph
            .edges
            .get(&pair[0])
            .and_then(|e| e.get(&pair[1]))
            .cloned()
            .unwrap_or_default();
        out.push(format!(
            "  {} -> {}   ({why})",
            name(&pair[0]),
            name(&pair[1])
        ));
    }
    out.join("\n")
}

/// Parse the module tree from the crate root, following `mod x;` to files.
/// Panics (naming the file) on a file that does not parse.
pub fn read_crate(src_root: &Path, crate_root_file: &str) -> Graph {
    let mut sources: BTreeMap<ModPath, String> = BTreeMap::new();
    let mut todo: Vec<(ModPath, PathBuf, PathBuf)> = vec![(
        Vec::new(),
        src_root.join(crate_root_file),
        src_root.to_path_buf(),
    )];
    while let Some((module, file, dir)) = todo.pop() {
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for (child, rel) in file_mods(&ast.items, &[]) {
            let base = rel.iter().fold(dir.clone(), |d, s| d.join(s)).join(&child);
            let candidates = [base.with_extension("rs"), base.join("mod.rs")];
            let Some(found) = candidates.into_iter().find(|p| p.is_file()) else {
                panic!("{}: no file for `mod {child};`", file.display());
            };
            let mut path = module.clone();
            path.extend(rel.iter().cloned());
            path.push(child.clone());
            todo.push((path, found, base));
        }
        sources.insert(module, text);
    }
    let files: BTreeSet<ModPath> = sources.keys().cloned().collect();
    let collected = sources.iter().map(|(m, text)| collect(m, text)).collect();
    resolve_all(collected, &files)
}

/// `mod x;` declarations (not inline modules) with the inline modules they
/// sit in, relative to the file.
fn file_mods(items: &[syn::Item], inside: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for item in items {
        if let syn::Item::Mod(m) = item {
            match &m.content {
                None => out.push((m.ident.to_string(), inside.to_vec())),
                Some((_, inner)) => {
                    let mut deeper = inside.to_vec();
                    deeper.push(m.ident.to_string());
                    out.extend(file_mods(inner, &deeper));
                }
            }
        }
    }
    out
}

/// The files that the source of `module` depends on (itself excluded), each
/// with the first path that made the edge. `files` is every file module of
/// the crate.
pub fn dependencies(
    module: &[String],
    text: &str,
    files: &BTreeSet<ModPath>,
) -> BTreeMap<ModPath, String> {
    let mut graph = resolve_all(vec![collect(module, text)], files);
    graph.edges.remove(module).unwrap_or_default()
}

/// The scopes and candidate paths of one file.
fn collect(module: &[String], text: &str) -> Collector {
    let ast = syn::parse_file(text).unwrap_or_else(|e| panic!("{}: {e}", name(module)));
    let mut c = Collector {
        scope: module.to_vec(),
        declarations_only: true,
        ..Collector::default()
    };
    c.scopes.entry(module.to_vec()).or_default();
    c.visit_file(&ast);
    c.declarations_only = false;
    c.visit_file(&ast);
    c
}

/// Resolve every file's paths against the scopes of all files (a
/// `super::x` may go through a name the parent file imports).
fn resolve_all(collected: Vec<Collector>, files: &BTreeSet<ModPath>) -> Graph {
    let mut all = Collector::default();
    let mut found = Vec::new();
    for c in collected {
        let module = c.scope.clone();
        all.scopes.extend(c.scopes);
        found.push((module, c.found));
    }
    let mut graph = Graph::default();
    for (module, paths) in found {
        let out = graph.edges.entry(module.clone()).or_default();
        for f in &paths {
            let Some(abs) = all.resolve(&f.scope, &f.segs) else {
                continue;
            };
            if f.imported && files.contains(&abs) {
                // `use self::child;` / `use crate::x;` only brings a module's
                // name in; the paths through it make the edges.
                continue;
            }
            let Some(target) = owning_file(&abs, files) else {
                continue;
            };
            if target != module {
                out.entry(target).or_insert_with(|| f.segs.join("::"));
            }
        }
    }
    graph
}

/// The longest prefix of `abs` that is a file module.
fn owning_file(abs: &[String], files: &BTreeSet<ModPath>) -> Option<ModPath> {
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|p| files.contains(p))
}

/// What one module scope (a file or an inline module) declares: child
/// modules, and names brought in by `use` with the path they stand for
/// (as written, relative to the scope).
#[derive(Default)]
struct Scope {
    children: BTreeSet<String>,
    aliases: BTreeMap<String, Vec<String>>,
}

/// A path found in the source: where, its segments, and whether it is a
/// `use` of a name (a module imported by name is an edge only through the
/// paths that go on from it).
struct Found {
    scope: ModPath,
    segs: Vec<String>,
    imported: bool,
}

#[derive(Default)]
struct Collector {
    scope: ModPath,
    scopes: BTreeMap<ModPath, Scope>,
    found: Vec<Found>,
    /// First pass: only note child modules and `use` names.
    declarations_only: bool,
}

impl Collector {
    fn record(&mut self, segs: Vec<String>, imported: bool) {
        if !self.declarations_only && (imported || segs.len() >= 2) {
            self.found.push(Found {
                scope: self.scope.clone(),
                segs,
                imported,
            });
        }
    }

    /// The absolute module path a path names, or None when it is not a path
    /// into this crate (std, another crate, a local item).
    fn resolve(&self, scope: &[String], path: &[String]) -> Option<Vec<String>> {
        self.resolve_depth(scope, path, 0)
    }

    fn resolve_depth(
        &self,
        scope: &[String],
        path: &[String],
        depth: usize,
    ) -> Option<Vec<String>> {
        let (first, rest) = path.split_first()?;
        if depth > 16 {
            return None;
        }
        match first.as_str() {
            "crate" => self.within(&[], rest, depth),
            "self" => self.within(scope, rest, depth),
            "super" => {
                let up = &scope[..scope.len().checked_sub(1)?];
                match rest.first().map(String::as_str) {
                    Some("super") => self.resolve_depth(up, rest, depth + 1),
                    _ => self.within(up, rest, depth),
                }
            }
            _ => {
                let s = self.scopes.get(scope)?;
                if s.aliases.contains_key(first) || s.children.contains(first) {
                    self.within(scope, path, depth)
                } else {
                    None
                }
            }
        }
    }

    /// `rest` named inside module `scope`: through a name it imports, or
    /// an item or child module of it.
    fn within(&self, scope: &[String], rest: &[String], depth: usize) -> Option<Vec<String>> {
        let alias = rest
            .first()
            .and_then(|first| self.scopes.get(scope)?.aliases.get(first));
        match alias {
            Some(target) => {
                self.resolve_depth(scope, &[target.as_slice(), &rest[1..]].concat(), depth + 1)
            }
            None => Some([scope, rest].concat()),
        }
    }

    /// Walk a `use` tree: record every leaf, and its name as an alias.
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let ident = n.ident.to_string();
                if ident == "self" {
                    let alias = prefix.last().cloned();
                    self.use_leaf(prefix.clone(), alias);
                } else {
                    let full = [prefix.as_slice(), std::slice::from_ref(&ident)].concat();
                    self.use_leaf(full, Some(ident));
                }
            }
            syn::UseTree::Rename(r) => {
                let ident = r.ident.to_string();
                let mut full = prefix.clone();
                if ident != "self" {
                    full.push(ident);
                }
                let alias = (r.rename != "_").then(|| r.rename.to_string());
                self.use_leaf(full, alias);
            }
            syn::UseTree::Glob(_) => {
                let full = prefix.clone();
                self.record(full, false);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn use_leaf(&mut self, full: Vec<String>, alias: Option<String>) {
        if let Some(alias) = alias {
            // An alias of itself (`use serde;`) names an external crate.
            if full.len() > 1 || full.first() != Some(&alias) {
                self.scopes
                    .entry(self.scope.clone())
                    .or_default()
                    .aliases
                    .insert(alias, full.clone());
            }
        }
        self.record(full, true);
    }

    /// Paths inside macro tokens: `a::b::c` runs whose first name could be
    /// a crate path (`$crate::x` included).
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let colon =
            |t: Option<&TokenTree>| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == ':');
        let mut i = 0;
        while i < trees.len() {
            match &trees[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(first) => {
                    let after_colons = i > 0 && colon(trees.get(i - 1));
                    let mut segs = vec![first.to_string()];
                    let mut j = i + 1;
                    while colon(trees.get(j)) && colon(trees.get(j + 1)) {
                        let Some(TokenTree::Ident(next)) = trees.get(j + 2) else {
                            break;
                        };
                        segs.push(next.to_string());
                        j += 3;
                    }
                    if !after_colons {
                        self.record(segs, false);
                    }
                    i = j;
                }
                TokenTree::Punct(_) | TokenTree::Literal(_) => i += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let name = m.ident.to_string();
        let scope = self.scopes.entry(self.scope.clone()).or_default();
        scope.children.insert(name.clone());
        if let Some((_, items)) = &m.content {
            self.scope.push(name);
            self.scopes.entry(self.scope.clone()).or_default();
            for item in items {
                self.visit_item(item);
            }
            self.scope.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let segs = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.record(segs, false);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        if !self.declarations_only {
            self.tokens(m.tokens.clone());
        }
    }
}

impl Graph {
    /// One concrete cycle per strongly connected group of two or more files
    /// (Tarjan), each starting at the group's first module and ending there.
    pub fn cycles(&self) -> Vec<Vec<ModPath>> {
        self.cycles_and_groups()
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    /// The modules of each group that `cycles` gives a cycle of, same order.
    pub fn groups(&self) -> Vec<Vec<ModPath>> {
        self.cycles_and_groups()
            .into_iter()
            .map(|(_, g)| g)
            .collect()
    }

    fn cycles_and_groups(&self) -> Vec<(Vec<ModPath>, Vec<ModPath>)> {
        let nodes: Vec<&ModPath> = self.edges.keys().collect();
        let index_of: BTreeMap<&ModPath, usize> =
            nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let succ: Vec<Vec<usize>> = nodes
            .iter()
            .map(|m| {
                self.edges[*m]
                    .keys()
                    .filter_map(|t| index_of.get(t).copied())
                    .collect()
            })
            .collect();
        let mut out = Vec::new();
        for group in tarjan(&succ) {
            if group.len() < 2 {
                continue;
            }
            let start = *group.iter().min().expect("non-empty group");
            let members: BTreeSet<usize> = group.iter().copied().collect();
            let path = shortest_cycle(&succ, start, &members);
            out.push((
                path.into_iter().map(|i| nodes[i].clone()).collect(),
                members.iter().map(|&i| nodes[i].clone()).collect(),
            ));
        }
        out.sort();
        out
    }
}

/// Strongly connected components, iteratively (no recursion limit).
fn tarjan(succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = succ.len();
    let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
    let (mut on_stack, mut stack, mut groups) = (vec![false; n], Vec::new(), Vec::new());
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut k)) = work.last_mut() {
            if *k == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = succ[v].get(*k) {
                *k += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut group = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                groups.push(group);
            }
        }
    }
    groups
}

/// The shortest path from `start` back to itself inside `members` (BFS),
/// `start` first and last.
fn shortest_cycle(succ: &[Vec<usize>], start: usize, members: &BTreeSet<usize>) -> Vec<usize> {
    let mut prev: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &succ[v] {
            if w == start {
                let mut back = vec![v];
                while let Some(&p) = prev.get(back.last().expect("non-empty")) {
                    back.push(p);
                }
                // `back` runs v .. start when v != start.
                if back.last() != Some(&start) {
                    back.push(start);
                }
                back.reverse();
                back.push(start);
                return back;
            }
            if members.contains(&w) && !prev.contains_key(&w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start, start]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> BTreeSet<ModPath> {
        names.iter().map(|n| path(n)).collect()
    }

    fn path(n: &str) -> ModPath {
        if n == "crate" {
            Vec::new()
        } else {
            n.split("::").map(str::to_string).collect()
        }
    }

    /// The files `module` depends on in `src`, by name.
    fn deps(module: &str, src: &str, all: &[&str]) -> Vec<String> {
        dependencies(&path(module), src, &files(all))
            .keys()
            .map(|m| name(m))
            .collect()
    }

    const ALL: &[&str] = &[
        "crate",
        "api",
        "api::rest",
        "api::watch",
        "store",
        "controllers",
        "controllers::pods",
    ];

    #[test]
    fn use_paths_resolve_to_the_owning_file() {
        let src = "use crate::store::Store;\nuse crate::api::rest::{render, views::One};\n";
        assert_eq!(deps("api::watch", src, ALL), ["api::rest", "store"]);
    }

    #[test]
    fn super_and_self_are_relative_to_the_file() {
        assert_eq!(
            deps("api::watch", "use super::rest::render;", ALL),
            ["api::rest"]
        );
        assert_eq!(
            deps("api", "fn f() { self::rest::render(); }", ALL),
            ["api::rest"]
        );
        assert_eq!(
            deps("api::watch", "fn f() { super::super::store::x(); }", ALL),
            ["store"]
        );
        assert_eq!(deps("api::watch", "use super::Thing;", ALL), ["api"]);
    }

    #[test]
    fn inline_modules_belong_to_their_file() {
        let src = "mod tests { use super::*; fn t() { super::super::rest::f(); } }";
        assert_eq!(deps("api::watch", src, ALL), ["api::rest"]);
        let glob_only = "mod tests { use super::*; }";
        assert!(deps("api::watch", glob_only, ALL).is_empty());
    }

    #[test]
    fn paths_in_code_types_and_macros_count() {
        assert_eq!(
            deps("controllers::pods", "fn f(s: &crate::store::Store) {}", ALL),
            ["store"]
        );
        assert_eq!(
            deps(
                "controllers::pods",
                "fn f() { let x = crate::api::rest::g(1); }",
                ALL
            ),
            ["api::rest"]
        );
        assert_eq!(
            deps(
                "controllers::pods",
                "fn f() { vec![crate::api::h()]; }",
                ALL
            ),
            ["api"]
        );
        assert_eq!(
            deps(
                "store",
                "macro_rules! m { () => { $crate::api::watch::w() } }",
                ALL
            ),
            ["api::watch"]
        );
    }

    #[test]
    fn child_modules_and_imported_names_resolve() {
        let src = "mod rest; mod watch; pub use rest::render; fn f() { watch::go(); }";
        assert_eq!(deps("api", src, ALL), ["api::rest", "api::watch"]);
        // A module imported by name is an edge only through what is used of it.
        let src = "use crate::api; fn f() { api::rest::render(); }";
        assert_eq!(deps("store", src, ALL), ["api::rest"]);
        let src = "use crate::api::{self, rest as r}; fn f() { r::x(); api::y(); }";
        assert_eq!(deps("store", src, ALL), ["api", "api::rest"]);
        // Declaring a child is no dependency on it.
        assert!(deps("api", "pub mod rest; pub mod watch;", ALL).is_empty());
    }

    #[test]
    fn external_and_local_paths_are_not_edges() {
        let src = "use std::sync::Arc; use serde_json::json; fn f() { Self::g(); Vec::<u8>::new(); ::api::x(); json!({}); }";
        assert!(deps("store", src, ALL).is_empty());
        // Comments and strings are not code.
        let src = "// crate::api::rest::x\nfn f() { let _ = \"crate::api::x\"; }";
        assert!(deps("store", src, ALL).is_empty());
    }

    #[test]
    fn crate_root_items_are_the_root_file() {
        assert_eq!(deps("api::rest", "use crate::Sim;", ALL), ["crate"]);
    }

    #[test]
    fn cycles_are_found_and_named_along_the_path() {
        let mut g = Graph::default();
        let edge = |g: &mut Graph, a: &str, b: &str| {
            g.edges
                .entry(path(a))
                .or_default()
                .insert(path(b), format!("{a}->{b}"));
            g.edges.entry(path(b)).or_default();
        };
        edge(&mut g, "api::rest", "api::watch");
        edge(&mut g, "api::watch", "store");
        edge(&mut g, "store", "api::rest");
        edge(&mut g, "controllers", "store");
        edge(&mut g, "controllers::pods", "controllers");
        let c = g.cycles();
        assert_eq!(c.len(), 1, "{c:?}");
        let names: Vec<String> = c[0].iter().map(|m| name(m)).collect();
        assert_eq!(names, ["api::rest", "api::watch", "store", "api::rest"]);
        assert!(explain(&g, &c[0]).contains("api::watch -> store   (api::watch->store)"));
        // Without the back edge there is none.
        g.edges.get_mut(&path("store")).unwrap().clear();
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn edges_between_prefixes() {
        let mut g = Graph::default();
        g.edges
            .entry(path("api::rest"))
            .or_default()
            .insert(path("controllers::pods"), "p".into());
        g.edges
            .entry(path("api::rest"))
            .or_default()
            .insert(path("store"), "s".into());
        g.edges
            .entry(path("apis"))
            .or_default()
            .insert(path("controllers"), "x".into());
        assert_eq!(
            edges_between(&g, &["api"], &["controllers"]),
            ["api::rest -> controllers::pods (p)"]
        );
        assert!(edges_between(&g, &["store"], &["api"]).is_empty());
    }

    #[test]
    fn the_module_tree_is_read_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let w = |p: &str, s: &str| {
            let f = dir.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, s).unwrap();
        };
        w(
            "lib.rs",
            "pub mod a; pub mod b; mod inline { pub mod c; } use b as bee;",
        );
        w("a.rs", "pub mod deep; pub fn f() { crate::b::g(); }");
        w("b/mod.rs", "pub fn g() { crate::inline::c::k(); }");
        w("inline/c.rs", "pub fn k() { crate::a::deep::h(); }");
        // `super::super::bee` goes through the name the root imports.
        w(
            "a/deep.rs",
            "pub fn h() { super::f(); } fn j() { super::super::bee::g(); }",
        );
        w("unlisted.rs", "fn x() { crate::a::f(); }");
        let found = cycles(dir.path(), "lib.rs");
        assert_eq!(found, [["a", "b", "inline::c", "a::deep", "a"]]);
        let text = explain_cycles(dir.path(), "lib.rs");
        assert!(
            text.contains("b -> inline::c   (crate::inline::c::k)"),
            "{text}"
        );
        let graph = read_crate(dir.path(), "lib.rs");
        let deep = &graph.edges[&path("a::deep")];
        assert_eq!(deep.keys().map(|m| name(m)).collect::<Vec<_>>(), ["a", "b"]);
    }
}
