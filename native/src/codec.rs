//! Journey values as the worker stores them (see `pipeline/engine/partition/journey_codec.py` for the layout):
//!
//! ```text
//! u8 version | u32 body length | body | u32 outbox count | (u32 length | reward record)*
//! ```
//!
//! Format 3's body is binary (written here): zig-zag varints, length-prefixed UTF-8, little-endian doubles;
//! touchpoints appear once in a pool and the open list and the splits refer to them by index. Format 2's body
//! is the Python engine's JSON and format 1 the older JSON array; both are read, so either engine can take over
//! state the other wrote. An unknown version is refused with a clear error.

use rustc_hash::FxHashMap as HashMap;

use serde::Deserialize;

use crate::config::{model_index, MODEL_NAMES};
use crate::intern::Interner;
use crate::avro::{long as zz, string};
use crate::journey::{Journey, Split};
use crate::touches::Touches;

pub const FORMAT_VERSION: u8 = 3;


/// The value for a journey (None: the journey is gone) and the reward records its change produced.
pub fn encode(journey: Option<&Journey>, outbox: &[u8], outbox_count: u32, names: &Interner) -> Vec<u8> {
    let mut body = Vec::with_capacity(128);
    if let Some(j) = journey {
        encode_body(&mut body, j, names);
    }
    let mut out = Vec::with_capacity(9 + body.len() + outbox.len());
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&outbox_count.to_le_bytes());
    out.extend_from_slice(outbox);
    out
}

/// Append one outbox entry (length-prefixed) to an outbox buffer.
pub fn push_outbox(outbox: &mut Vec<u8>, record: &[u8]) {
    outbox.extend_from_slice(&(record.len() as u32).to_le_bytes());
    outbox.extend_from_slice(record);
}

fn pool_refs<'j>(ts: &'j Touches, pool: &mut HashMap<&'j str, usize>, order: &mut Vec<(&'j Touches, usize)>)
                 -> Vec<usize> {
    (0..ts.len()).map(|i| {
        *pool.entry(ts.tid(i)).or_insert_with(|| {
            order.push((ts, i));
            order.len() - 1
        })
    }).collect()
}

fn encode_body(out: &mut Vec<u8>, j: &Journey, names: &Interner) {
    let mut pool: HashMap<&str, usize> = HashMap::default();
    let mut order: Vec<(&Touches, usize)> = Vec::new();
    let open = pool_refs(&j.touches, &mut pool, &mut order);
    let split_refs: Vec<Vec<usize>> = j.splits.iter().map(|s| pool_refs(&s.touches, &mut pool, &mut order)).collect();
    zz(out, order.len() as i64);
    for (ts, i) in &order {
        let t = &ts.items()[*i];
        zz(out, t.time);
        string(out, ts.tid(*i));
        string(out, ts.episode(*i));
        string(out, names.name(t.campaign));
        string(out, names.name(t.channel));
        out.extend_from_slice(&t.reward.to_le_bytes());
    }
    zz(out, open.len() as i64);
    for (k, &r) in open.iter().enumerate() {
        zz(out, r as i64);
        zz(out, j.touches.items()[k].earned);
    }
    zz(out, j.splits.len() as i64);
    for (s, refs) in j.splits.iter().zip(&split_refs) {
        string(out, &s.conversion_id);
        string(out, names.name(s.event));
        zz(out, s.time);
        string(out, names.name(s.currency));
        zz(out, s.value_minor);
        zz(out, s.base_minor);
        string(out, MODEL_NAMES[s.model as usize]);
        string(out, MODEL_NAMES[s.used_model as usize]);
        zz(out, s.revision);
        zz(out, refs.len() as i64);
        for &r in refs {
            zz(out, r as i64);
        }
        for &x in &s.shares {
            zz(out, x);
        }
        for i in 0..s.shares.len() {
            zz(out, s.local_share(i));
        }
        match &s.refund_of {
            None => out.push(0),
            Some(r) => {
                out.push(1);
                string(out, r);
            }
        }
        zz(out, s.refunded_minor);
        zz(out, s.refunded_base);
    }
}

