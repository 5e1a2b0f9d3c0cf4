//! API tokens: who may read and who may write through the HTTP API.
//!
//! Only a SHA-256 hash of a token is ever stored, so a stolen database file does not
//! leak usable credentials; the token itself is shown once, when it is created. Tokens
//! are random (256 bits), so a plain unsalted hash is enough: there is nothing to guess.
//! Revoking keeps the row (for `tokens list`) and stamps the time.

use std::fmt;

use async_trait::async_trait;
use modelwatch_core::{Timestamp, ValidationError};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// What a token allows. `Write` includes reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, ValidationError> {
        match text {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            other => Err(ValidationError::new(
                "scope",
                format!("{other:?} is not a scope (use read or write)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    /// Whether a token of this scope may do what `needed` asks for.
    pub fn allows(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 of a token, lower-case hex: the only form a token is stored in.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of_secret(secret: &str) -> TokenHash {
        let digest = Sha256::digest(secret.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push_str(&format!("{byte:02x}"));
        }
        TokenHash(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a hash read back from storage.
    pub(crate) fn from_stored(hex: String) -> TokenHash {
        TokenHash(hex)
    }
}

// A hash is not a secret, but there is no reason to print it either.
impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// A token as stored: never the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub hash: TokenHash,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl TokenInfo {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A token to be stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub scope: Scope,
    pub hash: TokenHash,
    pub created_at: Timestamp,
}

/// Checks a token's name: 1–128 printable characters.
pub fn check_token_name(name: &str) -> Result<(), ValidationError> {
    let length = name.chars().count();
    if length == 0 || length > 128 || name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "name",
            "must be 1 to 128 printable characters",
        ));
    }
    Ok(())
}

/// Storage of API tokens.
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// Stores a new token and returns it with its id.
    async fn create_token(&self, token: NewToken) -> Result<TokenInfo, StoreError>;

    /// Every token, revoked ones included, by id.
    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError>;

    /// Revokes a token; `Ok(false)` when there is no such active token.
    async fn revoke_token(&self, id: i64, at: Timestamp) -> Result<bool, StoreError>;

    /// Stores tokens exported from another store as they are, ids included; a token whose
    /// id or hash the store already has is left as it is.
    async fn import_tokens(&self, tokens: Vec<TokenInfo>) -> Result<(), StoreError>;

    /// The tokens that are not revoked.
    async fn active_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self
            .list_tokens()
            .await?
            .into_iter()
            .filter(TokenInfo::is_active)
            .collect())
    }
}

#[cfg(test)]
mod conformance {
    //! The behaviour every token store shows.

    use super::*;

    fn new(name: &str, scope: Scope, secret: &str) -> NewToken {
        NewToken {
            name: name.into(),
            scope,
            hash: TokenHash::of_secret(secret),
            created_at: Timestamp::from_millis(1_000).expect("valid"),
        }
    }

    pub async fn tokens_are_created_listed_and_revoked(store: &dyn TokenStore) {
        let a = store
            .create_token(new("ci", Scope::Write, "secret-a"))
            .await
            .expect("create");
        let b = store
            .create_token(new("grafana", Scope::Read, "secret-b"))
            .await
            .expect("create");
        assert_ne!(a.id, b.id);
        assert_eq!(a.hash, TokenHash::of_secret("secret-a"));
        let all = store.list_tokens().await.expect("list");
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].name, "grafana");
        assert_eq!(all[1].scope, Scope::Read);
        let at = Timestamp::from_millis(2_000).expect("valid");
        assert!(store.revoke_token(a.id, at).await.expect("revoke"));
        assert!(!store.revoke_token(a.id, at).await.expect("revoke twice"));
        assert!(!store.revoke_token(999, at).await.expect("revoke unknown"));
        let active = store.active_tokens().await.expect("active");
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].id, b.id);
        let all = store.list_tokens().await.expect("list");
        assert_eq!(all[0].revoked_at, Some(at));
        imported_tokens_keep_their_ids(store, all).await;
    }

    /// `modelwatch migrate`: tokens come across with their ids and revocations, only
    /// once, and new ids continue after them.
    async fn imported_tokens_keep_their_ids(store: &dyn TokenStore, existing: Vec<TokenInfo>) {
        let mut moved = new("dashboard", Scope::Read, "secret-c");
        moved.created_at = Timestamp::from_millis(3_000).expect("valid");
        let imported = TokenInfo {
            id: 40,
            name: moved.name,
            scope: moved.scope,
            hash: moved.hash,
            created_at: moved.created_at,
            revoked_at: None,
        };
        let mut rows = existing.clone();
        rows.push(imported.clone());
        store.import_tokens(rows.clone()).await.expect("import");
        store
            .import_tokens(rows.clone())
            .await
            .expect("import again");
        assert_eq!(store.list_tokens().await.expect("list"), rows);
        let next = store
            .create_token(new("later", Scope::Read, "secret-d"))
            .await
            .expect("create");
        assert!(next.id > 40, "{next:?}");
    }

    #[tokio::test]
    async fn memory_store_keeps_tokens() {
        tokens_are_created_listed_and_revoked(&crate::MemoryStore::new()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_store_keeps_tokens() {
        let database = crate::postgres::testing::TestDatabase::create("tokens").await;
        let store = crate::PostgresStore::open(database.url())
            .await
            .expect("open");
        tokens_are_created_listed_and_revoked(&store).await;
        let reopened = crate::PostgresStore::open(database.url())
            .await
            .expect("reopen");
        // The one left active, the one imported and the one created after it.
        assert_eq!(reopened.active_tokens().await.expect("active").len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_store_keeps_tokens_across_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokens.db");
        let store = crate::SqliteStore::open(&path).await.expect("open");
        tokens_are_created_listed_and_revoked(&store).await;
        crate::MetricStore::close(&store).await.expect("close");
        let reopened = crate::SqliteStore::open(&path).await.expect("reopen");
        // The one left active, the one imported and the one created after it.
        assert_eq!(reopened.active_tokens().await.expect("active").len(), 3);
    }

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            TokenHash::of_secret("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn write_scope_includes_read() {
        assert!(Scope::Write.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
    }
}
