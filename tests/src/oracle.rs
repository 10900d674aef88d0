//! Straightforward oracles for every layer kind, written independently of the runtime's kernels.
//!
//! Everything here is recomputed from the integer contract (docs/design.md, "The integer contract")
//! and the layer semantics documented in `bitspike_core::layer`, in wide integers:
//!
//! * [`requantize`] (with [`sat_mul_q31`] and [`round_shift`]) works in i128 and never calls
//!   `bitspike_core::quant`; a negative shift scales the accumulator before the multiply, as the
//!   shared crate's `quant` module documents;
//! * [`execute`] runs a whole [`ModelDef`] from its *unpacked* weights (never the packed stream,
//!   never `bitspike_core::pack`), accumulating in i64 and truncating to i32 at the end (the
//!   device's wrapping i32 adds give the same result, since addition modulo 2^32 is associative);
//! * convolutions and windowed pools read an explicitly zero-padded copy of their input, so the
//!   padding logic is structured differently from the runtime's bounds checks;
//! * [`layer_macs`] counts the multiply-accumulates a kernel executes (products with an in-bounds
//!   input; padding skipped) in closed form, separably per axis.
//!
//! Shapes are recomputed here too; the oracle panics (with a message) on a definition whose
//! shapes or arrays do not fit, as a test helper should.
//!
//! [`gen`] holds the deterministic random generator and tensor/parameter generators the property
//! tests share.

use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::layer::{LayerKind, Shape};

/// Saturate an i128 into the i32 range.
fn sat32(x: i128) -> i32 {
    x.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

/// `floor(n / d)` for `d > 0`.
fn floor_div(n: i128, d: i128) -> i128 {
    assert!(d > 0);
    n.div_euclid(d)
}

/// Q31 multiply: `floor((a * b + 2^30) / 2^31)` (round half up of `a * b / 2^31`), saturated to
/// i32.
pub fn sat_mul_q31(a: i32, b: i32) -> i32 {
    let p = a as i128 * b as i128;
    sat32(floor_div(p + (1i128 << 30), 1i128 << 31))
}

/// Rounding shift: `floor((x + 2^(s-1)) / 2^s)` for `s > 0`, `x` for `s == 0`, `x * 2^-s`
/// saturated to i32 for `s < 0`.
pub fn round_shift(x: i32, s: i8) -> i32 {
    let x = x as i128;
    let s = s as i32;
    if s > 0 {
        // Beyond 100 the result no longer changes (it is 0 for every i32 from s = 33 on).
        let s = s.min(100) as u32;
        let d = 1i128 << s;
        sat32(floor_div(x + d / 2, d))
    } else if s == 0 {
        x as i32
    } else {
        // Any non-zero x saturates from a left shift of 32 on; 64 keeps the product in i128.
        let l = (-s).min(64) as u32;
        sat32(x * (1i128 << l))
    }
}

/// The contract's requantization, with a saturating i32 add of the offset and a clamp to
/// `0..=levels`:
///
/// * `s >= 0`: `clamp(round_shift(sat_mul_q31(acc, m), s) + offset, 0, L)` (docs/design.md);
/// * `s < 0`: `clamp(sat_mul_q31(round_shift(acc, s), m) + offset, 0, L)`: the saturating left
///   shift scales the accumulator *before* the multiply (TFLite / CMSIS-NN order), as
///   `bitspike_core::quant`'s module docs specify since "Negative requantization shifts scale the
///   accumulator before the multiply".
pub fn requantize(acc: i32, multiplier: i32, shift: i8, offset: i32, levels: u8) -> u8 {
    let scaled = if shift >= 0 {
        round_shift(sat_mul_q31(acc, multiplier), shift)
    } else {
        sat_mul_q31(round_shift(acc, shift), multiplier)
    };
    let v = sat32(scaled as i128 + offset as i128);
    v.clamp(0, levels as i32) as u8
}

/// One tensor the oracle computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Shape, HWC.
    pub shape: Shape,
    /// Elements in HWC order: codes widened to i32, or raw accumulators when `raw`.
    pub values: Vec<i32>,
    /// Level count of the codes (0 for a raw tensor).
    pub levels: u8,
    /// Whether the values are raw i32 accumulators rather than codes.
    pub raw: bool,
}

