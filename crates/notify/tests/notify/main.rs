//! modelwatch-notify's integration tests, one binary: every channel against a real
//! receiver, and the delivery worker's retry, digest, rate-limit and skip behaviour.
#![allow(clippy::unwrap_used)]

mod faults;
mod receivers;
mod support;
mod worker;
