//! Enforces the one-way rules of ARCHITECTURE.md by reading `src/`: every
//! path a file names (`use` trees, nested groups, `super::super::`, `self::`,
//! `crate::` in code) is resolved to the module file it reaches, giving a
//! graph of file → file imports. The layers may import only what they are
//! allowed to, `engine::run` may not import `engine::runtime`, front ends may
//! not import `engine::ops`, ratatui/crossterm appear only under `src/tui/`,
//! and no two files import each other, directly or around a circle.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module-path prefixes a layer must not import: (layer, forbidden).
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "app",
            "cli",
            "config",
            "vomo",
            "store",
            "dest",
            "engine",
            "tui",
            "headless",
            "sim",
            "telemetry",
            "outbound",
        ],
    ),
    (
        "outbound",
        &[
            "app",
            "cli",
            "config",
            "domain",
            "vomo",
            "store",
            "dest",
            "engine",
            "tui",
            "headless",
            "sim",
            "telemetry",
        ],
    ),
    (
        "excerpt",
        &[
            "app",
            "cli",
            "config",
            "domain",
            "vomo",
            "store",
            "dest",
            "engine",
            "tui",
            "headless",
            "sim",
            "telemetry",
            "outbound",
        ],
    ),
    ("vomo", &["app", "cli", "store", "dest", "engine", "tui", "headless", "sim"]),
    ("store", &["app", "cli", "vomo", "dest", "engine", "tui", "headless", "sim"]),
    ("dest", &["app", "cli", "vomo", "store", "engine", "tui", "headless", "sim"]),
    ("engine", &["app", "cli", "tui", "headless", "sim"]),
    ("engine::run", &["engine::runtime", "engine::ops", "engine::alerts", "engine::health"]),
    ("tui", &["app", "cli", "vomo", "store", "dest", "sim", "engine::ops", "engine::run", "engine::runtime"]),
    (
        "headless",
        &["app", "cli", "vomo", "store", "dest", "sim", "engine::ops", "engine::run", "engine::runtime"],
    ),
    ("sim", &["app", "cli", "vomo", "store", "dest", "engine", "tui", "headless"]),
    ("config", &["app", "cli", "vomo", "store", "dest", "engine", "tui", "headless", "sim"]),
    ("telemetry", &["app", "cli", "vomo", "store", "dest", "engine", "tui", "headless", "sim"]),
    ("cli", &["app", "vomo", "store", "dest", "engine", "tui", "headless", "sim"]),
    // The composition root may ask read-only questions (`engine::ops`) but
    // changes state only through the engine's commands.
    ("app", &["vomo", "engine::run", "engine::runtime"]),
];

/// The crate's module tree: module path (`engine::run::fetch`) → file, and
/// what each module re-exports (`pub use`): name → the path it stands for.
struct Tree {
    files: BTreeMap<String, PathBuf>,
    reexports: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Glob re-exports: module → the modules whose items it re-exports.
    globs: BTreeMap<String, Vec<Vec<String>>>,
}

