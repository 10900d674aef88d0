//! Export: a trained quantized network becomes a model file the device executes with integers
//! only (docs/design.md, integer contract), and its integer accuracy is measured with the firmware
//! runtime compiled for the host.
//!
//! Per convolution, with input step `s_in`, weight step `s_w[c]` per output channel, BatchNorm
//! folded as `y = z * g[c] + h[c]` (`g = gamma / sqrt(var + eps)`, `h = beta - mean * g`) and
//! output step `s_out`:
//!
//! ```text
//! r[c]     = s_in * s_w[c] * g[c]               real value of one accumulator unit
//! codes    = sign(r[c]) * weight codes           so that the multiplier is non-negative
//! bias[c]  = round(h[c] / |r[c]|)                in accumulator units
//! M[c]     = |r[c]| / s_out  -> (Q31 multiplier, shift)
//! code     = clamp(round(M[c] * (acc + bias[c])), 0, L)    (ReLU is the clamp at 0)
//! ```
//!
//! Hidden dense layers are the same with `g = 1`, `h = bias`; the logits layer writes raw i32
//! accumulators (one weight step for all classes, so that their argmax is the prediction).
//! Average pools requantize on their input's step (`M = 1 / (kh kw)`, `1 / (h w)` for GAP);
//! an add scales its inputs by integer weights `round(2^14 s_a / max(s_a, s_b))` and
//! `round(2^14 s_b / max(s_a, s_b))`, then requantizes by `max(s_a, s_b) / 2^14 / s_out`.
//! Weights are permuted to the device's layouts (OHWI; HWC-flattened dense inputs).
//!
//! A method may fold some layers itself ([`Folds`]): a converted spiking network
//! (`crate::qac::export`) exports its QAC layers as integrate-and-fire layers, and its pools
//! then sum counts exactly (`M = 1`, levels times the window).
//!
//! The fake-quant network and the integer model differ only where float32 rounding of a value
//! within a hair of a rounding boundary, the bias rounding, or the Q31 multiplier's precision
//! moves a code; [`crate::eval`] measures the gap on whole test sets.

use anyhow::{bail, Context, Result};
use bitspike_core::def::{LayerDef, ModelDef, Requant, SpikingDef};
use bitspike_core::layer::{Align, LayerKind, Shape, Window};
use bitspike_core::quant::Q31Scale;
use tch::{Kind, Tensor};

use crate::net::{Op, Params, QNet};

/// Bits of the integer weights of an add's inputs.
const ADD_WEIGHT_BITS: i32 = 14;

fn requant(layer: usize, real: f64) -> Result<Requant> {
    let scale = Q31Scale::exported(real).with_context(|| {
        format!("layer {layer}: scale {real:e} cannot be expressed as a Q31 multiplier and shift")
    })?;
    Ok(Requant::from(scale))
}

/// The values of `t` as f64, flattened, for an export: a tensor that cannot be read, or that
/// holds a non-finite value (a run that diverged), is refused with an error naming `what`.
pub fn finite(t: &Tensor, what: &str) -> Result<Vec<f64>> {
    let v = Vec::<f64>::try_from(
        t.detach()
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(0, -1),
    )
    .map_err(|e| {
        let e = e.to_string();
        anyhow::anyhow!("{what} cannot be read: {}", e.lines().next().unwrap_or(""))
    })?;
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        bail!(
            "{what} holds {} at index {i}: the run diverged (train again, or export an earlier checkpoint)",
            v[i]
        );
    }
    Ok(v)
}

/// A tensor's values as f64, flattened, for display (empty if it cannot be read; exports use
/// [`finite`]).
pub fn floats(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(
        t.detach()
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double)
            .flatten(0, -1),
    )
    .unwrap_or_default()
}

