//! The comparator's records, held natively while they wait in the join.
//!
//! `parse_request` / `parse_result` read a record's bytes (`envelope.rs`, `result.rs`) into an
//! object that keeps the parsed fields as Rust values: the join reads only `req_hash` (and
//! `candidate_served` / `candidate`), a plain pair's comparison is built from the fields directly
//! (`plain.rs`), and only a pair the Python builder handles turns them into Python objects
//! (`fields()`, the input of `ProdSide.from_native` / `results.from_native`). A waiting pair then
//! costs a few Rust strings instead of a dozen Python objects, none of which the garbage collector
//! walks.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};

use crate::envelope::{self, Projection};
use crate::pyjson;
use crate::result::{self, ShadowResult};
use crate::wire::{Obj, Passage};

pub fn str_map<'py>(py: Python<'py>, pairs: &[(String, String)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in pairs {
        dict.set_item(key, value)?;
    }
    Ok(dict)
}

/// Bytes of a vector of strings' buffers (for the native-memory figures).
pub fn strings_size(items: &[String]) -> usize {
    items.iter().map(String::capacity).sum::<usize>() + std::mem::size_of_val(items)
}

fn pairs_size(items: &[(String, String)]) -> usize {
    items
        .iter()
        .map(|(a, b)| a.capacity() + b.capacity())
        .sum::<usize>()
        + std::mem::size_of_val(items)
}

fn opt_size(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, String::capacity)
}

fn passages_size<'a>(passages: impl Iterator<Item = &'a Passage>) -> usize {
    passages.map(Passage::heap_bytes).sum()
}

/// Retrieved passages as `(id, text)` tuples (`ProdSide.from_native` makes them `RetrievedPassage`s).
fn passage_tuples<'py>(py: Python<'py>, passages: &[Passage]) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        passages.iter().map(|p| (p.id.as_str(), p.text.as_deref())),
    )
}

/// Retrieved passages as dicts of their fields (a `ShadowResult`'s trusted construction).
fn passage_dicts<'py, 'a>(
    py: Python<'py>,
    passages: impl Iterator<Item = &'a Passage>,
) -> PyResult<Bound<'py, PyTuple>> {
    let mut out = Vec::new();
    for p in passages {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "id"), &p.id)?;
        d.set_item(intern!(py, "text"), &p.text)?;
        out.push(d);
    }
    PyTuple::new(py, out)
}

/// A request envelope's projection (what `ProdSide` holds), as the comparator read it.
#[pyclass(frozen, module = "shadowlane_native")]
pub struct NativeRequest {
    #[pyo3(get)]
    req_hash: Py<PyString>,
    #[pyo3(get)]
    candidate_served: bool,
    pub p: Projection,
}

impl NativeRequest {
    pub fn req_hash<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        self.req_hash.bind(py)
    }

    pub fn served(&self) -> bool {
        self.candidate_served
    }
}

#[pymethods]
impl NativeRequest {
    /// The projection as the flat tuple `ProdSide.from_native` takes: `(req_id, req_hash, ts_ms,
    /// endpoint, tenant, pins, answer, latency_ms, status, model, prompt_tokens,
    /// completion_tokens, cited_ids, tool_keys, gold, buckets, candidate_served, question,
    /// paraphrases, served_pins, retrieved, history_tool_calls)`, with `gold` as `(answer,
    /// cited_ids)` or `None` and `retrieved` as `(id, text)` tuples.
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let p = &self.p;
        let (prompt, completion) = match p.usage {
            Some((prompt, completion)) => (Some(prompt), Some(completion)),
            None => (None, None),
        };
        // in call order (the agent's steps); `ProdSide.from_native` makes the set
        let tool_keys = PyTuple::new(
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
            p.req_id.as_str().into_pyobject(py)?.into_any(),
            self.req_hash.bind(py).clone().into_any(),
            p.ts_ms.into_pyobject(py)?.into_any(),
            p.endpoint.as_str().into_pyobject(py)?.into_any(),
            p.tenant.as_str().into_pyobject(py)?.into_any(),
            str_map(py, &p.pins)?.into_any(),
            p.answer.as_deref().into_pyobject(py)?.into_any(),
            p.latency_ms.into_pyobject(py)?.into_any(),
            p.status.into_pyobject(py)?.into_any(),
            p.model.as_deref().into_pyobject(py)?.into_any(),
            prompt.into_pyobject(py)?.into_any(),
            completion.into_pyobject(py)?.into_any(),
            PyTuple::new(py, &p.cited_ids)?.into_any(),
            tool_keys.into_any(),
            gold.into_pyobject(py)?.into_any(),
            str_map(py, &p.buckets)?.into_any(),
            PyBool::new(py, p.candidate_served).to_owned().into_any(),
            p.question.as_deref().into_pyobject(py)?.into_any(),
            PyTuple::new(py, &p.paraphrases)?.into_any(),
            str_map(py, &p.served_pins)?.into_any(),
            passage_tuples(py, &p.retrieved)?.into_any(),
            p.history_tool_calls.into_pyobject(py)?.into_any(),
        ];
        PyTuple::new(py, items)
    }
}

