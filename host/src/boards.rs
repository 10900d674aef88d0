//! The boards' memory and core, read from the board packages' `board.toml` (compiled in), so that an
//! export can refuse a model that does not fit the board it is meant for.

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// `board.toml` of every board package.
const BOARDS: [(&str, &str); 7] = [
    (
        "qemu-mps2-an386",
        include_str!("../../boards/qemu-mps2-an386/board.toml"),
    ),
    (
        "qemu-lm3s6965",
        include_str!("../../boards/qemu-lm3s6965/board.toml"),
    ),
    (
        "qemu-an386-v6m",
        include_str!("../../boards/qemu-an386-v6m/board.toml"),
    ),
    (
        "stm32f4-discovery",
        include_str!("../../boards/stm32f4-discovery/board.toml"),
    ),
    (
        "nucleo-l4r5zi",
        include_str!("../../boards/nucleo-l4r5zi/board.toml"),
    ),
    (
        "nrf52840-dk",
        include_str!("../../boards/nrf52840-dk/board.toml"),
    ),
    ("rpi-pico", include_str!("../../boards/rpi-pico/board.toml")),
];

/// The board apps' section sizes with the committed fixture model embedded, per board
/// (`cargo xtask size --bless` writes it; CI checks it): what each app takes besides a model.
const SIZES: &str = include_str!("../../boards/expected/sizes.txt");
/// The fixture model those sizes were measured with.
const FIXTURE: &[u8] = include_bytes!("../../tests/fixtures/model-v1.bsm");
/// Stack the board app may use beyond its statics: the deepest measured (`stack=` of the
/// conformance runs, 2.5 KiB) with room to spare.
pub const APP_STACK_BYTES: usize = 4 * 1024;

/// Flash and static RAM the board app takes on `name` besides a model and its arena: the
/// measured sizes with the fixture model less the fixture's bytes and arena.
fn app_bytes(name: &str) -> Result<(usize, usize)> {
    let fixture = bitspike_rt::Model::load(FIXTURE)
        .map_err(|e| anyhow::anyhow!("the fixture model does not load: {e}"))?;
    let row = SIZES
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .with_context(|| format!("boards/expected/sizes.txt has no row for {name}"))?;
    // board .text .rodata .data .bss .uninit flash of static of RAM-left
    let col = |i: usize| -> Result<usize> {
        row.get(i)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("boards/expected/sizes.txt: column {i} of {name}"))
    };
    Ok((
        col(6)?.saturating_sub(FIXTURE.len()),
        col(8)?.saturating_sub(fixture.arena_bytes()),
    ))
}

#[derive(Deserialize)]
struct Board {
    target: String,
    memory: Memory,
    clock_mhz: Option<f64>,
    energy: Option<Energy>,
    qemu: Option<toml::Value>,
}

#[derive(Deserialize)]
struct Energy {
    run_ua_per_mhz: f64,
    supply_v: f64,
}

#[derive(Deserialize)]
struct Memory {
    flash: usize,
    ram: usize,
}

/// The board package `board`, or an error naming the known boards.
fn board(board: &str) -> Result<Board> {
    let Some((_, text)) = BOARDS.iter().find(|(n, _)| *n == board) else {
        let names: Vec<&str> = BOARDS.iter().map(|(n, _)| *n).collect();
        bail!("unknown board `{board}` (boards: {})", names.join(", "));
    };
    toml::from_str(text).with_context(|| format!("board.toml of {board}"))
}

/// Whether `board` runs Armv6-M code (Cortex-M0/M0+), for which an export reserves the
/// threshold tables of [`bitspike_core::def::ModelDef::reserve_armv6m_tables`].
pub fn armv6m(name: &str) -> Result<bool> {
    Ok(board(name)?.target.starts_with("thumbv6m"))
}

/// The ISA `board`'s runtime is built for (the DSP kernels on Armv7E-M).
pub fn isa(name: &str) -> Result<bitspike_core::kernel::Isa> {
    Ok(isa_of_target(&board(name)?.target))
}

/// The ISA a board's runtime is built for, from its target triple.
pub fn isa_of_target(target: &str) -> bitspike_core::kernel::Isa {
    if target.starts_with("thumbv7em") {
        bitspike_core::kernel::Isa::Dsp
    } else {
        bitspike_core::kernel::Isa::Portable
    }
}

