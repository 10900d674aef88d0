//! The `bitspike` command-line tool: parsing in `cli` (the root and the subcommands in
//! `cli::command`, shared argument groups in `cli::args`), each subcommand group in a module
//! of `cli`, dispatch here.

use anyhow::{bail, Result};
use bitspike::train::RunDir;
use clap::Parser;
use std::process::ExitCode;

mod cli;

use cli::command::*;
use cli::costs::*;
use cli::eval::*;
use cli::export::*;
use cli::golden::*;
use cli::inspect::*;
use cli::model::*;
use cli::mps::*;
use cli::ops::*;
use cli::qac::*;
use cli::report::*;
use cli::snn::*;
use cli::ssql::*;
use cli::train::*;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train(TrainCommand::Qat(a)) => train_run(&a, a.config()?)?,
        Command::Train(TrainCommand::Qac(a)) => train_run(&a.base, a.config()?)?,
        Command::Train(TrainCommand::Mps(a)) => train_run(&a.base, a.config()?)?,
        Command::Train(TrainCommand::Ssql(a)) => {
            let cfg = a.config()?;
            if a.base.init.is_some() {
                bail!("a pretraining run starts from a fresh initialisation: --init is for `train qat`");
            }
            let device = a.base.rt.device()?;
            let data = cfg.load_data(&a.base.rt.data_dir())?;
            let state = bitspike::ssql::pretrain(
                &cfg,
                &data,
                &bitspike::train::TrainOptions {
                    out: &a.base.out,
                    resume: a.base.resume,
                    device,
                    progress: !a.base.quiet,
                    init: None,
                },
            )?;
            println!(
                "pretrained {} ({}) {} epochs in {:.0} s ({}); next: bitspike ssql eval --run {}",
                cfg.ssql.as_ref().map(|s| s.method()).unwrap_or_default(),
                cfg.dataset.as_str(),
                state.epochs_done,
                state.seconds,
                a.base.out.display(),
                a.base.out.display()
            );
        }
        Command::Ssql(c) => ssql_command(c)?,
        Command::Mps(c) => mps_command(c)?,
        Command::Costs(c) => costs_command(c)?,
        Command::Eval {
            run,
            integer,
            limit,
            json,
            point,
            rt,
        } => evaluate(&RunDir(run), integer.as_deref(), limit, json, &point, &rt)?,
        Command::Export {
            run,
            out,
            files,
            board,
            point,
            rt,
        } => export_run(
            &RunDir(run),
            &out,
            &ExportOpts {
                files: &files,
                board: board.as_deref(),
                point: &point,
            },
            &rt,
        )?,
        Command::Snn(a) => snn_run(&a)?,
        Command::Qac(c) => qac_tables(c)?,
        Command::Ops {
            model,
            vectors,
            stream,
            limit,
        } => ops(
            &model,
            vectors.as_deref(),
            stream.as_deref(),
            limit as usize,
        )?,
        Command::Inspect {
            model,
            board,
            scales,
        } => inspect(&model, board.as_deref(), scales)?,
        Command::CSource {
            model,
            vectors,
            labels,
            out,
        } => c_source(&model, vectors.as_deref(), labels, &out)?,
        Command::Report { run } => report(&RunDir(run))?,
        Command::Model {
            arch,
            bits,
            seed,
            out,
            no_in_place,
            board,
        } => model(arch, bits, seed, &out, no_in_place, board.as_deref())?,
        Command::Golden {
            model,
            count,
            seed,
            out,
            perturb,
            random,
        } => golden(&model, count as usize, seed, &out, perturb, random)?,
    }
    Ok(ExitCode::SUCCESS)
}
