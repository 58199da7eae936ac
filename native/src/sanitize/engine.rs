//! How the sanitizer's rules run on one ASCII text, natively: the same steps as
//! `shadowlane.sanitize.matching` (which rules a text needs, their cheap pre-checks, the search,
//! the boundary, the character before a match, the named check, the label in place of the
//! masked part). Every rule is data read from `shadowlane.sanitize.rules` when the engine is
//! made; a named check is the Python function itself, called on a match.
//!
//! Only texts that are ASCII and hold no information separator (`\x1c`..`\x1f`, which Python's
//! `\s` matches and Rust's does not) are taken: on them the two regex engines agree character
//! for character. Any other text is Python's.

use pyo3::prelude::*;
use regex::bytes::Regex;

pub struct NativeRule {
    label: String,
    regex: Regex,
    /// The pattern matched only where it starts (rules with anchors).
    anchored: Option<Regex>,
    /// Capture group of the masked part (the group `s`, else the whole match).
    group: usize,
    check: Option<Py<PyAny>>,
    hints_any_case: Vec<String>,
    digits: (usize, Joiners),
    shapes: Vec<Vec<u8>>,
    not_after: Option<Regex>,
    boundary: bool,
    anchors: Vec<String>,
    window: usize,
    lead: Option<Regex>,
}

/// A Python pattern as Rust's regex reads it on ASCII text: without Unicode (`(?-u)`: `\d`,
/// `\s`, `\w` and case folding are ASCII's, which on ASCII text with no `\x1c`..`\x1f` is what
/// Python's are), so its automaton stays small; `(?ai)` is then plain `(?i)`.
fn rust_pattern(pattern: &str) -> String {
    format!("(?-u){}", pattern.replace("(?ai)", "(?i)"))
}

fn compile(pattern: &str, anchored: bool) -> PyResult<Regex> {
    let text = rust_pattern(pattern);
    let text = if anchored {
        format!("^(?:{text})")
    } else {
        text
    };
    Regex::new(&text).map_err(|err| {
        pyo3::exceptions::PyValueError::new_err(format!("pattern {pattern:?}: {err}"))
    })
}

impl NativeRule {
    /// One rule from a `shadowlane.sanitize.matching.Compiled`.
    pub fn from_compiled(compiled: &Bound<'_, PyAny>) -> PyResult<Self> {
        let rule = compiled.getattr("rule")?;
        let pattern: String = rule.getattr("pattern")?.extract()?;
        let regex = compile(&pattern, false)?;
        let group = regex
            .capture_names()
            .position(|name| name == Some("s"))
            .unwrap_or(0);
        let anchors: Vec<String> = rule.getattr("anchors")?.extract()?;
        let lead: String = rule.getattr("lead")?.extract()?;
        let not_after: String = rule.getattr("not_after")?.extract()?;
        let check = compiled.getattr("check")?;
        let digits: (usize, String) = rule.getattr("digits")?.extract()?;
        Ok(Self {
            label: rule.getattr("label")?.extract()?,
            anchored: if anchors.is_empty() {
                None
            } else {
                Some(compile(&pattern, true)?)
            },
            regex,
            group,
            check: if check.is_none() {
                None
            } else {
                Some(check.unbind())
            },
            hints_any_case: rule.getattr("hints_any_case")?.extract()?,
            digits: (digits.0, Joiners::new(digits.1.as_bytes())),
            shapes: rule.getattr("shapes")?.extract()?,
            not_after: if not_after.is_empty() {
                None
            } else {
                Some(compile(&not_after, true)?)
            },
            boundary: rule.getattr("boundary")?.extract()?,
            anchors,
            window: rule.getattr("window")?.extract()?,
            lead: if lead.is_empty() {
                None
            } else {
                Some(compile(&lead, false)?)
            },
        })
    }
}

/// Whether the native engine may take `text` (see the module's docs).
pub fn takes(text: &str) -> bool {
    text.is_ascii() && !text.bytes().any(|b| b & 0xfc == 0x1c)
}

/// Bytes a digit run may hold between its digits: ASCII whitespace (as Python's `\s` on ASCII
/// text) and the given joiners.
pub struct Joiners([bool; 256]);

impl Joiners {
    pub fn new(joiners: &[u8]) -> Self {
        let mut skip = [false; 256];
        for &b in b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f".iter().chain(joiners) {
            skip[usize::from(b)] = true;
        }
        Self(skip)
    }

    /// The longest run of digits in `text` joined only by these bytes, counted up to `enough`
    /// (`matching._skeleton`'s runs of `0`, without building it).
    pub fn longest_run(&self, text: &str, enough: usize) -> usize {
        let (mut run, mut longest) = (0, 0);
        for b in text.bytes() {
            if b.is_ascii_digit() {
                run += 1;
                if run > longest {
                    longest = run;
                    if longest >= enough {
                        break;
                    }
                }
            } else if !self.0[usize::from(b)] {
                run = 0;
            }
        }
        longest
    }
}

/// `matching.digit_runs` on ASCII text: the longest of `needs` (longest first) a run reaches.
pub fn digit_runs(text: &str, needs: &[usize], joiners: &Joiners) -> usize {
    let longest = joiners.longest_run(text, needs.first().copied().unwrap_or(0));
    needs
        .iter()
        .copied()
        .find(|&need| need <= longest)
        .unwrap_or(0)
}

