//! WebP through `image-webp`. Pillow decodes every WebP with libwebp's `WebPAnimDecoder`, whose first
//! frame is decoded onto a zeroed (transparent black) canvas without blending (the first frame is a key
//! frame), so an animation's first frame is cut out here, decoded as a still image and placed on a zero
//! canvas; `image-webp`'s own compositing (background colour, alpha blending) is never used. Alpha is then
//! dropped, as `convert("RGB")` does.

use std::io::Cursor;

use super::{finish, reserve, DecodeFailure, DecodeOptions, Decoded, TRUNCATED};
use crate::image::Rgb8Image;

fn le24(b: &[u8]) -> usize {
    b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16
}

/// One RIFF chunk: its fourcc and payload.
type Chunk<'a> = ([u8; 4], &'a [u8]);

/// The chunks of a RIFF body.
fn chunks(mut body: &[u8]) -> Result<Vec<Chunk<'_>>, DecodeFailure> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 8 {
            return Err(TRUNCATED.into());
        }
        let kind = [body[0], body[1], body[2], body[3]];
        let size = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
        let padded = size + (size & 1);
        let payload = body.get(8..8 + size).ok_or(TRUNCATED)?;
        out.push((kind, payload));
        body = body.get(8 + padded..).unwrap_or(&[]);
    }
    Ok(out)
}

fn riff_chunk(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 9);
    out.extend_from_slice(kind);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// A still WebP file holding one animation frame's bitstream (`ALPH` + `VP8 `, or `VP8L`, or `VP8 `).
fn still_from_frame(frame: &[u8], width: usize, height: usize) -> Result<Vec<u8>, DecodeFailure> {
    let parts = chunks(frame)?;
    let mut body = b"WEBP".to_vec();
    if parts.iter().any(|(k, _)| k == b"ALPH") {
        let mut vp8x = vec![0x10, 0, 0, 0];
        vp8x.extend_from_slice(&((width - 1) as u32).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&((height - 1) as u32).to_le_bytes()[..3]);
        body.extend(riff_chunk(b"VP8X", &vp8x));
    }
    for (kind, payload) in parts
        .iter()
        .filter(|(k, _)| matches!(k, b"ALPH" | b"VP8 " | b"VP8L"))
    {
        body.extend(riff_chunk(kind, payload));
    }
    let mut file = b"RIFF".to_vec();
    file.extend_from_slice(&(body.len() as u32).to_le_bytes());
    file.extend(body);
    Ok(file)
}

/// Decode a still WebP: RGBA if it has alpha, else RGB; `admit` sees the size before any pixel memory is
/// allocated.
fn decode_still(
    bytes: &[u8],
    options: &DecodeOptions,
    admit: impl FnOnce(usize, usize) -> Result<(), DecodeFailure>,
) -> Result<(usize, usize, Vec<u8>, bool), DecodeFailure> {
    let mut decoder = image_webp::WebPDecoder::new(Cursor::new(bytes)).map_err(|e| describe(&e))?;
    decoder.set_memory_limit(options.max_file_bytes() as usize);
    let (w, h) = decoder.dimensions();
    let (w, h) = (w as usize, h as usize);
    admit(w, h)?;
    let size = decoder
        .output_buffer_size()
        .ok_or("WebP image too large for this machine")?;
    let mut buffer = vec![0u8; size];
    decoder.read_image(&mut buffer).map_err(|e| describe(&e))?;
    Ok((w, h, buffer, decoder.has_alpha()))
}

pub(super) fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    // libwebp refuses a file shorter than its RIFF header says; a cut in padding or trailing chunks would
    // still decode here. Refuse it as Pillow does.
    let declared = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as u64 + 8;
    if (bytes.len() as u64) < declared {
        return Err(TRUNCATED.into());
    }
    let body = &bytes[12..declared as usize];
    let parts = chunks(body)?;
    let animated = matches!(parts.first(), Some((kind, d)) if kind == b"VP8X" && d.len() >= 10 && d[0] & 0x02 != 0);
    if !animated {
        let mut reservation = None;
        let (width, height, pixels, alpha) = decode_still(bytes, options, |w, h| {
            reservation = Some(reserve(w, h, 8, options)?);
            Ok(())
        })?;
        let rgb = if alpha { drop_alpha(&pixels) } else { pixels };
        let reservation = reservation.expect("reserved before decoding");
        return Ok(finish(Rgb8Image::new(width, height, rgb), reservation));
    }
    let vp8x = parts[0].1;
    let (width, height) = (le24(&vp8x[4..]) + 1, le24(&vp8x[7..]) + 1);
    let reservation = reserve(width, height, 8, options)?;
    let (_, frame) = parts
        .iter()
        .find(|(k, _)| k == b"ANMF")
        .ok_or("animated WebP holds no frame")?;
    if frame.len() < 16 {
        return Err(TRUNCATED.into());
    }
    let (x, y) = (le24(&frame[0..]) * 2, le24(&frame[3..]) * 2);
    let (fw, fh) = (le24(&frame[6..]) + 1, le24(&frame[9..]) + 1);
    if x + fw > width || y + fh > height {
        return Err("WebP frame leaves the canvas (libwebp refuses it)".into());
    }
    let still = still_from_frame(&frame[16..], fw, fh)?;
    let (dw, dh, pixels, alpha) =
        decode_still(&still, options, |w, h| super::check_size(w, h, options))?;
    let frame_rgb = if alpha { drop_alpha(&pixels) } else { pixels };
    if (dw, dh) != (fw, fh) {
        return Err("WebP frame size disagrees with its bitstream (libwebp refuses it)".into());
    }
    let mut rgb = vec![0u8; width * height * 3];
    for row in 0..fh {
        let out = &mut rgb[((y + row) * width + x) * 3..][..fw * 3];
        out.copy_from_slice(&frame_rgb[row * fw * 3..][..fw * 3]);
    }
    Ok(finish(Rgb8Image::new(width, height, rgb), reservation))
}

fn drop_alpha(rgba: &[u8]) -> Vec<u8> {
    let mut rgb = vec![0u8; rgba.len() / 4 * 3];
    for (o, p) in rgb.chunks_exact_mut(3).zip(rgba.chunks_exact(4)) {
        o.copy_from_slice(&p[..3]);
    }
    rgb
}

fn describe(error: &image_webp::DecodingError) -> String {
    match error {
        image_webp::DecodingError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TRUNCATED.into()
        }
        other => format!("corrupt or truncated image: {other}"),
    }
}
