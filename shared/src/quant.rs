//! The integer semantics that host and device share, bit for bit.
//!
//! Every layer that produces activation codes ends with the same requantization
//! (docs/design.md, "The integer contract"):
//!
//! ```text
//! code = clamp(round_shift(sat_mul_q31(acc, m), s) + offset, 0, L)
//! ```
//!
//! * `acc` is the layer's i32 accumulator (bias already added, in accumulator units);
//! * `m` is a non-negative Q31 multiplier (`m / 2^31` is a real number in `[0, 1)`);
//! * `s` is a shift: positive `s` is a rounding right shift of the product; a negative `s` (a
//!   scale above 1) is a saturating left shift applied to `acc` *before* the multiply, as TFLite
//!   and CMSIS-NN do, so that no precision is lost to the multiply's rounding. For `s >= 0` the
//!   formula above holds as written; for `s < 0` it reads `clamp(sat_mul_q31(acc << -s, m) +
//!   offset, 0, L)`;
//! * `offset` is added after scaling, in code units (a zero point; QCFS's +0.5 shift is folded
//!   into the bias, half a code step in accumulator units, since an integer offset cannot hold it);
//! * `L` is the output tensor's level count (codes `0..=L`, `L <= 255`).
//!
//! Rounding is specified exactly and is the same everywhere: **round half up** (towards +inf),
//! that is `floor(x + 1/2)`. The trainer's fake-quant path uses `floor(x + 0.5)` to match.
//! All functions are total: every input gives a defined output, nothing panics.

mod scale;
mod thresholds;
pub use scale::Q31Scale;
pub use thresholds::{
    threshold_code, thresholds, THRESHOLD_ENTRIES, THRESHOLD_MAX_LEVELS, THRESHOLD_MAX_SPAN,
};

/// The largest right shift a requantization may use; [`MIN_SHIFT`] is the largest left shift.
pub const MAX_SHIFT: i8 = 31;
/// The most negative shift (a left shift by 31 bits, saturating).
pub const MIN_SHIFT: i8 = -31;

/// Q31 multiply with rounding and saturation: `round_half_up(a * b / 2^31)`, saturated to i32.
///
/// The product is formed in i64, so the only result that does not fit is
/// `i32::MIN * i32::MIN`, which saturates to `i32::MAX`.
#[inline]
pub const fn sat_mul_q31(a: i32, b: i32) -> i32 {
    let p = (a as i64) * (b as i64);
    // p + 2^30 cannot overflow: |p| <= 2^62.
    let r = (p + (1i64 << 30)) >> 31;
    saturate_i64(r)
}

/// Rounding shift: for `s > 0`, `round_half_up(x / 2^s)`; for `s == 0`, `x`; for `s < 0`,
/// `x * 2^-s` saturated to i32.
///
/// Right shifts beyond 62 act as 62 (the result is then 0) and left shifts beyond 32 as 32 (the
/// result saturates unless `x` is 0); a validated model never carries such shifts, but the
/// function stays total.
#[inline]
pub const fn round_shift(x: i32, s: i8) -> i32 {
    if s > 0 {
        let s = if s > 62 { 62 } else { s as u32 };
        let r = ((x as i64) + (1i64 << (s - 1))) >> s;
        r as i32
    } else if s == 0 {
        x
    } else {
        let l = if s < -32 { 32 } else { (-(s as i32)) as u32 };
        saturate_i64((x as i64) << l)
    }
}

/// Clamp an i32 to the activation code range `0..=levels`.
#[inline]
pub const fn clamp_code(x: i32, levels: u8) -> u8 {
    if x < 0 {
        0
    } else if x > levels as i32 {
        levels
    } else {
        x as u8
    }
}

/// Requantize one accumulator to an activation code (the contract's formula, see module docs).
#[inline]
pub const fn requantize(acc: i32, multiplier: i32, shift: i8, offset: i32, levels: u8) -> u8 {
    let scaled = if shift >= 0 {
        round_shift(sat_mul_q31(acc, multiplier), shift)
    } else {
        sat_mul_q31(round_shift(acc, shift), multiplier)
    };
    clamp_code(scaled.saturating_add(offset), levels)
}

