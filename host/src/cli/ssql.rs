//! `bitspike ssql`: SSQL's evaluation protocol and its tables.

use super::args::*;
use anyhow::{Context, Result};
use bitspike::data::DatasetName;
use bitspike::train::{self, RunDir};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum SsqlCommand {
    /// Linear evaluation and fine-tuning of a pretrained encoder, each quantized after training
    /// at every bit width; weight statistics; optionally LSQ from the linear-evaluated network.
    /// Writes results.json and one exportable run folder per (network, bit width).
    Eval {
        /// The pretraining run.
        #[arg(long)]
        run: PathBuf,
        /// Evaluation dataset (default: the pretraining one; another one is a transfer).
        #[arg(long, value_enum)]
        on: Option<DatasetName>,
        /// Where to write (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
        /// Bit widths, comma-separated (fp, 8w8a, 4w4a, 2w4a, ...).
        #[arg(long, value_delimiter = ',')]
        bits: Option<Vec<String>>,
        /// Linear evaluation epochs.
        #[arg(long)]
        linear_epochs: Option<usize>,
        /// Linear evaluation rate (on standardised features).
        #[arg(long)]
        linear_lr: Option<f64>,
        /// Fine-tuning epochs (0: no fine-tuning).
        #[arg(long)]
        finetune_epochs: Option<usize>,
        /// Fine-tuning rate.
        #[arg(long)]
        finetune_lr: Option<f64>,
        /// Training images that calibrate the activation ranges.
        #[arg(long)]
        calibration: Option<i64>,
        /// Re-estimate BatchNorm statistics of the quantized network at each bit width.
        #[arg(long)]
        bn_per_bits: bool,
        /// Quantize the first layer's output and the features the head reads at this width at
        /// every bit width (as the first and last layers' weights stay at 8 bits).
        #[arg(long)]
        edge_act_bits: Option<u8>,
        /// Calibrate activation ranges to the clip of least squared error at each bit width
        /// instead of the observed maximum (always, for encoders pretrained that way).
        #[arg(long)]
        mse_clip: bool,
        /// Linear evaluation: train a head at each quantized bit width on the quantized,
        /// frozen encoder's features instead of quantizing the full-precision head.
        #[arg(long)]
        head_per_bits: bool,
        /// The supervised reference: ignore the run's weights and train its encoder from its
        /// random initialisation with labels (--finetune-epochs, --finetune-lr), then quantize
        /// it as every encoder.
        #[arg(long)]
        from_scratch: bool,
        /// The quantization protocol (default: the pretraining run's); official: SSQL's
        /// weight observer, the head's input at 8 bits, a head per bit width, 100 linear
        /// evaluation epochs unless given (docs/ssql/official.md).
        #[arg(long, value_enum)]
        protocol: Option<bitspike::ssql::Protocol>,
        /// LSQ epochs from the linear-evaluated network (0: none).
        #[arg(long)]
        lsq_epochs: Option<usize>,
        /// The bit width of that LSQ training.
        #[arg(long)]
        lsq_bits: Option<String>,
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Post-training quantization of a trained classifier (a full-precision run folder of
    /// `ssql eval`, e.g. EVAL/finetune/fp) at every bit width, quantized as `ssql eval`
    /// quantizes; writes results.json and one exportable run folder per bit width.
    Ptq {
        /// The trained classifier's run folder.
        #[arg(long)]
        run: PathBuf,
        /// Where to write (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
        /// Bit widths, comma-separated (fp, 8w8a, 4w4a, 2w4a, ...).
        #[arg(long, value_delimiter = ',')]
        bits: Option<Vec<String>>,
        /// Training images that calibrate the activation ranges.
        #[arg(long)]
        calibration: Option<i64>,
        /// Re-estimate BatchNorm statistics of the quantized network at each bit width.
        #[arg(long)]
        bn_per_bits: bool,
        /// The first layer's output and the head's input at this width at every bit width.
        #[arg(long)]
        edge_act_bits: Option<u8>,
        /// MSE-clipped activation ranges.
        #[arg(long)]
        mse_clip: bool,
        /// Train a linear head at each quantized bit width on the quantized network's
        /// features.
        #[arg(long)]
        head_per_bits: bool,
        /// Linear epochs of those heads.
        #[arg(long)]
        linear_epochs: Option<usize>,
        /// The quantization protocol (official: SSQL's weight observer, the head's input at
        /// 8 bits, a head per bit width).
        #[arg(long, value_enum, default_value = "bitspike")]
        protocol: bitspike::ssql::Protocol,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Tables in the layout of the SSQL appendix's Tables 11 and 12, weight statistics and the
    /// LSQ comparison, from evaluation folders.
    Report {
        /// Evaluation folders (`bitspike ssql eval --out`).
        #[arg(long = "eval", required = true)]
        evals: Vec<PathBuf>,
        /// Where to write results.md and results.json.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(crate) fn ssql_command(c: SsqlCommand) -> Result<()> {
    use bitspike::ssql_eval::{self, Bits, EvalConfig};
    match c {
        SsqlCommand::Eval {
            run,
            on,
            out,
            bits,
            linear_epochs,
            linear_lr,
            finetune_epochs,
            finetune_lr,
            calibration,
            bn_per_bits,
            edge_act_bits,
            mse_clip,
            head_per_bits,
            from_scratch,
            protocol,
            lsq_epochs,
            lsq_bits,
            quiet,
            rt,
        } => {
            // The run's protocol unless one is given; the official one's defaults.
            let protocol = match protocol {
                Some(p) => p,
                None => RunDir(run.clone())
                    .read_config()?
                    .ssql
                    .map(|s| s.protocol)
                    .unwrap_or_default(),
            };
            let official = protocol == bitspike::ssql::Protocol::Official;
            let mut e = EvalConfig {
                bn_per_bits,
                edge_act_bits,
                mse_clip,
                head_per_bits: head_per_bits || official,
                from_scratch,
                protocol: Some(protocol),
                ..Default::default()
            };
            if let Some(b) = bits {
                e.bits = b.iter().map(|s| s.parse()).collect::<Result<Vec<Bits>>>()?;
            }
            if official {
                e.linear_epochs = 100;
            }
            if let Some(v) = linear_epochs {
                e.linear_epochs = v;
            }
            if let Some(v) = linear_lr {
                e.linear_lr = v;
            }
            if let Some(v) = finetune_epochs {
                e.finetune_epochs = v;
            }
            if let Some(v) = finetune_lr {
                e.finetune_lr = v;
            }
            if let Some(v) = calibration {
                e.calibration = v;
            }
            if let Some(v) = lsq_epochs {
                e.lsq_epochs = v;
            }
            if let Some(v) = lsq_bits {
                e.lsq_bits = v.parse()?;
            }
            e.check()?;
            let pre = RunDir(run.clone()).read_config()?;
            let on = on.unwrap_or(pre.dataset);
            let device = rt.device()?;
            let r = ssql_eval::evaluate(&run, on, &rt.data_dir(), &e, &out, device, !quiet)?;
            print!(
                "{}",
                bitspike::ssql_report::report(std::slice::from_ref(&r))
            );
            println!("written: {}", out.display());
        }
        SsqlCommand::Ptq {
            run,
            out,
            bits,
            calibration,
            bn_per_bits,
            edge_act_bits,
            mse_clip,
            head_per_bits,
            linear_epochs,
            protocol,
            rt,
        } => {
            let official = protocol == bitspike::ssql::Protocol::Official;
            let mut e = EvalConfig {
                bn_per_bits,
                edge_act_bits,
                mse_clip,
                head_per_bits: head_per_bits || official,
                protocol: Some(protocol),
                finetune_epochs: 0,
                linear_epochs: if official { 100 } else { 30 },
                ..Default::default()
            };
            if let Some(b) = bits {
                e.bits = b.iter().map(|s| s.parse()).collect::<Result<Vec<Bits>>>()?;
            }
            if let Some(v) = calibration {
                e.calibration = v;
            }
            if let Some(v) = linear_epochs {
                e.linear_epochs = v;
            }
            let device = rt.device()?;
            let r = bitspike::ssql::ptq::quantize_run(&run, &rt.data_dir(), &e, &out, device)?;
            println!("| bit width | test accuracy % |\n|---|---:|");
            for p in &r.points {
                println!("| {} | {:.2} |", p.bits, p.accuracy);
            }
            println!("written: {}", out.display());
        }
        SsqlCommand::Report { evals, out } => {
            let mut results = Vec::new();
            for d in &evals {
                let p = d.join("results.json");
                let text = std::fs::read_to_string(&p).with_context(|| {
                    format!(
                        "{} is not an evaluation folder (no results.json)",
                        d.display()
                    )
                })?;
                let mut r: ssql_eval::EvalResult = serde_json::from_str(&text)
                    .with_context(|| format!("{}: corrupt", p.display()))?;
                // Evaluations written before the seed and the pretraining settings were
                // recorded: the pretraining run's, when that run is still there.
                if r.pretrain_seed.is_none() || r.pretraining.is_none() {
                    if let Ok(pre) = RunDir(r.pretrain_run.clone()).read_config() {
                        r.pretrain_seed.get_or_insert(pre.seed);
                        if let Some(ssql) = &pre.ssql {
                            r.pretraining
                                .get_or_insert_with(|| ssql_eval::pretraining_of(&pre, ssql));
                        }
                    }
                }
                results.push(r);
            }
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let md = bitspike::ssql_report::report(&results);
            train::write_atomic(&out.join("results.md"), md.as_bytes())?;
            train::write_atomic(
                &out.join("results.json"),
                serde_json::to_string_pretty(&results)?.as_bytes(),
            )?;
            print!("{md}");
        }
    }
    Ok(())
}
