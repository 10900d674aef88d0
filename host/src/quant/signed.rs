//! The quantizer of a signed tensor: a convolution without a ReLU (a residual block's second
//! convolution and its shortcut, whose outputs are summed before the block's ReLU).
//!
//! Codes are 8-bit, `0..=255`, with a zero point: the real value of code `c` is `s (c - z)`.
//! The range is the smallest and the largest value observed, widened to hold zero, as SSQL's
//! asymmetric observer and int8 inference engines do: `s = (max - min) / 255`,
//! `z = clamp(floor(-min / s + 1/2), 0, 255)`. The device adds `z` after requantizing (the
//! layer's offset, `bitspike_core::quant::requantize`) and the residual add that reads the
//! tensor subtracts it through its bias, so the integer network computes what this quantizer
//! simulates. The tensor keeps 8 bits at every activation bit width: in SSQL's protocol it is
//! not quantized at all, and 8 bits is the closest an integer device comes.

use tch::{nn, Kind, Tensor};

use super::{round_ste, ActQuantize};

/// The level count of a signed tensor's codes.
pub const SIGNED_LEVELS: i64 = 255;

/// Min-max quantizer of a signed tensor, with a zero point.
#[derive(Debug)]
pub struct SignedQuant {
    /// The smallest value observed (a buffer saved with the checkpoint; at most 0).
    lo: Tensor,
    /// The largest value observed (saved; at least 0).
    hi: Tensor,
}

impl SignedQuant {
    /// A quantizer whose range lives in `path` (`amin`, `amax`).
    pub fn new(path: &nn::Path) -> Self {
        Self {
            lo: path.zeros_no_train("amin", &[1]),
            hi: path.zeros_no_train("amax", &[1]),
        }
    }

    /// The observed range `(min, max)`, widened to hold zero.
    fn range(&self) -> (f64, f64) {
        let lo = self.lo.double_value(&[0]).min(0.0);
        let hi = self.hi.double_value(&[0]).max(0.0);
        (lo, hi)
    }

    /// Whether anything has been observed since the last reset.
    pub fn observed(&self) -> bool {
        let (lo, hi) = self.range();
        hi > lo
    }

    /// Training: move the range towards the batch's (`x`'s smallest and largest value) by
    /// [`TRACK_RATE`], or take the batch's when nothing has been observed yet (the moving
    /// averages int8 quantization-aware training keeps).
    pub fn track(&self, x: &Tensor) {
        if !self.observed() {
            self.observe(x);
            return;
        }
        tch::no_grad(|| {
            let x = x.detach().to_kind(Kind::Float);
            for (t, v) in [(&self.lo, x.min()), (&self.hi, x.max())] {
                let v = v.reshape([1]).to_device(t.device());
                let mut t = t.shallow_clone();
                let moved = &t * (1.0 - TRACK_RATE) + v * TRACK_RATE;
                t.copy_(&moved);
            }
        });
    }
}

/// How far one training batch moves a signed tensor's range ([`SignedQuant::track`]).
pub const TRACK_RATE: f64 = 0.1;

/// The step and zero point of the range `[lo, hi]` (`lo <= 0 <= hi`) on `levels` levels.
pub fn step_and_zero(lo: f64, hi: f64, levels: i64) -> (f64, i64) {
    let s = ((hi - lo) / levels as f64).max(1e-8);
    let z = ((-lo / s + 0.5).floor() as i64).clamp(0, levels);
    (s, z)
}

impl ActQuantize for SignedQuant {
    fn forward(&self, x: &Tensor) -> Tensor {
        let (lo, hi) = self.range();
        let (s, z) = step_and_zero(lo, hi, SIGNED_LEVELS);
        let (lo_code, hi_code) = (-z as f64, (SIGNED_LEVELS - z) as f64);
        round_ste(&(x / s).clamp(lo_code, hi_code)) * s
    }

    fn levels(&self) -> i64 {
        SIGNED_LEVELS
    }

    fn step(&self) -> f64 {
        let (lo, hi) = self.range();
        step_and_zero(lo, hi, SIGNED_LEVELS).0
    }

    fn zero_point(&self) -> i64 {
        let (lo, hi) = self.range();
        step_and_zero(lo, hi, SIGNED_LEVELS).1
    }

    fn set_bits(&mut self, _bits: u8) -> anyhow::Result<()> {
        anyhow::bail!("a signed tensor stays at 8 bits")
    }

    fn observe(&self, x: &Tensor) {
        tch::no_grad(|| {
            let x = x.detach().to_kind(Kind::Float);
            let lo = x.min().reshape([1]).to_device(self.lo.device());
            let hi = x.max().reshape([1]).to_device(self.hi.device());
            let mut l = self.lo.shallow_clone();
            let v = l.minimum(&lo);
            l.copy_(&v);
            let mut h = self.hi.shallow_clone();
            let v = h.maximum(&hi);
            h.copy_(&v);
        });
    }

    fn reset_range(&self) {
        tch::no_grad(|| {
            let _ = self.lo.shallow_clone().zero_();
            let _ = self.hi.shallow_clone().zero_();
        });
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
