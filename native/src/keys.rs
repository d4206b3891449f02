//! How a partition's input and state are named, as `pipeline/engine/partition/records.py` names them: the input
//! sources, and the journey table's keys (a user id, or a reserved key for the partition's metadata). Both
//! languages keep these; `bindings::rules` exports them so that a Python test holds the two equal.

/// The input sources, in the order the clock numbers them.
pub const SOURCES: [&str; 2] = ["touchpoints", "conversions"];

/// What every key that is not a user id starts with (per-partition metadata), so it never collides with one.
pub const RESERVED_PREFIX: &[u8] = b"\x00";

/// The key of a partition's frontier record (its clock and watermark).
pub fn meta_key(partition: i64) -> Vec<u8> {
    let mut key = RESERVED_PREFIX.to_vec();
    key.extend_from_slice(format!("meta:{partition}").as_bytes());
    key
}

/// Whether a key is metadata, not a user's journey.
pub fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(RESERVED_PREFIX)
}
