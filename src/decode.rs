//! File bytes → RGB8 pixels, the same pixels as Pillow's `Image.open(p).convert("RGB")` for 8-bit images.
//!
//! JPEG goes through mozjpeg, which is libjpeg-turbo's decoder (islow IDCT, fancy upsampling): the
//! library Pillow's wheels bundle, so the pixels are identical. zune-jpeg was measured and differs by ±1
//! on 0.3 % of the pixels of the shared photos, which moves the FID of a random network by ~1 %.
//! Everything else goes through the `image` crate.

use std::io::{Cursor, Read};
use std::os::raw::c_int;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

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
    let file = open
        .open(path)
        .map_err(|e| format!("cannot read file: {e}"))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read file: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{}, not a regular file", file_kind(&meta)));
    }
    if meta.len() > cap {
        return Err(too_big_file(meta.len(), cap));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read file: {e}"))?;
    if bytes.len() as u64 > cap {
        return Err(too_big_file(bytes.len() as u64, cap));
    }
    Ok(bytes)
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

/// Decode any supported format. A decoder panic (a bug in a dependency, or libjpeg's error unwinding)
/// becomes an error for this one file, never a crash of the batch.
pub fn decode_bytes(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    if bytes.len() as u64 > options.max_file_bytes() {
        return Err(too_big_file(bytes.len() as u64, options.max_file_bytes()));
    }
    budget::global().ensure_at_least(options.budget_bytes());
    let decoded = std::panic::catch_unwind(|| {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            decode_jpeg(bytes, options)
        } else {
            decode_other(bytes, options)
        }
    });
    match decoded {
        Ok(result) => result,
        Err(panic) => Err(format!(
            "corrupt image (decoder failed: {})",
            panic_message(&panic)
        )),
    }
}

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

fn pixels(width: usize, height: usize) -> u64 {
    width as u64 * height as u64
}

/// Pillow's message for a file that ends before the decoder is done (`ImageFile.LOAD_TRUNCATED_IMAGES` off).
const TRUNCATED: &str = "image file is truncated";

/// libjpeg's error manager with two changes: errors unwind (as the mozjpeg crate's own manager does) and
/// the warning "premature end of JPEG file" unwinds too. libjpeg pads a truncated stream with grey rows and
/// carries on; Pillow refuses such a file, and so must we, or a cut file yields a wrong FID and exit 0.
fn strict_error_mgr() -> mozjpeg_sys::jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of the zeroed struct; we then replace two callbacks.
    unsafe {
        let mut err: mozjpeg_sys::jpeg_error_mgr = std::mem::zeroed();
        mozjpeg_sys::jpeg_std_error(&mut err);
        err.error_exit = Some(unwind_on_error);
        err.emit_message = Some(unwind_on_truncation);
        err
    }
}

fn libjpeg_message(cinfo: &mut mozjpeg_sys::jpeg_common_struct) -> String {
    // SAFETY: `err` is the manager installed above; format_message writes at most JMSG_LENGTH_MAX (200) bytes.
    unsafe {
        let err = &*cinfo.err;
        match err.format_message {
            Some(format) => {
                let mut buffer = [0u8; 200];
                let format: unsafe extern "C-unwind" fn(
                    &mut mozjpeg_sys::jpeg_common_struct,
                    *mut u8,
                ) = std::mem::transmute(format);
                format(cinfo, buffer.as_mut_ptr());
                let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
                String::from_utf8_lossy(&buffer[..end]).into_owned()
            }
            None => format!("libjpeg error {}", err.msg_code),
        }
    }
}

extern "C-unwind" fn unwind_on_error(cinfo: &mut mozjpeg_sys::jpeg_common_struct) {
    let message = libjpeg_message(cinfo);
    std::panic::resume_unwind(Box::new(message));
}

extern "C-unwind" fn unwind_on_truncation(
    cinfo: &mut mozjpeg_sys::jpeg_common_struct,
    level: c_int,
) {
    // SAFETY: `err` points at the manager built by strict_error_mgr for this decompressor.
    let code = unsafe { (*cinfo.err).msg_code };
    if level < 0 && code == mozjpeg_sys::JWRN_JPEG_EOF as c_int {
        std::panic::resume_unwind(Box::new(TRUNCATED.to_string()));
    }
}

