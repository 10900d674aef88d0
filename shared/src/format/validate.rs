//! Validation of a model file ([`ModelFile::parse`] runs it once): the counts, every tensor
//! and layer record, every array's place and alignment, the accumulator and membrane bounds,
//! and the arena plan. After it succeeds, reading any record cannot fail.

use super::*;

impl ModelFile<'_> {
    pub(super) fn validate(&self) -> Result<(), FormatError> {
        let h = &self.header;
        let layers = h.layers as usize;
        if layers == 0 || layers > MAX_LAYERS || h.tensors as usize != layers + 1 {
            return Err(FormatError::Counts);
        }
        let b = self.bytes;
        let tt = rd_u32(b, hf::TENSOR_TABLE) as usize;
        let lt = rd_u32(b, hf::LAYER_TABLE) as usize;
        let dt = rd_u32(b, hf::DATA) as usize;
        if tt != HEADER_LEN || lt != self.layer_table() || dt != self.data_start() || dt > b.len() {
            return Err(FormatError::Tables);
        }
        for i in 0..h.tensors as usize {
            self.validate_tensor(i)?;
        }
        let mut spiking = false;
        let mut peak_scratch = 0u32;
        for i in 0..layers {
            self.validate_layer(i)?;
            let l = self.layer(i);
            spiking |= l.flags & LAYER_FLAG_SPIKING != 0;
            peak_scratch = peak_scratch.max(l.scratch_bytes);
        }
        if spiking != (h.flags & HEADER_FLAG_SPIKING != 0) {
            return Err(FormatError::HeaderFlags);
        }
        if peak_scratch != h.peak_scratch_bytes {
            return Err(FormatError::ArenaSummary);
        }
        // Before anything is sized from it: the arena within the documented limit.
        if h.arena_bytes > MAX_ARENA_BYTES {
            return Err(FormatError::ArenaSize {
                declared: h.arena_bytes,
                needed: MAX_ARENA_BYTES,
            });
        }
        self.validate_arena()
    }

    fn validate_tensor(&self, i: usize) -> Result<(), FormatError> {
        let index = i as u16;
        let err = |field| Err(FormatError::Tensor { index, field });
        let o = HEADER_LEN + i * TENSOR_RECORD_LEN;
        let t = tensor_at(self.bytes, i);
        let s = t.shape;
        if s.h == 0 || s.w == 0 || s.c == 0 || s.len() > MAX_TENSOR_ELEMS {
            return err(TensorField::Shape);
        }
        let Some(dtype) = Dtype::from_u8(rd_u8(self.bytes, o + tf::DTYPE)) else {
            return err(TensorField::Dtype);
        };
        match dtype {
            Dtype::Code if t.levels == 0 => return err(TensorField::Levels),
            Dtype::Acc32 if t.levels != 0 => return err(TensorField::Levels),
            // Only the network output may hold i32; the last layer's checks tie it to the flag.
            Dtype::Acc32 if i != self.layer_count() => return err(TensorField::Dtype),
            _ => {}
        }
        if !(t.scale.is_finite() && t.scale > 0.0) {
            return err(TensorField::Scale);
        }
        if i == 0 {
            if t.arena_offset != NONE {
                return err(TensorField::ArenaOffset);
            }
        } else if t.arena_offset != NONE {
            let end = t.arena_offset as u64 + t.bytes() as u64;
            if end > self.header.arena_bytes as u64 {
                return err(TensorField::ArenaOffset);
            }
        }
        Ok(())
    }

    fn validate_layer(&self, i: usize) -> Result<(), FormatError> {
        let index = i as u16;
        let err = |field| Err(FormatError::Layer { index, field });
        let b = self.bytes;
        let o = self.layer_table() + i * LAYER_RECORD_LEN;
        let Some(kind) = LayerKind::from_u8(rd_u8(b, o + lf::KIND)) else {
            return err(LayerField::Kind);
        };
        let flags = rd_u8(b, o + lf::FLAGS);
        let l = self.layer(i);
        let out = self.tensor(i + 1);
        let last = i + 1 == self.layer_count();
        let raw = flags & LAYER_FLAG_RAW_OUTPUT != 0;
        let spiking = flags & LAYER_FLAG_SPIKING != 0;

        if flags & !LAYER_FLAGS_KNOWN != 0
            || (flags & LAYER_FLAG_BIAS != 0 && !(kind.has_weights() || kind == LayerKind::Add))
            || (spiking && (!kind.has_weights() || raw))
            || (raw && !kind.requantizes())
        {
            return err(LayerField::Flags);
        }
        if Align::from_u8(rd_u8(b, o + lf::ALIGN)).is_none() {
            return err(LayerField::Align);
        }
        // The input density's byte and the three reserved bytes after it, read as one word.
        if rd_u32(b, o + lf::INPUT_DENSITY) >> 8 != 0 {
            return err(LayerField::Reserved);
        }
        if rd_u8(b, o + lf::INPUT_DENSITY) != 0 && !kind.has_weights() {
            return err(LayerField::InputDensity);
        }
        let membrane_shift = rd_u8(b, o + lf::MEMBRANE_SHIFT);
        if (!spiking && membrane_shift != 0) || membrane_shift > MAX_MEMBRANE_SHIFT {
            return err(LayerField::MembraneShift);
        }
        // Inputs: earlier tensors holding codes.
        let in_ok = |t: u16| (t as usize) <= i && self.tensor(t as usize).dtype == Dtype::Code;
        if !in_ok(l.input) {
            return err(LayerField::Input);
        }
        let second = if kind == LayerKind::Add {
            if l.input2 == NO_TENSOR || !in_ok(l.input2) {
                return err(LayerField::SecondInput);
            }
            Some(self.tensor(l.input2 as usize).shape)
        } else {
            if l.input2 != NO_TENSOR {
                return err(LayerField::SecondInput);
            }
            None
        };
        if !kind.has_window() && l.window != Window::default() {
            return err(LayerField::Window);
        }
        if kind != LayerKind::Conv2d && l.groups != 1 {
            return err(LayerField::Groups);
        }
        let g = self.geometry(i);
        g.check(second)
            .map_err(|error| FormatError::Shape { index, error })?;

        // Output tensor.
        let input = self.tensor(l.input as usize);
        let out_ok = match (raw, out.dtype) {
            (true, Dtype::Acc32) => last,
            (false, Dtype::Code) => true,
            _ => false,
        };
        let passthrough_ok = kind.requantizes()
            || (out.levels == input.levels && out.scale.to_bits() == input.scale.to_bits());
        if !out_ok || !passthrough_ok {
            return err(LayerField::Output);
        }
        if l.timesteps == 0 || (spiking && out.levels as u16 != l.timesteps) {
            return err(LayerField::Timesteps);
        }
        if (kind != LayerKind::Add && l.add_weights != [0, 0])
            || ((!kind.requantizes() || raw || spiking) && l.offset != 0)
        {
            return err(LayerField::Constants);
        }

        // Arrays.
        let c = g.channels();
        if kind.has_weights() {
            if !pack::valid_bits(l.weight_bits) {
                return err(LayerField::WeightBits);
            }
            if l.weights.is_empty() {
                return err(LayerField::Weights);
            }
        } else {
            if l.weight_bits != 0 {
                return err(LayerField::WeightBits);
            }
            if rd_u32(b, o + lf::array(lf::WEIGHTS)) != NONE {
                return err(LayerField::Weights);
            }
        }
        let present = |off: usize| rd_u32(b, o + off) != NONE;
        if (flags & LAYER_FLAG_BIAS != 0) != l.bias.is_some() || (l.bias.is_none() && present(32)) {
            return err(LayerField::Bias);
        }
        let rq = kind.requantizes() && !raw && !spiking;
        if rq {
            if l.multipliers.len() != c || l.multipliers.iter().any(|m| m < 0) {
                return err(LayerField::Multiplier);
            }
            if l.shifts.len() != c
                || l.shifts
                    .iter()
                    .any(|&s| !(MIN_SHIFT..=MAX_SHIFT).contains(&(s as i8)))
            {
                return err(LayerField::Shift);
            }
        } else {
            if present(36) {
                return err(LayerField::Multiplier);
            }
            if present(40) {
                return err(LayerField::Shift);
            }
        }
        match l.spiking {
            Some(s) => {
                if s.threshold.iter().any(|t| t <= 0) {
                    return err(LayerField::Threshold);
                }
            }
            None if spiking => {
                let th_ok = array(
                    b,
                    self.data_start(),
                    rd_u32(b, o + lf::array(lf::THRESHOLDS)),
                    c * 4,
                    true,
                )
                .is_some();
                return err(if th_ok {
                    LayerField::InitialPotential
                } else {
                    LayerField::Threshold
                });
            }
            None => {
                if present(44) {
                    return err(LayerField::Threshold);
                }
                if present(48) {
                    return err(LayerField::InitialPotential);
                }
            }
        }
        if accumulator_bound(&l, &g, input.levels, self.tensor(l.input2 as usize).levels)
            > i32::MAX as i64
        {
            return err(LayerField::Accumulator);
        }
        if membrane_bound(&l, &g, input.levels) > i32::MAX as i64 {
            return err(LayerField::Membrane);
        }
        // Scratch inside the arena (overlap with live tensors is checked with the arena plan).
        match (l.scratch_bytes, l.scratch_offset) {
            (0, NONE) => {}
            (0, _) | (_, NONE) => return err(LayerField::Scratch),
            (n, off) => {
                if off as u64 + n as u64 > self.header.arena_bytes as u64 {
                    return err(LayerField::Scratch);
                }
            }
        }
        // A flatten moves no data: its output lives where its input does.
        if kind == LayerKind::Flatten {
            if out.arena_offset != input.arena_offset {
                return Err(FormatError::Tensor {
                    index: index + 1,
                    field: TensorField::ArenaOffset,
                });
            }
        } else if out.arena_offset == NONE {
            return Err(FormatError::Tensor {
                index: index + 1,
                field: TensorField::ArenaOffset,
            });
        }
        Ok(())
    }

    /// Check the arena plan: tensors that are live at the same step do not overlap, scratch does
    /// not overlap what is live during its layer, and the header's summary agrees.
    fn validate_arena(&self) -> Result<(), FormatError> {
        let n = self.header.tensors as usize;
        let layers = self.layer_count();
        // root[t]: the tensor whose memory t uses (a flatten shares its input's).
        // first/last: steps at which the root's memory is live.
        let mut root = [0u16; MAX_TENSORS];
        let mut first = [0u16; MAX_TENSORS];
        let mut last = [0u16; MAX_TENSORS];
        for t in 0..n {
            root[t] = t as u16;
            first[t] = t.saturating_sub(1) as u16;
            last[t] = first[t];
        }
        for i in 0..layers {
            let l = self.layer(i);
            if l.kind == LayerKind::Flatten {
                root[i + 1] = root[l.input as usize];
            }
            for inp in [l.input, l.input2] {
                if let Some(&r) = root.get(inp as usize) {
                    last[r as usize] = last[r as usize].max(i as u16);
                }
            }
        }
        // The network output is live until the end.
        let out_root = root[layers] as usize;
        last[out_root] = layers as u16;
        let range = |t: usize| {
            let info = self.tensor(t);
            (
                info.arena_offset as u64,
                info.arena_offset as u64 + info.bytes() as u64,
            )
        };
        let in_arena = |t: usize| root[t] as usize == t && self.tensor(t).arena_offset != NONE;
        // In-place layers: over an arena input that only they read, the output far enough
        // below it (or clear of it). That pair is exempt from the overlap check below.
        for i in 0..layers {
            let l = self.layer(i);
            if l.in_place_rows == 0 {
                continue;
            }
            let r = root[l.input as usize] as usize;
            let second = root.get(l.input2 as usize).map(|&t| t as usize);
            let (inp, out) = (self.tensor(r), self.tensor(i + 1));
            let row = |t: &TensorInfo| t.row_bytes() as u64;
            let g = self.geometry_of(&l, i);
            let shift =
                crate::band::in_place_shift(&g, l.in_place_rows as u16, row(&inp), row(&out));
            let (i0, i1) = range(r);
            let (o0, o1) = range(i + 1);
            let placed = shift.is_some_and(|d| o0 + d <= i0 || o1 <= i0 || i1 <= o0);
            if !in_arena(r)
                || !in_arena(i + 1)
                || last[r] as usize != i
                || (l.kind == LayerKind::Add && second == Some(r))
                || !placed
            {
                return Err(FormatError::Layer {
                    index: i as u16,
                    field: LayerField::InPlace,
                });
            }
        }
        let in_place_pair = |a: usize, bt: usize| {
            let l = self.layer(bt - 1);
            l.in_place_rows != 0 && root[l.input as usize] as usize == a
        };
        for a in 0..n {
            if !in_arena(a) {
                continue;
            }
            let (a0, a1) = range(a);
            for bt in a + 1..n {
                if !in_arena(bt) {
                    continue;
                }
                let live_together = first[a] <= last[bt] && first[bt] <= last[a];
                let (b0, b1) = range(bt);
                if live_together && a0 < b1 && b0 < a1 && !in_place_pair(a, bt) {
                    return Err(FormatError::ArenaOverlap {
                        a: a as u16,
                        b: bt as u16,
                    });
                }
            }
        }
        let mut peak = 0u64;
        for i in 0..layers {
            let l = self.layer(i);
            let mut live = l.scratch_bytes as u64;
            let (s0, s1) = (
                l.scratch_offset as u64,
                l.scratch_offset as u64 + l.scratch_bytes as u64,
            );
            for t in 0..n {
                if !in_arena(t) || first[t] as usize > i || (last[t] as usize) < i {
                    continue;
                }
                let (t0, t1) = range(t);
                live += t1 - t0;
                if l.scratch_bytes > 0 && t0 < s1 && s0 < t1 {
                    return Err(FormatError::Layer {
                        index: i as u16,
                        field: LayerField::Scratch,
                    });
                }
            }
            peak = peak.max(live);
        }
        if peak != self.header.peak_live_bytes as u64 {
            return Err(FormatError::ArenaSummary);
        }
        // The arena is exactly what the plan needs: the end of the last tensor or scratch in it.
        let mut needed = 0u64;
        for t in 0..n {
            if in_arena(t) {
                needed = needed.max(range(t).1);
            }
        }
        for i in 0..layers {
            let l = self.layer(i);
            if l.scratch_bytes > 0 {
                needed = needed.max(l.scratch_offset as u64 + l.scratch_bytes as u64);
            }
        }
        if self.header.arena_bytes as u64 != needed {
            return Err(FormatError::ArenaSize {
                declared: self.header.arena_bytes,
                needed: needed.min(u32::MAX as u64) as u32,
            });
        }
        Ok(())
    }
}

