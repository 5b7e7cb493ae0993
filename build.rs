//! Refuse to build a slow JPEG decoder by accident. libjpeg-turbo's SIMD code (IDCT, colour conversion,
//! upsampling: most of a decode) is assembled by NASM on x86; mozjpeg-sys silently drops it, with only a cargo
//! warning, when `nasm` is missing, and keeps that build cached after NASM is installed. So this reads what
//! mozjpeg-sys actually configured (`WITH_SIMD` in the jconfig.h it generated, published to dependents as
//! DEP_JPEG_INCLUDE) and fails without SIMD, saying why, unless FIDRS_ALLOW_SCALAR_JPEG=1 asks for the scalar
//! decoder. `fidrs._fidrs.JPEG_SIMD` (and `fidrs --version`) report the outcome.

use std::path::PathBuf;
use std::process::Command;

fn nasm_version() -> Option<String> {
    let out = Command::new("nasm").arg("-v").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=FIDRS_ALLOW_SCALAR_JPEG");
    println!("cargo:rerun-if-env-changed=DEP_JPEG_INCLUDE");
    let allowed = std::env::var("FIDRS_ALLOW_SCALAR_JPEG").is_ok_and(|v| v == "1");
    let jconfig = std::env::var_os("DEP_JPEG_INCLUDE").and_then(|dirs| {
        std::env::split_paths(&dirs)
            .map(|d| d.join("jconfig.h"))
            .find(|p| p.is_file())
    });
    let simd = match &jconfig {
        Some(path) => {
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::read_to_string(path).is_ok_and(|text| text.contains("#define WITH_SIMD 1"))
        }
        None => false,
    };
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let x86 = arch == "x86_64" || arch == "x86";
    if simd {
        let how = if x86 {
            nasm_version().unwrap_or_else(|| "NASM".into())
        } else {
            "C intrinsics".into()
        };
        println!("cargo:rustc-env=FIDRS_JPEG_SIMD=yes ({how})");
        return;
    }
    if allowed {
        println!("cargo:warning=building the scalar JPEG decoder (FIDRS_ALLOW_SCALAR_JPEG=1)");
        println!("cargo:rustc-env=FIDRS_JPEG_SIMD=no");
        return;
    }
    let why = match (x86, nasm_version(), &jconfig) {
        (_, _, None) => "mozjpeg-sys published no jconfig.h (DEP_JPEG_INCLUDE)".to_string(),
        (true, None, _) => {
            "NASM (2.x) is not installed: apt-get install nasm | dnf install nasm | \
                            brew install nasm | choco install nasm"
                .to_string()
        }
        (true, Some(v), Some(p)) => format!(
            "{v} is installed, but the cached mozjpeg-sys build ({}) was configured without it: \
             run `cargo clean -p mozjpeg-sys` and build again",
            PathBuf::from(p).display()
        ),
        (false, _, _) => format!("mozjpeg-sys has no SIMD code for {arch}"),
    };
    panic!(
        "\n\nfidrs's JPEG decoder would be built without libjpeg-turbo's SIMD code: {why}.\n\
         (FIDRS_ALLOW_SCALAR_JPEG=1 builds the slower scalar decoder anyway.)\n\n"
    );
}
