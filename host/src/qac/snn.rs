//! QAC's conversion to a mixed-timestep spiking network, its batched float simulator in tch, the
//! temporal alignment policies, and the calibration of thresholds and initial potentials
//! (QAC sections 3-4, Algorithm 1).
//!
//! **Conversion** ([`Snn::convert`]): every QAC-quantized layer (convolutions and hidden dense
//! layers, BatchNorm folded as the exporter folds it) becomes a layer of soft-reset
//! integrate-and-fire neurons (QAC eq. 1-3) that runs `T_l` timesteps, the trained level count
//! rounded ([`crate::qac::timesteps_of`]), with threshold `theta_l = alpha_l` (one per layer: a
//! spike carries it to the next layer, whose input scale is per tensor) and initial potential
//! `v0 = theta_l / 2` for every channel. Pools are linear and act on each step; the logits layer
//! reads the mean of its input over its steps. The network input is an analog current, the same
//! on every step of the first layer (direct encoding).
//!
//! **Simulator** ([`Snn::forward`]): tensors are `[T, N, ...]`, one slice per step holding spikes
//! times the threshold (or pooled sums of them). Between layers with different `T` the input is
//! aligned ([`AlignMode`]): averaging gives every step of layer `l+1` the mean over the steps of
//! layer `l` (eq. 12-13), replication and truncation pick steps
//! ([`bitspike_core::snn::source_step`], the same rule as the integer semantics). With averaging
//! the current of every step is the same, so a layer's synaptic input is computed once.
//!
//! **Equivalence and tolerance**: with averaging and `v0 = theta / 2`, a layer's spike count is
//! `clamp(floor(T z / theta + 1/2), 0, T)`, exactly the QAC quantizer at integer `T`. The integer
//! network ([`crate::qac::export::model_def_snn`], run by the firmware runtime) computes the same
//! counts from integer accumulators, with the threshold, initial potential and bias rounded to
//! `2^-k` of an accumulator unit (`k` the membrane shift); the two differ only where a float32
//! potential lies within that rounding of a threshold. `tests/snn.rs` measures the agreement.
//!
//! **Calibration** ([`calibrate`], Algorithm 1 lines 26-32): weights frozen, the per-layer
//! threshold and per-channel initial potential minimise `1/2 (mean_t o_SNN(t) - o_ANN)^2`
//! (eq. 15) between the spiking network's logits and the trained quantized network's, on
//! unlabelled training images. The Heaviside step needs a surrogate gradient: with averaging
//! alignment a layer's current is constant, its spike count is exactly
//! `clamp(floor((v0 + T z) / theta), 0, T)`, and the gradient is that closed form's with a
//! straight-through floor (as LSQ treats its rounding; the forward pass stays the exact
//! step-by-step simulation). With replication or truncation each step's Heaviside has a sigmoid
//! surrogate (`sigma'(4 (m - theta) / theta)`). A per-step sigmoid surrogate under averaging was
//! tried first: on our runs its steps raised the exact loss more often than they lowered it.

use anyhow::{bail, Context, Result};
use bitspike_core::layer::Align;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Kind, Tensor};

use crate::data::{self, Split};
use crate::export::floats;
use crate::net::{Op, Params, QNet};
use crate::qac::MAX_TIMESTEPS;

/// How a layer's input train is aligned to its own timesteps (QAC section 4.3, Table 4): one
/// method when the layer has more steps than its input (expansion), one when it has fewer
/// (reduction). With equal steps the expansion method applies (replication and truncation then
/// pass the train through unchanged; averaging still averages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum AlignMode {
    /// Averaging for both (eq. 12-13; the default, "Aver + Aver").
    Average,
    /// Replication for expansion, averaging for reduction ("Repl + Aver").
    ReplAver,
    /// Replication for expansion, truncation for reduction ("Repl + Trunc").
    ReplTrunc,
    /// Averaging for expansion, truncation for reduction ("Aver + Trunc").
    AverTrunc,
    /// Replication for both.
    Replicate,
    /// Truncation for both.
    Truncate,
}

