//! A comparison's wire bytes, written as `schemas.codec.encode` (orjson) writes its record.
//!
//! The record is the dict `build_plain` made, so the bytes are those of the very values Python
//! sees. orjson and serde_json spell every JSON-native value alike (compact separators, keys in
//! insertion order, the same string escapes, the shortest round-trip float text);
//! `tests/unit/test_build_native.py` compares the two byte for byte. A value of any other type
//! (or a float that is not finite, an int past 64 bits, a string that is not UTF-8) makes it
//! answer `None`, and Python encodes the record.

use std::io::Write;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

fn write_str(out: &mut Vec<u8>, value: &Bound<'_, PyString>) -> bool {
    match value.to_str() {
        Ok(text) => serde_json::to_writer(&mut *out, text).is_ok(),
        Err(_) => false, // a lone surrogate: orjson refuses it too, and Python says how
    }
}

fn write_value(out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> bool {
    if value.is_none() {
        out.extend_from_slice(b"null");
        true
    } else if let Ok(text) = value.cast_exact::<PyString>() {
        write_str(out, text)
    } else if let Ok(flag) = value.cast_exact::<PyBool>() {
        out.extend_from_slice(if flag.is_true() { b"true" } else { b"false" });
        true
    } else if let Ok(number) = value.cast_exact::<PyFloat>() {
        let v = number.value();
        v.is_finite() && serde_json::to_writer(&mut *out, &v).is_ok()
    } else if let Ok(number) = value.cast_exact::<PyInt>() {
        match number.extract::<i64>() {
            Ok(v) => write!(out, "{v}").is_ok(),
            Err(_) => false,
        }
    } else if let Ok(map) = value.cast_exact::<PyDict>() {
        write_object(out, map)
    } else {
        false
    }
}

fn write_object(out: &mut Vec<u8>, map: &Bound<'_, PyDict>) -> bool {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let Ok(key) = key.cast_exact::<PyString>() else {
            return false;
        };
        if !write_str(out, key) {
            return false;
        }
        out.push(b':');
        if !write_value(out, &value) {
            return false;
        }
    }
    out.push(b'}');
    true
}

/// The JSON bytes of a record's fields, or `None` when a value is not one this writer spells.
pub fn encode(record: &Bound<'_, PyDict>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(1280);
    write_object(&mut out, record).then_some(out)
}
