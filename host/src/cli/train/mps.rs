//! `bitspike train mps`: a search run's arguments over the common ones.

use super::QatArgs;
use anyhow::Result;
use bitspike::config::TrainConfig;
use bitspike::mps::{CostKind, Searcher};
use bitspike::quant::{ActQuantizer, WeightQuantizer};
use clap::Args;

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
