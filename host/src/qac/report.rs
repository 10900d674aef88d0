//! QAC's tables on our data, from trained runs: Markdown, JSON and SVG plots.
//!
//! * [`run_report`] on one QAC run: calibration ablation (QAC Table 3), temporal alignment
//!   ablation (Table 4: Repl+Aver, Repl+Trunc, Aver+Trunc, Aver+Aver) and temporal scaling
//!   (Table 5: every layer's timesteps times 1..=6);
//! * [`cases_report`] over runs of the four parameterisations (Figure 2 / 11: average bit width
//!   `log2 T`, average timesteps and the quantized network's accuracy);
//! * [`qcfs_report`] over QCFS runs (one level count `L` each): the spiking network at a
//!   uniform `T` with the standard step-by-step trains (QCFS) and with averaging alignment
//!   (QCFS+aver), Table 8.
//!
//! Every accuracy here is the float simulator's ([`crate::qac::snn`]) on the test split; the integer
//! network agrees with it (see `tests/snn.rs`), and `bitspike snn` measures it on the host.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::data::Dataset;
use crate::net::QNet;
use crate::qac::snn::{self, AlignMode, Snn};

/// Table 3, 4 and 5 of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Timesteps per spiking layer.
    pub timesteps: Vec<u16>,
    /// Their mean.
    pub avg_timesteps: f64,
    /// The quantized network's accuracy (trained, real-valued level counts).
    pub ann_accuracy: f64,
    /// Table 3: converted (v0 = theta/2, theta = alpha) and calibrated, with averaging.
    pub base: f64,
    /// Table 3: after calibration, when calibrated parameters were given.
    pub calibrated: Option<f64>,
    /// Table 4: accuracy per alignment (converted parameters).
    pub alignment: Vec<(String, f64)>,
    /// Table 5: (multiplier, average timesteps, accuracy), with the calibrated parameters when
    /// given, averaging alignment.
    pub scaling: Vec<(u16, f64, f64)>,
    /// Test images evaluated.
    pub samples: i64,
}

/// Evaluate one QAC run (see the module docs). `calibrated` holds the run's calibrated
/// spiking parameters, if any.
pub fn run_report(
    net: &QNet,
    data: &Dataset,
    limit: i64,
    calibrated: Option<&Snn>,
) -> Result<RunReport> {
    let base = Snn::convert(net, AlignMode::Average)?;
    let acc = |s: &Snn| snn::evaluate(net, s, &data.test, data.max_code, limit);
    let b = acc(&base);
    let mut alignment = Vec::new();
    for mode in [
        AlignMode::ReplAver,
        AlignMode::ReplTrunc,
        AlignMode::AverTrunc,
        AlignMode::Average,
    ] {
        let s = Snn {
            align: mode,
            ..base.scaled(1)
        };
        alignment.push((mode.label().to_string(), acc(&s).accuracy));
    }
    let reference = calibrated.unwrap_or(&base);
    let scaling = (1..=6u16)
        .map(|m| {
            let s = Snn {
                align: AlignMode::Average,
                ..reference.scaled(m)
            };
            (m, s.avg_timesteps(), acc(&s).accuracy)
        })
        .collect();
    Ok(RunReport {
        timesteps: base.layers.iter().map(|l| l.timesteps).collect(),
        avg_timesteps: base.avg_timesteps(),
        ann_accuracy: b.ann_accuracy,
        base: b.accuracy,
        calibrated: calibrated.map(|c| acc(c).accuracy),
        alignment,
        scaling,
        samples: b.samples,
    })
}

fn pct(a: f64) -> String {
    format!("{:.2} %", 100.0 * a)
}

impl RunReport {
    /// The three tables as Markdown.
    pub fn markdown(&self, title: &str) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# QAC on {title}\n");
        let _ = writeln!(
            m,
            "Timesteps per layer {:?} (average {:.2}); quantized ANN {}; {} test images; float \
             simulator.\n",
            self.timesteps,
            self.avg_timesteps,
            pct(self.ann_accuracy),
            self.samples
        );
        let _ = writeln!(
            m,
            "## Calibration (Table 3)\n\n| | accuracy |\n| --- | --- |"
        );
        let _ = writeln!(m, "| QAC (base) | {} |", pct(self.base));
        match self.calibrated {
            Some(c) => {
                let _ = writeln!(m, "| QAC (base + CAL) | {} |", pct(c));
            }
            None => {
                let _ = writeln!(m, "| QAC (base + CAL) | not calibrated (`bitspike snn`) |");
            }
        }
        let _ = writeln!(
            m,
            "\n## Temporal alignment (Table 4, converted parameters)\n\n| alignment | accuracy |\n| --- | --- |"
        );
        for (l, a) in &self.alignment {
            let _ = writeln!(m, "| {l} | {} |", pct(*a));
        }
        let _ = writeln!(
            m,
            "\n## Temporal scaling (Table 5, averaging)\n\n| timesteps | average T | accuracy |\n| --- | --- | --- |"
        );
        for (k, t, a) in &self.scaling {
            let label = if *k == 1 {
                "T".to_string()
            } else {
                format!("{k} T")
            };
            let _ = writeln!(m, "| {label} | {t:.2} | {} |", pct(*a));
        }
        m
    }
}

