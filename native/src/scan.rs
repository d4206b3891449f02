//! An input line's fields read by hand, for the shape producers write: one flat object of known keys, strings
//! without escapes, numbers, and flat arrays of numbers, which serde's derived reader (`event_fields`) reads at
//! a large share of a backfill's CPU. Any other line (escapes, unknown or repeated keys, nesting, anything
//! malformed) is left to serde: `fields` returns None and decides nothing, so a line it takes must be one serde
//! takes too, with the same fields; `tests` checks that against serde over every small mutation of sample lines.

use std::borrow::Cow;

use crate::event_fields::Fields;

/// Where a string's body ends: the first quote, backslash or control character (eight bytes at a time: a line's
/// strings are most of this reader's work).
fn string_end(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = b.get(at..at + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let (quote, slash) = (w ^ (ONES * b'"' as u64), w ^ (ONES * b'\\' as u64));
        // a byte's high bit set where it is zero (or below 0x20); exact for the lowest such byte, which is the one taken
        let hits = (quote.wrapping_sub(ONES) & !quote | slash.wrapping_sub(ONES) & !slash
                    | w.wrapping_sub(ONES * 0x20) & !w) & HIGH;
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    b[at..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).map(|n| at + n)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && is_ws(self.b[self.i]) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A string without escapes or control characters, valid UTF-8; the reader is at its opening quote.
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = &self.b[self.i..];
        let n = string_end(rest)?;
        if rest[n] != b'"' {
            return None;
        }
        let s = &rest[..n];
        self.i += n + 1;
        if s.is_ascii() {
            // SAFETY: ASCII only
            Some(unsafe { std::str::from_utf8_unchecked(s) })
        } else {
            std::str::from_utf8(s).ok()
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number as JSON writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// After an item of an array or object: Some(true) at a comma (another item follows), Some(false) at
    /// `close` (the end), None at anything else.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.ws();
        if self.eat(b',').is_some() {
            self.ws();
            return Some(true);
        }
        self.eat(close)?;
        Some(false)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b.get(self.i..self.i + word.len()).filter(|w| *w == word)?;
        self.i += word.len();
        Some(())
    }

    /// A raw value: a number, an escape-free string, a literal, or a flat array of numbers; its text.
    fn raw(&mut self) -> Option<&'a str> {
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'n' => self.literal(b"null")?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'[' => {
                self.i += 1;
                self.ws();
                if self.eat(b']').is_none() {
                    loop {
                        self.number()?;
                        if !self.more(b']')? {
                            break;
                        }
                    }
                }
            }
            _ => self.number()?,
        }
        // SAFETY: every byte read above was ASCII, or part of a string checked as UTF-8
        Some(unsafe { std::str::from_utf8_unchecked(&self.b[start..self.i]) })
    }

    /// A raw field's value: null is none, as serde reads an `Option<&RawValue>`.
    fn raw_or_null(&mut self) -> Option<Option<&'a str>> {
        let v = self.raw()?;
        Some((v != "null").then_some(v))
    }

    /// A text field's value: a string, or null for none.
    fn text(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        Some(Some(Cow::Borrowed(self.string()?)))
    }
}

fn set<T>(slot: &mut Option<T>, seen: &mut u32, bit: u32, value: Option<T>) -> Option<()> {
    if *seen & bit != 0 {
        return None; // a repeated key: serde refuses it, and so the line is serde's to judge
    }
    *seen |= bit;
    *slot = value;
    Some(())
}

