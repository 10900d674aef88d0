//! The figures of a measured run: accuracy, memory, instructions or cycles, time and energy,
//! and the tables and JSON they are written as.

use std::fmt::Write as _;

use crate::board::{Board, Built, Run};

/// 45 nm analytic estimate, picojoules per MAC and per accumulate (the figures SNN papers use;
/// Horowitz 2014; the same as `bitspike_core::cost`).
const PJ_PER_MAC_45NM: f64 = 4.6;
const PJ_PER_AC_45NM: f64 = 0.9;

/// Figures of one measured run.
pub struct Figures {
    /// Board name.
    pub board: String,
    /// Model label.
    pub model: String,
    /// Sizes of the app.
    pub built: Built,
    /// Model file bytes.
    pub model_bytes: u64,
    /// Arena bytes.
    pub arena: u64,
    /// Peak stack bytes.
    pub stack: u64,
    /// MACs per inference (for a spiking model: those of its layers that read analog inputs,
    /// counted on the host for the inputs the board ran).
    pub macs: u64,
    /// Synaptic operations (accumulates) per inference of a spiking model, counted on the host
    /// for the inputs the board ran; 0 for a non-spiking model.
    pub synops: u64,
    /// Whether the model has spiking layers.
    pub spiking: bool,
    /// Instructions per inference, per vector.
    pub insns: Vec<u64>,
    /// Instructions of each layer in the first inference (empty when not counted per layer).
    pub layer_insns: Vec<u64>,
    /// Vectors run and mismatches.
    pub vectors: u64,
    /// Mismatches against the host.
    pub mismatches: u64,
    /// Board-side counter over the last inference (FPGAIO on mps2, the cycle counter on a real
    /// board), if any.
    pub cycles: u64,
    /// Cycles per inference on a real board: mean, fewest and most over the vectors (0 when the
    /// board counts none).
    pub cycles_mean: f64,
    /// Fewest and most cycles of one inference.
    pub cycles_range: (u64, u64),
    /// The core clock the firmware reported, in hertz (0 on emulated boards).
    pub clock_hz: u64,
    /// The board's datasheet energy estimate per inference in microjoules, from the cycles (real
    /// boards only).
    pub datasheet_uj: Option<f64>,
    /// Correct predictions, for a labelled (streamed) test set.
    pub correct: Option<u64>,
    /// The app's `bitspike-confidence` line: the last output's class and softmax probability,
    /// and the mean top probability over the outputs (models whose output has a scale).
    pub confidence: Option<(u64, f64, f64)>,
}

impl Figures {
    /// Mean instructions per inference.
    pub fn insns_mean(&self) -> f64 {
        if self.insns.is_empty() {
            return 0.0;
        }
        self.insns.iter().sum::<u64>() as f64 / self.insns.len() as f64
    }

    pub fn insns_range(&self) -> (u64, u64) {
        (
            self.insns.iter().copied().min().unwrap_or(0),
            self.insns.iter().copied().max().unwrap_or(0),
        )
    }

    /// Total RAM: static sections plus the peak stack.
    pub fn ram(&self) -> u64 {
        self.built.sizes.ram_static() + self.stack
    }

    /// The 45 nm analytic estimate, nanojoules per inference.
    pub fn energy_nj(&self) -> f64 {
        (self.macs as f64 * PJ_PER_MAC_45NM + self.synops as f64 * PJ_PER_AC_45NM) / 1000.0
    }

