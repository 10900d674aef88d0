//! `cargo xtask qac`: QAC end to end on Fashion-MNIST.
//!
//! 1. set up (libtorch, datasets, QEMU, the instruction counter);
//! 2. train the small CNN with QAC (learned clip and level count per layer, max pools replaced by
//!    average pools; 4-bit hidden weights, 8-bit first and last);
//! 3. convert to a mixed-timestep spiking network, calibrate it, export it, and export the same
//!    network as a quantized (non-spiking) model (`bitspike snn`);
//! 4. run all 10 000 test images through the spiking model on the emulated board (streamed
//!    through semihosting), every output checked against the host's, and measure the quantized
//!    twin on the same board;
//! 5. write QAC's tables for the run (`bitspike qac report`) and print a report.
//!
//! Files go to `target/bitspike/qac/` (the run folder is replaced every time).

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::tasks::{self, bitspike, Data};
use crate::{board, root};

/// Default training epochs.
pub const EPOCHS: u64 = 6;

/// Run it.
pub fn run(epochs: u64, board_name: &str) -> ExitCode {
    crate::demo::after_setup(|| qac(epochs, board_name))
}

fn qac(epochs: u64, board_name: &str) -> Result<String, String> {
    let board = board::load(board_name)?;
    let dir = root().join("target/bitspike/qac");
    let run = dir.join("run");
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let run_s = run.to_string_lossy().into_owned();
    println!("\n==> QAC training of the small CNN on Fashion-MNIST ({epochs} epochs)");
    bitspike(&[
        "train",
        "qac",
        "--dataset",
        "fashion-mnist",
        "--arch",
        "cnn",
        "--epochs",
        &epochs.to_string(),
        "--out",
        &run_s,
    ])?;
    println!("\n==> conversion, calibration, export (spiking and quantized twin)");
    let (model, ann, stream) = (p("snn.bsm"), p("ann.bsm"), p("test.bss"));
    let (v, json) = tasks::bitspike_json(&[
        "snn",
        "--run",
        &run_s,
        "--out",
        &model,
        "--ann-out",
        &ann,
        "--stream",
        &stream,
        "--json",
    ])?;
    let json_path = p("snn.json");
    std::fs::write(&json_path, &json).map_err(|e| format!("cannot write {json_path}: {e}"))?;
    let get = |path: &[&str]| tasks::number(&v, path);
    let ann_acc = get(&["ann_accuracy"])?;
    let avg_t = get(&["avg_timesteps"])?;
    let (before, after) = (
        get(&["snn_before", "accuracy"])?,
        get(&["snn_after", "accuracy"])?,
    );
    let (int_acc, synops, macs, twin_macs) = (
        get(&["integer", "accuracy"])?,
        get(&["integer", "synops"])?,
        get(&["integer", "analog_macs"])?,
        get(&["integer", "ann", "twin_macs"])?,
    );
    // The 45 nm estimate from the host's counters over the whole test set.
    let energy = |macs: f64, acs: f64| (4.6 * macs + 0.9 * acs) / 1000.0;
    let timesteps = v
        .get("timesteps")
        .map(|t| t.to_string())
        .unwrap_or_default();

    println!("\n==> QAC tables of the run");
    bitspike(&["qac", "report", "--run", &run_s, "--out", &p("tables")])?;

    println!(
        "\n==> all test images through the spiking model on {}",
        board.name
    );
    let f = tasks::measured(
        &board,
        "qac-snn",
        model.as_ref(),
        Data::Stream(stream.as_ref()),
    )?;
    let correct = f.correct.ok_or("the board reported no accuracy")?;
    let device = correct as f64 / f.vectors.max(1) as f64;
    println!("\n==> the quantized twin on {}", board.name);
    let twin = tasks::measured(
        &board,
        "qac-ann",
        ann.as_ref(),
        Data::Embedded(tasks::vectors_for(ann.as_ref(), None, 8)?.as_path()),
    )?;

    let mut r = String::new();
    let _ = writeln!(
        r,
        "bitspike qac: small CNN on Fashion-MNIST, QAC case 4 (t, alpha), {epochs} epochs"
    );
    let _ = writeln!(
        r,
        "  timesteps  {timesteps} per spiking layer, average {avg_t:.2}"
    );
    let _ = writeln!(
        r,
        "  accuracy   quantized ANN (fake-quant, tch)     {:.2} %",
        100.0 * ann_acc
    );
    let _ = writeln!(
        r,
        "             SNN before calibration (float sim)  {:.2} %",
        100.0 * before
    );
    let _ = writeln!(
        r,
        "             SNN after calibration (float sim)   {:.2} %",
        100.0 * after
    );
    let _ = writeln!(
        r,
        "             SNN host integer (bitspike-rt)      {:.2} %",
        100.0 * int_acc
    );
    let _ = writeln!(
        r,
        "             SNN device ({})         {:.2} %  ({} of {} images; {} outputs differ from the host's)",
        board.name, 100.0 * device, correct, f.vectors, f.mismatches
    );
    let _ = writeln!(
        r,
        "             quantized twin, host integer        {:.2} %  (the same layers requantized to T_l levels)",
        100.0 * get(&["integer", "ann", "accuracy"])?
    );
    let _ = writeln!(
        r,
        "  work       per inference, counted on the host over the test set: SNN {macs:.0} MACs (the \
         first layer reads the analog image) + {synops:.0} synaptic operations; quantized twin \
         {twin_macs:.0} MACs"
    );
    let _ = writeln!(
        r,
        "  energy     45 nm analytic estimate (4.6 pJ/MAC, 0.9 pJ/AC; not a measurement): SNN {:.1} nJ, quantized twin {:.1} nJ",
        energy(macs, synops),
        energy(twin_macs, 0.0)
    );
    let _ = writeln!(
        r,
        "  device     SNN {:.0} instructions per inference vs quantized twin {:.0} (QEMU counts, not cycles)",
        f.insns_mean(),
        twin.insns_mean()
    );
    let _ = writeln!(
        r,
        "  memory     SNN: flash {} B (model file {} B), RAM {} B (arena {} B, peak stack {} B); twin: model file {} B, arena {} B",
        f.built.sizes.flash(),
        f.model_bytes,
        f.ram(),
        f.arena,
        f.stack,
        twin.model_bytes,
        twin.arena
    );
    let _ = writeln!(r, "  files      {} (tables in tables/)", dir.display());
    if f.mismatches != 0 || (device - int_acc).abs() > 1e-9 {
        return Err(format!(
            "{r}the device disagrees with the host integer executor"
        ));
    }
    Ok(r)
}

