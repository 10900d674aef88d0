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

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};

use bitspike_core::cost;

use crate::net::{Op, Spec};

pub mod board;
pub mod report;
mod supernet;
#[cfg(test)]
mod tests;

pub use supernet::{recalibrate_bn, Supernet};

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
