//! SSQL's report over evaluation results: Table 11/12-style tables of accuracies at every bit
//! width, the drops from full precision, SSQL's target (its drop at most half the baseline's),
//! pairs of runs that differ only in the quantized branch, and means over seeds.

use crate::data::DatasetName;
use crate::ssql::eval::{Bits, EvalResult, Point};

/// Accuracy at `bits` in `points`, if evaluated.
fn at(points: &[Point], bits: Bits) -> Option<f64> {
    points.iter().find(|p| p.bits == bits).map(|p| p.accuracy)
}

/// The drop from full precision at `bits`, in points.
pub fn drop_at(points: &[Point], bits: Bits) -> Option<f64> {
    Some(at(points, Bits::Float)? - at(points, bits)?)
}

/// How the tables name an evaluation: its pretraining method, "BN per bits" when its
/// post-training quantization re-estimated BatchNorm at each bit width, "edges Na" when it
/// kept the edge activations at N bits, "MSE clip" when its ranges were MSE clips, and "head
/// per bits" when each bit width trained its own linear head.
fn label(r: &EvalResult) -> String {
    let mut l = r.method.clone();
    if protocol(r) == crate::ssql::Protocol::Official && !l.contains("official") {
        l.push_str(" [official PTQ]");
    }
    if r.config.bn_per_bits {
        l.push_str(" [BN per bits]");
    }
    if let Some(b) = r.config.edge_act_bits {
        l.push_str(&format!(" [edges {b}a]"));
    }
    if r.config.mse_clip {
        l.push_str(" [MSE clip]");
    }
    if r.config.head_per_bits {
        l.push_str(" [head per bits]");
    }
    l
}

/// The baseline evaluated the same way as the SSQL evaluation `q`: the same framework without
/// SSQL, the same pretraining and evaluation sets and the same post-training quantization;
/// the one pretrained with `q`'s seed when there is one.
fn baseline_of<'a>(q: &EvalResult, results: &'a [EvalResult]) -> Option<&'a EvalResult> {
    let (framework, notes) = q.method.split_once("+SSQL")?;
    let base_name = if notes.starts_with(" (official") {
        format!("{framework} (official)")
    } else {
        framework.to_string()
    };
    let same = |r: &&EvalResult| {
        r.method == base_name
            && protocol(r) == protocol(q)
            && r.pretrained_on == q.pretrained_on
            && r.evaluated_on == q.evaluated_on
            && r.config.bn_per_bits == q.config.bn_per_bits
            && r.config.mse_clip == q.config.mse_clip
            && r.config.head_per_bits == q.config.head_per_bits
            && r.config.edge_act_bits == q.config.edge_act_bits
            && (r.pretraining == q.pretraining
                || r.pretraining.is_none()
                || q.pretraining.is_none())
    };
    results
        .iter()
        .filter(same)
        .find(|r| r.pretrain_seed.is_some() && r.pretrain_seed == q.pretrain_seed)
        .or_else(|| results.iter().find(same))
}

/// The quantization protocol an evaluation used (bitspike's when it did not record one).
fn protocol(r: &EvalResult) -> crate::ssql::Protocol {
    r.config.protocol.unwrap_or_default()
}

/// SSQL's target on drops from full precision: at most half of the baseline's (or none).
fn halves(ssql: f64, baseline: f64) -> bool {
    ssql <= 0.5 * baseline.max(0.0) || ssql <= 0.0
}

/// Whether SSQL evaluation `q` meets the target against baseline `b`: its linear-evaluation
/// drops at 4w4a and 3w3a both at most half of the baseline's ([`halves`]).
fn pair_meets_target(b: &EvalResult, q: &EvalResult) -> bool {
    [
        Bits::Quantized { w: 4, a: 4 },
        Bits::Quantized { w: 3, a: 3 },
    ]
    .iter()
    .all(|&x| match (drop_at(&q.linear, x), drop_at(&b.linear, x)) {
        (Some(dq), Some(db)) => halves(dq, db),
        _ => false,
    })
}

