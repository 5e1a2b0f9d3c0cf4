//! AWS credentials, from the part of the standard chain that needs no AWS SDK: the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), then the
//! shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, or `~/.aws/credentials`) in the
//! profile `AWS_PROFILE` (else `default`). Not supported: `credential_process`, SSO,
//! assumed roles (`role_arn`), web identity, and the ECS and EC2 instance metadata
//! endpoints — export their credentials into the environment instead.
//!
//! Pure: what the environment and the file say is handed in, so the order is tested
//! without touching either.

use std::fmt;

/// An access key, its secret and, for temporary credentials, the session token.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// Where they were found (for messages; never the secret).
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// Why no credentials were found.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a \
         profile of {file} with AWS_PROFILE (SSO, assumed roles and instance metadata are \
         not supported: export their credentials into the environment)"
    )]
    Missing { file: String },
    #[error("profile {profile:?} of {file} has no aws_access_key_id and aws_secret_access_key")]
    IncompleteProfile { profile: String, file: String },
}

/// The first credentials of the chain: `env` looks a variable up, `read_file` reads a
/// path (`None` when missing), `home` is the home directory.
pub fn resolve(
    env: impl Fn(&str) -> Option<String>,
    read_file: impl Fn(&str) -> Option<String>,
    home: Option<String>,
) -> Result<Credentials, CredentialsError> {
    let nonempty = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if let (Some(id), Some(secret)) = (
        nonempty("AWS_ACCESS_KEY_ID"),
        nonempty("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: nonempty("AWS_SESSION_TOKEN"),
            source: "the environment".into(),
        });
    }
    let file = nonempty("AWS_SHARED_CREDENTIALS_FILE")
        .unwrap_or_else(|| format!("{}/.aws/credentials", home.unwrap_or_else(|| "~".into())));
    let profile = nonempty("AWS_PROFILE").unwrap_or_else(|| "default".into());
    let Some(text) = read_file(&file) else {
        return Err(CredentialsError::Missing { file });
    };
    let Some(section) = profile_section(&text, &profile) else {
        return Err(CredentialsError::Missing { file });
    };
    let get = |key: &str| {
        section
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Credentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: get("aws_session_token"),
            source: format!("profile {profile} of {file}"),
        }),
        _ => Err(CredentialsError::IncompleteProfile { profile, file }),
    }
}

/// The `key = value` lines of `[profile]` in an INI text.
fn profile_section(text: &str, profile: &str) -> Option<Vec<(String, String)>> {
    let mut found: Option<Vec<(String, String)>> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            if inside && found.is_none() {
                found = Some(Vec::new());
            }
            continue;
        }
        if !inside {
            continue;
        }
        if let (Some((key, value)), Some(section)) = (line.split_once('='), found.as_mut()) {
            section.push((key.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const FILE: &str = "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n\n\
                        [ci]\n# a comment\naws_access_key_id=AKCI\naws_secret_access_key=s2\n\
                        aws_session_token = t2\n[broken]\naws_access_key_id = AKB\n";

    #[test]
    fn the_environment_comes_before_the_file() {
        let found = resolve(
            env_of(&[
                ("AWS_ACCESS_KEY_ID", "AKENV"),
                ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
                ("AWS_PROFILE", "ci"),
            ]),
            |_| Some(FILE.into()),
            Some("/home/x".into()),
        )
        .unwrap();
        assert_eq!(found.access_key_id, "AKENV");
        assert_eq!(found.session_token, None);
        assert!(!format!("{found:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_file_is_read_in_the_named_profile() {
        let read = |path: &str| (path == "/home/x/.aws/credentials").then(|| FILE.to_owned());
        let default = resolve(env_of(&[]), read, Some("/home/x".into())).unwrap();
        assert_eq!(default.access_key_id, "AKDEFAULT");
        let ci = resolve(
            env_of(&[("AWS_PROFILE", "ci")]),
            read,
            Some("/home/x".into()),
        )
        .unwrap();
        assert_eq!(
            (ci.access_key_id.as_str(), ci.session_token.as_deref()),
            ("AKCI", Some("t2"))
        );
        assert!(matches!(
            resolve(
                env_of(&[("AWS_PROFILE", "broken")]),
                read,
                Some("/home/x".into())
            ),
            Err(CredentialsError::IncompleteProfile { .. })
        ));
        assert!(matches!(
            resolve(
                env_of(&[("AWS_PROFILE", "none")]),
                read,
                Some("/home/x".into())
            ),
            Err(CredentialsError::Missing { .. })
        ));
        assert!(matches!(
            resolve(env_of(&[]), |_| None, None),
            Err(CredentialsError::Missing { .. })
        ));
    }
}
