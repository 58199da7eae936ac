//! `NativeJoin`'s Python interface, and `ingest`'s reading of a poll's records.

use std::collections::HashSet;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use hashlink::LinkedHashMap;

use super::{Ingested, NativeJoin, Req, Res, Stats, WaitingRequest, WaitingResult, NEVER};
use crate::plain::PlainConfig;
use crate::records::{parse_request, parse_result, strings_size};

impl NativeJoin {
    /// A record's value read natively, or by the Python reader (`Err`: a bad record's error).
    /// One record's value (and, for a request, its key) read natively, or by the Python reader
    /// (`read_request(value, key)` / `read_result(value)`) when the native one declines it.
    fn read<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
        is_request: bool,
    ) -> PyResult<Result<Read, PyErr>> {
        if let Ok(bytes) = value.cast::<PyBytes>() {
            let data = bytes.as_bytes();
            if is_request {
                let key_bytes = key.cast::<PyBytes>().ok().map(|k| k.as_bytes());
                if let Some(record) = parse_request(py, data, key_bytes) {
                    return Ok(Ok(Read::Request(Req::Native(record))));
                }
            } else if let Some(record) = parse_result(py, data)? {
                return Ok(Ok(Read::Result(Res::Native(record))));
            }
        }
        let read = if is_request {
            self.read_request.bind(py).call1((value, key))
        } else {
            self.read_result.bind(py).call1((value,))
        };
        match read {
            Ok(record) if is_request => Ok(Ok(Read::Request(Req::Object(record.unbind())))),
            Ok(record) => Ok(Ok(Read::Result(Res::Object(record.unbind())))),
            Err(err) if err.is_instance(py, self.decode_error.bind(py)) => Ok(Err(err)),
            Err(err) => Err(err),
        }
    }
}

/// What `ingest` read from one record.
enum Read {
    Request(Req),
    Result(Res),
}

#[pymethods]
impl NativeJoin {
    /// `candidates` sorted and unique; `read_request` / `read_result` read a record the native
    /// readers decline (raising `decode_error` for a bad one); `joined` / `expired` / `built`
    /// build outputs; with `plain`, plain pairs leave as `Built`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (candidates, window_ms, max_pending, joined, expired, built, plain, read_request, read_result, decode_error))]
    fn new(
        candidates: Vec<String>,
        window_ms: i64,
        max_pending: usize,
        joined: Py<PyAny>,
        expired: Py<PyAny>,
        built: Py<PyAny>,
        plain: Option<Py<PlainConfig>>,
        read_request: Py<PyAny>,
        read_result: Py<PyAny>,
        decode_error: Py<PyAny>,
    ) -> Self {
        Self {
            candidates,
            window_ms,
            max_pending,
            requests: LinkedHashMap::new(),
            results: LinkedHashMap::new(),
            finished: LinkedHashMap::new(),
            timed_out: LinkedHashMap::new(),
            finished_cap: max_pending.max(10_000),
            earliest: NEVER,
            stats: Stats::default(),
            joined_cls: joined,
            expired_cls: expired,
            built_cls: built,
            plain,
            read_request,
            read_result,
            decode_error,
        }
    }

    fn pending(&self) -> usize {
        self.pending_count()
    }

    /// Bytes the join holds outside the Python heap (tracemalloc does not see them): its maps'
    /// tables and entries (each entry a node with two links, as hashlink keeps them), their
    /// keys, and the native records' strings. Python objects it holds are not counted here.
    fn native_bytes(&self) -> usize {
        const LINKS: usize = 2 * std::mem::size_of::<usize>();
        let slot = std::mem::size_of::<usize>();
        let requests: usize = self
            .requests
            .iter()
            .map(|(key, entry)| {
                std::mem::size_of::<(String, WaitingRequest)>()
                    + LINKS
                    + key.capacity()
                    + entry.envelope.heap_bytes()
                    + strings_size(&entry.waiting)
                    + entry
                        .joined
                        .iter()
                        .map(|(res, _, candidate)| {
                            std::mem::size_of::<(Res, Py<PyAny>, String)>()
                                + res.heap_bytes()
                                + candidate.capacity()
                        })
                        .sum::<usize>()
            })
            .sum();
        let results: usize = self
            .results
            .iter()
            .map(|((hash, candidate), waiting)| {
                std::mem::size_of::<((String, String), WaitingResult)>()
                    + LINKS
                    + hash.capacity()
                    + candidate.capacity()
                    + waiting.result.heap_bytes()
            })
            .sum();
        let finished: usize = self
            .finished
            .iter()
            .map(|(key, done)| {
                std::mem::size_of::<(String, Vec<String>)>()
                    + LINKS
                    + key.capacity()
                    + strings_size(done)
            })
            .sum();
        let timed_out: usize = self
            .timed_out
            .keys()
            .map(|(hash, candidate)| {
                std::mem::size_of::<(String, String)>()
                    + LINKS
                    + hash.capacity()
                    + candidate.capacity()
            })
            .sum();
        let tables = (self.requests.capacity()
            + self.results.capacity()
            + self.finished.capacity()
            + self.timed_out.capacity())
            * slot;
        requests + results + finished + timed_out + tables
    }