impl AlignMode {
    /// The alignment of an input with `t_in` steps into a layer with `t_out`.
    pub const fn for_pair(self, t_in: u16, t_out: u16) -> Align {
        let expand = t_out >= t_in;
        match (self, expand) {
            (Self::Average, _) | (Self::ReplAver, false) | (Self::AverTrunc, true) => {
                Align::Average
            }
            (Self::ReplAver | Self::ReplTrunc | Self::Replicate, true)
            | (Self::Replicate, false) => Align::Replicate,
            (Self::ReplTrunc | Self::AverTrunc | Self::Truncate, false)
            | (Self::Truncate, true) => Align::Truncate,
        }
    }

    /// The paper's label ("Aver + Aver", ...).
    pub const fn label(self) -> &'static str {
        match self {
            Self::Average => "Aver + Aver",
            Self::ReplAver => "Repl + Aver",
            Self::ReplTrunc => "Repl + Trunc",
            Self::AverTrunc => "Aver + Trunc",
            Self::Replicate => "Repl + Repl",
            Self::Truncate => "Trunc + Trunc",
        }
    }
}

/// One spiking layer of a converted network.
#[derive(Debug)]
pub struct SnnLayer {
    /// The node of the network it converts.
    pub node: usize,
    /// Timesteps `T_l`.
    pub timesteps: u16,
    /// Threshold `theta_l` (real units, shape `[1]`).
    pub threshold: Tensor,
    /// Initial membrane potential per output channel (real units, shape `[C]`).
    pub v0: Tensor,
}

/// A converted spiking network: the trained network's weights with spiking layers in place of
/// its QAC quantizers.
#[derive(Debug)]
pub struct Snn {
    /// Spiking layers, in node order.
    pub layers: Vec<SnnLayer>,
    /// Temporal alignment.
    pub align: AlignMode,
}

/// The parameters of a converted network, as saved in a run folder (`snn.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnnFile {
    /// Temporal alignment.
    pub align: AlignMode,
    /// Per layer: node, timesteps, threshold, initial potentials.
    pub layers: Vec<SnnFileLayer>,
}

/// One layer of [`SnnFile`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnnFileLayer {
    /// Node index.
    pub node: usize,
    /// Timesteps.
    pub timesteps: u16,
    /// Threshold (real units).
    pub threshold: f64,
    /// Initial potential per channel (real units).
    pub v0: Vec<f64>,
}

/// The Heaviside step `m >= theta`, with a sigmoid surrogate gradient when `surrogate`.
fn spike(m: &Tensor, theta: &Tensor, surrogate: bool) -> Tensor {
    let h = m.ge_tensor(theta).to_kind(Kind::Float);
    if !surrogate {
        return h;
    }
    let s = ((m - theta) * 4.0 / theta.detach()).sigmoid();
    &h + (&s - s.detach())
}

/// Soft-reset IF neurons starting at `v0` (broadcast per channel) over the currents of each
/// step; returns the spikes times the threshold, `[T, ...]`.
fn neurons(v0: &Tensor, currents: &[Tensor], theta: &Tensor, surrogate: bool) -> Tensor {
    let Some(first) = currents.first() else {
        return Tensor::zeros([0], (Kind::Float, v0.device()));
    };
    let mut v = v0.expand_as(first);
    let mut out = Vec::with_capacity(currents.len());
    for z in currents {
        let m = &v + z;
        let s = spike(&m, theta, surrogate);
        v = &m - &s * theta;
        out.push(s * theta);
    }
    Tensor::stack(&out, 0)
}

