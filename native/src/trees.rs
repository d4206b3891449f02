//! Prioritized replay's trees: a sum tree (draws with P(i) = p_i / Σp) and a min tree (the smallest
//! positive priority, which bounds the largest importance weight), updated together leaf by leaf. The min tree
//! holds f32 (it only scales weights, to ~1e-7): 25 bytes per slot for both trees instead of 32.
//!
//! In numpy each tree level is a handful of calls, ~20 levels for a million rows, so an eager update of a batch's
//! priorities is dozens of calls. Here it is one walk a leaf of about 20 steps.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;

#[pyclass(module = "pipeline._native")]
pub struct PriorityTrees {
    leaves: usize,
    capacity: usize,
    sum: Vec<f64>,
    min: Vec<f32>, // the smallest positive priority only scales the weights: f32 halves its memory
}

impl PriorityTrees {
    fn check(&self, slot: i64) -> PyResult<usize> {
        if slot < 0 || slot as usize >= self.capacity {
            return Err(PyIndexError::new_err(format!("slot {slot} outside 0..{}", self.capacity)));
        }
        Ok(slot as usize)
    }

    fn put(&mut self, slot: usize, value: f64) {
        let mut node = slot + self.leaves;
        self.sum[node] = value;
        self.min[node] = if value > 0.0 { (value as f32).max(f32::MIN_POSITIVE) } else { f32::INFINITY };
        node >>= 1;
        while node >= 1 {
            let (l, r) = (2 * node, 2 * node + 1);
            self.sum[node] = self.sum[l] + self.sum[r];
            self.min[node] = self.min[l].min(self.min[r]);
            node >>= 1;
        }
    }

    fn descend(&self, target: f64) -> usize {
        let mut node = 1;
        let mut value = target;
        while node < self.leaves {
            let (l, r) = (2 * node, 2 * node + 1);
            // Rounding can leave `value` a hair above the left sum when the right side is empty: stay left.
            if value < self.sum[l] || self.sum[r] <= 0.0 {
                node = l;
            } else {
                value -= self.sum[l];
                node = r;
            }
        }
        node - self.leaves
    }
}

fn read<T: pyo3::buffer::Element + Copy>(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<T>> {
    let buf = PyBuffer::<T>::get(obj)?;
    buf.to_vec(py).map_err(|_| PyValueError::new_err(format!("{what}: a contiguous array is needed")))
}

#[pymethods]
impl PriorityTrees {
    #[new]
    fn new(capacity: usize) -> PyResult<Self> {
        if capacity == 0 {
            return Err(PyValueError::new_err("capacity must be at least 1"));
        }
        let leaves = capacity.next_power_of_two();
        Ok(PriorityTrees { leaves, capacity, sum: vec![0.0; 2 * leaves], min: vec![f32::INFINITY; 2 * leaves] })
    }

    /// Sum of all priorities.
    #[getter]
    fn total(&self) -> f64 {
        self.sum[1]
    }

    /// Smallest positive priority (inf when none is positive).
    #[getter]
    fn min_positive(&self) -> f64 {
        self.min[1] as f64
    }

    /// One leaf (the per-event path: no array to build).
    fn set_one(&mut self, slot: i64, value: f64) -> PyResult<()> {
        let s = self.check(slot)?;
        self.put(s, value);
        Ok(())
    }

    /// Leaves `slots` (int64) to `values` (float64); the last write wins for a repeated slot.
    fn set(&mut self, py: Python<'_>, slots: &Bound<'_, PyAny>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let slots: Vec<i64> = read(py, slots, "slots")?;
        let values: Vec<f64> = read(py, values, "values")?;
        if slots.len() != values.len() {
            return Err(PyValueError::new_err(format!("{} slots but {} values", slots.len(), values.len())));
        }
        for &s in &slots {
            self.check(s)?;
        }
        for (&s, &v) in slots.iter().zip(&values) {
            self.put(s as usize, v);
        }
        Ok(())
    }

    /// Every leaf of 0..n at once (a restore, or a new exponent): leaves first, then each level once.
    fn set_all(&mut self, py: Python<'_>, values: &Bound<'_, PyAny>) -> PyResult<()> {
        let values: Vec<f64> = read(py, values, "values")?;
        if values.len() > self.capacity {
            return Err(PyValueError::new_err("more values than slots"));
        }
        for i in 0..self.leaves {
            let v = values.get(i).copied().unwrap_or(0.0);
            self.sum[self.leaves + i] = v;
            self.min[self.leaves + i] = if v > 0.0 { (v as f32).max(f32::MIN_POSITIVE) } else { f32::INFINITY };
        }
        for node in (1..self.leaves).rev() {
            self.sum[node] = self.sum[2 * node] + self.sum[2 * node + 1];
            self.min[node] = self.min[2 * node].min(self.min[2 * node + 1]);
        }
        Ok(())
    }

    /// Leaf values of `slots` into `out` (float64, same length).
    fn get(&self, py: Python<'_>, slots: &Bound<'_, PyAny>, out: &Bound<'_, PyAny>) -> PyResult<()> {
        let slots: Vec<i64> = read(py, slots, "slots")?;
        let out = PyBuffer::<f64>::get(out)?;
        let cells = out.as_mut_slice(py).ok_or_else(|| PyValueError::new_err("out: a writable contiguous array"))?;
        if cells.len() != slots.len() {
            return Err(PyValueError::new_err("out must have one value per slot"));
        }
        for (cell, &s) in cells.iter().zip(&slots) {
            cell.set(self.sum[self.check(s)? + self.leaves]);
        }
        Ok(())
    }

    /// For each target in [0, total): the slot whose prefix-sum interval holds it, into `out` (int64); the
    /// slot's priority into `prios` (float64).
    fn find(&self, py: Python<'_>, targets: &Bound<'_, PyAny>, out: &Bound<'_, PyAny>, prios: &Bound<'_, PyAny>
    ) -> PyResult<()> {
        let targets: Vec<f64> = read(py, targets, "targets")?;
        let out = PyBuffer::<i64>::get(out)?;
        let prios = PyBuffer::<f64>::get(prios)?;
        let cells = out.as_mut_slice(py).ok_or_else(|| PyValueError::new_err("out: a writable contiguous array"))?;
        let pcells =
            prios.as_mut_slice(py).ok_or_else(|| PyValueError::new_err("prios: a writable contiguous array"))?;
        if cells.len() != targets.len() || pcells.len() != targets.len() {
            return Err(PyValueError::new_err("out and prios must have one value per target"));
        }
        for ((cell, pcell), &t) in cells.iter().zip(pcells.iter()).zip(&targets) {
            let slot = self.descend(t);
            cell.set(slot as i64);
            pcell.set(self.sum[slot + self.leaves]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_mins_and_draws() {
        let mut t = PriorityTrees::new(5).unwrap();
        for (s, v) in [(0, 1.0), (1, 0.0), (2, 3.0), (3, 0.5), (4, 0.0)] {
            t.put(s, v);
        }
        assert_eq!(t.sum[1], 4.5);
        assert_eq!(t.min[1], 0.5);
        assert_eq!(t.descend(0.0), 0);
        assert_eq!(t.descend(0.99), 0);
        assert_eq!(t.descend(1.0), 2);
        assert_eq!(t.descend(3.99), 2);
        assert_eq!(t.descend(4.0), 3);
        assert_eq!(t.descend(4.5), 3); // rounding past the end lands on the last leaf with mass
        t.put(3, 0.0);
        assert_eq!(t.min[1], 1.0);
        assert_eq!(t.descend(4.49), 2);
    }
}
