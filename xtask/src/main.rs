//! `cargo xtask`: bitspike's automation. It calls `cargo`, `rustup` and the tools they install;
//! it never links the product (CONVENTIONS 10).
//!
//! ```text
//! cargo xtask setup               install what the other commands need (idempotent)
//! cargo xtask demo [ARGS]         the main job: `bitspike demo` in release mode
//! cargo xtask test [--fuzz-seconds N]
//!                                 everything CI proves: fmt, clippy, docs, host tests, the
//!                                 firmware's tests, cross-builds for every MCU target, a fuzz run
//! cargo xtask cross               cross-build shared and firmware for every MCU target
//! cargo xtask fuzz [--seconds N]  fuzz Model::load + inference for N seconds (default 60)
//! ```
//!
//! `test` runs every step even after one fails and ends with a `N passed, N failed` line; its exit
//! code is non-zero when anything failed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// The MCU targets the shared crate and the firmware build for.
const TARGETS: [&str; 3] = [
    "thumbv7em-none-eabihf",
    "thumbv7m-none-eabi",
    "thumbv6m-none-eabi",
];

/// The fuzz target's name.
const FUZZ_TARGET: &str = "load_and_run";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A command with the workspace root as its directory.
fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir(root());
    c
}

/// `cargo` from the pinned toolchain (`rust-toolchain.toml`), through rustup's proxy.
fn cargo(args: &[&str]) -> Command {
    let mut c = cmd("cargo", args);
    // Let rust-toolchain.toml choose, not the toolchain that happened to run xtask.
    c.env_remove("RUSTUP_TOOLCHAIN");
    c.env_remove("CARGO");
    c
}

/// Collects the outcome of every step.
struct Steps {
    results: Vec<(String, bool, f64)>,
}

impl Steps {
    fn new() -> Self {
        Self {
            results: Vec::new(),
        }
    }

    /// Run one step, streaming its output; record whether it succeeded.
    fn run(&mut self, name: &str, mut c: Command) -> bool {
        println!("\n==> {name}");
        let t = Instant::now();
        let ok = match c.status() {
            Ok(s) => s.success(),
            Err(e) => {
                eprintln!("cannot start {:?}: {e}", c.get_program());
                false
            }
        };
        self.record(name, ok, t.elapsed().as_secs_f64());
        ok
    }

    fn record(&mut self, name: &str, ok: bool, secs: f64) {
        if !ok {
            eprintln!("FAILED: {name}");
        }
        self.results.push((name.to_string(), ok, secs));
    }

    /// Print the summary and turn it into an exit code.
    fn finish(self) -> ExitCode {
        println!("\n==> summary");
        for (name, ok, secs) in &self.results {
            println!(
                "  {:<4} {:>6.1}s  {name}",
                if *ok { "ok" } else { "FAIL" },
                secs
            );
        }
        let failed = self.results.iter().filter(|r| !r.1).count();
        println!("{} passed, {} failed", self.results.len() - failed, failed);
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <setup | demo [ARGS] | test [--fuzz-seconds N] | cross | fuzz [--seconds N]>"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        return usage();
    };
    let rest = &args[1..];
    match task.as_str() {
        "setup" => {
            let mut s = Steps::new();
            setup(&mut s);
            s.finish()
        }
        "demo" => demo(rest),
        "test" => match seconds_flag(rest, "--fuzz-seconds", 30) {
            Ok(secs) => test(secs),
            Err(e) => {
                eprintln!("error: {e}");
                usage()
            }
        },
        "cross" => {
            let mut s = Steps::new();
            cross(&mut s);
            s.finish()
        }
        "fuzz" => match seconds_flag(rest, "--seconds", 60) {
            Ok(secs) => {
                let mut s = Steps::new();
                setup(&mut s);
                fuzz(&mut s, secs);
                s.finish()
            }
            Err(e) => {
                eprintln!("error: {e}");
                usage()
            }
        },
        other => {
            eprintln!("error: unknown task `{other}`");
            usage()
        }
    }
}

/// Parse `flag N` from `args` (the only flag the task takes), or the default.
fn seconds_flag(args: &[String], flag: &str, default: u64) -> Result<u64, String> {
    match args {
        [] => Ok(default),
        [f, n] if f == flag => n
            .parse()
            .map_err(|_| format!("{flag} takes a whole number of seconds, got `{n}`")),
        _ => Err(format!(
            "expected nothing or `{flag} N`, got `{}`",
            args.join(" ")
        )),
    }
}