fn decode_jpeg(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    // mozjpeg reports libjpeg errors (and, with our manager, a truncated stream) by unwinding.
    let result = std::panic::catch_unwind(|| -> Result<Decoded, DecodeFailure> {
        let decompress = mozjpeg::Decompress::builder()
            .with_err(strict_error_mgr())
            .with_markers(mozjpeg::ALL_MARKERS)
            .from_mem(bytes)
            .map_err(|e| format!("not a valid JPEG: {e}"))?;
        let (width, height) = (decompress.width(), decompress.height());
        check_size(width, height, options)?;
        // Output (3 or 4 bytes a pixel), libjpeg's whole-image coefficient buffer for progressive files
        // (2 bytes a sample, up to 4 components), preprocessing's f32 planes (8).
        let reservation = budget::global().reserve(pixels(width, height) * 23 + SLACK_BYTES)?;
        let adobe = decompress
            .markers()
            .any(|m| m.marker == mozjpeg::Marker::APP(14) && m.data.starts_with(b"Adobe"));
        let rgb = match decompress.color_space() {
            mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK => {
                let mut started = decompress
                    .to_colorspace(mozjpeg::ColorSpace::JCS_CMYK)
                    .map_err(|e| format!("corrupt JPEG: {e}"))?;
                let cmyk = started
                    .read_scanlines::<u8>()
                    .map_err(|e| format!("corrupt JPEG: {e}"))?;
                started.finish().map_err(|e| format!("corrupt JPEG: {e}"))?;
                cmyk_to_rgb(&cmyk, adobe)
            }
            _ => {
                let mut started = decompress.rgb().map_err(|e| format!("corrupt JPEG: {e}"))?;
                let rgb = started
                    .read_scanlines::<u8>()
                    .map_err(|e| format!("corrupt JPEG: {e}"))?;
                started.finish().map_err(|e| format!("corrupt JPEG: {e}"))?;
                rgb
            }
        };
        Ok(Decoded {
            image: Rgb8Image::new(width, height, rgb),
            _reservation: reservation,
        })
    });
    match result {
        Ok(decoded) => decoded,
        Err(panic) => {
            let message = panic_message(&panic);
            if message == TRUNCATED {
                Err(message)
            } else {
                Err(format!("corrupt or truncated JPEG: {message}"))
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "decoder error".into()
    }
}

/// Pillow reads Adobe CMYK JPEGs as inverted ("CMYK;I") and converts with r = (255 − c)(255 − k)/255.
fn cmyk_to_rgb(cmyk: &[u8], adobe_inverted: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let [c, m, y, k] = [p[0], p[1], p[2], p[3]];
        let (c, m, y, k) = if adobe_inverted {
            (255 - c, 255 - m, 255 - y, 255 - k)
        } else {
            (c, m, y, k)
        };
        let kk = 255 - k as u32;
        for v in [c, m, y] {
            // Pillow's MULDIV255: (a*b + 128 + ((a*b + 128) >> 8)) >> 8.
            let t = (255 - v as u32) * kk + 128;
            out.push(((t + (t >> 8)) >> 8) as u8);
        }
    }
    out
}

fn decode_other(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read file: {e}"))?;
    let Some(format) = reader.format() else {
        return Err("not an image (unknown file format)".into());
    };
    match format {
        ImageFormat::Gif => check_gif_first_frame(bytes, options)?,
        ImageFormat::WebP => check_riff_length(bytes)?,
        _ => {}
    }
    // Until the header is read, the decoder may allocate what an image at the pixel limit could need.
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(options.max_file_bytes());
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let (width, height) = decoder.dimensions();
    check_size(width as usize, height as usize, options)?;
    // The output buffer, as much again for the decoder's own scratch (its allocation cap, below), the RGB8
    // copy (3 bytes a pixel) and preprocessing's f32 planes (8).
    let output = decoder.total_bytes();
    let scratch = output.saturating_add(SLACK_BYTES);
    let reservation = budget::global().reserve(
        output
            .saturating_add(scratch)
            .saturating_add(pixels(width as usize, height as usize) * 11),
    )?;
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(scratch);
    decoder
        .set_limits(limits)
        .map_err(|e| format!("cannot decode: {e}"))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| describe_image_error(&e))?;
    Ok(Decoded {
        image: to_rgb8(image),
        _reservation: reservation,
    })
}

