//! Content-addressed files under `<data dir>/media/<sha256>.<ext>`: identical images share one
//! file, and a file never changes once written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::intake::DECODES_BUSY;
use super::ImageLimits;
use crate::config::Limits;
use crate::error::ApiError;
use crate::gate::Gate;

/// Where media lives, and the gate its decodes pass.
#[derive(Clone)]
pub struct MediaStore {
    dir: PathBuf,
    /// Largest image side this store accepts (`PULSE_MAX_IMAGE_SIDE`).
    pub(crate) max_side: u32,
    /// What an upload may be and what it becomes.
    pub(crate) limits: ImageLimits,
    /// The decodes running and waiting, shared by every clone (every worker's state).
    pub(crate) decode_gate: Arc<Gate>,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore")
            .field("dir", &self.dir)
            .field("max_side", &self.max_side)
            .finish_non_exhaustive()
    }
}

impl MediaStore {
    /// The store under `data_dir`, with the image limits and decode gate of `limits`.
    pub fn open(data_dir: &Path, limits: &Limits) -> std::io::Result<Self> {
        let dir = data_dir.join("media");
        std::fs::create_dir_all(&dir)?;
        let decode_gate = Gate::new(
            limits.image_decode_concurrency,
            limits.image_decode_queue_len,
            DECODES_BUSY,
        );
        Ok(MediaStore {
            dir,
            max_side: limits.max_image_side,
            limits: ImageLimits::from(limits),
            decode_gate: Arc::new(decode_gate),
        })
    }

    /// Stores `encoded` under its content hash and returns the key (`<sha256>.<extension>`).
    /// Written to a temporary file and renamed, so a reader never sees half a file.
    pub(crate) fn put(&self, encoded: &[u8], extension: &str) -> Result<String, ApiError> {
        let key = format!("{}.{extension}", hex::encode(Sha256::digest(encoded)));
        let path = self.dir.join(&key);
        if !path.exists() {
            let tmp = self
                .dir
                .join(format!(".{key}.{}.tmp", rand::random::<u64>()));
            std::fs::write(&tmp, encoded)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("storing image")))?;
        }
        Ok(key)
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
