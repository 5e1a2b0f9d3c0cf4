//! The configuration file (TOML; `--config FILE` or `MODELWATCH_CONFIG`): a raw,
//! `deny_unknown_fields` form parsed into typed sections handed to constructors. No global
//! configuration: the binary loads it once and passes the sections on.
//!
//! ```toml
//! [alerts]
//! enable_alerts = true
//! max_alerts_per_hour = 10
//! max_alerts_per_model_per_hour = 5
//! min_severity_to_notify = "medium"
//! ```
//!
//! Every section and field is optional; missing ones take the seed's defaults. Other
//! sections (`[server]`, `[channels.*]`) will join this struct.

use std::path::{Path, PathBuf};

use modelwatch_core::alerting::AlertConfig;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The seed's global alert configuration.
    #[serde(default)]
    pub alerts: AlertConfig,
}

impl Config {
    /// Parses TOML text; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Invalid {
            path: path.to_owned(),
            message: error.message().to_owned(),
        })
    }

    /// The file at `path`, or the defaults when none is given.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use modelwatch_core::alerting::Severity;

    use super::*;

    #[test]
    fn alerts_section_takes_the_seed_names_and_defaults() {
        let config = Config::parse(
            "[alerts]\nmax_alerts_per_hour = 3\nmin_severity_to_notify = \"high\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(config.alerts.max_alerts_per_hour, 3);
        assert_eq!(config.alerts.max_alerts_per_model_per_hour, 5);
        assert_eq!(config.alerts.min_severity_to_notify, Severity::High);
        assert_eq!(
            Config::parse("", Path::new("c.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_with_the_file_named() {
        for text in [
            "[alerts]\nmax_alerts = 3\n",
            "[alert]\n",
            "[alerts]\nmin_severity_to_notify = \"urgent\"\n",
            "[alerts]\nmax_alerts_per_hour = -1\n",
        ] {
            let error = Config::parse(text, Path::new("c.toml")).unwrap_err();
            assert!(
                error
                    .to_string()
                    .starts_with("the configuration file c.toml is invalid"),
                "{error}"
            );
        }
    }
}
