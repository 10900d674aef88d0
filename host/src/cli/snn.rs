//! `bitspike snn`: QAC's conversion of a trained run into a mixed-timestep spiking model, its calibration, export and evaluation.

use super::args::*;
use super::files::*;
use super::inspect::{density_line, DENSITY_IMAGES};
use anyhow::{bail, Context, Result};
use bitspike::snn::AlignMode;
use bitspike::snn::{self as snn_sim, Calibration, Snn};
use bitspike::train::{self, RunDir};
use bitspike::{eval, export};
use bitspike_core::format::writer::write;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub(crate) struct SnnArgs {
    /// The QAC run folder (its converted parameters are saved there as snn.json).
    #[arg(long)]
    pub(crate) run: PathBuf,
    /// Temporal alignment between layers of different timesteps.
    #[arg(long, value_enum, default_value_t = AlignMode::Average)]
    pub(crate) align: AlignMode,
    /// Calibration epochs over the calibration images (0: none).
    #[arg(long, default_value_t = 8)]
    pub(crate) calibrate: usize,
    /// Unlabelled training images the calibration uses.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) calibration_images: i64,
    /// Calibration learning rate (Adam, relative to each layer's threshold).
    #[arg(long, default_value_t = 0.002)]
    pub(crate) calibration_lr: f64,
    /// Evaluate on the first N test images only.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) limit: Option<i64>,
    /// Write the spiking model file here (and run it with integers on the host).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Also write the same network as a quantized (non-spiking) model, for cost comparisons.
    #[arg(long)]
    pub(crate) ann_out: Option<PathBuf>,
    /// Golden vectors and the test stream of the spiking model.
    #[command(flatten)]
    pub(crate) files: TestFiles,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) rt: Runtime,
}

