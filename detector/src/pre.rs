//! From image bytes to the network's input: decode (JPEG or PNG), letterbox to a square of the input
//! size with the aspect ratio kept and grey (114) padding, RGB scaled to [0, 1], laid out as CHW.

use image::{DynamicImage, ImageReader, Limits, RgbImage};

use crate::post::Letterbox;

/// Grey of the letterbox padding, ultralytics' value.
pub const PAD: u8 = 114;

/// An image that cannot be used, saying why, and of which kind its fault is (a server answers 413
/// for an image too large, 400 for the others).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ImageError {
    message: String,
    kind: ImageFault,
}

/// What is wrong with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFault {
    /// Not an image, or corrupt.
    Unreadable,
    /// An image format other than JPEG and PNG.
    Unsupported,
    /// More pixels than allowed.
    TooLarge,
    /// No pixels.
    Empty,
}

impl ImageError {
    fn new(kind: ImageFault, message: String) -> Self {
        Self { message, kind }
    }

    pub fn kind(&self) -> ImageFault {
        self.kind
    }
}

/// A decoder's message on one line (the image crate's can span several), for logs and JSON errors.
fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes a JPEG or PNG, refusing images larger than `max_pixels` before allocating for them.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::new(ImageFault::Unreadable, format!("cannot read the image: {}", one_line(e))))?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg | image::ImageFormat::Png) => {}
        Some(other) => return Err(ImageError::new(ImageFault::Unsupported, format!("{other:?} images are not supported (JPEG or PNG)"))),
        None => return Err(ImageError::new(ImageFault::Unreadable, "not a JPEG or PNG image".into())),
    }
    let (width, height) = reader.into_dimensions().map_err(|e| ImageError::new(ImageFault::Unreadable, format!("corrupt image: {}", one_line(e))))?;
    if width == 0 || height == 0 {
        return Err(ImageError::new(ImageFault::Empty, format!("image of {width}×{height} pixels is empty")));
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ImageError::new(ImageFault::TooLarge, format!("image of {width}×{height} pixels is over the limit of {max_pixels} pixels")));
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| ImageError::new(ImageFault::Unreadable, one_line(e)))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    reader.limits(limits);
    let image: DynamicImage = reader.decode().map_err(|e| ImageError::new(ImageFault::Unreadable, format!("corrupt image: {}", one_line(e))))?;
    Ok(image.into_rgb8())
}

/// Letterboxes `image` into a `size`×`size` square and returns its CHW floats and the mapping back.
pub fn letterbox(image: &RgbImage, size: u32) -> (Vec<f32>, Letterbox) {
    let (w, h) = image.dimensions();
    let scale = (size as f32 / w as f32).min(size as f32 / h as f32);
    let (new_w, new_h) = (((w as f32 * scale).round() as u32).clamp(1, size), ((h as f32 * scale).round() as u32).clamp(1, size));
    let resized = if (new_w, new_h) == (w, h) {
        image.clone()
    } else {
        image::imageops::resize(image, new_w, new_h, image::imageops::FilterType::Triangle)
    };
    // Padding split as ultralytics splits it: the odd pixel goes to the bottom and right.
    let (left, top) = ((size - new_w) / 2, (size - new_h) / 2);
    let plane = (size * size) as usize;
    let grey = f32::from(PAD) / 255.0;
    let mut chw = vec![grey; 3 * plane];
    for (x, y, pixel) in resized.enumerate_pixels() {
        let at = ((y + top) * size + (x + left)) as usize;
        for c in 0..3 {
            chw[c * plane + at] = f32::from(pixel[c]) / 255.0;
        }
    }
    (chw, Letterbox { scale, pad_x: left as f32, pad_y: top as f32, width: w, height: h })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_jpeg_is_a_one_line_error() {
        // Found by endpoint/tests/request_properties.rs: the decoder's message spans two lines.
        let mut jpeg = std::io::Cursor::new(Vec::new());
        RgbImage::from_pixel(2, 1, image::Rgb([9, 9, 9])).write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
        let error = decode(&jpeg.into_inner()[..3], 1 << 20).unwrap_err().to_string();
        assert!(error.starts_with("corrupt image: ") && !error.contains('\n'), "{error:?}");
    }

    #[test]
    fn letterbox_keeps_the_aspect_and_pads_grey() {
        let image = RgbImage::from_pixel(64, 32, image::Rgb([255, 0, 0]));
        let (chw, lb) = letterbox(&image, 32);
        assert_eq!((lb.scale, lb.pad_x, lb.pad_y), (0.5, 0.0, 8.0));
        let plane = 32 * 32;
        assert_eq!(chw.len(), 3 * plane);
        assert_eq!(chw[0], f32::from(PAD) / 255.0, "top rows are padding");
        let centre = 16 * 32 + 16;
        assert_eq!((chw[centre], chw[plane + centre], chw[2 * plane + centre]), (1.0, 0.0, 0.0), "RGB order, scaled to [0, 1]");
    }

    #[test]
    fn corrupt_oversized_and_foreign_images_are_errors() {
        let mut png = Vec::new();
        RgbImage::new(8, 8).write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        assert_eq!(decode(&png, 64).unwrap().dimensions(), (8, 8));
        let too_large = decode(&png, 63).unwrap_err();
        assert!(too_large.to_string().contains("over the limit") && too_large.kind() == ImageFault::TooLarge);
        assert_eq!(decode(b"not an image", 1 << 20).unwrap_err().kind(), ImageFault::Unreadable);
        assert!(decode(&png[..png.len() / 2], 64).unwrap_err().to_string().contains("corrupt"));
        assert!(decode(b"GIF89a....", 64).is_err());
        assert!(decode(b"plain text", 64).unwrap_err().to_string().contains("not a JPEG or PNG"));
    }
}
