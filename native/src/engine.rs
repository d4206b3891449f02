//! The engine: journeys in a store, an event-time clock over one or more inputs (`clock`), and an expiry
//! schedule. A port of `pipeline/engine/engine.py`.

use hashbrown::hash_map::EntryRef;
use rustc_hash::{FxBuildHasher, FxHashMap as HashMap, FxHashSet as HashSet};

use crate::clock::Clock;
use crate::config::{Config, LINEAR, MODEL_NAMES};
use crate::due_queue::{Due, DueQueue};
use crate::intern::Interner;
use crate::journey::{self, ConversionIn, Ctx, Journey, Kind, Refusal, Reward, Sink, TouchpointIn};
use crate::models::Models;
use crate::user_key::UserKey;

// ------------------------------------------------------------------------------------------------ expiry

/// Which users have something to expire once the watermark reaches a deadline: a queue with lazy deletion,
/// one live entry per user. The live deadline of each user is kept by the store when it can (the backfill's
/// memory store keeps it beside the journey: no map of its own, one lookup less per change), else in `scheduled`.
#[derive(Default)]
pub struct Expiry {
    pub queue: DueQueue,
    pub scheduled: HashMap<UserKey, i64>,
}

/// What a store did with a user's live deadline.
pub enum Kept {
    NotKept,      // it keeps none: the schedule's own map is used
    Unchanged,    // already that deadline (or no journey to keep it beside, or none wanted)
    Moved(UserKey), // set; the store's copy of the user id, for the queue entry
}

/// A user the watermark has passed, with the journey if the store handed it over with its deadline.
pub type DueUser = (UserKey, Option<Journey>);

impl Expiry {
    /// Keep the schedule at the journey's own next deadline (a schedule rebuilt after a restart is the same
    /// schedule), after the store has done what it could with it (`kept`); `shared`: the store's copy of the id.
    pub fn settle(&mut self, kept: Kept, user: &str, deadline: Option<i64>, shared: impl FnOnce() -> Option<UserKey>) {
        match (kept, deadline) {
            (Kept::Unchanged, _) => {}
            (Kept::Moved(key), Some(d)) => self.queue.push(Due::new(d, key)),
            (Kept::Moved(_), None) => unreachable!("a store moves a deadline only to one"),
            (Kept::NotKept, Some(d)) => self.schedule_here(user, d, shared),
            (Kept::NotKept, None) => {
                self.scheduled.remove(user);
            }
        }
    }

    /// `schedule` with the live deadline in this schedule's map. `shared`: the store's own copy of the id, if
    /// it has one, so a user's id is allocated once.
    pub fn schedule_here(&mut self, user: &str, deadline: i64, shared: impl FnOnce() -> Option<UserKey>) {
        let key: UserKey = match self.scheduled.get_key_value(user) {
            Some((_, &d)) if d == deadline => return,
            Some((k, _)) => k.clone(),
            None => shared().unwrap_or_else(|| user.into()),
        };
        self.scheduled.insert(key.clone(), deadline);
        self.queue.push(Due::new(deadline, key));
    }

