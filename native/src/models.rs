//! Attribution models: integer weights for a conversion's eligible touchpoints (`None`: the model cannot judge
//! this journey, attribute linearly). A port of `pipeline/attribution/models.py` and `shapley.py`: the same
//! integer arithmetic, and the same float operations in the same order, so the weights are identical.

use std::cell::RefCell;
use rustc_hash::FxHashMap as HashMap;

use crate::config::{
    Config, Learned, Ratio, DATA_DRIVEN, FIRST_CLICK, LAST_CLICK, LINEAR, POSITION_BASED, SHAPLEY, TIME_DECAY,
};
use crate::intern::{Interner, Sym};
use crate::money::{gcd, Weights};
use crate::touches::Touches;

const SCALE: f64 = (1u64 << 52) as f64;

pub struct Models {
    half_life_ms: i64,
    position: [Ratio; 2],
    learned: Learned,
    rates: HashMap<Vec<String>, f64>, // Shapley: conversion rate per observed channel set (sorted names)
    shapley_cache: RefCell<HashMap<Vec<String>, HashMap<String, f64>>>,
}

fn scaled(values: &[f64]) -> Option<Vec<u128>> {
    let top = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if top <= 0.0 {
        return None;
    }
    Some(values.iter().map(|v| (v / top * SCALE) as u64 as u128).collect()) // ≤ 2^52
}

fn lcm(a: u128, b: u128) -> u128 {
    a / gcd(a, b) * b
}

fn factorial(n: u64) -> u64 {
    (1..=n).product::<u64>().max(1)
}

impl Models {
    pub fn new(cfg: &Config) -> Models {
        let rates = cfg.learned.coalitions.iter()
            .filter(|(_, n, _)| *n > 0)
            .map(|(c, n, k)| (c.clone(), *k as f64 / *n as f64))
            .collect();
        Models { half_life_ms: cfg.half_life_ms, position: [cfg.position_first, cfg.position_last],
                 learned: cfg.learned.clone(), rates, shapley_cache: RefCell::new(HashMap::default()) }
    }

    pub fn weights(&self, model: u8, touches: &Touches, names: &Interner) -> Option<Weights> {
        let n = touches.len();
        let items = touches.items();
        match model {
            LAST_CLICK => Some(Weights::One(n, n - 1)),
            FIRST_CLICK => Some(Weights::One(n, 0)),
            LINEAR => Some(Weights::Equal(n)),
            TIME_DECAY => {
                let newest = items.iter().map(|t| t.time).max().unwrap();
                let hl = self.half_life_ms as f64;
                // Python computes 2.0 ** x with libm's pow; the base is hidden from the optimiser so that
                // pow(2, x) is not turned into exp2(x), which need not round the same way.
                let two = std::hint::black_box(2.0f64);
                Some(Weights::Each(items.iter().map(|t| {
                    let x = (-(newest - t.time)) as f64 / hl;
                    (two.powf(x) * SCALE) as u64 as u128 // ≤ 2^52: through 64 bits, no library call
                }).collect()))
            }
            POSITION_BASED => Some(if n <= 2 { Weights::Equal(n) } else { Weights::Each(self.position_based(n)) }),
            DATA_DRIVEN | SHAPLEY => {
                let channels: Vec<Sym> = items.iter().map(|t| t.channel).collect();
                let w = if model == DATA_DRIVEN {
                    self.data_driven(&channels, names)
                } else {
                    self.shapley(&channels, names)
                };
                w.map(Weights::Each)
            }
            _ => None,
        }
    }

    fn position_based(&self, n: usize) -> Vec<u128> {
        if n <= 2 {
            return vec![1u128; n];
        }
        let [(fa, fb), (la, lb)] = self.position;
        // middle = (1 − first − last) / (n − 2), as a reduced fraction
        let den = fb * lb;
        let num = den - fa * lb - la * fb;
        let mut mnum = num;
        let mut mden = den * (n as u128 - 2);
        let g = gcd(mnum, mden);
        if g > 0 {
            mnum /= g;
            mden /= g;
        }
        if mnum == 0 {
            mden = 1;
        }
        let d = lcm(lcm(fb, mden), lb);
        let (f, m, l) = (fa * (d / fb), mnum * (d / mden), la * (d / lb));
        let mut w = Vec::with_capacity(n);
        w.push(f);
        w.extend(std::iter::repeat_n(m, n - 2));
        w.push(l);
        w
    }

    fn counts<'a>(channels: &[Sym], names: &'a Interner) -> (Vec<&'a str>, HashMap<&'a str, u64>) {
        let chans: Vec<&str> = channels.iter().map(|&c| names.name(c)).collect();
        let mut counts: HashMap<&str, u64> = HashMap::default();
        for c in &chans {
            *counts.entry(c).or_insert(0) += 1;
        }
        (chans, counts)
    }

    fn data_driven(&self, channels: &[Sym], names: &Interner) -> Option<Vec<u128>> {
        if self.learned.fallback {
            return None;
        }
        let (chans, counts) = Self::counts(channels, names);
        let values: Vec<f64> = chans.iter()
            .map(|c| self.learned.removal_effects.get(*c).copied().unwrap_or(0.0) / counts[c] as f64)
            .collect();
        scaled(&values)
    }

    fn shapley(&self, channels: &[Sym], names: &Interner) -> Option<Vec<u128>> {
        if self.learned.fallback {
            return None;
        }
        let (chans, counts) = Self::counts(channels, names);
        let mut members: Vec<String> = counts.keys().map(|c| c.to_string()).collect();
        members.sort();
        if members.len() > 16 {
            return None;
        }
        let values = {
            let mut cache = self.shapley_cache.borrow_mut();
            if !cache.contains_key(&members) {
                if cache.len() >= 4096 {
                    cache.clear();
                }
                let v = self.shapley_values(&members);
                cache.insert(members.clone(), v);
            }
            cache[&members].clone()
        };
        let v: Vec<f64> = chans.iter().map(|c| values.get(*c).copied().unwrap_or(0.0) / counts[c] as f64).collect();
        scaled(&v)
    }

    /// Shapley value of each channel of the coalition `members` (sorted); see `shapley.py`.
    fn shapley_values(&self, members: &[String]) -> HashMap<String, f64> {
        let k = members.len();
        let mut out = HashMap::default();
        if k == 0 {
            return out;
        }
        let full = (1usize << k) - 1;
        let mut worth = vec![0.0f64; 1 << k];
        for (coalition, rate) in &self.rates {
            if coalition.is_empty() || !coalition.iter().all(|c| members.contains(c)) {
                continue;
            }
            let mut mask = 0usize;
            for c in coalition {
                mask |= 1 << members.iter().position(|m| m == c).unwrap();
            }
            worth[mask] += rate;
        }
        for i in 0..k {
            let b = 1usize << i;
            for mask in 0..=full {
                if mask & b != 0 {
                    worth[mask] += worth[mask ^ b];
                }
            }
        }
        let coef: Vec<f64> = (0..k)
            .map(|s| (factorial(s as u64) * factorial((k - s - 1) as u64)) as f64 / factorial(k as u64) as f64)
            .collect();
        for (i, c) in members.iter().enumerate() {
            let b = 1usize << i;
            let mut total = 0.0f64;
            for mask in 0..=full {
                if mask & b == 0 {
                    total += coef[(mask as u32).count_ones() as usize] * (worth[mask | b] - worth[mask]);
                }
            }
            out.insert(c.clone(), total.max(0.0));
        }
        out
    }
}
