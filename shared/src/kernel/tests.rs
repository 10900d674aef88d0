//! Unit tests of the kernel choice, the scratch layouts and the packing bounds.

use super::*;
use crate::layer::{Shape, Window};

fn conv(c_in: u16, c_out: u16, k: u8, groups: u16) -> Geometry {
    Geometry {
        kind: LayerKind::Conv2d,
        window: Window::square(k, 1, 1),
        groups,
        input: Shape::new(8, 8, c_in),
        output: Shape::new(8, 8, c_out),
    }
}

#[test]
fn density_bytes_and_the_break_even() {
    assert_eq!(density(0, 0), 0, "nothing measured");
    assert_eq!(density(0, 10), 1);
    assert_eq!(density(10, 10), 255);
    assert_eq!(density(1, 2), 128);
    assert_eq!(density(11, 10), 0);
    for isa in [Isa::Dsp, Isa::Portable] {
        let edge = events_below(isa);
        assert!(events_pay(isa, edge) && !events_pay(isa, edge + 1) && !events_pay(isa, 0));
    }
    // 10 % nonzero pays on both, 20 % on neither (break-evens 10 % and 16 %).
    assert!(events_pay(Isa::Dsp, density(10, 100)) && events_pay(Isa::Portable, density(16, 100)));
    assert!(
        !events_pay(Isa::Dsp, density(12, 100)) && !events_pay(Isa::Portable, density(20, 100))
    );
    // A 3x3 convolution 16 -> 32 over 8-wide rows: accumulators, transposed weights, a row.
    let g = conv(16, 32, 3, 1);
    assert_eq!(events_scratch_bytes(&g, 4), 3 + 4 * 8 * 32 + 144 * 32 + 144);
}

#[test]
fn scatter_takes_portable_convolutions_the_pairs_kernel_cannot() {
    // An 8-bit image into a 3x3 convolution (ResNet-8's first layer, 8x8 here).
    // 64 pixels wide, so that the scatter kernel's row of accumulators needs more scratch
    // than the dense kernels.
    let mut g = conv(3, 16, 3, 1);
    g.input.w = 64;
    g.output.w = 64;
    let (dense, scatter) = (scratch_bytes(&g, 8), events_scratch_bytes(&g, 8));
    assert!(scatter > dense);
    let pick = |isa, levels, given| choose(&g, 8, levels, given, isa, false, false).kernel;
    assert!(scatter_beats_row(&g, 8, 255) && !scatter_beats_row(&g, 8, 15));
    assert_eq!(pick(Isa::Portable, 255, scatter), Kernel::Events);
    assert_eq!(
        pick(Isa::Portable, 255, dense),
        Kernel::Row,
        "scratch too short"
    );
    assert_eq!(pick(Isa::Portable, 15, scatter), Kernel::Pairs);
    assert_eq!(pick(Isa::Dsp, 255, scatter), Kernel::Narrow);
    // Grouped convolutions stay on the row kernel.
    assert!(!scatter_beats_row(&conv(4, 4, 3, 2), 8, 255));
}

