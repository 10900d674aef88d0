//! `cargo xtask ssql`: SSQL end to end on Fashion-MNIST.
//!
//! 1. set up (libtorch, datasets, QEMU, the instruction counter);
//! 2. pretrain LeNet-5 without labels with SimSiam+SSQL (`bitspike train ssql`);
//! 3. evaluate it (`bitspike ssql eval`): linear evaluation and fine-tuning, each quantized
//!    after training at FP, 8w8a, 5w5a, 4w4a, 3w3a and 2w4a, weight statistics, LSQ from the
//!    linear-evaluated network;
//! 4. export the linear-evaluated network at `--bits` (default 4w4a) with all 10 000 test
//!    images, run them on the emulated board, every output checked against the host's.
//!
//! With `--all`, then (two jobs at a time, one torch thread each): SimSiam, BYOL and MoCo v2,
//! each plain and with SSQL, pretrained `--epochs` epochs on Fashion-MNIST and evaluated on
//! Fashion-MNIST, MNIST and the digits (resized to 28x28); the report (`bitspike ssql
//! report`) goes to `docs/ssql/`.
//!
//! Files go to `target/bitspike/ssql/` (run folders are replaced every time).

use std::fmt::Write as _;
use std::process::ExitCode;

use crate::mps::{args, job, pool};
use crate::tasks::{self, bitspike};
use crate::{board, root};

/// Default pretraining epochs.
pub const EPOCHS: u64 = 10;
/// LSQ epochs from the linear-evaluated network.
const LSQ_EPOCHS: &str = "2";
/// The encoder.
const ARCH: &str = "lenet";

/// Run it.
pub fn run(epochs: u64, board_name: &str, bits: &str, all: bool) -> ExitCode {
    crate::demo::after_setup(|| ssql(epochs, board_name, bits, all))
}

fn ssql(epochs: u64, board_name: &str, bits: &str, all: bool) -> Result<String, String> {
    let board = board::load(board_name)?;
    let dir = root().join("target/bitspike/ssql");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let (run, eval) = (p("simsiam-ssql"), p("simsiam-ssql-eval"));
    let _ = std::fs::remove_dir_all(&run);
    let _ = std::fs::remove_dir_all(&eval);
    println!(
        "\n==> SimSiam+SSQL pretraining of LeNet-5 on Fashion-MNIST, no labels ({epochs} epochs)"
    );
    bitspike(&[
        "train",
        "ssql",
        "--dataset",
        "fashion-mnist",
        "--arch",
        ARCH,
        "--epochs",
        &epochs.to_string(),
        "--out",
        &run,
    ])?;
    println!("\n==> linear evaluation and fine-tuning at every bit width");
    bitspike(&[
        "ssql",
        "eval",
        "--run",
        &run,
        "--lsq-epochs",
        LSQ_EPOCHS,
        "--out",
        &eval,
    ])?;
    let chosen = format!("{eval}/linear/{}", bits.to_ascii_lowercase());
    println!("\n==> export of the linear-evaluated network at {bits}");
    let f = tasks::export_and_stream(
        &board,
        "ssql",
        &chosen,
        &[],
        (&p("ssql.bsm"), &p("test.bss")),
    )?;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "bitspike ssql: LeNet-5 pretrained on Fashion-MNIST without labels (SimSiam+SSQL, {epochs} epochs), linear head, {bits}"
    );
    let _ = writeln!(r, "  tables     {eval}/results.json (printed above)");
    tasks::device_lines(&mut r, &board.name, &f)?;
    if all {
        let table = compare(&dir, epochs)?;
        let _ = writeln!(r, "  report     {table}");
    }
    let _ = writeln!(r, "  files      {}", dir.display());
    Ok(r)
}

/// Every framework with and without SSQL, evaluated on three sets, and the report.
fn compare(dir: &std::path::Path, epochs: u64) -> Result<String, String> {
    let runs = dir.join("runs");
    let _ = std::fs::remove_dir_all(&runs);
    std::fs::create_dir_all(&runs).map_err(|e| format!("cannot create {}: {e}", runs.display()))?;
    let r = |n: &str| runs.join(n).to_string_lossy().into_owned();
    let mut jobs = Vec::new();
    let mut evals = Vec::new();
    for framework in ["simsiam", "byol", "moco"] {
        for ssql in [false, true] {
            let id = if ssql {
                format!("{framework}-ssql")
            } else {
                framework.to_string()
            };
            let mut c = args(&[
                "train",
                "ssql",
                "--dataset",
                "fashion-mnist",
                "--arch",
                ARCH,
                "--framework",
                framework,
                "--epochs",
                &epochs.to_string(),
                "--quiet",
                "--out",
                &r(&id),
            ]);
            if !ssql {
                c.push("--baseline".into());
            }
            let mut commands = vec![c];
            for on in ["fashion-mnist", "mnist", "digits"] {
                let out = r(&format!("{id}-on-{on}"));
                commands.push(args(&[
                    "ssql",
                    "eval",
                    "--run",
                    &r(&id),
                    "--on",
                    on,
                    "--lsq-epochs",
                    LSQ_EPOCHS,
                    "--quiet",
                    "--out",
                    &out,
                ]));
                evals.push(out);
            }
            jobs.push(job(&id, commands));
        }
    }
    println!(
        "\n==> SimSiam, BYOL, MoCo v2 with and without SSQL: {} jobs, two at a time (logs in {})",
        jobs.len(),
        runs.display()
    );
    pool(jobs, &runs)?;
    let out = root().join("docs/ssql");
    let mut c = args(&["ssql", "report"]);
    for e in &evals {
        c.push("--eval".into());
        c.push(e.clone());
    }
    c.push("--out".into());
    c.push(out.to_string_lossy().into_owned());
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    bitspike(&refs)?;
    Ok(out.join("results.md").display().to_string())
}
