//! bitspike on QEMU's `lm3s6965evb` (Cortex-M3, `thumbv7m-none-eabi`; 256 KiB flash, 64 KiB RAM).
//!
//! Runner: `qemu-system-arm -machine lm3s6965evb -nographic -semihosting-config
//! enable=on,target=native -kernel <elf>`. The board has no counter that QEMU models usefully,
//! so the instruction count comes from the QEMU plugin alone.
#![no_std]
#![no_main]

use bitspike_board::{run, semihosting_exit, Board, Buffers};
use cortex_m_rt::entry;

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

struct Lm3s6965;

impl Board for Lm3s6965 {
    const NAME: &'static str = "qemu-lm3s6965";

    fn cycles(&mut self) -> Option<u32> {
        None
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
    run(&mut Lm3s6965, MODEL, SOURCE, bufs)
}
