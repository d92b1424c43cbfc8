//! WordPiece (BERT) tokenization, giving the ids of Hugging Face `tokenizers` for a
//! tokenizer.json of `BertNormalizer` + `BertPreTokenizer` + `WordPiece` +
//! `[CLS] $A [SEP]`.
//!
//! The vocabulary arrives in llama.cpp's "phantom space" form (FORMAT.md, "WordPiece
//! vocabularies (BERT)"): a word-initial piece `x` is stored as `▁x`, a continuation
//! piece `##y` as `y`, control tokens (`[CLS]` ...) as they are. Lookups translate back:
//! a word-initial candidate is looked up as `▁x` among normal tokens (or as `x` among
//! control tokens, which HF's vocabulary also holds bare); a continuation candidate as
//! `y` among normal tokens whose text does not start with `▁`.
//!
//! The stages follow HF in order:
//! 1. normaliser: clean_text (drop "other" characters, U+0000 and U+FFFD; white space
//!    → ' '), handle_chinese_chars (spaces around CJK ideographs), strip_accents (NFD,
//!    then drop nonspacing marks), lowercase (`char::to_lowercase`);
//! 2. pre-tokenizer: split on white space (dropped) and around each punctuation char;
//! 3. WordPiece: greedy longest match first, `##` continuations; a word of more than
//!    `max_input_chars_per_word` chars, or one with a piece that matches nothing, is
//!    one `[UNK]`;
//! 4. post-processor: `[CLS]` … `[SEP]`, truncating the content to `max_length - 2`.
//!
//! The character classes are HF's own, which are Unicode 8.0 (its `unicode_categories`
//! dependency), not the Unicode 15.1 classes the BPE pre-tokenizers use:
//! `unicode_table::WORDPIECE` was measured from the `tokenizers` library by
//! `tools/gen_unicode_table.py`.

use unicode_normalization::UnicodeNormalization;

use crate::special::attr;
use crate::strings::{Index, Strings};
use crate::unicode_table::WORDPIECE;

/// Dropped by clean_text (HF `is_control`, U+0000, U+FFFD).
const OTHER: u8 = 1;
/// Nonspacing mark: dropped by strip_accents.
const MN: u8 = 2;
/// Isolated by the pre-tokenizer.
const PUNCT: u8 = 4;
/// White space: split on by the pre-tokenizer, made ' ' by clean_text.
const SPACE: u8 = 8;
/// CJK ideograph: padded with spaces by handle_chinese_chars.
const CJK: u8 = 16;

/// The word-initial marker of the phantom-space vocabulary form.
const PHANTOM: &str = "\u{2581}";

/// Flags of the ASCII range (checked against the table by a unit test).
fn ascii_flags(b: u8) -> u8 {
    match b {
        0x09 | 0x0A | 0x0D | 0x20 => SPACE,
        0x0B | 0x0C => OTHER | SPACE,
        0x00..=0x1F | 0x7F => OTHER,
        33..=47 | 58..=64 | 91..=96 | 123..=126 => PUNCT,
        _ => 0,
    }
}

fn flags(c: char) -> u8 {
    let cp = c as u32;
    if cp < 0x80 {
        return ascii_flags(cp as u8);
    }
    let i = WORDPIECE.partition_point(|&(start, _)| start <= cp);
    WORDPIECE[i.saturating_sub(1)].1
}

/// The normaliser and model settings of a WordPiece vocabulary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WpConfig {
    pub lowercase: bool,
    pub strip_accents: bool,
    pub handle_chinese_chars: bool,
    pub clean_text: bool,
    pub max_input_chars_per_word: usize,
    /// The model's maximum sequence length, special tokens included.
    pub max_length: Option<usize>,
    pub cls: u32,
    pub sep: u32,
    pub unk: u32,
    /// Longest vocabulary text in bytes (HF form): longer candidates cannot match.
    pub max_piece_bytes: usize,
}

/// HF `BertNormalizer` over `text`, appended to `out`.
pub(crate) fn normalize(cfg: &WpConfig, text: &str, out: &mut String) {
    let mut stage = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        let f = flags(c);
        let c = if cfg.clean_text {
            if f & OTHER != 0 {
                continue;
            }
            if f & SPACE != 0 {
                ' '
            } else {
                c
            }
        } else {
            c
        };
        if cfg.handle_chinese_chars && f & CJK != 0 {
            stage.push(' ');
            stage.push(c);
            stage.push(' ');
        } else {
            stage.push(c);
        }
    }
    let push_lower = |out: &mut String, c: char| {
        if cfg.lowercase {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    };
    if cfg.strip_accents && !stage.is_ascii() {
        for c in stage.nfd() {
            if flags(c) & MN == 0 {
                push_lower(out, c);
            }
        }
    } else {
        for c in stage.chars() {
            push_lower(out, c);
        }
    }
}

