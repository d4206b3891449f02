//! `pipeline._native`: the attribution engine in Rust, behind the same batch entry points as the Python engine.
//!
//! - `Backfill`: JSON Lines chunks in, reward JSON lines out (the engine's journeys in memory).
//! - `Partition`: one input partition of the worker: raw Kafka records in, journey-table writes (each carrying
//!   its outbox of Avro reward records) out; journeys are loaded from and written to the caller's store.
//!
//! The happy path runs here. Whatever the fast path does not decide (a record of an older schema, a refused
//! event's wording, an odd JSON form) goes to the Python callables given at construction, so both engines take
//! the same decisions in the same words; the differential tests hold them to it.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod avro;
mod batch;
mod codec;
mod config;
mod due_queue;
mod engine;
mod intern;
mod journey;
mod journeys;
mod jsonl;
mod models;
mod parse_ahead;
mod trees;
mod user_key;
mod money;
mod records;
mod scan;
mod validate;
mod writer;
#[cfg(test)]
mod fuzz;

use rustc_hash::FxHashMap as HashMap;
use crate::user_key::UserKey;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::config::{model_index, Config, Learned};
use crate::engine::{BatchStore, Engine, Event, MemoryStore, Stats};
use crate::intern::Interner;
use crate::journey::{ConversionIn, Refusal, Reward, Sink, TouchpointIn};
use crate::jsonl::Parsed;
use crate::money::Rate;

// ------------------------------------------------------------------------------------------------ config

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Bound<'py, PyAny>> {
    d.get_item(key)?.ok_or_else(|| PyValueError::new_err(format!("native config lacks {key:?}")))
}

macro_rules! get {
    ($d:expr, $key:expr) => {
        item($d, $key)?.extract()?
    };
}

fn read_config(d: &Bound<'_, PyDict>, names: &mut Interner) -> PyResult<Config> {
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

fn stats_dict<'py>(py: Python<'py>, s: &Stats) -> PyResult<Bound<'py, PyDict>> {
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
fn refusal_object(py: Python<'_>, words: &Bound<'_, PyAny>, r: &Refusal) -> PyResult<Py<PyAny>> {
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
enum Owned {
    Touchpoint { tid: String, episode: String, user: String, campaign: String, channel: String, time: i64,
                 reward: f64 },
    Conversion { cid: String, user: String, event: String, value_minor: i64, currency: String, time: i64,
                 refund_of: Option<String>, model: Option<String> },
}

fn owned_event(t: &Bound<'_, PyAny>) -> PyResult<Owned> {
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
enum AnyEvent<'a> {
    Fast(Parsed<'a>),
    Slow(Owned),
}

impl AnyEvent<'_> {
    fn event<'s>(&'s self, names: &mut Interner) -> PyResult<Event<'s>> {
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

// ------------------------------------------------------------------------------------------------ backfill

struct Counter(u64);

impl Sink for Counter {
    fn emit(&mut self, _r: &Reward<'_>) {
        self.0 += 1;
    }
}

/// Rewards as JSON lines, or (`records`) as records for the writer thread to format, handed to it whenever
/// they fill a buffer (`spill`).
struct JsonSink<'a, 'w, 'py> {
    out: &'a mut Vec<u8>,
    minor_units: &'a HashMap<String, u32>,
    records: bool,
    count: u64,
    spill: Option<&'a mut Spill<'w, 'py>>,
}

impl Sink for JsonSink<'_, '_, '_> {
    fn emit(&mut self, r: &Reward<'_>) {
        if self.records {
            records::encode(self.out, r);
        } else {
            let mu = self.minor_units;
            jsonl::write_reward(self.out, r, &|c: &str| mu.get(c).copied().unwrap_or(2));
        }
        self.count += 1;
        if let Some(spill) = self.spill.as_mut() {
            if self.out.len() >= spill.bytes {
                spill.hand_over(self.out);
            }
        }
    }
}

/// Records past this many bytes (by default) go to the writer thread within a step. An expiry of many
/// touchpoints at once (the end of input closes every window still open) made one buffer of all their rewards,
/// and the writer one text of it: on the 20-touchpoint benchmark a fifth of the backfill's CPU was the kernel
/// zeroing the pages those two buffers grew into, and their size had no bound but the journeys'.
const SPILL_BYTES: usize = 4 << 20;

