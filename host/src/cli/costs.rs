//! `bitspike costs`: the probe networks `cargo xtask costs` measures, and predictions from a
//! board's cost table.

use super::files::*;
use anyhow::Result;
use bitspike::boards;
use bitspike::data::DatasetName;
use bitspike::device_costs::{self as dc, CostTable};
use bitspike::net::TrainArch;
use std::path::PathBuf;

/// `bitspike costs`: its subcommands and their arguments.
#[derive(clap::Subcommand)]
pub(crate) enum CostsCommand {
    /// Write the probe networks whose per-layer counts cover every layer key a search over
    /// these candidates meets, and `probes.json` naming each network's plan and layer keys.
    Probe {
        /// Architecture, as `train --arch` builds it.
        #[arg(long, value_enum)]
        arch: TrainArch,
        /// The dataset whose images it reads (input shape, classes, codes).
        #[arg(long, value_enum, default_value_t = DatasetName::FashionMnist)]
        dataset: DatasetName,
        /// The board the table is for (its core decides the kernels; Armv6-M gets threshold
        /// tables, as `export --board` writes them).
        #[arg(long)]
        board: String,
        /// Candidate weight bit widths.
        #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
        weight_bits: Vec<u8>,
        /// Candidate activation bit widths.
        #[arg(long, value_delimiter = ',', default_value = "2,4,8")]
        act_bits: Vec<u8>,
        /// Probe the spiking network QAC exports (`bitspike snn`) over candidate timesteps
        /// instead of a QAT network over candidate bit widths.
        #[arg(long)]
        snn: bool,
        /// With --snn: candidate timesteps of every spiking layer.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5,6,8")]
        timesteps: Vec<u16>,
        /// With --snn: weight bits of the hidden layers.
        #[arg(long, default_value_t = 4)]
        hidden_bits: u8,
        /// With --snn: weight bits of the first and last layers.
        #[arg(long, default_value_t = 8)]
        first_last_bits: u8,
        /// Seed of the covering and of the weights.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write `check.bsm`, a network of this seed's random mixed plan (not a probe),
        /// for checking predictions against a measurement.
        #[arg(long)]
        check: bool,
        /// The folder to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Predict a model's instructions (the sum of its layers' table entries), time at the
    /// board's clock, flash and RAM, from the board's cost table.
    Predict {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// The board (a real board reads the table of the emulated board with its core).
        #[arg(long)]
        board: String,
        /// The cost table (default: boards/costs/<board>.json of the source tree).
        #[arg(long)]
        table: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn costs_command(c: CostsCommand) -> Result<()> {
    match c {
        CostsCommand::Probe {
            arch,
            dataset,
            board,
            weight_bits,
            act_bits,
            snn,
            timesteps,
            hidden_bits,
            first_last_bits,
            seed,
            check,
            out,
        } => {
            let probes = if snn {
                dc::manifest::write_snn_probes(
                    &dc::manifest::SnnProbes {
                        arch,
                        dataset,
                        board: &board,
                        timesteps: &timesteps,
                        hidden_bits,
                        first_last_bits,
                        seed,
                        check,
                    },
                    &out,
                )?
            } else {
                dc::manifest::write_probes(
                    &dc::manifest::QatProbes {
                        arch,
                        dataset,
                        board: &board,
                        weight_bits: &weight_bits,
                        act_bits: &act_bits,
                        seed,
                        check,
                    },
                    &out,
                )?
            };
            println!(
                "wrote {} probe networks covering {} layer keys to {}",
                probes.probes.len(),
                probes.keys,
                out.display()
            );
        }
        CostsCommand::Predict {
            model,
            board,
            table,
            json,
        } => {
            let measured_on = boards::cost_board(&board)?;
            let path = table.unwrap_or_else(|| dc::table_path(measured_on));
            let t = CostTable::read(&path)?;
            let bytes = read(&model)?;
            let p = t.predict(&bytes, boards::isa(&board)?)?;
            let clock = boards::clock_mhz(&board)?;
            let ms = match (p.insns, clock) {
                (Some(n), Some(mhz)) => Some(n as f64 / (mhz * 1e3)),
                _ => None,
            };
            let uj = match p.insns {
                Some(n) => boards::microjoules(&board, n as f64)?,
                None => None,
            };
            let missing: Vec<&str> = p
                .layers
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(k, _)| k.as_str())
                .collect();
            if json {
                let v = serde_json::json!({
                    "model": model.display().to_string(),
                    "board": board,
                    "table": path.display().to_string(),
                    "measured_on": measured_on,
                    "instructions": p.insns,
                    "ms": ms,
                    "microjoules": uj,
                    "flash": p.flash,
                    "ram": p.ram,
                    "model_bytes": p.model_bytes,
                    "arena_bytes": p.arena_bytes,
                    "layers": p.layers,
                    "tail": p.tail,
                    "missing": missing,
                });
                println!("{v}");
            } else {
                println!(
                    "{}: predicted on {board} from {} (measured on {measured_on})",
                    model.display(),
                    path.display()
                );
                for (i, (k, v)) in p.layers.iter().enumerate() {
                    match v {
                        Some(n) => println!("  layer {i:>2}  {n:>10}  {k}"),
                        None => println!("  layer {i:>2}  {:>10}  {k}", "missing"),
                    }
                }
                match p.insns {
                    Some(n) => println!("  total     {n:>10} instructions (QEMU count, not cycles)"),
                    None => println!(
                        "  total     unknown: {} layer(s) or the tail are not in the table (run `cargo xtask costs --board {measured_on}` for this architecture)",
                        missing.len()
                    ),
                }
                if let Some(ms) = ms {
                    println!(
                        "  time      {ms:.3} ms at {} MHz, one instruction per cycle",
                        clock.unwrap_or(0.0)
                    );
                }
                if let Some(uj) = uj {
                    println!("  energy    {uj:.1} uJ (datasheet run current)");
                }
                println!(
                    "  flash     {} B (model file {} B), RAM {} B (arena {} B)",
                    p.flash, p.model_bytes, p.ram, p.arena_bytes
                );
            }
        }
    }
    Ok(())
}