/// One channel's requantization prepared once, then applied to many accumulators: the same
/// result as [`requantize`] for every accumulator, with one 64-bit multiply-add and one shift.
///
/// For `shift >= 0` the two roundings of the contract fold into one: `floor((floor(p / 2^31 +
/// 1/2) + 2^(s-1)) / 2^s) = floor((p + 2^30 + 2^(30+s)) / 2^(31+s))` (the inner floor can move out
/// because the added term is an integer), where `p = acc * m` and `m >= 0` keeps the product's
/// rounding from saturating. A negative shift keeps the contract's saturating left shift first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requantizer {
    multiplier: i32,
    add: i64,
    /// Right shift of the high word (`31 + s - 32`), for `s > 0`.
    high_shift: u32,
    /// `s > 0`: the result is the high word shifted; otherwise the product shifted by 31.
    high: bool,
    left: u32,
    offset: i32,
    levels: u8,
}

impl Requantizer {
    /// Prepare `requantize(_, multiplier, shift, offset, levels)`; `None` for a negative
    /// multiplier or a shift outside [`MIN_SHIFT`]`..=`[`MAX_SHIFT`] (which a validated model
    /// never has), for which callers keep [`requantize`].
    #[inline]
    pub const fn new(multiplier: i32, shift: i8, offset: i32, levels: u8) -> Option<Self> {
        if multiplier < 0 || shift < MIN_SHIFT || shift > MAX_SHIFT {
            return None;
        }
        // add = 2^30 + 2^(30 + s) for s > 0, built from 32-bit shifts (cheap on a 32-bit core).
        let (add, high_shift, high, left) = if shift > 1 {
            let hi = 1u32 << (shift as u32 - 2);
            (
                (((hi as u64) << 32) | (1 << 30)) as i64,
                shift as u32 - 1,
                true,
                0,
            )
        } else if shift == 1 {
            (0xC000_0000, 0, true, 0)
        } else {
            (1i64 << 30, 0, false, (-(shift as i32)) as u32)
        };
        Some(Self {
            multiplier,
            add,
            high_shift,
            high,
            left,
            offset,
            levels,
        })
    }

