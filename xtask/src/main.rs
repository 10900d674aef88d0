//! `cargo xtask`: bitspike's automation. It calls `cargo`, `rustup`, QEMU and the tools it
//! installs; it never links the product (docs/conventions.md, 10).
//!
//! ```text
//! cargo xtask setup [--cuda]                 install what the other tasks need (idempotent)
//! cargo xtask demo [--epochs N] [--board B] the main job: train, export, run on the emulated board
//! cargo xtask qac [--epochs N] [--board B]  QAC: train, convert, calibrate, run the SNN on the board
//! cargo xtask qac --device B [--epochs N]    QAC's level penalty priced by B's measured costs
//! cargo xtask mps [--epochs N] [--board B] [--point K] [--baselines]
//!                                            One-Shot MPS: search, front, a point on the board
//! cargo xtask mps --device B [--epochs N]    the search for B's measured instructions beside
//!                                            the BOPs search, fronts in ms, a budgeted point
//! cargo xtask ssql [--epochs N] [--board B] [--bits 4w4a] [--all]
//!                                            SSQL: pretrain, evaluate at every bit width, a model on the board
//! cargo xtask test [--fuzz-seconds N]        everything CI proves (what .ci/run runs)
//! cargo xtask cross                          cross-build shared and firmware for the MCU targets
//! cargo xtask qemu --board B --model M [--vectors V | --stream S]
//!                                            build the board app with M, run it under QEMU
//! cargo xtask flash --board B --model M [--vectors V] [--probe SEL]
//!                                            a real board: build, flash (probe-rs), run, defmt log
//! cargo xtask header [--check]                  the C API's header (firmware/capi/include/bitspike.h)
//!                                               from its sources by cbindgen; --check: fail if stale
//! cargo xtask capi                              the C API's checks of `cargo xtask test` alone
//! cargo xtask size [--board B] [--model M] [--check | --bless]
//!                                            section sizes of the board apps
//! cargo xtask measure --board B --model M [--vectors V | --stream S] [--event-driven] [--probe SEL]
//!                                            flash, RAM, stack, arena, instructions or cycles,
//!                                            MACs, energy
//! cargo xtask bench [--board B]              benchmark figures into boards/bench/
//! cargo xtask conformance [--board B] [--bless]
//!                                            host golden vectors == QEMU on every emulated board
//! cargo xtask costs --board B [--arch A] [--dataset D] [--weight-bits L] [--act-bits L]
//!                   [--snn [--timesteps L]] [--check]
//!                                            device-measured cost table into boards/costs/
//! cargo xtask fuzz [--seconds N] [--target T] fuzz each target (load_and_run: model bytes;
//!                                            generated: valid models of every geometry, every
//!                                            kernel set against the oracle) N seconds
//! ```
//!
//! Multi-step tasks run every step even after one fails and end with a `N passed, N failed` line;
//! the exit code is non-zero when anything failed.

mod bench;
mod board;
mod capi;
mod conformance;
mod costs;
mod demo;
mod errors;
mod figures;
mod mps;
mod probe;
mod qac;
mod setup;
mod ssql;
mod steps;
mod tasks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use steps::Steps;

/// The MCU targets the shared crate and the firmware build for.
pub const TARGETS: [&str; 3] = [
    "thumbv7em-none-eabihf",
    "thumbv7m-none-eabi",
    "thumbv6m-none-eabi",
];

/// The fuzz targets (firmware/fuzz): the byte-level loader target and the structure-aware one.
const FUZZ_TARGETS: [&str; 2] = ["load_and_run", "generated"];

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A command with the workspace root as its directory.
pub fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args).current_dir(root());
    c
}

/// `cargo` from the pinned toolchain (`rust-toolchain.toml`), through rustup's proxy.
pub fn cargo(args: &[&str]) -> Command {
    let mut c = cmd("cargo", args);
    // Let rust-toolchain.toml choose, not the toolchain that happened to run xtask.
    c.env_remove("RUSTUP_TOOLCHAIN");
    c.env_remove("CARGO");
    c
}

