//! Avro single-object records of the project's current schemas: touchpoints and conversions read (the fast
//! path of `touchpoint_from_record` / `conversion_from_record`), attributed rewards written. A record of any
//! other writer schema, or one the fast path does not decide, is handed to Python.

use std::borrow::Cow;

use crate::config::{model_index, Config};
use crate::journey::Reward;
use crate::jsonl::Parsed;
use crate::validate;

pub const MAGIC: [u8; 2] = [0xC3, 0x01];

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Option<i64> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self.data.get(self.at)?;
            self.at += 1;
            n |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
        Some(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.long()?).ok()?;
        let end = self.at.checked_add(n)?;
        let s = self.data.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    fn double(&mut self) -> Option<f64> {
        let b = self.data.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(f64::from_le_bytes(b.try_into().ok()?))
    }

    fn optional_str(&mut self) -> Option<Option<&'a str>> {
        match self.long()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }

    /// `state` / `action`: null, an array of doubles, or JSON text. Some(()) when Python would accept it.
    fn json_field(&mut self) -> Option<()> {
        match self.long()? {
            0 => Some(()),
            1 => {
                loop {
                    let mut n = self.long()?;
                    if n == 0 {
                        return Some(());
                    }
                    if n < 0 {
                        n = -n;
                        self.long()?;
                    }
                    for _ in 0..n {
                        if !self.double()?.is_finite() {
                            return None;
                        }
                    }
                }
            }
            2 => (validate::json_text_ok(self.str()?) == Some(true)).then_some(()),
            _ => None,
        }
    }

    fn done(&self) -> bool {
        self.at == self.data.len()
    }
}

fn body<'a>(data: &'a [u8], fingerprint: &[u8; 8]) -> Option<Reader<'a>> {
    if data.len() < 10 || data[..2] != MAGIC || &data[2..10] != fingerprint {
        return None;
    }
    Some(Reader { data, at: 10 })
}

/// A touchpoint record of the current schema, keyed by its user, that Python would accept as it is.
pub fn read_touchpoint<'a>(data: &'a [u8], key: Option<&[u8]>, fingerprint: &[u8; 8]) -> Option<Parsed<'a>> {
    let mut r = body(data, fingerprint)?;
    let (tid, episode, user, campaign, channel) = (r.str()?, r.str()?, r.str()?, r.str()?, r.str()?);
    let creative = r.optional_str()?;
    let time = r.long()?;
    let reward = r.double()?;
    r.json_field()?;
    r.json_field()?;
    if !r.done() || key != Some(user.as_bytes()) {
        return None;
    }
    let ok = [tid, episode, user, campaign, channel].iter().all(|s| validate::required_id(s))
        && creative.is_none_or(|c| validate::char_len_at_most(c, validate::MAX_ID_LENGTH))
        && validate::timestamp_in_range(time) && validate::reward_ok(reward);
    ok.then(|| Parsed::Touchpoint {
        tid: Cow::Borrowed(tid), episode: Cow::Borrowed(episode), user: Cow::Borrowed(user),
        campaign: Cow::Borrowed(campaign), channel: Cow::Borrowed(channel), time, reward,
    })
}

/// A conversion record of the current schema, keyed by its user, that Python would accept as it is.
pub fn read_conversion<'a>(data: &'a [u8], key: Option<&[u8]>, fingerprint: &[u8; 8], cfg: &Config)
                           -> Option<Parsed<'a>> {
    let mut r = body(data, fingerprint)?;
    let (cid, user, event) = (r.str()?, r.str()?, r.str()?);
    let value_minor = r.long()?;
    let currency = r.str()?;
    let time = r.long()?;
    let refund_of = r.optional_str()?;
    let model = r.optional_str()?;
    if !r.done() || key != Some(user.as_bytes()) {
        return None;
    }
    let exp = *cfg.minor_units.get(currency)?;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let refund_of = match refund_of {
        None => None,
        Some(r) if validate::required_id(r) => Some(r),
        Some(_) => return None,
    };
    let value_minor = if refund_of.is_some() { value_minor.checked_abs()? } else { value_minor };
    if value_minor < 0 || value_minor / 10i64.pow(exp) > 1_000_000_000_000
        || (value_minor / 10i64.pow(exp) == 1_000_000_000_000 && value_minor % 10i64.pow(exp) != 0) {
        return None;
    }
    let model = match model {
        None => None,
        Some(m) => Some(model_index(m)?),
    };
    let event_norm = validate::ascii_strip_lower(Cow::Borrowed(event))?;
    let currency: [u8; 3] = currency.as_bytes().try_into().ok()?;
    let ok = validate::required_id(cid) && validate::required_id(user) && !event_norm.is_empty()
        && validate::char_len_at_most(event, validate::MAX_ID_LENGTH) && validate::timestamp_in_range(time);
    ok.then(|| Parsed::Conversion {
        cid: Cow::Borrowed(cid), user: Cow::Borrowed(user), event: event_norm, value_minor,
        currency, time, refund_of: refund_of.map(Cow::Borrowed), model,
    })
}

// ------------------------------------------------------------------------------------------------ writing

/// Zig-zag varint (Avro's long; the journey codec uses it too).
pub fn long(out: &mut Vec<u8>, x: i64) {
    let mut n = ((x << 1) ^ (x >> 63)) as u64;
    while n > 0x7f {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Length-prefixed UTF-8.
pub fn string(out: &mut Vec<u8>, s: &str) {
    long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(2);
            string(out, s);
        }
    }
}

fn opt_long(out: &mut Vec<u8>, x: Option<i64>) {
    match x {
        None => out.push(0),
        Some(x) => {
            out.push(2);
            long(out, x);
        }
    }
}

/// An attributed reward as `AvroCodec("attributed_reward").encode(reward_to_record(r))` writes it.
pub fn write_reward(out: &mut Vec<u8>, r: &Reward<'_>, fingerprint: &[u8; 8]) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(fingerprint);
    long(out, r.kind as i64);
    string(out, r.touchpoint_id);
    string(out, r.episode_id);
    string(out, r.user_id);
    string(out, r.campaign_id);
    string(out, r.channel);
    long(out, r.revision);
    long(out, r.amount_minor);
    string(out, r.base_currency);
    out.extend_from_slice(&r.original_reward.to_le_bytes());
    long(out, r.touch_time_ms);
    opt_string(out, r.conversion_id);
    opt_string(out, r.model);
    opt_string(out, r.currency);
    opt_long(out, r.local_amount_minor);
    opt_long(out, r.conversion_value_minor);
    opt_long(out, r.conversion_time_ms);
    opt_long(out, r.position);
    opt_long(out, r.journey_length);
    opt_string(out, r.event);
    opt_string(out, r.reason);
}
