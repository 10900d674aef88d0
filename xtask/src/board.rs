//! Boards: their data (`boards/<name>/board.toml`), building a board app with a model and golden
//! vectors, reading the ELF, and running it under QEMU with defmt decoded by `defmt-print`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use object::{Object, ObjectSection, ObjectSymbol};
use serde::Deserialize;

use crate::{cargo, root};

/// A board package's data.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Package name (also the folder under `boards/`).
    pub name: String,
    /// One line about the board.
    pub description: String,
    /// Rust target triple.
    pub target: String,
    /// How QEMU emulates it, for emulated boards.
    pub qemu: Option<Qemu>,
    /// How a debug probe reaches it, for real boards.
    pub probe: Option<ProbeTarget>,
    /// The core clock the firmware sets up, in MHz (real boards; the firmware reports its own,
    /// and the two must agree).
    pub clock_mhz: Option<f64>,
    /// What counts cycles on a real board (`DWT CYCCNT`, `SysTick`).
    pub cycle_counter: Option<String>,
    /// Why a real board has no `[energy]` figures, where its datasheet gives none.
    pub energy_note: Option<String>,
    /// Memory sizes.
    pub memory: Memory,
    /// Datasheet energy figures, for real boards.
    pub energy: Option<Energy>,
}

/// How probe-rs reaches a real board.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTarget {
    /// probe-rs's chip name (`probe-rs chip list`).
    pub chip: String,
    /// SWD clock in kHz (the probe's default when absent).
    pub speed_khz: Option<u32>,
}

/// QEMU settings of an emulated board.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// `-machine`.
    pub machine: String,
    /// `-cpu`, when the machine needs one.
    pub cpu: Option<String>,
}

impl Qemu {
    /// `qemu-system-arm`'s arguments for the board, up to `-kernel`: the machine and cpu, no
    /// display, monitor or serial, semihosting on (the app's output is QEMU's standard output).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["-machine".to_string(), self.machine.clone()];
        if let Some(cpu) = &self.cpu {
            a.extend(["-cpu".to_string(), cpu.clone()]);
        }
        a.extend(
            [
                "-display",
                "none",
                "-monitor",
                "none",
                "-serial",
                "null",
                "-semihosting-config",
                "enable=on,target=native",
            ]
            .map(String::from),
        );
        a
    }
}

/// Memory sizes in bytes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// Flash.
    pub flash: u64,
    /// RAM.
    pub ram: u64,
}

/// Datasheet energy figures of a real board.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Energy {
    /// Run current per MHz at the board's clock, in microamperes.
    pub run_ua_per_mhz: f64,
    /// Supply voltage in volts.
    pub supply_v: f64,
    /// Where the figures come from.
    pub source: String,
}

impl Energy {
    /// Microjoules for `cycles` at the run current: `V x (uA/MHz x f) x cycles / f`, where the
    /// clock cancels: `V x uA/MHz x cycles / 10^6` (DESIGN, "Measuring on a device").
    pub fn microjoules(&self, cycles: f64) -> f64 {
        self.supply_v * self.run_ua_per_mhz * cycles / 1e6
    }
}

fn boards_dir() -> PathBuf {
    root().join("boards")
}

