//! A whole small network through the runtime against the oracle, and the analytic MAC count of
//! `bitspike_core::cost` against the runtime's counters.
//!
//! ```text
//! t0 HxWxC input
//! L0 conv 3x3 (stride 1 or 2, padding 0 or 1), C -> C1, bias   -> t1
//! L1 max pool or average pool (2x2 s2, or 3x3 s2 with padding)   -> t2
//! L2 "same" conv (3x3 p1, or 1x1 without padding), grouped      -> t3
//! L3 add(t2, t3) in either order: the residual                   -> t4
//! L4 global average pool or flatten                              -> t5
//! L5 dense -> 10, bias, raw i32 output                           -> t6
//! ```

use bitspike_core::cost;
use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::format::writer::{write, write_planned, Budget};
use bitspike_core::layer::{LayerKind, Shape, Window};
use bitspike_rt::{LayerOps, Model};
use bitspike_tests::oracle::{
    self,
    gen::{self, Rng},
};

/// Random levels, requantization and offset for a layer with `channels` output channels.
fn requantized(rng: &mut Rng, mut l: LayerDef, channels: usize, typ: u64) -> LayerDef {
    l.levels = gen::levels(rng);
    l.requant = gen::requant(rng, channels, typ, l.levels);
    l.offset = gen::offset(rng, l.levels);
    l
}

/// The network of the module docs. `bits` is every weighted layer's width, or `None` for a
/// random width per layer. Without `padding`, no layer pads (so the kernels' MAC counts equal
/// `cost::macs`).
fn network(seed: u64, bits: Option<u8>, padding: bool) -> ModelDef {
    let mut rng = Rng::new(seed);
    let bits = move |rng: &mut Rng| bits.unwrap_or_else(|| rng.int(2, 8) as u8);
    let (h, w, c) = (
        rng.int(6, 10) as u16,
        rng.int(6, 10) as u16,
        rng.int(1, 3) as u16,
    );
    let in_levels = gen::levels(&mut rng);
    let mut def = ModelDef::new(Shape::new(h, w, c), in_levels, 1.0 / 255.0);
    let shapes = |def: &ModelDef| -> Vec<Shape> {
        def.tensors()
            .expect("shapes chain")
            .iter()
            .map(|t| t.shape)
            .collect()
    };

    // L0: conv 3x3.
    let c1 = rng.int(2, 6) as u16;
    let p = padding as u8;
    let win = Window {
        kh: 3,
        kw: 3,
        sh: rng.int(1, 2) as u8,
        sw: rng.int(1, 2) as u8,
        ph: p,
        pw: p,
    };
    let b = bits(&mut rng);
    let fan_in = 9 * c as usize;
    let typ = gen::typical(fan_in, in_levels, b);
    let l = LayerDef::conv2d(
        0,
        c1,
        win,
        1,
        b,
        gen::weights(&mut rng, c1 as usize * fan_in, b),
        Some(gen::bias(&mut rng, c1 as usize, typ)),
        Vec::new(),
    );
    let l = requantized(&mut rng, l, c1 as usize, typ);
    let l1_levels = l.levels;
    let t1 = def.push(l);

    // L1: pool.
    let pool_win = if padding && rng.chance(1, 2) {
        Window::square(3, 2, 1)
    } else {
        Window::square(2, 2, 0)
    };
    let t2 = if rng.chance(1, 2) {
        def.push(LayerDef {
            window: pool_win,
            ..LayerDef::new(LayerKind::MaxPool, t1)
        })
    } else {
        let l = LayerDef {
            window: pool_win,
            ..LayerDef::new(LayerKind::AvgPool, t1)
        };
        let taps = pool_win.kh as u64 * pool_win.kw as u64;
        def.push(requantized(
            &mut rng,
            l,
            c1 as usize,
            taps * l1_levels as u64 / 2,
        ))
    };
    let t2_levels = def.tensors().expect("shapes chain")[t2 as usize].levels;

    // L2: "same" grouped conv, c1 -> c1.
    let divisors: Vec<u16> = (1..=c1).filter(|g| c1.is_multiple_of(*g)).collect();
    let groups = rng.pick(&divisors);
    let k = if padding { 3 } else { 1 };
    let win = Window::square(k, 1, (k - 1) / 2);
    let b = bits(&mut rng);
    let fan_in = k as usize * k as usize * (c1 / groups) as usize;
    let typ = gen::typical(fan_in, t2_levels, b);
    let l = LayerDef::conv2d(
        t2,
        c1,
        win,
        groups,
        b,
        gen::weights(&mut rng, c1 as usize * fan_in, b),
        Some(gen::bias(&mut rng, c1 as usize, typ)),
        Vec::new(),
    );
    let l = requantized(&mut rng, l, c1 as usize, typ);
    let l3_levels = l.levels;
    let t3 = def.push(l);

    // L3: residual add of the pool output and the conv output.
    let add_weights = [rng.int(-64, 256) as i16, rng.int(-64, 256) as i16];
    let (a, bb) = if rng.chance(1, 2) { (t2, t3) } else { (t3, t2) };
    let typ = (t2_levels.max(l3_levels) as u64 * 128).max(1);
    let l = LayerDef {
        input2: Some(bb),
        add_weights,
        ..LayerDef::new(LayerKind::Add, a)
    };
    let l = requantized(&mut rng, l, c1 as usize, typ);
    let add_levels = l.levels;
    let t4 = def.push(l);

    // L4: global average pool or flatten.
    let s4 = shapes(&def)[t4 as usize];
    let t5 = if rng.chance(1, 2) {
        let l = LayerDef::new(LayerKind::GlobalAvgPool, t4);
        let typ = (s4.h as u64 * s4.w as u64 * add_levels as u64 / 2).max(1);
        def.push(requantized(&mut rng, l, c1 as usize, typ))
    } else {
        def.push(LayerDef::new(LayerKind::Flatten, t4))
    };

    // L5: dense -> 10, raw.
    let n = shapes(&def)[t5 as usize].len();
    let b = bits(&mut rng);
    let mut l = LayerDef::dense(
        t5,
        10,
        b,
        gen::weights(&mut rng, 10 * n, b),
        Some(gen::bias(&mut rng, 10, gen::typical(n, 255, b))),
        Vec::new(),
    );
    l.raw_output = true;
    def.push(l);
    def
}

