//! Training configuration: a TOML file with every key optional (the defaults below), overridden
//! by command-line flags. Unknown keys are errors that name the key.
//!
//! ```toml
//! # Every key, with its default.
//! dataset = "fashion-mnist"   # mnist | fashion-mnist | digits
//! arch = "cnn"                # cnn | lenet | vgg | resnet8
//! epochs = 4
//! batch_size = 128
//! optimizer = "adam"          # adam | sgd
//! lr = 0.005
//! momentum = 0.9              # sgd only
//! weight_decay = 0.0001       # weights and BatchNorm only, never quantizer parameters
//! schedule = "cosine"         # cosine | step | constant (per step, over all epochs)
//! step_epochs = 2             # step schedule: multiply the rate by step_gamma every N epochs
//! step_gamma = 0.1
//! seed = 1
//! eval_every = 1              # evaluate on the test split every N epochs
//!
//! [quant]
//! weight_bits = 4             # hidden layers, 2..=8
//! act_bits = 4                # 2..=8
//! first_last_bits = 8         # first and last layer weights
//! weight_quantizer = "lsq"    # lsq | lloyd | trainable-lloyd | max-abs
//! act_quantizer = "lsq"       # lsq | pact | hwgq | trainable-hwgq | qcfs | qac
//!
//! [quant.qac]                 # act_quantizer = "qac" (`bitspike train qac` sets it)
//! case = "t-alpha"            # n-d | n-alpha | d-alpha | t-alpha (QAC cases 1-4)
//! initial_levels = 3.0        # every layer's starting level count (timesteps)
//! fixed_levels = 0            # > 0: QCFS baseline, every layer frozen at this count
//! level_penalty = 0.01        # weight of the mean learned level count in the loss (0: paper)
//! cost = "timesteps"          # timesteps | device: weigh each layer by its measured cost on board
//! # board = "nucleo-l4r5zi"   # no default: the board of cost = "device"
//!
//! [mixed]                     # a mixed-precision child (One-Shot MPS, `crate::mps`)
//! weight_bits = []            # per convolution and dense layer; empty: the [quant] bits
//! act_bits = []               # per activation quantizer; empty: the [quant] bits
//!
//! [augment]
//! crop_pad = 2                # random crop after zero padding (0: off)
//! flip = true                 # horizontal flips where the dataset allows them
//! noise = 0.0                 # Gaussian noise on [0, 1] inputs
//! ```
//!
//! A search run (`bitspike train mps`) also has an `[mps]` table (`crate::mps` lists its keys).

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::data::{Augment, DatasetName};
use crate::qac::config::QacConfig;
use crate::quant::{ActQuantizer, Bits, Uniform, WeightQuantizer};
use crate::spec::TrainArch;

/// Quantization settings of a network (the `[quant]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantConfig {
    /// Weight bits of the hidden layers, 2..=8.
    pub weight_bits: u8,
    /// Activation bits, 2..=8.
    pub act_bits: u8,
    /// Weight bits of the first and the last layer (the usual policy keeps them at 8).
    pub first_last_bits: u8,
    /// Activation bits of the edge activations, the first layer's output and the features
    /// the logits layer reads ([`crate::spec::Spec::edge_nodes`]); none: `act_bits` like the
    /// others. A mixed-precision plan, a supernet or QAC sets every width itself and ignores it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge_act_bits: Option<u8>,
    /// Activation bits of the features the logits layer reads alone (overrides
    /// `edge_act_bits` there; SSQL's protocol: 8, the first layer's output at `act_bits`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_act_bits: Option<u8>,
    /// Weight quantizer.
    pub weight_quantizer: WeightQuantizer,
    /// Activation quantizer.
    pub act_quantizer: ActQuantizer,
    /// QAC settings (with `act_quantizer = "qac"`).
    pub qac: QacConfig,
}

impl Default for QuantConfig {
    fn default() -> Self {
        let u = Uniform::default();
        Self {
            weight_bits: u.bits.weight_bits,
            act_bits: u.bits.act_bits,
            first_last_bits: u.bits.first_last_bits,
            edge_act_bits: u.bits.edge_act_bits,
            head_act_bits: u.bits.head_act_bits,
            weight_quantizer: u.weight,
            act_quantizer: u.act,
            qac: QacConfig::default(),
        }
    }
}

impl QuantConfig {
    /// The uniform bit widths.
    pub fn bits(&self) -> Bits {
        Bits {
            weight_bits: self.weight_bits,
            act_bits: self.act_bits,
            first_last_bits: self.first_last_bits,
            edge_act_bits: self.edge_act_bits,
            head_act_bits: self.head_act_bits,
        }
    }

    /// The quantizers at the uniform bit widths.
    pub fn uniform(&self) -> Uniform {
        Uniform {
            weight: self.weight_quantizer,
            act: self.act_quantizer,
            bits: self.bits(),
        }
    }

    /// Check the bit widths and the QAC settings.
    pub fn check(&self) -> Result<()> {
        self.bits().check()?;
        self.qac.check()
    }
}