    /// The per-channel part as 16 bytes, for a kernel that prepares every channel once per
    /// layer in its scratch; [`Self::decode`] reverses it. Little-endian: the multiplier
    /// (bytes 0..4), the added term (4..12), the high word's shift (12), 1 when the high word
    /// is taken (13), the left shift (14), 0 (15); assembly reads this layout.
    #[inline]
    pub const fn encode(&self) -> [u8; 16] {
        let m = self.multiplier.to_le_bytes();
        let a = self.add.to_le_bytes();
        [
            m[0],
            m[1],
            m[2],
            m[3],
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5],
            a[6],
            a[7],
            self.high_shift as u8,
            self.high as u8,
            self.left as u8,
            0,
        ]
    }

    /// The requantizer [`Self::encode`] wrote, with the layer's `offset` and `levels`.
    #[inline(always)]
    pub const fn decode(b: &[u8; 16], offset: i32, levels: u8) -> Self {
        Self {
            multiplier: i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            add: i64::from_le_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]),
            high_shift: (b[12] & 31) as u32,
            high: b[13] != 0,
            left: (b[14] & 31) as u32,
            offset,
            levels,
        }
    }

    /// Whether [`Self::apply_right`] applies: no left shift (`shift >= 0`), the case of every
    /// layer that scales down (the exporter writes shift 0 for most).
    #[inline(always)]
    pub const fn right_shift(&self) -> bool {
        self.left == 0
    }

    /// The left shift (`-shift` for `shift < 0`, else 0) applied, saturating, before the
    /// multiply: for accumulators with `|acc| <= i32::MAX >> left` it cannot saturate, and
    /// [`Self::apply`] equals [`Self::apply_right_as`]`::<false>(acc << left)`.
    #[inline(always)]
    pub const fn left_shift(&self) -> u32 {
        self.left
    }

    /// This requantizer with `bias` folded into its added term: when [`Self::right_shift`]
    /// holds, `with_bias(b).apply_right(x) == apply_right(b + x)` for every `x` with `b + x`
    /// inside i32 (both are `(b + x) m + add` in 64 bits), which a validated model's
    /// accumulators always are: the loader bounds the bias plus the products.
    #[inline(always)]
    pub const fn with_bias(&self, bias: i32) -> Self {
        let mut r = *self;
        r.add = self
            .add
            .wrapping_add((bias as i64).wrapping_mul(self.multiplier as i64));
        r
    }

    /// The terms of a right shift, for code that applies it outside this type (assembly):
    /// the multiplier, the added term, the high word's shift (see [`Self::apply_right_as`])
    /// and the offset.
    #[inline(always)]
    pub const fn terms(&self) -> (i32, i64, u32, i32) {
        (self.multiplier, self.add, self.high_shift, self.offset)
    }

    /// Whether a right shift (`shift > 0`) takes the high word of the product (see
    /// [`Self::apply_right_as`]); shift 0 takes the product shifted by 31.
    #[inline(always)]
    pub const fn high_word(&self) -> bool {
        self.high
    }

    /// [`Self::apply`] for a requantizer with [`Self::right_shift`]: one multiply-accumulate,
    /// a shift of the high word (or of the product by 31), the offset and the clamp.
    #[inline(always)]
    pub const fn apply_right(&self, acc: i32) -> u8 {
        if self.high {
            self.apply_right_as::<true>(acc)
        } else {
            self.apply_right_as::<false>(acc)
        }
    }

    /// [`Self::apply_right`] with the shift's kind decided by the caller (once per channel, not
    /// per output): equal to [`Self::apply`] when [`Self::right_shift`] holds and `HIGH` is
    /// [`Self::high_word`].
    #[inline(always)]
    pub const fn apply_right_as<const HIGH: bool>(&self, acc: i32) -> u8 {
        let v = mul_wide(acc, self.multiplier) + self.add;
        let scaled = if HIGH {
            ((v >> 32) as i32) >> self.high_shift
        } else {
            (v >> 31) as i32
        };
        clamp_code(scaled.saturating_add(self.offset), self.levels)
    }

    /// `floor(2^S / m)` for a right shift, `S` the total right shift of the product (31 plus
    /// the shift): the least number of accumulator steps between the thresholds of two
    /// consecutive codes (the most is one more); `u64::MAX` for a zero multiplier.
    #[inline]
    pub const fn code_step(&self) -> u64 {
        let s = if self.high { 32 + self.high_shift } else { 31 };
        if self.multiplier <= 0 {
            u64::MAX
        } else {
            (1u64 << s) / self.multiplier as u64
        }
    }

    /// The top code (`levels`) this requantizer clamps to.
    #[inline(always)]
    pub const fn levels(&self) -> u8 {
        self.levels
    }

    /// [`Self::apply_right_as`] for a requantizer whose [`Self::levels`] is `LEVELS` (the caller
    /// checks, once per channel): with the top code a constant, the clamp compiles to one
    /// saturation (`USAT` on Arm) when `LEVELS + 1` is a power of two.
    #[inline(always)]
    pub const fn apply_right_levels<const HIGH: bool, const LEVELS: u8>(&self, acc: i32) -> u8 {
        let v = mul_wide(acc, self.multiplier) + self.add;
        let scaled = if HIGH {
            ((v >> 32) as i32) >> self.high_shift
        } else {
            (v >> 31) as i32
        };
        clamp_code(scaled.saturating_add(self.offset), LEVELS)
    }

    /// The code for accumulator `acc`.
    #[inline(always)]
    pub const fn apply(&self, acc: i32) -> u8 {
        // The contract's saturating left shift, in 32 bits (`left <= 31`).
        let x = if self.left == 0 {
            acc
        } else {
            let r = acc << self.left;
            if r >> self.left == acc {
                r
            } else if acc < 0 {
                i32::MIN
            } else {
                i32::MAX
            }
        };
        // One 32x32->64 multiply-accumulate: |x * m| < 2^62 and add <= 2^30 + 2^61, so no
        // overflow; the result fits i32.
        let v = mul_wide(x, self.multiplier) + self.add;
        // A shift of 32 or more is the high word shifted (floor of a floor: exact), which a
        // 32-bit core does in one instruction.
        let scaled = if self.high {
            ((v >> 32) as i32) >> self.high_shift
        } else {
            (v >> 31) as i32
        };
        clamp_code(scaled.saturating_add(self.offset), self.levels)
    }
}

