//! SentencePiece-style tokenizer.json (BPE with byte fallback) → GGUF "llama"
//! vocabulary: alc's tokenizer over the converted metadata gives the ids of the
//! Hugging Face `tokenizers` library on the same tokenizer.json, for each supported
//! shape: Gemma's (no space prefix) and Llama 2's Prepend + Replace normaliser; a
//! Metaspace pre-tokenizer, whose prefix rules GGUF cannot express, is refused.
//! The tokenizer.json is the one
//! `alc export` rebuilds from Gemma 3's GGUF (checked against llama.cpp in
//! tests/export.rs); the variants swap only its text pipeline.
//! Skipped where Python lacks `tokenizers` or the model is not fetched.

use alc_convert::vocab::HfTokenizer;
use alc_format::{GgufFile, GgufWriter};
use serde_json::{json, Value as Json};
use std::path::Path;

/// The golden texts of tests/goldens/tokenizer/gemma3.json, plus texts that start
/// with spaces and put text right after special and user-defined tokens.
fn texts() -> Vec<String> {
    let g: Json = serde_json::from_slice(
        &std::fs::read(alc_testdata::workspace().join("tests/goldens/tokenizer/gemma3.json"))
            .unwrap(),
    )
    .unwrap();
    let mut v: Vec<String> = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v.dedup();
    for t in [
        " leading space",
        "  two leading",
        "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
        "a\n\nb\tc",
        "trailing   ",
    ] {
        v.push(t.into());
    }
    v
}

/// ids from `tokenizers` (scripts/hf_encode.py), `None` where it is unavailable.
fn hf_ids(tokenizer_json: &Path, texts_json: &Path) -> Option<Vec<Vec<u32>>> {
    let out = std::process::Command::new("python3")
        .arg(alc_testdata::workspace().join("scripts/hf_encode.py"))
        .arg(tokenizer_json)
        .arg(texts_json)
        .output()
        .expect("python3 runs");
    match out.status.code() {
        Some(0) => Some(serde_json::from_slice(&out.stdout).unwrap()),
        Some(2) => {
            eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr));
            None
        }
        _ => panic!("hf_encode.py: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

/// alc's tokenizer over the metadata compile writes for `json`.
fn alc_tokenizer(dir: &Path, json: &Json, n_vocab: usize) -> alc_tokenizer::Tokenizer {
    let hf = HfTokenizer::from_texts(dir, json.to_string(), None, None, None).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in hf.metadata(n_vocab).unwrap() {
        w.set(&k, v).unwrap();
    }
    let path = dir.join("vocab.gguf");
    w.write_file(&path, |_, _, _| Ok::<(), alc_format::FormatError>(()))
        .unwrap();
    alc_tokenizer::Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap()
}

#[test]
fn spm_shapes_match_tokenizers() {
    let Some(src) = alc_testdata::model("gemma-3-270m-q4_k_m.gguf") else {
        return;
    };
    let f = GgufFile::open(&src).unwrap();
    let n_vocab = f
        .get_str_array("tokenizer.ggml.tokens")
        .unwrap()
        .unwrap()
        .len();
    let (base, _, _) = alc_convert::export::tokenizer_files(&f, 1024).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let texts = texts();
    let texts_json = tmp.path().join("texts.json");
    std::fs::write(&texts_json, serde_json::to_vec(&texts).unwrap()).unwrap();

    let replace = json!({"type": "Replace", "pattern": {"String": " "}, "content": "\u{2581}"});
    let mut llama2 = base.clone();
    llama2["normalizer"] = json!({"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u{2581}"}, replace]});
    llama2["pre_tokenizer"] = Json::Null;
    let mut metaspace = base.clone();
    metaspace["normalizer"] = Json::Null;
    metaspace["pre_tokenizer"] = json!({"type": "Metaspace", "replacement": "\u{2581}",
        "prepend_scheme": "always", "split": false});

    for (name, json, prefix) in [("gemma", &base, false), ("prepend+replace", &llama2, true)] {
        let path = tmp.path().join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(json).unwrap()).unwrap();
        let Some(want) = hf_ids(&path, &texts_json) else {
            return;
        };
        let tok = alc_tokenizer(tmp.path(), json, n_vocab);
        assert_eq!(tok.add_space_prefix(), prefix, "{name}");
        let mut bad = 0;
        for (t, w) in texts.iter().zip(&want) {
            let got = tok.encode(t, false, true).unwrap();
            if &got != w {
                bad += 1;
                eprintln!("{name}: {t:?}\n  alc        {got:?}\n  tokenizers {w:?}");
            }
        }
        eprintln!("{name}: {} texts, {bad} differ", texts.len());
        assert_eq!(bad, 0, "{name}");
    }

    // Metaspace skips the prefix before a leading space (tokenizers gives [26352] for
    // " Hello" where a GGUF SentencePiece vocabulary gives [236743, 26352]), and with
    // prepend_scheme "first" after special tokens: refused, naming the fix.
    for scheme in ["always", "first"] {
        metaspace["pre_tokenizer"]["prepend_scheme"] = scheme.into();
        let hf =
            HfTokenizer::from_texts(tmp.path(), metaspace.to_string(), None, None, None).unwrap();
        let e = hf.metadata(n_vocab).unwrap_err().to_string();
        assert!(
            e.contains("Metaspace") && e.contains("tokenizer.model"),
            "{e}"
        );
    }
}
