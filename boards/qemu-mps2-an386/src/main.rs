//! bitspike on QEMU's `mps2-an386` (Cortex-M4F, `thumbv7em-none-eabihf`).
//!
//! Runner: `qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic -semihosting-config
//! enable=on,target=native -kernel <elf>` (xtask adds `-icount shift=0,sleep=off` and the
//! instruction-counting plugin when it measures). The cycle cross-check is the FPGAIO 25 MHz
//! counter, which under `-icount shift=0` advances with virtual time (1 ns per instruction).
#![no_std]
#![no_main]

use bitspike_board::{run, semihosting_exit, Board, Buffers};
use cortex_m_rt::entry;

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// FPGAIO COUNTER register (mps2 FPGA system control block at 0x4002_8000, offset 0x18).
const FPGAIO_COUNTER: *const u32 = 0x4002_8018 as *const u32;

struct Mps2An386;

impl Board for Mps2An386 {
    const NAME: &'static str = "qemu-mps2-an386";

    fn cycles(&mut self) -> Option<u32> {
        // SAFETY: a read-only memory-mapped counter of this board.
        Some(unsafe { core::ptr::read_volatile(FPGAIO_COUNTER) })
    }

    fn exit(&mut self, code: i32) -> ! {
        semihosting_exit(code)
    }
}

static mut ARENA: [u8; ARENA_BYTES] = [0; ARENA_BYTES];
static mut OUTPUT: [i32; OUTPUT_LEN] = [0; OUTPUT_LEN];
static mut RECORD: [u8; RECORD_LEN] = [0; RECORD_LEN];

#[entry]
fn main() -> ! {
    // SAFETY: the only references to the buffers, taken once before anything else runs.
    let bufs = unsafe {
        Buffers {
            arena: &mut *core::ptr::addr_of_mut!(ARENA),
            output: &mut *core::ptr::addr_of_mut!(OUTPUT),
            record: &mut *core::ptr::addr_of_mut!(RECORD),
        }
    };
    run(&mut Mps2An386, MODEL, SOURCE, bufs)
}
