//! modelwatch's notifications: channels configured by name (`[channels.NAME]`), the wire
//! payload of each kind (Slack Block Kit, PagerDuty Events API v2, e-mail, signed
//! webhooks, Alertmanager's API), and the decisions of delivering them — which errors are
//! worth a retry, when to retry, how many messages a channel may get, when several become
//! one digest.
//!
//! Layout, in pipeline order: [`config`] (raw → validated channels), [`message`] (what a
//! notification says), [`render`] (an outbox row's alert as of its event), [`channels`] (payloads and [`channels::Sender`]), [`error`]
//! (retryable or permanent), [`schedule`] (back-off, rate limit, digest — pure, clock
//! passed in). The decisions take "now" as an argument; only the sender does I/O.

pub mod channels;
pub mod config;
pub mod error;
pub mod message;
pub mod render;
pub mod schedule;
pub mod secret;
pub mod store_outbox;
pub mod test_send;
pub mod worker;

pub use channels::Sender;
pub use config::{
    ChannelConfig, ChannelKind, ChannelName, ChannelSummary, ConfigError, DeliveryPolicy,
    NotifyConfig, RawChannel, RawChannels, RawNotify,
};
pub use error::DeliveryError;
pub use message::AlertMessage;
pub use render::RenderError;
pub use schedule::{after_failure, backoff, plan, Outcome, Plan, RateLimiter};
pub use secret::Secret;
pub use store_outbox::StoreOutbox;
pub use test_send::{send_test, TestOutcome};
pub use worker::{Delivery, Outbox, OutboxError, PassReport, Worker};
