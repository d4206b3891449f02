//! The allocator, as Python may ask it.

use pyo3::prelude::*;

extern "C" {
    fn mi_collect(force: bool); // mimalloc's own, linked in by the mimalloc crate
}

/// Have the allocator return the pages its freed blocks leave empty (mimalloc keeps them a while for reuse):
/// the benchmark's memory figure is then what the open journeys hold, not also what growing the maps freed.
#[pyfunction]
pub fn release_free_memory() {
    // SAFETY: mi_collect takes no pointers and may be called at any time from any thread.
    unsafe { mi_collect(true) }
}
