//! The `bitspike` command-line tool.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bitspike::builtin::{self, Arch};
use bitspike::config::{Optimizer, Schedule, TrainConfig};
use bitspike::data::{self, DatasetName};
use bitspike::mps::{BitPlan, CostKind, Searcher};
use bitspike::mps_report::{self, Choice, Front};
use bitspike::net::TrainArch;
use bitspike::quant::{ActQuantizer, WeightQuantizer};
use bitspike::report::Summary;
use bitspike::snn::{self as snn_sim, AlignMode, Calibration, Snn};
use bitspike::train::{self, RunDir, TrainOptions};
use bitspike::{boards, eval, export};
use bitspike_core::def::random::Rng;
use bitspike_core::format::writer::write;
use bitspike_rt::Model;
use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    /// CUDA when libtorch sees a GPU, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
}

#[derive(Args, Clone)]
struct Runtime {
    /// Where to train and evaluate.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    device: DeviceArg,
    /// Torch CPU threads (default: the machine's cores, at most 4; on a machine shared with a
    /// busy process one thread can be several times faster than two).
    #[arg(long)]
    threads: Option<usize>,
    /// Folder of the datasets (default: $BITSPIKE_DATA, else .bitspike/data of the source tree).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl Runtime {
    fn device(&self) -> Result<tch::Device> {
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

    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(data::default_dir)
    }
}

#[derive(Subcommand)]
enum Command {
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
struct SnnArgs {
    /// The QAC run folder (its converted parameters are saved there as snn.json).
    #[arg(long)]
    run: PathBuf,
    /// Temporal alignment between layers of different timesteps.
    #[arg(long, value_enum, default_value_t = AlignMode::Average)]
    align: AlignMode,
    /// Calibration epochs over the calibration images (0: none).
    #[arg(long, default_value_t = 8)]
    calibrate: usize,
    /// Unlabelled training images the calibration uses.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i64).range(1..))]
    calibration_images: i64,
    /// Calibration learning rate (Adam, relative to each layer's threshold).
    #[arg(long, default_value_t = 0.002)]
    calibration_lr: f64,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    limit: Option<i64>,
    /// Write the spiking model file here (and run it with integers on the host).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the same network as a quantized (non-spiking) model, for cost comparisons.
    #[arg(long)]
    ann_out: Option<PathBuf>,
    /// Golden vectors of the spiking model (the first N test images).
    #[arg(long)]
    vectors: Option<PathBuf>,
    /// Number of golden vectors.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(i64).range(1..))]
    count: i64,
    /// The whole test set with the host integer outputs, for a board run.
    #[arg(long)]
    stream: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    rt: Runtime,
}

/// Which child of a search run (`bitspike train mps`) to use; ignored for other runs.
#[derive(Args, Clone, Copy, Debug, Default)]
struct PointArgs {
    /// The K-th point of the run's Pareto front (0 = cheapest; `bitspike mps front`).
    #[arg(long, value_name = "K")]
    pareto_point: Option<usize>,
    /// The most accurate front point with at most this many BOPs (eq. S13).
    #[arg(long, value_name = "BOPS")]
    max_bops: Option<f64>,
    /// The most accurate front point with at most this many bytes of RAM (eq. S14).
    #[arg(long, value_name = "BYTES")]
    max_ram: Option<f64>,
}

impl PointArgs {
    fn choice(&self) -> Choice {
        Choice {
            point: self.pareto_point,
            max_bops: self.max_bops,
            max_ram: self.max_ram,
        }
    }