/// The emulated board whose measured costs stand for `name`: the board itself when QEMU
/// emulates it, else the emulated board built for the same target (the same core and
/// kernels: a Cortex-M4F board's instructions are counted on `qemu-mps2-an386`).
pub fn cost_board(name: &str) -> Result<&'static str> {
    let b = board(name)?;
    if b.qemu.is_some() {
        if let Some((n, _)) = BOARDS.iter().find(|(n, _)| *n == name) {
            return Ok(n);
        }
    }
    for (n, _) in BOARDS {
        let e = board(n)?;
        if e.qemu.is_some() && e.target == b.target {
            return Ok(n);
        }
    }
    bail!(
        "no emulated board is built for {name}'s target {}",
        b.target
    )
}

/// The clock of a real board in MHz (`None` for an emulated one).
pub fn clock_mhz(name: &str) -> Result<Option<f64>> {
    Ok(board(name)?.clock_mhz)
}

/// Datasheet energy of `cycles` on `name` in microjoules: cycles x supply x run current per
/// MHz (`None` without datasheet figures, as on an emulated board).
pub fn microjoules(name: &str, cycles: f64) -> Result<Option<f64>> {
    Ok(board(name)?
        .energy
        .map(|e| cycles * e.supply_v * e.run_ua_per_mhz / 1e6))
}

/// Refuse a model of `model_bytes` with an arena of `arena_bytes` that does not fit `board`: the
/// app's measured flash and static RAM on that board (`boards/expected/sizes.txt`) plus the
/// model, its arena and [`APP_STACK_BYTES`] of stack.
pub fn check_fit(name: &str, model_bytes: usize, arena_bytes: usize) -> Result<()> {
    let b = board(name)?;
    let (app_flash, app_ram) = app_bytes(name)?;
    let flash = model_bytes + app_flash;
    let ram = arena_bytes + app_ram + APP_STACK_BYTES;
    if flash > b.memory.flash || ram > b.memory.ram {
        bail!(
            "the model does not fit {name}: it needs about {flash} B of flash (has {}) and {ram} B of RAM (has {})",
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
        // The app's own measured flash counts: on the lm3s6965 (256 KiB) it takes about 70 KiB,
        // so a 200 000-byte model does not fit although a fixed 40 KiB estimate would let it.
        let e = check_fit("qemu-lm3s6965", 200_000, 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("flash") && !e.contains('\n'), "{e}");
        for (name, _) in BOARDS {
            let (flash, ram) = app_bytes(name).unwrap();
            assert!(flash > 50_000 && ram < 4096, "{name}: {flash} B, {ram} B");
        }
    }

    #[test]
    fn every_board_package_reads_and_only_m0_boards_are_armv6m() {
        for (name, _) in BOARDS {
            let v6m = armv6m(name).unwrap();
            assert_eq!(v6m, matches!(name, "qemu-an386-v6m" | "rpi-pico"), "{name}");
        }
        assert!(armv6m("nope").is_err());
    }

    #[test]
    fn real_boards_take_the_costs_of_the_emulated_board_with_their_core() {
        assert_eq!(cost_board("qemu-lm3s6965").unwrap(), "qemu-lm3s6965");
        assert_eq!(cost_board("nucleo-l4r5zi").unwrap(), "qemu-mps2-an386");
        assert_eq!(cost_board("stm32f4-discovery").unwrap(), "qemu-mps2-an386");
        assert_eq!(cost_board("rpi-pico").unwrap(), "qemu-an386-v6m");
        assert_eq!(clock_mhz("nucleo-l4r5zi").unwrap(), Some(120.0));
        assert_eq!(clock_mhz("qemu-mps2-an386").unwrap(), None);
        // 120 000 cycles at 3.3 V and 110 uA/MHz: 43.56 uJ.
        let uj = microjoules("nucleo-l4r5zi", 120_000.0).unwrap().unwrap();
        assert!((uj - 43.56).abs() < 1e-9, "{uj}");
        assert_eq!(microjoules("qemu-mps2-an386", 1.0).unwrap(), None);
    }
}
