//! Enforces the one-way rule of ARCHITECTURE.md by reading `src/`: each layer
//! may name only the crate modules it is allowed to, and ratatui/crossterm
//! appear only under `src/tui/`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules of the crate a layer must not name.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "domain",
        &["app", "cli", "config", "vomo", "store", "dest", "engine", "tui", "headless", "sim", "telemetry"],
    ),
    ("vomo", &["app", "cli", "store", "dest", "engine", "tui", "headless", "sim"]),
    ("store", &["app", "cli", "vomo", "dest", "engine", "tui", "headless", "sim"]),
    ("dest", &["app", "cli", "vomo", "store", "engine", "tui", "headless", "sim"]),
    ("engine", &["app", "cli", "tui", "headless", "sim"]),
    ("tui", &["app", "cli", "vomo", "store", "dest", "sim"]),
    ("headless", &["app", "cli", "vomo", "store", "dest", "sim"]),
    ("sim", &["app", "cli", "vomo", "store", "dest", "engine", "tui", "headless"]),
    ("config", &["app", "vomo", "store", "dest", "engine", "tui", "headless", "sim"]),
    ("telemetry", &["app", "vomo", "store", "dest", "engine", "tui", "headless", "sim"]),
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
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The layer a file belongs to: its first path component under `src/`.
fn layer_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// Top-level modules named through `crate::`, including `crate::{a, b::c}`.
fn crate_modules_named(text: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let name: String =
                    item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                named.insert(name);
            }
        } else {
            named.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    named.remove("");
    named
}

#[test]
fn layers_only_name_what_they_may() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let layer = layer_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let named = crate_modules_named(&text);
        if let Some((_, forbidden)) = FORBIDDEN.iter().find(|(l, _)| *l == layer) {
            for module in named.iter().filter(|m| forbidden.contains(&m.as_str())) {
                violations.push(format!("{} ({layer}) names crate::{module}", file.display()));
            }
        }
        let ui_crate = text.contains("ratatui") || text.contains("crossterm");
        if ui_crate && layer != "tui" {
            violations.push(format!("{} mentions ratatui/crossterm outside src/tui/", file.display()));
        }
    }
    assert!(violations.is_empty(), "one-way rule broken:\n{}", violations.join("\n"));
    assert!(files.len() > 10, "the scan found the sources");
}

#[test]
fn the_scanner_sees_grouped_and_nested_imports() {
    let named = crate_modules_named("use crate::{vomo::VomoClient, store};\nlet x = crate::dest::build();");
    assert_eq!(named, BTreeSet::from(["vomo".to_owned(), "store".to_owned(), "dest".to_owned()]));
}
