//! Fuzz encoding and decoding with three real vocabularies: SmolLM2 (byte-level BPE,
//! pre-tokenizer "smollm"), Qwen 2.5 Coder (byte-level BPE, pre-tokenizer "qwen2",
//! 151k entries) and Gemma 3 (SentencePiece, 262k entries).
//!
//! Input bytes that are not UTF-8 are skipped. For every flag combination of
//! `encode(text, add_special, parse_special)` on each tokenizer:
//! - encoding and decoding must not panic, and every id must be in the vocabulary;
//! - the stream decoder fed one id at a time must produce exactly `decode(ids, false)`
//!   (none of these vocabularies strips a leading space nor cleans up spaces, which are
//!   the only things `decode` does beyond concatenating pieces);
//! - with `(false, false)`, `decode_bytes(encode(text))` is `text` with the bytes that
//!   have no vocabulary entry removed (special-token texts are not parsed, so they come
//!   back as the bytes they were encoded from):
//!   - Qwen 2.5: every one of the 256 bytes has an entry, so this is `text` exactly;
//!   - SmolLM2: its vocabulary has no entry for the bytes 0x04 0x06 0x13 0x14 0x16 0x1D
//!     (nor C0 C1 F1 F2 F5-FF), and llama.cpp drops such bytes when it encodes (the
//!     single-byte fallback of `llm_tokenizer_bpe_session` finds nothing); so do we;
//!   - Gemma 3: every byte has a `<0xXX>` entry, so this is `text` exactly, for text
//!     without U+2581 (SentencePiece stores spaces as U+2581 and decodes every U+2581
//!     back to a space, so that character cannot round-trip by design).
//!
//! The models are the ones `scripts/fetch-models.sh` downloads into `models/`
//! (override the directory with ALC_MODELS_DIR).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use alc_format::GgufFile;
use alc_tokenizer::{ByteMap, Tokenizer};
use libfuzzer_sys::fuzz_target;

fn load(file: &str) -> Tokenizer {
    let dir = std::env::var_os("ALC_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"));
    let path = dir.join(file);
    if !path.exists() {
        panic!(
            "{} is missing: run scripts/fetch-models.sh (or set ALC_MODELS_DIR)",
            path.display()
        );
    }
    let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
    Tokenizer::from_gguf(&f).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn smollm2() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load("smollm2-135m-instruct-q4_1.gguf"))
}

fn qwen25() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
}

fn gemma3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load("gemma-3-270m-q4_k_m.gguf"))
}

/// What `decode_bytes(encode(text, false, false))` must give.
#[derive(Clone, Copy)]
enum Expect {
    /// Nothing (the text cannot round-trip).
    Nothing,
    /// `text` itself.
    Exact,
    /// `text` less the bytes for which a byte-level BPE vocabulary has no entry.
    ByteLevelKnown(&'static [bool; 256]),
}

/// Which bytes have an entry of their own in a byte-level BPE vocabulary.
fn known_bytes(tok: &Tokenizer) -> [bool; 256] {
    let map = ByteMap::get();
    std::array::from_fn(|b| tok.token_id(&map.char_of(b as u8).to_string()).is_some())
}

fn smollm2_known() -> &'static [bool; 256] {
    static K: OnceLock<[bool; 256]> = OnceLock::new();
    K.get_or_init(|| known_bytes(smollm2()))
}

fn check(tok: &Tokenizer, text: &str, expect: Expect) {
    let n_vocab = tok.vocab_size();
    for (add_special, parse_special) in [(false, false), (false, true), (true, false), (true, true)]
    {
        let ids = tok
            .encode(text, add_special, parse_special)
            .unwrap_or_else(|e| panic!("encode({text:?}, {add_special}, {parse_special}): {e}"));
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= n_vocab) {
            panic!("encode produced id {bad} outside the vocabulary of {n_vocab}");
        }
        let decoded = tok.decode(&ids, false).expect("decode of encoded ids");
        let _ = tok
            .decode(&ids, true)
            .expect("decode (skip special) of encoded ids");

        let mut sd = tok.stream_decoder(false);
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&sd.push(id).expect("stream push of encoded id"));
        }
        streamed.push_str(&sd.finish());
        assert_eq!(
            streamed, decoded,
            "stream decoder disagrees with decode for {ids:?}"
        );

        let mut sd = tok.stream_decoder(true);
        for &id in &ids {
            sd.push(id)
                .expect("stream push (skip special) of encoded id");
        }
        let _ = sd.finish();

        if !add_special && !parse_special {
            let want: Vec<u8> = match expect {
                Expect::Nothing => continue,
                Expect::Exact => text.as_bytes().to_vec(),
                Expect::ByteLevelKnown(known) => {
                    text.bytes().filter(|&b| known[b as usize]).collect()
                }
            };
            let got = tok
                .decode_bytes(&ids, false)
                .expect("decode_bytes of encoded ids");
            assert!(
                got == want,
                "decode(encode(text)) = {:?}, expected {:?}; ids {ids:?}",
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check(smollm2(), text, Expect::ByteLevelKnown(smollm2_known()));
    check(qwen25(), text, Expect::Exact);
    let gemma = if text.contains('\u{2581}') {
        Expect::Nothing
    } else {
        Expect::Exact
    };
    check(gemma3(), text, gemma);
});