/// The writer a `JsonSink` hands its full buffer to, for a spare one; the first write error is kept for the
/// caller (after it, records are dropped: the output has failed).
struct Spill<'w, 'py> {
    writer: &'w mut writer::Writer,
    bytes: usize, // when a buffer is full
    py: Python<'py>,
    error: Option<std::io::Error>,
}

impl<'w, 'py> Spill<'w, 'py> {
    /// The spill for a step that writes to `out_fd` (None when its output is returned instead).
    fn of(out_fd: Option<i32>, writer: &'w mut Option<writer::Writer>, bytes: usize, py: Python<'py>)
          -> Option<Self> {
        match (out_fd, writer.as_mut()) {
            (Some(_), Some(writer)) => Some(Spill { writer, bytes, py, error: None }),
            _ => None,
        }
    }

    fn hand_over(&mut self, out: &mut Vec<u8>) {
        if self.error.is_some() {
            out.clear();
            return;
        }
        let w = &mut *self.writer;
        let full = std::mem::replace(out, self.py.detach(|| w.spare()));
        if let Err(e) = self.py.detach(|| w.write(full)) {
            self.error = Some(e);
        }
    }

    fn result(self) -> PyResult<()> {
        self.error.map_or(Ok(()), |e| Err(os_error(e)))
    }
}

/// The writer thread's formatting: reward records to JSON lines.
fn json_lines(minor_units: HashMap<String, u32>) -> writer::Format {
    Box::new(move |recs: &[u8], text: &mut Vec<u8>| {
        let mu = |c: &str| minor_units.get(c).copied().unwrap_or(2);
        records::each(recs, |r| jsonl::write_reward(text, r, &mu));
    })
}

/// Chunks smaller than this are parsed on the calling thread by default (a thread's start costs more than it
/// saves on them).
const PARALLEL_PARSE_BYTES: usize = 64 * 1024;
const PARSE_BLOCK: usize = 256; // lines handed from the parsing thread at a time
const PARSE_AHEAD: usize = 4; // blocks it may parse ahead of the engine

/// The non-blank lines of a chunk with their numbers (the first is `first_line`).
fn lines(chunk: &[u8], first_line: i64) -> impl Iterator<Item = (i64, &[u8])> {
    chunk.split_inclusive(|&b| b == b'\n').zip(first_line..)
        .filter(|(line, _)| !line.iter().all(|b| b.is_ascii_whitespace() || *b == 0x0b))
        .map(|(line, number)| (number, line))
}

fn os_error(e: std::io::Error) -> PyErr {
    pyo3::exceptions::PyOSError::new_err(format!("writing the reward lines: {e}"))
}

impl Backfill {
    /// The writer for `fd` (a new one if the caller switched files: the old one finishes first).
    fn writer_for(&mut self, py: Python<'_>, fd: i32) -> PyResult<&mut writer::Writer> {
        if self.writer.as_ref().is_some_and(|w| w.fd != fd) {
            let mut old = self.writer.take().unwrap();
            py.detach(|| old.finish()).map_err(os_error)?;
        }
        if self.writer.is_none() {
            let format = json_lines(self.minor_units.clone());
            self.writer = Some(writer::Writer::new(fd, Some(format)).map_err(os_error)?);
        }
        Ok(self.writer.as_mut().unwrap())
    }

    fn hand_over(&mut self, py: Python<'_>, out: Vec<u8>) -> PyResult<()> {
        let w = self.writer.as_mut().expect("a writer is made before output is handed over");
        py.detach(|| w.write(out)).map_err(os_error)
    }
}

/// The engine over a JSON Lines log, journeys in memory.
#[pyclass(unsendable, module = "pipeline._native")]
struct Backfill {
    engine: Engine,
    store: MemoryStore,
    reference_ms: Option<i64>,
    fallback: Py<PyAny>,
    words: Py<PyAny>,
    rewards_out: u64,
    minor_units: HashMap<String, u32>,
    buffer: Vec<u8>, // output of the last chunk, kept for its capacity (when returned, not written)
    writer: Option<writer::Writer>, // writes the reward lines to `out_fd` on a thread of its own
    spill_bytes: usize, // a step's records go to the writer whenever they reach this many bytes
    parse_thread_from: usize, // chunks of this many bytes or more are parsed on a second thread
    parse_config: std::sync::Arc<Config>, // the parser's copy of the engine's (fixed) configuration
    ahead: Option<parse_ahead::Ahead>, // the next chunk, being parsed (see `feed`'s `ahead`)
    spare_lines: parse_ahead::Lines, // always empty: its memory, for the next chunk parsed ahead
    journeys: Option<journeys::JourneySink>, // collect completed journeys instead of writing reward lines
    end: Option<i64>,                        // the watermark when the input ended (journeys mode)
}

