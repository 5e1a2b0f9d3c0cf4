//! The web dashboard, served at `/` from files embedded in the binary.
//!
//! The front end lives in `web/` (TypeScript, uPlot, built by Vite); its build is
//! committed in `crates/dashboard/assets` (so a build without Node ships it) and
//! `build.rs` embeds it, or a fresh build when `web/node_modules` is installed. It talks to the server only through the public HTTP API
//! and the event stream, so this crate knows nothing of them: it serves files.
//! Navigation inside the app uses the URL fragment (`/#/alerts`), so only `/` and the
//! built assets need routes, plus `/alerts/{id}`: the "Open in modelwatch" link of every
//! notification, which serves the page; the app shows that alert.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

mod table {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Where the embedded files came from: `"committed"` (`crates/dashboard/assets`) or
/// `"web"` (built from `web/` by this build, which had `web/node_modules`).
pub const BUILT_FROM: &str = table::SOURCE;

/// The embedded file at `path` (relative to the dashboard root, no leading `/`).
pub fn asset(path: &str) -> Option<&'static [u8]> {
    table::ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

/// The content codings the build stores beside a text file (`x.js.br`, `x.js.gz`), best
/// first. They are compressed once at build time, so serving them costs nothing.
const CODINGS: [(&str, &str); 2] = [("br", "br"), ("gzip", "gz")];

/// Whether `path` is one of the dashboard's own pages or files. They hold no data (the
/// page reads it through the API), so a server that wants tokens still serves them: the
/// page is where one signs in.
pub fn is_page(path: &str) -> bool {
    matches!(path, "/" | "/index.html" | "/favicon.svg")
        || path.starts_with("/assets/")
        || path
            .strip_prefix("/alerts/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Routes for `/`, `/alerts/{id}` and `/assets/…`; merge into the application's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route(
            "/alerts/{id}",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/index.html",
            get(|headers: HeaderMap| async move { serve("index.html", &headers) }),
        )
        .route(
            "/assets/{*path}",
            get(
                |axum::extract::Path(path): axum::extract::Path<String>, headers: HeaderMap| async move {
                    serve(&format!("assets/{path}"), &headers)
                },
            ),
        )
        .route(
            "/favicon.svg",
            get(|headers: HeaderMap| async move { serve("favicon.svg", &headers) }),
        )
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    // The compressed copies are variants of their file, not files of their own.
    let is_variant = CODINGS
        .iter()
        .any(|(_, ext)| path.ends_with(&format!(".{ext}")));
    let Some(identity) = asset(path).filter(|_| !is_variant) else {
        return (StatusCode::NOT_FOUND, "no such dashboard file").into_response();
    };
    let accept = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut has_variants = false;
    let mut chosen = None;
    for (coding, ext) in CODINGS {
        if let Some(bytes) = asset(&format!("{path}.{ext}")) {
            has_variants = true;
            if chosen.is_none() && accepts(accept, coding) {
                chosen = Some((coding, bytes));
            }
        }
    }
    // Built assets carry a content hash in their names, so they never change; the page
    // itself must be revalidated to pick up a new build.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut response = chosen.map_or(identity, |(_, bytes)| bytes).into_response();
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
    if let Some((coding, _)) = chosen {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    if has_variants {
        // Caches must keep the variants apart.
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
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

/// Whether an `Accept-Encoding` value accepts `coding`: named (or `*`) without `q=0`.
fn accepts(accept_encoding: &str, coding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        if !(name.eq_ignore_ascii_case(coding) || name == "*") {
            return false;
        }
        !parts.any(|param| {
            param
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        })
    })
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
        get_with(path, None).await
    }

    async fn get_with(path: &str, accept_encoding: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(value) = accept_encoding {
            request = request.header(header::ACCEPT_ENCODING, value);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }

    /// The built script.
    fn script() -> &'static str {
        table::ASSETS
            .iter()
            .map(|(name, _)| *name)
            .find(|name| name.starts_with("assets/") && name.ends_with(".js"))
            .expect("the dashboard's script is embedded")
    }

    /// The files a browser gets (not their compressed copies) under `dir`.
    fn served_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current).expect("read the committed dashboard") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let name = path
                    .strip_prefix(dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .replace('\\', "/");
                if !(name.ends_with(".br") || name.ends_with(".gz")) {
                    files.push((name, std::fs::read(&path).expect("read")));
                }
            }
        }
        files.sort();
        files
    }

    /// With `web/node_modules` installed the build embeds a fresh build of `web/`; it must
    /// be what is committed, which is what a build without Node embeds.
    #[test]
    fn the_embedded_dashboard_is_the_committed_one() {
        let committed =
            served_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets"));
        let mut embedded: Vec<(String, Vec<u8>)> = table::ASSETS
            .iter()
            .filter(|(name, _)| !(name.ends_with(".br") || name.ends_with(".gz")))
            .map(|(name, bytes)| ((*name).to_owned(), bytes.to_vec()))
            .collect();
        embedded.sort();
        let names =
            |files: &[(String, Vec<u8>)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert!(
            embedded == committed,
            "the dashboard built from web/ ({}: {:?}) is not the one committed in crates/dashboard/assets ({:?}): run scripts/build-dashboard and commit it",
            BUILT_FROM,
            names(&embedded),
            names(&committed)
        );
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
            if !name.starts_with("assets/") || name.ends_with(".br") || name.ends_with(".gz") {
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
    async fn an_alert_link_serves_the_page() {
        let response = get("/alerts/alert_3f9a1c2b").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(body(response).await, asset("index.html").expect("the page"));
        assert!(is_page("/alerts/alert_3f9a1c2b"));
        assert!(!is_page("/alerts/"));
        assert!(!is_page("/api/v1/alerts"));
    }

    #[tokio::test]
    async fn unknown_asset_is_404() {
        assert_eq!(get("/assets/nope.js").await.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_browser_accepting_brotli_gets_the_precompressed_script() {
        let name = script();
        let response = get_with(&format!("/{name}"), Some("gzip, deflate, br, zstd")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "br");
        assert_eq!(response.headers()[header::VARY], "accept-encoding");
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let expected = asset(&format!("{name}.br")).expect("a .br beside the script");
        assert_eq!(body(response).await, expected);
    }

    #[tokio::test]
    async fn gzip_is_sent_where_brotli_is_refused_and_identity_where_nothing_is_accepted() {
        let name = script();
        let gzip = get_with(&format!("/{name}"), Some("br;q=0, gzip")).await;
        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
        let plain = get(&format!("/{name}")).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::VARY], "accept-encoding");
        assert_eq!(body(plain).await, asset(name).expect("the script"));
    }

    #[tokio::test]
    async fn compressed_copies_are_not_files_of_their_own() {
        let name = script();
        assert_eq!(
            get(&format!("/{name}.br")).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        assert!(accepts("gzip, br", "br"));
        assert!(accepts("BR", "br"));
        assert!(accepts("*", "gzip"));
        assert!(accepts("br;q=0.5", "br"));
        assert!(!accepts("br;q=0", "br"));
        assert!(!accepts("br; q=0.0, gzip", "br"));
        assert!(!accepts("", "gzip"));
        assert!(!accepts("identity", "gzip"));
    }
}
