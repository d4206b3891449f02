//! JSON Lines: input events (the fast path of `parse_event`) and attributed rewards out, byte for byte what
//! `orjson.dumps(reward_to_json(r))` writes.

use std::borrow::Cow;
use std::io::Write;

use crate::config::{model_index, Config};
use crate::event_fields::serde_fields;
use crate::intern::Interner;
use crate::journey::{ConversionIn, Reward, TouchpointIn};
use crate::scan;
use crate::validate;

/// An event parsed on the fast path, owning what it could not borrow from the line.
pub enum Parsed<'a> {
    Touchpoint { tid: Cow<'a, str>, episode: Cow<'a, str>, user: Cow<'a, str>, campaign: Cow<'a, str>,
                 channel: Cow<'a, str>, time: i64, reward: f64 },
    // the currency's three letters in upper case and the event borrowed when it can be: a conversion's strings
    // allocated on the parsing thread and freed on the engine's cost more than its parsing
    Conversion { cid: Cow<'a, str>, user: Cow<'a, str>, event: Cow<'a, str>, value_minor: i64, currency: [u8; 3],
                 time: i64, refund_of: Option<Cow<'a, str>>, model: Option<u8> },
}

fn number_text(t: &str) -> Option<&str> {
    match t.as_bytes().first()? {
        b'-' | b'0'..=b'9' => Some(t),
        _ => None,
    }
}

fn is_integer_text(t: &str) -> bool {
    !t.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

fn timestamp(raw: Option<&str>) -> Option<i64> {
    let t = raw?;
    let ms = if t.starts_with('"') {
        let s: Cow<str> = serde_json::from_str(t).ok()?;
        validate::parse_iso(&s)?
    } else {
        let t = number_text(t)?;
        if is_integer_text(t) {
            t.parse::<i64>().ok()?
        } else {
            let x: f64 = t.parse().ok()?;
            if !x.is_finite() || x.fract() != 0.0 || x.abs() > 9.0e15 {
                return None;
            }
            x as i64
        }
    };
    validate::timestamp_in_range(ms).then_some(ms)
}

fn required(v: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    let v = v?;
    validate::required_id(&v).then_some(v)
}

fn optional_ok(v: &Option<Cow<'_, str>>) -> bool {
    v.as_ref().is_none_or(|s| validate::char_len_at_most(s, validate::MAX_ID_LENGTH))
}

/// A raw value is valid JSON already (serde checked it to find its end), so only its nesting is left to check.
fn json_value_ok(v: Option<&str>) -> bool {
    match v {
        None => true,
        Some(raw) => validate::json_valid_text_ok(raw) == Some(true),
    }
}

/// A line on the fast path, or None: Python parses it (and words any refusal).
pub fn parse_line<'a>(line: &'a [u8], cfg: &Config) -> Option<Parsed<'a>> {
    let raw = scan::fields(line).or_else(|| serde_fields(line))?;
    match raw.kind.as_deref()? {
        "touchpoint" => {
            let reward = match raw.immediate_reward {
                None => 0.0,
                Some("null") => return None,
                Some(r) => {
                    let x: f64 = number_text(r)?.parse().ok()?;
                    if !validate::reward_ok(x) {
                        return None;
                    }
                    x
                }
            };
            if !json_value_ok(raw.state) || !json_value_ok(raw.action) || !optional_ok(&raw.creative_type) {
                return None;
            }
            Some(Parsed::Touchpoint {
                tid: required(raw.touchpoint_id)?, episode: required(raw.episode_id)?, user: required(raw.user_id)?,
                campaign: required(raw.campaign_id)?, channel: required(raw.channel)?,
                time: timestamp(raw.timestamp)?, reward,
            })
        }
        "conversion" => {
            let cur = raw.currency.as_deref()?;
            if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_alphabetic()) {
                return None;
            }
            let mut currency = [0u8; 3];
            currency.copy_from_slice(cur.as_bytes());
            currency.make_ascii_uppercase();
            let exp = *cfg.minor_units.get(currency_str(&currency))?;
            let refund_of = match raw.refund_of {
                None => None,
                Some(r) if validate::required_id(&r) => Some(r),
                Some(_) => return None,
            };
            let text = raw.value?;
            let minor = if text.starts_with('"') {
                let s: Cow<str> = serde_json::from_str(text).ok()?;
                let s = if refund_of.is_some() { s.strip_prefix('-').unwrap_or(&s) } else { &s };
                validate::decimal_to_minor(s, exp)?
            } else {
                let t = number_text(text)?;
                let t = if refund_of.is_some() { t.strip_prefix('-').unwrap_or(t) } else { t };
                if is_integer_text(t) {
                    validate::decimal_to_minor(t, exp)?
                } else {
                    validate::float_to_minor(t.parse().ok()?, exp)?
                }
            };
            let model = match raw.model {
                None => None,
                Some(m) => Some(model_index(&m)?),
            };
            let raw_event = raw.event?;
            if !validate::char_len_at_most(&raw_event, validate::MAX_ID_LENGTH) {
                return None;
            }
            let event = validate::ascii_strip_lower(raw_event)?;
            if event.is_empty() {
                return None;
            }
            Some(Parsed::Conversion {
                cid: required(raw.conversion_id)?, user: required(raw.user_id)?, event, value_minor: minor, currency,
                time: timestamp(raw.timestamp)?, refund_of, model,
            })
        }
        _ => None,
    }
}

