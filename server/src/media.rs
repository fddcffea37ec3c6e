//! Image intake and storage: sniff the type from the bytes, bound size and dimensions before
//! decoding, decode and re-encode (so EXIF/GPS and any other metadata never survive), and store
//! the result content-addressed under `<data dir>/media/<sha256>.<ext>`.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// A stored image.
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub key: String,
    pub width: u32,
    pub height: u32,
}

/// Where media lives and what it may be.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    max_side: u32,
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

impl MediaStore {
    pub fn open(data_dir: &Path, max_side: u32) -> std::io::Result<Self> {
        let dir = data_dir.join("media");
        std::fs::create_dir_all(&dir)?;
        Ok(MediaStore { dir, max_side })
    }

    /// Validates, re-encodes and stores an upload (blocking: call from `spawn_blocking`).
    pub fn ingest(&self, bytes: &[u8]) -> Result<StoredImage, ApiError> {
        let format = image::guess_format(bytes)
            .ok()
            .filter(|f| matches!(f, ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP))
            .ok_or_else(|| {
                ApiError::UnsupportedMediaType("The image must be JPEG, PNG or WebP.".into())
            })?;
        let invalid = |e: image::ImageError| {
            ApiError::validation("image", format!("could not read the image: {e}"))
        };

        // Dimensions come from the header: a tiny file claiming 60000×60000 stops here.
        let (width, height) = match lossless_webp_dimensions(bytes) {
            Some(dimensions) => dimensions,
            None => ImageReader::with_format(Cursor::new(bytes), format)
                .into_dimensions()
                .map_err(invalid)?,
        };
        if width == 0 || height == 0 || width > self.max_side || height > self.max_side {
            return Err(ApiError::validation(
                "image",
                format!(
                    "must be at most {max}×{max} pixels (got {width}×{height})",
                    max = self.max_side
                ),
            ));
        }
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        // RGBA8 of the largest allowed image, plus decoder slack.
        limits.max_alloc =
            Some(u64::from(self.max_side) * u64::from(self.max_side) * 4 + (64 << 20));
        reader.limits(limits);
        let decoded = reader.decode().map_err(invalid)?;

        let (out_format, ext) = match format {
            ImageFormat::Png => (ImageFormat::Png, "png"),
            ImageFormat::WebP => (ImageFormat::WebP, "webp"),
            _ => (ImageFormat::Jpeg, "jpg"),
        };
        let decoded = match out_format {
            // JPEG has no alpha channel.
            ImageFormat::Jpeg => image::DynamicImage::ImageRgb8(decoded.to_rgb8()),
            ImageFormat::WebP => image::DynamicImage::ImageRgba8(decoded.to_rgba8()),
            _ => decoded,
        };
        let mut encoded = Vec::new();
        decoded
            .write_to(&mut Cursor::new(&mut encoded), out_format)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("re-encoding image: {e}")))?;

        let key = format!("{}.{ext}", hex::encode(Sha256::digest(&encoded)));
        let path = self.dir.join(&key);
        if !path.exists() {
            let tmp = self
                .dir
                .join(format!(".{key}.{}.tmp", rand::random::<u64>()));
            std::fs::write(&tmp, &encoded)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("storing image")))?;
        }
        Ok(StoredImage { key, width, height })
    }

    /// The file for a key, if the key is well-formed (`<64 hex>.<jpg|png|webp>`) and exists.
    pub fn path_for(&self, key: &str) -> Option<(PathBuf, &'static str)> {
        let (hash, ext) = key.split_once('.')?;
        if hash.len() != 64
            || !hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None;
        }
        let content_type = match ext {
            "jpg" => "image/jpeg",
            "png" => "image/png",
            "webp" => "image/webp",
            _ => return None,
        };
        let path = self.dir.join(key);
        path.is_file().then_some((path, content_type))
    }
}
