//! API tokens on the wire: generating them, the dashboard's sign-in session, and the
//! middleware that checks them.
//!
//! Whether the server requires tokens is decided once, at start-up, by whoever builds
//! the [`crate::AppState`] (`serve --auth tokens` or `[server] auth = "tokens"` in the
//! binary): with an [`Authenticator`] every route but `/healthz`, `/readyz`, InfluxDB's
//! `/ping`, `/health` and `/ready`, the dashboard's own files and the session routes needs a
//! token, whether or not any token exists yet
//! (revoking every token leaves the API closed; nothing but a restart with auth off
//! opens it). Without one, nothing is checked.
//!
//! A request carries its token as `Authorization: Bearer <token>` (or `Token <token>`,
//! as Influx clients send it), or, from the dashboard, in the session cookie
//! [`SESSION_COOKIE`] that `POST /api/v1/session` sets after checking a token: `HttpOnly`
//! (page scripts cannot read it), `SameSite=Strict` (other sites' pages cannot send it),
//! and for the browser's session only. The browser's event stream, which cannot carry a
//! header, sends it like every other request. A cookie-authenticated write must also
//! come from the server's own origin when the browser says where it comes from.
//! Reading (GET, and backtests) needs the read scope, everything else the write scope.
//! The active tokens' hashes are cached and reloaded from the store at most every
//! [`RELOAD_EVERY`], so a token created or revoked by `modelwatch tokens` in another
//! process takes effect within seconds without a store read per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelwatch_store::{Scope, StoreError, TokenHash, TokenStore};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::AppState;

/// How stale the cached token list may get.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The prefix of every token, so one found in a log or a file is recognisable.
pub const TOKEN_PREFIX: &str = "mw_";

/// A new random token (256 bits, hex) and the hash to store.
pub fn generate_token() -> Result<(String, TokenHash), getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let mut secret = String::with_capacity(TOKEN_PREFIX.len() + 64);
    secret.push_str(TOKEN_PREFIX);
    for byte in bytes {
        secret.push_str(&format!("{byte:02x}"));
    }
    let hash = TokenHash::of_secret(&secret);
    Ok((secret, hash))
}

#[derive(Debug)]
struct Cache {
    by_hash: HashMap<String, Identity>,
    loaded_at: Option<Instant>,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
}

/// The active tokens, cached.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Arc<dyn TokenStore>,
    cache: Arc<RwLock<Cache>>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn TokenStore>) -> Authenticator {
        Authenticator {
            store,
            cache: Arc::new(RwLock::new(Cache {
                by_hash: HashMap::new(),
                loaded_at: None,
            })),
        }
    }

    async fn reload_if_stale(&self) -> Result<(), StoreError> {
        let fresh = |cache: &Cache| {
            cache
                .loaded_at
                .is_some_and(|at| at.elapsed() < RELOAD_EVERY)
        };
        if fresh(&*self.cache.read().await) {
            return Ok(());
        }
        let mut cache = self.cache.write().await;
        if fresh(&cache) {
            return Ok(()); // another request reloaded while we waited
        }
        let tokens = self.store.list_tokens().await?;
        cache.by_hash = tokens
            .into_iter()
            .filter(|t| t.is_active())
            .map(|t| {
                let identity = Identity {
                    id: t.id,
                    name: t.name,
                    scope: t.scope,
                };
                (t.hash.as_str().to_owned(), identity)
            })
            .collect();
        cache.loaded_at = Some(Instant::now());
        Ok(())
    }

    /// Whose token `secret` is, if it is an active one.
    pub async fn identify(&self, secret: &str) -> Result<Identity, ApiError> {
        self.reload_if_stale().await.map_err(ApiError::from)?;
        let cache = self.cache.read().await;
        cache
            .by_hash
            .get(TokenHash::of_secret(secret.trim()).as_str())
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API token".into()))
    }

    /// Whether a request with this token (from its `Authorization` header or session
    /// cookie) may do what `needed` asks.
    pub async fn check(&self, secret: Option<&str>, needed: Scope) -> Result<Identity, ApiError> {
        let secret = secret.ok_or_else(|| {
            ApiError::Unauthorized(
                "this server requires an API token: send `Authorization: Bearer <token>`, or sign in to the dashboard"
                    .into(),
            )
        })?;
        let identity = self.identify(secret).await?;
        if !identity.scope.allows(needed) {
            return Err(ApiError::Forbidden(format!(
                "this token has the {} scope; this request needs {needed}",
                identity.scope
            )));
        }
        Ok(identity)
    }
}

