//! Trainable quantized networks built from one specification that drives both the tch module
//! and the export.
//!
//! A [`Spec`] (`crate::spec`) lists nodes in execution order; node `i` reads tensor `input` (0 is the image,
//! `j + 1` the output of node `j`) and produces tensor `i + 1`, exactly as layer `i` of the model
//! file does (`bitspike_core::layer`). Convolutions carry BatchNorm (folded at export) and end,
//! like hidden dense layers and residual adds, with a ReLU fused into their activation quantizer
//! (a convolution without a ReLU has a signed output: 8-bit codes with a zero point,
//! [`SignedQuant`], at every bit width); the last dense layer produces raw logits.

use anyhow::{bail, Result};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::quant::{ActQuant, ActQuantize, Bits, Quantizers, SignedQuant, Uniform, WeightQuantize};
pub use crate::spec::{Node, Op, Spec, TrainArch};

/// The trainable parameters of one node.
#[derive(Debug)]
pub enum Params {
    /// Convolution.
    Conv {
        /// Weight `[out, in/groups, k, k]`.
        w: Tensor,
        /// BatchNorm.
        bn: nn::BatchNorm,
        /// Weight quantizer.
        wq: Box<dyn WeightQuantize>,
        /// Output quantizer (with the ReLU).
        aq: Box<dyn ActQuantize>,
    },
    /// Dense layer.
    Dense {
        /// Weight `[out, in]` (input in PyTorch's CHW flatten order).
        w: Tensor,
        /// Bias.
        b: Tensor,
        /// Weight quantizer.
        wq: Box<dyn WeightQuantize>,
        /// Output quantizer for a hidden layer.
        aq: Option<Box<dyn ActQuantize>>,
    },
    /// Residual add.
    Add {
        /// Output quantizer (with the ReLU).
        aq: Box<dyn ActQuantize>,
    },
    /// No parameters.
    None,
}

/// How a network runs its quantizers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Fake-quantized, as the device computes (the default).
    #[default]
    Quantized,
    /// Full precision: weights as they are, activations only through their ReLU.
    Float,
    /// Full precision, and every min-max activation quantizer observes its input
    /// ([`crate::quant::ActQuant::observe`]).
    Calibrate,
}

/// A quantized network ready to train.
#[derive(Debug)]
pub struct QNet {
    /// Its specification.
    pub spec: Spec,
    /// Parameters per node.
    pub params: Vec<Params>,
    /// Largest input code (the input step is its inverse).
    pub input_max: u8,
    /// The uniform bit widths [`QNet::set_bits`] switches (`None`: each layer has its own,
    /// which cannot be switched: a mixed-precision plan, a search, QAC).
    pub bits: Option<Bits>,
    /// Trained for a spiking conversion: pools sum codes exactly (levels and step scaled by
    /// the window) instead of requantizing them, as the spiking network sums spikes.
    pub spiking: bool,
    /// A method's part of the forward pass (a search's candidate quantizers), consulted
    /// before the nodes' own quantizers.
    pub overlay: Option<Box<dyn Overlay>>,
    /// How the quantizers run ([`Mode`]); changed through [`QNet::set_mode`].
    mode: std::cell::Cell<Mode>,
    /// Whether a training pass moves the signed outputs' ranges towards its batch (off while
    /// only BatchNorm statistics are re-estimated: [`QNet::hold_signed_ranges`]).
    track_signed: std::cell::Cell<bool>,
}

/// A method's part of a network's quantized forward pass: quantizers that run in place of
/// some nodes' own (a search's candidates, selected or mixed per step).
pub trait Overlay: std::fmt::Debug + Send + std::any::Any {
    /// Node `node`'s fake-quantized weight, if the overlay quantizes it.
    fn weight(&self, node: usize, w: &Tensor) -> Option<Tensor>;
    /// Node `node`'s fake-quantized output, if the overlay quantizes it.
    fn act(&self, node: usize, x: &Tensor) -> Option<Tensor>;
    /// The quantizer whose step and levels node `node`'s output has now, if the overlay's.
    fn act_quantizer(&self, node: usize) -> Option<&dyn ActQuantize>;
    /// The overlay as [`std::any::Any`], for its method to find it.
    fn as_any(&self) -> &dyn std::any::Any;
}

