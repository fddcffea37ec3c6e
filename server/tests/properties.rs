//! Property tests of the two parsers that take raw input from strangers: the socket's client
//! frames (`realtime::protocol::parse_client_frame`) and the image intake (`media::MediaStore`).
//!
//! Each first replays a committed corpus, `tests/corpus/{frames,images}/`, where a file's name
//! starts with the outcome it must get (`ok-`, an error code such as `invalid_json-`, a status
//! such as `422-`, or `any-` for "anything but a panic or an untyped error"); then proptest
//! feeds generated and mutated inputs. Case counts are modest so the file runs in seconds in a
//! debug build; `PROPTEST_CASES=10000 cargo test --test properties` digs deeper. A failing case
//! is shrunk and saved under `tests/proptest-regressions/` (commit it: it is replayed first).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::ResponseError;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use pulse_server::error::ApiError;
use pulse_server::media::{ImageLimits, MediaStore, StoredImage, Upload};
use pulse_server::realtime::protocol::{parse_client_frame, ClientFrame};
use serde_json::Value;

/// The `error.code`s a refused client frame may carry.
const FRAME_CODES: [&str; 3] = ["invalid_json", "unknown_type", "invalid_frame"];
/// The side limit the image tests run with: small, so over-the-limit inputs stay small files.
const MAX_SIDE: u32 = 1024;
/// The other limits: fewer pixels than the sides allow (so a header within the sides can still
/// claim too many), and small stored sizes, so that shrinking runs on small inputs.
const LIMITS: ImageLimits = ImageLimits {
    max_pixels: 1024 * 768,
    display_max_side: 96,
    thumbnail_max_side: 24,
};
/// Generated cases per property (`PROPTEST_CASES` overrides).
const FRAME_CASES: u32 = 2000;
const IMAGE_CASES: u32 = 400;
/// Fewer: each encodes, decodes and shrinks a real image of up to 300×300.
const SHAPE_CASES: u32 = 64;

fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    files
}

/// The outcome a corpus file's name promises: everything before the first `-`.
fn promised(name: &str) -> &str {
    name.split('-').next().unwrap_or_default()
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// --- client frames ------------------------------------------------------------------------------

/// Parses and checks the one promise every input gets: `Ok`, or a known error code.
fn parse_any(text: &str) -> Result<Result<ClientFrame, &'static str>, TestCaseError> {
    match parse_client_frame(text) {
        Ok(frame) => Ok(Ok(frame)),
        Err((code, message)) => {
            prop_assert!(
                FRAME_CODES.contains(&code),
                "unknown code {code} for {text:?}"
            );
            prop_assert!(!message.is_empty(), "empty message for {text:?}");
            Ok(Err(code))
        }
    }
}

/// What `parse_client_frame` must make of a JSON value: the contract's frames, extra fields
/// ignored, everything else refused with the code that says why.
fn expected_frame(value: &Value) -> Result<ClientFrame, &'static str> {
    let kind = value.get("type").and_then(Value::as_str);
    let ids = || -> Result<Vec<i64>, &'static str> {
        value
            .get("post_ids")
            .and_then(Value::as_array)
            .ok_or("invalid_frame")?
            .iter()
            .map(|id| id.as_i64().ok_or("invalid_frame"))
            .collect()
    };
    match kind {
        Some("ping") => Ok(ClientFrame::Ping),
        Some("subscribe") => ids().map(|post_ids| ClientFrame::Subscribe { post_ids }),
        Some("unsubscribe") => ids().map(|post_ids| ClientFrame::Unsubscribe { post_ids }),
        _ => Err("unknown_type"),
    }
}