#[test]
fn narrow_takes_few_input_channels_on_the_dsp() {
    // ResNet-8's first layer, 8x8: runs of 9 codes, 5 words a kernel row, 15 words of a
    // window rounded up to 16.
    let g = conv(3, 16, 3, 1);
    let l = narrow_layout(&g);
    assert_eq!((l.run, l.per_row, l.words), (9, 5, 16));
    // A padded row holds 30 codes (15 slots); the last four pixels' windows start at slot
    // 10 and read 16 words, 6 slots of 3: slots 15 + 1 + 6.
    assert_eq!(l.slots, 22);
    assert_eq!(l.weights, 16 * TABLE_ENTRY);
    assert_eq!(l.row - l.weights, 16 * 16 * 4);
    assert_eq!(l.rows - l.row, 28);
    assert_eq!(l.bytes - l.rows, 2 * 4 * 22 * 3);
    let need = scratch_bytes(&g, 8);
    let pick = |g: &Geometry, bits, levels| {
        choose(g, bits, levels, u32::MAX, Isa::Dsp, false, false).kernel
    };
    assert_eq!(pick(&g, 8, 255), Kernel::Narrow);
    assert_eq!(pick(&g, 4, 255), Kernel::Narrow);
    // Low-bit weights over few levels stay on the packed kernel; a multiple of four input
    // channels gathers without the byte column; portable targets keep their kernels.
    let two = conv(1, 16, 2, 1);
    assert!(narrow(&two) && packable(&two, 4, 15));
    assert_eq!(pick(&two, 4, 15), Kernel::Packed);
    assert_eq!(pick(&conv(4, 16, 3, 1), 8, 255), Kernel::Gather);
    assert_ne!(
        choose(&g, 8, 255, need, Isa::Portable, false, false).kernel,
        Kernel::Narrow
    );
    // A window of more than 16 words (a 7x7 kernel over one channel: 28), or weights over
    // 2 KB, stays on the gather kernel.
    assert!(!narrow(&conv(1, 16, 7, 1)));
    assert!(narrow(&conv(1, 16, 5, 1)));
    assert!(!narrow(&conv(3, 64, 3, 1)));
    assert!(narrow(&conv(3, 32, 3, 1)));
    // A file that gives the gather kernel's scratch only (written before the narrow kernel
    // existed) keeps the gather kernel; less than that, the row kernel while the file gives it
    // one channel of weights, then the reference kernel.
    let gather = gather_layout(&g, 8).bytes as u32 + 3;
    assert!(gather < need);
    let pick_given = |given| choose(&g, 8, 255, given, Isa::Dsp, false, false);
    assert_eq!(pick_given(need - 1).kernel, Kernel::Gather);
    assert_eq!(pick_given(gather).kernel, Kernel::Gather);
    assert_eq!(pick_given(27 + 1 + 3).kernel, Kernel::Row);
    assert_eq!(pick_given(27 + 1 + 2).kernel, Kernel::Reference);
    let c = pick_given(gather - 1);
    assert_eq!(c.kernel, Kernel::Row);
    assert_eq!(
        c.reason,
        Reason::ScratchShort {
            needed: gather,
            given: gather - 1
        }
    );
}

#[test]
fn scratch_follows_the_layout() {
    // 3x3 over 16 channels at 8 bits: fan 144, eight pixels of 16-bit lanes, a column, a
    // row and 16 bytes of requantization per output channel.
    let g = conv(16, 32, 3, 1);
    assert_eq!(fan_in(&g), 144);
    assert_eq!(
        scratch_bytes(&g, 8),
        (144 * 16 + 144 + 144 + 32 * 16 + 3) as u32
    );
    // 4-bit rounds the fan up to blocks of 8, 2-bit to blocks of 16.
    let g = conv(3, 16, 3, 1);
    assert_eq!(gather_layout(&g, 4).padded, 32);
    assert_eq!(gather_layout(&g, 2).padded, 32);
    assert_eq!(gather_layout(&g, 8).padded, 28);
    assert_eq!(gather_layout(&g, 8).bytes, 28 * 18 + 16 * 16 + 27 * 4);
    // Rows not read in place are kept unpacked when they are small: 16 rows of 32 bytes.
    assert_eq!(
        gather_layout(&g, 4).bytes,
        32 * 18 + 16 * 16 + 16 * 32 + 27 * 4
    );
    // Three input channels: the narrow kernel's layout is the larger, and the one reserved.
    assert!(narrow(&g));
    assert_eq!(scratch_bytes(&g, 8), narrow_layout(&g).bytes as u32 + 3);
    assert_eq!(scratch_bytes(&g, 4), narrow_layout(&g).bytes as u32 + 3);
    assert_eq!(gather_layout(&g, 4).unpacked_bytes, 512);
    assert_eq!(gather_layout(&conv(300, 16, 3, 1), 3).unpacked_bytes, 0);
    assert_eq!(gather_layout(&conv(16, 16, 3, 1), 4).unpacked_bytes, 0);
    // Three input channels go through the byte column, with 27 offsets of 4 bytes.
    assert_eq!(gather_layout(&g, 8).offsets_bytes, 27 * 4);
    assert_eq!(gather_layout(&conv(16, 16, 3, 1), 4).offsets_bytes, 0);
    // Pools and adds need none; grouped convolutions one row of 8-bit weights.
    let mut p = g;
    p.kind = LayerKind::MaxPool;
    assert_eq!(scratch_bytes(&p, 0), 0);
    p.kind = LayerKind::Add;
    assert_eq!(scratch_bytes(&p, 0), 0);
    let d = conv(8, 8, 3, 8);
    assert!(depthwise(&d));
    // Depthwise at 8 bits: 8 accumulators, 9 x 8 transposed weights, 8 table entries.
    assert_eq!(scratch_bytes(&d, 8), (32 + 72 + 8 * 16 + 3) as u32);
    // At 3 bits the packed depthwise kernel's, larger here: a plane of 10 rows of 11 words
    // (9 words after 2 the spreading may write), 9 taps of two words, 64 sums and 2 more,
    // 8 table entries.
    let l = packed_depthwise_layout(&d);
    assert_eq!((l.rows, l.row_words, l.stride), (10, 9, 11));
    assert_eq!(
        scratch_bytes(&d, 3),
        (440 + 72 + 66 * 4 + 8 * 16 + 3) as u32
    );
}

