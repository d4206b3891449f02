//! Completed journeys read off the engine's rewards as they are produced: the same definition as
//! `pipeline/attribution/journeys.py` (`JourneyCollector`), without formatting and re-parsing a reward line each.
//!
//! - converted: a conversion's touchpoints in the latest revision of its split, by position;
//! - lapsed: touchpoints that went final with no conversion crediting them, per user in time order, cut where a
//!   touch is more than the window after its segment's first or the segment reached the journey cap;
//! - censored: such a segment whose last touch's window was still open when the log ended.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use crate::intern::{Interner, Sym};
use crate::journey::{Kind, Reward, Sink};

/// A list that grows by blocks: a Vec of every final would grow by doubling, copying everything and touching
/// fresh pages (which the kernel zeroes) each time.
pub struct Chunks<T> {
    blocks: Vec<Vec<T>>,
}

const CHUNK: usize = 4096;

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Chunks { blocks: Vec::new() }
    }
}

impl<T> Chunks<T> {
    pub fn push(&mut self, item: T) {
        match self.blocks.last_mut() {
            Some(b) if b.len() < CHUNK => b.push(item),
            _ => {
                let mut b = Vec::with_capacity(CHUNK);
                b.push(item);
                self.blocks.push(b);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.blocks.iter().map(Vec::len).sum()
    }
}

impl<T> IntoIterator for Chunks<T> {
    type Item = T;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<T>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.blocks.into_iter().flatten()
    }
}

pub struct TouchOut {
    pub tid: Box<str>,
    pub channel: Sym,
    pub campaign: Sym,
    pub time: i64,
}

struct SplitAcc {
    revision: i64,
    conv_time: i64,
    touches: Vec<(i64, TouchOut, i64)>, // position, touch, amount
}

struct FinalRec {
    user: Box<str>,
    touch: TouchOut,
    total: i64,
}

#[derive(Default)]
pub struct JourneySink {
    pub names: Interner, // channels and campaigns
    splits: HashMap<Box<str>, SplitAcc>, // "user\0conversion"
    finals: Chunks<FinalRec>,
    unattributed: HashSet<Box<str>>, // "user\0conversion"
    key: String,
}

pub struct Converted {
    pub user: Box<str>,
    pub conversion: Box<str>,
    pub value: i64,
    pub time: i64,
    pub touches: Vec<TouchOut>,
}

pub struct Segment {
    pub user: Box<str>,
    pub touches: Vec<TouchOut>,
}

pub struct Outcome {
    pub user: Box<str>,
    pub touch: TouchOut,
    pub total: i64,
    pub first_credit: Option<i64>,
}

pub struct Collected {
    pub converted: Vec<Converted>,
    pub lapsed: Vec<Segment>,
    pub censored: Vec<Segment>,
    pub unattributed: usize,
    pub outcomes: Vec<Outcome>,
}

impl Sink for JourneySink {
    fn emit(&mut self, r: &Reward<'_>) {
        match r.kind {
            Kind::Attribution | Kind::Correction => {
                self.key.clear();
                self.key.push_str(r.user_id);
                self.key.push('\0');
                self.key.push_str(r.conversion_id.unwrap_or(""));
                let touch = TouchOut { tid: r.touchpoint_id.into(), channel: self.names.intern(r.channel),
                                       campaign: self.names.intern(r.campaign_id), time: r.touch_time_ms };
                let position = r.position.unwrap_or(0);
                match self.splits.get_mut(self.key.as_str()) {
                    Some(acc) if r.revision < acc.revision => {}
                    Some(acc) if r.revision == acc.revision => acc.touches.push((position, touch, r.amount_minor)),
                    Some(acc) => {
                        acc.revision = r.revision;
                        acc.conv_time = r.conversion_time_ms.unwrap_or(0);
                        acc.touches.clear();
                        acc.touches.push((position, touch, r.amount_minor));
                    }
                    None => {
                        let acc = SplitAcc { revision: r.revision, conv_time: r.conversion_time_ms.unwrap_or(0),
                                             touches: vec![(position, touch, r.amount_minor)] };
                        self.splits.insert(self.key.as_str().into(), acc);
                    }
                }
            }
            Kind::Final => {
                let touch = TouchOut { tid: r.touchpoint_id.into(), channel: self.names.intern(r.channel),
                                       campaign: self.names.intern(r.campaign_id), time: r.touch_time_ms };
                self.finals.push(FinalRec { user: r.user_id.into(), touch, total: r.amount_minor });
            }
            Kind::Unattributed => {
                self.key.clear();
                self.key.push_str(r.user_id);
                self.key.push('\0');
                self.key.push_str(r.conversion_id.unwrap_or(""));
                if !self.unattributed.contains(self.key.as_str()) {
                    self.unattributed.insert(self.key.as_str().into());
                }
            }
            Kind::Refund => {}
        }
    }
}

impl JourneySink {
    /// `end`: the watermark before the end-of-input flush (None: nothing is censored).
    /// In the order `Journeys.sort` gives (conversions by time, user, id; the rest by user, time, id), so
    /// Python need not sort; `outcomes` only when asked (the delay model wants them, fit does not).
    pub fn finish(&mut self, end: Option<i64>, window: i64, max_len: usize, with_outcomes: bool, sort_outcomes: bool)
                  -> Collected {
        let mut splits: Vec<(Box<str>, SplitAcc)> = std::mem::take(&mut self.splits).into_iter().collect();
        let finals = std::mem::take(&mut self.finals);
        let n_finals = finals.len();
        let unattributed = std::mem::take(&mut self.unattributed);
        for (_, acc) in splits.iter_mut() {
            acc.touches.sort_by_key(|t| t.0);
        }
        let mut outcomes = Vec::with_capacity(if with_outcomes { n_finals } else { 0 });
        let mut uncredited: Vec<(Box<str>, TouchOut)> = Vec::with_capacity(n_finals);
        let unattributed = {
            // (user, touchpoint) → the earliest conversion crediting it, keys borrowed from the splits
            let credited: usize = splits.iter().map(|(_, acc)| acc.touches.len()).sum();
            let mut first_credit: HashMap<(&str, &str), i64> =
                HashMap::with_capacity_and_hasher(credited, Default::default());
            let mut split_keys: HashSet<&str> = HashSet::with_capacity_and_hasher(splits.len(), Default::default());
            for (key, acc) in &splits {
                split_keys.insert(key);
                let user = key.split_once('\0').map_or(&**key, |(u, _)| u);
                for (_, t, _) in &acc.touches {
                    let e = first_credit.entry((user, &*t.tid)).or_insert(acc.conv_time);
                    *e = (*e).min(acc.conv_time);
                }
            }
            for f in finals {
                let credit = first_credit.get(&(&*f.user, &*f.touch.tid)).copied();
                if credit.is_none() {
                    uncredited.push((f.user.clone(), TouchOut { tid: f.touch.tid.clone(), ..f.touch }));
                }
                if with_outcomes {
                    outcomes.push(Outcome { user: f.user, touch: f.touch, total: f.total, first_credit: credit });
                }
            }
            unattributed.iter().filter(|k| !split_keys.contains(&***k)).count()
        };
        let mut converted = Vec::with_capacity(splits.len());
        for (key, acc) in splits {
            let (user, conversion) = key.split_once('\0').unwrap_or((&key, ""));
            let value = acc.touches.iter().map(|t| t.2).sum();
            converted.push(Converted { user: user.into(), conversion: conversion.into(), value, time: acc.conv_time,
                                       touches: acc.touches.into_iter().map(|t| t.1).collect() });
        }
        // every key below is unique (a user's conversion; a user's touchpoint), so an unstable sort gives the one
        // order, without the stable sort's scratch buffer
        converted.sort_unstable_by(|a, b| (a.time, &a.user, &a.conversion).cmp(&(b.time, &b.user, &b.conversion)));
        if sort_outcomes {
            outcomes.sort_unstable_by(|a, b| {
                (&a.user, a.touch.time, &a.touch.tid).cmp(&(&b.user, b.touch.time, &b.touch.tid))
            });
        }
        uncredited.sort_unstable_by(|a, b| (&a.0, a.1.time, &a.1.tid).cmp(&(&b.0, b.1.time, &b.1.tid)));
        let (mut lapsed, mut censored) = (Vec::new(), Vec::new());
        let mut segment: Vec<TouchOut> = Vec::new();
        let mut seg_user: Option<Box<str>> = None;
        let close = |user: Box<str>, touches: Vec<TouchOut>, lapsed: &mut Vec<Segment>, censored: &mut Vec<Segment>| {
            let open = end.is_some_and(|e| touches.last().is_some_and(|t| t.time + window >= e));
            (if open { censored } else { lapsed }).push(Segment { user, touches });
        };
        for (user, t) in uncredited {
            let cut = match (&seg_user, segment.first()) {
                (Some(u), Some(first)) => *u != user || t.time - first.time > window || segment.len() >= max_len,
                _ => false,
            };
            if cut {
                close(seg_user.take().unwrap(), std::mem::take(&mut segment), &mut lapsed, &mut censored);
            }
            seg_user = Some(user);
            segment.push(t);
        }
        if let Some(u) = seg_user {
            close(u, segment, &mut lapsed, &mut censored);
        }
        Collected { converted, lapsed, censored, unattributed, outcomes }
    }
}
