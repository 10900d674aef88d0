//! One-Shot MPS: a supernet whose bit-width model `f_theta(eta)` maps a hardware penalty `eta`
//! to a categorical distribution over the candidate bit widths of every weight and input
//! quantizer, trained once; sweeping `eta` afterwards gives a Pareto front of per-layer bit
//! widths (One-Shot MPS supplement, Algorithm S1). EdMIPS and DNAS, the baselines, are the same
//! supernet with free logits searched at one `eta` per run.
//!
//! **Quantizer slots.** Every convolution and dense layer has a *weight slot* (its weight
//! quantizer, first and last layers included) and every activation quantizer (after a
//! convolution, a hidden dense layer or a residual add) an *activation slot*, except a signed
//! output's (a convolution without ReLU: 8-bit codes at every width, read at 8 bits). The input bits of
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

pub mod board;
pub mod config;
pub mod report;
mod search;
mod supernet;
#[cfg(test)]
mod tests;

pub use crate::slots::{BitPlan, Slots};
pub use crate::train::recalibrate_bn;
pub use config::{CostKind, MpsConfig, Searcher};
pub use search::{supernet, Search};
pub use supernet::Supernet;

impl Slots {
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
                self.read_bits[k] as f64
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
