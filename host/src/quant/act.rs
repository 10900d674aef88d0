//! The activation quantizers: LSQ, PACT, HWGQ, Trainable HWGQ, min-max and MSE calibration.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use super::{first_use, grad_scale, hwgq_step, round_ste, ActQuantize, ActQuantizer};

/// An activation quantizer of one tensor.
#[derive(Debug)]
pub struct ActQuant {
    /// Which quantizer.
    pub kind: ActQuantizer,
    /// Level count `L` (codes `0..=L`).
    pub levels: i64,
    /// The logarithm of the learned parameter: the step (LSQ, Trainable HWGQ), `alpha` (PACT) or
    /// `lambda` (QCFS), initialised on first use (learned in the log domain, as the weight steps).
    pub(super) log_param: Option<Tensor>,
    /// Whether `param` has been initialised (saved with the checkpoint).
    pub(super) initialised: Option<Tensor>,
    /// The largest value calibration observed, for [`ActQuantizer::MinMax`] (a buffer, saved);
    /// for [`ActQuantizer::Mse`] the fitted clip.
    pub(super) amax: Option<Tensor>,
    /// [`ActQuantizer::Mse`]: the histograms calibration observed and whether the clip in
    /// `amax` still has to be fitted to them.
    seen: std::sync::Mutex<Seen>,
}

/// Histograms of the positive activations of one calibration pass, for MSE clipping.
#[derive(Debug, Default)]
struct Seen {
    /// One `(counts, top)` per observed tensor: [`HIST_BINS`] equal bins over `(0, top]`.
    hists: Vec<(Vec<f64>, f64)>,
    /// The clip has not been fitted since the last observation or bit-width change.
    stale: bool,
}

/// Bins of a calibration histogram.
const HIST_BINS: i64 = 1024;

/// Candidate clips of the MSE search: `k / CLIP_STEPS` of the largest value, `k = 1..=CLIP_STEPS`.
const CLIP_STEPS: usize = 200;

/// The clip in `(0, top]` (top: the largest of the histograms') whose quantization on
/// `levels` levels, `min(floor(x L / c + 1/2), L) c / L`, has the least squared error over the
/// histograms (each bin counted at its centre); 0 when nothing positive was seen.
pub fn mse_clip(hists: &[(Vec<f64>, f64)], levels: i64) -> f64 {
    let top = hists.iter().map(|h| h.1).fold(0.0, f64::max);
    if top <= 0.0 {
        return 0.0;
    }
    let l = levels as f64;
    let mut best = (f64::INFINITY, top);
    for k in 1..=CLIP_STEPS {
        let c = top * k as f64 / CLIP_STEPS as f64;
        let s = c / l;
        let mut err = 0.0;
        for (counts, t) in hists {
            let w = t / counts.len() as f64;
            for (i, &n) in counts.iter().enumerate() {
                if n > 0.0 {
                    let x = (i as f64 + 0.5) * w;
                    let q = (x / s + 0.5).floor().min(l) * s;
                    err += n * (q - x) * (q - x);
                }
            }
        }
        if err < best.0 {
            best = (err, c);
        }
    }
    best.1
}

/// PACT's initial clip, for BatchNorm-ed pre-activations.
const INITIAL_CLIP: f64 = 4.0;

impl ActQuant {
    /// A quantizer of `bits`-bit activations (`L = 2^b - 1`); its parameter lives in `path`.
    pub fn new(path: &nn::Path, kind: ActQuantizer, bits: u8) -> Self {
        let learned = !matches!(
            kind,
            ActQuantizer::Hwgq | ActQuantizer::MinMax | ActQuantizer::Mse
        );
        let levels = (1i64 << bits) - 1;
        let mut q = Self {
            kind,
            levels,
            log_param: None,
            initialised: None,
            amax: None,
            seen: Default::default(),
        };
        if kind == ActQuantizer::Qac {
            return q;
        }
        if matches!(kind, ActQuantizer::MinMax | ActQuantizer::Mse) {
            q.amax = Some(path.zeros_no_train("amax", &[1]));
            return q;
        }
        let start = q.default_param().ln();
        q.log_param = learned.then(|| path.var("log_astep", &[1], Init::Const(start)));
        q.initialised = learned.then(|| path.zeros_no_train("astep_init", &[1]));
        q
    }

