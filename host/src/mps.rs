//! One-Shot MPS: a supernet whose bit-width model `f_theta(eta)` maps a hardware penalty `eta`
//! to a categorical distribution over the candidate bit widths of every weight and input
//! quantizer, trained once; sweeping `eta` afterwards gives a Pareto front of per-layer bit
//! widths (One-Shot MPS supplement, Algorithm S1). EdMIPS and DNAS, the baselines, are the same
//! supernet with free logits searched at one `eta` per run.
//!
//! **Quantizer slots.** Every convolution and dense layer has a *weight slot* (its weight
//! quantizer, first and last layers included) and every activation quantizer (after a
//! convolution, a hidden dense layer or a residual add) an *activation slot*. The input bits of
//! a layer (`b_x` of eq. S13) are those of the activation slot that produced the tensor it reads
//! (through pools and flatten, which keep codes); the image is always 8-bit (the dataset's
//! codes), as the supplement's baselines quantize the first input in 8 bits. A tensor read by
//! two layers (a residual block's input) has one slot and so one bit width for both readers,
//! which is what an integer runtime that stores each tensor once needs.
//!
//! **Sharing.** All candidates of a slot share the layer's one float weight tensor and its one
//! BatchNorm; only a learned step (LSQ, Trainable Lloyd, Trainable HWGQ) is per candidate. The
//! supernet's parameter memory therefore does not grow with the number of choices (the paper's
//! note on RAM growing with non-shared choices does not apply). Because BatchNorm statistics
//! are a mixture over the sampled children, a child is evaluated or exported after recalibrating
//! BatchNorm's running statistics on training images in a fixed order ([`recalibrate_bn`]),
//! with the weights unchanged.
//!
//! **Loss** (eq. S6-S8): `CE + eta * E[cost] / unit - w_H * H(pi)`, where `E[cost]` is the
//! expected BOPs (eq. S13: `sum_k MACs_k E[b_w,k] E[b_x,k]`, the categorical distributions of
//! different slots being independent) or RAM (eq. S14, additive in `E[b]`), `unit` is the cost of
//! the network at its largest candidate bit widths unless set, and `H` the summed entropy of all
//! slots. Each step draws `eta ~ LogUniform(eta0, eta1)` for the whole batch.
//!
//! **Relaxation.** The forward of a slot is `sum_j y_j Q_j(x)` over its candidates' quantizers:
//! * One-Shot: `y` is a straight-through Gumbel-softmax sample (temperature 1): a one-hot child
//!   forward, the soft sample's gradient backward, so `theta` learns from the task loss through
//!   every candidate's output while the weights train under exactly one bit width per slot;
//! * EdMIPS (Cai and Vasconcelos 2020): `y = pi`, the soft mixture, no entropy term;
//! * DNAS (Wu et al. 2018): `y` a soft Gumbel-softmax sample, temperature annealed
//!   exponentially from `dnas_temperature[0]` to `[1]` over the run, no entropy term.
//!
//! The cost term is the same expected cost for all three, so the searchers differ only in the
//! relaxation and in One-Shot's conditioning on `eta` and its entropy.
//!
//! **Defaults.** With the cost in units of the all-8-bit network, a penalty `eta` trades one
//! unit of cross-entropy for `1/eta` of that network's cost: on Fashion-MNIST every slot sits at
//! 2 bits above `eta` of about 1 and the interesting range is below, hence `[0.003, 3]`. The
//! ELBO's entropy weight (1 per dataset, the paper's) is tiny per sample; at 1 per batch it
//! kept every distribution near uniform and the argmax children noisy in our runs, at 0.1 the
//! bit-width model commits (the front has more, better separated points).
//!
//! ```toml
//! [mps]                       # every key, with its default
//! searcher = "one-shot"       # one-shot | edmips | dnas
//! weight_bits = [2, 4, 8]     # candidate weight bit widths of every weight slot
//! act_bits = [2, 4, 8]        # candidate bit widths of every activation slot
//! cost = "bops"               # bops (eq. S13) | ram (eq. S14) | device (measured instructions)
//! # board = "nucleo-l4r5zi"   # no default: the board of cost = "device" (and of the front's times)
//! cost_unit = 0.0             # cost divisor; 0: the cost at the largest candidates
//! eta = [0.003, 3.0]          # LogUniform range (edmips, dnas: eta[0] only)
//! model_depth = 2             # bit-width model: 1 (linear) or 2 layers (edmips, dnas: free logits)
//! model_hidden = 16           # hidden units of the 2-layer model
//! lr_theta = 0.005            # Adam learning rate of the bit-width model
//! entropy_weight = 0.1        # w_H (one-shot)
//! dnas_temperature = [5.0, 0.5]
//! validation = 5000           # last N training images held out for evaluating children
//! ```

use std::cell::RefCell;

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use bitspike_core::cost;

use crate::net::{Op, Spec};
use crate::quant::{ActQuant, ActQuantizer, WeightQuant, WeightQuantizer};

/// The search algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Searcher {
    /// One-Shot MPS: a bit-width model conditioned on eta, straight-through Gumbel samples,
    /// entropy.
    OneShot,
    /// EdMIPS: free logits at one eta, the soft mixture of candidates.
    Edmips,
    /// DNAS: free logits at one eta, annealed soft Gumbel-softmax samples.
    Dnas,
}

/// The hardware cost a search penalises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CostKind {
    /// Bit operations, eq. S13.
    Bops,
    /// RAM, eq. S14.
    Ram,
    /// Instructions on a board, from its measured cost table (`board`; `cargo xtask costs`).
    Device,
}

