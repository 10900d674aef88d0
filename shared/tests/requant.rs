//! Requantization against an independent wide-integer oracle, with the edge cases named.

use bitspike_core::quant::{
    clamp_code, quantize_multiplier, requantize, round_shift, sat_mul_q31, Requantizer, MAX_SHIFT,
    MIN_SHIFT,
};
use proptest::prelude::*;

/// floor(a / b) for b > 0 in i128.
fn floor_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b)
}

fn sat32(x: i128) -> i32 {
    x.clamp(i32::MIN as i128, i32::MAX as i128) as i32
}

/// Q31 multiply: round half up of a * b / 2^31, saturated.
fn oracle_mul(a: i32, b: i32) -> i32 {
    sat32(floor_div(
        a as i128 * b as i128 + (1i128 << 30),
        1i128 << 31,
    ))
}

/// Rounding shift: round half up of x / 2^s (s > 0), saturating x * 2^-s (s < 0).
fn oracle_shift(x: i32, s: i8) -> i32 {
    let s = s as i32;
    if s > 0 {
        // floor(x / 2^s + 1/2) = floor((2x + 2^s) / 2^(s+1))
        sat32(floor_div(2 * x as i128 + (1i128 << s), 1i128 << (s + 1)))
    } else {
        sat32((x as i128) << (-s))
    }
}

/// Negative shifts scale the accumulator before the multiply (TFLite order).
fn oracle_requant(acc: i32, m: i32, s: i8, offset: i32, levels: u8) -> u8 {
    let scaled = if s >= 0 {
        oracle_shift(oracle_mul(acc, m), s)
    } else {
        oracle_mul(oracle_shift(acc, s), m)
    };
    let v = scaled as i128 + offset as i128;
    v.clamp(0, levels as i128) as u8
}

/// Values that hit the edges: extremes, zero, powers of two and their neighbours.
fn edgy_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        any::<i32>(),
        Just(i32::MIN),
        Just(i32::MAX),
        Just(0),
        Just(1),
        Just(-1),
        (0u32..31, -1i32..=1).prop_map(|(k, d)| (1i32 << k).wrapping_add(d)),
        (0u32..31, -1i32..=1).prop_map(|(k, d)| (-(1i32 << k)).wrapping_add(d)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    #[test]
    fn mul_matches_oracle(a in edgy_i32(), b in edgy_i32()) {
        prop_assert_eq!(sat_mul_q31(a, b), oracle_mul(a, b));
    }

    #[test]
    fn shift_matches_oracle(x in edgy_i32(), s in MIN_SHIFT..=MAX_SHIFT) {
        prop_assert_eq!(round_shift(x, s), oracle_shift(x, s));
    }

    #[test]
    fn requantize_matches_oracle(
        acc in edgy_i32(),
        m in prop_oneof![0i32..=i32::MAX, Just(i32::MAX), Just(1 << 30), Just(0)],
        s in MIN_SHIFT..=MAX_SHIFT,
        offset in prop_oneof![-300i32..300, edgy_i32()],
        levels in any::<u8>(),
    ) {
        prop_assert_eq!(requantize(acc, m, s, offset, levels), oracle_requant(acc, m, s, offset, levels));
    }

    #[test]
    fn prepared_requantizer_matches_the_contract(
        acc in edgy_i32(),
        m in prop_oneof![0i32..=i32::MAX, Just(i32::MAX), Just(1 << 30), Just(0)],
        s in MIN_SHIFT..=MAX_SHIFT,
        offset in prop_oneof![-300i32..300, edgy_i32()],
        levels in prop_oneof![any::<u8>(), Just(255u8), Just(15u8)],
    ) {
        let r = Requantizer::new(m, s, offset, levels).unwrap();
        prop_assert_eq!(r.apply(acc), oracle_requant(acc, m, s, offset, levels));
        if r.right_shift() {
            prop_assert_eq!(r.apply_right(acc), r.apply(acc));
            let split = if r.high_word() {
                r.apply_right_as::<true>(acc)
            } else {
                r.apply_right_as::<false>(acc)
            };
            prop_assert_eq!(split, r.apply(acc));
            prop_assert_eq!(r.high_word(), s > 0);
            // With the top code a constant, for the widths kernels specialise.
            prop_assert_eq!(r.levels(), levels);
            let (high, want) = (r.high_word(), r.apply(acc));
            let fixed = match (levels, high) {
                (255, true) => Some(r.apply_right_levels::<true, 255>(acc)),
                (255, false) => Some(r.apply_right_levels::<false, 255>(acc)),
                (15, true) => Some(r.apply_right_levels::<true, 15>(acc)),
                (15, false) => Some(r.apply_right_levels::<false, 15>(acc)),
                _ => None,
            };
            if let Some(v) = fixed {
                prop_assert_eq!(v, want);
            }
        }
        prop_assert_eq!(r.right_shift(), s >= 0);
        // Through the 16-byte form a kernel keeps in its scratch.
        prop_assert_eq!(Requantizer::decode(&r.encode(), offset, levels), r);
    }

    #[test]
    fn clamp_matches_oracle(x in edgy_i32(), levels in any::<u8>()) {
        prop_assert_eq!(clamp_code(x, levels) as i128, (x as i128).clamp(0, levels as i128));
    }

    #[test]
    fn exported_multiplier_reproduces_real_scaling(real in 1e-6f64..64.0, acc in -100_000i32..100_000) {
        let (m, s) = quantize_multiplier(real).unwrap();
        // With levels 255 and an offset of 128, codes 0..=255 show acc * real in -128..=127.
        let got = requantize(acc, m, s, 128, 255) as f64 - 128.0;
        let want = (acc as f64 * real).clamp(-128.0, 127.0);
        // Two roundings, each at most half a unit, plus the multiplier's relative error.
        prop_assert!((got - want).abs() <= 1.0 + want.abs() * 1e-8, "{} vs {}", got, want);
    }
}

