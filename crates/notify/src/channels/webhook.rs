//! Generic webhooks: the alert and its transition as JSON, signed with HMAC-SHA256 of the
//! exact body when the channel has a secret (`X-Modelwatch-Signature: sha256=<hex>`, as
//! GitHub signs its webhooks), so the receiver can check it came from us untouched.

use hmac::{Hmac, Mac};
use modelwatch_core::alerting::Alert;
use serde::Serialize;
use sha2::Sha256;

use crate::message::{AlertMessage, Labelled};

pub const SIGNATURE_HEADER: &str = "X-Modelwatch-Signature";
pub const EVENT_HEADER: &str = "X-Modelwatch-Event";
/// The outbox key: the same on every retry of one notification.
pub const DELIVERY_HEADER: &str = "X-Modelwatch-Delivery";

/// Version 1 of the webhook body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Body<'a> {
    pub version: &'static str,
    /// firing, acknowledged or resolved.
    pub event: &'static str,
    pub dedup_key: &'a str,
    pub at: String,
    /// The alert as of the event, as the API shows alerts (the stored form; the API's
    /// tests pin the two together).
    #[serde(serialize_with = "modelwatch_store::alerts::records::serialize_alert")]
    pub alert: &'a Alert,
    pub summary: String,
    pub current: f64,
    /// `baseline`, `threshold`, `before the shift` or `minutes silent, limit`.
    #[serde(flatten)]
    pub reference: Labelled,
    pub change_percent: Option<f64>,
    pub p_value: Option<f64>,
    pub test: &'a str,
    pub alpha: Option<f64>,
    pub alert_url: &'a str,
}

pub fn body(m: &AlertMessage) -> Body<'_> {
    let figures = m.figures();
    Body {
        version: "1",
        event: m.event.as_str(),
        dedup_key: &m.dedup_key,
        at: m.at.to_rfc3339(),
        alert: &m.alert,
        summary: m.headline(),
        current: figures.current,
        reference: figures.labelled_reference(|r| r),
        change_percent: figures.change_percent,
        p_value: m.p_value(),
        test: m.test_name(),
        alpha: m.alpha(),
        alert_url: &m.alert_url,
    }
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;
    use modelwatch_core::alerting::NotificationEvent;

    #[test]
    fn signature_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn body_carries_the_alert_and_its_transition() {
        let b =
            serde_json::to_value(body(&message(NotificationEvent::Acknowledged))).expect("json");
        assert_eq!(b["version"], "1");
        assert_eq!(b["event"], "acknowledged");
        assert_eq!(b["alert"]["id"], "alert_3f9a1c2b");
        assert_eq!(b["alert"]["status"], "acknowledged");
        assert_eq!(b["alert"]["acknowledged_by"], "alice");
        assert_eq!(b["baseline"], 0.94);
        assert_eq!(b["p_value"], 0.0012);
        assert_eq!(b["test"], "welch_t+batch_means");
        assert_eq!(b["alpha"], 0.01);
        assert_eq!(b["alert"]["trigger"]["test"]["p_value"], 0.0012);
        assert_eq!(
            b["alert_url"],
            "http://127.0.0.1:7878/alerts/alert_3f9a1c2b"
        );
    }
}
