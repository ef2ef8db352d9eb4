//! The direction of dependencies between paperboy's top-level modules, read from the
//! source: every `crate::…` path in `src/**/*.rs` (in `use` lines and inline) must point
//! to a lower layer. Layers, bottom first:
//!
//! config, error · domain, telemetry · store · matching, metrics, email · feeds, digest ·
//! delivery · scheduler, demo · web · app · cli
//!
//! A module imports only from layers below its own, never from a module beside it, so
//! composition never reaches into the transport, and the store never into matching.
//! Inside `web`, a route module uses only the shared modules (`mod.rs`, `pages`, `forms`,
//! `guard`, `recent`), never another route's helpers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const LAYERS: &[&[&str]] = &[
    &["config", "error"],
    &["domain", "telemetry"],
    &["store"],
    &["matching", "metrics", "email"],
    &["feeds", "digest"],
    &["delivery"],
    &["scheduler", "demo"],
    &["web"],
    &["app"],
    &["cli"],
];

/// Web modules every route may use.
const WEB_SHARED: &[&str] = &["pages", "forms", "guard", "recent"];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments and doc comments), so prose that names a
/// module is not taken for a dependency.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is kept: only a comment that starts a line, or
            // follows code after a space, is dropped.
            Some(at) if line[..at].trim().is_empty() || line[..at].ends_with(' ') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::`, including every
/// member of a `use crate::{a, b::c}` group.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: those at brace depth 0 that start an item.
            let mut depth = 0;
            let mut word = String::new();
            let mut expect_name = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        if !word.is_empty() {
                            found.insert(std::mem::take(&mut word));
                        }
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => expect_name = true,
                    c if c.is_alphanumeric() || c == '_' => {
                        if expect_name && depth == 0 {
                            word.push(c);
                        }
                        continue;
                    }
                    _ => {}
                }
                if !word.is_empty() {
                    found.insert(std::mem::take(&mut word));
                    expect_name = false;
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

fn src_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level module a file belongs to, and its path inside that module.
fn module_of(src: &Path, file: &Path) -> (String, Vec<String>) {
    let rel = file.strip_prefix(src).expect("under src");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    (parts[0].clone(), parts[1..].to_vec())
}

#[test]
fn layers_import_only_from_the_layers_below() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        let (module, _) = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer(&module) else {
            wrong.push(format!(
                "{}: module `{module}` has no layer in this test",
                file.display()
            ));
            continue;
        };
        seen.insert(module.clone());
        let code = code_of(&std::fs::read_to_string(file).expect("read"));
        for used in named_modules(&code) {
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                Some(_) => wrong.push(format!(
                    "{}: `{module}` imports `{used}`, which is not below it",
                    file.strip_prefix(&src).unwrap_or(file).display()
                )),
                None => wrong.push(format!(
                    "{}: `{module}` names `crate::{used}`, which is not a known module",
                    file.strip_prefix(&src).unwrap_or(file).display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
    // Every layer named here exists, so the table cannot drift from the code unnoticed.
    for module in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(seen.contains(*module), "no source for module `{module}`");
    }
}

#[test]
fn web_routes_share_helpers_only_through_the_shared_modules() {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src.join("web"), &mut files);
    let routes: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(&src, f).1.join("/"))
        .filter(|m| m != "mod" && !WEB_SHARED.contains(&m.as_str()))
        .collect();
    let mut wrong = Vec::new();
    for file in &files {
        let (_, inner) = module_of(&src, file);
        let me = inner.join("/");
        if !routes.contains(&me) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).expect("read"));
        for other in &routes {
            if other != &me
                && (code.contains(&format!("super::{other}::"))
                    || code.contains(&format!("web::{other}::")))
            {
                wrong.push(format!("web/{me}.rs uses web/{other}.rs"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_source_scan_finds_groups_and_inline_paths() {
    let code = "use crate::{domain::{A, B}, store::Store};\nlet x = crate::metrics::global();\n// crate::web in a comment";
    let found = named_modules(&code_of(code));
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["domain", "metrics", "store"]
    );
    assert!(named_modules("$crate::store::Store::Sqlite").contains("store"));
}