/// The line's fields, or None: serde reads the line instead.
pub fn fields(line: &[u8]) -> Option<Fields<'_>> {
    let mut r = Reader { b: line, i: 0 };
    let mut f = Fields::default();
    let mut seen = 0u32;
    r.ws();
    r.eat(b'{')?;
    r.ws();
    if r.eat(b'}').is_none() {
        loop {
            let key = r.string()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            match key {
                "type" => {
                    let v = r.string()?; // serde refuses a null type: left to it
                    set(&mut f.kind, &mut seen, 1, Some(Cow::Borrowed(v)))?;
                }
                "touchpoint_id" => set(&mut f.touchpoint_id, &mut seen, 1 << 1, r.text()?)?,
                "episode_id" => set(&mut f.episode_id, &mut seen, 1 << 2, r.text()?)?,
                "user_id" => set(&mut f.user_id, &mut seen, 1 << 3, r.text()?)?,
                "campaign_id" => set(&mut f.campaign_id, &mut seen, 1 << 4, r.text()?)?,
                "channel" => set(&mut f.channel, &mut seen, 1 << 5, r.text()?)?,
                "creative_type" => set(&mut f.creative_type, &mut seen, 1 << 6, r.text()?)?,
                "timestamp" => set(&mut f.timestamp, &mut seen, 1 << 7, r.raw_or_null()?)?,
                "immediate_reward" => set(&mut f.immediate_reward, &mut seen, 1 << 8, r.raw_or_null()?)?,
                "state" => set(&mut f.state, &mut seen, 1 << 9, r.raw_or_null()?)?,
                "action" => set(&mut f.action, &mut seen, 1 << 10, r.raw_or_null()?)?,
                "conversion_id" => set(&mut f.conversion_id, &mut seen, 1 << 11, r.text()?)?,
                "event" => set(&mut f.event, &mut seen, 1 << 12, r.text()?)?,
                "value" => set(&mut f.value, &mut seen, 1 << 13, r.raw_or_null()?)?,
                "currency" => set(&mut f.currency, &mut seen, 1 << 14, r.text()?)?,
                "refund_of" => set(&mut f.refund_of, &mut seen, 1 << 15, r.text()?)?,
                "model" => set(&mut f.model, &mut seen, 1 << 16, r.text()?)?,
                _ => return None,
            }
            if !r.more(b'}')? {
                break;
            }
        }
    }
    r.ws();
    (r.i == line.len() && f.kind.is_some()).then_some(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_fields::serde_fields;

    const LINES: [&str; 5] = [
        r#"{"type":"touchpoint","touchpoint_id":"tp-1","episode_id":"ep-1","user_id":"user-1","campaign_id":"c","channel":"video","creative_type":"text","timestamp":1767225838860,"immediate_reward":0.0,"state":[0.4974,-0.4272,1e-3,0],"action":4}"#,
        r#"{"type":"conversion","conversion_id":"cv-9","user_id":"u9","event":"purchase","value":"83.09","currency":"usd","timestamp":"2026-01-01T00:00:00Z","refund_of":null,"model":"linear"}"#,
        r#" { "type" : "conversion" , "conversion_id" : "r1" , "user_id" : "ü" , "value" : -12.5E+2 , "refund_of" : "cv-9" , "state" : [ ] , "action" : true } "#,
        r#"{"type":"touchpoint","action":false,"state":null,"channel":null,"timestamp":1.5e3,"immediate_reward":-0}"#,
        "{\"type\":\"touchpoint\",\"user_id\":\"é\",\"state\":[1, 2 ,3],\"action\":\"x\"}\n",
    ];

    /// Bytes a mutation puts in: JSON's structure, whitespace, escapes, controls, digits, and UTF-8 pieces.
    const BYTES: &[u8] = b"{}[]\",:\\ \t\n\r\x0b\x00\x1f\x7f0123456789.eE+-ntfrual\xc3\xa9\xff";

    /// Whether this reader took the line (and then serde took it too, with the same fields).
    fn agree(line: &[u8]) -> bool {
        let Some(mine) = fields(line) else { return false };
        let theirs = serde_fields(line);
        assert_eq!(Some(&mine), theirs.as_ref(), "{:?}", String::from_utf8_lossy(line));
        true
    }

    #[test]
    fn takes_what_serde_takes_with_the_same_fields() {
        let (mut tried, mut taken, mut serde_only) = (0, 0, 0);
        let mut check = |line: &[u8]| {
            tried += 1;
            if agree(line) {
                taken += 1;
            } else if serde_fields(line).is_some() {
                serde_only += 1;
            }
        };
        for line in LINES {
            let line = line.as_bytes();
            assert!(fields(line).is_some(), "{:?}", String::from_utf8_lossy(line));
            for i in 0..=line.len() {
                if i < line.len() {
                    let mut cut = line.to_vec();
                    cut.remove(i);
                    check(&cut);
                }
                for &b in BYTES {
                    let mut put = line.to_vec();
                    put.insert(i, b);
                    check(&put);
                    if i < line.len() {
                        let mut swap = line.to_vec();
                        swap[i] = b;
                        check(&swap);
                    }
                }
            }
        }
        // the mutations this reader takes (and the ones left to serde that serde takes) are many: not a vacuous check
        eprintln!("{tried} lines: {taken} taken, {serde_only} left to serde and taken by it");
        assert!(taken > tried / 10 && serde_only > tried / 100, "{tried} {taken} {serde_only}");
    }

    #[test]
    fn string_end_finds_the_first_quote_backslash_or_control() {
        for len in 0..40 {
            for &stop in b"\"\\\x00\x1f" {
                for at in 0..len {
                    let mut b: Vec<u8> = (0..len).map(|i| b"a\x7f\xc3\x20!~"[i % 6]).collect();
                    b[at] = stop;
                    if at + 1 < len {
                        b[at + 1] = b'"';
                    }
                    assert_eq!(string_end(&b), Some(at), "{b:?}");
                }
            }
            let plain: Vec<u8> = (0..len).map(|i| b"a\x7f\xff\x20!~"[i % 6]).collect();
            assert_eq!(string_end(&plain), None);
        }
    }

    #[test]
    fn leaves_escapes_unknown_keys_repeats_and_nesting_to_serde() {
        for line in [
            r#"{"type":"touchpoint","user_id":"a\"b"}"#,
            r#"{"type":"touchpoint","other":1}"#,
            r#"{"type":"touchpoint","user_id":"a","user_id":"b"}"#,
            r#"{"type":"touchpoint","state":[[1]]}"#,
            r#"{"type":"touchpoint","state":{"a":1}}"#,
            r#"{"type":null}"#,
            r#"{"user_id":"a"}"#,
            r#"{"type":"touchpoint"} x"#,
        ] {
            assert!(fields(line.as_bytes()).is_none(), "{line}");
        }
    }
}