    /// The counters as `JoinStats`' fields.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = &self.stats;
        let d = PyDict::new(py);
        for (name, value) in [
            ("requests", s.requests),
            ("results", s.results),
            ("joined", s.joined),
            ("shadow_timeouts", s.shadow_timeouts),
            ("requests_missing", s.requests_missing),
            ("duplicate_requests", s.duplicate_requests),
            ("candidate_served", s.candidate_served),
            ("duplicate_results", s.duplicate_results),
            ("late_results", s.late_results),
            ("ignored_candidates", s.ignored_candidates),
            ("evicted", s.evicted),
        ] {
            d.set_item(name, value)?;
        }
        Ok(d)
    }

    fn add_request<'py>(
        &mut self,
        env: &Bound<'py, PyAny>,
        reference: &Bound<'py, PyAny>,
        ts_ms: i64,
    ) -> PyResult<(Bound<'py, PyList>, bool)> {
        let out = PyList::empty(env.py());
        let done =
            self.add_request_to(Req::Object(env.clone().unbind()), reference, ts_ms, &out)?;
        Ok((out, done))
    }

    fn add_result<'py>(
        &mut self,
        res: &Bound<'py, PyAny>,
        reference: &Bound<'py, PyAny>,
        ts_ms: i64,
    ) -> PyResult<(Bound<'py, PyList>, bool)> {
        let out = PyList::empty(res.py());
        let done = self.add_result_to(Res::Object(res.clone().unbind()), reference, ts_ms, &out)?;
        Ok((out, done))
    }

    /// Everything whose deadline is before `watermark_ms` leaves as `Expired` (requests first,
    /// then results, each in arrival order).
    fn expire<'py>(&mut self, py: Python<'py>, watermark_ms: i64) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        if watermark_ms <= self.earliest {
            return Ok(out);
        }
        let mut earliest = NEVER;
        let mut due_requests = Vec::new();
        for (key, entry) in &self.requests {
            if entry.deadline < watermark_ms {
                due_requests.push(key.clone());
            } else {
                earliest = earliest.min(entry.deadline);
            }
        }
        let mut due_results = Vec::new();
        for (key, waiting) in &self.results {
            if waiting.deadline < watermark_ms {
                due_results.push(key.clone());
            } else {
                earliest = earliest.min(waiting.deadline);
            }
        }
        self.earliest = earliest;
        for key in due_requests {
            if let Some(entry) = self.requests.remove(&key) {
                self.expire_request(py, entry, &out)?;
            }
        }
        for key in due_results {
            self.expire_result(py, key, &out)?;
        }
        Ok(out)
    }

    /// Remember (req_hash, candidate) pairs whose outcome another member already emitted, so a
    /// copy of the request read here is a duplicate (`JoinBuffer.mark_finished`).
    fn mark_finished(&mut self, pairs: Vec<(String, String)>) {
        for (req_hash, candidate) in pairs {
            let known = self
                .finished
                .get(&req_hash)
                .is_some_and(|done| done.contains(&candidate));
            if !known {
                self.finish(&req_hash, &candidate);
            }
        }
    }

    /// Forget that these (req_hash, candidate) pairs left: their outcome was built but never
    /// shipped, so their records, read again, are new pairs (`JoinBuffer.forget_finished`).
    fn forget_finished(&mut self, pairs: Vec<(String, String)>) {
        for (req_hash, candidate) in pairs {
            if let Some(done) = self.finished.get_mut(&req_hash) {
                done.retain(|c| c != &candidate);
                if done.is_empty() {
                    self.finished.remove(&req_hash);
                }
            }
            self.timed_out.remove(&(req_hash, candidate));
        }
    }

    /// Forget entries of revoked partitions (their new owner re-reads them). Returns the count.
    fn drop_partitions(
        &mut self,
        py: Python<'_>,
        partitions: Vec<(String, i64)>,
    ) -> PyResult<usize> {
        let gone: HashSet<(String, i64)> = partitions.into_iter().collect();
        let of = |reference: &Py<PyAny>| -> PyResult<bool> {
            let (topic, partition, _offset): (String, i64, i64) = reference.bind(py).extract()?;
            Ok(gone.contains(&(topic, partition)))
        };
        let mut requests = Vec::new();
        for (key, entry) in &self.requests {
            if of(&entry.reference)? {
                requests.push(key.clone());
            }
        }
        let mut results = Vec::new();
        for (key, waiting) in &self.results {
            if of(&waiting.reference)? {
                results.push(key.clone());
            }
        }
        for key in &requests {
            self.requests.remove(key);
        }
        for key in &results {
            self.results.remove(key);
        }
        Ok(requests.len() + results.len())
    }

    /// One poll's records of one partition, read and joined in order; see `Ingested`.
    fn ingest<'py>(
        &mut self,
        records: &Bound<'py, PyList>,
        topic: &Bound<'py, PyString>,
        partition: i64,
        is_request: bool,
    ) -> PyResult<Ingested<'py>> {
        let py = records.py();
        let out = PyList::empty(py);
        let bad = PyList::empty(py);
        let mut offsets = Vec::with_capacity(records.len());
        let mut done = Vec::new();
        let partition_obj = partition.into_pyobject(py)?;
        for record in records.iter() {
            let offset: i64 = record.getattr(intern!(py, "offset"))?.extract()?;
            offsets.push(offset);
            let value = record.getattr(intern!(py, "value"))?;
            let key = record.getattr(intern!(py, "key"))?;
            let read = match self.read(py, &value, &key, is_request)? {
                Ok(read) => read,
                Err(err) => {
                    bad.append((&record, err.value(py)))?;
                    continue;
                }
            };
            let ts_ms: i64 = record.getattr(intern!(py, "timestamp"))?.extract()?;
            let reference = PyTuple::new(
                py,
                [
                    topic.as_any(),
                    partition_obj.as_any(),
                    offset.into_pyobject(py)?.as_any(),
                ],
            )?;
            let finished = match read {
                Read::Request(env) => self.add_request_to(env, reference.as_any(), ts_ms, &out)?,
                Read::Result(res) => self.add_result_to(res, reference.as_any(), ts_ms, &out)?,
            };
            if finished {
                done.push(offset);
            }
        }
        Ok((out, offsets, done, bad))
    }
}
