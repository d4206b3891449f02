//! `Backfill`: the engine over a JSON Lines log, journeys in memory; reward lines out (written by a thread of
//! its own, `writer`), or completed journeys for `rewardstream fit`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use rustc_hash::FxHashMap as HashMap;

use crate::bindings::conversion::{owned_event, read_config, refusal_object, stats_dict, AnyEvent};
use crate::config::Config;
use crate::engine::{Engine, Event, MemoryStore};
use crate::intern::Interner;
use crate::journey::{Reward, Sink};
use crate::jsonl::{self, lines, Parsed};
use crate::{journeys, parse_ahead, records, writer};

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
/// touchpoints at once (the end of input closes every window still open) would otherwise make one buffer of all
/// their rewards, and the writer one text of it, bounded only by the journeys: the kernel zeroing the pages
/// those buffers grow into becomes a large share of the backfill's CPU.
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
pub struct Backfill {
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
            // JSON parsing is a large share of the backfill's work and needs nothing of the engine but its (fixed)
            // configuration: a thread parses blocks of lines ahead while this one runs the engine on them.
            // The blocks are made here and go back and forth: memory the thread allocated would be freed on this
            // one, and a thread's pages outlive it (a new thread a chunk would leave its pages behind each time).
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