#[derive(Debug)]
pub struct CodecError(pub String);

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &str) -> CodecError {
        CodecError(format!("corrupt journey value: {what} at byte {}", self.at))
    }

    fn zz(&mut self) -> Result<i64, CodecError> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self.data.get(self.at).ok_or_else(|| self.err("truncated varint"))?;
            self.at += 1;
            n |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(((n >> 1) as i64) ^ -((n & 1) as i64));
            }
            shift += 7;
            if shift > 63 {
                return Err(self.err("varint too long"));
            }
        }
    }

    fn len(&mut self) -> Result<usize, CodecError> {
        usize::try_from(self.zz()?).map_err(|_| self.err("negative length"))
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let n = self.len()?;
        let b = self.data.get(self.at..self.at + n).ok_or_else(|| self.err("truncated string"))?;
        self.at += n;
        std::str::from_utf8(b).map_err(|_| self.err("invalid UTF-8"))
    }

    fn f64(&mut self) -> Result<f64, CodecError> {
        let b = self.data.get(self.at..self.at + 8).ok_or_else(|| self.err("truncated double"))?;
        self.at += 8;
        Ok(f64::from_le_bytes(b.try_into().unwrap()))
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.data.get(self.at).ok_or_else(|| self.err("truncated"))?;
        self.at += 1;
        Ok(b)
    }
}

struct PoolTouch<'a> {
    time: i64,
    tid: &'a str,
    episode: &'a str,
    campaign: &'a str,
    channel: &'a str,
    reward: f64,
}

fn model(name: &str) -> Result<u8, CodecError> {
    model_index(name).ok_or_else(|| CodecError(format!("unknown attribution model {name:?} in stored journey")))
}

