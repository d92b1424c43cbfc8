//! BPE pre-tokenizers: split text into words before byte-level BPE.
//!
//! Each GGUF `tokenizer.ggml.pre` name maps to a sequence of split stages, the same
//! stages llama.cpp applies (llama-vocab.cpp `llm_tokenizer_bpe`, unicode.cpp
//! `unicode_regex_split`): a stage splits every segment of the previous stage further
//! and keeps both matches and the text between them. The hand-written splitters below
//! reproduce llama.cpp's hand-written matchers for the GPT-2, Llama 3 and Qwen 2
//! regexes (including where those differ from a true regex engine), and the simple
//! character-class regexes it runs through `std::regex`.

use crate::unicode::{self, Class};

/// Which stage sequence a pre-tokenizer name selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreKind {
    /// `[\p{P}$+<=>^~|]+`, GPT-2, `\p{N}+`, `[0-9][0-9][0-9]`.
    Default,
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`.
    Gpt2,
    /// Llama 3: letters with one leading non-letter, numbers in runs of up to 3.
    Llama3,
    /// Qwen 2: as Llama 3 but every digit on its own.
    Qwen2,
    /// `\p{N}` (each digit alone), then GPT-2 (StarCoder, SmolLM, ...).
    Digits,
}

/// What a pre-tokenizer name implies besides its stages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreInfo {
    pub kind: PreKind,
    /// Detokenizer cleanup of " ?", " 's" and the like (llama.cpp `clean_spaces`).
    pub clean_spaces: bool,
    /// A word that is itself a vocabulary entry is emitted without merging.
    pub ignore_merges: bool,
    /// Default of `add_bos` before the GGUF key overrides it.
    pub add_bos: bool,
}

/// Pre-tokenizer names this crate knows, grouped as llama.cpp groups them.
pub const SUPPORTED_PRE: &[&str] = &[
    "default",
    "gpt-2",
    "gpt2",
    "phi-2",
    "mpt",
    "olmo",
    "jais",
    "jina-es",
    "jina-de",
    "jina-v2-es",
    "jina-v2-de",
    "gigachat",
    "a.x-4.0",
    "mellum",
    "modern-bert",
    "exaone4",
    "trillion",
    "granite-docling",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "dbrx",
    "smaug-bpe",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "stablelm2",
    "megrez",
    "hunyuan",
    "solar-open",
    "smollm",
    "starcoder",
    "refact",
    "command-r",
    "codeshell",
    "exaone",
    "minerva-7b",
    "mellum2",
];

/// The pre-tokenizer for a GGUF `tokenizer.ggml.pre` name (empty = "default").
pub(crate) fn lookup(name: &str) -> Option<PreInfo> {
    use PreKind::*;
    let info = |kind, clean_spaces, ignore_merges, add_bos| PreInfo {
        kind,
        clean_spaces,
        ignore_merges,
        add_bos,
    };
    Some(match name {
        "" | "default" => info(Default, true, false, false),
        "gpt-2" | "gpt2" | "phi-2" | "mpt" | "olmo" | "jais" | "jina-es" | "jina-de"
        | "jina-v2-es" | "jina-v2-de" | "gigachat" | "a.x-4.0" | "mellum" | "modern-bert"
        | "exaone4" => info(Gpt2, true, false, false),
        "trillion" | "granite-docling" => info(Gpt2, false, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => info(Llama3, true, true, true),
        "dbrx" | "smaug-bpe" => info(Llama3, true, false, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
            info(Qwen2, false, false, false)
        }
        "stablelm2" | "megrez" => info(Qwen2, true, false, false),
        "smollm" | "command-r" => info(Digits, false, false, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
            info(Digits, true, false, false)
        }
        _ => return None,
    })
}

const OOR: u32 = u32::MAX;

/// Flags of a position: `any` is false outside the current segment.
#[derive(Clone, Copy, Default)]
struct F {
    any: bool,
    letter: bool,
    number: bool,
    space: bool,
}

impl F {
    fn of(cp: u32) -> F {
        let fl = unicode::flags(cp);
        F {
            any: true,
            letter: fl.is_letter(),
            number: fl.is_number(),
            space: fl.is_space(),
        }
    }
    /// `[^\s\p{L}\p{N}]` and inside the segment.
    fn other(self) -> bool {
        self.any && !(self.space || self.letter || self.number)
    }
}

/// One segment being split: code points `ini..end` of `cps`.
struct Seg<'a> {
    cps: &'a [u32],
    fl: &'a [F],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Seg<'_> {
    fn cpt(&self, p: usize) -> u32 {
        if p >= self.ini && p < self.end {
            self.cps[p]
        } else {
            OOR
        }
    }
    fn f(&self, p: usize) -> F {
        if p >= self.ini && p < self.end {
            self.fl[p]
        } else {
            F::default()
        }
    }
    /// Close the current word at `end`; returns its length.
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
    /// `'s|'t|'re|'ve|'m|'ll|'d` at `pos`, case-insensitive or not; the match length.
    fn contraction(&self, pos: usize, fold: bool) -> usize {
        if self.cpt(pos) != u32::from('\'') || pos + 1 >= self.end {
            return 0;
        }
        let low = |c: u32| {
            if fold && (0x41..=0x5A).contains(&c) {
                c + 32
            } else {
                c
            }
        };
        let n1 = low(self.cpt(pos + 1));
        if [b's', b't', b'm', b'd'].iter().any(|&c| n1 == u32::from(c)) {
            return 2;
        }
        if pos + 2 < self.end {
            let n2 = low(self.cpt(pos + 2));
            let pair = |a: u8, b: u8| n1 == u32::from(a) && n2 == u32::from(b);
            if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                return 3;
            }
        }
        0
    }
    /// Length of the white-space run at `pos` and the end of its last `\r`/`\n` (0 if none).
    fn space_run(&self, pos: usize) -> (usize, usize) {
        let mut n = 0;
        let mut last_rn = 0;
        while self.f(pos + n).space {
            let c = self.cpt(pos + n);
            if c == 0x0D || c == 0x0A {
                last_rn = pos + n + 1;
            }
            n += 1;
        }
        (n, last_rn)
    }
}

