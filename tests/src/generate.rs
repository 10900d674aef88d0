//! A model generator for fuzzing and property tests: from a fuzzer's bytes, a model the reader
//! accepts, drawn over every geometry and parameter the format allows.
//!
//! The structure (layer kinds, kernels 1..=11, strides, paddings up to and beyond the kernel,
//! groups and depthwise, odd channel counts and sizes, 2..=8-bit weights, output levels, spiking
//! layers with their own timesteps, residual adds, pools, dense heads, a raw or a coded output)
//! comes from the bytes through [`arbitrary::Unstructured`], so that a coverage-guided fuzzer's
//! mutations change one choice at a time; the bulk numbers (weights, biases, requantization,
//! thresholds, input codes) come from a generator seeded from the bytes ([`gen::Rng`]), with the
//! edge values [`gen`] favours. Every model written from [`model`] loads: the writer and the
//! reader agreeing on everything the generator draws is itself a property the fuzz target checks.
//! Only a model's size is bounded ([`Limits`]), so that an iteration stays cheap.

use arbitrary::{Result, Unstructured};
use bitspike_core::def::{LayerDef, ModelDef, SpikingDef};
use bitspike_core::layer::{infer_output, LayerKind, Shape, Window};
use bitspike_core::snn::MAX_MEMBRANE_SHIFT;

use crate::oracle::gen::{self, Rng};

/// Bounds on a generated model's size.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Layers at most (a residual add may bring one more).
    pub layers: usize,
    /// Elements in any tensor at most.
    pub elems: usize,
    /// Multiply-accumulates over the whole model at most (a layer that would pass it is not
    /// drawn).
    pub macs: u64,
    /// Input height and width at most.
    pub side: u16,
    /// Channels of any tensor at most.
    pub channels: u16,
}

/// What one fuzzer iteration affords: a few thousand elements per tensor, a quarter of a million
/// multiply-accumulates.
pub const FUZZ: Limits = Limits {
    layers: 8,
    elems: 3072,
    macs: 1 << 18,
    side: 16,
    channels: 24,
};

/// Everything the generator keeps track of while it appends layers.
struct Builder<'u, 'b> {
    u: &'u mut Unstructured<'b>,
    rng: Rng,
    def: ModelDef,
    /// Shape and levels of every tensor so far (`None` levels: raw, never read again).
    tensors: Vec<(Shape, u8)>,
    macs: u64,
    limits: Limits,
}

/// A model drawn from `u` within `limits`. Fails only when `u` cannot give what it is asked for
/// (then the caller has nothing to test).
pub fn model(u: &mut Unstructured<'_>, limits: &Limits) -> Result<ModelDef> {
    let seed = u.arbitrary::<u64>()?;
    let side = limits.side.max(1);
    let h = u.int_in_range(1..=side)?;
    let w = if u.ratio(1, 3)? {
        h
    } else {
        u.int_in_range(1..=side)?
    };
    let c = u.int_in_range(1..=limits.channels.clamp(1, 8))?;
    let mut rng = Rng::new(seed);
    let levels = pick_levels(u, &mut rng)?;
    let input = Shape::new(h, w, c);
    let mut b = Builder {
        u,
        rng,
        def: ModelDef::new(input, levels, 1.0 / 255.0),
        tensors: vec![(input, levels)],
        macs: 0,
        limits: *limits,
    };
    let body = b.u.int_in_range(1..=limits.layers.max(1))?;
    for _ in 0..body {
        if b.u.is_empty() {
            break;
        }
        b.layer()?;
    }
    if b.def.layers.is_empty() {
        b.dense_head(false)?;
    }
    // A head: a dense layer over the flattened features, or the body's last layer as is; its
    // output raw i32 or codes.
    let raw = b.u.ratio(2, 3)?;
    if b.u.ratio(1, 2)? {
        b.dense_head(raw)?;
    } else if raw {
        b.make_last_raw();
    }
    Ok(b.def)
}

