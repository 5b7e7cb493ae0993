//! PNG. The verdict follows Pillow's `PngImagePlugin`: every chunk before the first IDAT must be whole
//! with a correct CRC (ancillary chunks too) and pass the checks of Pillow's chunk handlers; IDAT CRCs
//! are not checked (Pillow does not read them) but the zlib stream's Adler-32 is; chunks after the image
//! data are read without CRC but must be whole. The `png` crate inflates and unfilters; samples are
//! unpacked by Pillow's rawmodes: 16-bit colour keeps the high byte, 16-bit grey is clipped to 255
//! (`I16_RGB`), 2- and 4-bit grey are scaled by 85 and 17, palette entries the PLTE chunk does not give
//! are black. The first frame of an APNG is the IDAT image, placed where its fcTL puts it.

use std::io::Cursor;

use super::pixels::{clip16, Palette};
use super::{finish, reserve, DecodeFailure, DecodeOptions, Decoded, TRUNCATED};
use crate::image::Rgb8Image;

/// Pillow's limits for text chunks (`MAX_TEXT_CHUNK`, `MAX_TEXT_MEMORY`).
const MAX_TEXT_CHUNK: usize = 1 << 20;
const MAX_TEXT_MEMORY: usize = 64 << 20;

struct Chunk<'a> {
    kind: [u8; 4],
    data: &'a [u8],
    /// The stored CRC, if the file holds it.
    crc: Option<u32>,
    end: usize,
}

/// The chunk at `at`: None when its 8-byte header is cut or its type is not four word characters (where
/// Pillow's reader stops); Err when its data is cut.
fn chunk_at(bytes: &[u8], at: usize) -> Option<Result<Chunk<'_>, DecodeFailure>> {
    let header = bytes.get(at..at.checked_add(8)?)?;
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let kind = [header[4], header[5], header[6], header[7]];
    if !kind.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_') {
        return None;
    }
    let start = at + 8;
    let Some(data) = bytes.get(start..start.saturating_add(length)) else {
        return Some(Err(TRUNCATED.into()));
    };
    let crc = bytes
        .get(start + length..start + length + 4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    Some(Ok(Chunk {
        kind,
        data,
        crc,
        end: start + length + 4,
    }))
}

fn crc32(kind: &[u8; 4], data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(kind);
    hasher.update(data);
    hasher.finalize()
}

/// What the walk learns before the image data.
#[derive(Default)]
struct Header {
    /// (bit depth, colour type) as Pillow's `_MODES` knows them, else None.
    mode: Option<(u8, u8)>,
    width: u32,
    height: u32,
    palette: Option<Vec<u8>>,
    animated: bool,
    sequence: Option<u32>,
    text_memory: usize,
}

fn be32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// Pillow's `_safe_zlib_decompress` refuses text that inflates past `MAX_TEXT_CHUNK`; a broken stream is
/// ignored. Returns the inflated length.
fn inflated_text_len(data: &[u8]) -> Result<usize, DecodeFailure> {
    let mut inflater = flate2::Decompress::new(true);
    let mut out = vec![0u8; MAX_TEXT_CHUNK + 1];
    match inflater.decompress(data, &mut out, flate2::FlushDecompress::Finish) {
        Ok(_) if inflater.total_out() as usize > MAX_TEXT_CHUNK => Err(
            "PNG text or ICC chunk inflates past Pillow's MAX_TEXT_CHUNK (Pillow refuses it)"
                .into(),
        ),
        Ok(_) => Ok(inflater.total_out() as usize),
        Err(_) => Ok(0),
    }
}

