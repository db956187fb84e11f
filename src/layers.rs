//! The crate's module graph flows one way (tests): [`LAYERS`] lists the layers bottom first,
//! and a module imports only from its own layer and the ones below it, with no cycle between
//! modules. `.ci/run` runs these tests first; ARCHITECTURE.md tells what each layer does.
//!
//! Read from the source text: each `crate::`, `super::` and `self::` path and each path
//! through a child module (`mod x;` … `x::y`) is an edge from the file it is in to the module
//! it names (the longest one that exists). Test code (`tests` modules and files) is left out:
//! tests may reach across. A module and its own submodules are one unit (a parent declares
//! and re-exports its children, children use their parent's types): edges between them do
//! not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom first: what each one is, and its modules (a module path names the
/// module and its submodules, unless a longer path is listed; "" is the crate root).
const LAYERS: &[(&str, &[&str])] = &[
    (
        "what the operator configures, its TLS material; the states of a pipe",
        &["config", "tls", "lifecycle"],
    ),
    ("character sets and their conversion to UTF-8", &["charset"]),
    ("source table definitions and target plans", &["schema"]),
    (
        "values as RowBinary; ClickHouse's formats",
        &["decode", "clickhouse"],
    ),
    ("errors and metrics", &["error", "metrics"]),
    ("the source server", &["source"]),
    ("DDL: parsed, and planned for the target", &["ddl"]),
    ("batches of row changes", &["batch"]),
    ("the binlog: read and decoded", &["binlog"]),
    ("the ClickHouse writer", &["target"]),
    ("the state store", &["state"]),
    ("the snapshot loader", &["snapshot"]),
    ("pipe orchestration", &["pipe"]),
    ("the HTTP API", &["api"]),
    ("the command line", &["cli", ""]),
];

/// One source file: its module path and its text without comments and test code.
struct Module {
    path: String,
    text: String,
    /// Its child modules (`mod x;` or `mod x {`).
    children: Vec<String>,
}

fn modules(src: &Path) -> Vec<Module> {
    let mut files = Vec::new();
    collect(src, &mut files);
    let mut test_only = BTreeSet::new();
    let mut modules = Vec::new();
    for file in files {
        let Ok(relative) = file.strip_prefix(src) else {
            continue;
        };
        let mut parts: Vec<String> = relative
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "main")) {
            parts.pop();
        }
        let Ok(raw) = std::fs::read_to_string(&file) else {
            continue;
        };
        let path = parts.join("::");
        for child in test_children(&raw) {
            test_only.insert(if path.is_empty() {
                child
            } else {
                format!("{path}::{child}")
            });
        }
        let text = code(&raw);
        let children = children(&text);
        modules.push(Module {
            path,
            text,
            children,
        });
    }
    modules.retain(|m| {
        !test_only
            .iter()
            .any(|t| m.path == *t || m.path.starts_with(&format!("{t}::")))
    });
    modules
}

