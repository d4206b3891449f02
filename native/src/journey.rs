//! One user's journey as a state machine: (journey, event, watermark) → (journey, attributed rewards).
//! A port of `pipeline/engine/journey.py`, operation for operation, so that both engines give the same
//! rewards in the same order (the differential tests check it). Every check that can refuse an event runs
//! before the journey is touched. The touches themselves are kept by `touches`.

use crate::config::{Config, LINEAR, MODEL_NAMES};
use crate::intern::{Interner, Sym};
use crate::models::Models;
use crate::money::{split_exact, Weights};
use crate::touches::{TouchRec, Touches};

/// A conversion (or refund) as last attributed. `revision` is that of the last fact published about it (−1 before
/// the first: a refund of a conversion that pays nobody yet), so each new fact takes the next one. `touches` are
/// empty while it pays nobody.
#[derive(Clone, Debug)]
pub struct Split {
    pub conversion_id: Box<str>,
    pub event: Sym,
    pub time: i64,
    pub currency: Sym,
    pub value_minor: i64,
    pub base_minor: i64,
    pub model: u8,
    pub used_model: u8,
    pub revision: i64,
    pub touches: Touches,
    pub shares: Vec<i64>,
    pub(crate) local_shares: Vec<i64>, // empty when equal to `shares` (a conversion in the base currency): see `local_share`
    pub refund_of: Option<Box<str>>,
    pub refunded_minor: i64,
    pub refunded_base: i64,
}

/// A journey's retained conversions and refunds: one pointer, its length and capacity in the block with the
/// splits (a `Vec` behind a `Box` takes two allocations, and a `Vec`'s first push makes room for four splits
/// where most journeys have one conversion). Nothing is allocated while there are none (most open
/// journeys). Reads go through the slice it derefs to.
#[derive(Clone, Debug, Default)]
pub struct Splits(thin_vec::ThinVec<Split>);

impl Splits {
    pub fn push(&mut self, split: Split) {
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1); // the first exactly; doubling from there
        }
        self.0.push(split);
    }

    pub fn retain(&mut self, keep: impl FnMut(&Split) -> bool) {
        self.0.retain(keep);
        if self.0.is_empty() {
            self.0 = thin_vec::ThinVec::new(); // the block goes
        }
    }

    pub fn clear(&mut self) {
        self.0 = thin_vec::ThinVec::new();
    }
}

impl From<Vec<Split>> for Splits {
    fn from(v: Vec<Split>) -> Splits {
        let mut out = thin_vec::ThinVec::with_capacity(v.len());
        out.extend(v);
        Splits(out)
    }
}

impl std::ops::Deref for Splits {
    type Target = [Split];

    fn deref(&self) -> &[Split] {
        &self.0
    }
}

impl std::ops::DerefMut for Splits {
    fn deref_mut(&mut self) -> &mut [Split] {
        &mut self.0
    }
}

#[derive(Clone, Debug, Default)]
pub struct Journey {
    pub touches: Touches, // open touchpoints, sorted by (time, id); `earned` is each one's running total
    pub splits: Splits, // conversions and refunds still retained
}

impl Journey {
    pub fn is_empty(&self) -> bool {
        self.touches.is_empty() && self.splits.is_empty()
    }
}

/// Kinds of output, in the order of `RewardKind` in the Avro schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Attribution = 0,
    Correction = 1,
    Refund = 2,
    Final = 3,
    Unattributed = 4,
}

impl Kind {
    /// Every kind, in the schema's order.
    pub const ALL: [Kind; 5] = [Kind::Attribution, Kind::Correction, Kind::Refund, Kind::Final, Kind::Unattributed];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Attribution => "attribution",
            Kind::Correction => "correction",
            Kind::Refund => "refund",
            Kind::Final => "final",
            Kind::Unattributed => "unattributed",
        }
    }
}

pub const UNKNOWN_USER: &str = "unknown_user";
pub const NO_TOUCHPOINT_IN_WINDOW: &str = "no_touchpoint_in_window";

