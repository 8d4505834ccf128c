//! The dependency rule, checked on the source: every `crate::` path in `src/` (and `super::`
//! chains resolved to the module they name, and `upgate::` paths in `main.rs`) may point only
//! down the layers, and front ends never import each other.
//!
//! ```text
//! L0 values      clock config error http id mime net
//! L1 mechanisms  auth cors events ingest metadata metrics ratelimit scan storage telemetry
//! L2 state       state
//! L3 upload      upload accounts
//! L4 front ends  api s3 tus web    (never each other)
//! L5 server      client edge health server sweeper tls
//! L6 root        app main          (only main imports app)
//! ```
//!
//! `LAYERS_SRC=/path/to/src cargo test --test it layers -- --nocapture` counts another tree
//! (for before/after figures); the assertions apply to this crate's own `src/` only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The layer of each top-level module. `router` and `quota` are the names those pieces had
/// before the upload domain existed; they are classified only so older trees can be counted.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "clock" | "config" | "error" | "http" | "id" | "mime" | "net" => 0,
        "auth" | "cors" | "events" | "ingest" | "metadata" | "metrics" | "ratelimit" | "scan"
        | "storage" | "telemetry" => 1,
        "state" => 2,
        "upload" | "accounts" | "quota" => 3,
        "api" | "s3" | "tus" | "web" | "router" => 4,
        "client" | "edge" | "health" | "server" | "sweeper" | "tls" => 5,
        "app" | "main" => 6,
        _ => return None,
    })
}

/// One source file: its module path (`["s3", "object"]`; `[]` for lib.rs, `["main"]` for
/// main.rs) and its text.
struct SourceFile {
    module: Vec<String>,
    path: String,
    text: String,
}

fn read_tree(root: &Path) -> Vec<SourceFile> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("read src dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root).expect("under root");
                let mut module: Vec<String> = rel
                    .with_extension("")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                    module.pop();
                }
                let text = std::fs::read_to_string(&p).expect("read source");
                out.push(SourceFile {
                    module,
                    path: rel.display().to_string(),
                    text,
                });
            }
        }
    }
    out
}

/// The code of a file without comments (line comments, doc comments, block comments) and
/// without the contents of string literals, so prose and messages never count as imports.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'r' && b.get(i + 1) == Some(&b'#') && b.get(i + 2) == Some(&b'"') {
            // A raw string: up to the closing `"#`.
            i += 3;
            while i + 1 < b.len() && !(b[i] == b'"' && b[i + 1] == b'#') {
                i += 1;
            }
            i += 2;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            // An escaped char literal like '\'' or '\"'.
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal like '"' or '{'.
            i += 3;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Expands the path starting at `s[i..]` (right after a `crate::`-like root) into every full
/// path it names: `a::b::{c, d::{e}}` gives `a::b::c` and `a::b::d::e`.
fn expand(s: &[u8], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
        if *i < s.len() && s[*i] == b'{' {
            *i += 1;
            loop {
                while *i < s.len() && (s[*i].is_ascii_whitespace() || s[*i] == b',') {
                    *i += 1;
                }
                if *i >= s.len() || s[*i] == b'}' {
                    *i += 1;
                    return;
                }
                expand(s, i, path.clone(), out);
            }
        }
        let start = *i;
        while *i < s.len() && is_ident(s[*i]) {
            *i += 1;
        }
        if start == *i {
            // `*` or nothing: the path so far.
            if *i < s.len() && s[*i] == b'*' {
                *i += 1;
            }
            out.push(path);
            return;
        }
        let seg = String::from_utf8_lossy(&s[start..*i]).into_owned();
        if seg == "self" {
            out.push(path);
            return;
        }
        path.push(seg);
        if s[*i..].starts_with(b"::") {
            *i += 2;
        } else {
            out.push(path);
            return;
        }
    }
}

/// Every module-qualified path a file names, resolved to an absolute path from the crate
/// root (`super::` chains climbed from the file's own module).
fn paths(file: &SourceFile) -> Vec<Vec<String>> {
    let code = code_only(&file.text);
    let s = code.as_bytes();
    let mut out = Vec::new();
    let roots: &[&str] = if file.module == ["main"] {
        &["crate::", "upgate::"]
    } else {
        &["crate::", "super::"]
    };
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !(is_ident(s[i - 1]) || s[i - 1] == b':');
        let root = roots.iter().find(|r| s[i..].starts_with(r.as_bytes()));
        match root {
            Some(r) if boundary => {
                let mut j = i + r.len();
                let base: Vec<String> = if *r == "super::" {
                    // `super` of a file module is its parent; climb further `super::`s.
                    let mut m = file.module.clone();
                    m.pop();
                    while s[j..].starts_with(b"super::") {
                        m.pop();
                        j += "super::".len();
                    }
                    m
                } else {
                    Vec::new()
                };
                expand(s, &mut j, base, &mut out);
                i = j;
            }
            _ => i += 1,
        }
    }
    out
}

/// What the check found.
#[derive(Debug, Default)]
struct Report {
    files: usize,
    /// `(file, imported path)` pairs that point up or sideways.
    violations: BTreeSet<(String, String)>,
    /// Top-level modules with no layer.
    unclassified: BTreeSet<String>,
    /// Top-level module → modules it imports.
    module_edges: BTreeMap<String, BTreeSet<String>>,
    /// Size of the largest strongly connected set of files (1: no import cycle).
    largest_file_cycle: usize,
}

