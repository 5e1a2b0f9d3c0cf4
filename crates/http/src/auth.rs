//! API tokens on the wire: generating them, and the middleware that checks them.
//!
//! Authentication is on as soon as a token exists in the store, and stays on when tokens
//! are revoked (revoking the last token must not open the API). Then every route but
//! `/healthz` needs `Authorization: Bearer <token>` (or `Token <token>`, as Influx
//! clients send it): reading (GET, and backtests) needs the read scope, everything else
//! the write scope. The active tokens' hashes are cached and reloaded from the store at
//! most every [`RELOAD_EVERY`], so a token created or revoked by `modelwatch tokens` in
//! another process takes effect within seconds without a store read per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use modelwatch_store::{Scope, StoreError, TokenHash, TokenStore};
use tokio::sync::RwLock;

use crate::error::ApiError;
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
    /// Whether any token, even a revoked one, exists.
    configured: bool,
    by_hash: HashMap<String, Scope>,
    loaded_at: Option<Instant>,
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
                configured: false,
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
        cache.configured = !tokens.is_empty();
        cache.by_hash = tokens
            .into_iter()
            .filter(|t| t.is_active())
            .map(|t| (t.hash.as_str().to_owned(), t.scope))
            .collect();
        cache.loaded_at = Some(Instant::now());
        Ok(())
    }

    /// Whether a request with this `Authorization` header may do what `needed` asks.
    pub async fn check(&self, authorization: Option<&str>, needed: Scope) -> Result<(), ApiError> {
        self.reload_if_stale().await.map_err(ApiError::from)?;
        let cache = self.cache.read().await;
        if !cache.configured {
            return Ok(()); // no tokens configured: the API is open (on loopback by default)
        }
        let secret = authorization
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("Token "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "this server requires an API token: send `Authorization: Bearer <token>`"
                        .into(),
                )
            })?;
        let scope = cache
            .by_hash
            .get(TokenHash::of_secret(secret).as_str())
            .ok_or_else(|| ApiError::Unauthorized("unknown or revoked API token".into()))?;
        if !scope.allows(needed) {
            return Err(ApiError::Forbidden(format!(
                "this token has the {scope} scope; this request needs {needed}"
            )));
        }
        Ok(())
    }
}

/// The scope a request needs.
fn needed_scope(method: &Method, path: &str) -> Scope {
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST && path.ends_with("/backtest"));
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
    let path = request.uri().path();
    if path == "/healthz" {
        return next.run(request).await;
    }
    if let Some(auth) = &state.inner.auth {
        let needed = needed_scope(request.method(), path);
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(error) = auth.check(header, needed).await {
            return error.into_response();
        }
    }
    next.run(request).await
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