/// One output fact, borrowing its strings from the journey it came from.
#[derive(Clone, Copy, Debug)]
pub struct Reward<'a> {
    pub kind: Kind,
    pub touchpoint_id: &'a str,
    pub episode_id: &'a str,
    pub user_id: &'a str,
    pub campaign_id: &'a str,
    pub channel: &'a str,
    pub revision: i64,
    pub amount_minor: i64,
    pub base_currency: &'a str,
    pub original_reward: f64,
    pub touch_time_ms: i64,
    pub conversion_id: Option<&'a str>,
    pub model: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub local_amount_minor: Option<i64>,
    pub conversion_value_minor: Option<i64>,
    pub conversion_time_ms: Option<i64>,
    pub position: Option<i64>,
    pub journey_length: Option<i64>,
    pub event: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Where rewards go as a step produces them (an output buffer, an outbox, a counter).
pub trait Sink {
    fn emit(&mut self, r: &Reward<'_>);
}

/// Why an event was refused, with the values `pipeline.engine.refusals` words the message from.
#[derive(Clone, Debug)]
pub enum Refusal {
    Duplicate(&'static str), // "touchpoint" / "conversion": counted and ignored, not an error
    Late { time: i64, watermark: i64, lateness: i64 },
    Future { time: i64, skew: i64, ingest: i64 },
    NoRate { currency: String, base: String },
    UnknownRefund { refund_of: String, user: String },
    RefundTooOld { after: i64, refund_of: String, retention: i64 },
    RefundCurrency { currency: String, original: String },
    RefundExceeds { value_minor: i64, left: i64 },
}

/// What a step needs besides the journey.
pub struct Ctx<'a> {
    pub config: &'a Config,
    pub models: &'a Models,
    pub names: &'a Interner,
    pub watermark: Option<i64>,
    pub ingest_ms: Option<i64>,
}

impl Ctx<'_> {
    fn base(&self) -> &str {
        self.names.name(self.config.base)
    }
}

pub struct TouchpointIn<'a> {
    pub touchpoint_id: &'a str,
    pub episode_id: &'a str,
    pub user_id: &'a str,
    pub campaign: Sym,
    pub channel: Sym,
    pub time: i64,
    pub reward: f64,
}

pub struct ConversionIn<'a> {
    pub conversion_id: &'a str,
    pub user_id: &'a str,
    pub event: Sym,
    pub value_minor: i64,
    pub currency: Sym,
    pub time: i64,
    pub refund_of: Option<&'a str>,
    pub model: Option<u8>,
}

fn check_time(time: i64, ctx: &Ctx<'_>) -> Result<(), Refusal> {
    if let Some(wm) = ctx.watermark {
        if time < wm {
            return Err(Refusal::Late { time, watermark: wm, lateness: ctx.config.allowed_lateness_ms });
        }
    }
    if let Some(ingest) = ctx.ingest_ms {
        if time > ingest + ctx.config.max_future_skew_ms {
            return Err(Refusal::Future { time, skew: ctx.config.max_future_skew_ms, ingest });
        }
    }
    Ok(())
}

fn rewards_of(kind: Kind, s: &Split, user: &str, ctx: &Ctx<'_>, sink: &mut dyn Sink) {
    let n = s.touches.len() as i64;
    let names = ctx.names;
    let (model, currency, event) = (MODEL_NAMES[s.used_model as usize], names.name(s.currency), names.name(s.event));
    for i in 0..s.touches.len() {
        let t = &s.touches.items()[i];
        sink.emit(&Reward {
            kind, touchpoint_id: s.touches.tid(i), episode_id: s.touches.episode(i), user_id: user,
            campaign_id: names.name(t.campaign), channel: names.name(t.channel), revision: s.revision,
            amount_minor: s.shares[i], base_currency: ctx.base(), original_reward: t.reward, touch_time_ms: t.time,
            conversion_id: Some(&s.conversion_id), model: Some(model), currency: Some(currency),
            local_amount_minor: Some(s.local_share(i)), conversion_value_minor: Some(s.value_minor),
            conversion_time_ms: Some(s.time), position: Some(i as i64), journey_length: Some(n), event: Some(event),
            reason: None,
        });
    }
}

