//! Arena planning (`std`, used by the exporter): where each tensor and each layer's scratch lives
//! in the one static arena the device provides.
//!
//! Liveness: tensor `t` (`t >= 1`) is produced at step `t - 1` and is live until the last step that
//! reads it; the network output is live to the end. A flatten's output shares its input's memory,
//! so the pair is one buffer live over both lifetimes. The network input is read from the caller's
//! buffer and takes no arena. A layer's scratch is live during its own step only.
//!
//! In place: a row-local layer whose input no later layer reads may write its output a few rows
//! below that input and overwrite it as it goes ([`crate::band`]); the input, the output and the
//! chain of in-place layers before form one rigid buffer, each tensor in it live over its own
//! steps. [`plan`] chooses such layers where they make the arena smaller, within a budget of
//! extra instructions.
//!
//! Placement is greedy by size (largest first), each buffer at the lowest 4-aligned offset where
//! it is clear of every placed buffer live at the same steps (the strategy of tflite-micro's
//! greedy planner). The reader checks the result independently
//! ([`crate::format::ModelFile::parse`]).

use crate::format::NONE;
use crate::layer::LayerKind;

/// How many band widths the planner tries for an in-place layer: 1, 2, 4, ... 32 rows.
pub const BAND_CHOICES: usize = 6;

/// One layer as the planner sees it.
#[derive(Clone, Copy, Debug)]
pub struct PlanLayer {
    /// Kind (flatten aliases its input; only row-local kinds may run in place).
    pub kind: LayerKind,
    /// Input tensors.
    pub inputs: [Option<u16>; 2],
    /// Bytes of the tensor it produces.
    pub output_bytes: usize,
    /// Scratch bytes it needs.
    pub scratch_bytes: usize,
    /// When the layer may overwrite its first input as it goes, `2^k` output rows at a time:
    /// entry `k` is how many bytes before the input its output must then start
    /// ([`crate::band::in_place_shift`]); `None` when it may not.
    pub in_place_shifts: [Option<usize>; BAND_CHOICES],
    /// Extra instructions estimated for running in place with `2^k` rows per band
    /// ([`crate::band::overhead`]).
    pub band_overheads: [u64; BAND_CHOICES],
}

/// The arena plan of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Arena offset of every tensor ([`NONE`] for the network input and flattens of it).
    pub tensor_offsets: Vec<u32>,
    /// Arena offset of every layer's scratch ([`NONE`] when it needs none).
    pub scratch_offsets: Vec<u32>,
    /// Output rows per band of each layer that runs in place (its output overlapping its first
    /// input), 0 for the others.
    pub in_place: Vec<u8>,
    /// Bytes of arena needed: the end of the highest placed buffer.
    pub arena_bytes: usize,
    /// The largest sum of live tensor and scratch bytes at any step: a lower bound on the arena
    /// of any plan without in-place layers.
    pub peak_live_bytes: usize,
}

/// Liveness of a model's tensors: the tensor whose memory each uses, and the steps at which
/// that memory is live.
struct Liveness {
    root: Vec<usize>,
    first: Vec<usize>,
    last: Vec<usize>,
}

fn liveness(layers: &[PlanLayer]) -> Liveness {
    let n = layers.len() + 1;
    let mut root: Vec<usize> = (0..n).collect();
    let first: Vec<usize> = (0..n).map(|t| t.saturating_sub(1)).collect();
    let mut last = first.clone();
    for (i, l) in layers.iter().enumerate() {
        if l.kind == LayerKind::Flatten {
            if let Some(inp) = l.inputs[0] {
                root[i + 1] = root[inp as usize];
            }
        }
        for inp in l.inputs.iter().flatten() {
            let r = root[*inp as usize];
            last[r] = last[r].max(i);
        }
    }
    let out_root = root[n - 1];
    last[out_root] = layers.len();
    Liveness { root, first, last }
}

