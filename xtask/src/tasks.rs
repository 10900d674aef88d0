//! The board tasks `qemu`, `flash`, `size` and `measure`, and the figures and helpers the others share
//! (`bench` and `conformance` have modules of their own).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use crate::board::Data;
use crate::board::{self, Board, Built, Run};
pub use crate::figures::{device_lines, figures, Figures};

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

/// Check what a board task is given before anything is built or written: the model loads, the
/// golden vectors or the stream were made for a model of its shapes, and the model fits the
/// board (`bitspike inspect --board`: the host's fit check from the apps' measured sizes). Each
/// failure is one line naming the file or the board.
pub fn precheck(board: &Board, model: &Path, data: Option<Data<'_>>) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let bytes = read(model)?;
    let file = bitspike_core::format::ModelFile::parse(&bytes)
        .map_err(|e| format!("{}: {e}", model.display()))?;
    let (inputs, outputs) = (file.input().shape.len(), file.output().shape.len());
    let (path, found) = match data {
        Some(Data::Embedded(v)) => {
            let b = read(v)?;
            let parsed = bitspike_core::vectors::Vectors::parse(&b)
                .map_err(|e| format!("{}: {e}", v.display()))?;
            (v, (parsed.input_len(), parsed.output_len()))
        }
        Some(Data::Stream(s)) => {
            let mut head = [0u8; bitspike_core::vectors::STREAM_HEADER_LEN];
            let mut f =
                std::fs::File::open(s).map_err(|e| format!("cannot read {}: {e}", s.display()))?;
            std::io::Read::read_exact(&mut f, &mut head)
                .map_err(|_| format!("{}: not a stream file (too short)", s.display()))?;
            let h = bitspike_core::vectors::StreamHeader::parse(&head)
                .map_err(|e| format!("{}: {e}", s.display()))?;
            (s, (h.input_len, h.output_len))
        }
        None => (model, (inputs, outputs)),
    };
    if found != (inputs, outputs) {
        return Err(format!(
            "{} holds {} input codes -> {} outputs per vector, but {} takes {inputs} -> {outputs}: made for another model",
            path.display(),
            found.0,
            found.1,
            model.display()
        ));
    }
    let m = model.to_string_lossy();
    bitspike_output(&["inspect", &m, "--board", &board.name]).map_err(|e| {
        // The host's own error line, without the command around it.
        let host = e.rsplit("error: ").next().unwrap_or(&e).trim();
        format!("{}: {host}", model.display())
    })?;
    Ok(())
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
    precheck(
        &board,
        model,
        stream.map(Data::Stream).or(vectors.map(Data::Embedded)),
    )?;
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
    precheck(&board, model, vectors.map(Data::Embedded))?;
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

/// Export `run` (with the export flags `extra`) to the model file `model` and its whole test
/// split to the stream file `stream`, then stream every test image through `board`; the run
/// must pass.
pub fn export_and_stream(
    board: &Board,
    label: &str,
    run: &str,
    extra: &[&str],
    (model, stream): (&str, &str),
) -> Result<Figures, String> {
    let mut a = vec!["export", "--run", run];
    a.extend(extra);
    a.extend(["--out", model, "--stream", stream]);
    bitspike(&a)?;
    println!("\n==> all test images through {model} on {}", board.name);
    measured(board, label, model.as_ref(), Data::Stream(stream.as_ref()))
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
    precheck(
        &board,
        model,
        stream.map(Data::Stream).or(vectors.map(Data::Embedded)),
    )?;
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