    fn given(&self) -> bool {
        self.pareto_point.is_some() || self.max_bops.is_some() || self.max_ram.is_some()
    }
}

#[derive(Subcommand)]
enum SsqlCommand {
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
enum MpsCommand {
    /// Sweep eta over a search run's bit-width model, evaluate each distinct child and keep the
    /// Pareto front (writes front.json into the run; Algorithm S1, lines 8-15).
    Front {
        /// The search run.
        #[arg(long)]
        run: PathBuf,
        /// Penalties per sweep (this many linear and this many logarithmic values).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(2..))]
        sweep: u64,
        /// Also write front.md and the probability plots (Figures S6-S11) here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        rt: Runtime,
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

fn parse_labelled(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((l, p)) if !l.is_empty() && !p.is_empty() => Ok((l.to_string(), PathBuf::from(p))),
        _ => Err(format!("expected LABEL=DIR, got {s:?}")),
    }
}

#[derive(Subcommand)]
enum QacCommand {
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
enum TrainCommand {
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
struct MpsArgs {
    #[command(flatten)]
    base: QatArgs,
    /// Search algorithm.
    #[arg(long, value_enum)]
    searcher: Option<Searcher>,
    /// Candidate weight bit widths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    weight_candidates: Option<Vec<u8>>,
    /// Candidate activation bit widths, comma-separated.
    #[arg(long, value_delimiter = ',')]
    act_candidates: Option<Vec<u8>>,
    /// The hardware cost penalised.
    #[arg(long, value_enum)]
    cost: Option<CostKind>,
    /// Penalty range `ETA0,ETA1` (EdMIPS and DNAS: one value).
    #[arg(long, value_delimiter = ',', num_args = 1..=2)]
    eta: Option<Vec<f64>>,
    /// Bit-width model depth (1 or 2).
    #[arg(long)]
    model_depth: Option<usize>,
    /// Learning rate of the bit-width model.
    #[arg(long)]
    lr_theta: Option<f64>,
    /// Weight of the entropy term.
    #[arg(long)]
    entropy_weight: Option<f64>,
    /// Training images held out (the last N) to evaluate children.
    #[arg(long)]
    validation: Option<i64>,
}

impl MpsArgs {
    fn config(&self) -> Result<TrainConfig> {
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
struct SsqlArgs {
    #[command(flatten)]
    base: QatArgs,
    /// Self-supervised framework.
    #[arg(long, value_enum)]
    framework: Option<bitspike::ssql::Framework>,
    /// The framework alone, without SSQL's quantized branch.
    #[arg(long)]
    baseline: bool,
    /// Range of the weight bit width drawn each step, `LOW,HIGH` (inclusive).
    #[arg(long, value_delimiter = ',')]
    weight_range: Option<Vec<u8>>,
    /// Range of the activation bit width drawn each step, `LOW,HIGH` (inclusive).
    #[arg(long, value_delimiter = ',')]
    act_range: Option<Vec<u8>>,
    /// The statistics the quantized branch's BatchNorm layers normalize with.
    #[arg(long, value_enum)]
    quantized_bn: Option<bitspike::ssql::QuantizedBn>,
    /// Calibrate the quantized branch's activation ranges to the clip of least squared error
    /// at each drawn bit width instead of the observed maximum.
    #[arg(long)]
    mse_clip: bool,
    /// Projector output width.
    #[arg(long)]
    dim: Option<i64>,
    /// BYOL target / MoCo key encoder momentum (default: 0.99 / 0.999).
    #[arg(long)]
    momentum: Option<f64>,
    /// MoCo queue length.
    #[arg(long)]
    queue: Option<i64>,
    /// MoCo temperature.
    #[arg(long)]
    temperature: Option<f64>,
}

impl SsqlArgs {
    fn config(&self) -> Result<TrainConfig> {
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
struct QacArgs {
    #[command(flatten)]
    base: QatArgs,
    /// Which two quantizer parameters are learned (QAC cases 1-4).
    #[arg(long, value_enum)]
    case: Option<bitspike::qac::QacCase>,
    /// Every layer's starting level count (timesteps).
    #[arg(long)]
    initial_levels: Option<f64>,
    /// QCFS baseline: freeze every layer's level count at L (case t-alpha).
    #[arg(long, value_name = "L")]
    qcfs_levels: Option<u16>,
    /// Weight of the mean learned level count in the loss.
    #[arg(long)]
    level_penalty: Option<f64>,
}

impl QacArgs {
    fn config(&self) -> Result<TrainConfig> {
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
        c.check()?;
        Ok(c)
    }
}

#[derive(Args)]
struct QatArgs {
    /// A TOML configuration (every key optional; flags below override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The run folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Continue the interrupted run in --out.
    #[arg(long)]
    resume: bool,
    /// Start from these weights (a checkpoint holding this network's weights, e.g. of a
    /// pretrained or full-precision run; missing quantizer parameters initialise from data).
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    #[arg(long, value_enum)]
    dataset: Option<DatasetName>,
    #[arg(long, value_enum)]
    arch: Option<TrainArch>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<i64>,
    #[arg(long, value_enum)]
    optimizer: Option<Optimizer>,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, value_enum)]
    schedule: Option<Schedule>,
    #[arg(long)]
    weight_decay: Option<f64>,
    #[arg(long)]
    seed: Option<i64>,
    /// Weight bits of hidden layers (2..=8).
    #[arg(long)]
    weight_bits: Option<u8>,
    /// Activation bits (2..=8).
    #[arg(long)]
    act_bits: Option<u8>,
    /// Weight bits of the first and last layers (2..=8).
    #[arg(long)]
    first_last_bits: Option<u8>,
    /// Activation bits of the first layer's output and of the features the last layer reads
    /// (2..=8; default: --act-bits).
    #[arg(long)]
    edge_act_bits: Option<u8>,
    #[arg(long, value_enum)]
    weight_quantizer: Option<WeightQuantizer>,
    #[arg(long, value_enum)]
    act_quantizer: Option<ActQuantizer>,
    /// Mixed precision: weight bits of every convolution and dense layer, comma-separated
    /// (`[mixed]`; `bitspike mps front` lists searched ones).
    #[arg(long, value_delimiter = ',', requires = "act_plan")]
    weight_plan: Option<Vec<u8>>,
    /// Mixed precision: bits of every activation quantizer, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "weight_plan")]
    act_plan: Option<Vec<u8>>,
    #[command(flatten)]
    rt: Runtime,
}

impl QatArgs {
    /// The configuration: the run's own when resuming, else `--config` or the defaults; then the
    /// flags that were given.
    fn config(&self) -> Result<TrainConfig> {
        let c = self.config_unchecked()?;
        c.check()?;
        Ok(c)
    }

    fn config_unchecked(&self) -> Result<TrainConfig> {
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

/// Train a configuration into the run folder of `a`.
fn train_run(a: &QatArgs, cfg: TrainConfig) -> Result<()> {
    let device = a.rt.device()?;
    let data = data::load_for(&cfg, &a.rt.data_dir())?;
    let state = train::train(
        &cfg,
        &data,
        &TrainOptions {
            init: a.init.as_deref(),
            out: &a.out,
            resume: a.resume,
            device,
            progress: !a.quiet,
        },
    )?;
    println!(
        "trained {} epochs in {:.0} s: fake-quant test accuracy {:.2} % ({})",
        state.epochs_done,
        state.seconds,
        100.0 * state.test_accuracy,
        a.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(TrainCommand::Qat(a)) => train_run(&a, a.config()?)?,
        Command::Train(TrainCommand::Qac(a)) => train_run(&a.base, a.config()?)?,
        Command::Train(TrainCommand::Mps(a)) => train_run(&a.base, a.config()?)?,
        Command::Train(TrainCommand::Ssql(a)) => {
            let cfg = a.config()?;
            if a.base.resume || a.base.init.is_some() {
                bail!("a pretraining run starts fresh: --resume and --init are for `train qat`");
            }
            let device = a.base.rt.device()?;
            let data = data::load_for(&cfg, &a.base.rt.data_dir())?;
            let state = bitspike::ssql::pretrain(&cfg, &data, &a.base.out, device, !a.base.quiet)?;
            println!(
                "pretrained {} ({}) {} epochs in {:.0} s ({}); next: bitspike ssql eval --run {}",
                cfg.ssql.as_ref().map(|s| s.method()).unwrap_or_default(),
                cfg.dataset.as_str(),
                state.epochs_done,
                state.seconds,
                a.base.out.display(),
                a.base.out.display()
            );
        }
        Command::Ssql(c) => ssql_command(c)?,
        Command::Mps(c) => mps_command(c)?,
        Command::Eval {
            run,
            integer,
            limit,
            json,
            point,
            rt,
        } => evaluate(&RunDir(run), integer.as_deref(), limit, json, &point, &rt)?,
        Command::Export {
            run,
            out,
            vectors,
            count,
            stream,
            board,
            point,
            rt,
        } => export_run(
            &RunDir(run),
            &out,
            &ExportOpts {
                vectors: vectors.as_deref(),
                count,
                stream: stream.as_deref(),
                board: board.as_deref(),
                point: &point,
            },
            &rt,
        )?,
        Command::Snn(a) => snn_run(&a)?,
        Command::Qac(c) => qac_tables(c)?,
        Command::Ops {
            model,
            vectors,
            stream,
            limit,
        } => ops(
            &model,
            vectors.as_deref(),
            stream.as_deref(),
            limit as usize,
        )?,
        Command::Inspect { model, board } => inspect(&model, board.as_deref())?,
        Command::Report { run } => report(&RunDir(run))?,
        Command::Model {
            arch,
            bits,
            seed,
            out,
            no_in_place,
            board,
        } => {
            use bitspike_core::format::writer::{write_planned, Budget, IN_PLACE_SHARE};
            let budget = if no_in_place {
                Budget::None
            } else {
                Budget::Share(IN_PLACE_SHARE)
            };
            let mut def = builtin::build(arch, bits, seed);
            if board.as_deref().map(boards::armv6m).transpose()? == Some(true) {
                def.reserve_armv6m_tables();
            }
            let bytes =
                write_planned(&def, budget).with_context(|| format!("exporting {arch:?}"))?;
            write_file(&out, &bytes)?;
            println!("wrote {} ({} bytes)", out.display(), bytes.len());
        }
        Command::Golden {
            model,
            count,
            seed,
            out,
            perturb,
            random,
        } => golden(&model, count as usize, seed, &out, perturb, random)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `bytes` to `path`, creating its folder; the file appears whole or not at all.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    train::write_atomic(path, bytes)
}

fn load_model<'a>(bytes: &'a [u8], path: &Path) -> Result<Model<'a>> {
    Model::load(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn evaluate(
    run: &RunDir,
    model: Option<&Path>,
    limit: Option<i64>,
    json: bool,
    point: &PointArgs,
    rt: &Runtime,
) -> Result<()> {
    let cfg = run.read_config()?;
    let device = rt.device()?;
    let data = data::load_for(&cfg, &rt.data_dir())?;
    let test = data.test.take(limit.unwrap_or(i64::MAX));
    let t = load_trained(run, &cfg, &data, device, point)?;
    let fake = train::accuracy(&t.net, &test, data.max_code, device);
    let integer = match model {
        Some(p) => Some(eval::integer(&read(p)?, &test)?),
        None => None,
    };
    let int_acc = integer.as_ref().map(|r| r.accuracy());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "dataset": cfg.dataset.as_str(),
                "samples": test.len(),
                "fake_quant_accuracy": fake,
                "integer_accuracy": int_acc,
            })
        );
    } else {
        println!("{} test images of {}", test.len(), cfg.dataset.as_str());
        println!("  fake-quant (tch, float):        {:.2} %", 100.0 * fake);
        if let Some(a) = int_acc {
            println!(
                "  integer (bitspike-rt on host): {:.2} %  (gap {:+.2} points)",
                100.0 * a,
                100.0 * (a - fake)
            );
        }
    }
    Ok(())
}

/// What `bitspike export` writes besides the model, and which model.
struct ExportOpts<'a> {
    vectors: Option<&'a Path>,
    count: i64,
    stream: Option<&'a Path>,
    board: Option<&'a str>,
    point: &'a PointArgs,
}

fn export_run(run: &RunDir, out: &Path, o: &ExportOpts<'_>, rt: &Runtime) -> Result<()> {
    let ExportOpts {
        vectors,
        count,
        stream,
        board,
        point,
    } = *o;
    let cfg = run.read_config()?;
    let device = rt.device()?;
    let data = data::load_for(&cfg, &rt.data_dir())?;
    let armv6m = board.map(boards::armv6m).transpose()? == Some(true);
    let model_def = |net: &_| -> Result<_> {
        let mut def = export::model_def(net)?;
        if armv6m {
            def.reserve_armv6m_tables();
        }
        Ok(def)
    };
    let bytes = if cfg.mps.is_some() {
        // A search run: the chosen front point, or the most accurate one that fits the board.
        let front = Front::read(run)?;
        let mut found = None;
        let mut last_err = None;
        for c in mps_report::candidates(&front, &point.choice())? {
            let t = mps_report::child(run, &c.plan, &data, device)?;
            let bytes = write(&model_def(&t.net)?).context("writing the model file")?;
            let model = load_model(&bytes, out)?;
            if let Some(b) = board {
                if let Err(e) = boards::check_fit(b, bytes.len(), model.arena_bytes()) {
                    last_err = Some(e);
                    continue;
                }
            }
            println!(
                "front point {}: {} ({:.3} MBOPs, {:.0} B S14 RAM; child test accuracy {:.2} %)",
                front
                    .pareto()
                    .iter()
                    .position(|p| p.plan == c.plan)
                    .unwrap_or(0),
                c.plan.label(),
                c.bops / 1e6,
                c.ram,
                100.0 * c.test_accuracy
            );
            found = Some(bytes);
            break;
        }
        match (found, last_err) {
            (Some(b), _) => b,
            (None, Some(e)) => bail!("no front point fits: {e:#}"),
            (None, None) => bail!("no front point was chosen"),
        }
    } else {
        // Refuses a front point for a run that is no search.
        let t = load_trained(run, &cfg, &data, device, point)?;
        let bytes = write(&model_def(&t.net)?).context("writing the model file")?;
        let model = load_model(&bytes, out)?;
        if let Some(b) = board {
            boards::check_fit(b, bytes.len(), model.arena_bytes())?;
        }
        bytes
    };
    let model = load_model(&bytes, out)?;
    write_file(out, &bytes)?;
    println!(
        "wrote {} ({} bytes, arena {} bytes)",
        out.display(),
        bytes.len(),
        model.arena_bytes()
    );
    if let Some(v) = vectors {
        let r = eval::integer(&bytes, &data.test.take(count))?;
        let file = bitspike_core::vectors::write(&r.inputs, &r.outputs)
            .context("vector lengths differ")?;
        write_file(v, &file)?;
        println!("wrote {} ({} golden vectors)", v.display(), r.inputs.len());
    }
    if let Some(path) = stream {
        let r = eval::integer(&bytes, &data.test)?;
        let file = bitspike_core::vectors::write_stream(&r.inputs, &r.outputs, &r.labels)
            .context("vector lengths differ")?;
        write_file(path, &file)?;
        println!(
            "wrote {} ({} test images; host integer accuracy {:.2} %)",
            path.display(),
            r.labels.len(),
            100.0 * r.accuracy()
        );
    }
    Ok(())
}

/// The network of a run: the run's own, or for a search run the child `point` chooses.
fn load_trained(
    run: &RunDir,
    cfg: &TrainConfig,
    data: &data::Dataset,
    device: tch::Device,
    point: &PointArgs,
) -> Result<train::Trained> {
    if cfg.mps.is_none() {
        if point.given() {
            bail!(
                "{} is not a search run: --pareto-point, --max-bops and --max-ram choose a point of a `bitspike train mps` run's front",
                run.0.display()
            );
        }
        return train::load(run, data, device);
    }
    let plan = search_plan(run, cfg, point, data, device)?;
    mps_report::child(run, &plan, data, device)
}

/// The child a search run stands for: One-Shot's chosen front point, or the bit widths an
/// EdMIPS or DNAS search selected (its most probable child).
fn search_plan(
    run: &RunDir,
    cfg: &TrainConfig,
    point: &PointArgs,
    data: &data::Dataset,
    device: tch::Device,
) -> Result<BitPlan> {
    let m = cfg.mps.clone().unwrap_or_default();
    if m.searcher == Searcher::OneShot || point.given() {
        let front = Front::read(run)?;
        let c = mps_report::candidates(&front, &point.choice())?;
        return Ok(c[0].plan.clone());
    }
    let t = train::load(run, data, device)?;
    let s = t
        .net
        .mps
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{}: no supernet", run.0.display()))?;
    Ok(s.plan_at(m.eta[0]))
}

fn ssql_command(c: SsqlCommand) -> Result<()> {
    use bitspike::ssql_eval::{self, Bits, EvalConfig};
    match c {
        SsqlCommand::Eval {
            run,
            on,
            out,
            bits,
            linear_epochs,
            linear_lr,
            finetune_epochs,
            finetune_lr,
            calibration,
            bn_per_bits,
            edge_act_bits,
            mse_clip,
            head_per_bits,
            lsq_epochs,
            lsq_bits,
            quiet,
            rt,
        } => {
            let mut e = EvalConfig {
                bn_per_bits,
                edge_act_bits,
                mse_clip,
                head_per_bits,
                ..Default::default()
            };
            if let Some(b) = bits {
                e.bits = b.iter().map(|s| s.parse()).collect::<Result<Vec<Bits>>>()?;
            }
            if let Some(v) = linear_epochs {
                e.linear_epochs = v;
            }
            if let Some(v) = linear_lr {
                e.linear_lr = v;
            }
            if let Some(v) = finetune_epochs {
                e.finetune_epochs = v;
            }
            if let Some(v) = finetune_lr {
                e.finetune_lr = v;
            }
            if let Some(v) = calibration {
                e.calibration = v;
            }
            if let Some(v) = lsq_epochs {
                e.lsq_epochs = v;
            }
            if let Some(v) = lsq_bits {
                e.lsq_bits = v.parse()?;
            }
            e.check()?;
            let pre = RunDir(run.clone()).read_config()?;
            let on = on.unwrap_or(pre.dataset);
            let device = rt.device()?;
            let r = ssql_eval::evaluate(&run, on, &rt.data_dir(), &e, &out, device, !quiet)?;
            print!("{}", ssql_eval::report(std::slice::from_ref(&r)));
            println!("written: {}", out.display());
        }
        SsqlCommand::Report { evals, out } => {
            let mut results = Vec::new();
            for d in &evals {
                let p = d.join("results.json");
                let text = std::fs::read_to_string(&p).with_context(|| {
                    format!(
                        "{} is not an evaluation folder (no results.json)",
                        d.display()
                    )
                })?;
                let mut r: ssql_eval::EvalResult = serde_json::from_str(&text)
                    .with_context(|| format!("{}: corrupt", p.display()))?;
                // Evaluations written before the seed and the pretraining settings were
                // recorded: the pretraining run's, when that run is still there.
                if r.pretrain_seed.is_none() || r.pretraining.is_none() {
                    if let Ok(pre) = RunDir(r.pretrain_run.clone()).read_config() {
                        r.pretrain_seed.get_or_insert(pre.seed);
                        if let Some(ssql) = &pre.ssql {
                            r.pretraining
                                .get_or_insert_with(|| ssql_eval::pretraining_of(&pre, ssql));
                        }
                    }
                }
                results.push(r);
            }
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let md = ssql_eval::report(&results);
            train::write_atomic(&out.join("results.md"), md.as_bytes())?;
            train::write_atomic(
                &out.join("results.json"),
                serde_json::to_string_pretty(&results)?.as_bytes(),
            )?;
            print!("{md}");
        }
    }
    Ok(())
}

fn mps_command(c: MpsCommand) -> Result<()> {
    match c {
        MpsCommand::Front {
            run,
            sweep,
            out,
            rt,
        } => {
            let run = RunDir(run);
            let cfg = run.read_config()?;
            let data = data::load_for(&cfg, &rt.data_dir())?;
            let front = mps_report::extract(&run, &data, rt.device()?, sweep as usize)?;
            print!("{}", mps_report::front_markdown(&front));
            println!(
                "{} distinct children from {} penalties ({} supernet evaluations, {:.0} s); {} on the Pareto front; supernet trained {:.0} s",
                front.children.len(),
                front.etas.len(),
                front.evaluations,
                front.front_seconds,
                front.pareto().len(),
                front.train_seconds
            );
            if let Some(dir) = out {
                bitspike::qac_report::write_tables(
                    &dir,
                    "front",
                    &mps_report::front_markdown(&front),
                    &front,
                )?;
                mps_report::plot_probabilities(&front, &dir)?;
            }
        }
        MpsCommand::Child {
            run,
            out,
            scratch,
            epochs,
            lr,
            quiet,
            point,
            rt,
        } => {
            let search = RunDir(run);
            let cfg = search.read_config()?;
            if cfg.mps.is_none() {
                bail!("{} is not a search run", search.0.display());
            }
            let device = rt.device()?;
            let data = data::load_for(&cfg, &rt.data_dir())?;
            let plan = search_plan(&search, &cfg, &point, &data, device)?;
            let mut child = mps_report::child_config(&cfg, &plan);
            if let Some(e) = epochs {
                child.epochs = e;
            }
            if let Some(v) = lr {
                child.lr = v;
            }
            child.check()?;
            let weights = search.weights()?;
            let state = train::train(
                &child,
                &data,
                &TrainOptions {
                    init: (!scratch).then_some(weights.as_path()),
                    out: &out,
                    resume: false,
                    device,
                    progress: !quiet,
                },
            )?;
            println!(
                "{} child {} trained {} epochs in {:.0} s: fake-quant test accuracy {:.2} % ({})",
                if scratch { "standalone" } else { "fine-tuned" },
                plan.label(),
                state.epochs_done,
                state.seconds,
                100.0 * state.test_accuracy,
                out.display()
            );
        }
        MpsCommand::Report {
            front,
            runs,
            out,
            rt,
        } => {
            let run = RunDir(front);
            let cfg = run.read_config()?;
            let data = data::load_for(&cfg, &rt.data_dir())?;
            mps_report::report(&run, &runs, &data, &out)?;
            print!(
                "{}",
                std::fs::read_to_string(out.join("pareto.md")).unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// `bitspike snn`: convert, evaluate, calibrate, export and run a QAC run (see `SnnArgs`).
fn snn_run(a: &SnnArgs) -> Result<()> {
    let run = RunDir(a.run.clone());
    let cfg = run.read_config()?;
    let device = a.rt.device()?;
    let data = data::load_for(&cfg, &a.rt.data_dir())?;
    let t = train::load(&run, &data, device)?;
    let limit = a.limit.unwrap_or(i64::MAX);
    let mut snn = Snn::convert(&t.net, a.align)?;
    let quiet = a.json;
    let say = |s: String| {
        if !quiet {
            println!("{s}");
        }
    };
    let timesteps: Vec<u16> = snn.layers.iter().map(|l| l.timesteps).collect();
    say(format!(
        "converted {} spiking layers, timesteps {:?} (average {:.2}), alignment {}",
        snn.layers.len(),
        timesteps,
        snn.avg_timesteps(),
        a.align.label()
    ));
    let base = snn_sim::evaluate(&t.net, &snn, &data.test, data.max_code, limit);
    say(format!(
        "quantized ANN (fake-quant, trained level counts) {:.2} %; SNN before calibration {:.2} % \
         (logit MSE vs the ANN {:.4})",
        100.0 * base.ann_accuracy,
        100.0 * base.accuracy,
        base.mse
    ));
    let mut calibrated = None;
    if a.calibrate > 0 {
        let c = Calibration {
            epochs: a.calibrate,
            images: a.calibration_images,
            lr: a.calibration_lr,
            ..Default::default()
        };
        if !(a.calibration_lr > 0.0 && a.calibration_lr.is_finite()) {
            bail!("--calibration-lr must be positive");
        }
        let losses = snn_sim::calibrate(&t.net, &mut snn, &data.train, data.max_code, &c)?;
        let shown: Vec<String> = losses.iter().map(|l| format!("{l:.4}")).collect();
        say(format!("calibration loss per epoch: {}", shown.join(" ")));
        let e = snn_sim::evaluate(&t.net, &snn, &data.test, data.max_code, limit);
        say(format!(
            "SNN after calibration ({} epochs on {} unlabelled training images, loss {:.4} -> \
             {:.4}): {:.2} % (logit MSE {:.4})",
            a.calibrate,
            c.images.min(data.train.len()),
            losses.first().copied().unwrap_or(f64::NAN),
            losses.iter().copied().fold(f64::INFINITY, f64::min),
            100.0 * e.accuracy,
            e.mse
        ));
        calibrated = Some(e);
    }
    let file = snn.to_file();
    train::write_atomic(
        &run.0.join("snn.json"),
        serde_json::to_string_pretty(&file)?.as_bytes(),
    )?;
    let float = calibrated.as_ref().unwrap_or(&base);
    let mut integer = serde_json::Value::Null;
    if let Some(out) = &a.out {
        let mut def = export::model_def_snn(&t.net, &snn)?;
        // Input sparsity on training images decides, per layer and target, event-driven or
        // dense accumulation.
        let sample: Vec<Vec<u8>> = (0..data.train.len().min(DENSITY_IMAGES))
            .map(|i| data.train.hwc(i))
            .collect();
        let densities = export::measure_density(&mut def, &sample)?;
        say(density_line(&densities, sample.len()));
        let bytes = write(&def).context("writing the model file")?;
        let model = load_model(&bytes, out)?;
        write_file(out, &bytes)?;
        let test = data.test.take(limit.min(data.test.len()));
        let r = eval::integer(&bytes, &test)?;
        let agree = r
            .predictions()
            .iter()
            .zip(&float.predictions)
            .filter(|(a, b)| **a as i64 == **b)
            .count();
        let (macs, acs) = r.ops_per_inference();
        let energy = bitspike_core::cost::energy_45nm_pj(macs as u64, acs as u64);
        say(format!(
            "wrote {} ({} bytes, arena {} bytes); host integer SNN {:.2} %, same prediction as \
             the float simulator on {agree} of {} images; per inference {:.0} MACs + {:.0} \
             synaptic operations = {:.2} uJ (45 nm estimate: 4.6 pJ/MAC, 0.9 pJ/AC)",
            out.display(),
            bytes.len(),
            model.arena_bytes(),
            100.0 * r.accuracy(),
            r.labels.len(),
            macs,
            acs,
            energy / 1e6
        ));
        let mut ann = serde_json::Value::Null;
        if let Some(p) = &a.ann_out {
            let mut d = export::model_def_ann_of(&t.net, &snn)?;
            let densities = export::measure_density(&mut d, &sample)?;
            say(format!(
                "quantized twin: {}",
                density_line(&densities, sample.len())
            ));
            let b = write(&d).context("writing the quantized model file")?;
            write_file(p, &b)?;
            let ra = eval::integer(&b, &test)?;
            let (m, _) = ra.ops_per_inference();
            say(format!(
                "wrote {} (the same network, quantized, not spiking: {:.2} %, {:.0} MACs = \
                 {:.2} uJ, 45 nm estimate)",
                p.display(),
                100.0 * ra.accuracy(),
                m,
                bitspike_core::cost::energy_45nm_pj(m as u64, 0) / 1e6
            ));
            ann = serde_json::json!({
                "model": p, "accuracy": ra.accuracy(), "twin_macs": m,
                "energy_45nm_uj": bitspike_core::cost::energy_45nm_pj(m as u64, 0) / 1e6,
            });
        }
        if let Some(v) = &a.vectors {
            let rv = eval::integer(&bytes, &data.test.take(a.count))?;
            let f = bitspike_core::vectors::write(&rv.inputs, &rv.outputs)
                .context("vector lengths differ")?;
            write_file(v, &f)?;
            say(format!(
                "wrote {} ({} golden vectors)",
                v.display(),
                rv.inputs.len()
            ));
        }
        if let Some(path) = &a.stream {
            let rs = eval::integer(&bytes, &data.test)?;
            let f = bitspike_core::vectors::write_stream(&rs.inputs, &rs.outputs, &rs.labels)
                .context("vector lengths differ")?;
            write_file(path, &f)?;
            say(format!(
                "wrote {} ({} test images)",
                path.display(),
                rs.labels.len()
            ));
        }
        integer = serde_json::json!({
            "model": out, "bytes": bytes.len(), "arena_bytes": model.arena_bytes(),
            "accuracy": r.accuracy(), "agree_with_float": agree, "samples": r.labels.len(),
            "analog_macs": macs, "synops": acs, "energy_45nm_uj": energy / 1e6,
            "ann": ann,
        });
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "run": run.0, "align": a.align, "timesteps": timesteps,
                "avg_timesteps": snn.avg_timesteps(),
                "ann_accuracy": base.ann_accuracy,
                "snn_before": base, "snn_after": calibrated,
                "integer": integer,
            })
        );
    }
    Ok(())
}

/// `bitspike ops`: mean operations per inference over the inputs of a vector or stream file.
fn ops(path: &Path, vectors: Option<&Path>, stream: Option<&Path>, limit: usize) -> Result<()> {
    use bitspike_core::vectors::{StreamHeader, Vectors, STREAM_HEADER_LEN};
    let bytes = read(path)?;
    let model = load_model(&bytes, path)?;
    let (file, is_stream) = match (vectors, stream) {
        (Some(v), _) => (v, false),
        (None, Some(s)) => (s, true),
        (None, None) => bail!("give --vectors or --stream"),
    };
    let d = read(file)?;
    let bad = |e: bitspike_core::vectors::VectorError| {
        anyhow::anyhow!("{}: not a valid vector file ({e:?})", file.display())
    };
    let inputs: Vec<&[u8]> = if is_stream {
        let h = StreamHeader::parse(&d).map_err(bad)?;
        let rec = h.record_len().unwrap_or(0);
        (0..h.count.min(limit))
            .filter_map(|k| {
                d.get(STREAM_HEADER_LEN + k * rec..)
                    .and_then(|r| r.get(..h.input_len))
            })
            .collect()
    } else {
        let v = Vectors::parse(&d).map_err(bad)?;
        (0..v.len().min(limit)).map(|k| v.input(k)).collect()
    };
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = model.bind(&mut arena).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = vec![0i32; model.output_len()];
    let (mut macs, mut acs) = (0u64, 0u64);
    for (k, x) in inputs.iter().enumerate() {
        it.run(x, &mut out)
            .map_err(|e| anyhow::anyhow!("{}: input {k}: {e}", file.display()))?;
        let o = it.total_ops();
        macs += o.macs;
        acs += o.accumulates;
    }
    let n = inputs.len().max(1) as f64;
    let spiking = model.file().header().flags & bitspike_core::format::HEADER_FLAG_SPIKING != 0;
    println!(
        "{}",
        serde_json::json!({
            "model": path, "spiking": spiking, "inferences": inputs.len(),
            "macs": macs as f64 / n, "synops": acs as f64 / n,
            "energy_45nm_nj": bitspike_core::cost::energy_45nm_pj(macs, acs) / n / 1000.0,
        })
    );
    Ok(())
}

/// Load every run of `runs` (one dataset for all).
fn load_runs(
    runs: &[PathBuf],
    rt: &Runtime,
) -> Result<(data::Dataset, Vec<(String, train::Trained)>)> {
    let device = rt.device()?;
    let first = RunDir(runs[0].clone()).read_config()?;
    let data = data::load_for(&first, &rt.data_dir())?;
    let mut out = Vec::new();
    for r in runs {
        let run = RunDir(r.clone());
        let cfg = run.read_config()?;
        if cfg.dataset != first.dataset {
            bail!(
                "{}: trained on {}, the others on {}",
                r.display(),
                cfg.dataset.as_str(),
                first.dataset.as_str()
            );
        }
        out.push((r.display().to_string(), train::load(&run, &data, device)?));
    }
    Ok((data, out))
}

fn qac_tables(c: QacCommand) -> Result<()> {
    use bitspike::qac_report as qr;
    match c {
        QacCommand::Report {
            run,
            out,
            limit,
            rt,
        } => {
            let (data, runs) = load_runs(std::slice::from_ref(&run), &rt)?;
            let t = &runs[0].1;
            let saved = snn_sim::load_file(&run.join("snn.json"))?;
            let calibrated = match &saved {
                Some(f) => Some(Snn::from_file(&t.net, f)?),
                None => None,
            };
            let r = qr::run_report(
                &t.net,
                &data,
                limit.unwrap_or(i64::MAX),
                calibrated.as_ref(),
            )?;
            let dir = out.unwrap_or(run.clone());
            let md = r.markdown(data.name.as_str());
            qr::write_tables(&dir, "qac-report", &md, &r)?;
            let pts: Vec<(f64, f64)> = r.scaling.iter().map(|&(_, t, a)| (t, a)).collect();
            qr::plot(
                &dir.join("qac-scaling.svg"),
                "QAC temporal scaling (T .. 6T)",
                "average timesteps",
                &[("SNN".into(), pts)],
                false,
            )?;
            print!("{md}");
            println!(
                "\nwrote {}/qac-report.{{md,json}} and qac-scaling.svg",
                dir.display()
            );
        }
        QacCommand::Cases {
            runs,
            out,
            limit,
            rt,
        } => {
            let (data, loaded) = load_runs(&runs, &rt)?;
            let nets: Vec<(String, &bitspike::net::QNet)> =
                loaded.iter().map(|(n, t)| (n.clone(), &t.net)).collect();
            let rows = qr::cases_report(&nets, &data, limit.unwrap_or(i64::MAX))?;
            let md = qr::cases_markdown(&rows, data.name.as_str());
            qr::write_tables(&out, "qac-cases", &md, &rows)?;
            print!("{md}");
            println!("\nwrote {}/qac-cases.{{md,json}}", out.display());
        }
        QacCommand::Qcfs {
            runs,
            out,
            limit,
            rt,
        } => {
            let (data, loaded) = load_runs(&runs, &rt)?;
            let nets: Vec<&bitspike::net::QNet> = loaded.iter().map(|(_, t)| &t.net).collect();
            let rows = qr::qcfs_report(&nets, &data, limit.unwrap_or(i64::MAX))?;
            let md = qr::qcfs_markdown(&rows, data.name.as_str());
            qr::write_tables(&out, "qac-qcfs", &md, &rows)?;
            let mut series = Vec::new();
            for r in &rows {
                for (name, v) in [("QCFS", &r.qcfs), ("QCFS+aver", &r.aver)] {
                    let pts = qr::TABLE8_T
                        .iter()
                        .zip(v)
                        .map(|(&t, &a)| (t as f64, a))
                        .collect();
                    series.push((format!("L={} {name}", r.levels), pts));
                }
            }
            qr::plot(
                &out.join("qac-qcfs.svg"),
                "QCFS vs QCFS + averaging",
                "T",
                &series,
                true,
            )?;
            print!("{md}");
            println!("\nwrote {}/qac-qcfs.{{md,json,svg}}", out.display());
        }
    }
    Ok(())
}

fn report(run: &RunDir) -> Result<()> {
    let cfg = run.read_config()?;
    let state = run.read_state()?;
    println!(
        "{}: {:?} on {}, w{}a{} (first/last {}), {:?}/{:?} quantizers",
        run.0.display(),
        cfg.arch,
        cfg.dataset.as_str(),
        cfg.quant.weight_bits,
        cfg.quant.act_bits,
        cfg.quant.first_last_bits,
        cfg.quant.weight_quantizer,
        cfg.quant.act_quantizer
    );
    let log = std::fs::read_to_string(run.log()).unwrap_or_default();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: corrupt line", run.log().display()))?;
        println!(
            "  epoch {:>3}: loss {:.4}, train {:.2} %, test (fake-quant) {}",
            v["epoch"],
            v["train_loss"].as_f64().unwrap_or(f64::NAN),
            100.0 * v["train_accuracy"].as_f64().unwrap_or(f64::NAN),
            v["test_accuracy_fake_quant"]
                .as_f64()
                .map(|a| format!("{:.2} %", 100.0 * a))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "{} of {} epochs, {:.0} s, test accuracy (fake-quant) {:.2} %",
        state.epochs_done,
        cfg.epochs,
        state.seconds,
        100.0 * state.test_accuracy
    );
    Ok(())
}

fn golden(
    path: &Path,
    count: usize,
    seed: u64,
    out: &Path,
    perturb: Option<usize>,
    random: bool,
) -> Result<()> {
    let bytes = read(path)?;
    let model = load_model(&bytes, path)?;
    let (n, levels) = (model.input_len(), model.file().input().levels);
    let mut rng = Rng::new(seed);
    let inputs: Vec<Vec<u8>> = (0..count)
        .map(|k| match k {
            0 if !random => vec![0; n],
            1 if !random => vec![levels; n],
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

fn inspect(path: &Path, board: Option<&str>) -> Result<()> {
    let bytes = read(path)?;
    let model = load_model(&bytes, path)?;
    if let Some(b) = board {
        boards::check_fit(b, bytes.len(), model.arena_bytes())?;
    }
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

/// Training images on which the exporter measures each layer's input density.
const DENSITY_IMAGES: i64 = 256;

/// One line naming each weighted layer's measured input density and where it runs event by
/// event.
fn density_line(densities: &[u8], images: usize) -> String {
    use bitspike_core::kernel::{events_pay, Isa};
    let shown: Vec<String> = densities
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| bitspike::report::density_percent(d).map(|p| (i, d, p)))
        .map(|(i, d, p)| {
            let on: Vec<&str> = [Isa::Dsp, Isa::Portable]
                .into_iter()
                .filter(|&isa| events_pay(isa, d))
                .map(Isa::name)
                .collect();
            let on = if on.is_empty() {
                String::new()
            } else {
                format!(" (event-driven on {})", on.join(", "))
            };
            format!("layer {i} {p:.1} %{on}")
        })
        .collect();
    format!(
        "nonzero inputs on {images} training images: {}",
        shown.join(", ")
    )
}
