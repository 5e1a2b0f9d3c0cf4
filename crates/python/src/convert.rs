//! Results → Python objects through the HTTP API's wire types (`modelwatch_http::wire`):
//! the exact JSON the API answers with, as dicts, lists, strings and numbers. The Python
//! package's typed records (`modelwatch._wire`) are built from these dicts, so the field
//! names have one source, the wire types, whichever mode the package runs in.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::errors;

/// `value`'s JSON as a Python object. Only a type with an OpenAPI schema, a wire type,
/// can be handed back: the core's domain types have none, so one returned by mistake
/// does not compile.
pub fn to_python<T: Serialize + ToSchema>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    let json = serde_json::to_value(value)
        .map_err(|e| errors::store_error(format!("cannot serialise a result: {e}")))?;
    json_to_python(py, &json)
}

pub fn json_to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into_pyobject(py)?.into_any().unbind(),
            None => n
                .as_f64()
                .unwrap_or(f64::NAN)
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_python(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (key, item) in map {
                dict.set_item(key, json_to_python(py, item)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// A Python object (dicts, lists, str, numbers, bool, None) as JSON, for inputs read by
/// the wire's request types (rules, predictions) and the `[alerts]` configuration.
pub fn python_to_json(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.cast::<pyo3::types::PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if let Ok(i) = value.extract::<i64>() {
        if value.is_instance_of::<pyo3::types::PyInt>() {
            return Ok(Value::from(i));
        }
    }
    if let Ok(f) = value.extract::<f64>() {
        if value.is_instance_of::<pyo3::types::PyFloat>()
            || value.is_instance_of::<pyo3::types::PyInt>()
        {
            return Ok(serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number));
        }
    }
    if let Ok(s) = value.extract::<String>() {
        return Ok(Value::String(s));
    }
    if let Ok(dict) = value.cast::<PyDict>() {
        let mut map = serde_json::Map::new();
        for (key, item) in dict.iter() {
            map.insert(key.extract::<String>()?, python_to_json(&item)?);
        }
        return Ok(Value::Object(map));
    }
    if let Ok(list) = value.cast::<PyList>() {
        return list
            .iter()
            .map(|item| python_to_json(&item))
            .collect::<PyResult<Vec<_>>>()
            .map(Value::Array);
    }
    Err(errors::validation(
        "value",
        format!("cannot pass a {} to modelwatch", value.get_type().name()?),
    ))
}
