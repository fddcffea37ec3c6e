//! Posts, images, media serving, the feed, likes and comments.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{backend, jpeg, png, Backend, TestApp, User};

#[tokio::test(flavor = "multi_thread")]
async fn a_post_round_trips_with_its_image() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let reply = app
        .upload(&alice.token, jpeg(320, 200), "holiday.jpg", "Sunset 🌅")
        .await;
    reply.assert_status(StatusCode::CREATED);
    let post = reply.body;
    assert_eq!(post["caption"], "Sunset 🌅");
    assert_eq!(post["width"], 320);
    assert_eq!(post["height"], 200);
    assert_eq!(post["like_count"], 0);
    assert_eq!(post["comment_count"], 0);
    assert_eq!(post["liked_by_me"], false);
    assert_eq!(post["author"]["id"], alice.id);
    let fetched = app
        .get(&format!("/posts/{}", post["id"]), &alice.token)
        .await;
    fetched.assert_status(StatusCode::OK);
    assert_eq!(fetched.body, post);

    // Media is public, immutable, with an ETag and 304 on revalidation.
    let image_url = post["image_url"].as_str().unwrap();
    assert!(image_url.starts_with("/media/"), "{image_url}");
    let media = app.http.get(app.url(image_url)).send().await.unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    let headers = media.headers().clone();
    assert!(headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let content_type = headers["content-type"].to_str().unwrap().to_owned();
    let bytes = media.bytes().await.unwrap();
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 200));
    assert!(content_type.starts_with("image/"), "{content_type}");
    let revalidated = app
        .http
        .get(app.url(image_url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
    let missing = app
        .http
        .get(app.url("/media/0000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let traversal = app
        .http
        .get(app.url("/media/..%2F..%2Fpulse.db"))
        .send()
        .await
        .unwrap();
    assert_eq!(traversal.status(), StatusCode::NOT_FOUND);
}

/// A JPEG with an EXIF APP1 segment carrying a GPS marker string right after SOI.
fn jpeg_with_exif() -> Vec<u8> {
    let plain = jpeg(40, 30);
    let payload = b"Exif\0\0MM\0*\0\0\0\x08GPS-SECRET-52.5200N-13.4050E";
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&plain[2..]);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_never_survives_upload() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let original = jpeg_with_exif();
    assert!(original.windows(10).any(|w| w == b"GPS-SECRET"));
    let reply = app.upload(&alice.token, original, "a.jpg", "").await;
    reply.assert_status(StatusCode::CREATED);
    let stored = app
        .http
        .get(app.url(reply.body["image_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        !stored.windows(10).any(|w| w == b"GPS-SECRET"),
        "EXIF survived"
    );
    assert!(!stored.windows(4).any(|w| w == b"Exif"), "EXIF survived");
}

#[tokio::test(flavor = "multi_thread")]
async fn image_intake_rejects_what_it_must() {
    let app = TestApp::spawn_with(|s| {
        s.limits.max_image_bytes = 64 * 1024;
        s.limits.max_image_side = 1000;
    })
    .await;
    let alice = app.register("alice").await;
    // Not an image, whatever the declared type.
    app.upload(&alice.token, b"GIF89a not really".to_vec(), "x.png", "")
        .await
        .assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "/problems/unsupported-media-type",
        );
    app.upload(&alice.token, b"plain text".to_vec(), "x.png", "")
        .await
        .assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "/problems/unsupported-media-type",
        );
    // Too large in bytes.
    let mut big = png(10, 10);
    big.extend(std::iter::repeat_n(0u8, 70 * 1024));
    app.upload(&alice.token, big, "big.png", "")
        .await
        .assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "/problems/too-large");
    // A decompression bomb: a tiny file whose header claims enormous dimensions.
    let bomb = png_header_claiming(60_000, 60_000);
    let reply = app.upload(&alice.token, bomb, "bomb.png", "").await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    // Over the configured side limit.
    app.upload(&alice.token, png(1001, 10), "wide.png", "")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    // A truncated image.
    let truncated = png(200, 200)[..200].to_vec();
    let reply = app.upload(&alice.token, truncated, "cut.png", "").await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    // Caption too long, or with NUL.
    app.upload(&alice.token, png(10, 10), "ok.png", &"c".repeat(2201))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    app.upload(&alice.token, png(10, 10), "ok.png", "nul\0here")
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    // 2200 code points (each 4 bytes in UTF-8) are fine.
    app.upload(&alice.token, png(10, 10), "ok.png", &"🌅".repeat(2200))
        .await
        .assert_status(StatusCode::CREATED);
    // Missing image part; JSON instead of multipart.
    let form = reqwest::multipart::Form::new().text("caption", "no image");
    let reply = crate::support::Reply::from(
        app.http
            .post(app.url("/posts"))
            .bearer_auth(&alice.token)
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        reply.status == StatusCode::UNPROCESSABLE_ENTITY || reply.status == StatusCode::BAD_REQUEST,
        "{}",
        reply.status
    );
    let reply = app
        .post("/posts", &alice.token, json!({"caption": "json"}))
        .await;
    assert!(
        reply.status.is_client_error() && reply.body["type"].is_string(),
        "{} {}",
        reply.status,
        reply.body
    );
    // Nothing was stored by any of the refusals.
    assert_eq!(app.get("/me", &alice.token).await.body["post_count"], 1);
}

/// A PNG signature and IHDR claiming `width`×`height`, followed by a few bytes of nothing.
fn png_header_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1A, b'\n'];
    out.extend_from_slice(&13u32.to_be_bytes());
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    let crc = crc32(&chunk);
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread")]
async fn feed_holds_followed_and_own_posts_newest_first() {
    let app = TestApp::spawn().await;
    let (alice, bob, carol) = (
        app.register("alice").await,
        app.register("bob").await,
        app.register("carol").await,
    );
    app.follow(&alice, &bob).await;
    let own = app.create_post(&alice, "mine").await["id"]
        .as_i64()
        .unwrap();
    let followed = app.create_post(&bob, "bob's").await["id"].as_i64().unwrap();
    app.create_post(&carol, "stranger").await;
    let feed = app.get("/feed", &alice.token).await;
    feed.assert_status(StatusCode::OK);
    let ids: Vec<i64> = feed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![followed, own]);
    assert_eq!(feed.body["next_cursor"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn likes_are_idempotent_and_notify_at_most_once_ever() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    for _ in 0..2 {
        let reply = app.like(&bob, post).await;
        reply.assert_status(StatusCode::OK);
        assert_eq!(
            reply.body,
            json!({"post_id": post, "liked": true, "like_count": 1})
        );
    }
    for _ in 0..2 {
        let reply = app.delete(&format!("/posts/{post}/like"), &bob.token).await;
        reply.assert_status(StatusCode::OK);
        assert_eq!(
            reply.body,
            json!({"post_id": post, "liked": false, "like_count": 0})
        );
    }
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    let seen = app.get(&format!("/posts/{post}"), &bob.token).await;
    assert_eq!(seen.body["liked_by_me"], true);
    assert_eq!(seen.body["like_count"], 1);
    let inbox = app.all_notifications(&alice).await;
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["kind"], "like");
    assert_eq!(inbox[0]["post_id"], post);
    assert_eq!(
        inbox[0]["text"],
        format!("{} liked your photo.", bob.username)
    );
    assert_eq!(inbox[0]["read"], false);

    // Self-likes count but notify nobody, the first time or after an unlike.
    for (count, path_method) in [(2, "like"), (1, "unlike"), (2, "like")] {
        let reply = if path_method == "like" {
            app.like(&alice, post).await
        } else {
            app.delete(&format!("/posts/{post}/like"), &alice.token)
                .await
        };
        reply.assert_status(StatusCode::OK);
        assert_eq!(
            reply.body["like_count"], count,
            "after the author's {path_method}"
        );
    }
    assert_eq!(app.all_notifications(&alice).await.len(), 1);
    app.like(&bob, 999_999_999)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
}