#[pymethods]
impl Backfill {
    /// `fallback(line: bytes)` parses a line the fast path left to Python: an event tuple, or it raises
    /// InvalidEvent. `words(name, args)` makes the engine's refusals (`pipeline.engine.refusals`).
    /// With `journeys`, rewards are not written: they are folded into completed journeys (`take_journeys`).
    #[new]
    /// `parse_thread_from`: chunks of at least this many bytes are parsed by a second thread. `spill_bytes`:
    /// written output goes to the writer thread in buffers of about this many bytes of records.
    #[pyo3(signature = (config, quorum, reference_ms, fallback, words, journeys=false,
                        parse_thread_from=PARALLEL_PARSE_BYTES, spill_bytes=SPILL_BYTES))]
    #[allow(clippy::too_many_arguments)]
    fn new(config: &Bound<'_, PyDict>, quorum: usize, reference_ms: Option<i64>, fallback: Py<PyAny>,
           words: Py<PyAny>, journeys: bool, parse_thread_from: usize, spill_bytes: usize) -> PyResult<Self> {
        let mut names = Interner::default();
        let cfg = read_config(config, &mut names)?;
        let minor_units = cfg.minor_units.clone();
        let parse_config = std::sync::Arc::new(cfg.clone());
        Ok(Backfill { engine: Engine::new(cfg, names, 1, quorum), store: MemoryStore::default(), reference_ms,
                      fallback, words, rewards_out: 0, minor_units, buffer: Vec::new(),
                      writer: None, parse_thread_from, parse_config, ahead: None, spare_lines: Vec::new(),
                      journeys: journeys.then(journeys::JourneySink::default), end: None, spill_bytes })
    }

    /// Complete lines (each ending in a newline, the last one may not), numbered from `first_line`. The reward
    /// JSON lines are written to the file descriptor `out_fd` (a file the caller owns and writes nothing else
    /// to; written by a thread of this backfill's, all of it by the time `finish` returns), or returned when
    /// it is None. Returns (reward lines or b"", [(line number, refusal, raw line)], non-blank lines).
    /// `ahead`: the chunk the caller will feed next, if it knows it: a thread starts parsing it now (see
    /// `parse_ahead`); feeding another chunk next only wastes that work.
    #[pyo3(signature = (chunk, first_line, out_fd=None, ahead=None))]
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &[u8], first_line: i64, out_fd: Option<i32>,
                 ahead: Option<Bound<'py, PyBytes>>) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyList>, i64)> {
        // this chunk's lines if they were parsed ahead; then the next chunk's parse starts, beside this one's steps
        let mut parsed = self.ahead.take().filter(|a| a.is_for(chunk));
        if let Some(next) = ahead.filter(|n| n.as_bytes().len() >= self.parse_thread_from) {
            let lines = std::mem::take(&mut self.spare_lines);
            self.ahead = Some(parse_ahead::Ahead::start(&next, self.parse_config.clone(), lines)
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("starting a parsing thread: {e}")))?);
        }
        let mut out = match out_fd {
            Some(fd) => {
                let w = self.writer_for(py, fd)?;
                py.detach(|| w.spare())
            }
            None => std::mem::take(&mut self.buffer),
        };
        out.clear();
        out.reserve(chunk.len() * 5);
        let refused = PyList::empty(py);
        let mut events_in = 0i64;
        let fallback = self.fallback.bind(py);
        let words = self.words.bind(py);
        let config = self.parse_config.clone(); // the parser's (the engine's is borrowed by `step`)
        let parse_thread_from = self.parse_thread_from;
        let Backfill { engine, store, reference_ms, rewards_out, minor_units, journeys, spare_lines, writer,
                       spill_bytes, .. } = self;
        let mut spill = Spill::of(out_fd, writer, *spill_bytes, py);
        // One event: the engine, then its reward lines (or the journeys); a refusal is collected with its line.
        let mut step = |number: i64, line: &[u8], parsed: Option<Parsed<'_>>| -> PyResult<()> {
            events_in += 1;
            let any = match parsed {
                Some(p) => AnyEvent::Fast(p),
                None => match fallback.call1((PyBytes::new(py, line),)) {
                    Ok(t) => AnyEvent::Slow(owned_event(&t)?),
                    Err(e) if e.is_instance_of::<PyValueError>(py) => {
                        refused.append((number, e.value(py), PyBytes::new(py, line)))?;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                },
            };
            let event = any.event(&mut engine.names)?;
            let mut json = JsonSink { out: &mut out, minor_units, records: out_fd.is_some(), count: 0,
                                      spill: spill.as_mut() };
            let sink: &mut dyn Sink = match journeys.as_mut() {
                Some(j) => j,
                None => &mut json,
            };
            match engine.process(store, &event, *reference_ms, sink) {
                Ok(()) => *rewards_out += json.count,
                Err(r) => refused.append((number, refusal_object(py, words, &r)?, PyBytes::new(py, line)))?,
            }
            Ok(())
        };
        if let Some(ahead) = parsed.as_mut() {
            let mut lines = ahead.take_lines();
            let result = lines.drain(..).try_for_each(|(index, line, p)| step(first_line + index, line, p));
            *spare_lines = lines; // emptied (by the drain, even when a step failed): nothing borrows the chunk
            drop(parsed);
            result?;
        } else if chunk.len() < parse_thread_from {
            for (number, line) in lines(chunk, first_line) {
                step(number, line, jsonl::parse_line(line, &config))?;
            }
        } else {
            // JSON parsing is a third of the backfill's work and needs nothing of the engine but its (fixed)
            // configuration: a thread parses blocks of lines ahead while this one runs the engine on them.
            // The blocks are made here and go back and forth: memory the thread allocated would be freed on this
            // one, and a thread's pages outlive it (a new thread a chunk: 2-4 bytes an open touchpoint more).
            let config = &*config;
            std::thread::scope(|scope| -> PyResult<()> {
                type Block<'c> = Vec<(i64, &'c [u8], Option<Parsed<'c>>)>;
                let (tx, rx) = std::sync::mpsc::sync_channel::<Block<'_>>(PARSE_AHEAD);
                let (give_back, empties) = std::sync::mpsc::sync_channel::<Block<'_>>(PARSE_AHEAD + 2);
                for _ in 0..PARSE_AHEAD + 2 {
                    let _ = give_back.send(Vec::with_capacity(PARSE_BLOCK));
                }
                scope.spawn(move || {
                    let Ok(mut block) = empties.recv() else { return };
                    for (number, line) in lines(chunk, first_line) {
                        block.push((number, line, jsonl::parse_line(line, config)));
                        if block.len() == PARSE_BLOCK {
                            if tx.send(block).is_err() {
                                return; // the engine side stopped (an error): nothing more is wanted
                            }
                            let Ok(next) = empties.recv() else { return };
                            block = next;
                        }
                    }
                    let _ = tx.send(block);
                });
                for mut block in rx {
                    for (number, line, parsed) in block.drain(..) {
                        step(number, line, parsed)?;
                    }
                    let _ = give_back.send(block); // refused once the thread is done
                }
                Ok(())
            })?;
        }
        if let Some(spill) = spill {
            spill.result()?;
        }
        if out_fd.is_some() {
            self.hand_over(py, out)?;
            return Ok((PyBytes::new(py, b""), refused, events_in));
        }
        let written = PyBytes::new(py, &out);
        self.buffer = out;
        Ok((written, refused, events_in))
    }

    /// End of input: close every window; the last reward lines (written to `out_fd`, or returned). Returns
    /// once every line is written.
    #[pyo3(signature = (out_fd=None))]
    fn finish<'py>(&mut self, py: Python<'py>, out_fd: Option<i32>) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        if let Some(fd) = out_fd {
            let w = self.writer_for(py, fd)?;
            out = py.detach(|| w.spare());
        }
        let Backfill { engine, store, rewards_out, minor_units, journeys, writer, end, spill_bytes, .. } = self;
        if let Some(j) = journeys.as_mut() {
            *end = engine.watermark;
            engine.flush(store, j);
        } else {
            let mut spill = Spill::of(out_fd, writer, *spill_bytes, py);
            let mut sink = JsonSink { out: &mut out, minor_units, records: out_fd.is_some(), count: 0,
                                      spill: spill.as_mut() };
            engine.flush(store, &mut sink);
            *rewards_out += sink.count;
            if let Some(spill) = spill {
                spill.result()?;
            }
        }
        if out_fd.is_none() {
            return Ok(PyBytes::new(py, &out));
        }
        self.hand_over(py, out)?;
        if let Some(mut w) = self.writer.take() {
            py.detach(|| w.finish()).map_err(os_error)?;
        }
        Ok(PyBytes::new(py, b""))
    }

    /// After `finish` in journeys mode, what the learned models and the delay model fit on, without the
    /// touches' ids: (converted [(channels, base value)], lapsed [channels], censored [channels], unattributed,
    /// end, names, outcomes) where outcomes are five little-endian arrays, one entry per final touchpoint:
    /// channel and campaign codes into `names` (u32), touch time, first crediting conversion's time (−1: none)
    /// and final total (i64).
    fn take_paths<'py>(&mut self, py: Python<'py>, window_ms: i64, max_length: usize)
                       -> PyResult<Bound<'py, PyTuple>> {
        let Some(sink) = self.journeys.as_mut() else {
            return Err(PyValueError::new_err("not a journeys backfill"));
        };
        let c = sink.finish(self.end, window_ms, max_length, true, false);
        let n = c.outcomes.len();
        let (mut ch, mut camp) = (Vec::with_capacity(n * 4), Vec::with_capacity(n * 4));
        let (mut touch_ms, mut credit, mut total) = (Vec::with_capacity(n * 8), Vec::with_capacity(n * 8),
                                                     Vec::with_capacity(n * 8));
        for o in &c.outcomes {
            ch.extend_from_slice(&o.touch.channel.to_le_bytes());
            camp.extend_from_slice(&o.touch.campaign.to_le_bytes());
            touch_ms.extend_from_slice(&o.touch.time.to_le_bytes());
            credit.extend_from_slice(&o.first_credit.unwrap_or(-1).to_le_bytes());
            total.extend_from_slice(&o.total.to_le_bytes());
        }
        let outcome_arrays = (PyBytes::new(py, &ch), PyBytes::new(py, &camp), PyBytes::new(py, &touch_ms),
                              PyBytes::new(py, &credit), PyBytes::new(py, &total));
        let names: Vec<Bound<'py, pyo3::types::PyString>> = (0..).map_while(|i| sink.names.try_name(i))
            .map(|n| pyo3::types::PyString::new(py, n)).collect();
        let channels = |ts: &[journeys::TouchOut]| PyTuple::new(py, ts.iter().map(|t| names[t.channel as usize].clone()));
        let converted = PyList::empty(py);
        for j in &c.converted {
            converted.append((channels(&j.touches)?, j.value))?;
        }
        let segments = |v: &Vec<journeys::Segment>| -> PyResult<Bound<'py, PyList>> {
            let out = PyList::empty(py);
            for s in v {
                out.append(channels(&s.touches)?)?;
            }
            Ok(out)
        };
        let name_list = PyList::new(py, &names)?;
        (converted, segments(&c.lapsed)?, segments(&c.censored)?, c.unattributed, self.end, name_list,
         outcome_arrays).into_pyobject(py)
    }

    /// After `finish` in journeys mode: (names, converted, lapsed, censored, unattributed, outcomes, end), in
    /// `Journeys.sort`'s order. A touch is (touchpoint id, channel, campaign, time), the channel and campaign
    /// strings shared between touches.
    /// converted: (user, conversion, base value, time, touches); lapsed and censored: (user, touches);
    /// outcomes: (user, touch, final total, first crediting conversion's time or None) for every final.
    #[pyo3(signature = (window_ms, max_length, with_outcomes=true))]
    fn take_journeys<'py>(&mut self, py: Python<'py>, window_ms: i64, max_length: usize, with_outcomes: bool)
                          -> PyResult<Bound<'py, PyTuple>> {
        let Some(sink) = self.journeys.as_mut() else {
            return Err(PyValueError::new_err("not a journeys backfill"));
        };
        let c = sink.finish(self.end, window_ms, max_length, with_outcomes, true);
        let names: Vec<Bound<'py, pyo3::types::PyString>> = (0..).map_while(|i| sink.names.try_name(i))
            .map(|n| pyo3::types::PyString::new(py, n)).collect();
        let touch = |t: &journeys::TouchOut| -> PyResult<Bound<'py, PyTuple>> {
            PyTuple::new(py, [pyo3::types::PyString::new(py, &t.tid).into_any(),
                              names[t.channel as usize].clone().into_any(), names[t.campaign as usize].clone().into_any(),
                              t.time.into_pyobject(py)?.into_any()])
        };
        let touches = |ts: &[journeys::TouchOut]| -> PyResult<Vec<Bound<'py, PyTuple>>> { ts.iter().map(touch).collect() };
        let converted = PyList::empty(py);
        for j in &c.converted {
            converted.append((&*j.user, &*j.conversion, j.value, j.time, touches(&j.touches)?))?;
        }
        let segments = |v: &Vec<journeys::Segment>| -> PyResult<Bound<'py, PyList>> {
            let out = PyList::empty(py);
            for s in v {
                out.append((&*s.user, touches(&s.touches)?))?;
            }
            Ok(out)
        };
        let outcomes = PyList::empty(py);
        for o in &c.outcomes {
            outcomes.append((&*o.user, touch(&o.touch)?, o.total, o.first_credit))?;
        }
        (converted, segments(&c.lapsed)?, segments(&c.censored)?, c.unattributed, outcomes, self.end)
            .into_pyobject(py)
    }

    /// For benchmarks: the engine alone over a chunk's events (each line parsed beforehand, untimed; rewards
    /// counted, not formatted), then the end of input. Returns (events, rewards, seconds).
    #[pyo3(signature = (chunk, flush=true))]
    fn bench_engine(&mut self, chunk: &[u8], flush: bool) -> PyResult<(u64, u64, f64)> {
        let parsed: Vec<Parsed<'_>> = chunk.split(|&b| b == b'\n').filter(|l| !l.is_empty())
            .map(|l| jsonl::parse_line(l, &self.engine.config)
                .ok_or_else(|| PyValueError::new_err("bench_engine takes fast-path lines only")))
            .collect::<PyResult<_>>()?;
        let mut counter = Counter(0);
        let started = std::time::Instant::now();
        for p in &parsed {
            let event = match p {
                Parsed::Touchpoint { .. } => Event::Touchpoint(p.touchpoint(&mut self.engine.names).unwrap()),
                Parsed::Conversion { .. } => Event::Conversion(p.conversion(&mut self.engine.names).unwrap()),
            };
            let _ = self.engine.process(&mut self.store, &event, self.reference_ms, &mut counter);
        }
        if flush {
            self.engine.flush(&mut self.store, &mut counter);
        }
        Ok((parsed.len() as u64, counter.0, started.elapsed().as_secs_f64()))
    }

    /// For benchmarks: the JSON Lines reader alone over a chunk, one thread. Returns (lines, lines on the fast
    /// path, seconds).
    fn bench_parse(&self, chunk: &[u8]) -> (u64, u64, f64) {
        let started = std::time::Instant::now();
        let (mut n, mut fast) = (0u64, 0u64);
        for (_, line) in lines(chunk, 1) {
            n += 1;
            fast += u64::from(jsonl::parse_line(line, &self.engine.config).is_some());
        }
        (n, fast, started.elapsed().as_secs_f64())
    }

    /// The event time reached minus the lateness (None before the clock has moved).
    fn watermark(&self) -> Option<i64> {
        self.engine.watermark
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = stats_dict(py, &self.engine.stats)?;
        d.set_item("rewards_out", self.rewards_out)?;
        d.set_item("journeys", self.store.journeys.len())?;
        Ok(d)
    }
}

