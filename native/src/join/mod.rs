//! The comparator's join in Rust: `shadowlane/compare/join.py`'s `JoinBuffer`, output for output.
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
//! `tests/unit/compare/native/test_join.py` holds it to the Python join on generated operation
//! sequences, and the join-and-build path to the Python one on generated pairs.

use hashlink::LinkedHashMap;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::plain::{build, PlainConfig};
use entries::{request_keys, result_keys, Req, Res, WaitingRequest, WaitingResult};

/// No deadline: `expire` has nothing to scan.
const NEVER: i64 = i64::MAX;

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
    late_results: u64,
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
    /// The (req_hash, candidate) pairs that left as shadow_timeout, oldest first, capped like
    /// `finished`: their result arriving after that is late, not a duplicate.
    timed_out: LinkedHashMap<(String, String), ()>,
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
        // the first copy is late; a redelivery of it is a duplicate
        if left && self.timed_out.remove(&key).is_some() {
            self.stats.late_results += 1;
            return Ok(true);
        }
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
            self.timed_out
                .insert((hash.to_str()?.to_owned(), candidate.clone()), ());
            if self.timed_out.len() > self.finished_cap {
                self.timed_out.pop_front();
            }
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
    /// (`shadowlane/compare/native/builder.py`'s rule: not a candidate whose request has a baseline peer).
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
}

mod api;
mod entries;
