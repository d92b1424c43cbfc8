//! Byte-level BPE merging of one pre-tokenized word (llama.cpp `llm_tokenizer_bpe_session`).
//!
//! Symbols start as the characters of the byte-encoded word; the adjacent pair with the
//! lowest merge rank (left-most on ties) is merged until no pair has a rank. A symbol
//! whose text is not a vocabulary entry falls back to the single-byte entries of its
//! bytes. Pairs are looked up by interned string id, so merging allocates nothing per
//! step; the heap gives O(n log n) for any word length.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::strings::{FastBuild, Index, Strings};

pub(crate) const NONE: u32 = u32::MAX;

/// Merge table: `(left id, right id)` → `(rank, merged id)`, ids in the extended string
/// table (vocabulary entries first, then merge parts that are not entries).
pub(crate) struct Merges {
    pub map: HashMap<u64, (u32, u32), FastBuild>,
}

#[inline]
pub(crate) fn pair_key(l: u32, r: u32) -> u64 {
    (u64::from(l) << 32) | u64::from(r)
}

impl Merges {
    pub fn heap_bytes(&self) -> u64 {
        alc_core::heap_hashmap_bytes::<u64, (u32, u32)>(self.map.capacity())
    }
    /// Parse `"left right"` merge lines (split at the first space after the first byte),
    /// interning parts and results that are not vocabulary entries. The first occurrence
    /// of a pair keeps its rank.
    pub fn build(lines: &[&str], strings: &mut Strings, index: &mut Index) -> Merges {
        let mut map: HashMap<u64, (u32, u32), FastBuild> =
            HashMap::with_capacity_and_hasher(lines.len(), FastBuild::default());
        let mut buf = Vec::new();
        let intern = |s: &[u8], strings: &mut Strings, index: &mut Index| -> u32 {
            if let Some(id) = index.get(strings, s) {
                return id;
            }
            let id = strings.push(s);
            index.insert(strings, id);
            id
        };
        for (rank, line) in lines.iter().enumerate() {
            let b = line.as_bytes();
            let Some(sp) = b.iter().skip(1).position(|&c| c == b' ').map(|p| p + 1) else {
                continue;
            };
            let (first, second) = (&b[..sp], &b[sp + 1..]);
            if first.is_empty() || second.is_empty() {
                continue;
            }
            let l = intern(first, strings, index);
            let r = intern(second, strings, index);
            let key = pair_key(l, r);
            if map.contains_key(&key) {
                continue;
            }
            buf.clear();
            buf.extend_from_slice(first);
            buf.extend_from_slice(second);
            let m = intern(&buf, strings, index);
            map.insert(key, (rank as u32, m));
        }
        Merges { map }
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    id: u32,
    prev: i32,
    next: i32,
}

/// Everything a word merge needs from the tokenizer.
pub(crate) struct BpeCtx<'a> {
    pub strings: &'a Strings,
    pub index: &'a Index,
    pub n_vocab: u32,
    pub merges: &'a Merges,
    pub ignore_merges: bool,
    /// Vocabulary entry of each single byte's text, for the fallback.
    pub single_byte: &'a [Option<u32>; 256],
}

type Entry = Reverse<(u32, u32, u32, u32, u32)>; // (rank, left, right, left len, right len)

impl BpeCtx<'_> {
    fn vocab_id(&self, text: &[u8]) -> Option<u32> {
        self.index
            .get(self.strings, text)
            .filter(|&id| id < self.n_vocab)
    }

    fn push_bigram(&self, syms: &[Sym], heap: &mut BinaryHeap<Entry>, l: i32, r: i32) {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (syms[l as usize], syms[r as usize]);
        if a.id == NONE || b.id == NONE {
            return;
        }
        if let Some(&(rank, _)) = self.merges.map.get(&pair_key(a.id, b.id)) {
            heap.push(Reverse((rank, l as u32, r as u32, a.len, b.len)));
        }
    }

    /// Append the tokens of one byte-encoded word to `out`.
    pub fn encode_word(&self, word: &[u8], out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            if let Some(id) = self.vocab_id(word) {
                out.push(id);
                return;
            }
        }
        let mut syms: Vec<Sym> = Vec::with_capacity(word.len());
        let mut off = 0usize;
        while off < word.len() {
            let n = utf8_len(word[off]).min(word.len() - off);
            let id = self
                .index
                .get(self.strings, &word[off..off + n])
                .unwrap_or(NONE);
            let i = syms.len() as i32;
            syms.push(Sym {
                start: off as u32,
                len: n as u32,
                id,
                prev: i - 1,
                next: i + 1,
            });
            off += n;
        }
        if let Some(last) = syms.last_mut() {
            last.next = -1;
        }
        let mut heap = BinaryHeap::with_capacity(syms.len());
        for i in 1..syms.len() as i32 {
            self.push_bigram(&syms, &mut heap, i - 1, i);
        }
        while let Some(Reverse((_, l, r, llen, rlen))) = heap.pop() {
            let (l, r) = (l as usize, r as usize);
            if syms[l].len != llen || syms[r].len != rlen || llen == 0 || rlen == 0 {
                continue; // stale
            }
            let merged = self.merges.map[&pair_key(syms[l].id, syms[r].id)].1;
            syms[l].len += rlen;
            syms[l].id = merged;
            syms[r].len = 0;
            let next = syms[r].next;
            syms[l].next = next;
            if next >= 0 {
                syms[next as usize].prev = l as i32;
            }
            let prev = syms[l].prev;
            self.push_bigram(&syms, &mut heap, prev, l as i32);
            self.push_bigram(&syms, &mut heap, l as i32, next);
        }
        for s in syms.iter().filter(|s| s.len > 0) {
            if s.id != NONE && s.id < self.n_vocab {
                out.push(s.id);
                continue;
            }
            // not a vocabulary entry (or only a merge part): single-byte entries
            let text = &word[s.start as usize..(s.start + s.len) as usize];
            out.extend(text.iter().filter_map(|&b| self.single_byte[b as usize]));
        }
    }
}

/// Length of the UTF-8 sequence a lead byte starts (1 for continuation bytes).
#[inline]
pub(crate) fn utf8_len(b: u8) -> usize {
    match b >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}
