//! `Partition`: one input partition of a worker, with the contract of
//! `pipeline.engine.partition.processor.PartitionProcessor`: raw Kafka records in, journey-table writes (each
//! carrying its outbox of Avro reward records, unless the outbox is off) and the rewards in emitted order out;
//! journeys loaded from and written to the caller's store.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use rustc_hash::FxHashMap as HashMap;

use crate::bindings::conversion::{owned_event, read_config, refusal_object, stats_dict, AnyEvent, Owned};
use crate::engine::{BatchStore, Engine};
use crate::intern::Interner;
use crate::journey::{Reward, Sink};
use crate::jsonl::Parsed;
use crate::keys::{self, SOURCES};
use crate::user_key::UserKey;
use crate::{avro, codec, journey};

struct OutboxSink<'a> {
    fingerprint: &'a [u8; 8],
    outboxes: &'a mut HashMap<String, (Vec<u8>, u32)>,
    order: &'a mut Vec<String>,
    record: Vec<u8>, // the record being written (reused; each reward keeps an exact-size copy)
    /// Whether the journeys' outboxes get the rewards too (a runtime that publishes rewards in the same
    /// transaction as the journeys keeps no outbox).
    outbox: bool,
    /// Every reward as (user id, Avro record), in the order emitted: what the step returns as its rewards.
    emitted: Vec<(String, Vec<u8>)>,
}

impl Sink for OutboxSink<'_> {
    fn emit(&mut self, r: &Reward<'_>) {
        self.record.clear();
        avro::write_reward(&mut self.record, r, self.fingerprint);
        let record = self.record.clone();
        if self.outbox {
            self.push_outbox(r.user_id, &record);
        }
        self.emitted.push((r.user_id.to_owned(), record));
    }
}

impl OutboxSink<'_> {
    fn push_outbox(&mut self, user: &str, record: &[u8]) {
        let entry = match self.outboxes.get_mut(user) {
            Some(e) => e,
            None => {
                self.order.push(user.to_owned());
                self.outboxes.entry(user.to_owned()).or_default()
            }
        };
        codec::push_outbox(&mut entry.0, record);
        entry.1 += 1;
    }
}

/// One input partition of a worker (see `pipeline.engine.partition.processor.PartitionProcessor`, the same
/// contract).
#[pyclass(unsendable, module = "pipeline._native")]
pub struct Partition {
    engine: Engine,
    outbox: bool, // journey writes carry their rewards too (see OutboxSink)
    slice_limit: usize,
    meta_key: Vec<u8>,
    meta_saved: Option<String>, // the clock as last written
    fingerprints: [[u8; 8]; 3], // touchpoint, conversion, attributed reward
    decode: Py<PyAny>,
    words: Py<PyAny>,
}

fn loader<'a>(py: Python<'a>, load: &'a Bound<'a, PyAny>, failed: &'a mut Option<PyErr>)
              -> impl FnMut(&[UserKey]) -> Vec<Option<Vec<u8>>> + 'a {
    move |users: &[UserKey]| {
        let call = || -> PyResult<Vec<Option<Vec<u8>>>> {
            let keys = PyList::new(py, users.iter().map(|u| PyBytes::new(py, u.as_bytes())))?;
            load.call1((keys,))?.extract()
        };
        match call() {
            Ok(v) if v.len() == users.len() => v,
            Ok(_) => {
                failed.get_or_insert(PyValueError::new_err("the journey loader returned the wrong number of values"));
                vec![None; users.len()]
            }
            Err(e) => {
                failed.get_or_insert(e);
                vec![None; users.len()]
            }
        }
    }
}

