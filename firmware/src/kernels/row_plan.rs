//! The checks and the layout the Armv6-M and Armv7-M row loops of the pairs kernel share
//! (`v6m::row8`, `v7m::row8`): a plain module both assembly modules use, so that neither depends
//! on the kernel that calls them.

/// What the Armv6-M and Armv7-M row loops read besides the row: the sums, then the flush
/// interval in bytes (`mem[8]`), in one block of nine words; and whether an 8-bit row runs two
/// weights per pass of the loop.
pub(super) struct RowPlan {
    /// `sums[0..8]` as words, then the flush interval.
    pub mem: [u32; 9],
    /// Two weight bytes per pass (8-bit weights, the row and the interval of even lengths).
    pub two: bool,
}

/// The plan of an assembly row loop over `lanes` and `weights` (see `v6m::row8`), or `None`
/// when the loops cannot run it: no weights, no interval, a width other than 8, 4 or 2, or
/// fewer than four words of `lanes` per input. With a plan the loops may rely on: at least one
/// byte of weights; four words of lanes per input (`8 / bits` inputs per byte); an interval
/// `mem[8]` of at least the bytes of one pass, a multiple of them, at most the row; and a row
/// that is a whole number of passes.
#[inline(always)]
pub(super) fn row_plan(
    lanes: &[u32],
    weights: &[u8],
    bits: u8,
    chunk_bytes: usize,
    sums: &[i32; 8],
) -> Option<RowPlan> {
    let n = weights.len();
    let per = match bits {
        8 => 1,
        4 => 2,
        2 => 4,
        _ => return None,
    };
    if n == 0 || chunk_bytes == 0 || lanes.len() / 4 / per < n || chunk_bytes > u32::MAX as usize {
        return None;
    }
    let mut mem = [0u32; 9];
    for (m, s) in mem.iter_mut().zip(sums.iter()) {
        *m = *s as u32;
    }
    // A chunk longer than the row is the row (and `r1 + chunk` cannot wrap). 8-bit rows of an
    // even length run two weights per pass of the loop, in chunks of an even number of bytes
    // (a shorter chunk is as safe).
    let chunk_bytes = chunk_bytes.min(n);
    let two = bits == 8 && n.is_multiple_of(2) && chunk_bytes >= 2;
    mem[8] = if two { chunk_bytes & !1 } else { chunk_bytes } as u32;
    Some(RowPlan { mem, two })
}
