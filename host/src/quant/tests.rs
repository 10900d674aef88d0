use super::*;
use tch::{Device, Kind};

fn vs() -> nn::VarStore {
    nn::VarStore::new(Device::Cpu)
}

fn t(v: &[f32]) -> Tensor {
    Tensor::from_slice(v)
}

fn vals(x: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(x.flatten(0, -1).to_kind(Kind::Float)).unwrap()
}

#[test]
fn lloyd_steps_reproduce_the_supplement_tables() {
    let _one = crate::seeded();
    // One-Shot MPS eq. S10 (normal, 2^b levels) and S12 (half-normal, 2^b levels). At 2 and
    // 4 bits Lloyd's algorithm gives the tables' steps; at 8 bits it converges to wider
    // outer levels than the table's (0.0394 vs 0.0365 for S10: the asymptotic p^(1/3) point
    // density puts the outermost of 256 levels near 5.0 sigma, the table's near 4.65), so
    // there we only check the neighbourhood.
    // Relative tolerances.
    for (bits, s10, s12, tol) in [
        (2u8, 1.0069, 0.6356, 2e-3),
        (4, 0.3644, 0.2131, 5e-3),
        (8, 0.0365, 0.0203, 0.1),
    ] {
        let n = 1usize << bits;
        let a = lloyd_levels_step(n, false);
        let b = lloyd_levels_step(n, true);
        assert!((a / s10 - 1.0).abs() <= tol, "S10 b={bits}: {a}");
        assert!((b / s12 - 1.0).abs() <= tol, "S12 b={bits}: {b}");
    }
    // Our symmetric 2-bit grid has 3 levels: Lloyd-Max's ternary quantizer has them at 0 and
    // +-1.2240 for a standard normal.
    assert!((lloyd_step(2) - 1.2240).abs() < 1e-3);
}

#[test]
fn round_half_up_matches_the_device() {
    let _one = crate::seeded();
    let x = t(&[-1.5, -0.5, 0.5, 1.5, 2.49]);
    assert_eq!(vals(&round_ste(&x)), vec![-1.0, 0.0, 1.0, 2.0, 2.0]);
}