/// The largest |accumulator| layer `l` can produce for inputs with codes up to `levels` (and
/// `levels2` for an add's second input): bias + fan-in x largest code x largest |weight| for
/// conv and dense, the window or plane sum for pools, the two weighted terms for an add.
pub fn accumulator_bound(l: &LayerView<'_>, g: &Geometry, levels: u8, levels2: u8) -> i64 {
    let code = levels as i64;
    match l.kind {
        LayerKind::Conv2d | LayerKind::Dense => {
            let channels = g.channels().max(1) as u64;
            let fan_in = (g.weight_count() / channels) as i64;
            let w_max = 1i64 << (l.weight_bits.clamp(1, 8) - 1);
            // A spiking layer adds its bias to the membrane, not to the accumulator.
            let bias = match l.spiking {
                Some(_) => 0,
                None => l
                    .bias
                    .map_or(0, |b| b.iter().map(|v| (v as i64).abs()).max().unwrap_or(0)),
            };
            bias.saturating_add(fan_in.saturating_mul(code).saturating_mul(w_max))
        }
        LayerKind::AvgPool => g.window.kh as i64 * g.window.kw as i64 * code,
        LayerKind::GlobalAvgPool => (g.input.h as i64 * g.input.w as i64).saturating_mul(code),
        LayerKind::Add => {
            let bias = l
                .bias
                .map_or(0, |b| b.iter().map(|v| (v as i64).abs()).max().unwrap_or(0));
            code * (l.add_weights[0] as i64).abs()
                + levels2 as i64 * (l.add_weights[1] as i64).abs()
                + bias
        }
        LayerKind::MaxPool | LayerKind::Flatten => 0,
    }
}

