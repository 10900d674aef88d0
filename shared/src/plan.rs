//! Arena planning (`std`, used by the exporter): where each tensor and each layer's scratch lives
//! in the one static arena the device provides.
//!
//! Liveness: tensor `t` (`t >= 1`) is produced at step `t - 1` and is live until the last step that
//! reads it; the network output is live to the end. A flatten's output shares its input's memory,
//! so the pair is one buffer live over both lifetimes. The network input is read from the caller's
//! buffer and takes no arena. A layer's scratch is live during its own step only.
//!
//! Placement is greedy by size (largest first), each buffer at the lowest 4-aligned offset clear
//! of every placed buffer whose lifetime overlaps (the strategy of tflite-micro's greedy planner).
//! The reader checks the result independently ([`crate::format::ModelFile::parse`]).

use crate::format::NONE;
use crate::layer::LayerKind;

/// One layer as the planner sees it.
#[derive(Clone, Copy, Debug)]
pub struct PlanLayer {
    /// Kind (only flatten matters: it aliases its input).
    pub kind: LayerKind,
    /// Input tensors.
    pub inputs: [Option<u16>; 2],
    /// Bytes of the tensor it produces.
    pub output_bytes: usize,
    /// Scratch bytes it needs.
    pub scratch_bytes: usize,
}

/// The arena plan of a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Arena offset of every tensor ([`NONE`] for the network input and flattens of it).
    pub tensor_offsets: Vec<u32>,
    /// Arena offset of every layer's scratch ([`NONE`] when it needs none).
    pub scratch_offsets: Vec<u32>,
    /// Bytes of arena needed: the end of the highest placed buffer.
    pub arena_bytes: usize,
    /// The largest sum of live bytes at any step: a lower bound on any plan's arena.
    pub peak_live_bytes: usize,
}

#[derive(Clone, Copy)]
struct Buffer {
    size: usize,
    first: usize,
    last: usize,
    offset: usize,
}

/// Plan the arena for `layers` (layer `i` produces tensor `i + 1`; tensor 0 is the input).
pub fn plan(layers: &[PlanLayer]) -> Plan {
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

    // Buffers: tensors that own memory (not the input, not aliases), then scratch.
    let mut buffers: Vec<(Option<usize>, Option<usize>, Buffer)> = Vec::new();
    for t in 1..n {
        if root[t] == t && root[t] != 0 {
            let b = Buffer {
                size: layers[t - 1].output_bytes,
                first: first[t],
                last: last[t],
                offset: 0,
            };
            buffers.push((Some(t), None, b));
        }
    }
    for (i, l) in layers.iter().enumerate() {
        if l.scratch_bytes > 0 {
            let b = Buffer {
                size: l.scratch_bytes,
                first: i,
                last: i,
                offset: 0,
            };
            buffers.push((None, Some(i), b));
        }
    }
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(buffers[k].2.size), buffers[k].2.first));
    let mut placed: Vec<Buffer> = Vec::new();
    for k in order {
        let mut b = buffers[k].2;
        let mut clash: Vec<&Buffer> = placed
            .iter()
            .filter(|p| p.first <= b.last && b.first <= p.last)
            .collect();
        clash.sort_by_key(|p| p.offset);
        let mut at = 0usize;
        for p in clash {
            if at + b.size <= p.offset {
                break;
            }
            at = at.max((p.offset + p.size).next_multiple_of(4));
        }
        b.offset = at;
        buffers[k].2 = b;
        placed.push(b);
    }

    let mut tensor_offsets = vec![NONE; n];
    let mut scratch_offsets = vec![NONE; layers.len()];
    for (t, s, b) in &buffers {
        if let Some(t) = t {
            tensor_offsets[*t] = b.offset as u32;
        }
        if let Some(s) = s {
            scratch_offsets[*s] = b.offset as u32;
        }
    }
    for t in 1..n {
        tensor_offsets[t] = tensor_offsets[root[t]];
    }
    let arena_bytes = buffers
        .iter()
        .map(|(_, _, b)| b.offset + b.size)
        .max()
        .unwrap_or(0);
    let peak_live_bytes = (0..layers.len())
        .map(|step| {
            buffers
                .iter()
                .filter(|(_, _, b)| b.first <= step && step <= b.last)
                .map(|(_, _, b)| b.size)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    Plan {
        tensor_offsets,
        scratch_offsets,
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
        }
    }

    #[test]
    fn chain_reuses_memory() {
        // in -> 100 -> 50 -> 100: tensor 1 is dead when tensor 3 is made, so 3 can reuse it.
        let p = plan(&[
            layer(LayerKind::Conv2d, 0, None, 100),
            layer(LayerKind::Conv2d, 1, None, 50),
            layer(LayerKind::Conv2d, 2, None, 100),
        ]);
        assert_eq!(p.peak_live_bytes, 150);
        assert_eq!(p.arena_bytes, 150);
        assert_eq!(p.tensor_offsets[0], NONE);
        assert_eq!(p.tensor_offsets[1], p.tensor_offsets[3]);
    }

    #[test]
    fn residual_keeps_skip_alive_and_flatten_aliases() {
        // in -> t1 (64) -> t2 (64) -> add(t1, t2) = t3 (64) -> flatten t4.
        let p = plan(&[
            layer(LayerKind::Conv2d, 0, None, 64),
            layer(LayerKind::Conv2d, 1, None, 64),
            layer(LayerKind::Add, 1, Some(2), 64),
            layer(LayerKind::Flatten, 3, None, 64),
        ]);
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
}
