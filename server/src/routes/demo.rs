//! The demo page (`web-demo/static`), embedded in the binary so `cargo run` serves it from any
//! directory.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{guard, web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// (paths, file contents, content type). `/two.html` is the name people type for `/two`.
const FILES: &[(&[&str], &[u8], &str)] = &[
    (
        &["/", "/index.html"],
        include_bytes!("../../../web-demo/static/index.html"),
        "text/html; charset=utf-8",
    ),
    (
        &["/two", "/two.html"],
        include_bytes!("../../../web-demo/static/two.html"),
        "text/html; charset=utf-8",
    ),
    (
        &["/app.js"],
        include_bytes!("../../../web-demo/static/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        &["/client.js"],
        include_bytes!("../../../web-demo/static/client.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        // The service worker: served from the root, its default scope is the whole demo.
        &["/sw.js"],
        include_bytes!("../../../web-demo/static/sw.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        &["/app.css"],
        include_bytes!("../../../web-demo/static/app.css"),
        "text/css; charset=utf-8",
    ),
];

/// Same-origin only: scripts, styles, images and sockets from this server (CSP 3's `'self'`
/// covers `ws:`/`wss:` to the same host). `data:` is the inline favicon, `blob:` the upload preview.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; \
     style-src 'self'; script-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'";

/// A strong `ETag` per file (a content hash), computed once: the files change only with the
/// binary, so `no-cache` + `If-None-Match` costs a 304 and never serves stale code.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(_, body, _)| {
            let digest = Sha256::digest(body);
            let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            format!("\"{hex}\"")
        })
        .collect()
});

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (index, (paths, _, _)) in FILES.iter().enumerate() {
        for path in *paths {
            cfg.route(
                path,
                web::route()
                    .guard(guard::Any(guard::Get()).or(guard::Head()))
                    .to(move |req| serve(req, index)),
            );
        }
    }
}

async fn serve(req: HttpRequest, index: usize) -> HttpResponse {
    let (_, body, content_type) = FILES[index];
    let etag = ETAGS[index].as_str();
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        // Revalidate every time (cheap with the ETag) rather than run stale code after an upgrade.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("X-Frame-Options", "SAMEORIGIN"));
    if not_modified {
        response.finish()
    } else {
        response.content_type(content_type).body(body)
    }
}
