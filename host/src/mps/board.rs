//! Search fronts on a board: each Pareto point's instructions (the board's measured cost
//! table), time at its clock, flash, RAM and energy beside its BOPs; where BOPs and time order
//! the points differently, and which points stay Pareto-optimal in time
//! (`bitspike mps board-fronts`).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::mps::report::Front;
use crate::mps::{self, BitPlan};

/// One Pareto point of a search, on its front's board.
#[derive(Clone, Debug, Serialize)]
pub struct BoardPoint {
    /// The search's label.
    pub search: String,
    /// Its bit widths.
    pub plan: BitPlan,
    /// BOPs (eq. S13).
    pub bops: f64,
    /// Instructions per inference on the board (its measured cost table).
    pub insns: f64,
    /// Milliseconds at the board's clock, one instruction per cycle (`None` on an emulated
    /// board).
    pub ms: Option<f64>,
    /// Microjoules from the board's datasheet (`None` without datasheet figures).
    pub uj: Option<f64>,
    /// Flash bytes: the board app and the model file.
    pub flash: u64,
    /// RAM bytes: the board app and the arena.
    pub ram: u64,
    /// Validation accuracy (0..1).
    pub val_accuracy: f64,
    /// Test accuracy (0..1).
    pub test_accuracy: f64,
    /// On the Pareto front of (instructions, validation accuracy) over every search's points.
    pub pareto_on_board: bool,
}

/// Fronts of several searches on their common board (`bitspike mps board-fronts`).
#[derive(Clone, Debug, Serialize)]
pub struct BoardFronts {
    /// The board.
    pub board: String,
    /// Every search's Pareto points, in its own cost order.
    pub points: Vec<BoardPoint>,
    /// Per search: pairs of its points whose BOPs and board instructions are ordered the
    /// opposite way, of all pairs (where BOPs mislead about time).
    pub discordant: Vec<(String, usize, usize)>,
}

/// The Pareto points of `fronts` (`(label, front)`, every front with figures on one board)
/// on that board: a table, the order disagreements of BOPs and time, and which points stay
/// Pareto-optimal in time.
pub fn board_fronts(fronts: &[(String, Front)]) -> Result<BoardFronts> {
    let Some(board) = fronts.first().and_then(|(_, f)| f.board.clone()) else {
        bail!("the first front has no board figures: run `bitspike mps front --run R --board B`");
    };
    let mut points = Vec::new();
    let mut discordant = Vec::new();
    for (label, f) in fronts {
        if f.board.as_deref() != Some(board.as_str()) {
            bail!(
                "the front of `{label}` is on {} and the first on {board}: run `bitspike mps front --board {board}` on it",
                f.board.as_deref().unwrap_or("no board")
            );
        }
        let mut mine = Vec::new();
        for c in f.pareto() {
            let b = f
                .on_board(c)
                .with_context(|| format!("`{label}`: a front point has no board figures"))?;
            mine.push(BoardPoint {
                search: label.clone(),
                plan: c.plan.clone(),
                bops: c.bops,
                insns: b.insns,
                ms: b.ms,
                uj: b.uj,
                flash: b.flash,
                ram: b.ram,
                val_accuracy: c.val_accuracy,
                test_accuracy: c.test_accuracy,
                pareto_on_board: false,
            });
        }
        let mut bad = 0;
        let mut pairs = 0;
        for i in 0..mine.len() {
            for j in i + 1..mine.len() {
                let (a, b) = (&mine[i], &mine[j]);
                pairs += 1;
                if (a.bops - b.bops) * (a.insns - b.insns) < 0.0 {
                    bad += 1;
                }
            }
        }
        discordant.push((label.clone(), bad, pairs));
        points.extend(mine);
    }
    let pts: Vec<(f64, f64)> = points.iter().map(|p| (p.insns, p.val_accuracy)).collect();
    for i in mps::pareto(&pts) {
        points[i].pareto_on_board = true;
    }
    Ok(BoardFronts {
        board,
        points,
        discordant,
    })
}

impl BoardFronts {
    /// The table and the disagreement lines, Markdown.
    pub fn markdown(&self) -> String {
        let ms = self.points.iter().any(|p| p.ms.is_some());
        let uj = self.points.iter().any(|p| p.uj.is_some());
        let mut m = String::new();
        let _ = writeln!(
            m,
            "| search | weight bits | input bits | MBOPs | instructions (M) |{}{} flash (B) | RAM (B) | validation | test | Pareto on {} |",
            if ms { " ms |" } else { "" },
            if uj { " uJ |" } else { "" },
            self.board
        );
        let _ = writeln!(
            m,
            "|---|---|---|---:|---:|{}{}---:|---:|---:|---:|---|",
            if ms { "---:|" } else { "" },
            if uj { "---:|" } else { "" }
        );
        for p in &self.points {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {:.3} | {:.3} |{}{} {} | {} | {:.2} % | {:.2} % | {} |",
                p.search,
                join(&p.plan.weight_bits),
                join(&p.plan.act_bits),
                p.bops / 1e6,
                p.insns / 1e6,
                match p.ms {
                    Some(v) if ms => format!(" {v:.3} |"),
                    _ if ms => " - |".into(),
                    _ => String::new(),
                },
                match p.uj {
                    Some(v) if uj => format!(" {v:.1} |"),
                    _ if uj => " - |".into(),
                    _ => String::new(),
                },
                p.flash,
                p.ram,
                100.0 * p.val_accuracy,
                100.0 * p.test_accuracy,
                if p.pareto_on_board { "yes" } else { "no" }
            );
        }
        let _ = writeln!(m);
        for (label, bad, pairs) in &self.discordant {
            let _ = writeln!(
                m,
                "- {label}: {bad} of {pairs} pairs of its points are ordered one way by BOPs and the other by instructions on {}.",
                self.board
            );
        }
        let _ = writeln!(
            m,
            "- Pareto-optimal on {} (instructions against validation accuracy, over every search's points): {}.",
            self.board,
            {
                let mut v: Vec<String> = Vec::new();
                for (label, _, _) in &self.discordant {
                    let n = self
                        .points
                        .iter()
                        .filter(|p| &p.search == label && p.pareto_on_board)
                        .count();
                    let of = self.points.iter().filter(|p| &p.search == label).count();
                    v.push(format!("{n} of {of} points of {label}"));
                }
                v.join(", ")
            }
        );
        m
    }

    /// Test accuracy against time on the board (instructions on an emulated board), one
    /// series per search, as an SVG.
    pub fn plot(&self, path: &Path, title: &str) -> Result<()> {
        let ms = self.points.iter().all(|p| p.ms.is_some());
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for p in &self.points {
            let x = if ms {
                p.ms.unwrap_or(0.0)
            } else {
                p.insns / 1e6
            };
            match series.iter_mut().find(|(n, _)| *n == p.search) {
                Some((_, v)) => v.push((x, p.test_accuracy)),
                None => series.push((p.search.clone(), vec![(x, p.test_accuracy)])),
            }
        }
        for (_, v) in &mut series {
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        let x_label = if ms {
            format!(
                "ms per inference on {} (measured costs, 1 instruction per cycle)",
                self.board
            )
        } else {
            format!("million instructions on {} (measured costs)", self.board)
        };
        crate::figures::plot(path, title, &x_label, &series, false)
    }
}

fn join(v: &[u8]) -> String {
    v.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