/// The optimizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Adam.
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// Learning-rate schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Cosine decay to 0 over all steps.
    Cosine,
    /// Multiply by `step_gamma` every `step_epochs` epochs.
    Step,
    /// Constant.
    Constant,
}

/// Everything a QAT run needs (see the module docs for the file form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Dataset.
    pub dataset: DatasetName,
    /// Architecture.
    pub arch: TrainArch,
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: i64,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// Initial learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// Weight decay of weights and BatchNorm.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Step schedule period in epochs.
    pub step_epochs: usize,
    /// Step schedule factor.
    pub step_gamma: f64,
    /// Seed of initialisation, shuffling and augmentation.
    pub seed: i64,
    /// Evaluate on the test split every this many epochs (and after the last).
    pub eval_every: usize,
    /// Quantization.
    pub quant: QuantConfig,
    /// Per-layer bit widths of a mixed-precision child (empty: uniform).
    pub mixed: crate::slots::BitPlan,
    /// A mixed-precision search's settings (a supernet run).
    pub mps: Option<crate::mps::config::MpsConfig>,
    /// Self-supervised pretraining settings (`bitspike train ssql`, [`crate::ssql`]).
    pub ssql: Option<crate::ssql::config::SsqlConfig>,
    /// Resize the dataset's images to `resize x resize` pixels (0: as they are), so that an
    /// encoder pretrained on 28x28 images transfers to the 8x8 digits.
    pub resize: i64,
    /// Augmentation.
    pub augment: Augment,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetName::FashionMnist,
            arch: TrainArch::Cnn,
            epochs: 4,
            batch_size: 128,
            optimizer: Optimizer::Adam,
            lr: 0.005,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine,
            step_epochs: 2,
            step_gamma: 0.1,
            seed: 1,
            eval_every: 1,
            quant: QuantConfig::default(),
            mixed: crate::slots::BitPlan::default(),
            mps: None,
            ssql: None,
            resize: 0,
            augment: Augment::default(),
        }
    }
}

impl TrainConfig {
    /// Read a TOML file; absent keys take their defaults, unknown keys are an error.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config {}", path.display()))?;
        Self::from_toml(&text).with_context(|| format!("{}", path.display()))
    }

    /// Parse TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message().trim_end()))
    }

    /// Load the dataset the configuration names, resized as it says (`resize`).
    pub fn load_data(&self, dir: &Path) -> Result<crate::data::Dataset> {
        crate::data::load_sized(self.dataset, self.resize, dir)
    }

    /// Check values that the types do not.
    pub fn check(&self) -> Result<()> {
        self.quant.check()?;
        if let Some(m) = &self.mps {
            m.check()?;
        }
        if let Some(s) = &self.ssql {
            s.check()?;
        }
        anyhow::ensure!(
            self.resize == 0 || (4..=256).contains(&self.resize),
            "resize {}: use 0 (off) or 4..=256 pixels",
            self.resize
        );
        anyhow::ensure!(self.epochs >= 1, "epochs must be at least 1");
        anyhow::ensure!(self.batch_size >= 1, "batch_size must be at least 1");
        anyhow::ensure!(self.lr > 0.0 && self.lr.is_finite(), "lr must be positive");
        anyhow::ensure!(self.eval_every >= 1, "eval_every must be at least 1");
        anyhow::ensure!(self.step_epochs >= 1, "step_epochs must be at least 1");
        Ok(())
    }

    /// The learning rate at `step` of `total` (epoch `epoch`).
    pub fn lr_at(&self, step: usize, total: usize, epoch: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let t = step as f64 / total.max(1) as f64;
                0.5 * self.lr * (1.0 + (std::f64::consts::PI * t).cos())
            }
            Schedule::Step => self.lr * self.step_gamma.powi((epoch / self.step_epochs) as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides_parse() {
        let _one = crate::seeded();
        let c = TrainConfig::from_toml("epochs = 2\n[quant]\nweight_bits = 2\n").unwrap();
        assert_eq!(c.epochs, 2);
        assert_eq!(c.quant.weight_bits, 2);
        assert_eq!(c.quant.act_bits, 4);
        assert_eq!(c.dataset, DatasetName::FashionMnist);
        // The documented example in the module docs is exactly the defaults.
        let doc = include_str!("config.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! "))
            .skip_while(|l| !l.starts_with("```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("```"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            TrainConfig::from_toml(&doc).unwrap(),
            TrainConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let _one = crate::seeded();
        let e = TrainConfig::from_toml("epochz = 2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochz"), "{e}");
        let e = TrainConfig::from_toml("[quant]\nbits = 2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bits"), "{e}");
        let c = TrainConfig::from_toml("[quant]\nweight_bits = 1").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("weight bits 1"));
    }

    #[test]
    fn schedules() {
        let _one = crate::seeded();
        let mut c = TrainConfig::default();
        assert!((c.lr_at(0, 100, 0) - c.lr).abs() < 1e-12);
        assert!(c.lr_at(100, 100, 3).abs() < 1e-12);
        c.schedule = Schedule::Step;
        assert!((c.lr_at(0, 10, 2) - c.lr * 0.1).abs() < 1e-12);
    }
}