impl Snn {
    /// Convert a QAC-trained network (the module docs): `T_l` rounded from the learned level
    /// count, `theta_l = alpha_l`, `v0 = theta_l / 2`.
    pub fn convert(net: &QNet, align: AlignMode) -> Result<Self> {
        if !net.spiking {
            bail!("the run was not trained with QAC (`bitspike train qac`): nothing converts to spikes");
        }
        let shapes = net.spec.shapes()?;
        let device = net.device();
        let mut layers = Vec::new();
        for (node, q) in crate::qac::layers(net) {
            let c = shapes[node + 1][0];
            let alpha = q.alpha();
            layers.push(SnnLayer {
                node,
                timesteps: q.timesteps(),
                threshold: Tensor::from_slice(&[alpha as f32]).to_device(device),
                v0: Tensor::full([c], alpha / 2.0, (Kind::Float, device)),
            });
        }
        Ok(Self { layers, align })
    }

    /// The same network with every layer's timesteps multiplied by `m` (QAC Table 5).
    /// Thresholds and initial potentials are shared, not copied.
    pub fn scaled(&self, m: u16) -> Self {
        Self {
            layers: self
                .layers
                .iter()
                .map(|l| SnnLayer {
                    node: l.node,
                    timesteps: l.timesteps.saturating_mul(m),
                    threshold: l.threshold.shallow_clone(),
                    v0: l.v0.shallow_clone(),
                })
                .collect(),
            align: self.align,
        }
    }

    /// The same network with every layer at `t` timesteps (QCFS's uniform T, Table 8).
    pub fn uniform(&self, t: u16) -> Self {
        let mut s = self.scaled(1);
        for l in &mut s.layers {
            l.timesteps = t;
        }
        s
    }

    /// Mean timesteps over the spiking layers.
    pub fn avg_timesteps(&self) -> f64 {
        let n = self.layers.len().max(1) as f64;
        self.layers.iter().map(|l| l.timesteps as f64).sum::<f64>() / n
    }

    /// The spiking layer converting `node`, if any.
    pub fn layer(&self, node: usize) -> Option<&SnnLayer> {
        self.layers.iter().find(|l| l.node == node)
    }

    /// The step (real value of one code) and the level count of every tensor of the converted
    /// network, as the exporter writes them: a spiking layer's codes are spike counts worth
    /// `theta_l / T_l`; pools sum (levels and step scaled by the window); the logits are raw.
    pub fn steps_and_levels(&self, net: &QNet) -> Result<(Vec<f64>, Vec<i64>)> {
        let shapes = net.spec.shapes()?;
        let mut s = vec![1.0 / net.input_max as f64];
        let mut l = vec![net.input_max as i64];
        for (i, n) in net.spec.nodes.iter().enumerate() {
            let (step, levels) = match (&n.op, self.layer(i)) {
                (_, Some(sl)) => (
                    sl.threshold.double_value(&[0]) / sl.timesteps as f64,
                    sl.timesteps as i64,
                ),
                (Op::AvgPool { k, .. }, None) => (s[n.input] / (k * k) as f64, l[n.input] * k * k),
                (Op::GlobalAvgPool, None) => {
                    let hw = shapes[n.input][1] * shapes[n.input][2];
                    (s[n.input] / hw as f64, l[n.input] * hw)
                }
                (Op::Dense { hidden: false, .. }, None) => (0.0, 0),
                (Op::Flatten | Op::MaxPool { .. }, None) => (s[n.input], l[n.input]),
                (op, None) => bail!("node {i} ({op:?}) has no spiking layer"),
            };
            s.push(step);
            l.push(levels);
        }
        Ok((s, l))
    }

    /// The timesteps of every tensor (0 = the input, one analog step): a spiking layer's own,
    /// pass-through nodes their input's.
    pub fn tensor_timesteps(&self, net: &QNet) -> Vec<u16> {
        let mut t = vec![1u16];
        for (i, n) in net.spec.nodes.iter().enumerate() {
            let v = self.layer(i).map_or(t[n.input], |l| l.timesteps);
            t.push(v);
        }
        t
    }

    /// The alignment of spiking layer `sl`'s input. The network input is an analog current,
    /// the same on every step (direct encoding), whatever the policy.
    pub fn align_of(&self, net: &QNet, sl: &SnnLayer) -> Align {
        let input = net.spec.nodes[sl.node].input;
        if input == 0 {
            return Align::Average;
        }
        let t_in = self.tensor_timesteps(net)[input];
        self.align.for_pair(t_in, sl.timesteps)
    }