fn final_of(ts: &Touches, i: usize, user: &str, ctx: &Ctx<'_>, sink: &mut dyn Sink) {
    let t = &ts.items()[i];
    let names = ctx.names;
    sink.emit(&Reward {
        kind: Kind::Final, touchpoint_id: ts.tid(i), episode_id: ts.episode(i), user_id: user,
        campaign_id: names.name(t.campaign), channel: names.name(t.channel), revision: 0, amount_minor: t.earned,
        base_currency: ctx.base(), original_reward: t.reward, touch_time_ms: t.time, conversion_id: None,
        model: None, currency: None, local_amount_minor: None, conversion_value_minor: None,
        conversion_time_ms: None, position: None, journey_length: None, event: None, reason: None,
    });
}

fn unattributed(s: &Split, user: &str, reason: &str, ctx: &Ctx<'_>, sink: &mut dyn Sink) {
    let names = ctx.names;
    sink.emit(&Reward {
        kind: Kind::Unattributed, touchpoint_id: "", episode_id: "", user_id: user, campaign_id: "", channel: "",
        revision: s.revision, amount_minor: 0, base_currency: ctx.base(), original_reward: 0.0, touch_time_ms: s.time,
        conversion_id: Some(&s.conversion_id), model: Some(MODEL_NAMES[s.model as usize]),
        currency: Some(names.name(s.currency)), local_amount_minor: Some(0), conversion_value_minor: Some(s.value_minor),
        conversion_time_ms: Some(s.time), position: None, journey_length: Some(0), event: Some(names.name(s.event)),
        reason: Some(reason),
    });
}

/// Why a conversion pays nobody, by event time alone.
fn reason(touches: &Touches, conversion_ms: i64, config: &Config) -> &'static str {
    let horizon = conversion_ms - config.max_window_ms;
    if touches.items().iter().any(|t| horizon <= t.time && t.time <= conversion_ms) {
        NO_TOUCHPOINT_IN_WINDOW
    } else {
        UNKNOWN_USER
    }
}

/// The revision of the next fact about a conversion (not a refund: see `Split`). Its first fact was published at
/// revision 0 even where a journey stored by an earlier build says −1 for it (that build did not count an
/// unattributed fact), hence the floor.
fn next_revision(original: &Split) -> i64 {
    original.revision.max(0) + 1
}

/// Split a conversion's value over `touches` with its model (linear when the model cannot judge).
fn divide(mut split: Split, touches: Touches, ctx: &Ctx<'_>) -> Split {
    let (weights, used) = match ctx.models.weights(split.model, &touches, ctx.names) {
        Some(w) => (w, split.model),
        None => (Weights::Equal(touches.len()), LINEAR),
    };
    let same = split.value_minor == split.base_minor; // then the local shares are these: not split twice
    split.set_shares(weights.split(split.base_minor), if same { Vec::new() } else { weights.split(split.value_minor) });
    split.touches = touches;
    split.used_model = used;
    split
}

impl Split {
    /// Touch `i`'s share in the conversion's own currency.
    pub fn local_share(&self, i: usize) -> i64 {
        if self.local_shares.is_empty() { self.shares[i] } else { self.local_shares[i] }
    }

    /// Shares in the base currency and in the conversion's (empty: the same); the latter kept only when they
    /// differ.
    pub fn set_shares(&mut self, shares: Vec<i64>, local_shares: Vec<i64>) {
        self.local_shares = if local_shares == shares { Vec::new() } else { local_shares };
        self.shares = shares;
    }

    /// Everything but the touches and shares (which the caller replaces).
    fn clone_head(&self) -> Split {
        Split {
            conversion_id: self.conversion_id.clone(), event: self.event, time: self.time, currency: self.currency,
            value_minor: self.value_minor, base_minor: self.base_minor, model: self.model,
            used_model: self.used_model, revision: self.revision, touches: Touches::default(), shares: Vec::new(),
            local_shares: Vec::new(), refund_of: self.refund_of.clone(), refunded_minor: self.refunded_minor,
            refunded_base: self.refunded_base,
        }
    }
}

