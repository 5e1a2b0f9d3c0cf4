//! Channel and delivery configuration: the raw `[channels.NAME]` and `[notify]` tables as
//! the file writes them (`deny_unknown_fields`, values optional), validated into typed
//! per-kind settings that the channel constructors take.
//!
//! The binary owns reading the file; it embeds [`RawChannels`] and [`RawNotify`] in its
//! own raw configuration and calls [`NotifyConfig::from_raw`]. A channel table is a
//! [`RawChannel`], an enum tagged by `kind`: an unknown kind, or a setting that does not
//! belong to the kind, is refused while the file is read, the error naming the channel
//! (`channels.ops-hook: unknown field `routing_key`, expected one of …`), so a typo'd or
//! misplaced key never silently does nothing. Validation errors name the key
//! (`channels.ops-hook.url`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A configuration error naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

/// `[channels.NAME]` tables by name. Each table is read as its kind's settings and
/// nothing else, and an error says which channel it is about
/// (`channels.ops: unknown field `routing_key`, expected one of `url`, `secret`, …`).
#[derive(Debug, Default, Clone)]
pub struct RawChannels(BTreeMap<String, RawChannel>);

impl RawChannels {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, RawChannel)> for RawChannels {
    fn from_iter<I: IntoIterator<Item = (String, RawChannel)>>(tables: I) -> Self {
        RawChannels(tables.into_iter().collect())
    }
}

impl IntoIterator for RawChannels {
    type Item = (String, RawChannel);
    type IntoIter = std::collections::btree_map::IntoIter<String, RawChannel>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'de> Deserialize<'de> for RawChannels {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Tables;

        impl<'de> serde::de::Visitor<'de> for Tables {
            type Value = RawChannels;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("one table per channel, by name")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawChannels, A::Error> {
                use serde::de::Error;
                let mut channels = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let channel = map
                        .next_value::<RawChannel>()
                        .map_err(|error| A::Error::custom(format!("channels.{name}: {error}")))?;
                    if channels.insert(name.clone(), channel).is_some() {
                        return Err(A::Error::custom(format!("channels.{name} appears twice")));
                    }
                }
                Ok(RawChannels(channels))
            }
        }

        deserializer.deserialize_map(Tables)
    }
}

/// One `[channels.NAME]` table as written: its `kind` decides which settings it takes,
/// and any other key is refused while reading (a typo'd or misplaced key never silently
/// does nothing). Every kind takes `timeout` (per outbound call, e.g. "10s"; default:
/// `[notify] timeout`) and `max_per_minute` (default 30).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawChannel {
    Slack {
        /// The incoming-webhook URL (required).
        url: Option<Secret>,
        /// When at least this many notifications for the channel are due together, send
        /// one digest listing them (default 3; 0 turns digests off).
        digest_after: Option<usize>,
        timeout: Option<String>,
        max_per_minute: Option<u32>,
    },
    PagerDuty {
        /// The integration's routing key (required).
        routing_key: Option<Secret>,
        /// The Events API endpoint (default [`PAGERDUTY_EVENTS_URL`]).
        url: Option<Secret>,
        timeout: Option<String>,
        max_per_minute: Option<u32>,
    },
    Email {
        /// Required, as are `from` and `to`.
        smtp_host: Option<String>,
        smtp_port: Option<u16>,
        /// none | starttls | tls
        tls: Option<String>,
        /// A PEM file of CA certificates to trust besides the public roots (a private
        /// CA, or a self-signed server). Verification always stays on.
        ca_file: Option<String>,
        username: Option<String>,
        password: Option<Secret>,
        from: Option<String>,
        to: Option<Vec<String>>,
        /// As for Slack.
        digest_after: Option<usize>,
        timeout: Option<String>,
        max_per_minute: Option<u32>,
    },
    Webhook {
        /// Required.
        url: Option<Secret>,
        /// HMAC-SHA256 key for `X-Modelwatch-Signature`.
        secret: Option<Secret>,
        timeout: Option<String>,
        max_per_minute: Option<u32>,
    },
    Alertmanager {
        /// The Alertmanager's base URL (required).
        url: Option<Secret>,
        /// How long a firing alert stays active there without news (default 24h).
        firing_ttl: Option<String>,
        timeout: Option<String>,
        max_per_minute: Option<u32>,
    },
}

