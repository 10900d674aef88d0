//! `cargo xtask costs`: the device-measured cost table of a board (`boards/costs/<board>.json`),
//! measured under QEMU layer by layer, and the check that its predictions hold.
//!
//! `bitspike costs probe` writes networks whose per-layer bit widths together cover every
//! layer key a search over the candidates meets; each runs once on the emulated board with the
//! instruction counter, and the runtime's per-layer marker gives each layer's count. The table
//! records the digest of the sources the runtime was built from ([`kernels_digest`]): when they
//! change, the entries are stale and `cargo xtask costs` measures them again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::board::{self, Board, Data};
use crate::root;
use crate::steps::Steps;
use crate::tasks::{self, bitspike, work_dir};

/// Version of the table format (the host's `device_costs::TABLE_VERSION`).
const TABLE_VERSION: u32 = 1;

/// Largest error of a prediction against the measured count that the check accepts.
pub const MAX_ERROR: f64 = 0.03;

/// What a table covers: one architecture on one dataset over candidate bit widths.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cover {
    /// `bitspike costs probe --arch`.
    pub arch: String,
    /// `--dataset`.
    pub dataset: String,
    /// Candidate weight bits (a spiking cover: the hidden and the first-and-last layers' bits).
    pub weight_bits: Vec<u8>,
    /// Candidate activation bits (empty for a spiking cover).
    pub act_bits: Vec<u8>,
    /// A spiking cover (QAC's exported network): the candidate timesteps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timesteps: Vec<u16>,
}

impl Cover {
    fn label(&self) -> String {
        if self.timesteps.is_empty() {
            format!("{} ({})", self.arch, self.dataset)
        } else {
            format!("{} spiking ({})", self.arch, self.dataset)
        }
    }

    fn dir(&self) -> String {
        let snn = if self.timesteps.is_empty() {
            ""
        } else {
            "-snn"
        };
        format!("{}{snn}-{}", self.arch, self.dataset)
    }
}

/// One layer's entry (the host's `device_costs::Entry`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    insns: u64,
    flash: u64,
    scratch: u64,
    kernel: String,
}

/// The table (the host's `device_costs::CostTable`, plus what it covers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    version: u32,
    board: String,
    kernels: String,
    entries: BTreeMap<String, Entry>,
    tails: BTreeMap<String, u64>,
    app_flash: u64,
    app_ram: u64,
    /// The architectures measured.
    #[serde(default)]
    covers: Vec<Cover>,
}

#[derive(Deserialize)]
struct ProbeLayer {
    key: String,
    flash: u64,
    scratch: u64,
    kernel: String,
}

#[derive(Deserialize)]
struct Probe {
    model: String,
    tail: String,
    layers: Vec<ProbeLayer>,
}

#[derive(Deserialize)]
struct Probes {
    keys: usize,
    probes: Vec<Probe>,
    check: Option<Probe>,
}

/// The table file of `board`.
pub fn table_path(board: &str) -> PathBuf {
    root().join("boards/costs").join(format!("{board}.json"))
}

