//! The optimized kernels against the reference kernels: bit-exact outputs and equal MAC counts
//! on random shapes, strides, paddings, groups, bit widths and output stages (CONVENTIONS 4),
//! including fan-ins beyond the optimized kernels' unpack buffer; and the event-driven kernels
//! for spike counts (`conv2d_events`, `dense_events`) against the reference, on sparse counts.

use bitspike_core::def::random::Rng;
use bitspike_core::format::I32s;
use bitspike_core::layer::{Geometry, LayerKind, Shape, Window};
use bitspike_core::pack::{pack, packed_len};
use bitspike_rt::kernels::{optimized, reference, Stage, Weights};
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
}

fn case(g: Geometry, bits: u8, seed: u64, bias: bool, raw: bool) -> Case {
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
        shifts: (0..c).map(|_| rng.range(-2, 12) as i8 as u8).collect(),
        raw,
        input: rng.codes(g.input.len(), 255),
    }
}

fn run(c: &Case, optimized_kernel: bool) -> (Vec<u8>, u64) {
    let w = Weights {
        packed: &c.packed,
        bits: c.bits,
        bias: c.bias.as_deref().map(I32s::new),
    };
    let stage = if c.raw {
        Stage::Raw
    } else {
        Stage::Requantize {
            multipliers: I32s::new(&c.mult),
            shifts: &c.shifts,
            offset: 3,
            levels: 200,
        }
    };
    let mut out = vec![0u8; c.g.output.len() * stage.elem_size()];
    let mut ops = Ops::new();
    match (c.g.kind, optimized_kernel) {
        (LayerKind::Conv2d, true) => {
            optimized::conv2d(&c.g, &w, &stage, &c.input, &mut out, &mut ops)
        }
        (LayerKind::Conv2d, false) => {
            reference::conv2d(&c.g, &w, &stage, &c.input, &mut out, &mut ops)
        }
        (_, true) => optimized::dense(&c.g, &w, &stage, &c.input, &mut out, &mut ops),
        (_, false) => reference::dense(&c.g, &w, &stage, &c.input, &mut out, &mut ops),
    }
    (out, ops.counts().macs)
}

/// The event-driven kernel against the reference on spike counts `0..=t` (about half silent).
fn run_events(c: &Case, t: u8, seed: u64) -> bool {
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
        ..*c
    };
    let w = Weights {
        packed: &c2.packed,
        bits: c2.bits,
        bias: c2.bias.as_deref().map(I32s::new),
    };
    let stage = Stage::Raw;
    let mut a = vec![0u8; c2.g.output.len() * 4];
    let mut b = a.clone();
    let mut ops = Ops::new();
    if c2.g.kind == LayerKind::Conv2d {
        optimized::conv2d_events(&c2.g, &w, &stage, &c2.input, &mut a, &mut ops);
        reference::conv2d(&c2.g, &w, &stage, &c2.input, &mut b, &mut ops);
    } else {
        optimized::dense_events(&c2.g, &w, &stage, &c2.input, &mut a, &mut ops);
        reference::dense(&c2.g, &w, &stage, &c2.input, &mut b, &mut ops);
    }
    a == b
}

fn conv_geometry() -> impl Strategy<Value = Geometry> {
    (
        (1u16..=9, 1u16..=9),
        (1u8..=4, 1u8..=4, 1u8..=3, 1u8..=3),
        (0u8..=3, 0u8..=3),
        (1u16..=3, 1u16..=3, 1u16..=3),
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
                    ph: ph.min(kh - 1),
                    pw: pw.min(kw - 1),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_optimized_equals_reference(g in conv_geometry(), bits in 2u8..=8, seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>()) {
        let c = case(g, bits, seed, bias, raw);
        prop_assert_eq!(run(&c, true), run(&c, false));
    }

    #[test]
    fn conv2d_events_equal_reference(g in conv_geometry(), bits in 2u8..=8, seed in any::<u64>(), t in 1u8..=20) {
        let c = case(g, bits, seed, true, true);
        prop_assert!(run_events(&c, t, seed ^ 1));
    }

    #[test]
    fn dense_events_equal_reference(n in 1u16..=2600, out in 1u16..=6, bits in 2u8..=8, seed in any::<u64>(), t in 1u8..=20) {
        let g = Geometry { kind: LayerKind::Dense, window: Window::default(), groups: 1, input: Shape::vector(n), output: Shape::vector(out) };
        let c = case(g, bits, seed, true, true);
        prop_assert!(run_events(&c, t, seed ^ 1));
    }

    #[test]
    fn dense_optimized_equals_reference(n in 1u16..=2600, out in 1u16..=6, bits in 2u8..=8, seed in any::<u64>(), bias in any::<bool>(), raw in any::<bool>()) {
        let g = Geometry { kind: LayerKind::Dense, window: Window::default(), groups: 1, input: Shape::vector(n), output: Shape::vector(out) };
        let c = case(g, bits, seed, bias, raw);
        prop_assert_eq!(run(&c, true), run(&c, false));
    }
}

#[test]
fn conv2d_beyond_the_unpack_buffer_matches() {
    // Fan-in 3 * 3 * 120 = 1080 > UNPACK_MAX: the optimized kernel falls back.
    const { assert!(3 * 3 * 120 > optimized::UNPACK_MAX) };
    let input = Shape::new(4, 4, 120);
    let window = Window::square(3, 1, 1);
    let output = Shape::new(4, 4, 2);
    let g = Geometry {
        kind: LayerKind::Conv2d,
        window,
        groups: 1,
        input,
        output,
    };
    for bits in [2, 5, 8] {
        let c = case(g, bits, bits as u64, true, false);
        assert_eq!(run(&c, true), run(&c, false));
    }
}