    /// The level count `L` of the exported codes.
    pub fn levels(&self) -> i64 {
        self.levels
    }

    /// The parameter's value before any data was seen.
    fn default_param(&self) -> f64 {
        match self.kind {
            ActQuantizer::Qac | ActQuantizer::MinMax | ActQuantizer::Mse => 1.0,
            ActQuantizer::Pact => INITIAL_CLIP,
            ActQuantizer::Hwgq | ActQuantizer::TrainableHwgq => hwgq_step(self.bits()),
            ActQuantizer::Lsq | ActQuantizer::Qcfs => 1.0,
        }
    }

    fn bits(&self) -> u8 {
        (64 - (self.levels as u64).leading_zeros()) as u8
    }

    /// Change the bit width of a quantizer that learns nothing (HWGQ, min-max, MSE); learned
    /// parameters belong to one bit width, so the others refuse.
    pub fn set_bits(&mut self, bits: u8) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(
                self.kind,
                ActQuantizer::Hwgq | ActQuantizer::MinMax | ActQuantizer::Mse
            ),
            "{:?} activations learn a parameter per bit width: their bits cannot be switched",
            self.kind
        );
        anyhow::ensure!((1..=8).contains(&bits), "activation bits {bits}: use 1..=8");
        let levels = (1i64 << bits) - 1;
        if levels != self.levels {
            self.levels = levels;
            self.seen_mut().stale = true;
        }
        Ok(())
    }

    fn seen_mut(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calibration: raise the observed maximum to `x`'s largest value (MSE: also keep the
    /// histogram of `x`'s positive values).
    pub fn observe(&self, x: &Tensor) {
        if let Some(m) = &self.amax {
            tch::no_grad(|| {
                let x = x.detach().to_kind(Kind::Float);
                let top = x.max().reshape([1]);
                if self.kind == ActQuantizer::Mse {
                    let t = top.double_value(&[0]);
                    if t > 0.0 {
                        // Zeros (most of a ReLU's output) cost nothing at any clip:
                        // positive values only.
                        let v = x.masked_select(&x.gt(0.0));
                        let bins = (v * (HIST_BINS as f64 / t))
                            .floor()
                            .clamp(0.0, (HIST_BINS - 1) as f64)
                            .to_kind(Kind::Int64)
                            .bincount::<Tensor>(None, HIST_BINS);
                        let counts =
                            Vec::<f64>::try_from(bins.to_kind(Kind::Double)).unwrap_or_default();
                        let mut seen = self.seen_mut();
                        seen.hists.push((counts, t));
                        seen.stale = true;
                    }
                    return;
                }
                let mut m = m.shallow_clone();
                let v = m.maximum(&top.to_device(m.device()));
                m.copy_(&v);
            });
        }
    }

    /// Forget what calibration observed (before a new calibration pass).
    pub fn reset_range(&self) {
        if let Some(m) = &self.amax {
            tch::no_grad(|| {
                let _ = m.shallow_clone().zero_();
            });
            *self.seen_mut() = Seen::default();
        }
    }

    /// The step `max / L` (MSE: `clip / L`, the clip fitted first if it is stale and there are
    /// histograms; a reloaded checkpoint keeps its saved clip; a tiny
    /// positive step before any calibration).
    fn minmax_step(&self) -> f64 {
        if self.kind == ActQuantizer::Mse {
            let mut seen = self.seen_mut();
            if seen.stale && !seen.hists.is_empty() {
                seen.stale = false;
                let c = mse_clip(&seen.hists, self.levels);
                if let Some(m) = &self.amax {
                    tch::no_grad(|| {
                        let _ = m.shallow_clone().fill_(c);
                    });
                }
            }
        }
        let m = self.amax.as_ref().map_or(0.0, |m| m.double_value(&[0]));
        (m / self.levels as f64).max(1e-8)
    }

    fn init(&self, x: &Tensor) -> f64 {
        match self.kind {
            ActQuantizer::Lsq => {
                let m = x.detach().abs().mean(Kind::Float).double_value(&[]);
                (2.0 * m / (self.levels as f64).sqrt()).max(1e-6)
            }
            ActQuantizer::Pact => INITIAL_CLIP,
            ActQuantizer::Hwgq | ActQuantizer::TrainableHwgq => hwgq_step(self.bits()),
            ActQuantizer::Qac | ActQuantizer::Qcfs | ActQuantizer::MinMax | ActQuantizer::Mse => {
                1.0
            }
        }
    }

    fn param(&self, x: &Tensor) -> Option<Tensor> {
        let p = self.log_param.as_ref()?;
        if self.initialised.as_ref().is_some_and(first_use) {
            let v = self.init(x).ln();
            tch::no_grad(|| {
                let mut p = p.shallow_clone();
                let _ = p.fill_(v);
            });
        }
        Some(p.exp())
    }

    /// The step of one code (for export): `s`, `alpha / L` or `lambda / L`.
    pub fn step(&self) -> f64 {
        let p = self.log_param.as_ref().map(|p| p.double_value(&[0]).exp());
        match self.kind {
            ActQuantizer::Hwgq => hwgq_step(self.bits()),
            ActQuantizer::MinMax | ActQuantizer::Mse => self.minmax_step(),
            ActQuantizer::Pact => p.unwrap_or(INITIAL_CLIP) / self.levels as f64,
            _ => p.unwrap_or(1.0),
        }
    }

    /// Fake-quantize `x` to `clamp(floor(x/s + 1/2), 0, L) * s` (ReLU included).
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let l = self.levels as f64;
        match self.kind {
            ActQuantizer::Qac | ActQuantizer::Qcfs => x.relu(),
            ActQuantizer::Hwgq => {
                let s = hwgq_step(self.bits());
                round_ste(&(x / s).clamp(0.0, l)) * s
            }
            ActQuantizer::MinMax | ActQuantizer::Mse => {
                let s = self.minmax_step();
                round_ste(&(x / s).clamp(0.0, l)) * s
            }
            ActQuantizer::Lsq | ActQuantizer::TrainableHwgq => {
                let mut s = self.param(x).unwrap_or_else(|| Tensor::from(1.0f32));
                if self.kind == ActQuantizer::Lsq {
                    s = grad_scale(
                        &s,
                        1.0 / (x.numel() as f64 / x.size()[0].max(1) as f64 * l).sqrt(),
                    );
                }
                round_ste(&(x / &s).clamp(0.0, l)) * s
            }
            ActQuantizer::Pact => {
                // y = clip(x, 0, alpha) written so that alpha gets PACT's gradient (1 where
                // x >= alpha); the rounding is straight-through with alpha held fixed.
                let alpha = self
                    .param(x)
                    .unwrap_or_else(|| Tensor::from(INITIAL_CLIP as f32));
                let y = x.relu() - (x - &alpha).relu();
                let a = alpha.detach();
                let q = (&y * l / &a + 0.5).floor() * &a / l;
                &y + (q - &y).detach()
            }
        }
    }

    /// Requantize `x` on the step `s` of another quantizer (average pools keep their input's
    /// step): `clamp(floor(x/s + 1/2), 0, L) * s`, straight-through.
    pub fn requantize_at(x: &Tensor, step: f64, levels: i64) -> Tensor {
        round_ste(&(x / step).clamp(0.0, levels as f64)) * step
    }
}

impl ActQuantize for ActQuant {
    fn forward(&self, x: &Tensor) -> Tensor {
        ActQuant::forward(self, x)
    }
    fn levels(&self) -> i64 {
        self.levels
    }
    fn step(&self) -> f64 {
        ActQuant::step(self)
    }
    fn set_bits(&mut self, bits: u8) -> anyhow::Result<()> {
        ActQuant::set_bits(self, bits)
    }
    fn observe(&self, x: &Tensor) {
        ActQuant::observe(self, x)
    }
    fn reset_range(&self) {
        ActQuant::reset_range(self)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
