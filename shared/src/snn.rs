//! The integer spiking semantics (docs/design.md, spiking contract), as plain functions that the
//! runtime, the host simulators and the tests share.
//!
//! # Units
//!
//! A spiking layer `l` reads the spike counts `c` (`0..=T_{l-1}`) of the layer before it, or sums
//! of counts after a pooling layer, and computes `acc = sum(w * c)` exactly as a quantized layer
//! computes it from codes. With averaging alignment the input current of each of its `T_l` steps
//! is the count divided by `T_{l-1}` (QAC eq. 12-13) times the weights. That divide is not
//! rounded: the membrane potential, the threshold and the initial potential are all kept in
//! units of `1 / T_{l-1}` of a weighted spike, which are the accumulator units of the quantized
//! network (a code of the previous layer is worth `theta_{l-1} / T_{l-1}`), scaled up by a
//! per-layer power of two, the membrane shift `k`, so that rounding the real threshold, initial
//! potential and bias to integers costs at most `2^-k` of an accumulator unit:
//!
//! ```text
//! current = (acc << k) + bias          (bias already in membrane units)
//! m = v + current;  s = (m >= theta);  v = m - s * theta      (QAC eq. 1-3, soft reset)
//! ```
//!
//! The layer's output is its spike count over its `T_l` steps, `0..=T_l`: the next layer's input
//! codes. With a constant current and `0 <= v0 < theta` the count is
//! `clamp(floor((v0 + T * current) / theta), 0, T)`, the quantizer of QAC eq. 4-5; with
//! `v0 = theta / 2` it rounds half up, like the trained network's quantizer.
//!
//! Replication and truncation feed binary spike steps instead of a constant current; in the
//! same units a spike of layer `l-1` is worth `T_{l-1}`, see [`aligned_input`].
//!
//! The model file reader bounds `|v0| + T * max|current| + max theta` below `2^31` for every
//! spiking layer, so the wrapping arithmetic here never wraps on a model that loads.

use crate::layer::Align;

/// The largest membrane shift a model may use.
pub const MAX_MEMBRANE_SHIFT: u8 = 24;

/// A membrane value (a threshold, an initial potential, a spiking layer's bias) of a layer with
/// membrane shift `shift`, in accumulator units: `value / 2^shift`, exactly, as a fixed-point
/// number with [`MAX_MEMBRANE_SHIFT`] fractional bits (a shift above it counts as the maximum,
/// which a validated model never has).
pub fn accumulator_units(value: i32, shift: u8) -> fixed::types::I40F24 {
    let s = shift.min(MAX_MEMBRANE_SHIFT);
    fixed::types::I40F24::from_bits(i64::from(value) << (MAX_MEMBRANE_SHIFT - s))
}

/// A layer's input current in membrane units: `(acc << shift) + bias`.
#[inline(always)]
pub const fn current(acc: i32, shift: u8, bias: i32) -> i32 {
    acc.wrapping_shl(shift as u32).wrapping_add(bias)
}

/// One step of a soft-reset integrate-and-fire neuron (QAC eq. 1-3): integrate `current` into
/// `v`, fire when the potential reaches `threshold`, subtract the threshold when it fires.
#[inline(always)]
pub fn step(v: &mut i32, current: i32, threshold: i32) -> bool {
    let m = v.wrapping_add(current);
    let fired = m >= threshold;
    *v = if fired { m.wrapping_sub(threshold) } else { m };
    fired
}

/// Spikes a neuron starting at `v0` fires in `timesteps` steps of a constant `current`.
#[inline]
pub fn fire(current: i32, v0: i32, threshold: i32, timesteps: u16) -> u16 {
    let mut v = v0;
    let mut n = 0u16;
    for _ in 0..timesteps {
        n += step(&mut v, current, threshold) as u16;
    }
    n
}

/// One output channel of a spiking layer, prepared once for its many outputs: the membrane
/// shift, bias, initial potential, threshold and timesteps, and whether the count can be taken
/// in closed form. With `0 <= v0 < threshold` (and the model file reader's membrane bound, so
/// that nothing wraps) the spikes of `T` steps of a constant current `I` are exactly
/// `clamp(floor((v0 + T * I) / threshold), 0, T)` (see the module docs): one division instead
/// of `T` steps. Otherwise [`fire`] runs the steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neuron {
    threshold: i32,
    v0: i32,
    bias: i32,
    shift: u8,
    timesteps: u16,
    closed: bool,
    /// `T << shift` (wrapping): `T x current(acc)` is `acc x gain + T x bias`.
    gain: i32,
    /// `v0 + T x bias` (wrapping): the closed form's potential is `acc x gain + base`.
    base: i32,
    /// The threshold as a divisor (1 when it is not positive: such a neuron is not closed).
    divisor: core::num::NonZeroU32,
    /// The largest count: `min(T, 255)`.
    top: u32,
}

