//! One module per channel kind building its wire payload (pure, tested against the
//! documented schemas), and [`Sender`], which puts a payload on the wire with the
//! channel's timeout around the whole exchange and classifies what went wrong.

pub mod alertmanager;
pub mod email;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use modelwatch_core::Timestamp;

use crate::config::{ChannelConfig, ChannelKind, EmailConfig, Tls};
use crate::error::DeliveryError;
use crate::message::AlertMessage;
use crate::render::body_bytes;

/// Sends rendered messages. Cheap to clone: the HTTP connection pool is shared.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
}

impl Sender {
    pub fn new() -> Result<Sender, DeliveryError> {
        let http = reqwest::Client::builder()
            // A redirect would re-send a signed body somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("modelwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DeliveryError::Build(format!("http client: {e}")))?;
        Ok(Sender { http })
    }

    /// Sends `messages` to `channel`: one message, or a digest of several for the kinds
    /// that digest (the others get them one by one). The channel's timeout bounds the
    /// whole call, so a receiver that accepts the connection and then hangs costs at
    /// most that long.
    pub async fn send(
        &self,
        channel: &ChannelConfig,
        messages: &[AlertMessage],
        now: Timestamp,
    ) -> Result<(), DeliveryError> {
        let work = self.send_untimed(channel, messages, now);
        match tokio::time::timeout(channel.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(DeliveryError::Timeout(channel.timeout)),
        }
    }

    async fn send_untimed(
        &self,
        channel: &ChannelConfig,
        messages: &[AlertMessage],
        now: Timestamp,
    ) -> Result<(), DeliveryError> {
        let [first, rest @ ..] = messages else {
            return Ok(());
        };
        let digest = !rest.is_empty();
        match &channel.kind {
            ChannelKind::Slack(slack) => {
                let message = if digest {
                    slack::digest(messages)
                } else {
                    slack::single(first)
                };
                let body = body_bytes("slack", &message)?;
                self.post(slack.url.expose(), body, &[]).await
            }
            ChannelKind::Email(config) => {
                let email = if digest {
                    email::digest(messages)
                } else {
                    email::single(first)
                };
                send_email(config, email, channel.timeout).await
            }
            ChannelKind::PagerDuty(pd) => {
                for m in messages {
                    let body =
                        body_bytes("pagerduty", &pagerduty::event(pd.routing_key.expose(), m))?;
                    self.post(pd.url.as_str(), body, &[]).await?;
                }
                Ok(())
            }
            ChannelKind::Webhook(hook) => {
                for m in messages {
                    let body = body_bytes("webhook", &webhook::body(m))?;
                    let mut headers = vec![
                        (webhook::EVENT_HEADER, m.event.as_str().to_owned()),
                        (webhook::DELIVERY_HEADER, m.dedup_key.clone()),
                    ];
                    if let Some(secret) = &hook.secret {
                        headers.push((
                            webhook::SIGNATURE_HEADER,
                            webhook::signature(secret.expose(), &body),
                        ));
                    }
                    self.post(hook.url.as_str(), body, &headers).await?;
                }
                Ok(())
            }
            ChannelKind::Alertmanager(am) => {
                let alerts: Vec<alertmanager::PostableAlert<'_>> = messages
                    .iter()
                    .filter_map(|m| alertmanager::alert(m, now, am.firing_ttl))
                    .collect();
                if alerts.is_empty() {
                    return Ok(());
                }
                let url = am
                    .url
                    .join(alertmanager::ALERTS_PATH)
                    .map_err(|e| DeliveryError::Build(e.to_string()))?;
                let body = body_bytes("alertmanager", &alerts)?;
                self.post(url.as_str(), body, &[]).await
            }
        }
    }