fn split_gpt2(s: &mut Seg) {
    let mut pos = s.ini;
    while pos < s.end {
        let cpt = s.cpt(pos);
        let f = s.f(pos);
        let c = s.contraction(pos, false);
        if c > 0 {
            pos += s.add(pos + c);
            continue;
        }
        let is_sp = cpt == 0x20;
        let mut f2 = if is_sp { s.f(pos + 1) } else { f };
        if f2.letter {
            pos += usize::from(is_sp);
            while f2.letter {
                pos += 1;
                f2 = s.f(pos);
            }
            s.add(pos);
            continue;
        }
        if f2.number {
            pos += usize::from(is_sp);
            while f2.number {
                pos += 1;
                f2 = s.f(pos);
            }
            s.add(pos);
            continue;
        }
        if f2.other() {
            pos += usize::from(is_sp);
            while f2.other() {
                pos += 1;
                f2 = s.f(pos);
            }
            s.add(pos);
            continue;
        }
        let (n_ws, _) = s.space_run(pos);
        if n_ws > 1 && s.cpt(pos + n_ws) != OOR {
            pos += n_ws - 1;
            s.add(pos);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            s.add(pos);
            continue;
        }
        pos += 1;
        s.add(pos);
    }
}

/// Llama 3 (`max_digits` = 3) and Qwen 2 (`max_digits` = 1).
fn split_llama3(s: &mut Seg, max_digits: usize) {
    let mut pos = s.ini;
    while pos < s.end {
        let cpt = s.cpt(pos);
        let f = s.f(pos);
        let c = s.contraction(pos, true);
        if c > 0 {
            pos += s.add(pos + c);
            continue;
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(cpt == 0x0D || cpt == 0x0A || f.number) && (f.letter || s.f(pos + 1).letter) {
            pos += 1;
            while s.f(pos).letter {
                pos += 1;
            }
            s.add(pos);
            continue;
        }
        // \p{N}{1,max_digits}
        if f.number {
            let mut ini = pos;
            while s.f(pos).number {
                pos += 1;
                if pos - ini >= max_digits {
                    s.add(pos);
                    ini = pos;
                }
            }
            s.add(pos);
            continue;
        }
        // <space>?[^\s\p{L}\p{N}]+[\r\n]*
        let is_sp = cpt == 0x20;
        let mut f2 = if is_sp { s.f(pos + 1) } else { f };
        if !(f2.space || f2.letter || f2.number) && f.any {
            pos += usize::from(is_sp);
            while f2.other() {
                pos += 1;
                f2 = s.f(pos);
            }
            let mut c2 = s.cpt(pos);
            while c2 == 0x0D || c2 == 0x0A {
                pos += 1;
                c2 = s.cpt(pos);
            }
            s.add(pos);
            continue;
        }
        let (n_ws, last_rn) = s.space_run(pos);
        if last_rn > 0 {
            pos = last_rn;
            s.add(pos);
            continue;
        }
        if n_ws > 1 && s.cpt(pos + n_ws) != OOR {
            pos += n_ws - 1;
            s.add(pos);
            continue;
        }
        if n_ws > 0 {
            pos += n_ws;
            s.add(pos);
            continue;
        }
        pos += 1;
        s.add(pos);
    }
}

/// A character-class regex `[class]+` (or `[class]` when `single`), keeping the text
/// between matches as segments of their own.
fn split_class(s: &mut Seg, class: impl Fn(u32) -> bool, single: bool) {
    let mut pos = s.ini;
    while pos < s.end {
        if class(s.cps[pos]) {
            s.add(pos);
            pos += 1;
            if !single {
                while pos < s.end && class(s.cps[pos]) {
                    pos += 1;
                }
            }
            s.add(pos);
        } else {
            pos += 1;
        }
    }
    s.add(s.end);
}

/// `[0-9][0-9][0-9]`: ASCII digit triples, left to right.
fn split_digit_triples(s: &mut Seg) {
    let d = |c: u32| (0x30..=0x39).contains(&c);
    let mut pos = s.ini;
    while pos < s.end {
        if pos + 3 <= s.end && d(s.cps[pos]) && d(s.cps[pos + 1]) && d(s.cps[pos + 2]) {
            s.add(pos);
            pos += 3;
            s.add(pos);
        } else {
            pos += 1;
        }
    }
    s.add(s.end);
}

/// `\p{N}` as llama.cpp evaluates it: ASCII 0-9, or a non-ASCII number code point.
fn is_number(cp: u32) -> bool {
    if cp < 128 {
        (0x30..=0x39).contains(&cp)
    } else {
        !unicode::is_space(cp) && unicode::class(cp) == Class::Number
    }
}

/// `[\p{P}\$\+<=>\^~\|]`.
fn is_default_punct(cp: u32) -> bool {
    if cp < 128 {
        b"!\"#%&'()*,-./:;?@[\\]_{}$+<=>^~|".contains(&(cp as u8))
    } else {
        !unicode::is_space(cp) && unicode::class(cp) == Class::Punctuation
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Gpt2,
    Llama3,
    Qwen2,
    Number,
    Numbers,
    Punct,
    Triples,
}

fn stages(kind: PreKind) -> &'static [Stage] {
    match kind {
        PreKind::Default => &[Stage::Punct, Stage::Gpt2, Stage::Numbers, Stage::Triples],
        PreKind::Gpt2 => &[Stage::Gpt2],
        PreKind::Llama3 => &[Stage::Llama3],
        PreKind::Qwen2 => &[Stage::Qwen2],
        PreKind::Digits => &[Stage::Number, Stage::Gpt2],
    }
}

/// Split `text` into words; returns byte ranges covering `text` in order.
pub(crate) fn split(kind: PreKind, text: &str) -> Vec<std::ops::Range<usize>> {
    let cps: Vec<u32> = text.chars().map(u32::from).collect();
    let fl: Vec<F> = cps.iter().map(|&c| F::of(c)).collect();
    let mut segs = vec![cps.len()];
    for &stage in stages(kind) {
        let mut out = Vec::with_capacity(segs.len() * 2);
        let mut start = 0;
        for &len in &segs {
            let mut seg = Seg {
                cps: &cps,
                fl: &fl,
                ini: start,
                end: start + len,
                prev_end: start,
                out: &mut out,
            };
            match stage {
                Stage::Gpt2 => split_gpt2(&mut seg),
                Stage::Llama3 => split_llama3(&mut seg, 3),
                Stage::Qwen2 => split_llama3(&mut seg, 1),
                Stage::Number => split_class(&mut seg, is_number, true),
                Stage::Numbers => split_class(&mut seg, is_number, false),
                Stage::Punct => split_class(&mut seg, is_default_punct, false),
                Stage::Triples => split_digit_triples(&mut seg),
            }
            start += len;
        }
        segs = out;
    }
    // code point lengths → byte ranges
    let mut ranges = Vec::with_capacity(segs.len());
    let mut chars = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()));
    let mut byte = chars.next().unwrap_or(0);
    for len in segs {
        let start = byte;
        for _ in 0..len {
            byte = chars.next().unwrap_or(text.len());
        }
        ranges.push(start..byte);
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreKind, text: &str) -> Vec<&str> {
        split(kind, text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn gpt2_words() {
        assert_eq!(
            words(PreKind::Gpt2, "Hello world's  end 123!!\n\n x"),
            ["Hello", " world", "'s", " ", " end", " 123", "!!", "\n\n", " x"]
        );
        assert_eq!(words(PreKind::Gpt2, "a  "), ["a", "  "]);
    }

    #[test]
    fn digits_split_individually() {
        assert_eq!(
            words(PreKind::Digits, "abc 1234x"),
            ["abc", " ", "1", "2", "3", "4", "x"]
        );
    }

    #[test]
    fn llama3_and_qwen2_numbers() {
        assert_eq!(words(PreKind::Llama3, "x 12345"), ["x", " ", "123", "45"]);
        assert_eq!(words(PreKind::Qwen2, "x 123"), ["x", " ", "1", "2", "3"]);
        assert_eq!(
            words(PreKind::Qwen2, "I'M here\n\n  ok"),
            ["I", "'M", " here", "\n\n", " ", " ok"]
        );
    }

    #[test]
    fn default_stages() {
        assert_eq!(
            words(PreKind::Default, "a,b 12345"),
            ["a", ",", "b", " ", "123", "45"]
        );
    }

    #[test]
    fn empty_and_odd_input() {
        assert!(split(PreKind::Gpt2, "").is_empty());
        for k in [
            PreKind::Default,
            PreKind::Gpt2,
            PreKind::Llama3,
            PreKind::Qwen2,
            PreKind::Digits,
        ] {
            let t = "\u{301}\0 \u{301}x\u{85}\u{2028}  ";
            let w = words(k, t);
            assert_eq!(w.concat(), t);
        }
    }
}
