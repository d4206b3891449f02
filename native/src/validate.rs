//! The checks of `pipeline/events/parse.py`, for the fast path only.
//!
//! The native engine accepts an event here only when it can tell that Python's parser accepts it and gives
//! the same values; anything else (an error, or a case these functions do not decide, such as non-ASCII
//! padding or an exotic number format) is handed back to Python, which parses it, or refuses it with its own
//! words. So both engines refuse the same events with the same messages by construction, and the native code
//! only needs to be right on what it accepts.

use std::borrow::Cow;

pub const MIN_TIMESTAMP_MS: i64 = 946_684_800_000; // 2000-01-01
pub const MAX_TIMESTAMP_MS: i64 = 4_102_444_800_000; // 2100-01-01
pub const MAX_ID_LENGTH: usize = 256;
pub const MAX_ABS_REWARD: f64 = 1e9;
pub const MAX_VALUE: i64 = 1_000_000_000_000; // a conversion's value, in currency units
pub const MAX_JSON_DEPTH: usize = 32;

/// Python's `str.strip()` whitespace among ASCII characters.
pub fn py_ascii_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1c | 0x1d | 0x1e | 0x1f)
}

/// A required id (`_req`): a string Python keeps as it is. Accepted when it surely is not blank (it has a
/// visible ASCII character) and is at most 256 characters long.
pub fn required_id(s: &str) -> bool {
    s.bytes().any(|b| (0x21..0x7f).contains(&b)) && char_len_at_most(s, MAX_ID_LENGTH)
}

pub fn char_len_at_most(s: &str, n: usize) -> bool {
    s.len() <= n || s.chars().count() <= n
}

/// `x.strip().lower()` for ASCII text (None when the text is not ASCII: Python decides then).
pub fn ascii_strip_lower(s: Cow<'_, str>) -> Option<Cow<'_, str>> {
    if !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    let start = b.iter().position(|&c| !py_ascii_space(c))?;
    let end = b.iter().rposition(|&c| !py_ascii_space(c)).unwrap() + 1;
    // borrowed when it is already stripped and lower case (nearly always): no allocation an event
    Some(match s {
        Cow::Borrowed(t) if !b[start..end].iter().any(u8::is_ascii_uppercase) => Cow::Borrowed(&t[start..end]),
        s => Cow::Owned(s[start..end].to_ascii_lowercase()),
    })
}

pub fn timestamp_in_range(ms: i64) -> bool {
    (MIN_TIMESTAMP_MS..MAX_TIMESTAMP_MS).contains(&ms)
}

pub fn reward_ok(r: f64) -> bool {
    r.is_finite() && r.abs() <= MAX_ABS_REWARD
}

/// ISO-8601 with a zone, the common forms only: `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`. Epoch milliseconds,
/// sub-millisecond digits floored as Python's `(dt - epoch) // 1 ms` does.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in &b[range] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59
        || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b[at] == b'.' {
        let start = at + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let n = end - start;
        if !(n == 3 || n == 6) {
            return None; // Python 3.11 accepts exactly 3 or 6 digits
        }
        micros = num(start..end)? * if n == 3 { 1000 } else { 1 };
        at = end;
    }
    let offset_s = match &b[at..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let (oh, om) = (((h1 - b'0') * 10 + (h2 - b'0')) as i64, ((m1 - b'0') * 10 + (m2 - b'0')) as i64);
            if oh > 23 || om > 59 {
                return None;
            }
            let v = oh * 3600 + om * 60;
            if *sign == b'-' { -v } else { v }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(secs * 1000 + micros.div_euclid(1000))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => if is_leap(y) { 29 } else { 28 },
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) of days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A decimal amount as Python's `parse_money` reads it, in minor units of a currency with `exp` decimals:
/// digits, an optional fraction, no sign (the caller strips a refund's minus), at most `MAX_VALUE`, no more
/// decimals than the currency has (trailing zeros allowed). None: Python decides.
pub fn decimal_to_minor(text: &str, exp: u32) -> Option<i64> {
    let (int_part, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && frac.is_empty()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > exp as usize {
        return None;
    }
    let int_part = int_part.trim_start_matches('0');
    if int_part.len() > MAX_VALUE.ilog10() as usize + 1 {
        return None; // more digits than MAX_VALUE has: past it, and maybe past an i64
    }
    let whole: i64 = if int_part.is_empty() { 0 } else { int_part.parse().ok()? };
    let mut f: i64 = 0;
    for i in 0..exp as usize {
        f = f * 10 + frac.as_bytes().get(i).map_or(0, |b| (b - b'0') as i64);
    }
    // at most MAX_VALUE (exactly MAX_VALUE is allowed)
    if whole > MAX_VALUE || (whole == MAX_VALUE && f > 0) {
        return None;
    }
    Some(whole * 10i64.pow(exp) + f)
}

/// A float amount: Python takes `repr(x)`, the shortest text that reads back as x; Rust's `{}` gives the same
/// digits (without an exponent).
pub fn float_to_minor(x: f64, exp: u32) -> Option<i64> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    decimal_to_minor(&format!("{x}"), exp)
}

/// `_check_json` on a parsed JSON value.
pub fn json_ok(v: &serde_json::Value, depth: usize) -> bool {
    use serde_json::Value;
    if depth > MAX_JSON_DEPTH {
        return false;
    }
    match v {
        Value::Array(items) => {
            if !items.is_empty() && items.iter().all(|x| matches!(x, Value::Number(n) if n.is_f64())) {
                return true; // a numeric vector: finite, since JSON has no NaN
            }
            items.iter().all(|x| json_ok(x, depth + 1))
        }
        Value::Object(map) => map.values().all(|x| json_ok(x, depth + 1)),
        _ => true,
    }
}

/// A `state`/`action` value given as JSON text (a raw JSON value, or the text an Avro string carries).
/// Some(true): valid; Some(false) never (refusals are Python's); None: Python decides.
pub fn json_text_ok(text: &str) -> Option<bool> {
    if !nested(text) {
        // a scalar or a flat array: valid JSON at depth ≤ 1 is accepted, if it is valid JSON
        return if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() { Some(true) } else { None };
    }
    nested_ok(text)
}

/// `json_text_ok` on text known to be one valid JSON value (a `RawValue`'s): a scalar or flat array is accepted
/// without being parsed again.
pub fn json_valid_text_ok(text: &str) -> Option<bool> {
    if !nested(text) { Some(true) } else { nested_ok(text) }
}

fn nested(text: &str) -> bool {
    let t = text.trim_start();
    t.bytes().skip(1).any(|b| b == b'[' || b == b'{') || t.starts_with('{')
}

fn nested_ok(text: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if json_ok(&v, 0) { Some(true) } else { None }
}