impl QNet {
    /// Build `spec` with uniform bits: weights and BatchNorm in group 0 (weight decay),
    /// quantizer parameters in group 1 (none).
    pub fn new(vs: &nn::VarStore, spec: Spec, quant: Uniform, input_max: u8) -> Result<Self> {
        let bits = quant.bits.clone();
        Self::with(vs, spec, input_max, &quant, Some(bits), false)
    }

    /// Build `spec` with its parameters in `vs` and its quantizers from `quantizers`.
    /// Weights and BatchNorm are in group 0 (weight decay), quantizer parameters in group 1
    /// (none). `bits`: the uniform widths the quantizers were made with, if they can be
    /// switched; `spiking`: trained for a spiking conversion ([`QNet::spiking`]).
    pub fn with(
        vs: &nn::VarStore,
        spec: Spec,
        input_max: u8,
        quantizers: &dyn Quantizers,
        bits: Option<Bits>,
        spiking: bool,
    ) -> Result<Self> {
        if let Some(b) = &bits {
            b.check()?;
        }
        let shapes = spec.shapes()?;
        let root = vs.root();
        let last_dense = spec
            .nodes
            .iter()
            .rposition(|n| matches!(n.op, Op::Dense { hidden: false, .. }));
        let Some(last) = last_dense else {
            bail!("the network has no output (logits) layer");
        };
        if last + 1 != spec.nodes.len() {
            bail!("the logits layer must be the last node");
        }
        let mut params = Vec::new();
        let edges = spec.edge_nodes();
        for (i, n) in spec.nodes.iter().enumerate() {
            let p = root.sub(format!("n{i}"));
            let q = p.set_group(1);
            let in_shape = shapes[n.input];
            let edge = edges.contains(&i);
            let param = match n.op {
                Op::Conv {
                    out,
                    k,
                    groups,
                    relu,
                    ..
                } => {
                    let w = p.kaiming_uniform("weight", &[out, in_shape[0] / groups, k, k]);
                    let bn = nn::batch_norm2d(&p / "bn", out, Default::default());
                    let wq = quantizers.weight(&q, i, i == 0, out, true)?;
                    let aq: Box<dyn ActQuantize> = match relu {
                        true => quantizers.act(&q, i, edge)?,
                        false => Box::new(SignedQuant::new(&q)),
                    };
                    Params::Conv { w, bn, wq, aq }
                }
                Op::Dense { out, hidden } => {
                    let fan_in = in_shape.iter().product::<i64>();
                    let w = p.kaiming_uniform("weight", &[out, fan_in]);
                    let bound = 1.0 / (fan_in as f64).sqrt();
                    let b = p.var(
                        "bias",
                        &[out],
                        nn::Init::Uniform {
                            lo: -bound,
                            up: bound,
                        },
                    );
                    // The logits share one weight step, so that raw accumulators compare.
                    let wq = quantizers.weight(&q, i, i == last, out, hidden)?;
                    let aq = match hidden {
                        true => Some(quantizers.act(&q, i, edge)?),
                        false => None,
                    };
                    Params::Dense { w, b, wq, aq }
                }
                Op::Add { .. } => Params::Add {
                    aq: quantizers.act(&q, i, edge)?,
                },
                _ => Params::None,
            };
            params.push(param);
        }
        let mut net = Self {
            spec,
            params,
            input_max,
            bits,
            spiking,
            overlay: None,
            mode: Default::default(),
            track_signed: std::cell::Cell::new(true),
        };
        if let Some(b) = net.bits.as_ref().and_then(|b| b.head_act_bits) {
            net.set_head_act_bits(b)?;
        }
        Ok(net)
    }

