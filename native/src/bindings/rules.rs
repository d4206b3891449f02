//! The rules Python keeps too (model names, event limits, reward kinds, the state's keys, the journey format),
//! exported as module attributes so that a Python test holds the two languages to the same values
//! (`tests/unit/test_native_agrees.py`). Python's stay the source when the native module is absent.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

use crate::journey::{Kind, NO_TOUCHPOINT_IN_WINDOW, UNKNOWN_USER};
use crate::{codec, config, keys, validate};

/// The version byte the native journey codec writes first: its own binary format, not the Python codec's
/// (`pipeline/engine/partition/journey_codec.py`); each reads the other's.
#[pyfunction]
fn journey_format_version() -> u8 {
    codec::FORMAT_VERSION
}

/// The key of a partition's frontier record, as `Partition` writes it.
#[pyfunction]
fn meta_key(py: Python<'_>, partition: i64) -> Bound<'_, PyBytes> {
    PyBytes::new(py, &keys::meta_key(partition))
}

pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("MODEL_NAMES", PyTuple::new(py, config::MODEL_NAMES)?)?;
    m.add("REWARD_KINDS", PyTuple::new(py, Kind::ALL.map(Kind::name))?)?;
    m.add("UNATTRIBUTED_REASONS", PyTuple::new(py, [UNKNOWN_USER, NO_TOUCHPOINT_IN_WINDOW])?)?;
    m.add("SOURCES", PyTuple::new(py, keys::SOURCES)?)?;
    m.add("RESERVED_PREFIX", PyBytes::new(py, keys::RESERVED_PREFIX))?;
    let limits = PyDict::new(py);
    limits.set_item("MIN_TIMESTAMP_MS", validate::MIN_TIMESTAMP_MS)?;
    limits.set_item("MAX_TIMESTAMP_MS", validate::MAX_TIMESTAMP_MS)?;
    limits.set_item("MAX_ID_LENGTH", validate::MAX_ID_LENGTH)?;
    limits.set_item("MAX_ABS_REWARD", validate::MAX_ABS_REWARD)?;
    limits.set_item("MAX_VALUE", validate::MAX_VALUE)?;
    limits.set_item("MAX_JSON_DEPTH", validate::MAX_JSON_DEPTH)?;
    m.add("LIMITS", limits)?;
    m.add_function(wrap_pyfunction!(journey_format_version, m)?)?;
    m.add_function(wrap_pyfunction!(meta_key, m)?)?;
    Ok(())
}
