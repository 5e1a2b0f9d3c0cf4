//! API tokens in SQLite (schema version 5): one row per token, hash only.

use async_trait::async_trait;
use modelwatch_core::Timestamp;
use rusqlite::{params, Connection, Row};

use super::SqliteStore;
use crate::tokens::{NewToken, Scope, TokenHash, TokenInfo, TokenStore};
use crate::StoreError;

fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt(format!("token time: {e}")))
}

fn token_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<(i64, String, String, String, i64, Option<i64>)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn list(connection: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT id, name, scope, hash, created_ms, revoked_ms FROM api_tokens ORDER BY id",
    )?;
    let rows = statement.query_map([], token_from_row)?;
    let mut tokens = Vec::new();
    for row in rows {
        let (id, name, scope, hash, created_ms, revoked_ms) = row?;
        tokens.push(TokenInfo {
            id,
            name,
            scope: Scope::parse(&scope)
                .map_err(|e| StoreError::Corrupt(format!("token {id}: {e}")))?,
            hash: TokenHash::from_stored(hash),
            created_at: timestamp(created_ms)?,
            revoked_at: revoked_ms.map(timestamp).transpose()?,
        });
    }
    Ok(tokens)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_token(&self, token: NewToken) -> Result<TokenInfo, StoreError> {
        self.write(move |_, transaction| {
            transaction
                .prepare_cached(
                    "INSERT INTO api_tokens (name, scope, hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    token.name,
                    token.scope.as_str(),
                    token.hash.as_str(),
                    token.created_at.as_millis()
                ])?;
            Ok(TokenInfo {
                id: transaction.last_insert_rowid(),
                name: token.name,
                scope: token.scope,
                hash: token.hash,
                created_at: token.created_at,
                revoked_at: None,
            })
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(|connection, _| list(connection)).await
    }

    async fn import_tokens(&self, tokens: Vec<TokenInfo>) -> Result<(), StoreError> {
        self.write(move |_, transaction| {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO api_tokens (id, name, scope, hash, created_ms, revoked_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
            )?;
            for token in &tokens {
                insert.execute(params![
                    token.id,
                    token.name,
                    token.scope.as_str(),
                    token.hash.as_str(),
                    token.created_at.as_millis(),
                    token.revoked_at.map(Timestamp::as_millis),
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn revoke_token(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        self.write(move |_, transaction| {
            let changed = transaction
                .prepare_cached(
                    "UPDATE api_tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                )?
                .execute(params![id, at.as_millis()])?;
            Ok(changed == 1)
        })
        .await
    }
}
