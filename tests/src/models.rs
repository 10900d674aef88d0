//! Deterministic model builders: the committed version-1 fixture and small random networks.

use bitspike_core::def::random::{requant_for, Rng};
use bitspike_core::def::{LayerDef, ModelDef, Requant, SpikingDef};
use bitspike_core::layer::{LayerKind, Shape, Window};

use crate::oracle::gen;

/// The version-1 fixture: every layer kind once, 8x8x1 input, deterministic weights.
///
/// ```text
/// t0 8x8x1 (L=255)
/// L0 conv 3x3 s1 p1, 1->4, 4-bit, bias      -> t1 8x8x4 (L=15)
/// L1 conv 3x3 s1 p1 depthwise, 3-bit, bias  -> t2 8x8x4 (L=15)
/// L2 add(t1, t2)                            -> t3 8x8x4 (L=15)
/// L3 maxpool 2x2 s2                         -> t4 4x4x4 (L=15)
/// L4 avgpool 3x3 s2 p1                      -> t5 2x2x4 (L=15)
/// L5 conv 1x1, 4->8, 2-bit, bias            -> t6 2x2x8 (L=7)
/// L6 global average pool                    -> t7 1x1x8 (L=7)
/// L7 flatten                                -> t8 1x1x8
/// L8 dense 8->10, 8-bit, bias, raw i32      -> t9 1x1x10
/// ```
pub fn fixture_model() -> ModelDef {
    let mut rng = Rng::new(0xb175_b1ce);
    let mut m = ModelDef::new(Shape::new(8, 8, 1), 255, 1.0 / 255.0);
    let bias = |rng: &mut Rng, n: usize, span: i64| -> Option<Vec<i32>> {
        Some((0..n).map(|_| rng.range(-span, span) as i32).collect())
    };

    let w = rng.weights(4 * 9, 4);
    let b = bias(&mut rng, 4, 500);
    let rq = requant_for(&mut rng, 4, 255.0 * 7.0 * 3.0, 15);
    let t1 = m
        .push(LayerDef::conv2d(0, 4, Window::square(3, 1, 1), 1, 4, w, b, rq).with_output(15, 0.1));

    let w = rng.weights(4 * 9, 3);
    let b = bias(&mut rng, 4, 20);
    let rq = requant_for(&mut rng, 4, 40.0, 15);
    let t2 = m.push(
        LayerDef::conv2d(t1, 4, Window::square(3, 1, 1), 4, 3, w, b, rq).with_output(15, 0.1),
    );

    let mut add = LayerDef::new(LayerKind::Add, t1).with_output(15, 0.2);
    add.input2 = Some(t2);
    add.add_weights = [3, 2];
    add.requant = requant_for(&mut rng, 4, 75.0, 15);
    let t3 = m.push(add);

    let mut mp = LayerDef::new(LayerKind::MaxPool, t3);
    mp.window = Window::square(2, 2, 0);
    let t4 = m.push(mp);

    let mut ap = LayerDef::new(LayerKind::AvgPool, t4).with_output(15, 0.2);
    ap.window = Window::square(3, 2, 1);
    ap.requant = requant_for(&mut rng, 4, 9.0 * 15.0, 15);
    ap.offset = 1;
    let t5 = m.push(ap);

    let w = rng.weights(8 * 4, 2);
    let b = bias(&mut rng, 8, 6);
    let rq = requant_for(&mut rng, 8, 12.0, 7);
    let t6 = m
        .push(LayerDef::conv2d(t5, 8, Window::square(1, 1, 0), 1, 2, w, b, rq).with_output(7, 0.3));

    let mut gap = LayerDef::new(LayerKind::GlobalAvgPool, t6).with_output(7, 0.3);
    gap.requant = requant_for(&mut rng, 8, 12.0, 7);
    let t7 = m.push(gap);

    let t8 = m.push(LayerDef::new(LayerKind::Flatten, t7));

    let w = rng.weights(10 * 8, 8);
    let b = bias(&mut rng, 10, 1000);
    let mut dense = LayerDef::dense(t8, 10, 8, w, b, Vec::new());
    dense.raw_output = true;
    dense.scale = 0.01;
    m.push(dense);
    m
}

/// The input vectors the fixture's expected outputs were computed on.
pub fn fixture_inputs() -> Vec<Vec<u8>> {
    let mut rng = Rng::new(7);
    let mut v: Vec<Vec<u8>> = (0..4).map(|_| rng.codes(64, 255)).collect();
    v.push(vec![0; 64]);
    v.push(vec![255; 64]);
    v
}

/// Where the committed fixture lives, relative to the `tests` crate.
pub const FIXTURE_PATH: &str = "fixtures/model-v1.bsm";
/// Where the fixture's expected outputs live: one line per input, outputs separated by spaces.
pub const FIXTURE_EXPECTED_PATH: &str = "fixtures/model-v1.expected";
/// The fixture's golden vectors (inputs and expected outputs), as board apps embed them.
pub const FIXTURE_VECTORS_PATH: &str = "fixtures/model-v1.bsv";