impl Tree {
    fn read(src: &Path) -> Self {
        let mut files = BTreeMap::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.insert(module_of(src, &path), path);
                }
            }
        }
        let mut tree = Self { files, reexports: BTreeMap::new(), globs: BTreeMap::new() };
        for (module, file) in tree.files.clone() {
            let code = code_of(&std::fs::read_to_string(&file).unwrap());
            let children = tree.children(&module);
            for use_tree in use_trees(&code).into_iter().filter(|(public, _)| *public) {
                for (path, alias) in expand_use_named(&use_tree.1) {
                    let Some(absolute) = absolute(&module, &path, &children) else { continue };
                    if alias == "*" {
                        tree.globs.entry(module.clone()).or_default().push(absolute);
                    } else {
                        tree.reexports.entry(module.clone()).or_default().insert(alias, absolute);
                    }
                }
            }
        }
        tree
    }

    /// The direct child modules of `module`.
    fn children(&self, module: &str) -> BTreeSet<String> {
        self.files
            .keys()
            .filter_map(|m| {
                let rest =
                    if module.is_empty() { Some(m.as_str()) } else { m.strip_prefix(&format!("{module}::")) };
                rest.filter(|r| !r.is_empty() && !r.contains("::")).map(str::to_owned)
            })
            .collect()
    }

    /// Whether `module`'s file defines the item `name` itself.
    fn defines(&self, module: &str, name: &str) -> bool {
        let Some(file) = self.files.get(module) else { return false };
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        ["struct", "enum", "fn", "type", "const", "static", "trait", "mod", "macro_rules!"]
            .iter()
            .any(|kind| code.contains(&format!("{kind} {name}")))
    }

    fn is_module(&self, module: &str) -> bool {
        self.files.contains_key(module)
    }

    /// The module file that defines what a path names: the deepest module
    /// it reaches, followed through re-exports (`pub use`) to the file the
    /// item really lives in.
    fn resolve(&self, segments: &[String]) -> String {
        self.resolve_within(segments, 8)
    }

    /// The deepest module a path names as written (re-exports not followed).
    fn named(&self, segments: &[String]) -> String {
        self.resolve_within(segments, 0)
    }

    fn resolve_within(&self, segments: &[String], depth: u32) -> String {
        let mut reached = String::new();
        for (i, segment) in segments.iter().enumerate() {
            let next = if reached.is_empty() { segment.clone() } else { format!("{reached}::{segment}") };
            if self.is_module(&next) {
                reached = next;
                continue;
            }
            if depth == 0 || self.defines(&reached, segment) {
                return reached;
            }
            // (depth 0 asks for the path as written: no re-export followed)
            if let Some(target) = self.reexports.get(&reached).and_then(|r| r.get(segment)) {
                let mut path = target.clone();
                path.extend(segments[i + 1..].iter().cloned());
                return self.resolve_within(&path, depth - 1);
            }
            for glob in self.globs.get(&reached).into_iter().flatten() {
                let module = self.resolve_within(glob, depth - 1);
                if self.defines(&module, segment) {
                    return module;
                }
            }
            return reached;
        }
        reached
    }
}

/// `src/engine/run/mod.rs` → `engine::run`; `src/lib.rs` → `` (the root).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> =
        relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts.join("::")
}

/// The text of a file without comments, string and character literals.
fn code_of(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || (next == Some('#') && raw_string_at(&chars, i))) {
            i += 1;
            let mut hashes = 0;
            while chars.get(i) == Some(&'#') {
                hashes += 1;
                i += 1;
            }
            i += 1; // the opening quote
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn raw_string_at(chars: &[char], at: usize) -> bool {
    let mut i = at + 1;
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"') && (at == 0 || !chars[at - 1].is_alphanumeric())
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every path a `use` tree names, its groups expanded: `a::{b, c::{d, e}}`
/// gives `a::b`, `a::c::d`, `a::c::e` (`self` in a group is the group's
/// prefix; `as` renames are dropped).
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    expand_use_named(tree).into_iter().map(|(path, _)| path).collect()
}

/// [`expand_use`] with the name each path is imported under (its last
/// segment, its `as` alias, or `*` for a glob).
fn expand_use_named(tree: &str) -> Vec<(Vec<String>, String)> {
    fn expand(tree: &str, prefix: &[String], out: &mut Vec<(Vec<String>, String)>) {
        let tree = tree.trim();
        if tree.is_empty() {
            return;
        }
        if let Some(open) = tree.find('{') {
            let head: Vec<String> = split_path(&tree[..open]);
            let mut base = prefix.to_vec();
            base.extend(head);
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            for part in split_top_level(inner) {
                expand(&part, &base, out);
            }
            return;
        }
        let mut halves = tree.split(" as ");
        let path = halves.next().unwrap_or(tree);
        let mut full = prefix.to_vec();
        for segment in split_path(path) {
            if segment != "self" || full.is_empty() {
                full.push(segment);
            }
        }
        let mut name = full.last().cloned().unwrap_or_default();
        if name == "*" {
            full.pop();
        }
        if let Some(alias) = halves.next() {
            name = alias.trim().to_owned();
        }
        out.push((full, name));
    }
    let mut out = Vec::new();
    expand(tree, &[], &mut out);
    out
}

fn split_path(text: &str) -> Vec<String> {
    text.split("::").map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// Splits on commas that are not inside braces.
fn split_top_level(text: &str) -> Vec<String> {
    let (mut parts, mut depth, mut current) = (Vec::new(), 0, String::new());
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// The `use` trees of a file's code (`use …;`, `pub use …;`, `pub(crate)
/// use …;`), each with whether it re-exports (is `pub` in any form).
fn use_trees(code: &str) -> Vec<(bool, String)> {
    let mut trees = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i + 4 <= chars.len() {
        let at_word = (i == 0 || !is_ident(chars[i - 1])) && chars[i..].starts_with(&['u', 's', 'e', ' ']);
        if at_word {
            let before: String = chars[i.saturating_sub(16)..i].iter().collect();
            let public = before.trim_end().ends_with("pub")
                || before.trim_end().ends_with(')') && before.contains("pub(");
            let rest: String = chars[i + 4..].iter().collect();
            let end = rest.find(';').unwrap_or(rest.len());
            trees.push((public, rest[..end].to_owned()));
            i += 4 + end;
        } else {
            i += 1;
        }
    }
    trees
}

/// Paths written in code (not in `use`): `crate::a::b`, `super::super::x`, `self::y`.
fn code_paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) && is_ident(chars[i]) {
            let start = i;
            let mut j = i;
            let mut text = String::new();
            loop {
                while j < chars.len() && is_ident(chars[j]) {
                    text.push(chars[j]);
                    j += 1;
                }
                if chars.get(j) == Some(&':')
                    && chars.get(j + 1) == Some(&':')
                    && chars.get(j + 2).is_some_and(|c| is_ident(*c))
                {
                    text.push_str("::");
                    j += 2;
                } else {
                    break;
                }
            }
            let segments = split_path(&text);
            if segments.first().is_some_and(|s| s == "crate" || s == "super" || s == "self")
                && segments.len() > 1
            {
                paths.push(segments);
            }
            i = j.max(start + 1);
        } else {
            i += 1;
        }
    }
    paths
}