/// An output (or input) level count: the ones the kernels specialise, or any.
fn pick_levels(u: &mut Unstructured<'_>, rng: &mut Rng) -> Result<u8> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => 255,
        1 => 15,
        2 => 1,
        3 => 3,
        _ => gen::levels(rng),
    })
}

impl Builder<'_, '_> {
    fn last(&self) -> (u16, Shape, u8) {
        let t = self.tensors.len() - 1;
        let (s, l) = self.tensors[t];
        (t as u16, s, l)
    }

    fn push(&mut self, l: LayerDef, shape: Shape, levels: u8, macs: u64) -> u16 {
        self.macs += macs;
        self.tensors.push((shape, levels));
        self.def.push(l)
    }

    /// One body layer of a kind drawn from the bytes (a kind that does not fit the current
    /// tensor falls through to one that does).
    fn layer(&mut self) -> Result<()> {
        let (t, s, _) = self.last();
        match self.u.int_in_range(0..=9u8)? {
            0..=3 => self.conv(t)?,
            4 => self.pool(t, LayerKind::MaxPool)?,
            5 => self.pool(t, LayerKind::AvgPool)?,
            6 => self.residual(t)?,
            7 if s.h * s.w > 1 => {
                let mut l = LayerDef::new(LayerKind::GlobalAvgPool, t);
                let sum = s.h as usize * s.w as usize * self.tensors[t as usize].1 as usize;
                let (shape, levels) = self.requantized(&mut l, sum, s.c as usize)?;
                self.push(l, shape, levels, 0);
            }
            8 => {
                let l = LayerDef::new(LayerKind::Flatten, t);
                let levels = self.tensors[t as usize].1;
                let n = s.len();
                if n <= u16::MAX as usize {
                    self.push(l, Shape::vector(n as u16), levels, 0);
                }
            }
            _ => self.dense(t, false)?,
        }
        Ok(())
    }

    /// Requantization of a layer whose `channels` accumulators are typically `typical`: output
    /// levels, per-channel multipliers and shifts, an offset. Returns the output shape (the
    /// layer's, from its geometry) and levels.
    fn requantized(
        &mut self,
        l: &mut LayerDef,
        typical: usize,
        channels: usize,
    ) -> Result<(Shape, u8)> {
        l.levels = pick_levels(self.u, &mut self.rng)?;
        l.requant = gen::requant(&mut self.rng, channels, typical as u64, l.levels);
        l.offset = gen::offset(&mut self.rng, l.levels);
        let shape = self.shape_of(l);
        Ok((shape, l.levels))
    }

    fn shape_of(&self, l: &LayerDef) -> Shape {
        let s = self.tensors[l.input as usize].0;
        infer_output(l.kind, l.window, l.groups, l.out_channels, s).unwrap_or(s)
    }

    /// A window along one axis of length `n`: kernel 1..=11 (at most what the padded axis
    /// holds), stride 1..=3, padding 0..=kernel+1 (at least the kernel now and then).
    fn axis(&mut self, n: u16, pool: bool) -> Result<(u8, u8, u8)> {
        let k = self.u.int_in_range(1..=if pool { 5u8 } else { 11 })?;
        let p = if pool {
            self.u.int_in_range(0..=k / 2)?
        } else {
            match self.u.int_in_range(0..=3u8)? {
                0 => 0,
                1 => k / 2,
                2 => k.saturating_add(self.u.int_in_range(0..=1u8)?),
                _ => self.u.int_in_range(0..=k.saturating_add(1))?,
            }
        };
        let s = self.u.int_in_range(1..=3u8)?;
        // The padded axis must hold the kernel.
        let k = k.min(room(n, p)).max(1);
        let p = if pool { p.min(k / 2) } else { p };
        Ok((k, s, p))
    }

