//! The event-time clock over one or more inputs: each input's frontier is the oldest of its `quorum` newest
//! event times, the clock is the slowest live input's frontier (or the fastest's when all are idle), never below
//! a floor, and the watermark trails it by the allowed lateness. A port of `pipeline/engine/clock.py`, which
//! says why.

#[derive(Clone, Debug)]
pub struct Clock {
    pub lateness_ms: i64,
    pub quorum: usize,
    pub recent: Vec<Vec<i64>>, // per source: ascending, at most `quorum` long
    pub newest: Vec<Option<i64>>,
    pub floor: Option<i64>,
}

impl Clock {
    pub fn new(sources: usize, lateness_ms: i64, quorum: usize) -> Clock {
        Clock { lateness_ms, quorum, recent: vec![Vec::new(); sources], newest: vec![None; sources], floor: None }
    }

    pub fn observe(&mut self, source: usize, t: i64) {
        if self.newest[source].is_none_or(|n| t > n) {
            self.newest[source] = Some(t);
        }
        let recent = &mut self.recent[source];
        if self.quorum == 1 {
            if recent.is_empty() {
                recent.push(t);
            } else if t > recent[0] {
                recent[0] = t;
            }
            return;
        }
        if recent.len() >= self.quorum {
            if t <= recent[0] {
                return;
            }
            recent.remove(0); // the oldest of the newest leaves; t goes in its place in order
        }
        let at = recent.partition_point(|&x| x <= t);
        recent.insert(at, t);
    }

    pub fn frontier(&self, source: usize) -> Option<i64> {
        let r = &self.recent[source];
        if r.len() >= self.quorum { Some(r[0]) } else { None }
    }

    pub fn newest_any(&self) -> Option<i64> {
        self.newest.iter().flatten().copied().max()
    }

    pub fn raise_floor(&mut self, t: i64) -> bool {
        if self.floor.is_none_or(|f| t > f) {
            self.floor = Some(t);
            true
        } else {
            false
        }
    }

    pub fn time(&self, idle: &[bool]) -> Option<i64> {
        let n = self.recent.len();
        let any_live = (0..n).any(|s| !idle[s]);
        let reached = if !any_live {
            (0..n).filter_map(|s| self.frontier(s)).max()
        } else {
            let mut low: Option<i64> = None;
            let mut all = true;
            for s in (0..n).filter(|&s| !idle[s]) {
                match self.frontier(s) {
                    Some(f) => low = Some(low.map_or(f, |l| l.min(f))),
                    None => all = false,
                }
            }
            if all { low } else { None }
        };
        match (self.floor, reached) {
            (Some(f), None) => Some(f),
            (Some(f), Some(r)) if f > r => Some(f),
            (_, r) => r,
        }
    }

    pub fn watermark(&self, idle: &[bool]) -> Option<i64> {
        self.time(idle).map(|t| t - self.lateness_ms)
    }
}
