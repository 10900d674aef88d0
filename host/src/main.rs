//! The `bitspike` command-line tool.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bitspike::builtin::{self, Arch};
use bitspike::report::Summary;
use bitspike_core::cost::energy_45nm_pj;
use bitspike_core::def::random::Rng;
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
    /// Write a built-in architecture with deterministic random weights (for benchmarks and
    /// conformance runs, where random weights serve).
    Model {
        /// Architecture.
        #[arg(long, value_enum)]
        arch: Arch,
        /// Weight bit width, 2..=8 (the demo architecture has its own mix).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=8))]
        bits: u8,
        /// Seed of the weights.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write the model file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a model with the host executor (the runtime built for the host) on inputs and write
    /// them with the outputs as golden vectors for a board.
    Golden {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// Number of vectors: all-zero, all-maximum, then random codes.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write the vector file.
        #[arg(long)]
        out: PathBuf,
        /// Add 1 to the first expected output of vector K: a deliberately wrong file, with which
        /// a board run must fail (the runner's self-test).
        #[arg(long, value_name = "K")]
        perturb: Option<usize>,
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
        Command::Model {
            arch,
            bits,
            seed,
            out,
        } => {
            let bytes = write(&builtin::build(arch, bits, seed))
                .with_context(|| format!("exporting {arch:?}"))?;
            write_file(&out, &bytes)?;
            println!("wrote {} ({} bytes)", out.display(), bytes.len());
            Ok(())
        }
        Command::Golden {
            model,
            count,
            seed,
            out,
            perturb,
        } => golden(&model, count as usize, seed, &out, perturb),
    }
}

fn load<'a>(bytes: &'a [u8], path: &std::path::Path) -> Result<Model<'a>> {
    Model::load(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Write `bytes` to `path`, creating its folder; the file appears whole or not at all.
fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn golden(
    path: &std::path::Path,
    count: usize,
    seed: u64,
    out: &std::path::Path,
    perturb: Option<usize>,
) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let model = load(&bytes, path)?;
    let (n, levels) = (model.input_len(), model.file().input().levels);
    let mut rng = Rng::new(seed);
    let inputs: Vec<Vec<u8>> = (0..count)
        .map(|k| match k {
            0 => vec![0; n],
            1 => vec![levels; n],
            _ => rng.codes(n, levels),
        })
        .collect();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model
        .bind(&mut arena)
        .map_err(|e| anyhow::anyhow!("binding the arena: {e}"))?;
    let mut outputs = Vec::with_capacity(count);
    for input in &inputs {
        let mut o = vec![0i32; model.output_len()];
        interp
            .run(input, &mut o)
            .map_err(|e| anyhow::anyhow!("running {}: {e}", path.display()))?;
        outputs.push(o);
    }
    if let Some(k) = perturb {
        let first = outputs
            .get_mut(k)
            .and_then(|o| o.first_mut())
            .with_context(|| format!("--perturb {k}: there are only {count} vectors"))?;
        *first = first.wrapping_add(1);
    }
    let file = bitspike_core::vectors::write(&inputs, &outputs).context("vector lengths differ")?;
    write_file(out, &file)?;
    println!("wrote {} ({count} vectors)", out.display());
    Ok(())
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
    let def = builtin::demo(seed);
    let bytes = write(&def).context("exporting the demo network")?;
    write_file(out, &bytes)?;
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
    for (name, input) in builtin::demo_inputs(seed) {
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
