//! Straightforward oracles for every layer kind, written independently of the runtime's kernels.