fn touches_of(pool: &[PoolTouch<'_>], refs: &[usize], earned: Option<&[i64]>, names: &mut Interner)
              -> Result<Touches, CodecError> {
    let mut ts = Touches::default();
    for (k, &r) in refs.iter().enumerate() {
        let t = pool.get(r).ok_or_else(|| CodecError(format!("touch index {r} outside the pool")))?;
        ts.push_new(t.time, t.reward, earned.map_or(0, |e| e[k]), t.tid, t.episode, names.intern(t.campaign),
                    names.intern(t.channel));
    }
    Ok(ts)
}

fn decode_binary(body: &[u8], names: &mut Interner) -> Result<Journey, CodecError> {
    let mut c = Cursor { data: body, at: 0 };
    let n = c.len()?;
    let mut pool = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let time = c.zz()?;
        let (tid, episode, campaign, channel) = (c.str()?, c.str()?, c.str()?, c.str()?);
        let reward = c.f64()?;
        pool.push(PoolTouch { time, tid, episode, campaign, channel, reward });
    }
    let n_open = c.len()?;
    let mut refs = Vec::with_capacity(n_open.min(1 << 16));
    let mut earned = Vec::with_capacity(n_open.min(1 << 16));
    for _ in 0..n_open {
        refs.push(c.len()?);
        earned.push(c.zz()?);
    }
    let touches = touches_of(&pool, &refs, Some(&earned), names)?;
    let n_splits = c.len()?;
    let mut splits = Vec::with_capacity(n_splits.min(1 << 12));
    for _ in 0..n_splits {
        let conversion_id: Box<str> = c.str()?.into();
        let event = names.intern(c.str()?);
        let time = c.zz()?;
        let currency = names.intern(c.str()?);
        let (value_minor, base_minor) = (c.zz()?, c.zz()?);
        let (m, used) = (model(c.str()?)?, model(c.str()?)?);
        let revision = c.zz()?;
        let k = c.len()?;
        let refs: Vec<usize> = (0..k).map(|_| c.len()).collect::<Result<_, _>>()?;
        let shares: Vec<i64> = (0..k).map(|_| c.zz()).collect::<Result<_, _>>()?;
        let local_shares: Vec<i64> = (0..k).map(|_| c.zz()).collect::<Result<_, _>>()?;
        let refund_of = match c.u8()? {
            0 => None,
            _ => Some(c.str()?.into()),
        };
        let (refunded_minor, refunded_base) = (c.zz()?, c.zz()?);
        let mut split = Split {
            conversion_id, event, time, currency, value_minor, base_minor, model: m, used_model: used, revision,
            touches: touches_of(&pool, &refs, None, names)?, shares: Vec::new(), local_shares: Vec::new(), refund_of,
            refunded_minor, refunded_base,
        };
        split.set_shares(shares, local_shares);
        splits.push(split);
    }
    if c.at != body.len() {
        return Err(c.err("trailing bytes"));
    }
    Ok(Journey { touches, splits: splits.into() })
}

#[derive(Deserialize)]
struct JsonSplit(String, String, i64, String, i64, i64, String, String, i64, Vec<usize>, Vec<i64>, Vec<i64>,
                 Option<String>, i64, i64);

type JsonTouch = (i64, String, String, String, String, f64);

#[derive(Deserialize)]
struct JsonBody(Vec<JsonTouch>, Vec<usize>, Vec<i64>, Vec<JsonSplit>);

#[derive(Deserialize)]
struct LegacyBody(serde::de::IgnoredAny, Vec<JsonTouch>, Vec<usize>, Vec<i64>, Vec<JsonSplit>, serde::de::IgnoredAny);

fn from_json(pool: Vec<JsonTouch>, refs: Vec<usize>, earned: Vec<i64>, splits: Vec<JsonSplit>,
             names: &mut Interner) -> Result<Option<Journey>, CodecError> {
    if refs.is_empty() && splits.is_empty() {
        return Ok(None);
    }
    let pool: Vec<PoolTouch<'_>> = pool.iter().map(|(time, tid, episode, campaign, channel, reward)| PoolTouch {
        time: *time, tid, episode, campaign, channel, reward: *reward,
    }).collect();
    if earned.len() != refs.len() {
        return Err(CodecError("stored journey: earned and open touches differ in length".into()));
    }
    let touches = touches_of(&pool, &refs, Some(&earned), names)?;
    let mut out = Vec::with_capacity(splits.len());
    for s in splits {
        let mut split = Split {
            conversion_id: s.0.into(), event: names.intern(&s.1), time: s.2, currency: names.intern(&s.3),
            value_minor: s.4, base_minor: s.5, model: model(&s.6)?, used_model: model(&s.7)?, revision: s.8,
            touches: touches_of(&pool, &s.9, None, names)?, shares: Vec::new(), local_shares: Vec::new(),
            refund_of: s.12.map(Into::into), refunded_minor: s.13, refunded_base: s.14,
        };
        split.set_shares(s.10, s.11);
        out.push(split);
    }
    Ok(Some(Journey { touches, splits: out.into() }))
}

/// The journey of a stored value (None: the value says the journey is gone).
pub fn decode(data: &[u8], names: &mut Interner) -> Result<Option<Journey>, CodecError> {
    match data.first() {
        None => Err(CodecError("empty journey value".into())),
        Some(b'[') => {
            let b: LegacyBody = serde_json::from_slice(data)
                .map_err(|e| CodecError(format!("corrupt journey value (format 1): {e}")))?;
            from_json(b.1, b.2, b.3, b.4, names)
        }
        Some(&v @ (2 | 3)) => {
            let n = data.get(1..5).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
                .ok_or_else(|| CodecError("truncated journey value".into()))?;
            let body = data.get(5..5 + n).ok_or_else(|| CodecError("truncated journey value".into()))?;
            if n == 0 {
                return Ok(None);
            }
            if v == 2 {
                let b: JsonBody = serde_json::from_slice(body)
                    .map_err(|e| CodecError(format!("corrupt journey value (format 2): {e}")))?;
                from_json(b.0, b.1, b.2, b.3, names)
            } else {
                decode_binary(body, names).map(Some)
            }
        }
        Some(v) => Err(CodecError(format!(
            "journey value of format {v}; this engine reads formats 1, 2 and {FORMAT_VERSION} (written by a newer \
             version? run that version)"))),
    }
}
