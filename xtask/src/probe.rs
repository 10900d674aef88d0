//! Real boards through a debug probe: flash the board app, run it, read its defmt log over RTT
//! and collect its verdict.
//!
//! The probe is a seam ([`Probe`]): [`ProbeRs`] drives a real one through the probe-rs library
//! (CMSIS-DAP, ST-LINK, J-Link and the other probes probe-rs knows); [`session`], the logic on
//! top (waiting for the `bitspike-exit` line, the timeout, a core that locks up or halts, a
//! flash that fails), is the same for every probe and is tested against a fake one, and, with
//! an emulated board in the probe's place ([`QemuProbe`]), on real defmt frames. The log bytes
//! are decoded by a [`Decoder`]: [`DefmtPrint`] runs the same `defmt-print` that decodes the
//! emulated boards' output.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::board::{exit_line, result_fields, Run};

/// What the core is doing, as the probe sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreState {
    /// Running (or sleeping): the app is still at work, or parked after its verdict.
    Running,
    /// Halted, with the probe's reason. The app never halts itself, so this is a failure.
    Halted(String),
    /// Locked up: a fault while handling a fault.
    LockedUp,
}

/// What [`session`] needs from a debug probe attached to a board.
pub trait Probe {
    /// Write the ELF's loadable sections to flash and verify them.
    fn flash(&mut self, elf: &Path) -> Result<(), String>;
    /// Reset the core and let it run the new program from its reset vector.
    fn reset_and_run(&mut self) -> Result<(), String>;
    /// Copy the bytes the app wrote to its log channel (RTT up channel 0) since the last call
    /// into `buf`; 0 when there are none yet.
    fn read_log(&mut self, buf: &mut [u8]) -> Result<usize, String>;
    /// The core's state now.
    fn state(&mut self) -> Result<CoreState, String>;
}

/// Turns the app's log bytes into text lines.
pub trait Decoder {
    /// Take `bytes` (possibly none) and return the lines completed since the last call.
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, String>;
}

/// How long [`session`] sleeps when neither bytes nor lines came in.
const POLL: Duration = Duration::from_millis(20);

/// Flash `elf` through `probe`, run it, and read the log until the app's `bitspike-exit` line,
/// at most `timeout`; every decoded line goes to `echo` as it arrives.
///
/// A run that ends with an exit line is `Ok` whatever its code (the caller judges it with
/// [`Run::passed`]); one that reaches the timeout is `Ok` with `timed_out` set. A flash or probe
/// failure, and a core that halts or locks up, are `Err` with the log so far.
pub fn session(
    probe: &mut dyn Probe,
    decoder: &mut dyn Decoder,
    elf: &Path,
    timeout: Duration,
    echo: &mut dyn FnMut(&str),
) -> Result<Run, String> {
    probe
        .flash(elf)
        .map_err(|e| format!("flashing {} failed: {e}", elf.display()))?;
    probe.reset_and_run()?;
    let start = Instant::now();
    let mut log = String::new();
    let mut buf = vec![0u8; 4096];
    let finished = |log: String, exit: Option<i32>| Run {
        exit,
        timed_out: exit.is_none(),
        result: result_fields(&log),
        log,
        stderr: String::new(),
        insns: Vec::new(),
        layers: Vec::new(),
    };
    loop {
        let n = probe.read_log(&mut buf)?;
        let lines = decoder.feed(&buf[..n])?;
        let quiet = n == 0 && lines.is_empty();
        for line in lines {
            echo(&line);
            log.push_str(&line);
            log.push('\n');
            if let Some(code) = exit_line(&line) {
                return Ok(finished(log, Some(code)));
            }
        }
        if quiet {
            match probe.state()? {
                CoreState::Running => {}
                CoreState::LockedUp => {
                    return Err(format!(
                        "{log}the core locked up (a fault while handling a fault)"
                    ))
                }
                CoreState::Halted(why) => {
                    return Err(format!("{log}the core halted ({why}) before its verdict"))
                }
            }
        }
        if start.elapsed() >= timeout {
            return Ok(finished(log, None));
        }
        if quiet {
            std::thread::sleep(POLL);
        }
    }
}