    fn conv(&mut self, t: u16) -> Result<()> {
        let (s, levels) = self.tensors[t as usize];
        let (kh, sh, ph) = self.axis(s.h, false)?;
        let (kw, sw, pw) = if self.u.ratio(2, 3)? {
            // Square, where the padded width holds it.
            (kh.min(room(s.w, ph)), sh, ph)
        } else {
            self.axis(s.w, false)?
        };
        let window = Window {
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
        };
        let c = s.c;
        let cap = self.limits.channels.max(1);
        let (groups, cout) = match self.u.int_in_range(0..=5u8)? {
            // Depthwise, with a channel multiplier now and then.
            0 | 1 => {
                let m = if self.u.ratio(1, 4)? { 2 } else { 1 };
                (c, (c * m).min(cap - cap % c).max(c))
            }
            // Grouped: a divisor of the input channels.
            2 => {
                let divisors: Vec<u16> = (1..=c).filter(|g| c % g == 0).collect();
                let g = *self.u.choose(&divisors)?;
                let per = self.u.int_in_range(1..=(cap / g).max(1))?;
                (g, g * per)
            }
            _ => (1, self.u.int_in_range(1..=cap)?),
        };
        let Ok(out) = infer_output(LayerKind::Conv2d, window, groups, cout, s) else {
            return Ok(());
        };
        let fan = kh as usize * kw as usize * (c / groups) as usize;
        let macs = out.len() as u64 * fan as u64;
        if out.len() > self.limits.elems || self.macs + macs > self.limits.macs {
            return Ok(());
        }
        let bits = self.u.int_in_range(2..=8u8)?;
        let n = cout as usize * fan;
        let w = gen::weights(&mut self.rng, n, bits);
        let mut l = LayerDef::conv2d(t, cout, window, groups, bits, w, None, Vec::new());
        self.stage(&mut l, fan, levels, bits)?;
        let out_levels = l.levels;
        self.push(l, out, out_levels, macs);
        Ok(())
    }

    fn dense(&mut self, t: u16, raw: bool) -> Result<()> {
        let (s, levels) = self.tensors[t as usize];
        let n = s.len();
        let out = self.u.int_in_range(1..=32u16)?;
        let macs = n as u64 * out as u64;
        if self.macs + macs > self.limits.macs {
            return Ok(());
        }
        let bits = self.u.int_in_range(2..=8u8)?;
        let w = gen::weights(&mut self.rng, n * out as usize, bits);
        let mut l = LayerDef::dense(t, out, bits, w, None, Vec::new());
        if raw {
            l.bias = Some(gen::bias(
                &mut self.rng,
                out as usize,
                gen::typical(n, levels, bits),
            ));
            l.raw_output = true;
        } else {
            self.stage(&mut l, n, levels, bits)?;
        }
        let out_levels = l.levels;
        self.push(l, Shape::vector(out), out_levels, macs);
        Ok(())
    }

    /// The head: flatten (when the features are not a vector yet) and a dense layer.
    fn dense_head(&mut self, raw: bool) -> Result<()> {
        let (mut t, s, levels) = self.last();
        if s.h * s.w > 1 && s.len() <= u16::MAX as usize {
            let l = LayerDef::new(LayerKind::Flatten, t);
            t = self.push(l, Shape::vector(s.len() as u16), levels, 0);
        }
        let before = self.def.layers.len();
        self.dense(t, raw)?;
        if self.def.layers.len() == before {
            // Over the MAC budget: the smallest head there is.
            let n = self.tensors[t as usize].0.len();
            let w = gen::weights(&mut self.rng, n, 8);
            let mut l = LayerDef::dense(t, 1, 8, w, None, Vec::new());
            l.raw_output = true;
            self.push(l, Shape::vector(1), 0, n as u64);
        }
        Ok(())
    }

