//! QAC's settings: the `[quant.qac]` table of a training configuration, and the limits on a
//! converted layer's timesteps.

use serde::{Deserialize, Serialize};

/// The largest number of timesteps a converted layer may run (its spike counts must fit the
/// model file's 255 levels after a 2x2 sum pool: 4 x 63 = 252).
pub const MAX_TIMESTEPS: u16 = 63;

/// Which two parameters QAC learns (QAC section 4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum QacCase {
    /// Case 1, `[n, d]`: `alpha = d 2^n`, `T = 2^n` (eq. 7).
    #[serde(rename = "n-d")]
    #[cfg_attr(feature = "cli", value(name = "n-d"))]
    ND,
    /// Case 2, `[n, alpha]`: `d = alpha / 2^n`, `T = 2^n` (eq. 8).
    NAlpha,
    /// Case 3, `[d, alpha]`: `T = alpha / d` (eq. 9).
    DAlpha,
    /// Case 4, `[t, alpha]`: `T = t` learned directly (eq. 10); the default.
    TAlpha,
}

impl QacCase {
    /// Every case, in the paper's order.
    pub const ALL: [QacCase; 4] = [Self::ND, Self::NAlpha, Self::DAlpha, Self::TAlpha];

    /// The paper's name, `(t, alpha)` and so on.
    pub const fn label(self) -> &'static str {
        match self {
            Self::ND => "case 1 (n, d)",
            Self::NAlpha => "case 2 (n, alpha)",
            Self::DAlpha => "case 3 (d, alpha)",
            Self::TAlpha => "case 4 (t, alpha)",
        }
    }
}

/// QAC settings of a network (the `[quant.qac]` table of a training configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QacConfig {
    /// Which parameters are learned.
    pub case: QacCase,
    /// The level count every layer starts from (`t`, `2^n` or `alpha / d` at initialisation).
    pub initial_levels: f64,
    /// QCFS baseline: every layer's level count frozen at this value (0: learned, QAC).
    pub fixed_levels: u16,
    /// Weight of the mean learned level count in the loss (0: none, the paper's setting). Our
    /// default 0.01: without it the level counts of our small CNN grow during training (from 4 to
    /// about 6 on Fashion-MNIST in 6 epochs); with it they settle near 2.5-3 at the same accuracy
    /// (docs/qac.md gives both runs).
    pub level_penalty: f64,
    /// What the level penalty weighs.
    pub cost: LevelCost,
    /// The board whose measured cost table `cost = "device"` reads (a real board reads the
    /// table of the emulated board with its core).
    pub board: Option<String>,
}

/// What QAC's level penalty weighs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum LevelCost {
    /// The mean learned level count: every layer's timestep weighs the same.
    #[default]
    Timesteps,
    /// The board's measured instructions as a function of every layer's level count
    /// (`crate::device_costs::snn::SnnCost`, interpolated between [`DEVICE_TIMESTEPS`]), in
    /// units that give a network of uniform initial level counts the same penalty as
    /// `timesteps`: each layer's timestep weighs what it costs on the board.
    Device,
}

/// The timesteps at which the device cost of a spiking layer is measured (`cargo xtask costs
/// --snn`); level counts between them are interpolated, beyond them clamped.
pub const DEVICE_TIMESTEPS: [u16; 7] = [1, 2, 3, 4, 5, 6, 8];

impl Default for QacConfig {
    fn default() -> Self {
        Self {
            case: QacCase::TAlpha,
            initial_levels: 3.0,
            fixed_levels: 0,
            level_penalty: 0.01,
            cost: LevelCost::Timesteps,
            board: None,
        }
    }
}

impl QacConfig {
    /// Check the values.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.initial_levels >= 1.0 && self.initial_levels <= MAX_TIMESTEPS as f64,
            "qac initial_levels {} is out of range: use 1..={MAX_TIMESTEPS}",
            self.initial_levels
        );
        anyhow::ensure!(
            self.fixed_levels <= MAX_TIMESTEPS,
            "qac fixed_levels {} is out of range: use 0 (learned) or 1..={MAX_TIMESTEPS}",
            self.fixed_levels
        );
        anyhow::ensure!(
            self.fixed_levels == 0 || self.case == QacCase::TAlpha,
            "qac fixed_levels (QCFS) freezes t: it needs case t-alpha"
        );
        anyhow::ensure!(
            self.level_penalty >= 0.0 && self.level_penalty.is_finite(),
            "qac level_penalty must be >= 0"
        );
        if self.cost == LevelCost::Device && self.board.is_none() {
            anyhow::bail!(
                "qac cost = \"device\" needs a board (--board B, or board = \"B\" in [quant.qac])"
            );
        }
        if let Some(b) = &self.board {
            crate::boards::cost_board(b)?;
        }
        Ok(())
    }
}