impl Neuron {
    /// Prepare a channel: `threshold` (positive, as the reader checks), initial potential `v0`
    /// and `bias` in membrane units, membrane `shift`, `timesteps`.
    #[inline]
    pub const fn new(threshold: i32, v0: i32, bias: i32, shift: u8, timesteps: u16) -> Self {
        Self {
            threshold,
            v0,
            bias,
            shift,
            timesteps,
            closed: 0 <= v0 && v0 < threshold,
            gain: (timesteps as i32).wrapping_shl(shift as u32),
            base: v0.wrapping_add((timesteps as i32).wrapping_mul(bias)),
            divisor: match core::num::NonZeroU32::new(threshold as u32) {
                Some(d) if threshold > 0 => d,
                _ => core::num::NonZeroU32::MIN,
            },
            top: if timesteps > u8::MAX as u16 {
                u8::MAX as u32
            } else {
                timesteps as u32
            },
        }
    }

    /// Whether the count is taken in closed form.
    #[inline]
    pub const fn closed(&self) -> bool {
        self.closed
    }

    /// The spike count (output code, at most 255) for accumulator `acc`: the same as
    /// [`fire`]`(`[`current`]`(acc, shift, bias), v0, threshold, timesteps)` on every layer the
    /// reader accepts.
    #[inline(always)]
    pub fn count(&self, acc: i32) -> u8 {
        let n = if self.closed {
            return self.count_closed(acc);
        } else {
            fire(
                current(acc, self.shift, self.bias),
                self.v0,
                self.threshold,
                self.timesteps,
            )
        };
        if n > u8::MAX as u16 {
            u8::MAX
        } else {
            n as u8
        }
    }

    /// [`count`](Self::count) for a neuron whose count is taken in closed form
    /// ([`closed`](Self::closed)); for any other neuron, a count that may differ from it.
    #[inline(always)]
    pub fn count_closed(&self, acc: i32) -> u8 {
        Closed {
            gain: self.gain,
            base: self.base,
            divisor: self.divisor,
            top: self.top,
        }
        .count(acc)
    }

    /// The closed form of this neuron's count, when it is taken in closed form.
    #[inline]
    pub const fn closed_form(&self) -> Option<Closed> {
        if !self.closed {
            return None;
        }
        Some(Closed {
            gain: self.gain,
            base: self.base,
            divisor: self.divisor,
            top: self.top,
        })
    }
}

/// A spiking channel's count in closed form, `clamp(floor((acc x gain + base) / threshold), 0,
/// min(T, 255))`: what [`Neuron::count`] computes for a closed neuron, in a form the kernels
/// prepare once per layer ([`Closed::encode`], 16 bytes per channel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    gain: i32,
    base: i32,
    divisor: core::num::NonZeroU32,
    top: u32,
}

impl Closed {
    /// The spike count for accumulator `acc`.
    #[inline(always)]
    pub fn count(&self, acc: i32) -> u8 {
        // v0 + T x ((acc << shift) + bias), as one multiply-accumulate: equal modulo 2^32 term
        // by term, and the reader's membrane bound keeps the true value inside i32.
        let reach = acc.wrapping_mul(self.gain).wrapping_add(self.base);
        // A negative potential gives no spike; then at most T (and 255) spikes.
        let q = (if reach < 0 { 0 } else { reach as u32 }) / self.divisor;
        (if q > self.top { self.top } else { q }) as u8
    }

    /// This closed form with `bias` added to every accumulator first:
    /// `with_bias(b).count(x) == count(b.wrapping_add(x))` for every `x` (the potential is
    /// `acc x gain + base` modulo 2^32 either way).
    #[inline(always)]
    pub const fn with_bias(&self, bias: i32) -> Self {
        let mut c = *self;
        c.base = self.base.wrapping_add(bias.wrapping_mul(self.gain));
        c
    }

    /// The terms of the count, for code that applies it outside this type (assembly): the
    /// gain, the base, the divisor and the top count (`count(acc) = min(max(acc x gain + base,
    /// 0) / divisor, top)`, the product and sum wrapping).
    #[inline(always)]
    pub const fn terms(&self) -> (i32, i32, u32, u32) {
        (self.gain, self.base, self.divisor.get(), self.top)
    }

    /// The 16 bytes [`Self::decode`] reads back.
    pub const fn encode(&self) -> [u8; 16] {
        let (g, b) = (self.gain.to_le_bytes(), self.base.to_le_bytes());
        let (d, t) = (self.divisor.get().to_le_bytes(), self.top.to_le_bytes());
        [
            g[0], g[1], g[2], g[3], b[0], b[1], b[2], b[3], d[0], d[1], d[2], d[3], t[0], t[1],
            t[2], t[3],
        ]
    }