/// The folded per-channel scale `g` and shift `h` of layer `layer`'s BatchNorm (over `channels`
/// channels) in evaluation mode; refused when a statistic or parameter is missing, has another
/// length or is not finite.
fn bn_fold(bn: &tch::nn::BatchNorm, layer: usize, channels: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    // The networks build their BatchNorms with the default configuration.
    let eps = tch::nn::BatchNormConfig::default().eps;
    let part = |t: Option<&Tensor>, what: &str, default: f64| -> Result<Vec<f64>> {
        let v = match t {
            Some(t) => finite(t, &format!("layer {layer}: BatchNorm {what}"))?,
            None => vec![default; channels],
        };
        if v.len() != channels {
            bail!(
                "layer {layer}: BatchNorm {what} has {} values for {channels} channels",
                v.len()
            );
        }
        Ok(v)
    };
    let mean = part(Some(&bn.running_mean), "running mean", 0.0)?;
    let var = part(Some(&bn.running_var), "running variance", 1.0)?;
    let gamma = part(bn.ws.as_ref(), "weight", 1.0)?;
    let beta = part(bn.bs.as_ref(), "bias", 0.0)?;
    let g: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let h: Vec<f64> = beta
        .iter()
        .zip(&mean)
        .zip(&g)
        .map(|((b, m), g)| b - m * g)
        .collect();
    Ok((g, h))
}

/// Fold `z * g + h` after a layer with input step `s_in`, weight steps `s_w` and output step
/// `s_out` into signs, integer biases and requantization (see the module docs).
pub fn fold(
    layer: usize,
    s_in: f64,
    s_w: &[f64],
    g: &[f64],
    h: &[f64],
    s_out: f64,
) -> Result<(Vec<f64>, Vec<i32>, Vec<Requant>)> {
    let mut signs = Vec::new();
    let mut bias = Vec::new();
    let mut rq = Vec::new();
    for c in 0..s_w.len() {
        let r = s_in * s_w[c] * g[c];
        let mag = r.abs();
        let b = (h[c] / mag + 0.5).floor();
        // A channel whose products cannot move its output by a code (BatchNorm's gamma is 0, or
        // the scale underflows the Q31 multiplier) or whose bias swamps the accumulator outputs
        // a constant: zero weights, multiplier 1, the constant as bias.
        let moves =
            (mag / s_out).partial_cmp(&(1.0 / 2f64.powi(31))) == Some(std::cmp::Ordering::Greater);
        let fits = b.abs().partial_cmp(&((1u32 << 30) as f64)) == Some(std::cmp::Ordering::Less);
        if !moves || !fits {
            signs.push(0.0);
            bias.push((h[c] / s_out + 0.5).floor().clamp(-1024.0, 1024.0) as i32);
            rq.push(requant(layer, 1.0)?);
            continue;
        }
        signs.push(if r < 0.0 { -1.0 } else { 1.0 });
        bias.push(b as i32);
        rq.push(requant(layer, mag / s_out)?);
    }
    Ok((signs, bias, rq))
}

/// The largest |accumulator| of a layer with `fan_in` inputs of up to `levels` codes and
/// `bits`-bit weights (the model file reader's bound, without the bias).
pub(crate) fn acc_bound(fan_in: usize, levels: i64, bits: u8) -> f64 {
    fan_in as f64 * levels as f64 * (1u64 << (bits - 1)) as f64
}

/// Make `l` a spiking layer with `sp`'s parameters, timesteps and input alignment.
fn with_spiking(mut l: LayerDef, sp: Option<(SpikingDef, u16, Align)>) -> LayerDef {
    if let Some((sp, t, align)) = sp {
        l.spiking = Some(sp);
        l.timesteps = t;
        l.align = align;
    }
    l
}

/// Apply channel signs (-1, 0 or 1) to row-major codes with `per` codes per output channel.
fn signed(codes: Vec<i8>, signs: &[f64], per: usize) -> Vec<i8> {
    codes
        .into_iter()
        .enumerate()
        .map(|(i, v)| (signs[i / per.max(1)] * v as f64) as i8)
        .collect()
}

/// Build the integer model definition of a trained network.
pub fn model_def(net: &QNet) -> Result<ModelDef> {
    let steps = net.steps();
    let levels = net.levels();
    model_def_with(net, &steps, &levels, None)
}

/// A folded layer: channel signs, integer biases, requantization, spiking parameters with the
/// timesteps and input alignment.
pub type Folded = (
    Vec<f64>,
    Vec<i32>,
    Vec<Requant>,
    Option<(SpikingDef, u16, Align)>,
);

/// What a layer's fold starts from: `(s_in, s_w, g, h, s_out)` as in [`fold`].
pub type Parts<'a> = (f64, &'a [f64], &'a [f64], &'a [f64], f64);

