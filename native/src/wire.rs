//! Serde building blocks that make a serde read exactly as strict as pydantic's JSON mode.
//!
//! serde's derived structs also accept JSON arrays (positional fields) and treat a missing
//! `Option` as `None`; pydantic does neither. These wrappers close those gaps, so a record the
//! projection accepts is one pydantic would accept with the same values.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// A struct read only from a JSON object (serde's derive would also take an array).
pub struct Obj<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjVisitor(PhantomData))
            .map(Obj)
    }
}

/// A `dict[str, str]` in the record's key order; a repeated key is rejected (the caller then
/// takes pydantic's path, which keeps the last value).
#[derive(Default)]
pub struct StrMap(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for StrMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = StrMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrMap, A::Error> {
                let mut pairs: Vec<(String, String)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    if pairs.iter().any(|(k, _)| *k == key) {
                        return Err(de::Error::custom("repeated key"));
                    }
                    pairs.push((key, value));
                }
                Ok(StrMap(pairs))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// For `#[serde(default, deserialize_with = "present")]`: a missing field takes the default
/// (`None`), but a present one must hold a `T` (so `null` is rejected, as pydantic rejects it
/// for a non-nullable field with a default).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// For a required field that may be `null` (`answer: str | None` with no default): serde would
/// read a missing `Option` as `None`; with this and no `default`, a missing field is an error.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer)
}

/// `RetrievedPassage` (`shadowlane.contracts.envelope`): one passage a retriever returned, its
/// id (`min_length=1`) and, when recorded, its text; shared by the envelope's `prod.retrieved`
/// and a result's (and its stability samples') `retrieved`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passage {
    #[serde(deserialize_with = "non_empty")]
    pub id: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl Passage {
    /// Bytes of its strings' buffers (for the native-memory figures).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.id.capacity()
            + self.text.as_ref().map_or(0, String::capacity)
    }
}

/// A string with at least one character (pydantic's `min_length=1`).
fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Err(de::Error::custom("an empty string"));
    }
    Ok(text)
}