#[test]
fn lsq_weight_forward_and_step_gradient() {
    let _one = crate::seeded();
    let vs = vs();
    let q = WeightQuant::new(&vs.root(), WeightQuantizer::Lsq, 3, 1, true);
    // Set the step by hand: 0.5; 3 bits -> codes -3..=3.
    tch::no_grad(|| {
        let _ = q
            .log_step
            .as_ref()
            .unwrap()
            .shallow_clone()
            .fill_(0.5f64.ln());
        let _ = q.initialised.as_ref().unwrap().shallow_clone().fill_(1.0);
    });
    let w = t(&[0.1, 0.3, -0.8, 1.0, 2.0, -5.0])
        .view([1, 6])
        .set_requires_grad(true);
    let y = q.forward(&w);
    // 0.1/0.5=0.2->0; 0.6->1; -1.6->-2; 2->2; 4->3 (clamped); -10->-3 (clamped)
    assert_eq!(vals(&y), vec![0.0, 0.5, -1.0, 1.0, 1.5, -1.5]);
    y.sum(Kind::Float).backward();
    // LSQ eq. 3: d/ds = round(v) - v inside, -Q or Q outside; times g = 1/sqrt(N Q).
    let v = [0.2f64, 0.6, -1.6, 2.0, 4.0, -10.0];
    let inside: f64 = v
        .iter()
        .map(|&v| {
            if v.abs() < 3.0 {
                (v + 0.5).floor() - v
            } else {
                3.0 * v.signum()
            }
        })
        .sum();
    let g = 1.0 / (6.0f64 * 3.0).sqrt();
    // The parameter is log(s): its gradient is s times the step's.
    let got = q.log_step.as_ref().unwrap().grad().double_value(&[0]) / 0.5;
    assert!((got - inside * g).abs() < 1e-5, "{got} vs {}", inside * g);
    // Straight-through for w: 1 inside the clip range, 0 outside.
    assert_eq!(vals(&w.grad()), vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
}

#[test]
fn lsq_step_gradient_matches_finite_differences_without_scale() {
    let _one = crate::seeded();
    // With the gradient scale removed, the LSQ gradient of sum(q) w.r.t. s is the
    // straight-through derivative; compare with a finite difference of the smooth part
    // (round held fixed) on values away from rounding boundaries.
    let x = t(&[0.26, 0.74, 1.3, -0.9, 9.0]);
    let s = Tensor::from_slice(&[0.5f32]).set_requires_grad(true);
    let f = |s: &Tensor| round_ste(&(&x / s).clamp(-7.0, 7.0)) * s;
    f(&s).sum(Kind::Float).backward();
    let analytic = s.grad().double_value(&[0]);
    // Holding the integer codes fixed (straight-through), q = code(s) * s and for clamped
    // values q = 7 s; the derivative is code - x/s inside, 7 outside.
    let xs = [0.26f64, 0.74, 1.3, -0.9];
    let want: f64 = xs
        .iter()
        .map(|v| ((v / 0.5) + 0.5).floor() - v / 0.5)
        .sum::<f64>()
        + 7.0;
    assert!((analytic - want).abs() < 1e-5, "{analytic} vs {want}");
}

#[test]
fn pact_alpha_gradient_counts_clipped_values() {
    let _one = crate::seeded();
    let vs = vs();
    let q = ActQuant::new(&vs.root(), ActQuantizer::Pact, 2);
    tch::no_grad(|| {
        let _ = q
            .log_param
            .as_ref()
            .unwrap()
            .shallow_clone()
            .fill_(3f64.ln());
        let _ = q.initialised.as_ref().unwrap().shallow_clone().fill_(1.0);
    });
    // L = 3, alpha = 3 -> step 1.
    let x = t(&[-1.0, 0.4, 0.6, 2.5, 3.5, 7.0]).set_requires_grad(true);
    let y = q.forward(&x);
    assert_eq!(vals(&y), vec![0.0, 0.0, 1.0, 3.0, 3.0, 3.0]);
    y.sum(Kind::Float).backward();
    // PACT: d y_q / d alpha = 1 where x >= alpha, else 0 (times alpha for log alpha).
    let g = q.log_param.as_ref().unwrap().grad().double_value(&[0]) / 3.0;
    assert!((g - 2.0).abs() < 1e-5, "{g}");
    assert_eq!(vals(&x.grad()), vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
    assert!((q.step() - 1.0).abs() < 1e-6);
}

#[test]
fn hwgq_forward() {
    let _one = crate::seeded();
    let vs = vs();
    let h = ActQuant::new(&vs.root().sub("h"), ActQuantizer::Hwgq, 2);
    let s = hwgq_step(2);
    let y = h.forward(&t(&[s as f32 * 1.2, 100.0]));
    assert!((vals(&y)[0] as f64 - s).abs() < 1e-6);
    assert!((vals(&y)[1] as f64 - 3.0 * s).abs() < 1e-5);
}

#[test]
fn lsq_activation_initialises_from_data_and_exports_codes() {
    let _one = crate::seeded();
    let vs = vs();
    let q = ActQuant::new(&vs.root(), ActQuantizer::Lsq, 4);
    let x = t(&[1.0, 2.0, 3.0, 4.0]).view([1, 4]);
    let _ = q.forward(&x);
    // 2 * mean|x| / sqrt(15)
    assert!((q.step() - 2.0 * 2.5 / 15f64.sqrt()).abs() < 1e-6);
    let w = WeightQuant::new(&vs.root(), WeightQuantizer::MaxAbs, 4, 2, true);
    let wt = t(&[0.7, -0.34, 0.1, 0.21, -0.4, 0.05]).view([2, 3]);
    let (codes, steps) = w.codes(&wt);
    assert_eq!(codes, vec![7, -3, 1, 4, -7, 1]);
    assert!((steps[0] - 0.1).abs() < 1e-7 && (steps[1] - 0.4 / 7.0).abs() < 1e-7);
    // SSQL's observer: half a code finer, the largest magnitudes still on +-7 (0.7 / s = 7.5
    // rounds half up to 8 and clamps to 7; -0.4 / s = -7.5 rounds up to -7).
    let h = WeightQuant::new(&vs.root(), WeightQuantizer::MaxAbsHalf, 4, 2, true);
    let (codes, steps) = h.codes(&wt);
    assert_eq!(codes, vec![7, -4, 1, 4, -7, 1]);
    assert!((steps[0] - 0.7 / 7.5).abs() < 1e-7 && (steps[1] - 0.4 / 7.5).abs() < 1e-7);
}

#[test]
fn the_mse_clip_by_hand() {
    // 100 values in the bin centred on 1.5 and one outlier at 9.5, 3 levels: the error is
    // 100 (q(1.5) - 1.5)^2 + (9.5 - c)^2 for clips below 9.5, least on the grid at c = 4.9
    // (step 1.6333: 1.5 -> 1.6333, 1.778 + 21.16); the maximum costs 225, 4.5 costs 25.
    let mut counts = vec![0.0; 10];
    counts[1] = 100.0;
    counts[9] = 1.0;
    let c = mse_clip(&[(counts.clone(), 10.0)], 3);
    assert!((c - 4.9).abs() < 1e-9, "clip {c}");
    // Many levels make clipping the outlier the larger cost: the clip moves up.
    assert!(mse_clip(&[(counts, 10.0)], 255) > 9.0);
    assert_eq!(mse_clip(&[], 3), 0.0, "nothing seen");
}

#[test]
fn mse_calibration_fits_its_clip_at_each_bit_width() {
    let _one = crate::seeded();
    let vs = vs();
    let mut q = ActQuant::new(&vs.root(), ActQuantizer::Mse, 2);
    // Half zeros (free at any clip), a bulk below 1 and one outlier at 8.
    let bulk = Tensor::rand([4000], (Kind::Float, tch::Device::Cpu));
    let x = Tensor::cat(
        &[
            Tensor::zeros([4000], (Kind::Float, tch::Device::Cpu)),
            bulk,
            Tensor::from_slice(&[8.0f32]),
        ],
        0,
    );
    q.observe(&x);
    let s2 = q.step();
    assert!(
        s2 < 0.5 && s2 > 0.1,
        "2-bit step {s2}: the outlier is clipped"
    );
    q.set_bits(8).unwrap();
    let s8 = q.step();
    assert!(
        s8 * 255.0 <= 8.0 + 1e-6 && s8 * 255.0 > s2 * 3.0,
        "8-bit clip {}",
        s8 * 255.0
    );
    // The clip is what the checkpoint keeps: a fresh quantizer loading it has the step.
    let vs2 = nn::VarStore::new(tch::Device::Cpu);
    let r = ActQuant::new(&vs2.root(), ActQuantizer::Mse, 8);
    tch::no_grad(|| {
        let _ = r.amax.as_ref().unwrap().shallow_clone().fill_(s8 * 255.0);
    });
    assert!((r.step() - s8).abs() < 1e-9, "a reloaded clip stays");
    q.reset_range();
    assert!(q.step() <= 1e-8, "nothing observed since the reset");
}

#[test]
fn min_max_maps_the_observed_maximum_to_the_top_code_at_any_bit_width() {
    let _one = crate::seeded();
    let vs = vs();
    let mut q = ActQuant::new(&vs.root(), ActQuantizer::MinMax, 2);
    q.observe(&Tensor::from_slice(&[0.5f32, 2.0]));
    q.observe(&Tensor::from_slice(&[3.0f32, 1.0]));
    assert!((q.step() - 1.0).abs() < 1e-9, "max 3 over L = 3");
    let y = q.forward(&Tensor::from_slice(&[-1.0f32, 0.4, 1.6, 5.0]));
    assert_eq!(Vec::<f32>::try_from(y).unwrap(), vec![0.0, 0.0, 2.0, 3.0]);
    q.set_bits(4).unwrap();
    assert!((q.step() - 0.2).abs() < 1e-7, "max 3 over L = 15");
    q.reset_range();
    q.observe(&Tensor::from_slice(&[1.5f32]));
    assert!((q.step() - 0.1).abs() < 1e-7);
    let mut lsq = ActQuant::new(&vs.root().sub("l"), ActQuantizer::Lsq, 4);
    assert!(
        lsq.set_bits(2).is_err(),
        "a learned step belongs to one bit width"
    );
    let mut w = WeightQuant::new(&vs.root().sub("w"), WeightQuantizer::MaxAbs, 8, 2, true);
    w.set_bits(3).unwrap();
    let x = Tensor::from_slice(&[3.0f32, 1.4, -1.6, 0.2]).reshape([2, 2]);
    // per row: max |w| 3 -> step 1 (codes -3..=3); 1.6 -> step 0.5333
    let y = Vec::<f32>::try_from(w.forward(&x).flatten(0, -1)).unwrap();
    assert_eq!(y[0], 3.0);
    assert_eq!(y[1], 1.0);
    assert!((y[2] + 1.6).abs() < 1e-6 && y[3].abs() < 1e-6);
    let mut l = WeightQuant::new(&vs.root().sub("v"), WeightQuantizer::Lsq, 8, 2, true);
    assert!(l.set_bits(3).is_err());
}

/// A signed tensor's quantizer by hand: range [-1, 3] widened by nothing, step 4 / 255, zero
/// point round(255 / 4) = 64; values outside clamp to the codes' ends; training moves the range
/// a tenth of the way towards each batch's.
#[test]
fn signed_tensors_quantize_with_a_zero_point() {
    let _one = crate::seeded();
    let vs = vs();
    let mut q = SignedQuant::new(&vs.root());
    assert!(!q.observed());
    q.observe(&t(&[-1.0, 0.5, 3.0]));
    let (s, z) = (q.step(), q.zero_point());
    assert!((s - 4.0 / 255.0).abs() < 1e-9, "{s}");
    assert_eq!(z, 64);
    assert_eq!(step_and_zero(-1.0, 3.0, 255), (s, z));
    // Real -> code -> real: -1 is code 0 (-64 steps), 3 is code 255 (191 steps); 5 clamps.
    let y: Vec<f32> = Vec::try_from(q.forward(&t(&[-1.0, 0.0, 3.0, 5.0, -2.0]))).unwrap();
    let want = [-64.0 * s, 0.0, 191.0 * s, 191.0 * s, -64.0 * s];
    for (a, b) in y.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-6, "{y:?}");
    }
    assert!(q.set_bits(4).is_err(), "a signed tensor stays at 8 bits");
    q.track(&t(&[-3.0, 13.0]));
    let (s2, _) = (q.step(), q.zero_point());
    // [-1, 3] -> [-1.2, 4.0]
    assert!((s2 - 5.2 / 255.0).abs() < 1e-6, "{s2}");
    q.reset_range();
    assert!(!q.observed());
    q.track(&t(&[-0.5, 0.5]));
    assert!(
        (q.step() - 1.0 / 255.0).abs() < 1e-9,
        "the first batch sets the range"
    );
}
