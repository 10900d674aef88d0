//! The command line: every subcommand, its arguments and their defaults (clap).

use super::costs::CostsCommand;
use anyhow::{bail, Result};
use bitspike::builtin::Arch;
use bitspike::config::{Optimizer, Schedule, TrainConfig};
use bitspike::data::{self, DatasetName};
use bitspike::mps::{CostKind, Searcher};
use bitspike::mps_report::Choice;
use bitspike::net::TrainArch;
use bitspike::quant::{ActQuantizer, WeightQuantizer};
use bitspike::snn::AlignMode;
use bitspike::train::RunDir;
use clap::{Args, Parser, Subcommand, ValueEnum};
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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DeviceArg {
    /// CUDA when libtorch sees a GPU, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
}

#[derive(Args, Clone)]
pub(crate) struct Runtime {
    /// Where to train and evaluate.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub(crate) device: DeviceArg,
    /// Torch CPU threads (default: the machine's cores, at most 4; on a machine shared with a
    /// busy process one thread can be several times faster than two).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Folder of the datasets (default: $BITSPIKE_DATA, else .bitspike/data of the source tree).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
}

impl Runtime {
    pub(crate) fn device(&self) -> Result<tch::Device> {
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1)
        });
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        tch::set_num_threads(threads as i32);
        Ok(match self.device {
            DeviceArg::Auto => tch::Device::cuda_if_available(),
            DeviceArg::Cpu => tch::Device::Cpu,
            DeviceArg::Cuda => {
                if !tch::Cuda::is_available() {
                    bail!("--device cuda: libtorch sees no CUDA GPU (this build is CPU-only unless set up with `cargo xtask setup --cuda`)");
                }
                tch::Device::Cuda(0)
            }
        })
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(data::default_dir)
    }
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
        /// Also write golden vectors (the first N test images with the host integer outputs).
        #[arg(long)]
        vectors: Option<PathBuf>,
        /// Number of golden vectors.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(i64).range(1..))]
        count: i64,
        /// Also write the whole test split as a stream file for a board (inputs, host integer
        /// outputs and labels; `cargo xtask qemu --stream`).
        #[arg(long)]
        stream: Option<PathBuf>,
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

#[derive(Args)]
pub(crate) struct SnnArgs {
    /// The QAC run folder (its converted parameters are saved there as snn.json).
    #[arg(long)]
    pub(crate) run: PathBuf,
    /// Temporal alignment between layers of different timesteps.
    #[arg(long, value_enum, default_value_t = AlignMode::Average)]
    pub(crate) align: AlignMode,
    /// Calibration epochs over the calibration images (0: none).
    #[arg(long, default_value_t = 8)]
    pub(crate) calibrate: usize,
    /// Unlabelled training images the calibration uses.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) calibration_images: i64,
    /// Calibration learning rate (Adam, relative to each layer's threshold).
    #[arg(long, default_value_t = 0.002)]
    pub(crate) calibration_lr: f64,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) limit: Option<i64>,
    /// Write the spiking model file here (and run it with integers on the host).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Also write the same network as a quantized (non-spiking) model, for cost comparisons.
    #[arg(long)]
    pub(crate) ann_out: Option<PathBuf>,
    /// Golden vectors of the spiking model (the first N test images).
    #[arg(long)]
    pub(crate) vectors: Option<PathBuf>,
    /// Number of golden vectors.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) count: i64,
    /// The whole test set with the host integer outputs, for a board run.
    #[arg(long)]
    pub(crate) stream: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) rt: Runtime,
}

/// Which child of a search run (`bitspike train mps`) to use; ignored for other runs.
#[derive(Args, Clone, Copy, Debug, Default)]
pub(crate) struct PointArgs {
    /// The K-th point of the run's Pareto front (0 = cheapest; `bitspike mps front`).
    #[arg(long, value_name = "K")]
    pub(crate) pareto_point: Option<usize>,
    /// The most accurate front point with at most this many BOPs (eq. S13).
    #[arg(long, value_name = "BOPS")]
    pub(crate) max_bops: Option<f64>,
    /// The most accurate front point with at most this many bytes of RAM by eq. S14.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_s14_ram: Option<f64>,
    /// The most accurate front point that runs in at most this many milliseconds on the
    /// front's board (`mps front --board B`: its measured costs at its clock).
    #[arg(long, value_name = "MS")]
    pub(crate) max_ms: Option<f64>,
    /// The most accurate front point whose board app with the model takes at most this many
    /// bytes of flash on the front's board.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_flash: Option<f64>,
    /// The most accurate front point whose board app with the arena takes at most this many
    /// bytes of RAM on the front's board (the S14 figure's budget is --max-s14-ram).
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_ram: Option<f64>,
    /// The most accurate front point that takes at most this many microjoules per inference
    /// on the front's board (its datasheet run current).
    #[arg(long, value_name = "UJ")]
    pub(crate) max_uj: Option<f64>,
}