    /// Run the quantizers as `mode` says from now on.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.set(mode);
    }

    /// How the quantizers run now.
    pub fn mode(&self) -> Mode {
        self.mode.get()
    }

    /// Switch every quantizer to `weight_bits` / `act_bits` (the first and last layers' weights
    /// keep `first_last_bits`, the edge activations `edge_act_bits` when set): one set of
    /// weights quantized at any bit width, as SSQL trains and evaluates. Only quantizers that learn nothing (max-abs or Lloyd weights, min-max or
    /// HWGQ activations) switch; others are an error.
    pub fn set_bits(&mut self, weight_bits: u8, act_bits: u8) -> Result<()> {
        let Some(bits) = self.bits.clone().filter(|_| self.overlay.is_none()) else {
            bail!("a mixed-precision or QAC network has its own bit widths");
        };
        let last = self.params.len().saturating_sub(1);
        for (i, p) in self.params.iter_mut().enumerate() {
            let wb = if i == 0 || i == last {
                bits.first_last_bits
            } else {
                weight_bits
            };
            let signed = self.spec.signed(i);
            match p {
                Params::Conv { wq, aq, .. } => {
                    wq.set_bits(wb)?;
                    if !signed {
                        aq.set_bits(act_bits)?;
                    }
                }
                Params::Dense { wq, aq, .. } => {
                    wq.set_bits(wb)?;
                    if let Some(aq) = aq {
                        aq.set_bits(act_bits)?;
                    }
                }
                Params::Add { aq } => aq.set_bits(act_bits)?,
                Params::None => {}
            }
        }
        if let Some(b) = bits.edge_act_bits {
            self.set_edge_act_bits(b)?;
        }
        if let Some(b) = bits.head_act_bits {
            self.set_head_act_bits(b)?;
        }
        self.bits = Some(Bits {
            weight_bits,
            act_bits,
            ..bits
        });
        Ok(())
    }

    /// The bit width of the edge activations from the next [`QNet::set_bits`] on (`None`:
    /// the activation bits like the others); an error for a network whose widths cannot be
    /// switched.
    pub fn set_edge_policy(&mut self, edge_act_bits: Option<u8>) -> Result<()> {
        self.set_policy(|b| b.edge_act_bits = edge_act_bits)
    }

    /// The bit width of the features the logits layer reads alone from the next
    /// [`QNet::set_bits`] on (`None`: as the edges); an error for a network whose widths cannot
    /// be switched.
    pub fn set_head_policy(&mut self, head_act_bits: Option<u8>) -> Result<()> {
        self.set_policy(|b| b.head_act_bits = head_act_bits)
    }

    /// Change the uniform bit widths by `f` and check them; an error for a network whose
    /// widths cannot be switched.
    fn set_policy(&mut self, f: impl FnOnce(&mut Bits)) -> Result<()> {
        match &mut self.bits {
            Some(b) => {
                f(b);
                b.check()
            }
            None => bail!("a mixed-precision or QAC network has its own bit widths"),
        }
    }

    /// Quantize the features the logits layer reads ([`Spec::head_input_node`]) at `bits`.
    fn set_head_act_bits(&mut self, bits: u8) -> Result<()> {
        let head = self.spec.head_input_node();
        self.set_act_bits_of(head, bits)
    }

    /// Quantize the outputs of `nodes` at `bits` (a signed output stays at 8 bits, as in
    /// [`QNet::set_bits`]).
    fn set_act_bits_of(&mut self, nodes: impl IntoIterator<Item = usize>, bits: u8) -> Result<()> {
        for i in nodes {
            if self.spec.signed(i) {
                continue;
            }
            match &mut self.params[i] {
                Params::Conv { aq, .. } | Params::Add { aq } => aq.set_bits(bits)?,
                Params::Dense { aq: Some(aq), .. } => aq.set_bits(bits)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Quantize the edge activations ([`Spec::edge_nodes`]) at `bits`.
    fn set_edge_act_bits(&mut self, bits: u8) -> Result<()> {
        let edges = self.spec.edge_nodes();
        self.set_act_bits_of(edges, bits)
    }

    /// Forget every min-max quantizer's observed range (before a calibration pass).
    pub fn reset_ranges(&self) {
        for p in &self.params {
            match p {
                Params::Conv { aq, .. } | Params::Add { aq } => aq.reset_range(),
                Params::Dense { aq: Some(aq), .. } => aq.reset_range(),
                _ => {}
            }
        }
    }

    /// Settle every calibrated range at the current bit widths (MSE clips are fitted to what
    /// calibration saw; min-max ranges already are), so that the checkpoint holds them even if
    /// no quantized pass follows.
    pub fn fit_ranges(&self) {
        for p in &self.params {
            match p {
                Params::Conv { aq, .. } | Params::Add { aq } => {
                    let _ = aq.step();
                }
                Params::Dense { aq: Some(aq), .. } => {
                    let _ = aq.step();
                }
                _ => {}
            }
        }
    }

    /// The activation quantizer node `i` runs: its own, or the supernet's selected candidate
    /// (a signed output always its own).
    fn act_q<'a>(&'a self, i: usize, aq: &'a dyn ActQuantize) -> &'a dyn ActQuantize {
        if self.spec.signed(i) {
            return aq;
        }
        self.overlay
            .as_ref()
            .and_then(|o| o.act_quantizer(i))
            .unwrap_or(aq)
    }

    /// Fake-quantize node `i`'s weight.
    fn wfq(&self, i: usize, wq: &dyn WeightQuantize, w: &Tensor) -> Tensor {
        if self.mode.get() != Mode::Quantized {
            return w.shallow_clone();
        }
        match self.overlay.as_ref().and_then(|o| o.weight(i, w)) {
            Some(y) => y,
            None => wq.forward(w),
        }
    }

    /// Fake-quantize node `i`'s activation (`train`: a training pass, in which a signed
    /// output's range follows the batch).
    fn afq(&self, i: usize, aq: &dyn ActQuantize, x: &Tensor, train: bool) -> Tensor {
        let signed = self.spec.signed(i);
        match self.mode.get() {
            Mode::Quantized => {}
            Mode::Float if signed => return x.shallow_clone(),
            Mode::Float => return x.relu(),
            Mode::Calibrate => {
                let y = if signed { x.shallow_clone() } else { x.relu() };
                aq.observe(&y);
                return y;
            }
        }
        if signed {
            // While training, its range follows the batches (a moving average); otherwise it
            // is what calibration or training left.
            let track = train && self.track_signed.get();
            if let (true, Some(q)) = (track, aq.as_any().downcast_ref::<SignedQuant>()) {
                q.track(x);
            }
            return aq.forward(x);
        }
        match self.overlay.as_ref().and_then(|o| o.act(i, x)) {
            Some(y) => y,
            None => aq.forward(x),
        }
    }

    /// Keep the signed outputs' ranges where they are during training passes (`true`), or let
    /// them follow the batches again (`false`): re-estimating BatchNorm statistics runs training
    /// passes that must not move a calibrated range.
    pub fn hold_signed_ranges(&self, hold: bool) {
        self.track_signed.set(!hold);
    }

    /// The device the parameters live on.
    pub fn device(&self) -> tch::Device {
        self.params
            .iter()
            .find_map(|p| match p {
                Params::Conv { w, .. } | Params::Dense { w, .. } => Some(w.device()),
                _ => None,
            })
            .unwrap_or(tch::Device::Cpu)
    }

    /// Every node's own activation quantizer, in node order, with its node index.
    pub fn act_quantizers(&self) -> impl Iterator<Item = (usize, &dyn ActQuantize)> {
        self.params.iter().enumerate().filter_map(|(i, p)| match p {
            Params::Conv { aq, .. } | Params::Add { aq } => Some((i, aq.as_ref())),
            Params::Dense { aq: Some(aq), .. } => Some((i, aq.as_ref())),
            _ => None,
        })
    }

    /// The zero point of every tensor (0 = input; nonzero only for signed outputs), from the
    /// current quantizers.
    pub fn zero_points(&self) -> Vec<i64> {
        let mut z = vec![0];
        for (i, p) in self.params.iter().enumerate() {
            z.push(match p {
                Params::Conv { aq, .. } => self.act_q(i, aq.as_ref()).zero_point(),
                _ => 0,
            });
        }
        z
    }

    /// How many inputs a pooling node sums (1 for other nodes).
    fn pooled(&self, i: usize) -> i64 {
        let n = &self.spec.nodes[i];
        match n.op {
            Op::AvgPool { k, .. } => k * k,
            Op::GlobalAvgPool => {
                let s = self.spec.shapes().map(|s| s[n.input]).unwrap_or([1, 1, 1]);
                s[1] * s[2]
            }
            _ => 1,
        }
    }

    /// The step (real value of one code) of every tensor, from the current quantizers.
    pub fn steps(&self) -> Vec<f64> {
        let mut s = vec![1.0 / self.input_max as f64];
        for (i, (n, p)) in self.spec.nodes.iter().zip(&self.params).enumerate() {
            let v = match p {
                Params::Conv { aq, .. } | Params::Add { aq } => self.act_q(i, aq.as_ref()).step(),
                Params::Dense { aq: Some(aq), .. } => self.act_q(i, aq.as_ref()).step(),
                Params::Dense { aq: None, .. } => 0.0,
                Params::None if self.spiking => s[n.input] / self.pooled(i) as f64,
                Params::None => s[n.input],
            };
            s.push(v);
        }
        s
    }

    /// The level count of every tensor (0 = input; 0 for raw logits), from the current
    /// quantizers.
    pub fn levels(&self) -> Vec<i64> {
        let mut l = vec![self.input_max as i64];
        for (i, (n, p)) in self.spec.nodes.iter().zip(&self.params).enumerate() {
            let v = match p {
                Params::Conv { aq, .. } | Params::Add { aq } => self.act_q(i, aq.as_ref()).levels(),
                Params::Dense { aq: Some(aq), .. } => self.act_q(i, aq.as_ref()).levels(),
                Params::Dense { aq: None, .. } => 0,
                Params::None if self.spiking => l[n.input] * self.pooled(i),
                Params::None => l[n.input],
            };
            l.push(v);
        }
        l
    }

    /// Forward: `x` is `[N, C, H, W]` in `[0, 1]` (codes over `input_max`); returns the logits.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut outs = self.outputs(x, train, self.spec.nodes.len());
        outs.pop().unwrap_or_else(|| x.shallow_clone())
    }

    /// The features the logits layer reads, flattened to `[N, F]`: the encoder's output when
    /// the network is a backbone with a linear head (self-supervised pretraining, linear
    /// evaluation).
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.spec.nodes.len() - 1;
        let read = self.spec.nodes[last].input;
        let mut outs = self.outputs(x, train, last);
        outs.swap_remove(read).flatten(1, -1)
    }

    /// The number of features the logits layer reads.
    pub fn feature_count(&self) -> i64 {
        match self.params.last() {
            Some(Params::Dense { w, .. }) => w.size()[1],
            _ => 0,
        }
    }

    /// Every tensor the network computes on `x`: the image, then each node's output (as real
    /// values; divide by [`QNet::steps`] and add [`QNet::zero_points`] for codes).
    pub fn tensors(&self, x: &Tensor, train: bool) -> Vec<Tensor> {
        self.outputs(x, train, self.spec.nodes.len())
    }

    /// Every tensor up to node `stop` (exclusive): the image, then each node's output.
    fn outputs(&self, x: &Tensor, train: bool, stop: usize) -> Vec<Tensor> {
        let mut outs: Vec<Tensor> = vec![x.shallow_clone()];
        let mut steps = vec![1.0 / self.input_max as f64];
        let levels = self.levels();
        // Spiking: pools sum spikes exactly, nothing to requantize (see `spiking`); in full
        // precision nothing is requantized either.
        let exact = self.spiking;
        let float = self.mode.get() != Mode::Quantized;
        for (i, (n, p)) in self
            .spec
            .nodes
            .iter()
            .zip(&self.params)
            .enumerate()
            .take(stop)
        {
            let x = &outs[n.input];
            let (y, step) = match (&n.op, p) {
                (
                    Op::Conv {
                        stride,
                        pad,
                        groups,
                        ..
                    },
                    Params::Conv { w, bn, wq, aq },
                ) => {
                    let z = x.conv2d(
                        &self.wfq(i, wq.as_ref(), w),
                        None::<Tensor>,
                        [*stride],
                        [*pad],
                        [1],
                        *groups,
                    );
                    let y = self.afq(i, aq.as_ref(), &bn.forward_t(&z, train), train);
                    (y, self.act_q(i, aq.as_ref()).step())
                }
                (Op::MaxPool { k, stride }, _) => (
                    x.max_pool2d([*k], [*stride], [0], [1], false),
                    steps[n.input],
                ),
                (Op::AvgPool { k, stride }, _) => {
                    let s = steps[n.input];
                    let y = x.avg_pool2d([*k], [*stride], [0], false, true, None);
                    if float {
                        (y, s)
                    } else if exact {
                        (y, s / (k * k) as f64)
                    } else {
                        (ActQuant::requantize_at(&y, s, levels[i + 1]), s)
                    }
                }
                (Op::GlobalAvgPool, _) => {
                    let s = steps[n.input];
                    let y = x.mean_dim(&[2i64, 3][..], true, Kind::Float);
                    if float {
                        (y, s)
                    } else if exact {
                        (y, s / self.pooled(i) as f64)
                    } else {
                        (ActQuant::requantize_at(&y, s, levels[i + 1]), s)
                    }
                }
                (Op::Flatten, _) => (x.flatten(1, -1), steps[n.input]),
                (Op::Add { other }, Params::Add { aq }) => (
                    self.afq(i, aq.as_ref(), &(x + &outs[*other]), train),
                    self.act_q(i, aq.as_ref()).step(),
                ),
                (Op::Dense { .. }, Params::Dense { w, b, wq, aq }) => {
                    let z = x
                        .flatten(1, -1)
                        .linear(&self.wfq(i, wq.as_ref(), w), Some(b));
                    match aq {
                        Some(aq) => (
                            self.afq(i, aq.as_ref(), &z, train),
                            self.act_q(i, aq.as_ref()).step(),
                        ),
                        None => (z, 0.0),
                    }
                }
                _ => (x.shallow_clone(), steps[n.input]),
            };
            outs.push(y);
            steps.push(step);
        }
        outs
    }
}

