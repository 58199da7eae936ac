//! A plain comparison's wire bytes, written as `shadowlane.contracts.codec.encode` (orjson) writes its record.
//!
//! `Skeleton` is the record's JSON with holes: made once per `PlainConfig` from the contract's
//! template (the keys in order and the constant values, each written from the Python value),
//! it leaves a hole for each field `build_plain` sets per pair, which it fills from the pair's
//! Rust values. orjson and serde_json spell every JSON-native value alike (compact separators,
//! keys in insertion order, the same string escapes, the shortest round-trip float text);
//! `tests/unit/compare/native/test_builder.py` compares the two byte for byte. A template value of any
//! other type (or a float that is not finite, an int past 64 bits) leaves the whole record to
//! Python.

use std::io::Write;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString, PyTuple};

use crate::records::str_map;

/// A per-pair value, as the record's dict and its JSON hold it.
pub enum Val<'a, 'py> {
    Str(&'a str),
    /// A string the records already hold as a Python object (shared, not copied, in the dict).
    Shared(&'a str, &'a Bound<'py, PyString>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    Map(&'a [(String, String)]),
    /// A tuple of strings (a JSON array).
    List(&'a [&'a str]),
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().any(needs_escape) {
        // serde_json escapes exactly what orjson does (`"`, `\`, and the control characters)
        serde_json::to_writer(&mut *out, text).expect("writing to a Vec cannot fail");
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// Writes a per-pair value; false for a float that is not finite (Python writes the record).
fn write_val(out: &mut Vec<u8>, value: &Val<'_, '_>) -> bool {
    match value {
        Val::Str(text) | Val::Shared(text, _) => write_str(out, text),
        Val::Int(v) => write!(out, "{v}").expect("writing to a Vec cannot fail"),
        Val::Float(v) => {
            if !v.is_finite() {
                return false;
            }
            serde_json::to_writer(&mut *out, v).expect("writing to a Vec cannot fail");
        }
        Val::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
        Val::Null => out.extend_from_slice(b"null"),
        Val::Map(pairs) => {
            out.push(b'{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_str(out, value);
            }
            out.push(b'}');
        }
        Val::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, item);
            }
            out.push(b']');
        }
    }
    true
}

/// A constant template value's JSON, or `None` for a type this writer does not spell.
fn write_py(out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> Option<()> {
    if value.is_none() {
        out.extend_from_slice(b"null");
    } else if let Ok(text) = value.cast_exact::<PyString>() {
        write_str(out, text.to_str().ok()?);
    } else if let Ok(flag) = value.cast_exact::<PyBool>() {
        out.extend_from_slice(if flag.is_true() { b"true" } else { b"false" });
    } else if let Ok(number) = value.cast_exact::<PyFloat>() {
        write_val(out, &Val::Float(number.value())).then_some(())?;
    } else if let Ok(number) = value.cast_exact::<PyInt>() {
        write_val(out, &Val::Int(number.extract().ok()?));
    } else if let Ok(map) = value.cast_exact::<PyDict>() {
        out.push(b'{');
        for (i, (key, item)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, key.cast_exact::<PyString>().ok()?.to_str().ok()?);
            out.push(b':');
            write_py(out, &item)?;
        }
        out.push(b'}');
    } else {
        return None;
    }
    Some(())
}

enum Segment {
    Const(Vec<u8>),
    Hole(usize),
}

/// The record's JSON with a hole per field set per pair.
pub struct Skeleton(Vec<Segment>);

impl Skeleton {
    /// From the template (every field in order, constants set); `holes` names the per-pair
    /// fields, in the order `fill` takes their values. `None` when a constant is not writable.
    pub fn new(template: &Bound<'_, PyDict>, holes: &[&str]) -> Option<Self> {
        let mut segments = Vec::new();
        let mut current = vec![b'{'];
        for (i, (key, value)) in template.iter().enumerate() {
            if i > 0 {
                current.push(b',');
            }
            let name = key.cast_exact::<PyString>().ok()?.to_str().ok()?.to_owned();
            write_str(&mut current, &name);
            current.push(b':');
            match holes.iter().position(|hole| *hole == name) {
                Some(at) => {
                    segments.push(Segment::Const(std::mem::take(&mut current)));
                    segments.push(Segment::Hole(at));
                }
                None => write_py(&mut current, &value)?,
            }
        }
        current.push(b'}');
        segments.push(Segment::Const(current));
        Some(Self(segments))
    }

    /// The record's bytes with the holes filled, or `None` when a value is not writable.
    pub fn fill(&self, values: &[Val<'_, '_>]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(1280);
        for segment in &self.0 {
            match segment {
                Segment::Const(bytes) => out.extend_from_slice(bytes),
                Segment::Hole(at) => write_val(&mut out, values.get(*at)?).then_some(())?,
            }
        }
        Some(out)
    }
}

impl<'py> Val<'_, 'py> {
    /// The value as the record's dict holds it.
    pub fn to_py(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Val::Str(text) => PyString::new(py, text).into_any(),
            Val::Shared(_, object) => (*object).clone().into_any(),
            Val::Int(v) => v.into_pyobject(py)?.into_any(),
            Val::Float(v) => PyFloat::new(py, *v).into_any(),
            Val::Bool(v) => PyBool::new(py, *v).to_owned().into_any(),
            Val::Null => py.None().into_bound(py),
            Val::Map(pairs) => str_map(py, pairs)?.into_any(),
            Val::List(items) => PyTuple::new(py, items.iter())?.into_any(),
        })
    }
}
