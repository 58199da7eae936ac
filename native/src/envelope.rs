//! The comparator's projection of a `RequestEnvelope`, read and checked straight from its bytes.
//!
//! It checks what `shadowlane.contracts.request_check.check_request` checks (every field of the
//! contract, with its defaults and bounds; `req_hash` recomputed by the recipe from the wire's
//! `request`; the record key equal to it) and keeps the fields a comparison needs. It only ever
//! accepts a subset of what that check accepts: anything it is not sure about (a value pydantic
//! would coerce, a repeated key, a float inside tool arguments or the request, a broken record)
//! makes it answer "not mine", and the caller takes the Python check, which accepts the record
//! or gives the dead-letter reason. The Python tests hold the two paths equal on generated and
//! mutated records.

use std::borrow::Cow;
use std::fmt;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::canonical::{canonical_object, canonical_request};
use crate::wire::{nullable, present, Obj, Passage, StrMap};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    schema_version: i64,
    req_id: String,
    req_hash: String,
    ts_ms: i64,
    endpoint: String,
    #[serde(default, deserialize_with = "present")]
    tenant: Option<String>,
    #[serde(borrow)]
    request: &'a RawValue,
    prod: Obj<Prod>,
    #[serde(default, deserialize_with = "present")]
    tool_io: Option<Vec<Obj<Tool>>>,
    #[serde(default, deserialize_with = "present")]
    history_tool_calls: Option<i64>,
    #[serde(default)]
    pins: StrMap,
    #[serde(default, rename = "trace_id")]
    _trace_id: Option<String>,
    sampling: Obj<Sampling>,
    #[serde(default, deserialize_with = "present")]
    sanitized_fields: Option<i64>,
    #[serde(default)]
    gold: Option<Obj<Gold>>,
    #[serde(default, deserialize_with = "present")]
    paraphrases: Option<Vec<String>>,
    #[serde(default)]
    buckets: StrMap,
    #[serde(default)]
    exposure: Option<Obj<Exposure>>,
}

/// `ChatRequest` (its messages and tools are open shapes: unknown keys are kept).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(borrow)]
    messages: Vec<Obj<Message<'a>>>,
    #[serde(default, rename = "tools", deserialize_with = "present")]
    _tools: Option<Vec<Obj<ToolSpec>>>,
    #[serde(default, rename = "params", deserialize_with = "present")]
    _params: Option<Obj<IgnoredMap>>,
}

/// A message: its `content` kept as it is on the wire (its shape is checked for every message,
/// its text decoded only for the last user message: `project`).
#[derive(Deserialize)]
struct Message<'a> {
    role: Role,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, rename = "name")]
    _name: Option<String>,
    #[serde(default, rename = "tool_calls")]
    _tool_calls: Option<Vec<Obj<ToolCall>>>,
    #[serde(default, rename = "tool_call_id")]
    _tool_call_id: Option<String>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Deserialize)]
enum Function {
    #[serde(rename = "function")]
    Function,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(rename = "id")]
    _id: String,
    #[serde(default, rename = "type", deserialize_with = "present")]
    _type: Option<Function>,
    #[serde(rename = "function")]
    _function: Obj<FunctionCall>,
}

#[derive(Deserialize)]
struct FunctionCall {
    #[serde(rename = "name")]
    _name: String,
    #[serde(default, rename = "arguments", deserialize_with = "present")]
    _arguments: Option<String>,
}

#[derive(Deserialize)]
struct ToolSpec {
    #[serde(default, rename = "type", deserialize_with = "present")]
    _type: Option<Function>,
    #[serde(rename = "function")]
    _function: Obj<FunctionSpec>,
}

#[derive(Deserialize)]
struct FunctionSpec {
    #[serde(rename = "name")]
    _name: String,
    #[serde(default, rename = "description")]
    _description: Option<String>,
    #[serde(default, rename = "parameters", deserialize_with = "present")]
    _parameters: Option<Obj<IgnoredMap>>,
}

/// Any JSON object, read and dropped (`dict[str, Any]`).
struct IgnoredMap;

impl<'de> Deserialize<'de> for IgnoredMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = IgnoredMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IgnoredMap, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IgnoredMap)
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// Whether a message's raw `content` has the contract's shape, `str | list[dict[str, Any]]`
/// (`null` is the `Option` around it), without decoding it: a string is one (serde scanned it,
/// and `canonical_request` decodes every string of the request, refusing a lone surrogate), a
/// list must hold only objects (read and dropped: a `Vec` of a zero-sized type never allocates).
fn content_shape_ok(raw: &RawValue) -> bool {
    match raw.get().as_bytes().first() {
        Some(b'"') => true,
        Some(b'[') => serde_json::from_str::<Vec<Obj<IgnoredMap>>>(raw.get()).is_ok(),
        _ => false,
    }
}

