//! Operation counters that cost nothing when disabled.
//!
//! Kernels report every multiply-accumulate and every accumulate (a synaptic operation of the
//! spiking engine) to an [`Ops`]. With the `counters` feature off, `Ops` is a zero-sized type and
//! its methods are empty inline functions, so the calls vanish from the compiled kernels.

/// Synaptic events of a convolution or dense layer `g` whose input holds spike counts: the sum,
/// over every synapse, of the count of the input it reads (an input that fired `c` times adds
/// its weight `c` times to every output it reaches). Padded positions have no synapse.
#[cfg(feature = "counters")]
pub fn synaptic_events(g: &bitspike_core::layer::Geometry, input: &[u8]) -> u64 {
    use bitspike_core::layer::LayerKind;
    let (inp, out, w) = (g.input, g.output, g.window);
    if g.kind == LayerKind::Dense {
        let spikes: u64 = input.iter().map(|&c| c as u64).sum();
        return spikes * out.len() as u64;
    }
    let groups = g.groups.max(1) as usize;
    let cin_g = inp.c as usize / groups;
    let cout_g = out.c as usize / groups;
    let mut events = 0u64;
    for oy in 0..out.h as usize {
        for ox in 0..out.w as usize {
            for ky in 0..w.kh as usize {
                let y = (oy * w.sh as usize + ky) as isize - w.ph as isize;
                for kx in 0..w.kw as usize {
                    let x = (ox * w.sw as usize + kx) as isize - w.pw as isize;
                    if y < 0 || x < 0 || y >= inp.h as isize || x >= inp.w as isize {
                        continue;
                    }
                    let at = (y as usize * inp.w as usize + x as usize) * inp.c as usize;
                    for grp in 0..groups {
                        let s: u64 = input
                            .get(at + grp * cin_g..at + (grp + 1) * cin_g)
                            .unwrap_or(&[])
                            .iter()
                            .map(|&c| c as u64)
                            .sum();
                        events += s * cout_g as u64;
                    }
                }
            }
        }
    }
    events
}

/// Operations one layer executed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LayerOps {
    /// Multiply-accumulates executed (padded positions are skipped, so not counted).
    pub macs: u64,
    /// Accumulates (additions of a weight without a multiply: synaptic operations).
    pub accumulates: u64,
}

/// The counter a kernel reports to.
#[derive(Debug, Default)]
pub struct Ops {
    #[cfg(feature = "counters")]
    counts: LayerOps,
}

impl Ops {
    /// A counter at zero.
    #[inline(always)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `n` multiply-accumulates.
    #[inline(always)]
    pub fn mac(&mut self, n: u64) {
        #[cfg(feature = "counters")]
        {
            self.counts.macs += n;
        }
        #[cfg(not(feature = "counters"))]
        let _ = n;
    }

    /// Record `n` accumulates.
    #[inline(always)]
    pub fn accumulate(&mut self, n: u64) {
        #[cfg(feature = "counters")]
        {
            self.counts.accumulates += n;
        }
        #[cfg(not(feature = "counters"))]
        let _ = n;
    }

    /// What was counted (always zero without the `counters` feature).
    #[inline(always)]
    pub fn counts(&self) -> LayerOps {
        #[cfg(feature = "counters")]
        {
            self.counts
        }
        #[cfg(not(feature = "counters"))]
        {
            LayerOps::default()
        }
    }
}
