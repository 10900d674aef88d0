//! Fake quantizers with straight-through estimators, for quantization-aware training.
//!
//! Every quantizer ends on the integer grid the device uses, with the rounding the device uses
//! (`floor(v + 0.5)`, round half up; `bitspike_core::quant`), so that a trained network exports
//! to integer codes and steps without re-rounding:
//!
//! * weights: signed, **symmetric** codes `-Q..=Q`, `Q = 2^(b-1) - 1`, with a step per output
//!   channel (per tensor where a layer's outputs must share one scale, such as raw logits);
//! * activations: unsigned codes `0..=L` (`L = 2^b - 1`) with one step per tensor.
//!
//! Symmetric weights (one code fewer than two's complement) let the exporter flip a channel's
//! sign when BatchNorm's scale is negative, keeping the device's multipliers non-negative. The
//! One-Shot MPS supplement's Lloyd quantizer (eq. S9) uses `-2^(b-1)..=2^(b-1)-1`; we keep its
//! steps' derivation (Lloyd's algorithm on a normal density, [`lloyd_step`]) for our grid.
//!
//! Weight quantizers: [`WeightQuantizer`]; activation quantizers: [`ActQuantizer`]. A network
//! ([`crate::net::QNet`]) holds its quantizers through the traits [`WeightQuantize`] and
//! [`ActQuantize`], which every method's quantizers implement (these here, QAC's in
//! `crate::qac`, a search's candidates in `crate::mps`): the network knows no method.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Tensor;

mod act;
mod lloyd;
mod signed;
#[cfg(test)]
mod tests;
mod weight;

pub use act::{mse_clip, ActQuant};
pub use lloyd::{hwgq_step, lloyd_levels_step, lloyd_step};
pub use signed::{step_and_zero, SignedQuant, SIGNED_LEVELS, TRACK_RATE};
pub use weight::WeightQuant;

/// How weights are quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum WeightQuantizer {
    /// LSQ (Esser et al. 2020): a learned step per channel, gradient scaled by `1/sqrt(N Q)`.
    Lsq,
    /// Lloyd (One-Shot MPS eq. S9-S10): step `std(w) * s_b`, nothing learned.
    Lloyd,
    /// Trainable Lloyd (One-Shot MPS S3.1.4): the Lloyd step as initial value of a learned step.
    TrainableLloyd,
    /// Largest magnitude per channel mapped to the largest code (the usual partner of PACT).
    MaxAbs,
    /// SSQL's weight observer (its official code): step `max|w| / ((2^b - 1) / 2)` per output
    /// channel, half a code finer than [`WeightQuantizer::MaxAbs`]; with the device's rounding
    /// (half up) the codes stay symmetric, the largest magnitude landing on `Q`. Nothing is
    /// learned.
    MaxAbsHalf,
}

impl WeightQuantizer {
    /// Whether the quantizer learns nothing, so that one set of weights can be quantized at
    /// any bit width (SSQL's bit switching).
    pub fn switchable(self) -> bool {
        matches!(self, Self::MaxAbs | Self::MaxAbsHalf | Self::Lloyd)
    }
}

