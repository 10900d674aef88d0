//! SSQL's settings: the `[ssql]` table of a pretraining run, the frameworks and their rates.

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The self-supervised framework.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Framework {
    /// SimSiam: predictor and stop-gradient, no negatives, no momentum encoder.
    Simsiam,
    /// BYOL: predictor and a momentum target network.
    Byol,
    /// MoCo v2: a momentum key encoder and a queue of negatives (InfoNCE).
    Moco,
}

impl Framework {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simsiam => "SimSiam",
            Self::Byol => "BYOL",
            Self::Moco => "MoCo v2",
        }
    }
}

/// Which statistics the quantized branch's BatchNorm layers normalize with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum QuantizedBn {
    /// The quantized batch's own statistics: BatchNorm re-centres and re-scales whatever
    /// quantization did to each channel, so the encoder learns to be robust up to that
    /// correction (evaluate it with BatchNorm re-estimated per bit width).
    #[default]
    Batch,
    /// The running statistics the full-precision passes keep, in every BatchNorm of the
    /// quantized branch (encoder, projector, predictor): the branch sees the shifts and scale
    /// changes quantization causes, as a post-training quantized network with
    /// full-precision BatchNorm statistics (folded into the weights) and a linear head fitted
    /// in full precision does.
    Float,
}

/// The protocol a pretraining run and its evaluation follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// bitspike's defaults (docs/ssql/README.md): weights at `max|w| / Q`, the first layer's
    /// output and the head's input at the activation width unless `edge_act_bits` says
    /// otherwise, a two-layer projector in full precision, one linear head quantized with the
    /// encoder.
    #[default]
    Bitspike,
    /// SSQL's official code as far as an integer device allows (docs/ssql/official.md):
    /// weights at `max|w| / ((2^b - 1) / 2)` per channel, activations min-max per tensor, the
    /// features the head reads at 8 bits while the first layer's output follows the
    /// activation width, a three-layer projector (widths scaled with the encoder) whose
    /// weights the quantized branch takes at 8 bits, its augmentations and schedule; linear
    /// evaluation trains a head per bit width on the calibrated, quantized encoder.
    Official,
}

impl Protocol {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bitspike => "bitspike",
            Self::Official => "official",
        }
    }
}

/// The official protocol's projector and predictor width per feature of the encoder: SSQL's
/// 2048 over ResNet-18's 512 features.
pub const OFFICIAL_WIDTH_PER_FEATURE: i64 = 4;

/// The pretraining rate of `bitspike train ssql` (SGD, batch 256, cosine): Table 10's rate of
/// the framework (SimSiam and SSQL 0.05, MoCo v2 0.03; BYOL's 0.5 at batch 512 halved for our
/// batch of 256). A baseline and its SSQL variant train with the same rate.
pub fn default_lr(f: Framework) -> f64 {
    match f {
        Framework::Simsiam => 0.05,
        Framework::Moco => 0.03,
        Framework::Byol => 0.25,
    }
}

