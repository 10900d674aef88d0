//! Requantization by thresholds, for cores without a 32x32->64 multiply (Armv6-M).
//!
//! A requantizer is monotonic in its accumulator: `code(acc)` never decreases as `acc` grows
//! (`m >= 0`, then a floor, an offset and a clamp). A layer whose outputs have few codes can
//! therefore store, per output channel, the smallest accumulator that reaches each code, and
//! find an output's code by comparing its accumulator with them. Four compares of a 16-entry
//! table replace the 64-bit product that Armv6-M builds from four 16x16 multiplies.
//!
//! The table holds the thresholds as 16-bit distances from a base below every accumulator the
//! layer can produce: a kernel knows that bound from the weights' width, the fan-in and the
//! input codes' top, `acc = bias + sum(w x)` with `w` in `[-2^(b-1), 2^(b-1) - 1]` and `x` in
//! `[0, L]`. Building costs one binary search over the span for the first code the span
//! reaches, then one evaluation of the requantizer per further code: consecutive thresholds
//! differ by `floor(2^S / m)` or one more, `S` being the right shift the product takes.

use super::Requantizer;

/// Entries of a threshold table: codes `0..=15` need 15 thresholds, padded to 16.
pub const THRESHOLD_ENTRIES: usize = 16;

/// The largest output level count a threshold table holds.
pub const THRESHOLD_MAX_LEVELS: u8 = 15;

/// The widest span of accumulators a threshold table covers: its entries are `u16` distances
/// from the base, with one value above the span for a code the span never reaches and
/// `u16::MAX` for codes above the output's top.
pub const THRESHOLD_MAX_SPAN: u32 = u16::MAX as u32 - 2;

/// The base and span of every accumulator in the range a threshold table may cover: bases and
/// tops within `2^30` of zero, where the requantizer's 64-bit product cannot come near its
/// limits (so the code is monotonic over the whole span by construction, not by accident).
const LIMIT: i64 = 1 << 30;

/// Fill `t` with the thresholds of `r` over accumulators `base..=base + span`: `t[k - 1]` is
/// the smallest distance `d` in `0..=span` with `r.apply(base + d) >= k`, for codes `k` in
/// `1..=levels`; `span + 1` for a code no accumulator of the span reaches, `u16::MAX` for the
/// codes above `levels` and for `t[15]`. Then [`threshold_code`]`(t, acc - base)` equals
/// `r.apply(acc)` for every `acc` in the span.
///
/// `false`, with `t` unspecified, when the requantizer shifts left, has more than
/// [`THRESHOLD_MAX_LEVELS`] levels, or the span is wider than [`THRESHOLD_MAX_SPAN`] or reaches
/// beyond `2^30` of zero.
pub fn thresholds(r: &Requantizer, base: i64, span: u32, t: &mut [u16; THRESHOLD_ENTRIES]) -> bool {
    let levels = r.levels() as usize;
    let top = base.saturating_add(span as i64);
    if !r.right_shift()
        || levels > THRESHOLD_MAX_LEVELS as usize
        || span > THRESHOLD_MAX_SPAN
        || base < -LIMIT
        || top > LIMIT
    {
        return false;
    }
    // Inside i32 by the checks above.
    let base = base as i32;
    let code = |d: u32| code_at(r, base, d);
    let never = (span + 1) as u16;
    for (k, e) in t.iter_mut().enumerate() {
        *e = if k < levels { never } else { u16::MAX };
    }
    // Codes up to the base's are reached by every accumulator of the span.
    let first = code(0);
    for e in t.iter_mut().take(first.min(levels)) {
        *e = 0;
    }
    if first >= levels || code(span) <= first {
        return true;
    }
    // The first threshold above the base: code(a) <= first < code(b).
    let (mut a, mut b) = (0u32, span);
    while b - a > 1 {
        let mid = a + (b - a) / 2;
        if code(mid) > first {
            b = mid;
        } else {
            a = mid;
        }
    }
    // Every code the step from a to b reaches has b as its threshold.
    let reached = code(b).min(levels);
    for e in t.iter_mut().take(reached).skip(first) {
        *e = b as u16;
    }
    // Then code k + 1's threshold is code k's plus floor(2^S / m) or one more: both are
    // ceil((j 2^S - add) / m) for consecutive j, and ceil(y + D) - ceil(y) is floor(D) or
    // ceil(D).
    let step = r.code_step();
    let mut prev = b as u64;
    for k in reached + 1..=levels {
        let e = prev.saturating_add(step);
        if e > span as u64 {
            break;
        }
        let tk = if code(e as u32) >= k { e } else { e + 1 };
        if tk > span as u64 {
            break;
        }
        if let Some(x) = t.get_mut(k - 1) {
            *x = tk as u16;
        }
        prev = tk;
    }
    true
}

