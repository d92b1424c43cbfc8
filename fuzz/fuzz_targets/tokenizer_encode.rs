//! Fuzz encoding and decoding with two real vocabularies: SmolLM2 (byte-level BPE,
//! pre-tokenizer "smollm") and Gemma 3 (SentencePiece, 262k entries).
//!
//! Input bytes that are not UTF-8 are skipped. For every flag combination of
//! `encode(text, add_special, parse_special)` on both tokenizers:
//! - encoding and decoding must not panic, and every id must be in the vocabulary;
//! - the stream decoder fed one id at a time must produce exactly `decode(ids, false)`
//!   (neither vocabulary strips a leading space nor cleans up spaces, which are the
//!   only things `decode` does beyond concatenating pieces);
//! - SmolLM2 with `(false, false)`: `decode(encode(text))` reproduces `text` exactly
//!   (byte-level BPE is lossless: every byte has a token, and special-token texts are
//!   not parsed so they come back as the bytes they were encoded from);
//! - Gemma 3 with `(false, false)`: the same, for text without U+2581 (SentencePiece
//!   stores spaces as U+2581 and decodes every U+2581 back to a space, so that
//!   character cannot round-trip by design).
//!
//! The models are the ones `scripts/fetch-models.sh` downloads into `models/`
//! (override the directory with ALC_MODELS_DIR).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use alc_format::GgufFile;
use alc_tokenizer::Tokenizer;
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

fn gemma3() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| load("gemma-3-270m-q4_k_m.gguf"))
}

fn check(tok: &Tokenizer, text: &str, roundtrip: bool) {
    let n_vocab = tok.vocab_size();
    for (add_special, parse_special) in [(false, false), (false, true), (true, false), (true, true)] {
        let ids = tok
            .encode(text, add_special, parse_special)
            .unwrap_or_else(|e| panic!("encode({text:?}, {add_special}, {parse_special}): {e}"));
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= n_vocab) {
            panic!("encode produced id {bad} outside the vocabulary of {n_vocab}");
        }
        let decoded = tok.decode(&ids, false).expect("decode of encoded ids");
        let _ = tok.decode(&ids, true).expect("decode (skip special) of encoded ids");

        let mut sd = tok.stream_decoder(false);
        let mut streamed = String::new();
        for &id in &ids {
            streamed.push_str(&sd.push(id).expect("stream push of encoded id"));
        }
        streamed.push_str(&sd.finish());
        assert_eq!(streamed, decoded, "stream decoder disagrees with decode for {ids:?}");

        let mut sd = tok.stream_decoder(true);
        for &id in &ids {
            sd.push(id).expect("stream push (skip special) of encoded id");
        }
        let _ = sd.finish();

        if roundtrip && !add_special && !parse_special {
            assert_eq!(decoded, text, "decode(encode(text)) != text; ids {ids:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check(smollm2(), text, true);
    check(gemma3(), text, !text.contains('\u{2581}'));
});
