//! Rewards in a compact binary form, so that they can be formatted as JSON on another thread.
//!
//! A `Reward` borrows its strings from the journey that produced it, which the engine changes on the next event;
//! copying its fields into a byte buffer costs a few memcpys, formatting it (floats, ISO times, escapes) costs
//! several times that. The backfill's engine thread writes records; its writer thread formats and writes them.
//!
//! Layout of one record: kind (u8), a presence mask (u16) for the optional fields, the numbers as little-endian
//! i64/f64 (optional ones only when present), then the strings as u32 length + bytes (optional ones only when
//! present).

use crate::journey::{Kind, Reward};

const KINDS: [Kind; 5] = [Kind::Attribution, Kind::Correction, Kind::Refund, Kind::Final, Kind::Unattributed];

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Append `r` to `out`.
pub fn encode(out: &mut Vec<u8>, r: &Reward<'_>) {
    let opt_nums = [r.local_amount_minor, r.conversion_value_minor, r.conversion_time_ms, r.position,
                    r.journey_length];
    let opt_strs = [r.conversion_id, r.model, r.currency, r.event, r.reason];
    let mut mask = 0u16;
    for (i, x) in opt_nums.iter().enumerate() {
        mask |= (x.is_some() as u16) << i;
    }
    for (i, x) in opt_strs.iter().enumerate() {
        mask |= (x.is_some() as u16) << (5 + i);
    }
    out.push(r.kind as u8);
    out.extend_from_slice(&mask.to_le_bytes());
    for x in [r.revision, r.amount_minor, r.original_reward.to_bits() as i64, r.touch_time_ms] {
        out.extend_from_slice(&x.to_le_bytes());
    }
    for x in opt_nums.into_iter().flatten() {
        out.extend_from_slice(&x.to_le_bytes());
    }
    for s in [r.touchpoint_id, r.episode_id, r.user_id, r.campaign_id, r.channel, r.base_currency] {
        put_str(out, s);
    }
    for s in opt_strs.into_iter().flatten() {
        put_str(out, s);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }

    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.take(8).try_into().unwrap())
    }

    fn str(&mut self) -> &'a str {
        let n = u32::from_le_bytes(self.take(4).try_into().unwrap()) as usize;
        // SAFETY: every string in a record buffer was copied whole from a `&str` by `encode`.
        unsafe { std::str::from_utf8_unchecked(self.take(n)) }
    }
}

/// The records of `buf` (as `encode` wrote them), in order.
pub fn each<'a>(buf: &'a [u8], mut f: impl FnMut(&Reward<'a>)) {
    let mut rd = Reader { buf, pos: 0 };
    while rd.pos < buf.len() {
        let kind = KINDS[rd.take(1)[0] as usize];
        let mask = u16::from_le_bytes(rd.take(2).try_into().unwrap());
        let (revision, amount_minor) = (rd.i64(), rd.i64());
        let original_reward = f64::from_bits(rd.i64() as u64);
        let touch_time_ms = rd.i64();
        let mut nums = [None; 5];
        for (i, x) in nums.iter_mut().enumerate() {
            if mask & (1 << i) != 0 {
                *x = Some(rd.i64());
            }
        }
        let (touchpoint_id, episode_id, user_id) = (rd.str(), rd.str(), rd.str());
        let (campaign_id, channel, base_currency) = (rd.str(), rd.str(), rd.str());
        let mut strs = [None; 5];
        for (i, x) in strs.iter_mut().enumerate() {
            if mask & (1 << (5 + i)) != 0 {
                *x = Some(rd.str());
            }
        }
        let [local_amount_minor, conversion_value_minor, conversion_time_ms, position, journey_length] = nums;
        let [conversion_id, model, currency, event, reason] = strs;
        f(&Reward { kind, touchpoint_id, episode_id, user_id, campaign_id, channel, revision, amount_minor,
                    base_currency, original_reward, touch_time_ms, conversion_id, model, currency,
                    local_amount_minor, conversion_value_minor, conversion_time_ms, position, journey_length,
                    event, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonl::write_reward;

    #[test]
    fn a_record_formats_exactly_as_the_reward_it_came_from() {
        let full = Reward { kind: Kind::Correction, touchpoint_id: "t-1", episode_id: "é\"pisode", user_id: "u\n1",
                            campaign_id: "camp", channel: "search", revision: 3, amount_minor: -1234,
                            base_currency: "USD", original_reward: 0.1, touch_time_ms: 1_767_225_600_123,
                            conversion_id: Some("c-9"), model: Some("linear"), currency: Some("JPY"),
                            local_amount_minor: Some(-130), conversion_value_minor: Some(5000),
                            conversion_time_ms: Some(1_767_229_200_000), position: Some(2), journey_length: Some(7),
                            event: Some("purchase"), reason: None };
        let bare = Reward { kind: Kind::Final, conversion_id: None, model: None, currency: None,
                            local_amount_minor: None, conversion_value_minor: None, conversion_time_ms: None,
                            position: None, journey_length: None, event: None, reason: Some("no_touchpoint"),
                            original_reward: f64::MIN_POSITIVE, ..full };
        let mu = |c: &str| if c == "JPY" { 0 } else { 2 };
        let (mut direct, mut buf) = (Vec::new(), Vec::new());
        for r in [&full, &bare, &full] {
            write_reward(&mut direct, r, &mu);
            encode(&mut buf, r);
        }
        let mut via = Vec::new();
        let mut n = 0;
        each(&buf, |r| {
            write_reward(&mut via, r, &mu);
            n += 1;
        });
        assert_eq!(n, 3);
        assert_eq!(String::from_utf8(via).unwrap(), String::from_utf8(direct).unwrap());
    }
}