/// Every task and its flags, declared once: the usage text and each task's parser come from
/// here. `--key V` (followed by a placeholder) takes a value, a bare `--key` is a switch;
/// brackets and `|` only document what is optional and what excludes what.
const TASKS: &[(&str, &str)] = &[
    ("setup", "[--cuda]"),
    ("demo", "[--epochs N] [--board B]"),
    ("qac", "[--epochs N] [--board B] [--device B]"),
    (
        "mps",
        "[--epochs N] [--board B] [--point K] [--baselines] [--device B]",
    ),
    ("ssql", "[--epochs N] [--board B] [--bits 4w4a] [--all]"),
    ("test", "[--fuzz-seconds N]"),
    ("cross", ""),
    ("qemu", "--board B --model M [--vectors V | --stream S]"),
    (
        "flash",
        "--board B --model M [--vectors V] [--probe VID:PID[:SERIAL]]",
    ),
    ("size", "[--board B] [--model M] [--check | --bless]"),
    (
        "measure",
        "--board B --model M [--vectors V | --stream S] [--event-driven] [--probe VID:PID[:SERIAL]]",
    ),
    ("bench", "[--board B]"),
    ("conformance", "[--board B] [--bless]"),
    (
        "costs",
        "--board B [--arch A] [--dataset D] [--weight-bits L] [--act-bits L] [--snn] [--timesteps L] | --check",
    ),
    ("fuzz", "[--seconds N] [--target T]"),
    ("header", "[--check]"),
    ("capi", ""),
];

/// The usage text, from [`TASKS`].
fn usage() -> String {
    let mut u = String::from("usage: cargo xtask <task>");
    for (task, flags) in TASKS {
        u.push_str(format!("\n  {task} {flags}").trim_end());
    }
    u
}

/// The value flags and the switches of a task's flag text (see [`TASKS`]).
fn flags(text: &str) -> (Vec<String>, Vec<String>) {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_string())
        .filter(|w| !w.is_empty() && w != "|")
        .collect();
    let (mut values, mut switches) = (Vec::new(), Vec::new());
    for (i, w) in words.iter().enumerate() {
        if !w.starts_with("--") {
            continue;
        }
        match words.get(i + 1) {
            Some(next) if !next.starts_with("--") => values.push(w.clone()),
            _ => switches.push(w.clone()),
        }
    }
    (values, switches)
}

/// `--key value` options and `--switch` flags, checked against what a task accepts.
struct Args {
    values: BTreeMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// Parse `args` against the flags [`TASKS`] declares for `task`.
    fn parse(task: &str, args: &[String]) -> Result<Self, String> {
        let text = TASKS
            .iter()
            .find(|(t, _)| *t == task)
            .map(|(_, f)| *f)
            .ok_or_else(|| format!("unknown task `{task}`"))?;
        let (values, switches) = flags(text);
        let mut out = Self {
            values: BTreeMap::new(),
            switches: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if switches.contains(a) {
                out.switches.push(a.clone());
            } else if values.contains(a) {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                out.values.insert(a.clone(), v.clone());
            } else {
                return Err(format!("unexpected argument `{a}`"));
            }
        }
        Ok(out)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| format!("{key} is required"))
    }

    fn path(&self, key: &str) -> Result<Option<PathBuf>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(p) => {
                let p = PathBuf::from(p);
                if p.is_file() {
                    Ok(Some(p))
                } else {
                    Err(format!("{key} {}: no such file", p.display()))
                }
            }
        }
    }

    fn seconds(&self, key: &str, default: u64) -> Result<u64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(n) => n
                .parse()
                .map_err(|_| format!("{key} takes a whole number of seconds, got `{n}`")),
        }
    }

    fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }
}