/// Whether layer `i` may run in place: row-local with a shift, over a first input in the arena
/// that no later layer reads and that is not also its second input.
fn may_run_in_place(layers: &[PlanLayer], live: &Liveness, i: usize) -> bool {
    let l = &layers[i];
    let (Some(a), Some(_)) = (l.inputs[0], l.in_place_shifts[0]) else {
        return false;
    };
    let r = live.root[a as usize];
    let second = l.inputs[1].map(|b| live.root[b as usize]);
    crate::band::row_local(l.kind) && r != 0 && live.last[r] == i && second != Some(r)
}

/// Plan the arena for `layers` (layer `i` produces tensor `i + 1`; tensor 0 is the input),
/// running layers in place where that makes the arena smaller, at most `in_place` extra
/// instructions in all (estimated, [`PlanLayer::band_overheads`]); `None`: never.
///
/// In-place layers are chosen greedily: every layer that may run in place does, one row per
/// band; then, one at a time, the layer whose removal leaves the smallest arena is dropped
/// while the arena does not grow. While the estimated extra instructions exceed the budget, the
/// move (a layer's bands doubled, or the layer dropped) that grows the arena least per
/// instruction saved is made. Last, bands are widened as long as the arena does not grow. The
/// plan without in-place layers is kept when it is as small.
pub fn plan(layers: &[PlanLayer], in_place: Option<u64>) -> Plan {
    let live = liveness(layers);
    let none = place(layers, &live, &vec![None; layers.len()]);
    let Some(budget) = in_place else {
        return none;
    };
    // The next wider band layer `i` may run with after `2^k` rows.
    let wider = |i: usize, k: usize| {
        (k + 1..BAND_CHOICES).find(|&w| {
            layers[i]
                .in_place_shifts
                .get(w)
                .copied()
                .flatten()
                .is_some()
        })
    };
    let spent = |on: &[Option<usize>]| -> u64 {
        on.iter()
            .enumerate()
            .filter_map(|(i, k)| k.map(|k| layers[i].band_overheads.get(k).copied().unwrap_or(0)))
            .fold(0u64, |a, b| a.saturating_add(b))
    };
    let mut on: Vec<Option<usize>> = (0..layers.len())
        .map(|i| may_run_in_place(layers, &live, i).then_some(0))
        .collect();
    let mut best = place(layers, &live, &on);
    // Drop in-place layers one at a time, each time the one whose removal leaves the smallest
    // arena, while the arena does not grow.
    loop {
        let mut drop: Option<(usize, Plan)> = None;
        for i in 0..layers.len() {
            if on[i].is_none() {
                continue;
            }
            let k = on[i];
            on[i] = None;
            let p = place(layers, &live, &on);
            on[i] = k;
            if p.arena_bytes <= drop.as_ref().map_or(best.arena_bytes, |d| d.1.arena_bytes) {
                drop = Some((i, p));
            }
        }
        let Some((i, p)) = drop else {
            break;
        };
        on[i] = None;
        best = p;
    }
    // Within the budget: each move doubles a layer's bands or drops it, the one that grows the
    // arena least per estimated instruction saved (the moves only ever widen or drop: bounded).
    while spent(&on) > budget {
        let now = spent(&on);
        let mut pick: Option<(u128, Vec<Option<usize>>, Plan)> = None;
        for i in 0..layers.len() {
            let Some(k) = on[i] else {
                continue;
            };
            let wider = wider(i, k);
            for next in [wider.map(Some), Some(None)].into_iter().flatten() {
                let mut trial = on.clone();
                trial[i] = next;
                let saved = now.saturating_sub(spent(&trial));
                if saved == 0 {
                    continue;
                }
                let p = place(layers, &live, &trial);
                let grown = p.arena_bytes.saturating_sub(best.arena_bytes) as u128;
                // Arena bytes per 2^20 instructions saved, compared without division.
                let score = (grown << 20) / saved as u128;
                if pick.as_ref().is_none_or(|(s, _, _)| score < *s) {
                    pick = Some((score, trial, p));
                }
            }
        }
        let Some((_, trial, p)) = pick else {
            break;
        };
        on = trial;
        best = p;
    }
    if none.arena_bytes <= best.arena_bytes {
        return none;
    }
    for i in 0..layers.len() {
        while let Some(k) = on[i] {
            let Some(w) = wider(i, k) else {
                break;
            };
            on[i] = Some(w);
            let p = place(layers, &live, &on);
            if p.arena_bytes <= best.arena_bytes {
                best = p;
            } else {
                on[i] = Some(k);
                break;
            }
        }
    }
    best
}

