//! The device cost of a search: the table's entries over the candidates of every layer's slots.

use anyhow::{Context, Result};
use bitspike_core::format::ModelFile;

use super::probes::{dep_sizes, node_deps, Dep};
use super::{check_candidates, probe_model, spec_keys, table_path, tail_key, CostTable};
use crate::slots::{BitPlan, Slots};
use crate::spec::Spec;

/// A search's device cost: for every node, its table entries over the candidates of the slots
/// it depends on, so that the supernet's expected cost is exact under independent slot
/// distributions (the expectation of a sum of per-node terms, each a function of at most four
/// slots) and a child's cost is the table's prediction of its exported model.
#[derive(Clone, Debug)]
pub struct DeviceCost {
    /// Per node: the slots its key depends on, and its instructions per combination of their
    /// candidates (row-major, the first slot slowest).
    nodes: Vec<(Vec<Dep>, Vec<f64>)>,
    /// Instructions after the last layer.
    tail: f64,
    weight_bits: Vec<u8>,
    act_bits: Vec<u8>,
}

impl DeviceCost {
    /// The costs of `spec`'s nodes over the candidates from `table`; every key a search can
    /// meet must be in it (else the error names the first missing key and the command that
    /// measures it).
    pub fn new(
        spec: &Spec,
        slots: &Slots,
        table: &CostTable,
        weight_bits: &[u8],
        act_bits: &[u8],
        input_max: u8,
    ) -> Result<Self> {
        check_candidates(weight_bits, act_bits)?;
        let mut nodes = Vec::with_capacity(slots.macs.len());
        let base = BitPlan {
            weight_bits: vec![weight_bits[0]; slots.weight_nodes.len()],
            act_bits: vec![act_bits[0]; slots.act_nodes.len()],
        };
        let list = |v: &[u8]| {
            v.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        for k in 0..slots.macs.len() {
            let deps = node_deps(slots, k);
            let sizes = dep_sizes(&deps, weight_bits.len(), act_bits.len());
            let total: usize = sizes.iter().product();
            let mut costs = Vec::with_capacity(total);
            for idx in 0..total {
                // Row-major: the last slot fastest.
                let mut p = base.clone();
                let mut rest = idx;
                for (d, &n) in deps.iter().zip(&sizes).rev() {
                    let v = rest % n;
                    rest /= n;
                    match *d {
                        Dep::Weight(s) => p.weight_bits[s] = weight_bits[v],
                        Dep::Act(s) => p.act_bits[s] = act_bits[v],
                    }
                }
                let key = spec_keys(spec, slots, &p, input_max)?[k];
                let n = table.insns(&key).with_context(|| {
                    format!(
                        "the cost table of {} has no entry for layer {k} `{}`: run `cargo xtask costs --board {} --arch <this architecture> --weight-bits {} --act-bits {}`",
                        table.board,
                        key.text(),
                        table.board,
                        list(weight_bits),
                        list(act_bits)
                    )
                })?;
                costs.push(n as f64);
            }
            nodes.push((deps, costs));
        }
        // The tail depends on the output alone: any plan's network gives its key.
        let bytes =
            bitspike_core::format::writer::write(&probe_model(spec, slots, &base, input_max, 1)?)
                .context("writing a probe network")?;
        let file = ModelFile::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        let tail = *table.tails.get(&tail_key(&file)).with_context(|| {
            format!(
                "the cost table of {} has no tail `{}`: run `cargo xtask costs --board {}`",
                table.board,
                tail_key(&file),
                table.board
            )
        })? as f64;
        Ok(Self {
            nodes,
            tail,
            weight_bits: weight_bits.to_vec(),
            act_bits: act_bits.to_vec(),
        })
    }

    /// [`DeviceCost::new`] from the committed table of `board` (a real board reads the table of
    /// the emulated board with its core).
    pub fn for_board(
        board: &str,
        spec: &Spec,
        slots: &Slots,
        weight_bits: &[u8],
        act_bits: &[u8],
    ) -> Result<Self> {
        let table = CostTable::read(&table_path(crate::boards::cost_board(board)?))?;
        Self::new(spec, slots, &table, weight_bits, act_bits, slots.input_max)
    }

    /// Instructions of the child `plan` (every slot at one of the candidates).
    pub fn exact(&self, plan: &BitPlan) -> Result<f64> {
        let index = |v: &[u8], b: u8| {
            v.iter()
                .position(|&c| c == b)
                .with_context(|| format!("{b} bits is not a candidate"))
        };
        let mut total = self.tail;
        for (deps, costs) in &self.nodes {
            let mut idx = 0;
            for d in deps {
                let (n, i) = match *d {
                    Dep::Weight(s) => (
                        self.weight_bits.len(),
                        index(&self.weight_bits, plan.weight_bits[s])?,
                    ),
                    Dep::Act(s) => (
                        self.act_bits.len(),
                        index(&self.act_bits, plan.act_bits[s])?,
                    ),
                };
                idx = idx * n + i;
            }
            total += costs[idx];
        }
        Ok(total)
    }

    /// Expected instructions when slot `s` takes its candidates with probabilities `probs[s]`
    /// (weight slots first, then activation slots), the slots independent: differentiable.
    pub fn expected(&self, probs: &[tch::Tensor], weight_slots: usize) -> tch::Tensor {
        let dev = probs.first().map_or(tch::Device::Cpu, |p| p.device());
        let mut total = tch::Tensor::from(self.tail)
            .to_kind(tch::Kind::Float)
            .to_device(dev);
        for (deps, costs) in &self.nodes {
            let sizes: Vec<i64> = dep_sizes(deps, self.weight_bits.len(), self.act_bits.len())
                .iter()
                .map(|&n| n as i64)
                .collect();
            let c: Vec<f32> = costs.iter().map(|&v| v as f32).collect();
            let mut t = tch::Tensor::from_slice(&c)
                .to_device(dev)
                .view(sizes.as_slice());
            // Contract the last slot's candidates first.
            for d in deps.iter().rev() {
                let p = match *d {
                    Dep::Weight(s) => &probs[s],
                    Dep::Act(s) => &probs[weight_slots + s],
                };
                t = t.matmul(p);
            }
            total += t;
        }
        total
    }
}
