//! The pairs kernel's threshold-table requantization (what it runs on Armv6-M) against the
//! reference kernel, on the host: random convolutions large enough for the tables
//! (`THRESHOLD_MIN_PIXELS` outputs per channel), 4- and 2-bit weights, inputs and outputs of
//! up to 16 levels, the file's scratch at every alignment; and without that scratch the kernel
//! runs its multiply path, with the same result. Under QEMU the conformance model
//! `demo-armv6m` runs the tables as Armv6-M code.

use bitspike_core::def::random::Rng;
use bitspike_core::format::I32s;
use bitspike_core::kernel::{gather_layout, pairable, pairs_thresholds, thresholds_scratch_bytes};
use bitspike_core::layer::{infer_output, Geometry, LayerKind, Shape, Window};
use bitspike_core::pack::{pack, packed_len};
use bitspike_rt::kernels::{pairs, reference, Stage, Weights};
use bitspike_rt::Ops;
use proptest::prelude::*;

/// A convolution with at least 144 output pixels per channel (stride 1, inputs of 14 to 20
/// rows and columns).
fn geometry() -> impl Strategy<Value = Geometry> {
    (
        (14u16..=20, 14u16..=20),
        (1u8..=3, 1u8..=3, 0u8..=1),
        (1u16..=8, 1u16..=6),
    )
        .prop_filter_map("window must fit", |((h, w), (kh, kw, pad), (cin, cout))| {
            let input = Shape::new(h, w, cin);
            let window = Window {
                kh,
                kw,
                sh: 1,
                sw: 1,
                ph: pad,
                pw: pad,
            };
            let output = infer_output(LayerKind::Conv2d, window, 1, cout, input).ok()?;
            Some(Geometry {
                kind: LayerKind::Conv2d,
                window,
                groups: 1,
                input,
                output,
            })
        })
}

fn le(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn pairs_with_tables_equals_reference(
        g in geometry(),
        bits in prop_oneof![Just(4u8), Just(2)],
        levels in prop_oneof![Just(15u8), Just(3), 1u8..=15],
        out_levels in prop_oneof![Just(15u8), Just(3), 1u8..=15],
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let n = g.weight_count() as usize;
        let mut packed = vec![0u8; packed_len(n, bits).unwrap()];
        pack(&rng.weights(n, bits), bits, &mut packed).unwrap();
        let c = g.output.c as usize;
        let bias = le(&(0..c).map(|_| rng.range(-5000, 5000) as i32).collect::<Vec<_>>());
        // Multipliers whose codes step every few accumulator units to every few thousand.
        let mult = le(&(0..c).map(|_| rng.range(1 << 20, i32::MAX as i64) as i32).collect::<Vec<_>>());
        let shifts: Vec<u8> = (0..c).map(|_| rng.range(0, 8) as u8).collect();
        let offset = rng.range(-3, 3) as i32;
        let input = rng.codes(g.input.len(), levels);
        let w = Weights { packed: &packed, bits, bias: Some(I32s::new(&bias)) };
        let st = Stage::Requantize { multipliers: I32s::new(&mult), shifts: &shifts, offset, levels: out_levels };

        let mut want = vec![0u8; g.output.len()];
        reference::conv2d(&g, &w, &st, &input, &mut want, &mut Ops::new());

        // The tables apply to every such layer the pairs kernel takes (rows that start on a
        // byte): their bound and scratch exist.
        prop_assume!(pairable(&g, bits, levels));
        prop_assert!(pairs_thresholds(&g, bits, levels, out_levels).is_some());
        let with = thresholds_scratch_bytes(&g, bits, levels, out_levels) as usize;
        // The least the pairs kernel takes: its layout, without room for the tables.
        let without = gather_layout(&g, bits).bytes + 3;
        prop_assert!(with > without && with <= without + 3 + 32 * c);
        let mut buf = vec![0xC3u8; with + 3];
        for (len, tables) in [(with, true), (without, true), (with, false)] {
            for off in 0..4 {
                let mut out = vec![0x5Au8; g.output.len()];
                let ran = pairs::conv2d_with(&g, &w, &st, &input, levels, &mut out, &mut buf[off..off + len], &mut Ops::new(), tables);
                prop_assert!(ran, "declined with {} bytes at offset {}", len, off);
                prop_assert_eq!(&out, &want, "{} bytes of scratch at offset {}, tables {}", len, off, tables);
            }
        }
    }
}