/// Settings of a mixed-precision search (the `[mps]` table, module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MpsConfig {
    /// Search algorithm.
    pub searcher: Searcher,
    /// Candidate weight bit widths.
    pub weight_bits: Vec<u8>,
    /// Candidate activation bit widths.
    pub act_bits: Vec<u8>,
    /// Hardware cost.
    pub cost: CostKind,
    /// Cost divisor (0: the network's cost at its largest candidates).
    pub cost_unit: f64,
    /// Penalty range `[eta0, eta1]`.
    pub eta: [f64; 2],
    /// Bit-width model depth (1 or 2) for One-Shot.
    pub model_depth: usize,
    /// Hidden width of the 2-layer bit-width model.
    pub model_hidden: i64,
    /// Learning rate of the bit-width parameters.
    pub lr_theta: f64,
    /// Weight of the entropy term (One-Shot).
    pub entropy_weight: f64,
    /// DNAS's Gumbel-softmax temperature, start and end.
    pub dnas_temperature: [f64; 2],
    /// Training images held out (the last N) to evaluate children.
    pub validation: i64,
    /// The board whose measured cost table `cost = "device"` sums (a real board reads the
    /// table of the emulated board with its core); with another cost, the board whose
    /// predicted instructions the front reports beside it.
    pub board: Option<String>,
}

impl Default for MpsConfig {
    fn default() -> Self {
        Self {
            searcher: Searcher::OneShot,
            weight_bits: vec![2, 4, 8],
            act_bits: vec![2, 4, 8],
            cost: CostKind::Bops,
            cost_unit: 0.0,
            eta: [0.003, 3.0],
            model_depth: 2,
            model_hidden: 16,
            lr_theta: 0.005,
            entropy_weight: 0.1,
            dnas_temperature: [5.0, 0.5],
            validation: 5000,
            board: None,
        }
    }
}

impl MpsConfig {
    /// Check the values the types do not.
    pub fn check(&self) -> Result<()> {
        for (name, c) in [("weight", &self.weight_bits), ("act", &self.act_bits)] {
            ensure!(
                !c.is_empty(),
                "mps {name}_bits: give at least one candidate"
            );
            for (i, &b) in c.iter().enumerate() {
                ensure!(
                    (2..=8).contains(&b),
                    "mps {name}_bits: {b} is not supported: use 2..=8"
                );
                ensure!(!c[..i].contains(&b), "mps {name}_bits: {b} is listed twice");
            }
        }
        let [e0, e1] = self.eta;
        ensure!(
            e0 > 0.0 && e1 >= e0 && e1.is_finite(),
            "mps eta: need 0 < eta0 <= eta1, got [{e0}, {e1}]"
        );
        ensure!(
            self.cost_unit >= 0.0 && self.cost_unit.is_finite(),
            "mps cost_unit must be >= 0"
        );
        ensure!(
            (1..=2).contains(&self.model_depth),
            "mps model_depth {} is not supported: use 1 or 2",
            self.model_depth
        );
        ensure!(self.model_hidden >= 1, "mps model_hidden must be >= 1");
        ensure!(self.lr_theta > 0.0, "mps lr_theta must be positive");
        ensure!(
            self.entropy_weight >= 0.0,
            "mps entropy_weight must be >= 0"
        );
        ensure!(
            self.dnas_temperature.iter().all(|&t| t > 0.0),
            "mps dnas_temperature must be positive"
        );
        ensure!(self.validation >= 0, "mps validation must be >= 0");
        if self.cost == CostKind::Device && self.board.is_none() {
            bail!("mps cost = \"device\" needs a board (--board B, or board = \"B\" in [mps])");
        }
        if let Some(b) = &self.board {
            crate::boards::cost_board(b)?;
        }
        Ok(())
    }
}

/// Per-slot bit widths of a mixed-precision network (the `[mixed]` table of a run's config):
/// empty lists mean the uniform `[quant]` bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BitPlan {
    /// Weight bits per weight slot (every convolution and dense layer, in node order).
    pub weight_bits: Vec<u8>,
    /// Bits per activation slot (every activation quantizer, in node order).
    pub act_bits: Vec<u8>,
}

impl BitPlan {
    /// Whether the plan is empty (uniform bits).
    pub fn is_empty(&self) -> bool {
        self.weight_bits.is_empty() && self.act_bits.is_empty()
    }