/// The file graph: module → the modules defining what it imports (for
/// circles), and module → the modules it names as written (for layers: a
/// front end may name `engine::EngineHandle`, re-exported by the engine's
/// facade, but not `engine::runtime::handle::EngineHandle`).
struct Graph {
    tree: Tree,
    edges: BTreeMap<String, BTreeSet<String>>,
    named: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn read(src: &Path) -> Self {
        let tree = Tree::read(src);
        let (mut edges, mut named_edges) = (BTreeMap::new(), BTreeMap::new());
        for (module, file) in &tree.files {
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            let children = tree.children(module);
            let mut named = Vec::new();
            for (_, tree_text) in use_trees(&code) {
                named.extend(expand_use(&tree_text));
            }
            named.extend(code_paths(&code));
            let (mut targets, mut as_written) = (BTreeSet::new(), BTreeSet::new());
            for path in named {
                let Some(absolute) = absolute(module, &path, &children) else { continue };
                let written = tree.named(&absolute);
                if written != *module && !written.is_empty() {
                    as_written.insert(written);
                }
                let target = tree.resolve(&absolute);
                // A module may use what its ancestors define: a parent is
                // the facade its children share. Re-exports were followed,
                // so an item reached through a parent lives there.
                let ancestor = module.starts_with(&format!("{target}::")) || target.is_empty();
                if target != *module && !ancestor {
                    targets.insert(target);
                }
            }
            edges.insert(module.clone(), targets);
            named_edges.insert(module.clone(), as_written);
        }
        Self { tree, edges, named: named_edges }
    }

    /// Import circles (strongly connected components of two files or more).
    fn cycles(&self) -> Vec<Vec<String>> {
        let nodes: Vec<&String> = self.edges.keys().collect();
        let mut tarjan = Tarjan {
            index_of: nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect(),
            index: vec![usize::MAX; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            counter: 0,
            components: Vec::new(),
        };
        for v in 0..nodes.len() {
            if tarjan.index[v] == usize::MAX {
                tarjan.visit(v, self, &nodes);
            }
        }
        tarjan.components
    }
}

/// Tarjan's strongly connected components over the file graph.
struct Tarjan<'a> {
    index_of: BTreeMap<&'a String, usize>,
    index: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    counter: usize,
    components: Vec<Vec<String>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, v: usize, graph: &'a Graph, nodes: &[&'a String]) {
        self.index[v] = self.counter;
        self.low[v] = self.counter;
        self.counter += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for target in &graph.edges[nodes[v]] {
            let Some(&w) = self.index_of.get(target) else { continue };
            if self.index[w] == usize::MAX {
                self.visit(w, graph, nodes);
                self.low[v] = self.low[v].min(self.low[w]);
            } else if self.on_stack[w] {
                self.low[v] = self.low[v].min(self.index[w]);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(nodes[w].clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                self.components.push(component);
            }
        }
    }
}