/// `a x m` for a multiplier `m >= 0`, exactly. On Armv6-M, which has no 32x32->64 multiply,
/// [`mul_halves`] instead of the 64x64 multiply routine; elsewhere one `SMULL`.
#[inline(always)]
pub const fn mul_wide(a: i32, m: i32) -> i64 {
    #[cfg(bitspike_v6m)]
    {
        mul_halves(a, m)
    }
    #[cfg(not(bitspike_v6m))]
    {
        a as i64 * m as i64
    }
}

/// `a x m` for `m >= 0` from four 16x16 products and 64-bit adds (what [`mul_wide`] runs on
/// Armv6-M: four `MULS`, no call).
#[inline(always)]
pub const fn mul_halves(a: i32, m: i32) -> i64 {
    let (ua, um) = (a.unsigned_abs(), m as u32);
    let (al, ah) = (ua & 0xFFFF, ua >> 16);
    let (ml, mh) = (um & 0xFFFF, um >> 16);
    // |a| <= 2^31 and m < 2^31: each partial product and their middle sum fit u32.
    let mid = al * mh + ah * ml;
    let low = al * ml;
    let lo = low.wrapping_add(mid << 16);
    let hi = ah * mh + (mid >> 16) + (lo < low) as u32;
    let p = ((hi as u64) << 32 | lo as u64) as i64;
    if a < 0 {
        p.wrapping_neg()
    } else {
        p
    }
}

/// Saturate an i64 into the i32 range.
#[inline]
pub const fn saturate_i64(x: i64) -> i32 {
    if x > i32::MAX as i64 {
        i32::MAX
    } else if x < i32::MIN as i64 {
        i32::MIN
    } else {
        x as i32
    }
}

/// Number of bits an activation with codes `0..=levels` needs (`ceil(log2(levels + 1))`), at
/// least 1. Used for BOPs and RAM, where an activation's bit width is what the cost counts.
#[inline]
pub const fn code_bits(levels: u8) -> u32 {
    let n = levels as u32 + 1;
    let b = 32 - (n - 1).leading_zeros();
    if b == 0 {
        1
    } else {
        b
    }
}

/// The multiplier and shift the exporter writes for `real`: [`Q31Scale::exported`]'s bits.
pub fn multiplier_for(real: f64) -> Option<(i32, i8)> {
    Q31Scale::exported(real).map(Q31Scale::to_bits)
}

