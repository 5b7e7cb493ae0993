//! GIF: the first frame as Pillow's `GifImagePlugin` shows it. The canvas is the logical screen, grown to
//! hold the frame if the frame leaves it; pixels outside the frame are the frame's transparent index if
//! its Graphic Control Extension names one, else index 0; every frame pixel is written (transparent ones
//! too). Indices go through the local palette, else the global one (a palette that is the grey ramp
//! counts as none); with neither the image is "L" (index = grey level). The `gif` crate does the LZW.

use std::io::Cursor;

use super::pixels::Palette;
use super::{finish, reserve, DecodeFailure, DecodeOptions, Decoded, TRUNCATED};
use crate::image::Rgb8Image;

/// Pillow's `_is_palette_needed`: a palette whose entry i is (i, i, i) for every entry is dropped.
fn palette_of(data: &[u8]) -> Option<Palette> {
    let grey_ramp = data
        .chunks(3)
        .enumerate()
        .all(|(i, c)| c.len() == 3 && c.iter().all(|&v| v as usize == i));
    (!grey_ramp).then(|| Palette::from_packed(data, 3, false))
}

/// The `gif` crate wants a colour table even for indices; give a palette-less file a dummy global one
/// (its colours are never used: such a file reads as grey levels).
fn with_colour_table(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 13 || bytes[10] & 0x80 != 0 {
        return None;
    }
    let mut patched = Vec::with_capacity(bytes.len() + 768);
    patched.extend_from_slice(&bytes[..13]);
    patched[10] |= 0x87;
    patched.extend(std::iter::repeat_n(0u8, 768));
    patched.extend_from_slice(&bytes[13..]);
    Some(patched)
}

/// Pillow's walk to the first frame's image data (`GifImageFile._seek`: extensions and stray bytes
/// skipped), then the sub-blocks of that data: Pillow's LZW decoder takes a sub-block only when all of it
/// is in the file, so a sub-block cut by the end of the file refuses it even where the `gif` crate would
/// already have the pixels it needs.
fn check_image_blocks(bytes: &[u8]) -> Result<(), DecodeFailure> {
    let mut pos = 13;
    if bytes.get(10).is_some_and(|f| f & 0x80 != 0) {
        pos += 3 << ((bytes[10] & 7) + 1);
    }
    let skip_blocks = |mut pos: usize| -> usize {
        while let Some(&n) = bytes.get(pos) {
            pos += 1 + n as usize;
            if n == 0 {
                break;
            }
        }
        pos
    };
    loop {
        let Some(&b) = bytes.get(pos) else {
            return Err("GIF holds no image frame (Pillow refuses it too)".into());
        };
        pos += 1;
        match b {
            b'!' => pos = skip_blocks(pos + 1),
            b',' => {
                let flags = *bytes.get(pos + 8).ok_or(TRUNCATED)?;
                pos += 9;
                if flags & 0x80 != 0 {
                    pos += 3 << ((flags & 7) + 1);
                }
                pos += 1; // LZW minimum code size
                break;
            }
            b';' => return Err("GIF holds no image frame (Pillow refuses it too)".into()),
            _ => {}
        }
    }
    loop {
        let n = *bytes.get(pos).ok_or(TRUNCATED)? as usize;
        if pos + 1 + n > bytes.len() {
            return Err(TRUNCATED.into());
        }
        if n == 0 {
            return Ok(());
        }
        pos += 1 + n;
    }
}

pub(super) fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    check_image_blocks(bytes)?;
    let has_global = bytes.get(10).is_some_and(|f| f & 0x80 != 0);
    let patched = with_colour_table(bytes);
    let bytes = patched.as_deref().unwrap_or(bytes);
    let mut gif_options = gif::DecodeOptions::new();
    gif_options.set_color_output(gif::ColorOutput::Indexed);
    let mut reader = gif_options
        .read_info(Cursor::new(bytes))
        .map_err(|e| describe(&e))?;
    let (screen_w, screen_h) = (reader.width() as usize, reader.height() as usize);
    let global = if has_global {
        reader.global_palette().and_then(palette_of)
    } else {
        None
    };
    let frame = reader
        .next_frame_info()
        .map_err(|e| describe(&e))?
        .ok_or("GIF holds no image frame")?;
    let (left, top) = (frame.left as usize, frame.top as usize);
    let (frame_w, frame_h) = (frame.width as usize, frame.height as usize);
    if frame_w == 0 || frame_h == 0 {
        return Err(format!(
            "GIF frame of {frame_w}x{frame_h} pixels (Pillow refuses it: tile cannot extend outside image)"
        ));
    }
    let transparent = frame.transparent;
    let local = frame.palette.as_deref().and_then(palette_of);
    // Pillow grows the canvas to hold a frame that leaves the screen: check that size before allocating.
    let (width, height) = (
        (left + frame_w).max(screen_w),
        (top + frame_h).max(screen_h),
    );
    let reservation = reserve(width, height, 2, options)?;
    let mut indices = vec![0u8; frame_w * frame_h];
    if !indices.is_empty() {
        reader
            .read_into_buffer(&mut indices)
            .map_err(|e| describe(&e))?;
    }
    let mut canvas = vec![transparent.unwrap_or(0); width * height];
    for (y, row) in indices.chunks_exact(frame_w.max(1)).enumerate() {
        let start = (top + y) * width + left;
        canvas[start..start + frame_w].copy_from_slice(row);
    }
    let palette = local.or(global).unwrap_or_else(Palette::grey);
    Ok(finish(
        Rgb8Image::new(width, height, palette.apply(&canvas)),
        reservation,
    ))
}

fn describe(error: &gif::DecodingError) -> String {
    match error {
        gif::DecodingError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TRUNCATED.into()
        }
        other => format!("corrupt or truncated image: {other}"),
    }
}
