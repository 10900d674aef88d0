//! `cargo xtask mps`: One-Shot MPS end to end on Fashion-MNIST.
//!
//! 1. set up (libtorch, datasets, QEMU, the instruction counter);
//! 2. train the One-Shot supernet of LeNet-5 (Lloyd weights, HWGQ activations, candidates
//!    {2, 4, 8} for every weight and input quantizer, BOPs penalty) once;
//! 3. sweep the penalty, evaluate every distinct child and keep the Pareto front
//!    (`bitspike mps front`);
//! 4. export one front point (`--point K`, default the middle one) with all 10 000 test images,
//!    run them on the emulated board, every output checked against the host's, and report.
//!
//! With `--baselines`, then (two jobs at a time, one torch thread each) under one budget rule:
//! every search trains `--epochs` epochs (One-Shot once; EdMIPS and DNAS once per eta value);
//! every selected architecture is fine-tuned `FINETUNE` epochs from its search's weights; every
//! model trained from scratch (the uniform Lloyd, LSQ and PACT baselines and the standalone
//! copies of One-Shot's children) trains `--epochs + FINETUNE` epochs. Then the report
//! (`bitspike mps report`) goes to `docs/mps/`.
//!
//! Files go to `target/bitspike/mps/` (run folders are replaced every time).

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, ExitCode, Stdio};

use crate::tasks::{self, bitspike, Data};
use crate::{board, root};

/// Default search epochs.
pub const EPOCHS: u64 = 10;
/// Fine-tuning epochs of a selected architecture.
pub const FINETUNE: u64 = 3;
/// EdMIPS and DNAS penalties (cost in units of the all-8-bit network's BOPs).
const BASELINE_ETAS: [&str; 5] = ["0.01", "0.03", "0.1", "0.3", "1"];
/// Penalties per sweep (linear and logarithmic each).
const SWEEP: &str = "60";
/// The network searched.
const ARCH: &str = "lenet";

/// Run it.
pub fn run(epochs: u64, board_name: &str, point: Option<usize>, baselines: bool) -> ExitCode {
    crate::demo::after_setup(|| mps(epochs, board_name, point, baselines))
}

fn mps(
    epochs: u64,
    board_name: &str,
    point: Option<usize>,
    baselines: bool,
) -> Result<String, String> {
    let board = board::load(board_name)?;
    let dir = root().join("target/bitspike/mps");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let run = p("one-shot");
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(p("front"));
    println!("\n==> One-Shot MPS supernet of LeNet-5 on Fashion-MNIST ({epochs} epochs)");
    bitspike(&[
        "train",
        "mps",
        "--dataset",
        "fashion-mnist",
        "--arch",
        ARCH,
        "--epochs",
        &epochs.to_string(),
        "--out",
        &run,
    ])?;
    println!("\n==> the front (Algorithm S1, lines 8-15)");
    bitspike(&[
        "mps",
        "front",
        "--run",
        &run,
        "--sweep",
        SWEEP,
        "--out",
        &p("front"),
    ])?;
    let front = std::fs::read_to_string(Path::new(&run).join("front.json"))
        .map_err(|e| format!("cannot read the front: {e}"))?;
    let points = front.matches("\"pareto\": true").count();
    if points == 0 {
        return Err("the front is empty".into());
    }
    let k = point.unwrap_or(points / 2);
    println!("\n==> export of front point {k} of {points}");
    let f = tasks::export_and_stream(
        &board,
        "mps-point",
        &run,
        &["--pareto-point", &k.to_string()],
        (&p("point.bsm"), &p("test.bss")),
    )?;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "bitspike mps: LeNet-5 on Fashion-MNIST, One-Shot MPS (Lloyd/HWGQ, {{2,4,8}} bits, BOPs), {epochs} epochs"
    );
    let _ = writeln!(
        r,
        "  front      {points} Pareto points (table: {}); exported point {k}",
        p("front/front.md")
    );
    tasks::device_lines(&mut r, &board.name, &f)?;
    if baselines {
        let table = compare(&dir, &run, epochs, points)?;
        let _ = writeln!(r, "  report     {table}");
    }
    let _ = writeln!(r, "  files      {}", dir.display());
    Ok(r)
}

/// One job: commands run in order, output to a log file.
pub(crate) struct Job {
    name: String,
    commands: Vec<Vec<String>>,
}

pub(crate) fn job(name: &str, commands: Vec<Vec<String>>) -> Job {
    Job {
        name: name.to_string(),
        commands,
    }
}

