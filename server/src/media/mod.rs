//! Uploaded images: intake (sniff the type from the bytes, bound size, pixels and memory before
//! decoding, decode behind a gate, shrink to the display and thumbnail sizes, re-encode so that
//! EXIF/GPS and any other metadata never survive) and content-addressed storage.
//!
//! - [`probe`]: what the header claims, and what decoding it will cost.
//! - [`intake`]: one upload, from its bytes to two stored files.
//! - [`resize`]: shrinking, with premultiplied alpha and little memory.
//! - [`encode`]: the stored format and quality.
//! - [`store`]: the files, named by their content's hash.

mod encode;
mod intake;
mod probe;
mod resize;
mod store;

pub use intake::{StoredImage, Upload};
pub use store::MediaStore;

use crate::config::Limits;

/// Working memory of one decode besides its pixels: the decoder's buffers and the shrink's
/// temporary image (62 MB for an 8000×8000 RGB upload, 84 MB for an 8192×8192 RGBA one).
const WORKING_BYTES: u64 = 128 << 20;

/// What an upload may be and what it becomes, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// `PULSE_MAX_IMAGE_PIXELS`.
    pub max_pixels: u64,
    /// `PULSE_DISPLAY_MAX_SIDE`.
    pub display_max_side: u32,
    /// `PULSE_THUMBNAIL_MAX_SIDE`.
    pub thumbnail_max_side: u32,
}

impl From<&Limits> for ImageLimits {
    fn from(limits: &Limits) -> Self {
        ImageLimits {
            max_pixels: limits.max_image_pixels,
            display_max_side: limits.display_max_side.max(1),
            thumbnail_max_side: limits.thumbnail_max_side.max(1),
        }
    }
}

impl ImageLimits {
    /// The bytes one upload's decoded pixels may take: 4 per allowed pixel (8-bit RGBA), so an
    /// image with 16 bits per channel may have half the pixels.
    pub(crate) fn decode_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(4)
    }

    /// The memory one place at the decode gate stands for: the largest decoded image allowed
    /// and its working memory. A decode that needs more (a large progressive JPEG) takes more
    /// places.
    pub(crate) fn place_bytes(&self) -> u64 {
        self.decode_bytes().saturating_add(WORKING_BYTES)
    }
}
