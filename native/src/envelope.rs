//! The comparator's projection of a `RequestEnvelope`, read and checked straight from its bytes.
//!
//! It mirrors `shadowlane/compare/prod_side.py`'s `_EnvelopeView`: the same fields, defaults and
//! constraints, every other field skipped unread. It only ever accepts a subset of what that
//! view accepts: anything it is not sure about (a value pydantic would coerce, a repeated key,
//! a float inside tool arguments, a broken record) makes it answer "not mine", and the caller
//! takes pydantic's path, which accepts the record or gives the contract's dead-letter reason.
//! The Python tests hold the two paths equal on generated and mutated records.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::canonical::canonical_object;
use crate::wire::{nullable, present, Obj, StrMap};

#[derive(Deserialize)]
struct Envelope {
    schema_version: i64,
    req_id: String,
    req_hash: String,
    ts_ms: i64,
    endpoint: String,
    #[serde(default, deserialize_with = "present")]
    tenant: Option<String>,
    request: Obj<Request>,
    prod: Obj<Prod>,
    #[serde(default)]
    tool_io: Vec<Obj<Tool>>,
    #[serde(default)]
    pins: StrMap,
    #[serde(default)]
    gold: Option<Obj<Gold>>,
    #[serde(default)]
    buckets: StrMap,
    #[serde(default)]
    exposure: Option<Obj<Exposure>>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct Prod {
    #[serde(deserialize_with = "nullable")]
    answer: Option<String>,
    status: i64,
    latency_ms: f64,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Obj<Usage>>,
    #[serde(default)]
    cited_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
}

#[derive(Deserialize)]
struct Tool {
    name: String,
    #[serde(default, deserialize_with = "present")]
    arguments: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Gold {
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    cited_ids: Vec<String>,
}

#[derive(Deserialize)]
struct Exposure {
    arm: String,
}

/// What the comparator keeps of one envelope (the fields of `ProdSide` / `ProdSummary` / `Gold`).
pub struct Projection {
    pub req_id: String,
    pub req_hash: String,
    pub ts_ms: i64,
    pub endpoint: String,
    pub tenant: String,
    pub pins: Vec<(String, String)>,
    pub answer: Option<String>,
    pub latency_ms: f64,
    pub status: i64,
    pub model: Option<String>,
    pub usage: Option<(i64, i64)>,
    pub cited_ids: Vec<String>,
    pub tool_keys: Vec<(String, String)>,
    pub gold: Option<(Option<String>, Vec<String>)>,
    pub buckets: Vec<(String, String)>,
    pub candidate_served: bool,
}

const SCHEMA_VERSION: i64 = 1;
const EMPTY_ARGUMENTS: &str = "{}";

fn is_req_hash(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The projection, or `None` when the record is not one this path vouches for.
pub fn project(data: &[u8]) -> Option<Projection> {
    let Obj(env) = serde_json::from_slice::<Obj<Envelope>>(data).ok()?;
    let id_chars = env.req_id.chars().count();
    let ok = env.schema_version == SCHEMA_VERSION
        && (1..=256).contains(&id_chars)
        && is_req_hash(&env.req_hash)
        && env.ts_ms >= 0
        && env.prod.0.latency_ms >= 0.0;
    if !ok {
        return None;
    }
    let mut tool_keys = Vec::with_capacity(env.tool_io.len());
    for Obj(tool) in env.tool_io {
        let canonical = match tool.arguments {
            None => EMPTY_ARGUMENTS.to_owned(),
            Some(raw) => canonical_object(&raw)?,
        };
        tool_keys.push((tool.name, canonical));
    }
    let served = match env.exposure {
        None => false,
        Some(Obj(exposure)) => match exposure.arm.as_str() {
            "candidate" => true,
            "baseline" => false,
            _ => return None,
        },
    };
    let Obj(prod) = env.prod;
    // `env.prod.model or env.request.model`: an empty prod model falls through, as in Python
    let model = match prod.model {
        Some(m) if !m.is_empty() => Some(m),
        _ => env.request.0.model,
    };
    Some(Projection {
        req_id: env.req_id,
        req_hash: env.req_hash,
        ts_ms: env.ts_ms,
        endpoint: env.endpoint,
        tenant: env.tenant.unwrap_or_else(|| "default".to_owned()),
        pins: env.pins.0,
        answer: prod.answer,
        latency_ms: prod.latency_ms,
        status: prod.status,
        model,
        usage: prod
            .usage
            .map(|Obj(u)| (u.prompt_tokens, u.completion_tokens)),
        cited_ids: prod.cited_ids,
        tool_keys,
        gold: env.gold.map(|Obj(g)| (g.answer, g.cited_ids)),
        buckets: env.buckets.0,
        candidate_served: served,
    })
}
