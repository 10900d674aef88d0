//! Pools and residual adds: the optimized kernels (four channels per word, sums of spike counts
//! kept exactly) against the reference, at both sides of their lane bounds and on random
//! shapes, weights, requantizers and levels.

use bitspike_core::def::random::Rng;
use bitspike_core::format::I32s;
use bitspike_core::layer::{Geometry, LayerKind, Shape, Window};
use bitspike_rt::kernels::{optimized, pool, reference, Stage};
use proptest::prelude::*;

fn levels() -> impl Strategy<Value = u8> {
    prop_oneof![Just(1u8), Just(3), Just(15), Just(255), 1u8..=255]
}

/// Average pooling sums four channels at a time in 16-bit lanes up to 257 window positions and
/// channel by channel above: at both sides of the bound, with every code at its top (the lanes'
/// worst case), the sums must be the reference's.
#[test]
fn avg_pool_large_windows_equal_reference() {
    // 256 and 258 positions (2 x 128, 2 x 129) sit on either side of the bound.
    let windows = [
        (16u8, 16u8, 4u16),
        (16, 16, 8),
        (2, 128, 4),
        (2, 129, 4),
        (17, 17, 8),
    ];
    for (kh, kw, c) in windows.into_iter().chain([(17, 17, 3)]) {
        let window = Window {
            kh,
            kw,
            sh: 1,
            sw: 1,
            ph: 0,
            pw: 0,
        };
        let g = avg_pool_geometry(window, Shape::new(kh as u16 + 1, kw as u16 + 2, c));
        let (input, output) = (g.input, g.output);
        let codes = vec![255u8; input.len()];
        let n = c as usize;
        // Multiplier 0.5, shift 8: the code is the sum / 512, so a wrapped lane would show.
        let mult: Vec<u8> = (0..n).flat_map(|_| (1i32 << 30).to_le_bytes()).collect();
        let shifts = vec![8u8; n];
        let st = Stage::Requantize {
            multipliers: I32s::new(&mult),
            shifts: &shifts,
            offset: 0,
            levels: 255,
        };
        let (mut a, mut b) = (vec![0u8; output.len()], vec![1u8; output.len()]);
        pool::avg_pool(&g, &st, &codes, 255, &mut a);
        reference::avg_pool(&g, &st, &codes, &mut b);
        assert_eq!(a, b, "{kh}x{kw} window over {c} channels");
        let sum = kh as usize * kw as usize * 255;
        assert_eq!(b[0] as usize, ((sum + 256) / 512).min(255), "{kh}x{kw}");
    }
}

/// An average pool of `window` over `input`.
fn avg_pool_geometry(window: Window, input: Shape) -> Geometry {
    let output = bitspike_core::layer::infer_output(LayerKind::AvgPool, window, 1, 0, input)
        .expect("a valid pool");
    Geometry {
        kind: LayerKind::AvgPool,
        window,
        groups: 1,
        input,
        output,
    }
}

/// The 2x2 stride-2 pool (the common case, a path of its own) with every shift kind the
/// prepared requantizers take (left shifts that cannot saturate on a window sum, shift 0, right
/// shifts) and one left shift large enough to saturate (the general step), mixed per channel.
#[test]
fn avg_pool_two_by_two_equals_reference() {
    let mut rng = Rng::new(22);
    for shifts in [
        vec![-2i8, -2, -2, -2, 0, 0, 0, 0],
        vec![3, 3, 3, 3, 1, 1, 1, 1],
        vec![-21, 0, 4, -1, 0, 0, 0, 0],
    ] {
        let g = avg_pool_geometry(Window::square(2, 2, 0), Shape::new(6, 10, 8));
        let (input, output) = (g.input, g.output);
        let codes = rng.codes(input.len(), 255);
        let mult: Vec<u8> = (0..8)
            .flat_map(|_| (rng.range(1 << 29, i32::MAX as i64) as i32).to_le_bytes())
            .collect();
        let shifts: Vec<u8> = shifts.iter().map(|&s| s as u8).collect();
        let st = Stage::Requantize {
            multipliers: I32s::new(&mult),
            shifts: &shifts,
            offset: 2,
            levels: 200,
        };
        let (mut a, mut b) = (vec![0u8; output.len()], vec![1u8; output.len()]);
        pool::avg_pool(&g, &st, &codes, 255, &mut a);
        reference::avg_pool(&g, &st, &codes, &mut b);
        assert_eq!(a, b, "shifts {shifts:?}");
    }
}

