//! An 8-bit RGB image with interleaved pixels, the common currency between decoding and preprocessing.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rgb8Image {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes, row-major, RGB interleaved.
    pub pixels: Vec<u8>,
}

impl Rgb8Image {
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Self {
        assert_eq!(
            pixels.len(),
            width * height * 3,
            "pixel buffer does not match its size"
        );
        Self {
            width,
            height,
            pixels,
        }
    }
}
