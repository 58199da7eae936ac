//! The comparison of a plain joined pair, built natively: `ComparisonBuilder._joined`'s fast path.
//!
//! A pair is *plain* when nothing in it needs the Python builder's machinery: no gold label, no λ
//! replays, no tool calls in the replay (prod's recorded ones for this turn make it a
//! `missing_step` at step 1 of the agent replay), no citation target, no retrieved passages on
//! either side, no priced model, no baseline peer (the caller checks that one), answers the
//! sanitizer leaves as they are, and (with an embedder) answers equal after normalisation (the
//! benchmark's pairs all are). For such a pair every metric is either a constant of the contract,
//! a copy of an input or a pin check (`compare.pins.pin_check`, mirrored by `pin_check`), so the
//! record's fields are written here in the contract's order, straight from the records' Rust
//! fields (`records.rs`).
//!
//! Every check is conservative: where this module cannot be sure that the Python builder would
//! give the same value (a text with one of the sanitizer's hints, a run of digit-like characters
//! long enough to mask, non-ASCII text to normalise), it answers `None` and the Python builder
//! runs. The sanitizer's hints are not written here: `shadowlane.sanitize` hands them over
//! (`MASK_GUARD`) when the config is made.
//! `tests/unit/compare/native/test_builder.py` holds the two equal on generated pairs.

use blake2::digest::{Update, VariableOutput};
use blake2::Blake2bVar;
use memchr::{memchr, memchr2_iter, memmem};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::encode::{Skeleton, Val};
use crate::records::{NativeRequest, NativeResult};

/// The fields `build_plain` sets per pair, in the order of its values; every other field of the
/// record keeps the template's constant.
const HOLES: [&str; 35] = [
    "comparison_id",
    "req_hash",
    "req_id",
    "candidate",
    "traffic_arm",
    "ts_ms",
    "endpoint",
    "tenant",
    "buckets",
    "delta_s",
    "exact_match",
    "prod_latency_ms",
    "shadow_latency_ms",
    "latency_delta_ms",
    "prod_status",
    "shadow_status",
    "status_pair",
    "shadow_error_class",
    "tool_agreement",
    "prod_pins",
    "candidate_pins",
    "traceparent",
    "prod_steps",
    "shadow_steps",
    "first_divergent_step",
    "divergence_kind",
    "divergence_tool",
    "divergence_prod",
    "divergence_shadow",
    "candidate_served_pins",
    "pin_mismatch",
    "pin_mismatch_keys",
    "prod_served_pins",
    "prod_pin_mismatch",
    "prod_pin_mismatch_keys",
];

/// The field naming the builder's embedder: a constant of every record one config builds, which
/// `PlainConfig::new` writes into its copy of the template.
const EMBEDDER_FIELD: &str = "delta_s_embedder";

/// What the builder's settings say about plain pairs; built once per `ComparisonBuilder`.
#[pyclass(frozen, module = "shadowlane_native")]
pub struct PlainConfig {
    baseline: Option<String>,
    /// Whether the builder has an embedder (its name is the template's `EMBEDDER_FIELD`).
    embedder: bool,
    /// The citation pattern's first literal: a text without it cites nothing. `None`: every
    /// non-empty prod answer would need the regex, so no pair with one is plain.
    citation_guard: Option<char>,
    /// Models with a price: a pair that names one has a cost, which Python computes.
    priced: Vec<String>,
    /// When masking certainly leaves a text as it is: the sanitizer's own hints.
    guard: MaskGuard,
    /// Every field of a plain pair's record in the contract's order, holding its constant value
    /// (or `None` for those each pair sets): copied per pair, which keeps the order. Python
    /// builds it from the contract (`shadowlane/compare/native/builder.py`); the config sets the
    /// embedder's name in its own copy.
    template: Py<PyDict>,
    /// `HOLES`' names as Python strings (the dict's keys).
    names: Vec<Py<PyString>>,
    /// The record's JSON with holes for `HOLES` (`None`: a constant Python must write).
    skeleton: Option<Skeleton>,
}

#[pymethods]
impl PlainConfig {
    #[new]
    #[pyo3(signature = (baseline, embedder, citation_guard, priced, template, mask_guard))]
    fn new(
        py: Python<'_>,
        baseline: Option<String>,
        embedder: Option<String>,
        citation_guard: Option<char>,
        priced: Vec<String>,
        template: Bound<'_, PyDict>,
        mask_guard: GuardSpec,
    ) -> PyResult<Self> {
        let guard = MaskGuard::new(mask_guard)?;
        for name in HOLES.iter().chain([&EMBEDDER_FIELD]) {
            if !template.contains(name)? {
                // a new key would land at the end of the record, out of the contract's order
                return Err(PyValueError::new_err(format!(
                    "template has no field {name:?}"
                )));
            }
        }
        // the caller's dict stays as it is: the name goes into this config's copy
        let fields = template.copy()?;
        fields.set_item(EMBEDDER_FIELD, embedder.as_deref())?;
        Ok(Self {
            baseline,
            embedder: embedder.is_some(),
            guard,
            citation_guard,
            priced,
            names: HOLES
                .iter()
                .map(|n| PyString::intern(py, n).unbind())
                .collect(),
            skeleton: Skeleton::new(&fields, &HOLES),
            template: fields.unbind(),
        })
    }
}

