//! Canonical JSON of tool arguments, byte-equal to `orjson.dumps(obj, option=OPT_SORT_KEYS)`.
//!
//! Keys are sorted (serde_json's map is ordered by key bytes, which is code point order, as
//! orjson sorts) and nothing but the JSON-mandated characters is escaped, as orjson does.
//! Floats are the one thing whose text the two libraries might spell differently, so an
//! argument object holding a float is not canonicalised here: the caller does it in Python.

use serde_json::value::RawValue;
use serde_json::Value;

/// The canonical text of a JSON object, or `None` when it holds a float (or is not an object).
pub fn canonical_object(raw: &RawValue) -> Option<String> {
    let value: Value = serde_json::from_str(raw.get()).ok()?;
    if !value.is_object() || has_float(&value) {
        return None;
    }
    serde_json::to_string(&value).ok()
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}