#[test]
fn short_scratch_and_reference_builds_choose_the_reference() {
    let g = conv(16, 32, 3, 1);
    let need = scratch_bytes(&g, 4);
    let c = choose(&g, 4, 255, need, Isa::Dsp, false, false);
    assert_eq!((c.kernel, c.reason), (Kernel::Gather, Reason::Fastest));
    // Less than the gather kernel's layout: the row kernel, in one channel of 8-bit weights
    // (144 bytes and 3 to align them), on either ISA; less than that, the reference kernel.
    for isa in [Isa::Dsp, Isa::Portable] {
        let c = choose(&g, 4, 255, need - 1, isa, false, false);
        assert_eq!(c.kernel, Kernel::Row);
        assert_eq!(
            c.reason,
            Reason::ScratchShort {
                needed: need,
                given: need - 1
            }
        );
        let c = choose(&g, 4, 255, 147, isa, false, false);
        assert_eq!(c.kernel, Kernel::Row);
        let c = choose(&g, 4, 255, 146, isa, false, false);
        assert_eq!(
            (c.kernel, c.reason),
            (
                Kernel::Reference,
                Reason::ScratchShort {
                    needed: need,
                    given: 146
                }
            )
        );
    }
    let c = choose(&g, 4, 255, need, Isa::Portable, true, false);
    assert_eq!(c.reason, Reason::ReferenceBuild);
    // Without the DSP extension a convolution runs on the row kernel, in the same scratch.
    let c = choose(&g, 4, 255, need, Isa::Portable, false, false);
    assert_eq!((c.kernel, c.reason), (Kernel::Row, Reason::Fastest));
    assert_eq!(
        choose(&conv(8, 8, 3, 2), 8, 255, u32::MAX, Isa::Dsp, false, false).kernel,
        Kernel::Row
    );
    assert_eq!(
        choose(
            &conv(8, 8, 3, 8),
            8,
            255,
            u32::MAX,
            Isa::Portable,
            false,
            false
        )
        .kernel,
        Kernel::Depthwise
    );
    // A depth multiplier (two outputs per input channel) runs on the row kernel.
    assert_eq!(
        choose(&conv(8, 16, 3, 8), 8, 255, u32::MAX, Isa::Dsp, false, false).kernel,
        Kernel::Row
    );
    assert_eq!(
        choose(&g, 8, 255, need, Isa::Dsp, false, true).kernel,
        Kernel::Events
    );
}

