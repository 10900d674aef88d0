//! `bitspike mps`: One-Shot MPS's front, children and tables.

use super::args::*;
use super::export::*;
use anyhow::{bail, Result};
use bitspike::mps_report;
use bitspike::train::{RunDir, TrainOptions};

pub(crate) fn mps_command(c: MpsCommand) -> Result<()> {
    match c {
        MpsCommand::Front {
            run,
            sweep,
            out,
            board,
            rt,
        } => {
            let run = RunDir(run);
            let cfg = run.read_config()?;
            let data = cfg.load_data(&rt.data_dir())?;
            let front =
                mps_report::extract(&run, &data, rt.device()?, sweep as usize, board.as_deref())?;
            print!("{}", mps_report::front_markdown(&front));
            println!(
                "{} distinct children from {} penalties ({} supernet evaluations, {:.0} s); {} on the Pareto front; supernet trained {:.0} s",
                front.children.len(),
                front.etas.len(),
                front.evaluations,
                front.front_seconds,
                front.pareto().len(),
                front.train_seconds
            );
            if let Some(dir) = out {
                bitspike::figures::write_tables(
                    &dir,
                    "front",
                    &mps_report::front_markdown(&front),
                    &front,
                )?;
                mps_report::plot_probabilities(&front, &dir)?;
                if front.board.is_some() {
                    // The front in the board's units: accuracy against time (or instructions).
                    let b = bitspike::mps_board::board_fronts(&[("front".into(), front.clone())])?;
                    let title = format!("Front on {}", b.board);
                    b.plot(&dir.join("front-board.svg"), &title)?;
                }
            }
        }
        MpsCommand::BoardFronts { runs, out, title } => {
            let mut fronts = Vec::new();
            for r in &runs {
                let Some((label, dir)) = r.split_once('=') else {
                    bail!("--run {r}: expected LABEL=RUN");
                };
                fronts.push((
                    label.to_string(),
                    mps_report::Front::read(&RunDir(dir.into()))?,
                ));
            }
            let b = bitspike::mps_board::board_fronts(&fronts)?;
            let md = b.markdown();
            print!("{md}");
            bitspike::figures::write_tables(&out, "board-fronts", &md, &b)?;
            b.plot(&out.join("board-fronts.svg"), &title)?;
            println!("wrote {}/board-fronts.{{md,json,svg}}", out.display());
        }
        MpsCommand::Child {
            run,
            out,
            scratch,
            epochs,
            lr,
            quiet,
            point,
            rt,
        } => {
            let search = RunDir(run);
            let cfg = search.read_config()?;
            if cfg.mps.is_none() {
                bail!("{} is not a search run", search.0.display());
            }
            let device = rt.device()?;
            let data = cfg.load_data(&rt.data_dir())?;
            let plan = search_plan(&search, &cfg, &point, &data, device)?;
            let mut child = mps_report::child_config(&cfg, &plan);
            if let Some(e) = epochs {
                child.epochs = e;
            }
            if let Some(v) = lr {
                child.lr = v;
            }
            child.check()?;
            let weights = search.weights()?;
            let state = bitspike::methods::train(
                &child,
                &data,
                &TrainOptions {
                    init: (!scratch).then_some(weights.as_path()),
                    out: &out,
                    resume: false,
                    device,
                    progress: !quiet,
                },
            )?;
            println!(
                "{} child {} trained {} epochs in {:.0} s: fake-quant test accuracy {:.2} % ({})",
                if scratch { "standalone" } else { "fine-tuned" },
                plan.label(),
                state.epochs_done,
                state.seconds,
                100.0 * state.test_accuracy,
                out.display()
            );
        }
        MpsCommand::Report {
            front,
            runs,
            out,
            rt,
        } => {
            let run = RunDir(front);
            let cfg = run.read_config()?;
            let data = cfg.load_data(&rt.data_dir())?;
            mps_report::report(&run, &runs, &data, &out)?;
            print!(
                "{}",
                std::fs::read_to_string(out.join("pareto.md")).unwrap_or_default()
            );
        }
    }
    Ok(())
}
