//! Fuzz the Hugging Face tokenizer files (`HfTokenizer::from_texts`, what
//! `HfTokenizer::read` runs on them) and the GGUF tokenizer keys `alc compile`
//! builds from them (`HfTokenizer::metadata`), then load those keys the way a
//! compiled package is loaded and encode with them.
//!
//! Input layout: tokenizer.json, then optionally a 0 byte and tokenizer_config.json,
//! a 0 byte and generation_config.json, a 0 byte and chat_template.jinja (JSON never
//! holds a 0 byte). A part that is not UTF-8 ends the run. `Ok` or `Err` are both
//! fine; a panic (overflow included), a huge allocation or a hang is a bug.
//!
//! `metadata` runs with a vocabulary just large enough for the largest id the
//! tokenizer names (and must then fail with one row less); when it succeeds:
//! `tokenizer.ggml.model` is "gpt2", `tokenizer.ggml.pre` one of `PRE_SHAPES`, the
//! tokens and token types have one entry per row, the types are llama.cpp's normal /
//! control / user-defined / unused, the special ids are rows of the model and the
//! add-BOS/EOS flags name a present token. The keys must then go through
//! `GgufWriter` and `GgufFile::from_bytes`, `Tokenizer::from_gguf` must accept them
//! with the same vocabulary size and special ids, and fixed texts must encode to ids
//! below the vocabulary size and decode again.

#![no_main]

use alc_convert::vocab::{HfTokenizer, PRE_SHAPES};
use alc_format::{GgufFile, GgufWriter, Value};
use alc_tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

/// Largest vocabulary the target builds (the keys cost about 100 bytes a row).
const MAX_VOCAB: u64 = 1 << 16;

const TEXTS: &[&str] = &[
    "Hello world",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "  12345 été 😀\n\n\tx's don't",
    "",
];

/// The largest id tokenizer.json names (vocab and added tokens), if every id is an
/// unsigned integer.
fn max_id(json: &str) -> Option<u64> {
    let j: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut max = 0u64;
    for v in j.get("model")?.get("vocab")?.as_object()?.values() {
        max = max.max(v.as_u64()?);
    }
    if let Some(added) = j.get("added_tokens").and_then(|a| a.as_array()) {
        for t in added {
            max = max.max(t.get("id")?.as_u64()?);
        }
    }
    Some(max)
}

fn id_of(meta: &[(String, Value)], key: &str) -> Option<u32> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| match v {
        Value::U32(id) => *id,
        other => panic!("{key}: {other:?}"),
    })
}

fn check_metadata(meta: Vec<(String, Value)>, n_vocab: usize) {
    let mut keys = std::collections::HashSet::new();
    for (k, _) in &meta {
        assert!(keys.insert(k.clone()), "duplicate key {k}");
    }
    let get = |key: &str| meta.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    assert_eq!(
        get("tokenizer.ggml.model"),
        Some(&Value::String("gpt2".into()))
    );
    match get("tokenizer.ggml.pre") {
        Some(Value::String(p)) => assert!(PRE_SHAPES.iter().any(|(_, n)| n == p), "pre {p}"),
        other => panic!("pre: {other:?}"),
    }
    let Some(Value::Array(tokens)) = get("tokenizer.ggml.tokens") else {
        panic!("no tokens")
    };
    assert_eq!(tokens.len(), n_vocab);
    assert!(tokens.iter().all(|t| matches!(t, Value::String(_))));
    let Some(Value::Array(types)) = get("tokenizer.ggml.token_type") else {
        panic!("no token types")
    };
    assert_eq!(types.len(), n_vocab);
    for t in types {
        assert!(matches!(t, Value::I32(1 | 3 | 4 | 5)), "token type {t:?}");
    }
    let Some(Value::Array(merges)) = get("tokenizer.ggml.merges") else {
        panic!("no merges")
    };
    assert!(merges.iter().all(|m| matches!(m, Value::String(_))));
    let bos = id_of(&meta, "tokenizer.ggml.bos_token_id");
    let eos = id_of(&meta, "tokenizer.ggml.eos_token_id");
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id",
        "tokenizer.ggml.padding_token_id",
    ] {
        if let Some(id) = id_of(&meta, key) {
            assert!((id as usize) < n_vocab, "{key} = {id} for {n_vocab} rows");
        }
    }
    if get("tokenizer.ggml.add_bos_token") == Some(&Value::Bool(true)) {
        assert!(bos.is_some());
    }
    if get("tokenizer.ggml.add_eos_token") == Some(&Value::Bool(true)) {
        assert!(eos.is_some());
    }

    // The keys as a package holds them, read back as a package is read.
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String("llama".into()))
        .unwrap();
    for (k, v) in meta {
        w.set(&k, v)
            .unwrap_or_else(|e| panic!("the writer refuses the converter's {e}"));
    }
    let f = GgufFile::from_bytes("fuzz.gguf", w.header_bytes())
        .unwrap_or_else(|e| panic!("the reader refuses the writer's output: {e}"));
    let tok = Tokenizer::from_gguf(&f)
        .unwrap_or_else(|e| panic!("the converter's tokenizer keys do not load: {e}"));
    assert_eq!(tok.vocab_size(), n_vocab);
    if bos.is_some() {
        assert_eq!(tok.bos(), bos);
    }
    if eos.is_some() {
        assert_eq!(tok.eos(), eos);
    }
    for text in TEXTS {
        for (add, parse) in [(false, false), (true, true)] {
            let ids = tok.encode(text, add, parse).expect("encode");
            assert!(ids.iter().all(|&id| (id as usize) < n_vocab), "{ids:?}");
            tok.decode(&ids, false).expect("decode");
            tok.decode(&ids, true).expect("decode");
        }
    }
    let all: Vec<u32> = (0..n_vocab.min(256) as u32).collect();
    tok.decode(&all, false).expect("decode ids");
    assert!(tok.decode(&[n_vocab as u32], false).is_err());
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == 0);
    let mut next = || -> Result<Option<String>, ()> {
        match parts.next() {
            None => Ok(None),
            Some(p) => String::from_utf8(p.to_vec()).map(Some).map_err(|_| ()),
        }
    };
    let (Ok(Some(json)), Ok(config), Ok(generation), Ok(template)) =
        (next(), next(), next(), next())
    else {
        return;
    };
    let max = max_id(&json);
    let t = match HfTokenizer::from_texts(
        Path::new("fuzz"),
        json,
        config.as_deref(),
        generation.as_deref(),
        template,
    ) {
        Ok(t) => t,
        Err(e) => return say!("files refused: {e}"),
    };
    let _ = t.chat_template();
    match max {
        Some(max) if max < MAX_VOCAB => {
            let n = max as usize + 1 + usize::from(data.last().copied().unwrap_or(0) % 3);
            match t.metadata(n) {
                Ok(meta) => {
                    say!("metadata for {n} rows: {} keys", meta.len());
                    check_metadata(meta, n);
                }
                Err(e) => say!("metadata for {n} rows refused: {e}"),
            }
            if max > 0 {
                assert!(t.metadata(max as usize).is_err(), "{max} rows for id {max}");
            }
        }
        _ => {
            // Ids too large to build (or not numbers): only errors are possible.
            assert!(t.metadata(MAX_VOCAB as usize).is_err());
        }
    }
    let _ = t.metadata(1);
});
