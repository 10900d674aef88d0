//! The built-in demo network: a small residual CNN for 28x28x1 inputs with deterministic random
//! weights. It exercises every layer kind the runtime has, at mixed bit widths, so that the main
//! job shows the whole path (definition, export, validated load, integer inference, counters and
//! cost figures) before a trained model replaces it.

use bitspike_core::def::random::{requant_for, Rng};
use bitspike_core::def::{LayerDef, ModelDef};
use bitspike_core::layer::{LayerKind, Shape, Window};

/// The demo network's input shape.
pub const INPUT: Shape = Shape::new(28, 28, 1);

/// Build the demo network from `seed`.
///
/// ```text
/// 28x28x1 -> conv3x3/2 8b (8) -> conv3x3 4b (8) -> conv3x3 4b (8) -> add(skip) -> maxpool2
///         -> depthwise conv3x3 3b (8) -> conv1x1 2b (16) -> avgpool2 -> gap -> flatten
///         -> dense 8b (10, raw logits)
/// ```
pub fn model(seed: u64) -> ModelDef {
    let mut rng = Rng::new(seed);
    let mut m = ModelDef::new(INPUT, 255, 1.0 / 255.0);
    let conv = |m: &mut ModelDef,
                rng: &mut Rng,
                input: u16,
                cin: usize,
                cout: u16,
                window: Window,
                groups: u16,
                bits: u8,
                in_levels: f64| {
        let fan_in = window.kh as usize * window.kw as usize * cin / groups as usize;
        let n = cout as usize * fan_in;
        let w = rng.weights(n, bits);
        let wmax = (1i32 << (bits - 1)) as f64;
        let span = (fan_in as f64).sqrt() * wmax * in_levels;
        let bias = Some(
            (0..cout)
                .map(|_| rng.range(0, (span / 4.0) as i64) as i32)
                .collect(),
        );
        let rq = requant_for(rng, cout as usize, span, 15);
        m.push(
            LayerDef::conv2d(input, cout, window, groups, bits, w, bias, rq).with_output(15, 0.1),
        )
    };
    let t1 = conv(
        &mut m,
        &mut rng,
        0,
        1,
        8,
        Window::square(3, 2, 1),
        1,
        8,
        255.0,
    );
    let t2 = conv(
        &mut m,
        &mut rng,
        t1,
        8,
        8,
        Window::square(3, 1, 1),
        1,
        4,
        15.0,
    );
    let t3 = conv(
        &mut m,
        &mut rng,
        t2,
        8,
        8,
        Window::square(3, 1, 1),
        1,
        4,
        15.0,
    );
    let mut add = LayerDef::new(LayerKind::Add, t1).with_output(15, 0.2);
    add.input2 = Some(t3);
    add.add_weights = [1, 1];
    add.requant = requant_for(&mut rng, 8, 30.0, 15);
    let t4 = m.push(add);
    let mut mp = LayerDef::new(LayerKind::MaxPool, t4);
    mp.window = Window::square(2, 2, 0);
    let t5 = m.push(mp);
    let t6 = conv(
        &mut m,
        &mut rng,
        t5,
        8,
        8,
        Window::square(3, 1, 1),
        8,
        3,
        15.0,
    );
    let t7 = conv(
        &mut m,
        &mut rng,
        t6,
        8,
        16,
        Window::square(1, 1, 0),
        1,
        2,
        15.0,
    );
    let mut ap = LayerDef::new(LayerKind::AvgPool, t7).with_output(15, 0.1);
    ap.window = Window::square(2, 2, 0);
    ap.requant = requant_for(&mut rng, 16, 4.0 * 15.0, 15);
    let t8 = m.push(ap);
    let mut gap = LayerDef::new(LayerKind::GlobalAvgPool, t8).with_output(15, 0.1);
    gap.requant = requant_for(&mut rng, 16, 9.0 * 15.0, 15);
    let t9 = m.push(gap);
    let t10 = m.push(LayerDef::new(LayerKind::Flatten, t9));
    let w = rng.weights(10 * 16, 8);
    let mut dense = LayerDef::dense(t10, 10, 8, w, None, Vec::new());
    dense.raw_output = true;
    dense.scale = 0.01;
    m.push(dense);
    m
}

/// Deterministic demo inputs: a blank image, a bright square, a cross and noise.
pub fn inputs(seed: u64) -> Vec<(&'static str, Vec<u8>)> {
    let n = INPUT.len();
    let w = INPUT.w as usize;
    let square: Vec<u8> = (0..n)
        .map(|i| {
            let (y, x) = (i / w, i % w);
            if (8..20).contains(&y) && (8..20).contains(&x) {
                255
            } else {
                0
            }
        })
        .collect();
    let cross: Vec<u8> = (0..n)
        .map(|i| {
            let (y, x) = (i / w, i % w);
            if y.abs_diff(x) < 2 || (y + x).abs_diff(27) < 2 {
                255
            } else {
                0
            }
        })
        .collect();
    let mut rng = Rng::new(seed ^ 0x5eed);
    vec![
        ("blank", vec![0; n]),
        ("square", square),
        ("cross", cross),
        ("noise", rng.codes(n, 255)),
    ]
}