/// Run `def` through the runtime on each input; return the outputs and the per-layer counters of
/// the last run.
fn device(def: &ModelDef, inputs: &[Vec<u8>], rng: &mut Rng) -> (Vec<Vec<i32>>, Vec<LayerOps>) {
    let bytes = write(def).unwrap_or_else(|e| panic!("writer refused the network: {e}"));
    let model = Model::load(&bytes).unwrap_or_else(|e| panic!("load failed: {e}"));
    let mut arena: Vec<u8> = (0..model.arena_bytes())
        .map(|_| rng.next_u64() as u8)
        .collect();
    let mut interp = model
        .bind(&mut arena)
        .expect("arena of exactly arena_bytes()");
    let outs = inputs
        .iter()
        .map(|input| {
            let mut out = vec![0i32; model.output_len()];
            interp.run(input, &mut out).expect("run");
            out
        })
        .collect();
    let ops = interp.layer_ops().to_vec();
    let total = interp.total_ops();
    assert_eq!(total.macs, ops.iter().map(|o| o.macs).sum::<u64>());
    assert_eq!(total.accumulates, 0);
    (outs, ops)
}

#[test]
fn network_matches_oracle() {
    let mut informative = 0usize;
    let mut code_tensors = 0usize;
    for seed in 0..12u64 {
        for bits in (2..=8).map(Some).chain([None]) {
            for padding in [false, true] {
                let def = network(seed, bits, padding);
                let mut rng = Rng::new(seed ^ 0x5eed);
                let inputs: Vec<Vec<u8>> = (0..3)
                    .map(|_| gen::codes(&mut rng, def.input.shape.len(), def.input.levels))
                    .collect();
                let (outs, ops) = device(&def, &inputs, &mut rng);
                let macs = oracle::layer_macs(&def);
                for (input, out) in inputs.iter().zip(&outs) {
                    let trace = oracle::execute(&def, input);
                    assert_eq!(
                        out.as_slice(),
                        trace.output(),
                        "seed {seed} bits {bits:?} padding {padding}: output differs\n{def:#?}"
                    );
                    assert_eq!(trace.macs, macs);
                    // Count intermediate code tensors that carry information (not one value).
                    for t in &trace.tensors[1..trace.tensors.len() - 1] {
                        code_tensors += 1;
                        if t.values.iter().any(|&v| v != t.values[0]) {
                            informative += 1;
                        }
                    }
                }
                let counted: Vec<u64> = ops.iter().map(|o| o.macs).collect();
                assert_eq!(
                    counted, macs,
                    "seed {seed} bits {bits:?} padding {padding}: MAC counters"
                );
                assert!(ops.iter().all(|o| o.accumulates == 0));
            }
        }
    }
    // The comparison would be weak if requantization clamped most tensors to one value.
    assert!(
        informative * 10 >= code_tensors * 7,
        "only {informative} of {code_tensors} intermediate tensors hold more than one value"
    );
}

