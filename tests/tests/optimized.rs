//! Every implementation of the weighted layers against the reference kernels, through one
//! generic suite (`bitspike_rt::kernels::WeightedKernel`): bit-exact outputs and equal MAC counts
//! on random shapes, strides, paddings (up to beyond the kernel), groups, bit widths 2..=8, input
//! levels and output stages; scratch at every alignment; and too little scratch, where a kernel
//! must decline without writing anything. The event-driven kernels run on sparse spike counts.
//!
//! The packed kernel (`kernels::packed`: three pixels per multiply for 4- and 2-bit weights over
//! codes up to 15) and the pairs kernel (`kernels::pairs`: two pixels per 32-bit multiply for
//! 8-bit weights, cores without the DSP extension) take the input's levels besides, and have a
//! suite of their own here: random
//! geometries wide enough that the fields are flushed several times per output, and the
//! overflow bound at its edge (every code at the top level, every weight at its largest). So
//! has the packed dense kernel (`kernels::packed_dense`: two inputs of a row per 32-bit multiply
//! for 4- and 2-bit weights, every core), whose flush interval follows the input's largest code.
//!
//! On the host the gather kernel runs its portable model of the DSP lanes (`gather::lanes`), so
//! the layout logic is tested here; the assembly runs the same models under QEMU on the
//! Cortex-M4 (`cargo xtask conformance`).

use bitspike_core::band::band;
use bitspike_core::def::random::Rng;
use bitspike_core::format::I32s;
use bitspike_core::kernel::{
    dense_packable, depthwise_packable, packable, packed_chunk, packed_depthwise_layout, pairable,
    pairs_chunk, scratch_bytes,
};
use bitspike_core::layer::{Geometry, LayerKind, Shape, Window};
use bitspike_core::pack::{pack, packed_len};
use bitspike_rt::kernels::gather::lanes;
use bitspike_rt::kernels::{
    optimized, reference, Depthwise, DepthwiseChannels, DepthwiseWords, Events, Gather, Narrow,
    PackedDense, Reference, Row, Scatter, Stage, WeightedKernel, Weights,
};
use bitspike_rt::kernels::{packed, packed_depthwise, pairs, pool};
use bitspike_rt::Ops;
use proptest::prelude::*;

struct Case {
    g: Geometry,
    packed: Vec<u8>,
    bits: u8,
    bias: Option<Vec<u8>>,
    mult: Vec<u8>,
    shifts: Vec<u8>,
    raw: bool,
    input: Vec<u8>,
    /// Top output code of a requantizing stage: the kernels specialise 255 and 15.
    out_levels: u8,
    /// A spiking stage instead: thresholds, initial potentials (inside and outside
    /// `0..threshold`), membrane shift, timesteps; kept inside the reader's membrane bound.
    fire: Option<(Vec<u8>, Vec<u8>, u8, u16)>,
}

fn case(g: Geometry, bits: u8, seed: u64, bias: bool, raw: bool, levels: u8) -> Case {
    let mut rng = Rng::new(seed);
    let n = g.weight_count() as usize;
    let w = rng.weights(n, bits);
    let mut packed = vec![0u8; packed_len(n, bits).unwrap()];
    pack(&w, bits, &mut packed).unwrap();
    let c = g.output.c as usize;
    let le = |v: Vec<i32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    Case {
        g,
        packed,
        bits,
        bias: bias.then(|| le((0..c).map(|_| rng.range(-5000, 5000) as i32).collect())),
        mult: le((0..c)
            .map(|_| rng.range(1 << 29, i32::MAX as i64) as i32)
            .collect()),
        shifts: {
            // Now and then one shift for every channel (0 included): the kernels' one-kind paths.
            let one = rng.range(-2, 12) as i8 as u8;
            let same = rng.range(0, 3) == 0;
            (0..c)
                .map(|_| {
                    if same {
                        one
                    } else {
                        rng.range(-2, 12) as i8 as u8
                    }
                })
                .collect()
        },
        raw,
        input: rng.codes(g.input.len(), levels),
        out_levels: [255u8, 15, 3, 200][rng.range(0, 3) as usize],
        fire: (rng.range(0, 3) == 0).then(|| {
            let theta: Vec<i32> = (0..c).map(|_| rng.range(1, 5000) as i32).collect();
            let v0: Vec<i32> = theta
                .iter()
                .map(|&t| rng.range(-(t as i64), 2 * t as i64) as i32)
                .collect();
            // |acc| <= fan x 255 x 128 < 2^26 here; shift <= 2 and T <= 4 keep
            // |v0| + T x |current| + threshold below 2^31.
            (
                le(theta),
                le(v0),
                rng.range(0, 2) as u8,
                rng.range(1, 4) as u16,
            )
        }),
    }
}

