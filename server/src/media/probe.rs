//! What an upload claims to be, read from its header before any pixel is decoded: its format,
//! its size, whether it is lossy, its orientation and what decoding it will cost in memory.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::ApiError;
use crate::media::ImageLimits;

/// What the header of an accepted upload says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub format: ImageFormat,
    /// JPEG or lossy WebP: re-encoding it losslessly would store its artefacts at several times
    /// the bytes.
    pub lossy: bool,
    /// How the camera says the pixels must be turned to stand upright.
    pub orientation: Orientation,
    /// The bytes the decoded pixels take.
    pub decoded_bytes: u64,
    /// The bytes decoding and shrinking take besides the decoded pixels.
    pub working_bytes: u64,
}

impl Probe {
    /// Everything decoding this image will allocate, about.
    pub fn cost(&self) -> u64 {
        self.decoded_bytes.saturating_add(self.working_bytes)
    }
}

/// Reads the header: 415 for anything but JPEG, PNG or WebP, 422 for a header that cannot be
/// read or claims more than `max_side` on a side or the limits allow.
pub(crate) fn probe(bytes: &[u8], max_side: u32, limits: &ImageLimits) -> Result<Probe, ApiError> {
    let format = sniff(bytes)?;
    let mut decoder = reader(bytes, format).into_decoder().map_err(unreadable)?;
    // Dimensions come from the header: a tiny file claiming 60000×60000 stops here.
    let (width, height) = lossless_webp_dimensions(bytes).unwrap_or(decoder.dimensions());
    check_size(width, height, max_side, limits)?;
    let decoded_bytes = decoder.total_bytes();
    if decoded_bytes > limits.decode_bytes() {
        return Err(too_costly(decoded_bytes, limits));
    }
    // A malformed EXIF block only loses its orientation; it never refuses the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let bytes_per_pixel = u64::from(decoder.color_type().bytes_per_pixel());
    Ok(Probe {
        format,
        lossy: format == ImageFormat::Jpeg || (format == ImageFormat::WebP && webp_is_lossy(bytes)),
        orientation,
        decoded_bytes,
        working_bytes: jpeg_coefficient_bytes(bytes)
            + shrink_bytes(width, height, bytes_per_pixel, limits.display_max_side),
    })
}

/// What a decoder may allocate for itself, besides the pixels it decodes into (whose size
/// [`probe`] checks against `PULSE_MAX_IMAGE_PIXELS`): row buffers, and the ICC profile a PNG
/// header holds deflated. The header is read before the decode gate, so a 10 MiB PNG whose
/// profile inflates to gigabytes must stop here, not at the pixel budget.
const DECODER_OWN_BYTES: u64 = 16 << 20;

/// A reader of `bytes` whose decoder may allocate [`DECODER_OWN_BYTES`] for itself. It sets
/// no side limit: [`check_size`] names the size it refuses, which the decoder's would not.
pub(crate) fn reader(bytes: &[u8], format: ImageFormat) -> ImageReader<Cursor<&[u8]>> {
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(DECODER_OWN_BYTES);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(decoder_limits);
    reader
}

/// JPEG, PNG or WebP, from the bytes (the declared type and file name are never trusted).
fn sniff(bytes: &[u8]) -> Result<ImageFormat, ApiError> {
    image::guess_format(bytes)
        .ok()
        .filter(|f| matches!(f, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP))
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType("The image must be JPEG, PNG or WebP.".into())
        })
}

pub(crate) fn unreadable(error: image::ImageError) -> ApiError {
    ApiError::validation("image", format!("could not read the image: {error}"))
}

fn check_size(
    width: u32,
    height: u32,
    max_side: u32,
    limits: &ImageLimits,
) -> Result<(), ApiError> {
    if width == 0 || height == 0 || width > max_side || height > max_side {
        return Err(ApiError::validation(
            "image",
            format!("must be at most {max_side}×{max_side} pixels (got {width}×{height})"),
        ));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ApiError::validation(
            "image",
            format!(
                "must have at most {} pixels (got {width}×{height})",
                limits.max_pixels
            ),
        ));
    }
    Ok(())
}

