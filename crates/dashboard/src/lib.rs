//! The web dashboard, served at `/` from files embedded in the binary.
//!
//! The front end lives in `web/` (TypeScript, uPlot, built by Vite); `build.rs` builds it
//! and embeds every output file. It talks to the server only through the public HTTP API
//! and the event stream, so this crate knows nothing of them: it serves files.
//! Navigation inside the app uses the URL fragment (`/#/alerts`), so only `/` and the
//! built assets need routes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

mod table {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// The embedded file at `path` (relative to the dashboard root, no leading `/`).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    table::ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

/// Routes for `/` and `/assets/…`; merge into the application's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route("/index.html", get(|| async { serve("index.html") }))
        .route(
            "/assets/{*path}",
            get(
                |axum::extract::Path(path): axum::extract::Path<String>| async move {
                    serve(&format!("assets/{path}"))
                },
            ),
        )
        .route("/favicon.svg", get(|| async { serve("favicon.svg") }))
}

fn serve(path: &str) -> Response {
    let Some(bytes) = asset(path) else {
        return (StatusCode::NOT_FOUND, "no such dashboard file").into_response();
    };
    // Built assets carry a content hash in their names, so they never change; the page
    // itself must be revalidated to pick up a new build.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path.ends_with(".html") {
        // Only our own scripts and styles; the API is same-origin.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
    }
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        router::<()>()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn root_serves_the_page_as_html_that_is_revalidated() {
        let response = get("/").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    }

    #[tokio::test]
    async fn every_embedded_asset_is_served_with_its_type() {
        for (name, bytes) in table::ASSETS {
            if !name.starts_with("assets/") {
                continue;
            }
            let response = get(&format!("/{name}")).await;
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert_ne!(
                response.headers()[header::CONTENT_TYPE],
                "application/octet-stream",
                "{name}"
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            assert_eq!(&body[..], *bytes, "{name}");
        }
    }

    #[tokio::test]
    async fn unknown_asset_is_404() {
        assert_eq!(get("/assets/nope.js").await.status(), StatusCode::NOT_FOUND);
    }
}