    async fn post(
        &self,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> Result<(), DeliveryError> {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(request_error)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(DeliveryError::status(status.as_u16(), &body))
    }
}

/// reqwest's errors name the URL, and a Slack webhook URL is a credential: drop it.
fn request_error(error: reqwest::Error) -> DeliveryError {
    let timeout = error.is_timeout();
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if timeout {
        DeliveryError::Connect(format!("timed out: {text}"))
    } else {
        DeliveryError::Connect(text)
    }
}

async fn send_email(
    config: &EmailConfig,
    email: email::Email,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let address = |text: &str| -> Result<Mailbox, DeliveryError> {
        text.parse()
            .map_err(|e| DeliveryError::Build(format!("address {text:?}: {e}")))
    };
    let mut builder = lettre::Message::builder()
        .from(address(&config.from)?)
        .subject(email.subject);
    for to in &config.to {
        builder = builder.to(address(to)?);
    }
    let message = builder
        .multipart(MultiPart::alternative_plain_html(email.text, email.html))
        .map_err(|e| DeliveryError::Build(e.to_string()))?;
    let smtp_error = |e: lettre::transport::smtp::Error| DeliveryError::Smtp {
        permanent: e.is_permanent(),
        message: e.to_string(),
    };
    let host = config.smtp_host.as_str();
    let builder = match (config.tls, &config.ca) {
        (Tls::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        (Tls::Starttls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(smtp_error)?
        }
        (Tls::Tls, None) => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(smtp_error)?
        }
        // The configured CA is trusted besides the public roots; the certificate and the
        // host name are still verified.
        (tls, Some(ca)) => {
            let parameters = TlsParameters::builder(host.to_owned())
                .add_root_certificate(Certificate::from_pem(&ca.pem).map_err(smtp_error)?)
                .build()
                .map_err(smtp_error)?;
            let tls = match tls {
                Tls::Starttls => SmtpTls::Required(parameters),
                _ => SmtpTls::Wrapper(parameters),
            };
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(tls)
        }
    };
    let mut builder = builder.port(config.smtp_port).timeout(Some(timeout));
    if let Some((user, password)) = &config.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    builder
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(smtp_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;
    use modelwatch_core::alerting::NotificationEvent;

    fn json(body: impl serde::Serialize) -> String {
        serde_json::to_string(&body).expect("json")
    }

    /// Every channel's "Open in modelwatch" link is `{dashboard}/alerts/{id}`, the path the
    /// server answers with the dashboard's page for that alert (crates/dashboard).
    #[test]
    fn every_channel_links_to_the_alerts_page() {
        let m = message(NotificationEvent::Firing);
        let link = "http://127.0.0.1:7878/alerts/alert_3f9a1c2b";
        assert_eq!(m.alert_url, link);
        let now = m.at;
        let payloads = [
            ("slack", json(slack::single(&m))),
            (
                "slack digest",
                json(slack::digest(std::slice::from_ref(&m))),
            ),
            ("pagerduty", json(pagerduty::event("key", &m))),
            ("webhook", json(webhook::body(&m))),
            (
                "alertmanager",
                json(alertmanager::alert(&m, now, Duration::from_secs(3600))),
            ),
            ("email text", email::single(&m).text),
            ("email html", email::single(&m).html),
        ];
        for (kind, payload) in payloads {
            assert!(payload.contains(link), "{kind}: {payload}");
        }
    }

    /// Every channel names the dataset of an alert of a dataset other than the default
    /// one, and none mentions a dataset for the default one.
    #[test]
    fn every_channel_names_a_dataset_other_than_the_default() {
        let payloads = |m: &crate::message::AlertMessage| {
            let now = m.at;
            [
                ("slack", json(slack::single(m))),
                ("slack digest", json(slack::digest(std::slice::from_ref(m)))),
                ("pagerduty", json(pagerduty::event("key", m))),
                ("webhook", json(webhook::body(m))),
                (
                    "alertmanager",
                    json(alertmanager::alert(m, now, Duration::from_secs(3600))),
                ),
                ("email text", email::single(m).text),
                ("email html", email::single(m).html),
            ]
        };
        let mut m = message(NotificationEvent::Firing);
        for (kind, payload) in payloads(&m) {
            assert!(
                !payload.to_lowercase().contains("dataset"),
                "{kind}: {payload}"
            );
        }
        m.alert.dataset = Some(modelwatch_core::Dataset::parse("canary-eu").expect("dataset"));
        assert_eq!(
            m.headline(),
            "[FIRING] high: fraud_detector v2.1 [canary-eu] precision 0.87 (baseline 0.94, -7.4%)"
        );
        for (kind, payload) in payloads(&m) {
            assert!(payload.contains("canary-eu"), "{kind}: {payload}");
        }
        let posted = alertmanager::alert(&m, m.at, Duration::from_secs(3600)).expect("posted");
        assert_eq!(posted.labels.keys.dataset, Some("canary-eu"));
    }
}