    /// Align a `[T_in, N, ...]` train to `t_out` steps by `align`; `None` for averaging (the
    /// caller uses the mean, the same for every step).
    fn aligned(x: &Tensor, align: Align, t_out: u16) -> Option<Tensor> {
        let t_in = x.size()[0] as usize;
        if align == Align::Average {
            return None;
        }
        let zero = x.get(0).zeros_like();
        let steps: Vec<Tensor> = (0..t_out as usize)
            .map(
                |t| match bitspike_core::snn::source_step(align, t, t_in, t_out as usize) {
                    Some(s) if s < t_in => x.get(s as i64),
                    _ => zero.shallow_clone(),
                },
            )
            .collect();
        Some(Tensor::stack(&steps, 0))
    }

    /// Apply `f` (a per-sample module) to every step of `x` `[T, N, ...]`.
    fn per_step(x: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
        let s = x.size();
        let y = f(&x.flatten(0, 1));
        let mut shape = vec![s[0], s[1]];
        shape.extend_from_slice(&y.size()[1..]);
        y.view(shape.as_slice())
    }

    /// Run the spiking network on `x` (`[N, C, H, W]` in `[0, 1]`); returns the logits (the
    /// output layer's current averaged over time). `surrogate` gives the spikes a surrogate
    /// gradient (calibration); otherwise the simulation is exact Heaviside steps.
    pub fn forward(&self, net: &QNet, x: &Tensor, surrogate: bool) -> Tensor {
        let mut outs: Vec<Tensor> = vec![x.unsqueeze(0)];
        for (i, (n, p)) in net.spec.nodes.iter().zip(&net.params).enumerate() {
            let xin = &outs[n.input];
            let y = match (&n.op, p, self.layer(i)) {
                (
                    Op::Conv {
                        stride,
                        pad,
                        groups,
                        ..
                    },
                    Params::Conv { w, bn, wq, .. },
                    Some(sl),
                ) => {
                    let wq = wq.forward(w);
                    let f = |x: &Tensor| {
                        bn.forward_t(
                            &x.conv2d(&wq, None::<Tensor>, [*stride], [*pad], [1], *groups),
                            false,
                        )
                    };
                    self.fire(sl, xin, self.align_of(net, sl), f, surrogate)
                }
                (Op::Dense { hidden: true, .. }, Params::Dense { w, b, wq, .. }, Some(sl)) => {
                    let wq = wq.forward(w);
                    let f = |x: &Tensor| x.flatten(1, -1).linear(&wq, Some(b));
                    self.fire(sl, xin, self.align_of(net, sl), f, surrogate)
                }
                (Op::Dense { hidden: false, .. }, Params::Dense { w, b, wq, .. }, _) => xin
                    .mean_dim(0, false, Kind::Float)
                    .flatten(1, -1)
                    .linear(&wq.forward(w), Some(b))
                    .unsqueeze(0),
                (Op::AvgPool { k, stride }, _, _) | (Op::MaxPool { k, stride }, _, _) => {
                    Self::per_step(xin, |x| {
                        x.avg_pool2d([*k], [*stride], [0], false, true, None)
                    })
                }
                (Op::GlobalAvgPool, _, _) => {
                    Self::per_step(xin, |x| x.mean_dim(&[2i64, 3][..], true, Kind::Float))
                }
                (Op::Flatten, _, _) => Self::per_step(xin, |x| x.flatten(1, -1)),
                // `convert` accepts only networks whose every quantized node has a layer.
                _ => xin.shallow_clone(),
            };
            outs.push(y);
        }
        outs.pop()
            .map(|y| y.get(0))
            .unwrap_or_else(|| x.shallow_clone())
    }

