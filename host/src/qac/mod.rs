//! QAC's activation quantizer (QAC section 4.2): a learned clip `alpha` and a learned level
//! count per layer, whose level count becomes the layer's timesteps once the network is
//! converted to a spiking one ([`crate::qac::snn`]).
//!
//! ```text
//! Q(x) = d * clamp(round(x / d), 0, T)       d = alpha / T, round half up (the device's)
//! ```
//!
//! with two of `(n, d, alpha)` or `(t, alpha)` learned, the third derived (`alpha = d 2^n`,
//! `T = 2^n`, or `T = alpha / d`, or `T = t`). Written this way, the straight-through estimator
//! (round's derivative taken as 1) gives exactly the gradients of QAC eq. 7-10, which
//! `tests::gradients_follow_eq_7_to_10` checks against the equations; the value above the clip
//! is `d T`, i.e. `alpha`, written through the parameters so that autograd finds eq. 7-10's
//! outer rows (`d 2^n` for case 1, `alpha` for the others).
//!
//! QCFS (Bu et al. 2023), the baseline, is case 4 with `t` frozen at one level count `L` for
//! every layer.
//!
//! **Timesteps at conversion**: `T_l = clamp(round(T), 1, MAX_TIMESTEPS)` with `T` the trained
//! (real-valued) level count, rounded half up; `alpha` is kept, so the converted layer's step is
//! `alpha / T_l`. The quantized network with real `T` is what training optimised; the spiking
//! network must run a whole number of steps, which is one reason its output differs and why it
//! is calibrated afterwards.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use crate::quant::{round_ste, ActQuantize};

pub mod config;
pub mod export;
mod method;
pub mod report;
pub mod snn;

pub use config::{LevelCost, QacCase, QacConfig, DEVICE_TIMESTEPS, MAX_TIMESTEPS};
pub use method::{settings, Qac};

/// One layer's QAC quantizer.
#[derive(Debug)]
pub struct QacQuant {
    /// Which parameters are learned.
    pub case: QacCase,
    /// First parameter: `n` (cases 1, 2), `d` (case 3) or `t` (case 4).
    pub a: Tensor,
    /// Second parameter: `d` (case 1) or `alpha` (cases 2-4).
    pub b: Tensor,
    initialised: Tensor,
    initial_levels: f64,
}

/// The quantities of one forward pass, as tensors (differentiable in the parameters).
struct Derived {
    d: Tensor,
    levels: Tensor,
}

impl QacQuant {
    /// A quantizer with its parameters in `path` (no weight decay belongs on them).
    pub fn new(path: &nn::Path, cfg: &QacConfig) -> Self {
        let fixed = cfg.fixed_levels > 0;
        let t0 = if fixed {
            cfg.fixed_levels as f64
        } else {
            cfg.initial_levels
        };
        // alpha starts at 1 and is set from the first batch; d follows from alpha and T.
        let (a0, b0) = match cfg.case {
            QacCase::ND => (t0.log2(), 1.0 / t0),
            QacCase::NAlpha => (t0.log2(), 1.0),
            QacCase::DAlpha => (1.0 / t0, 1.0),
            QacCase::TAlpha => (t0, 1.0),
        };
        let a = if fixed {
            let mut a = path.zeros_no_train("qac_a", &[1]);
            let _ = a.fill_(a0);
            a
        } else {
            path.var("qac_a", &[1], Init::Const(a0))
        };
        let b = path.var("qac_b", &[1], Init::Const(b0));
        Self {
            case: cfg.case,
            a,
            b,
            initialised: path.zeros_no_train("qac_init", &[1]),
            initial_levels: t0,
        }
    }

