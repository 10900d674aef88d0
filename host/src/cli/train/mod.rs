//! `bitspike train`: its subcommands, the arguments every training run takes, and the run.

use super::args::Runtime;
use anyhow::Result;
use bitspike::config::{Optimizer, Schedule, TrainConfig};
use bitspike::data::DatasetName;
use bitspike::net::TrainArch;
use bitspike::quant::{ActQuantizer, WeightQuantizer};
use bitspike::train::{RunDir, TrainOptions};
use clap::{Args, Subcommand};
use std::path::PathBuf;

mod mps;
mod qac;
mod ssql;

pub(crate) use mps::MpsArgs;
pub(crate) use qac::QacArgs;
pub(crate) use ssql::SsqlArgs;

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
    /// Mixed precision: bits of every activation quantizer (a signed output's excepted: it
    /// stays 8-bit), comma-separated.
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

/// Train a configuration into the run folder of `a`.
pub(crate) fn train_run(a: &QatArgs, cfg: TrainConfig) -> Result<()> {
    let device = a.rt.device()?;
    let data = cfg.load_data(&a.rt.data_dir())?;
    let state = bitspike::methods::train(
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