    /// A spiking layer: align the input by `align`, compute the synaptic current of each step
    /// with `f`, run the neurons.
    fn fire(
        &self,
        sl: &SnnLayer,
        xin: &Tensor,
        align: Align,
        f: impl Fn(&Tensor) -> Tensor,
        surrogate: bool,
    ) -> Tensor {
        let theta = &sl.threshold;
        let currents: Vec<Tensor> = match Self::aligned(xin, align, sl.timesteps) {
            // Averaging: the same current every step, computed once.
            None => {
                let z = f(&xin.mean_dim(0, false, Kind::Float));
                (0..sl.timesteps).map(|_| z.shallow_clone()).collect()
            }
            Some(a) => {
                let z = Self::per_step(&a, &f);
                (0..sl.timesteps as i64).map(|t| z.get(t)).collect()
            }
        };
        let first = &currents[0];
        let mut shape = vec![1i64; first.dim()];
        if shape.len() > 1 {
            shape[1] = -1; // channels
        }
        let v0 = sl.v0.view(shape.as_slice());
        if surrogate && align == Align::Average {
            // A constant current: the exact spikes forward, and the gradient of their count's
            // closed form `clamp(floor((v0 + T z) / theta), 0, T)` with a straight-through floor
            // (the module docs).
            let exact = tch::no_grad(|| neurons(&v0, &currents, theta, false));
            let t = sl.timesteps as f64;
            let u = (&v0 + first * t) / theta;
            let floor = &u + (u.floor() - &u).detach();
            let q = floor.clamp(0.0, t) * theta / t;
            return exact + (&q - q.detach()).unsqueeze(0);
        }
        neurons(&v0, &currents, theta, surrogate)
    }

    /// The parameters, for `snn.json`.
    pub fn to_file(&self) -> SnnFile {
        SnnFile {
            align: self.align,
            layers: self
                .layers
                .iter()
                .map(|l| SnnFileLayer {
                    node: l.node,
                    timesteps: l.timesteps,
                    threshold: l.threshold.double_value(&[0]),
                    v0: floats(&l.v0),
                })
                .collect(),
        }
    }

    /// Rebuild from `snn.json`, checking it against the network.
    pub fn from_file(net: &QNet, f: &SnnFile) -> Result<Self> {
        let shapes = net.spec.shapes()?;
        let device = net.device();
        let nodes: Vec<usize> = crate::qac::layers(net).iter().map(|(n, _)| *n).collect();
        let theirs: Vec<usize> = f.layers.iter().map(|l| l.node).collect();
        if nodes != theirs {
            bail!("the spiking parameters do not belong to this network (layers {theirs:?}, the network has {nodes:?})");
        }
        let mut layers = Vec::new();
        for l in &f.layers {
            let c = shapes[l.node + 1][0] as usize;
            if l.v0.len() != c
                || !(1..=MAX_TIMESTEPS).contains(&l.timesteps)
                || !(l.threshold > 0.0 && l.threshold.is_finite())
            {
                bail!("spiking layer of node {}: corrupt parameters", l.node);
            }
            let v0: Vec<f32> = l.v0.iter().map(|&v| v as f32).collect();
            layers.push(SnnLayer {
                node: l.node,
                timesteps: l.timesteps,
                threshold: Tensor::from_slice(&[l.threshold as f32]).to_device(device),
                v0: Tensor::from_slice(&v0).to_device(device),
            });
        }
        Ok(Self {
            layers,
            align: f.align,
        })
    }
}

/// Accuracy (0..1) and mean squared logit error against the quantized network, of the spiking
/// network on the first `limit` samples of `split`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SnnEval {
    /// The spiking network's accuracy.
    pub accuracy: f64,
    /// The quantized network's accuracy on the same samples.
    pub ann_accuracy: f64,
    /// `mean (o_SNN - o_ANN)^2` over samples and classes.
    pub mse: f64,
    /// Samples evaluated.
    pub samples: i64,
    /// The spiking network's prediction of every sample.
    #[serde(skip)]
    pub predictions: Vec<i64>,
}