    /// Set `alpha` from the first batch (LSQ's rule on the step: `alpha = 2 mean|x| sqrt(T)`),
    /// keeping the level count.
    fn init(&self, x: &Tensor) {
        if self.initialised.double_value(&[0]) != 0.0 {
            return;
        }
        let m = x.detach().abs().mean(Kind::Float).double_value(&[]);
        let t = self.initial_levels;
        let alpha = (2.0 * m * t.sqrt()).max(1e-3);
        tch::no_grad(|| {
            let _ = self.initialised.shallow_clone().fill_(1.0);
            let (a, b) = match self.case {
                QacCase::ND => (None, Some(alpha / t)),
                QacCase::NAlpha | QacCase::TAlpha => (None, Some(alpha)),
                QacCase::DAlpha => (Some(alpha / t), Some(alpha)),
            };
            if let Some(a) = a {
                let _ = self.a.shallow_clone().fill_(a);
            }
            if let Some(b) = b {
                let _ = self.b.shallow_clone().fill_(b);
            }
        });
    }

    fn derived(&self) -> Derived {
        // Keep the parameters in their domains; the clamps pass gradients inside them.
        let pos = |t: &Tensor| t.clamp_min(1e-4);
        let two = |n: &Tensor| (n.clamp(0.0, 8.0) * std::f64::consts::LN_2).exp();
        match self.case {
            QacCase::ND => Derived {
                d: pos(&self.b),
                levels: two(&self.a),
            },
            QacCase::NAlpha => {
                let levels = two(&self.a);
                Derived {
                    d: pos(&self.b) / &levels,
                    levels,
                }
            }
            QacCase::DAlpha => {
                let d = pos(&self.a);
                Derived {
                    levels: pos(&self.b) / &d,
                    d,
                }
            }
            QacCase::TAlpha => {
                let levels = self.a.clamp(1.0, MAX_TIMESTEPS as f64);
                Derived {
                    d: pos(&self.b) / &levels,
                    levels,
                }
            }
        }
    }

    /// `Q(x)` (ReLU included), with the straight-through gradients of eq. 7-10.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.init(x);
        let Derived { d, levels } = self.derived();
        let u = x / &d;
        let r = round_ste(&u);
        let inside = &r * &d;
        let top = (&d * &levels).expand_as(x);
        let zero = x.zeros_like();
        // Above the clip, or (for a non-integer T) where the code rounds past T, the value is
        // the clip itself, `d T`, with its gradients (eq. 7-10's outer rows).
        let clipped = u
            .gt_tensor(&levels)
            .logical_or(&r.detach().gt_tensor(&levels));
        let q = top.where_self(&clipped, &inside);
        zero.where_self(&u.lt(0.0), &q)
    }

    /// The learned (real-valued) level count `T`.
    pub fn levels(&self) -> f64 {
        tch::no_grad(|| self.derived().levels.double_value(&[0]))
    }

    /// The clip `alpha = d T`.
    pub fn alpha(&self) -> f64 {
        tch::no_grad(|| {
            let d = self.derived();
            (d.d * d.levels).double_value(&[0])
        })
    }

    /// The level count as a differentiable scalar (for the level penalty).
    pub fn levels_tensor(&self) -> Tensor {
        self.derived().levels
    }

    /// Whether the level count is learned (not QCFS's frozen `L`).
    pub fn learns_levels(&self) -> bool {
        self.a.requires_grad() || self.case != QacCase::TAlpha
    }

    /// The converted layer's timesteps: the level count rounded half up into
    /// `1..=MAX_TIMESTEPS` (the module docs).
    pub fn timesteps(&self) -> u16 {
        timesteps_of(self.levels())
    }
}

