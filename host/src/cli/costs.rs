//! `bitspike costs`: the probe networks `cargo xtask costs` measures, and predictions from a
//! board's cost table.

use super::files::*;
use anyhow::{Context, Result};
use bitspike::boards;
use bitspike::data::DatasetName;
use bitspike::device_costs::{self as dc, CostTable};
use bitspike::mps::{BitPlan, Slots};
use bitspike::net::Spec;
use bitspike::net::TrainArch;
use bitspike_core::def::random::Rng;
use bitspike_core::format::writer::write;
use bitspike_core::format::ModelFile;
use serde::Serialize;
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

/// One probe network in `probes.json`.
#[derive(Serialize)]
struct Probe {
    /// The model file, in the same folder.
    model: String,
    /// Its bit plan (empty for a spiking network).
    plan: BitPlan,
    /// Its spiking layers' timesteps (empty for a QAT network).
    timesteps: Vec<u16>,
    /// The key of the instructions after its last layer.
    tail: String,
    /// Per layer: key, bytes in the file, scratch bytes and kernel.
    layers: Vec<ProbeLayer>,
}

#[derive(Serialize)]
struct ProbeLayer {
    key: String,
    flash: u64,
    scratch: u64,
    kernel: &'static str,
}

/// `probes.json`: what the probes of one architecture are and what they cover.
#[derive(Serialize)]
struct Probes {
    /// Spiking networks over timesteps (`--snn`).
    snn: bool,
    arch: String,
    dataset: String,
    board: String,
    weight_bits: Vec<u8>,
    act_bits: Vec<u8>,
    /// Every key a search over the candidates meets (all covered by the probes).
    keys: usize,
    probes: Vec<Probe>,
    /// The random mixed network of `--check`, if written.
    check: Option<Probe>,
}

/// Write `def` as `dir/name` and describe it: its layer keys, bytes, scratch and kernels.
fn probe(
    dir: &std::path::Path,
    name: String,
    def: bitspike_core::def::ModelDef,
    isa: bitspike_core::kernel::Isa,
) -> Result<Probe> {
    let bytes = write(&def).with_context(|| format!("writing {name}"))?;
    write_file(&dir.join(&name), &bytes)?;
    let file = ModelFile::parse(&bytes).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let layers = dc::keys_of_file(&file, isa)
        .iter()
        .enumerate()
        .map(|(i, k)| ProbeLayer {
            key: k.text(),
            flash: dc::layer_flash(&file, i),
            scratch: file.layer(i).scratch_bytes as u64,
            kernel: dc::layer_kernel(&file, i, isa),
        })
        .collect();
    Ok(Probe {
        model: name,
        plan: BitPlan::default(),
        timesteps: Vec::new(),
        tail: dc::tail_key(&file),
        layers,
    })
}

fn write_manifest(out: &std::path::Path, manifest: &Probes) -> Result<()> {
    let text = serde_json::to_string_pretty(manifest)?;
    write_file(&out.join("probes.json"), text.as_bytes())?;
    println!(
        "wrote {} probe networks covering {} layer keys to {}",
        manifest.probes.len(),
        manifest.keys,
        out.display()
    );
    Ok(())
}

