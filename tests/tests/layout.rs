//! The daemon's layout, read from its source: dependencies point one way (no import
//! circle among `firmware/src` files, read from their `use crate::…` and `use super::…`
//! lines and the `crate::…` paths in code), no module under `firmware/src/devices/`
//! reads `crate::config`, the biggest file there stays within 600 lines, and no
//! function in the daemon is over 100 lines unless a comment says why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware/src")
}

/// Every `.rs` file under `dir`, as (module path, path relative to `firmware/src`).
fn files(dir: &Path, out: &mut Vec<(Vec<String>, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("source folder")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(src())
                .expect("under src")
                .to_string_lossy()
                .into_owned();
            let mut module: Vec<String> = rel
                .trim_end_matches(".rs")
                .split('/')
                .map(String::from)
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                module.pop();
            }
            out.push((module, rel));
        }
    }
}

/// The code of a file without comments, string contents, and (for `production`) its
/// `#[cfg(test)] mod tests` tail.
fn code(text: &str, production: bool) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) if production => &text[..i],
        _ => text,
    };
    strip(text)
}

/// The text without comments, string contents and character literals; lines kept.
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let (mut out, mut in_str, mut in_comment, mut i) = (String::new(), false, false, 0);
    while i < c.len() {
        if c[i] == '\n' {
            in_comment = false;
            out.push('\n');
        } else if in_comment {
        } else if in_str {
            match c[i] {
                '\\' => {
                    i += 1;
                    // A line continuation keeps its line.
                    if c.get(i) == Some(&'\n') {
                        out.push('\n');
                    }
                }
                '"' => in_str = false,
                _ => {}
            }
        } else if c[i] == '"' {
            in_str = true;
        } else if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            in_comment = true;
        } else if c[i] == '\'' && c.get(i + 1) == Some(&'\\') {
            // '\n', '\'' …: skip to the closing quote.
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            i += 2;
        } else {
            out.push(c[i]);
        }
        i += 1;
    }
    out
}

/// Paths named in `code`: every `crate::a::b` and `super::a` (with `use` braces
/// expanded), as absolute module paths from `module` (the file's own module).
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `use` statements, braces expanded.
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        let stmt: String = rest[..end].split_whitespace().collect();
        if stmt.starts_with("crate::") || stmt.starts_with("super::") {
            for p in expand(&stmt) {
                out.push(p);
            }
        }
    }
    // Paths in code.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            if code[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.split("::").map(String::from).collect());
        }
    }
    out.into_iter()
        .filter_map(|p| absolute(&p, module))
        .collect()
}

/// `a::{b, c::{d}}` → `a::b`, `a::c::d`.
fn expand(stmt: &str) -> Vec<Vec<String>> {
    let Some(open) = stmt.find('{') else {
        return vec![stmt.split("::").map(String::from).collect()];
    };
    let prefix = &stmt[..open];
    let inner = &stmt[open + 1..stmt.rfind('}').unwrap_or(stmt.len())];
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(&format!("{prefix}{p}")))
        .collect()
}

fn absolute(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("super") => {}
        _ => return None,
    }
    while rest.first().map(String::as_str) == Some("super") {
        base.pop()?;
        rest = &rest[1..];
    }
    base.extend(rest.iter().filter(|s| !s.is_empty()).cloned());
    Some(base)
}

struct Tree {
    /// Module path → file.
    modules: BTreeMap<Vec<String>, String>,
    /// File → its text.
    text: BTreeMap<String, String>,
}

impl Tree {
    fn read() -> Tree {
        let mut list = Vec::new();
        files(&src(), &mut list);
        let mut modules = BTreeMap::new();
        let mut text = BTreeMap::new();
        for (m, rel) in list {
            text.insert(
                rel.clone(),
                std::fs::read_to_string(src().join(&rel)).expect("source file"),
            );
            modules.insert(m, rel);
        }
        Tree { modules, text }
    }

    /// The file that holds `path` (its longest module prefix).
    fn file_of(&self, path: &[String]) -> Option<&String> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.modules.get(&path[..n]))
    }

    fn module_of(&self, file: &str) -> Vec<String> {
        self.modules
            .iter()
            .find(|(_, f)| *f == file)
            .map(|(m, _)| m.clone())
            .unwrap_or_default()
    }

    /// File → the files it depends on (a child module's parent is not a dependency
    /// of the declaration `mod child;`, which is not a path).
    fn edges(&self, production: bool) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (file, text) in &self.text {
            if production && file == "testing.rs" {
                continue;
            }
            let module = self.module_of(file);
            for p in named_paths(&code(text, production), &module) {
                if let Some(to) = self.file_of(&p)
                    && to != file
                {
                    out.entry(file.clone()).or_default().insert(to.clone());
                }
            }
        }
        out
    }
}