// ------------------------------------------------------------------------------------------------ partition

const SOURCES: [&str; 2] = ["touchpoints", "conversions"];

struct OutboxSink<'a> {
    fingerprint: &'a [u8; 8],
    outboxes: &'a mut HashMap<String, (Vec<u8>, u32)>,
    order: &'a mut Vec<String>,
    record: Vec<u8>,
    count: u64,
    /// Where rewards go instead of the journeys' outboxes, in the order emitted (a runtime that publishes
    /// rewards in the same transaction as the journeys keeps no outbox).
    apart: Option<Vec<(String, Vec<u8>)>>,
}

impl Sink for OutboxSink<'_> {
    fn emit(&mut self, r: &Reward<'_>) {
        self.record.clear();
        avro::write_reward(&mut self.record, r, self.fingerprint);
        self.count += 1;
        if let Some(apart) = self.apart.as_mut() {
            apart.push((r.user_id.to_owned(), self.record.clone()));
            return;
        }
        let entry = match self.outboxes.get_mut(r.user_id) {
            Some(e) => e,
            None => {
                self.order.push(r.user_id.to_owned());
                self.outboxes.entry(r.user_id.to_owned()).or_default()
            }
        };
        codec::push_outbox(&mut entry.0, &self.record);
        entry.1 += 1;
    }
}

