//! The tokenizer a package carries (converted from tokenizer.json) gives the ids of
//! the `tokenizers` library, and its chat template renders as transformers'
//! `apply_chat_template` (goldens: tests/goldens/hf-tiny/tokenizer.json, made by
//! scripts/goldens/gen_tiny_hf.py).

mod common;

use alc_convert::{compile, Outcome};
use alc_tokenizer::{ChatMessage, Tokenizer};
use common::*;

#[test]
fn converted_tokenizer_matches_tokenizers_and_transformers() {
    let root = alc_testdata::workspace();
    let dir = tempfile::tempdir().unwrap();
    let opts = options(&fixture("qwen3"), dir.path(), "f16");
    let pkg = match compile(&opts, &mut |_| {}).unwrap() {
        Outcome::Built(r) => r.package,
        Outcome::UpToDate { .. } => unreachable!("fresh directory"),
    };
    let f = alc_format::GgufFile::open(&pkg).unwrap();
    let tok = Tokenizer::from_gguf(&f).unwrap();
    let g: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join("tests/goldens/hf-tiny/tokenizer.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tok.vocab_size() as u64, g["vocab_size"].as_u64().unwrap());
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let cases = g["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        // tokenizers matches added tokens inside text even without special tokens.
        let got = tok.encode(text, false, true).unwrap();
        assert_eq!(got, ids(&c["ids"]), "ids of {text:?}");
        let back = tok.decode(&got, false).unwrap();
        assert_eq!(back, c["decoded"].as_str().unwrap(), "decode of {text:?}");
    }
    let tmpl = tok.chat_template().unwrap();
    for c in g["chat"].as_array().unwrap() {
        let msgs: Vec<ChatMessage> = c["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let gen = c["add_generation_prompt"].as_bool().unwrap();
        let rendered = tmpl.render(&msgs, gen).unwrap();
        assert_eq!(rendered, c["rendered"].as_str().unwrap());
        assert_eq!(tok.encode(&rendered, false, true).unwrap(), ids(&c["ids"]));
    }
}
