//! Probe networks: the keys a search meets, and networks that together contain them all.

use std::collections::BTreeSet;

use anyhow::{ensure, Context, Result};
use bitspike_core::def::random::Rng;
use bitspike_core::def::ModelDef;
use bitspike_core::layer::Window;

use super::{spec_keys, LayerKey};
use crate::builtin::Builder;
use crate::slots::{BitPlan, Slots};
use crate::spec::{Op, Spec};

/// A network of `spec`'s layers under `plan` with deterministic random weights (speed does not
/// depend on them), written as `bitspike export` writes a trained one: what the probes measure.
pub fn probe_model(
    spec: &Spec,
    slots: &Slots,
    plan: &BitPlan,
    input_max: u8,
    seed: u64,
) -> Result<ModelDef> {
    let keys = spec_keys(spec, slots, plan, input_max)?;
    let [c, h, w] = spec.input;
    let mut b = Builder::with_input(
        bitspike_core::layer::Shape::new(h as u16, w as u16, c as u16),
        input_max,
        seed,
    );
    for (n, key) in spec.nodes.iter().zip(&keys) {
        let input = n.input as u16;
        let g = &key.geometry;
        let levels = key.out_levels.unwrap_or(0);
        match n.op {
            Op::Conv { out, groups, .. } => {
                b.conv_to(
                    input,
                    out as u16,
                    g.window,
                    groups as u16,
                    key.weight_bits,
                    levels,
                );
            }
            Op::Dense { out, hidden: true } => {
                b.dense_to(input, out as u16, key.weight_bits, levels);
            }
            Op::Dense { out, hidden: false } => {
                b.logits(input, out as u16, key.weight_bits);
            }
            Op::Add { other } => {
                b.add_to(input, other as u16, levels);
            }
            Op::MaxPool { k, stride } => {
                b.max_pool(input, Window::square(k as u8, stride as u8, 0));
            }
            Op::AvgPool { k, stride } => {
                b.avg_pool_to(input, Window::square(k as u8, stride as u8, 0), levels);
            }
            Op::GlobalAvgPool => {
                let positions = g.input.h as usize * g.input.w as usize;
                b.global_avg_pool_to(input, positions, levels);
            }
            Op::Flatten => {
                b.flatten(input);
            }
        }
    }
    Ok(b.finish())
}

/// Every key a search over `weight_bits` x `act_bits` candidates can meet in `spec`: for each
/// node, every combination of the candidates of the slots it depends on.
pub fn search_keys(
    spec: &Spec,
    slots: &Slots,
    weight_bits: &[u8],
    act_bits: &[u8],
    input_max: u8,
) -> Result<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for plan in node_plans(slots, weight_bits, act_bits) {
        for k in spec_keys(spec, slots, &plan, input_max)? {
            all.insert(k.text());
        }
    }
    Ok(all)
}

/// Plans in which every slot runs through its candidates together with every other slot that
/// a node can depend on jointly (weights, input, second input, output): enough to produce each
/// node's every combination. Exhaustive per node, not a covering: for [`search_keys`].
pub(super) fn node_plans(slots: &Slots, weight_bits: &[u8], act_bits: &[u8]) -> Vec<BitPlan> {
    let base = BitPlan {
        weight_bits: vec![weight_bits[0]; slots.weight_nodes.len()],
        act_bits: vec![act_bits[0]; slots.act_nodes.len()],
    };
    let mut out = Vec::new();
    for k in 0..slots.macs.len() {
        let deps = node_deps(slots, k);
        let sizes = dep_sizes(&deps, weight_bits.len(), act_bits.len());
        let total: usize = sizes.iter().product();
        for mut idx in 0..total {
            let mut p = base.clone();
            for (d, &n) in deps.iter().zip(&sizes) {
                let v = idx % n;
                idx /= n;
                match *d {
                    Dep::Weight(s) => p.weight_bits[s] = weight_bits[v],
                    Dep::Act(s) => p.act_bits[s] = act_bits[v],
                }
            }
            out.push(p);
        }
    }
    out
}

/// A slot a node's key depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dep {
    /// A weight slot.
    Weight(usize),
    /// An activation slot.
    Act(usize),
}

/// The candidate count of each slot in `deps`, with `w` weight and `a` activation candidates.
pub(super) fn dep_sizes(deps: &[Dep], w: usize, a: usize) -> Vec<usize> {
    deps.iter()
        .map(|d| match d {
            Dep::Weight(_) => w,
            Dep::Act(_) => a,
        })
        .collect()
}