fn have(program: &str, args: &[&str]) -> bool {
    cmd(program, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Install what the other tasks need. Every step is a no-op when already done.
fn setup(s: &mut Steps) {
    let mut add = cmd("rustup", &["target", "add"]);
    add.args(TARGETS);
    s.run("rustup: MCU targets", add);
    s.run(
        "rustup: rustfmt and clippy",
        cmd("rustup", &["component", "add", "rustfmt", "clippy"]),
    );
    if !have("rustup", &["run", "nightly", "rustc", "--version"]) {
        s.run(
            "rustup: nightly toolchain (cargo-fuzz needs it)",
            cmd(
                "rustup",
                &["toolchain", "install", "nightly", "--profile", "minimal"],
            ),
        );
    }
    if !have("cargo", &["fuzz", "--version"]) {
        s.run(
            "cargo install cargo-fuzz",
            cargo(&["install", "cargo-fuzz", "--locked"]),
        );
    }
}

fn demo(args: &[String]) -> ExitCode {
    let mut c = cargo(&[
        "run",
        "--release",
        "--quiet",
        "-p",
        "bitspike",
        "--",
        "demo",
    ]);
    c.args(args);
    match c.status() {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn firmware_manifest() -> String {
    root()
        .join("firmware/Cargo.toml")
        .to_string_lossy()
        .into_owned()
}

/// Cross-build the shared crate and the firmware for every MCU target: an accidental `std` use or
/// a target-specific break fails here.
fn cross(s: &mut Steps) {
    let fw = firmware_manifest();
    for t in TARGETS {
        s.run(
            &format!("cross: bitspike-core for {t}"),
            cargo(&["build", "-p", "bitspike-core", "--target", t]),
        );
        s.run(
            &format!("cross: bitspike-core +defmt for {t}"),
            cargo(&[
                "build",
                "-p",
                "bitspike-core",
                "--features",
                "defmt",
                "--target",
                t,
            ]),
        );
        s.run(
            &format!("cross: bitspike-rt for {t}"),
            cargo(&["build", "--release", "--manifest-path", &fw, "--target", t]),
        );
        s.run(
            &format!("cross: bitspike-rt +counters +defmt for {t}"),
            cargo(&[
                "build",
                "--release",
                "--manifest-path",
                &fw,
                "--features",
                "counters,defmt",
                "--target",
                t,
            ]),
        );
    }
}

fn test(fuzz_seconds: u64) -> ExitCode {
    let mut s = Steps::new();
    setup(&mut s);
    let fw = firmware_manifest();
    let fuzz_manifest = root()
        .join("firmware/fuzz/Cargo.toml")
        .to_string_lossy()
        .into_owned();
    s.run("fmt: workspace", cargo(&["fmt", "--all", "--check"]));
    s.run(
        "fmt: firmware",
        cargo(&["fmt", "--manifest-path", &fw, "--check"]),
    );
    s.run(
        "fmt: fuzz targets",
        cargo(&["fmt", "--manifest-path", &fuzz_manifest, "--check"]),
    );
    s.run(
        "clippy: workspace",
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    );
    s.run(
        "clippy: firmware (host, all features)",
        cargo(&[
            "clippy",
            "--manifest-path",
            &fw,
            "--all-targets",
            "--features",
            "counters,defmt",
            "--",
            "-D",
            "warnings",
        ]),
    );
    s.run(
        "clippy: firmware (thumbv7em, no features)",
        cargo(&[
            "clippy",
            "--manifest-path",
            &fw,
            "--target",
            TARGETS[0],
            "--",
            "-D",
            "warnings",
        ]),
    );
    let mut doc = cargo(&["doc", "--workspace", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    s.run("docs: workspace", doc);
    let mut doc = cargo(&[
        "doc",
        "--no-deps",
        "--manifest-path",
        &fw,
        "--features",
        "counters",
    ]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    s.run("docs: firmware", doc);
    s.run("test: workspace", cargo(&["test", "--workspace"]));
    s.run(
        "test: firmware on the host (counters off)",
        cargo(&["test", "--manifest-path", &fw]),
    );
    s.run(
        "test: firmware on the host (counters on)",
        cargo(&["test", "--manifest-path", &fw, "--features", "counters"]),
    );
    cross(&mut s);
    fuzz(&mut s, fuzz_seconds);
    s.finish()
}

/// Seed the corpus with the committed model files (as is, and with the reseal flag), then run
/// the fuzz target for `seconds` and report how many executions it made.
fn fuzz(s: &mut Steps, seconds: u64) {
    let name = format!("fuzz: {FUZZ_TARGET} for {seconds} s");
    let corpus = root().join("firmware/fuzz/corpus").join(FUZZ_TARGET);
    if let Err(e) = seed_corpus(&corpus) {
        eprintln!("cannot seed the fuzz corpus in {}: {e}", corpus.display());
        s.record(&name, false, 0.0);
        return;
    }
    println!("\n==> {name}");
    let t = Instant::now();
    let out = cmd(
        "cargo",
        &[
            "+nightly",
            "fuzz",
            "run",
            "--fuzz-dir",
            "firmware/fuzz",
            FUZZ_TARGET,
            &corpus.to_string_lossy(),
            "--",
            &format!("-max_total_time={seconds}"),
        ],
    )
    .env_remove("RUSTUP_TOOLCHAIN")
    .output();
    let ok = match out {
        Ok(o) => {
            let log = String::from_utf8_lossy(&o.stderr);
            let lines: Vec<&str> = log.lines().collect();
            if !o.status.success() {
                for l in lines.iter().rev().take(60).rev() {
                    eprintln!("{l}");
                }
            }
            match lines.iter().rev().find(|l| l.starts_with("Done ")) {
                Some(done) => println!("libFuzzer: {done}, no crash"),
                None if o.status.success() => println!("libFuzzer finished"),
                None => {}
            }
            o.status.success()
        }
        Err(e) => {
            eprintln!("cannot start cargo fuzz: {e}");
            false
        }
    };
    s.record(&name, ok, t.elapsed().as_secs_f64());
}

fn seed_corpus(corpus: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(corpus)?;
    for entry in std::fs::read_dir(root().join("tests/fixtures"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "bsm") {
            let bytes = std::fs::read(&path)?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for mode in [0u8, 1] {
                let mut seed = vec![mode];
                seed.extend_from_slice(&bytes);
                std::fs::write(corpus.join(format!("seed-{stem}-{mode}")), seed)?;
            }
        }
    }
    Ok(())
}
