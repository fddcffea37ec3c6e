//! One upload, from its bytes to two stored files: probe the header, wait at the decode gate,
//! decode within the memory limits, shrink to the display size and from it to the thumbnail
//! size, turn both upright, re-encode and store.
//!
//! Decodes are gated because each can take hundreds of megabytes: forty concurrent uploads of
//! an 8000×8000 PNG (222 KB each) took the server to 7.1 GB RSS when every decode ran at once,
//! and to 0.69-0.75 GB behind the gate (`load-tests/image-burst.sh`, RESULTS.md). At most
//! `PULSE_IMAGE_DECODE_CONCURRENCY` places' worth run; `PULSE_IMAGE_DECODE_QUEUE_LEN` more
//! uploads wait, holding no thread; the rest get 503 with `Retry-After` at once.

use image::{DynamicImage, Limits as DecoderLimits};

use crate::error::ApiError;
use crate::gate::Busy;
use crate::media::encode::{Stored, DISPLAY_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY};
use crate::media::probe::{probe, reader, unreadable, Probe};
use crate::media::resize::{shrink, shrunk_copy};
use crate::media::{ImageLimits, MediaStore};

/// What an upload beyond the decode queue is told. The queue (8 by default, 2 at a time)
/// drains in about `Retry-After` when it holds the largest uploads (an 8000×8000 PNG takes
/// 0.5 s to decode on 2 cores).
pub(super) const DECODES_BUSY: Busy = Busy {
    detail: "Too many images are being processed",
    retry_after_secs: Some(2),
};

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// `<sha256>.<jpg|png|webp>`, served at `/media/{key}`.
    pub key: String,
    pub width: u32,
    pub height: u32,
}

/// What an upload is stored as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The upload shrunk to `PULSE_DISPLAY_MAX_SIDE` (never enlarged).
    pub display: StoredImage,
    /// The display image shrunk to `PULSE_THUMBNAIL_MAX_SIDE`.
    pub thumbnail: StoredImage,
}

impl MediaStore {
    /// Checks, decodes, shrinks, re-encodes and stores an upload. The header is checked at once
    /// (415, 422); the decode then waits at the gate (503 when its queue is full).
    pub async fn ingest(&self, bytes: Vec<u8>) -> Result<Upload, ApiError> {
        let limits = self.limits;
        // Reading a header is cheap (a walk over at most PULSE_MAX_IMAGE_BYTES), so refusals
        // never queue.
        let probed = probe(&bytes, self.max_side, &limits)?;
        let places = places_for(probed.cost(), limits.place_bytes());
        let store = self.clone();
        self.decode_gate
            .run(places, move || {
                store.ingest_probed(&bytes, &probed, &limits)
            })
            .await?
    }

    /// The same on the calling thread, without the gate (for tests and tools).
    pub fn ingest_blocking(&self, bytes: &[u8], limits: &ImageLimits) -> Result<Upload, ApiError> {
        let probed = probe(bytes, self.max_side, limits)?;
        self.ingest_probed(bytes, &probed, limits)
    }

    fn ingest_probed(
        &self,
        bytes: &[u8],
        probed: &Probe,
        limits: &ImageLimits,
    ) -> Result<Upload, ApiError> {
        let decoded = decode(bytes, probed, self.max_side, limits)?;
        let mut display = shrink(decoded, limits.display_max_side)?;
        // Re-encoding drops EXIF, orientation included: turn the pixels instead.
        display.apply_orientation(probed.orientation);
        let thumbnail = shrunk_copy(&display, limits.thumbnail_max_side)?;
        let format = Stored::for_upload(probed.format, probed.lossy, &display);
        Ok(Upload {
            display: self.keep(&display, format, DISPLAY_JPEG_QUALITY)?,
            thumbnail: self.keep(&thumbnail, format, THUMBNAIL_JPEG_QUALITY)?,
        })
    }

    fn keep(
        &self,
        image: &DynamicImage,
        format: Stored,
        jpeg_quality: u8,
    ) -> Result<StoredImage, ApiError> {
        let encoded = format.encode(image, jpeg_quality)?;
        Ok(StoredImage {
            key: self.put(&encoded, format.extension())?,
            width: image.width(),
            height: image.height(),
        })
    }
}

/// How many places a decode of `cost` bytes takes: one per `place_bytes`, rounded up (the gate
/// caps it at all of its places).
fn places_for(cost: u64, place_bytes: u64) -> u32 {
    u32::try_from(cost.div_ceil(place_bytes.max(1))).unwrap_or(u32::MAX)
}

/// Decodes the pixels. The probe has checked the size and the bytes they take; the decoder is
/// held to the same limits, in case it disagrees with the probe.
fn decode(
    bytes: &[u8],
    probed: &Probe,
    max_side: u32,
    limits: &ImageLimits,
) -> Result<DynamicImage, ApiError> {
    let mut decoder = reader(bytes, probed.format)
        .into_decoder()
        .map_err(unreadable)?;
    let mut decoder_limits = DecoderLimits::default();
    decoder_limits.max_alloc = Some(limits.decode_bytes());
    decoder_limits.max_image_width = Some(max_side);
    decoder_limits.max_image_height = Some(max_side);
    image::ImageDecoder::set_limits(&mut decoder, decoder_limits).map_err(unreadable)?;
    if image::ImageDecoder::total_bytes(&decoder) != probed.decoded_bytes {
        return Err(ApiError::validation(
            "image",
            "the image's header is inconsistent",
        ));
    }
    DynamicImage::from_decoder(decoder).map_err(unreadable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decode_takes_one_place_per_place_worth_of_memory() {
        let place = 384 << 20;
        assert_eq!(places_for(1, place), 1);
        assert_eq!(places_for(place, place), 1);
        assert_eq!(places_for(place + 1, place), 2);
        assert_eq!(places_for(u64::MAX, 0), u32::MAX);
    }
}
