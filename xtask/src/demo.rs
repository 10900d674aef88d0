//! `cargo xtask demo`: the main job, end to end on the built-in default.
//!
//! 1. set up (libtorch, datasets, QEMU, the instruction counter);
//! 2. train the small CNN on Fashion-MNIST at 4-bit weights and 4-bit activations (first and last
//!    layer weights at 8 bits), quantization-aware, on the CPU (or a GPU libtorch sees);
//! 3. export the integer model file and the whole test set as a stream file;
//! 4. evaluate on the host: fake-quant accuracy (tch) and integer accuracy (bitspike-rt);
//! 5. run all 10 000 test images on the emulated board, streamed through semihosting, and check
//!    every output against the host's;
//! 6. print a report: accuracies, flash, RAM, instructions per inference, energy estimates.
//!
//! Its files go to `target/bitspike/demo/` (the run folder is replaced on every demo).

use std::process::ExitCode;

use crate::steps::Steps;
use crate::tasks::{self, bitspike, Data};
use crate::{board, root, setup};

/// Default training epochs: a few minutes on two CPU cores.
pub const EPOCHS: u64 = 6;

/// Run the demo.
pub fn run(epochs: u64, board_name: &str) -> ExitCode {
    after_setup(|| demo(epochs, board_name))
}

/// Set up what training and the boards need, then run `job` and print its report.
pub fn after_setup(job: impl FnOnce() -> Result<String, String>) -> ExitCode {
    let mut s = Steps::new();
    setup::rust(&mut s);
    setup::boards(&mut s);
    setup::libtorch(&mut s);
    setup::datasets(&mut s);
    if !s.ok() {
        return s.finish();
    }
    match job() {
        Ok(report) => {
            println!("\n{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(epochs: u64, board_name: &str) -> Result<String, String> {
    let board = board::load(board_name)?;
    let dir = root().join("target/bitspike/demo");
    let run = dir.join("run");
    let _ = std::fs::remove_dir_all(&run);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let run_s = run.to_string_lossy().into_owned();
    println!("\n==> training a 4-bit CNN on Fashion-MNIST ({epochs} epochs)");
    bitspike(&[
        "train",
        "qat",
        "--dataset",
        "fashion-mnist",
        "--arch",
        "cnn",
        "--weight-bits",
        "4",
        "--act-bits",
        "4",
        "--epochs",
        &epochs.to_string(),
        "--out",
        &run_s,
    ])?;
    println!("\n==> exporting the integer model and the test set");
    let (model, stream, eval_json) = (p("model.bsm"), p("test.bss"), p("eval.json"));
    bitspike(&[
        "export", "--run", &run_s, "--out", &model, "--stream", &stream, "--board", board_name,
    ])?;
    bitspike(&["inspect", &model])?;
    println!("\n==> host accuracy: fake-quant (tch) and integer (bitspike-rt on the host)");
    let (v, json) =
        tasks::bitspike_json(&["eval", "--run", &run_s, "--integer", &model, "--json"])?;
    std::fs::write(&eval_json, &json).map_err(|e| format!("cannot write {eval_json}: {e}"))?;
    let (fake, integer) = (
        tasks::number(&v, &["fake_quant_accuracy"])?,
        tasks::number(&v, &["integer_accuracy"])?,
    );
    println!(
        "fake-quant {:.2} %, integer {:.2} %",
        100.0 * fake,
        100.0 * integer
    );

    println!(
        "\n==> all test images on {} (streamed through semihosting)",
        board.name
    );
    let f = tasks::measured(
        &board,
        "fashion-mnist-w4a4",
        model.as_ref(),
        Data::Stream(stream.as_ref()),
    )?;
    let correct = f.correct.ok_or("the board reported no accuracy")?;
    let device = correct as f64 / f.vectors.max(1) as f64;
    let mean = f.insns_mean();
    let s = f.built.sizes;
    let mut r = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        r,
        "bitspike demo: small CNN, Fashion-MNIST, 4-bit weights and activations ({epochs} epochs)"
    );
    let _ = writeln!(
        r,
        "  accuracy   host fake-quant (tch)          {:.2} %",
        100.0 * fake
    );
    let _ = writeln!(
        r,
        "             host integer (bitspike-rt)     {:.2} %",
        100.0 * integer
    );
    let _ = writeln!(
        r,
        "             device ({})        {:.2} %  ({} of {} images; {} outputs differ from the host's)",
        board.name, 100.0 * device, correct, f.vectors, f.mismatches
    );
    let _ = writeln!(
        r,
        "  flash      {} B (.text {} B, .rodata {} B with the {} B model)",
        s.flash(),
        s.vector_table + s.text,
        s.rodata,
        f.model_bytes
    );
    let _ = writeln!(
        r,
        "  RAM        {} B (.bss {} B with the {} B arena, peak stack {} B)",
        f.ram(),
        s.bss + s.data + s.uninit,
        f.arena,
        f.stack
    );
    let _ = writeln!(
        r,
        "  compute    {:.0} instructions per inference (QEMU count, not cycles), {} MACs, {:.2} per MAC",
        mean, f.macs, mean / f.macs.max(1) as f64
    );
    let _ = writeln!(
        r,
        "  energy     45 nm analytic estimate {:.1} nJ per inference (4.6 pJ/MAC; not a measurement);\n             board figures: {}",
        f.energy_nj(),
        match (f.datasheet_uj, &board.energy) {
            (Some(uj), Some(e)) => format!("{uj:.1} uJ per inference (datasheet estimate: {})", e.source),
            _ => "none (an emulated board has no datasheet figures)".into(),
        }
    );
    let _ = writeln!(r, "  files      {}", dir.display());
    if f.mismatches != 0 || (device - integer).abs() > 1e-9 {
        return Err(format!(
            "{r}the device disagrees with the host integer executor"
        ));
    }
    Ok(r)
}