/// Evaluate `snn` against `net` on the first `limit` samples of `split`.
pub fn evaluate(net: &QNet, snn: &Snn, split: &Split, max_code: u8, limit: i64) -> SnnEval {
    let device = net.device();
    let n = split.len().min(limit);
    tch::no_grad(|| {
        let (mut ok, mut ann_ok, mut se, mut count) = (0i64, 0i64, 0.0, 0i64);
        let mut predictions = Vec::with_capacity(n as usize);
        for idx in data::batches(n, 500, false) {
            let x = data::to_input(&split.images.index_select(0, &idx), max_code, device);
            let y = split.labels.index_select(0, &idx).to_device(device);
            let o = snn.forward(net, &x, false);
            let a = net.forward_t(&x, false);
            let p = o.argmax(-1, false);
            predictions.extend(Vec::<i64>::try_from(&p).unwrap_or_default());
            ok += p.eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
            ann_ok += a
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[]);
            se += (&o - &a).square().sum(Kind::Double).double_value(&[]);
            count += o.numel() as i64;
        }
        SnnEval {
            accuracy: ok as f64 / n.max(1) as f64,
            ann_accuracy: ann_ok as f64 / n.max(1) as f64,
            mse: se / count.max(1) as f64,
            samples: n,
            predictions,
        }
    })
}

/// Calibration settings.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// Passes over the calibration images.
    pub epochs: usize,
    /// Images used (the first of the training split; labels are not read).
    pub images: i64,
    /// Batch size.
    pub batch: i64,
    /// Adam's learning rate, relative to each layer's threshold (parameters are learned as
    /// fractions of the converted threshold).
    pub lr: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            epochs: 8,
            images: 4096,
            batch: 128,
            lr: 0.002,
        }
    }
}

/// Calibrate `snn`'s thresholds and initial potentials against `net` (the module docs), on the
/// first images of `split`, without labels. Returns the loss (eq. 15, exact spikes, over the
/// calibration images) before calibration and after each epoch; the parameters kept are those
/// of the lowest.
pub fn calibrate(
    net: &QNet,
    snn: &mut Snn,
    split: &Split,
    max_code: u8,
    c: &Calibration,
) -> Result<Vec<f64>> {
    let device = net.device();
    // Learn relative values: theta = theta0 * a, v0 = theta0 * b, so one rate suits every layer.
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let mut rel = Vec::new();
    for (k, l) in snn.layers.iter().enumerate() {
        let theta0 = l.threshold.double_value(&[0]);
        let a = root.var(&format!("a{k}"), &[1], nn::Init::Const(1.0));
        let b = root.var_copy(&format!("b{k}"), &(l.v0.detach() / theta0));
        rel.push((theta0, a, b));
    }
    let mut opt = nn::Adam::default().build(&vs, c.lr)?;
    let n = split.len().min(c.images);
    if n == 0 {
        bail!("no calibration images");
    }
    // The quantized network's logits are the targets; compute them once.
    let targets: Vec<(Tensor, Tensor)> = tch::no_grad(|| {
        data::batches(n, c.batch, false)
            .into_iter()
            .map(|idx| {
                let x = data::to_input(&split.images.index_select(0, &idx), max_code, device);
                let y = net.forward_t(&x, false);
                (x, y)
            })
            .collect()
    });
    let set = |snn: &mut Snn| {
        for (l, (theta0, a, b)) in snn.layers.iter_mut().zip(&rel) {
            l.threshold = a.clamp_min(0.05) * *theta0;
            l.v0 = b * *theta0;
        }
    };
    // The loss with exact spikes over all calibration images.
    let exact = |snn: &Snn| -> f64 {
        tch::no_grad(|| {
            let mut total = 0.0;
            for (x, target) in &targets {
                let o = snn.forward(net, x, false);
                let l = (o - target).square().mean(Kind::Float) * 0.5;
                total += l.double_value(&[]) * x.size()[0] as f64;
            }
            total / n as f64
        })
    };
    let snapshot = || -> Vec<(Tensor, Tensor)> {
        rel.iter()
            .map(|(_, a, b)| (a.detach().copy(), b.detach().copy()))
            .collect()
    };
    // Surrogate gradients are noisy: keep the parameters of the epoch with the lowest exact
    // loss, starting from the converted ones.
    let mut losses = vec![exact(snn)];
    let mut best = (losses[0], snapshot());
    for _ in 0..c.epochs {
        for (x, target) in &targets {
            set(snn);
            let o = snn.forward(net, x, true);
            let loss = (o - target).square().mean(Kind::Float) * 0.5;
            opt.backward_step(&loss);
        }
        set(snn);
        let l = exact(snn);
        losses.push(l);
        if l < best.0 {
            best = (l, snapshot());
        }
    }
    tch::no_grad(|| {
        for ((_, a, b), (sa, sb)) in rel.iter().zip(&best.1) {
            a.shallow_clone().copy_(sa);
            b.shallow_clone().copy_(sb);
        }
    });
    set(snn);
    for l in &mut snn.layers {
        l.threshold = l.threshold.detach().copy();
        l.v0 = l.v0.detach().copy();
    }
    Ok(losses)
}