#[test]
fn named_edge_cases() {
    // The prepared requantizer refuses what a validated model never has.
    assert_eq!(Requantizer::new(-1, 0, 0, 15), None);
    assert_eq!(Requantizer::new(1, MAX_SHIFT + 1, 0, 15), None);
    assert_eq!(Requantizer::new(1, MIN_SHIFT - 1, 0, 15), None);
    // The only saturating product.
    assert_eq!(sat_mul_q31(i32::MIN, i32::MIN), i32::MAX);
    assert_eq!(oracle_mul(i32::MIN, i32::MIN), i32::MAX);
    // Ties round up (towards +inf), also for negatives.
    assert_eq!(sat_mul_q31(1, 1 << 30), 1); // 0.5 -> 1
    assert_eq!(sat_mul_q31(-1, 1 << 30), 0); // -0.5 -> 0
    assert_eq!(round_shift(-5, 1), -2); // -2.5 -> -2
    assert_eq!(round_shift(5, 1), 3); // 2.5 -> 3
                                      // Left shifts saturate in both directions.
    assert_eq!(round_shift(i32::MAX, -1), i32::MAX);
    assert_eq!(round_shift(i32::MIN, -1), i32::MIN);
    assert_eq!(round_shift(-1, -31), i32::MIN);
    // Offsets saturate instead of wrapping, then clamp.
    assert_eq!(requantize(i32::MAX, i32::MAX, -31, i32::MAX, 7), 7);
    assert_eq!(requantize(i32::MIN, i32::MAX, -31, i32::MIN, 7), 0);
    // A zero multiplier gives just the offset.
    assert_eq!(requantize(123456, 0, 5, 3, 255), 3);
    for (acc, m, s, off, l) in [
        (i32::MAX, i32::MAX, 0, 0, 255),
        (i32::MIN, i32::MAX, 31, 0, 255),
        (255 * 127 * 9, 1 << 30, 8, 0, 15),
        (-1, 1 << 30, 1, 1, 1),
    ] {
        assert_eq!(
            requantize(acc, m, s, off, l),
            oracle_requant(acc, m, s, off, l)
        );
    }
}