impl PlainConfig {
    pub fn baseline(&self) -> Option<&str> {
        self.baseline.as_deref()
    }
}

/// Python's `str.isspace()` for an ASCII byte (`\s` and `str.split()` use the same set).
fn ascii_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f | b' ')
}

/// `shadowlane.sanitize.MASK_GUARD`: (fewest characters a mask can change, hints of which a text
/// must hold one for a rule to run, the same ignoring ASCII case (no `k` or `i`), the same for
/// rules whose patterns only fold ASCII case, and the digit runs `(digits, joiners)` the
/// number-shaped rules need).
type GuardSpec = (
    usize,
    Vec<String>,
    Vec<String>,
    Vec<String>,
    Vec<(usize, String)>,
);

/// `Sanitizer._mask`'s guards, from the sanitizer's own hints (never a copy of them).
struct MaskGuard {
    min_chars: usize,
    /// One-byte hints (`@`), each found with one vectorised pass.
    bytes: Vec<u8>,
    /// Longer hints, each searched for with a prepared finder.
    finders: Vec<memmem::Finder<'static>>,
    /// ASCII hints matched ignoring ASCII case, lowercase.
    nocase: Vec<Vec<u8>>,
    /// `(digits, joiners)`: a rule needs that many digits separated only by whitespace and joiners.
    digit_runs: Vec<(usize, Vec<u8>)>,
}

impl MaskGuard {
    fn new((min_chars, hints, nocase, ascii_nocase, digit_runs): GuardSpec) -> PyResult<Self> {
        let ascii = |s: &str, what: &str| {
            if s.is_empty() || !s.is_ascii() {
                Err(PyValueError::new_err(format!(
                    "{what} {s:?} must be non-empty ASCII"
                )))
            } else {
                Ok(())
            }
        };
        let (mut bytes, mut finders) = (Vec::new(), Vec::new());
        for hint in &hints {
            // a non-ASCII hint would need Python's character semantics: refuse it
            ascii(hint, "mask hint")?;
            match hint.as_bytes() {
                [b] => bytes.push(*b),
                many => finders.push(memmem::Finder::new(many).into_owned()),
            }
        }
        let mut folded = Vec::new();
        for (hint, ascii_only) in nocase
            .iter()
            .map(|h| (h, false))
            .chain(ascii_nocase.iter().map(|h| (h, true)))
        {
            ascii(hint, "case-insensitive mask hint")?;
            if *hint != hint.to_ascii_lowercase() {
                return Err(PyValueError::new_err(format!(
                    "case-insensitive mask hint {hint:?} must be lowercase"
                )));
            }
            if !ascii_only
                && hint
                    .bytes()
                    .any(|b| matches!(b.to_ascii_lowercase(), b'k' | b'i'))
            {
                // `str.lower()` maps the Kelvin sign to `k` and `İ` to `i̇`: a byte search would
                // miss them (rules whose patterns fold only ASCII case list such hints apart)
                return Err(PyValueError::new_err(format!(
                    "case-insensitive mask hint {hint:?} holds k or i, which non-ASCII text lowercases to"
                )));
            }
            folded.push(hint.to_ascii_lowercase().into_bytes());
        }
        let mut runs = Vec::new();
        for (digits, joiners) in digit_runs {
            if !joiners.is_empty() {
                ascii(&joiners, "number joiners")?;
            }
            if digits == 0 {
                return Err(PyValueError::new_err(
                    "a masked digit run must be at least 1",
                ));
            }
            runs.push((digits, joiners.into_bytes()));
        }
        Ok(Self {
            min_chars,
            bytes,
            finders,
            nocase: folded,
            digit_runs: runs,
        })
    }

