//! The backfill's next chunk, parsed by a thread of its own while the engine works through the current one.
//!
//! Parsing a chunk on a second thread while the engine runs on it (`Backfill::feed`'s scoped thread) overlaps
//! the two only within the chunk: the engine waits for the first lines at every chunk's start, and whenever the
//! parsing thread loses its core to the output writer (two cores, three busy threads) the engine waits again.
//! Handed the next chunk one call early, the parsing runs a whole chunk ahead, and the engine finds its lines
//! ready.

use std::sync::Arc;
use std::thread::JoinHandle;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::config::Config;
use crate::jsonl::{self, Parsed};

/// A chunk's non-blank lines: (index of the line in the chunk, the line, the event if the fast path took it).
pub type Lines = Vec<(i64, &'static [u8], Option<Parsed<'static>>)>;

pub struct Ahead {
    thread: Option<JoinHandle<Lines>>,
    data: (usize, usize), // where the chunk's bytes are and how many: to know the chunk when it is fed
    _chunk: Py<PyBytes>, // held (after `thread` is joined: see Drop) so the bytes the lines borrow stay put
}

impl Ahead {
    /// Start parsing `chunk` into `lines` (emptied first; passed in so its memory is this thread's).
    pub fn start(chunk: &Bound<'_, PyBytes>, config: Arc<Config>, mut lines: Lines) -> std::io::Result<Ahead> {
        let bytes = chunk.as_bytes();
        let data = (bytes.as_ptr() as usize, bytes.len());
        // SAFETY: a bytes object's contents never change or move, and `_chunk` keeps this one alive until the
        // thread is joined and the lines it made are gone (`take_lines`' caller drops them before the Ahead).
        let text: &'static [u8] = unsafe { std::slice::from_raw_parts(data.0 as *const u8, data.1) };
        lines.clear();
        lines.reserve(data.1 / 128); // about a line per 180 bytes: grown here, not on the thread, in most chunks
        let thread = std::thread::Builder::new().name("backfill-parse".into()).spawn(move || {
            for (index, line) in jsonl::lines(text, 0) {
                lines.push((index, line, jsonl::parse_line(line, &config)));
            }
            lines
        })?;
        Ok(Ahead { thread: Some(thread), data, _chunk: chunk.clone().unbind() })
    }

    /// Whether this is the parse of `chunk` (the same bytes object: it is held, so no other has its address).
    pub fn is_for(&self, chunk: &[u8]) -> bool {
        self.data == (chunk.as_ptr() as usize, chunk.len())
    }

    /// The chunk's lines, once parsed. They borrow the chunk's bytes: drop them before this Ahead.
    pub fn take_lines(&mut self) -> Lines {
        let thread = self.thread.take().expect("the lines are taken once");
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join(); // before the chunk it reads is let go
        }
    }
}