/// `cargo xtask qac --device B`: the small CNN trained twice with QAC on Fashion-MNIST, its
/// level penalty weighing every timestep alike (the default) and weighing each layer's
/// timesteps by their measured cost on `B`; both converted, calibrated, exported and run over
/// every test image on the emulated board with `B`'s core, their measured instructions against
/// the table's prediction; the comparison goes to `docs/qac/device.md`.
pub fn run_device(epochs: u64, board_name: &str) -> ExitCode {
    crate::demo::after_setup(|| device(epochs, board_name))
}

fn device(epochs: u64, board_name: &str) -> Result<String, String> {
    let (real, twin) = crate::mps::real_and_twin(board_name)?;
    let dir = crate::mps::fresh_dir("qac-device")?;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    bitspike(&["--version"])?;
    let mut jobs = Vec::new();
    for cost in ["timesteps", "device"] {
        let run = p(cost);
        let mut train = crate::mps::args(&[
            "train",
            "qac",
            "--dataset",
            "fashion-mnist",
            "--arch",
            "cnn",
            "--epochs",
            &epochs.to_string(),
            "--cost",
            cost,
            "--quiet",
            "--out",
            &run,
        ]);
        if cost == "device" {
            train.extend(crate::mps::args(&["--board", board_name]));
        }
        let snn = crate::mps::args(&[
            "snn",
            "--run",
            &run,
            "--out",
            &p(&format!("{cost}.bsm")),
            "--stream",
            &p(&format!("{cost}.bss")),
            "--json",
        ]);
        jobs.push(crate::mps::job(cost, vec![train, snn]));
    }
    println!("\n==> QAC of the small CNN on Fashion-MNIST ({epochs} epochs): timesteps alike, and priced by {board_name}");
    crate::mps::pool(jobs, &dir)?;
    let mut md = format!(
        "# QAC's level penalty priced by {board_name}\n\nMade by `cargo xtask qac --device {board_name}`: the small CNN trained {epochs} epochs with QAC \
         (case 4, level penalty 0.01) on Fashion-MNIST with one torch thread, its penalty weighing every timestep alike \
         or each layer's timesteps by their measured cost on {board_name} (the `{}` table, docs/costs.md); each converted, \
         calibrated, exported and run over all 10 000 test images on `{}`, its measured instructions against the table's prediction \
         (ms at {} MHz, one instruction per cycle).\n\n\
         | penalty | timesteps | SNN accuracy on the device | predicted instructions | measured | error | ms |\n|---|---|---:|---:|---:|---:|---:|\n",
        twin.name,
        twin.name,
        real.clock_mhz.unwrap_or(0.0)
    );
    let mut r = String::new();
    let mut worst = 0.0f64;
    for cost in ["timesteps", "device"] {
        let model = p(&format!("{cost}.bsm"));
        let stream = p(&format!("{cost}.bss"));
        let log = std::fs::read_to_string(dir.join(format!("{cost}.log"))).unwrap_or_default();
        // The job's output ends with `bitspike snn --json`'s object.
        let timesteps = log
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v.get("timesteps").map(|t| t.to_string()))
            .unwrap_or_default();
        let (pred, _) = tasks::bitspike_json(&[
            "costs", "predict", "--board", board_name, "--model", &model, "--json",
        ])?;
        let f = tasks::measured(
            &twin,
            &format!("qac-{cost}"),
            model.as_ref(),
            Data::Stream(stream.as_ref()),
        )?;
        let correct = f.correct.ok_or("the board reported no accuracy")?;
        if f.mismatches != 0 {
            return Err(format!("{cost}: the device disagrees with the host"));
        }
        let measured = f.insns_mean();
        let (predicted, err) = match pred["instructions"].as_f64() {
            Some(v) => (format!("{v:.0}"), Some((v - measured) / measured.max(1.0))),
            None => (format!("- (not in the table: {})", pred["missing"]), None),
        };
        if let Some(e) = err {
            worst = worst.max(e.abs());
        }
        let ms = measured / (real.clock_mhz.unwrap_or(1.0) * 1e3);
        let _ = writeln!(
            md,
            "| {cost} | {timesteps} | {:.2} % | {predicted} | {measured:.0} | {} | {ms:.3} |",
            100.0 * correct as f64 / f.vectors.max(1) as f64,
            err.map_or("-".into(), |e| format!("{:+.3} %", 100.0 * e))
        );
        let _ = writeln!(
            r,
            "  {cost:<10} timesteps {timesteps}: {:.2} % on {}, {measured:.0} instructions ({ms:.3} ms at {} MHz), predicted {predicted}",
            100.0 * correct as f64 / f.vectors.max(1) as f64,
            twin.name,
            real.clock_mhz.unwrap_or(0.0)
        );
    }
    let out = root().join("docs/qac/device.md");
    std::fs::write(&out, &md).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let head = format!(
        "bitspike qac --device: small CNN on Fashion-MNIST, QAC's level penalty priced by {board_name}, {epochs} epochs\n"
    );
    let r = format!("{head}{r}  table      {}\n", out.display());
    if worst > crate::costs::MAX_ERROR {
        return Err(format!(
            "{r}a prediction is off by more than {:.0} %",
            100.0 * crate::costs::MAX_ERROR
        ));
    }
    Ok(r)
}