/// The upgrade that keeps a like taken back as a row of `likes` instead of `like_notices`: its
/// `down.sql` takes a store back to the schema before, with its likes in it, and the instance
/// migrates it again as it does on start. A pair that liked and unliked before the upgrade
/// notifies nobody when it likes again; a like still there stays, and counts.
#[tokio::test(flavor = "multi_thread")]
async fn likes_taken_back_before_the_upgrade_notify_nobody_after_it() {
    const MIGRATION: &str = "2026-12-04-000001_like_notices_in_likes";
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let [bob, carol, dave]: [User; 3] = app.register_many("fan", 3).await.try_into().unwrap();
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let path = format!("/posts/{post}/like");
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    app.delete(&path, &bob.token)
        .await
        .assert_status(StatusCode::OK);
    app.like(&carol, post).await.assert_status(StatusCode::OK);
    let backend = match backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let down = std::fs::read_to_string(format!(
        "{root}/../schema/migrations/{backend}/{MIGRATION}/down.sql"
    ))
    .unwrap();
    app.execute_sql(&down).await;
    app.execute_sql("DELETE FROM __diesel_schema_migrations WHERE version = '20261204000001'")
        .await;
    assert_eq!(app.rows_of_post("like_notices", post).await, 2, "before");
    assert_eq!(app.rows_of_post("likes", post).await, 1, "before");

    app.state.db.migrate().await.unwrap();
    assert_eq!(app.rows_of_post("likes", post).await, 2, "the unlike kept");
    let again = app.like(&bob, post).await;
    again.assert_status(StatusCode::OK);
    assert_eq!(again.body["like_count"], 2);
    let still = app.like(&carol, post).await;
    assert_eq!(still.body["like_count"], 2, "carol's like stayed");
    assert_eq!(
        app.all_notifications(&alice).await.len(),
        2,
        "bob again: silent"
    );
    app.like(&dave, post).await.assert_status(StatusCode::OK);
    app.delete(&path, &carol.token)
        .await
        .assert_status(StatusCode::OK);
    let back = app.like(&carol, post).await;
    assert_eq!(back.body["like_count"], 3);
    let seen = app.get(&format!("/posts/{post}"), &bob.token).await;
    assert_eq!(seen.body["liked_by_me"], true);
    assert_eq!(app.all_notifications(&alice).await.len(), 3, "dave's only");
}

