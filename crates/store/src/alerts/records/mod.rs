//! The records the SQL stores write as JSON: one type per stored shape, owned here and
//! mapped to the core's types, which have no serde of their own. Each pins its bytes
//! with a test decoding a value in the stored format and writing it back byte for byte,
//! so existing databases read and rewrite without a migration.
//!
//! Most records are `#[serde(remote = "…")]` definitions: the record names every field of
//! the core's type with the attributes that give the stored form, and serde maps between
//! them (a field added to the core's type and not here fails to compile where a record
//! is read). A record held in an `Option` or a `Vec` goes through [`option_record!`] or
//! [`vec_record!`].

mod alert;
mod condition;
mod evidence;
mod rule;
mod state;

pub(crate) use alert::{
    alert_body, alert_from_body, facts_from_payload, facts_payload, snapshot_from_payload,
    snapshot_payload,
};
pub use alert::{deserialize_alert, serialize_alert};
pub use rule::rule_from_body;
pub(crate) use rule::{rule_body, StoredRule};
pub use state::{detail_from_json, detail_to_json};

use crate::StoreError;

/// The JSON text of `value`, written by a record's `serialize`.
fn write_json<T: ?Sized>(
    value: &T,
    serialize: impl FnOnce(&T, &mut serde_json::Serializer<&mut Vec<u8>>) -> serde_json::Result<()>,
) -> Result<String, StoreError> {
    let mut bytes = Vec::new();
    serialize(value, &mut serde_json::Serializer::new(&mut bytes))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The value `text` holds, read by a record's `deserialize`; trailing text is refused.
fn read_json<'a, T>(
    text: &'a str,
    deserialize: impl FnOnce(
        &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
    ) -> serde_json::Result<T>,
) -> Result<T, StoreError> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value))
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(value)
}

/// A module of `serialize`/`deserialize` for an `Option` of a core type through its
/// record (`#[serde(with = "module")]`).
macro_rules! option_record {
    ($module:ident, $domain:ty, $record:literal) => {
        pub(crate) mod $module {
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            #[allow(unused_imports)]
            use super::*;

            pub(crate) fn serialize<S: Serializer>(
                value: &Option<$domain>,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                #[derive(Serialize)]
                struct Record<'a>(#[serde(with = $record)] &'a $domain);
                value.as_ref().map(Record).serialize(serializer)
            }

            pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Option<$domain>, D::Error> {
                #[derive(Deserialize)]
                struct Record(#[serde(with = $record)] $domain);
                Ok(Option::<Record>::deserialize(deserializer)?.map(|Record(value)| value))
            }
        }
    };
}

/// A module of `serialize`/`deserialize` for a `Vec` of a core type through its record.
macro_rules! vec_record {
    ($module:ident, $domain:ty, $record:literal) => {
        pub(crate) mod $module {
            use serde::{Deserialize, Deserializer, Serialize, Serializer};

            #[allow(unused_imports)]
            use super::*;

            pub(crate) fn serialize<S: Serializer>(
                values: &[$domain],
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                #[derive(Serialize)]
                struct Record<'a>(#[serde(with = $record)] &'a $domain);
                serializer.collect_seq(values.iter().map(Record))
            }

            pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Vec<$domain>, D::Error> {
                #[derive(Deserialize)]
                struct Record(#[serde(with = $record)] $domain);
                Ok(Vec::<Record>::deserialize(deserializer)?
                    .into_iter()
                    .map(|Record(value)| value)
                    .collect())
            }
        }
    };
}

pub(crate) use {option_record, vec_record};
