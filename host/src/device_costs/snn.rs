//! Device costs of a spiking network as QAC exports it: its layer keys under a plan of
//! timesteps, probe networks that cover every key a level penalty meets, and the differentiable
//! cost of the learned (continuous) level counts that weights QAC's penalty.
//!
//! A spiking layer's instructions depend on its own timesteps (the levels of the spike counts
//! it writes) and on the levels of what it reads: the previous spiking layer's counts, summed by
//! the pools between them (a 2x2 pool of counts up to `T` gives `4 T` levels; the packed
//! kernels take inputs of at most 16 levels, so this is where time jumps).

use anyhow::{bail, ensure, Context, Result};
use bitspike_core::layer::{Shape, Window};

use super::probes::cover;
use super::{CostTable, LayerKey};
use crate::builtin::Builder;
use crate::spec::{Op, Spec};

/// The spiking layers of `spec` (as [`Spec::spiking`] gives it): every convolution and hidden
/// dense layer, in node order.
pub fn spiking_nodes(spec: &Spec) -> Vec<usize> {
    spec.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Conv { .. } | Op::Dense { hidden: true, .. }))
        .map(|(i, _)| i)
        .collect()
}

/// Weight bits per node as a QAT configuration gives them: the first and last weighted nodes
/// at `first_last`, the other weighted nodes at `bits`, 0 for the rest.
pub fn weight_plan(spec: &Spec, bits: u8, first_last: u8) -> Vec<u8> {
    let weighted: Vec<usize> = spec
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Conv { .. } | Op::Dense { .. }))
        .map(|(i, _)| i)
        .collect();
    (0..spec.nodes.len())
        .map(|i| match weighted.iter().position(|&w| w == i) {
            None => 0,
            Some(0) => first_last,
            Some(k) if k + 1 == weighted.len() => first_last,
            Some(_) => bits,
        })
        .collect()
}

/// The key of every node of the spiking network `spec`, spiking layer `j` (of
/// [`spiking_nodes`]) running `timesteps[j]` steps, as `bitspike snn` exports it.
pub fn snn_keys(
    spec: &Spec,
    weights: &[u8],
    timesteps: &[u16],
    input_max: u8,
) -> Result<Vec<LayerKey>> {
    let spiking = spiking_nodes(spec);
    ensure!(
        timesteps.len() == spiking.len(),
        "{} timesteps for {} spiking layers",
        timesteps.len(),
        spiking.len()
    );
    let geoms = spec.geometries()?;
    let mut levels: Vec<Option<u32>> = vec![Some(input_max as u32)];
    let mut keys = Vec::with_capacity(spec.nodes.len());
    for (k, (n, g)) in spec.nodes.iter().zip(geoms).enumerate() {
        let read = levels[n.input].context("a node reads raw logits")?;
        let t = spiking.iter().position(|&s| s == k).map(|j| timesteps[j]);
        let out = match (&n.op, t) {
            (_, Some(t)) => Some(t as u32),
            (Op::Dense { hidden: false, .. }, _) => None,
            (Op::AvgPool { k, .. }, _) => Some(read * (k * k) as u32),
            (Op::GlobalAvgPool, _) => Some(read * g.input.h as u32 * g.input.w as u32),
            (Op::Add { .. }, _) => bail!("node {k} is a residual add: the spiking engine has none"),
            _ => Some(read),
        };
        if let Some(l) = out.filter(|&l| l > 255) {
            bail!("node {k}: {l} output levels exceed the model file's 255 (use fewer timesteps)");
        }
        keys.push(LayerKey {
            geometry: g,
            weight_bits: weights.get(k).copied().unwrap_or(0),
            in_levels: read as u8,
            in2_levels: None,
            out_levels: out.map(|l| l as u8),
            timesteps: t.unwrap_or(1),
            spiking: t.is_some(),
            events: false,
            first: n.input == 0,
        });
        levels.push(out);
    }
    Ok(keys)
}

