//! `cfg(bitspike_v6m)` on Armv6-M (Cortex-M0/M0+), which has no 32x32->64 multiply: the
//! requantizer builds its product from 16-bit halves there instead of calling the 64-bit
//! multiply routine.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(bitspike_v6m)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=bitspike_v6m");
    }
}
