//! The argument groups several subcommands share: the runtime options and the choice of a
//! search run's point. Each subcommand's own arguments sit beside its dispatch in `cli/`; the
//! root is `cli::command`.

use anyhow::{bail, Context, Result};
use bitspike::data;
use bitspike::mps_report::Choice;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum DeviceArg {
    /// CUDA when libtorch sees a GPU, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
}

#[derive(Args, Clone)]
pub(crate) struct Runtime {
    /// Where to train and evaluate.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub(crate) device: DeviceArg,
    /// Torch CPU threads (default: the machine's cores, at most 4; on a machine shared with a
    /// busy process one thread can be several times faster than two).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Folder of the datasets (default: $BITSPIKE_DATA, else .bitspike/data of the source tree).
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
}

impl Runtime {
    pub(crate) fn device(&self) -> Result<tch::Device> {
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().min(4))
                .unwrap_or(1)
        });
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        tch::set_num_threads(threads as i32);
        Ok(match self.device {
            DeviceArg::Auto => tch::Device::cuda_if_available(),
            DeviceArg::Cpu => tch::Device::Cpu,
            DeviceArg::Cuda => {
                if !tch::Cuda::is_available() {
                    bail!("--device cuda: libtorch sees no CUDA GPU (this build is CPU-only unless set up with `cargo xtask setup --cuda`)");
                }
                tch::Device::Cuda(0)
            }
        })
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(data::default_dir)
    }
}

/// Which child of a search run (`bitspike train mps`) to use; ignored for other runs.
#[derive(Args, Clone, Copy, Debug, Default)]
pub(crate) struct PointArgs {
    /// The K-th point of the run's Pareto front (0 = cheapest; `bitspike mps front`).
    #[arg(long, value_name = "K")]
    pub(crate) pareto_point: Option<usize>,
    /// The most accurate front point with at most this many BOPs (eq. S13).
    #[arg(long, value_name = "BOPS")]
    pub(crate) max_bops: Option<f64>,
    /// The most accurate front point with at most this many bytes of RAM by eq. S14.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_s14_ram: Option<f64>,
    /// The most accurate front point that runs in at most this many milliseconds on the
    /// front's board (`mps front --board B`: its measured costs at its clock).
    #[arg(long, value_name = "MS")]
    pub(crate) max_ms: Option<f64>,
    /// The most accurate front point whose board app with the model takes at most this many
    /// bytes of flash on the front's board.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_flash: Option<f64>,
    /// The most accurate front point whose board app with the arena takes at most this many
    /// bytes of RAM on the front's board (the S14 figure's budget is --max-s14-ram).
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_ram: Option<f64>,
    /// The most accurate front point that takes at most this many microjoules per inference
    /// on the front's board (its datasheet run current).
    #[arg(long, value_name = "UJ")]
    pub(crate) max_uj: Option<f64>,
}

impl PointArgs {
    pub(crate) fn choice(&self) -> Choice {
        Choice {
            point: self.pareto_point,
            max_bops: self.max_bops,
            max_s14_ram: self.max_s14_ram,
            max_ms: self.max_ms,
            max_flash: self.max_flash,
            max_ram: self.max_ram,
            max_uj: self.max_uj,
        }
    }

    pub(crate) fn given(&self) -> bool {
        self.pareto_point.is_some()
            || self.max_bops.is_some()
            || self.max_s14_ram.is_some()
            || self.max_ms.is_some()
            || self.max_flash.is_some()
            || self.max_ram.is_some()
            || self.max_uj.is_some()
    }
}

pub(crate) fn parse_labelled(s: &str) -> std::result::Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((l, p)) if !l.is_empty() && !p.is_empty() => Ok((l.to_string(), PathBuf::from(p))),
        _ => Err(format!("expected LABEL=DIR, got {s:?}")),
    }
}

/// The test files written beside a model (`export`, `snn`): golden vectors and the whole test
/// split as a stream, both with the host integer outputs of the model.
#[derive(Args, Clone, Debug)]
pub(crate) struct TestFiles {
    /// Also write golden vectors (the first N test images with the host integer outputs).
    #[arg(long)]
    pub(crate) vectors: Option<PathBuf>,
    /// Number of golden vectors.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(i64).range(1..))]
    pub(crate) count: i64,
    /// Also write the whole test split as a stream file for a board (inputs, host integer
    /// outputs and labels; `cargo xtask qemu --stream`).
    #[arg(long)]
    pub(crate) stream: Option<PathBuf>,
    /// Also write the model as C sources into this directory (model.h, model.c: its bytes, arena,
    /// input and output sizes, the class names and the golden vectors; docs/c.md).
    #[arg(long)]
    pub(crate) c_source: Option<PathBuf>,
}

impl TestFiles {
    /// Write the files asked for, for the model file `bytes` over `test` whose classes are
    /// named `labels`; `say` reports each.
    pub(crate) fn write(
        &self,
        bytes: &[u8],
        test: &data::Split,
        labels: &[&str],
        say: impl Fn(String),
    ) -> Result<()> {
        if self.vectors.is_some() || self.c_source.is_some() {
            let r = bitspike::eval::integer(bytes, &test.take(self.count))?;
            let file = bitspike_core::vectors::write(&r.inputs, &r.outputs)
                .context("vector lengths differ")?;
            if let Some(v) = &self.vectors {
                super::files::write_file(v, &file)?;
                say(format!(
                    "wrote {} ({} golden vectors)",
                    v.display(),
                    r.inputs.len()
                ));
            }
            if let Some(dir) = &self.c_source {
                // The class names where the model's output is one value per class.
                let outputs = r.outputs.first().map_or(0, Vec::len);
                let labels = (labels.len() == outputs).then_some(labels);
                let c = bitspike::csource::c_source(bytes, Some(&file), labels)?;
                bitspike::csource::write_dir(dir, &c)?;
                say(format!(
                    "wrote {} and model.c ({} golden vectors)",
                    dir.join("model.h").display(),
                    r.inputs.len()
                ));
            }
        }
        if let Some(path) = &self.stream {
            let r = bitspike::eval::integer(bytes, test)?;
            let file = bitspike_core::vectors::write_stream(&r.inputs, &r.outputs, &r.labels)
                .context("vector lengths differ")?;
            super::files::write_file(path, &file)?;
            say(format!(
                "wrote {} ({} test images; host integer accuracy {:.2} %)",
                path.display(),
                r.labels.len(),
                100.0 * r.accuracy()
            ));
        }
        Ok(())
    }
}