/// A real probe through the probe-rs library.
pub struct ProbeRs {
    session: probe_rs::Session,
    rtt: Option<probe_rs::rtt::Rtt>,
    region: probe_rs::rtt::ScanRegion,
}

impl ProbeRs {
    /// Open the probe `selector` picks (`VID:PID[:SERIAL]`), or the only one connected, and
    /// attach to `chip` (probe-rs's name), at `speed_khz` when given.
    pub fn open(
        chip: &str,
        selector: Option<&str>,
        speed_khz: Option<u32>,
    ) -> Result<Self, String> {
        use probe_rs::probe::list::Lister;
        use probe_rs::probe::DebugProbeSelector;
        let lister = Lister::new();
        let mut probe = match selector {
            Some(s) => {
                let sel: DebugProbeSelector = s
                    .parse()
                    .map_err(|e| format!("--probe {s}: expected VID:PID[:SERIAL] ({e})"))?;
                lister
                    .open(sel)
                    .map_err(|e| format!("cannot open the probe {s}: {e}"))?
            }
            None => {
                let all = lister.list_all();
                match all.as_slice() {
                    [] => {
                        return Err(
                            "no debug probe found: connect the board's debug USB port (or an SWD probe)"
                                .into(),
                        )
                    }
                    [one] => one
                        .open()
                        .map_err(|e| format!("cannot open the probe {}: {e}", one.identifier))?,
                    many => {
                        let names: Vec<String> = many
                            .iter()
                            .map(|p| {
                                format!(
                                    "{:04x}:{:04x}{} ({})",
                                    p.vendor_id,
                                    p.product_id,
                                    p.serial_number
                                        .as_deref()
                                        .map(|s| format!(":{s}"))
                                        .unwrap_or_default(),
                                    p.identifier
                                )
                            })
                            .collect();
                        return Err(format!(
                            "{} probes found, choose one with --probe: {}",
                            many.len(),
                            names.join(", ")
                        ));
                    }
                }
            }
        };
        if let Some(khz) = speed_khz {
            probe
                .set_speed(khz)
                .map_err(|e| format!("cannot set the probe to {khz} kHz: {e}"))?;
        }
        let session = probe
            .attach(chip, probe_rs::Permissions::default())
            .map_err(|e| format!("cannot attach to {chip}: {e}"))?;
        Ok(Self {
            session,
            rtt: None,
            region: probe_rs::rtt::ScanRegion::Ram,
        })
    }

    fn core(&mut self) -> Result<probe_rs::Core<'_>, String> {
        self.session
            .core(0)
            .map_err(|e| format!("cannot reach core 0: {e}"))
    }
}

impl Probe for ProbeRs {
    fn flash(&mut self, elf: &Path) -> Result<(), String> {
        use probe_rs::flashing::{download_file_with_options, DownloadOptions, ElfLoader};
        let bytes =
            std::fs::read(elf).map_err(|e| format!("cannot read {}: {e}", elf.display()))?;
        // The control block's address from the ELF (`_SEGGER_RTT`), so that no RAM is scanned.
        if let Ok(Some(at)) = probe_rs::rtt::find_rtt_control_block_in_raw_file(&bytes) {
            self.region = probe_rs::rtt::ScanRegion::Exact(at);
        }
        let mut options = DownloadOptions::default();
        options.verify = true;
        download_file_with_options(
            &mut self.session,
            elf,
            ElfLoader(Default::default()),
            options,
        )
        .map_err(|e| e.to_string())
    }