/// Every board package (folders of `boards/` with a `board.toml`), sorted by name.
pub fn all() -> Result<Vec<Board>, String> {
    let mut out = Vec::new();
    let dir = boards_dir();
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for e in entries.flatten() {
        if e.path().join("board.toml").is_file() {
            out.push(load(&e.file_name().to_string_lossy())?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The board named `name`.
pub fn load(name: &str) -> Result<Board, String> {
    let path = boards_dir().join(name).join("board.toml");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        let known: Vec<String> = std::fs::read_dir(boards_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("board.toml").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        format!("unknown board `{name}` (boards: {})", known.join(", "))
    })?;
    let board: Board = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if board.name != name {
        return Err(format!(
            "{}: name is `{}`, expected `{name}`",
            path.display(),
            board.name
        ));
    }
    Ok(board)
}

/// Section sizes of a board app ELF, in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sizes {
    /// `.vector_table`.
    pub vector_table: u64,
    /// `.boot2` (the RP2040's second-stage bootloader, in flash before the vector table).
    pub boot2: u64,
    /// `.text`.
    pub text: u64,
    /// `.rodata` (the embedded model and vectors live here).
    pub rodata: u64,
    /// `.data` (in RAM, with its initial image in flash).
    pub data: u64,
    /// `.bss` (the arena and the output buffer live here).
    pub bss: u64,
    /// `.uninit`.
    pub uninit: u64,
}

impl Sizes {
    /// Flash: vector table, code, read-only data and the initial image of `.data`.
    pub fn flash(&self) -> u64 {
        self.boot2 + self.vector_table + self.text + self.rodata + self.data
    }

    /// Static RAM: `.data`, `.bss` and `.uninit` (the stack comes on top).
    pub fn ram_static(&self) -> u64 {
        self.data + self.bss + self.uninit
    }
}

/// A built board app.
#[derive(Clone, Debug)]
pub struct Built {
    /// The ELF (a copy kept per board and model).
    pub elf: PathBuf,
    /// Section sizes.
    pub sizes: Sizes,
    /// Addresses of the start and end markers (absent when the app never reaches an inference,
    /// as in the runner's self-tests, and the linker drops them).
    pub marks: Option<(u64, u64)>,
    /// Address of the per-layer marker, when the app has one.
    pub layer_mark: Option<u64>,
    /// The app logs through defmt (the Rust board apps); otherwise its output is plain text
    /// (the C application).
    pub defmt: bool,
}

fn path_prefix_flags(stable: &Path) -> String {
    // Keep absolute build paths out of the binary, so that sizes do not depend on where the
    // repository or the cargo registry is.
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    format!(
        "--remap-path-prefix={}=/bitspike --remap-path-prefix={}=/cargo",
        stable.display(),
        home.display()
    )
}

/// The fixed path through which board apps are built, a link to the repository.
///
/// Cargo hashes the absolute path of a path dependency that lies outside the workspace it
/// builds into that crate's symbol names, and the runtime and the shared crate lie outside
/// `boards/`. Armv6-M code generation orders its literal pools by those names, so an app built
/// from another folder came out a few bytes different (other cores happened not to). Built
/// through this link, every checkout gives the same hashes and the same binaries.
pub const STABLE_ROOT: &str = "/tmp/bitspike-build-root";

/// Holds the lock on [`STABLE_ROOT`] while a board app builds through it, so that two
/// checkouts building at once cannot point the link at each other's sources.
pub struct StableRoot {
    _lock: std::fs::File,
    path: PathBuf,
}

/// Point [`STABLE_ROOT`] at this repository, holding its lock until the guard drops.
pub fn stable_root() -> Result<StableRoot, String> {
    let lock_path = format!("{STABLE_ROOT}.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {lock_path}: {e}"))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {lock_path}: {e}"))?;
    let path = PathBuf::from(STABLE_ROOT);
    let here = root();
    if std::fs::read_link(&path).ok().as_deref() != Some(here.as_path()) {
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&path)
                .map_err(|e| format!("cannot replace {}: {e}", path.display()))?,
            Ok(_) => {
                return Err(format!(
                    "{} exists and is not a link: remove it (board apps are built through it)",
                    path.display()
                ))
            }
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&here, &path)
            .map_err(|e| format!("cannot link {} to {}: {e}", path.display(), here.display()))?;
    }
    Ok(StableRoot { _lock: lock, path })
}

/// Build `board`'s app with `model` and `vectors` embedded, plus extra cargo `features`.
pub fn build(
    board: &Board,
    model: &Path,
    vectors: &Path,
    features: &[&str],
) -> Result<Built, String> {
    build_with(board, model, Data::Embedded(vectors), features)
}