/// JSON values shaped like frames: objects whose keys are often `type` and `post_ids` and whose
/// `type` is often a real one, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof!["ping", "subscribe", "unsubscribe", "pong", "\\PC{0,12}"].prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof!["type", "post_ids", "[a-z_]{0,8}"];
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(key, inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A contract frame, built from its parts (`ClientFrame` is not `Clone`, as strategies need).
fn client_frame(kind: u8, post_ids: Vec<i64>) -> ClientFrame {
    match kind % 3 {
        0 => ClientFrame::Ping,
        1 => ClientFrame::Subscribe { post_ids },
        _ => ClientFrame::Unsubscribe { post_ids },
    }
}

/// Writes a frame as a client might: any JSON whitespace, either key order.
fn render(frame: &ClientFrame, ws: &str, type_last: bool) -> String {
    let (kind, ids) = match frame {
        ClientFrame::Ping => ("ping", None),
        ClientFrame::Subscribe { post_ids } => ("subscribe", Some(post_ids)),
        ClientFrame::Unsubscribe { post_ids } => ("unsubscribe", Some(post_ids)),
    };
    let mut members = vec![format!("\"type\"{ws}:{ws}\"{kind}\"")];
    if let Some(ids) = ids {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        let list = list.join(&format!("{ws},{ws}"));
        members.push(format!("\"post_ids\"{ws}:{ws}[{ws}{list}{ws}]"));
    }
    if type_last {
        members.reverse();
    }
    format!(
        "{ws}{{{ws}{}{ws}}}{ws}",
        members.join(&format!("{ws},{ws}"))
    )
}

#[test]
fn every_corpus_frame_gets_the_outcome_its_name_promises() {
    for (name, bytes) in corpus("frames") {
        let text = String::from_utf8(bytes).expect("frames are text (the socket gets UTF-8)");
        let outcome = parse_client_frame(&text).map_err(|(code, _)| code);
        match promised(&name) {
            "ok" => assert!(outcome.is_ok(), "{name}: {outcome:?}"),
            code => assert_eq!(outcome, Err(code), "{name}"),
        }
    }
}

proptest! {
    #![proptest_config(cases(FRAME_CASES))]

    #[test]
    fn any_text_is_parsed_or_refused_with_a_known_code(text in any::<String>()) {
        let _outcome = parse_any(&text)?;
    }

    #[test]
    fn any_bytes_read_as_text_are_parsed_or_refused(bytes in vec(any::<u8>(), 0..256)) {
        let _outcome = parse_any(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn json_values_get_exactly_the_contracts_answer(value in json_value()) {
        let text = value.to_string();
        prop_assert_eq!(parse_any(&text)?, expected_frame(&value), "{}", text);
    }

    #[test]
    fn valid_frames_round_trip(
        kind in any::<u8>(),
        post_ids in vec(any::<i64>(), 0..20),
        ws in "[ \t\r\n]{0,3}",
        type_last in any::<bool>(),
    ) {
        let frame = client_frame(kind, post_ids);
        let text = render(&frame, &ws, type_last);
        prop_assert_eq!(parse_client_frame(&text), Ok(frame), "{}", text);
    }

    #[test]
    fn mutated_corpus_frames_are_parsed_or_refused(
        pick in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let frames = corpus("frames");
        let mut bytes = frames[pick.index(frames.len())].1.clone();
        for (at, byte) in edits {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let _outcome = parse_any(&String::from_utf8_lossy(&bytes))?;
    }
}

// --- image intake -------------------------------------------------------------------------------

/// A media store in its own scratch directory, removed when dropped.
struct Scratch {
    dir: PathBuf,
    store: MediaStore,
}

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pulse-properties-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let limits = pulse_server::config::Limits {
            max_image_side: MAX_SIDE,
            ..pulse_server::config::Limits::default()
        };
        let store = MediaStore::open(&dir, &limits).expect("creating the scratch media dir");
        Scratch { dir, store }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The dimensions an image's header claims, read the way a client library would, if any.
fn header_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_dimensions()
        .ok()
}

/// The size `width`×`height` shrinks to within `max_side`, as the intake computes it.
fn fitted(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |side: u32| {
        ((u64::from(side) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest))
            .max(1) as u32
    };
    (scale(width), scale(height))
}

/// A stored file's header says `image`'s size.
fn stored_as_promised(store: &MediaStore, image: &StoredImage) -> Result<(), TestCaseError> {
    let (path, _) = store.path_for(&image.key).expect("a stored key resolves");
    let stored = std::fs::read(path).expect("the stored file is readable");
    prop_assert_eq!(
        header_dimensions(&stored),
        Some((image.width, image.height))
    );
    Ok(())
}

/// The promise every upload gets: stored shrunk to the limits (turned upright, so the sides
/// may swap), or refused with a typed error (415 or a 422 naming the `image` field), never a
/// panic or a 500. Returns the status.
fn ingest_checked(store: &MediaStore, bytes: &[u8]) -> Result<u16, TestCaseError> {
    match store.ingest_blocking(bytes, &LIMITS) {
        Ok(Upload { display, thumbnail }) => {
            let (w, h) = header_dimensions(bytes).expect("an accepted image has a header");
            prop_assert!(!over_the_limits(w, h), "{}×{} was stored", w, h);
            let shown = (display.width, display.height);
            let want = fitted(w, h, LIMITS.display_max_side);
            prop_assert!(
                shown == want || shown == (want.1, want.0),
                "{:?} from {}×{}",
                shown,
                w,
                h
            );
            let thumb = (thumbnail.width, thumbnail.height);
            prop_assert_eq!(thumb, fitted(shown.0, shown.1, LIMITS.thumbnail_max_side));
            stored_as_promised(store, &display)?;
            stored_as_promised(store, &thumbnail)?;
            Ok(201)
        }
        Err(error @ (ApiError::UnsupportedMediaType(_) | ApiError::Validation(_))) => {
            if let ApiError::Validation(fields) = &error {
                prop_assert!(fields.iter().all(|f| f.field == "image"), "{:?}", fields);
            }
            Ok(error.status_code().as_u16())
        }
        Err(other) => Err(TestCaseError::fail(format!("untyped error: {other:?}"))),
    }
}

/// Whether a header claiming `w`×`h` must be refused before decoding.
fn over_the_limits(w: u32, h: u32) -> bool {
    w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > LIMITS.max_pixels
}

/// True when the refusal is the header check (which runs before any pixel is decoded).
fn refused_by_header_check(outcome: &Result<Upload, ApiError>, w: u32, h: u32) -> bool {
    match outcome {
        Err(ApiError::Validation(fields)) => fields
            .iter()
            .any(|f| f.message.contains(&format!("(got {w}×{h})"))),
        _ => false,
    }
}

fn real_images() -> Vec<(String, Vec<u8>)> {
    corpus("images")
        .into_iter()
        .filter(|(name, _)| name.starts_with("ok-"))
        .collect()
}

fn real_image(ext: &str) -> Vec<u8> {
    real_images()
        .into_iter()
        .find(|(name, _)| name.ends_with(ext))
        .map(|(_, bytes)| bytes)
        .unwrap_or_else(|| panic!("no ok-*{ext} in the corpus"))
}

/// CRC-32 (ISO-HDLC) of PNG chunks, so a rewritten header is still a well-formed chunk.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Rewrites the size a real PNG, JPEG or WebP (lossless) declares, leaving its pixels alone.
fn claim_dimensions(ext: &str, w: u32, h: u32) -> Vec<u8> {
    let mut bytes = real_image(ext);
    match ext {
        "png" => {
            // Signature (8), IHDR length (4) and type (4), then width and height; CRC at 29.
            bytes[16..20].copy_from_slice(&w.to_be_bytes());
            bytes[20..24].copy_from_slice(&h.to_be_bytes());
            let crc = crc32(&bytes[12..29]);
            bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        }
        "jpg" => {
            let sof = bytes
                .windows(2)
                .position(|m| m == [0xFF, 0xC0])
                .expect("a baseline SOF0");
            bytes[sof + 5..sof + 7].copy_from_slice(&(h as u16).to_be_bytes());
            bytes[sof + 7..sof + 9].copy_from_slice(&(w as u16).to_be_bytes());
        }
        "webp" => {
            // RIFF header (12), "VP8L" and its size (8), signature byte, then 14 bits each of
            // width-1 and height-1 (little-endian bit order).
            assert_eq!(&bytes[12..16], b"VP8L");
            let old = u32::from_le_bytes(bytes[21..25].try_into().unwrap());
            let new = (old & !0x0FFF_FFFF) | (w - 1) | ((h - 1) << 14);
            bytes[21..25].copy_from_slice(&new.to_le_bytes());
        }
        other => panic!("no header rewriter for {other}"),
    }
    bytes
}

#[test]
fn the_largest_sides_a_format_can_claim_are_named_in_the_refusal() {
    // A lossless WebP's sides are 14 bits: 16,384 is the largest (image-webp 0.2.4 reads it as
    // 0; proptest found it once in about 1,000 runs).
    let scratch = Scratch::new();
    for (ext, w, h) in [
        ("webp", 16_384, 1),
        ("webp", 1, 16_384),
        ("webp", 16_384, 16_384),
        ("png", 16_384, 1),
        ("jpg", 1, 16_384),
    ] {
        let outcome = scratch
            .store
            .ingest_blocking(&claim_dimensions(ext, w, h), &LIMITS);
        assert!(
            refused_by_header_check(&outcome, w, h),
            "{ext} {w}×{h}: {outcome:?}"
        );
    }
}

#[test]
fn every_corpus_image_gets_the_outcome_its_name_promises() {
    let scratch = Scratch::new();
    for (name, bytes) in corpus("images") {
        let status =
            ingest_checked(&scratch.store, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        match promised(&name) {
            "any" => {}
            "ok" => assert_eq!(status, 201, "{name}"),
            code => assert_eq!(status.to_string(), code, "{name}"),
        }
    }
}

#[test]
fn oversized_headers_are_refused_before_any_pixel_is_decoded() {
    // The bomb inflates to 16 MiB and the others claim up to 65500×65500: each must be turned
    // away by the dimensions its header states, not by a decoder running out of limits.
    let scratch = Scratch::new();
    for (name, bytes) in corpus("images") {
        let Some((w, h)) = header_dimensions(&bytes) else {
            continue;
        };
        if over_the_limits(w, h) {
            let outcome = scratch.store.ingest_blocking(&bytes, &LIMITS);
            assert!(
                refused_by_header_check(&outcome, w, h),
                "{name}: {outcome:?}"
            );
        }
    }
}

/// A file type's magic bytes followed by noise: reaches each decoder's header parsing.
fn magic_then_noise() -> impl Strategy<Value = Vec<u8>> {
    let magic = prop_oneof![
        Just(b"\x89PNG\r\n\x1a\n".to_vec()),
        Just(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec()),
        Just(b"\xff\xd8\xff".to_vec()),
        Just(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00".to_vec()),
        Just(b"RIFF\x00\x01\x00\x00WEBPVP8 ".to_vec()),
        Just(b"RIFF\x00\x01\x00\x00WEBPVP8L".to_vec()),
        Just(b"RIFF\x00\x01\x00\x00WEBPVP8X".to_vec()),
    ];
    (magic, vec(any::<u8>(), 0..512)).prop_map(|(mut magic, noise)| {
        magic.extend(noise);
        magic
    })
}

proptest! {
    #![proptest_config(cases(IMAGE_CASES))]

    #[test]
    fn arbitrary_bytes_are_stored_or_refused_with_a_typed_error(
        bytes in prop_oneof![vec(any::<u8>(), 0..1024), magic_then_noise()],
    ) {
        let scratch = Scratch::new();
        ingest_checked(&scratch.store, &bytes)?;
    }

    #[test]
    fn mutated_real_images_are_stored_or_refused_with_a_typed_error(
        pick in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let images = real_images();
        let mut bytes = images[pick.index(images.len())].1.clone();
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let scratch = Scratch::new();
        ingest_checked(&scratch.store, &bytes)?;
        if let Some((w, h)) = header_dimensions(&bytes) {
            if over_the_limits(w, h) {
                let outcome = scratch.store.ingest_blocking(&bytes, &LIMITS);
                prop_assert!(refused_by_header_check(&outcome, w, h), "{:?}", outcome);
            }
        }
    }

    #[test]
    fn the_side_limit_is_read_from_the_header_of_every_format(
        ext in prop_oneof![Just("png"), Just("jpg"), Just("webp")],
        w in 1..=16_384u32,
        h in 1..=16_384u32,
    ) {
        let bytes = claim_dimensions(ext, w, h);
        let scratch = Scratch::new();
        let outcome = scratch.store.ingest_blocking(&bytes, &LIMITS);
        if over_the_limits(w, h) {
            // The pixels are those of a 16×12 image: only the header check can name this size.
            prop_assert!(refused_by_header_check(&outcome, w, h), "{} {}×{}: {:?}", ext, w, h, outcome);
        } else {
            ingest_checked(&scratch.store, &bytes)?;
        }
    }
}

/// A real `ext` image of `w`×`h`: a gradient, half transparent when `alpha` (JPEG has none).
fn encoded(ext: &str, w: u32, h: u32, alpha: bool) -> Vec<u8> {
    let pixels = image::RgbaImage::from_fn(w, h, |x, y| {
        let a = if alpha && x >= w / 2 { 0 } else { 255 };
        image::Rgba([(x * 255 / w) as u8, (y * 255 / h) as u8, 128, a])
    });
    let (image, format) = match ext {
        "jpg" => (
            image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(pixels).to_rgb8()),
            image::ImageFormat::Jpeg,
        ),
        "webp" => (
            image::DynamicImage::ImageRgba8(pixels),
            image::ImageFormat::WebP,
        ),
        _ => (
            image::DynamicImage::ImageRgba8(pixels),
            image::ImageFormat::Png,
        ),
    };
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

proptest! {
    #![proptest_config(cases(SHAPE_CASES))]

    #[test]
    fn real_images_of_any_shape_are_stored_shrunk_to_both_sizes(
        ext in prop_oneof![Just("png"), Just("jpg"), Just("webp")],
        w in 1..=300u32,
        h in 1..=300u32,
        alpha in any::<bool>(),
    ) {
        let scratch = Scratch::new();
        prop_assert_eq!(ingest_checked(&scratch.store, &encoded(ext, w, h, alpha))?, 201);
    }
}
