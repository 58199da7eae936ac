//! `MaskEngine`: the sanitizer's masking and its walk over a captured payload, natively, for
//! `shadowlane.sanitize.Sanitizer` (its `native` path). The rules, which rules a text needs
//! (trigger characters, digit runs) and which keys are secret are all handed over by Python
//! when the engine is made or called: nothing here decides them.

mod engine;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use engine::{digit_runs, takes, Joiners, NativeRule};

#[pyclass(frozen, module = "shadowlane_native")]
pub struct MaskEngine {
    rules: Vec<NativeRule>,
    /// (trigger character, rules it calls for)
    by_trigger: Vec<(Vec<u8>, Vec<usize>)>,
    /// (digits a run needs, rule), of the digit rules
    digit_rules: Vec<(usize, usize)>,
    /// every digit rule's need, longest first
    digit_needs: Vec<usize>,
    digit_joiners: Joiners,
    min_maskable: usize,
}

#[pymethods]
impl MaskEngine {
    /// `compiled`: `matching.Compiled` per rule, in order; the rest as `Sanitizer` derives them.
    #[new]
    fn new(
        compiled: Vec<Bound<'_, PyAny>>,
        by_trigger: Vec<(String, Vec<usize>)>,
        digit_rules: Vec<(usize, usize)>,
        digit_needs: Vec<usize>,
        digit_joiners: String,
        min_maskable: usize,
    ) -> PyResult<Self> {
        let rules = compiled
            .iter()
            .map(NativeRule::from_compiled)
            .collect::<PyResult<Vec<_>>>()?;
        if rules.len() > 64 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "the engine runs at most 64 rules",
            ));
        }
        let out_of_range = by_trigger
            .iter()
            .flat_map(|(_, ix)| ix)
            .chain(digit_rules.iter().map(|(_, i)| i));
        if out_of_range.into_iter().any(|&i| i >= rules.len()) {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a rule index is out of range",
            ));
        }
        Ok(Self {
            rules,
            by_trigger: by_trigger
                .into_iter()
                .map(|(c, ix)| (c.into_bytes(), ix))
                .collect(),
            digit_rules,
            digit_needs,
            digit_joiners: Joiners::new(digit_joiners.as_bytes()),
            min_maskable,
        })
    }

    /// `(masked text, masks)` of a text the engine takes, or None for Python to mask it.
    fn mask<'py>(
        &self,
        py: Python<'py>,
        text: Bound<'py, PyString>,
    ) -> PyResult<Option<(Bound<'py, PyString>, u32)>> {
        let mut count = 0;
        let masked = self.mask_str(py, &text, &mut count)?;
        Ok(masked.map(|m| (m, count)))
    }

    /// `Sanitizer._walk`: a copy of `value` with the values under secret keys dropped and every
    /// text masked; `is_secret_key[key]` tells a secret key, `fallback(text)` masks a text the
    /// engine does not take and `deep(value)` walks what is nested past `MAX_DEPTH` (both
    /// returning `(copy, count)`). Returns `(copy, drops and masks)`.
    fn clean<'py>(
        &self,
        py: Python<'py>,
        value: Bound<'py, PyAny>,
        is_secret_key: Bound<'py, PyAny>,
        fallback: Bound<'py, PyAny>,
        deep: Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyAny>, u32)> {
        let mut count = 0;
        let walker = Walker {
            engine: self,
            is_secret_key: &is_secret_key,
            fallback: &fallback,
            deep: &deep,
        };
        let out = walker.walk(py, value, &mut count, 0)?;
        Ok((out, count))
    }
}

impl MaskEngine {
    /// The rules a text may need, as a bit per rule (`Sanitizer._todo`).
    fn todo(&self, text: &str) -> u64 {
        let mut todo = 0u64;
        for (char, indexes) in &self.by_trigger {
            let found = match char.as_slice() {
                [byte] => memchr::memchr(*byte, text.as_bytes()).is_some(),
                many => memchr::memmem::find(text.as_bytes(), many).is_some(),
            };
            if found {
                for &i in indexes {
                    todo |= 1 << i;
                }
            }
        }
        if !self.digit_rules.is_empty() {
            let longest = digit_runs(text, &self.digit_needs, &self.digit_joiners);
            for &(need, index) in &self.digit_rules {
                if longest > 0 && need <= longest {
                    todo |= 1 << index;
                }
            }
        }
        todo
    }

    /// `Sanitizer._run_rules` on a text the engine takes: None when it does not take it.
    fn mask_str<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
        count: &mut u32,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let str = text.to_str()?;
        if !takes(str) {
            return Ok(None);
        }
        if str.len() < self.min_maskable {
            return Ok(Some(text.clone()));
        }
        let todo = self.todo(str);
        if todo == 0 {
            return Ok(Some(text.clone()));
        }
        let mut current: Option<String> = None;
        for (index, rule) in self.rules.iter().enumerate() {
            if todo & (1 << index) == 0 {
                continue;
            }
            let now = current.as_deref().unwrap_or(str);
            if let Some(masked) = rule.run(py, now, count)? {
                current = Some(masked);
            }
        }
        Ok(Some(match current {
            Some(masked) => PyString::new(py, &masked),
            None => text.clone(),
        }))
    }
}

/// What is nested deeper than this is walked by Python (whose recursion limit guards it).
const MAX_DEPTH: usize = 100;

struct Walker<'a, 'py> {
    engine: &'a MaskEngine,
    is_secret_key: &'a Bound<'py, PyAny>,
    fallback: &'a Bound<'py, PyAny>,
    deep: &'a Bound<'py, PyAny>,
}

impl<'py> Walker<'_, 'py> {
    fn text(
        &self,
        py: Python<'py>,
        text: Bound<'py, PyString>,
        count: &mut u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(masked) = self.engine.mask_str(py, &text, count)? {
            return Ok(masked.into_any());
        }
        self.python(self.fallback, text.into_any(), count)
    }

    fn python(
        &self,
        call: &Bound<'py, PyAny>,
        value: Bound<'py, PyAny>,
        count: &mut u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (out, n): (Bound<'py, PyAny>, u32) = call.call1((value,))?.extract()?;
        *count += n;
        Ok(out)
    }

    fn walk(
        &self,
        py: Python<'py>,
        value: Bound<'py, PyAny>,
        count: &mut u32,
        depth: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return self.python(self.deep, value, count);
        }
        if let Ok(text) = value.cast::<PyString>() {
            return self.text(py, text.clone(), count);
        }
        if let Ok(dict) = value.cast::<PyDict>() {
            let out = PyDict::new(py);
            for (key, item) in dict.iter() {
                if key.is_instance_of::<PyString>()
                    && self.is_secret_key.get_item(&key)?.is_truthy()?
                {
                    *count += 1;
                    continue;
                }
                out.set_item(key, self.walk(py, item, count, depth + 1)?)?;
            }
            return Ok(out.into_any());
        }
        if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            let out = PyList::empty(py);
            for item in value.try_iter()? {
                out.append(self.walk(py, item?, count, depth + 1)?)?;
            }
            return Ok(out.into_any());
        }
        Ok(value)
    }
}
