//! A requantization scale as a typed fixed-point value: the Q31 multiplier (an
//! [`I1F31`](fixed::types::I1F31), a number in `[0, 1)` with 31 fractional bits) and its shift,
//! and the float-to-fixed conversion the exporter uses, rounding as the integer contract does
//! (half up, once).

use fixed::types::{I1F31, U0F128};

/// A real scale `multiplier * 2^-shift`: what one requantization multiplies by (see
/// [`crate::quant`]). The model file stores [`to_bits`](Self::to_bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Q31Scale {
    /// The multiplier, a non-negative Q31 number (`bits / 2^31`, in `[0, 1)`).
    pub multiplier: I1F31,
    /// The shift: positive right (rounding), negative left (saturating).
    pub shift: i8,
}

/// Half of one Q31 step, `2^-32`, as a 128-bit fraction.
const HALF_Q31_STEP: U0F128 = U0F128::from_bits(1 << 96);

/// `x` as a Q31 number rounded half up (`floor(x * 2^31 + 1/2) / 2^31`), or `None` when `x` is
/// outside `[0, 1)` or rounds up to 1. Exact for every `x >= 2^-75`: `x` itself converts to a
/// 128-bit fraction without rounding, and the conversion to 31 fractional bits drops the rest
/// (rounds towards -inf).
fn q31_half_up(x: f64) -> Option<I1F31> {
    if !(0.0..1.0).contains(&x) {
        return None;
    }
    let exact = U0F128::checked_from_num(x)?;
    I1F31::checked_from_num(exact.checked_add(HALF_Q31_STEP)?)
}

impl Q31Scale {
    /// The scale 1: `1/2 * 2^1`.
    pub const ONE: Self = Self::from_bits(1 << 30, -1);

    /// The scale of a stored multiplier and shift.
    pub const fn from_bits(multiplier: i32, shift: i8) -> Self {
        Self {
            multiplier: I1F31::from_bits(multiplier),
            shift,
        }
    }

    /// The multiplier's raw bits and the shift, as the model file stores them.
    pub const fn to_bits(self) -> (i32, i8) {
        (self.multiplier.to_bits(), self.shift)
    }

    /// The real number this scale multiplies by.
    pub fn real(self) -> f64 {
        let m: f64 = self.multiplier.to_num();
        let mut r = m;
        // 2^-shift, exactly, without `powi` (not in core).
        let (mut s, step) = if self.shift >= 0 {
            (self.shift, 0.5)
        } else {
            (-self.shift, 2.0)
        };
        while s > 0 {
            r *= step;
            s -= 1;
        }
        r
    }

    /// The normalised scale closest to `real`: a multiplier in `[1/2, 1)` (0 for 0) and the
    /// shift that makes up the rest. `None` for negative or non-finite values and for shifts
    /// outside [`MIN_SHIFT`](super::MIN_SHIFT)`..=`[`MAX_SHIFT`](super::MAX_SHIFT).
    pub fn normalised(real: f64) -> Option<Self> {
        if !real.is_finite() || real < 0.0 {
            return None;
        }
        if real == 0.0 {
            return Some(Self::from_bits(0, 0));
        }
        // real = q * 2^e with q in [0.5, 1): exact, a change of exponent only.
        let mut e: i32 = 0;
        let mut q = real;
        while q >= 1.0 {
            q /= 2.0;
            e += 1;
        }
        while q < 0.5 {
            q *= 2.0;
            e -= 1;
        }
        let m = match q31_half_up(q) {
            Some(m) => m,
            // q rounds up to 1: 1/2 one power higher.
            None => {
                e += 1;
                I1F31::from_bits(1 << 30)
            }
        };
        // real = m * 2^e, and the contract shifts right by s, so s = -e.
        let s = -e;
        if s < super::MIN_SHIFT as i32 || s > super::MAX_SHIFT as i32 {
            return None;
        }
        Some(Self {
            multiplier: m,
            shift: s as i8,
        })
    }

    /// The scale the exporter writes for `real`: shift 0 whenever the multiplier keeps at least
    /// 16 significant bits (`2^-15 <= real < 1`), so that the requantization rounds once, as the
    /// trainer's fake quantization does; otherwise [`normalised`](Self::normalised).
    ///
    /// Why: with a shift `s > 0` the contract rounds twice (in
    /// [`sat_mul_q31`](super::sat_mul_q31), then in [`round_shift`](super::round_shift)), which
    /// misrounds about `2^-(s+1)` of all values, a quarter of the sums for an average pool's
    /// `1/4` (`s = 1`). Normalised, `s` is small exactly when `real` is large; below `2^-15` it
    /// is 15 or more, and double rounding is negligible there.
    pub fn exported(real: f64) -> Option<Self> {
        if real.is_finite() && (1.0 / 32768.0..1.0).contains(&real) {
            if let Some(m) = q31_half_up(real) {
                return Some(Self {
                    multiplier: m,
                    shift: 0,
                });
            }
        }
        Self::normalised(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversion as plain float arithmetic: `floor(x * 2^31 + 0.5)`.
    fn by_floats(x: f64) -> i64 {
        (x * (1u64 << 31) as f64 + 0.5) as i64
    }

    #[test]
    fn rounds_half_up_like_the_float_formula() {
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15u64);
        let two31 = (1u64 << 31) as f64;
        for i in 0..200_000u32 {
            // Random reals over [2^-20, 1), and ties n + 1/2 with their neighbours.
            let x = match i % 3 {
                0 => {
                    f64::from_bits((next() >> 12) | 0x3fe0_0000_0000_0000)
                        / f64::from(1 << (i % 20))
                }
                1 => ((next() >> 33) as f64 + 0.5) / two31,
                _ => {
                    let t = ((next() >> 33) as f64 + 0.5) / two31;
                    if next() & 1 == 0 {
                        f64::from_bits(t.to_bits() + 1)
                    } else {
                        f64::from_bits(t.to_bits() - 1)
                    }
                }
            };
            let want = by_floats(x);
            let got = q31_half_up(x).map(|m| i64::from(m.to_bits()));
            if want >= 1 << 31 {
                assert_eq!(got, None, "{x:e}");
            } else {
                assert_eq!(got, Some(want), "{x:e}");
            }
        }
        // A tie rounds up, its lower neighbour down.
        let tie = 5.5 / two31;
        assert_eq!(q31_half_up(tie).map(I1F31::to_bits), Some(6));
        assert_eq!(
            q31_half_up(f64::from_bits(tie.to_bits() - 1)).map(I1F31::to_bits),
            Some(5)
        );
        assert_eq!(q31_half_up(1.0 - 1e-12), None);
        assert_eq!(q31_half_up(-0.1), None);
        assert_eq!(q31_half_up(f64::NAN), None);
    }

    /// (The round trip of many reals is `quant.rs`'s `multiplier_represents_real`.)
    #[test]
    fn real_gives_back_the_scale() {
        assert_eq!(Q31Scale::normalised(1.0), Some(Q31Scale::ONE));
        assert_eq!(Q31Scale::ONE.real(), 1.0);
        assert_eq!(Q31Scale::from_bits(1 << 30, -2).real(), 2.0);
        assert_eq!(Q31Scale::from_bits(1 << 30, 3).real(), 0.0625);
    }
}
