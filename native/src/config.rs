//! The engine's settings, as handed over from `pipeline.engine.config.EngineConfig` (see `pipeline/native`).

use rustc_hash::FxHashMap as HashMap;

use crate::intern::Sym;
use crate::money::Rate;

/// The attribution models by index (`models` matches on it), as `pipeline.events.types.MODEL_NAMES` spells
/// them, in the same order; `bindings::rules` exports them for a test to hold the two equal.
pub const MODEL_NAMES: [&str; 7] =
    ["last_click", "first_click", "linear", "time_decay", "position_based", "data_driven", "shapley"];
pub const LAST_CLICK: u8 = 0;
pub const FIRST_CLICK: u8 = 1;
/// Also the model a conversion falls back to when its own cannot judge the journey.
pub const LINEAR: u8 = 2;
pub const TIME_DECAY: u8 = 3;
pub const POSITION_BASED: u8 = 4;
pub const DATA_DRIVEN: u8 = 5;
pub const SHAPLEY: u8 = 6;

pub fn model_index(name: &str) -> Option<u8> {
    MODEL_NAMES.iter().position(|m| *m == name).map(|i| i as u8)
}

/// A fraction (numerator, denominator), reduced, denominator > 0.
pub type Ratio = (u128, u128);

#[derive(Clone, Debug, Default)]
pub struct Learned {
    pub fallback: bool,
    pub removal_effects: HashMap<String, f64>,
    /// (sorted channel names, journeys, conversions) per observed channel set
    pub coalitions: Vec<(Vec<String>, u64, u64)>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub default_model: u8,
    pub window_ms: i64,
    pub windows_ms: HashMap<String, i64>,
    pub max_window_ms: i64,
    pub allowed_lateness_ms: i64,
    pub half_life_ms: i64,
    pub position_first: Ratio,
    pub position_last: Ratio,
    pub max_journey_length: usize,
    pub refund_retention_ms: i64,
    pub max_future_skew_ms: i64,
    pub base: Sym,
    pub base_exp: u32,
    pub rates: HashMap<Sym, Rate>,
    /// ISO 4217 minor-unit exponents (pipeline.events.currency.MINOR_UNITS)
    pub minor_units: HashMap<String, u32>,
    pub learned: Learned,
}

impl Config {
    pub fn window_for(&self, event: &str) -> i64 {
        *self.windows_ms.get(event).unwrap_or(&self.window_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_model_index_names_its_model() {
        let named = [(LAST_CLICK, "last_click"), (FIRST_CLICK, "first_click"), (LINEAR, "linear"),
                     (TIME_DECAY, "time_decay"), (POSITION_BASED, "position_based"), (DATA_DRIVEN, "data_driven"),
                     (SHAPLEY, "shapley")];
        assert_eq!(named.len(), MODEL_NAMES.len());
        for (index, name) in named {
            assert_eq!(model_index(name), Some(index));
        }
    }
}
