//! The static files, compiled into the binary: the console's `/static/console.css` and
//! `/static/console.js`, and the secure page's `/static/secure.css` and `/static/secure.js`
//! (from `static/` at the repository root). No third-party resources; the
//! Content-Security-Policy allows only these.
//!
//! They are served with `Cache-Control: no-cache` and a strong `ETag` (a digest of the content),
//! so browsers revalidate with a cheap `304 Not Modified` and never run a stale script after an
//! upgrade.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

/// The stylesheet.
pub const CSS: &str = include_str!("../../../static/console.css");
/// The script.
pub const JS: &str = include_str!("../../../static/console.js");
/// The customer's secure page's stylesheet.
pub const SECURE_CSS: &str = include_str!("../../../static/secure.css");
/// The customer's secure page's script.
pub const SECURE_JS: &str = include_str!("../../../static/secure.js");

/// Registers the static routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/console.css", web::get().to(css))
        .route("/static/console.js", web::get().to(js))
        .route("/static/secure.css", web::get().to(secure_css))
        .route("/static/secure.js", web::get().to(secure_js));
}

fn etag(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or_default()))
}

fn serve(req: &HttpRequest, content: &'static str, kind: &str, tag: &str) -> HttpResponse {
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ETAG, tag.to_owned()));
    if matches {
        response.finish()
    } else {
        response.content_type(kind).body(content)
    }
}

async fn css(req: HttpRequest) -> HttpResponse {
    static TAG: OnceLock<String> = OnceLock::new();
    serve(
        &req,
        CSS,
        "text/css; charset=utf-8",
        TAG.get_or_init(|| etag(CSS)),
    )
}

async fn js(req: HttpRequest) -> HttpResponse {
    static TAG: OnceLock<String> = OnceLock::new();
    serve(
        &req,
        JS,
        "text/javascript; charset=utf-8",
        TAG.get_or_init(|| etag(JS)),
    )
}

async fn secure_css(req: HttpRequest) -> HttpResponse {
    static TAG: OnceLock<String> = OnceLock::new();
    serve(
        &req,
        SECURE_CSS,
        "text/css; charset=utf-8",
        TAG.get_or_init(|| etag(SECURE_CSS)),
    )
}

async fn secure_js(req: HttpRequest) -> HttpResponse {
    static TAG: OnceLock<String> = OnceLock::new();
    serve(
        &req,
        SECURE_JS,
        "text/javascript; charset=utf-8",
        TAG.get_or_init(|| etag(SECURE_JS)),
    )
}