#[pymethods]
impl Partition {
    /// `fingerprints`: the current writer schemas of touchpoint, conversion and attributed reward. `decode(index)`
    /// decodes a record the fast path left to Python (an event tuple, or it raises InvalidEvent);
    /// `words(name, args)` makes the engine's refusals. Each step returns its rewards (user key, record) in emitted
    /// order; with `outbox` the journey writes carry them too.
    #[new]
    #[pyo3(signature = (partition, config, slice_limit, fingerprints, decode, words, outbox=true))]
    fn new(partition: i64, config: &Bound<'_, PyDict>, slice_limit: usize, fingerprints: (Vec<u8>, Vec<u8>, Vec<u8>),
           decode: Py<PyAny>, words: Py<PyAny>, outbox: bool) -> PyResult<Self> {
        let mut names = Interner::default();
        let cfg = read_config(config, &mut names)?;
        let fp = |v: Vec<u8>| -> PyResult<[u8; 8]> {
            v.try_into().map_err(|_| PyValueError::new_err("a schema fingerprint is 8 bytes"))
        };
        let meta_key = keys::meta_key(partition);
        Ok(Partition {
            engine: Engine::new(cfg, names, 2, 1), outbox, slice_limit, meta_key, meta_saved: None,
            fingerprints: [fp(fingerprints.0)?, fp(fingerprints.1)?, fp(fingerprints.2)?], decode, words,
        })
    }

    /// Rebuild the expiry schedule and the clock from the partition's stored (key, value) pairs.
    fn restore(&mut self, items: &Bound<'_, PyAny>) -> PyResult<i64> {
        let mut n = 0;
        for item in items.try_iter()? {
            let (key, value): (Vec<u8>, Vec<u8>) = item?.extract()?;
            if key == self.meta_key {
                self.load_clock(&value)?;
                continue;
            }
            if keys::is_reserved(&key) {
                continue;
            }
            let journey = codec::decode(&value, &mut self.engine.names).map_err(|e| PyValueError::new_err(e.0))?;
            let Some(journey) = journey else { continue };
            let user = String::from_utf8(key).map_err(|_| PyValueError::new_err("user key not UTF-8"))?;
            if let Some(d) = journey::next_deadline(&journey, &self.engine.config) {
                self.engine.expiry.schedule_here(&user, d, || None);
                n += 1;
            }
            self.engine.stats.pending_touchpoints += journey.touches.len() as i64;
        }
        Ok(n)
    }