impl PointArgs {
    pub(crate) fn choice(&self) -> Choice {
        Choice {
            point: self.pareto_point,
            max_bops: self.max_bops,
            max_s14_ram: self.max_s14_ram,
            max_ms: self.max_ms,
            max_flash: self.max_flash,
            max_ram: self.max_ram,
            max_uj: self.max_uj,
        }
    }

    pub(crate) fn given(&self) -> bool {
        self.pareto_point.is_some()
            || self.max_bops.is_some()
            || self.max_s14_ram.is_some()
            || self.max_ms.is_some()
            || self.max_flash.is_some()
            || self.max_ram.is_some()
            || self.max_uj.is_some()
    }
}

#[derive(Subcommand)]
pub(crate) enum SsqlCommand {
    /// Linear evaluation and fine-tuning of a pretrained encoder, each quantized after training
    /// at every bit width; weight statistics; optionally LSQ from the linear-evaluated network.
    /// Writes results.json and one exportable run folder per (network, bit width).
    Eval {
        /// The pretraining run.
        #[arg(long)]
        run: PathBuf,
        /// Evaluation dataset (default: the pretraining one; another one is a transfer).
        #[arg(long, value_enum)]
        on: Option<DatasetName>,
        /// Where to write (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
        /// Bit widths, comma-separated (fp, 8w8a, 4w4a, 2w4a, ...).
        #[arg(long, value_delimiter = ',')]
        bits: Option<Vec<String>>,
        /// Linear evaluation epochs.
        #[arg(long)]
        linear_epochs: Option<usize>,
        /// Linear evaluation rate (on standardised features).
        #[arg(long)]
        linear_lr: Option<f64>,
        /// Fine-tuning epochs (0: no fine-tuning).
        #[arg(long)]
        finetune_epochs: Option<usize>,
        /// Fine-tuning rate.
        #[arg(long)]
        finetune_lr: Option<f64>,
        /// Training images that calibrate the activation ranges.
        #[arg(long)]
        calibration: Option<i64>,
        /// Re-estimate BatchNorm statistics of the quantized network at each bit width.
        #[arg(long)]
        bn_per_bits: bool,
        /// Quantize the first layer's output and the features the head reads at this width at
        /// every bit width (as the first and last layers' weights stay at 8 bits).
        #[arg(long)]
        edge_act_bits: Option<u8>,
        /// Calibrate activation ranges to the clip of least squared error at each bit width
        /// instead of the observed maximum (always, for encoders pretrained that way).
        #[arg(long)]
        mse_clip: bool,
        /// Linear evaluation: train a head at each quantized bit width on the quantized,
        /// frozen encoder's features instead of quantizing the full-precision head.
        #[arg(long)]
        head_per_bits: bool,
        /// LSQ epochs from the linear-evaluated network (0: none).
        #[arg(long)]
        lsq_epochs: Option<usize>,
        /// The bit width of that LSQ training.
        #[arg(long)]
        lsq_bits: Option<String>,
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Tables in the layout of the SSQL appendix's Tables 11 and 12, weight statistics and the
    /// LSQ comparison, from evaluation folders.
    Report {
        /// Evaluation folders (`bitspike ssql eval --out`).
        #[arg(long = "eval", required = true)]
        evals: Vec<PathBuf>,
        /// Where to write results.md and results.json.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum MpsCommand {
    /// Sweep eta over a search run's bit-width model, evaluate each distinct child and keep the
    /// Pareto front (writes front.json into the run; Algorithm S1, lines 8-15).
    Front {
        /// The search run.
        #[arg(long)]
        run: PathBuf,
        /// Penalties per sweep (this many linear and this many logarithmic values).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(2..))]
        sweep: u64,
        /// Also write front.md and the probability plots (Figures S6-S11) here, and with board
        /// figures front-board.svg (accuracy against time on the board).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Report every child's instructions, time, flash and RAM on this board from its
        /// measured cost table (default: the search's `[mps] board`).
        #[arg(long)]
        board: Option<String>,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Search fronts on their board, side by side: every Pareto point's instructions, time
    /// at the board's clock, flash, RAM and energy beside its BOPs, where BOPs and time order
    /// the points differently, and which points stay Pareto-optimal in time. Writes
    /// board-fronts.{md,json} and board-fronts.svg (test accuracy against time).
    BoardFronts {
        /// `LABEL=RUN`: a search run whose front has figures on the board (`mps front --board
        /// B`, or a search with a board); every run on the same board.
        #[arg(long = "run", required = true)]
        runs: Vec<String>,
        /// The folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// The plot's title.
        #[arg(long, default_value = "Fronts on the board")]
        title: String,
    },
    /// Train a child of a search run as a run of its own: fine-tuned from the supernet's weights
    /// (Algorithm S1, line 16), or with --scratch from a fresh initialisation (standalone). The
    /// child: the chosen front point (without a choice, the most accurate one) of a One-Shot
    /// run, the most probable bit widths of an EdMIPS or DNAS search.
    Child {
        /// The search run.
        #[arg(long)]
        run: PathBuf,
        /// The run folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Train from scratch instead of from the supernet's weights.
        #[arg(long)]
        scratch: bool,
        /// Epochs (default: the search's).
        #[arg(long)]
        epochs: Option<usize>,
        /// Learning rate (default: the search's).
        #[arg(long)]
        lr: Option<f64>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        point: PointArgs,
        #[command(flatten)]
        rt: Runtime,
    },
    /// The Pareto table and plots of a search beside labelled trained runs (uniform baselines,
    /// EdMIPS and DNAS children, standalone children for the correlation).
    Report {
        /// The One-Shot search run (with its front).
        #[arg(long)]
        front: PathBuf,
        /// A trained run, `LABEL=DIR` (label `standalone` pairs with the front's children; a
        /// search run with a front adds its Pareto children).
        #[arg(long = "run", value_parser = parse_labelled)]
        runs: Vec<(String, PathBuf)>,
        /// Where to write pareto.{md,json,svg}, front.{md,json} and the probability plots.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        rt: Runtime,
    },
}

pub(crate) fn parse_labelled(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((l, p)) if !l.is_empty() && !p.is_empty() => Ok((l.to_string(), PathBuf::from(p))),
        _ => Err(format!("expected LABEL=DIR, got {s:?}")),
    }
}

#[derive(Subcommand)]
pub(crate) enum QacCommand {
    /// One QAC run: calibration (Table 3), alignment (Table 4) and timestep scaling (Table 5);
    /// uses the run's calibrated parameters (snn.json, from `bitspike snn`) when present.
    Report {
        /// The QAC run folder.
        #[arg(long)]
        run: PathBuf,
        /// Where to write qac-report.{md,json} and qac-scaling.svg (default: the run folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Evaluate on the first N test images only.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Runs of the four parameterisations: average bits, timesteps and accuracy (Figure 2/11).
    Cases {
        /// QAC run folders (one per case).
        #[arg(long = "run", required = true)]
        runs: Vec<PathBuf>,
        /// Where to write qac-cases.{md,json}.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
        #[command(flatten)]
        rt: Runtime,
    },
    /// QCFS runs (`train qac --qcfs-levels L`): step-by-step vs averaging over T (Table 8).
    Qcfs {
        /// QCFS run folders (one per L).
        #[arg(long = "run", required = true)]
        runs: Vec<PathBuf>,
        /// Where to write qac-qcfs.{md,json,svg}.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
        #[command(flatten)]
        rt: Runtime,
    },
}

#[derive(Subcommand)]
pub(crate) enum TrainCommand {
    /// Quantization-aware training (LSQ, PACT, Lloyd/HWGQ, Trainable Lloyd, QCFS).
    Qat(Box<QatArgs>),
    /// SSQL self-supervised pretraining without labels (SimSiam, BYOL or MoCo v2, each with
    /// SSQL's quantized branch or, with --baseline, without); then `bitspike ssql eval`.
    Ssql(Box<SsqlArgs>),
    /// Mixed-precision search: One-Shot MPS (one supernet for every penalty), or the EdMIPS
    /// and DNAS baselines (one search per penalty); then `bitspike mps front`.
    Mps(Box<MpsArgs>),
    /// QAC: quantization-aware training with a learned clip and level count (timesteps) per
    /// layer, for conversion to a mixed-timestep spiking network (`bitspike snn`).
    Qac(Box<QacArgs>),
}

#[derive(Args)]
pub(crate) struct MpsArgs {
    #[command(flatten)]
    pub(crate) base: QatArgs,
    /// Search algorithm.
    #[arg(long, value_enum)]
    pub(crate) searcher: Option<Searcher>,
    /// Candidate weight bit widths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) weight_candidates: Option<Vec<u8>>,
    /// Candidate activation bit widths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) act_candidates: Option<Vec<u8>>,
    /// The hardware cost penalised (`device`: instructions on --board from its measured cost
    /// table).
    #[arg(long, value_enum)]
    pub(crate) cost: Option<CostKind>,
    /// The board of `--cost device`; with another cost, the board the front reports times on.
    #[arg(long)]
    pub(crate) board: Option<String>,
    /// Penalty range `ETA0,ETA1` (EdMIPS and DNAS: one value).
    #[arg(long, value_delimiter = ',', num_args = 1..=2)]
    pub(crate) eta: Option<Vec<f64>>,
    /// Bit-width model depth (1 or 2).
    #[arg(long)]
    pub(crate) model_depth: Option<usize>,
    /// Learning rate of the bit-width model.
    #[arg(long)]
    pub(crate) lr_theta: Option<f64>,
    /// Weight of the entropy term.
    #[arg(long)]
    pub(crate) entropy_weight: Option<f64>,
    /// Training images held out (the last N) to evaluate children.
    #[arg(long)]
    pub(crate) validation: Option<i64>,
}

impl MpsArgs {
    pub(crate) fn config(&self) -> Result<TrainConfig> {
        let mut c = self.base.config_unchecked()?;
        // Lloyd weights and HWGQ activations unless chosen (the supplement's search quantizer).
        if self.base.weight_quantizer.is_none() && self.base.config.is_none() {
            c.quant.weight_quantizer = WeightQuantizer::Lloyd;
        }
        if self.base.act_quantizer.is_none() && self.base.config.is_none() {
            c.quant.act_quantizer = ActQuantizer::Hwgq;
        }
        let mut m = c.mps.take().unwrap_or_default();
        if let Some(v) = self.searcher {
            m.searcher = v;
        }
        if let Some(v) = &self.weight_candidates {
            m.weight_bits = v.clone();
        }
        if let Some(v) = &self.act_candidates {
            m.act_bits = v.clone();
        }
        if let Some(v) = self.cost {
            m.cost = v;
        }
        if let Some(v) = &self.board {
            m.board = Some(v.clone());
        }
        if let Some(v) = &self.eta {
            m.eta = [v[0], *v.last().unwrap_or(&v[0])];
        }
        if let Some(v) = self.model_depth {
            m.model_depth = v;
        }
        if let Some(v) = self.lr_theta {
            m.lr_theta = v;
        }
        if let Some(v) = self.entropy_weight {
            m.entropy_weight = v;
        }
        if let Some(v) = self.validation {
            m.validation = v;
        }
        c.mps = Some(m);
        c.check()?;
        Ok(c)
    }
}

#[derive(Args)]
pub(crate) struct SsqlArgs {
    #[command(flatten)]
    pub(crate) base: QatArgs,
    /// Self-supervised framework.
    #[arg(long, value_enum)]
    pub(crate) framework: Option<bitspike::ssql::Framework>,
    /// The framework alone, without SSQL's quantized branch.
    #[arg(long)]
    pub(crate) baseline: bool,
    /// Range of the weight bit width drawn each step, `LOW,HIGH` (inclusive).
    #[arg(long, value_delimiter = ',')]
    pub(crate) weight_range: Option<Vec<u8>>,
    /// Range of the activation bit width drawn each step, `LOW,HIGH` (inclusive).
    #[arg(long, value_delimiter = ',')]
    pub(crate) act_range: Option<Vec<u8>>,
    /// The statistics the quantized branch's BatchNorm layers normalize with.
    #[arg(long, value_enum)]
    pub(crate) quantized_bn: Option<bitspike::ssql::QuantizedBn>,
    /// Calibrate the quantized branch's activation ranges to the clip of least squared error
    /// at each drawn bit width instead of the observed maximum.
    #[arg(long)]
    pub(crate) mse_clip: bool,
    /// Projector output width.
    #[arg(long)]
    pub(crate) dim: Option<i64>,
    /// BYOL target / MoCo key encoder momentum (default: 0.99 / 0.999).
    #[arg(long)]
    pub(crate) momentum: Option<f64>,
    /// MoCo queue length.
    #[arg(long)]
    pub(crate) queue: Option<i64>,
    /// MoCo temperature.
    #[arg(long)]
    pub(crate) temperature: Option<f64>,
}

impl SsqlArgs {
    pub(crate) fn config(&self) -> Result<TrainConfig> {
        let fresh = self.base.config.is_none();
        let mut c = self.base.config_unchecked()?;
        let mut s = c.ssql.take().unwrap_or_default();
        if let Some(v) = self.framework {
            s.framework = v;
        }
        s.quantize = s.quantize && !self.baseline;
        let range = |v: &[u8], flag: &str| -> Result<[u8; 2]> {
            match v {
                [lo, hi] => Ok([*lo, *hi]),
                _ => bail!("--{flag} takes two bit widths, LOW,HIGH"),
            }
        };
        if let Some(v) = &self.weight_range {
            s.weight_bits = range(v, "weight-range")?;
        }
        if let Some(v) = &self.act_range {
            s.act_bits = range(v, "act-range")?;
        }
        if let Some(v) = self.quantized_bn {
            s.quantized_bn = v;
        }
        if let Some(v) = self.dim {
            s.dim = v;
        }
        if let Some(v) = self.momentum {
            s.momentum = v;
        }
        if let Some(v) = self.queue {
            s.queue = v;
        }
        if let Some(v) = self.temperature {
            s.temperature = v;
        }
        // The pretraining defaults (Table 10 scaled; docs/ssql/README.md), unless given.
        if fresh {
            let b = &self.base;
            if b.arch.is_none() {
                c.arch = TrainArch::Lenet;
            }
            if b.optimizer.is_none() {
                c.optimizer = Optimizer::Sgd;
            }
            if b.lr.is_none() {
                c.lr = bitspike::ssql::default_lr(s.framework);
            }
            if b.batch_size.is_none() {
                c.batch_size = 256;
            }
            if b.epochs.is_none() {
                c.epochs = 10;
            }
            if b.weight_decay.is_none() {
                c.weight_decay = 1e-4;
            }
            if b.schedule.is_none() {
                c.schedule = Schedule::Cosine;
            }
        }
        // One set of weights at every bit width: quantizers that learn nothing.
        c.quant.weight_quantizer = WeightQuantizer::MaxAbs;
        c.quant.act_quantizer = if self.mse_clip || c.quant.act_quantizer == ActQuantizer::Mse {
            ActQuantizer::Mse
        } else {
            ActQuantizer::MinMax
        };
        c.quant.first_last_bits = 8;
        c.ssql = Some(s);
        c.check()?;
        Ok(c)
    }
}

#[derive(Args)]
pub(crate) struct QacArgs {
    #[command(flatten)]
    pub(crate) base: QatArgs,
    /// Which two quantizer parameters are learned (QAC cases 1-4).
    #[arg(long, value_enum)]
    pub(crate) case: Option<bitspike::qac::QacCase>,
    /// Every layer's starting level count (timesteps).
    #[arg(long)]
    pub(crate) initial_levels: Option<f64>,
    /// QCFS baseline: freeze every layer's level count at L (case t-alpha).
    #[arg(long, value_name = "L")]
    pub(crate) qcfs_levels: Option<u16>,
    /// Weight of the mean learned level count in the loss.
    #[arg(long)]
    pub(crate) level_penalty: Option<f64>,
    /// What the level penalty weighs: every timestep alike, or each layer's timesteps by their
    /// measured cost on --board (`device`).
    #[arg(long, value_enum)]
    pub(crate) cost: Option<bitspike::qac::LevelCost>,
    /// The board of `--cost device`.
    #[arg(long)]
    pub(crate) board: Option<String>,
}

impl QacArgs {
    pub(crate) fn config(&self) -> Result<TrainConfig> {
        let mut c = self.base.config_unchecked()?;
        c.quant.act_quantizer = ActQuantizer::Qac;
        if let Some(v) = self.case {
            c.quant.qac.case = v;
        }
        if let Some(v) = self.initial_levels {
            c.quant.qac.initial_levels = v;
        }
        if let Some(v) = self.qcfs_levels {
            c.quant.qac.fixed_levels = v;
        }
        if let Some(v) = self.level_penalty {
            c.quant.qac.level_penalty = v;
        }
        if let Some(v) = self.cost {
            c.quant.qac.cost = v;
        }
        if let Some(v) = &self.board {
            c.quant.qac.board = Some(v.clone());
        }
        c.check()?;
        Ok(c)
    }
}

#[derive(Args)]
pub(crate) struct QatArgs {
    /// A TOML configuration (every key optional; flags below override it).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// The run folder to write.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Continue the interrupted run in --out.
    #[arg(long)]
    pub(crate) resume: bool,
    /// Start from these weights (a checkpoint holding this network's weights, e.g. of a
    /// pretrained or full-precision run; missing quantizer parameters initialise from data).
    #[arg(long, conflicts_with = "resume")]
    pub(crate) init: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    pub(crate) quiet: bool,
    #[arg(long, value_enum)]
    pub(crate) dataset: Option<DatasetName>,
    #[arg(long, value_enum)]
    pub(crate) arch: Option<TrainArch>,
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    #[arg(long)]
    pub(crate) batch_size: Option<i64>,
    #[arg(long, value_enum)]
    pub(crate) optimizer: Option<Optimizer>,
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    #[arg(long, value_enum)]
    pub(crate) schedule: Option<Schedule>,
    #[arg(long)]
    pub(crate) weight_decay: Option<f64>,
    #[arg(long)]
    pub(crate) seed: Option<i64>,
    /// Weight bits of hidden layers (2..=8).
    #[arg(long)]
    pub(crate) weight_bits: Option<u8>,
    /// Activation bits (2..=8).
    #[arg(long)]
    pub(crate) act_bits: Option<u8>,
    /// Weight bits of the first and last layers (2..=8).
    #[arg(long)]
    pub(crate) first_last_bits: Option<u8>,
    /// Activation bits of the first layer's output and of the features the last layer reads
    /// (2..=8; default: --act-bits).
    #[arg(long)]
    pub(crate) edge_act_bits: Option<u8>,
    #[arg(long, value_enum)]
    pub(crate) weight_quantizer: Option<WeightQuantizer>,
    #[arg(long, value_enum)]
    pub(crate) act_quantizer: Option<ActQuantizer>,
    /// Mixed precision: weight bits of every convolution and dense layer, comma-separated
    /// (`[mixed]`; `bitspike mps front` lists searched ones).
    #[arg(long, value_delimiter = ',', requires = "act_plan")]
    pub(crate) weight_plan: Option<Vec<u8>>,
    /// Mixed precision: bits of every activation quantizer, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "weight_plan")]
    pub(crate) act_plan: Option<Vec<u8>>,
    #[command(flatten)]
    pub(crate) rt: Runtime,
}

impl QatArgs {
    /// The configuration: the run's own when resuming, else `--config` or the defaults; then the
    /// flags that were given.
    pub(crate) fn config(&self) -> Result<TrainConfig> {
        let c = self.config_unchecked()?;
        c.check()?;
        Ok(c)
    }

    pub(crate) fn config_unchecked(&self) -> Result<TrainConfig> {
        let mut c = match (&self.config, self.resume) {
            (Some(p), _) => TrainConfig::from_file(p)?,
            (None, true) => RunDir(self.out.clone()).read_config()?,
            (None, false) => TrainConfig::default(),
        };
        macro_rules! set {
            ($($field:ident).+ = $value:expr) => {
                if let Some(v) = $value {
                    c.$($field).+ = v;
                }
            };
        }
        set!(dataset = self.dataset);
        set!(arch = self.arch);
        set!(epochs = self.epochs);
        set!(batch_size = self.batch_size);
        set!(optimizer = self.optimizer);
        set!(lr = self.lr);
        set!(schedule = self.schedule);
        set!(weight_decay = self.weight_decay);
        set!(seed = self.seed);
        set!(quant.weight_bits = self.weight_bits);
        set!(quant.act_bits = self.act_bits);
        set!(quant.first_last_bits = self.first_last_bits);
        if self.edge_act_bits.is_some() {
            c.quant.edge_act_bits = self.edge_act_bits;
        }
        set!(quant.weight_quantizer = self.weight_quantizer);
        set!(quant.act_quantizer = self.act_quantizer);
        set!(mixed.weight_bits = self.weight_plan.clone());
        set!(mixed.act_bits = self.act_plan.clone());
        Ok(c)
    }
}
