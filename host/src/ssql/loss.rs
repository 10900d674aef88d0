//! The self-supervised objectives (SimSiam's, BYOL's, MoCo v2's InfoNCE), SSQL's pairing of
//! the quantized branch with them, and the momentum update of a target network.

use anyhow::{bail, Result};
use tch::nn;
use tch::{Kind, Tensor};

/// SimSiam's `D(p, z) = -cos(p, sg(z))`, averaged over the batch.
pub fn neg_cosine(p: &Tensor, z: &Tensor) -> Tensor {
    -cosine(p, &z.detach()).mean(Kind::Float)
}

/// Row-wise cosine similarity.
fn cosine(a: &Tensor, b: &Tensor) -> Tensor {
    let na = a.norm_scalaropt_dim(2, [1], false).clamp_min(1e-12);
    let nb = b.norm_scalaropt_dim(2, [1], false).clamp_min(1e-12);
    (a * b).sum_dim_intlist(&[1i64][..], false, Kind::Float) / (na * nb)
}

/// The symmetric SimSiam loss `D(p1, z2) / 2 + D(p2, z1) / 2` (targets stop-gradient).
pub fn simsiam_loss(p1: &Tensor, p2: &Tensor, z1: &Tensor, z2: &Tensor) -> Tensor {
    (neg_cosine(p1, z2) + neg_cosine(p2, z1)) * 0.5
}

/// The symmetric BYOL loss: `2 - 2 cos(p1, t2)` plus `2 - 2 cos(p2, t1)`, averaged over the
/// batch (targets come from the momentum network and carry no gradient).
pub fn byol_loss(p1: &Tensor, p2: &Tensor, t1: &Tensor, t2: &Tensor) -> Tensor {
    let one = |p: &Tensor, t: &Tensor| cosine(p, &t.detach()) * -2.0 + 2.0;
    (one(p1, t2) + one(p2, t1)).mean(Kind::Float)
}

/// MoCo's InfoNCE: queries `q` and keys `k` (`[N, D]`, L2-normalised here), negatives
/// `queue` (`[D, K]`, normalised columns), cross-entropy with the positive key as class 0 of
/// `[q.k, q.queue] / tau`. Keys and queue carry no gradient.
pub fn infonce_loss(q: &Tensor, k: &Tensor, queue: &Tensor, tau: f64) -> Tensor {
    let q = normalize(q);
    let k = normalize(&k.detach());
    let pos = (&q * &k).sum_dim_intlist(&[1i64][..], true, Kind::Float);
    let neg = q.matmul(&queue.detach());
    let logits = Tensor::cat(&[pos, neg], 1) / tau;
    let labels = Tensor::zeros([q.size()[0]], (Kind::Int64, q.device()));
    logits.cross_entropy_for_logits(&labels)
}

/// SSQL's combination of the full-precision loss and the quantized branch's loss (the same
/// loss, quantized predictions against the same targets): their mean.
pub fn ssql_pair(float_loss: &Tensor, quantized_loss: &Tensor) -> Tensor {
    (float_loss + quantized_loss) * 0.5
}

/// L2-normalise rows.
pub(crate) fn normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)
}

