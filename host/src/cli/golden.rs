//! `bitspike golden`: golden vectors of a model on random inputs.

use super::files::*;
use anyhow::{Context, Result};
use bitspike_core::def::random::Rng;
use std::path::Path;

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
