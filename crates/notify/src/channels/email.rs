//! E-mail: a `multipart/alternative` message with a plain-text part (for terminals and
//! filters) and an HTML part (a table of the figures and a link), one per alert or one
//! digest listing several.

use crate::message::{digest_title, percent, round, AlertMessage};

/// What goes into the message, before MIME.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The figures as (label, value) rows, shared by both parts.
fn rows(m: &AlertMessage) -> Vec<(&'static str, String)> {
    let a = &m.alert;
    let figures = m.figures();
    let mut rows = vec![
        ("Status", m.state_word().to_owned()),
        ("Model", a.model.as_str().to_owned()),
        ("Version", a.version.as_str().to_owned()),
    ];
    if let Some(dataset) = &a.dataset {
        rows.push(("Dataset", dataset.to_string()));
    }
    rows.extend([
        ("Metric", a.metric.to_string()),
        ("Severity", a.severity.to_string()),
        ("Current", round(figures.current).to_string()),
    ]);
    if let Some(reference) = figures.reference {
        let label = if figures.reference_label == "baseline" {
            "Baseline"
        } else {
            "Threshold"
        };
        rows.push((label, round(reference).to_string()));
    }
    if let Some(change) = figures.change_percent {
        rows.push(("Change", percent(change)));
    }
    rows.push(("p-value", m.p_value_text()));
    rows.push(("Rule", a.rule_name.clone()));
    rows.push(("Alert", a.id.to_string()));
    rows.push(("At", m.at.to_rfc3339()));
    if let Some(actor) = m.actor_line() {
        rows.push(("Update", actor));
    }
    rows
}

fn text_block(m: &AlertMessage) -> String {
    let mut text = String::new();
    for (label, value) in rows(m) {
        text.push_str(&format!("{label:<9} {value}\n"));
    }
    text.push_str(&format!("\n{}\n\nOpen: {}\n", m.alert.message, m.alert_url));
    text
}

fn html_block(m: &AlertMessage) -> String {
    let mut html = format!("<h2>{}</h2>\n<table>\n", escape(&m.headline()));
    for (label, value) in rows(m) {
        html.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            escape(label),
            escape(&value)
        ));
    }
    html.push_str(&format!(
        "</table>\n<p>{}</p>\n<p><a href=\"{}\">Open in modelwatch</a></p>\n",
        escape(&m.alert.message),
        escape(&m.alert_url)
    ));
    html
}

fn document(body: &str) -> String {
    format!("<!DOCTYPE html>\n<html><body>\n{body}</body></html>\n")
}

pub fn single(m: &AlertMessage) -> Email {
    Email {
        subject: format!("[modelwatch] {}", m.headline()),
        text: text_block(m),
        html: document(&html_block(m)),
    }
}

pub fn digest(messages: &[AlertMessage]) -> Email {
    let title = digest_title(messages);
    let mut text = format!("{title}\n\n");
    let mut html = format!("<h1>{}</h1>\n", escape(&title));
    for m in messages {
        text.push_str(&format!("== {}\n{}\n", m.headline(), text_block(m)));
        html.push_str(&html_block(m));
        html.push_str("<hr>\n");
    }
    Email {
        subject: format!("[modelwatch] {title}"),
        text,
        html: document(&html),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fixtures::message;
    use modelwatch_core::alerting::NotificationEvent;

    #[test]
    fn both_parts_carry_the_figures_and_the_link() {
        let email = single(&message(NotificationEvent::Firing));
        assert_eq!(
            email.subject,
            "[modelwatch] [FIRING] high: fraud_detector v2.1 precision 0.87 (baseline 0.94, -7.4%)"
        );
        for part in [&email.text, &email.html] {
            for expected in [
                "fraud_detector",
                "0.94",
                "-7.4%",
                "0.0012",
                "/alerts/alert_3f9a1c2b",
            ] {
                assert!(part.contains(expected), "{expected} missing in {part}");
            }
        }
        assert!(email.html.contains("<table>"));
    }

    #[test]
    fn html_escapes_what_people_typed() {
        let mut m = message(NotificationEvent::Resolved);
        m.alert.resolution_notes = Some("<script>x</script>".into());
        let email = single(&m);
        assert!(!email.html.contains("<script>"));
        assert!(email.html.contains("&lt;script&gt;"));
    }
}