impl Tensor {
    fn at(&self, y: usize, x: usize, c: usize) -> i32 {
        let s = self.shape;
        assert!(y < s.h as usize && x < s.w as usize && c < s.c as usize);
        self.values[(y * s.w as usize + x) * s.c as usize + c]
    }
}

/// Everything the oracle computed for one model and one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// Every tensor, the network input first; tensor `i + 1` is layer `i`'s output.
    pub tensors: Vec<Tensor>,
    /// Multiply-accumulates each layer executed (products with an in-bounds input), counted
    /// while executing.
    pub macs: Vec<u64>,
}

impl Trace {
    /// The network output: the last tensor's values.
    pub fn output(&self) -> &[i32] {
        &self.tensors[self.tensors.len() - 1].values
    }
}

/// Output length along one axis: `(n + 2p - k) / s + 1`; panics when the window does not fit.
fn out_dim(n: u16, k: u8, s: u8, p: u8) -> usize {
    let padded = n as usize + 2 * p as usize;
    assert!(k >= 1 && s >= 1, "kernel and stride must be >= 1");
    assert!(
        padded >= k as usize,
        "window {k} larger than padded input {padded}"
    );
    (padded - k as usize) / s as usize + 1
}

fn shape(h: usize, w: usize, c: usize) -> Shape {
    let f = |v: usize| u16::try_from(v).expect("dimension fits u16");
    Shape::new(f(h), f(w), f(c))
}

/// An input tensor surrounded by `ph` rows and `pw` columns of padding (`None`).
struct Padded {
    h: usize,
    w: usize,
    c: usize,
    cells: Vec<Option<i32>>,
}

impl Padded {
    fn new(t: &Tensor, ph: u8, pw: u8) -> Self {
        let (ph, pw) = (ph as usize, pw as usize);
        let s = t.shape;
        let (h, w, c) = (s.h as usize + 2 * ph, s.w as usize + 2 * pw, s.c as usize);
        let mut cells = vec![None; h * w * c];
        for y in 0..s.h as usize {
            for x in 0..s.w as usize {
                for ch in 0..c {
                    cells[((y + ph) * w + (x + pw)) * c + ch] = Some(t.at(y, x, ch));
                }
            }
        }
        Self { h, w, c, cells }
    }

    fn get(&self, y: usize, x: usize, c: usize) -> Option<i32> {
        assert!(y < self.h && x < self.w && c < self.c);
        self.cells[(y * self.w + x) * self.c + c]
    }
}

/// A weighted layer's starting accumulator for channel `o`: its bias, except for a spiking layer,
/// whose bias enters the membrane (see [`finish`]).
fn start(l: &LayerDef, o: usize) -> i64 {
    match (&l.spiking, &l.bias) {
        (None, Some(b)) => b[o] as i64,
        _ => 0,
    }
}

/// How a layer turns an accumulator of channel `c` into an output value. A spiking layer runs
/// the soft-reset integrate-and-fire neuron of the spiking contract in i64, step by step: the
/// current `acc * 2^shift + bias` each of `timesteps` steps, `m = v + current`, fire when
/// `m >= threshold` and subtract it; the output is the spike count.
fn finish(l: &LayerDef, last: bool, acc: i64, c: usize) -> i32 {
    if let Some(s) = &l.spiking {
        let current = acc * (1i64 << s.shift) + l.bias.as_ref().map_or(0, |b| b[c] as i64);
        let theta = s.threshold[c] as i64;
        let mut v = s.v0[c] as i64;
        let mut spikes = 0;
        for _ in 0..l.timesteps {
            v += current;
            assert!(v.abs() < 1 << 31, "membrane left the i32 range");
            if v >= theta {
                v -= theta;
                spikes += 1;
            }
        }
        return spikes;
    }
    let acc = acc as i32; // truncation = the device's wrapping i32 sum
    if l.raw_output {
        assert!(last, "raw output on a layer that is not the last");
        acc
    } else {
        let r = l.requant[c];
        requantize(acc, r.multiplier, r.shift, l.offset, l.levels) as i32
    }
}

