//! Packing round trips for every bit width and length.

use bitspike_core::pack::{pack, packed_len, unpack, unpack_one, value_range, PackError};
use proptest::prelude::*;

/// A bit width and a vector of values that fit it.
fn values() -> impl Strategy<Value = (u8, Vec<i8>)> {
    (2u8..=8).prop_flat_map(|bits| {
        let (lo, hi) = value_range(bits);
        (Just(bits), prop::collection::vec(lo..=hi, 0..300))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn round_trip((bits, v) in values(), guard in any::<u8>()) {
        let len = packed_len(v.len(), bits).unwrap();
        prop_assert_eq!(len, (v.len() * bits as usize).div_ceil(8));
        // One guard byte past the packed length must stay untouched.
        let mut buf = vec![guard; len + 1];
        pack(&v, bits, &mut buf).unwrap();
        prop_assert_eq!(buf[len], guard);
        let mut back = vec![0i8; v.len()];
        unpack(&buf[..len], bits, &mut back);
        prop_assert_eq!(&back, &v);
        for (i, &x) in v.iter().enumerate() {
            prop_assert_eq!(unpack_one(&buf[..len], bits, i), x);
        }
        // Unused high bits of the last byte are zero.
        let used = v.len() * bits as usize;
        if !used.is_multiple_of(8) {
            prop_assert_eq!(buf[len - 1] >> (used % 8), 0);
        }
    }

    #[test]
    fn bit_layout_is_lsb_first((bits, v) in values()) {
        let len = packed_len(v.len(), bits).unwrap();
        let mut buf = vec![0u8; len];
        pack(&v, bits, &mut buf).unwrap();
        // Rebuild every value from single stream bits: bit k is bit k % 8 of byte k / 8.
        for (i, &x) in v.iter().enumerate() {
            let mut field = 0u32;
            for j in 0..bits as usize {
                let k = i * bits as usize + j;
                field |= (((buf[k / 8] >> (k % 8)) & 1) as u32) << j;
            }
            let signed = if field >= 1 << (bits - 1) { field as i32 - (1 << bits) } else { field as i32 };
            prop_assert_eq!(signed, x as i32);
        }
    }

    #[test]
    fn out_of_range_values_are_refused(bits in 2u8..=7, at in 0usize..20, over in any::<bool>()) {
        let (lo, hi) = value_range(bits);
        let mut v = vec![0i8; 20];
        v[at] = if over { hi + 1 } else { lo - 1 };
        let mut buf = vec![0u8; 20];
        prop_assert_eq!(pack(&v, bits, &mut buf), Err(PackError::Range(at)));
    }
}

#[test]
fn every_width_and_short_lengths() {
    for bits in 2u8..=8 {
        let (lo, hi) = value_range(bits);
        assert_eq!(
            (lo as i32, hi as i32),
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        );
        for n in 0..=17 {
            let v: Vec<i8> = (0..n)
                .map(|i| lo + (i as i16 % (hi as i16 - lo as i16 + 1)) as i8)
                .collect();
            let mut buf = vec![0u8; packed_len(n, bits).unwrap()];
            pack(&v, bits, &mut buf).unwrap();
            let mut back = vec![0i8; n];
            unpack(&buf, bits, &mut back);
            assert_eq!(back, v, "bits {bits} n {n}");
        }
        assert_eq!(pack(&[0; 9], bits, &mut [0u8; 1]).is_err(), bits * 9 > 8);
    }
    for bits in [0u8, 1, 9, 255] {
        assert_eq!(pack(&[0], bits, &mut [0u8; 4]), Err(PackError::Bits(bits)));
    }
}