/// The `[notify]` table: delivery-worker settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// The dashboard's base URL, for links in messages (default http://127.0.0.1:7878).
    pub dashboard_url: Option<String>,
    /// Attempts before a delivery is marked failed (default 8).
    pub max_attempts: Option<u32>,
    /// First retry delay (default 5s); doubles per attempt up to `max_backoff` (10m).
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    /// Default per-call timeout (10s).
    pub timeout: Option<String>,
    /// How often the worker looks for due deliveries (1s).
    pub poll_interval: Option<String>,
    /// How long a claimed delivery is reserved for this worker (2m).
    pub lease: Option<String>,
}

/// A channel's name: 1–128 letters, digits and `_ . - : + @`, as rules' `notify_channels`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let ok = !text.is_empty()
            && text.len() <= 128
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-:+@".contains(c));
        if ok {
            Ok(ChannelName(text.to_owned()))
        } else {
            Err(invalid(
                format!("channels.{text}"),
                "a channel name is 1-128 letters, digits and _ . - : + @",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ChannelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// An incoming-webhook URL is itself the credential.
    pub url: Secret,
}

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

#[derive(Debug, Clone)]
pub struct PagerDutyConfig {
    pub routing_key: Secret,
    pub url: Url,
}

#[derive(Debug, Clone)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: Tls,
    /// Extra trusted CA certificates, read when the configuration was validated.
    pub ca: Option<CaFile>,
    pub credentials: Option<(String, Secret)>,
    pub from: String,
    pub to: Vec<String>,
}

/// A `ca_file` as read: its path (for listings) and its PEM text, which holds at least
/// one certificate.
#[derive(Debug, Clone)]
pub struct CaFile {
    pub path: PathBuf,
    pub pem: Vec<u8>,
}

impl CaFile {
    /// Reads and checks `path` now, so a wrong path or a key file given by mistake stops
    /// the configuration instead of failing every delivery later.
    fn read(key: &str, path: &str) -> Result<CaFile, ConfigError> {
        let pem =
            std::fs::read(path).map_err(|e| invalid(key, format!("cannot read {path:?}: {e}")))?;
        let text = String::from_utf8_lossy(&pem);
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(invalid(
                key,
                format!("{path:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
            ));
        }
        lettre::transport::smtp::client::Certificate::from_pem(&pem)
            .map_err(|e| invalid(key, format!("{path:?}: {e}")))?;
        Ok(CaFile {
            path: PathBuf::from(path),
            pem,
        })
    }
}

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: Url,
    pub secret: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// The Alertmanager's base URL; alerts go to `{url}/api/v2/alerts`.
    pub url: Url,
    pub firing_ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum ChannelKind {
    Slack(SlackConfig),
    PagerDuty(PagerDutyConfig),
    Email(EmailConfig),
    Webhook(WebhookConfig),
    Alertmanager(AlertmanagerConfig),
}

impl ChannelKind {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelKind::Slack(_) => "slack",
            ChannelKind::PagerDuty(_) => "pagerduty",
            ChannelKind::Email(_) => "email",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Alertmanager(_) => "alertmanager",
        }
    }

    /// Whether several due notifications may be folded into one digest message. Only
    /// the kinds read by people: PagerDuty and Alertmanager keep one incident / alert per
    /// modelwatch alert so their own lifecycle works, and webhook receivers are programs.
    pub fn digests(&self) -> bool {
        matches!(self, ChannelKind::Slack(_) | ChannelKind::Email(_))
    }
}