    /// A human-readable table.
    pub fn table(&self, board: &Board) -> String {
        let s = self.built.sizes;
        let (lo, hi) = self.insns_range();
        let mean = self.insns_mean();
        let mut t = String::new();
        let _ = writeln!(
            t,
            "bitspike measure: {} on {} ({})",
            self.model, board.name, board.description
        );
        let _ = writeln!(
            t,
            "  flash    .text {} B (with vector table), .rodata {} B (model file {} B inside), .data image {} B: {} B of {} B",
            s.vector_table + s.text,
            s.rodata,
            self.model_bytes,
            s.data,
            s.flash(),
            board.memory.flash
        );
        let _ = writeln!(
            t,
            "  RAM      .data {} B, .bss {} B (arena {} B inside), .uninit {} B, peak stack {} B: {} B of {} B",
            s.data,
            s.bss,
            self.arena,
            s.uninit,
            self.stack,
            self.ram(),
            board.memory.ram
        );
        let per_mac = |x: f64| {
            if self.macs > 0 {
                x / self.macs as f64
            } else {
                0.0
            }
        };
        let counted = if self.insns.is_empty() {
            let (lo, hi) = self.cycles_range;
            let _ = writeln!(
                t,
                "  compute  {:.0} cycles per inference ({} at {:.0} MHz: {:.3} ms; {} vectors, {lo}..{hi})",
                self.cycles_mean,
                board.cycle_counter.as_deref().unwrap_or("cycle counter"),
                self.clock_hz as f64 / 1e6,
                self.cycles_mean / (self.clock_hz.max(1) as f64 / 1e3),
                self.vectors
            );
            ("cycles", self.cycles_mean)
        } else {
            let _ = writeln!(
                t,
                "  compute  {mean:.0} instructions per inference (QEMU TCG count, not cycles; {} vectors, {lo}..{hi})",
                self.insns.len()
            );
            ("instructions", mean)
        };
        if self.spiking {
            let _ = writeln!(
                t,
                "           spiking: {} MACs + {} synaptic operations per inference (host counters on the same inputs)",
                self.macs, self.synops
            );
        } else {
            let _ = writeln!(
                t,
                "           {} MACs, {:.2} {} per MAC",
                self.macs,
                per_mac(counted.1),
                counted.0
            );
        }
        match (&board.energy, self.insns.is_empty()) {
            (None, true) => {
                let _ = writeln!(
                    t,
                    "  energy   datasheet estimate: none ({})",
                    board
                        .energy_note
                        .as_deref()
                        .unwrap_or("board.toml has no [energy] figures")
                );
                let _ = writeln!(
                    t,
                    "           measured: none (bitspike has no power-monitor support; see boards/README.md)"
                );
            }
            (Some(e), true) => {
                let _ = writeln!(
                    t,
                    "  energy   datasheet estimate: {:.2} uJ per inference ({:.0} cycles x {} V x {} uA/MHz; {}; not a measurement)",
                    self.datasheet_uj.unwrap_or_else(|| e.microjoules(self.cycles_mean)),
                    self.cycles_mean,
                    e.supply_v,
                    e.run_ua_per_mhz,
                    e.source
                );
                let _ = writeln!(
                    t,
                    "           measured: none (bitspike has no power-monitor support; see boards/README.md)"
                );
            }
            _ => {
                let _ = writeln!(
                    t,
                    "  energy   board figures: none (an emulated board has no datasheet figures)"
                );
            }
        }
        let _ = writeln!(
            t,
            "           45 nm analytic estimate: {:.1} nJ per inference (4.6 pJ per MAC, 0.9 pJ per accumulate; not a measurement)",
            self.energy_nj()
        );
        let _ = writeln!(
            t,
            "  check    {} vectors, {} mismatches against the host executor",
            self.vectors, self.mismatches
        );
        t
    }

    /// The same figures as one JSON object.
    pub fn json(&self) -> String {
        let s = self.built.sizes;
        let (lo, hi) = self.insns_range();
        format!(
            "{{\"board\":\"{}\",\"model\":\"{}\",\"flash\":{{\"text\":{},\"rodata\":{},\"data\":{},\"total\":{}}},\"ram\":{{\"data\":{},\"bss\":{},\"uninit\":{},\"stack\":{},\"total\":{}}},\"model_bytes\":{},\"arena\":{},\"instructions_per_inference\":{:.0},\"instructions_min\":{lo},\"instructions_max\":{hi},\"macs\":{},\"synops\":{},\"spiking\":{},\"instructions_per_mac\":{:.3},\"energy_45nm_nj\":{:.3},\"cycles_per_inference\":{:.0},\"cycles_min\":{},\"cycles_max\":{},\"clock_hz\":{},\"energy_datasheet_uj\":{},\"vectors\":{},\"mismatches\":{}}}",
            self.board,
            self.model,
            s.vector_table + s.text,
            s.rodata,
            s.data,
            s.flash(),
            s.data,
            s.bss,
            s.uninit,
            self.stack,
            self.ram(),
            self.model_bytes,
            self.arena,
            self.insns_mean(),
            self.macs,
            self.synops,
            self.spiking,
            if self.macs > 0 && !self.spiking { self.insns_mean() / self.macs as f64 } else { 0.0 },
            self.energy_nj(),
            self.cycles_mean,
            self.cycles_range.0,
            self.cycles_range.1,
            self.clock_hz,
            self.datasheet_uj
                .map_or_else(|| "null".to_string(), |e| format!("{e:.3}")),
            self.vectors,
            self.mismatches
        )
    }
}