    /// `w8,4,4,8 a4,2,4`.
    pub fn label(&self) -> String {
        let j = |v: &[u8]| {
            v.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!("w{} a{}", j(&self.weight_bits), j(&self.act_bits))
    }
}

/// Where the quantizer slots of a network are, and the sizes its costs need.
#[derive(Clone, Debug, PartialEq)]
pub struct Slots {
    /// The node of every weight slot.
    pub weight_nodes: Vec<usize>,
    /// The node of every activation slot.
    pub act_nodes: Vec<usize>,
    /// Per tensor (0 = image): the activation slot whose codes it holds (`None`: the image or
    /// raw logits).
    pub tensor_slot: Vec<Option<usize>>,
    /// Per node: the activation slot of the tensor it reads (`None`: the image).
    pub reads: Vec<Option<usize>>,
    /// Per node: the activation slot of an add's second input (`None`: no add, or the image).
    pub reads2: Vec<Option<usize>>,
    /// Per node: MACs (padded positions counted, as eq. S13).
    pub macs: Vec<u64>,
    /// Per node: weights `K_k` (biases not counted, as the shared cost model).
    pub weights: Vec<u64>,
    /// Per node: input feature elements `F_k`.
    pub features: Vec<u64>,
    /// Bits of the image codes.
    pub input_bits: u8,
    /// Largest image code.
    pub input_max: u8,
    /// Elements of the image.
    pub input_elements: u64,
}

/// Bits of codes `0..=max`.
fn code_bits(max: u8) -> u8 {
    bitspike_core::quant::code_bits(max) as u8
}

impl Slots {
    /// The slots of `spec` for images with codes `0..=input_max`.
    pub fn of(spec: &Spec, input_max: u8) -> Result<Self> {
        let shapes = spec.shapes()?;
        let mut s = Self {
            weight_nodes: Vec::new(),
            act_nodes: Vec::new(),
            tensor_slot: vec![None],
            reads: Vec::new(),
            reads2: Vec::new(),
            macs: Vec::new(),
            weights: Vec::new(),
            features: Vec::new(),
            input_bits: code_bits(input_max),
            input_max,
            input_elements: shapes[0].iter().product::<i64>() as u64,
        };
        // MACs, weights and input features from the shared cost model, as the exporter's
        // geometries give them (eq. S13 counts padded positions, as `cost::macs` does).
        for (n, g) in spec.nodes.iter().zip(spec.geometries()?) {
            let slot = match n.op {
                Op::Conv { .. } => {
                    s.weight_nodes.push(s.macs.len());
                    s.act_nodes.push(s.macs.len());
                    Some(s.act_nodes.len() - 1)
                }
                Op::Dense { hidden, .. } => {
                    s.weight_nodes.push(s.macs.len());
                    hidden.then(|| {
                        s.act_nodes.push(s.macs.len());
                        s.act_nodes.len() - 1
                    })
                }
                Op::Add { .. } => {
                    s.act_nodes.push(s.macs.len());
                    Some(s.act_nodes.len() - 1)
                }
                _ => s.tensor_slot[n.input],
            };
            s.macs.push(cost::macs(&g));
            s.weights.push(g.weight_count());
            s.features.push(g.input.len() as u64);
            s.reads.push(s.tensor_slot[n.input]);
            s.reads2.push(match n.op {
                Op::Add { other } => s.tensor_slot[other],
                _ => None,
            });
            s.tensor_slot.push(slot);
        }
        Ok(s)
    }

    /// The weight slot of `node`.
    pub fn weight_slot(&self, node: usize) -> Option<usize> {
        self.weight_nodes.iter().position(|&n| n == node)
    }

    /// The activation slot of `node` (its own quantizer).
    pub fn act_slot(&self, node: usize) -> Option<usize> {
        self.act_nodes.iter().position(|&n| n == node)
    }

    /// The plan with every slot at `w` / `a` bits.
    pub fn uniform(&self, w: u8, a: u8) -> BitPlan {
        BitPlan {
            weight_bits: vec![w; self.weight_nodes.len()],
            act_bits: vec![a; self.act_nodes.len()],
        }
    }

    /// Check that `plan` has one entry per slot, each 2..=8.
    pub fn check(&self, plan: &BitPlan) -> Result<()> {
        if plan.is_empty() {
            return Ok(());
        }
        ensure!(
            plan.weight_bits.len() == self.weight_nodes.len()
                && plan.act_bits.len() == self.act_nodes.len(),
            "the bit plan has {} weight and {} activation entries; this network has {} weight \
             and {} activation quantizers",
            plan.weight_bits.len(),
            plan.act_bits.len(),
            self.weight_nodes.len(),
            self.act_nodes.len()
        );
        for &b in plan.weight_bits.iter().chain(&plan.act_bits) {
            ensure!(
                (2..=8).contains(&b),
                "bit plan: {b} bits is not supported: use 2..=8"
            );
        }
        Ok(())
    }

    /// The cost as a sum of terms `coef * b_w * b_x` (a missing factor is 1): BOPs (eq. S13)
    /// or RAM in bytes (eq. S14). The same terms give a child's exact cost ([`Self::cost`]) and
    /// the supernet's differentiable expected cost.
    pub fn terms(&self, kind: CostKind) -> Vec<Term> {
        let mut t = Vec::new();
        if kind == CostKind::Ram {
            // `I`, the image as stored: one byte per element (as the shared cost model).
            t.push(Term {
                coef: self.input_elements as f64,
                weight: None,
                act: None,
            });
        }
        for k in 0..self.macs.len() {
            let act = self.reads[k];
            let bx = if act.is_some() {
                1.0
            } else {
                self.input_bits as f64
            };
            let weight = self.weight_slot(k);
            match kind {
                CostKind::Bops => {
                    if weight.is_some() && self.macs[k] > 0 {
                        t.push(Term {
                            coef: self.macs[k] as f64 * bx,
                            weight,
                            act,
                        });
                    }
                }
                // Measured, not a formula: `crate::device_costs::DeviceCost`.
                CostKind::Device => {}
                CostKind::Ram => {
                    t.push(Term {
                        coef: self.features[k] as f64 * bx / 8.0,
                        weight: None,
                        act,
                    });
                    if weight.is_some() {
                        t.push(Term {
                            coef: self.weights[k] as f64 / 8.0,
                            weight,
                            act: None,
                        });
                    }
                }
            }
        }
        t
    }