fn stage(c: &Case) -> Stage<'_> {
    if c.raw {
        return Stage::Raw;
    }
    if let Some((theta, v0, shift, timesteps)) = &c.fire {
        return Stage::Fire {
            threshold: I32s::new(theta),
            v0: I32s::new(v0),
            bias: c.bias.as_deref().map(I32s::new),
            shift: *shift,
            timesteps: *timesteps,
        };
    }
    Stage::Requantize {
        multipliers: I32s::new(&c.mult),
        shifts: &c.shifts,
        offset: 3,
        levels: c.out_levels,
    }
}

/// Run `K` on `c` with `scratch`; `None` when it declined. Output bytes start at 0x5A so that a
/// kernel that declines after writing is caught.
fn run<K: WeightedKernel>(c: &Case, scratch: &mut [u8]) -> Option<(Vec<u8>, u64)> {
    let w = Weights {
        packed: &c.packed,
        bits: c.bits,
        bias: c.bias.as_deref().map(I32s::new),
    };
    let st = stage(c);
    let mut out = vec![0x5Au8; c.g.output.len() * st.elem_size()];
    let mut ops = Ops::new();
    let ran = match c.g.kind {
        LayerKind::Conv2d => K::conv2d(&c.g, &w, &st, &c.input, &mut out, scratch, &mut ops),
        _ => K::dense(&c.g, &w, &st, &c.input, &mut out, scratch, &mut ops),
    };
    if !ran {
        assert!(
            out.iter().all(|&b| b == 0x5A),
            "{} declined after writing",
            K::NAME
        );
        return None;
    }
    Some((out, ops.counts().macs))
}

/// A kernel with its weights and stage bound: geometry, input, output, scratch, counters.
type BandKernel<'k> = dyn Fn(&Geometry, &[u8], &mut [u8], &mut [u8], &mut Ops) -> bool + 'k;

/// Run `kernel` on `c` band by band, `rows` output rows at a time (`bitspike_core::band`: how
/// the runtime runs a layer in place): each band's input rows and output rows only, `None` when
/// a band declined. The layer's output and MAC count.
fn run_bands(
    c: &Case,
    rows: u16,
    scratch: &mut [u8],
    kernel: &BandKernel<'_>,
) -> Option<(Vec<u8>, u64)> {
    let elem = stage(c).elem_size();
    let row = |s: Shape| s.w as usize * s.c as usize;
    let mut out = vec![0x5Au8; c.g.output.len() * elem];
    let mut ops = Ops::new();
    let mut y0 = 0;
    while y0 < c.g.output.h {
        let y1 = (y0 + rows).min(c.g.output.h);
        let b = band(&c.g, y0, y1).expect("a convolution is row-local");
        let (r0, r1) = (b.input_rows.0 as usize, b.input_rows.1 as usize);
        let input = &c.input[r0 * row(c.g.input)..r1 * row(c.g.input)];
        let o = row(c.g.output) * elem;
        let dst = &mut out[y0 as usize * o..y1 as usize * o];
        if !kernel(&b.geometry, input, dst, scratch, &mut ops) {
            return None;
        }
        y0 = y1;
    }
    Some((out, ops.counts().macs))
}

/// `K` against the reference: with the scratch the model file gives it, at each of the four
/// alignments, it must run (when `must_run`) and agree; with too little it may decline. A
/// convolution also runs in bands of one and of two output rows, as in place.
fn check<K: WeightedKernel>(c: &Case, must_run: bool) -> Result<(), TestCaseError> {
    let want = run::<Reference>(c, &mut []).unwrap();
    let need = K::scratch(&c.g, c.bits) as usize;
    let mut buf = vec![0xC3u8; need + 3];
    for off in 0..4 {
        match run::<K>(c, &mut buf[off..off + need]) {
            Some(got) => prop_assert_eq!(&got, &want, "{} at offset {}", K::NAME, off),
            None => prop_assert!(!must_run, "{} declined with enough scratch", K::NAME),
        }
    }
    if c.g.kind == LayerKind::Conv2d && c.g.window.ph < c.g.window.kh {
        let w = Weights {
            packed: &c.packed,
            bits: c.bits,
            bias: c.bias.as_deref().map(I32s::new),
        };
        let st = stage(c);
        let kernel = |g: &Geometry, i: &[u8], o: &mut [u8], s: &mut [u8], ops: &mut Ops| {
            K::conv2d(g, &w, &st, i, o, s, ops)
        };
        for rows in [1, 2] {
            match run_bands(c, rows, &mut buf[..need], &kernel) {
                Some(got) => prop_assert_eq!(&got, &want, "{} in bands of {}", K::NAME, rows),
                None => prop_assert!(!must_run, "{} declined a band", K::NAME),
            }
        }
    }
    for short in [0, need / 2, need.saturating_sub(4)] {
        if let Some(got) = run::<K>(c, &mut buf[..short]) {
            prop_assert_eq!(&got, &want, "{} with {} bytes of scratch", K::NAME, short);
        }
    }
    Ok(())
}