/// A path as written in `module` made absolute (from the crate root), or
/// `None` for paths into other crates.
fn absolute(module: &str, path: &[String], children: &BTreeSet<String>) -> Option<Vec<String>> {
    let mut base: Vec<String> = if module.is_empty() { Vec::new() } else { split_path(module) };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some(first) if children.contains(first) => {}
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// Whether `module` is `prefix` or inside it.
fn within(module: &str, prefix: &str) -> bool {
    module == prefix || module.starts_with(&format!("{prefix}::"))
}

#[test]
fn layers_only_import_what_they_may() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = Graph::read(&src);
    let mut violations = Vec::new();
    for (module, targets) in &graph.named {
        for (layer, forbidden) in FORBIDDEN.iter().filter(|(layer, _)| within(module, layer)) {
            for target in targets.iter().filter(|t| forbidden.iter().any(|f| within(t, f))) {
                violations.push(format!("{module} ({layer}) imports {target}"));
            }
        }
        let text = std::fs::read_to_string(&graph.tree.files[module]).unwrap();
        if (text.contains("ratatui") || text.contains("crossterm")) && !within(module, "tui") {
            violations.push(format!("{module} mentions ratatui/crossterm outside src/tui/"));
        }
    }
    assert!(violations.is_empty(), "one-way rules broken:\n{}", violations.join("\n"));
    assert!(graph.edges.len() > 40, "the scan found the sources");
}

#[test]
fn no_two_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let cycles = Graph::read(&src).cycles();
    let shown: Vec<String> = cycles.iter().map(|c| c.join(" ⇄ ")).collect();
    assert!(cycles.is_empty(), "import circles between files:\n{}", shown.join("\n"));
}

#[test]
fn the_scanner_reads_use_trees_and_paths_in_code() {
    let mut named = expand_use("crate::{engine::{ops::Ops, Command}, store::Store}");
    named.sort();
    let as_text: Vec<String> = named.iter().map(|p| p.join("::")).collect();
    assert_eq!(as_text, ["crate::engine::Command", "crate::engine::ops::Ops", "crate::store::Store"]);
    let grouped = expand_use("super::{self, x::{self as y, z}}");
    let as_text: Vec<String> = grouped.iter().map(|p| p.join("::")).collect();
    assert_eq!(as_text, ["super", "super::x", "super::x::z"]);
    let code = code_of(
        "let a = super::super::store::open(); // crate::nope\nlet s = \"crate::no\"; self::x::y(); 'a';",
    );
    let paths: Vec<String> = code_paths(&code).iter().map(|p| p.join("::")).collect();
    assert_eq!(paths, ["super::super::store::open", "self::x::y"]);
    let children = BTreeSet::from(["run".to_owned()]);
    assert_eq!(
        absolute("engine", &split_path("run::fetch::Fetcher"), &children).unwrap().join("::"),
        "engine::run::fetch::Fetcher"
    );
    assert_eq!(
        absolute("engine::run::fetch", &split_path("super::super::ops::Ops"), &children).unwrap().join("::"),
        "engine::ops::Ops"
    );
    assert_eq!(absolute("engine", &split_path("tokio::sync::mpsc"), &children), None);
}

#[test]
fn a_circle_is_found() {
    let tree = Tree {
        files: ["a", "b", "c"].iter().map(|m| ((*m).to_owned(), PathBuf::from(m))).collect(),
        reexports: BTreeMap::new(),
        globs: BTreeMap::new(),
    };
    let edges = BTreeMap::from([
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]);
    assert_eq!(Graph { tree, edges, named: BTreeMap::new() }.cycles(), [["a", "b", "c"]]);
}
