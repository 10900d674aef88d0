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
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// How weights are quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
}

/// How activations are quantized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
}

impl Default for Bits {
    fn default() -> Self {
        Self {
            weight_bits: 4,
            act_bits: 4,
            first_last_bits: 8,
            edge_act_bits: None,
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
fn first_use(flag: &Tensor) -> bool {
    if flag.double_value(&[0]) != 0.0 {
        return false;
    }
    tch::no_grad(|| {
        let _ = flag.shallow_clone().fill_(1.0);
    });
    true
}

fn erf(x: f64) -> f64 {
    // Abramowitz and Stegun 7.1.26, |error| < 1.5e-7: ample for four-digit steps.
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Lloyd's algorithm for `n` reconstruction levels of a standard normal density (or, with
/// `half`, of a half-normal one), returning the mean distance between adjacent levels: the step
/// of One-Shot MPS eq. S10 (`half = false`, `n = 2^b`) and S12 (`half = true`, `n = 2^b`).
pub fn lloyd_levels_step(n: usize, half: bool) -> f64 {
    if n < 2 {
        return 1.0;
    }
    let lo = if half { 0.0 } else { -8.0 };
    // Start at the quantiles of N(0, 3): the point density of an optimal quantizer with many
    // levels goes as p(x)^(1/3) (Panter and Dite), so the start is close; then iterate.
    let base = if half { 0.5 } else { 0.0 };
    let mut c: Vec<f64> = (0..n)
        .map(|i| {
            let p = base + (1.0 - base) * (i as f64 + 0.5) / n as f64;
            let (mut a, mut b) = (-8.0f64, 8.0f64);
            for _ in 0..80 {
                let m = 0.5 * (a + b);
                if cdf(m) < p {
                    a = m;
                } else {
                    b = m;
                }
            }
            0.5 * (a + b) * 3f64.sqrt()
        })
        .collect();
    for _ in 0..3000 {
        let mut edges = vec![lo];
        edges.extend(c.windows(2).map(|w| 0.5 * (w[0] + w[1])));
        edges.push(8.0);
        for (i, ci) in c.iter_mut().enumerate() {
            let (a, b) = (edges[i], edges[i + 1]);
            let mass = cdf(b) - cdf(a);
            if mass > 1e-300 {
                // The conditional mean of a normal on [a, b]; the half-normal's is the same on
                // [0, inf), because its density is the normal's times two there.
                *ci = (pdf(a) - pdf(b)) / mass;
            }
        }
    }
    (c[n - 1] - c[0]) / (n - 1) as f64
}

/// The Lloyd weight step (in units of `std(w)`) for our symmetric `b`-bit grid of `2^b - 1`
/// levels.
pub fn lloyd_step(bits: u8) -> f64 {
    cached(bits, false)
}

/// Lloyd's algorithm takes milliseconds; quantizers ask for their step on every forward pass,
/// so the steps of 1..=8 bits are computed once.
fn cached(bits: u8, half: bool) -> f64 {
    static TABLE: std::sync::OnceLock<[[f64; 9]; 2]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [[1.0; 9]; 2];
        for b in 1..=8u8 {
            t[0][b as usize] = lloyd_levels_step((1usize << b) - 1, false);
            t[1][b as usize] = lloyd_levels_step(1usize << b, true);
        }
        t
    });
    match t[half as usize].get(bits as usize) {
        Some(&s) => s,
        None if half => lloyd_levels_step(1usize << bits.min(16), true),
        None => lloyd_levels_step((1usize << bits.min(16)) - 1, false),
    }
}

/// The HWGQ activation step (in units of the pre-activation's standard deviation) for `b` bits:
/// `2^b` levels of a half-normal density, as eq. S12.
pub fn hwgq_step(bits: u8) -> f64 {
    cached(bits, true)
}

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
    log_step: Option<Tensor>,
    /// Whether `step` has been initialised (saved with the checkpoint).
    initialised: Option<Tensor>,
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
            matches!(self.kind, WeightQuantizer::MaxAbs | WeightQuantizer::Lloyd),
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

/// An activation quantizer of one tensor.
#[derive(Debug)]
pub struct ActQuant {
    /// Which quantizer.
    pub kind: ActQuantizer,
    /// Level count `L` (codes `0..=L`).
    pub levels: i64,
    /// The logarithm of the learned parameter: the step (LSQ, Trainable HWGQ), `alpha` (PACT) or
    /// `lambda` (QCFS), initialised on first use (learned in the log domain, as the weight steps).
    log_param: Option<Tensor>,
    /// Whether `param` has been initialised (saved with the checkpoint).
    initialised: Option<Tensor>,
    /// The largest value calibration observed, for [`ActQuantizer::MinMax`] (a buffer, saved);
    /// for [`ActQuantizer::Mse`] the fitted clip.
    amax: Option<Tensor>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn vs() -> nn::VarStore {
        nn::VarStore::new(Device::Cpu)
    }

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    fn vals(x: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(x.flatten(0, -1).to_kind(Kind::Float)).unwrap()
    }

    #[test]
    fn lloyd_steps_reproduce_the_supplement_tables() {
        let _one = crate::seeded();
        // One-Shot MPS eq. S10 (normal, 2^b levels) and S12 (half-normal, 2^b levels). At 2 and
        // 4 bits Lloyd's algorithm gives the tables' steps; at 8 bits it converges to wider
        // outer levels than the table's (0.0394 vs 0.0365 for S10: the asymptotic p^(1/3) point
        // density puts the outermost of 256 levels near 5.0 sigma, the table's near 4.65), so
        // there we only check the neighbourhood.
        // Relative tolerances.
        for (bits, s10, s12, tol) in [
            (2u8, 1.0069, 0.6356, 2e-3),
            (4, 0.3644, 0.2131, 5e-3),
            (8, 0.0365, 0.0203, 0.1),
        ] {
            let n = 1usize << bits;
            let a = lloyd_levels_step(n, false);
            let b = lloyd_levels_step(n, true);
            assert!((a / s10 - 1.0).abs() <= tol, "S10 b={bits}: {a}");
            assert!((b / s12 - 1.0).abs() <= tol, "S12 b={bits}: {b}");
        }
        // Our symmetric 2-bit grid has 3 levels: Lloyd-Max's ternary quantizer has them at 0 and
        // +-1.2240 for a standard normal.
        assert!((lloyd_step(2) - 1.2240).abs() < 1e-3);
    }

    #[test]
    fn round_half_up_matches_the_device() {
        let _one = crate::seeded();
        let x = t(&[-1.5, -0.5, 0.5, 1.5, 2.49]);
        assert_eq!(vals(&round_ste(&x)), vec![-1.0, 0.0, 1.0, 2.0, 2.0]);
    }

    #[test]
    fn lsq_weight_forward_and_step_gradient() {
        let _one = crate::seeded();
        let vs = vs();
        let q = WeightQuant::new(&vs.root(), WeightQuantizer::Lsq, 3, 1, true);
        // Set the step by hand: 0.5; 3 bits -> codes -3..=3.
        tch::no_grad(|| {
            let _ = q
                .log_step
                .as_ref()
                .unwrap()
                .shallow_clone()
                .fill_(0.5f64.ln());
            let _ = q.initialised.as_ref().unwrap().shallow_clone().fill_(1.0);
        });
        let w = t(&[0.1, 0.3, -0.8, 1.0, 2.0, -5.0])
            .view([1, 6])
            .set_requires_grad(true);
        let y = q.forward(&w);
        // 0.1/0.5=0.2->0; 0.6->1; -1.6->-2; 2->2; 4->3 (clamped); -10->-3 (clamped)
        assert_eq!(vals(&y), vec![0.0, 0.5, -1.0, 1.0, 1.5, -1.5]);
        y.sum(Kind::Float).backward();
        // LSQ eq. 3: d/ds = round(v) - v inside, -Q or Q outside; times g = 1/sqrt(N Q).
        let v = [0.2f64, 0.6, -1.6, 2.0, 4.0, -10.0];
        let inside: f64 = v
            .iter()
            .map(|&v| {
                if v.abs() < 3.0 {
                    (v + 0.5).floor() - v
                } else {
                    3.0 * v.signum()
                }
            })
            .sum();
        let g = 1.0 / (6.0f64 * 3.0).sqrt();
        // The parameter is log(s): its gradient is s times the step's.
        let got = q.log_step.as_ref().unwrap().grad().double_value(&[0]) / 0.5;
        assert!((got - inside * g).abs() < 1e-5, "{got} vs {}", inside * g);
        // Straight-through for w: 1 inside the clip range, 0 outside.
        assert_eq!(vals(&w.grad()), vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn lsq_step_gradient_matches_finite_differences_without_scale() {
        let _one = crate::seeded();
        // With the gradient scale removed, the LSQ gradient of sum(q) w.r.t. s is the
        // straight-through derivative; compare with a finite difference of the smooth part
        // (round held fixed) on values away from rounding boundaries.
        let x = t(&[0.26, 0.74, 1.3, -0.9, 9.0]);
        let s = Tensor::from_slice(&[0.5f32]).set_requires_grad(true);
        let f = |s: &Tensor| round_ste(&(&x / s).clamp(-7.0, 7.0)) * s;
        f(&s).sum(Kind::Float).backward();
        let analytic = s.grad().double_value(&[0]);
        // Holding the integer codes fixed (straight-through), q = code(s) * s and for clamped
        // values q = 7 s; the derivative is code - x/s inside, 7 outside.
        let xs = [0.26f64, 0.74, 1.3, -0.9];
        let want: f64 = xs
            .iter()
            .map(|v| ((v / 0.5) + 0.5).floor() - v / 0.5)
            .sum::<f64>()
            + 7.0;
        assert!((analytic - want).abs() < 1e-5, "{analytic} vs {want}");
    }

    #[test]
    fn pact_alpha_gradient_counts_clipped_values() {
        let _one = crate::seeded();
        let vs = vs();
        let q = ActQuant::new(&vs.root(), ActQuantizer::Pact, 2);
        tch::no_grad(|| {
            let _ = q
                .log_param
                .as_ref()
                .unwrap()
                .shallow_clone()
                .fill_(3f64.ln());
            let _ = q.initialised.as_ref().unwrap().shallow_clone().fill_(1.0);
        });
        // L = 3, alpha = 3 -> step 1.
        let x = t(&[-1.0, 0.4, 0.6, 2.5, 3.5, 7.0]).set_requires_grad(true);
        let y = q.forward(&x);
        assert_eq!(vals(&y), vec![0.0, 0.0, 1.0, 3.0, 3.0, 3.0]);
        y.sum(Kind::Float).backward();
        // PACT: d y_q / d alpha = 1 where x >= alpha, else 0 (times alpha for log alpha).
        let g = q.log_param.as_ref().unwrap().grad().double_value(&[0]) / 3.0;
        assert!((g - 2.0).abs() < 1e-5, "{g}");
        assert_eq!(vals(&x.grad()), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
        assert!((q.step() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn hwgq_forward() {
        let _one = crate::seeded();
        let vs = vs();
        let h = ActQuant::new(&vs.root().sub("h"), ActQuantizer::Hwgq, 2);
        let s = hwgq_step(2);
        let y = h.forward(&t(&[s as f32 * 1.2, 100.0]));
        assert!((vals(&y)[0] as f64 - s).abs() < 1e-6);
        assert!((vals(&y)[1] as f64 - 3.0 * s).abs() < 1e-5);
    }

    #[test]
    fn lsq_activation_initialises_from_data_and_exports_codes() {
        let _one = crate::seeded();
        let vs = vs();
        let q = ActQuant::new(&vs.root(), ActQuantizer::Lsq, 4);
        let x = t(&[1.0, 2.0, 3.0, 4.0]).view([1, 4]);
        let _ = q.forward(&x);
        // 2 * mean|x| / sqrt(15)
        assert!((q.step() - 2.0 * 2.5 / 15f64.sqrt()).abs() < 1e-6);
        let w = WeightQuant::new(&vs.root(), WeightQuantizer::MaxAbs, 4, 2, true);
        let wt = t(&[0.7, -0.34, 0.1, 0.21, -0.4, 0.05]).view([2, 3]);
        let (codes, steps) = w.codes(&wt);
        assert_eq!(codes, vec![7, -3, 1, 4, -7, 1]);
        assert!((steps[0] - 0.1).abs() < 1e-7 && (steps[1] - 0.4 / 7.0).abs() < 1e-7);
    }

    #[test]
    fn the_mse_clip_by_hand() {
        // 100 values in the bin centred on 1.5 and one outlier at 9.5, 3 levels: the error is
        // 100 (q(1.5) - 1.5)^2 + (9.5 - c)^2 for clips below 9.5, least on the grid at c = 4.9
        // (step 1.6333: 1.5 -> 1.6333, 1.778 + 21.16); the maximum costs 225, 4.5 costs 25.
        let mut counts = vec![0.0; 10];
        counts[1] = 100.0;
        counts[9] = 1.0;
        let c = mse_clip(&[(counts.clone(), 10.0)], 3);
        assert!((c - 4.9).abs() < 1e-9, "clip {c}");
        // Many levels make clipping the outlier the larger cost: the clip moves up.
        assert!(mse_clip(&[(counts, 10.0)], 255) > 9.0);
        assert_eq!(mse_clip(&[], 3), 0.0, "nothing seen");
    }

    #[test]
    fn mse_calibration_fits_its_clip_at_each_bit_width() {
        let _one = crate::seeded();
        let vs = vs();
        let mut q = ActQuant::new(&vs.root(), ActQuantizer::Mse, 2);
        // Half zeros (free at any clip), a bulk below 1 and one outlier at 8.
        let bulk = Tensor::rand([4000], (Kind::Float, tch::Device::Cpu));
        let x = Tensor::cat(
            &[
                Tensor::zeros([4000], (Kind::Float, tch::Device::Cpu)),
                bulk,
                Tensor::from_slice(&[8.0f32]),
            ],
            0,
        );
        q.observe(&x);
        let s2 = q.step();
        assert!(
            s2 < 0.5 && s2 > 0.1,
            "2-bit step {s2}: the outlier is clipped"
        );
        q.set_bits(8).unwrap();
        let s8 = q.step();
        assert!(
            s8 * 255.0 <= 8.0 + 1e-6 && s8 * 255.0 > s2 * 3.0,
            "8-bit clip {}",
            s8 * 255.0
        );
        // The clip is what the checkpoint keeps: a fresh quantizer loading it has the step.
        let vs2 = nn::VarStore::new(tch::Device::Cpu);
        let r = ActQuant::new(&vs2.root(), ActQuantizer::Mse, 8);
        tch::no_grad(|| {
            let _ = r.amax.as_ref().unwrap().shallow_clone().fill_(s8 * 255.0);
        });
        assert!((r.step() - s8).abs() < 1e-9, "a reloaded clip stays");
        q.reset_range();
        assert!(q.step() <= 1e-8, "nothing observed since the reset");
    }

    #[test]
    fn min_max_maps_the_observed_maximum_to_the_top_code_at_any_bit_width() {
        let _one = crate::seeded();
        let vs = vs();
        let mut q = ActQuant::new(&vs.root(), ActQuantizer::MinMax, 2);
        q.observe(&Tensor::from_slice(&[0.5f32, 2.0]));
        q.observe(&Tensor::from_slice(&[3.0f32, 1.0]));
        assert!((q.step() - 1.0).abs() < 1e-9, "max 3 over L = 3");
        let y = q.forward(&Tensor::from_slice(&[-1.0f32, 0.4, 1.6, 5.0]));
        assert_eq!(Vec::<f32>::try_from(y).unwrap(), vec![0.0, 0.0, 2.0, 3.0]);
        q.set_bits(4).unwrap();
        assert!((q.step() - 0.2).abs() < 1e-7, "max 3 over L = 15");
        q.reset_range();
        q.observe(&Tensor::from_slice(&[1.5f32]));
        assert!((q.step() - 0.1).abs() < 1e-7);
        let mut lsq = ActQuant::new(&vs.root().sub("l"), ActQuantizer::Lsq, 4);
        assert!(
            lsq.set_bits(2).is_err(),
            "a learned step belongs to one bit width"
        );
        let mut w = WeightQuant::new(&vs.root().sub("w"), WeightQuantizer::MaxAbs, 8, 2, true);
        w.set_bits(3).unwrap();
        let x = Tensor::from_slice(&[3.0f32, 1.4, -1.6, 0.2]).reshape([2, 2]);
        // per row: max |w| 3 -> step 1 (codes -3..=3); 1.6 -> step 0.5333
        let y = Vec::<f32>::try_from(w.forward(&x).flatten(0, -1)).unwrap();
        assert_eq!(y[0], 3.0);
        assert_eq!(y[1], 1.0);
        assert!((y[2] + 1.6).abs() < 1e-6 && y[3].abs() < 1e-6);
        let mut l = WeightQuant::new(&vs.root().sub("v"), WeightQuantizer::Lsq, 8, 2, true);
        assert!(l.set_bits(3).is_err());
    }
}