/// Random spiking parameters for a layer with `channels` outputs whose accumulator is typically
/// `typical`, with a membrane shift of 0..=6 drawn first ([`crate::generate::spiking_params`]).
fn spiking(rng: &mut gen::Rng, channels: usize, typical: u64, t: u16) -> (SpikingDef, Vec<i32>) {
    let shift = rng.int(0, 6) as u8;
    crate::generate::spiking_params(rng, channels, typical, t, shift)
}

/// A spiking layer: no requantization, counts `0..=t`.
fn spike(mut l: LayerDef, rng: &mut gen::Rng, channels: usize, typical: u64, t: u16) -> LayerDef {
    let (s, bias) = spiking(rng, channels, typical, t);
    l.spiking = Some(s);
    l.bias = Some(bias);
    l.requant = Vec::new();
    l.timesteps = t;
    l.levels = t as u8;
    l
}

/// A random mixed-timestep spiking network (the random parts drawn from `seed`):
///
/// ```text
/// t0 HxWxC input codes (analog, direct encoding: the same current every step)
/// L0 conv 3x3 p1, C -> C1, spiking, T0 steps          -> t1 counts 0..=T0
/// L1 average pool 2x2 s2 as a sum (levels 4*T0)       -> t2
/// L2 conv 3x3 p1 (maybe grouped), spiking, T2 steps   -> t3 counts 0..=T2
/// L3 flatten                                          -> t4
/// L4 dense, spiking, T4 steps                         -> t5 counts 0..=T4
/// L5 dense -> 10, raw i32 output                      -> t6
/// ```
pub fn spiking_model(seed: u64) -> ModelDef {
    let mut rng = gen::Rng::new(seed);
    let (h, w, c) = (
        rng.int(4, 9) as u16 * 2,
        rng.int(4, 9) as u16 * 2,
        rng.int(1, 3) as u16,
    );
    let in_levels = gen::levels(&mut rng);
    let mut def = ModelDef::new(Shape::new(h, w, c), in_levels, 1.0 / 255.0);
    let mut steps = || rng.int(1, 8) as u16;
    let (t0, t2, t4) = (steps(), steps(), steps());

    let c1 = rng.int(2, 6) as u16;
    let b = rng.int(2, 8) as u8;
    let fan_in = 9 * c as usize;
    let l = LayerDef::conv2d(
        0,
        c1,
        Window::square(3, 1, 1),
        1,
        b,
        gen::weights(&mut rng, c1 as usize * fan_in, b),
        None,
        Vec::new(),
    );
    let typ = gen::typical(fan_in, in_levels, b);
    let t1 = def.push(spike(l, &mut rng, c1 as usize, typ, t0));

    // Sum pooling: the identity requantization (2^30 with a left shift of 1 is exactly 1).
    let mut pool = LayerDef::new(LayerKind::AvgPool, t1).with_output(4 * t0 as u8, 1.0);
    pool.window = Window::square(2, 2, 0);
    pool.requant = vec![
        Requant {
            multiplier: 1 << 30,
            shift: -1,
        };
        c1 as usize
    ];
    let t2_ = def.push(pool);

    let groups = if c1.is_multiple_of(2) && rng.chance(1, 2) {
        2
    } else {
        1
    };
    let c3 = groups * rng.int(1, 4) as u16;
    let b = rng.int(2, 8) as u8;
    let fan_in = 9 * (c1 / groups) as usize;
    let l = LayerDef::conv2d(
        t2_,
        c3,
        Window::square(3, 1, 1),
        groups,
        b,
        gen::weights(&mut rng, c3 as usize * fan_in, b),
        None,
        Vec::new(),
    );
    let typ = gen::typical(fan_in, 4 * t0 as u8, b);
    let t3 = def.push(spike(l, &mut rng, c3 as usize, typ, t2));

    let t4_ = def.push(LayerDef::new(LayerKind::Flatten, t3));
    let n = (h / 2) as usize * (w / 2) as usize * c3 as usize;
    let hidden = rng.int(4, 16) as u16;
    let b = rng.int(2, 8) as u8;
    let l = LayerDef::dense(
        t4_,
        hidden,
        b,
        gen::weights(&mut rng, hidden as usize * n, b),
        None,
        Vec::new(),
    );
    let typ = gen::typical(n, t2 as u8, b);
    let t5 = def.push(spike(l, &mut rng, hidden as usize, typ, t4));

    let b = rng.int(2, 8) as u8;
    let mut out = LayerDef::dense(
        t5,
        10,
        b,
        gen::weights(&mut rng, 10 * hidden as usize, b),
        Some(gen::bias(&mut rng, 10, 100)),
        Vec::new(),
    );
    out.raw_output = true;
    def.push(out);
    def
}

/// The seed of the committed spiking fixture.
pub const SNN_FIXTURE_SEED: u64 = 0x005b_1ce0;
/// The committed spiking fixture (a [`spiking_model`]), relative to the tests crate.
pub const SNN_FIXTURE_PATH: &str = "fixtures/snn-v1.bsm";
/// Its golden vectors.
pub const SNN_FIXTURE_VECTORS_PATH: &str = "fixtures/snn-v1.bsv";