/// A real scale factor expressed as a Q31 multiplier and a shift such that
/// `real ~= multiplier / 2^31 * 2^-shift`, with `multiplier` in `[2^30, 2^31)` (or 0 for 0):
/// [`Q31Scale::normalised`]'s bits. `None` for negative, non-finite values, or values whose
/// shift falls outside [`MIN_SHIFT`]`..=`[`MAX_SHIFT`].
pub fn quantize_multiplier(real: f64) -> Option<(i32, i8)> {
    Q31Scale::normalised(real).map(Q31Scale::to_bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folded_bias_gives_the_same_codes() {
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1du64);
        for _ in 0..20_000 {
            let m = (next() >> 33) as i32;
            let shift = (next() % 12) as i8;
            let offset = (next() % 256) as i32 - 128;
            let levels = [1u8, 3, 12, 15, 255][(next() % 5) as usize];
            let bias = (next() >> 40) as i32 - (1 << 23);
            let x = (next() >> 36) as i32 - (1 << 27);
            let r = Requantizer::new(m, shift, offset, levels).unwrap();
            let want = requantize(bias + x, m, shift, offset, levels);
            assert_eq!(
                r.with_bias(bias).apply_right(x),
                want,
                "m {m} s {shift} b {bias} x {x}"
            );
            assert_eq!(r.apply_right(bias + x), want);
        }
    }

    #[test]
    fn products_from_halves_are_exact() {
        let edge = [
            0,
            1,
            -1,
            2,
            0xFFFF,
            0x1_0000,
            -0x1_0000,
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
        ];
        let ms = [0, 1, 0xFFFF, 0x1_0000, 1 << 30, i32::MAX];
        for &a in &edge {
            for &m in &ms {
                assert_eq!(mul_halves(a, m), a as i64 * m as i64, "{a} x {m}");
            }
        }
        let mut x = 0x2545_F491u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let (a, m) = (x as i32, (x.rotate_left(7) >> 1) as i32);
            assert_eq!(mul_halves(a, m), a as i64 * m as i64, "{a} x {m}");
        }
    }

    #[test]
    fn round_half_up_on_ties() {
        assert_eq!(round_shift(3, 1), 2); // 1.5 -> 2
        assert_eq!(round_shift(-3, 1), -1); // -1.5 -> -1
        assert_eq!(round_shift(5, 2), 1); // 1.25 -> 1
        assert_eq!(round_shift(6, 2), 2); // 1.5 -> 2
        assert_eq!(round_shift(i32::MIN, 31), -1);
        assert_eq!(round_shift(i32::MAX, 31), 1);
        assert_eq!(round_shift(1, -30), 1 << 30);
        assert_eq!(round_shift(1, -31), i32::MAX); // saturates
        assert_eq!(round_shift(-2, -31), i32::MIN);
    }

    #[test]
    fn q31_extremes() {
        assert_eq!(sat_mul_q31(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(sat_mul_q31(i32::MAX, i32::MAX), i32::MAX - 1);
        assert_eq!(sat_mul_q31(1 << 30, 4), 2);
        assert_eq!(sat_mul_q31(0, i32::MIN), 0);
    }

    #[test]
    fn code_bits_of_levels() {
        assert_eq!(code_bits(1), 1);
        assert_eq!(code_bits(3), 2);
        assert_eq!(code_bits(4), 3);
        assert_eq!(code_bits(15), 4);
        assert_eq!(code_bits(16), 5);
        assert_eq!(code_bits(255), 8);
        assert_eq!(code_bits(0), 1);
    }

    #[test]
    fn exported_multipliers_round_once() {
        // An average pool's 1/4: sums 0..=7 must give round-half-up of sum / 4.
        let (m, s) = multiplier_for(0.25).unwrap();
        assert_eq!(s, 0);
        let got: [u8; 8] = core::array::from_fn(|acc| requantize(acc as i32, m, s, 0, 255));
        assert_eq!(got, [0, 0, 1, 1, 1, 1, 2, 2]);
        // The normalised pair rounds twice: 1 and 5 round up wrongly.
        let (m, s) = quantize_multiplier(0.25).unwrap();
        assert_eq!(s, 1);
        let twice: [u8; 8] = core::array::from_fn(|acc| requantize(acc as i32, m, s, 0, 255));
        assert_eq!(twice, [0, 1, 1, 1, 1, 2, 2, 2]);
        assert_eq!(multiplier_for(3.0), quantize_multiplier(3.0));
        assert_eq!(multiplier_for(1e-6), quantize_multiplier(1e-6));
        assert_eq!(
            multiplier_for(0.999_999_999_9),
            quantize_multiplier(0.999_999_999_9)
        );
    }

    /// The exporter's and the normalised scale, and the `(multiplier, shift)` pair the
    /// wrapper returns, all give back the real they were made from.
    #[test]
    fn multiplier_represents_real() {
        for &r in &[
            1e-6,
            0.001,
            0.25,
            0.5,
            0.75,
            0.999_999_999,
            1.0,
            3.7,
            1000.0,
        ] {
            let (m, s) = quantize_multiplier(r).unwrap();
            let back = m as f64 / (1u64 << 31) as f64 * 2f64.powi(-(s as i32));
            assert!((back - r).abs() <= r * 1e-9, "{r} -> {m} {s} -> {back}");
            assert!(m >= 1 << 30);
            let n = Q31Scale::normalised(r).unwrap();
            assert_eq!(n.to_bits(), (m, s));
            assert!((n.real() - r).abs() <= r * 1e-9, "{r} -> {n:?}");
            let e = Q31Scale::exported(r).unwrap();
            assert!((e.real() - r).abs() <= r * 1e-6, "{r} -> {e:?}");
            assert_eq!(Q31Scale::from_bits(e.to_bits().0, e.to_bits().1), e);
        }
        assert_eq!(quantize_multiplier(0.0), Some((0, 0)));
        assert_eq!(quantize_multiplier(-1.0), None);
        assert_eq!(quantize_multiplier(f64::NAN), None);
        assert_eq!(quantize_multiplier(1e30), None);
    }
}