/// A refund's negative shares in proportion to the original's current split.
fn mirror(refund: &Split, original: &Split) -> Split {
    let w: Vec<u128> = original.shares.iter().map(|&s| s as u128).collect();
    let lw: Vec<u128> = (0..w.len()).map(|i| original.local_share(i) as u128).collect();
    let mut out = Split { touches: original.touches.clone(), used_model: original.used_model, ..refund.clone_head() };
    out.set_shares(split_exact(-refund.base_minor, &w), split_exact(-refund.value_minor, &lw));
    out
}

/// Move each open touch's running total from the old split's share to the new one. A refund counts towards
/// a touch's total only if it is dated within the touch's window. The open touches and a split's touches are
/// both sorted by (time, id), so this is a merge, not a lookup per touch.
fn credit(open: &mut Touches, old: Option<&Split>, new: &Split, max_window_ms: i64) {
    for (split, sign) in [(old, -1i64), (Some(new), 1i64)] {
        let Some(split) = split else { continue };
        let refund_time = if split.refund_of.is_some() { Some(split.time) } else { None };
        let mut o = 0;
        for i in 0..split.touches.len() {
            let t = &split.touches.items()[i];
            if refund_time.is_some_and(|rt| rt > t.time + max_window_ms) {
                continue;
            }
            let key = (t.time, split.touches.tid_bytes(i));
            while o < open.len() && (open.items()[o].time, open.tid_bytes(o)) < key {
                o += 1;
            }
            if o < open.len() && (open.items()[o].time, open.tid_bytes(o)) == key {
                let e = &mut open.items_mut()[o].earned;
                *e = e.checked_add(sign * split.shares[i]).expect("earned overflows 64 bits");
            }
        }
    }
}

/// Add a touchpoint; re-split every retained conversion it belongs to (a late touchpoint). Returns how many
/// touchpoints the journey cap dropped.
pub fn apply_touchpoint(j: &mut Journey, tp: &TouchpointIn<'_>, ctx: &Ctx<'_>, sink: &mut dyn Sink)
                        -> Result<usize, Refusal> {
    let tid = tp.touchpoint_id;
    if j.touches.contains_tid(tid) || j.splits.iter().any(|s| s.touches.contains_tid(tid)) {
        return Err(Refusal::Duplicate("touchpoint"));
    }
    check_time(tp.time, ctx)?;
    let cfg = ctx.config;
    let user = tp.user_id;
    for idx in 0..j.splits.len() {
        let names = ctx.names;
        let s = &j.splits[idx];
        if s.touches.is_empty() && s.refund_of.is_none() && s.time - cfg.max_window_ms <= tp.time
            && tp.time < s.time - cfg.window_for(names.name(s.event))
            && reason(&j.touches, s.time, cfg) == UNKNOWN_USER {
            let s = &mut j.splits[idx];
            s.revision = next_revision(s);
            unattributed(s, user, NO_TOUCHPOINT_IN_WINDOW, ctx, sink);
        }
    }
    let at = j.touches.bisect(tp.time, tid);
    j.touches.insert_new(at, tp.time, tp.reward, tid, tp.episode_id, tp.campaign, tp.channel);
    for idx in 0..j.splits.len() {
        let split = &j.splits[idx];
        if split.refund_of.is_some() {
            continue;
        }
        let window = cfg.window_for(ctx.names.name(split.event));
        if !(split.time - window <= tp.time && tp.time <= split.time) {
            continue;
        }
        // the split's touches plus the new one, sorted by (time, id)
        let mut touches = Touches::with_capacity(split.touches.len() + 1,
                                                 split.touches.arena_len() + tid.len() + tp.episode_id.len());
        let mut inserted = false;
        for i in 0..split.touches.len() {
            let t = &split.touches.items()[i];
            if !inserted && (tp.time, tid) < (t.time, split.touches.tid(i)) {
                touches.push_new(tp.time, tp.reward, 0, tid, tp.episode_id, tp.campaign, tp.channel);
                inserted = true;
            }
            touches.push_copy(&split.touches, i);
        }
        if !inserted {
            touches.push_new(tp.time, tp.reward, 0, tid, tp.episode_id, tp.campaign, tp.channel);
        }
        let mut new = divide(split.clone_head(), touches, ctx);
        new.revision = next_revision(split);
        let kind = if split.touches.is_empty() { Kind::Attribution } else { Kind::Correction };
        let old = std::mem::replace(&mut j.splits[idx], new);
        credit(&mut j.touches, if old.touches.is_empty() { None } else { Some(&old) }, &j.splits[idx],
               cfg.max_window_ms);
        rewards_of(kind, &j.splits[idx], user, ctx, sink);
        let conversion_id = old.conversion_id.clone();
        for ridx in 0..j.splits.len() {
            if j.splits[ridx].refund_of.as_deref() == Some(&*conversion_id) {
                let mut mirrored = mirror(&j.splits[ridx], &j.splits[idx]);
                mirrored.revision = j.splits[ridx].revision + 1;
                let old_refund = std::mem::replace(&mut j.splits[ridx], mirrored);
                credit(&mut j.touches, if old_refund.touches.is_empty() { None } else { Some(&old_refund) },
                       &j.splits[ridx], cfg.max_window_ms);
                rewards_of(Kind::Refund, &j.splits[ridx], user, ctx, sink);
            }
        }
    }
    let mut dropped = 0;
    while j.touches.len() > cfg.max_journey_length {
        final_of(&j.touches, 0, user, ctx, sink);
        j.touches.drain_front(1);
        dropped += 1;
    }
    Ok(dropped)
}

