//! File bytes → RGB8 pixels: exactly the pixels of Pillow's `Image.open(p).convert("RGB")`, or a refusal
//! that names the reason. One module per format, each mirroring the Pillow plugin it answers to:
//!
//! - `jpeg`: libjpeg-turbo (mozjpeg), the library Pillow's wheels bundle, so the pixels are identical.
//! - `png`: the `png` crate for inflating and unfiltering; the chunk walk that decides the verdict is
//!   Pillow's (`PngImagePlugin`).
//! - `bmp`: our own, a transcription of `BmpImagePlugin` (including its RLE decoder's quirks).
//! - `gif`: the `gif` crate for LZW; the first frame is placed on Pillow's canvas here.
//! - `tiff`: the `tiff` crate for the directory and LZW/Deflate/PackBits; samples are unpacked by Pillow's
//!   rawmodes here, JPEG strips go through libjpeg-turbo, and the Orientation tag is applied.
//! - `webp`: libwebp itself, called as Pillow's `_webp.c` calls it.
//!
//! `pixels` holds the conversions they share (Pillow's palette lookup, CMYK, 16-bit samples, transposes).

mod bmp;
mod gif;
mod jpeg;
mod pixels;
mod png;
mod tiff;
mod webp;

use std::io::Read;
use std::path::Path;

use crate::budget::{self, Reservation};
use crate::image::Rgb8Image;

/// Pillow refuses images above this many pixels (`Image.MAX_IMAGE_PIXELS * 2`): a decompression bomb.
pub const DEFAULT_MAX_PIXELS: u64 = 178_956_970;

/// Headroom for headers, metadata and decoder tables beside the pixels, in the caps below.
const SLACK_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions {
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

impl DecodeOptions {
    /// The largest image file accepted: an uncompressed 16-bit RGBA image of `max_pixels` (8 bytes a pixel,
    /// the widest layout a supported format stores) plus headroom. Zip members are held to it too.
    pub fn max_file_bytes(&self) -> u64 {
        self.max_pixels
            .saturating_mul(8)
            .saturating_add(SLACK_BYTES)
    }

    /// What one image at the pixel limit may need, the widest case: the decoder's 16-bit RGBA output and
    /// its scratch (8 + 8 bytes a pixel), the RGB8 copy (3) and preprocessing's f32 planes (8).
    fn budget_bytes(&self) -> u64 {
        self.max_pixels
            .saturating_mul(27)
            .saturating_add(2 * SLACK_BYTES)
    }
}

/// Why one file could not become pixels. Paths are attached by the caller.
pub type DecodeFailure = String;

/// Decoded pixels together with their share of the process-wide decoder memory budget, held until the
/// image has been preprocessed.
pub struct Decoded {
    pub image: Rgb8Image,
    _reservation: Reservation,
}

pub fn decode_file(path: &Path, options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    let bytes = read_regular(path, options.max_file_bytes())?;
    decode_bytes(&bytes, options)
}

/// Open without blocking (a FIFO named `x.png` would wait forever for a writer), refuse anything that is
/// not a regular file (FIFO, socket, device, directory), and read at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, DecodeFailure> {
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path).map_err(|e| read_failure(&e))?;
    let meta = file.metadata().map_err(|e| read_failure(&e))?;
    if !meta.is_file() {
        return Err(format!("{}, not a regular file", file_kind(&meta)));
    }
    if meta.len() > cap {
        return Err(too_big_file(meta.len(), cap));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_failure(&e))?;
    if bytes.len() as u64 > cap {
        return Err(too_big_file(bytes.len() as u64, cap));
    }
    Ok(bytes)
}

/// Why a file could not be read, in words: the system's message without Rust's "(os error N)" suffix, and
/// the two cases a folder of links meets said plainly (a loop of links, a link to nothing).
fn read_failure(e: &std::io::Error) -> String {
    let text = e.to_string();
    let reason = match e.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ELOOP) => "a loop of symbolic links (each link leads back to another)",
        _ if e.kind() == std::io::ErrorKind::NotFound => "no such file (or a symbolic link to nothing)",
        _ => match text.rfind(" (os error ") {
            Some(at) if text.ends_with(')') => &text[..at],
            _ => &text,
        },
    };
    format!("cannot read file: {reason}")
}

pub fn too_big_file(bytes: u64, cap: u64) -> String {
    format!("file of {bytes} bytes exceeds the limit of {cap} bytes for an image within the pixel limit")
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The formats fidrs decodes, recognised by their first bytes as Pillow's plugins recognise them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Bmp,
    Gif,
    Tiff,
    WebP,
}

fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(b"BM") {
        Some(Format::Bmp)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(Format::Gif)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(Format::Tiff)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(Format::WebP)
    } else {
        None
    }
}

/// Decode any supported format. A decoder panic (a bug in a dependency, or libjpeg's error unwinding)
/// becomes an error for this one file, never a crash of the batch.
pub fn decode_bytes(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if bytes.len() as u64 > options.max_file_bytes() {
        return Err(too_big_file(bytes.len() as u64, options.max_file_bytes()));
    }
    let Some(format) = sniff(bytes) else {
        return Err("not an image (unknown file format)".into());
    };
    budget::global().ensure_at_least(options.budget_bytes());
    let decoded = std::panic::catch_unwind(|| match format {
        Format::Jpeg => jpeg::decode(bytes, options),
        Format::Png => png::decode(bytes, options),
        Format::Bmp => bmp::decode(bytes, options),
        Format::Gif => gif::decode(bytes, options),
        Format::Tiff => tiff::decode(bytes, options),
        Format::WebP => webp::decode(bytes, options),
    });
    match decoded {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "corrupt image (decoder failed: {})",
            panic_message(&panic)
        )),
    }
}

/// Refuse an image with no pixels or more than the limit, before anything is allocated for it.
fn check_size(width: usize, height: usize, options: &DecodeOptions) -> Result<(), DecodeFailure> {
    let pixels = width as u64 * height as u64;
    if width == 0 || height == 0 {
        return Err(format!("image has no pixels ({width}x{height})"));
    }
    if pixels > options.max_pixels {
        return Err(format!(
            "too large: {width}x{height} = {pixels} pixels exceeds the limit of {} (possible decompression bomb)",
            options.max_pixels
        ));
    }
    Ok(())
}

/// Check the size, then hold what decoding it needs: `bytes_per_pixel` for the decoder's own buffers,
/// plus the RGB8 result (3) and preprocessing's f32 planes (8), plus headroom.
fn reserve(
    width: usize,
    height: usize,
    bytes_per_pixel: u64,
    options: &DecodeOptions,
) -> Result<Reservation, DecodeFailure> {
    check_size(width, height, options)?;
    let pixels = width as u64 * height as u64;
    budget::global().reserve(
        pixels
            .saturating_mul(bytes_per_pixel + 11)
            .saturating_add(SLACK_BYTES),
    )
}

fn finish(image: Rgb8Image, reservation: Reservation) -> Decoded {
    Decoded {
        image,
        _reservation: reservation,
    }
}

/// Pillow's message for a file that ends before the decoder is done (`ImageFile.LOAD_TRUNCATED_IMAGES` off).
const TRUNCATED: &str = "image file is truncated";

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "decoder error".into()
    }
}