/// The spiking network of `spec` with random weights under `timesteps` (speed does not
/// depend on the weights): what the probes measure.
pub fn snn_probe_model(
    spec: &Spec,
    weights: &[u8],
    timesteps: &[u16],
    input_max: u8,
    seed: u64,
) -> Result<bitspike_core::def::ModelDef> {
    let keys = snn_keys(spec, weights, timesteps, input_max)?;
    let [c, h, w] = spec.input;
    let mut b = Builder::with_input(Shape::new(h as u16, w as u16, c as u16), input_max, seed);
    for (n, key) in spec.nodes.iter().zip(&keys) {
        let input = n.input as u16;
        let g = &key.geometry;
        match n.op {
            Op::Conv { out, .. } => {
                b.conv_spiking(input, out as u16, g.window, key.weight_bits, key.timesteps);
            }
            Op::Dense { out, hidden: true } => {
                b.dense_spiking(input, out as u16, key.weight_bits, key.timesteps);
            }
            Op::Dense { out, hidden: false } => {
                b.logits(input, out as u16, key.weight_bits);
            }
            Op::AvgPool { k, stride } => {
                b.sum_pool(input, Window::square(k as u8, stride as u8, 0));
            }
            Op::GlobalAvgPool => {
                b.global_sum_pool(input);
            }
            Op::Flatten => {
                b.flatten(input);
            }
            Op::MaxPool { .. } | Op::Add { .. } => {
                bail!("{:?} is not in a spiking network (Spec::spiking)", n.op)
            }
        }
    }
    Ok(b.finish())
}

/// Every key a level penalty over the `candidates` timesteps meets, and timestep plans whose
/// networks together contain them all (indices into `candidates`, one per spiking layer).
pub fn snn_probe_plans(
    spec: &Spec,
    weights: &[u8],
    candidates: &[u16],
    input_max: u8,
    seed: u64,
) -> Result<(usize, Vec<Vec<u16>>)> {
    ensure!(!candidates.is_empty(), "no candidate timesteps");
    let n = spiking_nodes(spec).len();
    let plan = |c: &[usize]| -> Vec<u16> { c.iter().map(|&i| candidates[i]).collect() };
    // A layer depends on its own timesteps and on the previous spiking layer's: every pair.
    let mut exhaustive = Vec::new();
    for j in 0..n {
        for a in 0..candidates.len() {
            for b in 0..candidates.len() {
                let mut c = vec![0; n];
                c[j] = a;
                if j > 0 {
                    c[j - 1] = b;
                }
                exhaustive.push(c);
            }
        }
    }
    let keys = |c: &[usize]| -> Result<Vec<String>> {
        Ok(snn_keys(spec, weights, &plan(c), input_max)?
            .iter()
            .map(LayerKey::text)
            .collect())
    };
    let mut need = std::collections::BTreeSet::new();
    for c in &exhaustive {
        need.extend(keys(c)?);
    }
    let chosen = cover(&vec![candidates.len(); n], &exhaustive, &keys, seed)?;
    Ok((need.len(), chosen.iter().map(|c| plan(c)).collect()))
}

/// The instructions of a spiking network as a function of its layers' timesteps, from a
/// board's table: what weights QAC's level penalty on the device.
#[derive(Clone, Debug)]
pub struct SnnCost {
    /// Per node: the spiking layers (indices into the timesteps) its key depends on, and its
    /// instructions on the grid of candidate timesteps (row-major, the first dependency
    /// slowest).
    nodes: Vec<(Vec<usize>, Vec<f64>)>,
    /// Candidate timesteps, ascending.
    candidates: Vec<u16>,
}