    /// Turn the last layer's output into raw accumulators, where its kind allows it (it
    /// requantizes and does not spike).
    fn make_last_raw(&mut self) {
        if let Some(l) = self.def.layers.last_mut() {
            if l.kind.requantizes() && l.spiking.is_none() {
                l.raw_output = true;
                l.requant.clear();
                l.offset = 0;
                if let Some(t) = self.tensors.last_mut() {
                    t.1 = 0;
                }
            }
        }
    }

    /// A weighted layer's output stage over `fan` inputs with codes up to `levels`: requantized
    /// codes with a bias now and then, or integrate-and-fire with timesteps of its own.
    fn stage(&mut self, l: &mut LayerDef, fan: usize, levels: u8, bits: u8) -> Result<()> {
        let c = l.out_channels as usize;
        let typical = gen::typical(fan, levels, bits);
        l.input_density = match self.u.int_in_range(0..=3u8)? {
            0 => 0,
            1 => self.u.int_in_range(1..=40u8)?,
            _ => self.u.arbitrary()?,
        };
        if self.u.ratio(1, 3)? {
            let t = match self.u.int_in_range(0..=4u8)? {
                0 => 1,
                1..=3 => self.u.int_in_range(2..=16u16)?,
                _ => self.u.int_in_range(17..=255u16)?,
            };
            // The largest accumulator; the membrane shift and timesteps keep the membrane
            // inside i32 (the reader's bound).
            let acc = fan as i64 * levels as i64 * (1i64 << (bits - 1));
            let mut shift = self.u.int_in_range(0..=MAX_MEMBRANE_SHIFT)?;
            let mut t = t;
            let fits = |shift: u8, t: u16| {
                let current = acc << shift;
                // Thresholds, initial potentials and biases stay within a few `current / t`.
                (t as i64 + 8) * (current + 1) < i32::MAX as i64 / 2
            };
            while !fits(shift, t) && shift > 0 {
                shift -= 1;
            }
            while !fits(shift, t) && t > 1 {
                t /= 2;
            }
            if fits(shift, t) {
                let (s, bias) = spiking_params(&mut self.rng, c, typical, t, shift);
                l.spiking = Some(s);
                l.bias = Some(bias);
                l.requant = Vec::new();
                l.offset = 0;
                l.timesteps = t;
                l.levels = t as u8;
                return Ok(());
            }
        }
        if self.u.ratio(1, 2)? {
            l.bias = Some(gen::bias(&mut self.rng, c, typical));
        }
        l.levels = pick_levels(self.u, &mut self.rng)?;
        l.requant = gen::requant(&mut self.rng, c, typical, l.levels);
        l.offset = gen::offset(&mut self.rng, l.levels);
        Ok(())
    }

    fn pool(&mut self, t: u16, kind: LayerKind) -> Result<()> {
        let (s, levels) = self.tensors[t as usize];
        let (kh, sh, ph) = self.axis(s.h, true)?;
        let (kw, sw, pw) = if self.u.ratio(1, 2)? {
            let kw = kh.min(room(s.w, ph)).max(1);
            (kw, sh, ph.min(kw / 2))
        } else {
            self.axis(s.w, true)?
        };
        let mut l = LayerDef::new(kind, t);
        l.window = Window {
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
        };
        let Ok(out) = infer_output(kind, l.window, 1, 0, s) else {
            return Ok(());
        };
        let out_levels = if kind == LayerKind::AvgPool {
            let sum = kh as usize * kw as usize * levels as usize;
            self.requantized(&mut l, sum, s.c as usize)?.1
        } else {
            levels
        };
        self.push(l, out, out_levels, 0);
        Ok(())
    }