impl NativeRequest {
    /// Bytes of this record's strings' and vectors' buffers (outside the object itself), for the
    /// join's count of what it holds outside the Python heap.
    pub fn heap_bytes(&self) -> usize {
        let p = &self.p;
        p.req_id.capacity()
            + p.req_hash.capacity()
            + p.endpoint.capacity()
            + p.tenant.capacity()
            + pairs_size(&p.pins)
            + opt_size(&p.answer)
            + opt_size(&p.model)
            + strings_size(&p.cited_ids)
            + pairs_size(&p.tool_keys)
            + p.gold
                .as_ref()
                .map_or(0, |(a, c)| opt_size(a) + strings_size(c))
            + pairs_size(&p.buckets)
            + opt_size(&p.question)
            + strings_size(&p.paraphrases)
            + pairs_size(&p.served_pins)
            + passages_size(p.retrieved.iter())
    }
}

/// The comparator's record of an encoded envelope and its Kafka key, or `None` when this path
/// does not vouch for it (the caller then reads it with `check_request`).
#[pyfunction]
#[pyo3(signature = (data, key))]
pub fn parse_request(py: Python<'_>, data: &[u8], key: Option<&[u8]>) -> Option<NativeRequest> {
    let p = envelope::project(data, key)?;
    Some(NativeRequest {
        req_hash: PyString::new(py, &p.req_hash).unbind(),
        candidate_served: p.candidate_served,
        p,
    })
}

/// A shadow result, checked against its contract, as the comparator read it.
#[pyclass(frozen, module = "shadowlane_native")]
pub struct NativeResult {
    #[pyo3(get)]
    req_hash: Py<PyString>,
    #[pyo3(get)]
    candidate: Py<PyString>,
    /// The tool calls as dicts of their fields (their arguments as Python objects), made when
    /// the record is read: an argument value this path cannot make declines the record there.
    calls: Py<PyTuple>,
    pub r: ShadowResult,
}

impl NativeResult {
    pub fn candidate<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        self.candidate.bind(py)
    }

    pub fn req_hash<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        self.req_hash.bind(py)
    }
}

/// A tool call's `arguments` as pydantic keeps them (`dict[str, Any] | str`, default `{}`).
fn arguments<'py>(
    py: Python<'py>,
    raw: Option<&serde_json::value::RawValue>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Some(raw) = raw else {
        return Ok(Some(PyDict::new(py).into_any()));
    };
    Ok(pyjson::loads(py, raw.get())
        .filter(|value| value.is_instance_of::<PyDict>() || value.is_instance_of::<PyString>()))
}

