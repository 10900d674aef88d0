//! Export of a converted spiking network: its QAC layers become integrate-and-fire layers
//! (the spiking contract, `bitspike_core::snn`): no multiplier, the output codes are spike
//! counts `0..=T_l` worth `theta_l / T_l`, and the threshold, the initial potentials and the bias
//! are written in membrane units `|r[c]| / 2^k` (see `fold_spiking`); the rest exports as
//! [`crate::export`] does. [`model_def_ann_of`] writes the same network as a quantized one, for
//! comparisons.

use anyhow::{bail, Result};
use bitspike_core::def::{ModelDef, SpikingDef};
use bitspike_core::snn::MAX_MEMBRANE_SHIFT;

use super::snn::{Snn, SnnLayer};
use crate::export::{finite, fold, model_def_with, Folded, Folds, Parts};
use crate::net::QNet;

/// Build the model definition of a converted spiking network: QAC's layers become
/// integrate-and-fire layers (the spiking contract), the rest as in [`crate::export::model_def`].
pub fn model_def_snn(net: &QNet, snn: &Snn) -> Result<ModelDef> {
    let (steps, levels) = snn.steps_and_levels(net)?;
    model_def_with(net, &steps, &levels, Some(&SnnFolds { snn, spiking: true }))
}

/// The quantized (non-spiking) twin of a spiking network: its layers requantize to `T_l`
/// levels on the step `theta_l / T_l`, with each channel's initial potential folded into the
/// bias (`h + (v0 - theta/2) / T_l`), so that it computes the spiking network's counts exactly
/// when `0 <= v0 < theta` (averaging alignment: `floor((v0 + T z) / theta)`), approximately for
/// calibrated potentials outside that range; for comparing costs on the device.
pub fn model_def_ann_of(net: &QNet, snn: &Snn) -> Result<ModelDef> {
    let (steps, levels) = snn.steps_and_levels(net)?;
    model_def_with(
        net,
        &steps,
        &levels,
        Some(&SnnFolds {
            snn,
            spiking: false,
        }),
    )
}

/// The bias `h` of a converted layer's quantized twin (see [`model_def_ann_of`]).
fn twin_bias(h: &[f64], sl: &SnnLayer) -> Result<Vec<f64>> {
    let theta = sl.threshold.double_value(&[0]);
    let v0 = finite(&sl.v0, "a spiking layer's initial potentials")?;
    let t = sl.timesteps as f64;
    Ok(h.iter()
        .zip(&v0)
        .map(|(h, v)| h + (v - theta / 2.0) / t)
        .collect())
}

/// A converted network's folds: its layers as spiking ones, or as their quantized twins.
struct SnnFolds<'a> {
    snn: &'a Snn,
    spiking: bool,
}

impl Folds for SnnFolds<'_> {
    fn fold(
        &self,
        i: usize,
        net: &QNet,
        parts: Parts<'_>,
        acc_bound: f64,
    ) -> Option<Result<Folded>> {
        let sl = self.snn.layer(i)?;
        let (s_in, s_w, g, h, s_out) = parts;
        Some(if self.spiking {
            fold_spiking(i, s_in, s_w, g, h, sl, acc_bound).map(|(signs, bias, sp)| {
                let align = self.snn.align_of(net, sl);
                (signs, bias, Vec::new(), Some((sp, sl.timesteps, align)))
            })
        } else {
            twin_bias(h, sl)
                .and_then(|b| fold(i, s_in, s_w, g, &b, s_out))
                .map(|(signs, bias, rq)| (signs, bias, rq, None))
        })
    }
}

/// Fold a spiking layer (see the module docs and [`bitspike_core::snn`]): with `r[c]` the real
/// value of an accumulator unit and `h[c]` the folded bias, the real current is
/// `r[c] acc + h[c]`; in membrane units `u[c] = |r[c]| / 2^k` the threshold, the initial
/// potentials and the bias are rounded to integers. `k` is the largest membrane shift for which
/// the model file reader's bound `max|v0| + T (B 2^k + max|bias|) + max theta` (B: the largest
/// accumulator the inputs can produce) stays below `2^31`. Channels whose products cannot move
/// the membrane (BatchNorm's gamma is 0) get zero weights, a current of `h` alone, and their
/// own units (`theta = 2^12`).
#[allow(clippy::too_many_arguments)]
fn fold_spiking(
    layer: usize,
    s_in: f64,
    s_w: &[f64],
    g: &[f64],
    h: &[f64],
    sl: &SnnLayer,
    acc_bound: f64,
) -> Result<(Vec<f64>, Vec<i32>, SpikingDef)> {
    let theta = sl.threshold.double_value(&[0]);
    if !(theta.is_finite() && theta > 0.0) {
        bail!("layer {layer}: the spiking threshold is {theta}: the run diverged");
    }
    let v0 = finite(&sl.v0, &format!("layer {layer}: the initial potentials"))?;
    if v0.len() != s_w.len() {
        bail!(
            "layer {layer}: {} initial potentials for {} channels",
            v0.len(),
            s_w.len()
        );
    }
    let t = sl.timesteps as f64;
    const CONSTANT_UNITS: f64 = 4096.0;
    let c_n = s_w.len();
    let r: Vec<f64> = (0..c_n).map(|c| s_in * s_w[c] * g[c]).collect();
    // A channel moves its membrane if its own values fit 32 bits at shift 0; one whose gain is
    // too small for that (a pruned BatchNorm channel) is a constant current, like gamma = 0.
    let moves = |c: usize| {
        let u = r[c].abs();
        u > 0.0
            && (v0[c].abs() + t * (acc_bound * u + h[c].abs()) + theta) / u < (1u64 << 30) as f64
    };
    for k in (0..=MAX_MEMBRANE_SHIFT).rev() {
        let scale = (1u64 << k) as f64;
        let mut signs = Vec::with_capacity(c_n);
        let (mut th, mut v, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for c in 0..c_n {
            let u = if moves(c) {
                r[c].abs() / scale
            } else {
                theta / CONSTANT_UNITS
            };
            signs.push(if !moves(c) {
                0.0
            } else if r[c] < 0.0 {
                -1.0
            } else {
                1.0
            });
            th.push((theta / u + 0.5).floor());
            v.push((v0[c] / u + 0.5).floor());
            b.push((h[c] / u + 0.5).floor());
        }
        let max = |x: &[f64]| x.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let bound = max(&v) + t * (acc_bound * scale + max(&b)) + max(&th);
        if bound < (i32::MAX - 1024) as f64 && th.iter().all(|&x| x >= 1.0) {
            return Ok((
                signs,
                b.iter().map(|&x| x as i32).collect(),
                SpikingDef {
                    threshold: th.iter().map(|&x| x as i32).collect(),
                    v0: v.iter().map(|&x| x as i32).collect(),
                    shift: k,
                },
            ));
        }
    }
    bail!(
        "layer {layer}: its membrane potential cannot be held in 32 bits (threshold {theta:e}, \
         {} timesteps)",
        sl.timesteps
    )
}
