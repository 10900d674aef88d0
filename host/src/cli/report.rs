//! `bitspike report`: a training run summarized from its log.

use anyhow::{Context, Result};
use bitspike::train::RunDir;

pub(crate) fn report(run: &RunDir) -> Result<()> {
    let cfg = run.read_config()?;
    let state = run.read_state()?;
    println!(
        "{}: {:?} on {}, w{}a{} (first/last {}), {:?}/{:?} quantizers",
        run.0.display(),
        cfg.arch,
        cfg.dataset.as_str(),
        cfg.quant.weight_bits,
        cfg.quant.act_bits,
        cfg.quant.first_last_bits,
        cfg.quant.weight_quantizer,
        cfg.quant.act_quantizer
    );
    let log = std::fs::read_to_string(run.log()).unwrap_or_default();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: corrupt line", run.log().display()))?;
        println!(
            "  epoch {:>3}: loss {:.4}, train {:.2} %, test (fake-quant) {}",
            v["epoch"],
            v["train_loss"].as_f64().unwrap_or(f64::NAN),
            100.0 * v["train_accuracy"].as_f64().unwrap_or(f64::NAN),
            v["test_accuracy_fake_quant"]
                .as_f64()
                .map(|a| format!("{:.2} %", 100.0 * a))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!(
        "{} of {} epochs, {:.0} s, test accuracy (fake-quant) {:.2} %",
        state.epochs_done,
        cfg.epochs,
        state.seconds,
        100.0 * state.test_accuracy
    );
    Ok(())
}