/// Where a board app takes its golden vectors from.
#[derive(Clone, Copy, Debug)]
pub enum Data<'a> {
    /// A vector file embedded in flash.
    Embedded(&'a Path),
    /// A stream file read through semihosting at run time.
    Stream(&'a Path),
}

/// Build `board`'s app with `model` and its golden vectors from `data`.
pub fn build_with(
    board: &Board,
    model: &Path,
    data: Data<'_>,
    features: &[&str],
) -> Result<Built, String> {
    build_profile(board, model, data, features, false)
}

/// [`build`] with overflow checks and debug assertions on (the release profile otherwise), into
/// a target folder of its own: on the device path an overflow then panics (exit 101) where a
/// release build wraps silently.
pub fn build_checked(board: &Board, model: &Path, vectors: &Path) -> Result<Built, String> {
    build_profile(board, model, Data::Embedded(vectors), &[], true)
}

fn build_profile(
    board: &Board,
    model: &Path,
    data: Data<'_>,
    features: &[&str],
    checked: bool,
) -> Result<Built, String> {
    let stable = stable_root()?;
    let manifest = stable.path.join("boards/Cargo.toml");
    let mut c = cargo(&[
        "build",
        "--release",
        "--quiet",
        "--manifest-path",
        &manifest.to_string_lossy(),
        "-p",
        &board.name,
        "--target",
        &board.target,
    ]);
    if !features.is_empty() {
        c.args(["--features", &features.join(",")]);
    }
    // flip-link places the stack below the statics: an overflow faults instead of overwriting
    // the arena (the boards' own .cargo/config.toml says the same for `cargo run` there).
    c.args([
        "--config",
        &format!("target.{}.linker=\"flip-link\"", board.target),
    ]);
    let target_dir = if checked {
        c.args([
            "--config",
            "profile.release.overflow-checks=true",
            "--config",
            "profile.release.debug-assertions=true",
        ]);
        boards_dir().join("target-checked")
    } else {
        boards_dir().join("target")
    };
    // Artifacts stay in this checkout, whatever the link points at later.
    c.env("BITSPIKE_MODEL", absolute(model)?)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", path_prefix_flags(&stable.path));
    match data {
        Data::Embedded(v) => c
            .env("BITSPIKE_VECTORS", absolute(v)?)
            .env_remove("BITSPIKE_STREAM"),
        Data::Stream(s) => c.env("BITSPIKE_STREAM", absolute(s)?),
    };
    let status = c.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    drop(stable);
    if !status.success() {
        return Err(format!("building {} failed", board.name));
    }
    let built = target_dir
        .join(&board.target)
        .join("release")
        .join(&board.name);
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let keep = root().join("target/bitspike/elf").join(format!(
        "{}-{stem}{}{}.elf",
        board.name,
        features.join("-"),
        if checked { "-checked" } else { "" }
    ));
    if let Some(d) = keep.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    std::fs::copy(&built, &keep).map_err(|e| format!("cannot copy {}: {e}", built.display()))?;
    analyse(keep, true)
}

/// The sections and markers of the app ELF at `keep`, whose output is defmt (`defmt`) or plain
/// text.
pub fn analyse(keep: PathBuf, defmt: bool) -> Result<Built, String> {
    let data = std::fs::read(&keep).map_err(|e| format!("cannot read {}: {e}", keep.display()))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{}: {e}", keep.display()))?;
    let mut sizes = Sizes::default();
    for s in file.sections() {
        let size = s.size();
        match s.name().unwrap_or("") {
            ".vector_table" => sizes.vector_table = size,
            ".boot2" => sizes.boot2 = size,
            ".text" => sizes.text = size,
            ".rodata" => sizes.rodata = size,
            ".data" => sizes.data = size,
            ".bss" => sizes.bss = size,
            ".uninit" => sizes.uninit = size,
            _ => {}
        }
    }
    let symbol = |name: &str| {
        file.symbols()
            .find(|s| s.name() == Ok(name))
            .map(|s| s.address() & !1)
    };
    Ok(Built {
        sizes,
        marks: symbol("bitspike_mark_start").zip(symbol("bitspike_mark_end")),
        layer_mark: symbol("bitspike_mark_layer"),
        elf: keep,
        defmt,
    })
}

fn absolute(p: &Path) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// What one QEMU run produced.
#[derive(Clone, Debug)]
pub struct Run {
    /// QEMU's exit code (the app's semihosting exit code), `None` when killed.
    pub exit: Option<i32>,
    /// The run hit the timeout.
    pub timed_out: bool,
    /// The decoded defmt log.
    pub log: String,
    /// QEMU's own error output.
    pub stderr: String,
    /// The fields of the app's `bitspike-result` line, of its `bitspike-accuracy` and
    /// `bitspike-confidence` lines and the code of its `bitspike-exit` line (`exit`).
    pub result: BTreeMap<String, String>,
    /// Instructions per inference, one per vector (when counted).
    pub insns: Vec<u64>,
    /// Per vector, the instructions from the start of the inference to the end of each layer
    /// (when counted and the app marks layers).
    pub layers: Vec<Vec<u64>>,
}

impl Run {
    /// Print what a failed run left: its log, its error output and how it ended.
    pub fn print_failure(&self) {
        eprint!("{}", self.log);
        eprint!("{}", self.stderr);
        if self.timed_out {
            eprintln!("the run timed out (a hang)");
        } else {
            eprintln!("exit code {:?}", self.exit);
        }
    }
}

impl Run {
    /// A field of the result line as a number.
    pub fn field(&self, key: &str) -> Option<u64> {
        self.result.get(key).and_then(|v| v.parse().ok())
    }

    /// A field of the result line as a real number.
    pub fn real(&self, key: &str) -> Option<f64> {
        self.result.get(key).and_then(|v| v.parse().ok())
    }

    /// Instructions of each layer on the first vector (from the cumulative counts the layer
    /// marker gives); empty when layers were not counted.
    pub fn layer_insns(&self) -> Vec<u64> {
        self.layers
            .first()
            .map(|c| {
                c.iter()
                    .scan(0u64, |prev, &n| {
                        let d = n.saturating_sub(*prev);
                        *prev = n;
                        Some(d)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The run passed: exit 0 and a result line with 0 mismatches.
    pub fn passed(&self) -> bool {
        self.exit == Some(0) && self.field("mismatches") == Some(0)
    }
}

/// The `key=value` fields of the app's `bitspike-result`, `bitspike-accuracy`,
/// `bitspike-confidence` and `bitspike-exit` lines in a decoded log (the exit line's `code` as `exit`).
pub fn result_fields(log: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for l in log.lines() {
        let l = l.trim();
        let (fields, exit) = match l.strip_prefix("bitspike-exit ") {
            Some(rest) => (rest, true),
            None => match l
                .strip_prefix("bitspike-result ")
                .or_else(|| l.strip_prefix("bitspike-accuracy "))
                .or_else(|| l.strip_prefix("bitspike-confidence "))
            {
                Some(rest) => (rest, false),
                None => continue,
            },
        };
        for (k, v) in fields
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
        {
            let k = if exit && k == "code" { "exit" } else { k };
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// The code of the app's `bitspike-exit` line, if `line` is one.
pub fn exit_line(line: &str) -> Option<i32> {
    line.trim()
        .strip_prefix("bitspike-exit code=")
        .and_then(|c| c.trim().parse().ok())
}

/// The instruction-counting plugin built by `cargo xtask setup`.
pub fn plugin_path() -> PathBuf {
    root().join(".bitspike/qemu/libinsn_count.so")
}

/// Run a built app under QEMU, `timeout` seconds at most. With `count`, QEMU runs with
/// `-icount shift=0,sleep=off` and the instruction-counting plugin.
pub fn run(board: &Board, built: &Built, count: bool, timeout: u64) -> Result<Run, String> {
    let q = board
        .qemu
        .as_ref()
        .ok_or_else(|| format!("{} is not an emulated board", board.name))?;
    let insns_file = built.elf.with_extension("insns");
    let _ = std::fs::remove_file(&insns_file);
    let mut c = Command::new("timeout");
    c.args(["--signal=KILL", &timeout.to_string(), "qemu-system-arm"]);
    c.args(q.args());
    if count {
        let plugin = plugin_path();
        if !plugin.is_file() {
            return Err(format!(
                "the instruction-counting plugin {} is missing: run `cargo xtask setup`",
                plugin.display()
            ));
        }
        let (start, end) = built.marks.ok_or_else(|| {
            format!(
                "{}: no inference markers to count between",
                built.elf.display()
            )
        })?;
        c.args(["-icount", "shift=0,sleep=off", "-plugin"]);
        let layer = built
            .layer_mark
            .map(|a| format!(",layer={a:#x}"))
            .unwrap_or_default();
        c.arg(format!(
            "{},start={start:#x},end={end:#x}{layer},out={}",
            plugin.display(),
            insns_file.display()
        ));
    }
    c.arg("-kernel").arg(&built.elf);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut qemu = c
        .spawn()
        .map_err(|e| format!("cannot start qemu-system-arm: {e}"))?;
    // A defmt app's log is decoded from QEMU's standard output; the decoder is drained first
    // (QEMU blocks once the pipe to an unread decoder fills).
    let decoded = if built.defmt {
        let qemu_out = qemu.stdout.take().ok_or("no QEMU stdout")?;
        let decoder = Command::new("defmt-print")
            .arg("-e")
            .arg(&built.elf)
            .stdin(Stdio::from(qemu_out))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start defmt-print (run `cargo xtask setup`): {e}"))?;
        Some(
            decoder
                .wait_with_output()
                .map_err(|e| format!("defmt-print: {e}"))?,
        )
    } else {
        None
    };
    let qemu = qemu
        .wait_with_output()
        .map_err(|e| format!("qemu-system-arm: {e}"))?;
    // A plain app's semihosting output comes on QEMU's standard error.
    let out = decoded.as_ref().unwrap_or(&qemu);
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let code = qemu.status.code();
    let result = result_fields(&log);
    let counts = std::fs::read_to_string(&insns_file).unwrap_or_default();
    let insns = counts
        .lines()
        .filter_map(|l| l.strip_prefix("insns "))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let layers = counts
        .lines()
        .filter_map(|l| l.strip_prefix("layers"))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .collect();
    Ok(Run {
        exit: code,
        timed_out: matches!(code, Some(124) | Some(137)) || code.is_none(),
        log,
        stderr: String::from_utf8_lossy(&qemu.stderr).into_owned(),
        result,
        insns,
        layers,
    })
}