/// The 2x2 pool of spike counts (QAC's average pools): with every channel's output step giving
/// back each sum of four codes up to `levels`, the kernel adds four words byte by byte and
/// stores the sums; it must agree with the reference when every channel keeps its sums, when
/// one channel of a group of four does not, and when the sums no longer fit a byte.
#[test]
fn avg_pool_of_counts_keeps_the_sums() {
    let mut rng = Rng::new(7);
    let g = avg_pool_geometry(Window::square(2, 2, 0), Shape::new(6, 10, 8));
    // Multiplier 2^30 after a left shift of 1: x exactly; 2^29: x / 2, rounded.
    let (keep, half) = ((1i32 << 30).to_le_bytes(), (1i32 << 29).to_le_bytes());
    // And a left shift so large that every sum but 0 saturates to the top code, which is the
    // largest sum: it keeps 0 and the largest sum, and nothing between.
    for (levels, channels, shift) in [
        (3u8, [keep; 8], -1i8),
        (63, [keep; 8], -1),
        (2, [keep, keep, half, keep, keep, keep, keep, keep], -1),
        (64, [keep; 8], -1),
        (3, [keep; 8], -31),
    ] {
        let codes = rng.codes(g.input.len(), levels);
        let mult: Vec<u8> = channels.concat();
        let shifts = [shift as u8; 8];
        let st = Stage::Requantize {
            multipliers: I32s::new(&mult),
            shifts: &shifts,
            offset: 0,
            levels: 4 * levels.min(63),
        };
        let (mut a, mut b) = (vec![0u8; g.output.len()], vec![1u8; g.output.len()]);
        pool::avg_pool(&g, &st, &codes, levels, &mut a);
        reference::avg_pool(&g, &st, &codes, &mut b);
        assert_eq!(a, b, "levels {levels}, shift {shift}");
        if channels == [keep; 8] && shift == -1 {
            // The sums themselves (a pool of counts loses nothing).
            let at = |y: usize, x: usize, c: usize| codes[(y * 10 + x) * 8 + c] as u32;
            let sum = at(0, 0, 5) + at(0, 1, 5) + at(1, 0, 5) + at(1, 1, 5);
            assert_eq!(a[5] as u32, sum.min(4 * levels.min(63) as u32));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// The residual add against the reference: random shapes, weights, per-channel requantizers
    /// (left and right shifts), levels, and a per-channel bias (zero points) or none.
    #[test]
    fn add_equals_reference(h in 1u16..=6, w in 1u16..=6, c in 1u16..=20, seed in any::<u64>(), levels in levels(), wa in any::<i16>(), wb in any::<i16>(), with_bias in any::<bool>()) {
        let shape = Shape::new(h, w, c);
        let g = Geometry { kind: LayerKind::Add, window: Window::default(), groups: 1, input: shape, output: shape };
        let mut rng = Rng::new(seed);
        let a = rng.codes(shape.len(), 255);
        let b = rng.codes(shape.len(), 255);
        let n = c as usize;
        let mult: Vec<u8> = (0..n)
            .flat_map(|_| (rng.range(0, i32::MAX as i64) as i32).to_le_bytes())
            .collect();
        let shifts: Vec<u8> = (0..n).map(|_| rng.range(-4, 20) as i8 as u8).collect();
        let offset = rng.range(-20, 20) as i32;
        let st = Stage::Requantize { multipliers: I32s::new(&mult), shifts: &shifts, offset, levels };
        // Some channels' bias is 0 (the fast loop), the others' not.
        let bias: Vec<u8> = (0..n)
            .flat_map(|_| {
                let v = if rng.range(0, 2) == 0 { 0 } else { rng.range(-300_000, 300_000) as i32 };
                v.to_le_bytes()
            })
            .collect();
        let bias = with_bias.then(|| I32s::new(&bias));
        let (mut x, mut y) = (vec![0x5Au8; shape.len()], vec![0xA5u8; shape.len()]);
        optimized::add(&g, [wa, wb], bias, &st, &a, &b, &mut x);
        reference::add(&g, [wa, wb], bias, &st, &a, &b, &mut y);
        // The reference is the contract: requantize(a wa + b wb + bias) per element.
        for i in 0..shape.len() {
            let ch = i % n;
            let acc = (a[i] as i32 * wa as i32)
                .wrapping_add(b[i] as i32 * wb as i32)
                .wrapping_add(bias.map_or(0, |v| v.get(ch)));
            let s = shifts[ch] as i8;
            let m = i32::from_le_bytes([mult[4 * ch], mult[4 * ch + 1], mult[4 * ch + 2], mult[4 * ch + 3]]);
            prop_assert_eq!(y[i], bitspike_core::quant::requantize(acc, m, s, offset, levels));
        }
        prop_assert_eq!(x, y);
    }
}