    fn reset_and_run(&mut self) -> Result<(), String> {
        let region = self.region.clone();
        let mut core = self
            .session
            .core(0)
            .map_err(|e| format!("cannot reach core 0: {e}"))?;
        core.reset_and_halt(Duration::from_millis(500))
            .map_err(|e| format!("cannot reset the core: {e}"))?;
        // A control block left at the same address by the previous program must not be read as
        // this one's before the new program's start-up code has written its own.
        if let probe_rs::rtt::ScanRegion::Exact(_) = region {
            probe_rs::rtt::Rtt::clear_control_block(&mut core, &region)
                .map_err(|e| format!("cannot clear the RTT control block: {e}"))?;
        }
        core.run()
            .map_err(|e| format!("cannot start the core: {e}"))?;
        let rtt = probe_rs::rtt::try_attach_to_rtt(&mut core, Duration::from_secs(2), &region)
            .map_err(|e| format!("the app's RTT control block did not appear: {e}"))?;
        self.rtt = Some(rtt);
        Ok(())
    }

    fn read_log(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let Some(mut rtt) = self.rtt.take() else {
            return Err("RTT is not attached (the core was not started)".into());
        };
        let read = {
            let mut core = self
                .session
                .core(0)
                .map_err(|e| format!("cannot reach core 0: {e}"))?;
            match rtt.up_channel(0) {
                Some(ch) => ch
                    .read(&mut core, buf)
                    .map_err(|e| format!("RTT read: {e}")),
                None => Err("the app has no RTT up channel".into()),
            }
        };
        self.rtt = Some(rtt);
        read
    }

    fn state(&mut self) -> Result<CoreState, String> {
        use probe_rs::CoreStatus;
        let status = self
            .core()?
            .status()
            .map_err(|e| format!("cannot read the core's state: {e}"))?;
        Ok(match status {
            CoreStatus::Running | CoreStatus::Sleeping | CoreStatus::Unknown => CoreState::Running,
            CoreStatus::LockedUp => CoreState::LockedUp,
            CoreStatus::Halted(why) => CoreState::Halted(format!("{why:?}")),
        })
    }
}

/// An emulated board behind the [`Probe`] seam: "flashing" keeps the ELF, running starts QEMU
/// with semihosting, and the log is QEMU's standard output (the same defmt frames the app sends
/// over RTT on a real board). It tests [`session`] and [`DefmtPrint`] on real frames. QEMU's
/// exit after the verdict stands for a real board's parked core, so the state stays `Running`.
pub struct QemuProbe {
    qemu: crate::board::Qemu,
    elf: Option<std::path::PathBuf>,
    child: Option<Child>,
    chunks: Option<Receiver<Vec<u8>>>,
    pending: Vec<u8>,
}

impl QemuProbe {
    /// The emulated board's QEMU settings.
    pub fn new(qemu: &crate::board::Qemu) -> Self {
        Self {
            qemu: qemu.clone(),
            elf: None,
            child: None,
            chunks: None,
            pending: Vec::new(),
        }
    }
}

impl Probe for QemuProbe {
    fn flash(&mut self, elf: &Path) -> Result<(), String> {
        if !elf.is_file() {
            return Err(format!("{}: no such file", elf.display()));
        }
        self.elf = Some(elf.to_path_buf());
        Ok(())
    }

    fn reset_and_run(&mut self) -> Result<(), String> {
        let elf = self.elf.as_ref().ok_or("nothing was flashed")?;
        let mut c = Command::new("qemu-system-arm");
        c.args(self.qemu.args())
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot start qemu-system-arm: {e}"))?;
        let mut out = child.stdout.take().ok_or("no QEMU output")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.chunks = Some(rx);
        Ok(())
    }

    fn read_log(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let rx = self.chunks.as_ref().ok_or("QEMU is not running")?;
        self.pending.extend(rx.try_iter().flatten());
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }

    fn state(&mut self) -> Result<CoreState, String> {
        Ok(CoreState::Running)
    }
}