/// A method's own export of some layers (a converted network's spiking layers).
pub trait Folds {
    /// Fold layer `i` of `net` as the method exports it (`acc_bound` bounds its
    /// accumulator), or `None` to fold it plainly.
    fn fold(
        &self,
        i: usize,
        net: &QNet,
        parts: Parts<'_>,
        acc_bound: f64,
    ) -> Option<Result<Folded>>;
}

/// Fold layer `i`: as `folds` does, or plainly.
fn fold_layer(
    i: usize,
    net: &QNet,
    folds: Option<&dyn Folds>,
    parts: Parts<'_>,
    acc_bound: f64,
) -> Result<Folded> {
    if let Some(f) = folds.and_then(|f| f.fold(i, net, parts, acc_bound)) {
        return f;
    }
    let (s_in, s_w, g, h, s_out) = parts;
    let (signs, bias, rq) = fold(i, s_in, s_w, g, h, s_out)?;
    Ok((signs, bias, rq, None))
}

/// The model definition of `net` with the tensors' `steps` and `all_levels` (0: the input),
/// its layers folded by `folds` where it folds them, plainly elsewhere.
pub fn model_def_with(
    net: &QNet,
    steps: &[f64],
    all_levels: &[i64],
    folds: Option<&dyn Folds>,
) -> Result<ModelDef> {
    let shapes = net.spec.shapes()?;
    let [c0, h0, w0] = net.spec.input;
    let mut def = ModelDef::new(
        Shape::new(h0 as u16, w0 as u16, c0 as u16),
        net.input_max,
        (1.0 / net.input_max as f64) as f32,
    );
    // (A step of 0 is a tensor without a quantizer, the raw logits.)
    if let Some(k) = steps.iter().position(|s| !s.is_finite()) {
        bail!(
            "tensor {k}'s quantization step is {}: the run diverged (train again, or export an earlier checkpoint)",
            steps[k]
        );
    }
    let zero = net.zero_points();
    tch::no_grad(|| -> Result<()> {
        for (i, (n, p)) in net.spec.nodes.iter().zip(&net.params).enumerate() {
            let input = n.input as u16;
            // A signed tensor's zero point is undone by the residual add that reads it (its
            // bias); no other layer reads one.
            if zero[n.input] != 0 && !matches!(n.op, Op::Add { .. }) {
                bail!(
                    "layer {i}: reads tensor {}, a signed output (zero point {}), which only a \
                     residual add can read",
                    n.input,
                    zero[n.input]
                );
            }
            let (s_in, s_out) = (steps[n.input], steps[i + 1]);
            if all_levels[i + 1] > 255 {
                bail!(
                    "layer {i}: {} output levels exceed the model file's 255 (a pool sums too many \
                     spike counts: use fewer timesteps)",
                    all_levels[i + 1]
                );
            }
            let levels = all_levels[i + 1].clamp(0, 255) as u8;
            let layer = match (&n.op, p) {
                (
                    Op::Conv {
                        out,
                        k,
                        stride,
                        pad,
                        groups,
                        ..
                    },
                    Params::Conv { w, bn, wq, .. },
                ) => {
                    // OHWI: [out, k, k, in/groups].
                    let ohwi = w.permute([0, 2, 3, 1]).contiguous();
                    finite(&ohwi, &format!("layer {i}: the weights"))?;
                    let (codes, s_w) = wq.codes(&ohwi);
                    let (g, h) = bn_fold(bn, i, *out as usize)?;
                    let per = codes.len() / *out as usize;
                    let window = Window::square(*k as u8, *stride as u8, *pad as u8);
                    let bound = acc_bound(per, all_levels[n.input], wq.bits());
                    let (signs, bias, rq, sp) =
                        fold_layer(i, net, folds, (s_in, &s_w, &g, &h, s_out), bound)?;
                    let l = LayerDef::conv2d(
                        input,
                        *out as u16,
                        window,
                        *groups as u16,
                        wq.bits(),
                        signed(codes, &signs, per),
                        Some(bias),
                        rq,
                    )
                    .with_output(levels, s_out as f32);
                    let mut l = with_spiking(l, sp);
                    // A signed output: its zero point added after requantization.
                    l.offset = zero[i + 1] as i32;
                    l
                }
                (Op::Dense { out, hidden }, Params::Dense { w, b, wq, .. }) => {
                    let w = hwc_columns(w, shapes[n.input], &net.spec, n.input)?;
                    finite(&w, &format!("layer {i}: the weights"))?;
                    let (codes, s_w) = wq.codes(&w);
                    let bias_real = finite(b, &format!("layer {i}: the bias"))?;
                    let out = *out as usize;
                    if *hidden {
                        let per = codes.len() / out;
                        let ones = vec![1.0; out];
                        let bound = acc_bound(per, all_levels[n.input], wq.bits());
                        let (signs, bias, rq, sp) = fold_layer(
                            i,
                            net,
                            folds,
                            (s_in, &s_w, &ones, &bias_real, s_out),
                            bound,
                        )?;
                        let l = LayerDef::dense(
                            input,
                            out as u16,
                            wq.bits(),
                            signed(codes, &signs, per),
                            Some(bias),
                            rq,
                        )
                        .with_output(levels, s_out as f32);
                        with_spiking(l, sp)
                    } else {
                        let unit = s_in * s_w[0];
                        let bias = bias_real
                            .iter()
                            .map(|b| (b / unit + 0.5).floor() as i32)
                            .collect();
                        let mut d = LayerDef::dense(
                            input,
                            out as u16,
                            wq.bits(),
                            codes,
                            Some(bias),
                            Vec::new(),
                        );
                        d.raw_output = true;
                        d.scale = unit as f32;
                        d
                    }
                }
                (Op::Add { other }, Params::Add { .. }) => {
                    let (sa, sb) = (s_in, steps[*other]);
                    let m = sa.max(sb);
                    let unit = m / (1i64 << ADD_WEIGHT_BITS) as f64;
                    let wa = (sa / unit + 0.5).floor() as i16;
                    let wb = (sb / unit + 0.5).floor() as i16;
                    let c = shapes[i + 1][0] as usize;
                    let mut l =
                        LayerDef::new(LayerKind::Add, input).with_output(levels, s_out as f32);
                    l.input2 = Some(*other as u16);
                    l.add_weights = [wa, wb];
                    l.requant = vec![requant(i, unit / s_out)?; c];
                    // Zero points of signed inputs: wa (a - za) + wb (b - zb), exactly.
                    let k = -(wa as i64 * zero[n.input] + wb as i64 * zero[*other]);
                    if k != 0 {
                        l.bias = Some(vec![k as i32; c]);
                    }
                    l
                }
                (Op::MaxPool { k, stride }, _) => {
                    let mut l = LayerDef::new(LayerKind::MaxPool, input);
                    l.window = Window::square(*k as u8, *stride as u8, 0);
                    l
                }
                (Op::AvgPool { k, stride }, _) => {
                    let c = shapes[i + 1][0] as usize;
                    let mut l =
                        LayerDef::new(LayerKind::AvgPool, input).with_output(levels, s_out as f32);
                    l.window = Window::square(*k as u8, *stride as u8, 0);
                    // 1 / (k k) on the input's step; QAC's exact sums keep the scale (M = 1).
                    l.requant = vec![requant(i, s_in / (k * k) as f64 / s_out)?; c];
                    l
                }
                (Op::GlobalAvgPool, _) => {
                    let [c, h, w] = shapes[n.input];
                    let mut l = LayerDef::new(LayerKind::GlobalAvgPool, input)
                        .with_output(levels, s_out as f32);
                    l.requant = vec![requant(i, s_in / (h * w) as f64 / s_out)?; c as usize];
                    l
                }
                (Op::Flatten, _) => LayerDef::new(LayerKind::Flatten, input),
                (op, _) => bail!("layer {i}: {op:?} has no parameters to export"),
            };
            def.push(layer);
        }
        Ok(())
    })?;
    Ok(def)
}