/// The device lines of a whole-test-set run (accuracy, memory, instructions) appended to `r`;
/// an error carrying `r` when any output differs from the host's.
pub fn device_lines(r: &mut String, board: &str, f: &Figures) -> Result<(), String> {
    use std::fmt::Write as _;
    let correct = f.correct.ok_or("the board reported no accuracy")?;
    let _ = writeln!(
        r,
        "  device     {board}: {:.2} % ({} of {} test images; {} outputs differ from the host's)",
        100.0 * correct as f64 / f.vectors.max(1) as f64,
        correct,
        f.vectors,
        f.mismatches
    );
    let _ = writeln!(
        r,
        "  memory     flash {} B (model file {} B), RAM {} B (arena {} B, peak stack {} B)",
        f.built.sizes.flash(),
        f.model_bytes,
        f.ram(),
        f.arena,
        f.stack
    );
    let _ = writeln!(
        r,
        "  device     {:.0} instructions per inference (QEMU counts, not cycles)",
        f.insns_mean()
    );
    if f.mismatches != 0 {
        return Err(format!(
            "{r}the device disagrees with the host integer executor"
        ));
    }
    Ok(())
}

/// The figures of a finished run on `board`, or why the run does not count: it did not pass,
/// an emulated run lacks an instruction count per vector, or a real board reported another
/// clock than its `board.toml` or no cycles. `ops` is `tasks::host_ops`'s answer for the model.
pub fn figures(
    board: &Board,
    label: &str,
    built: Built,
    run: Run,
    ops: (bool, Option<(u64, u64)>),
) -> Result<Figures, String> {
    let vectors = run.field("vectors").unwrap_or(0);
    if !run.passed() || vectors == 0 {
        run.print_failure();
        return Err(format!("{label} on {} did not pass", board.name));
    }
    let clock_hz = run.field("clock").unwrap_or(0);
    let (mut cycles_mean, mut cycles_range, mut datasheet_uj) = (0.0, (0, 0), None);
    if board.qemu.is_some() {
        if run.insns.len() as u64 != vectors {
            return Err(format!(
                "{label} on {}: {} instruction counts for {vectors} vectors",
                board.name,
                run.insns.len()
            ));
        }
    } else {
        let sum = run.field("cycles_sum").unwrap_or(0);
        if sum == 0 {
            return Err(format!(
                "{label} on {}: the board counted no cycles",
                board.name
            ));
        }
        cycles_mean = sum as f64 / vectors as f64;
        cycles_range = (
            run.field("cycles_min").unwrap_or(0),
            run.field("cycles_max").unwrap_or(0),
        );
        let mhz = board.clock_mhz.unwrap_or(0.0);
        if clock_hz != (mhz * 1e6).round() as u64 {
            return Err(format!(
                "{label} on {}: the firmware set up {clock_hz} Hz but board.toml says clock_mhz = {mhz}: fix one of them",
                board.name
            ));
        }
        datasheet_uj = board.energy.as_ref().map(|e| e.microjoules(cycles_mean));
    }
    let (spiking, host_ops) = ops;
    let (macs, synops) = match host_ops {
        Some(ops) if spiking => ops,
        _ => (run.field("macs").unwrap_or(0), 0),
    };
    Ok(Figures {
        board: board.name.clone(),
        model: label.to_string(),
        model_bytes: run.field("model").unwrap_or(0),
        arena: run.field("arena").unwrap_or(0),
        stack: run.field("stack").unwrap_or(0),
        macs,
        synops,
        spiking,
        vectors,
        mismatches: run.field("mismatches").unwrap_or(0),
        cycles: run.field("cycles").unwrap_or(0),
        cycles_mean,
        cycles_range,
        clock_hz,
        datasheet_uj,
        correct: run.field("correct"),
        confidence: run
            .field("class")
            .and_then(|c| Some((c, run.real("probability")?, run.real("mean")?))),
        layer_insns: run.layer_insns(),
        insns: run.insns,
        built,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::{self, Sizes};
    use crate::tasks::number;
    use std::path::PathBuf;

    /// A finished real-board run as the probe session returns it.
    fn run_with(board: &str, cycles_sum: u64, vectors: u64, clock: u64) -> Run {
        let log = format!(
            "bitspike-result board={board} vectors={vectors} mismatches=0 arena=7840 stack=1940 model=7096 macs=510912 cycles=1 cycles_min=90 cycles_max=110 cycles_sum={cycles_sum} clock={clock}\nbitspike-exit code=0\n"
        );
        Run {
            exit: Some(0),
            timed_out: false,
            result: board::result_fields(&log),
            log,
            stderr: String::new(),
            insns: Vec::new(),
            layers: Vec::new(),
        }
    }

    fn built() -> Built {
        Built {
            elf: PathBuf::from("app.elf"),
            sizes: Sizes::default(),
            marks: None,
            layer_mark: None,
            defmt: true,
        }
    }

    /// Datasheet energy per inference from the cycles, by hand for each real board:
    /// 4 vectors, 4 000 000 cycles in all, so 1 000 000 cycles per inference; energy in uJ is
    /// V x uA/MHz x cycles / 10^6.
    #[test]
    fn energy_per_inference_of_every_real_board_by_hand() {
        let cases: [(&str, u64, Option<f64>, f64); 4] = [
            // 3.0 V x 238 uA/MHz x 10^6 cycles / 10^6 = 714 uJ; 10^6 cycles at 168 MHz.
            ("stm32f4-discovery", 168_000_000, Some(714.0), 5.952),
            // 3.3 V x 110 uA/MHz = 363 uJ; at 120 MHz 8.333 ms.
            ("nucleo-l4r5zi", 120_000_000, Some(363.0), 8.333),
            // 3.0 V x 51.6 uA/MHz = 154.8 uJ; at 64 MHz 15.625 ms.
            ("nrf52840-dk", 64_000_000, Some(154.8), 15.625),
            // No datasheet run current: no energy figure is made up; at 133 MHz 7.519 ms.
            ("rpi-pico", 133_000_000, None, 7.519),
        ];
        for (name, clock, uj, ms) in cases {
            let b = board::load(name).unwrap();
            assert!(
                b.qemu.is_none() && b.probe.is_some(),
                "{name} is a real board"
            );
            let f = figures(
                &b,
                "m",
                built(),
                run_with(name, 4_000_000, 4, clock),
                (false, None),
            )
            .unwrap();
            assert_eq!(f.cycles_mean, 1_000_000.0, "{name}");
            assert_eq!(f.cycles_range, (90, 110), "{name}");
            match (f.datasheet_uj, uj) {
                (Some(got), Some(want)) => assert!((got - want).abs() < 1e-9, "{name}: {got} uJ"),
                (None, None) => assert!(b.energy_note.is_some(), "{name} says why it has none"),
                other => panic!("{name}: {other:?}"),
            }
            let table = f.table(&b);
            assert!(
                table.contains(&format!("{ms:.3} ms")),
                "{name}: the time at {clock} Hz in\n{table}"
            );
            assert!(table.contains("cycles per inference"), "{table}");
            assert!(!table.contains("instructions per inference"), "{table}");
            let json: serde_json::Value = serde_json::from_str(&f.json()).unwrap();
            assert_eq!(number(&json, &["cycles_per_inference"]), Ok(1e6));
            assert_eq!(number(&json, &["clock_hz"]), Ok(clock as f64));
        }
    }

    #[test]
    fn a_clock_other_than_the_board_data_fails() {
        let b = board::load("stm32f4-discovery").unwrap();
        let e = figures(
            &b,
            "m",
            built(),
            run_with(&b.name, 4_000, 4, 16_000_000),
            (false, None),
        )
        .err()
        .unwrap();
        assert!(
            e.contains("16000000 Hz") && e.contains("clock_mhz = 168"),
            "{e}"
        );
    }

    #[test]
    fn a_real_board_that_counted_no_cycles_or_did_not_pass_gives_no_figures() {
        let b = board::load("nrf52840-dk").unwrap();
        let e = figures(
            &b,
            "m",
            built(),
            run_with(&b.name, 0, 4, 64_000_000),
            (false, None),
        )
        .err()
        .unwrap();
        assert!(e.contains("counted no cycles"), "{e}");
        let mut r = run_with(&b.name, 4_000, 4, 64_000_000);
        r.exit = Some(1);
        assert!(figures(&b, "m", built(), r, (false, None)).is_err());
    }
}
