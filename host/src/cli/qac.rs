//! `bitspike qac`: QAC's tables over several runs.

use super::args::*;
use anyhow::{bail, Result};
use bitspike::data;
use bitspike::snn::{self as snn_sim, Snn};
use bitspike::train::{self, RunDir};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum QacCommand {
    /// One QAC run: calibration (Table 3), alignment (Table 4) and timestep scaling (Table 5);
    /// uses the run's calibrated parameters (snn.json, from `bitspike snn`) when present.
    Report {
        /// The QAC run folder.
        #[arg(long)]
        run: PathBuf,
        /// Where to write qac-report.{md,json} and qac-scaling.svg (default: the run folder).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Evaluate on the first N test images only.
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Runs of the four parameterisations: average bits, timesteps and accuracy (Figure 2/11).
    Cases {
        /// QAC run folders (one per case).
        #[arg(long = "run", required = true)]
        runs: Vec<PathBuf>,
        /// Where to write qac-cases.{md,json}.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
        #[command(flatten)]
        rt: Runtime,
    },
    /// QCFS runs (`train qac --qcfs-levels L`): step-by-step vs averaging over T (Table 8).
    Qcfs {
        /// QCFS run folders (one per L).
        #[arg(long = "run", required = true)]
        runs: Vec<PathBuf>,
        /// Where to write qac-qcfs.{md,json,svg}.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        limit: Option<i64>,
        #[command(flatten)]
        rt: Runtime,
    },
}

/// Load every run of `runs` (one dataset for all).
pub(crate) fn load_runs(
    runs: &[PathBuf],
    rt: &Runtime,
) -> Result<(data::Dataset, Vec<(String, train::Trained)>)> {
    let device = rt.device()?;
    let first = RunDir(runs[0].clone()).read_config()?;
    let data = first.load_data(&rt.data_dir())?;
    let mut out = Vec::new();
    for r in runs {
        let run = RunDir(r.clone());
        let cfg = run.read_config()?;
        if cfg.dataset != first.dataset {
            bail!(
                "{}: trained on {}, the others on {}",
                r.display(),
                cfg.dataset.as_str(),
                first.dataset.as_str()
            );
        }
        out.push((
            r.display().to_string(),
            bitspike::methods::load(r, &data, device)?,
        ));
    }
    Ok((data, out))
}

pub(crate) fn qac_tables(c: QacCommand) -> Result<()> {
    use bitspike::figures;
    use bitspike::qac_report as qr;
    match c {
        QacCommand::Report {
            run,
            out,
            limit,
            rt,
        } => {
            let (data, runs) = load_runs(std::slice::from_ref(&run), &rt)?;
            let t = &runs[0].1;
            let saved = snn_sim::load_file(&run.join("snn.json"))?;
            let calibrated = match &saved {
                Some(f) => Some(Snn::from_file(&t.net, f)?),
                None => None,
            };
            let r = qr::run_report(
                &t.net,
                &data,
                limit.unwrap_or(i64::MAX),
                calibrated.as_ref(),
            )?;
            let dir = out.unwrap_or(run.clone());
            let md = r.markdown(data.name.as_str());
            figures::write_tables(&dir, "qac-report", &md, &r)?;
            let pts: Vec<(f64, f64)> = r.scaling.iter().map(|&(_, t, a)| (t, a)).collect();
            figures::plot(
                &dir.join("qac-scaling.svg"),
                "QAC temporal scaling (T .. 6T)",
                "average timesteps",
                &[("SNN".into(), pts)],
                false,
            )?;
            print!("{md}");
            println!(
                "\nwrote {}/qac-report.{{md,json}} and qac-scaling.svg",
                dir.display()
            );
        }
        QacCommand::Cases {
            runs,
            out,
            limit,
            rt,
        } => {
            let (data, loaded) = load_runs(&runs, &rt)?;
            let nets: Vec<(String, &train::Trained)> =
                loaded.iter().map(|(n, t)| (n.clone(), t)).collect();
            let rows = qr::cases_report(&nets, &data, limit.unwrap_or(i64::MAX))?;
            let md = qr::cases_markdown(&rows, data.name.as_str());
            figures::write_tables(&out, "qac-cases", &md, &rows)?;
            print!("{md}");
            println!("\nwrote {}/qac-cases.{{md,json}}", out.display());
        }
        QacCommand::Qcfs {
            runs,
            out,
            limit,
            rt,
        } => {
            let (data, loaded) = load_runs(&runs, &rt)?;
            let nets: Vec<&bitspike::net::QNet> = loaded.iter().map(|(_, t)| &t.net).collect();
            let rows = qr::qcfs_report(&nets, &data, limit.unwrap_or(i64::MAX))?;
            let md = qr::qcfs_markdown(&rows, data.name.as_str());
            figures::write_tables(&out, "qac-qcfs", &md, &rows)?;
            let mut series = Vec::new();
            for r in &rows {
                for (name, v) in [("QCFS", &r.qcfs), ("QCFS+aver", &r.aver)] {
                    let pts = qr::TABLE8_T
                        .iter()
                        .zip(v)
                        .map(|(&t, &a)| (t as f64, a))
                        .collect();
                    series.push((format!("L={} {name}", r.levels), pts));
                }
            }
            figures::plot(
                &out.join("qac-qcfs.svg"),
                "QCFS vs QCFS + averaging",
                "T",
                &series,
                true,
            )?;
            print!("{md}");
            println!("\nwrote {}/qac-qcfs.{{md,json,svg}}", out.display());
        }
    }
    Ok(())
}