/// Read `snn.json` of a run folder, if there is one.
pub fn load_file(path: &std::path::Path) -> Result<Option<SnnFile>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(
            serde_json::from_str(&t).with_context(|| format!("{}: corrupt", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn alignment_policies_pick_by_direction() {
        let _one = crate::seeded();
        use AlignMode::*;
        assert_eq!(Average.for_pair(2, 5), Align::Average);
        assert_eq!(ReplAver.for_pair(2, 5), Align::Replicate);
        assert_eq!(ReplAver.for_pair(5, 2), Align::Average);
        assert_eq!(ReplTrunc.for_pair(5, 2), Align::Truncate);
        assert_eq!(ReplTrunc.for_pair(3, 3), Align::Replicate);
        assert_eq!(AverTrunc.for_pair(2, 5), Align::Average);
        assert_eq!(AverTrunc.for_pair(5, 2), Align::Truncate);
    }

    #[test]
    fn simulator_alignment_matches_the_integer_rule() {
        let _one = crate::seeded();
        // T_l = 4 -> T_{l+1} = 5, train 1 0 1 1 (one neuron): the float simulator's steps are
        // the integer rule's (bitspike_core::snn::aligned_input) divided by T_l.
        let train = [1u8, 0, 1, 1];
        let x = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 1.0]).view([4, 1, 1]);
        for align in [Align::Replicate, Align::Truncate] {
            let got: Vec<f32> =
                Vec::try_from(Snn::aligned(&x, align, 5).unwrap().flatten(0, -1)).unwrap();
            let mut want = [0u32; 5];
            bitspike_core::snn::aligned_input(align, &train, &mut want);
            let want: Vec<f32> = want.iter().map(|&v| v as f32 / 4.0).collect();
            assert_eq!(got, want, "{align:?}");
        }
        assert!(Snn::aligned(&x, Align::Average, 5).is_none());
    }

    #[test]
    fn neurons_in_the_simulator_follow_the_integer_rule() {
        let _one = crate::seeded();
        // One neuron layer driven directly: theta 1, v0 0.5, currents 0.3 for 4 steps:
        // 0.8, 1.1 fire -> 0.1, 0.4, 0.7: one spike; the integer rule gives the same.
        let sl = SnnLayer {
            node: 0,
            timesteps: 4,
            threshold: Tensor::from_slice(&[1.0f32]),
            v0: Tensor::from_slice(&[0.5f32]),
        };
        let snn = Snn {
            layers: vec![],
            align: AlignMode::Average,
        };
        let x = Tensor::full([1, 1, 1], 0.3, (Kind::Float, Device::Cpu));
        let y = snn.fire(&sl, &x, Align::Average, |x| x.shallow_clone(), false);
        let spikes: Vec<f32> = Vec::try_from(y.flatten(0, -1)).unwrap();
        assert_eq!(spikes, vec![0.0, 1.0, 0.0, 0.0]);
        assert_eq!(bitspike_core::snn::fire(3, 5, 10, 4), 1);
    }
}