/// The largest |membrane potential| a spiking layer can reach for inputs with codes up to
/// `levels`: `max|v0| + T * max|current| + max theta`, with the current
/// `(acc << shift) + bias` (see [`crate::snn`]); 0 for a layer that does not spike.
pub fn membrane_bound(l: &LayerView<'_>, g: &Geometry, levels: u8) -> i64 {
    let Some(s) = l.spiking else {
        return 0;
    };
    let channels = g.channels().max(1) as u64;
    let fan_in = (g.weight_count() / channels) as i64;
    let w_max = 1i64 << (l.weight_bits.clamp(1, 8) - 1);
    let max_abs = |a: Option<I32s<'_>>| {
        a.map_or(0, |a| a.iter().map(|v| (v as i64).abs()).max().unwrap_or(0))
    };
    let acc = fan_in.saturating_mul(levels as i64).saturating_mul(w_max);
    let current = acc
        .saturating_mul(1i64 << s.shift.min(MAX_MEMBRANE_SHIFT))
        .saturating_add(max_abs(l.bias));
    max_abs(Some(s.v0))
        .saturating_add((l.timesteps as i64).saturating_mul(current))
        .saturating_add(max_abs(Some(s.threshold)))
}

/// Bytes of packed weights a layer with geometry `g` has at `bits`, or `None` when the weight
/// count exceeds [`MAX_TENSOR_ELEMS`] or the layer has no weights.
pub fn weight_bytes(g: &Geometry, bits: u8) -> Option<usize> {
    let n = g.weight_count();
    if n == 0 || n > MAX_TENSOR_ELEMS as u64 {
        return None;
    }
    pack::packed_len(n as usize, bits)
}
