//! Quantizer slots: where a network's weight and activation quantizers are, the sizes its
//! costs need, and per-slot bit widths (a mixed-precision plan, the `[mixed]` table of a run).

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use tch::nn;

use bitspike_core::cost;

use crate::quant::{
    ActQuant, ActQuantize, ActQuantizer, Quantizers, WeightQuant, WeightQuantize, WeightQuantizer,
};
use crate::spec::{Op, Spec};

/// Per-slot bit widths of a mixed-precision network (the `[mixed]` table of a run's config):
/// empty lists mean the uniform `[quant]` bits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BitPlan {
    /// Weight bits per weight slot (every convolution and dense layer, in node order).
    pub weight_bits: Vec<u8>,
    /// Bits per activation slot (every activation quantizer but a signed output's, which is
    /// 8-bit, in node order).
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
    /// Per tensor (0 = image): the activation slot whose codes it holds (`None`: codes of a
    /// fixed width, the image's or a signed output's, or raw logits).
    pub tensor_slot: Vec<Option<usize>>,
    /// Per node: the activation slot of the tensor it reads (`None`: codes of a fixed width,
    /// [`Self::read_bits`]).
    pub reads: Vec<Option<usize>>,
    /// Per node: the bits of the codes it reads when they belong to no slot: the image's
    /// `input_bits`, or 8 for a signed output (a convolution without ReLU quantizes its output
    /// to 8 bits with a zero point at every bit width, so it has no activation slot).
    pub read_bits: Vec<u8>,
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

/// Bits of a signed output's codes (at every bit width of the rest of the network).
const SIGNED_BITS: u8 = 8;

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
            read_bits: Vec::new(),
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
        // Per tensor: the bits of its codes when it has no slot.
        let mut fixed_bits = vec![s.input_bits];
        for (i, (n, g)) in spec.nodes.iter().zip(spec.geometries()?).enumerate() {
            let signed = spec.signed(i);
            let slot = match n.op {
                Op::Conv { .. } if signed => {
                    s.weight_nodes.push(s.macs.len());
                    None
                }
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
            s.read_bits.push(fixed_bits[n.input]);
            fixed_bits.push(if signed {
                SIGNED_BITS
            } else {
                fixed_bits[n.input]
            });
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
}

/// The quantizers of a mixed-precision child: each slot at its plan's bit width, under
/// `n<i>/w<b>` and `n<i>/a<b>` (where a supernet keeps its candidate of that width, so that a
/// supernet's checkpoint loads into the child).
#[derive(Clone, Debug)]
pub struct Planned {
    /// Weight quantizer.
    pub weight: WeightQuantizer,
    /// Activation quantizer.
    pub act: ActQuantizer,
    /// The bit width of every slot ([`Slots::check`]ed).
    pub plan: BitPlan,
    /// The network's slots.
    pub slots: Slots,
}

impl Quantizers for Planned {
    fn weight(
        &self,
        path: &nn::Path,
        node: usize,
        _edge: bool,
        out: i64,
        per_channel: bool,
    ) -> Result<Box<dyn WeightQuantize>> {
        let b = self
            .slots
            .weight_slot(node)
            .and_then(|s| self.plan.weight_bits.get(s).copied())
            .with_context(|| format!("the bit plan has no weight bits for node {node}"))?;
        let q = WeightQuant::new(&path.sub(format!("w{b}")), self.weight, b, out, per_channel);
        Ok(Box::new(q))
    }

    fn act(&self, path: &nn::Path, node: usize, _edge: bool) -> Result<Box<dyn ActQuantize>> {
        ensure!(
            !matches!(self.act, ActQuantizer::Qac | ActQuantizer::Qcfs),
            "QAC and QCFS set their own level counts: they take no [mixed] plan or [mps] search"
        );
        let b = self
            .slots
            .act_slot(node)
            .and_then(|s| self.plan.act_bits.get(s).copied())
            .with_context(|| format!("the bit plan has no activation bits for node {node}"))?;
        Ok(Box::new(ActQuant::new(
            &path.sub(format!("a{b}")),
            self.act,
            b,
        )))
    }
}
