//! Splitting special tokens out of text before tokenization (llama.cpp
//! `tokenizer_st_partition`).
//!
//! Special tokens are taken longest text first; each one splits every remaining text
//! fragment at its left-to-right, non-overlapping occurrences. Control and unknown
//! tokens take part only when `parse_special` is set; user-defined tokens always do.
//! A byte trie over the special texts finds, in one pass, which of them occur in the
//! text at all, so only those are searched for (fragments are substrings of the text).

/// Token attributes, as llama.cpp derives them from GGUF token types and names.
pub(crate) mod attr {
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    pub const LSTRIP: u16 = 1 << 7;
    pub const RSTRIP: u16 = 1 << 8;
}

#[derive(Default)]
struct Node {
    /// sorted by byte
    children: Vec<(u8, u32)>,
    /// position in the special list of the token ending here
    token: Option<u32>,
}

/// The special tokens of a vocabulary, in partition order.
pub(crate) struct Specials {
    /// `(token id, text)` sorted by text length, longest first (then by id).
    pub list: Vec<(u32, String)>,
    nodes: Vec<Node>,
}

/// A piece of the text to tokenize: raw text (byte range) or a special token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frag {
    Text(usize, usize),
    Token(u32),
}

fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

impl Specials {
    pub fn heap_bytes(&self) -> u64 {
        use alc_core::{heap_alloc_bytes, heap_vec_bytes};
        heap_vec_bytes::<(u32, String)>(self.list.capacity())
            + self
                .list
                .iter()
                .map(|(_, s)| heap_alloc_bytes(s.capacity()))
                .sum::<u64>()
            + heap_vec_bytes::<Node>(self.nodes.capacity())
            + self
                .nodes
                .iter()
                .map(|n| heap_vec_bytes::<(u8, u32)>(n.children.capacity()))
                .sum::<u64>()
    }
    pub fn new(mut list: Vec<(u32, String)>) -> Specials {
        list.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        let mut nodes = vec![Node::default()];
        for (pos, (_, text)) in list.iter().enumerate() {
            let mut n = 0usize;
            for &b in text.as_bytes() {
                n = match nodes[n].children.binary_search_by_key(&b, |c| c.0) {
                    Ok(i) => nodes[n].children[i].1 as usize,
                    Err(i) => {
                        let id = nodes.len() as u32;
                        nodes.push(Node::default());
                        nodes[n].children.insert(i, (b, id));
                        id as usize
                    }
                };
            }
            // identical texts: keep the first in partition order
            nodes[n].token.get_or_insert(pos as u32);
        }
        Specials { list, nodes }
    }

    /// Which entries of `list` occur somewhere in `text`.
    fn occurring(&self, text: &[u8]) -> Vec<bool> {
        let mut found = vec![false; self.list.len()];
        for start in 0..text.len() {
            let mut n = 0usize;
            for &b in &text[start..] {
                match self.nodes[n].children.binary_search_by_key(&b, |c| c.0) {
                    Ok(i) => n = self.nodes[n].children[i].1 as usize,
                    Err(_) => break,
                }
                if let Some(t) = self.nodes[n].token {
                    found[t as usize] = true;
                }
            }
        }
        found
    }

    /// Partition `text`; `attrs` gives each token's attributes.
    pub fn partition(&self, text: &str, parse_special: bool, attrs: &[u16]) -> Vec<Frag> {
        let mut frags = vec![Frag::Text(0, text.len())];
        if text.is_empty() || self.list.is_empty() {
            return frags;
        }
        let found = self.occurring(text.as_bytes());
        let bytes = text.as_bytes();
        for (pos, (id, tok)) in self.list.iter().enumerate() {
            if !found[pos] {
                continue;
            }
            let a = attrs[*id as usize];
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let mut out = Vec::with_capacity(frags.len() + 2);
            for &f in &frags {
                let Frag::Text(mut start, end) = f else {
                    out.push(f);
                    continue;
                };
                loop {
                    let Some(rel) = text[start..end].find(tok.as_str()) else {
                        out.push(Frag::Text(start, end));
                        break;
                    };
                    let m = start + rel;
                    let mut left_end = m;
                    if a & attr::LSTRIP != 0 {
                        while left_end > start && c_isspace(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > start {
                        out.push(Frag::Text(start, left_end));
                    }
                    out.push(Frag::Token(*id));
                    let mut right = m + tok.len();
                    if a & attr::RSTRIP != 0 {
                        while right < end && c_isspace(bytes[right]) {
                            right += 1;
                        }
                    }
                    start = right;
                    if start >= end {
                        break;
                    }
                }
            }
            frags = out;
        }
        frags.retain(|f| !matches!(f, Frag::Text(s, e) if s >= e));
        frags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_and_user_defined_always() {
        let attrs = vec![attr::CONTROL, attr::CONTROL, attr::USER_DEFINED];
        let sp = Specials::new(vec![
            (0, "<|im_start|>".into()),
            (1, "<|im".into()),
            (2, "\n\n".into()),
        ]);
        let t = "a<|im_start|>b\n\n<|im";
        assert_eq!(
            sp.partition(t, true, &attrs),
            [
                Frag::Text(0, 1),
                Frag::Token(0),
                Frag::Text(13, 14),
                Frag::Token(2),
                Frag::Token(1)
            ]
        );
        assert_eq!(
            sp.partition(t, false, &attrs),
            [Frag::Text(0, 14), Frag::Token(2), Frag::Text(16, 20)]
        );
    }
}
