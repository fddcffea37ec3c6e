//! The demo page (`web-demo/static`), embedded in the binary so `cargo run` serves it from any
//! directory.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// (path, file contents, content type).
const FILES: &[(&str, &[u8], &str)] = &[
    ("/", include_bytes!("../../../web-demo/static/index.html"), "text/html; charset=utf-8"),
    ("/two", include_bytes!("../../../web-demo/static/two.html"), "text/html; charset=utf-8"),
    ("/app.js", include_bytes!("../../../web-demo/static/app.js"), "text/javascript; charset=utf-8"),
    ("/client.js", include_bytes!("../../../web-demo/static/client.js"), "text/javascript; charset=utf-8"),
    ("/app.css", include_bytes!("../../../web-demo/static/app.css"), "text/css; charset=utf-8"),
];

/// Same-origin only: scripts, styles, images and sockets from this server.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; \
     style-src 'self'; script-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (index, (path, _, _)) in FILES.iter().enumerate() {
        cfg.route(path, web::get().to(move || serve(index)));
    }
}

async fn serve(index: usize) -> HttpResponse {
    let (_, body, content_type) = FILES[index];
    // Files change with the binary; revalidate each time rather than cache stale code.
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("X-Frame-Options", "SAMEORIGIN"))
        .body(body)
}