/// The non-blank lines of a chunk with their numbers (the first is `first_line`).
pub fn lines(chunk: &[u8], first_line: i64) -> impl Iterator<Item = (i64, &[u8])> {
    chunk.split_inclusive(|&b| b == b'\n').zip(first_line..)
        .filter(|(line, _)| !line.iter().all(|b| b.is_ascii_whitespace() || *b == 0x0b))
        .map(|(line, number)| (number, line))
}

/// A currency code as parsed: three ASCII letters.
pub fn currency_str(code: &[u8; 3]) -> &str {
    std::str::from_utf8(code).expect("a currency code is three ASCII letters")
}

impl Parsed<'_> {
    pub fn touchpoint<'s>(&'s self, names: &mut Interner) -> Option<TouchpointIn<'s>> {
        match self {
            Parsed::Touchpoint { tid, episode, user, campaign, channel, time, reward } => Some(TouchpointIn {
                touchpoint_id: tid, episode_id: episode, user_id: user, campaign: names.intern(campaign),
                channel: names.intern(channel), time: *time, reward: *reward,
            }),
            _ => None,
        }
    }

    pub fn conversion<'s>(&'s self, names: &mut Interner) -> Option<ConversionIn<'s>> {
        match self {
            Parsed::Conversion { cid, user, event, value_minor, currency, time, refund_of, model } => {
                Some(ConversionIn {
                    conversion_id: cid, user_id: user, event: names.intern(event), value_minor: *value_minor,
                    currency: names.intern(currency_str(currency)), time: *time, refund_of: refund_of.as_deref(),
                    model: *model,
                })
            }
            _ => None,
        }
    }
}

// ------------------------------------------------------------------------------------------------ output

/// A JSON string as orjson writes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_str_body(out, s.as_bytes());
    out.push(b'"');
}

