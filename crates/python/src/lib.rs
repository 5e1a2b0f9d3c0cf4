//! `modelwatch._native`: the Rust engine inside the Python package.
//!
//! The Python package (`python/modelwatch`) holds the seed's API; this module is the
//! embedded mode's engine under it ([`database::Database`]: the same store, engine and
//! analyses the CLI and the server use, on the same database locations) and the CLI
//! itself ([`run_cli`], behind the wheel's `modelwatch` command).
//!
//! Results cross the boundary as the serde forms the HTTP API serialises (the core's
//! types through `serde_json`), so a field has one name in JSON, the CLI and Python
//! ([`convert`]). Errors become the package's exceptions ([`errors`]); no panic crosses
//! the boundary (PyO3 turns one into `PanicException`, and none is expected). Store work
//! runs with the GIL released.

use pyo3::prelude::*;

mod buffer;
mod convert;
mod database;
mod errors;

/// Runs the `modelwatch` command line with `args` (the program name first) and returns
/// its exit status; the GIL is released while it runs (`serve` runs until a signal).
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<String>) -> i32 {
    py.detach(|| modelwatch::cli::main_with_args(args))
}

/// The database the CLI opens without `--db` or `MODELWATCH_DB`.
#[pyfunction]
fn default_location() -> PyResult<String> {
    modelwatch::config::default_database().map_err(|e| errors::store_error(e.to_string()))
}

/// A custom metric's direction as the MLflow import infers it from the name
/// (`higher_is_better` / `lower_is_better` and why), `None` when the name does not say.
#[pyfunction]
fn infer_direction(name: &str) -> Option<(&'static str, String)> {
    modelwatch::mlflow::infer_direction(name)
        .map(|(direction, reason)| (direction.as_str(), reason))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<database::Database>()?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(default_location, m)?)?;
    m.add_function(wrap_pyfunction!(infer_direction, m)?)?;
    m.add_function(wrap_pyfunction!(database::now_ms, m)?)?;
    m.add_function(wrap_pyfunction!(database::validate_sample, m)?)?;
    m.add_function(wrap_pyfunction!(database::validate_columns, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
