//! `shadowlane_native`: the comparator's hot path in Rust, behind the same contract as Python.
//!
//! `parse_request`: the slim projection of a request envelope that the comparator's join keeps,
//! read and checked straight from the record's bytes; `parse_result`: a shadow result, likewise
//! (both held natively while they wait: `records.rs`); `NativeJoin`: the join they wait in
//! (`join/`); `build_plain`: the comparison of a plain joined pair and its wire bytes
//! (`plain.rs`, `encode.rs`). Python decides what to do with a `None` (take its own path);
//! nothing here raises on a bad record.

mod canonical;
mod encode;
mod envelope;
mod join;
mod plain;
mod pyjson;
mod records;
mod result;
mod sanitize;
mod wire;

use pyo3::prelude::*;

#[pymodule]
fn shadowlane_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(records::parse_request, m)?)?;
    m.add_function(wrap_pyfunction!(records::parse_result, m)?)?;
    m.add_class::<records::NativeRequest>()?;
    m.add_class::<records::NativeResult>()?;
    m.add_class::<join::NativeJoin>()?;
    m.add_function(wrap_pyfunction!(plain::build_plain, m)?)?;
    m.add_class::<plain::PlainConfig>()?;
    m.add_class::<sanitize::MaskEngine>()?;
    Ok(())
}
