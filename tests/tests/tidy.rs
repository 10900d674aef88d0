//! Tidy checks that keep the docs honest (docs/conventions.md, 17): every repository path the
//! README, ARCHITECTURE.md and the pages under `docs/` name exists, and no file refers to
//! anything outside the repository (the repository stands alone).

use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root (this crate is `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Directories that hold generated files, not sources (as `.gitignore` lists them: build
/// output and the fuzzer's corpus, artifacts and coverage).
const SKIP_DIRS: [&str; 4] = ["target", "corpus", "artifacts", "coverage"];

/// Every file under `dir` with one of `exts`, outside hidden and generated directories.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            if !name.starts_with('.') && !SKIP_DIRS.contains(&name.as_str()) {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| name.ends_with(x)) {
            out.push(p);
        }
    }
}

/// The top-level folders a path named in the docs may start with.
const TOP: [&str; 8] = [
    "shared/",
    "firmware/",
    "host/",
    "boards/",
    "tests/",
    "xtask/",
    "docs/",
    ".ci/",
];

/// The repository paths a Markdown page names: code spans that start with a top-level folder
/// (placeholders, globs and line numbers left out) and relative link targets.
fn named_paths(page: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(page).expect("readable page");
    let dir = page.parent().expect("a page has a folder").to_path_buf();
    let mut out = Vec::new();
    for (i, span) in text.split('`').enumerate() {
        // Odd pieces are inside code spans (a fenced block's lines are checked the same way,
        // which is what we want for command lines naming files).
        if i % 2 == 0 || span.contains(char::is_whitespace) {
            continue;
        }
        let span = span.trim_end_matches([',', '.', ':', ';', ')']);
        let plain = !span.contains(['<', '>', '*', '{', '}', '$', '|']) && !span.contains("...");
        if plain && TOP.iter().any(|t| span.starts_with(t)) {
            let path = span.split(':').next().unwrap_or(span);
            out.push(root().join(path));
        }
    }
    for piece in text.split("](").skip(1) {
        let target = piece.split(')').next().unwrap_or("");
        let target = target.split('#').next().unwrap_or("");
        if target.is_empty() || target.contains("://") {
            continue;
        }
        out.push(dir.join(target));
    }
    out
}

/// The paths of ARCHITECTURE.md's code map (its first `text` block): a line that starts with a
/// name names a top-level entry, and a line indented by two spaces names a path inside the last
/// top-level folder (description lines are indented further).
fn code_map_paths(page: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string(page).expect("readable page");
    let Some(block) = text.split("```text\n").nth(1) else {
        return Vec::new();
    };
    let block = block.split("```").next().unwrap_or("");
    let mut top = String::new();
    let mut out = Vec::new();
    for line in block.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            out.push(root().join(name));
            if name.ends_with('/') {
                top = name.to_string();
            }
        } else if line.starts_with("  ") && !line.starts_with("   ") && !name.contains('*') {
            out.push(root().join(&top).join(name));
        }
    }
    out
}

#[test]
fn every_path_the_docs_name_exists() {
    let root = root();
    let mut pages = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    files(&root.join("docs"), &[".md"], &mut pages);
    files(&root.join("boards"), &["README.md"], &mut pages);
    let mut missing = Vec::new();
    let mut checked = 0;
    let map = root.join("ARCHITECTURE.md");
    let named = pages.iter().flat_map(|page| {
        named_paths(page)
            .into_iter()
            .map(move |p| (page.clone(), p))
    });
    let mapped = code_map_paths(&map).into_iter().map(|p| (map.clone(), p));
    for (page, p) in named.chain(mapped) {
        checked += 1;
        if !p.exists() {
            let page = page.strip_prefix(&root).unwrap_or(&page);
            let p = p.strip_prefix(&root).unwrap_or(&p);
            missing.push(format!("{}: {}", page.display(), p.display()));
        }
    }
    assert!(
        checked > 100,
        "only {checked} paths found: the parsing broke"
    );
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_file_refers_outside_the_repository() {
    let root = root();
    let mut all = Vec::new();
    files(
        &root,
        &[".rs", ".md", ".toml", ".sh", ".py", ".yml", ".txt"],
        &mut all,
    );
    all.push(root.join(".ci/run"));
    // Built from pieces so that this file does not name them itself.
    let outside = [
        ["../", "shared/papers"].concat(),
        ["../", "shared/DESIGN"].concat(),
        ["DESIGN", ".md"].concat(),
        ["CONVENTIONS", ".md"].concat(),
        ["../", ".library"].concat(),
        ["/work", "/"].concat(),
    ];
    let numbered = ["CONVENTIONS", " "].concat();
    let mut found = Vec::new();
    for f in &all {
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for (n, line) in text.lines().enumerate() {
            let cites_numbered = line.match_indices(&numbered).any(|(i, _)| {
                line[i + numbered.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            });
            if cites_numbered || outside.iter().any(|o| line.contains(o.as_str())) {
                found.push(format!("{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references outside the repository:\n{}",
        found.join("\n")
    );
}
