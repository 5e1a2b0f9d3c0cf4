//! Identifiers of rules, alerts and silences: a prefix and eight lowercase hex digits,
//! e.g. `alert_3f9a1c2b`.
//!
//! Core has no random number generator: callers draw a `u32` (or pick one in tests) and
//! pass it to `from_u32`, which keeps every id in a test predictable.

use crate::sample::{validated_string_traits, ValidationError};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// The id whose hex digits are `bits`.
            pub fn from_u32(bits: u32) -> Self {
                $name(format!("{}{:08x}", $prefix, bits))
            }

            /// Accepts exactly the shape `from_u32` produces.
            pub fn parse(text: &str) -> Result<Self, ValidationError> {
                let hex = text.strip_prefix($prefix).ok_or_else(|| {
                    ValidationError::new(
                        $field,
                        format!("{text:?} does not start with {:?}", $prefix),
                    )
                })?;
                let well_formed = hex.len() == 8
                    && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
                if !well_formed {
                    return Err(ValidationError::new(
                        $field,
                        format!(
                            "{text:?} is not {:?} followed by 8 lowercase hex digits",
                            $prefix
                        ),
                    ));
                }
                Ok($name(text.to_owned()))
            }

            /// [`Self::parse`] for owned text, as the shared traits expect.
            pub fn parse_owned(text: String) -> Result<Self, ValidationError> {
                Self::parse(&text)
            }
        }

        validated_string_traits!($name);
    };
}

id_type!(
    /// A rule's id, e.g. `rule_0000002a`.
    RuleId,
    "rule_",
    "rule_id"
);
id_type!(
    /// An alert's id, e.g. `alert_3f9a1c2b`.
    AlertId,
    "alert_",
    "alert_id"
);
id_type!(
    /// A silence's id, e.g. `silence_00c0ffee`.
    SilenceId,
    "silence_",
    "silence_id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_a_prefix_and_eight_hex_digits() {
        assert_eq!(AlertId::from_u32(0x3f9a_1c2b).as_str(), "alert_3f9a1c2b");
        assert_eq!(RuleId::from_u32(42).as_str(), "rule_0000002a");
        assert_eq!(
            AlertId::parse("alert_3f9a1c2b").unwrap(),
            AlertId::from_u32(0x3f9a_1c2b)
        );
    }

    #[test]
    fn malformed_ids_are_refused_with_the_field_named() {
        for bad in [
            "alert_3F9A1C2B",
            "alert_123",
            "rule_3f9a1c2b",
            "alert_3f9a1c2bz",
        ] {
            let error = AlertId::parse(bad).unwrap_err();
            assert_eq!(error.field, "alert_id", "{bad}");
        }
        let json: Result<SilenceId, _> = serde_json::from_str("\"silence_xyz\"");
        assert!(json.is_err());
    }
}
