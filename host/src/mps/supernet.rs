//! The supernet: candidate quantizers per slot, the bit-width model `f_theta(eta)`, the
//! relaxations of One-Shot MPS, EdMIPS and DNAS, the expected cost, and BatchNorm
//! recalibration of a child (the module docs of [`crate::mps`]).

use std::cell::RefCell;

use anyhow::{bail, Result};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::{BitPlan, CostKind, MpsConfig, Searcher, Slots, Term};
use crate::net::{Op, Spec};
use crate::quant::{ActQuant, ActQuantizer, WeightQuant, WeightQuantizer};

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
        if matches!(akind, ActQuantizer::Qac | ActQuantizer::Qcfs) {
            bail!("a mixed-precision search needs fixed-bit activation quantizers, not {akind:?}");
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

/// The network runs the supernet's candidates in place of its slots' own quantizers.
impl crate::net::Overlay for Supernet {
    fn weight(&self, node: usize, w: &Tensor) -> Option<Tensor> {
        Some(Supernet::weight(self, self.slots.weight_slot(node)?, w))
    }

    fn act(&self, node: usize, x: &Tensor) -> Option<Tensor> {
        Some(Supernet::act(self, self.slots.act_slot(node)?, x))
    }

    fn act_quantizer(&self, node: usize) -> Option<&dyn crate::quant::ActQuantize> {
        Some(self.current_act(self.slots.act_slot(node)?))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
