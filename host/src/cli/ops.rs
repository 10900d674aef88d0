//! `bitspike ops`: operations per inference counted by the runtime on the host.

use super::files::*;
use anyhow::{bail, Result};
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
