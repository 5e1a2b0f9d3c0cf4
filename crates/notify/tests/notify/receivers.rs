//! Every channel against a real receiver: recording HTTP servers checking the Slack,
//! PagerDuty and webhook payloads and the HMAC signature, aiosmtpd receiving the e-mail,
//! and a real Prometheus Alertmanager listing the alert until it is resolved. Plus the
//! failure modes: receiver down, refusing, hanging.

use std::time::{Duration, Instant};

use crate::support::{Alertmanager, Behaviour, Receiver, SmtpSink, SmtpTls, TestPki};
use modelwatch_core::alerting::{
    Alert, AlertId, AlertStatus, NotificationEvent, RuleId, Severity, SignificanceTest, Trigger,
};
use modelwatch_core::{Metric, ModelName, Timestamp, Version};
use modelwatch_notify::channels::webhook;
use modelwatch_notify::{AlertMessage, ChannelConfig, DeliveryError, RawChannel, Secret, Sender};
use reqwest::Url;

pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_millis(i64::try_from(ms).unwrap()).unwrap()
}

pub fn alert(id: u32, first_seen: Timestamp) -> Alert {
    Alert {
        id: AlertId::from_u32(id),
        rule_id: RuleId::from_u32(7),
        rule_name: "precision_drop".into(),
        model: ModelName::parse("fraud_detector").unwrap(),
        version: Version::parse("v2.1").unwrap(),
        dataset: None,
        metric: Metric::parse("precision").unwrap().into(),
        severity: Severity::High,
        status: AlertStatus::Active,
        message: "precision fell 7.4% below its baseline".into(),
        value: 7.4468,
        worst_value: 7.4468,
        trigger: Trigger::Degradation {
            max_degradation_percentage: 5.0,
            degradation_percentage: 7.4468,
            current_value: 0.87,
            baseline_value: 0.94,
            test: Some(SignificanceTest {
                p_value: Some(0.003),
                method: "welch_t+batch_means".into(),
                alpha: 0.01,
            }),
        },
        first_seen,
        last_seen: first_seen,
        occurrences: 1,
        notified: true,
        hold_reason: None,
        acknowledged_by: None,
        acknowledged_at: None,
        resolved_by: None,
        resolved_at: None,
        resolution_notes: None,
        label_coverage: None,
        revision: 0,
    }
}

fn message(alert: &Alert, event: NotificationEvent, at: Timestamp) -> AlertMessage {
    let mut alert = alert.clone();
    match event {
        NotificationEvent::Firing => {}
        NotificationEvent::Acknowledged => {
            alert.status = AlertStatus::Acknowledged;
            alert.acknowledged_by = Some("alice".into());
            alert.acknowledged_at = Some(at);
        }
        NotificationEvent::Resolved => {
            alert.status = AlertStatus::Resolved;
            alert.resolved_by = Some("alice".into());
            alert.resolved_at = Some(at);
        }
    }
    AlertMessage::new(
        format!("{}:{}:test", alert.id, event.as_str()),
        event,
        alert,
        at,
        &Url::parse("http://127.0.0.1:7878").unwrap(),
    )
}

pub fn channel(name: &str, toml_text: &str) -> ChannelConfig {
    let raw: RawChannel = toml::from_str(toml_text).unwrap();
    raw.validate(name, Duration::from_secs(2)).unwrap()
}

#[tokio::test]
async fn webhook_posts_the_alert_signed_with_hmac_sha256() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let hook = channel(
        "ops-hook",
        &format!(
            "kind = \"webhook\"\nurl = \"{}\"\nsecret = \"s3cret\"\n",
            receiver.url("/hook")
        ),
    );
    let a = alert(1, now());
    let sender = Sender::new().unwrap();
    sender
        .send(
            &hook,
            &[message(&a, NotificationEvent::Firing, now())],
            now(),
        )
        .await
        .unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/hook")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header(webhook::SIGNATURE_HEADER),
        Some(webhook::signature("s3cret", &request.body).as_str())
    );
    assert_eq!(request.header(webhook::EVENT_HEADER), Some("firing"));
    assert_eq!(
        request.header(webhook::DELIVERY_HEADER),
        Some("alert_00000001:firing:test")
    );
    let body = request.json();
    assert_eq!(body["event"], "firing");
    assert_eq!(body["alert"]["id"], "alert_00000001");
    assert_eq!(body["alert"]["model"], "fraud_detector");
    assert_eq!(body["baseline"], 0.94);
    // A body changed in transit no longer matches.
    let mut tampered = request.body.clone();
    tampered[0] = b' ';
    assert_ne!(
        request.header(webhook::SIGNATURE_HEADER),
        Some(webhook::signature("s3cret", &tampered).as_str())
    );
}

