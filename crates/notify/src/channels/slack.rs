//! Slack incoming webhooks: a Block Kit message per alert (header, the figures as fields,
//! the rule's message, a button to the dashboard), follow-ups on acknowledge and
//! resolve, and a digest listing many alerts in one message.
//!
//! Limits kept (Block Kit reference): header text ≤ 150 characters, ≤ 10 fields per
//! section, section text ≤ 3000, ≤ 50 blocks per message; `text` is the notification
//! fallback.

use modelwatch_core::alerting::NotificationEvent;
use serde::Serialize;

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

/// An incoming webhook's message: `text` is the notification fallback.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub text: String,
    pub blocks: Vec<Block>,
}

/// The Block Kit blocks modelwatch sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Header {
        text: Text,
    },
    /// A section has a text, or fields (≤ 10), or both.
    Section {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<Text>,
        #[serde(skip_serializing_if = "Option::is_none")]
        fields: Option<Vec<Text>>,
    },
    Actions {
        elements: Vec<Element>,
    },
    Context {
        elements: Vec<Text>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Text {
    PlainText {
        text: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        emoji: Option<bool>,
    },
    Mrkdwn {
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Element {
    Button { text: Text, url: String },
}

fn mrkdwn(text: String) -> Text {
    Text::Mrkdwn { text }
}

fn header(text: &str) -> Block {
    Block::Header {
        text: Text::PlainText {
            text: truncate(text, 150),
            emoji: Some(true),
        },
    }
}

fn section(text: String) -> Block {
    Block::Section {
        text: Some(mrkdwn(text)),
        fields: None,
    }
}

fn field(label: &str, value: impl std::fmt::Display) -> Text {
    mrkdwn(format!("*{label}*\n{value}"))
}

/// The payload for one alert.
pub fn single(m: &AlertMessage) -> Message {
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
    Message {
        text: truncate(&m.headline(), 3000),
        blocks: vec![
            header(&title),
            Block::Section {
                text: None,
                fields: Some(fields),
            },
            section(body),
            Block::Actions {
                elements: vec![Element::Button {
                    text: Text::PlainText {
                        text: "Open in modelwatch".into(),
                        emoji: None,
                    },
                    url: m.alert_url.clone(),
                }],
            },
            Block::Context {
                elements: vec![mrkdwn(format!(
                    "rule {} · {} · {}",
                    a.rule_name, a.id, m.at
                ))],
            },
        ],
    }
}

/// One message listing several notifications.
pub fn digest(messages: &[AlertMessage]) -> Message {
    let title = digest_title(messages);
    let mut blocks = vec![header(&format!(":rotating_light: {title}"))];
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
        blocks.push(section(truncate(&line, 3000)));
    }
    if messages.len() > MAX_DIGEST_ENTRIES {
        blocks.push(Block::Context {
            elements: vec![mrkdwn(format!(
                "and {} more on the dashboard",
                messages.len() - MAX_DIGEST_ENTRIES
            ))],
        });
    }
    let fallback = messages
        .iter()
        .map(AlertMessage::headline)
        .collect::<Vec<_>>()
        .join("\n");
    Message {
        text: truncate(&format!("{title}\n{fallback}"), 3000),
        blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;
    use serde_json::Value;

    fn json(message: Message) -> Value {
        serde_json::to_value(message).expect("json")
    }

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
        let payload = json(single(&message(NotificationEvent::Firing)));
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
        let text = json(single(&m)).to_string();
        assert!(text.contains("*p-value*\\nnone (threshold rule)"), "{text}");
        assert!(!text.contains("n/a"), "{text}");
    }

    #[test]
    fn follow_ups_name_the_transition() {
        let payload = json(single(&message(NotificationEvent::Resolved)));
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
        let payload = json(digest(&many));
        assert_valid_block_kit(&payload);
        assert!(payload.to_string().contains("30 alerts firing"));
        assert!(payload.to_string().contains("and 10 more"));
    }
}