/// How activations are quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ActQuantizer {
    /// LSQ: a learned step, gradient scaled by `1/sqrt(N L)`.
    Lsq,
    /// PACT (Choi et al. 2018): a learned clip `alpha`, step `alpha / L`.
    Pact,
    /// HWGQ (One-Shot MPS eq. S11-S12): the Lloyd step of a half-normal density, nothing learned.
    Hwgq,
    /// HWGQ's step as the initial value of a learned step (the activation side of Trainable Lloyd).
    TrainableHwgq,
    /// QCFS clip-floor-shift (Bu et al. 2023, QAC eq. 5): `lambda / L * clamp(floor(x L / lambda +
    /// 1/2), 0, L)` with a learned threshold `lambda` and `L = 2^b - 1`: QAC's case 4 with every
    /// layer's level count frozen at `L` ([`crate::qac`]), trained and converted as QAC is.
    Qcfs,
    /// QAC (section 4.2): a learned clip and a learned level count per layer, the network's
    /// timesteps once converted to a spiking one (settings in `[quant.qac]`, [`crate::qac`]).
    Qac,
    /// Min-max calibration (SSQL's observer; post-training quantization): the largest value the
    /// last calibration pass saw ([`crate::net::Mode::Calibrate`]) maps to the largest code.
    /// Nothing is learned; the observed maximum is saved with the checkpoint.
    MinMax,
    /// MSE-clipped calibration: what the last calibration pass saw is kept as histograms, and
    /// at the current bit width the clip that minimises the squared quantization error over
    /// them maps to the largest code (fitted again when the bit width changes). Nothing is
    /// learned; the fitted clip is saved with the checkpoint in place of the maximum.
    Mse,
}

/// What a network asks of the quantizer of one layer's weights.
pub trait WeightQuantize: std::fmt::Debug + Send + std::any::Any {
    /// Fake-quantize `w`: `clamp(floor(w/s + 1/2), -Q, Q) * s`.
    fn forward(&self, w: &Tensor) -> Tensor;
    /// The integer codes of `w` (row-major, as `w` is laid out) and the step of each output
    /// channel, as the exporter writes them.
    fn codes(&self, w: &Tensor) -> (Vec<i8>, Vec<f64>);
    /// The bit width of the codes, 2..=8.
    fn bits(&self) -> u8;
    /// Switch to `bits`; a quantizer whose learned state belongs to one bit width refuses.
    fn set_bits(&mut self, bits: u8) -> anyhow::Result<()>;
    /// The quantizer as [`std::any::Any`], for a method to find its own among a network's.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// What a network asks of the quantizer of one activation tensor (its ReLU included).
pub trait ActQuantize: std::fmt::Debug + Send + std::any::Any {
    /// Fake-quantize `x` to `clamp(floor(x/s + 1/2), 0, L) * s`.
    fn forward(&self, x: &Tensor) -> Tensor;
    /// The level count `L` of the exported codes `0..=L`.
    fn levels(&self) -> i64;
    /// The real value of one code.
    fn step(&self) -> f64;
    /// The code of the real value 0 (nonzero only for a signed tensor's codes,
    /// [`SignedQuant`]).
    fn zero_point(&self) -> i64 {
        0
    }
    /// Switch to `bits`; a quantizer whose learned state belongs to one bit width refuses.
    fn set_bits(&mut self, bits: u8) -> anyhow::Result<()>;
    /// Calibration ([`crate::net::Mode::Calibrate`]): observe a full-precision activation.
    fn observe(&self, _x: &Tensor) {}
    /// Forget what calibration observed (before a new calibration pass).
    fn reset_range(&self) {}
    /// The quantizer as [`std::any::Any`], for a method to find its own among a network's.
    fn as_any(&self) -> &dyn std::any::Any;
}

/// Where a network's quantizers come from: each way of training one (uniform bits, a
/// mixed-precision plan, a search's placeholders, QAC) implements it.
pub trait Quantizers {
    /// The quantizer of node `node`'s weights, its variables in `path`: `out` output
    /// channels, one step per channel or one for the tensor; `edge`: the first or the logits
    /// layer.
    fn weight(
        &self,
        path: &nn::Path,
        node: usize,
        edge: bool,
        out: i64,
        per_channel: bool,
    ) -> anyhow::Result<Box<dyn WeightQuantize>>;
    /// The quantizer of node `node`'s output, its variables in `path`; `edge`: an edge
    /// activation ([`crate::spec::Spec::edge_nodes`]).
    fn act(&self, path: &nn::Path, node: usize, edge: bool)
        -> anyhow::Result<Box<dyn ActQuantize>>;
}

/// Uniform bit widths of a network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bits {
    /// Weight bits of the hidden layers, 2..=8.
    pub weight_bits: u8,
    /// Activation bits, 2..=8.
    pub act_bits: u8,
    /// Weight bits of the first and the last layer.
    pub first_last_bits: u8,
    /// Bits of the edge activations (`None`: `act_bits`).
    pub edge_act_bits: Option<u8>,
    /// Bits of the features the logits layer reads alone, whatever `edge_act_bits` says
    /// (`None`: as the edges); SSQL's protocol reads them at 8 bits while the first layer's
    /// output follows `act_bits`. Only quantizers that learn nothing switch to it.
    pub head_act_bits: Option<u8>,
}

