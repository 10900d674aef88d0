//! What an output means in real numbers, for reports: the dequantized outputs (`code * scale`,
//! the scale the model file records for its output tensor) and softmax confidences.
//!
//! Float math on the result of an inference, never inside one: the integer outputs stay the
//! bit-exact result. `exp` is `micromath`'s approximation, which needs no `libm` on a `no_std`
//! target: within 0.24 % of the exact value on `[-20, 0]`, which keeps every probability within
//! 0.0006 of the exact softmax's (the worst over 200 000 random outputs; the tests bound it by
//! 0.002).

use micromath::F32Ext;

/// The real value an output code stands for: `code * scale`.
#[inline]
pub fn dequantize(code: i32, scale: f32) -> f32 {
    code as f32 * scale
}

/// `exp((code - max) * scale)`: a softmax term before normalisation, in `(0, 1]`.
fn term(code: i32, max: i32, scale: f32) -> f32 {
    // The difference of two i32 always fits an i64; it is <= 0.
    let d = (i64::from(code) - i64::from(max)) as f32;
    // Called by path: where std is linked (tests), its inherent `exp` would win.
    F32Ext::exp(d * scale)
}

/// The largest output, its index (the first of equals, as [`crate::argmax`]) and the sum of
/// the softmax terms; `None` for an empty output or a scale that is not finite and positive.
fn terms(output: &[i32], scale: f32) -> Option<(usize, i32, f32)> {
    if output.is_empty() || !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let top = crate::argmax(output);
    let max = *output.get(top)?;
    let sum = output.iter().map(|&c| term(c, max, scale)).sum();
    Some((top, max, sum))
}

/// The class the output predicts and its softmax probability over the dequantized outputs;
/// `None` for an empty output or a scale that is not finite and positive.
pub fn confidence(output: &[i32], scale: f32) -> Option<(usize, f32)> {
    let (top, _, sum) = terms(output, scale)?;
    // The top term is exp(0) = 1, so the sum is at least 1.
    Some((top, 1.0 / sum))
}

/// The softmax probability of every output, written to `probs` (as long as `output`); returns
/// what [`confidence`] does. `None` (and `probs` untouched) for lengths that differ, an empty
/// output or a scale that is not finite and positive.
pub fn softmax(output: &[i32], scale: f32, probs: &mut [f32]) -> Option<(usize, f32)> {
    if probs.len() != output.len() {
        return None;
    }
    let (top, max, sum) = terms(output, scale)?;
    for (p, &c) in probs.iter_mut().zip(output) {
        *p = term(c, max, scale) / sum;
    }
    Some((top, 1.0 / sum))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    extern crate std;
    use super::*;

    fn exact(output: &[i32], scale: f32) -> std::vec::Vec<f64> {
        let m = output.iter().copied().max().unwrap();
        let e: std::vec::Vec<f64> = output
            .iter()
            .map(|&c| ((f64::from(c) - f64::from(m)) * f64::from(scale)).exp())
            .collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }

    #[test]
    fn softmax_is_close_to_the_exact_one() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut worst = 0.0f64;
        for _ in 0..2000 {
            let n = 1 + (next() % 12) as usize;
            let out: std::vec::Vec<i32> = (0..n).map(|_| (next() % 2001) as i32 - 1000).collect();
            let scale = [0.001f32, 0.01, 0.05, 0.2][(next() % 4) as usize];
            let mut p = std::vec![0.0f32; n];
            let (top, conf) = softmax(&out, scale, &mut p).unwrap();
            assert_eq!(top, crate::argmax(&out));
            assert_eq!(confidence(&out, scale), Some((top, conf)));
            let want = exact(&out, scale);
            for (a, b) in p.iter().zip(&want) {
                worst = worst.max((f64::from(*a) - b).abs());
            }
            let total: f32 = p.iter().sum();
            assert!((total - 1.0).abs() < 1e-4, "{total}");
        }
        assert!(worst < 2e-3, "worst difference {worst}");
    }

    #[test]
    fn extremes_and_bad_scales() {
        let out = [i32::MIN, i32::MAX, 0];
        let mut p = [0.0f32; 3];
        assert_eq!(softmax(&out, 1.0, &mut p), Some((1, 1.0)));
        assert_eq!(p, [0.0, 1.0, 0.0]);
        // Equal outputs: the first wins, each has an equal share.
        let (top, c) = confidence(&[7, 7, 7, 7], 0.3).unwrap();
        assert_eq!(top, 0);
        assert!((c - 0.25).abs() < 1e-6);
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(confidence(&[1, 2], bad), None);
        }
        assert_eq!(confidence(&[], 1.0), None);
        let mut short = [9.0f32; 1];
        assert_eq!(softmax(&[1, 2], 1.0, &mut short), None);
        assert_eq!(short, [9.0]);
        assert_eq!(dequantize(-3, 0.5), -1.5);
    }
}
