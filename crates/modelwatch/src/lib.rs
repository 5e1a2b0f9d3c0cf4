//! modelwatch: record the performance metrics of ML models, detect when they get worse,
//! alert, and show it all.
//!
//! This crate is the library behind the `modelwatch` binary: everything the CLI does is
//! reachable from here. The vocabulary and pure logic live in [`core`] (`modelwatch-core`),
//! storage in [`store`] (`modelwatch-store`).
//!
//! Output never panics: lines go through [`outln!`] (standard output, returns the write's
//! `io::Result`) and [`note!`] (standard error, best effort), both through `anstream`,
//! which drops colour codes when the stream is not a terminal. A closed pipe (`| head`)
//! surfaces as an error `cli::main` ends quietly on; `println!` would panic there, so the
//! crate denies it.

#![deny(clippy::print_stdout, clippy::print_stderr)]

/// `writeln!` to standard output: `outln!("…")?`. A reader that went away (a broken
/// pipe) is an error like any other, which `cli::main` turns into a quiet exit.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(anstream::stdout(), $($arg)*)
    }};
}

/// `writeln!` to standard error, ignoring failure: a message nobody can read is not worth
/// a panic or an error of its own.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(anstream::stderr(), $($arg)*);
    }};
}

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
pub mod predictions_cli;
pub mod retention;
pub mod serve;
mod shutdown;

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
