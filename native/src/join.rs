//! The comparator's join in Rust: `workers/compare/join.py`'s `JoinBuffer`, output for output.
//!
//! Same state, same rules, same order of outputs: a request waits for one result per expected
//! candidate, a result that comes first waits for its request, a request's outputs leave
//! together once every candidate has an outcome, and everything waits at most the join window
//! (or leaves early, counted, past `max_pending`). It reads the records' `req_hash`,
//! `candidate` and `candidate_served`, and builds the `Joined` / `Expired` outputs with the
//! classes Python hands it.
//!
//! `ingest` reads a poll's records of one partition itself (natively, or through the Python
//! readers for a record the native ones decline), which keeps the per-record loop out of the
//! interpreter, and holds what the native readers read as Rust values: a record becomes a Python
//! object only when an output needs one. Given a `PlainConfig`, a joined pair that `plain.rs`
//! can build leaves as a `Built` output (the comparison's fields and wire bytes) instead of a
//! `Joined`, so its records never become Python objects at all.
//! `tests/unit/test_join_native.py` holds it to the Python join on generated operation
//! sequences, and the join-and-build path to the Python one on generated pairs.

use std::collections::HashSet;

use hashlink::LinkedHashMap;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::plain::{build, PlainConfig};
use crate::records::{parse_request, parse_result, NativeRequest, NativeResult};

/// No deadline: `expire` has nothing to scan.
const NEVER: i64 = i64::MAX;

/// A request as the join holds it: read by `ingest` (Rust values), or the object it was given.
/// Not boxed: nearly every entry is native, and a box would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Req {
    Native(NativeRequest),
    Object(Py<PyAny>),
}

/// A shadow result as the join holds it (see `Req`).
#[allow(clippy::large_enum_variant)]
enum Res {
    Native(NativeResult),
    Object(Py<PyAny>),
}

/// Bytes a join entry's strings and vectors hold, for `NativeJoin.native_bytes`.
fn strings_bytes(items: &[String]) -> usize {
    items.iter().map(String::capacity).sum::<usize>() + std::mem::size_of_val(items)
}

impl Req {
    fn heap_bytes(&self) -> usize {
        match self {
            Req::Native(record) => record.heap_bytes(),
            Req::Object(_) => 0, // a Python object: tracemalloc sees it
        }
    }

    fn into_object(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Req::Native(record) => Ok(Py::new(py, record)?.into_any()),
            Req::Object(object) => Ok(object),
        }
    }
}

impl Res {
    fn heap_bytes(&self) -> usize {
        match self {
            Res::Native(record) => record.heap_bytes(),
            Res::Object(_) => 0,
        }
    }

    fn into_object(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Res::Native(record) => Ok(Py::new(py, record)?.into_any()),
            Res::Object(object) => Ok(object),
        }
    }
}

struct WaitingRequest {
    envelope: Req,
    req_hash: Py<PyString>,
    reference: Py<PyAny>,
    deadline: i64,
    /// The candidates still expected, sorted (the order their outcomes leave in on expiry).
    waiting: Vec<String>,
    /// (result, its record reference, its candidate), in join order.
    joined: Vec<(Res, Py<PyAny>, String)>,
}

struct WaitingResult {
    result: Res,
    reference: Py<PyAny>,
    deadline: i64,
}

/// `JoinStats`' counters, in its field order.
#[derive(Default)]
struct Stats {
    requests: u64,
    results: u64,
    joined: u64,
    shadow_timeouts: u64,
    requests_missing: u64,
    duplicate_requests: u64,
    candidate_served: u64,
    duplicate_results: u64,
    ignored_candidates: u64,
    evicted: u64,
}

/// What `ingest` gives back: outputs, every record's offset (in order), the offsets done at once
/// (duplicates and records with nothing to join), and the undecodable records with their errors.
type Ingested<'py> = (Bound<'py, PyList>, Vec<i64>, Vec<i64>, Bound<'py, PyList>);

