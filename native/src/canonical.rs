//! Canonical JSON, byte-equal to `orjson.dumps(obj, option=OPT_SORT_KEYS)`.
//!
//! Keys are sorted (serde_json's map is ordered by key bytes, which is code point order, as
//! orjson sorts) and nothing but the JSON-mandated characters is escaped, as orjson does.
//! Floats: both libraries read them correctly rounded and write them with ryu's shortest
//! round-trip form, which the request check relies on (`canonical_request`: a text that differed
//! would only make the recomputed `req_hash` differ, and the record then takes the Python check).
//! Tool arguments keep the older caution: an object holding a float is left to Python.

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

/// The canonical text of a JSON object, floats included (the request `req_hash` covers), or
/// `None` when it is not an object.
pub fn canonical_request(raw: &RawValue) -> Option<String> {
    let value: Value = serde_json::from_str(raw.get()).ok()?;
    if !value.is_object() {
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