#[tokio::test(flavor = "multi_thread")]
async fn comments_validate_paginate_oldest_first_and_notify() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    let path = format!("/posts/{post}/comments");
    let first = app.post(&path, &bob.token, json!({"text": "nice!"})).await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.body["post_id"], post);
    assert_eq!(first.body["author"]["id"], bob.id);
    assert_eq!(first.body["text"], "nice!");
    app.post(&path, &alice.token, json!({"text": "thanks"}))
        .await
        .assert_status(StatusCode::CREATED);
    app.post(&path, &bob.token, json!({"text": "third"}))
        .await
        .assert_status(StatusCode::CREATED);

    for bad in [
        json!({"text": ""}),
        json!({"text": "x".repeat(2201)}),
        json!({"text": "a\u{0}b"}),
        json!({}),
    ] {
        let reply = app.post(&path, &bob.token, bad.clone()).await;
        assert!(
            reply.status == StatusCode::UNPROCESSABLE_ENTITY
                || reply.status == StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.status
        );
    }
    app.post(
        "/posts/999999999/comments",
        &bob.token,
        json!({"text": "hi"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");

    let page = app.get(&format!("{path}?limit=2"), &bob.token).await;
    let texts: Vec<&str> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["nice!", "thanks"]);
    let next = page.body["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("{path}?limit=2&cursor={next}"), &bob.token)
        .await;
    assert_eq!(rest.body["items"][0]["text"], "third");
    assert_eq!(rest.body["next_cursor"], serde_json::Value::Null);
    assert_eq!(
        app.get(&format!("/posts/{post}"), &bob.token).await.body["comment_count"],
        3
    );

    // Bob's two comments notify Alice; Alice's own comment notifies nobody.
    let inbox = app.all_notifications(&alice).await;
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox[1]["kind"], "comment");
    assert_eq!(
        inbox[1]["text"],
        format!("{} commented on your photo: nice!", bob.username)
    );
    assert!(inbox[1]["comment_id"].as_i64().is_some());
    assert_eq!(app.all_notifications(&bob).await.len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_post_is_for_its_author_and_removes_everything() {
    let app = TestApp::spawn().await;
    let (alice, bob) = (app.register("alice").await, app.register("bob").await);
    let post = app.create_post(&alice, "p").await["id"].as_i64().unwrap();
    app.like(&bob, post).await.assert_status(StatusCode::OK);
    app.post(
        &format!("/posts/{post}/comments"),
        &bob.token,
        json!({"text": "hey"}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.follow(&bob, &alice).await;
    assert_eq!(app.all_notifications(&alice).await.len(), 3);

    app.delete(&format!("/posts/{post}"), &bob.token)
        .await
        .assert_problem(StatusCode::FORBIDDEN, "/problems/forbidden");
    app.delete(&format!("/posts/{post}"), &alice.token)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.get(&format!("/posts/{post}"), &alice.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    app.get(&format!("/posts/{post}/comments"), &alice.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    app.delete(&format!("/posts/{post}"), &alice.token)
        .await
        .assert_problem(StatusCode::NOT_FOUND, "/problems/not-found");
    let inbox = app.all_notifications(&alice).await;
    assert_eq!(
        inbox.len(),
        1,
        "only the follow notification stays: {inbox:?}"
    );
    assert_eq!(inbox[0]["kind"], "follow");
    assert_eq!(app.get("/me", &alice.token).await.body["post_count"], 0);
    let unread = app.get("/notifications", &alice.token).await;
    assert_eq!(unread.body["unread_count"], 1);
}

/// Fetches a media path and decodes it: (content type, bytes, width, height).
async fn fetch_image(app: &TestApp, path: &str) -> (String, usize, u32, u32) {
    let media = app.http.get(app.url(path)).send().await.unwrap();
    assert_eq!(media.status(), StatusCode::OK, "{path}");
    let content_type = media.headers()["content-type"].to_str().unwrap().to_owned();
    let bytes = media.bytes().await.unwrap();
    let decoded = image::load_from_memory(&bytes).unwrap();
    (content_type, bytes.len(), decoded.width(), decoded.height())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_upload_is_served_at_display_size_with_a_640_pixel_thumbnail() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let reply = app
        .upload(&alice.token, jpeg(3000, 1500), "wide.jpg", "wide")
        .await;
    reply.assert_status(StatusCode::CREATED);
    let post = &reply.body;
    assert_eq!(
        (post["width"].as_i64(), post["height"].as_i64()),
        (Some(2048), Some(1024))
    );

    let image_url = post["image_url"].as_str().unwrap();
    let (content_type, _, width, height) = fetch_image(&app, image_url).await;
    assert_eq!((width, height), (2048, 1024));
    assert_eq!(content_type, "image/jpeg");

    let thumbnail_url = post["thumbnail_url"].as_str().unwrap();
    assert!(thumbnail_url.starts_with("/media/"), "{thumbnail_url}");
    assert_ne!(thumbnail_url, image_url);
    let (content_type, _, width, height) = fetch_image(&app, thumbnail_url).await;
    assert_eq!((width, height), (640, 320));
    assert_eq!(content_type, "image/jpeg");

    // Reads render the same post.
    let fetched = app
        .get(&format!("/posts/{}", post["id"]), &alice.token)
        .await;
    assert_eq!(fetched.body, *post);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_upload_keeps_its_size_and_its_thumbnail_url_serves_an_image() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let reply = app
        .upload(&alice.token, png(320, 200), "small.png", "")
        .await;
    reply.assert_status(StatusCode::CREATED);
    let post = &reply.body;
    assert_eq!(
        (post["width"].as_i64(), post["height"].as_i64()),
        (Some(320), Some(200))
    );
    let (content_type, _, width, height) =
        fetch_image(&app, post["image_url"].as_str().unwrap()).await;
    assert_eq!(
        (content_type.as_str(), width, height),
        ("image/png", 320, 200)
    );
    let (content_type, _, width, height) =
        fetch_image(&app, post["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!(
        (content_type.as_str(), width, height),
        ("image/png", 320, 200)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stored_sizes_follow_the_settings() {
    let app = TestApp::spawn_with(|s| {
        s.limits.display_max_side = 300;
        s.limits.thumbnail_max_side = 50;
    })
    .await;
    let alice = app.register("alice").await;
    let reply = app
        .upload(&alice.token, png(200, 600), "tall.png", "")
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(
        (reply.body["width"].as_i64(), reply.body["height"].as_i64()),
        (Some(100), Some(300))
    );
    let (_, _, width, height) =
        fetch_image(&app, reply.body["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!((width, height), (17, 50));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lossy_webp_is_stored_as_jpeg_rather_than_a_larger_lossless_file() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let webp = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/images/ok-lossy-photo-400x300.webp"
    ))
    .unwrap();
    let reply = app
        .upload(&alice.token, webp.clone(), "photo.webp", "")
        .await;
    reply.assert_status(StatusCode::CREATED);
    let image_url = reply.body["image_url"].as_str().unwrap();
    assert!(image_url.ends_with(".jpg"), "{image_url}");
    let (content_type, stored_bytes, width, height) = fetch_image(&app, image_url).await;
    assert_eq!(
        (content_type.as_str(), width, height),
        ("image/jpeg", 400, 300)
    );
    // What storing it losslessly, as before, would have taken.
    let mut lossless = Vec::new();
    image::load_from_memory(&webp)
        .unwrap()
        .write_to(
            &mut std::io::Cursor::new(&mut lossless),
            image::ImageFormat::WebP,
        )
        .unwrap();
    assert!(
        stored_bytes * 3 < lossless.len(),
        "{stored_bytes} bytes stored; lossless: {}",
        lossless.len()
    );
}

/// A baseline JPEG whose EXIF says "rotate 90° clockwise to show" (orientation 6).
fn jpeg_taken_sideways(width: u32, height: u32) -> Vec<u8> {
    let plain = jpeg(width, height);
    // TIFF header (big-endian), one IFD entry: tag 0x0112 (orientation), SHORT, count 1, 6.
    let mut payload = b"Exif\0\0MM\0*\0\0\0\x08\0\x01".to_vec();
    payload.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&plain[2..]);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_photo_taken_sideways_is_stored_upright_without_its_exif() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let reply = app
        .upload(&alice.token, jpeg_taken_sideways(40, 30), "side.jpg", "")
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_eq!(
        (reply.body["width"].as_i64(), reply.body["height"].as_i64()),
        (Some(30), Some(40))
    );
    let image_url = reply.body["image_url"].as_str().unwrap();
    let stored = app
        .http
        .get(app.url(image_url))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!stored.windows(4).any(|w| w == b"Exif"), "EXIF survived");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_uploads_of_huge_images_get_201_or_503_with_retry_after_never_500() {
    // One decode at a time and one waiting: of twelve uploads sent at once, most are turned
    // away while the first decodes.
    let app = TestApp::spawn_with(|s| {
        s.limits.image_decode_concurrency = 1;
        s.limits.image_decode_queue_len = 1;
    })
    .await;
    let alice = app.register("alice").await;
    let huge = png(4000, 4000);
    let uploads = (0..12).map(|_| app.upload(&alice.token, huge.clone(), "huge.png", ""));
    let replies = futures_util::future::join_all(uploads).await;

    let mut created = 0;
    for reply in &replies {
        if reply.status == StatusCode::CREATED {
            assert_eq!(reply.body["width"], 2048);
            created += 1;
        } else {
            reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "/problems/unavailable");
            let retry_after = reply
                .headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap());
            assert!(
                retry_after
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|s| s >= 1),
                "Retry-After: {retry_after:?}"
            );
        }
    }
    assert!(created >= 1, "none of the uploads got through");
    assert!(created < replies.len(), "no upload was turned away");
    // Only the uploads answered 201 were stored.
    assert_eq!(
        app.get("/me", &alice.token).await.body["post_count"],
        created
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_with_more_pixels_than_allowed_is_refused_before_decoding() {
    let app = TestApp::spawn_with(|s| s.limits.max_image_pixels = 100 * 100).await;
    let alice = app.register("alice").await;
    let reply = app
        .upload(&alice.token, png(101, 100), "wide.png", "")
        .await;
    reply.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "/problems/validation");
    assert_eq!(reply.error_fields(), vec!["image"]);
    app.upload(&alice.token, png(100, 100), "ok.png", "")
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(app.get("/me", &alice.token).await.body["post_count"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_stored_before_thumbnails_existed_offers_its_image_as_the_thumbnail() {
    use pulse_schema::posts::{self, NewPost};
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let uploaded = app.create_post(&alice, "now").await;
    let media_key = uploaded["image_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("/media/");
    // A row as the migration leaves older posts: no thumbnail.
    let (old, _) = posts::create(
        &app.state.db,
        &NewPost {
            author_id: pulse_schema::UserId(alice.id),
            caption: "before",
            media_key,
            thumbnail_key: None,
            width: 64,
            height: 48,
            created_at: pulse_schema::now_millis(),
        },
    )
    .await
    .unwrap();
    let post = app.get(&format!("/posts/{}", old.id.0), &alice.token).await;
    post.assert_status(StatusCode::OK);
    assert_eq!(post.body["thumbnail_url"], post.body["image_url"]);
    let feed = app.get("/feed", &alice.token).await;
    let newest = &feed.body["items"][0];
    assert_eq!(newest["id"], old.id.0);
    assert_eq!(newest["thumbnail_url"], uploaded["image_url"]);
    assert_eq!(
        app.status_of(newest["thumbnail_url"].as_str().unwrap())
            .await,
        StatusCode::OK
    );
}