/// The child modules `raw` declares for tests only (`#[cfg(test)] mod x;`).
fn test_children(raw: &str) -> Vec<String> {
    let lines: Vec<&str> = raw.lines().map(str::trim_start).collect();
    lines
        .windows(2)
        .filter(|w| w[0].starts_with("#[cfg(test)]"))
        .flat_map(|w| children(w[1]))
        .chain(std::iter::once("tests".to_owned()))
        .collect()
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `raw` without comments and without its test-only items (`#[cfg(test)]` and the item after
/// it, to its closing brace).
fn code(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    // Inside a test-only item: `Some(depth)` of its braces once opened.
    let mut skipping: Option<Option<i32>> = None;
    for line in raw.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        if line.trim_start().starts_with("#[cfg(test)]") {
            skipping = Some(None);
            continue;
        }
        if let Some(depth) = skipping {
            let opened = line.matches('{').count() as i32;
            let closed = line.matches('}').count() as i32;
            let depth = depth.unwrap_or(0) + opened - closed;
            let started = depth > 0 || opened > 0;
            let ended = (started && depth <= 0) || (!started && line.trim_end().ends_with(';'));
            skipping = if ended {
                None
            } else {
                Some(started.then_some(depth))
            };
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn children(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub(super) "))
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            let rest = line.strip_prefix("mod ")?;
            let name: String = rest.chars().take_while(|c| is_ident(*c)).collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths `text` names from `start` on: `a::b::{c, d::e}` gives `a::b::c`, `a::b::d::e`.
fn paths_at(text: &str, start: usize) -> Vec<String> {
    let rest = &text[start..];
    let mut path = String::new();
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_ident(c) {
            path.push(c);
        } else if rest[i..].starts_with("::") {
            chars.next();
            if rest[i + 2..].starts_with('{') {
                let group = &rest[i + 3..];
                let mut depth = 1;
                let end = group
                    .char_indices()
                    .find(|(_, c)| {
                        depth += match c {
                            '{' => 1,
                            '}' => -1,
                            _ => 0,
                        };
                        depth == 0
                    })
                    .map_or(group.len(), |(j, _)| j);
                return split_group(&group[..end])
                    .into_iter()
                    .map(|item| match item.as_str() {
                        "self" => path.clone(),
                        _ => format!("{path}::{item}"),
                    })
                    .collect();
            }
            path.push_str("::");
        } else {
            break;
        }
    }
    vec![path.trim_end_matches("::").to_owned()]
}

/// The items of a `use` group, nested groups expanded.
fn split_group(group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut from) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[from..]);
    items
        .into_iter()
        .map(|item| item.split(" as ").next().unwrap_or("").trim())
        .filter(|item| !item.is_empty() && *item != "*")
        .flat_map(|item| paths_at(item, 0))
        .collect()
}

/// The module a path from `module` names, if it names one of `known`.
fn resolve(module: &Module, path: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut parts: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if module.path.is_empty() {
        Vec::new()
    } else {
        module.path.split("::").collect()
    };
    match parts.first().copied() {
        Some("crate") => {
            parts.remove(0);
            base.clear();
        }
        Some("self") => {
            parts.remove(0);
        }
        Some("super") => {
            while parts.first() == Some(&"super") {
                parts.remove(0);
                base.pop();
            }
        }
        _ => {}
    }
    let full: Vec<&str> = base.into_iter().chain(parts).collect();
    (1..=full.len())
        .rev()
        .map(|n| full[..n].join("::"))
        .find(|m| known.contains(m))
}

/// Where paths that start with `prefix` (a whole name, not the end of one) begin in `text`.
fn starts<'t>(text: &'t str, prefix: &'t str) -> impl Iterator<Item = usize> + 't {
    text.match_indices(prefix)
        .map(|(i, _)| i)
        .filter(move |&i| {
            let before = text[..i].chars().next_back();
            !before.is_some_and(|c| is_ident(c) || c == ':' || c == '$')
        })
}

/// Every edge `from → to` between modules, but for those between a module and its own
/// ancestors.
fn edges(modules: &[Module]) -> BTreeSet<(String, String)> {
    let known: BTreeSet<String> = modules.iter().map(|m| m.path.clone()).collect();
    let mut edges = BTreeSet::new();
    for module in modules {
        let text = &module.text;
        let mut paths = Vec::new();
        for prefix in ["crate::", "super::", "self::"] {
            paths.extend(starts(text, prefix).flat_map(|i| paths_at(text, i)));
        }
        for child in &module.children {
            let prefix = format!("{child}::");
            let found = starts(text, &prefix).flat_map(|i| paths_at(text, i));
            paths.extend(
                found
                    .map(|path| format!("self::{path}"))
                    .collect::<Vec<_>>(),
            );
        }
        let within = |a: &str, b: &str| a.is_empty() || b.starts_with(&format!("{a}::"));
        for path in paths {
            let Some(to) = resolve(module, &path, &known) else {
                continue;
            };
            if to != module.path && !within(&to, &module.path) && !within(&module.path, &to) {
                edges.insert((module.path.clone(), to));
            }
        }
    }
    edges
}

/// The layer of `module`: that of the longest path of [`LAYERS`] it is in.
fn layer(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, paths))| paths.iter().map(move |p| (i, *p)))
        .filter(|(_, p)| module == *p || (!p.is_empty() && module.starts_with(&format!("{p}::"))))
        .max_by_key(|(_, p)| p.len())
        .map(|(i, _)| i)
}

/// The cycles of `edges`: each strongly connected set of more than one module.
fn cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            for &n in next.get(m).into_iter().flatten() {
                if n == to {
                    return true;
                }
                if seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        false
    };
    let nodes: BTreeSet<&str> = next.keys().copied().collect();
    let mut found: Vec<Vec<String>> = Vec::new();
    for &a in &nodes {
        if found.iter().any(|c| c.iter().any(|m| m == a)) || !reaches(a, a) {
            continue;
        }
        let cycle = nodes
            .iter()
            .filter(|&&b| b == a || (reaches(a, b) && reaches(b, a)))
            .map(|b| (*b).to_owned())
            .collect();
        found.push(cycle);
    }
    found
}

fn crate_modules() -> Vec<Module> {
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn every_module_is_in_a_layer() {
    let missing: Vec<String> = crate_modules()
        .into_iter()
        .map(|m| m.path)
        .filter(|m| layer(m).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "not in LAYERS (src/layers.rs): {missing:?}"
    );
}

#[test]
fn no_module_imports_one_above_it() {
    let upward: Vec<String> = edges(&crate_modules())
        .into_iter()
        .filter(|(from, to)| layer(to) > layer(from))
        .map(|(from, to)| format!("{from} → {to}"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports from a higher layer (see LAYERS in src/layers.rs): {upward:#?}"
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let cycles = cycles(&edges(&crate_modules()));
    assert!(
        cycles.is_empty(),
        "modules that import each other: {cycles:?}"
    );
}

#[test]
fn the_reader_finds_imports_and_cycles() {
    let module = |path: &str, text: &str| Module {
        path: path.into(),
        text: code(text),
        children: children(&code(text)),
    };
    let graph = [
        module(
            "a",
            "use crate::b::{self, c::{D, e}};\nmod x;\nfn f() { x::g(); }",
        ),
        module("a::x", "use super::super::b::c;"),
        module("b", "use crate::a::Thing; // crate::z in a comment\n"),
        module("b::c", "#[cfg(test)]\nmod tests {\n use crate::a::x;\n}"),
    ];
    let found = edges(&graph);
    let expected: BTreeSet<(String, String)> =
        [("a", "b"), ("a", "b::c"), ("a::x", "b::c"), ("b", "a")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
    assert_eq!(found, expected);
    assert_eq!(cycles(&found), vec![vec!["a".to_owned(), "b".to_owned()]]);
    assert_eq!(layer("clickhouse::sql"), layer("decode"));
    assert!(layer("target") > layer("binlog"));
    assert_eq!(layer("pipe::cdc"), layer("pipe"));
    assert_eq!(layer(""), layer("cli"));
}
