//! Re-encoding shrunk pixels for storage: the format each upload is stored in and the quality.
//!
//! The rule: lossy sources (JPEG, lossy WebP) are stored as JPEG; lossless sources keep a
//! lossless format (PNG as PNG, lossless WebP as lossless WebP); anything with transparency
//! that JPEG cannot hold is stored as PNG. Storing a lossy source losslessly would keep its
//! compression artefacts at several times the bytes (the image crate only writes lossless
//! WebP); storing a lossless source as JPEG would smear the sharp edges and text of the
//! screenshots and graphics that usually come as PNG. Everything is written with 8 bits per
//! channel (what screens show), and an alpha channel only when some pixel is transparent.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageFormat};

use crate::error::ApiError;

/// JPEG quality of display images, seen at full size. The image crate's default, 75, leaves
/// visible blocks in skies, skin and gradients at that size; at 85 (the quality scale of
/// libjpeg, whose tables the encoder uses) they are gone for photographs, and higher settings
/// mostly add bytes.
pub(crate) const DISPLAY_JPEG_QUALITY: u8 = 85;
/// JPEG quality of thumbnails: shown at a fraction of a screen, often scaled down further, and
/// loaded dozens at a time in a feed, where fewer bytes matter more than detail nobody sees.
pub(crate) const THUMBNAIL_JPEG_QUALITY: u8 = 80;

/// The format an image is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored {
    Jpeg,
    Png,
    WebpLossless,
}

impl Stored {
    /// The format for an upload of `source` format (`lossy` as its header says), whose shrunk
    /// pixels are `image`.
    pub fn for_upload(source: ImageFormat, lossy: bool, image: &DynamicImage) -> Self {
        let transparent = is_transparent(image);
        match (source, lossy) {
            (ImageFormat::WebP, false) => Stored::WebpLossless,
            (_, true) if !transparent => Stored::Jpeg,
            _ => Stored::Png,
        }
    }

    /// The file extension, which `/media/{key}` turns back into a content type.
    pub fn extension(self) -> &'static str {
        match self {
            Stored::Jpeg => "jpg",
            Stored::Png => "png",
            Stored::WebpLossless => "webp",
        }
    }

    /// `image` in this format; `jpeg_quality` applies to JPEG only.
    pub fn encode(self, image: &DynamicImage, jpeg_quality: u8) -> Result<Vec<u8>, ApiError> {
        let pixels = eight_bit(image, self != Stored::Jpeg && is_transparent(image));
        let mut out = Vec::new();
        let written = match self {
            Stored::Jpeg => pixels.write_with_encoder(JpegEncoder::new_with_quality(
                &mut Cursor::new(&mut out),
                jpeg_quality,
            )),
            Stored::Png => pixels.write_with_encoder(PngEncoder::new(&mut Cursor::new(&mut out))),
            Stored::WebpLossless => {
                pixels.write_with_encoder(WebPEncoder::new_lossless(&mut Cursor::new(&mut out)))
            }
        };
        written
            .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("encoding an image")))?;
        Ok(out)
    }
}

/// Whether any pixel is less than opaque.
fn is_transparent(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(pixels) => pixels.pixels().any(|p| p.0[1] < u8::MAX),
        DynamicImage::ImageRgba8(pixels) => pixels.pixels().any(|p| p.0[3] < u8::MAX),
        DynamicImage::ImageLumaA16(pixels) => pixels.pixels().any(|p| p.0[1] < u16::MAX),
        DynamicImage::ImageRgba16(pixels) => pixels.pixels().any(|p| p.0[3] < u16::MAX),
        DynamicImage::ImageRgba32F(pixels) => pixels.pixels().any(|p| p.0[3] < 1.0),
        _ => false,
    }
}

/// The pixels with 8 bits per channel, grey kept grey, alpha kept only when `alpha`.
fn eight_bit(image: &DynamicImage, alpha: bool) -> DynamicImage {
    let grey = matches!(
        image,
        DynamicImage::ImageLuma8(_)
            | DynamicImage::ImageLumaA8(_)
            | DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
    );
    match (grey, alpha) {
        (true, false) => DynamicImage::ImageLuma8(image.to_luma8()),
        (true, true) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        (false, false) => DynamicImage::ImageRgb8(image.to_rgb8()),
        (false, true) => DynamicImage::ImageRgba8(image.to_rgba8()),
    }
}

#[cfg(test)]
mod tests {
    use image::{Rgba, RgbaImage};

    use super::*;

    fn rgba(alpha: u8) -> DynamicImage {
        DynamicImage::ImageRgba8(RgbaImage::from_pixel(4, 4, Rgba([10, 20, 30, alpha])))
    }

    #[test]
    fn lossy_sources_become_jpeg_unless_transparent() {
        assert_eq!(
            Stored::for_upload(ImageFormat::Jpeg, true, &rgba(255)),
            Stored::Jpeg
        );
        assert_eq!(
            Stored::for_upload(ImageFormat::WebP, true, &rgba(255)),
            Stored::Jpeg
        );
        assert_eq!(
            Stored::for_upload(ImageFormat::WebP, true, &rgba(128)),
            Stored::Png
        );
    }

    #[test]
    fn lossless_sources_stay_lossless() {
        assert_eq!(
            Stored::for_upload(ImageFormat::Png, false, &rgba(255)),
            Stored::Png
        );
        assert_eq!(
            Stored::for_upload(ImageFormat::Png, false, &rgba(0)),
            Stored::Png
        );
        assert_eq!(
            Stored::for_upload(ImageFormat::WebP, false, &rgba(255)),
            Stored::WebpLossless
        );
    }

    #[test]
    fn an_opaque_alpha_channel_is_not_stored() {
        let Ok(png) = Stored::Png.encode(&rgba(255), 0) else {
            panic!("encoding a PNG");
        };
        let Ok(decoded) = image::load_from_memory(&png) else {
            panic!("decoding it again");
        };
        assert_eq!(decoded.color(), image::ColorType::Rgb8);
    }
}