    /// The exact cost of `plan`: BOPs, or RAM in bytes (fractional bytes kept). `plan` needs
    /// an entry per slot ([`Self::check`], not empty); a missing one makes the cost NaN.
    pub fn cost(&self, plan: &BitPlan, kind: CostKind) -> f64 {
        let bits = |v: &[u8], s: usize| v.get(s).map_or(f64::NAN, |&b| b as f64);
        self.terms(kind)
            .iter()
            .map(|t| {
                let w = t.weight.map_or(1.0, |s| bits(&plan.weight_bits, s));
                let a = t.act.map_or(1.0, |s| bits(&plan.act_bits, s));
                t.coef * w * a
            })
            .sum()
    }
}

/// One term of a cost: `coef * b_w[weight] * b_x[act]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Term {
    /// Coefficient (MACs, or bytes per bit).
    pub coef: f64,
    /// Weight slot whose bits multiply, if any.
    pub weight: Option<usize>,
    /// Activation slot whose bits multiply, if any.
    pub act: Option<usize>,
}

/// The bit-width model `f_theta(eta)`: logits of every slot's candidates.
#[derive(Debug)]
enum BitModel {
    /// EdMIPS, DNAS: free logits (one search per eta).
    Free(Tensor),
    /// One-Shot: an MLP of the normalised `log eta` (1 layer: linear; 2 layers: linear, ReLU,
    /// linear).
    Mlp(nn::Linear, Option<nn::Linear>),
}

/// How the candidates of each slot are combined in the forward pass.
#[derive(Debug)]
enum Selection {
    /// One candidate per slot (its index): evaluation.
    Fixed(Vec<usize>),
    /// Weights `y_j` per slot (training; see the module docs).
    Soft(Vec<Tensor>),
}

/// The supernet part of a [`crate::net::QNet`]: candidate quantizers per slot and the bit-width
/// model.
#[derive(Debug)]
pub struct Supernet {
    /// Settings.
    pub cfg: MpsConfig,
    /// The slots.
    pub slots: Slots,
    /// Candidate weight quantizers per weight slot, in `cfg.weight_bits` order.
    pub wq: Vec<Vec<WeightQuant>>,
    /// Candidate activation quantizers per activation slot, in `cfg.act_bits` order.
    pub aq: Vec<Vec<ActQuant>>,
    model: BitModel,
    terms: Vec<Term>,
    /// The measured per-layer costs, for `cost = "device"`.
    device: Option<crate::device_costs::DeviceCost>,
    /// The cost divisor in use.
    pub unit: f64,
    selection: RefCell<Selection>,
}

/// Index of the largest value.
fn argmax(v: &[u8]) -> usize {
    (0..v.len()).max_by_key(|&i| v[i]).unwrap_or(0)
}

impl Supernet {
    /// Candidates for `spec`'s slots in `root` (quantizers under `n<i>/w<b>` and `n<i>/a<b>`,
    /// where a child built from a [`BitPlan`] finds them; the bit-width model under `mps`).
    pub fn new(
        root: &nn::Path,
        spec: &Spec,
        slots: Slots,
        cfg: &MpsConfig,
        wkind: WeightQuantizer,
        akind: ActQuantizer,
    ) -> Result<Self> {
        cfg.check()?;
        if akind == ActQuantizer::Qac {
            bail!("a mixed-precision search needs fixed-bit activation quantizers, not qac");
        }
        let shapes = spec.shapes()?;
        let mut wq = Vec::new();
        for &i in &slots.weight_nodes {
            let q = root.sub(format!("n{i}")).set_group(1);
            let (out, per_channel) = match spec.nodes[i].op {
                Op::Conv { out, .. } => (out, true),
                Op::Dense { out, hidden } => (out, hidden),
                _ => (shapes[i + 1][0], true),
            };
            wq.push(
                cfg.weight_bits
                    .iter()
                    .map(|&b| WeightQuant::new(&q.sub(format!("w{b}")), wkind, b, out, per_channel))
                    .collect(),
            );
        }
        let mut aq = Vec::new();
        for &i in &slots.act_nodes {
            let q = root.sub(format!("n{i}")).set_group(1);
            aq.push(
                cfg.act_bits
                    .iter()
                    .map(|&b| ActQuant::new(&q.sub(format!("a{b}")), akind, b))
                    .collect(),
            );
        }
        let total = (slots.weight_nodes.len() * cfg.weight_bits.len()
            + slots.act_nodes.len() * cfg.act_bits.len()) as i64;
        let m = root.sub("mps").set_group(2);
        let model = match cfg.searcher {
            Searcher::Edmips | Searcher::Dnas => {
                BitModel::Free(m.var("logits", &[total], nn::Init::Const(0.0)))
            }
            Searcher::OneShot if cfg.model_depth == 1 => {
                BitModel::Mlp(nn::linear(&m / "l1", 1, total, Default::default()), None)
            }
            Searcher::OneShot => {
                let h = cfg.model_hidden;
                BitModel::Mlp(
                    nn::linear(&m / "l1", 1, h, Default::default()),
                    Some(nn::linear(&m / "l2", h, total, Default::default())),
                )
            }
        };
        let terms = slots.terms(cfg.cost);
        let top = slots.uniform(
            cfg.weight_bits[argmax(&cfg.weight_bits)],
            cfg.act_bits[argmax(&cfg.act_bits)],
        );
        let device = match (cfg.cost, &cfg.board) {
            (CostKind::Device, Some(b)) => Some(crate::device_costs::DeviceCost::for_board(
                b,
                spec,
                &slots,
                &cfg.weight_bits,
                &cfg.act_bits,
            )?),
            _ => None,
        };
        let unit = if cfg.cost_unit > 0.0 {
            cfg.cost_unit
        } else {
            match &device {
                Some(d) => d.exact(&top)?,
                None => slots.cost(&top, cfg.cost),
            }
            .max(1e-9)
        };
        let fixed = Selection::Fixed(
            (0..slots.weight_nodes.len())
                .map(|_| argmax(&cfg.weight_bits))
                .chain((0..slots.act_nodes.len()).map(|_| argmax(&cfg.act_bits)))
                .collect(),
        );
        Ok(Self {
            cfg: cfg.clone(),
            slots,
            wq,
            aq,
            model,
            terms,
            device,
            unit,
            selection: RefCell::new(fixed),
        })
    }