/// `costs probe --snn`: spiking networks as QAC exports them, over candidate timesteps.
#[allow(clippy::too_many_arguments)]
fn snn_probes(
    arch: bitspike::net::TrainArch,
    dataset: bitspike::data::DatasetName,
    board: &str,
    candidates: &[u16],
    (hidden, first_last): (u8, u8),
    seed: u64,
    check: bool,
    out: &std::path::Path,
) -> Result<()> {
    use bitspike::device_costs::snn;
    dc::check_candidates(&[hidden, first_last], &[])?;
    if let Some(&t) = candidates
        .iter()
        .find(|&&t| t == 0 || t > bitspike::qac::MAX_TIMESTEPS)
    {
        anyhow::bail!("--timesteps {t}: use 1..={}", bitspike::qac::MAX_TIMESTEPS);
    }
    let (input, classes, input_max) = dataset.dims();
    let spec = Spec::of(arch, input, classes).spiking()?;
    let isa = boards::isa(board)?;
    let weights = snn::weight_plan(&spec, hidden, first_last);
    let (keys, plans) = snn::snn_probe_plans(&spec, &weights, candidates, input_max, seed)?;
    let write_probe = |name: String, t: &[u16]| -> Result<Probe> {
        let def = snn::snn_probe_model(&spec, &weights, t, input_max, seed)?;
        let mut p = probe(out, name, def, isa)?;
        p.timesteps = t.to_vec();
        Ok(p)
    };
    let probes = plans
        .iter()
        .enumerate()
        .map(|(i, t)| write_probe(format!("probe-{i:02}.bsm"), t))
        .collect::<Result<Vec<_>>>()?;
    let check = if check {
        let mut rng = Rng::new(seed ^ 0x5eed);
        let t: Vec<u16> = (0..snn::spiking_nodes(&spec).len())
            .map(|_| candidates[rng.range(0, candidates.len() as i64 - 1) as usize])
            .collect();
        Some(write_probe("check.bsm".into(), &t)?)
    } else {
        None
    };
    write_manifest(
        out,
        &Probes {
            snn: true,
            arch: format!("{arch:?}").to_lowercase(),
            dataset: dataset.as_str().into(),
            board: board.into(),
            weight_bits: vec![hidden, first_last],
            act_bits: Vec::new(),
            keys,
            probes,
            check,
        },
    )
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
            if snn {
                return snn_probes(
                    arch,
                    dataset,
                    &board,
                    &timesteps,
                    (hidden_bits, first_last_bits),
                    seed,
                    check,
                    &out,
                );
            }
            dc::check_candidates(&weight_bits, &act_bits)?;
            let (input, classes, input_max) = dataset.dims();
            let spec = Spec::of(arch, input, classes);
            let slots = Slots::of(&spec, input_max)?;
            let isa = boards::isa(&board)?;
            let armv6m = boards::armv6m(&board)?;
            let plans = dc::probe_plans(&spec, &slots, &weight_bits, &act_bits, input_max, seed)?;
            let keys = dc::search_keys(&spec, &slots, &weight_bits, &act_bits, input_max)?;
            let write_probe = |name: String, plan: &BitPlan| -> Result<Probe> {
                let mut def = dc::probe_model(&spec, &slots, plan, input_max, seed)?;
                if armv6m {
                    def.reserve_armv6m_tables();
                }
                let mut p = probe(&out, name, def, isa)?;
                p.plan = plan.clone();
                Ok(p)
            };
            let probes = plans
                .iter()
                .enumerate()
                .map(|(i, p)| write_probe(format!("probe-{i:02}.bsm"), p))
                .collect::<Result<Vec<_>>>()?;
            let check = if check {
                // A mixed plan drawn from the seed, every slot from its candidates.
                let mut rng = Rng::new(seed ^ 0x5eed);
                let mut pick = |c: &[u8]| c[rng.range(0, c.len() as i64 - 1) as usize];
                let plan = BitPlan {
                    weight_bits: (0..slots.weight_nodes.len())
                        .map(|_| pick(&weight_bits))
                        .collect(),
                    act_bits: (0..slots.act_nodes.len())
                        .map(|_| pick(&act_bits))
                        .collect(),
                };
                Some(write_probe("check.bsm".into(), &plan)?)
            } else {
                None
            };
            let manifest = Probes {
                snn: false,
                arch: format!("{arch:?}").to_lowercase(),
                dataset: dataset.as_str().into(),
                board: board.clone(),
                weight_bits,
                act_bits,
                keys: keys.len(),
                probes,
                check,
            };
            write_manifest(&out, &manifest)?;
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
