//! What the evaluation measures besides accuracy: weight statistics (the appendix's Fig. 7)
//! and how far quantized features move from full-precision ones.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::net::{Params, QNet};

/// Statistics of a weight distribution (the appendix's Fig. 7).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightStats {
    /// Layer name (`n<i>`) or `mean` for the average over layers.
    pub layer: String,
    /// Number of weights.
    pub count: i64,
    /// `max - min`.
    pub range: f64,
    /// Standard deviation.
    pub std: f64,
    /// Kurtosis `E[(w - mu)^4] / sigma^4` (3 for a normal distribution).
    pub kurtosis: f64,
    /// Share of weights with `|w - mu| > 3 sigma`.
    pub outliers: f64,
}

/// Statistics of one tensor's values.
pub fn stats_of(layer: &str, w: &Tensor) -> WeightStats {
    let w = w.detach().to_kind(Kind::Double).flatten(0, -1);
    let mu = w.mean(Kind::Double);
    let d = &w - &mu;
    let var = d.square().mean(Kind::Double).double_value(&[]);
    let std = var.sqrt();
    let m4 = d.pow_tensor_scalar(4).mean(Kind::Double).double_value(&[]);
    let outliers = d
        .abs()
        .gt(3.0 * std)
        .to_kind(Kind::Double)
        .mean(Kind::Double)
        .double_value(&[]);
    WeightStats {
        layer: layer.to_string(),
        count: w.numel() as i64,
        range: (w.max() - w.min()).double_value(&[]),
        std,
        kurtosis: if var > 0.0 { m4 / (var * var) } else { 0.0 },
        outliers,
    }
}

/// Statistics of every convolution and hidden dense layer of `net` (the encoder; the head is
/// left out), then their mean over layers.
pub fn weight_stats(net: &QNet) -> Vec<WeightStats> {
    let last = net.params.len().saturating_sub(1);
    let mut v: Vec<WeightStats> = net
        .params
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != last)
        .filter_map(|(i, p)| match p {
            Params::Conv { w, .. } | Params::Dense { w, .. } => Some(stats_of(&format!("n{i}"), w)),
            _ => None,
        })
        .collect();
    let n = v.len().max(1) as f64;
    let mean = WeightStats {
        layer: "mean".into(),
        count: v.iter().map(|s| s.count).sum(),
        range: v.iter().map(|s| s.range).sum::<f64>() / n,
        std: v.iter().map(|s| s.std).sum::<f64>() / n,
        kurtosis: v.iter().map(|s| s.kurtosis).sum::<f64>() / n,
        outliers: v.iter().map(|s| s.outliers).sum::<f64>() / n,
    };
    v.push(mean);
    v
}

/// The quantized encoder's features against the full-precision ones, averaged over images.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureError {
    /// Cosine similarity after subtracting the full-precision features' mean.
    pub centred_cosine: f64,
    /// Norm of the quantized features over the norm of the full-precision ones.
    pub norm_ratio: f64,
}

/// Test images the feature error is measured on.
pub const FEATURE_IMAGES: i64 = 2000;

/// Compare quantized features `q` with full-precision features `f` (`[N, F]` each).
pub fn feature_error(f: &Tensor, q: &Tensor) -> FeatureError {
    let norm = |x: &Tensor| x.norm_scalaropt_dim(2, [1i64], false);
    let mu = f.mean_dim(&[0i64][..], true, Kind::Float);
    let (fc, qc) = (f - &mu, q - &mu);
    let cos = (&fc * &qc).sum_dim_intlist(&[1i64][..], false, Kind::Float)
        / (norm(&fc) * norm(&qc)).clamp_min(1e-12);
    let ratio = norm(q) / norm(f).clamp_min(1e-12);
    FeatureError {
        centred_cosine: cos.mean(Kind::Float).double_value(&[]),
        norm_ratio: ratio.mean(Kind::Float).double_value(&[]),
    }
}