/// The last user message's `content` (`str | list[dict[str, Any]]`), decoded as the question
/// text `shadowlane.compare.retrieval.question_text` reads: the text itself, or the `text` of the
/// parts whose `type` is `"text"` (borrowed from the record unless it has escapes).
enum Content<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<Cow<'a, str>>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = Content<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a text or a list of objects")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Content<'de>, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content<'de>, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content<'de>, A::Error> {
                let mut texts = Vec::new();
                while let Some(part) = seq.next_element::<Part<'de>>()? {
                    if let Part(Some(text)) = part {
                        texts.push(text);
                    }
                }
                Ok(Content::Parts(texts))
            }
        }
        deserializer.deserialize_any(ContentVisitor)
    }
}

/// `shadowlane.compare.retrieval.MAX_QUESTION_CHARS`: the question is cut to this many
/// characters (code points, as Python counts them); the differential test holds the two equal.
const MAX_QUESTION_CHARS: usize = 4_000;

impl Content<'_> {
    /// `shadowlane.compare.retrieval.question_text` of this content: the text, or the parts' texts
    /// joined by a newline, cut to `MAX_QUESTION_CHARS`; `None` when that is empty.
    fn question(&self) -> Option<String> {
        let text: Cow<'_, str> = match self {
            Content::Text(text) => Cow::Borrowed(text),
            Content::Parts(texts) => Cow::Owned(texts.join("\n")),
        };
        if text.is_empty() {
            return None;
        }
        Some(match text.char_indices().nth(MAX_QUESTION_CHARS) {
            Some((end, _)) => text[..end].to_owned(),
            None => text.into_owned(),
        })
    }
}

/// One content part (any JSON object): its `text` when its `type` is `"text"` and its `text` is
/// a string (a repeated key: the last one counts, as in the Python dict).
struct Part<'a>(Option<Cow<'a, str>>);

enum PartKey {
    Type,
    Text,
    Other,
}

