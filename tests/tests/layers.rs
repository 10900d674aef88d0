//! The host library's dependencies point one way: the CLI (the binary) -> the method dispatch
//! -> the methods (One-Shot MPS, QAC, SSQL) -> training, export, evaluation and the device
//! costs -> the settings -> the core (network, quantizers, slots) -> data, boards and the
//! specification. This test reads every module of `host/src`, finds the modules each one
//! names (`crate::...`, `super::...`), and fails on a module without a layer, on a name that
//! points up, on one method naming another, and on any import cycle between files. The other
//! crates (shared, firmware, xtask, the board app, the tests' library) and the CLI are held to
//! no import cycle between their files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module's layer: the longest matching prefix wins. A new module must be placed here.
const LAYERS: &[(&str, u8)] = &[
    // What the core stands on.
    ("data", 0),
    ("boards", 0),
    ("spec", 0),
    ("figures", 0),
    ("report", 0),
    // The core: quantizer traits and quantizers, slots, the network.
    ("quant", 1),
    ("slots", 1),
    ("net", 1),
    // Settings: each method's own section, and the configuration that composes them.
    ("config", 2),
    ("mps::config", 2),
    ("qac::config", 2),
    ("ssql::config", 2),
    // Training, export (and models as C sources), evaluation, the built-in networks and the
    // device costs.
    ("train", 3),
    ("export", 3),
    ("csource", 3),
    ("eval", 3),
    ("builtin", 3),
    ("device_costs", 3),
    // The methods, each in its folder.
    ("mps", 4),
    ("qac", 4),
    ("ssql", 4),
    // Which method trains a configuration.
    ("methods", 5),
];

/// The methods: none may name another's modules.
const METHODS: &[&str] = &["mps", "qac", "ssql"];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .filter(|(p, _)| module == *p || module.starts_with(&format!("{p}::")))
        .max_by_key(|(p, _)| p.len())
        .map(|&(_, l)| l)
}

fn method(module: &str) -> Option<&'static str> {
    let first = module.split("::").next()?;
    METHODS.iter().copied().find(|m| *m == first)
}

/// The byte just past the block that opens at `text[open]` (`{`), skipping string and
/// character literals.
fn block_end(text: &str, open: usize) -> usize {
    let b = text.as_bytes();
    let (mut depth, mut i) = (0usize, open);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') => {
                i += if b[i + 1] == b'\\' { 3 } else { 2 };
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The text of a module that counts: no comments, no unit tests, no re-exports.
fn code(text: &str) -> String {
    let mut text = text.to_string();
    while let Some(i) = text.find("#[cfg(test)]\nmod tests {") {
        let open = i + text[i..].find('{').unwrap_or(0);
        let end = block_end(&text, open);
        text.replace_range(i..end, "");
    }
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    // `pub use child::b;` in a folder's module re-exports its own child's name (an alias for
    // users), it does not depend on it; a re-export from elsewhere (`crate::`, `super::`) is
    // used like any other name.
    let mut kept = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("pub use ") {
        kept.push_str(&rest[..i]);
        let path = &rest[i + "pub use ".len()..];
        let end = rest[i..].find(';').map_or(rest.len(), |j| i + j + 1);
        if path.starts_with("crate::") || path.starts_with("super::") {
            kept.push_str(&rest[i..end]);
        }
        rest = &rest[end..];
    }
    kept.push_str(rest);
    kept
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].trim_end_matches(':')
}

/// The paths named after every `prefix` (`crate::`, `super::`), brace groups expanded one
/// level (`crate::a::{b, c::d}` names `a::b` and `a::c::d`).
fn named(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        // Not the tail of a longer name (`my_crate::`).
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let path = ident(rest);
        let after = &rest[path.len()..];
        if after.starts_with("::{") || (path.is_empty() && after.starts_with('{')) {
            let open = after.find('{').unwrap_or(0);
            let close = after.find('}').unwrap_or(after.len());
            for item in after[open + 1..close].split(',') {
                let item = ident(item.trim());
                if item.is_empty() || item == "self" {
                    out.push(path.to_string());
                } else if path.is_empty() {
                    out.push(item.to_string());
                } else {
                    out.push(format!("{path}::{item}"));
                }
            }
        } else if !path.is_empty() {
            out.push(path.to_string());
        }
    }
    out
}

/// The import graph of `files` (module path, source text), with `aliases` (crate-root
/// re-exports: alias -> module) resolved; edges to the module itself are dropped.
fn graph(
    files: &BTreeMap<String, String>,
    aliases: &BTreeMap<String, String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let resolve = |path: &str| -> Option<String> {
        let mut parts: Vec<String> = path.split("::").map(str::to_string).collect();
        if let Some(a) = parts.first().and_then(|p| aliases.get(p)) {
            let mut v: Vec<String> = a.split("::").map(str::to_string).collect();
            v.extend(parts.drain(1..));
            parts = v;
        }
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| files.contains_key(m))
    };
    let mut g = BTreeMap::new();
    for (m, text) in files {
        let code = code(text);
        let mut deps = BTreeSet::new();
        for p in named(&code, "crate::") {
            deps.extend(resolve(&p));
        }
        if let Some((parent, _)) = m.rsplit_once("::") {
            for p in named(&code, "super::") {
                deps.insert(resolve(&format!("{parent}::{p}")).unwrap_or(parent.to_string()));
            }
        }
        deps.remove(m);
        g.insert(m.clone(), deps);
    }
    g
}

