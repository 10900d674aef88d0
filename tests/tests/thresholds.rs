//! The pairs kernel's threshold-table requantization (what it runs on Armv6-M) against the
//! reference kernel, on the host: random convolutions large enough for the tables
//! (`THRESHOLD_MIN_PIXELS` outputs per channel), 4- and 2-bit weights, inputs and outputs of
//! up to 16 codes, the file's scratch at every alignment; and without that scratch the kernel
//! runs its multiply path, with the same result. Under QEMU the conformance model
//! `demo-armv6m` runs the tables as Armv6-M code.

use bitspike_core::def::random::Rng;
use bitspike_core::format::I32s;
use bitspike_core::kernel::{gather_layout, pairable, pairs_thresholds, thresholds_scratch_bytes};
use bitspike_core::layer::{infer_output, Geometry, LayerKind, Shape, Window};
use bitspike_core::pack::{pack, packed_len};
use bitspike_core::quant::{thresholds, Requantizer, THRESHOLD_ENTRIES};
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

/// One layer's parameters (packed weights, bias, multipliers, shifts) and input.
struct Layer {
    g: Geometry,
    bits: u8,
    levels: u8,
    out_levels: u8,
    packed: Vec<u8>,
    bias: Vec<i32>,
    mult: Vec<i32>,
    shifts: Vec<u8>,
    offset: i32,
    input: Vec<u8>,
}

/// The pairs kernel on `l` against the reference: with the scratch an Armv6-M file gives (at
/// every alignment) the tables must be built, hold exactly [`thresholds`] of each channel, and
/// give the reference's codes; without room for them, or with tables off, the kernel must
/// leave their place untouched and give the same codes by multiplies.
fn check(l: &Layer) -> Result<(), TestCaseError> {
    let (g, bits, levels, out_levels) = (&l.g, l.bits, l.levels, l.out_levels);
    let (bias, mult) = (le(&l.bias), le(&l.mult));
    let w = Weights {
        packed: &l.packed,
        bits,
        bias: Some(I32s::new(&bias)),
    };
    let st = Stage::Requantize {
        multipliers: I32s::new(&mult),
        shifts: &l.shifts,
        offset: l.offset,
        levels: out_levels,
    };
    let mut want = vec![0u8; g.output.len()];
    reference::conv2d(g, &w, &st, &l.input, &mut want, &mut Ops::new());

    let Some((below, span)) = pairs_thresholds(g, bits, levels, out_levels) else {
        return Err(TestCaseError::fail("the tables do not apply"));
    };
    let c = g.output.c as usize;
    let with = thresholds_scratch_bytes(g, bits, levels, out_levels) as usize;
    // The least the pairs kernel takes: its layout, without room for the tables.
    let start = (gather_layout(g, bits).bytes + 3) & !3;
    let without = gather_layout(g, bits).bytes + 3;
    prop_assert!(with == start + 32 * c + 3 && with > without);
    // What the tables must hold, channel by channel.
    let mut expected = Vec::new();
    for o in 0..c {
        let r = Requantizer::new(l.mult[o], l.shifts[o] as i8, l.offset, out_levels).unwrap();
        let mut t = [0u16; THRESHOLD_ENTRIES];
        prop_assert!(thresholds(
            &r,
            l.bias[o] as i64 - below as i64,
            span,
            &mut t
        ));
        expected.extend(t);
    }
    let mut buf = vec![0u8; with + 3];
    for (len, tables) in [(with, true), (without, true), (with, false)] {
        for off in 0..4 {
            buf.fill(0xC3);
            let mut out = vec![0x5Au8; g.output.len()];
            let scratch = &mut buf[off..off + len];
            let ran = pairs::conv2d_with(
                g,
                &w,
                &st,
                &l.input,
                levels,
                &mut out,
                scratch,
                &mut Ops::new(),
                tables,
            );
            prop_assert!(ran, "declined with {} bytes at offset {}", len, off);
            prop_assert_eq!(
                &out,
                &want,
                "{} bytes of scratch at offset {}, tables {}",
                len,
                off,
                tables
            );
            // The tables' place, after the layout from the scratch's first word boundary.
            let at = off + (4 - (buf[off..].as_ptr() as usize) % 4) % 4 + start;
            let place = &buf[at..at + 32 * c];
            if len == with && tables {
                let held: Vec<u16> = place
                    .chunks_exact(2)
                    .map(|h| u16::from_le_bytes([h[0], h[1]]))
                    .collect();
                prop_assert_eq!(&held, &expected, "the tables at offset {}", off);
            } else if len == with {
                prop_assert!(place.iter().all(|&b| b == 0xC3), "tables off, yet written");
            }
        }
    }
    Ok(())
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
        // The tables apply to every such layer the pairs kernel takes (rows that start on a
        // byte).
        prop_assume!(pairable(&g, bits, levels));
        let mut rng = Rng::new(seed);
        let n = g.weight_count() as usize;
        let mut packed = vec![0u8; packed_len(n, bits).unwrap()];
        pack(&rng.weights(n, bits), bits, &mut packed).unwrap();
        let c = g.output.c as usize;
        check(&Layer {
            g,
            bits,
            levels,
            out_levels,
            packed,
            bias: (0..c).map(|_| rng.range(-5000, 5000) as i32).collect(),
            // Codes that step every few accumulator units to every few thousand, shifts from 0
            // (the product shifted by 31) up.
            mult: (0..c).map(|_| rng.range(1 << 20, i32::MAX as i64) as i32).collect(),
            shifts: (0..c).map(|_| rng.range(0, 8) as u8).collect(),
            offset: rng.range(-3, 3) as i32,
            input: rng.codes(g.input.len(), levels),
        })?;
    }
}

/// The bound's edges: every input at its top code and each channel's weights all at the most
/// negative or all at the largest value, so that the accumulators reach the bottom and the top
/// of the tables' span; multipliers that put codes right at both ends.
#[test]
fn tables_hold_at_the_edges_of_the_bound() {
    let g = Geometry {
        kind: LayerKind::Conv2d,
        window: Window {
            kh: 3,
            kw: 3,
            sh: 1,
            sw: 1,
            ph: 1,
            pw: 1,
        },
        groups: 1,
        input: Shape::new(12, 12, 8),
        output: Shape::new(12, 12, 4),
    };
    for bits in [4u8, 2] {
        for levels in [15u8, 3] {
            let (lo, hi) = (-(1i8 << (bits - 1)), (1i8 << (bits - 1)) - 1);
            let fan = 9 * 8;
            let weights: Vec<i8> = (0..4)
                .flat_map(|o| vec![if o % 2 == 0 { lo } else { hi }; fan])
                .collect();
            let mut packed = vec![0u8; packed_len(weights.len(), bits).unwrap()];
            pack(&weights, bits, &mut packed).unwrap();
            // The accumulator at the centre: fan x weight x levels.
            let extreme = |w: i8| fan as i64 * w as i64 * levels as i64;
            // Biases that put the centre's accumulator at 0 (a code step above and below it) or
            // keep it; multipliers of one code per accumulator unit and of one per eight.
            let bias = vec![-extreme(lo) as i32, -extreme(hi) as i32, 0, 0];
            check(&Layer {
                g,
                bits,
                levels,
                out_levels: 15,
                packed,
                bias,
                mult: vec![i32::MAX, i32::MAX, 1 << 28, 1 << 28],
                shifts: vec![0, 0, 0, 0],
                offset: 7,
                input: vec![levels; g.input.len()],
            })
            .unwrap();
        }
    }
}
