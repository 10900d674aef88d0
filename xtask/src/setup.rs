//! `cargo xtask setup`: everything the other tasks need, each step a no-op when already done.
//!
//! * rustup: the MCU targets, rustfmt, clippy; the nightly toolchain and `cargo-fuzz` (fuzzing);
//! * apt (`--no-install-recommends`): `qemu-system-arm`, and `curl`, `xz-utils`, `gcc` if absent;
//! * `defmt-print` (decodes the boards' defmt logs);
//! * the QEMU instruction-counting plugin (`boards/qemu-plugin/insn_count.c`), compiled with gcc
//!   against `qemu-plugin.h` from Debian's QEMU 7.2 source package (checked by SHA-256) into
//!   `.bitspike/qemu/`.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::board::plugin_path;
use crate::steps::Steps;
use crate::{cargo, cmd, root, TARGETS};

/// Debian bookworm's QEMU 7.2 source, for its plugin API header (the binary packages ship none).
const QEMU_SOURCE_URL: &str =
    "http://deb.debian.org/debian/pool/main/q/qemu/qemu_7.2+dfsg.orig.tar.xz";
/// SHA-256 of that tarball, from bookworm's `Sources` index.
const QEMU_SOURCE_SHA256: &str = "91aca71520040edc40b8d437aa3004dae614f58e286cf653ee8996c07af2962f";
/// The header inside it.
const QEMU_PLUGIN_HEADER: &str = "qemu-7.2.0/include/qemu/qemu-plugin.h";

fn have(program: &str, args: &[&str]) -> bool {
    cmd(program, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Everything.
pub fn all(s: &mut Steps) {
    rust(s);
    fuzzing(s);
    boards(s);
}

/// Targets and components of the pinned toolchain.
pub fn rust(s: &mut Steps) {
    let mut add = cmd("rustup", &["target", "add"]);
    add.args(TARGETS);
    s.run("setup: rustup MCU targets", add);
    s.run(
        "setup: rustup rustfmt and clippy",
        cmd("rustup", &["component", "add", "rustfmt", "clippy"]),
    );
}

/// The nightly toolchain and cargo-fuzz.
pub fn fuzzing(s: &mut Steps) {
    if !have("rustup", &["run", "nightly", "rustc", "--version"]) {
        s.run(
            "setup: nightly toolchain (cargo-fuzz needs it)",
            cmd(
                "rustup",
                &["toolchain", "install", "nightly", "--profile", "minimal"],
            ),
        );
    }
    if !have("cargo", &["fuzz", "--version"]) {
        s.run(
            "setup: cargo install cargo-fuzz",
            cargo(&["install", "cargo-fuzz", "--locked"]),
        );
    }
}

/// QEMU, defmt-print and the instruction-counting plugin.
pub fn boards(s: &mut Steps) {
    let mut missing: Vec<&str> = Vec::new();
    for (program, package) in [
        ("qemu-system-arm", "qemu-system-arm"),
        ("curl", "curl"),
        ("xz", "xz-utils"),
        ("gcc", "gcc"),
    ] {
        if !have(program, &["--version"]) {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        let name = format!("setup: apt-get install {}", missing.join(" "));
        s.begin(&name);
        let install = |update: bool| {
            if update {
                let _ = cmd("apt-get", &["update", "-qq"]).status();
            }
            let mut c = cmd(
                "apt-get",
                &["install", "-y", "-qq", "--no-install-recommends"],
            );
            c.args(&missing);
            c.env("DEBIAN_FRONTEND", "noninteractive");
            c.status().is_ok_and(|st| st.success())
        };
        let ok = install(false) || install(true);
        s.end(&name, ok);
    }
    if !have("defmt-print", &["--version"]) {
        s.run(
            "setup: cargo install defmt-print",
            cargo(&["install", "defmt-print", "--locked"]),
        );
    }
    let name = "setup: QEMU instruction-counting plugin";
    s.begin(name);
    let ok = match plugin() {
        Ok(msg) => {
            println!("{msg}");
            true
        }
        Err(e) => {
            eprintln!("{e}");
            false
        }
    };
    s.end(name, ok);
}

fn newer(a: &Path, b: &Path) -> bool {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((m(a), m(b)), (Some(x), Some(y)) if x > y)
}

/// Fetch the plugin header if missing and (re)build the plugin if missing or stale.
fn plugin() -> Result<String, String> {
    let dir = root().join(".bitspike/qemu");
    let include = dir.join("include");
    let header = include.join("qemu-plugin.h");
    let source = root().join("boards/qemu-plugin/insn_count.c");
    let so = plugin_path();
    std::fs::create_dir_all(&include)
        .map_err(|e| format!("cannot create {}: {e}", include.display()))?;
    if !header.is_file() {
        let tarball = dir.join("qemu-source.tar.xz");
        let ok = cmd(
            "curl",
            &[
                "-sSfL",
                "--retry",
                "3",
                "-o",
                &tarball.to_string_lossy(),
                QEMU_SOURCE_URL,
            ],
        )
        .status()
        .is_ok_and(|st| st.success());
        if !ok {
            return Err(format!("cannot download {QEMU_SOURCE_URL}"));
        }
        let bytes = std::fs::read(&tarball).map_err(|e| format!("{}: {e}", tarball.display()))?;
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if digest != QEMU_SOURCE_SHA256 {
            let _ = std::fs::remove_file(&tarball);
            return Err(format!(
                "{QEMU_SOURCE_URL}: SHA-256 {digest}, expected {QEMU_SOURCE_SHA256}"
            ));
        }
        let out = cmd(
            "tar",
            &["-xJOf", &tarball.to_string_lossy(), QEMU_PLUGIN_HEADER],
        )
        .output()
        .map_err(|e| format!("cannot run tar: {e}"))?;
        let _ = std::fs::remove_file(&tarball);
        if !out.status.success() || out.stdout.is_empty() {
            return Err(format!("{QEMU_PLUGIN_HEADER} is not in the QEMU source"));
        }
        std::fs::write(&header, &out.stdout).map_err(|e| format!("{}: {e}", header.display()))?;
    }
    if so.is_file() && newer(&so, &source) {
        return Ok(format!("{} is up to date", so.display()));
    }
    let ok = cmd(
        "gcc",
        &[
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            &include.to_string_lossy(),
            "-o",
            &so.to_string_lossy(),
            &source.to_string_lossy(),
        ],
    )
    .status()
    .is_ok_and(|st| st.success());
    if ok {
        Ok(format!("built {}", so.display()))
    } else {
        Err(format!("gcc could not build {}", source.display()))
    }
}