impl Default for Bits {
    fn default() -> Self {
        Self {
            weight_bits: 4,
            act_bits: 4,
            first_last_bits: 8,
            edge_act_bits: None,
            head_act_bits: None,
        }
    }
}

impl Bits {
    /// Check the bit widths.
    pub fn check(&self) -> anyhow::Result<()> {
        for (name, b) in [
            ("weight bits", self.weight_bits),
            ("activation bits", self.act_bits),
            ("first/last layer bits", self.first_last_bits),
            ("edge activation bits", self.edge_act_bits.unwrap_or(8)),
            ("head input bits", self.head_act_bits.unwrap_or(8)),
        ] {
            anyhow::ensure!(
                (2..=8).contains(&b),
                "{name} {b} is not supported: use 2..=8"
            );
        }
        Ok(())
    }
}

/// One weight and one activation quantizer at uniform bit widths (the first and last layers'
/// weights at `first_last_bits`, the edge activations at `edge_act_bits` when set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uniform {
    /// Weight quantizer.
    pub weight: WeightQuantizer,
    /// Activation quantizer.
    pub act: ActQuantizer,
    /// Bit widths.
    pub bits: Bits,
}

impl Default for Uniform {
    fn default() -> Self {
        Self {
            weight: WeightQuantizer::Lsq,
            act: ActQuantizer::Lsq,
            bits: Bits::default(),
        }
    }
}

impl Quantizers for Uniform {
    fn weight(
        &self,
        path: &nn::Path,
        _node: usize,
        edge: bool,
        out: i64,
        per_channel: bool,
    ) -> anyhow::Result<Box<dyn WeightQuantize>> {
        let b = if edge {
            self.bits.first_last_bits
        } else {
            self.bits.weight_bits
        };
        Ok(Box::new(WeightQuant::new(
            path,
            self.weight,
            b,
            out,
            per_channel,
        )))
    }

    fn act(
        &self,
        path: &nn::Path,
        _node: usize,
        edge: bool,
    ) -> anyhow::Result<Box<dyn ActQuantize>> {
        anyhow::ensure!(
            !matches!(self.act, ActQuantizer::Qac | ActQuantizer::Qcfs),
            "{:?} activations are QAC's quantizers: train them with `bitspike train qac`",
            self.act
        );
        let b = match (edge, self.bits.edge_act_bits) {
            (true, Some(b)) => b,
            _ => self.bits.act_bits,
        };
        Ok(Box::new(ActQuant::new(path, self.act, b)))
    }
}

/// `floor(x + 1/2)` forward, identity backward (the straight-through estimator).
pub fn round_ste(x: &Tensor) -> Tensor {
    x + ((x + 0.5).floor() - x).detach()
}

/// `x` forward, gradient scaled by `g` backward (LSQ's gradient scale).
pub fn grad_scale(x: &Tensor, g: f64) -> Tensor {
    let xg = x * g;
    // Exactly `x` forward (no rounding of `x - x g + x g`), gradient times `g` backward.
    x.detach() + (&xg - xg.detach())
}

/// Whether a quantizer's "initialised" flag (a non-trainable variable saved with the
/// checkpoint) is still 0, and set it.
pub(crate) fn first_use(flag: &Tensor) -> bool {
    if flag.double_value(&[0]) != 0.0 {
        return false;
    }
    tch::no_grad(|| {
        let _ = flag.shallow_clone().fill_(1.0);
    });
    true
}