fn out_tensor(l: &LayerDef, shape: Shape, values: Vec<i32>) -> Tensor {
    Tensor {
        shape,
        values,
        levels: if l.raw_output { 0 } else { l.levels },
        raw: l.raw_output,
    }
}

fn conv2d(l: &LayerDef, last: bool, x: &Tensor, macs: &mut u64) -> Tensor {
    let win = l.window;
    let groups = l.groups as usize;
    let (ic, oc) = (x.shape.c as usize, l.out_channels as usize);
    assert!(
        groups >= 1 && ic % groups == 0 && oc % groups == 0,
        "bad groups"
    );
    let (cin_g, cout_g) = (ic / groups, oc / groups);
    let (kh, kw) = (win.kh as usize, win.kw as usize);
    let oh = out_dim(x.shape.h, win.kh, win.sh, win.ph);
    let ow = out_dim(x.shape.w, win.kw, win.sw, win.pw);
    assert_eq!(l.weights.len(), oc * kh * kw * cin_g, "conv weight count");
    // w[o][ky][kx][ci], OHWI.
    let wt = |o: usize, ky: usize, kx: usize, ci: usize| -> i64 {
        l.weights[o * (kh * kw * cin_g) + ky * (kw * cin_g) + kx * cin_g + ci] as i64
    };
    let padded = Padded::new(x, win.ph, win.pw);
    let mut values = Vec::with_capacity(oh * ow * oc);
    for oy in 0..oh {
        for ox in 0..ow {
            for o in 0..oc {
                let group = o / cout_g;
                let mut acc: i64 = start(l, o);
                for ky in 0..kh {
                    for kx in 0..kw {
                        for ci in 0..cin_g {
                            let v = padded.get(
                                oy * win.sh as usize + ky,
                                ox * win.sw as usize + kx,
                                group * cin_g + ci,
                            );
                            if let Some(v) = v {
                                acc += v as i64 * wt(o, ky, kx, ci);
                                *macs += 1;
                            }
                        }
                    }
                }
                values.push(finish(l, last, acc, o));
            }
        }
    }
    out_tensor(l, shape(oh, ow, oc), values)
}

fn dense(l: &LayerDef, last: bool, x: &Tensor, macs: &mut u64) -> Tensor {
    let s = x.shape;
    let n = s.len();
    let out = l.out_channels as usize;
    assert!(out >= 1, "dense needs outputs");
    assert_eq!(l.weights.len(), out * n, "dense weight count");
    // The HWC flattening, spelled out.
    let mut flat = Vec::with_capacity(n);
    for y in 0..s.h as usize {
        for xx in 0..s.w as usize {
            for c in 0..s.c as usize {
                flat.push(x.at(y, xx, c));
            }
        }
    }
    let mut values = Vec::with_capacity(out);
    for o in 0..out {
        let row = &l.weights[o * n..(o + 1) * n];
        let mut acc: i64 = start(l, o);
        for (v, w) in flat.iter().zip(row) {
            acc += *v as i64 * *w as i64;
            *macs += 1;
        }
        values.push(finish(l, last, acc, o));
    }
    out_tensor(l, shape(1, 1, out), values)
}

