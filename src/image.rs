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
        assert_rgb8_len(width, height, pixels.len());
        Self {
            width,
            height,
            pixels,
        }
    }
}

/// Borrowed RGB8 pixels (an `Rgb8Image`, or one image of a caller's N×H×W×3 array), what preprocessing reads.
#[derive(Debug, Clone, Copy)]
pub struct Rgb8View<'a> {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes, row-major, RGB interleaved.
    pub pixels: &'a [u8],
}

impl<'a> Rgb8View<'a> {
    pub fn new(width: usize, height: usize, pixels: &'a [u8]) -> Self {
        assert_rgb8_len(width, height, pixels.len());
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Row `y`: `width * 3` interleaved bytes.
    pub fn row(&self, y: usize) -> &'a [u8] {
        &self.pixels[y * self.width * 3..][..self.width * 3]
    }
}

impl Rgb8Image {
    pub fn view(&self) -> Rgb8View<'_> {
        Rgb8View::new(self.width, self.height, &self.pixels)
    }
}

/// Both constructors' invariant: `height * width * 3` bytes.
fn assert_rgb8_len(width: usize, height: usize, len: usize) {
    assert_eq!(
        len,
        width * height * 3,
        "pixel buffer does not match its size"
    );
}
