//! The board tasks `qemu`, `flash`, `size` and `measure`, and the figures and helpers the others share
//! (`bench` and `conformance` have modules of their own).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use crate::board::Data;
use crate::board::{self, Board, Built, Run};

/// 45 nm analytic estimate, picojoules per MAC and per accumulate (the figures SNN papers use;
/// Horowitz 2014; the same as `bitspike_core::cost`).
const PJ_PER_MAC_45NM: f64 = 4.6;
const PJ_PER_AC_45NM: f64 = 0.9;
use crate::{cargo, root};

/// Seconds a conformance or measurement run may take before it counts as a hang.
pub const RUN_TIMEOUT: u64 = 300;

/// Run the host CLI (`bitspike ...`) in release mode.
pub fn bitspike(args: &[&str]) -> Result<(), String> {
    let mut c = cargo(&["run", "--release", "--quiet", "-p", "bitspike", "--"]);
    c.args(args);
    let ok = c
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err(format!("`bitspike {}` failed", args.join(" ")))
    }
}

/// Run the `bitspike` CLI and return what it printed; its error output names the failure.
pub fn bitspike_output(args: &[&str]) -> Result<String, String> {
    let out = cargo(&["run", "--release", "--quiet", "-p", "bitspike", "--"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`bitspike {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn work_dir(sub: &str) -> Result<PathBuf, String> {
    let d = root().join("target/bitspike").join(sub);
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}

/// Golden vectors for `model`: the given file, or `count` fresh ones from the host executor.
pub fn vectors_for(model: &Path, given: Option<&Path>, count: u32) -> Result<PathBuf, String> {
    vectors_with(model, given, count, false)
}

/// [`vectors_for`]; with `random`, random codes only (no all-zero and all-maximum vectors).
pub fn vectors_with(
    model: &Path,
    given: Option<&Path>,
    count: u32,
    random: bool,
) -> Result<PathBuf, String> {
    if let Some(v) = given {
        return Ok(v.to_path_buf());
    }
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let out = work_dir("vectors")?.join(format!("{stem}.bsv"));
    let (model, count, out_s) = (
        model.to_string_lossy(),
        count.to_string(),
        out.to_string_lossy(),
    );
    let mut args = vec![
        "golden", "--model", &model, "--count", &count, "--out", &out_s,
    ];
    if random {
        args.push("--random");
    }
    bitspike(&args)?;
    Ok(out)
}

pub fn print_failure(run: &Run) {
    eprint!("{}", run.log);
    eprint!("{}", run.stderr);
    if run.timed_out {
        eprintln!("the run timed out (a hang)");
    } else {
        eprintln!("exit code {:?}", run.exit);
    }
}

/// `cargo xtask qemu --board B --model M [--vectors V]`: build, run, show the log; the exit code
/// is the app's.
pub fn qemu(
    board: &str,
    model: &Path,
    vectors: Option<&Path>,
    stream: Option<&Path>,
) -> Result<(), String> {
    let board = board::load(board)?;
    let built = match stream {
        Some(s) => board::build_with(&board, model, board::Data::Stream(s), &[])?,
        None => board::build(&board, model, &vectors_for(model, vectors, 8)?, &[])?,
    };
    let run = board::run(&board, &built, false, RUN_TIMEOUT)?;
    print!("{}", run.log);
    eprint!("{}", run.stderr);
    if run.passed() {
        Ok(())
    } else if run.timed_out {
        Err(format!("{} timed out after {RUN_TIMEOUT} s", board.name))
    } else {
        Err(format!("{} exited with {:?}", board.name, run.exit))
    }
}

/// `cargo xtask flash --board B --model M [--vectors V] [--probe SEL]`: build the board app
/// with the model and golden vectors, flash it through probe-rs, run it, stream the defmt log
/// and collect the verdict; `Ok` only when every output matched the host's.
pub fn flash(
    board: &str,
    model: &Path,
    vectors: Option<&Path>,
    probe: Option<&str>,
) -> Result<(), String> {
    let board = board::load(board)?;
    if board.qemu.is_some() {
        return Err(format!(
            "{} is an emulated board: run it with `cargo xtask qemu`",
            board.name
        ));
    }
    let vectors = vectors_for(model, vectors, 8)?;
    let built = board::build(&board, model, &vectors, &[])?;
    println!(
        "{}: flashing {} ({} B of flash) through probe-rs",
        board.name,
        built.elf.display(),
        built.sizes.flash()
    );
    let run = on_probe(&board, &built, probe, &mut |l| println!("{l}"))?;
    if run.passed() {
        let vectors = run.field("vectors").unwrap_or(0);
        println!(
            "{}: {vectors} vectors, 0 mismatches against the host executor, {:.0} cycles per inference",
            board.name,
            run.field("cycles_sum").unwrap_or(0) as f64 / vectors.max(1) as f64
        );
        Ok(())
    } else if run.timed_out {
        Err(format!(
            "{}: no verdict within {RUN_TIMEOUT} s (a hang)",
            board.name
        ))
    } else {
        Err(format!(
            "{}: the app ended with code {:?} ({} mismatches)",
            board.name,
            run.exit,
            run.field("mismatches").unwrap_or(0)
        ))
    }
}

/// What `cargo xtask size` does with its table besides printing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeCheck {
    /// Print only.
    Print,
    /// Compare with the committed `boards/expected/sizes.txt` (the fixture model only).
    Check,
    /// Write `boards/expected/sizes.txt`.
    Bless,
}

/// `cargo xtask size [--board B] [--model M] [--check | --bless]`: section sizes of the board
/// app(s) built with a model (the committed v1 fixture by default), against each board's
/// memory.
pub fn size(board: Option<&str>, model: Option<&Path>, check: SizeCheck) -> Result<(), String> {
    let boards = match board {
        Some(b) => vec![board::load(b)?],
        None => board::all()?,
    };
    let fixture = root().join("tests/fixtures/model-v1.bsm");
    let model = model.unwrap_or(&fixture);
    if check != SizeCheck::Print && (model != fixture || board.is_some()) {
        return Err("--check and --bless compare every board with the fixture model: give neither --board nor --model".into());
    }
    let vectors = if model == fixture {
        root().join("tests/fixtures/model-v1.bsv")
    } else {
        vectors_for(model, None, 2)?
    };
    let mut text = format!(
        "# cargo xtask size: every board app with {} embedded (bytes). Regenerate with\n\
         # `cargo xtask size --bless`. RAM left = RAM - static RAM: what the stack may use.\n\
         {:<18} {:>7} {:>8} {:>6} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        "board",
        ".text",
        ".rodata",
        ".data",
        ".bss",
        ".uninit",
        "flash",
        "of",
        "static",
        "of RAM",
        "RAM left"
    );
    for b in boards {
        let built = board::build(&b, model, &vectors, &[])?;
        let s = built.sizes;
        let _ = writeln!(
            text,
            "{:<18} {:>7} {:>8} {:>6} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}",
            b.name,
            s.boot2 + s.vector_table + s.text,
            s.rodata,
            s.data,
            s.bss,
            s.uninit,
            s.flash(),
            b.memory.flash,
            s.ram_static(),
            b.memory.ram,
            b.memory.ram as i64 - s.ram_static() as i64
        );
        if s.flash() > b.memory.flash || s.ram_static() > b.memory.ram {
            text.push_str(&format!(
                "# {} does not fit on {}\n",
                model.display(),
                b.name
            ));
        }
    }
    print!("{text}");
    let path = root().join("boards/expected/sizes.txt");
    match check {
        SizeCheck::Print => Ok(()),
        SizeCheck::Bless => {
            std::fs::write(&path, &text)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(())
        }
        SizeCheck::Check => {
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            // .text and flash within the path slack, everything else exactly.
            if tables_agree(&old, &text, &[1, 6]) {
                println!("matches {}", path.display());
                Ok(())
            } else {
                Err(format!(
                    "{} differs from this build:\n--- committed\n{old}+++ this build\n{text}if the change is deliberate: cargo xtask size --bless",
                    path.display()
                ))
            }
        }
    }
}

/// Figures of one measured run.
pub struct Figures {
    /// Board name.
    pub board: String,
    /// Model label.
    pub model: String,
    /// Sizes of the app.
    pub built: Built,
    /// Model file bytes.
    pub model_bytes: u64,
    /// Arena bytes.
    pub arena: u64,
    /// Peak stack bytes.
    pub stack: u64,
    /// MACs per inference (for a spiking model: those of its layers that read analog inputs,
    /// counted on the host for the inputs the board ran).
    pub macs: u64,
    /// Synaptic operations (accumulates) per inference of a spiking model, counted on the host
    /// for the inputs the board ran; 0 for a non-spiking model.
    pub synops: u64,
    /// Whether the model has spiking layers.
    pub spiking: bool,
    /// Instructions per inference, per vector.
    pub insns: Vec<u64>,
    /// Instructions of each layer in the first inference (empty when not counted per layer).
    pub layer_insns: Vec<u64>,
    /// Vectors run and mismatches.
    pub vectors: u64,
    /// Mismatches against the host.
    pub mismatches: u64,
    /// Board-side counter over the last inference (FPGAIO on mps2, the cycle counter on a real
    /// board), if any.
    pub cycles: u64,
    /// Cycles per inference on a real board: mean, fewest and most over the vectors (0 when the
    /// board counts none).
    pub cycles_mean: f64,
    /// Fewest and most cycles of one inference.
    pub cycles_range: (u64, u64),
    /// The core clock the firmware reported, in hertz (0 on emulated boards).
    pub clock_hz: u64,
    /// The board's datasheet energy estimate per inference in microjoules, from the cycles (real
    /// boards only).
    pub datasheet_uj: Option<f64>,
    /// Correct predictions, for a labelled (streamed) test set.
    pub correct: Option<u64>,
}

impl Figures {
    /// Mean instructions per inference.
    pub fn insns_mean(&self) -> f64 {
        if self.insns.is_empty() {
            return 0.0;
        }
        self.insns.iter().sum::<u64>() as f64 / self.insns.len() as f64
    }

    pub fn insns_range(&self) -> (u64, u64) {
        (
            self.insns.iter().copied().min().unwrap_or(0),
            self.insns.iter().copied().max().unwrap_or(0),
        )
    }

    /// Total RAM: static sections plus the peak stack.
    pub fn ram(&self) -> u64 {
        self.built.sizes.ram_static() + self.stack
    }

    /// The 45 nm analytic estimate, nanojoules per inference.
    pub fn energy_nj(&self) -> f64 {
        (self.macs as f64 * PJ_PER_MAC_45NM + self.synops as f64 * PJ_PER_AC_45NM) / 1000.0
    }

    /// A human-readable table.
    pub fn table(&self, board: &Board) -> String {
        let s = self.built.sizes;
        let (lo, hi) = self.insns_range();
        let mean = self.insns_mean();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "bitspike measure: {} on {} ({})",
            self.model, board.name, board.description
        );
        let _ = writeln!(
            t,
            "  flash    .text {} B (with vector table), .rodata {} B (model file {} B inside), .data image {} B: {} B of {} B",
            s.vector_table + s.text,
            s.rodata,
            self.model_bytes,
            s.data,
            s.flash(),
            board.memory.flash
        );
        let _ = writeln!(
            t,
            "  RAM      .data {} B, .bss {} B (arena {} B inside), .uninit {} B, peak stack {} B: {} B of {} B",
            s.data,
            s.bss,
            self.arena,
            s.uninit,
            self.stack,
            self.ram(),
            board.memory.ram
        );
        let per_mac = |x: f64| {
            if self.macs > 0 {
                x / self.macs as f64
            } else {
                0.0
            }
        };
        let counted = if self.insns.is_empty() {
            let (lo, hi) = self.cycles_range;
            let _ = writeln!(
                t,
                "  compute  {:.0} cycles per inference ({} at {:.0} MHz: {:.3} ms; {} vectors, {lo}..{hi})",
                self.cycles_mean,
                board.cycle_counter.as_deref().unwrap_or("cycle counter"),
                self.clock_hz as f64 / 1e6,
                self.cycles_mean / (self.clock_hz.max(1) as f64 / 1e3),
                self.vectors
            );
            ("cycles", self.cycles_mean)
        } else {
            let _ = writeln!(
                t,
                "  compute  {mean:.0} instructions per inference (QEMU TCG count, not cycles; {} vectors, {lo}..{hi})",
                self.insns.len()
            );
            ("instructions", mean)
        };
        if self.spiking {
            let _ = writeln!(
                t,
                "           spiking: {} MACs + {} synaptic operations per inference (host counters on the same inputs)",
                self.macs, self.synops
            );
        } else {
            let _ = writeln!(
                t,
                "           {} MACs, {:.2} {} per MAC",
                self.macs,
                per_mac(counted.1),
                counted.0
            );
        }
        match (&board.energy, self.insns.is_empty()) {
            (None, true) => {
                let _ = writeln!(
                    t,
                    "  energy   datasheet estimate: none ({})",
                    board
                        .energy_note
                        .as_deref()
                        .unwrap_or("board.toml has no [energy] figures")
                );
                let _ = writeln!(
                    t,
                    "           measured: none (bitspike has no power-monitor support; see boards/README.md)"
                );
            }
            (Some(e), true) => {
                let _ = writeln!(
                    t,
                    "  energy   datasheet estimate: {:.2} uJ per inference ({:.0} cycles x {} V x {} uA/MHz; {}; not a measurement)",
                    self.datasheet_uj.unwrap_or_else(|| e.microjoules(self.cycles_mean)),
                    self.cycles_mean,
                    e.supply_v,
                    e.run_ua_per_mhz,
                    e.source
                );
                let _ = writeln!(
                    t,
                    "           measured: none (bitspike has no power-monitor support; see boards/README.md)"
                );
            }
            _ => {
                let _ = writeln!(
                    t,
                    "  energy   board figures: none (an emulated board has no datasheet figures)"
                );
            }
        }
        let _ = writeln!(
            t,
            "           45 nm analytic estimate: {:.1} nJ per inference (4.6 pJ per MAC, 0.9 pJ per accumulate; not a measurement)",
            self.energy_nj()
        );
        let _ = writeln!(
            t,
            "  check    {} vectors, {} mismatches against the host executor",
            self.vectors, self.mismatches
        );
        t
    }

    /// The same figures as one JSON object.
    pub fn json(&self) -> String {
        let s = self.built.sizes;
        let (lo, hi) = self.insns_range();
        format!(
            "{{\"board\":\"{}\",\"model\":\"{}\",\"flash\":{{\"text\":{},\"rodata\":{},\"data\":{},\"total\":{}}},\"ram\":{{\"data\":{},\"bss\":{},\"uninit\":{},\"stack\":{},\"total\":{}}},\"model_bytes\":{},\"arena\":{},\"instructions_per_inference\":{:.0},\"instructions_min\":{lo},\"instructions_max\":{hi},\"macs\":{},\"synops\":{},\"spiking\":{},\"instructions_per_mac\":{:.3},\"energy_45nm_nj\":{:.3},\"cycles_per_inference\":{:.0},\"cycles_min\":{},\"cycles_max\":{},\"clock_hz\":{},\"energy_datasheet_uj\":{},\"vectors\":{},\"mismatches\":{}}}",
            self.board,
            self.model,
            s.vector_table + s.text,
            s.rodata,
            s.data,
            s.flash(),
            s.data,
            s.bss,
            s.uninit,
            self.stack,
            self.ram(),
            self.model_bytes,
            self.arena,
            self.insns_mean(),
            self.macs,
            self.synops,
            self.spiking,
            if self.macs > 0 && !self.spiking { self.insns_mean() / self.macs as f64 } else { 0.0 },
            self.energy_nj(),
            self.cycles_mean,
            self.cycles_range.0,
            self.cycles_range.1,
            self.clock_hz,
            self.datasheet_uj
                .map_or_else(|| "null".to_string(), |e| format!("{e:.3}")),
            self.vectors,
            self.mismatches
        )
    }
}

/// Run the `bitspike` CLI with arguments that make it print one JSON object (`--json`) and
/// parse it; also the text, for a caller that keeps it.
pub fn bitspike_json(args: &[&str]) -> Result<(serde_json::Value, String), String> {
    let text = bitspike_output(args)?;
    let v = serde_json::from_str(&text)
        .map_err(|e| format!("`bitspike {}` printed no JSON object: {e}", args.join(" ")))?;
    Ok((v, text))
}

/// The number at `path` (object keys, outermost first) of `v`.
pub fn number(v: &serde_json::Value, path: &[&str]) -> Result<f64, String> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(serde_json::Value::as_f64)
        .ok_or_else(|| format!("no number at {} in {v}", path.join(".")))
}

/// Whether `model` spikes (its header's flag), and for a spiking model its mean MACs and
/// synaptic operations per inference over the inputs of `data`, counted by `bitspike ops` (the
/// runtime built for the host: spike counts depend on the data).
fn host_ops(model: &Path, data: Data<'_>) -> Result<(bool, Option<(u64, u64)>), String> {
    let bytes =
        std::fs::read(model).map_err(|e| format!("cannot read {}: {e}", model.display()))?;
    let header = bitspike_core::format::parse_header(&bytes)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let spiking = header.flags & bitspike_core::format::HEADER_FLAG_SPIKING != 0;
    if !spiking {
        return Ok((false, None));
    }
    let (flag, path) = match data {
        Data::Embedded(p) => ("--vectors", p),
        Data::Stream(p) => ("--stream", p),
    };
    let (model, path) = (model.to_string_lossy(), path.to_string_lossy());
    // `bitspike ops` prints one JSON object.
    let (v, _) = bitspike_json(&["ops", "--model", &model, flag, &path])?;
    let num = |k: &str| number(&v, &[k]).map(|x| x.round() as u64);
    Ok((true, Some((num("macs")?, num("synops")?))))
}

/// The device lines of a whole-test-set run (accuracy, memory, instructions) appended to `r`;
/// an error carrying `r` when any output differs from the host's.
pub fn device_lines(r: &mut String, board: &str, f: &Figures) -> Result<(), String> {
    use std::fmt::Write as _;
    let correct = f.correct.ok_or("the board reported no accuracy")?;
    let _ = writeln!(
        r,
        "  device     {board}: {:.2} % ({} of {} test images; {} outputs differ from the host's)",
        100.0 * correct as f64 / f.vectors.max(1) as f64,
        correct,
        f.vectors,
        f.mismatches
    );
    let _ = writeln!(
        r,
        "  memory     flash {} B (model file {} B), RAM {} B (arena {} B, peak stack {} B)",
        f.built.sizes.flash(),
        f.model_bytes,
        f.ram(),
        f.arena,
        f.stack
    );
    let _ = writeln!(
        r,
        "  device     {:.0} instructions per inference (QEMU counts, not cycles)",
        f.insns_mean()
    );
    if f.mismatches != 0 {
        return Err(format!(
            "{r}the device disagrees with the host integer executor"
        ));
    }
    Ok(())
}

/// Build and run with instruction counting; the run must pass.
pub fn measured(
    board: &Board,
    label: &str,
    model: &Path,
    data: Data<'_>,
) -> Result<Figures, String> {
    measured_with(board, label, model, data, &[])
}

/// [`measured`] with the board app built with cargo `features` (e.g. `event-driven`).
pub fn measured_with(
    board: &Board,
    label: &str,
    model: &Path,
    data: Data<'_>,
    features: &[&str],
) -> Result<Figures, String> {
    measured_on(board, label, model, data, features, None)
}

/// Build and run on `board`: under QEMU with instruction counting for an emulated board,
/// through the debug probe `probe` picks (or the only one) for a real board.
pub fn measured_on(
    board: &Board,
    label: &str,
    model: &Path,
    data: Data<'_>,
    features: &[&str],
    probe: Option<&str>,
) -> Result<Figures, String> {
    if board.qemu.is_none() {
        if let Data::Stream(_) = data {
            return Err(format!(
                "{} is a real board: it takes embedded golden vectors, not a stream (streams need semihosting)",
                board.name
            ));
        }
    }
    let built = board::build_with(board, model, data, features)?;
    let run = if board.qemu.is_some() {
        board::run(board, &built, true, RUN_TIMEOUT)?
    } else {
        on_probe(board, &built, probe, &mut |_| {})?
    };
    let ops = host_ops(model, data)?;
    figures(board, label, built, run, ops)
}

/// Flash and run a built app on a real board through its probe (`probe-rs`), at most
/// [`RUN_TIMEOUT`] seconds; every decoded log line goes to `echo`.
pub fn on_probe(
    board: &Board,
    built: &Built,
    probe: Option<&str>,
    echo: &mut dyn FnMut(&str),
) -> Result<Run, String> {
    let target = board.probe.as_ref().ok_or_else(|| {
        format!(
            "{}: board.toml has no [probe] section: neither emulated nor reachable by a probe",
            board.name
        )
    })?;
    let mut p = crate::probe::ProbeRs::open(&target.chip, probe, target.speed_khz)?;
    let mut decoder = crate::probe::DefmtPrint::start(&built.elf)?;
    crate::probe::session(
        &mut p,
        &mut decoder,
        &built.elf,
        std::time::Duration::from_secs(RUN_TIMEOUT),
        echo,
    )
}

/// The figures of a finished run on `board`, or why the run does not count: it did not pass,
/// an emulated run lacks an instruction count per vector, or a real board reported another
/// clock than its `board.toml` or no cycles. `ops` is [`host_ops`]'s answer for the model.
pub fn figures(
    board: &Board,
    label: &str,
    built: Built,
    run: Run,
    ops: (bool, Option<(u64, u64)>),
) -> Result<Figures, String> {
    let vectors = run.field("vectors").unwrap_or(0);
    if !run.passed() || vectors == 0 {
        print_failure(&run);
        return Err(format!("{label} on {} did not pass", board.name));
    }
    let clock_hz = run.field("clock").unwrap_or(0);
    let (mut cycles_mean, mut cycles_range, mut datasheet_uj) = (0.0, (0, 0), None);
    if board.qemu.is_some() {
        if run.insns.len() as u64 != vectors {
            return Err(format!(
                "{label} on {}: {} instruction counts for {vectors} vectors",
                board.name,
                run.insns.len()
            ));
        }
    } else {
        let sum = run.field("cycles_sum").unwrap_or(0);
        if sum == 0 {
            return Err(format!(
                "{label} on {}: the board counted no cycles",
                board.name
            ));
        }
        cycles_mean = sum as f64 / vectors as f64;
        cycles_range = (
            run.field("cycles_min").unwrap_or(0),
            run.field("cycles_max").unwrap_or(0),
        );
        let mhz = board.clock_mhz.unwrap_or(0.0);
        if clock_hz != (mhz * 1e6).round() as u64 {
            return Err(format!(
                "{label} on {}: the firmware set up {clock_hz} Hz but board.toml says clock_mhz = {mhz}: fix one of them",
                board.name
            ));
        }
        datasheet_uj = board.energy.as_ref().map(|e| e.microjoules(cycles_mean));
    }
    let (spiking, host_ops) = ops;
    let (macs, synops) = match host_ops {
        Some(ops) if spiking => ops,
        _ => (run.field("macs").unwrap_or(0), 0),
    };
    Ok(Figures {
        board: board.name.clone(),
        model: label.to_string(),
        model_bytes: run.field("model").unwrap_or(0),
        arena: run.field("arena").unwrap_or(0),
        stack: run.field("stack").unwrap_or(0),
        macs,
        synops,
        spiking,
        vectors,
        mismatches: run.field("mismatches").unwrap_or(0),
        cycles: run.field("cycles").unwrap_or(0),
        cycles_mean,
        cycles_range,
        clock_hz,
        datasheet_uj,
        correct: run.field("correct"),
        layer_insns: run
            .layers
            .first()
            .map(|c| {
                c.iter()
                    .scan(0u64, |prev, &n| {
                        let d = n.saturating_sub(*prev);
                        *prev = n;
                        Some(d)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        insns: run.insns,
        built,
    })
}

/// `cargo xtask measure --board B --model M [--vectors V]`.
pub fn measure(
    board: &str,
    model: &Path,
    vectors: Option<&Path>,
    stream: Option<&Path>,
    features: &[&str],
    probe: Option<&str>,
) -> Result<(), String> {
    let board = board::load(board)?;
    let label = model
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let golden;
    let data = match stream {
        Some(s) => Data::Stream(s),
        None => {
            golden = vectors_for(model, vectors, 4)?;
            Data::Embedded(&golden)
        }
    };
    let f = measured_on(&board, &label, model, data, features, probe)?;
    print!("{}", f.table(&board));
    if f.cycles > 0 && board.qemu.is_some() {
        println!(
            "  cross-check: board counter {} ticks over the last inference",
            f.cycles
        );
    }
    println!("JSON: {}", f.json());
    Ok(())
}

/// Bytes of code by which two builds of the same commit may differ with the checkout path: cargo
/// hashes the firmware and shared crates (path dependencies outside the boards workspace) with
/// their absolute path, which changes their symbol names and with them, now and then, a few of
/// LLVM's inlining decisions in the board app (measured: 4 bytes of the Armv6-M app's `run`).
pub const CODE_SLACK: u64 = 64;

/// Whether two committed tables (expected conformance output, sizes) agree: the same lines,
/// with the same words, except that in the whitespace-separated columns `loose` (0-based) the
/// numbers may differ by at most [`CODE_SLACK`].
pub fn tables_agree(old: &str, new: &str, loose: &[usize]) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (
                x.split_whitespace().collect(),
                y.split_whitespace().collect(),
            );
            xs.len() == ys.len()
                && xs.iter().zip(&ys).enumerate().all(|(k, (p, q))| {
                    p == q
                        || (loose.contains(&k) && !x.starts_with('#') && {
                            match (p.parse::<u64>(), q.parse::<u64>()) {
                                (Ok(p), Ok(q)) => p.abs_diff(q) <= CODE_SLACK,
                                _ => false,
                            }
                        })
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Sizes;

    #[test]
    fn tables_agree_within_the_code_slack_only() {
        let old = "# header 1 2\nkinds-w2  8  0  419727..531246  2812  1100  72912  3976\n";
        let same = old.to_string();
        let slack = old.replace("72912", "72908");
        let far = old.replace("72912", "72812");
        let stack = old.replace("2812", "2816");
        let header = old.replace("header 1 2", "header 1 3");
        assert!(tables_agree(old, &same, &[6]));
        assert!(tables_agree(old, &slack, &[6]));
        assert!(!tables_agree(old, &slack, &[]), "an exact column");
        assert!(!tables_agree(old, &far, &[6]), "beyond the slack");
        assert!(!tables_agree(old, &stack, &[6]), "another column");
        assert!(!tables_agree(old, &header, &[2]), "comment lines exactly");
        assert!(
            !tables_agree(old, &format!("{old}x\n"), &[6]),
            "a line more"
        );
    }

    /// A finished real-board run as the probe session returns it.
    fn run_with(board: &str, cycles_sum: u64, vectors: u64, clock: u64) -> Run {
        let log = format!(
            "bitspike-result board={board} vectors={vectors} mismatches=0 arena=7840 stack=1940 model=7096 macs=510912 cycles=1 cycles_min=90 cycles_max=110 cycles_sum={cycles_sum} clock={clock}\nbitspike-exit code=0\n"
        );
        Run {
            exit: Some(0),
            timed_out: false,
            result: board::result_fields(&log),
            log,
            stderr: String::new(),
            insns: Vec::new(),
            layers: Vec::new(),
        }
    }

    fn built() -> Built {
        Built {
            elf: PathBuf::from("app.elf"),
            sizes: Sizes::default(),
            marks: None,
            layer_mark: None,
        }
    }

    /// Datasheet energy per inference from the cycles, by hand for each real board:
    /// 4 vectors, 4 000 000 cycles in all, so 1 000 000 cycles per inference; energy in uJ is
    /// V x uA/MHz x cycles / 10^6.
    #[test]
    fn energy_per_inference_of_every_real_board_by_hand() {
        let cases: [(&str, u64, Option<f64>, f64); 4] = [
            // 3.0 V x 238 uA/MHz x 10^6 cycles / 10^6 = 714 uJ; 10^6 cycles at 168 MHz.
            ("stm32f4-discovery", 168_000_000, Some(714.0), 5.952),
            // 3.3 V x 110 uA/MHz = 363 uJ; at 120 MHz 8.333 ms.
            ("nucleo-l4r5zi", 120_000_000, Some(363.0), 8.333),
            // 3.0 V x 51.6 uA/MHz = 154.8 uJ; at 64 MHz 15.625 ms.
            ("nrf52840-dk", 64_000_000, Some(154.8), 15.625),
            // No datasheet run current: no energy figure is made up; at 133 MHz 7.519 ms.
            ("rpi-pico", 133_000_000, None, 7.519),
        ];
        for (name, clock, uj, ms) in cases {
            let b = board::load(name).unwrap();
            assert!(
                b.qemu.is_none() && b.probe.is_some(),
                "{name} is a real board"
            );
            let f = figures(
                &b,
                "m",
                built(),
                run_with(name, 4_000_000, 4, clock),
                (false, None),
            )
            .unwrap();
            assert_eq!(f.cycles_mean, 1_000_000.0, "{name}");
            assert_eq!(f.cycles_range, (90, 110), "{name}");
            match (f.datasheet_uj, uj) {
                (Some(got), Some(want)) => assert!((got - want).abs() < 1e-9, "{name}: {got} uJ"),
                (None, None) => assert!(b.energy_note.is_some(), "{name} says why it has none"),
                other => panic!("{name}: {other:?}"),
            }
            let table = f.table(&b);
            assert!(
                table.contains(&format!("{ms:.3} ms")),
                "{name}: the time at {clock} Hz in\n{table}"
            );
            assert!(table.contains("cycles per inference"), "{table}");
            assert!(!table.contains("instructions per inference"), "{table}");
            let json: serde_json::Value = serde_json::from_str(&f.json()).unwrap();
            assert_eq!(number(&json, &["cycles_per_inference"]), Ok(1e6));
            assert_eq!(number(&json, &["clock_hz"]), Ok(clock as f64));
        }
    }

    #[test]
    fn a_clock_other_than_the_board_data_fails() {
        let b = board::load("stm32f4-discovery").unwrap();
        let e = figures(
            &b,
            "m",
            built(),
            run_with(&b.name, 4_000, 4, 16_000_000),
            (false, None),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("16000000 Hz") && e.contains("clock_mhz = 168"),
            "{e}"
        );
    }

    #[test]
    fn a_real_board_that_counted_no_cycles_or_did_not_pass_gives_no_figures() {
        let b = board::load("nrf52840-dk").unwrap();
        let e = figures(
            &b,
            "m",
            built(),
            run_with(&b.name, 0, 4, 64_000_000),
            (false, None),
        )
        .err()
        .unwrap();
        assert!(e.contains("counted no cycles"), "{e}");
        let mut r = run_with(&b.name, 4_000, 4, 64_000_000);
        r.exit = Some(1);
        assert!(figures(&b, "m", built(), r, (false, None)).is_err());
    }

    #[test]
    fn every_board_names_a_way_to_run_it() {
        for b in board::all().unwrap() {
            match (&b.qemu, &b.probe) {
                (Some(_), None) => assert!(b.energy.is_none(), "{}", b.name),
                (None, Some(p)) => {
                    assert!(!p.chip.is_empty());
                    assert!(
                        b.clock_mhz.is_some() && b.cycle_counter.is_some(),
                        "{}",
                        b.name
                    );
                    assert!(b.energy.is_some() || b.energy_note.is_some(), "{}", b.name);
                }
                _ => panic!("{}: exactly one of [qemu] and [probe]", b.name),
            }
        }
    }
}