fn check(files: &[SourceFile]) -> Report {
    let mut report = Report {
        files: files.len(),
        ..Report::default()
    };
    let by_module: HashMap<Vec<String>, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.module.clone(), i))
        .collect();
    let mut file_edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); files.len()];
    for (fi, f) in files.iter().enumerate() {
        let Some(from) = f.module.first() else {
            continue; // lib.rs declares the modules; it imports nothing.
        };
        let from_layer = layer(from);
        if from_layer.is_none() {
            report.unclassified.insert(from.clone());
        }
        for p in paths(f) {
            let Some(to) = p.first() else { continue };
            // The longest prefix of the path that is a file is the module imported.
            if let Some(target) = (1..=p.len()).rev().find_map(|n| by_module.get(&p[..n])) {
                if *target != fi {
                    file_edges[fi].insert(*target);
                }
            } else {
                continue; // A root-level item (a `macro_export` macro): no module.
            }
            if to == from {
                continue;
            }
            report
                .module_edges
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
            let to_layer = layer(to);
            if to_layer.is_none() {
                report.unclassified.insert(to.clone());
            }
            if let (Some(a), Some(b)) = (from_layer, to_layer)
                && (b > a || (a == 4 && b == 4))
            {
                report
                    .violations
                    .insert((f.path.clone(), format!("crate::{}", p.join("::"))));
            }
        }
    }
    report.largest_file_cycle = largest_scc(&file_edges);
    report
}

/// Tarjan's strongly connected components; the size of the largest.
fn largest_scc(edges: &[BTreeSet<usize>]) -> usize {
    struct T<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        best: usize,
    }
    fn visit(t: &mut T<'_>, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in t.edges[v].iter() {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut size = 0;
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                size += 1;
                if w == v {
                    break;
                }
            }
            t.best = t.best.max(size);
        }
    }
    let n = edges.len();
    let mut t = T {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        best: if n == 0 { 0 } else { 1 },
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.best
}

/// Whether the module graph has a cycle (a module importing, through others, itself).
fn module_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn dfs(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|p| p == m) {
            return Some(path[pos..].to_vec());
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for n in edges.get(m).into_iter().flatten() {
            if let Some(c) = dfs(n, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| dfs(m, edges, &mut Vec::new(), &mut done))
}

fn source(module: &str, text: &str) -> SourceFile {
    SourceFile {
        module: module.split('/').map(str::to_string).collect(),
        path: format!("{module}.rs"),
        text: text.to_string(),
    }
}

#[test]
fn imports_point_down_the_layers() {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let root = std::env::var_os("LAYERS_SRC").map_or(own.clone(), PathBuf::from);
    let report = check(&read_tree(&root));
    let edges: usize = report.module_edges.values().map(BTreeSet::len).sum();
    println!(
        "layers: {} files, {} module edges, {} upward or sideways imports, largest file cycle {}",
        report.files,
        edges,
        report.violations.len(),
        report.largest_file_cycle
    );
    for (file, path) in &report.violations {
        println!("  {file}: {path}");
    }
    if root != own {
        return; // Counting another tree: report only.
    }
    assert!(
        report.unclassified.is_empty(),
        "modules without a layer (add them to `layer`): {:?}",
        report.unclassified
    );
    assert!(
        report.violations.is_empty(),
        "imports that point up or sideways: {:#?}",
        report.violations
    );
    assert_eq!(
        module_cycle(&report.module_edges),
        None,
        "top-level modules import each other in a cycle"
    );
    assert!(report.files > 40, "the source tree was not read");
}

#[test]
fn the_checker_finds_forbidden_edges() {
    let files = [
        source("storage/mod", "use crate::error::Error;\n"),
        // Upward: a mechanism importing the composition root.
        source("storage/spool", "use crate::{error::Result, app::App};\n"),
        // Sideways: one front end importing another, through a grouped import.
        source(
            "s3/object",
            "use crate::{api::{files, uploads::Create}, state};\n",
        ),
        // Up through a super chain: storage/a/b.rs -> crate::app.
        source(
            "storage/a/b",
            "fn f() { super::super::super::app::run(); }\n",
        ),
        source("app", "pub fn run() {}\n"),
        source("api/files", "use crate::upload::put;\n"),
        source("api/uploads", ""),
        source(
            "upload/put",
            "use crate::state::AppState; // crate::app in a comment\n",
        ),
        source("state", "const S: &str = \"crate::app::App\";\n"),
        source("error", ""),
    ];
    let report = check(&files);
    let found: Vec<&str> = report.violations.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        found,
        [
            "s3/object.rs",
            "s3/object.rs",
            "storage/a/b.rs",
            "storage/spool.rs"
        ],
        "{:#?}",
        report.violations
    );
    assert!(
        report
            .violations
            .iter()
            .any(|(_, p)| p == "crate::api::uploads::Create")
    );
    assert!(report.unclassified.is_empty());
}

#[test]
fn cycles_are_measured() {
    let files = [
        source("auth/a", "use crate::auth::b::X;\n"),
        source("auth/b", "use crate::auth::c::Y;\n"),
        source("auth/c", "use super::a::Z;\n"),
        source("error", ""),
    ];
    assert_eq!(check(&files).largest_file_cycle, 3);
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(module_cycle(&edges).is_some());
    edges.remove("b");
    assert_eq!(module_cycle(&edges), None);
}