/// A network sees QAC's quantizer as one of fixed level count: the converted timesteps, with
/// the step `alpha / T` the export writes.
impl ActQuantize for QacQuant {
    fn forward(&self, x: &Tensor) -> Tensor {
        QacQuant::forward(self, x)
    }
    fn levels(&self) -> i64 {
        self.timesteps() as i64
    }
    fn step(&self) -> f64 {
        self.alpha() / self.timesteps() as f64
    }
    fn set_bits(&mut self, _bits: u8) -> anyhow::Result<()> {
        anyhow::bail!("QAC learns each layer's level count: its bits cannot be switched")
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// The QAC quantizers of `net`, in node order, with their node index.
pub fn layers(net: &crate::net::QNet) -> Vec<(usize, &QacQuant)> {
    net.act_quantizers()
        .filter_map(|(i, q)| Some((i, q.as_any().downcast_ref::<QacQuant>()?)))
        .collect()
}

/// `clamp(floor(levels + 1/2), 1, MAX_TIMESTEPS)`; a non-finite count (case 3 with `d -> 0`
/// diverges, as the paper reports) becomes `MAX_TIMESTEPS`.
pub fn timesteps_of(levels: f64) -> u16 {
    if !levels.is_finite() {
        return MAX_TIMESTEPS;
    }
    (levels + 0.5).floor().clamp(1.0, MAX_TIMESTEPS as f64) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// QCFS is case 4 frozen at `L`: with `lambda` 6 and `L` 3 the step is 2, codes
    /// `floor(x/2 + 1/2)` clamped to `0..=3` (QAC eq. 5), and `L` learns nothing.
    #[test]
    fn qcfs_is_case_4_frozen() {
        let _one = crate::seeded();
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = QacConfig {
            fixed_levels: 3,
            ..Default::default()
        };
        let q = QacQuant::new(&vs.root(), &cfg);
        set(&q, 3.0, 6.0);
        let x = Tensor::from_slice(&[0.9f32, 1.0, 2.9, 3.0, 100.0, -4.0]);
        let y = Vec::<f32>::try_from(q.forward(&x)).unwrap();
        assert_eq!(y, vec![0.0, 2.0, 2.0, 4.0, 6.0, 0.0]);
        assert!(!q.learns_levels());
        assert_eq!(q.timesteps(), 3);
    }

    fn set(q: &QacQuant, a: f64, b: f64) {
        tch::no_grad(|| {
            let _ = q.initialised.shallow_clone().fill_(1.0);
            let _ = q.a.shallow_clone().fill_(a);
            let _ = q.b.shallow_clone().fill_(b);
        });
    }

    /// The gradients of `sum Q(x)` over the parameters for each `x` alone, as autograd finds
    /// them.
    fn grads(q: &QacQuant, x: f64) -> (f64, f64, f64) {
        q.a.shallow_clone().zero_grad();
        q.b.shallow_clone().zero_grad();
        let xt = Tensor::from_slice(&[x as f32]);
        let y = q.forward(&xt);
        y.sum(Kind::Float).backward();
        (
            y.double_value(&[0]),
            q.a.grad().double_value(&[0]),
            q.b.grad().double_value(&[0]),
        )
    }

    #[test]
    fn gradients_follow_eq_7_to_10() {
        let _one = crate::seeded();
        let vs = nn::VarStore::new(Device::Cpu);
        let ln2 = std::f64::consts::LN_2;
        // x values inside (0 <= x <= alpha), away from rounding ties, and above the clip.
        let xs = [0.13, 0.61, 1.07, 1.9, 2.33, 2.9, 3.5, 7.0];
        for case in QacCase::ALL {
            let cfg = QacConfig {
                case,
                ..Default::default()
            };
            let q = QacQuant::new(&vs.root().sub(format!("{case:?}")), &cfg);
            // T = 4, alpha = 3, d = 0.75 in every parameterisation.
            let (n, t, alpha, d) = (2.0, 4.0, 3.0, 0.75);
            match case {
                QacCase::ND => set(&q, n, d),
                QacCase::NAlpha => set(&q, n, alpha),
                QacCase::DAlpha => set(&q, d, alpha),
                QacCase::TAlpha => set(&q, t, alpha),
            }
            assert!((q.alpha() - alpha).abs() < 1e-6 && (q.levels() - t).abs() < 1e-5);
            for &x in &xs {
                let (y, ga, gb) = grads(&q, x);
                let want_q = if x > alpha {
                    alpha
                } else {
                    d * (x / d + 0.5).floor()
                };
                assert!(
                    (y - want_q).abs() < 1e-5,
                    "{case:?} x={x}: Q {y} vs {want_q}"
                );
                let e = want_q - x; // Q(x) - x
                let (wa, wb) = if x <= alpha {
                    match case {
                        QacCase::ND => (0.0, e / d),              // eq. 7
                        QacCase::NAlpha => (-ln2 * e, e / alpha), // eq. 8
                        QacCase::DAlpha => (e / d, 0.0),          // eq. 9
                        QacCase::TAlpha => (-e / t, e / alpha),   // eq. 10
                    }
                } else {
                    match case {
                        QacCase::ND => (ln2 * t * d, t), // eq. 7: ln2 2^n d, 2^n
                        _ => (0.0, 1.0),                 // eq. 8-10: 0, 1
                    }
                };
                assert!(
                    (ga - wa).abs() < 1e-4 && (gb - wb).abs() < 1e-4,
                    "{case:?} x={x}: got ({ga}, {gb}), eq. gives ({wa}, {wb})"
                );
            }
            // Negative inputs: ReLU, no gradient.
            let (y, ga, gb) = grads(&q, -0.7);
            assert_eq!((y, ga, gb), (0.0, 0.0, 0.0), "{case:?}");
        }
    }

    #[test]
    fn a_code_rounding_past_a_non_integer_level_count_is_the_clip() {
        let _one = crate::seeded();
        // Case 4, t = 2.7, alpha = 2.7 (d = 1): x = 2.6 rounds to 3 > t, so Q = alpha with the
        // clip's gradients (0, 1); x = 1.2 is inside: Q = 1, gradients eq. 10.
        let vs = nn::VarStore::new(Device::Cpu);
        let q = QacQuant::new(&vs.root(), &QacConfig::default());
        set(&q, 2.7, 2.7);
        let (y, ga, gb) = grads(&q, 2.6);
        assert!((y - 2.7).abs() < 1e-5 && ga.abs() < 1e-5 && (gb - 1.0).abs() < 1e-5);
        let (y, ga, gb) = grads(&q, 1.2);
        let e = 1.0 - 1.2;
        assert!((y - 1.0).abs() < 1e-5);
        assert!(
            (ga + e / 2.7).abs() < 1e-5 && (gb - e / 2.7).abs() < 1e-5,
            "{ga} {gb}"
        );
    }

    #[test]
    fn qcfs_freezes_the_level_count() {
        let _one = crate::seeded();
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = QacConfig {
            fixed_levels: 8,
            ..Default::default()
        };
        let q = QacQuant::new(&vs.root(), &cfg);
        assert!(!q.learns_levels());
        let x = Tensor::from_slice(&[0.5f32, 1.0, 2.0, -1.0]);
        let _ = q.forward(&x);
        assert_eq!(q.timesteps(), 8);
        // alpha from the first batch: 2 * mean|x| * sqrt(8).
        assert!((q.alpha() - 2.0 * 1.125 * 8f64.sqrt()).abs() < 1e-5);
        assert!(QacConfig {
            fixed_levels: 4,
            case: QacCase::ND,
            ..Default::default()
        }
        .check()
        .is_err());
    }

    #[test]
    fn timesteps_round_half_up_and_clamp() {
        let _one = crate::seeded();
        assert_eq!(timesteps_of(2.49), 2);
        assert_eq!(timesteps_of(2.5), 3);
        assert_eq!(timesteps_of(0.2), 1);
        assert_eq!(timesteps_of(1e9), MAX_TIMESTEPS);
        assert_eq!(timesteps_of(f64::INFINITY), MAX_TIMESTEPS);
    }
}