/// 16 bits per channel double what a pixel costs: such an image may have half the pixels.
fn too_costly(decoded_bytes: u64, limits: &ImageLimits) -> ApiError {
    ApiError::validation(
        "image",
        format!(
            "needs {} MiB to decode, more than the {} MiB allowed; save it with 8 bits per channel or fewer pixels",
            decoded_bytes >> 20,
            limits.decode_bytes() >> 20
        ),
    )
}

/// A lossless WebP's dimensions, read from its header: image-webp 0.2.4 masks `width - 1 + 1`
/// to 14 bits, so it reports a 16,384-pixel side as 0 (the image was still refused, but the
/// message named the wrong size). `None` for anything but a simple lossless WebP.
fn lossless_webp_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    // RIFF header (12), "VP8L" and its size (8), the 0x2f signature, then 14 bits each of
    // width - 1 and height - 1, little-endian.
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..16)? != b"WEBPVP8L" || *bytes.get(20)? != 0x2f {
        return None;
    }
    let bits = u32::from_le_bytes(bytes.get(21..25)?.try_into().ok()?);
    Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
}

/// Whether a WebP's image data is a lossy `VP8 ` chunk (rather than lossless `VP8L`): the
/// RIFF chunks after the 12-byte header are walked until one of the two turns up.
fn webp_is_lossy(bytes: &[u8]) -> bool {
    let mut at = 12usize;
    while let (Some(fourcc), Some(size)) = (bytes.get(at..at + 4), bytes.get(at + 4..at + 8)) {
        match fourcc {
            b"VP8 " => return true,
            b"VP8L" => return false,
            _ => {}
        }
        let size = size.try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX) as usize;
        // Chunks are padded to an even length.
        at = match at.checked_add(8 + size + (size & 1)) {
            Some(next) => next,
            None => return false,
        };
    }
    false
}

/// What a progressive JPEG's decoder holds besides the pixels: zune-jpeg keeps every DCT
/// coefficient (2 bytes per sample of each component) until the last scan. 8000×8000 at 4:4:4
/// took 582 MB against 192 MB for the same image as a baseline JPEG. 0 for a baseline JPEG
/// or anything else.
fn jpeg_coefficient_bytes(bytes: &[u8]) -> u64 {
    let Some(frame) = jpeg_frame(bytes) else {
        return 0;
    };
    if !frame.progressive {
        return 0;
    }
    let (h_max, v_max) = frame
        .components
        .iter()
        .fold((1, 1), |(h, v), c| (h.max(c.horizontal), v.max(c.vertical)));
    let padded = |side: u32, factor: u8, max: u8| {
        let samples = u64::from(side) * u64::from(factor) / u64::from(max);
        samples.div_ceil(8) * 8
    };
    frame
        .components
        .iter()
        .map(|c| {
            padded(frame.width, c.horizontal, h_max) * padded(frame.height, c.vertical, v_max) * 2
        })
        .sum()
}

struct JpegComponent {
    horizontal: u8,
    vertical: u8,
}

struct JpegFrame {
    progressive: bool,
    width: u32,
    height: u32,
    components: Vec<JpegComponent>,
}

/// The first start-of-frame segment of a JPEG, found by walking its marker segments.
fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    let mut at = 2usize;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        let length = || -> Option<usize> {
            Some(usize::from(u16::from_be_bytes(
                bytes.get(at + 2..at + 4)?.try_into().ok()?,
            )))
        };
        match marker {
            // Fill bytes before a marker.
            0xFF => at += 1,
            // Markers without a segment: TEM, RST0..RST7, SOI, EOI.
            0x01 | 0xD0..=0xD9 => at += 2,
            // SOF0..SOF15 but DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let segment = bytes.get(at + 4..at + 2 + length()?)?;
                return parse_frame(segment, matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE));
            }
            // Start of scan before any frame: not a JPEG this parser understands.
            0xDA => return None,
            _ => at += 2 + length()?,
        }
    }
}

