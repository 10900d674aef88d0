//! `bitspike ssql`: SSQL's evaluation protocol and its tables.

use super::args::*;
use anyhow::{Context, Result};
use bitspike::train::{self, RunDir};

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
            lsq_epochs,
            lsq_bits,
            quiet,
            rt,
        } => {
            let mut e = EvalConfig {
                bn_per_bits,
                edge_act_bits,
                mse_clip,
                head_per_bits,
                ..Default::default()
            };
            if let Some(b) = bits {
                e.bits = b.iter().map(|s| s.parse()).collect::<Result<Vec<Bits>>>()?;
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
