//! The command line's root: the `bitspike` subcommands and the arguments of the small ones.

use super::args::*;
use super::costs::CostsCommand;
use super::mps::MpsCommand;
use super::qac::QacCommand;
use super::snn::SnnArgs;
use super::ssql::SsqlCommand;
use super::train::TrainCommand;
use bitspike::builtin::Arch;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "bitspike",
    version,
    about = "Quantized and spiking networks, from host to microcontroller"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Train a network.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Evaluate a trained run: fake-quant accuracy, and with --integer MODEL the integer accuracy
    /// of its exported file on the host integer executor.
    Eval {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// An exported model file of the run, evaluated with integers too (the host integer
        /// executor: the firmware runtime built for the host).
        #[arg(long, alias = "model", value_name = "MODEL")]
        integer: Option<PathBuf>,
        /// Evaluate on the first N test images only.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        point: PointArgs,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Convert a QAC run to a mixed-timestep spiking network: simulate it, calibrate its
    /// thresholds and initial potentials, export it, and run it with integers on the host.
    Snn(Box<SnnArgs>),
    /// Operations per inference counted by the runtime on the host (MACs and, for spiking
    /// models, synaptic operations, which depend on the data), as one JSON object.
    Ops {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// Inputs from a golden vector file.
        #[arg(long, conflicts_with = "stream", required_unless_present = "stream")]
        vectors: Option<PathBuf>,
        /// Inputs from a stream file.
        #[arg(long)]
        stream: Option<PathBuf>,
        /// Use at most N inputs.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
    },
    /// QAC's tables from trained runs (Markdown, JSON and SVG).
    #[command(subcommand)]
    Qac(QacCommand),
    /// Export a trained run to a model file (and golden vectors).
    Export {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
        /// The model file to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        files: TestFiles,
        /// Refuse the export if the model does not fit this board's flash and RAM (for a
        /// search run: export the most accurate front point that fits); for a board with an
        /// Armv6-M core, also size the arena for its threshold-table requantization.
        #[arg(long)]
        board: Option<String>,
        #[command(flatten)]
        point: PointArgs,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Mixed-precision search results: the front, children, and the report beside baselines.
    #[command(subcommand)]
    Mps(MpsCommand),
    /// Device-measured cost tables: the probe networks `cargo xtask costs` measures, and a
    /// model's predicted instructions, flash and RAM on a board.
    #[command(subcommand)]
    Costs(CostsCommand),
    /// Evaluate SSQL pretraining runs at every bit width and report them.
    #[command(subcommand)]
    Ssql(SsqlCommand),
    /// Validate a model file and print its layers, bit widths, timesteps, costs and arena.
    Inspect {
        /// The model file.
        model: PathBuf,
        /// Also check that it fits this board's flash and RAM.
        #[arg(long)]
        board: Option<String>,
        /// Also print each layer's scales as real numbers: requantization multipliers and
        /// shifts, spiking thresholds and initial potentials in accumulator units.
        #[arg(long)]
        scales: bool,
    },
    /// Write a model file as C sources for a C build (model.h, model.c: the bytes, the arena,
    /// input and output sizes, label names and golden vectors; docs/c.md).
    CSource {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// Also embed these golden vectors (a vector file of this model).
        #[arg(long)]
        vectors: Option<PathBuf>,
        /// Name the outputs with this dataset's classes.
        #[arg(long, value_enum)]
        labels: Option<bitspike::data::DatasetName>,
        /// The directory to write model.h and model.c into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Summarize a training run from its log.
    Report {
        /// The run folder.
        #[arg(long)]
        run: PathBuf,
    },
    /// Write a built-in architecture with deterministic random weights (benchmarks and
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
        /// Plan every tensor apart, no layer in place (every intermediate tensor survives its
        /// layer; for debugging and for comparison).
        #[arg(long)]
        no_in_place: bool,
        /// Size the arena for this board's core: a board with an Armv6-M core gets the pairs
        /// kernel's threshold tables.
        #[arg(long)]
        board: Option<String>,
    },
    /// Run a model with the host integer executor on random inputs and write golden vectors.
    Golden {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// Number of vectors: all-zero, all-maximum, then random codes (all random with
        /// `--random`).
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
        /// Random codes only, without the all-zero and all-maximum vectors (for timing kernels
        /// whose work depends on the data, such as the event-driven ones).
        #[arg(long)]
        random: bool,
    },
}
