//! Refuse to build a slow JPEG decoder by accident. On x86, libjpeg-turbo's SIMD code (IDCT, colour
//! conversion, upsampling: most of a decode) is assembled by NASM; mozjpeg-sys silently drops it, with only a
//! cargo warning, when `nasm` is missing, which made decoding 1.8x slower than Pillow's. So a missing NASM
//! fails the build with how to install it, unless FIDRS_ALLOW_SCALAR_JPEG=1 asks for the scalar decoder.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=FIDRS_ALLOW_SCALAR_JPEG");
    println!("cargo:rerun-if-env-changed=PATH");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" && arch != "x86" {
        return; // ARM's SIMD code is built by the C compiler, nothing else needed
    }
    let allowed = std::env::var("FIDRS_ALLOW_SCALAR_JPEG").is_ok_and(|v| v == "1");
    let found = Command::new("nasm")
        .arg("-v")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    match found {
        // mozjpeg-sys refuses NASM 0.x as too old: so do we.
        Some(version) if !version.contains("NASM version 0.") => {
            println!("cargo:rustc-env=FIDRS_JPEG_SIMD=nasm ({version})");
        }
        _ if allowed => {
            println!("cargo:warning=building the scalar JPEG decoder (FIDRS_ALLOW_SCALAR_JPEG=1): about 2x slower");
            println!("cargo:rustc-env=FIDRS_JPEG_SIMD=none");
        }
        other => panic!(
            "\n\nfidrs needs NASM (2.x) to build libjpeg-turbo's SIMD JPEG decoder on x86 (found: {}).\n\
             Install it: apt-get install nasm | dnf install nasm | brew install nasm | choco install nasm\n\
             or build the ~2x slower scalar decoder with FIDRS_ALLOW_SCALAR_JPEG=1.\n\n",
            other.unwrap_or_else(|| "none".into())
        ),
    }
}
