//! `bitspike mps`: One-Shot MPS's front, children and tables.

use super::args::*;
use super::export::*;
use anyhow::{bail, Result};
use bitspike::mps_report;
use bitspike::train::{RunDir, TrainOptions};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum MpsCommand {
    /// Sweep eta over a search run's bit-width model, evaluate each distinct child and keep the
    /// Pareto front (writes front.json into the run; Algorithm S1, lines 8-15).
    Front {
        /// The search run.
        #[arg(long)]
        run: PathBuf,
        /// Penalties per sweep (this many linear and this many logarithmic values).
        #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(2..))]
        sweep: u64,
        /// Also write front.md and the probability plots (Figures S6-S11) here, and with board
        /// figures front-board.svg (accuracy against time on the board).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Report every child's instructions, time, flash and RAM on this board from its
        /// measured cost table (default: the search's `[mps] board`).
        #[arg(long)]
        board: Option<String>,
        #[command(flatten)]
        rt: Runtime,
    },
    /// Search fronts on their board, side by side: every Pareto point's instructions, time
    /// at the board's clock, flash, RAM and energy beside its BOPs, where BOPs and time order
    /// the points differently, and which points stay Pareto-optimal in time. Writes
    /// board-fronts.{md,json} and board-fronts.svg (test accuracy against time).
    BoardFronts {
        /// `LABEL=RUN`: a search run whose front has figures on the board (`mps front --board
        /// B`, or a search with a board); every run on the same board.
        #[arg(long = "run", required = true)]
        runs: Vec<String>,
        /// The folder to write into.
        #[arg(long)]
        out: PathBuf,
        /// The plot's title.
        #[arg(long, default_value = "Fronts on the board")]
        title: String,
    },
    /// Train a child of a search run as a run of its own: fine-tuned from the supernet's weights
    /// (Algorithm S1, line 16), or with --scratch from a fresh initialisation (standalone). The
    /// child: the chosen front point (without a choice, the most accurate one) of a One-Shot
    /// run, the most probable bit widths of an EdMIPS or DNAS search.
    Child {
        /// The search run.
        #[arg(long)]
        run: PathBuf,
        /// The run folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Train from scratch instead of from the supernet's weights.
        #[arg(long)]
        scratch: bool,
        /// Epochs (default: the search's).
        #[arg(long)]
        epochs: Option<usize>,
        /// Learning rate (default: the search's).
        #[arg(long)]
        lr: Option<f64>,
        /// No progress output.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        point: PointArgs,
        #[command(flatten)]
        rt: Runtime,
    },
    /// The Pareto table and plots of a search beside labelled trained runs (uniform baselines,
    /// EdMIPS and DNAS children, standalone children for the correlation).
    Report {
        /// The One-Shot search run (with its front).
        #[arg(long)]
        front: PathBuf,
        /// A trained run, `LABEL=DIR` (label `standalone` pairs with the front's children; a
        /// search run with a front adds its Pareto children).
        #[arg(long = "run", value_parser = parse_labelled)]
        runs: Vec<(String, PathBuf)>,
        /// Where to write pareto.{md,json,svg}, front.{md,json} and the probability plots.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        rt: Runtime,
    },
}

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
