//! `Fit::SquareCrop`'s crop: the centred square of an image, as google-research/cmmd takes it before resizing
//! (`_center_crop_and_resize`: side `min(w, h)`, offsets `(h − side) // 2` and `(w − side) // 2`). Pillow's
//! `Image.crop` then `resize` never reads outside the square, so the resampler is given the square alone.

use std::cell::RefCell;

use crate::image::Rgb8View;

/// (left, top, side) of the centred square of a `width × height` image.
pub fn centred_square(width: usize, height: usize) -> (usize, usize, usize) {
    let side = width.min(height);
    ((width - side) / 2, (height - side) / 2, side)
}

/// The square's pixels, copied out of `image` into `buffer` (cleared first).
pub fn copy_centred_square(image: Rgb8View<'_>, buffer: &mut Vec<u8>) -> usize {
    let (left, top, side) = centred_square(image.width, image.height);
    buffer.clear();
    for y in top..top + side {
        buffer.extend_from_slice(&image.row(y)[3 * left..][..3 * side]);
    }
    side
}

thread_local! {
    /// The copied square, reused from image to image.
    static SQUARE: RefCell<Vec<u8>> = RefCell::default();
}

/// Run `f` on the centred square of `image` (the image itself when it is square, else a per-thread copy).
pub fn with_centred_square<R>(image: Rgb8View<'_>, f: impl FnOnce(Rgb8View<'_>) -> R) -> R {
    if image.width == image.height {
        return f(image);
    }
    SQUARE.with(|buffer| {
        let buffer = &mut *buffer.borrow_mut();
        let side = copy_centred_square(image, buffer);
        f(Rgb8View::new(side, side, buffer))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_floored_halves_of_the_excess() {
        assert_eq!(centred_square(487, 313), (87, 0, 313)); // (487 − 313) // 2 = 87
        assert_eq!(centred_square(313, 488), (0, 87, 313)); // 175 // 2 = 87, floor
        assert_eq!(centred_square(1, 9), (0, 4, 1));
        assert_eq!(centred_square(9, 1), (4, 0, 1));
        assert_eq!(centred_square(64, 64), (0, 0, 64));
    }

    #[test]
    fn the_copy_is_the_square_of_the_source() {
        // 5 wide, 2 high: the square is columns 1..3 (left = 3 // 2 = 1) of both rows.
        let pixels: Vec<u8> = (0..5 * 2 * 3).map(|i| i as u8).collect();
        let image = Rgb8View::new(5, 2, &pixels);
        let mut buffer = vec![7; 3];
        assert_eq!(copy_centred_square(image, &mut buffer), 2);
        let expected: Vec<u8> = [3..9, 18..24]
            .into_iter()
            .flatten()
            .map(|i| i as u8)
            .collect();
        assert_eq!(buffer, expected);
    }
}