#[pyclass(module = "shadowlane_native")]
pub struct NativeJoin {
    candidates: Vec<String>,
    window_ms: i64,
    max_pending: usize,
    requests: LinkedHashMap<String, WaitingRequest>,
    results: LinkedHashMap<(String, String), WaitingResult>,
    /// req_hash -> the candidates whose outcome already left, oldest first, capped.
    finished: LinkedHashMap<String, Vec<String>>,
    finished_cap: usize,
    /// A lower bound on every waiting deadline (exact after each scan).
    earliest: i64,
    stats: Stats,
    joined_cls: Py<PyAny>,
    expired_cls: Py<PyAny>,
    built_cls: Py<PyAny>,
    /// Builds the plain pairs as they join (`None`: every pair leaves as `Joined`).
    plain: Option<Py<PlainConfig>>,
    read_request: Py<PyAny>,
    read_result: Py<PyAny>,
    decode_error: Py<PyAny>,
}

fn request_keys<'py>(env: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyString>, bool)> {
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

fn result_keys<'py>(
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

impl NativeJoin {
    fn pending_count(&self) -> usize {
        self.requests.len() + self.results.len()
    }

    fn note_deadline(&mut self, deadline: i64) {
        if deadline < self.earliest {
            self.earliest = deadline;
        }
    }

    fn finish(&mut self, req_hash: &str, candidate: &str) {
        if let Some(done) = self.finished.get_mut(req_hash) {
            done.push(candidate.to_owned()); // keeps its place: oldest first
            return;
        }
        self.finished
            .insert(req_hash.to_owned(), vec![candidate.to_owned()]);
        if self.finished.len() > self.finished_cap {
            self.finished.pop_front();
        }
    }

    fn add_request_to(
        &mut self,
        env: Req,
        reference: &Bound<'_, PyAny>,
        ts_ms: i64,
        out: &Bound<'_, PyList>,
    ) -> PyResult<bool> {
        let py = out.py();
        self.stats.requests += 1;
        let (hash_obj, served) = match &env {
            Req::Native(record) => (record.req_hash(py).clone(), record.served()),
            Req::Object(object) => request_keys(object.bind(py))?,
        };
        let hash = hash_obj.to_str()?;
        if self.requests.contains_key(hash) {
            self.stats.duplicate_requests += 1;
            return Ok(true);
        }
        let mut waiting = self.candidates.clone();
        if let Some(done) = self.finished.get(hash) {
            waiting.retain(|c| !done.contains(c));
        }
        if waiting.is_empty() {
            self.stats.duplicate_requests += 1;
            return Ok(true);
        }
        if served {
            self.stats.candidate_served += 1;
            return Ok(true);
        }
        let deadline = ts_ms.saturating_add(self.window_ms);
        self.note_deadline(deadline);
        let key = hash.to_owned();
        let expected = if self.results.is_empty() {
            Vec::new() // results that came first wait in `results`; most requests find none
        } else {
            waiting.clone()
        };
        self.requests.insert(
            key.clone(),
            WaitingRequest {
                envelope: env,
                req_hash: hash_obj.clone().unbind(),
                reference: reference.clone().unbind(),
                deadline,
                waiting,
                joined: Vec::new(),
            },
        );
        for candidate in expected {
            if let Some(early) = self.results.remove(&(key.clone(), candidate.clone())) {
                self.join(
                    out.py(),
                    &key,
                    early.result,
                    early.reference,
                    &candidate,
                    out,
                )?;
            }
        }
        if self.pending_count() > self.max_pending {
            self.evict(out)?;
        }
        Ok(false)
    }