/// The `[ssql]` table of a pretraining run. Every key is optional (these defaults); the
/// optimizer, rate, epochs and batch size are the run's own keys.
///
/// ```toml
/// [ssql]
/// framework = "simsiam"   # simsiam | byol | moco
/// quantize = true         # false: the framework alone (the baseline)
/// weight_bits = [2, 8]    # the range a step's weight bit width is drawn from (inclusive)
/// act_bits = [4, 8]       # the same for activations
/// quantized_bn = "batch"  # batch | float: the quantized branch's BatchNorm statistics
/// dim = 128               # projector output
/// hidden = 256            # projector hidden width (and BYOL's predictor)
/// predictor_hidden = 64   # SimSiam's predictor bottleneck
/// momentum = 0.0          # BYOL / MoCo target momentum; 0: the framework's (0.99 / 0.999)
/// queue = 4096            # MoCo negatives
/// temperature = 0.2       # MoCo
/// crop_scale = [0.35, 1.0] # random resized crop: the share of the image area kept
/// rotation = 15.0         # largest rotation, degrees
/// jitter = 0.4            # brightness and contrast jitter (factors 1 +- jitter)
/// jitter_p = 0.8          # probability of the jitter
/// protocol = "bitspike"   # bitspike | official: recorded for the evaluation's defaults
/// projector_layers = 2    # 2 or 3 linear layers
/// projector_weight_bits = 0 # the quantized branch's projector weights: 0 full precision, or 2..=8
/// ```
///
/// A width of 0 (`dim`, `hidden`, `predictor_hidden`) stands for
/// [`OFFICIAL_WIDTH_PER_FEATURE`] times the features the encoder gives its head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SsqlConfig {
    /// The framework.
    pub framework: Framework,
    /// Whether SSQL's quantized branch runs (false: the plain framework, the baseline).
    pub quantize: bool,
    /// Inclusive range of the weight bit width drawn each step.
    pub weight_bits: [u8; 2],
    /// Inclusive range of the activation bit width drawn each step.
    pub act_bits: [u8; 2],
    /// The statistics the quantized branch's BatchNorm layers use.
    pub quantized_bn: QuantizedBn,
    /// Projector output width.
    pub dim: i64,
    /// Projector hidden width (and BYOL's predictor's).
    pub hidden: i64,
    /// SimSiam's predictor bottleneck.
    pub predictor_hidden: i64,
    /// Momentum of BYOL's target / MoCo's key encoder; 0 takes the framework's default.
    pub momentum: f64,
    /// MoCo's queue length.
    pub queue: i64,
    /// MoCo's softmax temperature.
    pub temperature: f64,
    /// Random resized crop: the range of the kept share of the image area.
    pub crop_scale: [f64; 2],
    /// Largest random rotation, in degrees.
    pub rotation: f64,
    /// Brightness and contrast factors are drawn from `1 +- jitter`.
    pub jitter: f64,
    /// Probability that a view is jittered.
    pub jitter_p: f64,
    /// The protocol the run follows (recorded: the evaluation takes its defaults from it).
    pub protocol: Protocol,
    /// Linear layers of the projector: 2 (`Linear, BN, ReLU, Linear, BN`) or 3 (one more
    /// `Linear, BN, ReLU` first, as SimSiam's CIFAR projector).
    pub projector_layers: u8,
    /// Weight bits of the projector in the quantized branch (0: full precision).
    pub projector_weight_bits: u8,
}

impl Default for SsqlConfig {
    fn default() -> Self {
        Self {
            framework: Framework::Simsiam,
            quantize: true,
            weight_bits: [2, 8],
            act_bits: [4, 8],
            quantized_bn: QuantizedBn::Batch,
            dim: 128,
            hidden: 256,
            predictor_hidden: 64,
            momentum: 0.0,
            queue: 4096,
            temperature: 0.2,
            crop_scale: [0.35, 1.0],
            rotation: 15.0,
            jitter: 0.4,
            jitter_p: 0.8,
            protocol: Protocol::Bitspike,
            projector_layers: 2,
            projector_weight_bits: 0,
        }
    }
}

impl SsqlConfig {
    /// SSQL's official protocol on an encoder: its augmentations, the three-layer projector
    /// whose weights the quantized branch takes at 8 bits, and widths scaled with the encoder
    /// (0: resolved by [`SsqlConfig::resolve_widths`]).
    pub fn official(mut self) -> Self {
        self.protocol = Protocol::Official;
        self.crop_scale = [0.2, 1.0];
        self.rotation = 0.0;
        self.jitter = 0.4;
        self.jitter_p = 0.8;
        self.projector_layers = 3;
        self.projector_weight_bits = 8;
        self.quantized_bn = QuantizedBn::Batch;
        self.dim = 0;
        self.hidden = 0;
        self.predictor_hidden = 0;
        self
    }

    /// bitspike's own protocol: every setting [`SsqlConfig::official`] changes back at its
    /// default (the framework, bit ranges and MoCo's settings are kept).
    pub fn bitspike(self) -> Self {
        let d = Self::default();
        Self {
            protocol: d.protocol,
            crop_scale: d.crop_scale,
            rotation: d.rotation,
            jitter: d.jitter,
            jitter_p: d.jitter_p,
            projector_layers: d.projector_layers,
            projector_weight_bits: d.projector_weight_bits,
            quantized_bn: d.quantized_bn,
            dim: d.dim,
            hidden: d.hidden,
            predictor_hidden: d.predictor_hidden,
            ..self
        }
    }

