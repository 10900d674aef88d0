//! Post-training quantization of a trained classifier at every bit width (`bitspike ssql
//! ptq`), quantized as [`crate::ssql::eval`] quantizes its networks.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::Device;

use super::eval::{sweep, Bits, EvalConfig, Point};
use crate::quant::{ActQuantizer, WeightQuantizer};
use crate::train::{self, write_atomic, RunDir};

/// What [`quantize_run`] measured (`results.json` of its folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PtqResult {
    /// The trained classifier.
    pub run: PathBuf,
    /// Settings (bit widths, calibration, protocol, edges, heads).
    pub config: EvalConfig,
    /// Test accuracy at every bit width, with its run folder.
    pub points: Vec<Point>,
}

/// Post-training quantization of a trained classifier (a run folder whose quantizers learn
/// nothing: max-abs weights, min-max or MSE activations, as every full-precision run folder
/// of [`crate::ssql::eval::evaluate`] has) at every bit width of `e`, as that evaluation quantizes its networks
/// (the protocol, edge widths, MSE clips, a head per bit width, BatchNorm per bit width);
/// `results.json` and one run folder per bit width in `out`.
pub fn quantize_run(
    run: &Path,
    data_dir: &Path,
    e: &EvalConfig,
    out: &Path,
    device: Device,
) -> Result<PtqResult> {
    e.check()?;
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        bail!("{} is not empty: choose another --out", out.display());
    }
    let rd = RunDir(run.to_path_buf());
    let mut base = rd.read_config()?;
    anyhow::ensure!(
        matches!(
            base.quant.weight_quantizer,
            WeightQuantizer::MaxAbs | WeightQuantizer::MaxAbsHalf
        ) && matches!(
                base.quant.act_quantizer,
                ActQuantizer::MinMax | ActQuantizer::Mse
            ),
        "{}: post-training quantization takes a run with max-abs weights and min-max or MSE activations (an ssql eval run folder)",
        run.display()
    );
    let official = e.protocol == Some(crate::ssql::Protocol::Official);
    base.quant.weight_quantizer = if official {
        WeightQuantizer::MaxAbsHalf
    } else {
        WeightQuantizer::MaxAbs
    };
    if e.mse_clip {
        base.quant.act_quantizer = ActQuantizer::Mse;
    }
    base.quant.edge_act_bits = None;
    base.quant.head_act_bits = None;
    let data = base.load_data(data_dir)?;
    tch::manual_seed(e.seed);
    let mut vs = nn::VarStore::new(device);
    let mut net = train::build_in(&train::Qat, &vs, &base, &data)?;
    let weights = rd.weights()?;
    vs.load(&weights).map_err(|err| {
        anyhow::anyhow!(
            "{}: corrupt or not this network's checkpoint ({})",
            weights.display(),
            err.to_string().lines().next().unwrap_or_default()
        )
    })?;
    let mut e = e.clone();
    e.head_per_bits |= official;
    let cfg_of = |bits: Bits| {
        let mut c = base.clone();
        if let Bits::Quantized { w, a } = bits {
            c.quant.weight_bits = w;
            c.quant.act_bits = a;
            c.quant.edge_act_bits = e.edge_act_bits;
            // The official head reads 8-bit features unless edge widths are given (they
            // cover the head's input), as in pretraining.
            c.quant.head_act_bits = (official && e.edge_act_bits.is_none()).then_some(8);
        } else {
            (c.quant.weight_bits, c.quant.act_bits) = (8, 8);
        }
        c
    };
    let points = sweep(
        &vs,
        &mut net,
        &cfg_of,
        &data,
        &e,
        e.head_per_bits,
        out,
        device,
    )?;
    let result = PtqResult {
        run: run.to_path_buf(),
        config: e,
        points,
    };
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&result)?.as_bytes(),
    )?;
    Ok(result)
}
