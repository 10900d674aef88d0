//! Deterministic model builders: the committed version-1 fixture and small random networks.

use bitspike_core::def::random::{requant_for, Rng};
use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::layer::{LayerKind, Shape, Window};

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
