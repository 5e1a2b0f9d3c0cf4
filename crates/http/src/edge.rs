//! What every route does the same way, whatever its handler: a query parameter the route
//! does not document is refused, every error answer carries the JSON error body (also
//! those made by axum and tower-http, such as 405 and 415), and the request log never
//! shows a secret sent in a query string.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Routes whose unknown query parameters are accepted: InfluxDB clients send ones
/// modelwatch has no use for (`rp`, `u`, `p`, `consistency`, …), and Grafana some the
/// Prometheus API ignores.
pub(crate) const LENIENT: [&str; 13] = [
    "/write",
    "/api/v2/write",
    crate::influx::ROUTES[0],
    crate::influx::ROUTES[1],
    crate::influx::ROUTES[2],
    crate::influx::ROUTES[3],
    crate::influx::ROUTES[4],
    crate::promql::ROUTES[0],
    crate::promql::ROUTES[1],
    crate::promql::ROUTES[2],
    crate::promql::ROUTES[3],
    crate::promql::ROUTES[4],
    crate::promql::ROUTES[5],
];

/// The query parameters of every documented route, read from the OpenAPI document, so a
/// route cannot take a parameter its documentation does not list.
#[derive(Debug, Default)]
pub(crate) struct QueryParameters {
    by_route: HashMap<(String, Method), Vec<String>>,
}

impl QueryParameters {
    pub(crate) fn of(document: &utoipa::openapi::OpenApi) -> QueryParameters {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::RefOr;
        let mut by_route = HashMap::new();
        for (path, item) in &document.paths.paths {
            if LENIENT.contains(&path.as_str()) {
                continue;
            }
            let operations = [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::PATCH, &item.patch),
                (Method::DELETE, &item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let names = operation
                    .parameters
                    .iter()
                    .flatten()
                    .chain(item.parameters.iter().flatten())
                    .filter_map(|parameter| match parameter {
                        RefOr::T(parameter) => Some(parameter),
                        RefOr::Ref(_) => None,
                    })
                    .filter(|p| matches!(p.parameter_in, ParameterIn::Query))
                    .map(|p| p.name.clone())
                    .collect();
                by_route.insert((path.clone(), method), names);
            }
        }
        QueryParameters { by_route }
    }

    /// The first parameter of `query` that the route does not take, with the message.
    fn unknown(&self, route: &str, method: &Method, query: &str) -> Option<ApiError> {
        let method = if method == Method::HEAD {
            Method::GET
        } else {
            method.clone()
        };
        let takes = self.by_route.get(&(route.to_owned(), method))?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let (name, _) = pairs
            .iter()
            .find(|(name, _)| !takes.iter().any(|t| t == name))?;
        let takes = match takes.as_slice() {
            [] => "none".to_owned(),
            names => names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        Some(ApiError::bad_request(
            name.clone(),
            format!("unknown parameter: this route takes {takes}"),
        ))
    }
}

/// The parameters of a request that may send them in its query string or, as the
/// Prometheus and InfluxDB query APIs allow, in a form-encoded body: query first, then
/// form, in the order sent. The error says which part could not be read.
pub(crate) fn query_and_form_pairs(
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = match query {
        Some(query) => serde_urlencoded::from_str(query)
            .map_err(|e| format!("cannot read the query string: {e}"))?,
        None => Vec::new(),
    };
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form && !body.is_empty() {
        let more: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| format!("cannot read the form body: {e}"))?;
        pairs.extend(more);
    }
    Ok(pairs)
}

/// Refuses a query parameter the route does not document: a misspelt or unsupported
/// filter must not be silently ignored.
pub(crate) async fn refuse_unknown_parameters(
    State(parameters): State<Arc<QueryParameters>>,
    request: Request,
    next: Next,
) -> Response {
    if let (Some(route), Some(query)) = (
        request.extensions().get::<MatchedPath>(),
        request.uri().query(),
    ) {
        if let Some(error) = parameters.unknown(route.as_str(), request.method(), query) {
            return error.into_response();
        }
    }
    next.run(request).await
}

/// The longest plain-text error body read to be put into the JSON body.
const MAX_PLAIN_BODY: usize = 4096;