/// The checks Pillow's `chunk_*` handlers make (each failure is an exception that refuses the file).
fn check_chunk(kind: &[u8; 4], d: &[u8], header: &mut Header) -> Result<(), DecodeFailure> {
    let refuse = |what: &str| Err(format!("broken PNG file ({what}), as Pillow refuses it"));
    match kind {
        b"IHDR" => {
            if d.len() < 13 {
                return refuse("truncated IHDR chunk");
            }
            header.width = be32(d, 0);
            header.height = be32(d, 4);
            let (depth, colour) = (d[8], d[9]);
            let known = matches!(
                (depth, colour),
                (1 | 2 | 4 | 8 | 16, 0)
                    | (8 | 16, 2)
                    | (1 | 2 | 4 | 8, 3)
                    | (8 | 16, 4)
                    | (8 | 16, 6)
            );
            header.mode = known.then_some((depth, colour));
            if d[11] != 0 {
                return refuse("unknown filter category");
            }
        }
        b"PLTE" => {
            if matches!(header.mode, Some((_, 3))) {
                header.palette = Some(d.to_vec());
            }
        }
        b"tRNS" => {
            let needed = match header.mode {
                Some((_, 0)) => 2,
                Some((8, 2)) => 6,
                _ => 0,
            };
            if d.len() < needed {
                return refuse("truncated tRNS chunk");
            }
        }
        b"gAMA" if d.len() < 4 => return refuse("truncated gAMA chunk"),
        b"cHRM" if d.len() < 32 => return refuse("truncated cHRM chunk"),
        b"sRGB" if d.is_empty() => return refuse("truncated sRGB chunk"),
        b"pHYs" if d.len() < 9 => return refuse("truncated pHYs chunk"),
        b"iCCP" => {
            let name = d.iter().position(|&b| b == 0).unwrap_or(d.len());
            match d.get(name + 1) {
                Some(0) => {
                    inflated_text_len(&d[name + 2..])?;
                }
                Some(_) => return refuse("unknown compression method in iCCP chunk"),
                None => return refuse("truncated iCCP chunk"),
            }
        }
        b"tEXt" => {
            let value = d
                .iter()
                .position(|&b| b == 0)
                .map_or(0, |k| d.len() - k - 1);
            add_text(header, value)?;
        }
        b"zTXt" => {
            if let Some(k) = d.iter().position(|&b| b == 0) {
                match d.get(k + 1) {
                    Some(0) | None => {
                        let n = inflated_text_len(d.get(k + 2..).unwrap_or(&[]))?;
                        add_text(header, n)?;
                    }
                    Some(_) => return refuse("unknown compression method in zTXt chunk"),
                }
            }
        }
        b"iTXt" => {
            // keyword \0 flag method language \0 translated \0 text
            if let Some(k) = d.iter().position(|&b| b == 0) {
                if let (Some(&flag), Some(&method)) = (d.get(k + 1), d.get(k + 2)) {
                    let rest = &d[k + 3..];
                    let mut parts = rest.splitn(3, |&b| b == 0);
                    let (_lang, _tk, text) = (parts.next(), parts.next(), parts.next());
                    if let Some(text) = text {
                        if flag != 0 && method == 0 {
                            let n = inflated_text_len(text)?;
                            add_text(header, n)?;
                        } else if flag == 0 {
                            add_text(header, text.len())?;
                        }
                    }
                }
            }
        }
        b"acTL" => {
            if d.len() < 8 {
                return refuse("truncated acTL chunk");
            }
            let frames = be32(d, 0);
            header.animated = !header.animated && frames != 0 && frames <= 0x8000_0000;
        }
        b"fcTL" => {
            if d.len() < 26 {
                return refuse("truncated fcTL chunk");
            }
            next_sequence(header, be32(d, 0))?;
            let (w, h, x, y) = (
                be32(d, 4) as u64,
                be32(d, 8) as u64,
                be32(d, 12) as u64,
                be32(d, 16) as u64,
            );
            if x + w > header.width as u64 || y + h > header.height as u64 {
                return refuse("APNG contains invalid frames");
            }
        }
        b"fdAT" => {
            if d.len() < 4 {
                return refuse("truncated fdAT chunk");
            }
            next_sequence(header, be32(d, 0))?;
        }
        _ => {}
    }
    Ok(())
}

fn add_text(header: &mut Header, n: usize) -> Result<(), DecodeFailure> {
    header.text_memory += n;
    if header.text_memory > MAX_TEXT_MEMORY {
        return Err("PNG text chunks exceed Pillow's MAX_TEXT_MEMORY (Pillow refuses it)".into());
    }
    Ok(())
}