    /// A step over a batch of this partition's records, each an `InputRecord` (a named tuple: source,
    /// offset, key, value, ingest ms; source "touchpoints" or "conversions").
    #[pyo3(signature = (records, load, idle, floor_ms=None))]
    fn process<'py>(&mut self, py: Python<'py>, records: &Bound<'py, PyAny>, load: &Bound<'py, PyAny>,
                    idle: (bool, bool), floor_ms: Option<i64>) -> PyResult<Bound<'py, PyTuple>> {
        let mut values: Vec<(usize, Option<Vec<u8>>, Option<Vec<u8>>, Option<i64>)> = Vec::new();
        for rec in records.try_iter()? {
            let rec = rec?;
            let t = rec.cast::<PyTuple>()?;
            let source = usize::from(t.get_item(0)?.cast::<PyString>()?.to_str()? != SOURCES[0]);
            values.push((source, t.get_item(2)?.extract()?, t.get_item(3)?.extract()?, t.get_item(4)?.extract()?));
        }
        let n = values.len();
        let refused = PyList::empty(py);
        let mut events: Vec<(usize, usize, AnyEvent<'_>, Option<i64>)> = Vec::with_capacity(n);
        let decode = self.decode.bind(py);
        for (i, (source, key, value, ingest)) in values.iter().enumerate() {
            let fast = value.as_deref().and_then(|v| if *source == 0 {
                avro::read_touchpoint(v, key.as_deref(), &self.fingerprints[0])
            } else {
                avro::read_conversion(v, key.as_deref(), &self.fingerprints[1], &self.engine.config)
            });
            let any = match fast {
                Some(p) => AnyEvent::Fast(p),
                None => match decode.call1((i,)) {
                    Ok(t) => AnyEvent::Slow(owned_event(&t)?),
                    Err(e) if e.is_instance_of::<PyValueError>(py) => {
                        refused.append((i, e.value(py)))?;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            events.push((i, *source, any, *ingest));
        }
        self.step(py, events, load, [idle.0, idle.1], floor_ms, refused)
    }

    /// Each record's event time where the fast path reads it, None elsewhere (records of an older schema, or
    /// refused: the runtime's merge never holds them).
    fn event_times(&self, records: &Bound<'_, PyAny>) -> PyResult<Vec<Option<i64>>> {
        let mut out = Vec::new();
        for rec in records.try_iter()? {
            let rec = rec?;
            let t = rec.cast::<PyTuple>()?;
            let touchpoint = t.get_item(0)?.cast::<PyString>()?.to_str()? == SOURCES[0];
            let (key, value) = (t.get_item(2)?, t.get_item(3)?);
            let key = key.cast::<PyBytes>().ok().map(|k| k.as_bytes());
            let parsed = match value.cast::<PyBytes>() {
                Ok(v) if touchpoint => avro::read_touchpoint(v.as_bytes(), key, &self.fingerprints[0]),
                Ok(v) => avro::read_conversion(v.as_bytes(), key, &self.fingerprints[1], &self.engine.config),
                Err(_) => None,
            };
            out.push(parsed.map(|p| match p {
                Parsed::Touchpoint { time, .. } | Parsed::Conversion { time, .. } => time,
            }));
        }
        Ok(out)
    }

    /// A step without input (the worker's timer).
    #[pyo3(signature = (load, idle, floor_ms=None))]
    fn advance<'py>(&mut self, py: Python<'py>, load: &Bound<'py, PyAny>, idle: (bool, bool), floor_ms: Option<i64>)
                    -> PyResult<Bound<'py, PyTuple>> {
        self.step(py, Vec::new(), load, [idle.0, idle.1], floor_ms, PyList::empty(py))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        stats_dict(py, &self.engine.stats)
    }

    fn newest_ms(&self) -> Option<i64> {
        self.engine.clock.newest_any()
    }

    fn watermark(&self) -> Option<i64> {
        self.engine.watermark
    }

    fn clock_state(&self) -> String {
        self.clock_json()
    }
}

impl Partition {
    fn clock_json(&self) -> String {
        let c = &self.engine.clock;
        let recent: serde_json::Map<String, serde_json::Value> = SOURCES.iter().enumerate()
            .map(|(i, s)| (s.to_string(), serde_json::json!(c.recent[i]))).collect();
        let newest: serde_json::Map<String, serde_json::Value> = SOURCES.iter().enumerate()
            .map(|(i, s)| (s.to_string(), serde_json::json!(c.newest[i]))).collect();
        serde_json::json!({"recent": recent, "newest": newest, "floor": c.floor, "watermark": self.engine.watermark})
            .to_string()
    }

    fn load_clock(&mut self, value: &[u8]) -> PyResult<()> {
        let v: serde_json::Value = serde_json::from_slice(value).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let c = &mut self.engine.clock;
        for (i, s) in SOURCES.iter().enumerate() {
            let mut recent: Vec<i64> = v["recent"][s].as_array().map(|a| a.iter().filter_map(|x| x.as_i64()).collect())
                .unwrap_or_default();
            recent.sort_unstable();
            let keep = recent.len().saturating_sub(c.quorum);
            c.recent[i] = recent.split_off(keep);
            c.newest[i] = v["newest"][s].as_i64();
        }
        c.floor = v["floor"].as_i64();
        // restored as it was (see PartitionProcessor.restore)
        self.engine.watermark = match v.get("watermark") {
            Some(w) => w.as_i64(),
            None => c.watermark(&[false, false]),
        };
        self.meta_saved = Some(self.clock_json());
        Ok(())
    }

    fn step<'py>(&mut self, py: Python<'py>, events: Vec<(usize, usize, AnyEvent<'_>, Option<i64>)>,
                 load: &Bound<'py, PyAny>, idle: [bool; 2], floor_ms: Option<i64>, refused: Bound<'py, PyList>)
                 -> PyResult<Bound<'py, PyTuple>> {
        let words = self.words.bind(py);
        let mut failed: Option<PyErr> = None;
        let mut load_fn = loader(py, load, &mut failed);
        let mut store = BatchStore::new(&mut load_fn);
        let users: Vec<UserKey> = events.iter().map(|(_, _, e, _)| match e {
            AnyEvent::Fast(Parsed::Touchpoint { user, .. }) | AnyEvent::Fast(Parsed::Conversion { user, .. }) => {
                UserKey::from(&**user)
            }
            AnyEvent::Slow(Owned::Touchpoint { user, .. }) | AnyEvent::Slow(Owned::Conversion { user, .. }) => {
                UserKey::from(user.as_str())
            }
        }).collect();
        store.preload(&users);
        if let Some(f) = floor_ms {
            self.engine.clock.raise_floor(f);
        }
        let mut outboxes: HashMap<String, (Vec<u8>, u32)> = HashMap::default();
        let mut order: Vec<String> = Vec::new();
        let fingerprint = self.fingerprints[2];
        let mut sink = OutboxSink { fingerprint: &fingerprint, outboxes: &mut outboxes, order: &mut order,
                                    record: Vec::with_capacity(256), outbox: self.outbox, emitted: Vec::new() };
        for (i, source, any, ingest) in &events {
            let event = any.event(&mut self.engine.names)?;
            match self.engine.apply(&mut store, &event, *ingest, &mut sink) {
                Ok(true) => self.engine.observe(*source, event.time(), &idle),
                Ok(false) => {} // a duplicate: no vote in the clock
                Err(r) => refused.append((*i, refusal_object(py, words, &r)?))?,
            }
        }
        self.engine.advance(&mut store, &idle, Some(self.slice_limit), &mut sink);
        let reward_records = PyList::empty(py);
        for (user, record) in std::mem::take(&mut sink.emitted) {
            reward_records.append((PyBytes::new(py, user.as_bytes()), PyBytes::new(py, &record)))?;
        }
        if let Some(e) = store.error.take() {
            return Err(PyValueError::new_err(e));
        }
        // the step's writes: each changed journey once, with its outbox
        let writes = PyList::empty(py);
        let meta = self.clock_json();
        if self.meta_saved.as_deref() != Some(meta.as_str()) {
            // the clock whenever it moved, first (see PartitionProcessor._step)
            writes.append((PyBytes::new(py, &self.meta_key), PyBytes::new(py, meta.as_bytes())))?;
            self.meta_saved = Some(meta);
        }
        let dirty = std::mem::take(&mut store.dirty);
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::default();
        let names = &self.engine.names;
        let keys = dirty.iter().map(|u| &**u).chain(order.iter().map(String::as_str));
        for user in keys {
            if !seen.insert(user) {
                continue;
            }
            let journey = store.current(user);
            let (outbox, count) = outboxes.get(user).map(|(b, c)| (b.as_slice(), *c)).unwrap_or((&[], 0));
            let key = PyBytes::new(py, user.as_bytes());
            match journey {
                Some(j) => writes.append((key, PyBytes::new(py, &codec::encode(Some(j), outbox, count, names))))?,
                None => {
                    if count > 0 {
                        writes.append((key.clone(), PyBytes::new(py, &codec::encode(None, outbox, count, names))))?;
                    }
                    writes.append((key, py.None()))?;
                }
            }
        }
        drop(store);
        drop(load_fn);
        if let Some(e) = failed {
            return Err(e);
        }
        PyTuple::new(py, [writes.into_any(), refused.into_any(), reward_records.into_any()])
    }
}
