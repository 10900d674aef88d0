//! The bitspike runtime for C: `libbitspike.a` and the header `include/bitspike.h` that
//! `cbindgen` generates from this file (`cargo xtask header`; CI fails when the committed header
//! differs from a fresh one).
//!
//! ```c
//! #include "bitspike.h"
//! #include "model.h"  /* bitspike c-source: the model's bytes and sizes */
//! static uint8_t arena[BITSPIKE_ARENA_BYTES];
//! bitspike_model model;
//! bitspike_interpreter interp;
//! bitspike_error err;
//! if (bitspike_load(bitspike_model_data, BITSPIKE_MODEL_BYTES, &model, &err) != BITSPIKE_STATUS_OK ||
//!     bitspike_bind(&model, arena, sizeof arena, &interp, &err) != BITSPIKE_STATUS_OK ||
//!     bitspike_run(&interp, image, BITSPIKE_INPUT_LEN, logits, BITSPIKE_OUTPUT_LEN, &err) !=
//!         BITSPIKE_STATUS_OK) {
//!     char text[160];
//!     bitspike_error_text(&err, text, sizeof text);  /* one line naming what is wrong */
//!     return 1;
//! }
//! size_t label = bitspike_argmax(logits, BITSPIKE_OUTPUT_LEN);
//! ```
//!
//! Nothing allocates: the caller owns the model bytes (in flash), the arena, the input and output
//! buffers and the storage of the handles (`bitspike_model`, `bitspike_interpreter`,
//! `bitspike_error`: plain structs of the sizes the header gives, on the stack or static).
//! Every pointer is checked (null, alignment, a length beyond `PTRDIFF_MAX`) before it is read,
//! and every failure of the Rust runtime has its own status code with the same meaning
//! ([`BitspikeStatus`]). A handle only works after the call that fills it succeeded, and must
//! not be copied (a copy would share the arena); the model bytes must stay in place and
//! unchanged, and the arena untouched, while an interpreter bound to them is used; a run's input
//! and output must not overlap.
// On a microcontroller without the standard library; on a host (the tests, a simulator) with it.
#![cfg_attr(target_os = "none", no_std)]
// The crate is the C boundary: each function checks every pointer it is given, then calls the
// safe runtime.
#![allow(unsafe_code)]

mod ffi;

pub use ffi::*;

/// Without the standard library a static library needs its own panic handler. The runtime has no
/// panics on its paths (its lints deny them, and a fuzzer runs it with overflow checks), so this
/// is only reached by a bug: it stops in a loop a debugger finds.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
