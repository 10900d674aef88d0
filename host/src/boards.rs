//! The boards' memory, read from the board packages' `board.toml` (compiled in), so that an
//! export can refuse a model that does not fit the board it is meant for.

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// `board.toml` of every board package.
const BOARDS: [(&str, &str); 2] = [
    (
        "qemu-mps2-an386",
        include_str!("../../boards/qemu-mps2-an386/board.toml"),
    ),
    (
        "qemu-lm3s6965",
        include_str!("../../boards/qemu-lm3s6965/board.toml"),
    ),
];

/// What the board app itself takes besides the model and its arena, measured on the emulated
/// boards (`boards/expected/`): about 34 KiB of code and constants, 3 KiB of stack.
pub const APP_FLASH_BYTES: usize = 40 * 1024;
/// RAM the board app takes besides the arena (stack, output buffer, statics).
pub const APP_RAM_BYTES: usize = 4 * 1024;

#[derive(Deserialize)]
struct Board {
    memory: Memory,
}

#[derive(Deserialize)]
struct Memory {
    flash: usize,
    ram: usize,
}

/// Refuse a model of `model_bytes` with an arena of `arena_bytes` that does not fit `board`.
pub fn check_fit(board: &str, model_bytes: usize, arena_bytes: usize) -> Result<()> {
    let Some((_, text)) = BOARDS.iter().find(|(n, _)| *n == board) else {
        let names: Vec<&str> = BOARDS.iter().map(|(n, _)| *n).collect();
        bail!("unknown board `{board}` (boards: {})", names.join(", "));
    };
    let b: Board = toml::from_str(text).with_context(|| format!("board.toml of {board}"))?;
    let flash = model_bytes + APP_FLASH_BYTES;
    let ram = arena_bytes + APP_RAM_BYTES;
    if flash > b.memory.flash || ram > b.memory.ram {
        bail!(
            "the model does not fit {board}: it needs about {flash} B of flash (has {}) and {ram} B of RAM (has {})",
            b.memory.flash,
            b.memory.ram
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_checks_both_memories() {
        let _one = crate::seeded();
        assert!(check_fit("qemu-lm3s6965", 100_000, 40_000).is_ok());
        let e = check_fit("qemu-lm3s6965", 300_000, 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("flash"), "{e}");
        let e = check_fit("qemu-lm3s6965", 1000, 64 * 1024)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RAM"), "{e}");
        assert!(check_fit("nope", 1, 1)
            .unwrap_err()
            .to_string()
            .contains("unknown board"));
    }
}