fn next_sequence(header: &mut Header, seq: u32) -> Result<(), DecodeFailure> {
    let expected = header.sequence.map_or(Some(0), |s| s.checked_add(1));
    if expected != Some(seq) {
        return Err(
            "broken PNG file (APNG contains frame sequence errors), as Pillow refuses it".into(),
        );
    }
    header.sequence = Some(seq);
    Ok(())
}

/// Walk the chunks as Pillow does; return the header and the fcTL offset of the IDAT frame, if any.
fn walk(bytes: &[u8]) -> Result<(Header, Option<(u32, u32)>), DecodeFailure> {
    let mut header = Header::default();
    let mut at = 8;
    let mut offset = None;
    // Before the image data: whole chunks, correct CRCs, handler checks.
    loop {
        let chunk = chunk_at(bytes, at)
            .ok_or("broken PNG file (bad chunk header before the image data)")??;
        match &chunk.kind {
            b"IDAT" => break,
            b"fdAT" => {
                check_chunk(&chunk.kind, chunk.data, &mut header)?;
                break;
            }
            b"IEND" => return Err("PNG holds no image data".into()),
            _ => {}
        }
        check_chunk(&chunk.kind, chunk.data, &mut header)?;
        if chunk.kind == *b"fcTL" {
            offset = Some((be32(chunk.data, 12), be32(chunk.data, 16)));
        }
        match chunk.crc {
            None => return Err("broken PNG file (incomplete checksum)".into()),
            Some(crc) if crc != crc32(&chunk.kind, chunk.data) => {
                let kind = String::from_utf8_lossy(&chunk.kind).into_owned();
                return Err(format!(
                    "broken PNG file (bad checksum in the {kind} chunk), as Pillow refuses it"
                ));
            }
            Some(_) => {}
        }
        at = chunk.end;
    }
    // After it: Pillow reads every chunk to IEND (or the next frame) without CRCs; a cut chunk or a failed
    // handler check refuses the file.
    while let Some(chunk) = chunk_at(bytes, at) {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            // A cut inside the IDAT run is for the image decoder to judge (Pillow skips what it did not need).
            Err(_) if last_idat_run(bytes, at) => break,
            Err(e) => return Err(e),
        };
        match &chunk.kind {
            b"IEND" => break,
            b"fcTL" if header.animated => break,
            b"IDAT" => {}
            kind => check_chunk(kind, chunk.data, &mut header)?,
        }
        at = chunk.end;
    }
    Ok((header, offset))
}

/// Whether the chunk at `at` is an IDAT (or fdAT) chunk.
fn last_idat_run(bytes: &[u8], at: usize) -> bool {
    matches!(bytes.get(at + 4..at + 8), Some(b"IDAT") | Some(b"fdAT"))
}