/// Average (`avg == true`) or max pooling.
fn pool(l: &LayerDef, last: bool, x: &Tensor, avg: bool) -> Tensor {
    let win = l.window;
    assert!(
        2 * win.ph <= win.kh && 2 * win.pw <= win.kw,
        "pool padding beyond half the kernel"
    );
    let oh = out_dim(x.shape.h, win.kh, win.sh, win.ph);
    let ow = out_dim(x.shape.w, win.kw, win.sw, win.pw);
    let c_n = x.shape.c as usize;
    let padded = Padded::new(x, win.ph, win.pw);
    let mut values = Vec::with_capacity(oh * ow * c_n);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..c_n {
                let cells = (0..win.kh as usize).flat_map(|ky| {
                    let padded = &padded;
                    (0..win.kw as usize).map(move |kx| {
                        padded.get(oy * win.sh as usize + ky, ox * win.sw as usize + kx, c)
                    })
                });
                if avg {
                    // Padding counts as zero; the divisor lives in the multiplier.
                    let sum: i64 = cells.map(|v| v.unwrap_or(0) as i64).sum();
                    values.push(finish(l, last, sum, c));
                } else {
                    let m = cells.flatten().max().expect("a pool window holds an input");
                    values.push(m);
                }
            }
        }
    }
    let s = shape(oh, ow, c_n);
    if avg {
        out_tensor(l, s, values)
    } else {
        Tensor {
            shape: s,
            values,
            levels: x.levels,
            raw: false,
        }
    }
}

fn global_avg_pool(l: &LayerDef, last: bool, x: &Tensor) -> Tensor {
    let s = x.shape;
    let mut values = Vec::with_capacity(s.c as usize);
    for c in 0..s.c as usize {
        let mut sum = 0i64;
        for y in 0..s.h as usize {
            for xx in 0..s.w as usize {
                sum += x.at(y, xx, c) as i64;
            }
        }
        values.push(finish(l, last, sum, c));
    }
    out_tensor(l, shape(1, 1, s.c as usize), values)
}

fn add(l: &LayerDef, last: bool, a: &Tensor, b: &Tensor) -> Tensor {
    assert_eq!(a.shape, b.shape, "add inputs differ in shape");
    let s = a.shape;
    let [wa, wb] = l.add_weights;
    let mut values = Vec::with_capacity(s.len());
    for y in 0..s.h as usize {
        for x in 0..s.w as usize {
            for c in 0..s.c as usize {
                let bias = l.bias.as_ref().map_or(0, |v| v[c] as i64);
                let acc =
                    a.at(y, x, c) as i64 * wa as i64 + b.at(y, x, c) as i64 * wb as i64 + bias;
                values.push(finish(l, last, acc, c));
            }
        }
    }
    out_tensor(l, s, values)
}

/// Execute `def` on `input` (HWC codes of the network input) and return every tensor and the
/// MACs each layer executed.
pub fn execute(def: &ModelDef, input: &[u8]) -> Trace {
    assert_eq!(input.len(), def.input.shape.len(), "input length");
    let mut tensors = vec![Tensor {
        shape: def.input.shape,
        values: input.iter().map(|&v| v as i32).collect(),
        levels: def.input.levels,
        raw: false,
    }];
    let mut macs = Vec::with_capacity(def.layers.len());
    for (i, l) in def.layers.iter().enumerate() {
        let last = i + 1 == def.layers.len();
        let x = &tensors[l.input as usize];
        assert!(!x.raw, "layer {i} reads a raw tensor");
        let mut m = 0u64;
        let t = match l.kind {
            LayerKind::Conv2d => conv2d(l, last, x, &mut m),
            LayerKind::Dense => dense(l, last, x, &mut m),
            LayerKind::AvgPool => pool(l, last, x, true),
            LayerKind::MaxPool => pool(l, last, x, false),
            LayerKind::GlobalAvgPool => global_avg_pool(l, last, x),
            LayerKind::Add => {
                let b = &tensors[l.input2.expect("add has a second input") as usize];
                assert!(!b.raw, "layer {i} reads a raw tensor");
                add(l, last, x, b)
            }
            LayerKind::Flatten => Tensor {
                shape: shape(1, 1, x.shape.len()),
                values: x.values.clone(),
                levels: x.levels,
                raw: false,
            },
        };
        macs.push(m);
        tensors.push(t);
    }
    Trace { tensors, macs }
}

/// Execute `def` on `input` and return the network output: codes widened to i32, or the raw
/// accumulators when the last layer has `raw_output`.
pub fn run(def: &ModelDef, input: &[u8]) -> Vec<i32> {
    execute(def, input).output().to_vec()
}