/// One validated channel.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: ChannelName,
    pub kind: ChannelKind,
    pub timeout: Duration,
    pub max_per_minute: u32,
    /// 0: never digest.
    pub digest_after: usize,
}

/// What `channels list` and the API show: no secret, ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelSummary {
    pub name: String,
    pub kind: String,
    /// Where messages go, with credentials left out.
    pub target: String,
    pub timeout_ms: u64,
    pub max_per_minute: u32,
    pub digest_after: usize,
}

fn origin_and_path(url: &Url) -> String {
    // Userinfo and query strings often carry tokens; the path of a webhook rarely does.
    format!("{}{}", url.origin().ascii_serialization(), url.path())
}

impl ChannelConfig {
    pub fn summary(&self) -> ChannelSummary {
        let target = match &self.kind {
            ChannelKind::Slack(c) => match Url::parse(c.url.expose()) {
                // The path of a Slack incoming webhook *is* the token.
                Ok(url) => format!("{}/***", url.origin().ascii_serialization()),
                Err(_) => "***".into(),
            },
            ChannelKind::PagerDuty(c) => origin_and_path(&c.url),
            ChannelKind::Email(c) => {
                format!(
                    "smtp://{}:{} ({:?}) {} -> {}",
                    c.smtp_host,
                    c.smtp_port,
                    c.tls,
                    c.from,
                    c.to.join(", ")
                )
                .replace("(None)", "(plain)")
                .replace("(Starttls)", "(starttls)")
                .replace("(Tls)", "(tls)")
                    + &c.ca
                        .as_ref()
                        .map(|ca| format!(" [ca_file {}]", ca.path.display()))
                        .unwrap_or_default()
            }
            ChannelKind::Webhook(c) => {
                let signed = if c.secret.is_some() { " (signed)" } else { "" };
                format!("{}{signed}", origin_and_path(&c.url))
            }
            ChannelKind::Alertmanager(c) => origin_and_path(&c.url),
        };
        ChannelSummary {
            name: self.name.to_string(),
            kind: self.kind.name().into(),
            target,
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            max_per_minute: self.max_per_minute,
            digest_after: self.digest_after,
        }
    }
}

/// Retry and polling settings of the delivery worker.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub poll_interval: Duration,
    pub lease: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(120),
        }
    }
}

/// Everything notification needs, validated.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub dashboard_url: Url,
    pub policy: DeliveryPolicy,
    pub channels: BTreeMap<ChannelName, ChannelConfig>,
}

impl NotifyConfig {
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, channel)| channel)
    }

    pub fn from_raw(notify: RawNotify, channels: RawChannels) -> Result<NotifyConfig, ConfigError> {
        let dashboard_url = notify
            .dashboard_url
            .as_deref()
            .unwrap_or("http://127.0.0.1:7878");
        let dashboard_url = http_url("notify.dashboard_url", dashboard_url)?;
        let default_timeout = duration(
            "notify.timeout",
            notify.timeout.as_deref(),
            Duration::from_secs(10),
        )?;
        let defaults = DeliveryPolicy::default();
        let policy = DeliveryPolicy {
            max_attempts: notify.max_attempts.unwrap_or(defaults.max_attempts),
            initial_backoff: duration(
                "notify.initial_backoff",
                notify.initial_backoff.as_deref(),
                defaults.initial_backoff,
            )?,
            max_backoff: duration(
                "notify.max_backoff",
                notify.max_backoff.as_deref(),
                defaults.max_backoff,
            )?,
            poll_interval: duration(
                "notify.poll_interval",
                notify.poll_interval.as_deref(),
                defaults.poll_interval,
            )?,
            lease: duration("notify.lease", notify.lease.as_deref(), defaults.lease)?,
        };
        if policy.max_attempts == 0 {
            return Err(invalid("notify.max_attempts", "must be at least 1"));
        }
        if policy.max_backoff < policy.initial_backoff {
            return Err(invalid(
                "notify.max_backoff",
                "must not be shorter than notify.initial_backoff",
            ));
        }
        if policy.poll_interval.is_zero() {
            return Err(invalid("notify.poll_interval", "must be positive"));
        }
        // A lease shorter than a call could expire mid-send and let another worker send
        // the same row: demand room for a few timeouts.
        if policy.lease < default_timeout * 3 {
            return Err(invalid(
                "notify.lease",
                "must be at least three times notify.timeout",
            ));
        }
        let mut validated = BTreeMap::new();
        for (name, raw) in channels {
            let channel = raw.validate(&name, default_timeout)?;
            if channel.timeout * 3 > policy.lease {
                return Err(invalid(
                    format!("channels.{name}.timeout"),
                    "must be at most a third of notify.lease",
                ));
            }
            validated.insert(channel.name.clone(), channel);
        }
        Ok(NotifyConfig {
            dashboard_url,
            policy,
            channels: validated,
        })
    }
}