pub(super) fn decode(bytes: &[u8], options: &DecodeOptions) -> Result<Decoded, DecodeFailure> {
    let (header, offset) = walk(bytes)?;
    let Some((depth, colour)) = header.mode else {
        return Err("PNG of an unknown bit depth and colour type (Pillow refuses it)".into());
    };
    let (width, height) = (header.width as usize, header.height as usize);
    super::check_size(width, height, options)?;
    let mut png_options = png::DecodeOptions::default();
    png_options.set_ignore_crc(true);
    png_options.set_ignore_adler32(false);
    // Pillow needs no IEND chunk (it stops at the end of the file); the png crate does: give it one.
    const IEND: &[u8] = b"\0\0\0\0IEND\xaeB`\x82";
    let completed;
    let bytes = if bytes.ends_with(IEND) {
        bytes
    } else {
        completed = [bytes, IEND].concat();
        &completed[..]
    };
    let mut decoder = png::Decoder::new_with_options(Cursor::new(bytes), png_options);
    decoder.set_transformations(png::Transformations::IDENTITY);
    decoder.set_limits(png::Limits {
        bytes: options.max_file_bytes() as usize,
    });
    let mut reader = decoder.read_info().map_err(|e| describe(&e))?;
    let buffer_size = reader
        .output_buffer_size()
        .ok_or("PNG image too large for this machine")?;
    let reservation = reserve(width, height, 8 + 8, options)?;
    let mut raw = vec![0u8; buffer_size];
    let frame = reader.next_frame(&mut raw).map_err(|e| describe(&e))?;
    reader.finish().map_err(|e| describe(&e)).ok();
    let (fw, fh) = (frame.width as usize, frame.height as usize);
    let line = frame.line_size;
    let palette = Palette::from_packed(header.palette.as_deref().unwrap_or(&[]), 3, false);
    let (ox, oy) = if (fw, fh) == (width, height) {
        (0, 0)
    } else {
        let (x, y) = offset.unwrap_or((0, 0));
        (x as usize, y as usize)
    };
    if ox + fw > width || oy + fh > height {
        return Err("APNG first frame leaves the image (Pillow refuses it)".into());
    }
    if (colour, depth, ox, oy, fw, fh) == (2, 8, 0, 0, width, height) && line == width * 3 {
        // The common case: the samples are the pixels.
        raw.truncate(width * height * 3);
        return Ok(finish(Rgb8Image::new(width, height, raw), reservation));
    }
    // Pixels outside the IDAT frame are zero: black, or palette entry 0.
    let zero = if colour == 3 { palette.rgb(0) } else { [0; 3] };
    let mut pixels = vec![0u8; width * height * 3];
    if zero != [0; 3] {
        pixels
            .chunks_exact_mut(3)
            .for_each(|p| p.copy_from_slice(&zero));
    }
    for y in 0..fh {
        let row = &raw[y * line..][..line];
        let out = &mut pixels[((oy + y) * width + ox) * 3..][..fw * 3];
        unpack_row(row, depth, colour, &palette, out);
    }
    Ok(finish(Rgb8Image::new(width, height, pixels), reservation))
}

fn unpack_row(row: &[u8], depth: u8, colour: u8, palette: &Palette, out: &mut [u8]) {
    let width = out.len() / 3;
    // The 8-bit layouts, row at a time.
    match (colour, depth) {
        (2, 8) => return out.copy_from_slice(&row[..width * 3]),
        (6, 8) => {
            for (o, p) in out.chunks_exact_mut(3).zip(row.chunks_exact(4)) {
                o.copy_from_slice(&p[..3]);
            }
            return;
        }
        (0, 8) => {
            for (o, &v) in out.chunks_exact_mut(3).zip(row) {
                o.fill(v);
            }
            return;
        }
        (3, 8) => {
            for (o, &i) in out.chunks_exact_mut(3).zip(row) {
                o.copy_from_slice(&palette.rgb(i));
            }
            return;
        }
        _ => {}
    }
    let sample = |x: usize| -> u8 {
        // Sub-byte samples, most significant first.
        let per_byte = 8 / depth as usize;
        let shift = 8 - depth as usize * (x % per_byte + 1);
        (row[x / per_byte] >> shift) & ((1u16 << depth) - 1) as u8
    };
    let be16 = |i: usize| u16::from_be_bytes([row[2 * i], row[2 * i + 1]]);
    for x in 0..width {
        let rgb = match (colour, depth) {
            (0, 1) => [if sample(x) != 0 { 255 } else { 0 }; 3],
            (0, 2) => [sample(x) * 85; 3],
            (0, 4) => [sample(x) * 17; 3],
            (0, 8) => [row[x]; 3],
            (0, _) => [clip16(be16(x)); 3],
            (2, 8) => [row[3 * x], row[3 * x + 1], row[3 * x + 2]],
            (2, _) => [row[6 * x], row[6 * x + 2], row[6 * x + 4]],
            (3, 8) => palette.rgb(row[x]),
            (3, _) => palette.rgb(sample(x)),
            (4, 8) => [row[2 * x]; 3],
            (4, _) => [row[4 * x]; 3],
            (6, 8) => [row[4 * x], row[4 * x + 1], row[4 * x + 2]],
            _ => [row[8 * x], row[8 * x + 2], row[8 * x + 4]],
        };
        out[3 * x..3 * x + 3].copy_from_slice(&rgb);
    }
}

fn describe(error: &png::DecodingError) -> String {
    match error {
        png::DecodingError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            TRUNCATED.into()
        }
        png::DecodingError::LimitsExceeded => {
            "PNG needs more memory than the pixel limit allows".into()
        }
        other => format!("corrupt or truncated image: {other}"),
    }
}
