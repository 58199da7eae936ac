//! A `ShadowResult` read and checked straight from its bytes, as `shadowlane.contracts.codec.decode` reads it.
//!
//! `decode` is `orjson.loads` followed by pydantic's validation (Python mode, lax), with
//! `extra="forbid"` on every level. This reader mirrors the contract field by field and accepts
//! only a subset of what that path accepts: an unknown or repeated field, a value pydantic would
//! coerce (`1.0` or an integer past 64 bits for an int, `1` for a bool, `"5"` for a float) or a
//! broken record make it answer "not mine", and the caller takes the Python path, which accepts
//! the record or gives the contract's dead-letter reason. Numbers read as orjson reads them: an
//! integer within 64 bits exactly, anything else as the correctly rounded float. The Python tests
//! hold the two paths equal on generated and mutated records.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::{present, Obj, Passage, StrMap};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowResult {
    #[serde(default, deserialize_with = "present")]
    pub schema_version: Option<i64>,
    pub req_hash: String,
    pub req_id: String,
    pub candidate: String,
    #[serde(default)]
    pub pins: StrMap,
    pub shadow_id: String,
    pub ts_ms: i64,
    pub status: String,
    pub error_class: Option<String>,
    pub error: Option<String>,
    pub answer: Option<String>,
    pub latency_ms: f64,
    #[serde(default, deserialize_with = "present")]
    pub attempts: Option<i64>,
    #[serde(default)]
    pub tool_calls: Vec<Obj<ToolCall>>,
    pub usage: Option<Obj<Usage>>,
    pub model: Option<String>,
    #[serde(default)]
    pub cited_ids: Vec<String>,
    #[serde(default)]
    pub stability: Vec<Obj<Sample>>,
    pub traceparent: Option<String>,
    #[serde(default)]
    pub served_pins: StrMap,
    #[serde(default)]
    pub retrieved: Vec<Obj<Passage>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub name: String,
    #[serde(default, deserialize_with = "present")]
    pub arguments: Option<Box<RawValue>>,
    pub disposition: String,
    pub output: Option<String>,
    pub schema_valid: Option<bool>,
    pub schema_error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: i64,
    #[serde(default)]
    pub completion_tokens: i64,
    #[serde(default)]
    pub total_tokens: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    pub variant: String,
    pub seed: Option<i64>,
    pub status: String,
    pub answer: Option<String>,
    pub error_class: Option<String>,
    #[serde(default)]
    pub retrieved: Vec<Obj<Passage>>,
}

const SCHEMA_VERSION: i64 = 1;
const STATUSES: [&str; 2] = ["ok", "error"];
const ERROR_CLASSES: [&str; 6] = [
    "timeout",
    "rate_limited",
    "server_error",
    "client_error",
    "invalid_response",
    "exception",
];
const DISPOSITIONS: [&str; 5] = [
    "stubbed_recorded",
    "stubbed_config",
    "blocked",
    "no_stub",
    "unknown_tool",
];

fn is_req_hash(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn error_class_ok(class: &Option<String>) -> bool {
    class.as_deref().is_none_or(|c| ERROR_CLASSES.contains(&c))
}

/// The record with its contract checked, or `None` when this reader does not vouch for it.
pub fn read(data: &[u8]) -> Option<ShadowResult> {
    let Obj(result) = serde_json::from_slice::<Obj<ShadowResult>>(data).ok()?;
    let ok = result.schema_version == Some(SCHEMA_VERSION)
        && is_req_hash(&result.req_hash)
        && result.ts_ms >= 0
        && STATUSES.contains(&result.status.as_str())
        && error_class_ok(&result.error_class)
        // -0.0 is declined: serde reads `-0` as -0.0, orjson as the int 0 (pydantic: 0.0)
        && (result.latency_ms > 0.0 || (result.latency_ms == 0.0 && result.latency_ms.is_sign_positive()))
        && result.attempts.is_none_or(|n| n >= 1)
        && result
            .tool_calls
            .iter()
            .all(|Obj(call)| DISPOSITIONS.contains(&call.disposition.as_str()))
        && result.stability.iter().all(|Obj(sample)| {
            STATUSES.contains(&sample.status.as_str()) && error_class_ok(&sample.error_class)
        });
    ok.then_some(result)
}
