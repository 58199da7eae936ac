//! What the join holds per waiting record, and how it reads a record's keys.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::records::{NativeRequest, NativeResult};

/// A request as the join holds it: read by `ingest` (Rust values), or the object it was given.
/// Not boxed: nearly every entry is native, and a box would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(super) enum Req {
    Native(NativeRequest),
    Object(Py<PyAny>),
}

/// A shadow result as the join holds it (see `Req`).
#[allow(clippy::large_enum_variant)]
pub(super) enum Res {
    Native(NativeResult),
    Object(Py<PyAny>),
}

impl Req {
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Req::Native(record) => record.heap_bytes(),
            Req::Object(_) => 0, // a Python object: tracemalloc sees it
        }
    }

    pub(super) fn into_object(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Req::Native(record) => Ok(Py::new(py, record)?.into_any()),
            Req::Object(object) => Ok(object),
        }
    }
}

impl Res {
    pub(super) fn heap_bytes(&self) -> usize {
        match self {
            Res::Native(record) => record.heap_bytes(),
            Res::Object(_) => 0,
        }
    }

    pub(super) fn into_object(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Res::Native(record) => Ok(Py::new(py, record)?.into_any()),
            Res::Object(object) => Ok(object),
        }
    }
}

pub(super) struct WaitingRequest {
    pub(super) envelope: Req,
    pub(super) req_hash: Py<PyString>,
    pub(super) reference: Py<PyAny>,
    pub(super) deadline: i64,
    /// The candidates still expected, sorted (the order their outcomes leave in on expiry).
    pub(super) waiting: Vec<String>,
    /// (result, its record reference, its candidate), in join order.
    pub(super) joined: Vec<(Res, Py<PyAny>, String)>,
}

pub(super) struct WaitingResult {
    pub(super) result: Res,
    pub(super) reference: Py<PyAny>,
    pub(super) deadline: i64,
}

pub(super) fn request_keys<'py>(env: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyString>, bool)> {
    let py = env.py();
    if let Ok(native) = env.cast::<NativeRequest>() {
        let record = native.get();
        return Ok((record.req_hash(py).clone(), record.served()));
    }
    let hash = env
        .getattr(intern!(py, "req_hash"))?
        .cast_into::<PyString>()?;
    Ok((
        hash,
        env.getattr(intern!(py, "candidate_served"))?.is_truthy()?,
    ))
}

pub(super) fn result_keys<'py>(
    res: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyString>)> {
    let py = res.py();
    if let Ok(native) = res.cast::<NativeResult>() {
        let record = native.get();
        return Ok((record.req_hash(py).clone(), record.candidate(py).clone()));
    }
    Ok((
        res.getattr(intern!(py, "req_hash"))?
            .cast_into::<PyString>()?,
        res.getattr(intern!(py, "candidate"))?
            .cast_into::<PyString>()?,
    ))
}