    /// Replace every width of 0 by [`OFFICIAL_WIDTH_PER_FEATURE`] times `features`, the
    /// encoder's feature count.
    pub fn resolve_widths(&mut self, features: i64) {
        for w in [&mut self.dim, &mut self.hidden, &mut self.predictor_hidden] {
            if *w == 0 {
                *w = OFFICIAL_WIDTH_PER_FEATURE * features;
            }
        }
    }

    /// The momentum in use: the configured one, or the framework's (BYOL 0.99, MoCo 0.999).
    pub fn momentum(&self) -> f64 {
        if self.momentum > 0.0 {
            return self.momentum;
        }
        match self.framework {
            Framework::Moco => 0.999,
            _ => 0.99,
        }
    }

    /// Refuse settings that cannot train.
    pub fn check(&self) -> Result<()> {
        let [wl, wh] = self.weight_bits;
        let [al, ah] = self.act_bits;
        anyhow::ensure!(
            (2..=8).contains(&wl) && (2..=8).contains(&wh) && wl <= wh,
            "ssql weight_bits [{wl}, {wh}]: use a range within 2..=8"
        );
        anyhow::ensure!(
            (2..=8).contains(&al) && (2..=8).contains(&ah) && al <= ah,
            "ssql act_bits [{al}, {ah}]: use a range within 2..=8"
        );
        anyhow::ensure!(
            self.dim >= 0 && self.hidden >= 0 && self.predictor_hidden >= 0,
            "ssql dim, hidden and predictor_hidden must be positive (0: scaled with the encoder)"
        );
        anyhow::ensure!(
            matches!(self.projector_layers, 2 | 3),
            "ssql projector_layers must be 2 or 3"
        );
        anyhow::ensure!(
            self.projector_weight_bits == 0 || (2..=8).contains(&self.projector_weight_bits),
            "ssql projector_weight_bits must be 0 (full precision) or in 2..=8"
        );
        anyhow::ensure!(
            self.momentum >= 0.0 && self.momentum < 1.0,
            "ssql momentum must be in [0, 1)"
        );
        anyhow::ensure!(self.queue >= 1, "ssql queue must be at least 1");
        anyhow::ensure!(
            self.temperature > 0.0 && self.temperature.is_finite(),
            "ssql temperature must be positive"
        );
        let [sl, sh] = self.crop_scale;
        anyhow::ensure!(
            sl > 0.0 && sl <= sh && sh <= 1.0,
            "ssql crop_scale [{sl}, {sh}]: use 0 < low <= high <= 1"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.jitter) && (0.0..=1.0).contains(&self.jitter_p),
            "ssql jitter must be in [0, 1) and jitter_p in [0, 1]"
        );
        Ok(())
    }

    /// How reports name the method: "SimSiam", "SimSiam+SSQL", and for SSQL settings other
    /// than the defaults their list, e.g. "SimSiam+SSQL (float BN, a3-8)".
    pub fn method(&self) -> String {
        let f = self.framework.as_str();
        if !self.quantize {
            return match self.protocol {
                Protocol::Official => format!("{f} (official)"),
                Protocol::Bitspike => f.to_string(),
            };
        }
        let d = Self::default();
        let mut notes = Vec::new();
        if self.quantized_bn == QuantizedBn::Float {
            notes.push("float BN".to_string());
        }
        if self.weight_bits != d.weight_bits {
            notes.push(format!("w{}-{}", self.weight_bits[0], self.weight_bits[1]));
        }
        if self.act_bits != d.act_bits {
            notes.push(format!("a{}-{}", self.act_bits[0], self.act_bits[1]));
        }
        if self.protocol == Protocol::Official {
            notes.insert(0, "official".to_string());
        }
        if notes.is_empty() {
            format!("{f}+SSQL")
        } else {
            format!("{f}+SSQL ({})", notes.join(", "))
        }
    }
}