/// `target <- m target + (1 - m) online` for every trainable variable of `online` (matched by
/// name); BatchNorm statistics are copied. Both stores hold the same network.
pub fn momentum_update(target: &nn::VarStore, online: &nn::VarStore, m: f64) -> Result<()> {
    let on = online.variables();
    let trainable: std::collections::HashSet<String> = {
        let v = online
            .variables_
            .lock()
            .map_err(|_| anyhow::anyhow!("variable store poisoned"))?;
        v.named_variables
            .iter()
            .filter(|(_, t)| t.requires_grad())
            .map(|(n, _)| n.clone())
            .collect()
    };
    tch::no_grad(|| -> Result<()> {
        for (name, t) in target.variables() {
            let Some(o) = on.get(&name) else {
                bail!("the momentum network has {name}, the online one does not");
            };
            let mut t = t.shallow_clone();
            if trainable.contains(&name) {
                let v = &t * m + o * (1.0 - m);
                t.copy_(&v);
            } else {
                t.copy_(o);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[[f32; 2]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_slice(&flat).reshape([rows.len() as i64, 2])
    }

    fn close(a: &Tensor, b: f64) {
        let v = a.double_value(&[]);
        assert!((v - b).abs() < 1e-5, "{v} != {b}");
    }

    /// p1 = (1,0),(3,4); p2 = (0,1),(1,0); z1 = (0,-1),(0,1); z2 = (1,1),(3,4):
    /// cos(p1, z2) = (1/sqrt 2, 1), cos(p2, z1) = (-1, 0).
    fn fixed() -> (Tensor, Tensor, Tensor, Tensor) {
        (
            t(&[[1.0, 0.0], [3.0, 4.0]]),
            t(&[[0.0, 1.0], [1.0, 0.0]]),
            t(&[[0.0, -1.0], [0.0, 1.0]]),
            t(&[[1.0, 1.0], [3.0, 4.0]]),
        )
    }

    #[test]
    fn simsiam_loss_by_hand() {
        let _one = crate::seeded();
        let (p1, p2, z1, z2) = fixed();
        // D(p1, z2) = -(0.70711 + 1) / 2; D(p2, z1) = -(-1 + 0) / 2; mean of the two.
        let d1 = -(std::f64::consts::FRAC_1_SQRT_2 + 1.0) / 2.0;
        let d2 = 0.5;
        close(&simsiam_loss(&p1, &p2, &z1, &z2), (d1 + d2) / 2.0);
        close(&simsiam_loss(&p1, &p2, &z1, &z2), -0.1767767);
    }

    #[test]
    fn byol_loss_by_hand() {
        let _one = crate::seeded();
        let (p1, p2, t1, t2) = fixed();
        // rows: (2 - 2/sqrt 2) + (2 + 2) and (2 - 2) + (2 - 0); mean over the batch.
        let r1 = 2.0 - std::f64::consts::SQRT_2 + 4.0;
        let r2 = 0.0 + 2.0;
        close(&byol_loss(&p1, &p2, &t1, &t2), (r1 + r2) / 2.0);
        close(&byol_loss(&p1, &p2, &t1, &t2), 3.2928932);
    }

    #[test]
    fn infonce_by_hand() {
        let _one = crate::seeded();
        // q = k = (1, 0); negatives (0, 1) and (-1, 0); tau 0.5: logits (2, 0, -2).
        let q = t(&[[2.0, 0.0]]);
        let k = t(&[[1.0, 0.0]]);
        let queue = Tensor::from_slice(&[0.0f32, -1.0, 1.0, 0.0]).reshape([2, 2]);
        let want = (1.0 + (-2.0f64).exp() + (-4.0f64).exp()).ln();
        close(&infonce_loss(&q, &k, &queue, 0.5), want);
        close(&infonce_loss(&q, &k, &queue, 0.5), 0.1429316);
    }

    #[test]
    fn ssql_pairs_the_quantized_branch_with_the_float_targets() {
        let _one = crate::seeded();
        let (p1, p2, z1, z2) = fixed();
        // The quantized branch predicts (1,0),(1,0) against the same targets:
        // D(q1, z2) = -(0.70711 + 0.6) / 2, D(q2, z1) = -(0 + 0) / 2.
        let q = t(&[[1.0, 0.0], [1.0, 0.0]]);
        let fp = simsiam_loss(&p1, &p2, &z1, &z2);
        let ql = simsiam_loss(&q, &q, &z1, &z2);
        let q_by_hand = (-(std::f64::consts::FRAC_1_SQRT_2 + 0.6) / 2.0 + 0.0) / 2.0;
        close(&ql, q_by_hand);
        close(&ssql_pair(&fp, &ql), (-0.1767767 + q_by_hand) / 2.0);
        // BYOL and MoCo pair the same way.
        let b = byol_loss(&q, &q, &z1, &z2);
        // rows: (2 - 2 * 0.70711) + (2 - 0) and (2 - 1.2) + (2 - 0)
        close(
            &b,
            ((2.0 - std::f64::consts::SQRT_2 + 2.0) + (0.8 + 2.0)) / 2.0,
        );
        close(
            &ssql_pair(&byol_loss(&p1, &p2, &z1, &z2), &b),
            (3.2928932 + b.double_value(&[])) / 2.0,
        );
    }

    #[test]
    fn targets_get_no_gradient() {
        let _one = crate::seeded();
        let (p1, p2, z1, z2) = fixed();
        let [p1, p2, z1, z2] = [p1, p2, z1, z2].map(|x| x.set_requires_grad(true));
        for loss in [
            simsiam_loss(&p1, &p2, &z1, &z2),
            byol_loss(&p1, &p2, &z1, &z2),
            infonce_loss(&p1, &z2, &z1.transpose(0, 1), 0.2),
        ] {
            for x in [&p1, &p2, &z1, &z2] {
                let mut g = x.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            loss.backward();
            let norm = |x: &Tensor| {
                let g = x.grad();
                if g.defined() {
                    g.abs().sum(Kind::Float).double_value(&[])
                } else {
                    0.0
                }
            };
            assert!(norm(&p1) > 0.0, "the prediction gets a gradient");
            assert_eq!(norm(&z1), 0.0, "stop-gradient on the targets");
            assert_eq!(norm(&z2), 0.0, "stop-gradient on the targets");
        }
    }
}