/// Parses "30s", "500ms", "2m", "1h", "30d" (or a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 30s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        // Retention periods are counted in days.
        "d" => number * 86_400.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m, h or d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn duration(key: &str, text: Option<&str>, default: Duration) -> Result<Duration, ConfigError> {
    match text {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|message| invalid(key, message)),
    }
}

fn http_url(key: &str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| invalid(key, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(key, "must be an http:// or https:// URL"));
    }
    Ok(url)
}

fn required_url(key: &str, url: Option<&Secret>) -> Result<Url, ConfigError> {
    let url = url.ok_or_else(|| invalid(key, "missing"))?;
    http_url(key, url.expose())
}

fn is_address(text: &str) -> bool {
    // A light check (the SMTP server has the last word): one @ with text on both sides
    // and no whitespace or angle brackets that would break the header.
    let mut parts = text.split('@');
    matches!((parts.next(), parts.next(), parts.next()), (Some(local), Some(domain), None)
        if !local.is_empty() && !domain.is_empty())
        && !text.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
}

/// The settings every kind shares, as written.
struct Shared {
    timeout: Option<String>,
    max_per_minute: Option<u32>,
    digest_after: Option<usize>,
}

impl RawChannel {
    pub fn validate(
        self,
        name: &str,
        default_timeout: Duration,
    ) -> Result<ChannelConfig, ConfigError> {
        let channel_name = ChannelName::parse(name)?;
        let key = |field: &str| format!("channels.{name}.{field}");
        let (kind, shared) = match self {
            RawChannel::Slack {
                url,
                digest_after,
                timeout,
                max_per_minute,
            } => {
                required_url(&key("url"), url.as_ref())?;
                let url = url.unwrap_or_else(|| Secret::new(""));
                let shared = Shared {
                    timeout,
                    max_per_minute,
                    digest_after,
                };
                (ChannelKind::Slack(SlackConfig { url }), shared)
            }
            RawChannel::PagerDuty {
                routing_key,
                url,
                timeout,
                max_per_minute,
            } => {
                let routing_key = routing_key
                    .filter(|k| !k.expose().trim().is_empty())
                    .ok_or_else(|| invalid(key("routing_key"), "missing"))?;
                let url = http_url(
                    &key("url"),
                    url.as_ref().map_or(PAGERDUTY_EVENTS_URL, Secret::expose),
                )?;
                let shared = Shared {
                    timeout,
                    max_per_minute,
                    digest_after: None,
                };
                (
                    ChannelKind::PagerDuty(PagerDutyConfig { routing_key, url }),
                    shared,
                )
            }
            RawChannel::Email {
                smtp_host,
                smtp_port,
                tls,
                ca_file,
                username,
                password,
                from,
                to,
                digest_after,
                timeout,
                max_per_minute,
            } => {
                let email = EmailConfig::validate(
                    &key,
                    RawEmail {
                        smtp_host,
                        smtp_port,
                        tls,
                        ca_file,
                        username,
                        password,
                        from,
                        to,
                    },
                )?;
                let shared = Shared {
                    timeout,
                    max_per_minute,
                    digest_after,
                };
                (ChannelKind::Email(email), shared)
            }
            RawChannel::Webhook {
                url,
                secret,
                timeout,
                max_per_minute,
            } => {
                let url = required_url(&key("url"), url.as_ref())?;
                let shared = Shared {
                    timeout,
                    max_per_minute,
                    digest_after: None,
                };
                (ChannelKind::Webhook(WebhookConfig { url, secret }), shared)
            }
            RawChannel::Alertmanager {
                url,
                firing_ttl,
                timeout,
                max_per_minute,
            } => {
                let alertmanager = AlertmanagerConfig {
                    url: required_url(&key("url"), url.as_ref())?,
                    firing_ttl: duration(
                        &key("firing_ttl"),
                        firing_ttl.as_deref(),
                        Duration::from_secs(24 * 3600),
                    )?,
                };
                let shared = Shared {
                    timeout,
                    max_per_minute,
                    digest_after: None,
                };
                (ChannelKind::Alertmanager(alertmanager), shared)
            }
        };
        let timeout = duration(&key("timeout"), shared.timeout.as_deref(), default_timeout)?;
        if timeout.is_zero() {
            return Err(invalid(key("timeout"), "must be positive"));
        }
        let max_per_minute = shared.max_per_minute.unwrap_or(30);
        if max_per_minute == 0 {
            return Err(invalid(key("max_per_minute"), "must be at least 1"));
        }
        Ok(ChannelConfig {
            name: channel_name,
            kind,
            timeout,
            max_per_minute,
            digest_after: shared.digest_after.unwrap_or(3),
        })
    }
}