    /// A residual add of `t` and an earlier tensor of the same shape; without one, a "same"
    /// convolution of `t` first (the usual residual block).
    fn residual(&mut self, t: u16) -> Result<()> {
        let (s, _) = self.tensors[t as usize];
        let same: Vec<u16> = (0..t)
            .filter(|&i| self.tensors[i as usize].0 == s && self.tensors[i as usize].1 > 0)
            .collect();
        let (a, b) = if !same.is_empty() {
            (*self.u.choose(&same)?, t)
        } else {
            let k = *self.u.choose(&[1u8, 3, 5])?;
            let window = Window::square(k, 1, k / 2);
            let fan = k as usize * k as usize * s.c as usize;
            let macs = s.len() as u64 * fan as u64;
            if self.macs + macs > self.limits.macs || room(s.h, k / 2) < k || room(s.w, k / 2) < k {
                return Ok(());
            }
            let (_, levels) = self.tensors[t as usize];
            let bits = self.u.int_in_range(2..=8u8)?;
            let w = gen::weights(&mut self.rng, s.c as usize * fan, bits);
            let mut l = LayerDef::conv2d(t, s.c, window, 1, bits, w, None, Vec::new());
            self.stage(&mut l, fan, levels, bits)?;
            let lv = l.levels;
            let branch = self.push(l, s, lv, macs);
            (t, branch)
        };
        let (a, b) = if self.u.ratio(1, 2)? { (a, b) } else { (b, a) };
        let mut add = LayerDef::new(LayerKind::Add, a);
        add.input2 = Some(b);
        let weight = |u: &mut Unstructured<'_>| -> Result<i16> {
            Ok(match u.int_in_range(0..=3u8)? {
                0 => 1,
                1 => i16::MAX,
                2 => -u.int_in_range(1..=300i16)?,
                _ => u.int_in_range(-300..=300i16)?,
            })
        };
        add.add_weights = [weight(self.u)?, weight(self.u)?];
        let (la, lb) = (self.tensors[a as usize].1, self.tensors[b as usize].1);
        let typical = add.add_weights[0].unsigned_abs() as usize * la as usize
            + add.add_weights[1].unsigned_abs() as usize * lb as usize;
        let (_, levels) = self.requantized(&mut add, typical.max(1), s.c as usize)?;
        // Half the adds (drawn) undo their inputs' zero points through a bias, drawn from a
        // generator of its own (seeded by the layer's index), so that the main streams, and
        // with them every other layer of a model, stay as they were.
        let mut side = Rng::new(0xB1A5_0000 ^ self.def.layers.len() as u64);
        if side.chance(1, 2) {
            let half = (typical / 2).max(1) as i64;
            add.bias = Some((0..s.c).map(|_| side.int(-half, half) as i32).collect());
        }
        self.push(add, s, levels, 0);
        Ok(())
    }
}

/// The largest kernel an axis of length `n` with padding `p` on each side holds (at most 255).
fn room(n: u16, p: u8) -> u8 {
    (n as usize + 2 * p as usize).min(255) as u8
}

/// Random spiking parameters for `channels` outputs whose accumulator is typically `typical`,
/// with `t` timesteps and membrane shift `shift`: thresholds around `typical * 2^shift / t` (so
/// counts spread over `0..=t`), initial potentials anywhere in `-theta..2*theta` (half of them
/// at `theta / 2`), small biases in membrane units.
pub fn spiking_params(
    rng: &mut Rng,
    channels: usize,
    typical: u64,
    t: u16,
    shift: u8,
) -> (SpikingDef, Vec<i32>) {
    let scale = 1i64 << shift;
    let base = (typical as i64 * scale / t.max(1) as i64).max(1);
    let threshold: Vec<i32> = (0..channels)
        .map(|_| rng.int((base / 2).max(1), base * 2) as i32)
        .collect();
    let v0 = threshold
        .iter()
        .map(|&th| {
            if rng.chance(1, 2) {
                th / 2
            } else {
                rng.int(-(th as i64), 2 * th as i64) as i32
            }
        })
        .collect();
    let bias = (0..channels).map(|_| rng.int(-base, base) as i32).collect();
    (
        SpikingDef {
            threshold,
            v0,
            shift,
        },
        bias,
    )
}