fn parse_frame(segment: &[u8], progressive: bool) -> Option<JpegFrame> {
    // Precision (1), height (2), width (2), component count (1), then 3 bytes per component:
    // id, sampling factors (high nibble horizontal), quantisation table.
    let height = u32::from(u16::from_be_bytes(segment.get(1..3)?.try_into().ok()?));
    let width = u32::from(u16::from_be_bytes(segment.get(3..5)?.try_into().ok()?));
    let count = usize::from(*segment.get(5)?);
    let components = segment
        .get(6..6 + 3 * count)?
        .chunks_exact(3)
        .map(|c| JpegComponent {
            horizontal: (c[1] >> 4).max(1),
            vertical: (c[1] & 0x0F).max(1),
        })
        .collect();
    Some(JpegFrame {
        progressive,
        width,
        height,
        components,
    })
}

/// The shrink's temporary image and its result: fast_image_resize runs the pass over the
/// longer dimension first, into a buffer of the source's length by the target's.
fn shrink_bytes(width: u32, height: u32, bytes_per_pixel: u64, max_side: u32) -> u64 {
    let longest = u64::from(width.max(height));
    let side = u64::from(max_side).min(longest);
    (longest * side + side * side) * bytes_per_pixel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progressive_jpeg_costs_its_coefficients_and_a_baseline_one_nothing() {
        // SOI, then SOF2 of 16×8 with Y at 2×2 and Cb, Cr at 1×1 (4:2:0).
        let mut progressive = vec![0xFF, 0xD8, 0xFF, 0xC2, 0x00, 17, 8, 0, 8, 0, 16, 3];
        progressive.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        // Y: 16×8 samples; Cb and Cr: 8×4, padded to 8×8; 2 bytes each.
        assert_eq!(jpeg_coefficient_bytes(&progressive), (128 + 64 + 64) * 2);
        let mut baseline = progressive.clone();
        baseline[3] = 0xC0;
        assert_eq!(jpeg_coefficient_bytes(&baseline), 0);
    }

    #[test]
    fn broken_jpeg_segments_cost_nothing_rather_than_panic() {
        for bytes in [
            &[0xFF, 0xD8][..],
            &[0xFF, 0xD8, 0xFF, 0xC2, 0xFF, 0xFF],
            &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00],
            &[0xFF, 0xD8, 0x00],
        ] {
            assert_eq!(jpeg_coefficient_bytes(bytes), 0, "{bytes:?}");
        }
    }

    #[test]
    fn a_webp_is_lossy_when_its_image_chunk_is_vp8() {
        let webp = |chunks: &[(&[u8; 4], usize)]| {
            let mut out = b"RIFF\0\0\0\0WEBP".to_vec();
            for (fourcc, size) in chunks {
                out.extend_from_slice(*fourcc);
                out.extend_from_slice(&(*size as u32).to_le_bytes());
                out.extend(std::iter::repeat_n(0, size + size % 2));
            }
            out
        };
        assert!(webp_is_lossy(&webp(&[(b"VP8 ", 10)])));
        assert!(!webp_is_lossy(&webp(&[(b"VP8L", 10)])));
        assert!(webp_is_lossy(&webp(&[
            (b"VP8X", 10),
            (b"ALPH", 3),
            (b"VP8 ", 4)
        ])));
        assert!(!webp_is_lossy(&webp(&[(b"VP8X", 10), (b"VP8L", 4)])));
        assert!(!webp_is_lossy(b"RIFF\0\0\0\0WEBPVP8X\xff\xff\xff\xff"));
    }
}
