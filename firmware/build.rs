//! Kernel selection by target: the DSP micro-kernels (`SMLAD`, `SXTB16`, in `asm!`) on Armv7E-M
//! (Cortex-M4, M7), where stable Rust does not expose the DSP extension as a target feature.
//! Armv6-M (Cortex-M0/M0+) gets the pairs kernel's row loop in Thumb-1 assembly, Armv7-M
//! without the DSP extension (Cortex-M3) in Thumb-2 assembly. Every other target runs the same
//! kernels in portable Rust.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(bitspike_dsp)");
    println!("cargo::rustc-check-cfg=cfg(bitspike_v6m)");
    println!("cargo::rustc-check-cfg=cfg(bitspike_v7m)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo::rustc-cfg=bitspike_dsp");
    }
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=bitspike_v6m");
    }
    if target.starts_with("thumbv7m") {
        println!("cargo::rustc-cfg=bitspike_v7m");
    }
}