/// `bitspike snn`: convert, evaluate, calibrate, export and run a QAC run (see `SnnArgs`).
pub(crate) fn snn_run(a: &SnnArgs) -> Result<()> {
    let run = RunDir(a.run.clone());
    let cfg = run.read_config()?;
    let device = a.rt.device()?;
    let data = cfg.load_data(&a.rt.data_dir())?;
    let t = bitspike::methods::load(&run.0, &data, device)?;
    let limit = a.limit.unwrap_or(i64::MAX);
    let mut snn = Snn::convert(&t.net, a.align)?;
    let quiet = a.json;
    let say = |s: String| {
        if !quiet {
            println!("{s}");
        }
    };
    let timesteps: Vec<u16> = snn.layers.iter().map(|l| l.timesteps).collect();
    say(format!(
        "converted {} spiking layers, timesteps {:?} (average {:.2}), alignment {}",
        snn.layers.len(),
        timesteps,
        snn.avg_timesteps(),
        a.align.label()
    ));
    let base = snn_sim::evaluate(&t.net, &snn, &data.test, data.max_code, limit);
    say(format!(
        "quantized ANN (fake-quant, trained level counts) {:.2} %; SNN before calibration {:.2} % \
         (logit MSE vs the ANN {:.4})",
        100.0 * base.ann_accuracy,
        100.0 * base.accuracy,
        base.mse
    ));
    let mut calibrated = None;
    if a.calibrate > 0 {
        let c = Calibration {
            epochs: a.calibrate,
            images: a.calibration_images,
            lr: a.calibration_lr,
            ..Default::default()
        };
        if !(a.calibration_lr > 0.0 && a.calibration_lr.is_finite()) {
            bail!("--calibration-lr must be positive");
        }
        let losses = snn_sim::calibrate(&t.net, &mut snn, &data.train, data.max_code, &c)?;
        let shown: Vec<String> = losses.iter().map(|l| format!("{l:.4}")).collect();
        say(format!("calibration loss per epoch: {}", shown.join(" ")));
        let e = snn_sim::evaluate(&t.net, &snn, &data.test, data.max_code, limit);
        say(format!(
            "SNN after calibration ({} epochs on {} unlabelled training images, loss {:.4} -> \
             {:.4}): {:.2} % (logit MSE {:.4})",
            a.calibrate,
            c.images.min(data.train.len()),
            losses.first().copied().unwrap_or(f64::NAN),
            losses.iter().copied().fold(f64::INFINITY, f64::min),
            100.0 * e.accuracy,
            e.mse
        ));
        calibrated = Some(e);
    }
    let file = snn.to_file();
    train::write_atomic(
        &run.0.join("snn.json"),
        serde_json::to_string_pretty(&file)?.as_bytes(),
    )?;
    let float = calibrated.as_ref().unwrap_or(&base);
    let mut integer = serde_json::Value::Null;
    if let Some(out) = &a.out {
        let mut def = bitspike::qac::export::model_def_snn(&t.net, &snn)?;
        // Input sparsity on training images decides, per layer and target, event-driven or
        // dense accumulation.
        let sample: Vec<Vec<u8>> = (0..data.train.len().min(DENSITY_IMAGES))
            .map(|i| data.train.hwc(i))
            .collect();
        let densities = export::measure_density(&mut def, &sample)?;
        say(density_line(&densities, sample.len()));
        let bytes = write(&def).context("writing the model file")?;
        let model = load_model(&bytes, out)?;
        write_file(out, &bytes)?;
        let test = data.test.take(limit.min(data.test.len()));
        let r = eval::integer(&bytes, &test)?;
        let agree = r
            .predictions()
            .iter()
            .zip(&float.predictions)
            .filter(|(a, b)| **a as i64 == **b)
            .count();
        let (macs, acs) = r.ops_per_inference();
        let energy = bitspike_core::cost::energy_45nm_pj(macs as u64, acs as u64);
        say(format!(
            "wrote {} ({} bytes, arena {} bytes); host integer SNN {:.2} %, same prediction as \
             the float simulator on {agree} of {} images; per inference {:.0} MACs + {:.0} \
             synaptic operations = {:.2} uJ (45 nm estimate: 4.6 pJ/MAC, 0.9 pJ/AC)",
            out.display(),
            bytes.len(),
            model.arena_bytes(),
            100.0 * r.accuracy(),
            r.labels.len(),
            macs,
            acs,
            energy / 1e6
        ));
        let mut ann = serde_json::Value::Null;
        if let Some(p) = &a.ann_out {
            let mut d = bitspike::qac::export::model_def_ann_of(&t.net, &snn)?;
            let densities = export::measure_density(&mut d, &sample)?;
            say(format!(
                "quantized twin: {}",
                density_line(&densities, sample.len())
            ));
            let b = write(&d).context("writing the quantized model file")?;
            write_file(p, &b)?;
            let ra = eval::integer(&b, &test)?;
            let (m, _) = ra.ops_per_inference();
            say(format!(
                "wrote {} (the same network, quantized, not spiking: {:.2} %, {:.0} MACs = \
                 {:.2} uJ, 45 nm estimate)",
                p.display(),
                100.0 * ra.accuracy(),
                m,
                bitspike_core::cost::energy_45nm_pj(m as u64, 0) / 1e6
            ));
            ann = serde_json::json!({
                "model": p, "accuracy": ra.accuracy(), "twin_macs": m,
                "energy_45nm_uj": bitspike_core::cost::energy_45nm_pj(m as u64, 0) / 1e6,
            });
        }
        a.files
            .write(&bytes, &data.test, data.name.class_names(), say)?;
        integer = serde_json::json!({
            "model": out, "bytes": bytes.len(), "arena_bytes": model.arena_bytes(),
            "accuracy": r.accuracy(), "agree_with_float": agree, "samples": r.labels.len(),
            "analog_macs": macs, "synops": acs, "energy_45nm_uj": energy / 1e6,
            "ann": ann,
        });
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "run": run.0, "align": a.align, "timesteps": timesteps,
                "avg_timesteps": snn.avg_timesteps(),
                "ann_accuracy": base.ann_accuracy,
                "snn_before": base, "snn_after": calibrated,
                "integer": integer,
            })
        );
    }
    Ok(())
}
