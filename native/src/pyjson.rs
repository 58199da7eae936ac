//! JSON text to Python objects, as `orjson.loads` builds them: objects keep their key order (a
//! repeated key keeps its first place and its last value, as a dict assignment does), integers
//! within 64 bits are ints, every other number is the correctly rounded float (orjson reads an
//! integer past 64 bits as a float too). It declines a negative zero (serde reads `-0` as a float,
//! orjson as an int) and anything serde refuses (broken JSON, nesting past 128 levels).

use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// Reads one JSON value into a Python object.
struct PySeed<'py>(Python<'py>);

fn py_err<E: de::Error>(err: PyErr) -> E {
    E::custom(err.to_string())
}

impl<'de, 'py> DeserializeSeed<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for PySeed<'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyBool::new(self.0, v).to_owned().into_any())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let Ok(int) = v.into_pyobject(self.0);
        Ok(int.into_any())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if v == 0.0 && v.is_sign_negative() {
            // serde reads `-0` as -0.0 where orjson reads the int 0: the text is not kept to
            // tell `-0` from `-0.0`
            return Err(E::custom("negative zero"));
        }
        Ok(pyo3::types::PyFloat::new(self.0, v).into_any())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(pyo3::types::PyString::new(self.0, v).into_any())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.0.None().into_bound(self.0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let list = PyList::empty(self.0);
        while let Some(item) = seq.next_element_seed(PySeed(self.0))? {
            list.append(item).map_err(py_err)?;
        }
        Ok(list.into_any())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.0);
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(PySeed(self.0))?;
            dict.set_item(key.as_str(), value).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}

/// The Python object of a JSON text, or `None` when serde refuses it.
pub fn loads<'py>(py: Python<'py>, text: &str) -> Option<Bound<'py, PyAny>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = PySeed(py).deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(value)
}