/// Along one axis of length `n` (padding `p`, kernel `k`, stride `s`): the number of
/// (output position, kernel tap) pairs whose input lies inside `0..n`.
fn in_bounds_taps(n: u16, k: u8, s: u8, p: u8) -> u64 {
    let o = out_dim(n, k, s, p);
    let mut count = 0u64;
    for oy in 0..o {
        // Taps ky with 0 <= oy*s + ky - p < n, i.e. ky in [p - oy*s, n + p - oy*s).
        let start = oy as i64 * s as i64 - p as i64;
        let lo = (-start).max(0);
        let hi = (n as i64 - start).min(k as i64);
        count += (hi - lo).max(0) as u64;
    }
    count
}

/// Multiply-accumulates every layer of `def` executes, in closed form: for a convolution,
/// `taps_h * taps_w * out_c * in_c / groups` where `taps_*` counts the in-bounds (output, tap)
/// pairs along each axis (padding is skipped, not multiplied); for a dense layer `out * in`;
/// 0 for every other kind.
pub fn layer_macs(def: &ModelDef) -> Vec<u64> {
    let mut shapes = vec![def.input.shape];
    let mut out = Vec::with_capacity(def.layers.len());
    for l in &def.layers {
        let x = shapes[l.input as usize];
        let w = l.window;
        let (macs, s) = match l.kind {
            LayerKind::Conv2d => {
                let oh = out_dim(x.h, w.kh, w.sh, w.ph);
                let ow = out_dim(x.w, w.kw, w.sw, w.pw);
                let cin_g = (x.c / l.groups) as u64;
                let m = in_bounds_taps(x.h, w.kh, w.sh, w.ph)
                    * in_bounds_taps(x.w, w.kw, w.sw, w.pw)
                    * l.out_channels as u64
                    * cin_g;
                (m, shape(oh, ow, l.out_channels as usize))
            }
            LayerKind::Dense => (
                x.len() as u64 * l.out_channels as u64,
                shape(1, 1, l.out_channels as usize),
            ),
            LayerKind::AvgPool | LayerKind::MaxPool => (
                0,
                shape(
                    out_dim(x.h, w.kh, w.sh, w.ph),
                    out_dim(x.w, w.kw, w.sw, w.pw),
                    x.c as usize,
                ),
            ),
            LayerKind::GlobalAvgPool => (0, shape(1, 1, x.c as usize)),
            LayerKind::Add => (0, x),
            LayerKind::Flatten => (0, shape(1, 1, x.len())),
        };
        out.push(macs);
        shapes.push(s);
    }
    out
}

pub mod gen {
    //! Deterministic random data for the property tests: a SplitMix64 generator seeded from one
    //! proptest-drawn u64, and generators of codes, weights, biases and requantization
    //! parameters that favour the edges of each range.

    use bitspike_core::def::Requant;

    /// The project's SplitMix64 generator (`bitspike_core::def::random::Rng`: only test data comes
    /// from it, no arithmetic under test), with the helpers these tests use.
    #[derive(Clone, Debug)]
    pub struct Rng(bitspike_core::def::random::Rng);

    impl Rng {
        /// A generator seeded with `seed`.
        pub fn new(seed: u64) -> Self {
            Self(bitspike_core::def::random::Rng::new(seed))
        }

        /// The next 64 random bits.
        pub fn next_u64(&mut self) -> u64 {
            self.0.next_u64()
        }

        /// A uniform integer in `lo..=hi` (`lo <= hi`).
        pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
            assert!(lo <= hi);
            let span = (hi as i128 - lo as i128 + 1) as u128;
            (lo as i128 + (self.next_u64() as u128 % span) as i128) as i64
        }

        /// True with probability `num / den`.
        pub fn chance(&mut self, num: u64, den: u64) -> bool {
            self.next_u64() % den < num
        }

