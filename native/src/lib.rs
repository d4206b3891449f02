//! `pipeline._native`: the attribution engine in Rust, behind the same batch entry points as the Python engine.
//!
//! - `Backfill`: JSON Lines chunks in, reward JSON lines out (the engine's journeys in memory).
//! - `Partition`: one input partition of the worker: raw Kafka records in, journey-table writes (each carrying
//!   its outbox of Avro reward records) out; journeys are loaded from and written to the caller's store.
//!
//! The happy path runs here. Whatever the fast path does not decide (a record of an older schema, a refused
//! event's wording, an odd JSON form) goes to the Python callables given at construction, so both engines take
//! the same decisions in the same words; the differential tests hold them to it.
//!
//! The modules form layers, each using only those above it in this list:
//! - values and rules: `intern`, `money`, `user_key`, `validate`, `keys`, `config`;
//! - one journey: `touches`, `models`, `journey`;
//! - input and output formats: `event_fields`, `scan`, `jsonl`, `records`, `avro`, `codec`;
//! - the engine: `clock`, `due_queue`, `engine`, `journeys`;
//! - threads and buffers for the bindings: `writer`, `parse_ahead`, `batch`, `trees`;
//! - `bindings`: the Python classes and functions, registered here.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod intern;
mod money;
mod user_key;
mod validate;
mod keys;
mod config;

mod touches;
mod models;
mod journey;

mod event_fields;
mod scan;
mod jsonl;
mod records;
mod avro;
mod codec;

mod clock;
mod due_queue;
mod engine;
mod journeys;

mod writer;
mod parse_ahead;
mod batch;
mod trees;

mod bindings;

#[cfg(test)]
mod fuzz;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<bindings::backfill::Backfill>()?;
    m.add_class::<bindings::partition::Partition>()?;
    m.add_class::<trees::PriorityTrees>()?;
    m.add_function(wrap_pyfunction!(batch::gather_batch, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::memory::release_free_memory, m)?)?;
    bindings::rules::add(m)
}