/// The event-driven kernel against the reference on spike counts `0..=t` (about half silent).
fn check_events(c: &Case, t: u8, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let counts: Vec<u8> = (0..c.g.input.len())
        .map(|_| {
            if rng.range(0, 1) == 0 {
                0
            } else {
                rng.range(0, t as i64) as u8
            }
        })
        .collect();
    let c2 = Case {
        input: counts,
        packed: c.packed.clone(),
        bias: c.bias.clone(),
        mult: c.mult.clone(),
        shifts: c.shifts.clone(),
        raw: true,
        fire: None,
        ..*c
    };
    check::<Events>(&c2, true)?;
    check::<Scatter>(&c2, c.g.groups == 1)
}

/// The packed kernel on `c` (inputs with codes up to `levels`) against the reference: with the
/// model file's scratch at each alignment it must run when the layer is packable, and agree;
/// with too little scratch it may decline, without writing.
fn check_packed(c: &Case, levels: u8) -> Result<(), TestCaseError> {
    check_levels(
        c,
        levels,
        packable(&c.g, c.bits, levels),
        "packed",
        packed::conv2d,
    )
}

/// The packed depthwise kernel (three pixels per multiply over codes up to 15) on `c` against
/// the reference, as [`check_packed`].
fn check_packed_depthwise(c: &Case, levels: u8) -> Result<(), TestCaseError> {
    // The model file gives the kernel its scratch where 16 levels pack (`scratch_bytes`).
    let given = scratch_bytes(&c.g, c.bits) >= packed_depthwise_layout(&c.g).bytes as u32 + 3;
    check_levels(
        c,
        levels,
        depthwise_packable(&c.g, c.bits, levels) && given,
        "packed-depthwise",
        packed_depthwise::conv2d,
    )
}

/// The pairs kernel (two pixels per 32-bit multiply, cores without the DSP extension) on `c`
/// against the reference, as [`check_packed`].
fn check_pairs(c: &Case, levels: u8) -> Result<(), TestCaseError> {
    check_levels(
        c,
        levels,
        pairable(&c.g, c.bits, levels),
        "pairs",
        pairs::conv2d,
    )
}

/// A convolution kernel that takes the input's levels: it must run when `must`, and agree.
type LevelsKernel =
    fn(&Geometry, &Weights<'_>, &Stage<'_>, &[u8], u8, &mut [u8], &mut [u8], &mut Ops) -> bool;

fn check_levels(
    c: &Case,
    levels: u8,
    must: bool,
    name: &str,
    kernel: LevelsKernel,
) -> Result<(), TestCaseError> {
    let want = run::<Reference>(c, &mut []).unwrap();
    let w = Weights {
        packed: &c.packed,
        bits: c.bits,
        bias: c.bias.as_deref().map(I32s::new),
    };
    let st = stage(c);
    let need = scratch_bytes(&c.g, c.bits) as usize;
    let mut buf = vec![0xC3u8; need + 3];
    let attempt = |scratch: &mut [u8]| {
        let mut out = vec![0x5Au8; c.g.output.len() * st.elem_size()];
        let mut ops = Ops::new();
        let ran = kernel(&c.g, &w, &st, &c.input, levels, &mut out, scratch, &mut ops);
        if !ran {
            assert!(
                out.iter().all(|&b| b == 0x5A),
                "{name} declined after writing"
            );
            return None;
        }
        Some((out, ops.counts().macs))
    };
    for off in 0..4 {
        match attempt(&mut buf[off..off + need]) {
            Some(got) => prop_assert_eq!(&got, &want, "{} at offset {}", name, off),
            None => prop_assert!(!must, "{} declined with enough scratch", name),
        }
    }
    if c.g.window.ph < c.g.window.kh {
        let banded = |g: &Geometry, i: &[u8], o: &mut [u8], s: &mut [u8], ops: &mut Ops| {
            kernel(g, &w, &st, i, levels, o, s, ops)
        };
        for rows in [1, 3] {
            match run_bands(c, rows, &mut buf[..need], &banded) {
                Some(got) => prop_assert_eq!(&got, &want, "{} in bands of {}", name, rows),
                None => prop_assert!(!must, "{} declined a band", name),
            }
        }
    }
    for short in [0, need / 2, need.saturating_sub(4)] {
        if let Some(got) = attempt(&mut buf[..short]) {
            prop_assert_eq!(&got, &want, "{} with {} bytes of scratch", name, short);
        }
    }
    Ok(())
}