/// FNV-1a over every file under `dir` (sorted, with its path relative to the root).
fn digest_into(h: &mut u64, path: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            let rd = std::fs::read_dir(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            for e in rd {
                stack.push(e.map_err(|e| format!("{}: {e}", p.display()))?.path());
            }
        } else if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    let r = root();
    for f in files {
        let rel = f
            .strip_prefix(&r)
            .unwrap_or(&f)
            .to_string_lossy()
            .into_owned();
        let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        for b in rel.bytes().chain([0]).chain(bytes) {
            *h ^= b as u64;
            *h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    Ok(())
}

/// Digest of everything the board app's code is built from: the runtime, the shared crate
/// (which also writes the scratch and arena the kernels get), the board harness and package,
/// the locked dependencies and the toolchain.
pub fn kernels_digest(board: &Board) -> Result<String, String> {
    let r = root();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in [
        "firmware/src",
        "firmware/build.rs",
        "firmware/Cargo.toml",
        "shared/src",
        "shared/Cargo.toml",
        "boards/app",
        "boards/build-support",
        "boards/Cargo.lock",
        "boards/Cargo.toml",
        "rust-toolchain.toml",
    ] {
        digest_into(&mut h, &r.join(p))?;
    }
    for p in ["src", "build.rs", "memory.x", "Cargo.toml"] {
        digest_into(&mut h, &r.join("boards").join(&board.name).join(p))?;
    }
    Ok(format!("{h:016x}"))
}

/// The emulated board that measures for `name` (itself, or the emulated board built for the
/// same target).
fn measuring_board(name: &str) -> Result<Board, String> {
    let b = board::load(name)?;
    if b.qemu.is_some() {
        return Ok(b);
    }
    let twin = board::all()?
        .into_iter()
        .find(|e| e.qemu.is_some() && e.target == b.target)
        .ok_or_else(|| {
            format!(
                "no emulated board is built for {name}'s target {}",
                b.target
            )
        })?;
    println!(
        "{name} is a real board: its costs are measured on {} (the same target and kernels)",
        twin.name
    );
    Ok(twin)
}

fn read_table(path: &Path) -> Result<Option<Table>, String> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let t: Table = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a cost table: {e}", path.display()))?;
    Ok(Some(t))
}

/// Write the probes of `cover` into `dir` (with the check network) and read their manifest.
fn probes(board: &Board, cover: &Cover, dir: &Path) -> Result<Probes, String> {
    fn join<T: ToString>(v: &[T]) -> String {
        v.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
    let mut a = vec![
        "costs".to_string(),
        "probe".into(),
        "--arch".into(),
        cover.arch.clone(),
        "--dataset".into(),
        cover.dataset.clone(),
        "--board".into(),
        board.name.clone(),
        "--check".into(),
        "--out".into(),
        dir.to_string_lossy().into_owned(),
    ];
    if cover.timesteps.is_empty() {
        a.extend([
            "--weight-bits".into(),
            join(&cover.weight_bits),
            "--act-bits".into(),
            join(&cover.act_bits),
        ]);
    } else {
        let bits = |i: usize| {
            cover
                .weight_bits
                .get(i)
                .map_or("8".into(), |b| b.to_string())
        };
        a.extend([
            "--snn".into(),
            "--timesteps".into(),
            join(&cover.timesteps),
            "--hidden-bits".into(),
            bits(0),
            "--first-last-bits".into(),
            bits(1),
        ]);
    }
    bitspike(&a.iter().map(String::as_str).collect::<Vec<_>>())?;
    let path = dir.join("probes.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Run one model on `board` with one random vector and the instruction counter; per layer its
/// count, and the count after the last layer.
fn run_counted(board: &Board, model: &Path) -> Result<(tasks::Figures, Vec<u64>, u64), String> {
    let vectors = tasks::vectors_with(model, None, 1, true)?;
    let label = model
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let f = tasks::measured(board, &label, model, Data::Embedded(&vectors))?;
    if f.mismatches != 0 || f.vectors == 0 {
        return Err(format!(
            "{}: {} mismatches against the host on {}",
            model.display(),
            f.mismatches,
            board.name
        ));
    }
    let total = f.insns.first().copied().ok_or("no instruction count")?;
    let layers = f.layer_insns.clone();
    let tail = total.saturating_sub(layers.iter().sum::<u64>());
    Ok((f, layers, tail))
}

/// `cargo xtask costs --board B [--arch A] [--dataset D] [--weight-bits L] [--act-bits L]`:
/// measure (or bring up to date) `B`'s table for architecture `A`, or for every architecture
/// the table already covers.
pub fn costs(
    board_name: &str,
    arch: Option<&str>,
    dataset: &str,
    weight_bits: &[u8],
    act_bits: &[u8],
    timesteps: &[u16],
) -> Result<(), String> {
    let board = measuring_board(board_name)?;
    let digest = kernels_digest(&board)?;
    let path = table_path(&board.name);
    let old = read_table(&path)?;
    let mut covers = old.as_ref().map(|t| t.covers.clone()).unwrap_or_default();
    if let Some(a) = arch {
        let c = Cover {
            arch: a.to_string(),
            dataset: dataset.to_string(),
            weight_bits: weight_bits.to_vec(),
            act_bits: if timesteps.is_empty() {
                act_bits.to_vec()
            } else {
                Vec::new()
            },
            timesteps: timesteps.to_vec(),
        };
        covers.retain(|x| x.dir() != c.dir());
        covers.push(c);
    }
    if covers.is_empty() {
        return Err(format!(
            "{} has no cost table yet: name an architecture (--arch lenet)",
            board.name
        ));
    }
    let mut table = match old {
        Some(t) if t.kernels == digest && t.version == TABLE_VERSION => t,
        Some(_) => {
            println!(
                "the runtime changed since {} was measured: measuring every entry again",
                path.display()
            );
            empty(&board, &digest)
        }
        None => empty(&board, &digest),
    };
    table.covers = covers.clone();
    for cover in &covers {
        let dir = work_dir(&format!("costs/{}/{}", board.name, cover.dir()))?;
        let p = probes(&board, cover, &dir)?;
        let mut ran = 0;
        let mut spread = (0.0f64, String::new());
        for probe in &p.probes {
            if probe
                .layers
                .iter()
                .all(|l| table.entries.contains_key(&l.key))
            {
                continue;
            }
            let model = dir.join(&probe.model);
            let (f, layers, tail) = run_counted(&board, &model)?;
            ran += 1;
            if layers.len() != probe.layers.len() {
                return Err(format!(
                    "{}: {} layer counts for {} layers",
                    model.display(),
                    layers.len(),
                    probe.layers.len()
                ));
            }
            for (l, &n) in probe.layers.iter().zip(&layers) {
                match table.entries.get(&l.key) {
                    Some(e) => {
                        // Measured before in another network: the layer's context differs, the
                        // count should not by much.
                        let d = (n as f64 - e.insns as f64).abs() / e.insns.max(1) as f64;
                        if d > spread.0 {
                            spread = (d, l.key.clone());
                        }
                    }
                    None => {
                        table.entries.insert(
                            l.key.clone(),
                            Entry {
                                insns: n,
                                flash: l.flash,
                                scratch: l.scratch,
                                kernel: l.kernel.clone(),
                            },
                        );
                    }
                }
            }
            table.tails.entry(probe.tail.clone()).or_insert(tail);
            // The board app besides the model and the arena: the most any network needed (its
            // stack depends on the kernels the network runs).
            table.app_flash = table
                .app_flash
                .max(f.built.sizes.flash().saturating_sub(f.model_bytes));
            table.app_ram = table.app_ram.max(f.ram().saturating_sub(f.arena));
            println!(
                "  {}: {} instructions, {} layers",
                probe.model,
                f.insns_mean(),
                layers.len()
            );
            // Saved after every network: an interrupted run keeps what it measured.
            save(&path, &table)?;
        }
        let covered = p
            .probes
            .iter()
            .flat_map(|q| q.layers.iter())
            .filter(|l| table.entries.contains_key(&l.key))
            .map(|l| l.key.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        println!(
            "{} on {}: {} networks measured, {covered} of {} layer keys in the table; a key measured twice differed by at most {:.2} %{}",
            cover.label(),
            board.name,
            ran,
            p.keys,
            100.0 * spread.0,
            if spread.1.is_empty() {
                String::new()
            } else {
                format!(" (`{}`)", spread.1)
            }
        );
    }
    save(&path, &table)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Write `table` to `path` through a temporary file, so that the file is always whole.
fn save(path: &Path, table: &Table) -> Result<(), String> {
    let text = serde_json::to_string_pretty(table).map_err(|e| e.to_string())? + "\n";
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn empty(board: &Board, digest: &str) -> Table {
    Table {
        version: TABLE_VERSION,
        board: board.name.clone(),
        kernels: digest.to_string(),
        entries: BTreeMap::new(),
        tails: BTreeMap::new(),
        app_flash: 0,
        app_ram: 0,
        covers: Vec::new(),
    }
}

/// The prediction of `model` on `board` from its table (`bitspike costs predict --json`).
fn predict(board: &str, model: &Path) -> Result<serde_json::Value, String> {
    let out = tasks::bitspike_output(&[
        "costs",
        "predict",
        "--board",
        board,
        "--model",
        &model.to_string_lossy(),
        "--json",
    ])?;
    serde_json::from_str(&out).map_err(|e| format!("bitspike costs predict: {e}"))
}

/// `cargo xtask costs --check` and the CI step: every committed table is current (its digest
/// is the sources'), and for every architecture it covers, a random mixed network that is none
/// of the probes runs under QEMU within [`MAX_ERROR`] of the table's prediction.
pub fn check(s: &mut Steps) {
    let dir = root().join("boards/costs");
    let mut tables: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    tables.retain(|p| p.extension().is_some_and(|e| e == "json"));
    tables.sort();
    if tables.is_empty() {
        s.fail(
            "costs: committed tables",
            &format!("no cost table in {}", dir.display()),
        );
    }
    for path in tables {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let step =
            format!("costs: {name}'s table is current and predicts mixed networks within 3 %");
        s.begin(&step);
        let r = check_one(&name);
        match &r {
            Ok(lines) => print!("{lines}"),
            Err(e) => eprintln!("{e}"),
        }
        s.end(&step, r.is_ok());
    }
}

fn check_one(name: &str) -> Result<String, String> {
    let board = board::load(name)?;
    let path = table_path(name);
    let table = read_table(&path)?.ok_or_else(|| format!("{} is missing", path.display()))?;
    let digest = kernels_digest(&board)?;
    if table.kernels != digest || table.version != TABLE_VERSION {
        return Err(format!(
            "{} was measured on other runtime sources (digest {}, the sources give {digest}): run `cargo xtask costs --board {name}`",
            path.display(),
            table.kernels
        ));
    }
    let mut out = String::new();
    let mut worst = 0.0f64;
    for cover in &table.covers {
        let dir = work_dir(&format!("costs-check/{name}/{}", cover.dir()))?;
        let p = probes(&board, cover, &dir)?;
        let missing: Vec<&str> = p
            .probes
            .iter()
            .flat_map(|q| q.layers.iter())
            .filter(|l| !table.entries.contains_key(&l.key))
            .map(|l| l.key.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{}: {} of {}'s layer keys are not in the table (first: {}): run `cargo xtask costs --board {name}`",
                path.display(),
                missing.len(),
                cover.arch,
                missing[0]
            ));
        }
        let check = p.check.ok_or("no check network")?;
        let model = dir.join(&check.model);
        let (f, _, _) = run_counted(&board, &model)?;
        let measured = f.insns.first().copied().unwrap_or(0);
        let pred = predict(name, &model)?;
        let predicted = pred["instructions"]
            .as_u64()
            .ok_or_else(|| format!("no prediction for {}: {pred}", model.display()))?;
        let err = (predicted as f64 - measured as f64) / measured.max(1) as f64;
        worst = worst.max(err.abs());
        out += &format!(
            "  {}, mixed plan {}: predicted {predicted}, measured {measured} instructions: {:+.3} %\n",
            cover.label(),
            plan_label(&dir),
            100.0 * err
        );
    }
    if worst > MAX_ERROR {
        return Err(format!(
            "{out}a prediction is off by {:.2} % (at most {:.0} % allowed)",
            100.0 * worst,
            100.0 * MAX_ERROR
        ));
    }
    Ok(out)
}

/// A JSON array of numbers as `1,2,3` (empty when `v` is no array).
pub(crate) fn json_list(v: &serde_json::Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The check network's plan, as `probes.json` gives it.
fn plan_label(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("probes.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let c = &v["check"];
    if v["snn"].as_bool() == Some(true) {
        return format!("timesteps {}", json_list(&c["timesteps"]));
    }
    format!(
        "w{} a{}",
        json_list(&c["plan"]["weight_bits"]),
        json_list(&c["plan"]["act_bits"])
    )
}
