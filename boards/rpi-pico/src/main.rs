//! bitspike on the Raspberry Pi Pico (RP2040, Cortex-M0+, `thumbv6m-none-eabi`; core 0 only).
//!
//! Boot: the W25Q080 second-stage bootloader (`rp2040-boot2`) in the first 256 bytes of flash.
//! Clock: the 12 MHz crystal through PLL_SYS (VCO 1596 MHz, post-dividers 6 and 2) to 133 MHz,
//! the RP2040's rated maximum; PLL_USB at its usual 48 MHz (rp2040-hal's clock manager).
//! Cycles: the Cortex-M0+ has no DWT cycle counter, so SysTick runs from the core clock with its
//! full 24-bit reload and its exception counts the wraps ([`SysTickCycles`]). Log: defmt over
//! RTT through an SWD probe (a second Pico with the debugprobe firmware, say). Verdict: the LED
//! on GPIO25 steady when every vector matched, blinking otherwise (embedded-hal 1.0 `OutputPin`).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use bitspike_board::{abort, show_and_park, Board, SpinDelay, EXIT_BOARD};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use rp2040_hal::clocks::ClocksManager;
use rp2040_hal::fugit::HertzU32;
use rp2040_hal::gpio::bank0::Gpio25;
use rp2040_hal::gpio::{FunctionSioOutput, Pin, PullDown};
use rp2040_hal::pac;
use rp2040_hal::pll::{common_configs::PLL_USB_48MHZ, setup_pll_blocking, PLLConfig};
use rp2040_hal::xosc::setup_xosc_blocking;
use rp2040_hal::{Sio, Watchdog};

/// The second-stage bootloader for the Pico's W25Q080 flash, where the boot ROM looks for it.
#[link_section = ".boot2"]
#[used]
static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XOSC_HZ: u32 = 12_000_000;
/// The core clock set up below (must equal `clock_mhz` in `board.toml`).
const CLOCK_HZ: u32 = 133_000_000;
/// PLL_SYS for 133 MHz: 12 MHz x 133 = 1596 MHz (within 750..=1600), / 6 / 2.
const PLL_SYS_133MHZ: PLLConfig = PLLConfig {
    vco_freq: HertzU32::MHz(1596),
    refdiv: 1,
    post_div1: 6,
    post_div2: 2,
};

/// SysTick's reload: the full 24 bits, so one wrap is 2^24 cycles.
const SYST_RELOAD: u32 = 0x00FF_FFFF;

/// Wraps of SysTick since it started (written only by its exception handler).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[cortex_m_rt::exception]
fn SysTick() {
    // The only writer: a load and a store are enough (the M0+ has no atomic read-modify-write).
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// A 32-bit cycle counter made of SysTick (counting down from [`SYST_RELOAD`] at the core clock)
/// and the wraps its exception counts.
struct SysTickCycles;

impl SysTickCycles {
    fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self
    }

    fn now(&self) -> u32 {
        loop {
            let wraps = WRAPS.load(Ordering::Relaxed);
            let left = SYST::get_current();
            let pending = cortex_m::peripheral::SCB::is_pendst_pending();
            // The handler ran between the reads: the count and the value may not belong
            // together, read again.
            if WRAPS.load(Ordering::Relaxed) != wraps {
                continue;
            }
            // A wrap whose exception has not been taken yet is not in `wraps`: count it when
            // the value was read after it (just reloaded, so in the upper half).
            let wraps = if pending && left > SYST_RELOAD / 2 {
                wraps.wrapping_add(1)
            } else {
                wraps
            };
            return wraps
                .wrapping_mul(SYST_RELOAD + 1)
                .wrapping_add(SYST_RELOAD - left);
        }
    }
}

struct Pico {
    cycles: SysTickCycles,
    led: Pin<Gpio25, FunctionSioOutput, PullDown>,
}

impl Pico {
    fn new() -> Self {
        let (Some(mut p), Some(cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take())
        else {
            abort(EXIT_BOARD)
        };
        let mut watchdog = Watchdog::new(p.WATCHDOG);
        let Ok(xosc) = setup_xosc_blocking(p.XOSC, HertzU32::Hz(XOSC_HZ)) else {
            abort(EXIT_BOARD)
        };
        watchdog.enable_tick_generation((XOSC_HZ / 1_000_000) as u8);
        let mut clocks = ClocksManager::new(p.CLOCKS);
        let freq = xosc.operating_frequency();
        let Ok(pll_sys) =
            setup_pll_blocking(p.PLL_SYS, freq, PLL_SYS_133MHZ, &mut clocks, &mut p.RESETS)
        else {
            abort(EXIT_BOARD)
        };
        let Ok(pll_usb) =
            setup_pll_blocking(p.PLL_USB, freq, PLL_USB_48MHZ, &mut clocks, &mut p.RESETS)
        else {
            abort(EXIT_BOARD)
        };
        if clocks.init_default(&xosc, &pll_sys, &pll_usb).is_err() {
            abort(EXIT_BOARD)
        }
        let sio = Sio::new(p.SIO);
        let pins =
            rp2040_hal::gpio::Pins::new(p.IO_BANK0, p.PADS_BANK0, sio.gpio_bank0, &mut p.RESETS);
        Self {
            cycles: SysTickCycles::start(cp.SYST),
            led: pins.gpio25.into_push_pull_output(),
        }
    }
}

impl Board for Pico {
    const NAME: &'static str = "rpi-pico";
    const CLOCK_HZ: u32 = CLOCK_HZ;

    fn cycles(&mut self) -> Option<u32> {
        Some(self.cycles.now())
    }

    fn exit(&mut self, code: i32) -> ! {
        show_and_park(&mut self.led, &mut SpinDelay { clock_hz: CLOCK_HZ }, code)
    }
}

bitspike_board::main!(Pico::new());