    /// True when `shadowlane.sanitize.Sanitizer._mask` certainly returns `text` unchanged: each
    /// of its rules is guarded by a check that this mirrors, and a text for which any guard
    /// might fire is not certain (the Python path then masks it).
    fn is_identity(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        if bytes.len() < self.min_chars {
            return true; // fewer bytes than that: fewer characters
        }
        // UTF-8 continuation bytes are never ASCII, so a byte search of an ASCII hint finds
        // exactly its character matches
        if self.bytes.iter().any(|&b| memchr(b, bytes).is_some())
            || self.finders.iter().any(|hint| hint.find(bytes).is_some())
            || self.nocase.iter().any(|hint| has_nocase(bytes, hint))
        {
            return false;
        }
        !self
            .digit_runs
            .iter()
            .any(|(run, joiners)| maybe_digit_run(text, *run, joiners))
    }
}

/// Whether `\d(?:[\s<joiners>]*\d){run - 1}` (Unicode `\d` and `\s`) might match: counts
/// digit-like characters in runs that only joiners separate. Every non-ASCII numeric character
/// counts as a digit and every other non-ASCII character that is not alphabetic as a joiner,
/// which can only over-count.
fn maybe_digit_run(text: &str, run: usize, joiners: &[u8]) -> bool {
    if text.is_ascii() && text.bytes().filter(u8::is_ascii_digit).count() < run {
        return false; // the common case, decided by two vectorised passes
    }
    let mut digits = 0;
    for ch in text.chars() {
        if ch.is_ascii_digit() || (!ch.is_ascii() && ch.is_numeric()) {
            digits += 1;
            if digits >= run {
                return true;
            }
        } else if ch.is_ascii() {
            let b = ch as u8;
            if !(ascii_space(b) || joiners.contains(&b)) {
                digits = 0;
            }
        } else if ch.is_alphabetic() {
            digits = 0;
        }
    }
    false
}

/// `hint in text.lower()` for a lowercase ASCII hint without `k` or `i`: the only non-ASCII
/// characters that lowercase to ASCII are the Kelvin sign (to `k`) and `İ` (to `i` and a combining
/// dot), so for such a hint an ASCII case-insensitive byte search finds exactly the same.
fn has_nocase(bytes: &[u8], hint: &[u8]) -> bool {
    let (lower, upper) = (hint[0], hint[0].to_ascii_uppercase());
    memchr2_iter(lower, upper, bytes).any(|at| {
        bytes
            .get(at..at + hint.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(hint))
    })
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

/// `shadowlane.hashing.pair_id`: BLAKE2b-96 of `"{req_hash}\0{candidate}"`, in hex.
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

/// `compare.agent_steps.MAX_TEXT`: characters kept of what each side did at the divergent step
/// (the differential test holds the two equal).
const MAX_TEXT: usize = 200;

/// `agent_steps.cut`: `text` cut to `MAX_TEXT` characters, the last an ellipsis when longer.
fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_TEXT {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_TEXT - 1).collect();
    out.push('…');
    out
}

/// The first divergent step of a replay without tool calls (`agent_steps.first_divergence`):
/// when prod called tools, the candidate answered where prod called its first one.
struct MissingStep<'a> {
    tool: &'a str,
    prod: String,
    shadow: Option<String>,
}

/// The `missing_step` at step 1 of a finished replay without tool calls against prod's tool
/// steps, or `None` (prod called none, or the replay did not finish: it is not judged). The
/// shadow answer of a plain pair is one the sanitizer leaves as it is.
fn missing_step<'a>(
    prod: &'a [(String, String)],
    finished: bool,
    answer: Option<&str>,
) -> Option<MissingStep<'a>> {
    let (tool, args) = prod.first().filter(|_| finished)?;
    Some(MissingStep {
        tool,
        prod: cut(&format!("{tool}({args})")),
        shadow: answer.map(cut),
    })
}

/// `compare.pins.ABSENT`: the served value of a configured source that said nothing.
const ABSENT: &str = "";

/// `compare.pins.pin_check`'s differing keys, sorted (code point order, as Python sorts): the
/// expected keys a served source covers whose served value is absent or differs; `None` when no
/// expected key has a served source (the check's `(None, None)`; its mismatch is `!keys.is_empty()`).
fn pin_check<'a>(
    expected: &'a [(String, String)],
    served: &[(String, String)],
) -> Option<Vec<&'a str>> {
    let mut checked = false;
    let mut differing = Vec::new();
    for (key, want) in expected {
        // both maps hold each key once (the readers decline a repeated one)
        if let Some((_, got)) = served.iter().find(|(k, _)| k == key) {
            checked = true;
            if got == ABSENT || got != want {
                differing.push(key.as_str());
            }
        }
    }
    if !checked {
        return None;
    }
    differing.sort_unstable(); // UTF-8 byte order is code point order
    Some(differing)
}

/// A side's served pins as the comparison holds them (`served_pins or None`).
fn served<'a, 'py>(pairs: &'a [(String, String)]) -> Val<'a, 'py> {
    if pairs.is_empty() {
        Val::Null
    } else {
        Val::Map(pairs)
    }
}