        /// One element of `xs`, uniformly.
        pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.int(0, xs.len() as i64 - 1) as usize]
        }
    }

    /// `n` activation codes in `0..=levels`, one in eight at an end of the range.
    pub fn codes(rng: &mut Rng, n: usize, levels: u8) -> Vec<u8> {
        (0..n)
            .map(|_| {
                if rng.chance(1, 8) {
                    rng.pick(&[0, levels])
                } else {
                    rng.int(0, levels as i64) as u8
                }
            })
            .collect()
    }

    /// `n` weights spanning the full signed range of `bits` bits, `-2^(bits-1) ..= 2^(bits-1)-1`,
    /// one in four at an end of the range.
    pub fn weights(rng: &mut Rng, n: usize, bits: u8) -> Vec<i8> {
        let lo = -(1i64 << (bits - 1));
        let hi = (1i64 << (bits - 1)) - 1;
        (0..n)
            .map(|_| {
                if rng.chance(1, 4) {
                    rng.pick(&[lo, hi]) as i8
                } else {
                    rng.int(lo, hi) as i8
                }
            })
            .collect()
    }

    /// `n` biases of magnitude up to about `typical`, with an occasional bias near +-2^30 (so that
    /// the requantization's saturation is exercised). Not nearer the i32 ends: the loader refuses
    /// a layer whose bias plus largest product sum could leave the i32 range, and the test layers'
    /// product sums stay far below 2^30.
    pub fn bias(rng: &mut Rng, n: usize, typical: u64) -> Vec<i32> {
        let t = typical.clamp(1, 1 << 29) as i64;
        (0..n)
            .map(|_| match rng.int(0, 19) {
                0 => (1 << 30) - rng.int(0, t) as i32,
                1 => -(1 << 30) + rng.int(0, t) as i32,
                _ => rng.int(-t, t) as i32,
            })
            .collect()
    }

    /// A typical accumulator magnitude for `fan_in` products of codes up to `in_levels` with
    /// `bits`-bit weights, as a random walk: `sqrt(fan_in) * (L / 2) * (2^(bits-1) / 2)`, at
    /// least 1. Used to pick shifts that keep requantized codes informative.
    pub fn typical(fan_in: usize, in_levels: u8, bits: u8) -> u64 {
        let half_w = (1u64 << (bits.clamp(1, 8) - 1)) as f64 / 2.0;
        let t = (fan_in as f64).sqrt() * (in_levels as f64 / 2.0) * half_w;
        (t as u64).max(1)
    }

    /// `floor(log2(x))` for `x >= 1`.
    fn log2(x: u64) -> i64 {
        63 - x.max(1).leading_zeros() as i64
    }

    /// Per-channel requantization for `channels` channels whose accumulators are typically about
    /// `typical` in magnitude, producing codes `0..=levels`. Most channels get a multiplier in
    /// `[2^30, 2^31)` and a shift that maps `typical` to roughly the code range (so outputs are
    /// not all clamped); the rest get edge values: multiplier 0, 1, `i32::MAX`, shifts -31, 0,
    /// 1 and 31, and arbitrary shifts.
    pub fn requant(rng: &mut Rng, channels: usize, typical: u64, levels: u8) -> Vec<Requant> {
        // acc * m / 2^31 / 2^s ~ levels with m ~ 0.75 * 2^31: s ~ log2(typical / levels).
        let base = log2(typical.max(1)) - log2(levels.max(1) as u64);
        (0..channels)
            .map(|_| {
                if rng.chance(3, 4) {
                    let multiplier = rng.int(1 << 30, i32::MAX as i64) as i32;
                    let shift = (base + rng.int(-2, 2)).clamp(-31, 31) as i8;
                    Requant { multiplier, shift }
                } else {
                    let multiplier = match rng.int(0, 4) {
                        0 => 0,
                        1 => 1,
                        2 => i32::MAX,
                        _ => rng.int(0, i32::MAX as i64) as i32,
                    };
                    let shift = match rng.int(0, 6) {
                        0 => -31,
                        1 => 31,
                        2 => 0,
                        3 => 1,
                        4 => -rng.int(1, 8) as i8,
                        _ => rng.int(-31, 31) as i8,
                    };
                    Requant { multiplier, shift }
                }
            })
            .collect()
    }

    /// An output offset for codes `0..=levels`: mostly within `-levels..=levels` (so that
    /// negative accumulators reach the code range), sometimes 0 and sometimes the i32 extremes
    /// (to exercise the saturating add).
    pub fn offset(rng: &mut Rng, levels: u8) -> i32 {
        let l = levels as i64;
        match rng.int(0, 19) {
            0 => i32::MAX,
            1 => i32::MIN,
            2..=5 => 0,
            _ => rng.int(-l, l) as i32,
        }
    }

    /// An output level count: often 255 or 1, otherwise uniform in `1..=255`.
    pub fn levels(rng: &mut Rng) -> u8 {
        match rng.int(0, 5) {
            0 => 255,
            1 => 1,
            _ => rng.int(1, 255) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_examples() {
        assert_eq!(round_shift(3, 1), 2);
        assert_eq!(round_shift(-3, 1), -1);
        assert_eq!(round_shift(-5, 2), -1); // -1.25 -> -1
        assert_eq!(round_shift(-6, 2), -1); // -1.5 -> -1
        assert_eq!(round_shift(-7, 2), -2); // -1.75 -> -2
        assert_eq!(round_shift(i32::MIN, 31), -1);
        assert_eq!(round_shift(i32::MAX, 31), 1);
        assert_eq!(round_shift(1, -31), i32::MAX);
        assert_eq!(round_shift(-1, -31), i32::MIN);
        assert_eq!(round_shift(0, -31), 0);
        assert_eq!(sat_mul_q31(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(sat_mul_q31(1 << 30, 4), 2);
        assert_eq!(sat_mul_q31(-3, 1 << 30), -1); // -1.5 -> -1
        assert_eq!(sat_mul_q31(i32::MAX, i32::MAX), i32::MAX - 1);
        assert_eq!(requantize(10, i32::MAX, 0, i32::MAX, 7), 7);
        assert_eq!(requantize(-10, i32::MAX, 0, i32::MIN, 7), 0);
        assert_eq!(requantize(-3, 1 << 30, 0, 2, 7), 1);
        // Negative shifts scale before the multiply: 3 * 2 * 0.5 = 3 (not round(1.5) * 2 = 4).
        assert_eq!(requantize(3, 1 << 30, -1, 0, 255), 3);
        // ... and saturate before it: (1 << 31 saturated) * 0.5 = 2^30 - 0.5 -> 2^30.
        assert_eq!(requantize(1, 1 << 30, -31, -(1 << 30) + 5, 255), 5);
    }

    #[test]
    fn closed_form_macs_match_execution() {
        use bitspike_core::def::{LayerDef, Requant};
        use bitspike_core::layer::Window;
        let mut rng = gen::Rng::new(7);
        for case in 0..200 {
            let (kh, kw) = (rng.int(1, 4) as u8, rng.int(1, 4) as u8);
            let (ph, pw) = (
                rng.int(0, kh as i64 - 1) as u8,
                rng.int(0, kw as i64 - 1) as u8,
            );
            let (sh, sw) = (rng.int(1, 3) as u8, rng.int(1, 3) as u8);
            let h = rng.int((kh as i64 - 2 * ph as i64).max(1), 6) as u16;
            let w = rng.int((kw as i64 - 2 * pw as i64).max(1), 6) as u16;
            let (g, cig, cog) = (
                rng.int(1, 3) as u16,
                rng.int(1, 2) as u16,
                rng.int(1, 2) as u16,
            );
            let mut def = ModelDef::new(Shape::new(h, w, g * cig), 255, 1.0);
            let n = (g * cog) as usize * kh as usize * kw as usize * cig as usize;
            def.push(LayerDef::conv2d(
                0,
                g * cog,
                Window {
                    kh,
                    kw,
                    sh,
                    sw,
                    ph,
                    pw,
                },
                g,
                8,
                vec![1; n],
                None,
                vec![Requant::default(); (g * cog) as usize],
            ));
            let input = vec![1u8; def.input.shape.len()];
            let t = execute(&def, &input);
            assert_eq!(t.macs, layer_macs(&def), "case {case}");
        }
    }
}
