//! Operation counters that cost nothing when disabled.
//!
//! Kernels report every multiply-accumulate and every accumulate (a synaptic operation of the
//! spiking engine) to an [`Ops`]. With the `counters` feature off, `Ops` is a zero-sized type and
//! its methods are empty inline functions, so the calls vanish from the compiled kernels.

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