/// Convolutions with one group and up to 24 input channels: fan-ins from 1 to 600, past several
/// flush intervals of the packed kernel (72 inputs at 4 bits over 15 levels, 352 at 2 bits).
fn packed_geometry() -> impl Strategy<Value = Geometry> {
    (
        (1u16..=8, 1u16..=8),
        (1u8..=5, 1u8..=5, 1u8..=2, 1u8..=2),
        (0u8..=6, 0u8..=3),
        (1u16..=24, 1u16..=9),
    )
        .prop_filter_map(
            "window must fit",
            |((h, w), (kh, kw, sh, sw), (ph, pw), (cin, cout))| {
                let input = Shape::new(h, w, cin);
                let window = Window {
                    kh,
                    kw,
                    sh,
                    sw,
                    ph,
                    pw,
                };
                let output =
                    bitspike_core::layer::infer_output(LayerKind::Conv2d, window, 1, cout, input)
                        .ok()?;
                Some(Geometry {
                    kind: LayerKind::Conv2d,
                    window,
                    groups: 1,
                    input,
                    output,
                })
            },
        )
}

fn conv_geometry() -> impl Strategy<Value = Geometry> {
    (
        (1u16..=9, 1u16..=9),
        (1u8..=5, 1u8..=5, 1u8..=3, 1u8..=3),
        (0u8..=6, 0u8..=6),
        (1u16..=3, 1u16..=5, 1u16..=5),
    )
        .prop_filter_map(
            "window must fit",
            |((h, w), (kh, kw, sh, sw), (ph, pw), (groups, cin_g, cout_g))| {
                let input = Shape::new(h, w, groups * cin_g);
                let window = Window {
                    kh,
                    kw,
                    sh,
                    sw,
                    ph,
                    pw,
                };
                let output = bitspike_core::layer::infer_output(
                    LayerKind::Conv2d,
                    window,
                    groups,
                    groups * cout_g,
                    input,
                )
                .ok()?;
                Some(Geometry {
                    kind: LayerKind::Conv2d,
                    window,
                    groups,
                    input,
                    output,
                })
            },
        )
}

/// Depthwise convolutions: one input channel per group, as many outputs, any window.
fn depthwise_geometry() -> impl Strategy<Value = Geometry> {
    (
        (1u16..=9, 1u16..=9, 1u16..=12),
        (1u8..=5, 1u8..=5, 1u8..=3, 1u8..=3),
        (0u8..=6, 0u8..=6),
    )
        .prop_filter_map(
            "window must fit",
            |((h, w, c), (kh, kw, sh, sw), (ph, pw))| {
                let input = Shape::new(h, w, c);
                let window = Window {
                    kh,
                    kw,
                    sh,
                    sw,
                    ph,
                    pw,
                };
                let output =
                    bitspike_core::layer::infer_output(LayerKind::Conv2d, window, c, c, input)
                        .ok()?;
                Some(Geometry {
                    kind: LayerKind::Conv2d,
                    window,
                    groups: c,
                    input,
                    output,
                })
            },
        )
}

fn dense_geometry(n: u16, out: u16) -> Geometry {
    Geometry {
        kind: LayerKind::Dense,
        window: Window::default(),
        groups: 1,
        input: Shape::vector(n),
        output: Shape::vector(out),
    }
}

