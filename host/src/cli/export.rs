//! `bitspike export`: a run (or a search run's chosen child) to a model file, golden vectors and a test stream.

use super::args::*;
use super::files::*;
use anyhow::{bail, Context, Result};
use bitspike::config::TrainConfig;
use bitspike::data;
use bitspike::mps::{BitPlan, Searcher};
use bitspike::mps_report::{self, Front};
use bitspike::train::{self, RunDir};
use bitspike::{boards, export};
use bitspike_core::format::writer::write;
use std::path::Path;

/// What `bitspike export` writes besides the model, and which model.
pub(crate) struct ExportOpts<'a> {
    pub(crate) files: &'a TestFiles,
    pub(crate) board: Option<&'a str>,
    pub(crate) point: &'a PointArgs,
}

pub(crate) fn export_run(run: &RunDir, out: &Path, o: &ExportOpts<'_>, rt: &Runtime) -> Result<()> {
    let ExportOpts {
        files,
        board,
        point,
    } = *o;
    let cfg = run.read_config()?;
    let device = rt.device()?;
    let data = cfg.load_data(&rt.data_dir())?;
    let armv6m = board.map(boards::armv6m).transpose()? == Some(true);
    let model_def = |net: &_| -> Result<_> {
        let mut def = export::model_def(net)?;
        if armv6m {
            def.reserve_armv6m_tables();
        }
        Ok(def)
    };
    let bytes = if cfg.mps.is_some() {
        // A search run: the chosen front point, or the most accurate one that fits the board.
        let front = Front::read(run)?;
        let mut found = None;
        let mut last_err = None;
        for c in mps_report::candidates(&front, &point.choice())? {
            let t = mps_report::child(run, &c.plan, &data, device)?;
            let bytes = write(&model_def(&t.net)?).context("writing the model file")?;
            let model = load_model(&bytes, out)?;
            if let Some(b) = board {
                if let Err(e) = boards::check_fit(b, bytes.len(), model.arena_bytes()) {
                    last_err = Some(e);
                    continue;
                }
            }
            println!(
                "front point {}: {} ({:.3} MBOPs, {:.0} B S14 RAM; child test accuracy {:.2} %)",
                front
                    .pareto()
                    .iter()
                    .position(|p| p.plan == c.plan)
                    .unwrap_or(0),
                c.plan.label(),
                c.bops / 1e6,
                c.ram,
                100.0 * c.test_accuracy
            );
            if let (Some(b), Some(on)) = (front.board.as_deref(), front.on_board(c)) {
                println!(
                    "  on {b} (its measured cost table): {:.0} instructions{}, flash {} B, RAM {} B",
                    on.insns,
                    on.ms.map_or(String::new(), |ms| format!(", {ms:.3} ms")),
                    on.flash,
                    on.ram
                );
            }
            found = Some(bytes);
            break;
        }
        match (found, last_err) {
            (Some(b), _) => b,
            (None, Some(e)) => bail!("no front point fits: {e:#}"),
            (None, None) => bail!("no front point was chosen"),
        }
    } else {
        // Refuses a front point for a run that is no search.
        let t = load_trained(run, &cfg, &data, device, point)?;
        let bytes = write(&model_def(&t.net)?).context("writing the model file")?;
        let model = load_model(&bytes, out)?;
        if let Some(b) = board {
            boards::check_fit(b, bytes.len(), model.arena_bytes())?;
        }
        bytes
    };
    let model = load_model(&bytes, out)?;
    write_file(out, &bytes)?;
    println!(
        "wrote {} ({} bytes, arena {} bytes)",
        out.display(),
        bytes.len(),
        model.arena_bytes()
    );
    files.write(&bytes, &data.test, data.name.class_names(), |l| {
        println!("{l}")
    })?;
    Ok(())
}

/// The network of a run: the run's own, or for a search run the child `point` chooses.
pub(crate) fn load_trained(
    run: &RunDir,
    cfg: &TrainConfig,
    data: &data::Dataset,
    device: tch::Device,
    point: &PointArgs,
) -> Result<train::Trained> {
    if cfg.mps.is_none() {
        if point.given() {
            bail!(
                "{} is not a search run: --pareto-point and the --max-* budgets choose a point of a `bitspike train mps` run's front",
                run.0.display()
            );
        }
        return bitspike::methods::load(&run.0, data, device);
    }
    let plan = search_plan(run, cfg, point, data, device)?;
    mps_report::child(run, &plan, data, device)
}

/// The child a search run stands for: One-Shot's chosen front point, or the bit widths an
/// EdMIPS or DNAS search selected (its most probable child).
pub(crate) fn search_plan(
    run: &RunDir,
    cfg: &TrainConfig,
    point: &PointArgs,
    data: &data::Dataset,
    device: tch::Device,
) -> Result<BitPlan> {
    let m = cfg.mps.clone().unwrap_or_default();
    if m.searcher == Searcher::OneShot || point.given() {
        let front = Front::read(run)?;
        let c = mps_report::candidates(&front, &point.choice())?;
        return Ok(c[0].plan.clone());
    }
    let t = train::load(&bitspike::mps::Search, run, data, device)?;
    let s = bitspike::mps::supernet(&t.net)
        .ok_or_else(|| anyhow::anyhow!("{}: no supernet", run.0.display()))?;
    Ok(s.plan_at(m.eta[0]))
}
