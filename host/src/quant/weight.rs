//! The weight quantizers: LSQ, Lloyd, Trainable Lloyd, max-abs.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use super::{first_use, grad_scale, lloyd_step, round_ste, WeightQuantize, WeightQuantizer};

/// A weight quantizer of one layer.
#[derive(Debug)]
pub struct WeightQuant {
    /// Which quantizer.
    pub kind: WeightQuantizer,
    /// Bit width, 2..=8.
    pub bits: u8,
    /// One step per output channel (true) or one for the tensor.
    pub per_channel: bool,
    /// The logarithm of the learned step (LSQ, Trainable Lloyd), initialised from the weights on
    /// first use. Learning the logarithm keeps the step positive and makes an optimizer's
    /// updates relative (with Adam a step of 0.01 would otherwise cross zero within a few
    /// updates of size `lr`); the step's gradient is the papers', times the step.
    pub(super) log_step: Option<Tensor>,
    /// Whether `step` has been initialised (saved with the checkpoint).
    pub(super) initialised: Option<Tensor>,
}

impl WeightQuant {
    /// A quantizer for a weight tensor with `out` output channels; learned steps live in `path`.
    pub fn new(
        path: &nn::Path,
        kind: WeightQuantizer,
        bits: u8,
        out: i64,
        per_channel: bool,
    ) -> Self {
        let n = if per_channel { out } else { 1 };
        let learned = matches!(kind, WeightQuantizer::Lsq | WeightQuantizer::TrainableLloyd);
        let log_step = learned.then(|| path.var("log_wstep", &[n], Init::Const(0.0)));
        let initialised = learned.then(|| path.zeros_no_train("wstep_init", &[1]));
        Self {
            kind,
            bits,
            per_channel,
            log_step,
            initialised,
        }
    }

    /// Change the bit width of a quantizer that learns nothing (max-abs, Lloyd); a learned step
    /// belongs to one bit width, so the others refuse.
    pub fn set_bits(&mut self, bits: u8) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.kind.switchable(),
            "{:?} weights learn a step per bit width: their bits cannot be switched",
            self.kind
        );
        anyhow::ensure!((2..=8).contains(&bits), "weight bits {bits}: use 2..=8");
        self.bits = bits;
        Ok(())
    }

    /// The largest code, `2^(b-1) - 1`.
    pub fn qmax(&self) -> f64 {
        ((1i64 << (self.bits - 1)) - 1) as f64
    }

    /// `[out, 1, ...]` or `[1, 1, ...]`: the step's shape against a weight of `dims` dimensions.
    fn view(&self, w: &Tensor) -> Vec<i64> {
        let mut shape = vec![1i64; w.dim()];
        if self.per_channel {
            shape[0] = w.size()[0];
        }
        shape
    }

    /// Per-channel (or per-tensor) statistic of `w`, shaped like the step.
    fn stat(&self, w: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let flat = if self.per_channel {
            w.flatten(1, -1)
        } else {
            w.reshape([1, -1])
        };
        f(&flat)
    }

    fn initial_step(&self, w: &Tensor) -> Tensor {
        let w = w.detach();
        match self.kind {
            WeightQuantizer::Lsq => {
                self.stat(&w, |f| f.abs().mean_dim(1, false, Kind::Float)) * 2.0
                    / self.qmax().sqrt()
            }
            _ => self.stat(&w, |f| f.std_dim(1, false, false)) * lloyd_step(self.bits),
        }
        .clamp_min(1e-8)
    }

    /// The step, shaped `[out]` or `[1]` (learned steps keep their gradient).
    pub fn step(&self, w: &Tensor) -> Tensor {
        match (&self.log_step, self.kind) {
            (Some(s), _) => {
                if self.initialised.as_ref().is_some_and(first_use) {
                    let init = self.initial_step(w).log();
                    tch::no_grad(|| {
                        let mut s = s.shallow_clone();
                        s.copy_(&init);
                    });
                }
                s.exp()
            }
            (None, WeightQuantizer::MaxAbs) => {
                (self.stat(&w.detach(), |f| f.abs().amax(1, false)) / self.qmax()).clamp_min(1e-8)
            }
            (None, WeightQuantizer::MaxAbsHalf) => {
                (self.stat(&w.detach(), |f| f.abs().amax(1, false)) / (self.qmax() + 0.5))
                    .clamp_min(1e-8)
            }
            (None, _) => self.initial_step(w),
        }
    }

    /// Fake-quantize `w`: `clamp(floor(w/s + 1/2), -Q, Q) * s`.
    pub fn forward(&self, w: &Tensor) -> Tensor {
        let mut s = self.step(w);
        if self.kind == WeightQuantizer::Lsq {
            let per = w.numel() as f64 / s.numel() as f64;
            s = grad_scale(&s, 1.0 / (per * self.qmax()).sqrt());
        }
        let s = s.view(self.view(w).as_slice());
        round_ste(&(w / &s).clamp(-self.qmax(), self.qmax())) * s
    }

    /// The integer codes of `w` (row-major, as `w` is laid out) and the step of each output
    /// channel, as the exporter writes them.
    pub fn codes(&self, w: &Tensor) -> (Vec<i8>, Vec<f64>) {
        tch::no_grad(|| {
            let s = self.step(w).detach();
            let sv = s.view(self.view(w).as_slice());
            let q = (w / &sv + 0.5).floor().clamp(-self.qmax(), self.qmax());
            let codes: Vec<i8> = Vec::<f32>::try_from(q.flatten(0, -1).to_kind(Kind::Float))
                .unwrap_or_default()
                .into_iter()
                .map(|v| v as i8)
                .collect();
            let out = w.size()[0] as usize;
            let steps: Vec<f64> = Vec::<f64>::try_from(s.to_kind(Kind::Double)).unwrap_or_default();
            let steps = if steps.len() == out {
                steps
            } else {
                vec![steps[0]; out]
            };
            (codes, steps)
        })
    }
}

impl WeightQuantize for WeightQuant {
    fn forward(&self, w: &Tensor) -> Tensor {
        WeightQuant::forward(self, w)
    }
    fn codes(&self, w: &Tensor) -> (Vec<i8>, Vec<f64>) {
        WeightQuant::codes(self, w)
    }
    fn bits(&self) -> u8 {
        self.bits
    }
    fn set_bits(&mut self, bits: u8) -> anyhow::Result<()> {
        WeightQuant::set_bits(self, bits)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