/// `v`, with the values that print as -0.00 printed as 0.00.
fn unsigned_zero(v: f64) -> f64 {
    if v.abs() < 0.005 {
        0.0
    } else {
        v
    }
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() < 2 {
        0.0
    } else {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    };
    (mean, sd)
}

/// What the drop table compares: the pretraining and evaluation sets, the baseline's and SSQL's
/// labels.
type PairKey = (DatasetName, DatasetName, String, String);

/// The (baseline, SSQL) pairs of evaluations compared under one key, one pair per seed.
type PairGroup<'a> = (PairKey, Vec<(&'a EvalResult, &'a EvalResult)>);

/// The tables over pretraining seeds: each evaluation's linear accuracy as mean and standard
/// deviation over the encoders pretrained the same way with different seeds (Table 12
/// layout), and each SSQL-against-baseline comparison of the drop table over its seeds: mean
/// drops, the ratio of the mean drops, whether the means meet the target, and in how many
/// seeds' pairs it is met.
fn over_seeds(
    results: &[EvalResult],
    groups: &[PairGroup<'_>],
    bits: &[Bits],
    named: &dyn Fn(&EvalResult) -> String,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let seeds_of = |rs: &[&EvalResult]| {
        rs.iter()
            .map(|r| r.pretrain_seed.map_or("-".into(), |x| x.to_string()))
            .collect::<Vec<String>>()
            .join(", ")
    };
    let stat = |v: Vec<f64>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            let (m, sd) = mean_sd(&v);
            format!("{:.2} ± {sd:.2}", unsigned_zero(m))
        }
    };
    let _ = writeln!(
        s,
        "\n## Over pretraining seeds: linear evaluation, test accuracy %, mean ± standard deviation (Table 12 layout)\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | seeds | {} |",
        bits.iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|---|{}", "---|".repeat(bits.len()));
    let mut done: Vec<(DatasetName, DatasetName, String)> = Vec::new();
    for r in results {
        let key = (r.pretrained_on, r.evaluated_on, named(r));
        if done.contains(&key) {
            continue;
        }
        let same: Vec<&EvalResult> = results
            .iter()
            .filter(|x| (x.pretrained_on, x.evaluated_on, named(x)) == key)
            .collect();
        done.push(key);
        if same.len() < 2 {
            continue;
        }
        let cells: Vec<String> = bits
            .iter()
            .map(|b| stat(same.iter().filter_map(|x| at(&x.linear, *b)).collect()))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.pretrained_on.as_str(),
            r.evaluated_on.as_str(),
            named(r),
            seeds_of(&same),
            cells.join(" | ")
        );
    }
    let q44 = Bits::Quantized { w: 4, a: 4 };
    let q33 = Bits::Quantized { w: 3, a: 3 };
    let _ = writeln!(
        s,
        "\n## Accuracy drop over pretraining seeds, linear evaluation (points, mean ± standard deviation)\n\n\
         Ratio: SSQL's mean drop over the baseline's. Target met on the means: both ratios at \
         most 0.5; per seed: the pairs of the table above that meet it.\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | baseline | SSQL | seeds (baseline; SSQL) | baseline 4w4a | SSQL 4w4a | baseline 3w3a | SSQL 3w3a | ratio 4w4a | ratio 3w3a | target met on the means | per seed |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((pre, on, bl, ql), pairs) in groups {
        // Each evaluation once, however many pairs it is in.
        let mut bs: Vec<&EvalResult> = Vec::new();
        let mut qs: Vec<&EvalResult> = Vec::new();
        for (b, q) in pairs {
            if !bs.iter().any(|x| std::ptr::eq(*x, *b)) {
                bs.push(b);
            }
            if !qs.iter().any(|x| std::ptr::eq(*x, *q)) {
                qs.push(q);
            }
        }
        let drops = |rs: &[&EvalResult], bits| -> Vec<f64> {
            rs.iter().filter_map(|r| drop_at(&r.linear, bits)).collect()
        };
        let mean = |v: Vec<f64>| mean_sd(&v).0;
        // A ratio only of a baseline drop there is (at least 0.01 points).
        let ratio = |bits| {
            let db = mean(drops(&bs, bits));
            if db >= 0.01 {
                mean(drops(&qs, bits)) / db
            } else {
                f64::NAN
            }
        };
        let met_on_means = [q44, q33].iter().all(|&x| {
            let (dq, db) = (mean(drops(&qs, x)), mean(drops(&bs, x)));
            dq.is_finite() && db.is_finite() && halves(dq, db)
        });
        let per_seed = pairs
            .iter()
            .filter(|(b, q)| pair_meets_target(b, q))
            .count();
        let r2 = |v: f64| {
            if v.is_finite() {
                format!("{:.2}", unsigned_zero(v))
            } else {
                "-".into()
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}; {} | {} | {} | {} | {} | {} | {} | {} | {} of {} |",
            pre.as_str(),
            on.as_str(),
            bl,
            ql,
            seeds_of(&bs),
            seeds_of(&qs),
            stat(drops(&bs, q44)),
            stat(drops(&qs, q44)),
            stat(drops(&bs, q33)),
            stat(drops(&qs, q33)),
            r2(ratio(q44)),
            r2(ratio(q33)),
            if met_on_means { "yes" } else { "no" },
            per_seed,
            pairs.len()
        );
    }
    s
}

