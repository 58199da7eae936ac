//! `shadowlane_native`: the comparator's hot path in Rust, behind the same contract as Python.
//!
//! `project_envelope`: the slim projection of a request envelope that the comparator's join keeps,
//! read and checked straight from the record's bytes; `read_result`: a shadow result's fields,
//! likewise; `build_plain`: the comparison of a plain joined pair (`plain.rs`). Python decides what
//! to do with a `None` (take its own path); nothing here raises on a bad record.

mod canonical;
mod envelope;
mod plain;
mod pyjson;
mod result;
mod wire;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyTuple};

fn str_map<'py>(py: Python<'py>, pairs: &[(String, String)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in pairs {
        dict.set_item(key, value)?;
    }
    Ok(dict)
}

/// The projection as a flat tuple (see `workers/compare/prod_side.py`, `ProdSide.from_native`):
/// `(req_id, req_hash, ts_ms, endpoint, tenant, pins, answer, latency_ms, status, model,
/// prompt_tokens, completion_tokens, cited_ids, tool_keys, gold, buckets, candidate_served)`,
/// with `gold` as `(answer, cited_ids)` or `None`; or `None` for a record this path does not vouch
/// for.
#[pyfunction]
fn project_envelope<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some(p) = envelope::project(data) else {
        return Ok(None);
    };
    let (prompt, completion) = match p.usage {
        Some((prompt, completion)) => (Some(prompt), Some(completion)),
        None => (None, None),
    };
    let tool_keys = PyFrozenSet::new(
        py,
        p.tool_keys.iter().map(|(n, a)| (n.as_str(), a.as_str())),
    )?;
    let gold = match &p.gold {
        None => None,
        Some((answer, cited)) => {
            Some((answer.as_deref(), PyTuple::new(py, cited)?).into_pyobject(py)?)
        }
    };
    let items: Vec<Bound<'py, PyAny>> = vec![
        p.req_id.into_pyobject(py)?.into_any(),
        p.req_hash.into_pyobject(py)?.into_any(),
        p.ts_ms.into_pyobject(py)?.into_any(),
        p.endpoint.into_pyobject(py)?.into_any(),
        p.tenant.into_pyobject(py)?.into_any(),
        str_map(py, &p.pins)?.into_any(),
        p.answer.into_pyobject(py)?.into_any(),
        p.latency_ms.into_pyobject(py)?.into_any(),
        p.status.into_pyobject(py)?.into_any(),
        p.model.into_pyobject(py)?.into_any(),
        prompt.into_pyobject(py)?.into_any(),
        completion.into_pyobject(py)?.into_any(),
        PyTuple::new(py, &p.cited_ids)?.into_any(),
        tool_keys.into_any(),
        gold.into_pyobject(py)?.into_any(),
        str_map(py, &p.buckets)?.into_any(),
        pyo3::types::PyBool::new(py, p.candidate_served)
            .to_owned()
            .into_any(),
    ];
    Ok(Some(PyTuple::new(py, items)?))
}

/// A tool call's `arguments` as pydantic keeps them (`dict[str, Any] | str`, default `{}`).
fn arguments<'py>(
    py: Python<'py>,
    raw: Option<&serde_json::value::RawValue>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(raw) = raw else {
        return Ok(Some(PyDict::new(py).into_any()));
    };
    Ok(pyjson::loads(py, raw.get()).filter(|value| {
        value.is_instance_of::<PyDict>() || value.is_instance_of::<pyo3::types::PyString>()
    }))
}

/// The fields of a `ShadowResult`, in the contract's order, as a dict ready for its trusted
/// construction (see `workers/compare/results.py`); nested parts (tool calls, usage, stability
/// samples) are dicts of their fields too. `None` for a record this path does not vouch for.
#[pyfunction]
fn read_result<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(r) = result::read(data) else {
        return Ok(None);
    };
    let mut calls = Vec::with_capacity(r.tool_calls.len());
    for wire::Obj(call) in &r.tool_calls {
        let Some(args) = arguments(py, call.arguments)? else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item(intern!(py, "name"), &call.name)?;
        d.set_item(intern!(py, "arguments"), args)?;
        d.set_item(intern!(py, "disposition"), &call.disposition)?;
        d.set_item(intern!(py, "output"), &call.output)?;
        d.set_item(intern!(py, "schema_valid"), call.schema_valid)?;
        d.set_item(intern!(py, "schema_error"), &call.schema_error)?;
        calls.push(d);
    }
    let mut samples = Vec::with_capacity(r.stability.len());
    for wire::Obj(sample) in &r.stability {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "variant"), &sample.variant)?;
        d.set_item(intern!(py, "seed"), sample.seed)?;
        d.set_item(intern!(py, "status"), &sample.status)?;
        d.set_item(intern!(py, "answer"), &sample.answer)?;
        d.set_item(intern!(py, "error_class"), &sample.error_class)?;
        samples.push(d);
    }
    let usage = match &r.usage {
        None => None,
        Some(wire::Obj(u)) => {
            let d = PyDict::new(py);
            d.set_item(intern!(py, "prompt_tokens"), u.prompt_tokens)?;
            d.set_item(intern!(py, "completion_tokens"), u.completion_tokens)?;
            d.set_item(intern!(py, "total_tokens"), u.total_tokens)?;
            Some(d)
        }
    };
    let d = PyDict::new(py);
    d.set_item(intern!(py, "schema_version"), 1)?;
    d.set_item(intern!(py, "req_hash"), &r.req_hash)?;
    d.set_item(intern!(py, "req_id"), &r.req_id)?;
    d.set_item(intern!(py, "candidate"), &r.candidate)?;
    d.set_item(intern!(py, "pins"), str_map(py, &r.pins.0)?)?;
    d.set_item(intern!(py, "shadow_id"), &r.shadow_id)?;
    d.set_item(intern!(py, "ts_ms"), r.ts_ms)?;
    d.set_item(intern!(py, "status"), &r.status)?;
    d.set_item(intern!(py, "error_class"), &r.error_class)?;
    d.set_item(intern!(py, "error"), &r.error)?;
    d.set_item(intern!(py, "answer"), &r.answer)?;
    d.set_item(intern!(py, "latency_ms"), r.latency_ms)?;
    d.set_item(intern!(py, "attempts"), r.attempts.unwrap_or(1))?;
    d.set_item(intern!(py, "tool_calls"), PyTuple::new(py, calls)?)?;
    d.set_item(intern!(py, "usage"), usage)?;
    d.set_item(intern!(py, "model"), &r.model)?;
    d.set_item(intern!(py, "cited_ids"), PyTuple::new(py, &r.cited_ids)?)?;
    d.set_item(intern!(py, "stability"), PyTuple::new(py, samples)?)?;
    Ok(Some(d))
}

#[pymodule]
fn shadowlane_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(project_envelope, m)?)?;
    m.add_function(wrap_pyfunction!(read_result, m)?)?;
    m.add_function(wrap_pyfunction!(plain::build_plain, m)?)?;
    m.add_class::<plain::PlainConfig>()?;
    Ok(())
}