/// `r`'s code for the accumulator `d` above `base` (out of line: [`thresholds`] calls it in
/// several places, and its 64-bit product is long on Armv6-M).
#[inline(never)]
fn code_at(r: &Requantizer, base: i32, d: u32) -> usize {
    r.apply_right(base.wrapping_add(d as i32)) as usize
}

/// The code of an accumulator `d` above the base of the table `t` [`thresholds`] filled: the
/// number of thresholds at or below `d`, by binary search (four compares).
#[inline(always)]
pub fn threshold_code(t: &[u16; THRESHOLD_ENTRIES], d: u32) -> u8 {
    let mut i = 0usize;
    if d >= t[7] as u32 {
        i = 8;
    }
    if d >= t[(i + 3) & 15] as u32 {
        i += 4;
    }
    if d >= t[(i + 1) & 15] as u32 {
        i += 2;
    }
    if d >= t[i & 15] as u32 {
        i += 1;
    }
    i as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::requantize;

    /// A small deterministic generator (xorshift), so that the test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Every accumulator of the span gets the contract's code, over random multipliers, shifts,
    /// offsets, levels, bases and spans (steps between codes from below one to the span).
    #[test]
    fn table_codes_equal_the_contract_over_the_whole_span() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut t = [0u16; THRESHOLD_ENTRIES];
        let mut tabled = 0;
        for case in 0..3000 {
            let levels = 1 + rng.below(15) as u8;
            let shift = rng.below(12) as i8;
            // Multipliers from tiny (a code step wider than the span) to near 2^31.
            let m = match case % 4 {
                0 => rng.below(1 << 31) as i32,
                1 => rng.below(1 << 20) as i32,
                2 => rng.below(1 << 12) as i32,
                _ => (1 << 30) + rng.below(1 << 30) as i32,
            };
            let offset = rng.below(40) as i32 - 20;
            let span = match case % 3 {
                0 => rng.below(THRESHOLD_MAX_SPAN as u64 + 1) as u32,
                1 => rng.below(2000) as u32,
                _ => THRESHOLD_MAX_SPAN,
            };
            let base = rng.below(400_000) as i64 - 200_000 - span as i64 / 2;
            let r = Requantizer::new(m, shift, offset, levels).unwrap();
            assert!(thresholds(&r, base, span, &mut t), "case {case}");
            tabled += 1;
            for d in 0..=span {
                let acc = base as i32 + d as i32;
                let want = requantize(acc, m, shift, offset, levels);
                assert_eq!(
                    threshold_code(&t, d),
                    want,
                    "case {case}: m {m} shift {shift} offset {offset} levels {levels} base {base} span {span} d {d}"
                );
            }
        }
        assert_eq!(tabled, 3000);
    }

    /// Thresholds are not built where they could be wrong or do not fit.
    #[test]
    fn refuses_left_shifts_many_levels_wide_spans_and_far_bases() {
        let mut t = [0u16; THRESHOLD_ENTRIES];
        let r = Requantizer::new(1 << 30, 2, 0, 15).unwrap();
        assert!(thresholds(&r, 0, 100, &mut t));
        let left = Requantizer::new(1 << 30, -2, 0, 15).unwrap();
        assert!(!thresholds(&left, 0, 100, &mut t));
        let many = Requantizer::new(1 << 30, 2, 0, 16).unwrap();
        assert!(!thresholds(&many, 0, 100, &mut t));
        assert!(!thresholds(&r, 0, THRESHOLD_MAX_SPAN + 1, &mut t));
        assert!(thresholds(&r, 0, THRESHOLD_MAX_SPAN, &mut t));
        assert!(!thresholds(&r, -(1 << 30) - 1, 10, &mut t));
        assert!(!thresholds(&r, (1 << 30) - 5, 10, &mut t));
        assert!(thresholds(&r, (1 << 30) - 10, 10, &mut t));
    }
}
