//! The replay buffer's batch columns in one pass over the gathered rows.
//!
//! In numpy each derived column (money from minor units, delay with NaN for unpaid rows, channel and final
//! from the flags, the reward source) is one or two calls, and a batch needs about twenty: on a small batch the
//! calls' overhead is the cost. Here the rows are gathered and every column written in a single loop. The layout is
//! `pipeline/replay/storage.py`'s int64 record: seq, attributed minor, final minor, original (f64 bits), touch
//! ms, first credit ms (-1: none), flags (channel << 1 | final).

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

const WIDTH: usize = 7;

fn cells<'a, T: pyo3::buffer::Element>(py: Python<'a>, buf: &'a PyBuffer<T>, n: usize, what: &str
) -> PyResult<&'a [std::cell::Cell<T>]> {
    let cells = buf.as_mut_slice(py).ok_or_else(|| PyValueError::new_err(format!("{what}: a writable array")))?;
    if cells.len() != n {
        return Err(PyValueError::new_err(format!("{what}: {n} values expected")));
    }
    Ok(cells)
}

/// Gather `slots` of `rec` (n x 7 int64, C order) into the batch columns.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn gather_batch(
    py: Python<'_>, rec: &Bound<'_, PyAny>, slots: &Bound<'_, PyAny>, scale: f64, index: &Bound<'_, PyAny>,
    attributed: &Bound<'_, PyAny>, original: &Bound<'_, PyAny>, finals: &Bound<'_, PyAny>,
    delay: &Bound<'_, PyAny>, channel: &Bound<'_, PyAny>, source: &Bound<'_, PyAny>, touch: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let rec = PyBuffer::<i64>::get(rec)?;
    if !rec.is_c_contiguous() || rec.dimensions() != 2 || rec.shape()[1] != WIDTH {
        return Err(PyValueError::new_err("rec: a C-contiguous n x 7 int64 array"));
    }
    let rows = rec.as_slice(py).ok_or_else(|| PyValueError::new_err("rec: a contiguous array"))?;
    let slots = PyBuffer::<i64>::get(slots)?;
    let slots = slots.to_vec(py)?;
    let n = slots.len();
    let held = rows.len() / WIDTH;
    let (ib, ab, ob, fb, db, cb, sb, tb) = (
        PyBuffer::<i64>::get(index)?, PyBuffer::<f64>::get(attributed)?, PyBuffer::<f64>::get(original)?,
        PyBuffer::<u8>::get(finals)?, PyBuffer::<f64>::get(delay)?, PyBuffer::<i64>::get(channel)?,
        PyBuffer::<i8>::get(source)?, PyBuffer::<i64>::get(touch)?,
    );
    let (io, ao, oo, fo, dout, co, so, to) = (
        cells(py, &ib, n, "index")?, cells(py, &ab, n, "attributed")?, cells(py, &ob, n, "original")?,
        cells(py, &fb, n, "final")?, cells(py, &db, n, "delay")?, cells(py, &cb, n, "channel")?,
        cells(py, &sb, n, "source")?, cells(py, &tb, n, "touch")?,
    );
    for (i, &slot) in slots.iter().enumerate() {
        if slot < 0 || slot as usize >= held {
            return Err(PyIndexError::new_err(format!("slot {slot} outside 0..{held}")));
        }
        let r = &rows[slot as usize * WIDTH..slot as usize * WIDTH + WIDTH];
        let (seq, attr, orig, touch_ms, credit, flags) = (r[0].get(), r[1].get(), r[3].get(), r[4].get(), r[5].get(), r[6].get());
        let is_final = flags & 1 == 1;
        io[i].set(seq);
        ao[i].set(attr as f64 * scale);
        oo[i].set(f64::from_bits(orig as u64));
        fo[i].set(is_final as u8);
        dout[i].set(if credit >= 0 { (credit - touch_ms) as f64 * 0.001 } else { f64::NAN });
        co[i].set(flags >> 1);
        so[i].set(if is_final { 2 } else { (credit >= 0) as i8 });
        to[i].set(touch_ms);
    }
    Ok(())
}