    /// Users due at `watermark`, at most `limit`, into `due` (emptied first), in the schedule's order.
    pub fn pop_due(&mut self, store: &mut dyn Store, config: &Config, watermark: i64, limit: Option<usize>,
                   due: &mut Vec<DueUser>) {
        due.clear();
        while let Some(top) = self.queue.peek() {
            if top.deadline > watermark || limit.is_some_and(|l| due.len() >= l) {
                break;
            }
            let Due { deadline, user, .. } = self.queue.pop().unwrap();
            match store.take_due(&user, deadline, config) {
                Some(Some(journey)) => due.push((user, Some(journey))),
                Some(None) => {} // a stale entry: the user's deadline has moved
                None => {
                    if self.scheduled.get(&user) == Some(&deadline) {
                        self.scheduled.remove(&user);
                        due.push((user, None));
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------ stores

/// Where journeys live between steps: the engine's own memory (the backfill) or a byte store the caller
/// loads from and writes back (the worker's RocksDB table).
pub trait Store {
    /// The user's journey, taken out of the store: give it back with `put` (changed), `remove` (gone) or
    /// `untake` (unchanged). `names` decodes a stored journey's symbols.
    fn take(&mut self, user: &str, names: &mut Interner) -> Option<Journey>;
    fn put(&mut self, user: &str, journey: Journey);
    fn remove(&mut self, user: &str);
    fn untake(&mut self, user: &str, journey: Journey);
    /// The store's shared copy of a user id it holds (None if it keeps none).
    fn shared_key(&self, user: &str) -> Option<UserKey>;
    /// `put`, keeping `deadline` as the user's live schedule entry (None: no entry) if this store keeps them:
    /// one lookup for both.
    fn put_keeping(&mut self, user: &str, journey: Journey, _deadline: Option<i64>) -> Kept {
        self.put(user, journey);
        Kept::NotKept
    }
    /// `remove`, with the user's live schedule entry if this store keeps it (then `Unchanged`).
    fn remove_keeping(&mut self, user: &str) -> Kept {
        self.remove(user);
        Kept::NotKept
    }
    /// If the user's live entry is `deadline`: cleared, and the journey taken (as by `take`); Some(None) if it
    /// is not (a stale entry); None if this store keeps no entries. `config`: for the journey's next deadline.
    fn take_due(&mut self, _user: &str, _deadline: i64, _config: &Config) -> Option<Option<Journey>> {
        None
    }
}

/// hashbrown's map for its `entry_ref`: a journey goes back in one lookup, and a new user's id is allocated only
/// when it is inserted. The store keeps no deadlines of its own: a queue entry is live exactly when it is the
/// journey's own next deadline (each expiry moves that deadline past the watermark, so an entry is never live
/// twice), which saves the 8 bytes a deadline beside each journey took.
#[derive(Default)]
pub struct MemoryStore {
    pub journeys: hashbrown::HashMap<UserKey, Journey, FxBuildHasher>, // keys shared with the expiry schedule's queue
}

impl Store for MemoryStore {
    fn take(&mut self, user: &str, _names: &mut Interner) -> Option<Journey> {
        // taken in place (an empty journey stays behind until put or removed): one lookup, no re-insertion
        self.journeys.get_mut(user).map(std::mem::take)
    }

    fn put(&mut self, user: &str, mut journey: Journey) {
        journey.touches.shrink();
        match self.journeys.get_mut(user) {
            Some(slot) => *slot = journey,
            None => {
                self.journeys.insert(user.into(), journey);
            }
        }
    }

    fn remove(&mut self, user: &str) {
        self.journeys.remove(user);
    }

    fn untake(&mut self, user: &str, journey: Journey) {
        self.put(user, journey);
    }

    fn shared_key(&self, user: &str) -> Option<UserKey> {
        self.journeys.get_key_value(user).map(|(k, _)| k.clone())
    }

    /// Called when the deadline has changed (see `Engine::save`): a new queue entry is wanted.
    fn put_keeping(&mut self, user: &str, mut journey: Journey, deadline: Option<i64>) -> Kept {
        journey.touches.shrink();
        let moved = |key: &UserKey| if deadline.is_some() { Kept::Moved(key.clone()) } else { Kept::Unchanged };
        match self.journeys.entry_ref(user) {
            EntryRef::Occupied(mut slot) => {
                *slot.get_mut() = journey;
                moved(slot.key())
            }
            EntryRef::Vacant(slot) => moved(slot.insert_entry_with_key(user.into(), journey).key()),
        }
    }

    fn remove_keeping(&mut self, user: &str) -> Kept {
        self.journeys.remove(user);
        Kept::Unchanged // its entry in the queue is stale from here on
    }

    fn take_due(&mut self, user: &str, deadline: i64, config: &Config) -> Option<Option<Journey>> {
        Some(match self.journeys.get_mut(user) {
            Some(j) if journey::next_deadline(j, config) == Some(deadline) => Some(std::mem::take(j)),
            _ => None,
        })
    }
}

pub enum Slot {
    Stored(Option<Vec<u8>>), // as loaded, not decoded yet
    Current(Option<Journey>),
}

/// Journeys of one step, loaded on first use by `load` (stored bytes) and remembered as changed until the
/// caller collects them (`dirty`, in the order they first changed).
pub struct BatchStore<'l> {
    pub slots: HashMap<UserKey, Slot>,
    pub dirty: Vec<UserKey>,
    dirty_set: HashSet<UserKey>,
    load: &'l mut dyn FnMut(&[UserKey]) -> Vec<Option<Vec<u8>>>,
    pub error: Option<String>,
}

impl<'l> BatchStore<'l> {
    pub fn new(load: &'l mut dyn FnMut(&[UserKey]) -> Vec<Option<Vec<u8>>>) -> BatchStore<'l> {
        BatchStore { slots: HashMap::default(), dirty: Vec::new(), dirty_set: HashSet::default(), load, error: None }
    }

    pub fn preload(&mut self, users: &[UserKey]) {
        let mut seen = HashSet::default();
        let missing: Vec<UserKey> = users.iter()
            .filter(|u| !self.slots.contains_key(*u) && seen.insert((*u).clone()))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let found = (self.load)(&missing);
        for (u, v) in missing.into_iter().zip(found) {
            self.slots.insert(u, Slot::Stored(v));
        }
    }

    fn mark(&mut self, user: &UserKey) {
        if self.dirty_set.insert(user.clone()) {
            self.dirty.push(user.clone());
        }
    }

    fn key(&self, user: &str) -> UserKey {
        self.slots.get_key_value(user).map_or_else(|| user.into(), |(k, _)| k.clone())
    }

    pub fn current(&self, user: &str) -> Option<&Journey> {
        match self.slots.get(user) {
            Some(Slot::Current(j)) => j.as_ref(),
            _ => None,
        }
    }
}

impl Store for BatchStore<'_> {
    fn take(&mut self, user: &str, names: &mut Interner) -> Option<Journey> {
        let user: UserKey = match self.slots.get_key_value(user) {
            Some((k, _)) => k.clone(),
            None => {
                let u: UserKey = user.into();
                self.preload(std::slice::from_ref(&u));
                u
            }
        };
        match self.slots.insert(user.clone(), Slot::Current(None)) {
            Some(Slot::Current(j)) => j,
            Some(Slot::Stored(None)) | None => None,
            Some(Slot::Stored(Some(bytes))) => match crate::codec::decode(&bytes, names) {
                Ok(j) => j,
                Err(e) => {
                    // a stored value that cannot be read: leave it be and say so (the caller stops)
                    self.slots.insert(user.clone(), Slot::Stored(Some(bytes)));
                    self.error.get_or_insert(format!("journey of user {user:?}: {}", e.0));
                    None
                }
            },
        }
    }

    fn put(&mut self, user: &str, journey: Journey) {
        let user = self.key(user);
        self.slots.insert(user.clone(), Slot::Current(Some(journey)));
        self.mark(&user);
    }

    fn remove(&mut self, user: &str) {
        let user = self.key(user);
        self.slots.insert(user.clone(), Slot::Current(None));
        self.mark(&user);
    }

    fn untake(&mut self, user: &str, journey: Journey) {
        let user = self.key(user);
        self.slots.insert(user, Slot::Current(Some(journey)));
    }

    fn shared_key(&self, user: &str) -> Option<UserKey> {
        self.slots.get_key_value(user).map(|(k, _)| k.clone())
    }
}

// ------------------------------------------------------------------------------------------------ engine

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub touchpoints: i64,
    pub conversions: i64,
    pub refunds: i64,
    pub conversions_attributed: i64,
    pub conversions_unattributed: i64,
    pub corrections: i64,
    pub duplicate_touchpoints: i64,
    pub duplicate_conversions: i64,
    pub dropped_touchpoints: i64,
    pub finals: i64,
    pub pending_touchpoints: i64,
    pub total_attributed_minor: i64,
    pub rewards_emitted: i64,
    pub per_model: [i64; 7],
}

impl Stats {
    fn record(&mut self, r: &Reward<'_>) {
        self.rewards_emitted += 1;
        match r.kind {
            Kind::Final => {
                self.finals += 1;
                self.pending_touchpoints -= 1;
                return;
            }
            Kind::Unattributed => return,
            _ => {}
        }
        let first_of_split = r.position == Some(0);
        if r.kind == Kind::Correction && first_of_split {
            self.corrections += 1;
        }
        // an attribution is always a conversion's first payout, whatever facts about it came before
        if r.kind == Kind::Attribution || (r.kind == Kind::Refund && r.revision == 0) {
            self.total_attributed_minor += r.amount_minor;
            if first_of_split {
                let m = r.model.and_then(crate::config::model_index).unwrap_or(LINEAR) as usize;
                self.per_model[m] += 1;
                if r.kind == Kind::Attribution {
                    self.conversions_attributed += 1;
                }
            }
        }
    }

    pub fn per_model_named(&self) -> Vec<(&'static str, i64)> {
        MODEL_NAMES.iter().zip(self.per_model).filter(|(_, n)| *n > 0).map(|(m, n)| (*m, n)).collect()
    }
}

/// Counts what passes through into the engine's stats, and hands it on.
struct Counting<'a> {
    stats: &'a mut Stats,
    inner: &'a mut dyn Sink,
    first_kind: Option<Kind>,
}

impl Sink for Counting<'_> {
    fn emit(&mut self, r: &Reward<'_>) {
        if self.first_kind.is_none() {
            self.first_kind = Some(r.kind);
        }
        self.stats.record(r);
        self.inner.emit(r);
    }
}

pub enum Event<'a> {
    Touchpoint(TouchpointIn<'a>),
    Conversion(ConversionIn<'a>),
}

impl Event<'_> {
    pub fn user(&self) -> &str {
        match self {
            Event::Touchpoint(t) => t.user_id,
            Event::Conversion(c) => c.user_id,
        }
    }

    pub fn time(&self) -> i64 {
        match self {
            Event::Touchpoint(t) => t.time,
            Event::Conversion(c) => c.time,
        }
    }
}

pub struct Engine {
    pub config: Config,
    pub models: Models,
    pub names: Interner,
    pub expiry: Expiry,
    pub clock: Clock,
    pub watermark: Option<i64>,
    pub stats: Stats,
    pub swept: usize,
    due: Vec<DueUser>, // the sweep's buffer, kept between steps
}

impl Engine {
    pub fn new(config: Config, names: Interner, sources: usize, quorum: usize) -> Engine {
        let models = Models::new(&config);
        let clock = Clock::new(sources, config.allowed_lateness_ms, quorum);
        Engine { config, models, names, expiry: Expiry::default(), clock, watermark: None, stats: Stats::default(),
                 swept: 0, due: Vec::new() }
    }

    /// Apply one event to its user's journey (the clock is not moved: see `observe`). Duplicates are counted
    /// and produce nothing; refusals leave the state untouched. `Ok(false)` for a duplicate: it is no news, so
    /// the caller must not let it move the clock either (an at-least-once delivery or a replayed log would
    /// otherwise count one event as two votes).
    pub fn apply(&mut self, store: &mut dyn Store, event: &Event<'_>, ingest_ms: Option<i64>, sink: &mut dyn Sink)
                 -> Result<bool, Refusal> {
        let user = event.user();
        let mut journey = store.take(user, &mut self.names).unwrap_or_default();
        let was_empty = journey.is_empty();
        let deadline_before = if was_empty { None } else { journey::next_deadline(&journey, &self.config) };
        let ctx = Ctx { config: &self.config, models: &self.models, names: &self.names, watermark: self.watermark,
                        ingest_ms };
        let mut counting = Counting { stats: &mut self.stats, inner: sink, first_kind: None };
        let result = match event {
            Event::Touchpoint(tp) => journey::apply_touchpoint(&mut journey, tp, &ctx, &mut counting).map(Some),
            Event::Conversion(cv) => journey::apply_conversion(&mut journey, cv, &ctx, &mut counting).map(|_| None),
        };
        let first_kind = counting.first_kind;
        match result {
            Err(refusal) => {
                if !was_empty {
                    store.untake(user, journey);
                }
                match refusal {
                    Refusal::Duplicate("touchpoint") => self.stats.duplicate_touchpoints += 1,
                    Refusal::Duplicate(_) => self.stats.duplicate_conversions += 1,
                    other => return Err(other),
                }
                Ok(false)
            }
            Ok(dropped) => {
                let s = &mut self.stats;
                match event {
                    Event::Touchpoint(_) => {
                        s.touchpoints += 1;
                        s.pending_touchpoints += 1;
                        s.dropped_touchpoints += dropped.unwrap_or(0) as i64;
                    }
                    Event::Conversion(cv) if cv.refund_of.is_some() => s.refunds += 1,
                    Event::Conversion(_) => {
                        s.conversions += 1;
                        if first_kind == Some(Kind::Unattributed) {
                            s.conversions_unattributed += 1;
                        }
                    }
                }
                self.save(store, user, journey, deadline_before);
                Ok(true)
            }
        }
    }

    /// Put a changed journey back and keep its schedule at its next deadline (`before`: the deadline it was
    /// scheduled at, when known, so an unchanged one costs no lookup).
    fn save(&mut self, store: &mut dyn Store, user: &str, journey: Journey, before: Option<i64>) {
        if journey.is_empty() {
            let kept = store.remove_keeping(user);
            self.expiry.settle(kept, user, None, || None);
            return;
        }
        let deadline = journey::next_deadline(&journey, &self.config);
        if deadline.is_some() && before == deadline {
            store.put(user, journey);
            return;
        }
        let kept = store.put_keeping(user, journey, deadline);
        self.expiry.settle(kept, user, deadline, || store.shared_key(user));
    }

    pub fn observe(&mut self, source: usize, t: i64, idle: &[bool]) {
        self.clock.observe(source, t);
        self.catch_up(idle);
    }

    fn catch_up(&mut self, idle: &[bool]) {
        if let Some(wm) = self.clock.watermark(idle) {
            if self.watermark.is_none_or(|w| wm > w) {
                self.watermark = Some(wm);
            }
        }
    }

    /// Expire what the watermark has passed, at most `limit` journeys.
    pub fn advance(&mut self, store: &mut dyn Store, idle: &[bool], limit: Option<usize>, sink: &mut dyn Sink) {
        self.catch_up(idle);
        self.swept = 0;
        let Some(wm) = self.watermark else { return };
        if self.expiry.queue.peek().is_none_or(|top| top.deadline > wm) {
            return; // nothing due: the common case, checked without touching anything else
        }
        let mut due = std::mem::take(&mut self.due);
        self.expiry.pop_due(store, &self.config, wm, limit, &mut due);
        for (user, taken) in due.drain(..) {
            let Some(mut journey) = taken.or_else(|| store.take(&user, &mut self.names)) else { continue };
            let ctx = Ctx { config: &self.config, models: &self.models, names: &self.names, watermark: Some(wm),
                            ingest_ms: None };
            let mut counting = Counting { stats: &mut self.stats, inner: sink, first_kind: None };
            journey::expire(&mut journey, wm, &user, &ctx, &mut counting);
            self.save(store, &user, journey, None);
            self.swept += 1;
        }
        self.due = due;
    }

    /// apply + observe + expire: the whole step for a single ordered input (the backfill).
    pub fn process(&mut self, store: &mut dyn Store, event: &Event<'_>, ingest_ms: Option<i64>, sink: &mut dyn Sink)
                   -> Result<(), Refusal> {
        if !self.apply(store, event, ingest_ms, sink)? {
            return Ok(()); // a duplicate: nothing changed, the clock included, so nothing falls due
        }
        self.observe(0, event.time(), &[false]);
        if self.watermark.is_some() {
            self.advance(store, &[false], None, sink);
        }
        Ok(())
    }

    /// End of input: close every window.
    pub fn flush(&mut self, store: &mut dyn Store, sink: &mut dyn Sink) {
        let newest = self.clock.newest_any().unwrap_or(0);
        let c = &self.config;
        self.clock.raise_floor(newest + c.max_window_ms + c.refund_retention_ms + c.allowed_lateness_ms + 2);
        let idle = vec![false; self.clock.recent.len()];
        self.advance(store, &idle, None, sink);
    }
}
