//! The `bitspike` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bitspike::{demo, report::Summary};
use bitspike_core::cost::energy_45nm_pj;
use bitspike_core::format::writer::write;
use bitspike_rt::{argmax, Model};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bitspike",
    version,
    about = "Quantized and spiking networks, from host to microcontroller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Export the built-in demo network, run it through the integer runtime and print its costs.
    Demo {
        /// Where to write the model file.
        #[arg(long, default_value = "target/bitspike-demo.bsm")]
        out: PathBuf,
        /// Seed of the demo network's weights.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Validate a model file and print its layers and costs.
    Inspect {
        /// The model file.
        model: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo { out, seed } => run_demo(&out, seed),
        Command::Inspect { model } => inspect(&model),
    }
}

fn load<'a>(bytes: &'a [u8], path: &std::path::Path) -> Result<Model<'a>> {
    Model::load(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn inspect(path: &std::path::Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let model = load(&bytes, path)?;
    let h = model.file().header();
    println!(
        "{}: format version {}, written by bitspike {}.{}.{}",
        path.display(),
        h.version,
        h.producer >> 16,
        (h.producer >> 8) & 0xff,
        h.producer & 0xff
    );
    print!("{}", Summary::of(model.file()));
    Ok(())
}

fn run_demo(out: &std::path::Path, seed: u64) -> Result<()> {
    println!(
        "bitspike demo: the built-in residual CNN (deterministic random weights, seed {seed})."
    );
    println!("Its weights are not trained, so its outputs are not predictions; it shows the path");
    println!("from definition to integer inference and what the model costs.\n");
    let def = demo::model(seed);
    let bytes = write(&def).context("exporting the demo network")?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, &bytes).with_context(|| format!("cannot write {}", out.display()))?;
    // Read back what was written: the file on disk is what a board would embed.
    let bytes = std::fs::read(out).with_context(|| format!("cannot read {}", out.display()))?;
    let model = load(&bytes, out)?;
    let summary = Summary::of(model.file());
    print!("{summary}");
    println!("wrote {} ({} bytes)\n", out.display(), bytes.len());

    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model
        .bind(&mut arena)
        .map_err(|e| anyhow::anyhow!("binding the arena: {e}"))?;
    println!(
        "integer inference with bitspike-rt on the host ({} B arena):",
        model.arena_bytes()
    );
    for (name, input) in demo::inputs(seed) {
        let mut logits = vec![0i32; model.output_len()];
        interp
            .run(&input, &mut logits)
            .map_err(|e| anyhow::anyhow!("running the demo network: {e}"))?;
        let ops = interp.total_ops();
        println!(
            "  {name:<7} logits {:?} argmax {} | {} MACs executed",
            logits,
            argmax(&logits),
            ops.macs
        );
        if ops.macs > summary.macs() {
            bail!("executed more MACs than the analytic count: counters are wrong");
        }
    }
    let pj = energy_45nm_pj(summary.macs(), 0);
    println!(
        "\nenergy per inference, 45 nm analytic estimate (4.6 pJ/MAC; not a measurement): {:.1} nJ",
        pj / 1000.0
    );
    println!(
        "(padded positions are skipped, so executed MACs are at most the analytic {})",
        summary.macs()
    );
    Ok(())
}
