//! One-Shot MPS's settings: the `[mps]` table of a search run (the keys in [`crate::mps`]).

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

/// The search algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Searcher {
    /// One-Shot MPS: a bit-width model conditioned on eta, straight-through Gumbel samples,
    /// entropy.
    OneShot,
    /// EdMIPS: free logits at one eta, the soft mixture of candidates.
    Edmips,
    /// DNAS: free logits at one eta, annealed soft Gumbel-softmax samples.
    Dnas,
}

/// The hardware cost a search penalises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum CostKind {
    /// Bit operations, eq. S13.
    Bops,
    /// RAM, eq. S14.
    Ram,
    /// Instructions on a board, from its measured cost table (`board`; `cargo xtask costs`).
    Device,
}

/// Settings of a mixed-precision search (the `[mps]` table, module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MpsConfig {
    /// Search algorithm.
    pub searcher: Searcher,
    /// Candidate weight bit widths.
    pub weight_bits: Vec<u8>,
    /// Candidate activation bit widths.
    pub act_bits: Vec<u8>,
    /// Hardware cost.
    pub cost: CostKind,
    /// Cost divisor (0: the network's cost at its largest candidates).
    pub cost_unit: f64,
    /// Penalty range `[eta0, eta1]`.
    pub eta: [f64; 2],
    /// Bit-width model depth (1 or 2) for One-Shot.
    pub model_depth: usize,
    /// Hidden width of the 2-layer bit-width model.
    pub model_hidden: i64,
    /// Learning rate of the bit-width parameters.
    pub lr_theta: f64,
    /// Weight of the entropy term (One-Shot).
    pub entropy_weight: f64,
    /// DNAS's Gumbel-softmax temperature, start and end.
    pub dnas_temperature: [f64; 2],
    /// Training images held out (the last N) to evaluate children.
    pub validation: i64,
    /// The board whose measured cost table `cost = "device"` sums (a real board reads the
    /// table of the emulated board with its core); with another cost, the board whose
    /// predicted instructions the front reports beside it.
    pub board: Option<String>,
}

impl Default for MpsConfig {
    fn default() -> Self {
        Self {
            searcher: Searcher::OneShot,
            weight_bits: vec![2, 4, 8],
            act_bits: vec![2, 4, 8],
            cost: CostKind::Bops,
            cost_unit: 0.0,
            eta: [0.003, 3.0],
            model_depth: 2,
            model_hidden: 16,
            lr_theta: 0.005,
            entropy_weight: 0.1,
            dnas_temperature: [5.0, 0.5],
            validation: 5000,
            board: None,
        }
    }
}

impl MpsConfig {
    /// Check the values the types do not.
    pub fn check(&self) -> Result<()> {
        for (name, c) in [("weight", &self.weight_bits), ("act", &self.act_bits)] {
            ensure!(
                !c.is_empty(),
                "mps {name}_bits: give at least one candidate"
            );
            for (i, &b) in c.iter().enumerate() {
                ensure!(
                    (2..=8).contains(&b),
                    "mps {name}_bits: {b} is not supported: use 2..=8"
                );
                ensure!(!c[..i].contains(&b), "mps {name}_bits: {b} is listed twice");
            }
        }
        let [e0, e1] = self.eta;
        ensure!(
            e0 > 0.0 && e1 >= e0 && e1.is_finite(),
            "mps eta: need 0 < eta0 <= eta1, got [{e0}, {e1}]"
        );
        ensure!(
            self.cost_unit >= 0.0 && self.cost_unit.is_finite(),
            "mps cost_unit must be >= 0"
        );
        ensure!(
            (1..=2).contains(&self.model_depth),
            "mps model_depth {} is not supported: use 1 or 2",
            self.model_depth
        );
        ensure!(self.model_hidden >= 1, "mps model_hidden must be >= 1");
        ensure!(self.lr_theta > 0.0, "mps lr_theta must be positive");
        ensure!(
            self.entropy_weight >= 0.0,
            "mps entropy_weight must be >= 0"
        );
        ensure!(
            self.dnas_temperature.iter().all(|&t| t > 0.0),
            "mps dnas_temperature must be positive"
        );
        ensure!(self.validation >= 0, "mps validation must be >= 0");
        if self.cost == CostKind::Device && self.board.is_none() {
            bail!("mps cost = \"device\" needs a board (--board B, or board = \"B\" in [mps])");
        }
        if let Some(b) = &self.board {
            crate::boards::cost_board(b)?;
        }
        Ok(())
    }
}