/// A buffer's bytes `rel .. rel + size` (relative to the buffer's offset), live at steps
/// `first..=last`.
#[derive(Clone, Copy)]
struct Rect {
    rel: usize,
    size: usize,
    first: usize,
    last: usize,
}

/// What the planner places: a tensor with the in-place chain it heads (one rectangle per
/// tensor, rigid), or a layer's scratch.
struct Body {
    /// The tensor heading the chain, or the layer whose scratch this is.
    tensor: Option<usize>,
    scratch: Option<usize>,
    rects: Vec<Rect>,
    offset: usize,
}

impl Body {
    fn extent(&self) -> usize {
        self.rects.iter().map(|r| r.rel + r.size).max().unwrap_or(0)
    }
}

/// Place every buffer, the layers marked in `on` in place (`2^k` rows per band for `Some(k)`):
/// each such layer's output sits its shift (rounded up to 4 bytes) below its input, the two rigidly together, each live over its
/// own steps only.
///
/// Bodies go largest first (by extent, then by first step), each at the lowest 4-aligned offset
/// where none of its rectangles overlaps a placed rectangle live at the same step: one whose
/// start is 0 or the end of a placed rectangle.
fn place(layers: &[PlanLayer], live: &Liveness, on: &[Option<usize>]) -> Plan {
    let n = layers.len() + 1;
    let Liveness { root, first, last } = live;
    let size = |t: usize| {
        if t == 0 {
            0
        } else {
            layers[t - 1].output_bytes
        }
    };
    // group[t]: the tensor heading t's chain; rel[t]: t's offset in it (normalised below).
    let mut group: Vec<usize> = (0..n).collect();
    let mut rel = vec![0i64; n];
    for (i, l) in layers.iter().enumerate() {
        let shift = on[i].and_then(|k| l.in_place_shifts.get(k).copied().flatten());
        if let (Some(a), Some(d)) = (l.inputs[0], shift) {
            let r = root[a as usize];
            group[i + 1] = group[r];
            rel[i + 1] = rel[r] - d.next_multiple_of(4) as i64;
        }
    }
    let owned = |t: usize| t != 0 && root[t] == t;
    let mut bodies: Vec<Body> = Vec::new();
    let group = &group;
    for g in (1..n).filter(|&g| owned(g) && group[g] == g) {
        let members: Vec<usize> = (1..n).filter(|&t| owned(t) && group[t] == g).collect();
        let low = members.iter().map(|&t| rel[t]).min().unwrap_or(0);
        bodies.push(Body {
            tensor: Some(g),
            scratch: None,
            rects: members
                .iter()
                .map(|&t| Rect {
                    rel: (rel[t] - low) as usize,
                    size: size(t),
                    first: first[t],
                    last: last[t],
                })
                .collect(),
            offset: 0,
        });
        for &t in &members {
            rel[t] -= low;
        }
    }
    for (i, l) in layers.iter().enumerate() {
        if l.scratch_bytes > 0 {
            bodies.push(Body {
                tensor: None,
                scratch: Some(i),
                rects: vec![Rect {
                    rel: 0,
                    size: l.scratch_bytes,
                    first: i,
                    last: i,
                }],
                offset: 0,
            });
        }
    }
    let mut order: Vec<usize> = (0..bodies.len()).collect();
    let start = |b: &Body| b.rects.iter().map(|r| r.first).min().unwrap_or(0);
    order.sort_by_key(|&k| (std::cmp::Reverse(bodies[k].extent()), start(&bodies[k])));
    // Placed rectangles: absolute offset, size, first and last step.
    let mut placed: Vec<Rect> = Vec::new();
    for k in order {
        let b = &bodies[k];
        let mut candidates: Vec<usize> = vec![0];
        for p in &placed {
            let end = (p.rel + p.size).next_multiple_of(4);
            candidates.extend(b.rects.iter().filter_map(|m| end.checked_sub(m.rel)));
        }
        candidates.sort_unstable();
        let fits = |x: usize| {
            b.rects.iter().all(|m| {
                placed.iter().all(|p| {
                    p.last < m.first
                        || m.last < p.first
                        || x + m.rel + m.size <= p.rel
                        || p.rel + p.size <= x + m.rel
                })
            })
        };
        let at = candidates.into_iter().find(|&x| fits(x)).unwrap_or(0);
        bodies[k].offset = at;
        placed.extend(bodies[k].rects.iter().map(|m| Rect {
            rel: at + m.rel,
            ..*m
        }));
    }

    let mut tensor_offsets = vec![NONE; n];
    let mut scratch_offsets = vec![NONE; layers.len()];
    let mut group_offset = vec![0usize; n];
    for b in &bodies {
        if let Some(g) = b.tensor {
            group_offset[g] = b.offset;
        }
        if let Some(s) = b.scratch {
            scratch_offsets[s] = b.offset as u32;
        }
    }
    for t in (1..n).filter(|&t| owned(t)) {
        tensor_offsets[t] = (group_offset[group[t]] + rel[t] as usize) as u32;
    }
    for t in 1..n {
        tensor_offsets[t] = tensor_offsets[root[t]];
    }
    let arena_bytes = placed.iter().map(|p| p.rel + p.size).max().unwrap_or(0);
    let peak_live_bytes = (0..layers.len())
        .map(|step| {
            let tensors: usize = (1..n)
                .filter(|&t| owned(t) && first[t] <= step && step <= last[t])
                .map(size)
                .sum();
            tensors + layers[step].scratch_bytes
        })
        .max()
        .unwrap_or(0);
    Plan {
        tensor_offsets,
        scratch_offsets,
        in_place: on.iter().map(|k| k.map_or(0, |k| 1 << k)).collect(),
        arena_bytes,
        peak_live_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(kind: LayerKind, a: u16, b: Option<u16>, bytes: usize) -> PlanLayer {
        PlanLayer {
            kind,
            inputs: [Some(a), b],
            output_bytes: bytes,
            scratch_bytes: 0,
            in_place_shifts: [None; BAND_CHOICES],
            band_overheads: [0; BAND_CHOICES],
        }
    }

    #[test]
    fn chain_reuses_memory() {
        // in -> 100 -> 50 -> 100: tensor 1 is dead when tensor 3 is made, so 3 can reuse it.
        let p = plan(
            &[
                layer(LayerKind::Conv2d, 0, None, 100),
                layer(LayerKind::Conv2d, 1, None, 50),
                layer(LayerKind::Conv2d, 2, None, 100),
            ],
            Some(0),
        );
        assert_eq!(p.peak_live_bytes, 150);
        assert_eq!(p.arena_bytes, 150);
        assert_eq!(p.tensor_offsets[0], NONE);
        assert_eq!(p.tensor_offsets[1], p.tensor_offsets[3]);
    }

    #[test]
    fn residual_keeps_skip_alive_and_flatten_aliases() {
        // in -> t1 (64) -> t2 (64) -> add(t1, t2) = t3 (64) -> flatten t4.
        let p = plan(
            &[
                layer(LayerKind::Conv2d, 0, None, 64),
                layer(LayerKind::Conv2d, 1, None, 64),
                layer(LayerKind::Add, 1, Some(2), 64),
                layer(LayerKind::Flatten, 3, None, 64),
            ],
            None,
        );
        assert_eq!(p.peak_live_bytes, 192);
        assert_eq!(p.arena_bytes, 192);
        assert_eq!(p.tensor_offsets[4], p.tensor_offsets[3]);
        let mut offs = [
            p.tensor_offsets[1],
            p.tensor_offsets[2],
            p.tensor_offsets[3],
        ];
        offs.sort();
        assert_eq!(offs, [0, 64, 128]);
    }

    /// in -> t1 (64) -> t2 (64) -> t3 (64) -> add(t3, t1) = t4 (64).
    fn residual_block() -> [PlanLayer; 4] {
        [
            layer(LayerKind::Conv2d, 0, None, 64),
            layer(LayerKind::Conv2d, 1, None, 64),
            layer(LayerKind::Conv2d, 2, None, 64),
            layer(LayerKind::Add, 3, Some(1), 64),
        ]
    }

    #[test]
    fn residual_block_runs_in_place() {
        // in -> t1 (64) -> t2 (64) -> t3 (64) -> add(t3, t1) = t4 (64). Without in-place layers
        // t1, t2 and t3 are live together (192 B). Layer 1 reads t1, still needed by the add:
        // not in place. Layer 2 overwrites t2 from 16 B below it, the add overwrites t3 from
        // 8 B below: t1 plus t2, t3 and t4 in one buffer of 64 + 16 + 8 bytes.
        let mut layers = residual_block();
        for (l, d) in layers.iter_mut().zip([0, 16, 16, 8]) {
            l.in_place_shifts[0] = Some(d);
        }
        let off = plan(&layers, None);
        assert_eq!(off.arena_bytes, 192);
        assert_eq!(off.in_place, [0; 4]);
        let p = plan(&layers, Some(u64::MAX));
        assert_eq!(p.in_place, [0, 0, 1, 1]);
        assert_eq!(p.arena_bytes, 64 + 88);
        assert_eq!(p.peak_live_bytes, 192);
        let o = &p.tensor_offsets;
        assert_eq!(o[2] - o[3], 16);
        assert_eq!(o[3] - o[4], 8);
        assert!(o[1] + 64 <= o[4] || o[2] + 64 <= o[1]);
    }

    #[test]
    fn the_budget_limits_in_place_layers() {
        // The residual block above, each in-place layer estimated at 100 extra instructions
        // with one row per band, 10 with two (a wider margin).
        let mut layers = residual_block();
        for (l, d) in layers.iter_mut().zip([0, 16, 16, 8]) {
            l.in_place_shifts[0] = Some(d);
            l.in_place_shifts[1] = Some(2 * d);
            l.band_overheads[0] = 100;
            l.band_overheads[1] = 10;
        }
        let free = plan(&layers, Some(u64::MAX));
        assert_eq!(free.in_place, [0, 0, 1, 1]);
        // 150: one layer's bands doubled (the cheaper arena growth), the other kept.
        let p = plan(&layers, Some(150));
        let spent: u64 = p
            .in_place
            .iter()
            .map(|&r| match r {
                1 => 100,
                2 => 10,
                _ => 0,
            })
            .sum();
        assert!(spent <= 150 && p.in_place.iter().filter(|&&r| r > 0).count() == 2);
        assert!(p.arena_bytes > free.arena_bytes && p.arena_bytes < 192);
        // Nothing affordable: every tensor apart.
        assert_eq!(plan(&layers, Some(5)), plan(&layers, None));
    }

    #[test]
    fn no_in_place_over_the_input_or_a_live_tensor() {
        // The first layer reads the caller's buffer; layer 1's input is read again by layer 2;
        // the add reads one tensor twice.
        let mut layers = [
            layer(LayerKind::Conv2d, 0, None, 64),
            layer(LayerKind::Conv2d, 1, None, 64),
            layer(LayerKind::Conv2d, 1, None, 64),
            layer(LayerKind::Add, 3, Some(3), 64),
        ];
        for l in &mut layers {
            l.in_place_shifts[0] = Some(0);
        }
        let live = liveness(&layers);
        assert!(!may_run_in_place(&layers, &live, 0));
        assert!(!may_run_in_place(&layers, &live, 1));
        assert!(may_run_in_place(&layers, &live, 2));
        assert!(!may_run_in_place(&layers, &live, 3));
    }
}