    fn add_result_to(
        &mut self,
        res: Res,
        reference: &Bound<'_, PyAny>,
        ts_ms: i64,
        out: &Bound<'_, PyList>,
    ) -> PyResult<bool> {
        let py = out.py();
        self.stats.results += 1;
        let (hash_obj, candidate_obj) = match &res {
            Res::Native(record) => (record.req_hash(py).clone(), record.candidate(py).clone()),
            Res::Object(object) => result_keys(object.bind(py))?,
        };
        let candidate = candidate_obj.to_str()?;
        if !self.candidates.iter().any(|c| c == candidate) {
            self.stats.ignored_candidates += 1;
            return Ok(true);
        }
        let hash = hash_obj.to_str()?;
        let key = (hash.to_owned(), candidate.to_owned());
        let left = self
            .finished
            .get(hash)
            .is_some_and(|done| done.iter().any(|c| c == candidate));
        if left || self.results.contains_key(&key) {
            self.stats.duplicate_results += 1;
            return Ok(true);
        }
        if self.requests.contains_key(hash) {
            let (hash, candidate) = (hash.to_owned(), candidate.to_owned());
            self.join(py, &hash, res, reference.clone().unbind(), &candidate, out)?;
            return Ok(false);
        }
        let deadline = ts_ms.saturating_add(self.window_ms);
        self.note_deadline(deadline);
        self.results.insert(
            key,
            WaitingResult {
                result: res,
                reference: reference.clone().unbind(),
                deadline,
            },
        );
        if self.pending_count() > self.max_pending {
            self.evict(out)?;
        }
        Ok(false)
    }

    fn join(
        &mut self,
        py: Python<'_>,
        key: &str,
        result: Res,
        reference: Py<PyAny>,
        candidate: &str,
        out: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        self.stats.joined += 1;
        let Some(entry) = self.requests.get_mut(key) else {
            return Err(PyRuntimeError::new_err(
                "join: the request left before its result",
            ));
        };
        entry.waiting.retain(|c| c != candidate);
        entry.joined.push((result, reference, candidate.to_owned()));
        let complete = entry.waiting.is_empty();
        self.finish(key, candidate);
        if complete {
            if let Some(entry) = self.requests.remove(key) {
                self.complete(py, entry, Vec::new(), out)?;
            }
        }
        Ok(())
    }

    /// All of a request's outputs (it has already left `requests`): per result a `Built` (a plain
    /// pair, with a `PlainConfig`) or a `Joined`, then an `Expired` per missing candidate; the
    /// last of them carries every record to release.
    fn complete(
        &mut self,
        py: Python<'_>,
        entry: WaitingRequest,
        missing: Vec<String>,
        out: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let first = out.len();
        let release = PyList::new(py, [entry.reference.bind(py)])?;
        let built = self.build_plain(py, &entry)?;
        let hash = entry.req_hash.bind(py).clone();
        // the records become Python objects only when an output hands them to Python: a Joined
        // needs its request and every result (its peers), an Expired its request
        let any_joined = built.iter().any(Option::is_none);
        let envelope = if any_joined || !missing.is_empty() {
            Some(entry.envelope.into_object(py)?)
        } else {
            None
        };
        let peers = PyDict::new(py); // shared: every Joined sees all of them
        let mut results = Vec::with_capacity(entry.joined.len());
        for (result, reference, candidate) in entry.joined {
            release.append(reference)?;
            if !any_joined {
                results.push(None);
                continue;
            }
            let object = result.into_object(py)?;
            peers.set_item(&candidate, &object)?;
            results.push(Some(object));
        }
        for (done, result) in built.into_iter().zip(results) {
            let output = match (done, result, &envelope) {
                (Some((fields, wire)), _, _) => {
                    self.built_cls
                        .bind(py)
                        .call1((fields, wire, PyList::empty(py)))?
                }
                (None, Some(result), Some(env)) => {
                    let args = (env, result, PyList::empty(py), &peers);
                    self.joined_cls.bind(py).call1(args)?
                }
                _ => {
                    return Err(PyRuntimeError::new_err(
                        "join: a pair left without its records",
                    ))
                }
            };
            out.append(output)?;
        }
        for candidate in missing {
            self.stats.shadow_timeouts += 1;
            self.finish(hash.to_str()?, &candidate);
            let args = (
                intern!(py, "shadow_timeout"),
                candidate,
                &hash,
                &envelope,
                py.None(),
                PyList::empty(py),
            );
            out.append(self.expired_cls.bind(py).call1(args)?)?;
        }
        if out.len() > first {
            out.get_item(out.len() - 1)?
                .setattr(intern!(py, "release"), release)?;
        }
        Ok(())
    }