/// A plain pair's comparison: its fields and, unless Python must write them, its wire bytes.
pub type Built<'py> = (Bound<'py, PyDict>, Option<Bound<'py, PyBytes>>);

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
    build(py, env.get(), res.get(), config.get())
}

/// `build_plain` on the records themselves (the join builds its pairs with it).
pub fn build<'py>(
    py: Python<'py>,
    request: &NativeRequest,
    result: &NativeResult,
    cfg: &PlainConfig,
) -> PyResult<Option<Built<'py>>> {
    let (e, r) = (&request.p, &result.r);
    if e.gold.is_some()
        || !r.stability.is_empty()
        || !r.tool_calls.is_empty()
        || !e.cited_ids.is_empty()
        || !e.retrieved.is_empty()
        || !r.retrieved.is_empty()
    {
        // (retrieved passages: the Python builder scores ΔS(question, retrieved))
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
    if shadow_text.is_some_and(|t| !cfg.guard.is_identity(t)) {
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

    let arm = match &cfg.baseline {
        Some(b) if r.candidate == *b => "baseline",
        _ => "shadow",
    };
    let status = e.status.to_string();
    let shadow_status = if r.status == "ok" {
        "ok".to_owned()
    } else {
        let class = r.error_class.as_deref().filter(|c| !c.is_empty());
        format!("error:{}", class.unwrap_or("unknown"))
    };
    let status_pair = format!("{status}/{shadow_status}");
    // this turn's tool steps: the recorded calls after the conversation history's (the replay
    // resends the history and makes only this turn's calls; tool agreement reads these too)
    let turn = &e.tool_keys[e.history_tool_calls.min(e.tool_keys.len())..];
    let steps = (!turn.is_empty()).then(|| i64::try_from(turn.len()).unwrap_or(i64::MAX));
    let missing = missing_step(turn, r.status == "ok", shadow_text);
    let pins = pin_check(&r.pins.0, &r.served_pins.0);
    let prod_pins = pin_check(&e.pins, &e.served_pins);

    let id = pair_id(&e.req_hash, &r.candidate);
    let opt_float = |v: Option<f64>| v.map_or(Val::Null, Val::Float);
    let values: [Val<'_, 'py>; HOLES.len()] = [
        Val::Str(&id),
        Val::Shared(&e.req_hash, request.req_hash(py)),
        Val::Str(&e.req_id),
        Val::Shared(&r.candidate, result.candidate(py)),
        Val::Str(arm),
        Val::Int(e.ts_ms),
        Val::Str(&e.endpoint),
        Val::Str(&e.tenant),
        Val::Map(&e.buckets),
        opt_float(delta_s),
        exact.map_or(Val::Null, Val::Bool),
        Val::Float(e.latency_ms),
        Val::Float(r.latency_ms),
        Val::Float(r.latency_ms - e.latency_ms),
        Val::Str(&status),
        Val::Str(&shadow_status),
        Val::Str(&status_pair),
        r.error_class.as_deref().map_or(Val::Null, Val::Str),
        opt_float((!turn.is_empty()).then_some(0.0)), // agreement over this turn's calls
        Val::Map(&e.pins),
        Val::Map(&r.pins.0),
        r.traceparent.as_deref().map_or(Val::Null, Val::Str),
        steps.map_or(Val::Null, Val::Int),
        steps.map_or(Val::Null, |_| Val::Int(0)),
        missing.as_ref().map_or(Val::Null, |_| Val::Int(1)),
        missing
            .as_ref()
            .map_or(Val::Null, |_| Val::Str("missing_step")),
        missing.as_ref().map_or(Val::Null, |m| Val::Str(m.tool)),
        missing.as_ref().map_or(Val::Null, |m| Val::Str(&m.prod)),
        missing
            .as_ref()
            .and_then(|m| m.shadow.as_deref())
            .map_or(Val::Null, Val::Str),
        served(&r.served_pins.0),
        pins.as_ref()
            .map_or(Val::Null, |k| Val::Bool(!k.is_empty())),
        pins.as_deref().map_or(Val::Null, Val::List),
        served(&e.served_pins),
        prod_pins
            .as_ref()
            .map_or(Val::Null, |k| Val::Bool(!k.is_empty())),
        prod_pins.as_deref().map_or(Val::Null, Val::List),
    ];
    let d = cfg.template.bind(py).copy()?;
    for (name, value) in cfg.names.iter().zip(&values) {
        d.set_item(name.bind(py), value.to_py(py)?)?;
    }
    let wire = cfg.skeleton.as_ref().and_then(|s| s.fill(&values));
    Ok(Some((d, wire.map(|bytes| PyBytes::new(py, &bytes)))))
}