    /// `log eta` mapped to `[-1, 1]` over the configured range.
    fn z(&self, eta: f64) -> f64 {
        let [a, b] = self.cfg.eta;
        let (la, lb) = (a.ln(), b.ln());
        if lb - la < 1e-12 {
            0.0
        } else {
            2.0 * (eta.max(1e-30).ln() - la) / (lb - la) - 1.0
        }
    }

    /// The candidate counts of the slots, weight slots first.
    fn sizes(&self) -> Vec<i64> {
        let w = self.cfg.weight_bits.len() as i64;
        let a = self.cfg.act_bits.len() as i64;
        (0..self.wq.len())
            .map(|_| w)
            .chain((0..self.aq.len()).map(|_| a))
            .collect()
    }

    /// The logits of every slot at `eta`.
    pub fn logits(&self, eta: f64) -> Vec<Tensor> {
        let all = match &self.model {
            BitModel::Free(l) => l.shallow_clone(),
            BitModel::Mlp(l1, l2) => {
                let dev = l1.ws.device();
                let x = Tensor::from_slice(&[self.z(eta) as f32])
                    .to_device(dev)
                    .view([1, 1]);
                let h = l1.forward(&x);
                match l2 {
                    Some(l2) => l2.forward(&h.relu()),
                    None => h,
                }
                .view([-1])
            }
        };
        all.split_with_sizes(self.sizes(), 0)
    }

    /// Candidate probabilities of every slot at `eta`.
    pub fn probs(&self, eta: f64) -> Vec<Vec<f64>> {
        tch::no_grad(|| {
            self.logits(eta)
                .iter()
                .map(|l| crate::export::floats(&l.softmax(0, Kind::Float)))
                .collect()
        })
    }

    /// The most probable bit widths at `eta` (Algorithm S1, line 10).
    pub fn plan_at(&self, eta: f64) -> BitPlan {
        let p = self.probs(eta);
        let pick = |v: &[f64], bits: &[u8]| {
            let i = (0..v.len())
                .max_by(|&a, &b| v[a].total_cmp(&v[b]))
                .unwrap_or(0);
            bits[i]
        };
        let nw = self.wq.len();
        BitPlan {
            weight_bits: p[..nw]
                .iter()
                .map(|v| pick(v, &self.cfg.weight_bits))
                .collect(),
            act_bits: p[nw..]
                .iter()
                .map(|v| pick(v, &self.cfg.act_bits))
                .collect(),
        }
    }

    /// Run the supernet as the child `plan` (every bit width must be a candidate).
    pub fn select(&self, plan: &BitPlan) -> Result<()> {
        self.slots.check(plan)?;
        let find = |b: u8, c: &[u8]| {
            c.iter()
                .position(|&x| x == b)
                .ok_or_else(|| anyhow::anyhow!("{b} bits is not a candidate of this supernet"))
        };
        let mut idx = Vec::new();
        for &b in &plan.weight_bits {
            idx.push(find(b, &self.cfg.weight_bits)?);
        }
        for &b in &plan.act_bits {
            idx.push(find(b, &self.cfg.act_bits)?);
        }
        *self.selection.borrow_mut() = Selection::Fixed(idx);
        Ok(())
    }

    /// Expected bits of every slot under `probs` (weight slots first).
    fn expected_bits(&self, probs: &[Tensor]) -> Vec<Tensor> {
        let nw = self.wq.len();
        probs
            .iter()
            .enumerate()
            .map(|(s, p)| {
                let bits = if s < nw {
                    &self.cfg.weight_bits
                } else {
                    &self.cfg.act_bits
                };
                let b: Vec<f32> = bits.iter().map(|&b| b as f32).collect();
                (p * Tensor::from_slice(&b).to_device(p.device())).sum(Kind::Float)
            })
            .collect()
    }

    /// The expected cost (in units of [`Self::unit`]) of the distributions `probs`.
    pub fn expected_cost(&self, probs: &[Tensor]) -> Tensor {
        let nw = self.wq.len();
        if let Some(d) = &self.device {
            return d.expected(probs, nw) / self.unit;
        }
        let e = self.expected_bits(probs);
        let dev = probs.first().map_or(tch::Device::Cpu, |p| p.device());
        let mut total = Tensor::zeros([], (Kind::Float, dev));
        for t in &self.terms {
            let mut v = Tensor::from(t.coef / self.unit)
                .to_kind(Kind::Float)
                .to_device(dev);
            if let Some(w) = t.weight {
                v *= &e[w];
            }
            if let Some(a) = t.act {
                v *= &e[nw + a];
            }
            total += v;
        }
        total
    }