    /// Per joined result, its comparison when the pair is plain and both records are native
    /// (`workers/compare/plain.py`'s rule: not a candidate whose request has a baseline peer).
    fn build_plain<'py>(
        &self,
        py: Python<'py>,
        entry: &WaitingRequest,
    ) -> PyResult<Vec<Option<crate::plain::Built<'py>>>> {
        let mut built = Vec::with_capacity(entry.joined.len());
        let (Some(config), Req::Native(request)) = (&self.plain, &entry.envelope) else {
            built.resize_with(entry.joined.len(), || None);
            return Ok(built);
        };
        let cfg = config.get();
        let baseline = cfg.baseline();
        let has_baseline = baseline.is_some_and(|b| entry.joined.iter().any(|(_, _, c)| c == b));
        for (result, _, candidate) in &entry.joined {
            let floor_needed = has_baseline && baseline.is_some_and(|b| b != candidate);
            built.push(match result {
                Res::Native(record) if !floor_needed => build(py, request, record, cfg)?,
                _ => None,
            });
        }
        Ok(built)
    }

    fn expire_request(
        &mut self,
        py: Python<'_>,
        mut entry: WaitingRequest,
        out: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let missing = std::mem::take(&mut entry.waiting); // sorted already
        self.complete(py, entry, missing, out)
    }

    fn expire_result(
        &mut self,
        py: Python<'_>,
        key: (String, String),
        out: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let Some(waiting) = self.results.remove(&key) else {
            return Ok(());
        };
        self.stats.requests_missing += 1;
        self.finish(&key.0, &key.1);
        let (req_hash, candidate) = key;
        let args = (
            intern!(py, "request_missing"),
            candidate,
            req_hash,
            py.None(),
            waiting.result.into_object(py)?,
            PyList::new(py, [waiting.reference])?,
        );
        out.append(self.expired_cls.bind(py).call1(args)?)?;
        Ok(())
    }

    /// Bound memory: past `max_pending` the oldest entries expire early (counted).
    fn evict(&mut self, out: &Bound<'_, PyList>) -> PyResult<()> {
        let py = out.py();
        while self.pending_count() > self.max_pending {
            self.stats.evicted += 1;
            if let Some((_, entry)) = self.requests.pop_front() {
                self.expire_request(py, entry, out)?;
            } else if let Some(key) = self.results.front().map(|(k, _)| k.clone()) {
                self.expire_result(py, key, out)?;
            }
        }
        Ok(())
    }

    /// A record's value read natively, or by the Python reader (`Err`: a bad record's error).
    fn read<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
        is_request: bool,
    ) -> PyResult<Result<Read, PyErr>> {
        if let Ok(bytes) = value.cast::<PyBytes>() {
            let data = bytes.as_bytes();
            if is_request {
                if let Some(record) = parse_request(py, data) {
                    return Ok(Ok(Read::Request(Req::Native(record))));
                }
            } else if let Some(record) = parse_result(py, data)? {
                return Ok(Ok(Read::Result(Res::Native(record))));
            }
        }
        let reader = if is_request {
            &self.read_request
        } else {
            &self.read_result
        };
        match reader.bind(py).call1((value,)) {
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
                    + strings_bytes(&entry.waiting)
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
                    + strings_bytes(done)
            })
            .sum();
        let tables =
            (self.requests.capacity() + self.results.capacity() + self.finished.capacity()) * slot;
        requests + results + finished + tables
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
            let read = match self.read(py, &value, is_request)? {
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