/// `matching.SHAPE`: digits written `0`, capitals `A`.
fn shape(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|b| match b {
            b'0'..=b'9' => b'0',
            b'A'..=b'Z' => b'A',
            other => other,
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// `matching._starts_token` on ASCII text.
fn starts_token(text: &[u8], at: usize) -> bool {
    if at == 0 {
        return true;
    }
    let before = text[at - 1];
    if !(before.is_ascii_alphanumeric() || before == b'_') {
        return true;
    }
    at >= 2 && text[at - 2] == b'\\' && b"nrt".contains(&before)
}

/// What one rule made of a text: its pieces so far, and where the unmasked rest starts.
struct Masking {
    out: String,
    last: usize,
}

impl NativeRule {
    /// `matching._mask_span`: the masked part's new end, or None when the match does not count.
    fn mask_span(
        &self,
        py: Python<'_>,
        text: &str,
        at: usize,
        span: (usize, usize),
        masking: &mut Masking,
        count: &mut u32,
    ) -> PyResult<Option<usize>> {
        let bytes = text.as_bytes();
        if self.boundary && !starts_token(bytes, at) {
            return Ok(None);
        }
        if let Some(not_after) = &self.not_after {
            if at > 0 && not_after.is_match(&bytes[at - 1..at]) {
                return Ok(None);
            }
        }
        if let Some(check) = &self.check {
            if !check
                .bind(py)
                .call1((&text[span.0..span.1],))?
                .is_truthy()?
            {
                return Ok(None);
            }
        }
        masking.out.push_str(&text[masking.last..span.0]);
        masking.out.push_str(&self.label);
        *count += 1;
        Ok(Some(span.1))
    }

    fn finish(text: &str, masking: Masking) -> String {
        let mut out = masking.out;
        out.push_str(&text[masking.last..]);
        out
    }

    /// `matching.apply`: every match's masked part replaced by the label; None: unchanged.
    pub fn apply(&self, py: Python<'_>, text: &str, count: &mut u32) -> PyResult<Option<String>> {
        let mut masking = Masking {
            out: String::new(),
            last: 0,
        };
        let mut pos = 0;
        let mut hit = false;
        while pos <= text.len() {
            let Some(caps) = self.regex.captures_at(text.as_bytes(), pos) else {
                break;
            };
            let whole = caps.get(0).expect("group 0");
            let part = caps.get(self.group).unwrap_or(whole);
            match self.mask_span(
                py,
                text,
                whole.start(),
                (part.start(), part.end()),
                &mut masking,
                count,
            )? {
                None => pos = whole.start() + 1,
                Some(end) => {
                    hit = true;
                    masking.last = end;
                    pos = end.max(whole.start() + 1);
                }
            }
        }
        Ok(hit.then(|| Self::finish(text, masking)))
    }

    /// `matching.apply_anchored`: the whole pattern matched only where its lead starts, in the
    /// window before an anchor that holds one of the rule's hints.
    pub fn apply_anchored(
        &self,
        py: Python<'_>,
        text: &str,
        count: &mut u32,
    ) -> PyResult<Option<String>> {
        let (Some(lead), Some(anchored)) = (&self.lead, &self.anchored) else {
            return Ok(None);
        };
        let mut starts: Vec<usize> = Vec::new();
        for anchor in &self.anchors {
            let finder = memchr::memmem::Finder::new(anchor.as_bytes());
            let mut from = 0;
            while let Some(found) = finder.find(&text.as_bytes()[from..]) {
                let at = from + found;
                let (low, high) = (at.saturating_sub(self.window), at + anchor.len());
                let window = text[low..at].to_ascii_lowercase();
                if self
                    .hints_any_case
                    .iter()
                    .any(|hint| window.contains(hint.as_str()))
                {
                    starts.extend(
                        lead.find_iter(&text.as_bytes()[low..high])
                            .map(|m| low + m.start()),
                    );
                }
                from = at + 1;
            }
        }
        if starts.is_empty() {
            return Ok(None);
        }
        starts.sort_unstable();
        starts.dedup();
        let mut masking = Masking {
            out: String::new(),
            last: 0,
        };
        let mut hit = false;
        for p in starts {
            if p < masking.last {
                continue;
            }
            let Some(caps) = anchored.captures(&text.as_bytes()[p..]) else {
                continue;
            };
            let whole = caps.get(0).expect("group 0");
            let part = caps.get(self.group).unwrap_or(whole);
            let span = (p + part.start(), p + part.end());
            if let Some(end) = self.mask_span(py, text, p, span, &mut masking, count)? {
                hit = true;
                masking.last = end;
            }
        }
        Ok(hit.then(|| Self::finish(text, masking)))
    }

    /// Whether the rule's cheap pre-checks let it search `text` (`Sanitizer._run_rules`).
    fn may_match(&self, text: &str) -> bool {
        if self.digits.0 > 0 {
            if !self.shapes.is_empty() {
                let shape = shape(text);
                if !self.shapes.iter().any(|s| contains(&shape, s)) {
                    return false;
                }
            }
            return text.len() >= self.digits.0
                && self.digits.1.longest_run(text, self.digits.0) >= self.digits.0;
        }
        if !self.hints_any_case.is_empty() {
            let folded = text.to_ascii_lowercase();
            return self
                .hints_any_case
                .iter()
                .any(|h| folded.contains(h.as_str()));
        }
        true
    }

    /// One rule on `text`: its masked form, or None when it leaves the text alone.
    pub fn run(&self, py: Python<'_>, text: &str, count: &mut u32) -> PyResult<Option<String>> {
        if !self.anchors.is_empty() {
            return self.apply_anchored(py, text, count);
        }
        if !self.may_match(text) {
            return Ok(None);
        }
        self.apply(py, text, count)
    }
}