/// One run of the cases report.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRow {
    /// The case's label.
    pub case: String,
    /// The run folder.
    pub run: String,
    /// The run's level penalty (0: the paper's training).
    pub level_penalty: f64,
    /// Mean learned level count (real valued) over the layers.
    pub avg_levels: f64,
    /// Mean `log2` of the learned level counts: the average activation bit width.
    pub avg_bits: f64,
    /// Mean converted timesteps.
    pub avg_timesteps: f64,
    /// The quantized network's accuracy.
    pub ann_accuracy: f64,
    /// The converted spiking network's accuracy (averaging, not calibrated).
    pub snn_accuracy: f64,
}

/// Figure 2 / 11 as a table: one row per run.
pub fn cases_report(
    runs: &[(String, &crate::train::Trained)],
    data: &Dataset,
    limit: i64,
) -> Result<Vec<CaseRow>> {
    let mut rows = Vec::new();
    for (run, t) in runs {
        let net = &t.net;
        let layers = crate::qac::layers(net);
        let n = layers.len().max(1) as f64;
        let levels: Vec<f64> = layers.iter().map(|(_, q)| q.levels()).collect();
        let snn = Snn::convert(net, AlignMode::Average)?;
        let e = snn::evaluate(net, &snn, &data.test, data.max_code, limit);
        rows.push(CaseRow {
            case: layers
                .first()
                .map_or("-", |(_, q)| q.case.label())
                .to_string(),
            run: run.clone(),
            level_penalty: t.cfg.quant.qac.level_penalty,
            avg_levels: levels.iter().sum::<f64>() / n,
            avg_bits: levels.iter().map(|l| l.max(1.0).log2()).sum::<f64>() / n,
            avg_timesteps: snn.avg_timesteps(),
            ann_accuracy: e.ann_accuracy,
            snn_accuracy: e.accuracy,
        });
    }
    Ok(rows)
}

/// The cases table as Markdown.
pub fn cases_markdown(rows: &[CaseRow], title: &str) -> String {
    let mut m = format!(
        "# QAC parameterisations on {title} (Figure 2 / 11)\n\n| case | level penalty | average bits (log2 T) | average level count | average timesteps | ANN accuracy | SNN accuracy |\n| --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for r in rows {
        let _ = writeln!(
            m,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            r.case,
            r.level_penalty,
            r.avg_bits,
            r.avg_levels,
            r.avg_timesteps,
            pct(r.ann_accuracy),
            pct(r.snn_accuracy)
        );
    }
    m
}

/// The timesteps of Table 8.
pub const TABLE8_T: [u16; 8] = [1, 2, 3, 4, 8, 16, 32, 64];

/// One QCFS run of Table 8.
#[derive(Clone, Debug, Serialize)]
pub struct QcfsRow {
    /// The run's level count `L`.
    pub levels: u16,
    /// Accuracy at each of [`TABLE8_T`] with step-by-step trains (QCFS).
    pub qcfs: Vec<f64>,
    /// Accuracy at each of [`TABLE8_T`] with averaging alignment (QCFS+aver).
    pub aver: Vec<f64>,
}

/// Table 8 over QCFS runs.
pub fn qcfs_report(runs: &[&QNet], data: &Dataset, limit: i64) -> Result<Vec<QcfsRow>> {
    let mut rows = Vec::new();
    for net in runs {
        let base = Snn::convert(net, AlignMode::Average)?;
        let levels = base.layers.first().map_or(0, |l| l.timesteps);
        let mut row = QcfsRow {
            levels,
            qcfs: Vec::new(),
            aver: Vec::new(),
        };
        for t in TABLE8_T {
            for (mode, out) in [
                (AlignMode::Replicate, &mut row.qcfs),
                (AlignMode::Average, &mut row.aver),
            ] {
                let s = Snn {
                    align: mode,
                    ..base.uniform(t)
                };
                out.push(snn::evaluate(net, &s, &data.test, data.max_code, limit).accuracy);
            }
        }
        rows.push(row);
    }
    rows.sort_by_key(|r| r.levels);
    Ok(rows)
}

/// Table 8 as Markdown.
pub fn qcfs_markdown(rows: &[QcfsRow], title: &str) -> String {
    let mut m = format!(
        "# QCFS with and without temporal averaging on {title} (Table 8)\n\n| L | method |"
    );
    for t in TABLE8_T {
        let _ = write!(m, " T={t} |");
    }
    m.push_str("\n| --- | --- |");
    for _ in TABLE8_T {
        m.push_str(" --- |");
    }
    m.push('\n');
    for r in rows {
        for (name, v) in [("QCFS", &r.qcfs), ("QCFS+(aver)", &r.aver)] {
            let _ = write!(m, "| L={} | {name} |", r.levels);
            for a in v {
                let _ = write!(m, " {:.2} |", 100.0 * a);
            }
            m.push('\n');
        }
    }
    m
}