/// Attribute a conversion over the touchpoints in its window, or mirror the conversion it refunds.
pub fn apply_conversion(j: &mut Journey, cv: &ConversionIn<'_>, ctx: &Ctx<'_>, sink: &mut dyn Sink)
                        -> Result<(), Refusal> {
    if j.splits.iter().any(|s| &*s.conversion_id == cv.conversion_id) {
        return Err(Refusal::Duplicate("conversion"));
    }
    check_time(cv.time, ctx)?;
    let cfg = ctx.config;
    let names = ctx.names;
    let base_minor = if cv.currency == cfg.base {
        cv.value_minor
    } else {
        let Some(rate) = cfg.rates.get(&cv.currency) else {
            return Err(Refusal::NoRate { currency: names.name(cv.currency).into(), base: ctx.base().into() });
        };
        let cur_exp = cfg.minor_units[names.name(cv.currency)];
        crate::money::to_base_minor(cv.value_minor, cur_exp, cfg.base_exp, *rate)
    };
    let model = cv.model.unwrap_or(cfg.default_model);
    if let Some(refund_of) = cv.refund_of {
        return apply_refund(j, cv, refund_of, base_minor, ctx, sink);
    }
    let start = cv.time - cfg.window_for(names.name(cv.event));
    let inside = |t: &TouchRec| start <= t.time && t.time <= cv.time;
    let (n, id_bytes) = j.touches.items().iter().filter(|t| inside(t))
        .fold((0, 0), |(n, b), t| (n + 1, b + t.id_len()));
    let mut eligible = Touches::with_capacity(n, id_bytes); // exact: the split keeps this copy
    for i in 0..j.touches.len() {
        if inside(&j.touches.items()[i]) {
            eligible.push_copy(&j.touches, i);
        }
    }
    let split = Split {
        conversion_id: cv.conversion_id.into(), event: cv.event, time: cv.time, currency: cv.currency,
        value_minor: cv.value_minor, base_minor, model, used_model: model, revision: 0,
        touches: Touches::default(), shares: Vec::new(), local_shares: Vec::new(), refund_of: None,
        refunded_minor: 0, refunded_base: 0,
    };
    if !eligible.is_empty() {
        let split = divide(split, eligible, ctx);
        credit(&mut j.touches, None, &split, cfg.max_window_ms);
        rewards_of(Kind::Attribution, &split, cv.user_id, ctx, sink);
        j.splits.push(split);
    } else {
        let why = reason(&j.touches, cv.time, cfg);
        unattributed(&split, cv.user_id, why, ctx, sink);
        j.splits.push(split);
    }
    Ok(())
}

