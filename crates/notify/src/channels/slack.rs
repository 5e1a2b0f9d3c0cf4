//! Slack incoming webhooks: a Block Kit message per alert (header, the figures as fields,
//! the rule's message, a button to the dashboard), follow-ups on acknowledge and
//! resolve, and a digest listing many alerts in one message.
//!
//! Limits kept (Block Kit reference): header text ≤ 150 characters, ≤ 10 fields per
//! section, section text ≤ 3000, ≤ 50 blocks per message; `text` is the notification
//! fallback.

use modelwatch_core::alerting::NotificationEvent;
use serde_json::{json, Value};

use crate::message::{digest_title, percent, round, AlertMessage};

const MAX_DIGEST_ENTRIES: usize = 20;

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn emoji(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::Firing => ":rotating_light:",
        NotificationEvent::Acknowledged => ":eyes:",
        NotificationEvent::Resolved => ":white_check_mark:",
    }
}

fn field(label: &str, value: impl std::fmt::Display) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")})
}

/// The payload for one alert.
pub fn single(m: &AlertMessage) -> Value {
    let a = &m.alert;
    let figures = m.figures();
    let title = format!(
        "{} {}: {} {} {}",
        emoji(m.event),
        m.state_word(),
        a.model.as_str(),
        m.version_words(),
        a.metric
    );
    let mut fields = vec![
        field("Model", a.model.as_str()),
        field("Version", a.version.as_str()),
    ];
    if let Some(dataset) = &a.dataset {
        fields.push(field("Dataset", dataset));
    }
    fields.extend([
        field("Metric", &a.metric),
        field("Severity", a.severity),
        field("Current", round(figures.current)),
    ]);
    let reference_label = if figures.reference_label == "baseline" {
        "Baseline"
    } else {
        "Threshold"
    };
    fields.push(field(
        reference_label,
        figures
            .reference
            .map(|r| round(r).to_string())
            .unwrap_or_else(|| "n/a".into()),
    ));
    fields.push(field(
        "Change",
        figures
            .change_percent
            .map(percent)
            .unwrap_or_else(|| "n/a".into()),
    ));
    fields.push(field("p-value", m.p_value_text()));
    let mut body = truncate(&a.message, 2900);
    if let Some(actor) = m.actor_line() {
        body = format!("*{}*\n{body}", truncate(&actor, 500));
    }
    json!({
        "text": truncate(&m.headline(), 3000),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&title, 150), "emoji": true}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "actions", "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in modelwatch"},
                "url": m.alert_url,
            }]},
            {"type": "context", "elements": [{
                "type": "mrkdwn",
                "text": format!("rule {} · {} · {}", a.rule_name, a.id, m.at),
            }]},
        ],
    })
}

/// One message listing several notifications.
pub fn digest(messages: &[AlertMessage]) -> Value {
    let title = digest_title(messages);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&format!(":rotating_light: {title}"), 150), "emoji": true}}),
    ];
    for m in messages.iter().take(MAX_DIGEST_ENTRIES) {
        let a = &m.alert;
        let mut line = format!(
            "{} *{}* {} · *{}* {} {} — {} · p {} · <{}|open>",
            emoji(m.event),
            m.state_word(),
            a.severity,
            a.model.as_str(),
            m.version_words(),
            a.metric,
            m.figures().describe(),
            m.p_value_text(),
            m.alert_url
        );
        if let Some(actor) = m.actor_line() {
            line.push_str(&format!(" ({actor})"));
        }
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&line, 3000)}}),
        );
    }
    if messages.len() > MAX_DIGEST_ENTRIES {
        blocks.push(json!({"type": "context", "elements": [{
            "type": "mrkdwn",
            "text": format!("and {} more on the dashboard", messages.len() - MAX_DIGEST_ENTRIES),
        }]}));
    }
    let fallback = messages
        .iter()
        .map(AlertMessage::headline)
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "text": truncate(&format!("{title}\n{fallback}"), 3000),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;

    /// The Block Kit rules a Slack webhook enforces on what we send.
    fn assert_valid_block_kit(payload: &Value) {
        assert!(payload["text"].as_str().is_some_and(|t| !t.is_empty()));
        let blocks = payload["blocks"].as_array().expect("blocks");
        assert!(!blocks.is_empty() && blocks.len() <= 50);
        for block in blocks {
            let kind = block["type"].as_str().expect("type");
            assert!(
                ["header", "section", "actions", "context"].contains(&kind),
                "{kind}"
            );
            if kind == "header" {
                assert_eq!(block["text"]["type"], "plain_text");
                assert!(
                    block["text"]["text"]
                        .as_str()
                        .expect("text")
                        .chars()
                        .count()
                        <= 150
                );
            }
            if let Some(fields) = block.get("fields") {
                let fields = fields.as_array().expect("fields");
                assert!(fields.len() <= 10);
                for f in fields {
                    assert!(f["text"].as_str().expect("text").len() <= 2000);
                }
            }
            if kind == "section" && block.get("text").is_some() {
                assert!(block["text"]["text"].as_str().expect("text").len() <= 3000);
            }
        }
    }

    #[test]
    fn firing_message_shows_every_figure_and_links_to_the_dashboard() {
        let payload = single(&message(NotificationEvent::Firing));
        assert_valid_block_kit(&payload);
        let text = payload.to_string();
        for expected in [
            "fraud_detector",
            "v2.1",
            "precision",
            "*Severity*\\nhigh",
            "*Current*\\n0.87",
            "*Baseline*\\n0.94",
            "*Change*\\n-7.4%",
            "*p-value*\\n0.0012",
            "http://127.0.0.1:7878/alerts/alert_3f9a1c2b",
        ] {
            assert!(text.contains(expected), "{expected} missing in {text}");
        }
    }

    #[test]
    fn threshold_alerts_say_no_test_applies() {
        let mut m = message(NotificationEvent::Firing);
        m.alert.trigger = modelwatch_core::alerting::Trigger::Threshold {
            comparison_operator: modelwatch_core::alerting::ComparisonOperator::Lt,
            threshold_value: 0.9,
        };
        let text = single(&m).to_string();
        assert!(text.contains("*p-value*\\nnone (threshold rule)"), "{text}");
        assert!(!text.contains("n/a"), "{text}");
    }

    #[test]
    fn follow_ups_name_the_transition() {
        let payload = single(&message(NotificationEvent::Resolved));
        assert_valid_block_kit(&payload);
        assert!(payload["blocks"][0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("RESOLVED")));
        assert!(payload.to_string().contains("resolved by bob: rolled back"));
    }

    #[test]
    fn digest_lists_every_alert_in_one_message() {
        let many: Vec<AlertMessage> = (0..30)
            .map(|_| message(NotificationEvent::Firing))
            .collect();
        let payload = digest(&many);
        assert_valid_block_kit(&payload);
        assert!(payload.to_string().contains("30 alerts firing"));
        assert!(payload.to_string().contains("and 10 more"));
    }
}