#[tokio::test]
async fn unsigned_webhook_has_no_signature_header() {
    let receiver = Receiver::start(Behaviour::Status(204)).await;
    let hook = channel(
        "h",
        &format!("kind = \"webhook\"\nurl = \"{}\"\n", receiver.url("/")),
    );
    let a = alert(2, now());
    Sender::new()
        .unwrap()
        .send(
            &hook,
            &[message(&a, NotificationEvent::Resolved, now())],
            now(),
        )
        .await
        .unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    assert_eq!(request.header(webhook::SIGNATURE_HEADER), None);
    assert_eq!(request.json()["alert"]["status"], "resolved");
}

#[tokio::test]
async fn slack_receives_block_kit_and_follow_ups() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let slack = channel(
        "team-slack",
        &format!(
            "kind = \"slack\"\nurl = \"{}\"\n",
            receiver.url("/services/T0/B0/XYZ")
        ),
    );
    let a = alert(3, now());
    let sender = Sender::new().unwrap();
    for event in [
        NotificationEvent::Firing,
        NotificationEvent::Acknowledged,
        NotificationEvent::Resolved,
    ] {
        sender
            .send(&slack, &[message(&a, event, now())], now())
            .await
            .unwrap();
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let headers: Vec<String> = requests
        .iter()
        .map(|r| {
            r.json()["blocks"][0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(headers[0].contains("FIRING"), "{headers:?}");
    assert!(headers[1].contains("ACKNOWLEDGED"), "{headers:?}");
    assert!(headers[2].contains("RESOLVED"), "{headers:?}");
    let firing = requests[0].json();
    assert!(firing["text"].as_str().unwrap().contains("fraud_detector"));
    let fields = firing["blocks"][1]["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 8);
    assert_eq!(
        fields[7]["text"],
        "*p-value*\n0.0030 (welch_t+batch_means, alpha 0.01)"
    );
    assert_eq!(
        firing["blocks"][3]["elements"][0]["url"],
        "http://127.0.0.1:7878/alerts/alert_00000003"
    );
}

#[tokio::test]
async fn slack_digest_is_one_message_listing_every_alert() {
    let receiver = Receiver::start(Behaviour::Status(200)).await;
    let slack = channel(
        "s",
        &format!("kind = \"slack\"\nurl = \"{}\"\n", receiver.url("/")),
    );
    let messages: Vec<AlertMessage> = (10..15)
        .map(|id| message(&alert(id, now()), NotificationEvent::Firing, now()))
        .collect();
    Sender::new()
        .unwrap()
        .send(&slack, &messages, now())
        .await
        .unwrap();
    let [request] = receiver.requests().try_into().unwrap();
    let text = request.json().to_string();
    assert!(text.contains("5 alerts firing"), "{text}");
    for id in 10..15 {
        assert!(text.contains(&format!("alert_{id:08x}")), "{id} missing");
    }
}

#[tokio::test]
async fn pagerduty_gets_trigger_acknowledge_resolve_on_one_dedup_key() {
    let receiver = Receiver::start(Behaviour::Status(202)).await;
    let pd = channel(
        "oncall",
        &format!(
            "kind = \"pagerduty\"\nrouting_key = \"R0UT1NGKEY\"\nurl = \"{}\"\n",
            receiver.url("/v2/enqueue")
        ),
    );
    let a = alert(4, now());
    let sender = Sender::new().unwrap();
    for event in [
        NotificationEvent::Firing,
        NotificationEvent::Acknowledged,
        NotificationEvent::Resolved,
    ] {
        sender
            .send(&pd, &[message(&a, event, now())], now())
            .await
            .unwrap();
    }
    let events: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    for e in &events {
        assert_eq!(e["routing_key"], "R0UT1NGKEY");
        assert_eq!(e["dedup_key"], "modelwatch/alert_00000004");
    }
    let payload = &events[0]["payload"];
    assert_eq!(payload["severity"], "error");
    assert_eq!(payload["component"], "fraud_detector");
    assert!(payload["summary"].as_str().unwrap().contains("precision"));
    assert!(Timestamp::parse(payload["timestamp"].as_str().unwrap()).is_ok());
}

#[tokio::test]
async fn email_arrives_with_a_plain_text_and_an_html_part() {
    let sink = SmtpSink::start().await;
    let mail = channel(
        "team-mail",
        &format!(
            "kind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n\
             from = \"modelwatch@example.com\"\nto = [\"ml-team@example.com\", \"oncall@example.com\"]\n",
            sink.port
        ),
    );
    let a = alert(5, now());
    Sender::new()
        .unwrap()
        .send(
            &mail,
            &[message(&a, NotificationEvent::Firing, now())],
            now(),
        )
        .await
        .unwrap();
    let messages = crate::support::eventually("the e-mail", Duration::from_secs(10), || {
        let m = sink.messages();
        (!m.is_empty()).then_some(m)
    })
    .await;
    let [email] = messages.try_into().unwrap();
    assert_eq!(email["mail_from"], "modelwatch@example.com");
    assert_eq!(
        email["rcpt_tos"],
        serde_json::json!(["ml-team@example.com", "oncall@example.com"])
    );
    assert_eq!(email["content_type"], "multipart/alternative");
    assert!(email["subject"]
        .as_str()
        .unwrap()
        .contains("[FIRING] high: fraud_detector v2.1 precision"));
    let parts = email["parts"].as_array().unwrap();
    let part = |kind: &str| {
        parts
            .iter()
            .find(|p| p["content_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} part in {parts:?}"))["body"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (text, html) = (part("text/plain"), part("text/html"));
    for body in [&text, &html] {
        assert!(body.contains("0.94") && body.contains("-7.4%") && body.contains("0.003"));
        assert!(body.contains("http://127.0.0.1:7878/alerts/alert_00000005"));
    }
    assert!(html.contains("<table>"));
}

/// An e-mail channel to `sink` over `tls`, trusting `ca_file` when given.
fn tls_mail(sink: &SmtpSink, tls: &str, ca_file: Option<&std::path::Path>) -> ChannelConfig {
    let ca = ca_file
        .map(|p| format!("ca_file = {:?}\n", p.display().to_string()))
        .unwrap_or_default();
    channel(
        "secure-mail",
        &format!(
            "kind = \"email\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"{tls}\"\n{ca}\
             from = \"modelwatch@example.com\"\nto = [\"ml-team@example.com\"]\n",
            sink.port
        ),
    )
}

/// Sends one firing message over `mail` and returns the message the sink received.
async fn send_and_receive(sink: &SmtpSink, mail: &ChannelConfig, id: u32) -> serde_json::Value {
    let a = alert(id, now());
    Sender::new()
        .unwrap()
        .send(
            mail,
            &[message(&a, NotificationEvent::Firing, now())],
            now(),
        )
        .await
        .unwrap();
    let messages = crate::support::eventually("the e-mail", Duration::from_secs(10), || {
        let m = sink.messages();
        (!m.is_empty()).then_some(m)
    })
    .await;
    let [email] = messages.try_into().unwrap();
    email
}

#[tokio::test]
async fn email_over_starttls_trusts_the_configured_ca() {
    let pki = TestPki::generate();
    let sink = SmtpSink::start_with(SmtpTls::Starttls {
        cert: pki.cert.clone(),
        key: pki.key.clone(),
    })
    .await;
    let email = send_and_receive(&sink, &tls_mail(&sink, "starttls", Some(&pki.ca)), 21).await;
    // The sink refuses MAIL before STARTTLS, and records the session's TLS version.
    assert!(
        email["tls"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{email}"
    );
    assert!(email["subject"].as_str().unwrap().contains("[FIRING]"));
}

#[tokio::test]
async fn email_over_implicit_tls_trusts_the_configured_ca() {
    let pki = TestPki::generate();
    let sink = SmtpSink::start_with(SmtpTls::Implicit {
        cert: pki.cert.clone(),
        key: pki.key.clone(),
    })
    .await;
    let email = send_and_receive(&sink, &tls_mail(&sink, "tls", Some(&pki.ca)), 22).await;
    assert!(
        email["tls"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{email}"
    );
    let parts = email["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{email}");
}

#[tokio::test]
async fn email_tls_to_an_untrusted_certificate_is_refused_and_nothing_is_sent() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    for (tls, sink_tls) in [
        (
            "starttls",
            SmtpTls::Starttls {
                cert: pki.cert.clone(),
                key: pki.key.clone(),
            },
        ),
        (
            "tls",
            SmtpTls::Implicit {
                cert: pki.cert.clone(),
                key: pki.key.clone(),
            },
        ),
    ] {
        let sink = SmtpSink::start_with(sink_tls).await;
        // No ca_file: only the public roots are trusted. Another CA: not this one either.
        for ca in [None, Some(other.ca.as_path())] {
            let a = alert(23, now());
            let error = Sender::new()
                .unwrap()
                .send(
                    &tls_mail(&sink, tls, ca),
                    &[message(&a, NotificationEvent::Firing, now())],
                    now(),
                )
                .await
                .expect_err("an untrusted certificate must be refused");
            let text = error.to_string().to_lowercase();
            assert!(text.contains("certificate"), "{tls} {ca:?}: {error}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(sink.messages().is_empty(), "{tls}: a message got through");
    }
}

#[tokio::test]
async fn alertmanager_lists_the_alert_until_it_is_resolved() {
    let manager = Alertmanager::start().await;
    let am = channel(
        "am",
        &format!("kind = \"alertmanager\"\nurl = \"{}\"\n", manager.url()),
    );
    let a = alert(6, now());
    let sender = Sender::new().unwrap();
    sender
        .send(&am, &[message(&a, NotificationEvent::Firing, now())], now())
        .await
        .unwrap();
    let listed = manager.alerts().await;
    let [listed] = listed.try_into().unwrap();
    let labels = &listed["labels"];
    assert_eq!(labels["model"], "fraud_detector");
    assert_eq!(labels["version"], "v2.1");
    assert_eq!(labels["metric"], "precision");
    assert_eq!(labels["severity"], "high");
    assert_eq!(labels["rule"], "rule_00000007");
    assert_eq!(labels["alertname"], "precision_drop");
    assert_eq!(listed["status"]["state"], "active");

    // Acknowledgement means nothing to Alertmanager: still listed.
    sender
        .send(
            &am,
            &[message(&a, NotificationEvent::Acknowledged, now())],
            now(),
        )
        .await
        .unwrap();
    assert_eq!(manager.alerts().await.len(), 1);

    sender
        .send(
            &am,
            &[message(&a, NotificationEvent::Resolved, now())],
            now(),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !manager.alerts().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "alertmanager still lists the resolved alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn receiver_down_refusing_or_failing_is_classified() {
    let sender = Sender::new().unwrap();
    let a = alert(8, now());
    let m = [message(&a, NotificationEvent::Firing, now())];
    let down = channel(
        "down",
        &format!(
            "kind = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\n",
            crate::support::free_port()
        ),
    );
    let error = sender.send(&down, &m, now()).await.unwrap_err();
    assert!(matches!(error, DeliveryError::Connect(_)), "{error}");
    assert!(error.is_retryable());

    let receiver = Receiver::start(Behaviour::Status(503)).await;
    let hook = channel(
        "h",
        &format!("kind = \"webhook\"\nurl = \"{}\"\n", receiver.url("/")),
    );
    let error = sender.send(&hook, &m, now()).await.unwrap_err();
    assert_eq!(error, DeliveryError::status(503, "no"));
    assert!(error.is_retryable());
    receiver.set(Behaviour::Status(400));
    assert!(!sender
        .send(&hook, &m, now())
        .await
        .unwrap_err()
        .is_retryable());
}

#[tokio::test]
async fn a_hanging_receiver_times_out_without_holding_up_another_channel() {
    let hanging = Receiver::start(Behaviour::Hang).await;
    let healthy = Receiver::start(Behaviour::Status(200)).await;
    let slow = channel(
        "slow",
        &format!(
            "kind = \"webhook\"\nurl = \"{}\"\ntimeout = \"1s\"\n",
            hanging.url("/")
        ),
    );
    let fine = channel(
        "fine",
        &format!("kind = \"webhook\"\nurl = \"{}\"\n", healthy.url("/")),
    );
    let a = alert(9, now());
    let m = [message(&a, NotificationEvent::Firing, now())];
    let sender = Sender::new().unwrap();
    let started = Instant::now();
    let slow_send = async {
        let result = sender.send(&slow, &m, now()).await;
        (result, started.elapsed())
    };
    let fine_send = async {
        let result = sender.send(&fine, &m, now()).await;
        (result, started.elapsed())
    };
    let ((slow_result, slow_took), (fine_result, fine_took)) = tokio::join!(slow_send, fine_send);
    assert_eq!(
        slow_result,
        Err(DeliveryError::Timeout(Duration::from_secs(1)))
    );
    assert!(slow_took >= Duration::from_secs(1) && slow_took < Duration::from_secs(3));
    assert!(fine_result.is_ok());
    assert!(fine_took < Duration::from_millis(900), "{fine_took:?}");
    assert_eq!(healthy.requests().len(), 1);
}

#[test]
fn secrets_do_not_leak_into_errors() {
    let secret = Secret::new("T0/B0/XYZ");
    assert!(!format!("{secret:?}").contains("XYZ"));
}
