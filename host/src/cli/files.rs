//! Reading and writing the files the commands take and make.

use anyhow::{Context, Result};
use bitspike::train;
use bitspike_rt::Model;
use std::path::Path;

/// Write `bytes` to `path`, creating its folder; the file appears whole or not at all.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    train::write_atomic(path, bytes)
}

pub(crate) fn load_model<'a>(bytes: &'a [u8], path: &Path) -> Result<Model<'a>> {
    Model::load(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}