    /// Prepare one training step at penalty `eta`, `progress` (0..1) through the run: draw the
    /// relaxed selection the searcher uses (module docs) and return the hardware and entropy
    /// terms to add to the task loss.
    pub fn begin_step(&self, eta: f64, progress: f64) -> Tensor {
        let logits = self.logits(eta);
        let probs: Vec<Tensor> = logits.iter().map(|l| l.softmax(0, Kind::Float)).collect();
        let gumbel = |l: &Tensor| -> Tensor {
            let u = l.rand_like().clamp(1e-10, 1.0 - 1e-10);
            l - (-(u.log())).log()
        };
        let sel: Vec<Tensor> = match self.cfg.searcher {
            Searcher::Edmips => probs.iter().map(|p| p.shallow_clone()).collect(),
            Searcher::Dnas => {
                let [t0, t1] = self.cfg.dnas_temperature;
                let tau = t0 * (t1 / t0).powf(progress.clamp(0.0, 1.0));
                logits
                    .iter()
                    .map(|l| (gumbel(l) / tau).softmax(0, Kind::Float))
                    .collect()
            }
            Searcher::OneShot => logits
                .iter()
                .map(|l| {
                    let soft = gumbel(l).softmax(0, Kind::Float);
                    let hard = soft
                        .argmax(0, false)
                        .one_hot(soft.size()[0])
                        .to_kind(Kind::Float);
                    &hard - soft.detach() + soft
                })
                .collect(),
        };
        *self.selection.borrow_mut() = Selection::Soft(sel);
        let mut extra = self.expected_cost(&probs) * eta;
        if self.cfg.searcher == Searcher::OneShot && self.cfg.entropy_weight > 0.0 {
            let h: Tensor = probs
                .iter()
                .map(|p| -(p * p.clamp_min(1e-12).log()).sum(Kind::Float))
                .fold(Tensor::zeros([], (Kind::Float, extra.device())), |a, b| {
                    a + b
                });
            extra -= h * self.cfg.entropy_weight;
        }
        extra
    }

    /// Draw `eta ~ LogUniform(eta0, eta1)` (Algorithm S1, line 5).
    pub fn sample_eta(&self) -> f64 {
        let [a, b] = self.cfg.eta;
        let u = Tensor::rand([1], (Kind::Double, tch::Device::Cpu)).double_value(&[0]);
        (a.ln() + u * (b.ln() - a.ln())).exp()
    }

    fn mix(&self, slot: usize, f: impl Fn(usize) -> Tensor) -> Tensor {
        match &*self.selection.borrow() {
            Selection::Fixed(i) => f(i[slot]),
            Selection::Soft(y) => {
                let y = &y[slot];
                let n = y.size()[0];
                (0..n)
                    .map(|j| f(j as usize) * y.get(j))
                    .reduce(|a, b| a + b)
                    .unwrap_or_else(|| f(0))
            }
        }
    }

    /// The activation candidate of slot `slot` that the forward's pools requantize on: the
    /// selected one, or the largest weight `y_j` of a relaxed selection.
    pub fn current_act(&self, slot: usize) -> &ActQuant {
        let k = self.wq.len() + slot;
        let j = match &*self.selection.borrow() {
            Selection::Fixed(i) => i[k],
            Selection::Soft(y) => y[k].argmax(0, false).int64_value(&[]) as usize,
        };
        &self.aq[slot][j]
    }

    /// The fake-quantized weight of weight slot `slot`.
    pub fn weight(&self, slot: usize, w: &Tensor) -> Tensor {
        self.mix(slot, |j| self.wq[slot][j].forward(w))
    }

    /// The fake-quantized activation of activation slot `slot`.
    pub fn act(&self, slot: usize, x: &Tensor) -> Tensor {
        let nw = self.wq.len();
        self.mix(nw + slot, |j| self.aq[slot][j].forward(x))
    }
}

/// The points of `(cost, accuracy)` on the Pareto front: no other point costs at most as much
/// and is at least as accurate with one of the two strictly better. Returns their indices in
/// increasing cost; of identical points the first is kept.
pub fn pareto(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    // Cheapest first; at equal cost the most accurate first; then input order.
    idx.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
            .then(a.cmp(&b))
    });
    let mut best = f64::NEG_INFINITY;
    let mut front = Vec::new();
    for i in idx {
        if points[i].1 > best {
            best = points[i].1;
            front.push(i);
        }
    }
    front
}

