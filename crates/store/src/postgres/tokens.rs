//! API tokens in PostgreSQL (migration 3): one row per token, hash only — as in SQLite.

use async_trait::async_trait;
use modelwatch_core::Timestamp;

use super::{pg_error, PostgresStore};
use crate::tokens::{NewToken, Scope, TokenHash, TokenInfo, TokenStore};
use crate::StoreError;

fn timestamp(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millis(ms).map_err(|e| StoreError::Corrupt(format!("token time: {e}")))
}

#[async_trait]
impl TokenStore for PostgresStore {
    async fn create_token(&self, token: NewToken) -> Result<TokenInfo, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "INSERT INTO api_tokens (name, scope, hash, created_ms) VALUES ($1, $2, $3, $4)
                 RETURNING id",
                &[
                    &token.name,
                    &token.scope.as_str(),
                    &token.hash.as_str(),
                    &token.created_at.as_millis(),
                ],
            )
            .await
            .map_err(pg_error)?;
        Ok(TokenInfo {
            id: row.try_get(0).map_err(pg_error)?,
            name: token.name,
            scope: token.scope,
            hash: token.hash,
            created_at: token.created_at,
            revoked_at: None,
        })
    }

    async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id, name, scope, hash, created_ms, revoked_ms FROM api_tokens ORDER BY id",
                &[],
            )
            .await
            .map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0).map_err(pg_error)?;
                let scope: &str = row.try_get(2).map_err(pg_error)?;
                let revoked: Option<i64> = row.try_get(5).map_err(pg_error)?;
                Ok(TokenInfo {
                    id,
                    name: row.try_get(1).map_err(pg_error)?,
                    scope: Scope::parse(scope)
                        .map_err(|e| StoreError::Corrupt(format!("token {id}: {e}")))?,
                    hash: TokenHash::from_stored(row.try_get(3).map_err(pg_error)?),
                    created_at: timestamp(row.try_get(4).map_err(pg_error)?)?,
                    revoked_at: revoked.map(timestamp).transpose()?,
                })
            })
            .collect()
    }

    async fn import_tokens(&self, tokens: Vec<TokenInfo>) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let insert = transaction
            .prepare(
                "INSERT INTO api_tokens (id, name, scope, hash, created_ms, revoked_ms)
                 OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg_error)?;
        for token in &tokens {
            transaction
                .execute(
                    &insert,
                    &[
                        &token.id,
                        &token.name,
                        &token.scope.as_str(),
                        &token.hash.as_str(),
                        &token.created_at.as_millis(),
                        &token.revoked_at.map(Timestamp::as_millis),
                    ],
                )
                .await
                .map_err(pg_error)?;
        }
        super::alerts::continue_identity_after_max(&*transaction, "api_tokens").await?;
        transaction.commit().await.map_err(pg_error)
    }

    async fn revoke_token(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &at.as_millis()],
            )
            .await
            .map_err(pg_error)?;
        Ok(changed == 1)
    }
}
