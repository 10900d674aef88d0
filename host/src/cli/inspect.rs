//! `bitspike inspect`: a model file validated and described; `bitspike c-source`: a model file as
//! C sources.

use super::files::*;
use anyhow::{Context, Result};
use bitspike::boards;
use bitspike::report::Summary;
use std::path::Path;

pub(crate) fn inspect(path: &Path, board: Option<&str>, scales: bool) -> Result<()> {
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
    if scales {
        print!("{}", bitspike::report::scales(model.file()));
    }
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

/// `bitspike c-source`: the model file at `path` (with the golden vectors at `vectors`, and the
/// class names of `labels`) as `model.h` and `model.c` in `out`.
pub(crate) fn c_source(
    path: &Path,
    vectors: Option<&Path>,
    labels: Option<bitspike::data::DatasetName>,
    out: &Path,
) -> Result<()> {
    let bytes = read(path)?;
    load_model(&bytes, path)?;
    let v = vectors.map(read).transpose()?;
    let c = bitspike::csource::c_source(&bytes, v.as_deref(), labels.map(|d| d.class_names()))
        .with_context(|| format!("{}", path.display()))?;
    bitspike::csource::write_dir(out, &c)?;
    println!(
        "wrote {} and {} ({} model bytes{})",
        out.join("model.h").display(),
        out.join("model.c").display(),
        bytes.len(),
        v.as_ref()
            .map(|_| ", golden vectors".to_string())
            .unwrap_or_default()
    );
    Ok(())
}