impl SnnCost {
    /// The table's entries for `spec`'s nodes over the `candidates` timesteps; every key must
    /// be in the table (else the error names the first missing key and the command).
    pub fn new(
        spec: &Spec,
        weights: &[u8],
        table: &CostTable,
        candidates: &[u16],
        input_max: u8,
    ) -> Result<Self> {
        let mut candidates = candidates.to_vec();
        candidates.sort_unstable();
        candidates.dedup();
        ensure!(!candidates.is_empty(), "no candidate timesteps");
        let spiking = spiking_nodes(spec);
        let n = spiking.len();
        // The spiking layer whose counts reach node k's input (through pools and flatten).
        let mut source: Vec<Option<usize>> = vec![None];
        for (k, node) in spec.nodes.iter().enumerate() {
            let s = match spiking.iter().position(|&s| s == k) {
                Some(j) => Some(j),
                None => source[node.input],
            };
            source.push(s);
        }
        let mut nodes = Vec::with_capacity(spec.nodes.len());
        for (k, node) in spec.nodes.iter().enumerate() {
            let mut deps = Vec::new();
            if let Some(j) = source[node.input] {
                deps.push(j);
            }
            if let Some(j) = spiking.iter().position(|&s| s == k) {
                deps.push(j);
            }
            let m = candidates.len();
            let total = m.pow(deps.len() as u32);
            let mut costs = Vec::with_capacity(total);
            for idx in 0..total {
                let mut t = vec![candidates[0]; n];
                let mut rest = idx;
                for &d in deps.iter().rev() {
                    t[d] = candidates[rest % m];
                    rest /= m;
                }
                let key = snn_keys(spec, weights, &t, input_max)?[k];
                let v = table.insns(&key).with_context(|| {
                    format!(
                        "the cost table of {} has no entry for layer {k} `{}`: run `cargo xtask costs --board {} --arch <this architecture> --snn --timesteps {}`",
                        table.board,
                        key.text(),
                        table.board,
                        candidates
                            .iter()
                            .map(|t| t.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                })?;
                costs.push(v as f64);
            }
            nodes.push((deps, costs));
        }
        Ok(Self { nodes, candidates })
    }

    /// Instructions of the layers at integer `timesteps` (each one of the candidates).
    pub fn exact(&self, timesteps: &[u16]) -> Result<f64> {
        let m = self.candidates.len();
        let mut total = 0.0;
        for (deps, costs) in &self.nodes {
            let mut idx = 0;
            for &d in deps {
                let i = self
                    .candidates
                    .iter()
                    .position(|&c| c == timesteps[d])
                    .with_context(|| format!("{} timesteps is not a candidate", timesteps[d]))?;
                idx = idx * m + i;
            }
            total += costs[idx];
        }
        Ok(total)
    }

    /// The instructions at continuous level counts (one scalar tensor per spiking layer, as
    /// QAC learns them), each layer's entries interpolated linearly between the candidate
    /// timesteps that bracket it (clamped to the candidates' range): differentiable in the
    /// level counts, equal to [`Self::exact`] at the candidates.
    pub fn interpolated(&self, levels: &[tch::Tensor]) -> tch::Tensor {
        let dev = levels.first().map_or(tch::Device::Cpu, |t| t.device());
        let m = self.candidates.len();
        // Per layer: the two bracketing candidate indices and the weight of the upper one.
        let brackets: Vec<(usize, usize, tch::Tensor)> = levels
            .iter()
            .map(|l| {
                let l = &l.reshape([]).to_kind(tch::Kind::Float);
                let v = l.double_value(&[]);
                let hi = self
                    .candidates
                    .iter()
                    .position(|&c| c as f64 >= v)
                    .unwrap_or(m - 1);
                let lo = hi.saturating_sub(1);
                let (a, b) = (self.candidates[lo] as f64, self.candidates[hi] as f64);
                let w = if b > a {
                    ((l - a) / (b - a)).clamp(0.0, 1.0)
                } else {
                    l.zeros_like()
                };
                (lo, hi, w.to_kind(tch::Kind::Float))
            })
            .collect();
        let mut total = tch::Tensor::zeros([], (tch::Kind::Float, dev));
        for (deps, costs) in &self.nodes {
            // Sum over the 2^deps corners of the bracketing cell.
            for corner in 0..(1usize << deps.len()) {
                let mut idx = 0;
                let mut w = tch::Tensor::ones([], (tch::Kind::Float, dev));
                for (bit, &d) in deps.iter().enumerate() {
                    let (lo, hi, ref u) = brackets[d];
                    let upper = corner >> (deps.len() - 1 - bit) & 1 == 1;
                    idx = idx * m + if upper { hi } else { lo };
                    w = if upper { w * u } else { w * (1.0 - u) };
                }
                total += w * costs[idx];
            }
        }
        total
    }
}