/// Everything wrong with `g`: modules without a layer, edges that point up or between
/// methods, and cycles.
fn violations(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut v = Vec::new();
    for (a, deps) in g {
        let Some(la) = layer(a) else {
            v.push(format!("{a} has no layer: place it in LAYERS"));
            continue;
        };
        for b in deps {
            let Some(lb) = layer(b) else { continue };
            if lb > la {
                v.push(format!(
                    "{a} (layer {la}) names {b} (layer {lb}): it points up"
                ));
            }
            if let (Some(x), Some(y)) = (method(a), method(b)) {
                if x != y && la == 4 {
                    v.push(format!("{a} names {b}: one method uses another's module"));
                }
            }
        }
    }
    // Cycles: depth-first search, a back edge closes one.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        v: &mut Vec<String>,
    ) {
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            match state.get(d.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == d).unwrap_or(0);
                    v.push(format!("import cycle: {} -> {d}", stack[at..].join(" -> ")));
                }
                Some(_) => {}
                None => visit(d, g, state, stack, v),
            }
        }
        stack.pop();
        state.insert(m.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        if !state.contains_key(m.as_str()) {
            visit(m, g, &mut state, &mut Vec::new(), &mut v);
        }
    }
    v
}

/// The modules of the crate whose sources are in `src` (relative to the repository), without
/// its root file, its tests and the folders `skip`, and the aliases its root re-exports.
fn modules(src: &str, skip: &[&str]) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(src);
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d)
            .expect("host/src is readable")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let rel = p.strip_prefix(&root).expect("under the crate's sources");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let Some(stem) = rel.strip_suffix(".rs") else {
                continue;
            };
            let skipped = skip.iter().any(|s| stem.starts_with(&format!("{s}/")));
            if stem == "main" || stem == "lib" || stem.ends_with("tests") || skipped {
                continue;
            }
            let module = stem.trim_end_matches("/mod").replace('/', "::");
            files.insert(module, std::fs::read_to_string(&p).expect("readable"));
        }
    }
    let lib = std::fs::read_to_string(root.join("lib.rs"))
        .or_else(|_| std::fs::read_to_string(root.join("main.rs")))
        .expect("lib.rs or main.rs");
    let mut aliases = BTreeMap::new();
    for line in lib.lines() {
        let Some(u) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let u = u.trim_end_matches(';');
        let (path, alias) = match u.split_once(" as ") {
            Some((p, a)) => (p.to_string(), a.to_string()),
            None => (
                u.to_string(),
                u.rsplit("::").next().unwrap_or(u).to_string(),
            ),
        };
        aliases.insert(alias, path);
    }
    (files, aliases)
}

#[test]
fn host_dependencies_point_one_way() {
    let (files, aliases) = modules("host/src", &["cli"]);
    for m in [
        "net",
        "quant",
        "train",
        "mps::search",
        "qac::method",
        "methods",
    ] {
        assert!(
            files.contains_key(m),
            "{m} not found among {:?}",
            files.keys()
        );
    }
    let g = graph(&files, &aliases);
    // The analysis sees the real imports.
    assert!(g["net"].contains("quant"), "{:?}", g["net"]);
    assert!(g["qac::method"].contains("train"), "{:?}", g["qac::method"]);
    let v = violations(&g);
    assert!(v.is_empty(), "dependency violations:\n{}", v.join("\n"));
}

/// The cycles among `violations`, for the crates without layers.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    violations(g)
        .into_iter()
        .filter(|v| v.starts_with("import cycle"))
        .collect()
}

#[test]
fn no_import_cycle_in_any_crate() {
    for (src, skip) in [
        ("host/src", &[][..]),
        ("shared/src", &[][..]),
        ("firmware/src", &[][..]),
        ("xtask/src", &[][..]),
        ("boards/app/src", &[][..]),
        ("tests/src", &["bin"][..]),
    ] {
        let (files, aliases) = modules(src, skip);
        assert!(!files.is_empty(), "{src}: no modules found");
        let c = cycles(&graph(&files, &aliases));
        assert!(c.is_empty(), "{src}:\n{}", c.join("\n"));
    }
}

#[test]
fn the_check_catches_a_core_module_naming_a_method_and_a_cycle() {
    let files: BTreeMap<String, String> = [
        (
            "net",
            "use crate::quant::Uniform;\nfn f() { crate::mps::supernet(); }\n",
        ),
        (
            "quant",
            "// crate::net::QNet in a comment does not count\n\
             #[cfg(test)]\nmod tests {\n    fn t() { let _ = '{'; crate::train::x(\"{\"); }\n}\n",
        ),
        ("mps", "use crate::{net, train::Method};\n"),
        (
            "train",
            "#[cfg(test)]\nmod tests {\n    fn t() {}\n}\nuse crate::net::QNet;\n",
        ),
        ("qac::method", "use crate::ssql_eval::x;\n"),
        ("ssql::eval", "use super::config::SsqlConfig;\n"),
        ("ssql::config", "pub use crate::ssql::eval::Thing;\n"),
        ("odd", ""),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let aliases = [("ssql_eval".to_string(), "ssql::eval".to_string())].into();
    let g = graph(&files, &aliases);
    assert!(g["quant"].is_empty(), "{:?}", g["quant"]);
    assert_eq!(
        g["ssql::eval"],
        BTreeSet::from(["ssql::config".to_string()])
    );
    let v = violations(&g).join("\n");
    assert!(v.contains("net (layer 1) names mps (layer 4)"), "{v}");
    assert!(v.contains("qac::method names ssql::eval"), "{v}");
    assert!(v.contains("import cycle: "), "{v}");
    assert!(v.contains("odd has no layer"), "{v}");
    // A re-export from elsewhere counts: ssql::config -> ssql::eval -> ssql::config.
    assert!(
        g["ssql::config"].contains("ssql::eval"),
        "{:?}",
        g["ssql::config"]
    );
    assert!(
        v.contains("ssql::eval -> ssql::config -> ssql::eval")
            || v.contains("ssql::config -> ssql::eval -> ssql::config"),
        "{v}"
    );
}