/// The import circles: strongly connected groups of more than one file.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(f) = todo.pop() {
            for t in edges.get(&f).into_iter().flatten() {
                if seen.insert(t.clone()) {
                    todo.push(t.clone());
                }
            }
        }
        seen
    };
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for a in edges.keys() {
        let from_a = reach(a);
        let mut group: Vec<String> = from_a
            .iter()
            .filter(|b| *b != a && reach(b).contains(a))
            .cloned()
            .collect();
        if !group.is_empty() {
            group.push(a.clone());
            group.sort();
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

#[test]
fn no_import_circle_among_the_daemons_files() {
    let tree = Tree::read();
    assert!(tree.text.len() > 40, "read the daemon's sources");
    let edges = tree.edges(true);
    assert!(
        edges["server.rs"].contains("core.rs"),
        "the reader sees `use crate::core::…`: {:?}",
        edges["server.rs"]
    );
    let found = circles(&edges);
    assert!(found.is_empty(), "import circles: {found:#?}");
    // The store knows no devices and no MQTT; the core knows no MQTT and no devices.
    for (file, bad) in [
        ("store/", ["devices/", "uplink/"]),
        ("core.rs", ["devices/", "uplink/"]),
    ] {
        for (from, to) in &edges {
            if from.starts_with(file) {
                for t in to {
                    assert!(
                        !bad.iter().any(|b| t.starts_with(b)),
                        "{from} depends on {t}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_circle_check_finds_a_circle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges
        .entry("a.rs".into())
        .or_default()
        .insert("b.rs".into());
    edges
        .entry("b.rs".into())
        .or_default()
        .insert("c.rs".into());
    edges
        .entry("c.rs".into())
        .or_default()
        .insert("a.rs".into());
    edges
        .entry("d.rs".into())
        .or_default()
        .insert("a.rs".into());
    assert_eq!(circles(&edges), vec![vec!["a.rs", "b.rs", "c.rs"]]);
    let paths = named_paths(
        "use crate::core::{HallCore, wall_now};\nuse super::link::{self, Placement};\nlet x = crate::store::Store::open();",
        &["devices".into(), "window".into(), "modbus".into()],
    );
    assert!(paths.contains(&vec!["core".into(), "HallCore".into()]));
    assert!(paths.contains(&vec![
        "devices".into(),
        "window".into(),
        "link".into(),
        "Placement".into()
    ]));
    assert!(paths.contains(&vec!["store".into(), "Store".into(), "open".into()]));
}

#[test]
fn no_device_module_reads_the_whole_configuration() {
    let tree = Tree::read();
    let edges = tree.edges(false);
    let devices: Vec<_> = tree
        .text
        .keys()
        .filter(|f| f.starts_with("devices/"))
        .collect();
    assert!(devices.len() >= 10, "{devices:?}");
    for f in devices {
        let to = edges.get(f).cloned().unwrap_or_default();
        assert!(
            !to.contains("config.rs"),
            "{f} imports crate::config; give it its own section"
        );
    }
}

#[test]
fn device_files_stay_small_and_long_functions_say_why() {
    let tree = Tree::read();
    let (biggest, lines) = tree
        .text
        .iter()
        .filter(|(f, _)| f.starts_with("devices/"))
        .map(|(f, t)| (f.clone(), t.lines().count()))
        .max_by_key(|(_, n)| *n)
        .expect("device files");
    assert!(lines <= 600, "{biggest} has {lines} lines");
    let mut long = Vec::new();
    for (file, text) in &tree.text {
        if file.ends_with("tests.rs") || file == "testing.rs" {
            continue;
        }
        let body = code(text, true);
        let src: Vec<&str> = text.lines().collect();
        let lines: Vec<&str> = body.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let t = lines[i].trim_start();
            let t = t
                .strip_prefix("pub(crate) ")
                .or_else(|| t.strip_prefix("pub(super) "))
                .or_else(|| t.strip_prefix("pub "))
                .unwrap_or(t);
            let t = t.strip_prefix("async ").unwrap_or(t);
            if !t.starts_with("fn ") {
                i += 1;
                continue;
            }
            let (mut depth, mut started, mut j) = (0i32, false, i);
            while j < lines.len() {
                depth += lines[j].matches('{').count() as i32;
                depth -= lines[j].matches('}').count() as i32;
                started |= lines[j].contains('{');
                if (started && depth <= 0) || (!started && lines[j].trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            let n = j - i + 1;
            let said = src[i.saturating_sub(4)..i]
                .iter()
                .any(|l| l.contains("Over 100 lines:"));
            if n > 100 && !said {
                long.push(format!("{file}:{} ({n} lines)", i + 1));
            }
            i = j + 1;
        }
    }
    assert!(
        long.is_empty(),
        "functions over 100 lines without a comment saying why: {long:?}"
    );
}