/// `cost::macs` counts padded taps as computed; the kernels skip them. Without padding the two
/// agree exactly, layer by layer; with padding the counters are strictly fewer (every padded net
/// here has a 3x3 conv with padding 1).
#[test]
fn cost_macs_match_counters() {
    for seed in 100..116u64 {
        for padding in [false, true] {
            let def = network(seed, None, padding);
            let geoms = def.geometries().expect("shapes chain");
            let analytic: Vec<u64> = geoms.iter().map(cost::macs).collect();
            let mut rng = Rng::new(seed);
            let input = gen::codes(&mut rng, def.input.shape.len(), def.input.levels);
            let (_, ops) = device(&def, &[input], &mut rng);
            let counted: Vec<u64> = ops.iter().map(|o| o.macs).collect();
            let (a, c): (u64, u64) = (analytic.iter().sum(), counted.iter().sum());
            assert!(a > 0);
            if padding {
                assert!(
                    c < a,
                    "seed {seed}: padded net counted {c} of {a} analytic MACs"
                );
                for (i, (x, y)) in counted.iter().zip(&analytic).enumerate() {
                    assert!(x <= y, "seed {seed} layer {i}: counted {x} > analytic {y}");
                }
                assert_eq!(counted, oracle::layer_macs(&def), "seed {seed}");
            } else {
                assert_eq!(counted, analytic, "seed {seed}: per-layer MACs");
                assert_eq!(c, a, "seed {seed}: total MACs");
            }
        }
    }
}

/// A random layer graph: every layer reads any earlier tensor (adds pair tensors of one shape),
/// so tensors live long, flattens alias arena tensors and the network input, and the arena plan
/// reuses memory in many patterns. Each graph runs through the runtime against the oracle.
#[test]
fn random_graphs_match_oracle() {
    for seed in 0..300u64 {
        let mut rng = Rng::new(0x6a4f ^ seed.wrapping_mul(0x9e37_79b9));
        let (h, w) = (rng.int(1, 5) as u16, rng.int(1, 5) as u16);
        let chans = [rng.int(1, 4) as u16, rng.int(1, 4) as u16];
        let in_levels = gen::levels(&mut rng);
        let mut def = ModelDef::new(Shape::new(h, w, chans[0]), in_levels, 0.5);
        let layers = rng.int(2, 14);
        for i in 0..layers {
            let tensors = def.tensors().expect("shapes chain");
            let last = i + 1 == layers;
            let t = rng.int(0, tensors.len() as i64 - 1) as u16;
            let x = tensors[t as usize].shape;
            let lv = tensors[t as usize].levels;
            let bits = rng.int(2, 8) as u8;
            let raw = last && rng.chance(1, 2);
            let mut l = match rng.int(0, 7) {
                0 | 1 => {
                    // A "same" conv to one of two channel counts, grouped when it can be.
                    let oc = rng.pick(&chans);
                    let g = if x.c == oc && rng.chance(1, 2) { oc } else { 1 };
                    let k = rng.pick(&[1u8, 3]);
                    let win = Window::square(k, 1, k / 2);
                    let fan_in = k as usize * k as usize * (x.c / g) as usize;
                    let typ = gen::typical(fan_in, lv, bits);
                    let mut l = LayerDef::conv2d(
                        t,
                        oc,
                        win,
                        g,
                        bits,
                        gen::weights(&mut rng, oc as usize * fan_in, bits),
                        Some(gen::bias(&mut rng, oc as usize, typ)),
                        Vec::new(),
                    );
                    if !raw {
                        l = requantized(&mut rng, l, oc as usize, typ);
                    }
                    l
                }
                2 => {
                    // An add of t with a tensor of the same shape (possibly itself).
                    let same: Vec<u16> = (0..tensors.len() as u16)
                        .filter(|&u| tensors[u as usize].shape == x)
                        .collect();
                    let u = rng.pick(&same);
                    let l = LayerDef {
                        input2: Some(u),
                        add_weights: [rng.int(-200, 200) as i16, rng.int(-200, 200) as i16],
                        ..LayerDef::new(LayerKind::Add, t)
                    };
                    if raw {
                        l
                    } else {
                        requantized(&mut rng, l, x.c as usize, 255 * 100)
                    }
                }
                3 if !raw => LayerDef {
                    window: Window::square(3, 1, 1),
                    ..LayerDef::new(LayerKind::MaxPool, t)
                },
                4 => {
                    let l = LayerDef {
                        window: Window::square(3, 1, 1),
                        ..LayerDef::new(LayerKind::AvgPool, t)
                    };
                    if raw {
                        l
                    } else {
                        requantized(&mut rng, l, x.c as usize, 9 * lv as u64 / 2)
                    }
                }
                5 if !raw => LayerDef::new(LayerKind::Flatten, t),
                6 => {
                    let l = LayerDef::new(LayerKind::GlobalAvgPool, t);
                    if raw {
                        l
                    } else {
                        let typ = x.h as u64 * x.w as u64 * lv as u64 / 2;
                        requantized(&mut rng, l, x.c as usize, typ)
                    }
                }
                _ => {
                    let n = x.len();
                    let other = rng.int(1, 12) as u16;
                    let out = rng.pick(&[x.len() as u16, other]);
                    let typ = gen::typical(n, lv, bits);
                    let l = LayerDef::dense(
                        t,
                        out,
                        bits,
                        gen::weights(&mut rng, out as usize * n, bits),
                        Some(gen::bias(&mut rng, out as usize, typ)),
                        Vec::new(),
                    );
                    if raw {
                        l
                    } else {
                        requantized(&mut rng, l, out as usize, typ)
                    }
                }
            };
            l.raw_output = raw;
            if rng.chance(1, 5) {
                l.scratch_bytes = rng.int(1, 40) as u32;
            }
            def.push(l);
        }
        let inputs: Vec<Vec<u8>> = (0..2)
            .map(|_| gen::codes(&mut rng, def.input.shape.len(), def.input.levels))
            .collect();
        let (outs, ops) = device(&def, &inputs, &mut rng);
        for (input, out) in inputs.iter().zip(&outs) {
            let trace = oracle::execute(&def, input);
            assert_eq!(
                out.as_slice(),
                trace.output(),
                "graph {seed}: output differs\n{def:#?}"
            );
        }
        let counted: Vec<u64> = ops.iter().map(|o| o.macs).collect();
        assert_eq!(
            counted,
            oracle::layer_macs(&def),
            "graph {seed}: MAC counters"
        );
    }
}

