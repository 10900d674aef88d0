//! `bitspike train ssql`: a pretraining run's arguments over the common ones.

use super::QatArgs;
use anyhow::{bail, Result};
use bitspike::config::TrainConfig;
use bitspike::config::{Optimizer, Schedule};
use bitspike::net::TrainArch;
use bitspike::quant::{ActQuantizer, WeightQuantizer};
use clap::Args;

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
    /// The protocol: bitspike's defaults, or SSQL's official code (weights at max|w| /
    /// ((2^b-1)/2), the head's input at 8 bits, a three-layer projector with 8-bit weights in
    /// the quantized branch, widths scaled with the encoder, crops of 20-100 %, no rotation,
    /// weight decay 5e-4, batch 512; docs/ssql/official.md). Flags given override it.
    #[arg(long, value_enum)]
    pub(crate) protocol: Option<bitspike::ssql::Protocol>,
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
        // A resumed run keeps its own configuration (read from its folder).
        let fresh = self.base.config.is_none() && !self.base.resume;
        let mut c = self.base.config_unchecked()?;
        let mut s = c.ssql.take().unwrap_or_default();
        let official = self.protocol == Some(bitspike::ssql::Protocol::Official);
        // A protocol given on the command line replaces the configuration file's.
        match self.protocol {
            Some(bitspike::ssql::Protocol::Official) => s = s.official(),
            Some(bitspike::ssql::Protocol::Bitspike) => s = s.bitspike(),
            None => {}
        }
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
                c.weight_decay = if official { 5e-4 } else { 1e-4 };
            }
            if official && b.batch_size.is_none() {
                c.batch_size = 512;
            }
            if b.schedule.is_none() {
                c.schedule = Schedule::Cosine;
            }
        }
        // One set of weights at every bit width: quantizers that learn nothing.
        c.quant.weight_quantizer = match s.protocol {
            bitspike::ssql::Protocol::Official => WeightQuantizer::MaxAbsHalf,
            bitspike::ssql::Protocol::Bitspike => WeightQuantizer::MaxAbs,
        };
        if s.protocol == bitspike::ssql::Protocol::Official && c.quant.edge_act_bits.is_none() {
            c.quant.head_act_bits = Some(8);
        }
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
