//! The worker's [`Outbox`] over the alerting store: leases, outcomes, alerts and
//! silences read and written through [`AlertStore`], so delivery state lives in the same
//! database as the alerts and survives restarts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use modelwatch_core::alerting::{Alert, AlertId, Silence};
use modelwatch_core::Timestamp;
use modelwatch_store::alerts::{ClaimChannels, Notification};
use modelwatch_store::AlertStore;

use crate::schedule::Outcome;
use crate::worker::{Delivery, Outbox, OutboxError};

#[derive(Debug, Clone)]
pub struct StoreOutbox {
    store: Arc<dyn AlertStore>,
}

impl StoreOutbox {
    pub fn new(store: Arc<dyn AlertStore>) -> Self {
        StoreOutbox { store }
    }
}

fn store_error(error: modelwatch_store::StoreError) -> OutboxError {
    OutboxError(Box::new(error))
}

fn delivery(n: Notification) -> Delivery {
    Delivery {
        id: n.id,
        alert_id: n.alert_id,
        channel: n.channel,
        event: n.event,
        payload: n.payload,
        dedup_key: n.dedup_key,
        attempts: n.attempts,
        created_at: n.created_at,
        lease_until: n.lease_until,
    }
}

#[async_trait]
impl Outbox for StoreOutbox {
    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease: Duration,
        channels: ClaimChannels<'_>,
        limit: usize,
    ) -> Result<Vec<Delivery>, OutboxError> {
        let rows = self
            .store
            .claim_notifications(owner, now, lease, channels, limit)
            .await
            .map_err(store_error)?;
        Ok(rows.into_iter().map(delivery).collect())
    }

    async fn finish(
        &self,
        id: i64,
        owner: &str,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<bool, OutboxError> {
        self.store
            .finish_notification(id, owner, outcome, now)
            .await
            .map_err(store_error)
    }

    async fn alert(&self, id: &AlertId) -> Result<Option<Alert>, OutboxError> {
        self.store.alert(id).await.map_err(store_error)
    }

    async fn silences(&self, now: Timestamp) -> Result<Vec<Silence>, OutboxError> {
        let silences = self
            .store
            .list_silences(Some(now))
            .await
            .map_err(store_error)?;
        Ok(silences.into_iter().filter(|s| s.is_active(now)).collect())
    }
}
