//! The one error type of the HTTP API and its mapping to status codes.
//!
//! Clients get `{"error": {"code": …, "message": …}}`: a stable machine-readable code and
//! a message that names the bad field. Store and internal failures are logged in full
//! and answered with a generic message, so no SQL, path or stack trace reaches a client.

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use modelwatch_core::text::{elide, MAX_MESSAGE_CHARS};
use modelwatch_core::ValidationError;

/// The longest field name an error body shows (an unknown key is named as the field).
const MAX_FIELD_CHARS: usize = 200;
use modelwatch_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Bad input; `field` names what is wrong.
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The request is valid but impossible in the current state (e.g. resolving twice).
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than the server's limit (max_body_bytes)")]
    PayloadTooLarge,
    /// The route exists but not with this method; the message names the ones it takes.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body's type or encoding is not one the route takes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("the request took longer than {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Unavailable(String),
    /// Too much expensive work at once; the client should retry after a moment.
    #[error("{0}")]
    TooManyRequests(String),
    /// A configured limit refuses the request (too many series, say); the message names
    /// the limit and its configuration key.
    #[error("{0}")]
    LimitExceeded(String),
    /// Anything the client cannot fix; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: bad_request, not_found, method_not_allowed, conflict,
    /// payload_too_large, unsupported_media_type, unauthorized, forbidden, timeout,
    /// unavailable, too_many_requests, limit_exceeded, internal.
    pub code: String,
    /// For people; names the offending field where there is one.
    pub message: String,
    /// The offending field, for bad requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::LimitExceeded(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Timeout(_) => "timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::TooManyRequests(_) => "too_many_requests",
            ApiError::LimitExceeded(_) => "limit_exceeded",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The error as clients get it. What echoes their input (an unknown key, a bad
    /// value) is cut to a readable size: [`elide`] keeps the start and the end.
    pub fn body(&self) -> ErrorBody {
        let message = match self {
            ApiError::Internal(_) => "internal error; the server log has the details".to_owned(),
            other => elide(&other.to_string(), MAX_MESSAGE_CHARS).into_owned(),
        };
        ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message,
                field: match self {
                    ApiError::BadRequest { field, .. } => {
                        Some(elide(field, MAX_FIELD_CHARS).into_owned())
                    }
                    _ => None,
                },
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(error = %detail, "request failed"),
            ApiError::Unavailable(detail) => tracing::warn!(error = %detail, "request failed"),
            _ => {
                tracing::debug!(error = %elide(&self.to_string(), MAX_MESSAGE_CHARS), "request rejected")
            }
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        // Load and time-outs pass: say when to come back.
        if matches!(self, ApiError::TooManyRequests(_) | ApiError::Timeout(_)) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::BadRequest {
            field: error.field,
            message: error.message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidSample { index, error } => ApiError::BadRequest {
                field: format!("samples[{index}].{}", error.field),
                message: error.message,
            },
            StoreError::Invalid(error) => error.into(),
            StoreError::TooManySeries(exceeded) => ApiError::LimitExceeded(exceeded.to_string()),
            StoreError::Closed => ApiError::Unavailable("the server is shutting down".into()),
            missing @ StoreError::NotFound { .. } => ApiError::NotFound(missing.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        body_rejection(rejection.status(), rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::BytesRejection(bytes) => bytes.into(),
            JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
                "content-type",
                "expected a request with `Content-Type: application/json`",
            ),
            other => {
                // axum deserializes through serde_path_to_error: the error has the path.
                let mut source = std::error::Error::source(&other);
                while let Some(error) = source {
                    if let Some(typed) =
                        error.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>()
                    {
                        return json_error(typed, "body").into();
                    }
                    source = error.source();
                }
                ApiError::bad_request("body", other.body_text())
            }
        }
    }
}

/// A JSON document's error as the field it is about and what is wrong with it.
///
/// The field is the error's path (`samples[3].value`; a missing or unknown key is named
/// as the field), or `whole` for the document as a whole. The message leaves out what
/// the field already says: serde_json's position (kept for syntax errors, which have no
/// field) and a validated type's own field name (`metric: must not be empty` under the
/// field `metric`).
pub fn json_error(
    error: &serde_path_to_error::Error<serde_json::Error>,
    whole: &str,
) -> ValidationError {
    let inner = error.inner();
    let text = inner.to_string();
    if !inner.is_data() {
        return ValidationError::new(whole, format!("invalid JSON: {text}"));
    }
    let position = format!(" at line {} column {}", inner.line(), inner.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    let path = error.path().to_string();
    // The path ends at the key for an unknown or duplicate one, before it for a missing one.
    let under = |name: &str| match path.as_str() {
        "." => name.to_owned(),
        _ if path == name || path.ends_with(&format!(".{name}")) => path.clone(),
        _ => format!("{path}.{name}"),
    };
    let quoted = |marker: &str| {
        message
            .split_once(marker)
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, rest)| (name.to_owned(), rest.to_owned()))
    };
    if let Some((name, _)) = quoted("missing field `") {
        return ValidationError::new(under(&name), "missing");
    }
    if let Some((name, _)) = quoted("duplicate field `") {
        return ValidationError::new(under(&name), "appears twice");
    }
    if let Some((name, rest)) = quoted("unknown field `") {
        let takes = rest
            .split_once("expected one of ")
            .or_else(|| rest.split_once("expected "))
            .map_or(String::new(), |(_, takes)| {
                format!("; the fields are {takes}")
            });
        return ValidationError::new(under(&name), format!("unknown field{takes}"));
    }
    let field = match path.as_str() {
        "." => whole.to_owned(),
        _ => path.clone(),
    };
    let last = field.rsplit(['.', ']']).next().unwrap_or(&field);
    let message = message
        .split_once(": ")
        .filter(|(named, _)| *named == last || Some(*named) == canonical_name(last))
        .map_or(message, |(_, rest)| rest);
    ValidationError::new(field, message)
}