/// The name of the dashboard's session cookie; its value is the token.
pub const SESSION_COOKIE: &str = "modelwatch_session";

/// Where a request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Header,
    Cookie,
}

/// The token in `Authorization` (Bearer or Token, in any case), else in the session
/// cookie.
fn credentials(headers: &HeaderMap) -> Option<(&str, Source)> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|value| {
            // The scheme is case-insensitive (RFC 9110 §11.1): bearer, BEARER, Bearer.
            let (scheme, secret) = value.trim_start().split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
                .then_some(secret)
        })
        .map(str::trim);
    if let Some(secret) = from_header {
        return Some((secret, Source::Header));
    }
    session_cookie(headers).map(|secret| (secret, Source::Cookie))
}

/// The session cookie's value, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a browser says this request comes from another site: its `Origin` names
/// another host than the one asked, or `Sec-Fetch-Site` says `cross-site`. A cookie is
/// not proof of intent when another page made the browser send it.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| site == "cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    host != Some(origin_host)
}

/// Paths anyone may fetch: liveness and readiness (load balancers' probes carry no
/// token; the answers say nothing but "up"; InfluxDB's `/ping`, `/health` and `/ready` alike), the dashboard's own files (its sign-in page among
/// them; no data in them) and the session routes (signing in needs no token).
fn is_public(method: &Method, path: &str) -> bool {
    path == "/healthz"
        || path == "/readyz"
        || crate::influx::is_public(path)
        || path == SESSION_PATH
        || (matches!(*method, Method::GET | Method::HEAD) && modelwatch_dashboard::is_page(path))
}

/// The scope a request needs.
fn needed_scope(method: &Method, path: &str) -> Scope {
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST
            && (path.ends_with("/backtest")
                || crate::promql::is_read(path)
                || path == "/query"
                || path == "/api/v2/query"));
    if reads {
        Scope::Read
    } else {
        Scope::Write
    }
}

pub(crate) async fn middleware(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(auth) = &state.inner.auth else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if is_public(request.method(), path) {
        return next.run(request).await;
    }
    let needed = needed_scope(request.method(), path);
    let found = credentials(request.headers());
    if let Some((_, Source::Cookie)) = found {
        if needed == Scope::Write && cross_site(request.headers()) {
            return ApiError::Forbidden(
                "a signed-in write must come from the dashboard's own page".into(),
            )
            .into_response();
        }
    }
    if let Err(error) = auth.check(found.map(|(secret, _)| secret), needed).await {
        return error.into_response();
    }
    next.run(request).await
}

/// The path of the session routes.
pub const SESSION_PATH: &str = "/api/v1/session";

/// What `GET /api/v1/session` says: whether the server wants tokens and who is signed in.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOut {
    /// `off` (no token needed) or `tokens`.
    pub auth: &'static str,
    /// Whether this request carried a valid token (always false with auth off).
    pub signed_in: bool,
    /// The token's name, when signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `read` (sees everything) or `write` (also acts), when signed in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The token to sign in with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub token: String,
}

fn session_out(identity: Option<Identity>) -> SessionOut {
    SessionOut {
        auth: "tokens",
        signed_in: identity.is_some(),
        name: identity.as_ref().map(|i| i.name.clone()),
        scope: identity.map(|i| i.scope.to_string()),
    }
}

/// The session cookie's attributes; `Secure` when a proxy says the browser used HTTPS.
fn cookie(value: &str, headers: &HeaderMap, clear: bool) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict{}{}",
        if secure { "; Secure" } else { "" },
        if clear { "; Max-Age=0" } else { "" },
    );
    HeaderValue::from_str(&text)
        .unwrap_or_else(|_| HeaderValue::from_static("modelwatch_session=; Max-Age=0"))
}

/// Whether this server wants tokens and who this request is signed in as. Never needs a
/// token.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = SessionOut)))]
pub async fn session(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<SessionOut>> {
    let Some(auth) = &state.inner.auth else {
        return Ok(Json(SessionOut {
            auth: "off",
            signed_in: false,
            name: None,
            scope: None,
        }));
    };
    let identity = match credentials(&headers) {
        Some((secret, _)) => auth.identify(secret).await.ok(),
        None => None,
    };
    Ok(Json(session_out(identity)))
}

/// Signs the dashboard in: checks the token and sets it as an `HttpOnly`,
/// `SameSite=Strict` session cookie. 401 for an unknown or revoked token; 409 when the
/// server does not use tokens.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignIn,
    responses((status = 200, body = SessionOut), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, JsonRejection>,
) -> ApiResult<Response> {
    let Some(auth) = &state.inner.auth else {
        return Err(ApiError::Conflict(
            "this server does not use tokens (auth off): there is nothing to sign in to".into(),
        ));
    };
    let Json(SignIn { token }) = body.map_err(ApiError::from)?;
    let token = token.trim();
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ApiError::bad_request(
            "token",
            "not a modelwatch token (mw_…)",
        ));
    }
    let identity = auth.identify(token).await?;
    let mut response = Json(session_out(Some(identity))).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(token, &headers, false));
    Ok(response)
}