impl ModuleT for QNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        QNet::forward_t(self, xs, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{ActQuantizer, WeightQuantizer};
    use tch::Device;

    #[test]
    fn every_arch_builds_and_runs_on_mnist_and_digits_shapes() {
        let _one = crate::seeded();
        for arch in [
            TrainArch::Cnn,
            TrainArch::Lenet,
            TrainArch::Vgg,
            TrainArch::Resnet8,
        ] {
            for input in [[1, 28, 28], [1, 8, 8], [3, 32, 32]] {
                let vs = nn::VarStore::new(Device::Cpu);
                let spec = Spec::of(arch, input, 10);
                let net = QNet::new(&vs, spec, Uniform::default(), 255).unwrap();
                let x = Tensor::rand(
                    [2, input[0], input[1], input[2]],
                    (Kind::Float, Device::Cpu),
                );
                let y = net.forward_t(&x, true);
                assert_eq!(y.size(), vec![2, 10], "{arch:?} {input:?}");
            }
        }
    }

    /// The edge activations are the first layer's output and the codes the logits layer
    /// reads; they keep `edge_act_bits` when built and when the bit widths switch.
    #[test]
    fn edge_activations_keep_their_bit_width() {
        let _one = crate::seeded();
        let cnn = Spec::of(TrainArch::Cnn, [1, 28, 28], 10);
        // conv, pool, conv, pool, conv, pool, flatten, dense: the last conv feeds the head.
        assert_eq!(cnn.edge_nodes(), vec![0, 4]);
        let small = Spec::of(TrainArch::Cnn, [1, 8, 8], 10);
        // conv, pool, conv, conv, global average pool, flatten, dense.
        assert_eq!(small.edge_nodes(), vec![0, 3]);
        let res = Spec::of(TrainArch::Resnet8, [3, 32, 32], 10);
        let e = res.edge_nodes();
        assert_eq!(e[0], 0);
        assert!(
            matches!(res.nodes[e[1]].op, Op::Add { .. }),
            "{:?}",
            res.nodes[e[1]]
        );

        let vs = nn::VarStore::new(Device::Cpu);
        let q = Uniform {
            weight: WeightQuantizer::MaxAbs,
            act: ActQuantizer::MinMax,
            bits: Bits {
                weight_bits: 4,
                act_bits: 4,
                edge_act_bits: Some(8),
                ..Default::default()
            },
        };
        let mut net = QNet::new(&vs, cnn, q, 255).unwrap();
        // levels()[0] is the input; node i's output is levels()[i + 1].
        let at = |net: &QNet| {
            let l = net.levels();
            [l[1], l[3], l[5], l[7]]
        };
        assert_eq!(at(&net), [255, 15, 255, 255]);
        net.set_bits(3, 3).unwrap();
        assert_eq!(at(&net), [255, 7, 255, 255]);
        net.set_edge_policy(None).unwrap();
        net.set_bits(3, 3).unwrap();
        assert_eq!(at(&net), [7, 7, 7, 7]);
        let bad = Bits {
            edge_act_bits: Some(9),
            ..Default::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn bad_bits_are_refused() {
        let _one = crate::seeded();
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = Spec::of(TrainArch::Cnn, [1, 8, 8], 10);
        let q = Uniform {
            bits: Bits {
                weight_bits: 9,
                ..Default::default()
            },
            ..Default::default()
        };
        let e = QNet::new(&vs, spec, q, 16).unwrap_err().to_string();
        assert!(e.contains("weight bits 9"), "{e}");
    }
}
