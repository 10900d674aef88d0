//! Model tools: `ops`, `report`, `golden`, `inspect`.

use super::files::*;
use anyhow::{bail, Context, Result};
use bitspike::boards;
use bitspike::report::Summary;
use bitspike::train::RunDir;
use bitspike_core::def::random::Rng;
use std::path::Path;

/// `bitspike ops`: mean operations per inference over the inputs of a vector or stream file.
pub(crate) fn ops(
    path: &Path,
    vectors: Option<&Path>,
    stream: Option<&Path>,
    limit: usize,
) -> Result<()> {
    use bitspike_core::vectors::{StreamHeader, Vectors, STREAM_HEADER_LEN};
    let bytes = read(path)?;
    let model = load_model(&bytes, path)?;
    let (file, is_stream) = match (vectors, stream) {
        (Some(v), _) => (v, false),
        (None, Some(s)) => (s, true),
        (None, None) => bail!("give --vectors or --stream"),
    };
    let d = read(file)?;
    let bad = |e: bitspike_core::vectors::VectorError| {
        anyhow::anyhow!("{}: not a valid vector file ({e:?})", file.display())
    };
    let inputs: Vec<&[u8]> = if is_stream {
        let h = StreamHeader::parse(&d).map_err(bad)?;
        let rec = h.record_len().unwrap_or(0);
        (0..h.count.min(limit))
            .filter_map(|k| {
                d.get(STREAM_HEADER_LEN + k * rec..)
                    .and_then(|r| r.get(..h.input_len))
            })
            .collect()
    } else {
        let v = Vectors::parse(&d).map_err(bad)?;
        (0..v.len().min(limit)).map(|k| v.input(k)).collect()
    };
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut it = model.bind(&mut arena).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = vec![0i32; model.output_len()];
    let (mut macs, mut acs) = (0u64, 0u64);
    for (k, x) in inputs.iter().enumerate() {
        it.run(x, &mut out)
            .map_err(|e| anyhow::anyhow!("{}: input {k}: {e}", file.display()))?;
        let o = it.total_ops();
        macs += o.macs;
        acs += o.accumulates;
    }
    let n = inputs.len().max(1) as f64;
    let spiking = model.file().header().flags & bitspike_core::format::HEADER_FLAG_SPIKING != 0;
    println!(
        "{}",
        serde_json::json!({
            "model": path, "spiking": spiking, "inferences": inputs.len(),
            "macs": macs as f64 / n, "synops": acs as f64 / n,
            "energy_45nm_nj": bitspike_core::cost::energy_45nm_pj(macs, acs) / n / 1000.0,
        })
    );
    Ok(())
}

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

pub(crate) fn golden(
    path: &Path,
    count: usize,
    seed: u64,
    out: &Path,
    perturb: Option<usize>,
    random: bool,
) -> Result<()> {
    let bytes = read(path)?;
    let model = load_model(&bytes, path)?;
    let (n, levels) = (model.input_len(), model.file().input().levels);
    let mut rng = Rng::new(seed);
    let inputs: Vec<Vec<u8>> = (0..count)
        .map(|k| match k {
            0 if !random => vec![0; n],
            1 if !random => vec![levels; n],
            _ => rng.codes(n, levels),
        })
        .collect();
    let mut arena = vec![0u8; model.arena_bytes()];
    let mut interp = model
        .bind(&mut arena)
        .map_err(|e| anyhow::anyhow!("binding the arena: {e}"))?;
    let mut outputs = Vec::with_capacity(count);
    for input in &inputs {
        let mut o = vec![0i32; model.output_len()];
        interp
            .run(input, &mut o)
            .map_err(|e| anyhow::anyhow!("running {}: {e}", path.display()))?;
        outputs.push(o);
    }
    if let Some(k) = perturb {
        let first = outputs
            .get_mut(k)
            .and_then(|o| o.first_mut())
            .with_context(|| format!("--perturb {k}: there are only {count} vectors"))?;
        *first = first.wrapping_add(1);
    }
    let file = bitspike_core::vectors::write(&inputs, &outputs).context("vector lengths differ")?;
    write_file(out, &file)?;
    println!("wrote {} ({count} vectors)", out.display());
    Ok(())
}

pub(crate) fn inspect(path: &Path, board: Option<&str>) -> Result<()> {
    let bytes = read(path)?;
    let model = load_model(&bytes, path)?;
    if let Some(b) = board {
        boards::check_fit(b, bytes.len(), model.arena_bytes())?;
    }
    let h = model.file().header();
    println!(
        "{}: format version {}, written by bitspike {}.{}.{}",
        path.display(),
        h.version,
        h.producer >> 16,
        (h.producer >> 8) & 0xff,
        h.producer & 0xff
    );
    print!("{}", Summary::of(model.file()));
    Ok(())
}

/// Training images on which the exporter measures each layer's input density.
pub(crate) const DENSITY_IMAGES: i64 = 256;

/// One line naming each weighted layer's measured input density and where it runs event by
/// event.
pub(crate) fn density_line(densities: &[u8], images: usize) -> String {
    use bitspike_core::kernel::{events_pay, Isa};
    let shown: Vec<String> = densities
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| bitspike::report::density_percent(d).map(|p| (i, d, p)))
        .map(|(i, d, p)| {
            let on: Vec<&str> = [Isa::Dsp, Isa::Portable]
                .into_iter()
                .filter(|&isa| events_pay(isa, d))
                .map(Isa::name)
                .collect();
            let on = if on.is_empty() {
                String::new()
            } else {
                format!(" (event-driven on {})", on.join(", "))
            };
            format!("layer {i} {p:.1} %{on}")
        })
        .collect();
    format!(
        "nonzero inputs on {images} training images: {}",
        shown.join(", ")
    )
}
