//! The comparison of a plain joined pair, built natively: `ComparisonBuilder._joined`'s fast path.
//!
//! A pair is *plain* when nothing in it needs the Python builder's machinery: no gold label, no λ
//! replays, no tool calls in the replay, no citation target, no priced model, no baseline peer
//! (the caller checks that one), answers the sanitizer leaves as they are, and (with an embedder)
//! answers equal after normalisation (the benchmark's pairs all are). For such a pair every
//! metric is either a constant of the contract or a copy of an input, so the record's fields are
//! written here in the contract's order, straight from the records' Rust fields (`records.rs`).
//!
//! Every check is conservative: where this module cannot be sure that the Python builder would
//! give the same value (a text with a secret hint, an e-mail sign, a run of nine digit-like
//! characters, non-ASCII text to normalise), it answers `None` and the Python builder runs.
//! `tests/unit/test_build_native.py` holds the two equal on generated pairs.

use std::sync::LazyLock;

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use memchr::{memchr2, memchr2_iter, memmem};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::encode::encode;
use crate::records::{str_map, NativeRequest, NativeResult};

/// What the builder's settings say about plain pairs; built once per `ComparisonBuilder`.
#[pyclass(frozen, module = "shadowlane_native")]
pub struct PlainConfig {
    baseline: Option<String>,
    embedder: bool,
    /// The citation pattern's first literal: a text without it cites nothing. `None`: every
    /// non-empty prod answer would need the regex, so no pair with one is plain.
    citation_guard: Option<char>,
    /// Models with a price: a pair that names one has a cost, which Python computes.
    priced: Vec<String>,
    /// Every field of a plain pair's record in the contract's order, holding its constant value
    /// (or `None` for those each pair sets): copied per pair, which keeps the order. Python
    /// builds it from the contract (`workers/compare/plain.py`).
    template: Py<PyDict>,
}

#[pymethods]
impl PlainConfig {
    #[new]
    #[pyo3(signature = (baseline, embedder, citation_guard, priced, template))]
    fn new(
        baseline: Option<String>,
        embedder: bool,
        citation_guard: Option<char>,
        priced: Vec<String>,
        template: Py<PyDict>,
    ) -> Self {
        Self {
            baseline,
            embedder,
            citation_guard,
            priced,
            template,
        }
    }
}

/// Python's `str.isspace()` for an ASCII byte (`\s` and `str.split()` use the same set).
fn ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ')
}

/// The key pass's hints besides `_` and `bearer`, each searched for with a prepared finder.
static HINTS: LazyLock<[memmem::Finder<'static>; 5]> = LazyLock::new(|| {
    [b"sk-".as_slice(), b"AKIA", b"AIza", b"xox", b"eyJ"].map(memmem::Finder::new)
});

/// True when `workers.sanitize.Sanitizer._mask` certainly returns `text` unchanged: each of its
/// passes is guarded by a check that this mirrors, and a text for which any guard might fire is
/// not certain (the Python path then masks it).
fn mask_is_identity(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() < 6 {
        return true; // fewer than 6 bytes: fewer than 6 characters
    }
    // the key pass's hints and the e-mail pass's `@` (UTF-8 continuation bytes are never ASCII,
    // so a byte search finds exactly the character matches)
    if memchr2(b'_', b'@', bytes).is_some()
        || HINTS.iter().any(|hint| hint.find(bytes).is_some())
        || has_bearer(bytes)
    {
        return false;
    }
    !maybe_nine_digits(text)
}

/// `"bearer" in text.lower()`: no non-ASCII character lowercases to any of b, e, a, r, so an
/// ASCII case-insensitive search finds exactly the same.
fn has_bearer(bytes: &[u8]) -> bool {
    memchr2_iter(b'b', b'B', bytes).any(|at| {
        bytes
            .get(at..at + 6)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
    })
}

/// Whether `\d(?:[\s().\-]*\d){8}` (Unicode `\d` and `\s`) might match: counts digit-like
/// characters in runs that only separators join. Every non-ASCII numeric character counts as a
/// digit and every other non-ASCII character that is not alphabetic as a separator, which can
/// only over-count.
fn maybe_nine_digits(text: &str) -> bool {
    if text.is_ascii() && text.bytes().filter(u8::is_ascii_digit).count() < 9 {
        return false; // the common case, decided by two vectorised passes
    }
    let mut digits = 0;
    for ch in text.chars() {
        if ch.is_ascii_digit() || (!ch.is_ascii() && ch.is_numeric()) {
            digits += 1;
            if digits >= 9 {
                return true;
            }
        } else if ch.is_ascii() {
            let b = ch as u8;
            if !(ascii_space(b) || matches!(b, b'(' | b')' | b'.' | b'-')) {
                digits = 0;
            }
        } else if ch.is_alphabetic() {
            digits = 0;
        }
    }
    false
}

/// `quality.normalise` (`" ".join(text.split()).casefold()`) for ASCII text; `None` otherwise.
fn normalise_ascii(text: &str) -> Option<String> {
    if !text.is_ascii() {
        return None;
    }
    let words: Vec<&str> = text
        .as_bytes()
        .split(|b| ascii_space(*b))
        .filter(|w| !w.is_empty())
        .map(|w| std::str::from_utf8(w).unwrap_or_default())
        .collect();
    Some(words.join(" ").to_ascii_lowercase())
}

/// `build._same_text` for two present texts: `Some(equal)`, or `None` when only Python can say.
fn same_text(a: &str, b: &str) -> Option<bool> {
    if a == b {
        return Some(true);
    }
    Some(normalise_ascii(a)? == normalise_ascii(b)?)
}

