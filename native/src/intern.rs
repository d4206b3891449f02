//! Interned strings for values with few distinct members (channels, campaigns, currencies, event types):
//! a touch stores a 4-byte symbol instead of a string. One interner per engine; it only grows.

use rustc_hash::FxHashMap as HashMap;

pub type Sym = u32;

#[derive(Default)]
pub struct Interner {
    names: Vec<Box<str>>,
    index: HashMap<Box<str>, Sym>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.names.len() as Sym;
        self.names.push(s.into());
        self.index.insert(s.into(), i);
        i
    }

    pub fn name(&self, i: Sym) -> &str {
        &self.names[i as usize]
    }

    pub fn try_name(&self, i: Sym) -> Option<&str> {
        self.names.get(i as usize).map(|s| &**s)
    }
}