fn levels() -> impl Strategy<Value = u8> {
    prop_oneof![Just(1u8), Just(3), Just(15), Just(255), 1u8..=255]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn packed_equals_reference(g in packed_geometry(), bits in prop_oneof![Just(4u8), Just(2), 2u8..=8], seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>(), levels in prop_oneof![Just(15u8), Just(3), 1u8..=16]) {
        let c = case(g, bits, seed, bias, raw, levels);
        check_packed(&c, levels)?;
    }

    #[test]
    fn packed_depthwise_equals_reference(g in depthwise_geometry(), bits in prop_oneof![Just(4u8), Just(2), 2u8..=8], seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>(), levels in prop_oneof![Just(15u8), Just(3), 1u8..=16]) {
        let c = case(g, bits, seed, bias, raw, levels);
        check_packed_depthwise(&c, levels)?;
    }

    #[test]
    fn pairs_equals_reference(g in packed_geometry(), bits in prop_oneof![Just(8u8), 2u8..=8], seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>(), levels in prop_oneof![Just(15u8), Just(3), Just(31), 1u8..=40]) {
        let c = case(g, bits, seed, bias, raw, levels);
        check_pairs(&c, levels)?;
    }

    #[test]
    fn conv2d_every_kernel_equals_reference(g in conv_geometry(), bits in 2u8..=8, seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>(), levels in levels()) {
        let c = case(g, bits, seed, bias, raw, levels);
        check::<Row>(&c, true)?;
        check::<Gather>(&c, g.groups == 1)?;
        check::<Narrow>(&c, bitspike_core::kernel::narrow(&g))?;
        let dw = g.groups > 1 && g.input.c == g.groups && g.output.c == g.groups;
        check::<Depthwise>(&c, dw)?;
        let k = g.window.kh as usize * g.window.kw as usize;
        check::<DepthwiseWords>(&c, dw && g.input.c % 4 == 0 && k <= optimized::WORD_POSITIONS)?;
    }

    #[test]
    fn depthwise_equals_reference(g in depthwise_geometry(), bits in 2u8..=8, seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>(), levels in levels()) {
        let c = case(g, bits, seed, bias, raw, levels);
        check::<Depthwise>(&c, true)?;
        check::<DepthwiseChannels>(&c, true)?;
        let k = g.window.kh as usize * g.window.kw as usize;
        let words = g.input.c % 4 == 0 && k <= optimized::WORD_POSITIONS;
        check::<DepthwiseWords>(&c, words)?;
        check::<Row>(&c, true)?;
    }

    #[test]
    fn pools_equal_reference(g in conv_geometry(), seed in any::<u64>(), levels in levels(), avg in any::<bool>()) {
        // A convolution's window over its input, as a pool (pools keep the channels).
        let kind = if avg { LayerKind::AvgPool } else { LayerKind::MaxPool };
        let Ok(output) = bitspike_core::layer::infer_output(kind, g.window, 1, 0, g.input) else {
            return Ok(());
        };
        let g = Geometry { kind, groups: 1, output, ..g };
        let mut rng = Rng::new(seed);
        let input = rng.codes(g.input.len(), levels);
        let c = g.input.c as usize;
        let mult: Vec<u8> = (0..c)
            .flat_map(|_| (rng.range(1 << 29, i32::MAX as i64) as i32).to_le_bytes())
            .collect();
        let shifts: Vec<u8> = (0..c).map(|_| rng.range(-2, 6) as i8 as u8).collect();
        let st = Stage::Requantize { multipliers: I32s::new(&mult), shifts: &shifts, offset: 3, levels: 200 };
        let (mut a, mut b) = (vec![0x5Au8; output.len()], vec![0xA5u8; output.len()]);
        if avg {
            pool::avg_pool(&g, &st, &input, levels, &mut a);
            reference::avg_pool(&g, &st, &input, &mut b);
        } else {
            pool::max_pool(&g, &input, &mut a);
            reference::max_pool(&g, &input, &mut b);
        }
        prop_assert_eq!(&a, &b);
        // Band by band (one output row, then two), as in place.
        let row = |s: Shape| s.w as usize * s.c as usize;
        for rows in [1u16, 2] {
            let mut banded = vec![0x5Au8; output.len()];
            let mut y0 = 0;
            while y0 < output.h {
                let y1 = (y0 + rows).min(output.h);
                let bd = band(&g, y0, y1).unwrap();
                let (r0, r1) = (bd.input_rows.0 as usize, bd.input_rows.1 as usize);
                let src = &input[r0 * row(g.input)..r1 * row(g.input)];
                let dst = &mut banded[y0 as usize * row(output)..y1 as usize * row(output)];
                if avg {
                    pool::avg_pool(&bd.geometry, &st, src, levels, dst);
                } else {
                    pool::max_pool(&bd.geometry, src, dst);
                }
                y0 = y1;
            }
            prop_assert_eq!(&banded, &b, "in bands of {}", rows);
        }
    }

    #[test]
    fn conv2d_events_equal_reference(g in conv_geometry(), bits in 2u8..=8, seed in any::<u64>(), t in 1u8..=20) {
        let c = case(g, bits, seed, true, true, 255);
        check_events(&c, t, seed ^ 1)?;
    }

    #[test]
    fn dense_every_kernel_equals_reference(n in 1u16..=2600, out in 1u16..=6, bits in 2u8..=8, seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>(), levels in levels()) {
        let g = dense_geometry(n, out);
        let c = case(g, bits, seed, bias, raw, levels);
        check::<Row>(&c, true)?;
        check::<Gather>(&c, false)?;
        check::<PackedDense>(&c, dense_packable(&g, bits))?;
    }

    #[test]
    fn packed_dense_equals_reference(n in prop_oneof![8u16..=80, 1u16..=2600], out in 1u16..=6, bits in prop_oneof![Just(4u8), Just(2), 2u8..=8], seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>(), levels in levels()) {
        let g = dense_geometry(n, out);
        let c = case(g, bits, seed, bias, raw, levels);
        check::<PackedDense>(&c, dense_packable(&g, bits))?;
    }

    #[test]
    fn dense_events_equal_reference(n in 1u16..=2600, out in 1u16..=6, bits in 2u8..=8, seed in any::<u64>(), t in 1u8..=20) {
        let c = case(dense_geometry(n, out), bits, seed, true, true, 255);
        check_events(&c, t, seed ^ 1)?;
    }

    /// The row unpacker against the format's one-value reader, at every width and offset,
    /// through the end of the stream.
    #[test]
    fn unpacked_rows_match_unpack_one(bytes in proptest::collection::vec(any::<u8>(), 0..40), bits in 0u8..=9, first in 0usize..80, n in 0usize..80) {
        let mut out = vec![0u8; n];
        bitspike_rt::kernels::unpack_row(&bytes, bits, first, &mut out);
        let want: Vec<u8> = (0..n).map(|k| bitspike_core::pack::unpack_one(&bytes, bits, first + k) as u8).collect();
        prop_assert_eq!(out, want);
    }

    /// The portable lane instructions against their definitions on whole words.
    #[test]
    fn lane_instructions_match_their_definitions(a in any::<u32>(), b in any::<u32>(), acc in any::<i32>()) {
        let s = lanes::sxtb16(a);
        prop_assert_eq!(s as u16 as i16, a as u8 as i8 as i16);
        prop_assert_eq!((s >> 16) as u16 as i16, (a >> 16) as u8 as i8 as i16);
        let want = acc as i64
            + (a as u16 as i16 as i64) * (b as u16 as i16 as i64)
            + ((a >> 16) as u16 as i16 as i64) * ((b >> 16) as u16 as i16 as i64);
        prop_assert_eq!(lanes::smlad(a, b, acc), want as i32);
    }
}