/// HF `BertPreTokenizer`: the words of normalised text, as byte ranges.
pub(crate) fn pre_tokenize(text: &str, mut word: impl FnMut(&str)) {
    let mut start = None;
    for (i, c) in text.char_indices() {
        let f = flags(c);
        if f & (SPACE | PUNCT) != 0 {
            if let Some(s) = start.take() {
                word(&text[s..i]);
            }
            if f & SPACE == 0 {
                word(&text[i..i + c.len_utf8()]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        word(&text[s..]);
    }
}

/// Vocabulary lookups over the phantom-space texts.
pub(crate) struct WpCtx<'a> {
    pub strings: &'a Strings,
    pub index: &'a Index,
    pub attrs: &'a [u16],
    pub n_vocab: u32,
    pub cfg: &'a WpConfig,
}

const WORD_ATTRS: u16 = attr::NORMAL | attr::USER_DEFINED;
const BARE_ATTRS: u16 = attr::CONTROL | attr::UNKNOWN;

impl WpCtx<'_> {
    fn find(&self, key: &[u8], want: u16) -> Option<u32> {
        self.index
            .get(self.strings, key)
            .filter(|&id| id < self.n_vocab && self.attrs[id as usize] & want != 0)
    }

    /// Id of the word-initial piece `piece` (HF vocabulary text `piece`).
    fn initial(&self, piece: &str, buf: &mut Vec<u8>) -> Option<u32> {
        buf.clear();
        buf.extend_from_slice(PHANTOM.as_bytes());
        buf.extend_from_slice(piece.as_bytes());
        self.find(buf, WORD_ATTRS)
            .or_else(|| self.find(piece.as_bytes(), BARE_ATTRS))
    }

    /// Id of the continuation piece `piece` (HF vocabulary text `##piece`).
    fn continuation(&self, piece: &str) -> Option<u32> {
        self.find(piece.as_bytes(), WORD_ATTRS)
            .filter(|&id| !self.strings.get(id).starts_with(PHANTOM.as_bytes()))
    }

    /// HF `WordPiece::tokenize` of one word, ids appended to `out`.
    pub fn word(&self, word: &str, out: &mut Vec<u32>, buf: &mut Vec<u8>) {
        let cfg = self.cfg;
        if word.chars().count() > cfg.max_input_chars_per_word {
            out.push(cfg.unk);
            return;
        }
        let first = out.len();
        let mut start = 0;
        while start < word.len() {
            // the prefix "##" (2 bytes) counts against the longest vocabulary text
            let room = if start == 0 {
                cfg.max_piece_bytes
            } else {
                cfg.max_piece_bytes.saturating_sub(2)
            };
            let mut end = word.len().min(start + room);
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            let mut found = None;
            while start < end {
                let piece = &word[start..end];
                let id = if start == 0 {
                    self.initial(piece, buf)
                } else {
                    self.continuation(piece)
                };
                if id.is_some() {
                    found = id;
                    break;
                }
                end -= piece.chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(first);
                    out.push(cfg.unk);
                    return;
                }
            }
        }
    }

    /// Normalise, pre-tokenize and WordPiece one text fragment.
    pub fn encode_text(&self, text: &str, out: &mut Vec<u32>) {
        let mut norm = String::with_capacity(text.len() + 8);
        normalize(self.cfg, text, &mut norm);
        let mut buf = Vec::with_capacity(64);
        pre_tokenize(&norm, |w| self.word(w, out, &mut buf));
    }
}

/// HF form of a token text: `(text, is_continuation)`.
pub(crate) fn hf_piece(text: &[u8], attrs: u16) -> (&[u8], bool) {
    if attrs & WORD_ATTRS != 0 {
        match text.strip_prefix(PHANTOM.as_bytes()) {
            Some(rest) => (rest, false),
            None => (text, true),
        }
    } else if attrs & attr::UNUSED != 0 {
        (text.strip_prefix(PHANTOM.as_bytes()).unwrap_or(text), false)
    } else {
        (text, false)
    }
}

