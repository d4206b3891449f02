//! A fuzz harness for the JSON Lines parser and its validation, run as a test: a seeded mutator over the seed
//! corpus in `fuzz/corpus/jsonl` (bit flips, byte insertions and deletions from JSON's alphabet, splices of two
//! inputs, duplicated and cut spans). Not libFuzzer (cargo fuzz): the crate's modules are private to it and it
//! links PyO3 as an extension module, so an outside fuzz binary could neither reach the parser nor link; a
//! mutator inside the crate reaches both.
//!
//! Each input must: not panic; read the same fields through the fast scanner as through serde wherever the
//! scanner takes it; and, where the fast path accepts a line, give an event that validation would accept (ids
//! present and at most the longest id, a timestamp in range, a finite reward). `RS_FUZZ_ITERATIONS` sets the
//! number of inputs (default 20,000: a quick run in the suite), `RS_FUZZ_SEED` the seed; a long run (minutes,
//! outside CI) is `RS_FUZZ_ITERATIONS=1000000 cargo test --release fuzz_ -- --nocapture`.

use std::path::Path;

use rustc_hash::FxHashMap as HashMap;

use crate::config::Config;
use crate::intern::Interner;
use crate::event_fields::serde_fields;
use crate::jsonl::{parse_line, Parsed};
use crate::scan::fields;
use crate::validate;

/// xorshift64*: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes a mutation puts in: JSON's structure, whitespace, escapes, controls, digits, letters of its literals
/// and of the fields' values, and UTF-8 pieces (valid and not).
const ALPHABET: &[u8] = b"{}[]\",:\\/ \t\n\r\x0b\x00\x1f\x7f0123456789.eE+-ntfrualsTZ:u\xc3\xa9\xe2\x82\xac\xff\xf0\x9f";

/// Whole tokens, so that mutations also make well-formed lines with odd values.
const TOKENS: &[&str] = &[
    "null", "true", "false", "\"\"", "\" \"", "[]", "{}", "1e400", "-0", "1.5e3", "9223372036854775807",
    "-9223372036854775808", "18446744073709551616", "0.001", "\"1_000\"", "\"NaN\"", "\"Infinity\"",
    "\"2026-01-01T00:00:00Z\"", "\"2026-02-30T25:61:00+14:00\"", "\"9999-12-31T23:59:59.999999999Z\"",
    "\"\\u0000\"", "\"\\ud800\"", "\"\\u00e9\"", "\"touchpoint\"", "\"conversion\"", "\"refund\"", "\"usd\"",
    "\"JPY\"", "\"BHD\"", "\"XYZ\"", "\"linear\"", "\"shapley\"", "\"type\"", "\"timestamp\"", "\"value\"",
    "\"currency\"", "\"refund_of\"", "\"immediate_reward\"", "\"state\"",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at..end);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = ALPHABET[rng.below(ALPHABET.len())];
            }
            4 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            5 if at < out.len() => {
                // a token in place of the value after a colon
                if let Some(colon) = out[at..].iter().position(|&b| b == b':') {
                    let start = at + colon + 1;
                    let end = out[start..].iter().position(|&b| b == b',' || b == b'}').map_or(out.len(), |e| start + e);
                    let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    out.splice(start..end, token.iter().copied());
                }
            }
            6 => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            _ if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + 1 + rng.below(16)).min(out.len());
                let span = out[start..end].to_vec();
                out.splice(at..at, span);
            }
            _ => {}
        }
    }
    out.truncate(4096);
    out
}

fn config() -> Config {
    let mut names = Interner::default();
    let minor_units: HashMap<String, u32> =
        [("USD", 2), ("EUR", 2), ("JPY", 0), ("BHD", 3)].into_iter().map(|(c, e)| (c.to_string(), e)).collect();
    Config {
        default_model: crate::config::LINEAR, window_ms: 7 * 86_400_000, windows_ms: HashMap::default(),
        max_window_ms: 7 * 86_400_000, allowed_lateness_ms: 3_600_000, half_life_ms: 86_400_000,
        position_first: (2, 5), position_last: (2, 5), max_journey_length: 1000, refund_retention_ms: 30 * 86_400_000,
        max_future_skew_ms: 3_600_000, base: names.intern("USD"), base_exp: 2, rates: HashMap::default(),
        minor_units, learned: Default::default(),
    }
}

/// What every input must satisfy (see the module's doc); panics with the input otherwise.
fn check(line: &[u8], cfg: &Config) {
    let shown = || String::from_utf8_lossy(line).into_owned();
    if let Some(mine) = fields(line) {
        assert_eq!(Some(&mine), serde_fields(line).as_ref(), "scanner and serde disagree on {:?}", shown());
    }
    let ok_id = |s: &str| validate::required_id(s) && validate::char_len_at_most(s, validate::MAX_ID_LENGTH);
    match parse_line(line, cfg) {
        None => {}
        Some(Parsed::Touchpoint { tid, episode, user, campaign, channel, time, reward }) => {
            for id in [&tid, &episode, &user, &campaign, &channel] {
                assert!(ok_id(id), "touchpoint with a bad id {id:?} taken from {:?}", shown());
            }
            assert!(validate::timestamp_in_range(time) && validate::reward_ok(reward), "{:?}", shown());
        }
        Some(Parsed::Conversion { cid, user, event, currency, time, refund_of, .. }) => {
            for id in [&cid, &user] {
                assert!(ok_id(id), "conversion with a bad id {id:?} taken from {:?}", shown());
            }
            assert!(refund_of.as_deref().is_none_or(ok_id) && !event.is_empty(), "{:?}", shown());
            assert!(currency.iter().all(u8::is_ascii_uppercase) && validate::timestamp_in_range(time), "{:?}", shown());
        }
    }
    if let Ok(text) = std::str::from_utf8(line) {
        let _ = validate::parse_iso(text);
        let _ = validate::decimal_to_minor(text, 2);
        let _ = validate::json_text_ok(text);
    }
}

fn seed_corpus() -> Vec<Vec<u8>> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/jsonl");
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("the seed corpus {}: {e}", folder.display()))
        .filter_map(|entry| std::fs::read(entry.ok()?.path()).ok())
        .flat_map(|file| file.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>())
        .filter(|line| !line.is_empty())
        .collect();
    corpus.sort();
    corpus.dedup();
    corpus
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

#[test]
fn fuzz_jsonl_parser_and_validation() {
    let cfg = config();
    let mut corpus = seed_corpus();
    assert!(corpus.len() >= 10, "seed corpus too small: {}", corpus.len());
    let iterations = env_number("RS_FUZZ_ITERATIONS", 20_000);
    let mut rng = Rng(env_number("RS_FUZZ_SEED", 0x5EED_2929).max(1));
    let (mut fast, mut scanned) = (0u64, 0u64);
    for line in &corpus {
        check(line, &cfg);
    }
    for i in 0..iterations {
        let parent = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, parent, &corpus);
        check(&input, &cfg);
        let taken = parse_line(&input, &cfg).is_some();
        fast += taken as u64;
        scanned += fields(&input).is_some() as u64;
        // inputs the fast path takes feed further mutation, so mutations reach deeper than one step from a seed
        if taken && corpus.len() < 5000 && i % 7 == 0 {
            corpus.push(input);
        }
    }
    println!("fuzz_jsonl: {iterations} inputs, {scanned} read by the fast scanner, {fast} taken by the fast path, \
              0 failures");
}
