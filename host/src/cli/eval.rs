//! `bitspike eval`: a run's test accuracy, fake-quant and integer.

use super::args::*;
use super::export::*;
use super::files::*;
use anyhow::Result;
use bitspike::eval;
use bitspike::train::{self, RunDir};
use std::path::Path;

pub(crate) fn evaluate(
    run: &RunDir,
    model: Option<&Path>,
    limit: Option<i64>,
    json: bool,
    point: &PointArgs,
    rt: &Runtime,
) -> Result<()> {
    let cfg = run.read_config()?;
    let device = rt.device()?;
    let data = cfg.load_data(&rt.data_dir())?;
    let test = data.test.take(limit.unwrap_or(i64::MAX));
    let t = load_trained(run, &cfg, &data, device, point)?;
    let fake = train::accuracy(&t.net, &test, data.max_code, device);
    let integer = match model {
        Some(p) => Some(
            eval::integer(&read(p)?, &test)
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", p.display()))?,
        ),
        None => None,
    };
    let int_acc = integer.as_ref().map(|r| r.accuracy());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "dataset": cfg.dataset.as_str(),
                "samples": test.len(),
                "fake_quant_accuracy": fake,
                "integer_accuracy": int_acc,
            })
        );
    } else {
        println!("{} test images of {}", test.len(), cfg.dataset.as_str());
        println!("  fake-quant (tch, float):        {:.2} %", 100.0 * fake);
        if let Some(a) = int_acc {
            println!(
                "  integer (bitspike-rt on host): {:.2} %  (gap {:+.2} points)",
                100.0 * a,
                100.0 * (a - fake)
            );
        }
    }
    Ok(())
}