fn done(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("{}", usage());
        return ExitCode::from(2);
    };
    match dispatch(task, &args[1..]) {
        Ok(code) => code,
        // One line: the usage is what `cargo xtask` alone prints.
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Run `task`; an `Err` is a usage error (exit 2).
fn dispatch(task: &str, rest: &[String]) -> Result<ExitCode, String> {
    Ok(match task {
        "setup" => {
            let a = Args::parse(task, rest)?;
            let mut s = Steps::new();
            if a.has("--cuda") {
                setup::libtorch_cuda(&mut s);
            }
            setup::all(&mut s);
            s.finish()
        }
        "demo" => {
            let a = Args::parse(task, rest)?;
            let epochs = a.seconds("--epochs", demo::EPOCHS)?;
            demo::run(epochs, a.get("--board").unwrap_or("qemu-mps2-an386"))
        }
        "mps" => {
            let a = Args::parse(task, rest)?;
            let epochs = a.seconds("--epochs", mps::EPOCHS)?;
            if let Some(b) = a.get("--device") {
                return Ok(mps::run_device(epochs, b));
            }
            let point = match a.get("--point") {
                Some(v) => Some(
                    v.parse::<usize>()
                        .map_err(|_| format!("--point {v}: expected a front point number"))?,
                ),
                None => None,
            };
            mps::run(
                epochs,
                a.get("--board").unwrap_or("qemu-mps2-an386"),
                point,
                a.has("--baselines"),
            )
        }
        "ssql" => {
            let a = Args::parse(task, rest)?;
            let epochs = a.seconds("--epochs", ssql::EPOCHS)?;
            ssql::run(
                epochs,
                a.get("--board").unwrap_or("qemu-mps2-an386"),
                a.get("--bits").unwrap_or("4w4a"),
                a.has("--all"),
            )
        }
        "qac" => {
            let a = Args::parse(task, rest)?;
            let epochs = a.seconds("--epochs", qac::EPOCHS)?;
            if let Some(b) = a.get("--device") {
                return Ok(qac::run_device(epochs, b));
            }
            qac::run(epochs, a.get("--board").unwrap_or("qemu-mps2-an386"))
        }
        "test" => {
            let a = Args::parse(task, rest)?;
            test(a.seconds("--fuzz-seconds", 30)?)
        }
        "cross" => {
            Args::parse(task, rest)?;
            let mut s = Steps::new();
            cross(&mut s);
            s.finish()
        }
        "qemu" => {
            let a = Args::parse(task, rest)?;
            let model = a.path("--model")?.ok_or("--model is required")?;
            done(tasks::qemu(
                a.require("--board")?,
                &model,
                a.path("--vectors")?.as_deref(),
                a.path("--stream")?.as_deref(),
            ))
        }
        "header" => {
            let a = Args::parse(task, rest)?;
            done(capi::header(a.has("--check")))
        }
        "capi" => {
            Args::parse(task, rest)?;
            let mut s = Steps::new();
            capi::check(&mut s);
            capi::c_app(&mut s);
            s.finish()
        }
        "size" => {
            let a = Args::parse(task, rest)?;
            let check = match (a.has("--check"), a.has("--bless")) {
                (true, true) => return Err("--check and --bless exclude each other".into()),
                (true, false) => tasks::SizeCheck::Check,
                (false, true) => tasks::SizeCheck::Bless,
                (false, false) => tasks::SizeCheck::Print,
            };
            done(tasks::size(
                a.get("--board"),
                a.path("--model")?.as_deref(),
                check,
            ))
        }
        "flash" => {
            let a = Args::parse(task, rest)?;
            let model = a.path("--model")?.ok_or("--model is required")?;
            done(tasks::flash(
                a.require("--board")?,
                &model,
                a.path("--vectors")?.as_deref(),
                a.get("--probe"),
            ))
        }
        "measure" => {
            let a = Args::parse(task, rest)?;
            let model = a.path("--model")?.ok_or("--model is required")?;
            let features: &[&str] = if a.has("--event-driven") {
                &["event-driven"]
            } else {
                &[]
            };
            done(tasks::measure(
                a.require("--board")?,
                &model,
                a.path("--vectors")?.as_deref(),
                a.path("--stream")?.as_deref(),
                features,
                a.get("--probe"),
            ))
        }
        "bench" => {
            let a = Args::parse(task, rest)?;
            done(bench::bench(a.get("--board").unwrap_or("qemu-mps2-an386")))
        }
        "conformance" => {
            let a = Args::parse(task, rest)?;
            let mut s = Steps::new();
            conformance::conformance(&mut s, a.get("--board"), a.has("--bless"));
            s.finish()
        }
        "costs" => {
            let a = Args::parse(task, rest)?;
            if a.has("--check") {
                let mut s = Steps::new();
                costs::check(&mut s);
                return Ok(s.finish());
            }
            let bits = |k: &str| -> Result<Vec<u8>, String> {
                a.get(k)
                    .unwrap_or("2,4,8")
                    .split(',')
                    .map(|b| {
                        b.trim()
                            .parse::<u8>()
                            .map_err(|_| format!("{k}: `{b}` is not a bit width"))
                    })
                    .collect()
            };
            let snn = a.has("--snn");
            let timesteps: Vec<u16> = if snn {
                a.get("--timesteps")
                    .unwrap_or("1,2,3,4,5,6,8")
                    .split(',')
                    .map(|t| {
                        t.trim()
                            .parse::<u16>()
                            .map_err(|_| format!("--timesteps: `{t}` is not a number"))
                    })
                    .collect::<Result<_, _>>()?
            } else {
                Vec::new()
            };
            // A spiking cover's weights: hidden layers and first and last (QAC's defaults).
            let weights = match (snn, a.get("--weight-bits")) {
                (true, None) => vec![4, 8],
                _ => bits("--weight-bits")?,
            };
            done(costs::costs(
                a.require("--board")?,
                a.get("--arch"),
                a.get("--dataset").unwrap_or("fashion-mnist"),
                &weights,
                &bits("--act-bits")?,
                &timesteps,
            ))
        }
        "fuzz" => {
            let a = Args::parse(task, rest)?;
            let secs = a.seconds("--seconds", 60)?;
            let targets: Vec<&str> = match a.get("--target") {
                Some(t) if FUZZ_TARGETS.contains(&t) => vec![t],
                Some(t) => {
                    return Err(format!(
                        "unknown fuzz target `{t}` (the targets: {})",
                        FUZZ_TARGETS.join(", ")
                    ))
                }
                None => FUZZ_TARGETS.to_vec(),
            };
            let mut s = Steps::new();
            setup::fuzzing(&mut s);
            for t in targets {
                fuzz(&mut s, t, secs);
            }
            s.finish()
        }
        other => {
            let tasks: Vec<&str> = TASKS.iter().map(|(t, _)| *t).collect();
            return Err(format!(
                "unknown task `{other}` (tasks: {})",
                tasks.join(", ")
            ));
        }
    })
}

/// The absolute path of the manifest at `rel` from the repository root.
pub fn manifest(rel: &str) -> String {
    root().join(rel).to_string_lossy().into_owned()
}

/// Cross-build the shared crate and the firmware for every MCU target: an accidental `std` use or
/// a target-specific break fails here.
fn cross(s: &mut Steps) {
    let fw = manifest("firmware/Cargo.toml");
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
    setup::all(&mut s);
    let fw = manifest("firmware/Cargo.toml");
    let fuzz_manifest = manifest("firmware/fuzz/Cargo.toml");
    let boards = manifest("boards/Cargo.toml");
    let capi_manifest = manifest("firmware/capi/Cargo.toml");
    s.run("fmt: workspace", cargo(&["fmt", "--all", "--check"]));
    for (name, m) in [
        ("firmware", &fw),
        ("fuzz targets", &fuzz_manifest),
        ("boards", &boards),
        ("C API", &capi_manifest),
    ] {
        s.run(
            &format!("fmt: {name}"),
            cargo(&["fmt", "--all", "--manifest-path", m, "--check"]),
        );
    }
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
    match board::all() {
        Ok(all) => {
            for b in all {
                s.run(
                    &format!("clippy: board {}", b.name),
                    cargo(&[
                        "clippy",
                        "--manifest-path",
                        &boards,
                        "-p",
                        &b.name,
                        "-p",
                        "bitspike-board",
                        "--target",
                        &b.target,
                        "--",
                        "-D",
                        "warnings",
                    ]),
                );
            }
        }
        Err(e) => s.fail("clippy: boards", &e),
    }
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
    // Each crate's tests on their own, as a user of that crate runs them: the workspace run
    // unifies features, which can hide a crate that does not build alone.
    s.run(
        "test: the host library alone without clap (its types are free of the command line)",
        cargo(&["test", "-p", "bitspike", "--lib", "--no-default-features"]),
    );
    for features in ["", "std", "defmt"] {
        let mut args = vec!["test", "-p", "bitspike-core"];
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        s.run(
            &format!(
                "test: bitspike-core alone (features: {})",
                or_default(features)
            ),
            cargo(&args),
        );
    }
    for features in ["", "counters", "reference-kernels", "event-driven", "defmt"] {
        let mut args = vec!["test", "--manifest-path", &fw];
        if !features.is_empty() {
            args.extend(["--features", features]);
        }
        s.run(
            &format!(
                "test: firmware on the host (features: {})",
                or_default(features)
            ),
            cargo(&args),
        );
    }
    capi::check(&mut s);
    cross(&mut s);
    let step = "size: every board app builds for its target, sizes as committed";
    s.begin(step);
    let sized = tasks::size(None, None, tasks::SizeCheck::Check);
    if let Err(e) = &sized {
        eprintln!("{e}");
    }
    s.end(step, sized.is_ok());
    conformance::conformance(&mut s, None, false);
    conformance::trained_on_qemu(&mut s);
    capi::c_app(&mut s);
    costs::check(&mut s);
    errors::check(&mut s);
    for t in FUZZ_TARGETS {
        fuzz(&mut s, t, fuzz_seconds);
    }
    s.finish()
}

/// A feature list for a step's name: the list, or "default".
fn or_default(features: &str) -> &str {
    if features.is_empty() {
        "default"
    } else {
        features
    }
}

/// Run fuzz target `target` for `seconds` and report how many executions it made. New inputs go
/// to a working corpus under `target/fuzz-corpus/`; the committed, minimised corpus
/// (`firmware/fuzz/corpus/<target>`) and, for the byte-level target, the committed model files
/// (as is, and with the reseal flag) seed it.
fn fuzz(s: &mut Steps, target: &str, seconds: u64) {
    let name = format!("fuzz: {target} for {seconds} s");
    let work = root().join("target/fuzz-corpus").join(target);
    let committed = root().join("firmware/fuzz/corpus").join(target);
    if let Err(e) = seed_corpus(target, &work) {
        s.fail(
            &name,
            &format!("cannot seed the fuzz corpus in {}: {e}", work.display()),
        );
        return;
    }
    s.begin(&name);
    let t = Instant::now();
    let mut args = vec![
        "+nightly".to_string(),
        "fuzz".into(),
        "run".into(),
        "--fuzz-dir".into(),
        "firmware/fuzz".into(),
        target.into(),
        work.to_string_lossy().into_owned(),
    ];
    if committed.is_dir() {
        args.push(committed.to_string_lossy().into_owned());
    }
    args.extend(["--".into(), format!("-max_total_time={seconds}")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cmd("cargo", &args).env_remove("RUSTUP_TOOLCHAIN").output();
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
                Some(done) => println!(
                    "libFuzzer ({target}): {done} ({:.0} s), no crash",
                    t.elapsed().as_secs_f64()
                ),
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
    s.end(&name, ok);
}

fn seed_corpus(target: &str, corpus: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(corpus)?;
    if target != "load_and_run" {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn flag_text_gives_values_and_switches() {
        let (v, s) = flags("--board B [--vectors V | --stream S] [--check | --bless] [--all]");
        assert_eq!(v, ["--board", "--vectors", "--stream"]);
        assert_eq!(s, ["--check", "--bless", "--all"]);
        let a = Args::parse("size", &["--board".into(), "x".into(), "--check".into()]).unwrap();
        assert_eq!((a.get("--board"), a.has("--check")), (Some("x"), true));
        let e = Args::parse("size", &["--stream".into(), "s".into()]).err();
        assert_eq!(e.as_deref(), Some("unexpected argument `--stream`"));
        assert!(Args::parse("size", &["--board".into()]).is_err());
    }

    /// Each task's dispatch reads exactly the flags its entry in [`TASKS`] declares.
    #[test]
    fn every_task_reads_the_flags_it_declares() {
        let src = include_str!("main.rs");
        let body = &src[src.find("fn dispatch(").expect("dispatch")..];
        let body = &body[..body.find("\npub fn manifest(").expect("end of dispatch")];
        for (task, text) in TASKS {
            let arm = format!("\n        \"{task}\" => ");
            let at = body
                .find(&arm)
                .unwrap_or_else(|| panic!("no arm for {task}"));
            let rest = &body[at + arm.len()..];
            let end = rest.find("\n        \"").unwrap_or(rest.len());
            let read: BTreeSet<&str> = rest[..end]
                .split('"')
                .filter(|w| {
                    w.starts_with("--") && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
                .collect();
            let (v, s) = flags(text);
            let declared: BTreeSet<&str> = v.iter().chain(&s).map(String::as_str).collect();
            assert_eq!(read, declared, "task {task}");
        }
        assert!(usage().contains("\n  costs --board B"), "{}", usage());
    }
}