/// An email channel's own settings, as written.
struct RawEmail {
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    tls: Option<String>,
    ca_file: Option<String>,
    username: Option<String>,
    password: Option<Secret>,
    from: Option<String>,
    to: Option<Vec<String>>,
}

impl EmailConfig {
    fn validate(key: &dyn Fn(&str) -> String, raw: RawEmail) -> Result<EmailConfig, ConfigError> {
        let smtp_host = raw
            .smtp_host
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| invalid(key("smtp_host"), "missing"))?;
        let tls = match raw.tls.as_deref().unwrap_or("starttls") {
            "none" => Tls::None,
            "starttls" => Tls::Starttls,
            "tls" => Tls::Tls,
            other => {
                return Err(invalid(
                    key("tls"),
                    format!("{other:?} is not none, starttls or tls"),
                ))
            }
        };
        let ca =
            match (&raw.ca_file, tls) {
                (None, _) => None,
                (Some(_), Tls::None) => return Err(invalid(
                    key("ca_file"),
                    "needs tls = \"starttls\" or \"tls\" (with tls = \"none\" nothing is verified)",
                )),
                (Some(path), _) => Some(CaFile::read(&key("ca_file"), path)?),
            };
        let smtp_port = raw.smtp_port.unwrap_or(match tls {
            Tls::Tls => 465,
            Tls::Starttls => 587,
            Tls::None => 25,
        });
        let credentials = match (raw.username, raw.password) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            (Some(_), None) => return Err(invalid(key("password"), "missing (username is set)")),
            (None, Some(_)) => return Err(invalid(key("username"), "missing (password is set)")),
        };
        let from = raw.from.ok_or_else(|| invalid(key("from"), "missing"))?;
        if !is_address(&from) {
            return Err(invalid(
                key("from"),
                format!("{from:?} is not an e-mail address"),
            ));
        }
        let to = raw.to.unwrap_or_default();
        if to.is_empty() {
            return Err(invalid(key("to"), "needs at least one address"));
        }
        if let Some(bad) = to.iter().find(|a| !is_address(a)) {
            return Err(invalid(
                key("to"),
                format!("{bad:?} is not an e-mail address"),
            ));
        }
        Ok(EmailConfig {
            smtp_host,
            smtp_port,
            tls,
            ca,
            credentials,
            from,
            to,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        notify: RawNotify,
        #[serde(default)]
        channels: RawChannels,
    }

    fn load(text: &str) -> Result<NotifyConfig, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| invalid("file", e.to_string()))?;
        NotifyConfig::from_raw(file.notify, file.channels)
    }

    const ISSUE_EXAMPLE: &str = r#"
        [channels.ops-hook]
        kind = "webhook"
        url = "http://127.0.0.1:9000/hook"
        secret = "s3cret"

        [channels.oncall]
        kind = "pagerduty"
        routing_key = "R0UT1NGKEY"
        url = "http://127.0.0.1:9001/v2/enqueue"

        [channels.team-mail]
        kind = "email"
        smtp_host = "127.0.0.1"
        smtp_port = 2525
        tls = "none"
        from = "modelwatch@example.com"
        to = ["ml-team@example.com"]

        [channels.slack]
        kind = "slack"
        url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"

        [channels.am]
        kind = "alertmanager"
        url = "http://127.0.0.1:9093"
    "#;

    #[test]
    fn the_issue_example_validates_into_typed_channels() {
        let config = load(ISSUE_EXAMPLE).expect("valid");
        assert_eq!(config.channels.len(), 5);
        let Some(ChannelConfig {
            kind: ChannelKind::Email(email),
            ..
        }) = config.channel("team-mail")
        else {
            panic!("team-mail is an email channel")
        };
        assert_eq!((email.smtp_port, email.tls), (2525, Tls::None));
        let Some(ChannelConfig {
            kind: ChannelKind::PagerDuty(pd),
            ..
        }) = config.channel("oncall")
        else {
            panic!("oncall is a pagerduty channel")
        };
        assert_eq!(pd.url.as_str(), "http://127.0.0.1:9001/v2/enqueue");
        assert_eq!(config.policy, DeliveryPolicy::default());
    }

    fn email_with(extra: &str) -> String {
        format!(
            "[channels.mail]\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\n\
             from = \"a@example.com\"\nto = [\"b@example.com\"]\n{extra}"
        )
    }

    #[test]
    fn ca_file_is_read_when_validated_and_named_in_errors() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        let ca_path = ca.display().to_string();

        let config = load(&email_with(&format!(
            "tls = \"tls\"\nca_file = {ca_path:?}\n"
        )))
        .expect("valid");
        let Some(ChannelKind::Email(email)) = config.channel("mail").map(|c| &c.kind) else {
            panic!("email")
        };
        assert_eq!(email.ca.as_ref().map(|c| c.path.clone()), Some(ca.clone()));
        let target = config.channel("mail").expect("mail").summary().target;
        assert!(
            target.ends_with(&format!("[ca_file {ca_path}]")),
            "{target}"
        );

        for (extra, needle) in [
            (
                format!("tls = \"none\"\nca_file = {ca_path:?}\n"),
                "needs tls",
            ),
            (
                format!(
                    "ca_file = {:?}\n",
                    dir.path().join("missing.pem").display().to_string()
                ),
                "cannot read",
            ),
            (
                format!("ca_file = {:?}\n", key.display().to_string()),
                "holds no PEM certificate",
            ),
        ] {
            let error = load(&email_with(&extra)).expect_err(&extra);
            assert_eq!(error.key, "channels.mail.ca_file", "{error}");
            assert!(error.message.contains(needle), "{error}");
        }
        let error = load(&format!(
            "[channels.h]\nkind = \"webhook\"\nurl = \"http://h/\"\nca_file = {ca_path:?}\n"
        ))
        .expect_err("not a webhook setting");
        assert!(
            error
                .message
                .contains("channels.h: unknown field `ca_file`"),
            "{error}"
        );
    }

    #[test]
    fn pagerduty_defaults_to_the_events_api_v2() {
        let config =
            load("[channels.p]\nkind = \"pagerduty\"\nrouting_key = \"k\"\n").expect("valid");
        let Some(ChannelKind::PagerDuty(pd)) = config.channel("p").map(|c| &c.kind) else {
            panic!("pagerduty")
        };
        assert_eq!(pd.url.as_str(), PAGERDUTY_EVENTS_URL);
    }

    #[test]
    fn summaries_never_show_secrets() {
        let config = load(ISSUE_EXAMPLE).expect("valid");
        let text = serde_json::to_string(
            &config
                .channels
                .values()
                .map(ChannelConfig::summary)
                .collect::<Vec<_>>(),
        )
        .expect("json");
        for secret in ["s3cret", "R0UT1NGKEY", "XXXXSECRET", "T000"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(
            text.contains("http://127.0.0.1:9000/hook (signed)"),
            "{text}"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("[channels.x]\nkind = \"webhook\"\nurl = \"ftp://a\"\n", "channels.x.url"),
            ("[channels.x]\nkind = \"webhook\"\n", "channels.x.url"),
            ("[channels.x]\nkind = \"email\"\nsmtp_host = \"h\"\nfrom = \"a@b\"\n", "channels.x.to"),
            ("[channels.x]\nkind = \"email\"\nsmtp_host = \"h\"\nfrom = \"a@b\"\nto = [\"c@d\"]\ntls = \"ssl\"\n", "channels.x.tls"),
            ("[channels.x]\nkind = \"pagerduty\"\n", "channels.x.routing_key"),
            ("[channels.x]\nkind = \"slack\"\nurl = \"http://a\"\ntimeout = \"soon\"\n", "channels.x.timeout"),
            ("[channels.\"a b\"]\nkind = \"slack\"\nurl = \"http://a\"\n", "channels.a b"),
            ("[notify]\nmax_attempts = 0\n", "notify.max_attempts"),
        ];
        for (text, key) in cases {
            let error = load(text).expect_err(text);
            assert_eq!(error.key, key, "{text}: {error}");
        }
    }

    /// What the kind does not take is refused while reading (`deny_unknown_fields` on the
    /// tagged enum), the error naming the channel, what is wrong and what would be right.
    #[test]
    fn unknown_kinds_and_settings_are_refused_naming_the_channel() {
        let cases = [
            (
                "[channels.x]\nurl = \"http://a\"\n",
                &["channels.x: missing field `kind`"][..],
            ),
            (
                "[channels.x]\nkind = \"sms\"\n",
                &["channels.x: unknown variant `sms`", "`slack`, `pagerduty`, `email`, `webhook`, `alertmanager`"],
            ),
            (
                "[channels.hook]\nkind = \"webhook\"\nurl = \"http://a\"\nrouting_key = \"k\"\n",
                &["channels.hook: unknown field `routing_key`", "`url`, `secret`, `timeout`, `max_per_minute`"],
            ),
            (
                "[channels.team]\nkind = \"slack\"\nurl = \"http://a\"\nchanel = 1\n",
                &["channels.team: unknown field `chanel`"],
            ),
            (
                "[channels.am]\nkind = \"alertmanager\"\nurl = \"http://a\"\ndigest_after = 2\n",
                &["channels.am: unknown field `digest_after`"],
            ),
            (
                "[channels.p]\nkind = \"pagerduty\"\nrouting_key = \"k\"\nmax_per_minute = \"ten\"\n",
                &["channels.p: invalid type: string \"ten\""],
            ),
        ];
        for (text, needles) in cases {
            let error = load(text).expect_err(text);
            assert_eq!(error.key, "file", "{text}: {error}");
            for needle in needles {
                assert!(error.message.contains(needle), "{text}: {error}");
            }
        }
        // The kind is exactly one of the five, in lower case.
        assert!(load("[channels.x]\nkind = \"Slack\"\nurl = \"http://a\"\n").is_err());
        assert!(load("[channels.x]\nkind = \"pager_duty\"\nrouting_key = \"k\"\n").is_err());
    }
}