/// Markdown tables of evaluations: the layout of the appendix's Table 11 (linear evaluation and
/// fine-tuning at every bit width, per evaluation set and method), the drop from full
/// precision with SSQL's against its baseline's (Table 12's comparison), weight statistics
/// (Fig. 7) and LSQ from each network. With encoders pretrained with several seeds, rows name
/// their seed, each SSQL encoder is compared with the baseline of its seed, and tables over
/// the seeds follow the drop table ([`mean_sd`]).
pub fn report(results: &[EvalResult]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let bits: Vec<Bits> = {
        let mut b: Vec<Bits> = Vec::new();
        for r in results {
            for p in r.linear.iter().chain(&r.finetune) {
                if !b.contains(&p.bits) {
                    b.push(p.bits);
                }
            }
        }
        b
    };
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", unsigned_zero(v)));
    // With evaluations of encoders pretrained with different seeds, rows name their seed.
    // With encoders pretrained with different settings, rows name the settings too.
    let several =
        |f: &dyn Fn(&EvalResult) -> String| results.iter().any(|r| f(r) != f(&results[0]));
    let several_seeds = several(&|r| format!("{:?}", r.pretrain_seed));
    let several_pretrainings = several(&|r| format!("{:?}", r.pretraining));
    let named = |r: &EvalResult| match (several_pretrainings, &r.pretraining) {
        (true, Some(p)) => format!("{} · {p}", label(r)),
        _ => label(r),
    };
    let shown = |r: &EvalResult| match (several_seeds, r.pretrain_seed) {
        (false, _) => named(r),
        (true, Some(seed)) => format!("{} · seed {seed}", named(r)),
        (true, None) => format!("{} · seed -", named(r)),
    };
    let head: Vec<String> = bits.iter().map(|b| b.to_string()).collect();
    let _ = writeln!(
        s,
        "## Linear evaluation and fine-tuning, test accuracy % (Table 11 layout)\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | {} | {} |",
        head.iter()
            .map(|h| format!("linear {h}"))
            .collect::<Vec<_>>()
            .join(" | "),
        head.iter()
            .map(|h| format!("fine-tuned {h}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|{}", "---|".repeat(2 * bits.len()));
    for r in results {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r.pretrained_on.as_str(),
            r.evaluated_on.as_str(),
            shown(r),
            bits.iter()
                .map(|b| cell(at(&r.linear, *b)))
                .collect::<Vec<_>>()
                .join(" | "),
            bits.iter()
                .map(|b| cell(at(&r.finetune, *b)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    // SSQL against its baseline: same framework, same sets, same post-training quantization.
    let q44 = Bits::Quantized { w: 4, a: 4 };
    let q33 = Bits::Quantized { w: 3, a: 3 };
    let _ = writeln!(
        s,
        "\n## Accuracy drop from full precision, linear evaluation (points)\n\n\
         Target: SSQL's drop at 4w4a and 3w3a at most half of its baseline's.\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | baseline | SSQL | baseline 4w4a | SSQL 4w4a | baseline 3w3a | SSQL 3w3a | target met |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    // Each pair, grouped by what was compared: (sets, baseline label, SSQL label).
    let mut groups: Vec<PairGroup<'_>> = Vec::new();
    for q in results.iter() {
        let Some(b) = baseline_of(q, results) else {
            continue;
        };
        let d = |r: &EvalResult, bits| drop_at(&r.linear, bits);
        let met = pair_meets_target(b, q);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            q.pretrained_on.as_str(),
            q.evaluated_on.as_str(),
            shown(b),
            shown(q),
            cell(d(b, q44)),
            cell(d(q, q44)),
            cell(d(b, q33)),
            cell(d(q, q33)),
            if met { "yes" } else { "no" }
        );
        let key = (q.pretrained_on, q.evaluated_on, named(b), named(q));
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, pairs)) => pairs.push((b, q)),
            None => groups.push((key, vec![(b, q)])),
        }
    }
    if groups.iter().any(|(_, pairs)| pairs.len() > 1) {
        s.push_str(&over_seeds(results, &groups, &bits, &named));
    }
    let _ = writeln!(
        s,
        "\n## Feature error of the linear-evaluated encoder (centred cosine to full precision / norm ratio)\n"
    );
    let qbits: Vec<Bits> = bits.iter().copied().filter(|b| *b != Bits::Float).collect();
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | {} |",
        qbits
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "|---|---|---|{}", "---|".repeat(qbits.len()));
    for r in results {
        let cells: Vec<String> = qbits
            .iter()
            .map(|b| {
                r.linear
                    .iter()
                    .find(|p| p.bits == *b)
                    .and_then(|p| p.features)
                    .map_or("-".into(), |f| {
                        format!("{:.3} / {:.2}", f.centred_cosine, f.norm_ratio)
                    })
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            r.pretrained_on.as_str(),
            r.evaluated_on.as_str(),
            shown(r),
            cells.join(" | ")
        );
    }
    let _ = writeln!(
        s,
        "\n## Weight distributions of the encoder (mean over its layers; Fig. 7)\n"
    );
    let _ = writeln!(
        s,
        "| pretrained on | evaluated on | method | encoder | range | std | kurtosis | beyond 3 sigma % |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    let mut encoders: Vec<(String, DatasetName)> = Vec::new();
    for r in results {
        // The pretrained encoder once per pretraining run, then each fine-tuned one.
        let first = !encoders.contains(&(shown(r), r.pretrained_on));
        if first {
            encoders.push((shown(r), r.pretrained_on));
        }
        // Trained from scratch, the starting encoder is the random initialisation.
        let start = if r.config.from_scratch {
            "random initialisation"
        } else {
            "pretrained"
        };
        let rows = [
            (start, &r.pretrained_weights, first),
            ("fine-tuned", &r.finetuned_weights, true),
        ];
        for (what, w, show) in rows {
            let Some(m) = w.iter().find(|x| x.layer == "mean").filter(|_| show) else {
                continue;
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.4} | {:.4} | {:.2} | {:.3} |",
                r.pretrained_on.as_str(),
                if what == start {
                    "-"
                } else {
                    r.evaluated_on.as_str()
                },
                shown(r),
                what,
                m.range,
                m.std,
                m.kurtosis,
                100.0 * m.outliers
            );
        }
    }
    if results.iter().any(|r| !r.lsq.is_empty()) {
        let _ = writeln!(
            s,
            "\n## LSQ from the linear-evaluated network (test accuracy % after each epoch)\n"
        );
        let _ = writeln!(
            s,
            "| pretrained on | evaluated on | method | bits | epochs |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|");
        for r in results.iter().filter(|r| !r.lsq.is_empty()) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.pretrained_on.as_str(),
                r.evaluated_on.as_str(),
                shown(r),
                r.config.lsq_bits,
                r.lsq
                    .iter()
                    .map(|a| format!("{a:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::ssql::eval::EvalConfig;

    use super::*;

    /// The table rows of a report's section whose title starts with `title`.
    fn section<'a>(md: &'a str, title: &str) -> Vec<&'a str> {
        md.lines()
            .skip_while(|l| !l.starts_with(title))
            .skip(1)
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with("| fashion-mnist"))
            .collect()
    }

    fn result(method: &str, bn_per_bits: bool, fp: f64, w4a4: f64, w3a3: f64) -> EvalResult {
        edged(method, bn_per_bits, None, fp, w4a4, w3a3)
    }

    fn edged(
        method: &str,
        bn_per_bits: bool,
        edge_act_bits: Option<u8>,
        fp: f64,
        w4a4: f64,
        w3a3: f64,
    ) -> EvalResult {
        let point = |bits, accuracy| Point {
            bits,
            accuracy,
            run: PathBuf::new(),
            features: None,
        };
        EvalResult {
            method: method.into(),
            pretrained_on: DatasetName::FashionMnist,
            evaluated_on: DatasetName::FashionMnist,
            pretrain_run: PathBuf::new(),
            pretrain_seed: None,
            pretraining: None,
            config: EvalConfig {
                bn_per_bits,
                edge_act_bits,
                ..Default::default()
            },
            linear: vec![
                point(Bits::Float, fp),
                point(Bits::Quantized { w: 4, a: 4 }, w4a4),
                point(Bits::Quantized { w: 3, a: 3 }, w3a3),
            ],
            finetune: Vec::new(),
            pretrained_weights: Vec::new(),
            finetuned_weights: Vec::new(),
            lsq: Vec::new(),
            seconds: 0.0,
        }
    }

    /// Each SSQL evaluation is compared with the baseline evaluated by the same post-training
    /// quantization, and the target holds only when both drops are at most half.
    #[test]
    fn the_target_pairs_evaluations_of_the_same_quantization() {
        let _one = crate::seeded();
        let md = report(&[
            result("SimSiam", false, 80.0, 60.0, 30.0),
            result("SimSiam", true, 80.0, 70.0, 60.0),
            result("SimSiam+SSQL", false, 80.0, 71.0, 56.0),
            result("SimSiam+SSQL (float BN)", false, 80.0, 70.0, 50.0),
            result("SimSiam+SSQL", true, 80.0, 76.0, 70.0),
            edged("SimSiam+SSQL", false, Some(8), 80.0, 79.0, 75.0),
            edged("SimSiam", false, Some(8), 80.0, 78.0, 70.0),
            {
                let mut r = edged("SimSiam+SSQL", false, Some(8), 80.0, 79.5, 77.0);
                r.config.mse_clip = true;
                r
            },
            {
                let mut r = edged("SimSiam", false, Some(8), 80.0, 79.0, 74.0);
                r.config.mse_clip = true;
                r
            },
            {
                let mut r = edged("SimSiam+SSQL", false, Some(8), 80.0, 79.0, 76.0);
                r.config.head_per_bits = true;
                r
            },
            {
                let mut r = edged("SimSiam", false, Some(8), 80.0, 78.0, 72.0);
                r.config.head_per_bits = true;
                r
            },
        ]);
        let rows = section(&md, "## Accuracy drop");
        assert_eq!(
            rows,
            [
                "| fashion-mnist | fashion-mnist | SimSiam | SimSiam+SSQL | 20.00 | 9.00 | 50.00 | 24.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam | SimSiam+SSQL (float BN) | 20.00 | 10.00 | 50.00 | 30.00 | no |",
                "| fashion-mnist | fashion-mnist | SimSiam [BN per bits] | SimSiam+SSQL [BN per bits] | 10.00 | 4.00 | 20.00 | 10.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam [edges 8a] | SimSiam+SSQL [edges 8a] | 2.00 | 1.00 | 10.00 | 5.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam [edges 8a] [MSE clip] | SimSiam+SSQL [edges 8a] [MSE clip] | 1.00 | 0.50 | 6.00 | 3.00 | yes |",
                "| fashion-mnist | fashion-mnist | SimSiam [edges 8a] [head per bits] | SimSiam+SSQL [edges 8a] [head per bits] | 2.00 | 1.00 | 8.00 | 4.00 | yes |",
            ]
        );
    }

    /// Over seeds, each SSQL encoder is paired with the baseline of its own seed, and the means,
    /// standard deviations, ratios and the target are taken over the seeds.
    #[test]
    fn seeds_pair_by_seed_and_average() {
        let _one = crate::seeded();
        let seeded = |method: &str, seed: i64, w4a4: f64, w3a3: f64| {
            let mut r = result(method, false, 80.0, w4a4, w3a3);
            r.pretrain_seed = Some(seed);
            r
        };
        let md = report(&[
            seeded("SimSiam", 1, 70.0, 60.0),
            seeded("SimSiam", 2, 68.0, 56.0),
            seeded("SimSiam", 3, 72.0, 58.0),
            seeded("SimSiam+SSQL", 3, 75.0, 66.0),
            seeded("SimSiam+SSQL", 1, 76.0, 70.0),
            seeded("SimSiam+SSQL", 2, 74.0, 71.0),
        ]);
        assert_eq!(
            section(&md, "## Accuracy drop from full precision")[0],
            "| fashion-mnist | fashion-mnist | SimSiam · seed 3 | SimSiam+SSQL · seed 3 | 8.00 | 5.00 | 22.00 | 14.00 | no |"
        );
        assert_eq!(
            section(&md, "## Over pretraining seeds")[0],
            "| fashion-mnist | fashion-mnist | SimSiam | 1, 2, 3 | 80.00 ± 0.00 | 70.00 ± 2.00 | 58.00 ± 2.00 |"
        );
        assert_eq!(
            section(&md, "## Accuracy drop over pretraining seeds"),
            ["| fashion-mnist | fashion-mnist | SimSiam | SimSiam+SSQL | 3, 1, 2; 3, 1, 2 | 10.00 ± 2.00 | 5.00 ± 1.00 | 22.00 ± 2.00 | 11.00 ± 2.65 | 0.50 | 0.50 | yes | 2 of 3 |"]
        );
        // A baseline that loses nothing has no ratio; SSQL losing nothing either meets the target.
        let flat = report(&[
            seeded("SimSiam", 1, 80.0, 80.0),
            seeded("SimSiam", 2, 80.0, 80.0),
            seeded("SimSiam+SSQL", 1, 80.0, 80.0),
            seeded("SimSiam+SSQL", 2, 80.0, 80.0),
        ]);
        assert!(flat.contains(
            "| 1, 2; 1, 2 | 0.00 ± 0.00 | 0.00 ± 0.00 | 0.00 ± 0.00 | 0.00 ± 0.00 | - | - | yes | 2 of 2 |"
        ));
        // One seed: no seed in the names and no tables over seeds.
        let one = report(&[
            seeded("SimSiam", 1, 70.0, 60.0),
            seeded("SimSiam+SSQL", 1, 76.0, 70.0),
        ]);
        assert!(!one.contains("seed 1") && !one.contains("## Over pretraining seeds"));
    }

    /// An SSQL encoder is compared only with a baseline pretrained with the same shared
    /// settings, and the rows name the settings when the report mixes them.
    #[test]
    fn pairs_share_the_pretraining_settings() {
        let _one = crate::seeded();
        let pretrained = |method: &str, pretraining: &str, w4a4: f64, w3a3: f64| {
            let mut r = result(method, false, 80.0, w4a4, w3a3);
            r.pretraining = Some(pretraining.into());
            r
        };
        let md = report(&[
            pretrained("SimSiam", "cnn, 20 epochs", 70.0, 60.0),
            pretrained("SimSiam", "cnn, 12 epochs", 76.0, 72.0),
            pretrained("SimSiam+SSQL", "cnn, 12 epochs", 77.0, 74.0),
        ]);
        let rows = section(&md, "## Accuracy drop");
        assert_eq!(
            rows,
            ["| fashion-mnist | fashion-mnist | SimSiam · cnn, 12 epochs | SimSiam+SSQL · cnn, 12 epochs | 4.00 | 3.00 | 8.00 | 6.00 | no |"]
        );
    }
}
