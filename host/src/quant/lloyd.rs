//! Lloyd's algorithm on a normal (or half-normal) density: the steps of One-Shot MPS's Lloyd
//! weight quantizer (eq. S9-S10) and HWGQ activations (eq. S11-S12).

fn erf(x: f64) -> f64 {
    // Abramowitz and Stegun 7.1.26, |error| < 1.5e-7: ample for four-digit steps.
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

fn pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

fn cdf(x: f64) -> f64 {
    0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2))
}

/// Lloyd's algorithm for `n` reconstruction levels of a standard normal density (or, with
/// `half`, of a half-normal one), returning the mean distance between adjacent levels: the step
/// of One-Shot MPS eq. S10 (`half = false`, `n = 2^b`) and S12 (`half = true`, `n = 2^b`).
pub fn lloyd_levels_step(n: usize, half: bool) -> f64 {
    if n < 2 {
        return 1.0;
    }
    let lo = if half { 0.0 } else { -8.0 };
    // Start at the quantiles of N(0, 3): the point density of an optimal quantizer with many
    // levels goes as p(x)^(1/3) (Panter and Dite), so the start is close; then iterate.
    let base = if half { 0.5 } else { 0.0 };
    let mut c: Vec<f64> = (0..n)
        .map(|i| {
            let p = base + (1.0 - base) * (i as f64 + 0.5) / n as f64;
            let (mut a, mut b) = (-8.0f64, 8.0f64);
            for _ in 0..80 {
                let m = 0.5 * (a + b);
                if cdf(m) < p {
                    a = m;
                } else {
                    b = m;
                }
            }
            0.5 * (a + b) * 3f64.sqrt()
        })
        .collect();
    for _ in 0..3000 {
        let mut edges = vec![lo];
        edges.extend(c.windows(2).map(|w| 0.5 * (w[0] + w[1])));
        edges.push(8.0);
        for (i, ci) in c.iter_mut().enumerate() {
            let (a, b) = (edges[i], edges[i + 1]);
            let mass = cdf(b) - cdf(a);
            if mass > 1e-300 {
                // The conditional mean of a normal on [a, b]; the half-normal's is the same on
                // [0, inf), because its density is the normal's times two there.
                *ci = (pdf(a) - pdf(b)) / mass;
            }
        }
    }
    (c[n - 1] - c[0]) / (n - 1) as f64
}

/// The Lloyd weight step (in units of `std(w)`) for our symmetric `b`-bit grid of `2^b - 1`
/// levels.
pub fn lloyd_step(bits: u8) -> f64 {
    cached(bits, false)
}

/// Lloyd's algorithm takes milliseconds; quantizers ask for their step on every forward pass,
/// so the steps of 1..=8 bits are computed once.
fn cached(bits: u8, half: bool) -> f64 {
    static TABLE: std::sync::OnceLock<[[f64; 9]; 2]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [[1.0; 9]; 2];
        for b in 1..=8u8 {
            t[0][b as usize] = lloyd_levels_step((1usize << b) - 1, false);
            t[1][b as usize] = lloyd_levels_step(1usize << b, true);
        }
        t
    });
    match t[half as usize].get(bits as usize) {
        Some(&s) => s,
        None if half => lloyd_levels_step(1usize << bits.min(16), true),
        None => lloyd_levels_step((1usize << bits.min(16)) - 1, false),
    }
}

/// The HWGQ activation step (in units of the pre-activation's standard deviation) for `b` bits:
/// `2^b` levels of a half-normal density, as eq. S12.
pub fn hwgq_step(bits: u8) -> f64 {
    cached(bits, true)
}
