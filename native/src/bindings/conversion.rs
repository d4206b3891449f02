//! What crosses between Python and the engine, both ways: the settings (`native_config`), an event Python
//! parsed (the slow path), a refusal in Python's words, and the engine's counters.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rustc_hash::FxHashMap as HashMap;

use crate::config::{model_index, Config, Learned};
use crate::engine::{Event, Stats};
use crate::intern::Interner;
use crate::journey::{ConversionIn, Refusal, TouchpointIn};
use crate::jsonl::Parsed;
use crate::money::Rate;

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?.ok_or_else(|| PyValueError::new_err(format!("native config lacks {key:?}")))
}

macro_rules! get {
    ($d:expr, $key:expr) => {
        item($d, $key)?.extract()?
    };
}

pub(crate) fn read_config(d: &Bound<'_, PyDict>, names: &mut Interner) -> PyResult<Config> {
    let default_model: String = get!(d, "default_model");
    let rates_raw: HashMap<String, (u128, i32)> = get!(d, "rates");
    let base: String = get!(d, "base");
    let minor_units: HashMap<String, u32> = get!(d, "minor_units");
    let learned = match d.get_item("learned")? {
        Some(l) if !l.is_none() => {
            let l = l.cast::<PyDict>()?;
            Learned {
                fallback: get!(l, "fallback"),
                removal_effects: get!(l, "removal_effects"),
                coalitions: get!(l, "coalitions"),
            }
        }
        _ => Learned { fallback: true, ..Learned::default() },
    };
    let base_sym = names.intern(&base);
    Ok(Config {
        default_model: model_index(&default_model).ok_or_else(|| PyValueError::new_err("unknown default model"))?,
        window_ms: get!(d, "window_ms"),
        windows_ms: get!(d, "windows_ms"),
        max_window_ms: get!(d, "max_window_ms"),
        allowed_lateness_ms: get!(d, "allowed_lateness_ms"),
        half_life_ms: get!(d, "half_life_ms"),
        position_first: get!(d, "position_first"),
        position_last: get!(d, "position_last"),
        max_journey_length: get!(d, "max_journey_length"),
        refund_retention_ms: get!(d, "refund_retention_ms"),
        max_future_skew_ms: get!(d, "max_future_skew_ms"),
        base_exp: *minor_units.get(&base).ok_or_else(|| PyValueError::new_err("unknown base currency"))?,
        base: base_sym,
        rates: rates_raw.into_iter()
            .map(|(c, (m, e))| (names.intern(&c), Rate { mantissa: m, exponent: e }))
            .collect(),
        minor_units,
        learned,
    })
}

pub(crate) fn stats_dict<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in [
        ("touchpoints", s.touchpoints), ("conversions", s.conversions), ("refunds", s.refunds),
        ("conversions_attributed", s.conversions_attributed),
        ("conversions_unattributed", s.conversions_unattributed), ("corrections", s.corrections),
        ("duplicate_touchpoints", s.duplicate_touchpoints), ("duplicate_conversions", s.duplicate_conversions),
        ("dropped_touchpoints", s.dropped_touchpoints), ("finals", s.finals),
        ("pending_touchpoints", s.pending_touchpoints), ("total_attributed_minor", s.total_attributed_minor),
        ("rewards_emitted", s.rewards_emitted),
    ] {
        d.set_item(k, v)?;
    }
    let per_model = PyDict::new(py);
    for (m, n) in s.per_model_named() {
        per_model.set_item(m, n)?;
    }
    d.set_item("per_model", per_model)?;
    Ok(d)
}