/// The writer runs layers in place where that makes the arena smaller (here with no limit on
/// the instructions that costs): the arena never grows,
/// shrinks on some of these networks, and every output equals the plan's without in-place
/// layers (and the oracle's: `network_matches_oracle` runs the same files).
#[test]
fn in_place_layers_shrink_the_arena_and_change_no_output() {
    let (mut in_place, mut smaller) = (0usize, 0usize);
    for seed in 0..40u64 {
        let def = network(seed, None, seed % 2 == 0);
        let on = write_planned(&def, Budget::Instructions(u64::MAX)).unwrap();
        let off = write_planned(&def, Budget::None).unwrap();
        let (m_on, m_off) = (Model::load(&on).unwrap(), Model::load(&off).unwrap());
        let rows = |m: &Model<'_>| -> Vec<u8> {
            (0..m.file().layer_count())
                .map(|i| m.file().layer(i).in_place_rows)
                .collect()
        };
        assert!(rows(&m_off).iter().all(|&r| r == 0));
        assert!(m_on.arena_bytes() <= m_off.arena_bytes(), "seed {seed}");
        in_place += rows(&m_on).iter().filter(|&&r| r > 0).count();
        smaller += usize::from(m_on.arena_bytes() < m_off.arena_bytes());
        let mut rng = Rng::new(seed);
        for _ in 0..3 {
            let input = gen::codes(&mut rng, def.input.shape.len(), def.input.levels);
            let outs: Vec<Vec<i32>> = [&m_on, &m_off]
                .iter()
                .map(|m| {
                    let mut arena: Vec<u8> =
                        (0..m.arena_bytes()).map(|_| rng.next_u64() as u8).collect();
                    let mut out = vec![0i32; m.output_len()];
                    m.bind(&mut arena).unwrap().run(&input, &mut out).unwrap();
                    out
                })
                .collect();
            assert_eq!(outs[0], outs[1], "seed {seed}: in place changed the output");
        }
    }
    assert!(
        in_place > 0 && smaller > 0,
        "{in_place} in-place layers, {smaller} smaller arenas"
    );
}