#[test]
fn packed_depthwise_runs_where_the_fields_hold_and_the_file_gives_its_scratch() {
    let g = conv(16, 16, 3, 16);
    let pick = |bits, levels, given, isa| {
        let c = choose(&g, bits, levels, given, isa, false, false);
        (c.kernel, c.reason)
    };
    let need = scratch_bytes(&g, 4);
    let fast = Reason::Fastest;
    assert_eq!(need, with_align(packed_depthwise_layout(&g).bytes));
    assert_eq!(pick(4, 15, need, Isa::Dsp), (Kernel::PackedDepthwise, fast));
    assert_eq!(pick(2, 15, need, Isa::Dsp), (Kernel::PackedDepthwise, fast));
    assert_eq!(pick(4, 15, need, Isa::Portable), (Kernel::Depthwise, fast));
    // Codes above 15 do not fit the top field; 9 x 128 x 15 does not fit a field.
    assert_eq!(pick(4, 16, need, Isa::Dsp), (Kernel::Depthwise, fast));
    let eight = scratch_bytes(&g, 8);
    assert_eq!(eight, with_align(depthwise_layout(&g).bytes));
    assert_eq!(pick(8, 15, eight, Isa::Dsp), (Kernel::Depthwise, fast));
    // 8-bit weights over 3 levels would fit (9 x 128 x 3 = 3456), but the file gives the
    // packed kernel its scratch only where 16 levels fit: the depthwise kernel runs.
    assert!(depthwise_packable(&g, 8, 3) && !depthwise_packable(&g, 8, 15));
    assert_eq!(pick(8, 3, eight, Isa::Dsp), (Kernel::Depthwise, fast));
    // A file written before the packed kernel keeps the depthwise kernel; less than that
    // runs the row kernel while the file gives it one channel's weights (9 bytes, rounded up
    // to 12, and 3 to align them), then the reference.
    let old = with_align(depthwise_layout(&g).bytes);
    assert!(old < need);
    assert_eq!(pick(4, 15, old, Isa::Dsp), (Kernel::Depthwise, fast));
    assert_eq!(pick(4, 15, 15, Isa::Dsp).0, Kernel::Row);
    assert_eq!(pick(4, 15, 14, Isa::Dsp).0, Kernel::Reference);
    assert_eq!(
        pick(4, 15, old - 1, Isa::Dsp),
        (
            Kernel::Row,
            Reason::ScratchShort {
                needed: old,
                given: old - 1
            }
        )
    );
    // The bound: 34 positions x 8 x 15 = 4080 fits at 4 bits, 35 do not.
    let wide = |kw: u8| Geometry {
        window: Window {
            kh: 1,
            kw,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
        },
        output: Shape::new(8, 39 - kw as u16, 16),
        input: Shape::new(8, 38, 16),
        ..g
    };
    assert!(depthwise_packable(&wide(34), 4, 15) && !depthwise_packable(&wide(35), 4, 15));
}

#[test]
fn packed_runs_low_bit_weights_over_few_levels() {
    let g = conv(16, 32, 3, 1);
    let need = scratch_bytes(&g, 4);
    let packed = |bits, levels| choose(&g, bits, levels, need, Isa::Dsp, false, false).kernel;
    assert_eq!(packed(4, 15), Kernel::Packed);
    assert_eq!(packed(2, 15), Kernel::Packed);
    assert_eq!(packed(4, 3), Kernel::Packed);
    // Codes above 15 do not fit the top field; 8-bit and odd widths are not read packed.
    assert_eq!(packed(4, 16), Kernel::Gather);
    assert_eq!(packed(8, 15), Kernel::Gather);
    assert_eq!(packed(3, 15), Kernel::Gather);
    // Portable builds, short scratch and event-driven layers keep their kernels (the pairs
    // kernel only takes up to 31 levels).
    let c = choose(&g, 4, 40, need, Isa::Portable, false, false);
    assert_eq!(c.kernel, Kernel::Row);
    // Without the DSP extension 8-bit weights over few levels run on the pairs kernel.
    let need8 = scratch_bytes(&g, 8);
    let pairs = |levels| choose(&g, 8, levels, need8, Isa::Portable, false, false).kernel;
    assert_eq!(pairs(15), Kernel::Pairs);
    assert_eq!(pairs(31), Kernel::Pairs);
    assert_eq!(pairs(32), Kernel::Row);
    assert_eq!(pairs_chunk(8, 15), 17);
    assert!(15 * 128 * 17 <= i16::MAX as usize && 15 * 128 * 18 > i16::MAX as usize);
    // 4- and 2-bit weights: whole bytes of weights per chunk.
    assert_eq!(pairs_chunk(4, 15), 272);
    assert!(15 * 8 * 272 <= i16::MAX as usize && 15 * 8 * 274 > i16::MAX as usize);
    assert_eq!(pairs_chunk(2, 31), 528);
    assert!(31 * 2 * 528 <= i16::MAX as usize && 31 * 2 * 532 > i16::MAX as usize);
    assert_eq!(pairs_chunk(3, 15), 0);
    assert_eq!(
        choose(&g, 4, 15, need, Isa::Portable, false, false).kernel,
        Kernel::Pairs
    );
    assert!(!pairable(&conv(8, 8, 3, 2), 8, 15));
    assert!(!pairable(&conv(3, 8, 3, 1), 4, 15));
    assert_eq!(
        choose(&g, 4, 15, need - 1, Isa::Dsp, false, false).kernel,
        Kernel::Row
    );
    assert_eq!(
        choose(&g, 4, 15, need, Isa::Dsp, false, true).kernel,
        Kernel::Events
    );
    // Grouped convolutions and rows that start inside a byte are not packed.
    assert!(!packable(&conv(8, 8, 3, 2), 4, 15));
    assert!(!packable(&conv(3, 8, 3, 1), 4, 15));
    assert!(packable(&conv(3, 8, 3, 1), 2, 15) == in_place(2, 27));
    // The flush interval keeps a field at most FIELD_MAX: 15 x 15 x 8 x 9 = 16200.
    assert_eq!(packed_chunk(4, 15), 9);
    assert!(15 * 15 * 8 * 9 <= FIELD_MAX as usize && 15 * 15 * 8 * 10 > FIELD_MAX as usize);
    assert_eq!(packed_chunk(2, 15), 22);
    assert!(15 * 3 * 16 * 22 <= FIELD_MAX as usize && 15 * 3 * 16 * 23 > FIELD_MAX as usize);
    assert_eq!(packed_chunk(4, 16), 0);
    assert_eq!(packed_chunk(8, 1), 0);
}