/// The name a validated type gives itself when the wire used one of the seed's longer
/// names for it.
fn canonical_name(wire: &str) -> Option<&'static str> {
    Some(match wire {
        "model_name" => "model",
        "model_version" => "version",
        "metric_type" => "metric",
        "metric_value" => "value",
        _ => return None,
    })
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        // axum deserializes through serde_path_to_error: a bad value carries the
        // parameter's name as its path. At the top (path ".") the error is about the
        // parameters as a whole: an unknown one is named as the field — a misspelt or
        // unsupported filter must not be silently ignored — from serde's message, the
        // only place that has it.
        let mut source = std::error::Error::source(&rejection);
        while let Some(error) = source {
            if let Some(typed) =
                error.downcast_ref::<serde_path_to_error::Error<serde::de::value::Error>>()
            {
                let path = typed.path().to_string();
                let message = typed.inner().to_string();
                if path != "." {
                    return ApiError::bad_request(path, message);
                }
                return top_level_query_error(&message);
            }
            source = error.source();
        }
        ApiError::bad_request("query", rejection.body_text())
    }
}

fn top_level_query_error(text: &str) -> ApiError {
    let missing = text
        .split_once("missing field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    if let Some(name) = missing {
        return ApiError::bad_request(name, "this parameter is required");
    }
    let unknown = text
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    match unknown {
        Some(name) => {
            let takes = text
                .split_once("expected one of ")
                .or_else(|| text.split_once("expected "))
                .map_or(String::new(), |(_, takes)| {
                    format!(": this route takes {takes}")
                });
            ApiError::bad_request(name, format!("unknown parameter{takes}"))
        }
        None => ApiError::bad_request("query", text),
    }
}

pub(crate) fn body_rejection(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    ApiError::bad_request("body", text)
}

pub type ApiResult<T> = Result<T, ApiError>;