/// `workers.hashing.pair_id`: BLAKE2b-96 of `"{req_hash}\0{candidate}"`, in hex.
fn pair_id(req_hash: &str, candidate: &str) -> String {
    const SIZE: usize = 12;
    let mut hasher = Blake2bVar::new(SIZE).expect("12 bytes is a valid BLAKE2b output size");
    hasher.update(req_hash.as_bytes());
    hasher.update(b"\0");
    hasher.update(candidate.as_bytes());
    let mut digest = [0u8; SIZE];
    hasher
        .finalize_variable(&mut digest)
        .expect("the buffer has the output size");
    let mut hex = String::with_capacity(2 * SIZE);
    for byte in digest {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}

/// A plain pair's comparison: its fields and, unless Python must write them, its wire bytes.
type Built<'py> = (Bound<'py, PyDict>, Option<Bound<'py, PyBytes>>);

/// The comparison of a plain pair: its fields (a dict in the contract's order) and its wire bytes
/// (`None` when `encode.rs` leaves them to Python); or `None` for a pair that is not plain.
/// The caller checks the baseline peer (the join's `peers`, which this does not see).
#[pyfunction]
pub fn build_plain<'py>(
    py: Python<'py>,
    env: &Bound<'py, NativeRequest>,
    res: &Bound<'py, NativeResult>,
    config: &Bound<'py, PlainConfig>,
) -> PyResult<Option<Built<'py>>> {
    let cfg = config.get();
    let (request, result) = (env.get(), res.get());
    let (e, r) = (&request.p, &result.r);
    if e.gold.is_some()
        || !r.stability.is_empty()
        || !r.tool_calls.is_empty()
        || !e.cited_ids.is_empty()
    {
        return Ok(None);
    }
    let prod_text = e.answer.as_deref();
    if let Some(text) = prod_text.filter(|t| !t.is_empty()) {
        match cfg.citation_guard {
            None => return Ok(None),
            Some(guard) if text.contains(guard) => return Ok(None),
            Some(_) => {}
        }
    }
    let shadow_text = r.answer.as_deref();
    if shadow_text.is_some_and(|t| !mask_is_identity(t)) {
        return Ok(None);
    }
    let exact = match (prod_text, shadow_text) {
        (Some(a), Some(b)) => match same_text(a, b) {
            Some(equal) => Some(equal),
            None => return Ok(None),
        },
        _ => None,
    };
    let delta_s = match exact {
        _ if !cfg.embedder => None,
        None => None,
        Some(true) => Some(0.0),
        Some(false) => return Ok(None), // the embedder scores it
    };
    let priced = |model: &Option<String>| {
        model
            .as_deref()
            .is_some_and(|m| cfg.priced.iter().any(|p| p == m))
    };
    // ProdSide's prompt and completion tokens are both set exactly when the envelope has a usage
    if (priced(&e.model) && e.usage.is_some()) || (r.usage.is_some() && priced(&r.model)) {
        return Ok(None);
    }

    let candidate = result.candidate(py);
    let arm = match &cfg.baseline {
        Some(b) if r.candidate == *b => intern!(py, "baseline"),
        _ => intern!(py, "shadow"),
    };
    let status = e.status.to_string();
    let shadow_status = if r.status == "ok" {
        intern!(py, "ok").clone()
    } else {
        let class = r.error_class.as_deref().filter(|c| !c.is_empty());
        PyString::new(py, &format!("error:{}", class.unwrap_or("unknown")))
    };
    let status_pair = format!("{}/{}", status, shadow_status.to_str()?);
    let agreement = if e.tool_keys.is_empty() {
        None
    } else {
        Some(0.0)
    };

    let d = cfg.template.bind(py).copy()?;
    d.set_item(
        intern!(py, "comparison_id"),
        pair_id(&e.req_hash, &r.candidate),
    )?;
    d.set_item(intern!(py, "req_hash"), request.req_hash(py))?;
    d.set_item(intern!(py, "req_id"), e.req_id.as_str())?;
    d.set_item(intern!(py, "candidate"), candidate)?;
    d.set_item(intern!(py, "traffic_arm"), arm)?;
    d.set_item(intern!(py, "ts_ms"), e.ts_ms)?;
    d.set_item(intern!(py, "endpoint"), e.endpoint.as_str())?;
    d.set_item(intern!(py, "tenant"), e.tenant.as_str())?;
    d.set_item(intern!(py, "buckets"), str_map(py, &e.buckets)?)?;
    d.set_item(intern!(py, "delta_s"), delta_s)?;
    d.set_item(intern!(py, "exact_match"), exact)?;
    d.set_item(intern!(py, "prod_latency_ms"), e.latency_ms)?;
    d.set_item(intern!(py, "shadow_latency_ms"), r.latency_ms)?;
    d.set_item(intern!(py, "latency_delta_ms"), r.latency_ms - e.latency_ms)?;
    d.set_item(intern!(py, "prod_status"), status)?;
    d.set_item(intern!(py, "shadow_status"), shadow_status)?;
    d.set_item(intern!(py, "status_pair"), status_pair)?;
    d.set_item(intern!(py, "shadow_error_class"), r.error_class.as_deref())?;
    d.set_item(intern!(py, "tool_agreement"), agreement)?;
    d.set_item(intern!(py, "prod_pins"), str_map(py, &e.pins)?)?;
    d.set_item(intern!(py, "candidate_pins"), str_map(py, &r.pins.0)?)?;
    let wire = encode(&d).map(|bytes| PyBytes::new(py, &bytes));
    Ok(Some((d, wire)))
}
