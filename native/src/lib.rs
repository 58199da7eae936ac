//! `shadowlane_native`: the comparator's hot path in Rust, behind the same contract as Python.
//!
//! One function for now, `project_envelope`: the slim projection of a request envelope that the
//! comparator's join keeps, read and checked straight from the record's bytes. Python decides
//! what to do with a `None` (take pydantic's path); nothing here raises on a bad record.

mod canonical;
mod envelope;
mod wire;

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

#[pymodule]
fn shadowlane_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(project_envelope, m)?)?;
    Ok(())
}
