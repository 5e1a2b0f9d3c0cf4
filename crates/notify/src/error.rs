//! Why a delivery attempt failed, and whether trying again can help — Alertmanager's
//! `notify/util.go` idea: a receiver that is down, slow or overloaded (connection errors,
//! time-outs, HTTP 408/425/429/5xx, SMTP 4xx) is retried; one that refuses the message
//! itself (other HTTP 4xx, SMTP 5xx, a payload we cannot build) is not, since the same
//! request would be refused again.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the receiver: {0}")]
    Connect(String),
    #[error("receiver answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("smtp: {message}")]
    Smtp { message: String, permanent: bool },
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("no channel named {0:?} is configured")]
    UnknownChannel(String),
    #[error(transparent)]
    Render(#[from] crate::render::RenderError),
}

impl DeliveryError {
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Timeout(_) | DeliveryError::Connect(_) => true,
            DeliveryError::Status { status, .. } => http_status_is_retryable(*status),
            DeliveryError::Smtp { permanent, .. } => !permanent,
            DeliveryError::Build(_)
            | DeliveryError::UnknownChannel(_)
            | DeliveryError::Render(_) => false,
        }
    }

    /// Whether the attempt put something on the wire (or tried to): what counts as one of
    /// a row's attempts. A message that could not be built, or a channel that is not
    /// configured, was never sent.
    pub fn was_sent(&self) -> bool {
        !matches!(
            self,
            DeliveryError::Build(_) | DeliveryError::UnknownChannel(_) | DeliveryError::Render(_)
        )
    }

    /// The receiver's answer, trimmed so a chatty error page does not fill the store.
    pub fn status(status: u16, body: &str) -> DeliveryError {
        let mut body: String = body.trim().chars().take(300).collect();
        if body.is_empty() {
            body = "(empty body)".into();
        }
        DeliveryError::Status { status, body }
    }
}

/// 408 Request Timeout, 425 Too Early, 429 Too Many Requests and every 5xx say "later";
/// any other 4xx says "never like this".
pub fn http_status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overload_and_outages_are_retried_refusals_are_not() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(DeliveryError::status(status, "").is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 413, 422] {
            assert!(
                !DeliveryError::status(status, "").is_retryable(),
                "{status}"
            );
        }
        assert!(DeliveryError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(!DeliveryError::Build("x".into()).is_retryable());
        let smtp_busy = DeliveryError::Smtp {
            message: "451".into(),
            permanent: false,
        };
        assert!(smtp_busy.is_retryable());
    }

    #[test]
    fn long_bodies_are_trimmed() {
        let DeliveryError::Status { body, .. } = DeliveryError::status(500, &"x".repeat(5000))
        else {
            panic!("status")
        };
        assert_eq!(body.len(), 300);
    }
}