impl Drop for QemuProbe {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `defmt-print` decoder (`cargo xtask setup` installs it), fed through its standard input;
/// its output and error lines come back through a channel.
pub struct DefmtPrint {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl DefmtPrint {
    /// Start `defmt-print -e ELF`.
    pub fn start(elf: &Path) -> Result<Self, String> {
        let mut child = Command::new("defmt-print")
            .arg("-e")
            .arg(elf)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start defmt-print (run `cargo xtask setup`): {e}"))?;
        let (tx, lines) = channel();
        let outputs: [Option<Box<dyn Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
        ];
        for out in outputs.into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
        })
    }
}

impl Decoder for DefmtPrint {
    fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, String> {
        if !bytes.is_empty() {
            let stdin = self.stdin.as_mut().ok_or("defmt-print has no input")?;
            stdin
                .write_all(bytes)
                .and_then(|()| stdin.flush())
                .map_err(|e| format!("defmt-print stopped: {e}"))?;
        }
        Ok(self.lines.try_iter().collect())
    }
}

impl Drop for DefmtPrint {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A probe that plays a script: each read returns the next chunk (an empty chunk is a read
    /// with nothing new), then nothing; `state` reports `end_state` once the script is spent.
    struct FakeProbe {
        chunks: VecDeque<Vec<u8>>,
        end_state: CoreState,
        flash_error: Option<String>,
        flashed: Vec<String>,
        started: bool,
    }

    impl FakeProbe {
        fn new(chunks: &[&str], end_state: CoreState) -> Self {
            Self {
                chunks: chunks.iter().map(|c| c.as_bytes().to_vec()).collect(),
                end_state,
                flash_error: None,
                flashed: Vec::new(),
                started: false,
            }
        }
    }

    impl Probe for FakeProbe {
        fn flash(&mut self, elf: &Path) -> Result<(), String> {
            match &self.flash_error {
                Some(e) => Err(e.clone()),
                None => {
                    self.flashed.push(elf.display().to_string());
                    Ok(())
                }
            }
        }

        fn reset_and_run(&mut self) -> Result<(), String> {
            self.started = true;
            Ok(())
        }

        fn read_log(&mut self, buf: &mut [u8]) -> Result<usize, String> {
            assert!(self.started, "read before the core was started");
            let Some(c) = self.chunks.pop_front() else {
                return Ok(0);
            };
            buf[..c.len()].copy_from_slice(&c);
            Ok(c.len())
        }

        fn state(&mut self) -> Result<CoreState, String> {
            Ok(if self.chunks.is_empty() {
                self.end_state.clone()
            } else {
                CoreState::Running
            })
        }
    }

    /// Bytes are UTF-8 text; lines are completed at `\n`, across chunks.
    #[derive(Default)]
    struct Lines(String);

    impl Decoder for Lines {
        fn feed(&mut self, bytes: &[u8]) -> Result<Vec<String>, String> {
            self.0
                .push_str(std::str::from_utf8(bytes).map_err(|e| e.to_string())?);
            let mut out = Vec::new();
            while let Some(at) = self.0.find('\n') {
                out.push(self.0[..at].to_string());
                self.0.drain(..=at);
            }
            Ok(out)
        }
    }

    const START: &str =
        "bitspike board=stm32f4-discovery model=7096B layers=9 arena=7840B clock=168000000\n";
    const RESULT: &str = "bitspike-result board=stm32f4-discovery vectors=8 mismatches=0 arena=7840 stack=1940 model=7096 macs=510912 cycles=4100000 cycles_min=4000000 cycles_max=4100000 cycles_sum=32400000 clock=168000000\n";

    fn run(probe: &mut FakeProbe, timeout_ms: u64) -> (Result<Run, String>, Vec<String>) {
        let mut seen = Vec::new();
        let r = session(
            probe,
            &mut Lines::default(),
            Path::new("app.elf"),
            Duration::from_millis(timeout_ms),
            &mut |l| seen.push(l.to_string()),
        );
        (r, seen)
    }

    #[test]
    fn a_passing_run_is_parsed_from_lines_split_across_reads() {
        // The result line arrives in three pieces, with empty reads between them.
        let (a, b) = RESULT.split_at(40);
        let (b, c) = b.split_at(60);
        let mut p = FakeProbe::new(
            &[START, "", a, b, "", c, "bitspike-exit code=0\n"],
            CoreState::Running,
        );
        let (r, seen) = run(&mut p, 5_000);
        let r = r.unwrap();
        assert_eq!(p.flashed, ["app.elf"]);
        assert!(r.passed());
        assert!(!r.timed_out);
        assert_eq!(r.exit, Some(0));
        assert_eq!(r.field("vectors"), Some(8));
        assert_eq!(r.field("cycles_sum"), Some(32_400_000));
        assert_eq!(r.field("clock"), Some(168_000_000));
        assert_eq!(r.field("exit"), Some(0));
        assert_eq!(seen.len(), 3, "every line is echoed once: {seen:?}");
    }

    #[test]
    fn a_mismatch_is_a_run_that_did_not_pass() {
        let mut p = FakeProbe::new(
            &[
                START,
                "ERROR vector 3: output 7 is 12, the host computed 13\n",
                &RESULT.replace("mismatches=0", "mismatches=1"),
                "bitspike-exit code=1\n",
            ],
            CoreState::Running,
        );
        let r = run(&mut p, 5_000).0.unwrap();
        assert_eq!(r.exit, Some(1));
        assert_eq!(r.field("mismatches"), Some(1));
        assert!(!r.passed());
        assert!(r.log.contains("the host computed 13"));
    }

    #[test]
    fn the_exit_line_is_the_verdict_even_with_a_clean_result_line() {
        // A result line that claims 0 mismatches does not pass without exit code 0.
        let mut p = FakeProbe::new(
            &[START, RESULT, "bitspike-exit code=2\n"],
            CoreState::Running,
        );
        assert!(!run(&mut p, 5_000).0.unwrap().passed());
    }

    #[test]
    fn no_verdict_before_the_timeout_is_a_timed_out_run() {
        let mut p = FakeProbe::new(&[START], CoreState::Running);
        let t = Instant::now();
        let r = run(&mut p, 150).0.unwrap();
        assert!(t.elapsed() >= Duration::from_millis(150));
        assert!(r.timed_out);
        assert_eq!(r.exit, None);
        assert!(!r.passed());
        assert!(r.log.contains("clock=168000000"));
    }

    #[test]
    fn a_locked_up_or_halted_core_fails_with_the_log_so_far() {
        let mut p = FakeProbe::new(&[START], CoreState::LockedUp);
        let e = run(&mut p, 5_000).0.unwrap_err();
        assert!(
            e.contains("locked up") && e.contains("clock=168000000"),
            "{e}"
        );
        let mut p = FakeProbe::new(&[START], CoreState::Halted("Breakpoint".into()));
        let e = run(&mut p, 5_000).0.unwrap_err();
        assert!(e.contains("halted (Breakpoint)"), "{e}");
    }

    #[test]
    fn a_failed_flash_stops_before_the_core_runs() {
        let mut p = FakeProbe::new(&[START], CoreState::Running);
        p.flash_error = Some("erase failed at 0x08000000".into());
        let e = run(&mut p, 5_000).0.unwrap_err();
        assert!(e.contains("flashing app.elf failed: erase failed"), "{e}");
        assert!(!p.started);
    }

    #[test]
    fn a_panic_reported_by_the_app_ends_the_run_with_its_code() {
        let mut p = FakeProbe::new(
            &[
                START,
                "ERROR panic: index out of bounds\n",
                "bitspike-exit code=101\n",
            ],
            CoreState::Running,
        );
        let r = run(&mut p, 5_000).0.unwrap();
        assert_eq!(r.exit, Some(101));
        assert!(!r.passed());
    }
}
