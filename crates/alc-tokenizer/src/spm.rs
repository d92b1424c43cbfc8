//! SentencePiece-style BPE by score (llama.cpp `llm_tokenizer_spm_session`).
//!
//! Symbols start as the UTF-8 characters of the (space-escaped) text. Any adjacent pair
//! whose concatenation is a vocabulary entry is a candidate; the candidate with the
//! highest score is merged, left-most on ties, until none is left. A final symbol that
//! is not an entry is emitted as its bytes' `<0xXX>` entries.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use crate::bpe::utf8_len;
use crate::strings::{Index, Strings};

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
}

#[derive(Clone, Copy)]
struct Cand {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    /// Max-heap order: higher score first, then lower left index.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| Reverse(self.left).cmp(&Reverse(o.left)))
            .then_with(|| self.right.cmp(&o.right))
            .then_with(|| self.size.cmp(&o.size))
    }
}

pub(crate) struct SpmCtx<'a> {
    pub strings: &'a Strings,
    pub index: &'a Index,
    pub n_vocab: u32,
    pub scores: &'a [f32],
    /// Entry for each byte value (`<0xXX>`, else the one-byte text, else unknown).
    pub byte_token: &'a [Option<u32>; 256],
}

impl SpmCtx<'_> {
    fn vocab_id(&self, text: &[u8]) -> Option<u32> {
        self.index
            .get(self.strings, text)
            .filter(|&id| id < self.n_vocab)
    }

    fn try_add(&self, text: &[u8], syms: &[Sym], heap: &mut BinaryHeap<Cand>, l: i32, r: i32) {
        if l < 0 || r < 0 {
            return;
        }
        let (a, b) = (syms[l as usize], syms[r as usize]);
        let span = &text[a.start as usize..(b.start + b.len) as usize];
        if let Some(id) = self.vocab_id(span) {
            let score = self.scores.get(id as usize).copied().unwrap_or(0.0);
            heap.push(Cand {
                score,
                left: l as u32,
                right: r as u32,
                size: a.len + b.len,
            });
        }
    }

    /// Append the tokens of `text` (spaces already escaped to U+2581) to `out`.
    pub fn encode(&self, text: &[u8], out: &mut Vec<u32>) {
        let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
        let mut off = 0usize;
        while off < text.len() {
            let n = utf8_len(text[off]).min(text.len() - off);
            let i = syms.len() as i32;
            syms.push(Sym {
                start: off as u32,
                len: n as u32,
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
            self.try_add(text, &syms, &mut heap, i - 1, i);
        }
        while let Some(c) = heap.pop() {
            let (l, r) = (c.left as usize, c.right as usize);
            if syms[l].len == 0 || syms[r].len == 0 || syms[l].len + syms[r].len != c.size {
                continue; // stale
            }
            syms[l].len += syms[r].len;
            syms[r].len = 0;
            let next = syms[r].next;
            syms[l].next = next;
            if next >= 0 {
                syms[next as usize].prev = l as i32;
            }
            let prev = syms[l].prev;
            self.try_add(text, &syms, &mut heap, prev, l as i32);
            self.try_add(text, &syms, &mut heap, l as i32, next);
        }
        for s in syms.iter().filter(|s| s.len > 0) {
            let piece = &text[s.start as usize..(s.start + s.len) as usize];
            match self.vocab_id(piece) {
                Some(id) => out.push(id),
                None => out.extend(piece.iter().filter_map(|&b| self.byte_token[b as usize])),
            }
        }
    }
}