/// HF `decoders.WordPiece(prefix="##", cleanup=True)` over HF-form pieces.
pub(crate) fn decode_into<'a>(pieces: impl Iterator<Item = (&'a [u8], bool)>, out: &mut Vec<u8>) {
    for (i, (text, cont)) in pieces.enumerate() {
        if i == 0 {
            if cont {
                out.extend_from_slice(b"##");
            }
        } else if !cont && !matches!(text.first(), Some(b'.' | b'?' | b'!' | b',')) {
            out.push(b' ');
        }
        out.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> WpConfig {
        WpConfig {
            lowercase: true,
            strip_accents: true,
            handle_chinese_chars: true,
            clean_text: true,
            max_input_chars_per_word: 100,
            max_length: Some(8),
            cls: 2,
            sep: 3,
            unk: 1,
            max_piece_bytes: 16,
        }
    }

    fn norm(c: &WpConfig, s: &str) -> String {
        let mut out = String::new();
        normalize(c, s, &mut out);
        out
    }

    fn words(s: &str) -> Vec<String> {
        let mut v = Vec::new();
        pre_tokenize(s, |w| v.push(w.to_string()));
        v
    }

    #[test]
    fn ascii_flags_agree_with_the_table() {
        for b in 0u8..0x80 {
            let i = WORDPIECE.partition_point(|&(start, _)| start <= u32::from(b));
            assert_eq!(ascii_flags(b), WORDPIECE[i - 1].1, "{b:#x}");
        }
    }

    #[test]
    fn clean_text_drops_controls_and_maps_spaces() {
        let c = cfg();
        assert_eq!(norm(&c, "a\u{0}b\u{fffd}c\u{7}d"), "abcd");
        assert_eq!(norm(&c, "a\tb\nc\rd\u{3000}e\u{a0}f"), "a b c d e f");
        // Cc white space other than \t \n \r is "other" first: dropped, not a space
        assert_eq!(norm(&c, "a\u{b}b\u{85}c"), "abc");
        // format characters (zero-width joiner, soft hyphen) go
        assert_eq!(norm(&c, "a\u{200d}b\u{ad}c"), "abc");
        // a Unicode 14 format character is no "other" to HF (Unicode 8.0 tables)
        assert_eq!(norm(&c, "a\u{890}b"), "a\u{890}b");
        let mut off = cfg();
        off.clean_text = false;
        assert_eq!(norm(&off, "a\u{0}\tb"), "a\u{0}\tb");
    }

    #[test]
    fn chinese_chars_get_spaces() {
        let c = cfg();
        assert_eq!(norm(&c, "ab中文c"), "ab 中  文 c");
        // kana and hangul are not CJK ideographs (NFD splits the syllable into jamo)
        assert_eq!(norm(&c, "かな한"), "かな\u{1112}\u{1161}\u{11ab}");
        let mut off = cfg();
        off.handle_chinese_chars = false;
        assert_eq!(norm(&off, "中文"), "中文");
    }

    #[test]
    fn accents_and_case() {
        let c = cfg();
        assert_eq!(norm(&c, "Café NAÏVE Ångström"), "cafe naive angstrom");
        // U+0130 decomposes to I + U+0307 (dropped) before lowercasing
        assert_eq!(norm(&c, "İstanbul"), "istanbul");
        let mut keep = cfg();
        keep.strip_accents = false;
        assert_eq!(norm(&keep, "Café"), "café");
        // to_lowercase of U+0130 is two chars when accents stay
        assert_eq!(norm(&keep, "İ"), "i\u{307}");
        let mut cased = cfg();
        cased.lowercase = false;
        cased.strip_accents = false;
        assert_eq!(norm(&cased, "Café"), "Café");
    }

    #[test]
    fn pre_tokenizer_splits_space_and_punctuation() {
        assert_eq!(
            words("  hello,world!! a$b  "),
            ["hello", ",", "world", "!", "!", "a", "$", "b"]
        );
        // Unicode punctuation (P*) is isolated, symbols are not
        assert_eq!(words("a«b»c€d"), ["a", "«", "b", "»", "c€d"]);
        // U+2E43 is punctuation only from Unicode 9; HF's tables are 8.0
        assert_eq!(words("a\u{2e43}b"), ["a\u{2e43}b"]);
        assert!(words("").is_empty());
        assert!(words(" \t ").is_empty());
    }

    #[test]
    fn decode_joins_like_hf() {
        let mut out = Vec::new();
        let p: [(&[u8], bool); 6] = [
            (b"hello", false),
            (b"wor", false),
            (b"ld", true),
            (b",", false),
            (b"ok", false),
            (b"!", false),
        ];
        decode_into(p.into_iter(), &mut out);
        assert_eq!(out, b"hello world, ok!");
        out.clear();
        decode_into([(&b"s"[..], true)].into_iter(), &mut out);
        assert_eq!(out, b"##s");
    }

    #[test]
    fn hf_pieces_from_phantom_form() {
        assert_eq!(
            hf_piece("\u{2581}word".as_bytes(), attr::NORMAL),
            (&b"word"[..], false)
        );
        assert_eq!(hf_piece(b"ing", attr::NORMAL), (&b"ing"[..], true));
        assert_eq!(hf_piece(b"[CLS]", attr::CONTROL), (&b"[CLS]"[..], false));
    }
}