/// The slots node `k`'s key depends on.
pub(super) fn node_deps(slots: &Slots, k: usize) -> Vec<Dep> {
    let mut d = Vec::new();
    if let Some(s) = slots.weight_slot(k) {
        d.push(Dep::Weight(s));
    }
    if let Some(s) = slots.reads[k] {
        d.push(Dep::Act(s));
    }
    if let Some(s) = slots.reads2[k] {
        if !d.contains(&Dep::Act(s)) {
            d.push(Dep::Act(s));
        }
    }
    if let Some(s) = slots.act_slot(k) {
        if !d.contains(&Dep::Act(s)) {
            d.push(Dep::Act(s));
        }
    }
    d
}

/// Bit plans whose networks together contain every key of [`search_keys`] (a greedy covering).
/// Deterministic for a `seed`.
pub fn probe_plans(
    spec: &Spec,
    slots: &Slots,
    weight_bits: &[u8],
    act_bits: &[u8],
    input_max: u8,
    seed: u64,
) -> Result<Vec<BitPlan>> {
    ensure!(
        !weight_bits.is_empty() && !act_bits.is_empty(),
        "no candidate bit widths"
    );
    let (nw, na) = (slots.weight_nodes.len(), slots.act_nodes.len());
    let sizes: Vec<usize> = (0..nw + na)
        .map(|s| {
            if s < nw {
                weight_bits.len()
            } else {
                act_bits.len()
            }
        })
        .collect();
    let plan = |c: &[usize]| BitPlan {
        weight_bits: c[..nw].iter().map(|&i| weight_bits[i]).collect(),
        act_bits: c[nw..].iter().map(|&i| act_bits[i]).collect(),
    };
    let index = |p: &BitPlan| -> Vec<usize> {
        let at = |v: &[u8], b: u8| v.iter().position(|&c| c == b).unwrap_or(0);
        p.weight_bits
            .iter()
            .map(|&b| at(weight_bits, b))
            .chain(p.act_bits.iter().map(|&b| at(act_bits, b)))
            .collect()
    };
    let exhaustive: Vec<Vec<usize>> = node_plans(slots, weight_bits, act_bits)
        .iter()
        .map(index)
        .collect();
    let keys = |c: &[usize]| -> Result<Vec<String>> {
        Ok(spec_keys(spec, slots, &plan(c), input_max)?
            .iter()
            .map(LayerKey::text)
            .collect())
    };
    Ok(cover(&sizes, &exhaustive, &keys, seed)?
        .iter()
        .map(|c| plan(c))
        .collect())
}

/// Choices (a candidate index per slot; slot `s` has `sizes[s]` candidates) whose networks'
/// keys together contain every key of the `exhaustive` choices, greedily: each round draws
/// random choices, improves each slot by slot, and keeps the best while it adds keys not yet
/// covered; when random draws find nothing new, the first exhaustive choice that has a missing
/// key. Deterministic for a `seed`.
pub(super) fn cover(
    sizes: &[usize],
    exhaustive: &[Vec<usize>],
    keys: &dyn Fn(&[usize]) -> Result<Vec<String>>,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    let mut need = BTreeSet::new();
    for c in exhaustive {
        need.extend(keys(c)?);
    }
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let mut rng = Rng::new(seed);
    let gain = |c: &[usize], covered: &BTreeSet<String>| -> Result<usize> {
        let mine: BTreeSet<String> = keys(c)?.into_iter().collect();
        Ok(mine.iter().filter(|k| !covered.contains(*k)).count())
    };
    let mut chosen = Vec::new();
    while covered.len() < need.len() {
        let mut best: Option<(usize, Vec<usize>)> = None;
        for _ in 0..16 {
            let mut p: Vec<usize> = sizes
                .iter()
                .map(|&n| rng.range(0, n as i64 - 1) as usize)
                .collect();
            let mut g = gain(&p, &covered)?;
            // Slot by slot, the candidate that covers the most new keys.
            for _ in 0..2 {
                for (s, &n) in sizes.iter().enumerate() {
                    for c in 0..n {
                        let mut q = p.clone();
                        q[s] = c;
                        let gq = gain(&q, &covered)?;
                        if gq > g {
                            (p, g) = (q, gq);
                        }
                    }
                }
            }
            if best.as_ref().is_none_or(|(bg, _)| g > *bg) {
                best = Some((g, p));
            }
        }
        let Some((g, mut p)) = best else { break };
        if g == 0 {
            let missing = need
                .iter()
                .find(|k| !covered.contains(*k))
                .cloned()
                .unwrap_or_default();
            p = exhaustive
                .iter()
                .find(|q| keys(q).map(|ks| ks.contains(&missing)).unwrap_or(false))
                .cloned()
                .with_context(|| format!("no choice produces key `{missing}`"))?;
        }
        covered.extend(keys(&p)?);
        chosen.push(p);
    }
    Ok(chosen)
}