/// A dense weight `[out, in]` whose input index follows PyTorch's CHW flatten, with its columns
/// reordered to the device's HWC flatten.
fn hwc_columns(
    w: &Tensor,
    in_shape: [i64; 3],
    spec: &crate::net::Spec,
    input: usize,
) -> Result<Tensor> {
    // The tensor a dense layer reads is a vector; what matters is the shape that was flattened.
    let mut t = input;
    let shapes = spec.shapes()?;
    while t > 0 && matches!(spec.nodes[t - 1].op, Op::Flatten) {
        t = spec.nodes[t - 1].input;
    }
    let [c, h, ww] = if t == input { in_shape } else { shapes[t] };
    if h * ww == 1 {
        return Ok(w.shallow_clone());
    }
    let out = w.size()[0];
    Ok(w.view([out, c, h, ww])
        .permute([0, 2, 3, 1])
        .reshape([out, -1]))
}

/// Record in `def` how many of each conv and dense layer's input codes are nonzero
/// (`LayerDef::input_density`), measured through the integer runtime on `inputs` (input codes,
/// HWC: training images): the runtime then accumulates event by event on a target where that is
/// cheaper at the measured density (`bitspike_core::kernel::choose`). Returns the densities
/// written, per layer (0 for layers without weights).
pub fn measure_density(def: &mut ModelDef, inputs: &[Vec<u8>]) -> Result<Vec<u8>> {
    let bytes = bitspike_core::format::writer::write(def).context("writing the model")?;
    let model = bitspike_rt::Model::load(&bytes)
        .map_err(|e| anyhow::anyhow!("the model does not load: {e}"))?;
    let file = model.file();
    let tensors = file.layer_count() + 1;
    // Nonzero codes and codes seen, per tensor (0: the network input).
    let mut seen = vec![(0u64, 0u64); tensors];
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model
        .bind(&mut arena)
        .map_err(|e| anyhow::anyhow!("binding the arena: {e}"))?;
    let mut out = vec![0i32; model.output_len()];
    for (k, input) in inputs.iter().enumerate() {
        let count = |t: &[u8]| (t.iter().filter(|&&v| v != 0).count() as u64, t.len() as u64);
        let (nz, n) = count(input);
        seen[0].0 += nz;
        seen[0].1 += n;
        interp
            .run_traced(input, &mut out, |i, t| {
                let (nz, n) = count(t);
                seen[i + 1].0 += nz;
                seen[i + 1].1 += n;
            })
            .map_err(|e| anyhow::anyhow!("input {k}: {e}"))?;
    }
    let densities: Vec<u8> = def
        .layers
        .iter()
        .map(|l| {
            let (nz, n) = seen[l.input as usize];
            if l.kind.has_weights() {
                bitspike_core::kernel::density(nz, n)
            } else {
                0
            }
        })
        .collect();
    for (l, &d) in def.layers.iter_mut().zip(&densities) {
        l.input_density = d;
    }
    Ok(densities)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exporter reads tensors through `finite`: a non-finite value is refused with one line
    /// naming the tensor, never folded into a model.
    #[test]
    fn non_finite_tensors_are_refused() {
        let ok = Tensor::from_slice(&[1.0f32, -2.5]);
        assert_eq!(finite(&ok, "w").unwrap(), vec![1.0, -2.5]);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let t = Tensor::from_slice(&[0.5f32, bad]);
            let e = finite(&t, "layer 3: the weights").unwrap_err().to_string();
            assert!(
                e.starts_with("layer 3: the weights holds") && e.contains("index 1"),
                "{e}"
            );
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn fold_flips_negative_scales_and_keeps_constant_channels() {
        let _one = crate::seeded();
        // Channel 0: ordinary; 1: negative BN scale; 2: gamma 0 (constant output h / s_out = 3).
        let (signs, bias, rq) = fold(
            0,
            0.5,
            &[0.1, 0.1, 0.1],
            &[2.0, -2.0, 0.0],
            &[0.25, 0.25, 0.3],
            0.1,
        )
        .unwrap();
        assert_eq!(signs, vec![1.0, -1.0, 0.0]);
        // r = 0.1, bias = 0.25 / 0.1 = 2.5 -> 3; multiplier 0.1 / 0.1 = 1.
        assert_eq!(bias, vec![3, 3, 3]);
        for c in 0..3 {
            let Requant { multiplier, shift } = rq[c];
            // acc = 7 with the channel's weights; the constant channel's weights are zeroed.
            let acc = if c == 2 { 0 } else { 7 };
            let code = bitspike_core::quant::requantize(acc + bias[c], multiplier, shift, 0, 255);
            assert_eq!(code, if c == 2 { 3 } else { 10 }, "channel {c}");
        }
        assert_eq!(
            signed(vec![1, -2, 3, 4, 5, -6], &[1.0, -1.0, 0.0], 2),
            vec![1, -2, -3, -4, 0, 0]
        );
    }
}
