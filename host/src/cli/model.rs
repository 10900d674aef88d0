//! `bitspike model`: a built-in architecture with deterministic random weights.

use super::files::*;
use anyhow::{Context, Result};
use bitspike::{boards, builtin};
use std::path::Path;

/// Write `arch` at `bits` with the weights of `seed` to `out`: planned with in-place layers
/// unless `no_in_place`, the arena sized for `board`'s core when given.
pub(crate) fn model(
    arch: builtin::Arch,
    bits: u8,
    seed: u64,
    out: &Path,
    no_in_place: bool,
    board: Option<&str>,
) -> Result<()> {
    use bitspike_core::format::writer::{write_planned, Budget, IN_PLACE_SHARE};
    let budget = if no_in_place {
        Budget::None
    } else {
        Budget::Share(IN_PLACE_SHARE)
    };
    let mut def = builtin::build(arch, bits, seed);
    if board.map(boards::armv6m).transpose()? == Some(true) {
        def.reserve_armv6m_tables();
    }
    let bytes = write_planned(&def, budget).with_context(|| format!("exporting {arch:?}"))?;
    write_file(out, &bytes)?;
    println!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}