#[test]
fn in_place_widths_start_on_bytes() {
    assert!(in_place(8, 27));
    assert!(in_place(4, 144));
    assert!(!in_place(4, 27));
    assert!(in_place(2, 36));
    assert!(!in_place(2, 9));
    assert!(!in_place(3, 64));
}

#[test]
fn packed_dense_takes_4_and_2_bit_rows_that_start_on_a_byte() {
    let dense = |n: u16| Geometry {
        kind: LayerKind::Dense,
        window: Window::default(),
        groups: 1,
        input: Shape::vector(n),
        output: Shape::vector(10),
    };
    let g = dense(64);
    assert!(dense_packable(&g, 4) && dense_packable(&g, 2));
    assert!(
        !dense_packable(&g, 8) && !dense_packable(&g, 3),
        "other widths"
    );
    assert!(!dense_packable(&dense(63), 4), "rows that start mid-byte");
    assert!(!dense_packable(&dense(6), 4), "no whole word");
    assert!(dense_packable(&dense(18), 4) && !dense_packable(&dense(18), 2));
    assert!(!dense_packable(&conv(64, 10, 1, 1), 4), "convolutions");
    // Two bytes per input of the whole words: 64 inputs, and 400 of 404 at 4 bits.
    assert_eq!(packed_dense_layout(&g, 4), 128);
    assert_eq!(packed_dense_layout(&dense(404), 4), 800);
    assert_eq!(packed_dense_layout(&dense(404), 2), 800);
    assert_eq!(packed_dense_layout(&dense(63), 4), 0);
    // The file's scratch covers it; a file with only the row kernel's keeps the row kernel.
    let need = scratch_bytes(&g, 4);
    assert_eq!(need, 3 + 128);
    let pick = |bits, given, isa| choose(&g, bits, 255, given, isa, false, false).kernel;
    for isa in [Isa::Dsp, Isa::Portable] {
        assert_eq!(pick(4, need, isa), Kernel::PackedDense);
        assert_eq!(pick(2, need, isa), Kernel::PackedDense);
        assert_eq!(pick(8, need, isa), Kernel::Row);
        assert_eq!(pick(4, 3 + 64, isa), Kernel::Row, "a file without the room");
        assert_eq!(pick(4, 3 + 63, isa), Kernel::Reference);
    }
    assert_eq!(scratch_bytes(&g, 8), 3 + 64);
}
