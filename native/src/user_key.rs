//! A user id shared by the journey map and the expiry heap (and the worker's batch store).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use triomphe::ThinArc;

/// A shared, immutable user id in one pointer: the length lives in the allocation with the bytes. Half of an
/// `Rc<str>`: 8 bytes less in every slot of the journey map and every entry of the expiry heap. Hashes, compares
/// and borrows as its `str`.
#[derive(Clone)]
pub struct UserKey(ThinArc<(), u8>);

impl UserKey {
    pub fn as_str(&self) -> &str {
        // SAFETY: made only from a `&str` (see `From<&str>`) and never changed.
        unsafe { std::str::from_utf8_unchecked(&self.0.slice) }
    }
}

impl From<&str> for UserKey {
    fn from(s: &str) -> UserKey {
        UserKey(ThinArc::from_header_and_slice((), s.as_bytes()))
    }
}

impl Deref for UserKey {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for UserKey {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for UserKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state) // as `str` hashes: the maps are searched with `&str`
    }
}

impl PartialEq for UserKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.heap_ptr() == other.0.heap_ptr() || self.as_str() == other.as_str()
    }
}

impl Eq for UserKey {}

impl PartialOrd for UserKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for UserKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_one_pointer_and_behaves_as_its_string() {
        assert_eq!(std::mem::size_of::<UserKey>(), 8);
        let (a, b) = (UserKey::from("user-1"), UserKey::from("user-2"));
        assert!(a < b && a == a.clone() && a == UserKey::from("user-1") && &*a == "user-1");
        let mut map: rustc_hash::FxHashMap<UserKey, i32> = Default::default();
        map.insert(a, 1);
        assert_eq!(map.get("user-1"), Some(&1));
        assert_eq!(UserKey::from("").as_str(), "");
    }
}