/// Large fan-ins (3x3 over 128 channels, 7x7 over 21) run on the fast kernels with the scratch
/// the file gives them: no fallback cliff at any fan-in.
#[test]
fn large_fan_ins_run_fast() {
    for (c_in, k) in [(128u16, 3u8), (21, 7), (120, 3)] {
        let input = Shape::new(5, 5, c_in);
        let window = Window::square(k, 1, k / 2);
        let g = Geometry {
            kind: LayerKind::Conv2d,
            window,
            groups: 1,
            input,
            output: Shape::new(5, 5, 3),
        };
        for bits in [2, 4, 5, 8] {
            let c = case(g, bits, bits as u64, true, false, 15);
            check::<Gather>(&c, true).unwrap();
            check::<Row>(&c, true).unwrap();
        }
    }
}

/// The weight pairs of one word, by hand: 8-bit via SXTB16 (w0, w2) and (w1, w3); 4-bit and
/// 2-bit as offset-binary fields (w_j + 8 | w_j+4 + 8) and (w_j + 2 | w_j+8 + 2).
#[test]
fn weight_pairs_by_hand() {
    let mut out = [0u32; 8];
    // Bytes 1, -2, 3, -4.
    lanes::pairs(u32::from_le_bytes([1, 0xFE, 3, 0xFC]), 8, &mut out);
    assert_eq!(out[0], (3 << 16) | 1);
    assert_eq!(out[1], (0xFFFC << 16) | 0xFFFE);
    // Nibbles 0..7 = -8, -1, 0, 1, 7, 2, -3, 4.
    let nib: [i8; 8] = [-8, -1, 0, 1, 7, 2, -3, 4];
    let mut word = 0u32;
    for (k, &v) in nib.iter().enumerate() {
        word |= ((v as u8 & 0xF) as u32) << (4 * k);
    }
    lanes::pairs(word, 4, &mut out);
    for j in 0..4 {
        let lo = (nib[j] + 8) as u32;
        let hi = (nib[j + 4] + 8) as u32;
        assert_eq!(out[j], lo | (hi << 16), "pair {j}");
    }
    // 2-bit fields k = (k % 4) - 2.
    let mut word = 0u32;
    for k in 0..16 {
        word |= (((k % 4) as u32 + 2) & 3) << (2 * k);
    }
    lanes::pairs(word, 2, &mut out);
    for (j, &o) in out.iter().enumerate() {
        assert_eq!(o, (j % 4) as u32 | (((j + 8) % 4) as u32) << 16, "pair {j}");
    }
}