fn tool_calls<'py>(py: Python<'py>, r: &ShadowResult) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let mut calls = Vec::with_capacity(r.tool_calls.len());
    for Obj(call) in &r.tool_calls {
        let Some(args) = arguments(py, call.arguments.as_deref())? else {
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
    PyTuple::new(py, calls).map(Some)
}

#[pymethods]
impl NativeResult {
    /// The `ShadowResult`'s fields, in the contract's order, as a dict ready for its trusted
    /// construction (`shadowlane/compare/results.py`); nested parts (tool calls, usage, stability
    /// samples) are dicts of their fields too.
    fn fields<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = &self.r;
        let mut samples = Vec::with_capacity(r.stability.len());
        for Obj(sample) in &r.stability {
            let d = PyDict::new(py);
            d.set_item(intern!(py, "variant"), &sample.variant)?;
            d.set_item(intern!(py, "seed"), sample.seed)?;
            d.set_item(intern!(py, "status"), &sample.status)?;
            d.set_item(intern!(py, "answer"), &sample.answer)?;
            d.set_item(intern!(py, "error_class"), &sample.error_class)?;
            let retrieved = sample.retrieved.iter().map(|Obj(p)| p);
            d.set_item(intern!(py, "retrieved"), passage_dicts(py, retrieved)?)?;
            samples.push(d);
        }
        let usage = match &r.usage {
            None => None,
            Some(Obj(u)) => {
                let d = PyDict::new(py);
                d.set_item(intern!(py, "prompt_tokens"), u.prompt_tokens)?;
                d.set_item(intern!(py, "completion_tokens"), u.completion_tokens)?;
                d.set_item(intern!(py, "total_tokens"), u.total_tokens)?;
                Some(d)
            }
        };
        let d = PyDict::new(py);
        d.set_item(intern!(py, "schema_version"), 1)?;
        d.set_item(intern!(py, "req_hash"), self.req_hash.bind(py))?;
        d.set_item(intern!(py, "req_id"), &r.req_id)?;
        d.set_item(intern!(py, "candidate"), self.candidate.bind(py))?;
        d.set_item(intern!(py, "pins"), str_map(py, &r.pins.0)?)?;
        d.set_item(intern!(py, "shadow_id"), &r.shadow_id)?;
        d.set_item(intern!(py, "ts_ms"), r.ts_ms)?;
        d.set_item(intern!(py, "status"), &r.status)?;
        d.set_item(intern!(py, "error_class"), &r.error_class)?;
        d.set_item(intern!(py, "error"), &r.error)?;
        d.set_item(intern!(py, "answer"), &r.answer)?;
        d.set_item(intern!(py, "latency_ms"), r.latency_ms)?;
        d.set_item(intern!(py, "attempts"), r.attempts.unwrap_or(1))?;
        d.set_item(intern!(py, "tool_calls"), self.calls.bind(py))?;
        d.set_item(intern!(py, "usage"), usage)?;
        d.set_item(intern!(py, "model"), &r.model)?;
        d.set_item(intern!(py, "cited_ids"), PyTuple::new(py, &r.cited_ids)?)?;
        d.set_item(intern!(py, "stability"), PyTuple::new(py, samples)?)?;
        d.set_item(intern!(py, "traceparent"), &r.traceparent)?;
        d.set_item(intern!(py, "served_pins"), str_map(py, &r.served_pins.0)?)?;
        let retrieved = r.retrieved.iter().map(|Obj(p)| p);
        d.set_item(intern!(py, "retrieved"), passage_dicts(py, retrieved)?)?;
        Ok(d)
    }
}

impl NativeResult {
    /// Bytes of this record's strings' and vectors' buffers (see `NativeRequest::heap_bytes`).
    pub fn heap_bytes(&self) -> usize {
        let r = &self.r;
        r.req_hash.capacity()
            + r.req_id.capacity()
            + r.candidate.capacity()
            + pairs_size(&r.pins.0)
            + r.shadow_id.capacity()
            + r.status.capacity()
            + opt_size(&r.error_class)
            + opt_size(&r.error)
            + opt_size(&r.answer)
            + opt_size(&r.model)
            + strings_size(&r.cited_ids)
            + opt_size(&r.traceparent)
            + pairs_size(&r.served_pins.0)
            + passages_size(r.retrieved.iter().map(|Obj(p)| p))
            + r.stability
                .iter()
                .map(|Obj(s)| {
                    std::mem::size_of_val(s)
                        + s.variant.capacity()
                        + s.status.capacity()
                        + opt_size(&s.answer)
                        + opt_size(&s.error_class)
                        + passages_size(s.retrieved.iter().map(|Obj(p)| p))
                })
                .sum::<usize>()
            + r.tool_calls
                .iter()
                .map(|Obj(c)| {
                    std::mem::size_of_val(c)
                        + c.name.capacity()
                        + c.arguments.as_ref().map_or(0, |a| a.get().len())
                        + c.disposition.capacity()
                        + opt_size(&c.output)
                        + opt_size(&c.schema_error)
                })
                .sum::<usize>()
    }
}

/// The comparator's record of an encoded shadow result, or `None` when this path does not vouch
/// for it (the caller then reads it with the contract's decode).
#[pyfunction]
pub fn parse_result(py: Python<'_>, data: &[u8]) -> PyResult<Option<NativeResult>> {
    let Some(r) = result::read(data) else {
        return Ok(None);
    };
    let Some(calls) = tool_calls(py, &r)? else {
        return Ok(None);
    };
    Ok(Some(NativeResult {
        req_hash: PyString::new(py, &r.req_hash).unbind(),
        candidate: PyString::new(py, &r.candidate).unbind(),
        calls: calls.unbind(),
        r,
    }))
}
