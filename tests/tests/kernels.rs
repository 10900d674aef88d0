//! Every runtime kernel against the independent oracle (`bitspike_tests::oracle`), on random
//! one- and two-layer models: random shapes, windows, strides, paddings, groups, weight widths,
//! biases, per-channel requantization, levels and raw outputs. Each model goes through the real
//! path: `format::writer::write`, `bitspike_rt::Model::load`, an arena of exactly
//! `arena_bytes()` bytes (filled with garbage), `Interpreter::run`; the output must match the
//! oracle bit for bit and the per-layer MAC counters must match the oracle's count.

use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::format::writer::write;
use bitspike_core::layer::{LayerKind, Shape, Window};
use bitspike_rt::Model;
use bitspike_tests::oracle::{
    self,
    gen::{self, Rng},
};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per layer-kind property: enough to hit every combination of flags many times; the
/// models are tiny, so the whole file still runs in well under a second at opt-level 1.
const CASES: u32 = 2000;

/// A proptest configuration with `cases` cases that writes no regression files.
fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Write, load and run `def` on two random inputs with one interpreter (the second run catches
/// state left over from the first), and compare outputs and MAC counters with the oracle.
fn check(def: &ModelDef, rng: &mut Rng) {
    let bytes = write(def).unwrap_or_else(|e| panic!("writer refused the model: {e}\n{def:#?}"));
    let model = Model::load(&bytes).unwrap_or_else(|e| panic!("load failed: {e}"));
    let mut arena: Vec<u8> = (0..model.arena_bytes())
        .map(|_| rng.next_u64() as u8)
        .collect();
    let mut interp = model
        .bind(&mut arena)
        .expect("arena of exactly arena_bytes()");
    let expect_macs = oracle::layer_macs(def);
    for run in 0..2 {
        let input = gen::codes(rng, def.input.shape.len(), def.input.levels);
        let mut out = vec![0i32; model.output_len()];
        interp.run(&input, &mut out).expect("run");
        let trace = oracle::execute(def, &input);
        let want = trace.output();
        if out != want {
            let bad: Vec<_> = out
                .iter()
                .zip(want)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .take(8)
                .map(|(i, (a, b))| format!("[{i}] device {a} oracle {b}"))
                .collect();
            panic!(
                "run {run}: output differs from the oracle in {} of {} elements; first: {}\n\
                 input: {input:?}\nmodel: {def:#?}",
                out.iter().zip(want).filter(|(a, b)| a != b).count(),
                out.len(),
                bad.join(", "),
            );
        }
        assert_eq!(trace.macs, expect_macs, "oracle's MAC counts disagree");
        let ops = interp.layer_ops();
        assert_eq!(ops.len(), def.layers.len());
        for (i, o) in ops.iter().enumerate() {
            assert_eq!(
                o.macs,
                expect_macs[i],
                "layer {i} ({}) MAC counter",
                def.layers[i].kind.name()
            );
            assert_eq!(
                o.accumulates, 0,
                "layer {i}: accumulates in a non-spiking model"
            );
        }
    }
}

/// Finish a requantizing layer: raw output, or random levels, requantization and offset.
fn finish(rng: &mut Rng, mut l: LayerDef, channels: usize, typ: u64, raw: bool) -> LayerDef {
    if raw {
        l.raw_output = true;
        l.requant = Vec::new();
        l.offset = 0;
    } else {
        l.levels = gen::levels(rng);
        l.requant = gen::requant(rng, channels, typ, l.levels);
        l.offset = gen::offset(rng, l.levels);
    }
    if rng.chance(1, 4) {
        l.scratch_bytes = rng.int(1, 64) as u32;
    }
    l
}

/// Weight bit width of a layer: the drawn one, or (for extra layers) a random one.
fn random_bits(rng: &mut Rng) -> u8 {
    rng.int(2, 8) as u8
}

/// A convolution reading tensor `input` (shape `x`, levels `in_levels`) with random weights and
/// bias (when `bias`).
#[allow(clippy::too_many_arguments)]
fn conv(
    rng: &mut Rng,
    input: u16,
    x: Shape,
    in_levels: u8,
    out_c: u16,
    window: Window,
    groups: u16,
    bits: u8,
    bias: bool,
    raw: bool,
) -> LayerDef {
    let cin_g = (x.c / groups) as usize;
    let fan_in = window.kh as usize * window.kw as usize * cin_g;
    let n = out_c as usize * fan_in;
    let typ = gen::typical(fan_in, in_levels, bits);
    let bias = bias.then(|| gen::bias(rng, out_c as usize, typ));
    let l = LayerDef::conv2d(
        input,
        out_c,
        window,
        groups,
        bits,
        gen::weights(rng, n, bits),
        bias,
        Vec::new(),
    );
    finish(rng, l, out_c as usize, typ, raw)
}

/// A dense layer reading tensor `input` (shape `x`).
#[allow(clippy::too_many_arguments)]
fn dense(
    rng: &mut Rng,
    input: u16,
    x: Shape,
    in_levels: u8,
    out: u16,
    bits: u8,
    bias: bool,
    raw: bool,
) -> LayerDef {
    let n = x.len();
    let typ = gen::typical(n, in_levels, bits);
    let bias = bias.then(|| gen::bias(rng, out as usize, typ));
    let l = LayerDef::dense(
        input,
        out,
        bits,
        gen::weights(rng, out as usize * n, bits),
        bias,
        Vec::new(),
    );
    finish(rng, l, out as usize, typ, raw)
}

/// A 1x1 max pool with stride 1: copies the network input into the arena unchanged, so the
/// layer under test reads from the arena instead of the caller's buffer.
fn identity_pool(input: u16) -> LayerDef {
    LayerDef {
        window: Window::square(1, 1, 0),
        ..LayerDef::new(LayerKind::MaxPool, input)
    }
}

/// How the layer under test gets its input.
#[derive(Clone, Copy, Debug)]
enum Source {
    /// Straight from the caller's input buffer.
    Input,
    /// From the arena, through a 1x1 max pool (codes unchanged).
    Copy,
    /// From the arena, through a random 3x3 "same" convolution (new codes and levels).
    Conv,
}

fn source() -> impl Strategy<Value = Source> {
    prop_oneof![Just(Source::Input), Just(Source::Copy), Just(Source::Conv)]
}

/// Start a model with input `x` and add the `src` layer; returns the model, the tensor the
/// layer under test reads and that tensor's level count.
fn start(rng: &mut Rng, x: Shape, src: Source) -> (ModelDef, u16, u8) {
    let in_levels = gen::levels(rng);
    let mut def = ModelDef::new(x, in_levels, 0.5);
    match src {
        Source::Input => (def, 0, in_levels),
        Source::Copy => {
            let t = def.push(identity_pool(0));
            (def, t, in_levels)
        }
        Source::Conv => {
            let bits = random_bits(rng);
            let l = conv(
                rng,
                0,
                x,
                in_levels,
                x.c,
                Window::square(3, 1, 1),
                1,
                bits,
                true,
                false,
            );
            let levels = l.levels;
            let t = def.push(l);
            (def, t, levels)
        }
    }
}

/// A window with kernel up to `kmax`, stride up to 3 and padding up to `kernel - 1` (conv) or
/// `kernel / 2` (pools, `pool == true`), and an input size the window fits.
#[derive(Clone, Copy, Debug)]
struct Geo {
    window: Window,
    h: u16,
    w: u16,
}

fn geo(kmax: u8, pool: bool) -> impl Strategy<Value = Geo> {
    (
        (1..=kmax, 1..=kmax),
        (1u8..=3, 1u8..=3),
        (0u8..=4, 0u8..=4),
        (1u16..=9, 1u16..=9),
    )
        .prop_map(move |((kh, kw), (sh, sw), (ph, pw), (h, w))| {
            let (ph, pw) = if pool {
                (ph % (kh / 2 + 1), pw % (kw / 2 + 1))
            } else {
                (ph % kh, pw % kw)
            };
            // The padded input must hold one window.
            let h = h.max((kh as u16).saturating_sub(2 * ph as u16)).max(1);
            let w = w.max((kw as u16).saturating_sub(2 * pw as u16)).max(1);
            Geo {
                window: Window {
                    kh,
                    kw,
                    sh,
                    sw,
                    ph,
                    pw,
                },
                h,
                w,
            }
        })
}

/// Groups and channels per group, in and out: `groups` in 1..=4, so that ordinary (1),
/// depthwise (`cin_g == 1`, `groups == C`), depthwise with a channel multiplier and true
/// grouped (neither 1 nor C) convolutions all occur.
fn grouping() -> impl Strategy<Value = (u16, u16, u16)> {
    (1u16..=4, 1u16..=3, 1u16..=3)
}

proptest! {
    #![proptest_config(config(3000))]

    /// The contract's requantization in `bitspike_core::quant`, which every kernel uses, against
    /// the oracle's i128 version, over the whole input domain (mostly clamped results, and the
    /// saturating paths).
    #[test]
    fn requantize_matches_oracle_everywhere(
        acc in prop_oneof![any::<i32>(), -1000i32..1000, Just(i32::MIN), Just(i32::MAX)],
        m in prop_oneof![0..=i32::MAX, Just(0), Just(1), Just(i32::MAX), Just(1 << 30)],
        s in -31i8..=31,
        offset in prop_oneof![any::<i32>(), -300i32..300, Just(i32::MIN), Just(i32::MAX)],
        levels in 1u8..=255,
    ) {
        prop_assert_eq!(
            bitspike_core::quant::requantize(acc, m, s, offset, levels),
            oracle::requantize(acc, m, s, offset, levels)
        );
    }

    /// The same, where results land inside the code range, so that rounding (ties included)
    /// decides the code: small accumulators, small shifts, offsets within the range.
    #[test]
    fn requantize_matches_oracle_in_range(
        acc in -4000i32..4000,
        m in prop_oneof![(1i32 << 30)..=i32::MAX, Just(i32::MAX), Just(1 << 30), Just(3 << 29)],
        s in -3i8..=6,
        offset in 0i32..=128,
        levels in prop_oneof![Just(255u8), 1u8..=255],
    ) {
        prop_assert_eq!(
            bitspike_core::quant::requantize(acc, m, s, offset, levels),
            oracle::requantize(acc, m, s, offset, levels)
        );
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn conv2d_matches_oracle(
        seed in any::<u64>(),
        g in geo(5, false),
        (groups, cin_g, cout_g) in grouping(),
        bits in 2u8..=8,
        (bias, raw, from_arena) in (any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let mut rng = Rng::new(seed);
        let x = Shape::new(g.h, g.w, groups * cin_g);
        let src = if from_arena { Source::Copy } else { Source::Input };
        let (mut def, t, levels) = start(&mut rng, x, src);
        let l = conv(&mut rng, t, x, levels, groups * cout_g, g.window, groups, bits, bias, raw);
        def.push(l);
        check(&def, &mut rng);
    }

    #[test]
    fn dense_matches_oracle(
        seed in any::<u64>(),
        (h, w, c) in (1u16..=4, 1u16..=4, 1u16..=4),
        out in 1u16..=12,
        bits in 2u8..=8,
        (bias, raw) in (any::<bool>(), any::<bool>()),
        src in source(),
    ) {
        let mut rng = Rng::new(seed);
        let x = Shape::new(h, w, c);
        let (mut def, t, levels) = start(&mut rng, x, src);
        def.push(dense(&mut rng, t, x, levels, out, bits, bias, raw));
        check(&def, &mut rng);
    }

    #[test]
    fn avg_pool_matches_oracle(
        seed in any::<u64>(),
        g in geo(4, true),
        c in 1u16..=5,
        raw in any::<bool>(),
        src in source(),
    ) {
        let mut rng = Rng::new(seed);
        let x = Shape::new(g.h, g.w, c);
        let (mut def, t, levels) = start(&mut rng, x, src);
        let l = LayerDef { window: g.window, ..LayerDef::new(LayerKind::AvgPool, t) };
        let taps = g.window.kh as usize * g.window.kw as usize;
        let typ = (taps as u64 * levels as u64 / 2).max(1);
        def.push(finish(&mut rng, l, c as usize, typ, raw));
        check(&def, &mut rng);
    }

    #[test]
    fn max_pool_matches_oracle(
        seed in any::<u64>(),
        g in geo(4, true),
        c in 1u16..=5,
        src in source(),
    ) {
        let mut rng = Rng::new(seed);
        let x = Shape::new(g.h, g.w, c);
        let (mut def, t, _) = start(&mut rng, x, src);
        let mut l = LayerDef { window: g.window, ..LayerDef::new(LayerKind::MaxPool, t) };
        if rng.chance(1, 4) {
            l.scratch_bytes = rng.int(1, 64) as u32;
        }
        def.push(l);
        check(&def, &mut rng);
    }

    #[test]
    fn global_avg_pool_matches_oracle(
        seed in any::<u64>(),
        (h, w, c) in (1u16..=8, 1u16..=8, 1u16..=6),
        raw in any::<bool>(),
        src in source(),
    ) {
        let mut rng = Rng::new(seed);
        let x = Shape::new(h, w, c);
        let (mut def, t, levels) = start(&mut rng, x, src);
        let l = LayerDef::new(LayerKind::GlobalAvgPool, t);
        let typ = (h as u64 * w as u64 * levels as u64 / 2).max(1);
        def.push(finish(&mut rng, l, c as usize, typ, raw));
        check(&def, &mut rng);
    }

    /// A "same" convolution of the network input, then an add of the input and the convolution
    /// (in either order, or one of them twice).
    #[test]
    fn add_matches_oracle(
        seed in any::<u64>(),
        (h, w) in (1u16..=5, 1u16..=5),
        (kh, kw) in (0u8..=2, 0u8..=2),
        (groups, cin_g) in (1u16..=3, 1u16..=3),
        bits in 2u8..=8,
        inputs in prop_oneof![Just((0u16, 1u16)), Just((1, 0)), Just((0, 0)), Just((1, 1))],
        raw in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let c = groups * cin_g;
        let x = Shape::new(h, w, c);
        let in_levels = gen::levels(&mut rng);
        let mut def = ModelDef::new(x, in_levels, 0.5);
        // Odd kernels 1, 3, 5 with "same" padding keep the shape.
        let window = Window { kh: 2 * kh + 1, kw: 2 * kw + 1, sh: 1, sw: 1, ph: kh, pw: kw };
        let cl = conv(&mut rng, 0, x, in_levels, c, window, groups, bits, true, false);
        let levels = [in_levels, cl.levels];
        def.push(cl);
        let weight = |rng: &mut Rng| -> i16 {
            match rng.int(0, 7) {
                0 => rng.pick(&[i16::MIN, i16::MAX, 0, 1, -1]),
                1..=3 => rng.int(i16::MIN as i64, i16::MAX as i64) as i16,
                _ => rng.int(-300, 300) as i16,
            }
        };
        let add_weights = [weight(&mut rng), weight(&mut rng)];
        let typ = ((levels[inputs.0 as usize] as u64 * add_weights[0].unsigned_abs() as u64
            + levels[inputs.1 as usize] as u64 * add_weights[1].unsigned_abs() as u64)
            / 2)
            .max(1);
        let l = LayerDef {
            input2: Some(inputs.1),
            add_weights,
            ..LayerDef::new(LayerKind::Add, inputs.0)
        };
        def.push(finish(&mut rng, l, c as usize, typ, raw));
        check(&def, &mut rng);
    }

    /// Flatten in every position: conv -> flatten -> dense, input -> flatten -> dense,
    /// conv -> flatten as the output, and a flatten of the input as the whole model.
    #[test]
    fn flatten_matches_oracle(
        seed in any::<u64>(),
        (h, w, c) in (1u16..=4, 1u16..=4, 1u16..=3),
        variant in 0u8..4,
        bits in 2u8..=8,
        raw in any::<bool>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = Shape::new(h, w, c);
        let in_levels = gen::levels(&mut rng);
        let mut def = ModelDef::new(x, in_levels, 0.5);
        let (t, y, levels) = if variant % 2 == 0 {
            // A conv with a random window so the flattened tensor is not the input's shape.
            let win = Window {
                kh: rng.int(1, h.min(2) as i64) as u8,
                kw: rng.int(1, w.min(2) as i64) as u8,
                sh: rng.int(1, 2) as u8,
                sw: rng.int(1, 2) as u8,
                ph: 0,
                pw: 0,
            };
            let oc = rng.int(1, 4) as u16;
            let cb = random_bits(&mut rng);
            let l = conv(&mut rng, 0, x, in_levels, oc, win, 1, cb, true, false);
            let y = Shape::new(
                (h - win.kh as u16) / win.sh as u16 + 1,
                (w - win.kw as u16) / win.sw as u16 + 1,
                oc,
            );
            let levels = l.levels;
            (def.push(l), y, levels)
        } else {
            (0, x, in_levels)
        };
        let f = def.push(LayerDef::new(LayerKind::Flatten, t));
        if variant < 2 {
            let out = rng.int(1, 10) as u16;
            def.push(dense(&mut rng, f, Shape::vector(y.len() as u16), levels, out, bits, true, raw));
        }
        check(&def, &mut rng);
    }
}
