//! `bitspike train qac`: a QAC run's arguments over the common ones.

use super::QatArgs;
use anyhow::Result;
use bitspike::config::TrainConfig;
use bitspike::quant::ActQuantizer;
use clap::Args;

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