/// One input partition of a worker (see `pipeline.engine.partition.processor.PartitionProcessor`, the same
/// contract).
#[pyclass(unsendable, module = "pipeline._native")]
struct Partition {
    engine: Engine,
    outbox: bool, // journey writes carry their rewards (else the rewards come apart, see OutboxSink)
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
    /// `words(name, args)` makes the engine's refusals. Without `outbox`, journey writes carry no rewards and each
    /// step returns them apart.
    #[new]
    #[pyo3(signature = (partition, config, slice_limit, fingerprints, decode, words, outbox=true))]
    fn new(partition: i64, config: &Bound<'_, PyDict>, slice_limit: usize, fingerprints: (Vec<u8>, Vec<u8>, Vec<u8>),
           decode: Py<PyAny>, words: Py<PyAny>, outbox: bool) -> PyResult<Self> {
        let mut names = Interner::default();
        let cfg = read_config(config, &mut names)?;
        let fp = |v: Vec<u8>| -> PyResult<[u8; 8]> {
            v.try_into().map_err(|_| PyValueError::new_err("a schema fingerprint is 8 bytes"))
        };
        let mut meta_key = vec![0u8];
        meta_key.extend_from_slice(format!("meta:{partition}").as_bytes());
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
            if key.first() == Some(&0) {
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
                                    record: Vec::with_capacity(256), count: 0,
                                    apart: (!self.outbox).then(Vec::new) };
        for (i, source, any, ingest) in &events {
            let event = any.event(&mut self.engine.names)?;
            match self.engine.apply(&mut store, &event, *ingest, &mut sink) {
                Ok(true) => self.engine.observe(*source, event.time(), &idle),
                Ok(false) => {} // a duplicate: no vote in the clock
                Err(r) => refused.append((*i, refusal_object(py, words, &r)?))?,
            }
        }
        self.engine.advance(&mut store, &idle, Some(self.slice_limit), &mut sink);
        let rewards = sink.count;
        let apart = PyList::empty(py);
        for (user, record) in sink.apart.take().unwrap_or_default() {
            apart.append((PyBytes::new(py, user.as_bytes()), PyBytes::new(py, &record)))?;
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
        PyTuple::new(py, [writes.into_any(), refused.into_any(), rewards.into_pyobject(py)?.into_any(),
                          apart.into_any()])
    }
}

// ------------------------------------------------------------------------------------------------ module

/// The journey a stored value holds, as plain data (for tests and the Python codec's cross-checks).
#[pyfunction]
fn journey_format_version() -> u8 {
    codec::FORMAT_VERSION
}

extern "C" {
    fn mi_collect(force: bool); // mimalloc's own, linked in by the mimalloc crate
}

/// Have the allocator return the pages its freed blocks leave empty (mimalloc keeps them a while for reuse):
/// the benchmark's memory figure is then what the open journeys hold, not also what growing the maps freed.
#[pyfunction]
fn release_free_memory() {
    // SAFETY: mi_collect takes no pointers and may be called at any time from any thread.
    unsafe { mi_collect(true) }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Backfill>()?;
    m.add_class::<Partition>()?;
    m.add_class::<trees::PriorityTrees>()?;
    m.add_function(wrap_pyfunction!(batch::gather_batch, m)?)?;
    m.add_function(wrap_pyfunction!(journey_format_version, m)?)?;
    m.add_function(wrap_pyfunction!(release_free_memory, m)?)?;
    Ok(())
}