/// Signs the dashboard out: the browser forgets the session cookie.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "signed out")))]
pub async fn sign_out(headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", &headers, true));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_random_and_hash_to_their_hash() {
        let (a, hash) = generate_token().expect("randomness");
        let (b, _) = generate_token().expect("randomness");
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 67);
        assert_eq!(TokenHash::of_secret(&a), hash);
    }

    fn headers(lines: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn the_header_wins_over_the_cookie_and_the_cookie_is_found_among_others() {
        let both = headers(&[
            ("authorization", "Bearer mw_a"),
            ("cookie", "theme=dark; modelwatch_session=mw_b"),
        ]);
        assert_eq!(credentials(&both), Some(("mw_a", Source::Header)));
        let cookie = headers(&[("cookie", "theme=dark; modelwatch_session=mw_b; x=1")]);
        assert_eq!(credentials(&cookie), Some(("mw_b", Source::Cookie)));
        let influx = headers(&[("authorization", "Token mw_c")]);
        assert_eq!(credentials(&influx), Some(("mw_c", Source::Header)));
        assert_eq!(
            credentials(&headers(&[("cookie", "modelwatch_session=")])),
            None
        );
        assert_eq!(credentials(&HeaderMap::new()), None);
    }

    /// The scheme is case-insensitive (issue 15: `bearer` and `BEARER` were refused).
    #[test]
    fn the_scheme_is_read_in_any_case() {
        for value in [
            "bearer mw_a",
            "BEARER mw_a",
            "Bearer  mw_a",
            "token mw_a",
            "TOKEN mw_a",
        ] {
            let sent = headers(&[("authorization", value)]);
            assert_eq!(
                credentials(&sent),
                Some(("mw_a", Source::Header)),
                "{value}"
            );
        }
        for value in ["Basic mw_a", "Bearermw_a", "mw_a"] {
            assert_eq!(
                credentials(&headers(&[("authorization", value)])),
                None,
                "{value}"
            );
        }
    }

    #[test]
    fn a_request_from_another_site_is_told_apart() {
        let host = ("host", "127.0.0.1:7878");
        assert!(!cross_site(&headers(&[host])));
        assert!(!cross_site(&headers(&[
            host,
            ("origin", "http://127.0.0.1:7878")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("origin", "https://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            host,
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!cross_site(&headers(&[
            host,
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn the_dashboard_and_sign_in_are_public_and_nothing_else() {
        assert!(is_public(&Method::GET, "/"));
        assert!(is_public(&Method::GET, "/assets/index-x.js"));
        assert!(is_public(&Method::GET, "/alerts/alert_1"));
        assert!(is_public(&Method::POST, "/api/v1/session"));
        assert!(is_public(&Method::GET, "/healthz"));
        assert!(!is_public(&Method::GET, "/api/v1/alerts"));
        assert!(!is_public(&Method::POST, "/"));
        assert!(is_public(&Method::GET, "/readyz"));
        assert!(!is_public(&Method::GET, "/metrics"));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_https() {
        let plain = cookie("mw_x", &HeaderMap::new(), false);
        assert_eq!(
            plain,
            "modelwatch_session=mw_x; Path=/; HttpOnly; SameSite=Strict"
        );
        let proxied = cookie("mw_x", &headers(&[("x-forwarded-proto", "https")]), false);
        assert!(proxied.to_str().expect("ascii").ends_with("; Secure"));
        let cleared = cookie("", &HeaderMap::new(), true);
        assert!(cleared.to_str().expect("ascii").ends_with("Max-Age=0"));
    }

    #[test]
    fn reads_need_read_and_writes_need_write() {
        assert_eq!(needed_scope(&Method::GET, "/api/v1/models"), Scope::Read);
        assert_eq!(needed_scope(&Method::POST, "/api/v1/metrics"), Scope::Write);
        assert_eq!(
            needed_scope(&Method::POST, "/api/v1/rules/3/backtest"),
            Scope::Read
        );
        assert_eq!(
            needed_scope(&Method::DELETE, "/api/v1/silences/3"),
            Scope::Write
        );
    }
}