/// Gives an error answer that has no JSON body (axum's 405, tower-http's 415 for an
/// unsupported `Content-Encoding`, a plain-text rejection) the JSON error body every
/// other error has; its text, if any, becomes the message.
pub(crate) async fn json_error_bodies(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_PLAIN_BODY)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let allow = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(match &allow {
            Some(allow) => format!("{path} does not take {method}; it takes {allow}"),
            None => format!("{path} does not take {method}"),
        }),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(match text.as_str() {
            "" => "the request body's Content-Type or Content-Encoding is not one this route \
                   takes (bodies may be gzip-compressed)"
                .to_owned(),
            text => text.to_owned(),
        }),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::NOT_FOUND => ApiError::NotFound(match text.as_str() {
            "" => "not found".to_owned(),
            text => text.to_owned(),
        }),
        // axum's own rejections (a path segment that does not parse, say); the status
        // is kept below.
        status if status.is_client_error() => ApiError::bad_request(
            "request",
            match text.as_str() {
                "" => status
                    .canonical_reason()
                    .unwrap_or("bad request")
                    .to_owned(),
                text => text.to_owned(),
            },
        ),
        _ => ApiError::Internal(format!("{status} without a body: {text}")),
    };
    let mut answer = error.into_response();
    // Keep what the original answer said about itself (Allow, Retry-After, …).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    *answer.status_mut() = status;
    answer
}

/// The names of query parameters whose values are never logged.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["token", "key", "secret", "password", "auth", "credential", "session"]
        .iter()
        .any(|word| name.contains(word))
        // InfluxDB v1 clients send their credentials as u and p.
        || name == "p"
        || name == "u"
}

/// The request's URI as the log shows it: the values of parameters that may be
/// secrets replaced by `<redacted>`.
pub(crate) fn loggable_uri(uri: &Uri) -> String {
    let Some(query) = uri.query() else {
        return uri.path().to_owned();
    };
    let query = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded: String = serde_urlencoded::from_str::<Vec<(String, String)>>(pair)
                .ok()
                .and_then(|pairs| pairs.into_iter().next())
                .map_or_else(|| name.to_owned(), |(name, _)| name);
            if is_secret(&decoded) && !value.is_empty() {
                format!("{name}=<redacted>")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{}?{query}", uri.path())
}

/// The request span of [`tower_http::trace::TraceLayer`]: tower-http's default, with the
/// URI through [`loggable_uri`].
pub(crate) fn request_span(request: &axum::http::Request<Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        uri = %loggable_uri(request.uri()),
        version = ?request.version(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_query_strings_are_redacted_and_the_rest_kept() {
        let uri: Uri =
            "/api/v1/alerts?token=mw_abc123&hours=24&api%5Fkey=s3cret&p=pw&status=active"
                .parse()
                .expect("uri");
        let logged = loggable_uri(&uri);
        assert_eq!(
            logged,
            "/api/v1/alerts?token=<redacted>&hours=24&api%5Fkey=<redacted>&p=<redacted>&status=active"
        );
        for secret in ["mw_abc123", "s3cret", "pw"] {
            assert!(!logged.contains(secret), "{logged}");
        }
        let uri: Uri = "/api/v1/models".parse().expect("uri");
        assert_eq!(loggable_uri(&uri), "/api/v1/models");
    }

    #[test]
    fn routes_without_parameters_refuse_any_and_the_others_name_theirs() {
        let parameters = QueryParameters::of(&crate::openapi());
        let error = parameters
            .unknown("/api/v1/models", &Method::GET, "colour=red")
            .expect("refused");
        assert_eq!(
            error.to_string(),
            "colour: unknown parameter: this route takes none"
        );
        let error = parameters
            .unknown(
                "/api/v1/models/{model}/versions/{version}/history",
                &Method::GET,
                "hours=1&colour=red",
            )
            .expect("refused");
        assert!(error.to_string().contains("`hours`"), "{error}");
        assert!(parameters
            .unknown(
                "/api/v1/models/{model}/versions/{version}/history",
                &Method::HEAD,
                "hours=1"
            )
            .is_none());
        assert!(parameters
            .unknown("/write", &Method::POST, "db=x&rp=y&u=me&p=pw")
            .is_none());
    }
}