    /// The closed form [`Self::encode`] wrote (a zero divisor reads as 1: `encode` never writes
    /// one).
    #[inline(always)]
    pub const fn decode(b: &[u8; 16]) -> Self {
        let d = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        Self {
            gain: i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            base: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            divisor: match core::num::NonZeroU32::new(d) {
                Some(d) => d,
                None => core::num::NonZeroU32::MIN,
            },
            top: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        }
    }
}

/// The step of a `t_in`-step train that step `t` of a `t_out`-step layer reads under `align`
/// (replication: the nearest earlier step by integer indexing, `floor(t * t_in / t_out)`;
/// truncation: the same step, or none past the train's end). `None` for averaging, which reads
/// every step, and for truncated steps.
pub const fn source_step(align: Align, t: usize, t_in: usize, t_out: usize) -> Option<usize> {
    match align {
        Align::Average => None,
        Align::Replicate if t_out == 0 => None,
        Align::Replicate => Some(t * t_in / t_out),
        Align::Truncate if t < t_in => Some(t),
        Align::Truncate => None,
    }
}

/// The input of each of `out.len()` steps when a neuron's input train `train` (spikes, or spike
/// sums after pooling, one value per step of the previous layer) is aligned by `align` (QAC
/// section 4.3), in units of `1 / train.len()` of a spike:
///
/// * averaging (eq. 12-13): every step receives the train's sum (its mean, in these units);
/// * replication: step `t` receives `T_in * train[floor(t * T_in / T_out)]`;
/// * truncation: step `t` receives `T_in * train[t]` for `t < T_in`, nothing after.
///
/// An empty train gives zeros.
pub fn aligned_input(align: Align, train: &[u8], out: &mut [u32]) {
    let t_in = train.len();
    let t_out = out.len();
    let sum: u32 = train.iter().map(|&x| x as u32).sum();
    for (t, o) in out.iter_mut().enumerate() {
        *o = match align {
            Align::Average => sum,
            _ => match source_step(align, t, t_in, t_out) {
                Some(s) => t_in as u32 * train.get(s).copied().unwrap_or(0) as u32,
                None => 0,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membrane_values_in_accumulator_units_are_exact() {
        assert_eq!(accumulator_units(3, 1).to_num::<f64>(), 1.5);
        assert_eq!(accumulator_units(-5, 2).to_num::<f64>(), -1.25);
        assert_eq!(accumulator_units(7, 0).to_num::<f64>(), 7.0);
        let extreme = accumulator_units(i32::MIN, 0);
        assert_eq!(extreme.to_num::<i64>(), i64::from(i32::MIN));
        let fine = accumulator_units(1, MAX_MEMBRANE_SHIFT);
        assert_eq!(fine.to_bits(), 1);
        assert_eq!(accumulator_units(1, 200), fine);
    }

    #[test]
    fn a_folded_bias_gives_the_same_counts() {
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let mut closed = 0;
        for _ in 0..20_000 {
            let theta = (next() % 5000) as i32 + 1;
            let v0 = (next() % theta as u64) as i32;
            let bias = (next() % 2001) as i32 - 1000;
            let n = Neuron::new(theta, v0, bias, (next() % 4) as u8, (next() % 8) as u16 + 1);
            let Some(c) = n.closed_form() else { continue };
            closed += 1;
            let b = (next() % 4001) as i32 - 2000;
            let x = (next() % 40_001) as i32 - 20_000;
            assert_eq!(c.with_bias(b).count(x), c.count(b + x), "{n:?} b {b} x {x}");
            assert_eq!(c.count(b + x), n.count(b + x));
        }
        assert!(closed > 10_000, "only {closed} neurons in closed form");
    }

    #[test]
    fn neuron_follows_a_hand_worked_trace() {
        // theta 10, v0 5, current 4: m = 9, 13 -> fire (3), 7, 11 -> fire (1).
        let mut v = 5;
        let trace: [(bool, i32); 4] = core::array::from_fn(|_| (step(&mut v, 4, 10), v));
        assert_eq!(trace, [(false, 9), (true, 3), (false, 7), (true, 1)]);
        assert_eq!(fire(4, 5, 10, 4), 2);
        // A current above the threshold fires every step and the residue grows.
        assert_eq!(fire(25, 0, 10, 3), 3);
        // A negative current never fires.
        assert_eq!(fire(-3, 9, 10, 8), 0);
        assert_eq!(current(-3, 4, 5), -43);
    }

    #[test]
    fn alignment_follows_hand_worked_examples() {
        let train = [1u8, 0];
        let mut out = [0u32; 3];
        aligned_input(Align::Average, &train, &mut out);
        assert_eq!(out, [1, 1, 1]); // 1/2 of a spike per step
        aligned_input(Align::Replicate, &train, &mut out);
        assert_eq!(out, [2, 2, 0]); // steps 0, 0, 1 (floor(t * 2 / 3))
        aligned_input(Align::Truncate, &train, &mut out);
        assert_eq!(out, [2, 0, 0]);
    }
}