/// The sweep of Algorithm S1, lines 8-9: `count` values linear in `eta` and `count` values
/// linear in `log eta` over `[eta0, eta1]`, ascending, duplicates removed.
pub fn sweep(eta: [f64; 2], count: usize) -> Vec<f64> {
    let [a, b] = eta;
    let n = count.max(2);
    let mut v: Vec<f64> = (0..n)
        .flat_map(|i| {
            let t = i as f64 / (n - 1) as f64;
            [a + t * (b - a), (a.ln() + t * (b.ln() - a.ln())).exp()]
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v.dedup_by(|x, y| (*x - *y).abs() <= 1e-12 * y.abs());
    v
}

/// tch's BatchNorm momentum (its default, which `QNet` keeps).
const BN_MOMENTUM: f64 = 0.1;

/// Re-estimate every BatchNorm's running statistics as the plain average of the batch
/// statistics of `batches` batches of `batch` training images taken in order from the start of
/// `images` (the child's weights are unchanged; see the module docs). Deterministic for a given
/// network and data.
pub fn recalibrate_bn(
    net: &crate::net::QNet,
    images: &Tensor,
    max_code: u8,
    batches: i64,
    batch: i64,
) {
    tch::no_grad(|| {
        let n = images.size()[0];
        let dev = net.device();
        let bns: Vec<&nn::BatchNorm> = net
            .params
            .iter()
            .filter_map(|p| match p {
                crate::net::Params::Conv { bn, .. } => Some(bn),
                _ => None,
            })
            .collect();
        for b in 0..batches {
            let (lo, hi) = (b * batch, ((b + 1) * batch).min(n));
            if lo >= hi {
                break;
            }
            let old: Vec<(Tensor, Tensor)> = bns
                .iter()
                .map(|bn| (bn.running_mean.copy(), bn.running_var.copy()))
                .collect();
            let x = crate::data::to_input(&images.narrow(0, lo, hi - lo), max_code, dev);
            let _ = net.forward_t(&x, true);
            // BatchNorm moved its statistics by `BN_MOMENTUM` towards this batch's; recover
            // the batch's and keep the plain average over the batches so far instead.
            for (bn, (m0, v0)) in bns.iter().zip(old) {
                for (run, prev) in [(&bn.running_mean, m0), (&bn.running_var, v0)] {
                    let this = (run - &prev * (1.0 - BN_MOMENTUM)) / BN_MOMENTUM;
                    let avg = (prev * b as f64 + this) / (b + 1) as f64;
                    run.shallow_clone().copy_(&avg);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{Node, TrainArch};

    /// conv 3x3 (1 -> 2, pad 1) on 1x4x4, ReLU; max pool 2; flatten; dense 8 -> 3.
    fn tiny() -> Spec {
        Spec {
            input: [1, 4, 4],
            nodes: vec![
                Node {
                    op: Op::Conv {
                        out: 2,
                        k: 3,
                        stride: 1,
                        pad: 1,
                        groups: 1,
                    },
                    input: 0,
                },
                Node {
                    op: Op::MaxPool { k: 2, stride: 2 },
                    input: 1,
                },
                Node {
                    op: Op::Flatten,
                    input: 2,
                },
                Node {
                    op: Op::Dense {
                        out: 3,
                        hidden: false,
                    },
                    input: 3,
                },
            ],
        }
    }

    #[test]
    fn bops_and_ram_of_a_small_network_by_hand() {
        let _one = crate::seeded();
        let s = Slots::of(&tiny(), 255).unwrap();
        assert_eq!(s.weight_nodes, vec![0, 3]);
        assert_eq!(s.act_nodes, vec![0]);
        let plan = BitPlan {
            weight_bits: vec![4, 2],
            act_bits: vec![3],
        };
        // conv: 4*4 outputs * 2 channels * 9 * 1 = 288 MACs at 4-bit weights and the 8-bit
        // image; dense: 8*3 = 24 MACs at 2-bit weights and 3-bit inputs.
        let bops = 288.0 * 4.0 * 8.0 + 24.0 * 2.0 * 3.0;
        assert_eq!(s.cost(&plan, CostKind::Bops), bops);
        // RAM (S14): image 16 B; conv K = 18 weights at 4 bits (9 B), F = 16 inputs at 8 bits
        // (16 B); pool F = 32 at 3 bits (12 B); flatten F = 8 at 3 bits (3 B); dense K = 24 at
        // 2 bits (6 B), F = 8 at 3 bits (3 B).
        let ram = 16.0 + 9.0 + 16.0 + 12.0 + 3.0 + 6.0 + 3.0;
        assert_eq!(s.cost(&plan, CostKind::Ram), ram);
    }

    #[test]
    fn costs_agree_with_the_shared_cost_model_on_every_arch() {
        let _one = crate::seeded();
        let mut rng = bitspike_core::def::random::Rng::new(5);
        for arch in [
            TrainArch::Cnn,
            TrainArch::Lenet,
            TrainArch::Vgg,
            TrainArch::Resnet8,
        ] {
            let spec = Spec::of(arch, [1, 28, 28], 10);
            let s = Slots::of(&spec, 255).unwrap();
            let plan = BitPlan {
                weight_bits: s
                    .weight_nodes
                    .iter()
                    .map(|_| rng.range(2, 8) as u8)
                    .collect(),
                act_bits: s.act_nodes.iter().map(|_| rng.range(2, 8) as u8).collect(),
            };
            // The levels of the tensor each node reads: its activation slot's, or the image's.
            let layers: Vec<_> = spec
                .geometries()
                .unwrap()
                .into_iter()
                .enumerate()
                .map(|(k, g)| {
                    let levels = s.reads[k].map_or(255, |a| ((1u16 << plan.act_bits[a]) - 1) as u8);
                    let bits = s.weight_slot(k).map_or(0, |w| plan.weight_bits[w]);
                    (g, bits, levels)
                })
                .collect();
            let bops: u64 = layers.iter().map(|(g, b, l)| cost::bops(g, *b, *l)).sum();
            assert_eq!(s.cost(&plan, CostKind::Bops), bops as f64, "{arch:?} BOPs");
            let ram = cost::ram_s14(s.input_elements, layers.iter().copied());
            let exact = s.cost(&plan, CostKind::Ram);
            assert!(
                exact <= ram as f64 && ram as f64 - exact < 1.0,
                "{arch:?} RAM {exact} vs {ram}"
            );
        }
    }

    #[test]
    fn the_expected_cost_of_a_certain_choice_is_the_exact_cost() {
        let _one = crate::seeded();
        for kind in [CostKind::Bops, CostKind::Ram] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let cfg = MpsConfig {
                cost: kind,
                ..Default::default()
            };
            let spec = Spec::of(TrainArch::Lenet, [1, 28, 28], 10);
            let slots = Slots::of(&spec, 255).unwrap();
            let s = Supernet::new(
                &vs.root(),
                &spec,
                slots.clone(),
                &cfg,
                WeightQuantizer::Lloyd,
                ActQuantizer::Hwgq,
            )
            .unwrap();
            let plan = BitPlan {
                weight_bits: vec![8, 2, 4, 2, 8],
                act_bits: vec![4, 8, 2, 4],
            };
            let one_hot = |b: u8, c: &[u8]| {
                let v: Vec<f32> = c.iter().map(|&x| (x == b) as i32 as f32).collect();
                Tensor::from_slice(&v)
            };
            let probs: Vec<Tensor> = plan
                .weight_bits
                .iter()
                .map(|&b| one_hot(b, &cfg.weight_bits))
                .chain(plan.act_bits.iter().map(|&b| one_hot(b, &cfg.act_bits)))
                .collect();
            let got = s.expected_cost(&probs).double_value(&[]) * s.unit;
            let want = slots.cost(&plan, kind);
            assert!((got / want - 1.0).abs() < 1e-5, "{kind:?}: {got} vs {want}");
            // The unit is the cost at the largest candidates.
            assert_eq!(s.unit, slots.cost(&slots.uniform(8, 8), kind));
            // Uniform probabilities: the expected bits are the candidates' mean (14/3) in
            // every slot, and BOPs are bilinear in them.
            if kind == CostKind::Bops {
                let u: Vec<Tensor> = probs.iter().map(|p| p.ones_like() / 3.0).collect();
                let m = 14.0 / 3.0;
                let terms = slots.terms(kind);
                let want: f64 = terms
                    .iter()
                    .map(|t| {
                        t.coef
                            * if t.weight.is_some() { m } else { 1.0 }
                            * if t.act.is_some() { m } else { 1.0 }
                    })
                    .sum();
                let got = s.expected_cost(&u).double_value(&[]) * s.unit;
                assert!((got / want - 1.0).abs() < 1e-5, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn pareto_keeps_exactly_the_undominated_points() {
        let _one = crate::seeded();
        let pts = [
            (10.0, 0.80), // 0: front
            (12.0, 0.79), // 1: dominated by 0
            (15.0, 0.85), // 2: front
            (15.0, 0.84), // 3: same cost, less accurate
            (20.0, 0.85), // 4: same accuracy, costs more
            (25.0, 0.90), // 5: front
            (10.0, 0.80), // 6: duplicate of 0
            (5.0, 0.50),  // 7: front (cheapest)
            (30.0, 0.89), // 8: dominated by 5
        ];
        assert_eq!(pareto(&pts), vec![7, 0, 2, 5]);
        assert!(pareto(&[]).is_empty());
    }

    #[test]
    fn sweep_is_linear_and_logarithmic() {
        let _one = crate::seeded();
        let v = sweep([0.01, 1.0], 3);
        let want = [0.01, 0.1, 0.505, 1.0];
        assert_eq!(v.len(), want.len(), "{v:?}");
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{v:?}");
        }
    }

    #[test]
    fn higher_eta_lowers_the_learned_expected_cost() {
        let _one = crate::seeded();
        // A tiny supernet on random data: the bit-width model alone trains (the task loss is
        // the same for all eta values on average), so the hardware term decides.
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = crate::config::TrainConfig {
            mps: Some(MpsConfig {
                eta: [0.01, 10.0],
                ..Default::default()
            }),
            quant: crate::net::QuantConfig {
                weight_quantizer: WeightQuantizer::Lloyd,
                act_quantizer: ActQuantizer::Hwgq,
                ..Default::default()
            },
            ..Default::default()
        };
        let spec = Spec::of(TrainArch::Cnn, [1, 8, 8], 4);
        let net = crate::net::QNet::build(&vs, spec, &cfg, 16).unwrap();
        let s = net.mps.as_ref().unwrap();
        let mut opt = nn::OptimizerConfig::build(nn::Adam::default(), &vs, 0.02).unwrap();
        let x = Tensor::rand([16, 1, 8, 8], (Kind::Float, tch::Device::Cpu));
        let y = Tensor::randint(4, [16], (Kind::Int64, tch::Device::Cpu));
        for _ in 0..150 {
            let eta = s.sample_eta();
            let extra = s.begin_step(eta, 0.5);
            let loss = net.forward_t(&x, true).cross_entropy_for_logits(&y) + extra;
            opt.backward_step(&loss);
        }
        let cost = |eta: f64| {
            tch::no_grad(|| {
                let p: Vec<Tensor> = s
                    .logits(eta)
                    .iter()
                    .map(|l| l.softmax(0, Kind::Float))
                    .collect();
                s.expected_cost(&p).double_value(&[])
            })
        };
        let (lo, mid, hi) = (cost(0.01), cost(0.3), cost(10.0));
        assert!(lo > mid && mid > hi, "{lo} {mid} {hi}");
        // The argmax child at the largest penalty is cheaper than at the smallest.
        let c = |e| s.slots.cost(&s.plan_at(e), CostKind::Bops);
        assert!(
            c(10.0) < c(0.01),
            "{:?} {:?}",
            s.plan_at(10.0),
            s.plan_at(0.01)
        );
    }
}