fn needs_escape(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

fn write_str_body(out: &mut Vec<u8>, b: &[u8]) {
    if !b.iter().any(|&c| needs_escape(c)) {
        out.extend_from_slice(b);
        return;
    }
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if !needs_escape(c) {
            continue;
        }
        out.extend_from_slice(&b[start..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

pub fn write_f64(out: &mut Vec<u8>, x: f64) {
    serde_json::to_writer(&mut *out, &x).expect("float");
}

fn write_i64(out: &mut Vec<u8>, x: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(x).as_bytes());
}

fn write_opt_i64(out: &mut Vec<u8>, x: Option<i64>) {
    match x {
        Some(x) => write_i64(out, x),
        None => out.extend_from_slice(b"null"),
    }
}

/// `money()`: minor units as the exact decimal (an integer for currencies without decimals).
fn write_money(out: &mut Vec<u8>, minor: i64, exp: u32) {
    if exp == 0 {
        write_i64(out, minor);
    } else if minor.unsigned_abs() < (1u64 << 53) {
        write_f64(out, minor as f64 / 10f64.powi(exp as i32)); // both exact: one correctly rounded division
    } else {
        // Python divides the exact integers; reading the exact decimal text rounds once, the same way
        let digits = format!("{:0>width$}", minor.unsigned_abs(), width = exp as usize + 1);
        let (int_part, frac) = digits.split_at(digits.len() - exp as usize);
        let x: f64 = format!("{}{int_part}.{frac}", if minor < 0 { "-" } else { "" }).parse().expect("decimal");
        write_f64(out, x);
    }
}

fn digits(out: &mut Vec<u8>, x: i64, width: usize) {
    let mut buf = [b'0'; 4];
    let mut v = x;
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// Epoch milliseconds as ISO-8601 UTC with millisecond precision (…T12:00:00.250Z), quoted.
pub fn write_iso(out: &mut Vec<u8>, ms: i64) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = validate::civil_from_days(days);
    if !(0..=9999).contains(&y) {
        let _ = write!(out, "\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\"", y, m, d, sod / 3600, (sod % 3600) / 60,
                       sod % 60, milli);
        return;
    }
    out.push(b'"');
    digits(out, y, 4);
    out.push(b'-');
    digits(out, m, 2);
    out.push(b'-');
    digits(out, d, 2);
    out.push(b'T');
    digits(out, sod / 3600, 2);
    out.push(b':');
    digits(out, (sod % 3600) / 60, 2);
    out.push(b':');
    digits(out, sod % 60, 2);
    out.push(b'.');
    digits(out, milli, 3);
    out.extend_from_slice(b"Z\"");
}

/// One component of a reward id: `%` and `:` escaped (then JSON-escaped as the id is written).
fn id_part(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| b == b':' || b == b'%') {
        write_str_body(out, s.as_bytes());
        return;
    }
    let escaped = s.replace('%', "%25").replace(':', "%3A");
    write_str_body(out, escaped.as_bytes());
}

/// `AttributedReward.reward_id`, as a JSON string.
fn write_reward_id(out: &mut Vec<u8>, r: &Reward<'_>) {
    out.push(b'"');
    out.extend_from_slice(r.kind.name().as_bytes());
    out.push(b':');
    id_part(out, r.user_id);
    out.push(b':');
    id_part(out, r.conversion_id.unwrap_or(""));
    out.push(b':');
    id_part(out, r.touchpoint_id);
    out.push(b':');
    write_i64(out, r.revision);
    out.push(b'"');
}

/// One reward as a JSON line (`reward_to_json` + `orjson.dumps` + newline).
pub fn write_reward(out: &mut Vec<u8>, r: &Reward<'_>, minor_units: &impl Fn(&str) -> u32) {
    out.extend_from_slice(b"{\"kind\":");
    write_str(out, r.kind.name());
    out.extend_from_slice(b",\"reward_id\":");
    write_reward_id(out, r);
    out.extend_from_slice(b",\"conversion_id\":");
    write_opt_str(out, r.conversion_id);
    out.extend_from_slice(b",\"touchpoint_id\":");
    write_str(out, r.touchpoint_id);
    out.extend_from_slice(b",\"episode_id\":");
    write_str(out, r.episode_id);
    out.extend_from_slice(b",\"user_id\":");
    write_str(out, r.user_id);
    out.extend_from_slice(b",\"campaign_id\":");
    write_str(out, r.campaign_id);
    out.extend_from_slice(b",\"channel\":");
    write_str(out, r.channel);
    out.extend_from_slice(b",\"model\":");
    write_opt_str(out, r.model);
    out.extend_from_slice(b",\"event\":");
    write_opt_str(out, r.event);
    out.extend_from_slice(b",\"revision\":");
    write_i64(out, r.revision);
    out.extend_from_slice(b",\"amount\":");
    write_money(out, r.amount_minor, minor_units(r.base_currency));
    out.extend_from_slice(b",\"amount_minor\":");
    write_i64(out, r.amount_minor);
    out.extend_from_slice(b",\"base_currency\":");
    write_str(out, r.base_currency);
    out.extend_from_slice(b",\"currency\":");
    write_opt_str(out, r.currency);
    out.extend_from_slice(b",\"local_amount\":");
    match (r.local_amount_minor, r.currency) {
        (Some(x), Some(c)) if !c.is_empty() => write_money(out, x, minor_units(c)),
        _ => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"conversion_value\":");
    match (r.conversion_value_minor, r.currency) {
        (Some(x), Some(c)) if !c.is_empty() => write_money(out, x, minor_units(c)),
        _ => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"original_reward\":");
    write_f64(out, r.original_reward);
    out.extend_from_slice(b",\"touch_time\":");
    write_iso(out, r.touch_time_ms);
    out.extend_from_slice(b",\"conversion_time\":");
    match r.conversion_time_ms {
        Some(t) => write_iso(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"delay_seconds\":");
    match r.conversion_time_ms {
        Some(t) => write_f64(out, (t - r.touch_time_ms) as f64 / 1000.0),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"position\":");
    write_opt_i64(out, r.position);
    out.extend_from_slice(b",\"journey_length\":");
    write_opt_i64(out, r.journey_length);
    out.extend_from_slice(b",\"reason\":");
    write_opt_str(out, r.reason);
    out.extend_from_slice(b"}\n");
}