/// A reference-only check that the suite's reference runs at all (it is the oracle above).
#[test]
fn reference_ignores_scratch() {
    let g = dense_geometry(7, 2);
    let c = case(g, 3, 1, true, true, 255);
    let st = stage(&c);
    let w = Weights {
        packed: &c.packed,
        bits: c.bits,
        bias: c.bias.as_deref().map(I32s::new),
    };
    let mut out = vec![0u8; 8];
    reference::dense(&g, &w, &st, &c.input, &mut out, &mut Ops::new());
    assert_eq!(run::<Reference>(&c, &mut []).unwrap().0, out);
}

/// The packed kernel's overflow bound at its edge: every code at the top level and every weight
/// at its largest offset-binary value (`+7` at 4 bits, `+1` at 2 bits), so each field reaches
/// the most a flush interval allows (15 x 15 x 72 = 16 200 of 16 383 at 4 bits), over fan-ins
/// of several intervals (72 to 576 inputs) and, with 44 channels (396 inputs: 5 x 72 + 36 at 4
/// bits, 352 + 44 at 2 bits), not a whole number of them.
#[test]
fn packed_fields_flush_at_the_bound() {
    for (bits, top) in [(4u8, 7i8), (2, 1)] {
        for cin in [8u16, 16, 44, 64] {
            let g = Geometry {
                kind: LayerKind::Conv2d,
                window: Window::square(3, 1, 1),
                groups: 1,
                input: Shape::new(5, 4, cin),
                output: Shape::new(5, 4, 5),
            };
            let n = g.weight_count() as usize;
            assert!(packable(&g, bits, 15));
            let mut c = case(g, bits, cin as u64, true, true, 15);
            let mut p = vec![0u8; packed_len(n, bits).unwrap()];
            pack(&vec![top; n], bits, &mut p).unwrap();
            c.packed = p;
            c.input = vec![15; g.input.len()];
            assert!(packed_chunk(bits, 15) >= 1);
            check_packed(&c, 15).unwrap();
            // The lowest weights as well (offset binary 0: the correction alone).
            let mut p = vec![0u8; c.packed.len()];
            pack(&vec![-(1i8 << (bits - 1)); n], bits, &mut p).unwrap();
            c.packed = p;
            check_packed(&c, 15).unwrap();
        }
    }
}