fn apply_refund(j: &mut Journey, cv: &ConversionIn<'_>, refund_of: &str, base_minor: i64, ctx: &Ctx<'_>,
                sink: &mut dyn Sink) -> Result<(), Refusal> {
    let cfg = ctx.config;
    let names = ctx.names;
    let Some(orig_idx) = j.splits.iter().position(|s| &*s.conversion_id == refund_of && s.refund_of.is_none())
    else {
        return Err(Refusal::UnknownRefund { refund_of: refund_of.into(), user: cv.user_id.into() });
    };
    let original = &j.splits[orig_idx];
    if cv.time - original.time > cfg.refund_retention_ms {
        return Err(Refusal::RefundTooOld { after: cv.time - original.time, refund_of: refund_of.into(),
                                           retention: cfg.refund_retention_ms });
    }
    if cv.currency != original.currency {
        return Err(Refusal::RefundCurrency { currency: names.name(cv.currency).into(),
                                             original: names.name(original.currency).into() });
    }
    let left = original.value_minor - original.refunded_minor;
    if cv.value_minor > left {
        return Err(Refusal::RefundExceeds { value_minor: cv.value_minor, left });
    }
    let base_minor = if cv.value_minor == left { original.base_minor - original.refunded_base } else { base_minor };
    let refund = Split {
        conversion_id: cv.conversion_id.into(), event: cv.event, time: cv.time, currency: cv.currency,
        value_minor: cv.value_minor, base_minor, model: original.model, used_model: original.used_model,
        revision: -1, touches: Touches::default(), shares: Vec::new(), local_shares: Vec::new(),
        refund_of: Some(original.conversion_id.clone()), refunded_minor: 0, refunded_base: 0,
    };
    let refund = if !original.touches.is_empty() {
        let mut r = mirror(&refund, original);
        r.revision = 0;
        credit(&mut j.touches, None, &r, cfg.max_window_ms);
        rewards_of(Kind::Refund, &r, cv.user_id, ctx, sink);
        r
    } else {
        refund
    };
    let original = &mut j.splits[orig_idx];
    original.refunded_minor += cv.value_minor;
    original.refunded_base += base_minor;
    j.splits.push(refund);
    Ok(())
}

/// Emit `final` for touchpoints whose window closed before `watermark` and forget them; drop conversions
/// past their refund retention.
pub fn expire(j: &mut Journey, watermark: i64, user: &str, ctx: &Ctx<'_>, sink: &mut dyn Sink) -> usize {
    let cfg = ctx.config;
    let horizon = watermark - cfg.max_window_ms;
    let mut n = 0;
    while n < j.touches.len() && j.touches.items()[n].time < horizon {
        n += 1;
    }
    for i in 0..n {
        final_of(&j.touches, i, user, ctx, sink);
    }
    if n > 0 {
        j.touches.drain_front(n);
    }
    let keep_after = watermark - cfg.refund_retention_ms;
    if j.splits.iter().all(|s| s.refund_of.is_none() && s.time < keep_after) {
        j.splits.clear(); // every conversion past its retention, no refunds: the common case, without the list
    } else if j.splits.iter().any(|s| s.time < keep_after) {
        let gone: Vec<Box<str>> = j.splits.iter()
            .filter(|s| s.refund_of.is_none() && s.time < keep_after)
            .map(|s| s.conversion_id.clone())
            .collect();
        j.splits.retain(|s| {
            !(gone.iter().any(|g| *g == s.conversion_id)
                || s.refund_of.as_ref().is_some_and(|r| gone.iter().any(|g| g == r)))
        });
    }
    n
}

/// The smallest watermark at which `expire` would change this journey.
pub fn next_deadline(j: &Journey, cfg: &Config) -> Option<i64> {
    let mut best: Option<i64> = None;
    if !j.touches.is_empty() {
        best = Some(j.touches.items()[0].time + cfg.max_window_ms + 1);
    }
    if let Some(t) = j.splits.iter().filter(|s| s.refund_of.is_none()).map(|s| s.time).min() {
        let d = t + cfg.refund_retention_ms + 1;
        best = Some(best.map_or(d, |b| b.min(d)));
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journey_is_small() {
        assert_eq!(std::mem::size_of::<Journey>(), 32); // its touches (24 bytes) and a pointer to its splits
    }
}
