//! Rust errors → the package's exceptions (`modelwatch._errors`, shared with the remote
//! client): `ValidationError` (a `ValueError` naming the field), `NotFoundError`,
//! `ConflictError`, `StoreError`. The mapping follows the HTTP API's status codes (400,
//! 404, 409, 5xx), so both modes raise the same exception for the same mistake.

use modelwatch_core::alerting::LifecycleError;
use modelwatch_core::ValidationError;
use modelwatch_engine::analysis::AnalysisError;
use modelwatch_engine::EngineError;
use modelwatch_store::StoreError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Builds `modelwatch._errors.<class>(*args)`, or a built-in exception when the package
/// is not importable (the extension used on its own).
fn raise(class: &str, message: String, field: Option<String>) -> PyErr {
    Python::attach(|py| {
        let built = py
            .import("modelwatch._errors")
            .and_then(|module| module.getattr(class))
            .and_then(|class| match &field {
                Some(field) => class.call1((message.clone(), field.clone())),
                None => class.call1((message.clone(),)),
            });
        match built {
            Ok(exception) => PyErr::from_value(exception),
            Err(_) if class == "ValidationError" => PyValueError::new_err(match field {
                Some(field) => format!("{field}: {message}"),
                None => message,
            }),
            Err(_) => PyRuntimeError::new_err(message),
        }
    })
}

pub fn validation(field: impl Into<String>, message: impl Into<String>) -> PyErr {
    raise("ValidationError", message.into(), Some(field.into()))
}

pub fn not_found(message: impl Into<String>) -> PyErr {
    raise("NotFoundError", message.into(), None)
}

pub fn conflict(message: impl Into<String>) -> PyErr {
    raise("ConflictError", message.into(), None)
}

pub fn store_error(message: impl Into<String>) -> PyErr {
    raise("StoreError", message.into(), None)
}

pub fn from_validation(error: ValidationError) -> PyErr {
    validation(error.field, error.message)
}

pub fn from_store(error: StoreError) -> PyErr {
    match error {
        StoreError::Invalid(error) => from_validation(error),
        StoreError::InvalidSample { index, error } => {
            validation(format!("samples[{index}].{}", error.field), error.message)
        }
        StoreError::NotFound { .. } => not_found(error.to_string()),
        StoreError::AlreadyExists { .. } => conflict(error.to_string()),
        other => store_error(other.to_string()),
    }
}

pub fn from_analysis(error: AnalysisError) -> PyErr {
    match error {
        AnalysisError::Store(error) => from_store(error),
        unknown @ AnalysisError::UnknownSeries { .. } => not_found(unknown.to_string()),
        AnalysisError::Invalid(error) => from_validation(error),
        too_many @ AnalysisError::TooManyPoints { .. } => validation("range", too_many.to_string()),
    }
}

pub fn from_engine(error: EngineError) -> PyErr {
    match error {
        EngineError::Store(error) => from_store(error),
        EngineError::Invalid(error) => from_validation(error),
        EngineError::Lifecycle(LifecycleError::UnknownAlert(id)) => {
            not_found(format!("no alert has id {id}"))
        }
        EngineError::Lifecycle(LifecycleError::MissingActor { .. }) => {
            validation("by", "must not be empty")
        }
        EngineError::Lifecycle(other) => conflict(other.to_string()),
        unknown @ (EngineError::UnknownRule(_) | EngineError::UnknownSilence(_)) => {
            not_found(unknown.to_string())
        }
        conflicting @ (EngineError::Contention(_) | EngineError::Deleted { .. }) => {
            conflict(conflicting.to_string())
        }
        EngineError::Analysis(error) => from_analysis(error),
    }
}