pub(crate) fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Run `jobs` two at a time with the release binary, one torch thread each.
pub(crate) fn pool(jobs: Vec<Job>, logs: &Path) -> Result<(), String> {
    let bin = root().join("target/release/bitspike");
    let start = |j: &Job, i: usize| -> Result<Child, String> {
        let log = logs.join(format!("{}.log", j.name));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut a = j.commands[i].clone();
        a.extend(args(&["--threads", "1"]));
        std::process::Command::new(&bin)
            .args(&a)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))
    };
    let mut queue: std::collections::VecDeque<Job> = jobs.into();
    let mut running: Vec<(Job, usize, Child)> = Vec::new();
    let mut failed = Vec::new();
    loop {
        while running.len() < 2 {
            let Some(j) = queue.pop_front() else { break };
            println!("  start {}", j.name);
            let c = start(&j, 0)?;
            running.push((j, 0, c));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        let mut k = 0;
        while k < running.len() {
            let done = running[k].2.try_wait().map_err(|e| e.to_string())?;
            match done {
                None => k += 1,
                Some(status) => {
                    let (j, i, _) = running.remove(k);
                    if !status.success() {
                        println!(
                            "  FAILED {} (log {}/{}.log)",
                            j.name,
                            logs.display(),
                            j.name
                        );
                        failed.push(j.name.clone());
                    } else if i + 1 < j.commands.len() {
                        let c = start(&j, i + 1)?;
                        running.insert(k, (j, i + 1, c));
                        k += 1;
                    } else {
                        println!("  done  {}", j.name);
                    }
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(", ")))
    }
}

/// The baselines, fine-tuned and standalone children, and the report.
fn compare(dir: &Path, search: &str, epochs: u64, points: usize) -> Result<String, String> {
    let runs = dir.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
    std::fs::create_dir_all(&runs).map_err(|e| format!("cannot create {}: {e}", runs.display()))?;
    let r = |n: &str| runs.join(n).to_string_lossy().into_owned();
    let full = (epochs + FINETUNE).to_string();
    let (e_s, e_f) = (epochs.to_string(), FINETUNE.to_string());
    let mut jobs = Vec::new();
    let mut labelled: Vec<(String, String)> = Vec::new();
    let common = ["--dataset", "fashion-mnist", "--arch", ARCH, "--quiet"];
    for (name, wq, aq, bits) in [
        ("Lloyd", "lloyd", "hwgq", &["8", "4", "2"][..]),
        ("LSQ", "lsq", "lsq", &["8", "4", "2"][..]),
        ("PACT", "max-abs", "pact", &["8", "4"][..]),
    ] {
        for b in bits {
            let id = format!("{}-w{b}a{b}", name.to_lowercase());
            let mut c = args(&["train", "qat"]);
            c.extend(args(&common));
            c.extend(args(&[
                "--epochs",
                &full,
                "--weight-quantizer",
                wq,
                "--act-quantizer",
                aq,
                "--weight-bits",
                b,
                "--act-bits",
                b,
                "--first-last-bits",
                b,
                "--out",
                &r(&id),
            ]));
            jobs.push(job(&id, vec![c]));
            labelled.push((format!("{name} w{b}a{b}"), r(&id)));
        }
    }
    for (label, searcher) in [("EdMIPS (Lloyd)", "edmips"), ("DNAS (Lloyd)", "dnas")] {
        for eta in BASELINE_ETAS {
            let id = format!("{searcher}-{eta}");
            let mut s = args(&["train", "mps"]);
            s.extend(args(&common));
            s.extend(args(&[
                "--searcher",
                searcher,
                "--eta",
                eta,
                "--epochs",
                &e_s,
                "--out",
                &r(&format!("{id}-search")),
            ]));
            let f = args(&[
                "mps",
                "child",
                "--run",
                &r(&format!("{id}-search")),
                "--epochs",
                &e_f,
                "--lr",
                "0.001",
                "--quiet",
                "--out",
                &r(&id),
            ]);
            jobs.push(job(&id, vec![s, f]));
            labelled.push((label.to_string(), r(&id)));
        }
    }
    // One-Shot's Pareto points: fine-tuned, and trained standalone for the correlation.
    let chosen: Vec<usize> = if points <= 8 {
        (0..points).collect()
    } else {
        (0..8).map(|i| i * (points - 1) / 7).collect()
    };
    for k in chosen {
        let ks = k.to_string();
        for (id, label, extra) in [
            (
                format!("one-shot-ft-{k}"),
                "One-Shot (fine-tuned)",
                &["--epochs", &e_f, "--lr", "0.001"][..],
            ),
            (
                format!("standalone-{k}"),
                "standalone",
                &["--scratch", "--epochs", &full][..],
            ),
        ] {
            let mut c = args(&["mps", "child", "--run", search, "--pareto-point", &ks]);
            c.extend(args(extra));
            c.extend(args(&["--quiet", "--out", &r(&id)]));
            jobs.push(job(&id, vec![c]));
            labelled.push((label.to_string(), r(&id)));
        }
    }
    println!(
        "\n==> baselines: {} jobs, two at a time (logs in {})",
        jobs.len(),
        runs.display()
    );
    pool(jobs, &runs)?;
    let out = root().join("docs/mps");
    // Plots of an earlier network would stay beside the new ones.
    if let Ok(d) = std::fs::read_dir(&out) {
        for e in d.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with("probabilities-")
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut c: Vec<String> = args(&["mps", "report", "--front", search]);
    for (l, p) in &labelled {
        c.push("--run".into());
        c.push(format!("{l}={p}"));
    }
    c.push("--out".into());
    c.push(out.to_string_lossy().into_owned());
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    bitspike(&refs)?;
    Ok(out.join("pareto.md").display().to_string())
}

/// `cargo xtask mps --device B`: LeNet-5's supernet searched for `B`'s measured costs (`--cost
/// device`) beside the same supernet searched for BOPs, both fronts in milliseconds on `B`
/// (`docs/mps/board-fronts.{md,json,svg}`, every front point's prediction against QEMU in
/// `docs/mps/board-predictions.md`), and the most accurate device-front point within a time
/// budget exported, run on the emulated board with `B`'s core, its measured instructions
/// against the table's prediction.
pub fn run_device(epochs: u64, board_name: &str) -> ExitCode {
    crate::demo::after_setup(|| device(epochs, board_name))
}

fn device(epochs: u64, board_name: &str) -> Result<String, String> {
    let (real, twin) = real_and_twin(board_name)?;
    let dir = fresh_dir("mps-device")?;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    // The release binary runs the jobs.
    bitspike(&["--version"])?;
    let mut jobs = Vec::new();
    for cost in ["bops", "device"] {
        let run = p(cost);
        let train = args(&[
            "train",
            "mps",
            "--dataset",
            "fashion-mnist",
            "--arch",
            ARCH,
            "--epochs",
            &epochs.to_string(),
            "--cost",
            cost,
            "--board",
            board_name,
            "--quiet",
            "--out",
            &run,
        ]);
        let front = args(&[
            "mps",
            "front",
            "--run",
            &run,
            "--sweep",
            SWEEP,
            "--out",
            &p(&format!("{cost}-front")),
        ]);
        jobs.push(job(cost, vec![train, front]));
    }
    println!("\n==> two LeNet-5 supernets on Fashion-MNIST ({epochs} epochs): BOPs and {board_name}'s measured instructions");
    pool(jobs, &dir)?;
    let out = root().join("docs/mps");
    bitspike(&[
        "mps",
        "board-fronts",
        "--run",
        &format!("BOPs (eq. S13)={}", p("bops")),
        "--run",
        &format!("{board_name} instructions={}", p("device")),
        "--out",
        &out.to_string_lossy(),
    ])?;
    // Every front point exported and run under QEMU: the prediction against the measurement.
    println!(
        "\n==> every front point exported and counted on {}",
        twin.name
    );
    let mut pred_md = format!(
        "# Predicted against measured instructions\n\nMade by `cargo xtask mps --device {board_name}`: every Pareto point of both LeNet-5 searches exported \
         (`bitspike export --pareto-point K`), its instructions predicted from the `{}` cost table (docs/costs.md) and counted under QEMU on two test images.\n\n\
         | search | point | weight bits | input bits | predicted | measured | error |\n|---|---:|---|---|---:|---:|---:|\n",
        twin.name
    );
    let mut worst = 0.0f64;
    for (label, cost) in [("BOPs (eq. S13)", "bops"), ("device", "device")] {
        let text = std::fs::read_to_string(dir.join(cost).join("front.json"))
            .map_err(|e| format!("cannot read the {cost} front: {e}"))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let points: Vec<&serde_json::Value> = v["children"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|c| c["pareto"].as_bool() == Some(true))
                    .collect()
            })
            .unwrap_or_default();
        for (k, c) in points.iter().enumerate() {
            let model = p(&format!("{cost}-{k}.bsm"));
            let vectors = p(&format!("{cost}-{k}.bsv"));
            bitspike(&[
                "export",
                "--run",
                &p(cost),
                "--pareto-point",
                &k.to_string(),
                "--out",
                &model,
                "--vectors",
                &vectors,
                "--count",
                "2",
            ])?;
            let (pred, _) = tasks::bitspike_json(&[
                "costs", "predict", "--board", board_name, "--model", &model, "--json",
            ])?;
            let predicted = pred["instructions"]
                .as_f64()
                .ok_or_else(|| format!("{model}: not predicted ({})", pred["missing"]))?;
            let f = tasks::measured(
                &twin,
                &format!("{cost}-{k}"),
                model.as_ref(),
                Data::Embedded(vectors.as_ref()),
            )?;
            let measured = f.insns_mean();
            let err = (predicted - measured) / measured.max(1.0);
            worst = worst.max(err.abs());
            let bits = |key: &str| crate::costs::json_list(&c["plan"][key]);
            let _ = writeln!(
                pred_md,
                "| {label} | {k} | {} | {} | {predicted:.0} | {measured:.0} | {:+.3} % |",
                bits("weight_bits"),
                bits("act_bits"),
                100.0 * err
            );
        }
    }
    let _ = writeln!(
        pred_md,
        "\nLargest error: {:.3} % (the check allows {:.0} %).",
        100.0 * worst,
        100.0 * crate::costs::MAX_ERROR
    );
    let pred_path = out.join("board-predictions.md");
    std::fs::write(&pred_path, &pred_md)
        .map_err(|e| format!("cannot write {}: {e}", pred_path.display()))?;
    // The budget: the middle of the device front's times.
    let front = std::fs::read_to_string(dir.join("device/front.json"))
        .map_err(|e| format!("cannot read the device front: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&front).map_err(|e| e.to_string())?;
    let mhz = real
        .clock_mhz
        .ok_or_else(|| format!("{board_name} has no clock_mhz"))?;
    let mut ms: Vec<f64> = v["children"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["pareto"].as_bool() == Some(true))
                .filter_map(|c| c["insns"].as_f64())
                .map(|n| n / (mhz * 1e3))
                .collect()
        })
        .unwrap_or_default();
    if ms.is_empty() {
        return Err("the device front has no points with device figures".into());
    }
    ms.sort_by(f64::total_cmp);
    let budget = ms[ms.len() / 2];
    let budget_s = format!("{budget:.4}");
    println!("\n==> the most accurate device-front point within {budget_s} ms on {board_name}");
    let (model, stream) = (p("point.bsm"), p("test.bss"));
    bitspike(&[
        "export",
        "--run",
        &p("device"),
        "--max-ms",
        &budget_s,
        "--board",
        board_name,
        "--out",
        &model,
        "--stream",
        &stream,
    ])?;
    let (pred, _) = tasks::bitspike_json(&[
        "costs", "predict", "--board", board_name, "--model", &model, "--json",
    ])?;
    let predicted = pred["instructions"]
        .as_f64()
        .ok_or("the table predicts nothing for the exported point")?;
    println!("\n==> all test images through it on {}", twin.name);
    let f = tasks::measured(
        &twin,
        "mps-device-point",
        model.as_ref(),
        Data::Stream(stream.as_ref()),
    )?;
    let measured = f.insns_mean();
    let err = (predicted - measured) / measured.max(1.0);
    let mut r = String::new();
    let _ = writeln!(
        r,
        "bitspike mps --device: LeNet-5 on Fashion-MNIST, One-Shot MPS (Lloyd/HWGQ, {{2,4,8}} bits) for {board_name}'s measured instructions, {epochs} epochs"
    );
    let _ = writeln!(
        r,
        "  fronts     {} (BOPs front and device front, both timed on {board_name})",
        out.join("board-fronts.md").display()
    );
    let _ = writeln!(
        r,
        "  budget     {budget_s} ms at {mhz} MHz: predicted {predicted:.0} instructions ({:.3} ms), measured {measured:.0} on {} ({:+.3} %)",
        predicted / (mhz * 1e3),
        twin.name,
        100.0 * err
    );
    let _ = writeln!(
        r,
        "  points     every Pareto point of both fronts predicted against QEMU: largest error {:.3} % ({})",
        100.0 * worst,
        pred_path.display()
    );
    tasks::device_lines(&mut r, &twin.name, &f)?;
    if err.abs().max(worst) > crate::costs::MAX_ERROR {
        return Err(format!(
            "{r}the prediction is off by more than {:.0} %",
            100.0 * crate::costs::MAX_ERROR
        ));
    }
    Ok(r)
}

/// `board_name` and the emulated board built for its target (itself when emulated), whose
/// instruction counts stand for it.
pub(crate) fn real_and_twin(board_name: &str) -> Result<(board::Board, board::Board), String> {
    let real = board::load(board_name)?;
    let twin = board::all()?
        .into_iter()
        .find(|b| b.qemu.is_some() && b.target == real.target)
        .ok_or_else(|| format!("no emulated board runs {board_name}'s target"))?;
    Ok((real, twin))
}

/// `target/bitspike/<name>`, emptied.
pub(crate) fn fresh_dir(name: &str) -> Result<std::path::PathBuf, String> {
    let dir = root().join("target/bitspike").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}
