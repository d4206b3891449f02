//! The Python classes and functions of `pipeline._native`, one file each, in layers as in `lib.rs`:
//! `conversion` is what crosses between the two languages, `rules` the values both keep (exported so that
//! Python's tests hold them equal), then the classes.

pub mod conversion;
pub mod rules;
pub mod memory;
pub mod backfill;
pub mod partition;