/// The packed depthwise kernel's field bound at its edge: every code at the top level and every
/// weight at its most negative and at its largest value, over windows whose largest sum just
/// stays inside a field (34 positions x 8 x 15 = 4080 of 4095 at 4 bits; 64 x 2 x 15 at 2 bits;
/// 17 x 16 x 15 = 4080 at 5 bits), with padding so that edge windows run over fewer
/// positions; one position more is not packable (64 is the most positions at 2 bits).
#[test]
fn packed_depthwise_fields_at_the_bound() {
    for (bits, levels, kh, kw) in [(4u8, 15u8, 2u8, 17u8), (2, 15, 8, 8), (5, 15, 1, 17)] {
        let window = Window {
            kh,
            kw,
            sh: 1,
            sw: 1,
            ph: 1,
            pw: 2,
        };
        let input = Shape::new(kh as u16 + 2, kw as u16 + 3, 6);
        let output =
            bitspike_core::layer::infer_output(LayerKind::Conv2d, window, 6, 6, input).unwrap();
        let g = Geometry {
            kind: LayerKind::Conv2d,
            window,
            groups: 6,
            input,
            output,
        };
        assert!(
            depthwise_packable(&g, bits, levels),
            "{bits} bits, {kh}x{kw}"
        );
        let wider = Window {
            kw: kw + 1,
            ..window
        };
        let past = Geometry {
            window: wider,
            output: bitspike_core::layer::infer_output(LayerKind::Conv2d, wider, 6, 6, input)
                .unwrap(),
            ..g
        };
        assert!(
            !depthwise_packable(&past, bits, levels),
            "one position past the bound"
        );
        let n = g.weight_count() as usize;
        let lo = -(1i16 << (bits - 1));
        for top in [lo as i8, (-lo - 1) as i8] {
            for raw in [true, false] {
                let mut c = case(g, bits, kw as u64, true, raw, levels);
                let mut p = vec![0u8; packed_len(n, bits).unwrap()];
                pack(&vec![top; n], bits, &mut p).unwrap();
                c.packed = p;
                c.input = vec![levels; g.input.len()];
                check_packed_depthwise(&c, levels).unwrap();
            }
        }
    }
}

/// The pairs kernel's overflow bound at its edge: every code at the top level and every weight
/// at its largest magnitude (-128, -8, -2) and at its largest positive value, over fan-ins of
/// several flush intervals (17 inputs at 8 bits over 15 levels) and one past a whole number of
/// them, at 8, 4 and 2 bits.
#[test]
fn pairs_fields_flush_at_the_bound() {
    for bits in [8u8, 4, 2] {
        for levels in [15u8, 31] {
            for cin in [2u16, 16, 20, 64] {
                let g = Geometry {
                    kind: LayerKind::Conv2d,
                    window: Window::square(3, 1, 1),
                    groups: 1,
                    input: Shape::new(5, 4, cin),
                    output: Shape::new(5, 4, 5),
                };
                assert!(pairs_chunk(bits, levels) >= 8);
                let lo = -(1i16 << (bits - 1)) as i8;
                for top in [lo, (-(lo as i16) - 1) as i8] {
                    let n = g.weight_count() as usize;
                    let mut c = case(g, bits, cin as u64, true, true, levels);
                    let mut p = vec![0u8; packed_len(n, bits).unwrap()];
                    pack(&vec![top; n], bits, &mut p).unwrap();
                    c.packed = p;
                    c.input = vec![levels; g.input.len()];
                    check_pairs(&c, levels).unwrap();
                }
            }
        }
    }
}

/// The packed dense kernel at its flush bound: every code at the largest a byte holds (or at the
/// largest of fewer levels, which lengthens the interval), every weight at either end of its
/// range or alternating, rows of many words plus a tail; raw accumulators, so an upper half
/// flushed one word late changes the result.
#[test]
fn packed_dense_at_its_overflow_bound() {
    for bits in [4u8, 2] {
        let (lo, hi) = (-(1i8 << (bits - 1)), (1i8 << (bits - 1)) - 1);
        for top in [255u8, 128, 15, 3, 1] {
            for n in [8u16, 64, 400, 1024 + 12, 2600] {
                if !dense_packable(&dense_geometry(n, 3), bits) {
                    continue;
                }
                for pattern in 0..3 {
                    let g = dense_geometry(n, 3);
                    let mut c = case(g, bits, 7, true, true, 255);
                    let m = g.weight_count() as usize;
                    let w: Vec<i8> = (0..m)
                        .map(|i| match pattern {
                            0 => hi,
                            1 => lo,
                            _ if i % 2 == 0 => hi,
                            _ => lo,
                        })
                        .collect();
                    pack(&w, bits, &mut c.packed).unwrap();
                    c.input = vec![top; n as usize];
                    check::<PackedDense>(&c, true).unwrap();
                    let want = run::<Reference>(&c, &mut []).unwrap();
                    let top_sum = top as i64 * n as i64 * if pattern == 1 { lo } else { hi } as i64;
                    if pattern < 2 {
                        let first = i32::from_le_bytes(want.0[..4].try_into().unwrap()) as i64;
                        let bias =
                            i32::from_le_bytes(c.bias.as_ref().unwrap()[..4].try_into().unwrap());
                        assert_eq!(first - bias as i64, top_sum, "the case is at the bound");
                    }
                }
            }
        }
    }
}