/// The refusal as the Python engine words it (`pipeline.engine.refusals`).
pub(crate) fn refusal_object(py: Python<'_>, words: &Bound<'_, PyAny>, r: &Refusal) -> PyResult<Py<PyAny>> {
    let call = |name: &str, args: Bound<'_, PyTuple>| -> PyResult<Py<PyAny>> {
        Ok(words.call1((name, args))?.unbind())
    };
    match r {
        Refusal::Late { time, watermark, lateness } => call("late", PyTuple::new(py, [*time, *watermark, *lateness])?),
        Refusal::Future { time, skew, ingest } => call("future", PyTuple::new(py, [*time, *skew, *ingest])?),
        Refusal::NoRate { currency, base } => call("no_rate", PyTuple::new(py, [currency, base])?),
        Refusal::UnknownRefund { refund_of, user } => call("unknown_refund", PyTuple::new(py, [refund_of, user])?),
        Refusal::RefundTooOld { after, refund_of, retention } => {
            call("refund_too_old", (after, refund_of, retention).into_pyobject(py)?)
        }
        Refusal::RefundCurrency { currency, original } => {
            call("refund_currency", PyTuple::new(py, [currency, original])?)
        }
        Refusal::RefundExceeds { value_minor, left } => {
            call("refund_exceeds", PyTuple::new(py, [*value_minor, *left])?)
        }
        Refusal::Duplicate(_) => Err(PyValueError::new_err("a duplicate is not a refusal")),
    }
}

/// An event parsed by Python (the slow path): ("touchpoint", tid, episode, user, campaign, channel, time, reward)
/// or ("conversion", cid, user, event, value_minor, currency, time, refund_of, model).
pub(crate) enum Owned {
    Touchpoint { tid: String, episode: String, user: String, campaign: String, channel: String, time: i64,
                 reward: f64 },
    Conversion { cid: String, user: String, event: String, value_minor: i64, currency: String, time: i64,
                 refund_of: Option<String>, model: Option<String> },
}

pub(crate) fn owned_event(t: &Bound<'_, PyAny>) -> PyResult<Owned> {
    let kind: String = t.get_item(0)?.extract()?;
    Ok(match kind.as_str() {
        "touchpoint" => Owned::Touchpoint {
            tid: t.get_item(1)?.extract()?, episode: t.get_item(2)?.extract()?, user: t.get_item(3)?.extract()?,
            campaign: t.get_item(4)?.extract()?, channel: t.get_item(5)?.extract()?, time: t.get_item(6)?.extract()?,
            reward: t.get_item(7)?.extract()?,
        },
        "conversion" => Owned::Conversion {
            cid: t.get_item(1)?.extract()?, user: t.get_item(2)?.extract()?, event: t.get_item(3)?.extract()?,
            value_minor: t.get_item(4)?.extract()?, currency: t.get_item(5)?.extract()?,
            time: t.get_item(6)?.extract()?, refund_of: t.get_item(7)?.extract()?, model: t.get_item(8)?.extract()?,
        },
        other => return Err(PyTypeError::new_err(format!("not an event tuple: {other}"))),
    })
}

/// Either a fast-path parse (borrowing the input) or Python's, as the engine's event.
pub(crate) enum AnyEvent<'a> {
    Fast(Parsed<'a>),
    Slow(Owned),
}

impl AnyEvent<'_> {
    pub(crate) fn event<'s>(&'s self, names: &mut Interner) -> PyResult<Event<'s>> {
        Ok(match self {
            AnyEvent::Fast(p @ Parsed::Touchpoint { .. }) => Event::Touchpoint(p.touchpoint(names).unwrap()),
            AnyEvent::Fast(p) => Event::Conversion(p.conversion(names).unwrap()),
            AnyEvent::Slow(Owned::Touchpoint { tid, episode, user, campaign, channel, time, reward }) => {
                Event::Touchpoint(TouchpointIn { touchpoint_id: tid, episode_id: episode, user_id: user,
                                                 campaign: names.intern(campaign), channel: names.intern(channel),
                                                 time: *time, reward: *reward })
            }
            AnyEvent::Slow(Owned::Conversion { cid, user, event, value_minor, currency, time, refund_of, model }) => {
                let model = match model {
                    None => None,
                    Some(m) => Some(model_index(m).ok_or_else(|| PyValueError::new_err("unknown model"))?),
                };
                Event::Conversion(ConversionIn { conversion_id: cid, user_id: user, event: names.intern(event),
                                                 value_minor: *value_minor, currency: names.intern(currency),
                                                 time: *time, refund_of: refund_of.as_deref(), model })
            }
        })
    }
}