fn describe_image_error(error: &image::ImageError) -> String {
    match error {
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TRUNCATED.into()
        }
        other => format!("corrupt or truncated image: {other}"),
    }
}

/// Pillow shows a GIF's first frame on a canvas grown to hold it; the `image` crate crops the frame to the
/// logical screen. Check the frame's own size against the pixel limit before anything is allocated (a
/// 16000×16000 frame on a 10×10 screen would pass a check of the screen alone), and refuse a frame that
/// leaves the screen rather than return pixels that differ from Pillow's.
fn check_gif_first_frame(bytes: &[u8], options: &DecodeOptions) -> Result<(), DecodeFailure> {
    let mut gif_options = gif::DecodeOptions::new();
    gif_options.set_color_output(gif::ColorOutput::Indexed);
    let mut reader = gif_options
        .read_info(Cursor::new(bytes))
        .map_err(|e| describe_gif_error(&e))?;
    let (screen_w, screen_h) = (reader.width() as usize, reader.height() as usize);
    let frame = reader
        .next_frame_info()
        .map_err(|e| describe_gif_error(&e))?
        .ok_or("GIF holds no image frame")?;
    let right = frame.left as usize + frame.width as usize;
    let bottom = frame.top as usize + frame.height as usize;
    check_size(right.max(screen_w), bottom.max(screen_h), options)?;
    if right > screen_w || bottom > screen_h {
        return Err(format!(
            "GIF frame {}x{} at ({}, {}) extends beyond the {screen_w}x{screen_h} logical screen (unsupported)",
            frame.width, frame.height, frame.left, frame.top
        ));
    }
    Ok(())
}

/// libwebp (Pillow's decoder) refuses a file shorter than its RIFF header says; the `image` crate decodes
/// what is there when the cut falls in padding or trailing chunks. Refuse it as Pillow does.
fn check_riff_length(bytes: &[u8]) -> Result<(), DecodeFailure> {
    let declared = bytes
        .get(4..8)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64 + 8);
    match declared {
        Some(length) if (bytes.len() as u64) >= length => Ok(()),
        _ => Err(TRUNCATED.into()),
    }
}

fn describe_gif_error(error: &gif::DecodingError) -> String {
    match error {
        gif::DecodingError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TRUNCATED.into()
        }
        other => format!("corrupt or truncated image: {other}"),
    }
}

/// Drop alpha (as Pillow's `convert("RGB")` does), replicate grey, and scale 16-bit samples by `>> 8`
/// (Pillow clamps them instead, turning most 16-bit images white: a deliberate, documented difference).
fn to_rgb8(image: DynamicImage) -> Rgb8Image {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let pixels: Vec<u8> = match image {
        DynamicImage::ImageRgb8(buf) => buf.into_raw(),
        DynamicImage::ImageLuma8(buf) => {
            buf.into_raw().into_iter().flat_map(|v| [v, v, v]).collect()
        }
        DynamicImage::ImageLumaA8(buf) => buf
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[0], p[0]])
            .collect(),
        DynamicImage::ImageRgba8(buf) => buf
            .into_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect(),
        DynamicImage::ImageLuma16(buf) => buf
            .into_raw()
            .into_iter()
            .flat_map(|v| [(v >> 8) as u8; 3])
            .collect(),
        DynamicImage::ImageLumaA16(buf) => buf
            .into_raw()
            .chunks_exact(2)
            .flat_map(|p| [(p[0] >> 8) as u8; 3])
            .collect(),
        DynamicImage::ImageRgb16(buf) => {
            buf.into_raw().into_iter().map(|v| (v >> 8) as u8).collect()
        }
        DynamicImage::ImageRgba16(buf) => buf
            .into_raw()
            .chunks_exact(4)
            .flat_map(|p| [(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            .collect(),
        other => other.to_rgb8().into_raw(),
    };
    Rgb8Image::new(width, height, pixels)
}
