//! modelwatch: record the performance metrics of ML models, detect when they get worse,
//! alert, and show it all.
//!
//! This crate is the library behind the `modelwatch` binary: everything the CLI does is
//! reachable from here. The vocabulary and pure logic live in [`core`] (`modelwatch-core`),
//! storage in [`store`] (`modelwatch-store`).

pub mod alerts_cli;
pub mod analysis_cli;
pub mod cli;
pub mod config;
pub mod demo;
pub mod import;
pub mod migrate;
pub mod mlflow;
pub mod notify_cli;
pub mod output;
pub mod retention;
pub mod serve;

pub use modelwatch_core as core;
pub use modelwatch_store as store;

use modelwatch_core::Timestamp;

/// The wall clock, read only at the edges (CLI, server) and passed inward.
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp::from_millis(millis).unwrap_or(Timestamp::MIN)
}
