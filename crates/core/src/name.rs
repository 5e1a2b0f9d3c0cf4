//! What a valid name is, and the error that says why one is not: shared by samples,
//! metrics, rules and ids, so none of them needs another for it.

/// The longest accepted model, version, metric or dataset name, in characters.
pub const MAX_NAME_LEN: usize = 128;

/// Bad input, naming the field that is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn is_allowed_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '+' | '@')
}

pub(crate) fn check_name(field: &str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let length = name.chars().count();
    if length > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("is {length} characters long; at most {MAX_NAME_LEN} are allowed"),
        ));
    }
    if let Some(bad) = name.chars().find(|c| !is_allowed_name_char(*c)) {
        return Err(ValidationError::new(
            field,
            format!("character {bad:?} is not allowed in {name:?} (use letters, digits and _ . - : + @)"),
        ));
    }
    Ok(())
}
