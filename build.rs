//! Refuse to build a slow JPEG decoder by accident. libjpeg-turbo's SIMD code (IDCT, colour conversion,
//! upsampling: most of a decode) is assembled by NASM on x86; mozjpeg-sys silently drops it, with only a cargo
//! warning, when `nasm` is missing, and keeps that build cached after NASM is installed. So this reads what
//! mozjpeg-sys actually configured (`WITH_SIMD` in the jconfig.h it generated, published to dependents as
//! DEP_JPEG_INCLUDE) and fails without SIMD, saying why, unless FIDRS_ALLOW_SCALAR_JPEG=1 asks for the scalar
//! decoder. `fidrs._fidrs.JPEG_SIMD` (and `fidrs --version`) report the outcome.
//!
//! It also exports the identity of the code that turns a file into network inputs: the sha256 of the Rust
//! sources that decode and preprocess (`PIXEL_SOURCES`) and of Cargo.lock (the decoder crates' versions), as
//! `fidrs._fidrs.PIXEL_CODE_SHA256`. The feature cache is keyed on it, so a change to any of them invalidates
//! cached features by itself: there is no version number to remember to bump.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What decides the pixels a network sees, or whether a file decodes at all: the decoders, the image type,
/// every preprocessing kernel, the batch loader, and the dependency versions (Cargo.lock). Paths relative to
/// the crate root; a directory stands for every file below it. Also the order in which they are hashed.
const PIXEL_SOURCES: &[&str] = &["Cargo.lock", "src/batch.rs", "src/decode", "src/image.rs", "src/preprocess"];

/// The files that `PIXEL_SOURCES` names, as sorted relative paths with `/` separators. `src/decode` also
/// matches `src/decode.rs` and any `src/decode_*.rs` (every decoder source, however it is split).
fn pixel_files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut files = Vec::new();
    for name in PIXEL_SOURCES {
        let path = root.join(name);
        if path.is_dir() {
            walk(root, &path, &mut files);
        }
        if path.is_file() {
            files.push(name.to_string());
        }
    }
    // src/decode.rs, src/decode_*.rs next to a (possible) src/decode/ folder.
    if let Ok(entries) = std::fs::read_dir(root.join("src")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("decode") && name.ends_with(".rs") && entry.path().is_file() {
                files.push(format!("src/{name}"));
            }
        }
    }
    files.sort();
    files.dedup();
    files
}

/// sha256 of every pixel source: for each file in order, its path, a NUL, its length in decimal, a NUL, and
/// its bytes (so that no two different trees hash alike). `tests/plumbing/test_cache_identity.py` recomputes it.
fn pixel_code_sha256(root: &Path) -> String {
    let mut message = Vec::new();
    for rel in pixel_files(root) {
        let bytes = std::fs::read(root.join(&rel)).unwrap_or_default();
        message.extend_from_slice(rel.as_bytes());
        message.push(0);
        message.extend_from_slice(bytes.len().to_string().as_bytes());
        message.push(0);
        message.extend_from_slice(&bytes);
        println!("cargo:rerun-if-changed={rel}");
    }
    for dir in ["src", "src/preprocess", "src/decode"] {
        if root.join(dir).is_dir() {
            println!("cargo:rerun-if-changed={dir}"); // a file added or removed
        }
    }
    sha256(&message).iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 (FIPS 180-4). Written out here because a build script's dependencies are compiled for every build,
/// and the one hash this needs is thirty lines; `tests/plumbing/test_cache_identity.py` checks it against `hashlib`.
fn sha256(message: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    ];
    let mut data = message.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&((message.len() as u64) * 8).to_be_bytes());
    for block in data.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = hh.wrapping_add(s1).wrapping_add(ch).wrapping_add(K[i]).wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (state, value) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *state = state.wrapping_add(value);
        }
    }
    let mut out = [0u8; 32];
    for (i, word) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn nasm_version() -> Option<String> {
    let out = Command::new("nasm").arg("-v").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rustc-env=FIDRS_PIXEL_CODE_SHA256={}", pixel_code_sha256(&root));
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