impl<'de> Deserialize<'de> for PartKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = PartKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PartKey, E> {
                Ok(match v {
                    "type" => PartKey::Type,
                    "text" => PartKey::Text,
                    _ => PartKey::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value: a string kept, anything else read and dropped.
struct AnyStr<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for AnyStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AnyVisitor;
        impl<'de> Visitor<'de> for AnyVisitor {
            type Value = AnyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<AnyStr<'de>, E> {
                Ok(AnyStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyStr<'de>, E> {
                Ok(AnyStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyStr<'de>, E> {
                Ok(AnyStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyStr<'de>, E> {
                Ok(AnyStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyStr<'de>, E> {
                Ok(AnyStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyStr<'de>, E> {
                Ok(AnyStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<AnyStr<'de>, E> {
                Ok(AnyStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyStr<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyStr<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyStr(None))
            }
        }
        deserializer.deserialize_any(AnyVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Part<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PartVisitor;
        impl<'de> Visitor<'de> for PartVisitor {
            type Value = Part<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part<'de>, A::Error> {
                let (mut kind, mut text) = (None, None);
                while let Some(key) = map.next_key::<PartKey>()? {
                    match key {
                        PartKey::Type => kind = map.next_value::<AnyStr<'de>>()?.0,
                        PartKey::Text => text = map.next_value::<AnyStr<'de>>()?.0,
                        PartKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Part(if kind.as_deref() == Some("text") {
                    text
                } else {
                    None
                }))
            }
        }
        deserializer.deserialize_map(PartVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Prod {
    #[serde(deserialize_with = "nullable")]
    answer: Option<String>,
    status: i64,
    latency_ms: f64,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, rename = "tool_calls", deserialize_with = "present")]
    _tool_calls: Option<Vec<Obj<ToolCall>>>,
    #[serde(default)]
    usage: Option<Obj<Usage>>,
    #[serde(default, rename = "error")]
    _error: Option<String>,
    #[serde(default, deserialize_with = "present")]
    cited_ids: Option<Vec<String>>,
    #[serde(default)]
    served_pins: StrMap,
    #[serde(default, deserialize_with = "present")]
    retrieved: Option<Vec<Obj<Passage>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Usage {
    #[serde(default, deserialize_with = "present")]
    prompt_tokens: Option<i64>,
    #[serde(default, deserialize_with = "present")]
    completion_tokens: Option<i64>,
    #[serde(default, rename = "total_tokens", deserialize_with = "present")]
    _total_tokens: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tool {
    name: String,
    #[serde(default, deserialize_with = "present")]
    arguments: Option<Box<RawValue>>,
    #[serde(rename = "output")]
    _output: String,
    #[serde(default, rename = "ok", deserialize_with = "present")]
    _ok: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sampling {
    ratio: f64,
    bucket: f64,
    #[serde(rename = "salt_id")]
    _salt_id: String,
    #[serde(default, rename = "sampled", deserialize_with = "present")]
    _sampled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Gold {
    #[serde(default)]
    answer: Option<String>,
    #[serde(default, deserialize_with = "present")]
    cited_ids: Option<Vec<String>>,
    #[serde(default, rename = "source")]
    _source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Exposure {
    #[serde(rename = "flag")]
    _flag: String,
    arm: String,
    #[serde(rename = "served_by")]
    _served_by: String,
    #[serde(rename = "strategy")]
    _strategy: String,
    epoch: i64,
    #[serde(default)]
    bucket: Option<f64>,
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
    /// Every recorded tool call in order (`tool_io`): the history's first, then this turn's.
    pub tool_keys: Vec<(String, String)>,
    /// How many of `tool_keys` come from the conversation history (`history_tool_calls`).
    pub history_tool_calls: usize,
    pub gold: Option<(Option<String>, Vec<String>)>,
    pub buckets: Vec<(String, String)>,
    pub candidate_served: bool,
    /// The last user message's text (`shadowlane.compare.retrieval.question_text`), for retrieval drift.
    pub question: Option<String>,
    pub paraphrases: Vec<String>,
    pub served_pins: Vec<(String, String)>,
    pub retrieved: Vec<Passage>,
}

const SCHEMA_VERSION: i64 = 1;
const EMPTY_ARGUMENTS: &str = "{}";
/// `RequestEnvelope.paraphrases`' `max_length`.
const MAX_PARAPHRASES: usize = 3;

fn is_req_hash(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `shadowlane.hashing.req_hash`: BLAKE2b-128 of the id, a zero byte and the canonical request.
fn recipe_hash(req_id: &str, canonical: &str) -> String {
    let mut hasher = Blake2bVar::new(16).expect("16 bytes is a valid BLAKE2b output size");
    hasher.update(req_id.as_bytes());
    hasher.update(b"\0");
    hasher.update(canonical.as_bytes());
    let mut digest = [0u8; 16];
    hasher
        .finalize_variable(&mut digest)
        .expect("the buffer is the output size");
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn unit_interval(x: f64) -> bool {
    (0.0..1.0).contains(&x)
}

/// The projection, or `None` when the record is not one this path vouches for: `key` is the
/// record's Kafka key, which must be the envelope's `req_hash`.
pub fn project(data: &[u8], key: Option<&[u8]>) -> Option<Projection> {
    let Obj(env) = serde_json::from_slice::<Obj<Envelope>>(data).ok()?;
    let Obj(request) = serde_json::from_str::<Obj<Request>>(env.request.get()).ok()?;
    let Obj(sampling) = &env.sampling;
    let id_chars = env.req_id.chars().count();
    let ok = env.schema_version == SCHEMA_VERSION
        && (1..=256).contains(&id_chars)
        && is_req_hash(&env.req_hash)
        && key == Some(env.req_hash.as_bytes())
        && env.ts_ms >= 0
        && env.prod.0.latency_ms >= 0.0
        && (0.0..=1.0).contains(&sampling.ratio)
        && unit_interval(sampling.bucket)
        && env.sanitized_fields.unwrap_or(0) >= 0
        && env.history_tool_calls.unwrap_or(0) >= 0
        && env.paraphrases.as_ref().map_or(0, Vec::len) <= MAX_PARAPHRASES
        && env
            .exposure
            .as_ref()
            .is_none_or(|Obj(e)| e.epoch >= 0 && e.bucket.is_none_or(unit_interval));
    if !ok || recipe_hash(&env.req_id, &canonical_request(env.request)?) != env.req_hash {
        return None;
    }
    let mut tool_keys = Vec::new();
    for Obj(tool) in env.tool_io.unwrap_or_default() {
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
    let mut last_user = None;
    for Obj(message) in &request.messages {
        if message.content.is_some_and(|raw| !content_shape_ok(raw)) {
            return None;
        }
        if message.role == Role::User {
            last_user = Some(message.content);
        }
    }
    let question = match last_user.flatten() {
        None => None,
        Some(raw) => serde_json::from_str::<Content>(raw.get()).ok()?.question(),
    };
    let Obj(prod) = env.prod;
    // `env.prod.model or env.request.model`: an empty prod model falls through, as in Python
    let model = match prod.model {
        Some(m) if !m.is_empty() => Some(m),
        _ => request.model,
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
        usage: prod.usage.map(|Obj(u)| {
            (
                u.prompt_tokens.unwrap_or(0),
                u.completion_tokens.unwrap_or(0),
            )
        }),
        cited_ids: prod.cited_ids.unwrap_or_default(),
        tool_keys,
        history_tool_calls: usize::try_from(env.history_tool_calls.unwrap_or(0)).ok()?,
        gold: env
            .gold
            .map(|Obj(g)| (g.answer, g.cited_ids.unwrap_or_default())),
        buckets: env.buckets.0,
        candidate_served: served,
        question,
        paraphrases: env.paraphrases.unwrap_or_default(),
        served_pins: prod.served_pins.0,
        retrieved: prod
            .retrieved
            .unwrap_or_default()
            .into_iter()
            .map(|Obj(p)| p)
            .collect(),
    })
}
