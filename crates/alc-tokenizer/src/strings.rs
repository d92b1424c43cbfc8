//! A string arena and an open-addressing index over it: text → id lookups on byte
//! slices without one allocation per vocabulary entry (262 144 entries for Gemma 3).

use std::hash::{BuildHasherDefault, Hasher};

/// Small multiplicative hasher for integer keys and short byte strings. The keys come
/// from the model file, so flooding is not a concern; speed of vocabulary load is.
#[derive(Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl FastHasher {
    #[inline]
    fn mix(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(26) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.mix(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(buf));
        }
        self.mix(bytes.len() as u64);
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.mix(v);
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.mix(u64::from(v));
    }
    #[inline]
    fn finish(&self) -> u64 {
        // fold the high bits down: the index masks the low bits
        self.0 ^ (self.0 >> 29)
    }
}

pub(crate) type FastBuild = BuildHasherDefault<FastHasher>;

fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = FastHasher::default();
    h.write(b);
    h.finish()
}

/// Byte strings stored back to back; string `i` is `data[offs[i]..offs[i + 1]]`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Strings {
    data: Vec<u8>,
    offs: Vec<u32>,
}

impl Strings {
    pub fn heap_bytes(&self) -> u64 {
        alc_core::heap_vec_bytes::<u8>(self.data.capacity())
            + alc_core::heap_vec_bytes::<u32>(self.offs.capacity())
    }
    pub fn with_capacity(n: usize, bytes: usize) -> Strings {
        let mut offs = Vec::with_capacity(n + 1);
        offs.push(0);
        Strings {
            data: Vec::with_capacity(bytes),
            offs,
        }
    }
    #[inline]
    pub fn get(&self, i: u32) -> &[u8] {
        let i = i as usize;
        &self.data[self.offs[i] as usize..self.offs[i + 1] as usize]
    }
    pub fn push(&mut self, s: &[u8]) -> u32 {
        if self.offs.is_empty() {
            self.offs.push(0);
        }
        self.data.extend_from_slice(s);
        self.offs
            .push(u32::try_from(self.data.len()).expect("string arena below 4 GiB"));
        (self.offs.len() - 2) as u32
    }
}

const EMPTY: u32 = u32::MAX;

/// Open-addressing (linear probing) map from the text of a string in a [`Strings`]
/// arena to its id. Each slot keeps 32 bits of the hash, so probing rarely touches the
/// arena for a mismatch. Inserting a text that is already present replaces the id, as
/// llama.cpp's `token_to_id[text] = id` does for duplicate vocabulary entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Index {
    /// `(id, hash tag)`; id `EMPTY` marks a free slot
    slots: Vec<(u32, u32)>,
    len: usize,
}

impl Index {
    pub fn heap_bytes(&self) -> u64 {
        alc_core::heap_vec_bytes::<(u32, u32)>(self.slots.capacity())
    }
    pub fn with_capacity(n: usize) -> Index {
        let cap = (n.max(8) * 2).next_power_of_two();
        Index {
            slots: vec![(EMPTY, 0); cap],
            len: 0,
        }
    }

    #[inline]
    pub fn get(&self, strings: &Strings, key: &[u8]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let h = hash_bytes(key);
        let tag = (h >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let (id, t) = self.slots[i];
            if id == EMPTY {
                return None;
            }
            if t == tag && strings.get(id) == key {
                return Some(id);
            }
            i = (i + 1) & mask;
        }
    }

    /// Map the text of string `id` to `id`.
    pub fn insert(&mut self, strings: &Strings, id: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow(strings);
        }
        let key = strings.get(id);
        let h = hash_bytes(key);
        let tag = (h >> 32) as u32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let (cur, t) = self.slots[i];
            if cur == EMPTY {
                self.slots[i] = (id, tag);
                self.len += 1;
                return;
            }
            if t == tag && strings.get(cur) == key {
                self.slots[i] = (id, tag);
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self, strings: &Strings) {
        let old = std::mem::take(&mut self.slots);
        self.slots = vec![(EMPTY, 0); (old.len() * 2).max(16)];
        self.len = 0;
        for (id, _) in old.into_iter().filter(|s| s.0 != EMPTY) {
            self.insert(strings, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_later_duplicate_wins() {
        let mut s = Strings::with_capacity(4, 16);
        let mut ix = Index::with_capacity(1);
        for t in ["a", "bb", "a", "ccc", ""] {
            let id = s.push(t.as_bytes());
            ix.insert(&s, id);
        }
        for i in 0..40 {
            let id = s.push(format!("x{i}").as_bytes());
            ix.insert(&s, id);
        }
        assert_eq!(ix.get(&s, b"a"), Some(2));
        assert_eq!(ix.get(&s, b"bb"), Some(1));
        assert_eq!(ix.get(&s, b""), Some(4));
        assert_eq!(ix.get(&s, b"x39"), Some(44));
        assert_eq!(ix.get(&s, b"zz"), None);
    }
}
