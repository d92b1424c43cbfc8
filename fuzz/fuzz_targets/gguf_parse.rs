//! Fuzz the GGUF reader and everything that consumes a parsed header.
//!
//! Arbitrary bytes go to `GgufFile::from_bytes`. When the header parses, every accessor
//! is exercised (each metadata key through every typed getter, every tensor's data and
//! shape), then the model builder and the tokenizer builder run on the file. All of them
//! must return `Ok` or `Err`; a panic, an out-of-bounds access, a huge allocation or a
//! hang is a bug. A model that loads is also run for a few tokens on the CPU backend
//! (one thread), since loading is meant to have validated everything the forward pass
//! relies on.

#![no_main]

use std::sync::{Arc, OnceLock};

use alc_format::GgufFile;
use alc_kernels::cpu::CpuBackend;
use alc_models::{Logits, Model};
use alc_tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

/// Keys read through the typed accessors whatever the file contains.
const KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "general.name",
    "tokenizer.ggml.model",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
];

fn backend() -> &'static CpuBackend {
    static BE: OnceLock<CpuBackend> = OnceLock::new();
    BE.get_or_init(|| CpuBackend::new(1))
}

fn exercise_key(f: &GgufFile, key: &str) {
    let _ = f.get(key);
    let _ = f.get_u64(key);
    let _ = f.req_u64(key);
    let _ = f.get_f32(key);
    let _ = f.req_f32(key);
    let _ = f.get_bool(key);
    let _ = f.get_str(key);
    let _ = f.req_str(key);
    let _ = f.get_array(key);
    let _ = f.get_str_array(key);
    let _ = f.get_f32_array(key);
    let _ = f.get_i64_array(key);
}

fn exercise_file(f: &GgufFile) {
    let len = f.file_len();
    assert!(f.alignment().is_power_of_two());
    assert!(f.data_offset() % f.alignment() == 0);

    for (i, (key, value)) in f.metadata().iter().enumerate() {
        // The index must point back at this very entry (duplicate keys are rejected).
        // Compared by address: values may hold NaN, which is not equal to itself.
        let found = f
            .get(key)
            .unwrap_or_else(|| panic!("metadata #{i} '{key}' not found by get()"));
        assert!(
            std::ptr::eq(found, value),
            "metadata #{i} '{key}': get() returns another entry"
        );
        let _ = value.type_name();
        let _ = (
            value.as_u64(),
            value.as_i64(),
            value.as_f64(),
            value.as_bool(),
        );
        let _ = (value.as_str(), value.as_array());
        exercise_key(f, key);
    }
    for key in KEYS {
        exercise_key(f, key);
    }

    for t in f.tensors() {
        assert!(std::ptr::eq(f.tensor(&t.name).expect("tensor by name"), t));
        let data = f.tensor_data(t);
        assert_eq!(data.len() as u64, t.bytes, "tensor '{}'", t.name);
        assert!(f.data_offset() + t.offset + t.bytes <= len);
        let (rows, cols) = t.rows_cols();
        assert!(rows >= 1 && cols >= 1);
        let _ = t.n_elements();
    }
}

fn run_model(model: &Model) {
    let _ = model.memory_plan(4, 2);
    let _ = model.bytes_per_token();
    let _ = model.weight_types();
    let n_vocab = model.hp.n_vocab;
    if n_vocab == 0 {
        return;
    }
    let Ok(mut st) = model.new_state(4, 2) else {
        return;
    };
    let be = backend();
    // Prefill two tokens, then decode one: attention sees pos0 = 0 and pos0 = 2.
    let toks = [0u32, (n_vocab - 1) as u32];
    let logits = model
        .forward(be, &mut st, &toks, Logits::All)
        .expect("prefill of in-range tokens");
    assert_eq!(logits.len(), 2 * n_vocab);
    let logits = model
        .forward(be, &mut st, &toks[1..], Logits::Last)
        .expect("decode of an in-range token");
    assert_eq!(logits.len(), n_vocab);
    // Out-of-range ids and a full context are errors, not panics.
    assert!(model
        .forward(be, &mut st, &[n_vocab as u32], Logits::Last)
        .is_err());
    let _ = model.forward(be, &mut st, &toks, Logits::None);
}

fn run_tokenizer(tok: &Tokenizer) {
    let _ = tok.vocab_spec_summary();
    let _ = tok.special_tokens();
    for text in ["", "Hello world", " a  b\n\n12345 <|im_start|><s>é😀"] {
        for (add, parse) in [(false, false), (true, true)] {
            if let Ok(ids) = tok.encode(text, add, parse) {
                let _ = tok.decode(&ids, false);
                let _ = tok.decode(&ids, true);
            }
        }
    }
    let n = tok.vocab_size() as u32;
    let ids: Vec<u32> = (0..n.min(64)).chain([n.saturating_sub(1), n]).collect();
    let _ = tok.decode(&ids, false);
    let _ = tok.decode(&ids, true);
    let mut sd = tok.stream_decoder(false);
    for &id in &ids {
        let _ = sd.push(id);
    }
    let _ = sd.finish();
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes("fuzz", data.to_vec()) else {
        return;
    };
    exercise_file(&file);
    if let Ok(tok) = Tokenizer::from_gguf(&file) {
        run_tokenizer(&tok);
    }
    let file = Arc::new(file);
    if let Ok(model) = Model::from_gguf(file) {
        run_model(&model);
    }
});
