//! Lays out the release server binary so that the code start-up runs sits together.
//!
//! Of the binary's 90 MB of machine code, start-up and an idle server run about 7 MB, spread
//! over the whole of it (the database engine alone is half of the binary). The kernel maps code
//! in 64 KiB windows around each page it faults in, so scattered code kept 40 MB of the binary
//! resident in an idle server. `startup-order.txt` lists the functions start-up runs
//! (recorded by `just startup-order`); the linker places them first, side by side.
//!
//! The list names symbols as this toolchain and `Cargo.lock` spell them. After an upgrade some
//! names no longer match: the linker ignores those (the binary stays correct, only less compact)
//! and `just bench-api` shows how many still match. `VISPROMPT_STARTUP_ORDER=0` turns it off,
//! for a linker other than LLD, which Rust uses by default on x86-64 Linux.

use std::path::Path;

fn main() {
    let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("startup-order.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    println!("cargo:rerun-if-env-changed=VISPROMPT_STARTUP_ORDER");

    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    let lld_default = std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu");
    let wanted = std::env::var("VISPROMPT_STARTUP_ORDER").as_deref() != Ok("0");
    if release && lld_default && wanted && list.is_file() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        // Names from another build are expected; the linker's warning for each is noise.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
