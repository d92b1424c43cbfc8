//! BERT WordPiece: all-MiniLM-L6-v2's tokenizer.json → GGUF metadata
//! (`wordpiece_vocab`) → `Tokenizer::from_gguf`, against the Hugging Face `tokenizers`
//! goldens of `scripts/goldens/gen_wordpiece.py`
//! (`tests/goldens/tokenizer/all-minilm-l6-v2.json`). Lives here, not in alc-tokenizer,
//! because alc-convert already depends on alc-tokenizer.

use std::path::{Path, PathBuf};
use std::time::Instant;

use alc_convert::wordpiece_vocab::{
    wordpiece_metadata, wordpiece_metadata_from_texts, WordPieceFiles,
};
use alc_convert::ConvertError;
use alc_format::{GgufFile, GgufWriter, Value};
use alc_tokenizer::{Tokenizer, TokenizerError};
use serde_json::Value as Json;

const MODEL: &str = "all-minilm-l6-v2";

fn model_dir() -> Option<PathBuf> {
    alc_testdata::model(MODEL)
}

fn gguf(meta: &[(String, Value)]) -> GgufFile {
    let mut w = GgufWriter::new();
    w.set("general.architecture", Value::String("bert".into()))
        .unwrap();
    for (k, v) in meta {
        w.set(k, v.clone()).unwrap();
    }
    GgufFile::from_bytes("wordpiece.gguf", w.header_bytes()).unwrap()
}

fn tokenizer(meta: &[(String, Value)]) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_gguf(&gguf(meta))
}

struct Case {
    text: String,
    ids: Vec<u32>,
    truncated: bool,
    ids_untruncated: Vec<u32>,
    decoded: String,
}

fn goldens() -> (usize, Vec<Case>) {
    let path = alc_testdata::golden("tokenizer", "all-minilm-l6-v2.json");
    let doc: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ids = |v: &Json| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let cases = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_string(),
            ids: ids(&c["ids"]),
            truncated: c["truncated"].as_bool().unwrap(),
            ids_untruncated: ids(&c["ids_untruncated"]),
            decoded: c["decoded"].as_str().unwrap().to_string(),
        })
        .collect();
    (doc["max_length"].as_u64().unwrap() as usize, cases)
}

#[test]
fn minilm_matches_hf_tokenizers_goldens() {
    let Some(dir) = model_dir() else { return };
    let meta = wordpiece_metadata(&dir).unwrap();
    let tok = tokenizer(&meta).unwrap();
    let (max_length, cases) = goldens();
    assert!(cases.len() >= 150, "{} golden texts", cases.len());
    assert_eq!(tok.vocab_size(), 30522);
    assert_eq!(tok.kind(), "wpm (bert)");
    assert_eq!(tok.max_length(), Some(max_length));
    assert_eq!(tok.bos(), Some(101));
    assert_eq!(tok.unk(), Some(100));
    assert_eq!(tok.token_id("[SEP]"), Some(102));

    let mut bad = Vec::new();
    for c in &cases {
        let (ids, truncated) = tok.encode_for_embedding(&c.text).unwrap();
        if ids != c.ids || truncated != c.truncated {
            bad.push(format!(
                "{:?}: embedding ids {:?} (truncated {truncated}), HF {:?} (truncated {})",
                c.text, ids, c.ids, c.truncated
            ));
        }
        let full = tok.encode(&c.text, true, true).unwrap();
        if full != c.ids_untruncated {
            bad.push(format!(
                "{:?}: ids {full:?}, HF {:?}",
                c.text, c.ids_untruncated
            ));
        }
        let dec = tok.decode(&c.ids_untruncated, true).unwrap();
        if dec != c.decoded {
            bad.push(format!("{:?}: decoded {dec:?}, HF {:?}", c.text, c.decoded));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches of {} texts:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
    assert!(cases.iter().filter(|c| c.truncated).count() >= 2);
}

#[test]
fn minilm_special_handling_and_round_trip() {
    let Some(dir) = model_dir() else { return };
    let tok = tokenizer(&wordpiece_metadata(&dir).unwrap()).unwrap();
    // add_special adds [CLS] … [SEP]; without it, nothing is added
    let ids = tok.encode("hello world", true, false).unwrap();
    assert_eq!(ids, [101, 7592, 2088, 102]);
    assert_eq!(
        tok.encode("hello world", false, false).unwrap(),
        [7592, 2088]
    );
    // special texts are tokens only with parse_special
    assert_eq!(tok.encode("[SEP]", false, true).unwrap(), [102]);
    assert_eq!(tok.encode("[SEP]", false, false).unwrap().len(), 3);
    // decode: with specials, and the HF join of continuations and punctuation
    assert_eq!(tok.decode(&ids, false).unwrap(), "[CLS] hello world [SEP]");
    for text in [
        "the quick brown fox jumps over the lazy dog.",
        "unbelievably, tokenization works!",
        "turn up the volume, please?",
    ] {
        let ids = tok.encode(text, true, true).unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), text);
    }
    // llama.cpp-style pieces: a word start carries its space
    assert_eq!(tok.token_bytes(7592), b" hello");
    assert_eq!(tok.token_text(7592).unwrap(), "\u{2581}hello");
    // the tables are counted
    assert!(tok.heap_bytes() > 200_000, "{}", tok.heap_bytes());
}

#[test]
fn minilm_metadata_follows_llamacpp_bert_keys() {
    let Some(dir) = model_dir() else { return };
    let meta = wordpiece_metadata(&dir).unwrap();
    let get = |k: &str| {
        meta.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("tokenizer.ggml.model"),
        Some(Value::String("bert".into()))
    );
    assert_eq!(get("tokenizer.ggml.bos_token_id"), Some(Value::U32(101)));
    assert_eq!(get("tokenizer.ggml.eos_token_id"), Some(Value::U32(102)));
    assert_eq!(
        get("tokenizer.ggml.seperator_token_id"),
        Some(Value::U32(102))
    );
    assert_eq!(
        get("tokenizer.ggml.unknown_token_id"),
        Some(Value::U32(100))
    );
    assert_eq!(get("tokenizer.ggml.padding_token_id"), Some(Value::U32(0)));
    assert_eq!(get("tokenizer.ggml.mask_token_id"), Some(Value::U32(103)));
    assert_eq!(get("tokenizer.ggml.token_type_count"), Some(Value::U32(2)));
    assert_eq!(
        get("tokenizer.ggml.normalizer.lowercase"),
        Some(Value::Bool(true))
    );
    assert_eq!(get("tokenizer.ggml.normalizer.strip_accents"), None);
    assert_eq!(get("alc.wordpiece.strip_accents"), Some(Value::Bool(true)));
    assert_eq!(get("alc.wordpiece.max_length"), Some(Value::U32(256)));
    assert_eq!(
        get("alc.wordpiece.max_input_chars_per_word"),
        Some(Value::U32(100))
    );
    let Some(Value::Array(tokens)) = get("tokenizer.ggml.tokens") else {
        panic!("no tokens")
    };
    let Some(Value::Array(types)) = get("tokenizer.ggml.token_type") else {
        panic!("no types")
    };
    assert_eq!(tokens.len(), 30522);
    assert_eq!(types.len(), 30522);
    let vocab: Vec<String> = std::fs::read_to_string(dir.join("vocab.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    // phantom space: control tokens bare, "##x" → "x", else "▁" + text
    for (i, (t, ty)) in tokens.iter().zip(types).enumerate() {
        let hf = &vocab[i];
        let want = if matches!(
            hf.as_str(),
            "[PAD]" | "[UNK]" | "[CLS]" | "[SEP]" | "[MASK]"
        ) {
            assert_eq!(ty, Value::I32(3), "{hf}");
            hf.clone()
        } else if let Some(rest) = hf.strip_prefix("##") {
            assert_eq!(ty, Value::I32(1), "{hf}");
            rest.to_string()
        } else {
            assert_eq!(ty, Value::I32(1), "{hf}");
            format!("\u{2581}{hf}")
        };
        assert_eq!(t, &Value::String(want), "token {i}");
    }
}

#[test]
fn missing_special_ids_name_the_key() {
    let Some(dir) = model_dir() else { return };
    let meta = wordpiece_metadata(&dir).unwrap();
    for key in [
        "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.seperator_token_id",
        "tokenizer.ggml.unknown_token_id",
    ] {
        let without: Vec<(String, Value)> =
            meta.iter().filter(|(k, _)| k != key).cloned().collect();
        let err = tokenizer(&without).unwrap_err();
        assert!(
            matches!(err, TokenizerError::MissingId { key: k, .. } if k == key),
            "{key}: {err}"
        );
        assert!(err.to_string().contains(key), "{err}");
        // out of range is the same error
        let mut out_of_range = without.clone();
        out_of_range.push((key.to_string(), Value::U32(40_000)));
        let err = tokenizer(&out_of_range).unwrap_err();
        assert!(
            err.to_string().contains(key) && err.to_string().contains("40000"),
            "{err}"
        );
    }
    let mut prefix = meta.clone();
    for (k, v) in &mut prefix {
        if k == "alc.wordpiece.continuing_subword_prefix" {
            *v = Value::String("@@".into());
        }
    }
    let err = tokenizer(&prefix).unwrap_err();
    assert!(
        err.to_string().contains("continuing_subword_prefix"),
        "{err}"
    );
}

fn edited(dir: &Path, edit: impl Fn(&mut Json)) -> Result<Vec<(String, Value)>, ConvertError> {
    let mut j: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    edit(&mut j);
    let text = j.to_string();
    wordpiece_metadata_from_texts(
        dir,
        &WordPieceFiles {
            tokenizer_json: &text,
            ..Default::default()
        },
    )
}

#[test]
fn bad_tokenizer_json_is_refused_naming_the_field() {
    let Some(dir) = model_dir() else { return };
    let msg = |r: Result<Vec<(String, Value)>, ConvertError>| match r {
        Err(e @ ConvertError::Tokenizer { .. }) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(_) => panic!("accepted"),
    };
    let m = msg(edited(&dir, |j| j["model"]["type"] = "Unigram".into()));
    assert!(m.contains("model.type is \"Unigram\""), "{m}");
    let m = msg(edited(&dir, |j| {
        j["model"].as_object_mut().unwrap().remove("vocab");
    }));
    assert!(m.contains("model.vocab is missing"), "{m}");
    let m = msg(edited(&dir, |j| {
        j["model"]["vocab"].as_object_mut().unwrap().remove("[UNK]");
    }));
    assert!(
        m.contains("model.unk_token \"[UNK]\" is not in model.vocab"),
        "{m}"
    );
    let m = msg(edited(&dir, |j| {
        j["normalizer"]["type"] = "Lowercase".into()
    }));
    assert!(m.contains("normalizer.type is \"Lowercase\""), "{m}");
    let m = msg(edited(&dir, |j| j["post_processor"] = Json::Null));
    assert!(m.contains("post_processor.type is null"), "{m}");
    // no tokenizer.json at all
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        wordpiece_metadata(empty.path()),
        Err(ConvertError::MissingFile { .. })
    ));
}

/// Encode speed over the golden texts (printed; run with --nocapture).
#[test]
fn minilm_encode_speed() {
    let Some(dir) = model_dir() else { return };
    let tok = tokenizer(&wordpiece_metadata(&dir).unwrap()).unwrap();
    let (_, cases) = goldens();
    let rounds = 20;
    let t = Instant::now();
    let mut n = 0usize;
    for _ in 0..rounds {
        for c in &cases {
            n += tok.encode_for_embedding(&c.text).unwrap().0.len();
        }
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / (rounds * cases.len()) as f64;
    let short: Vec<&Case> = cases.iter().filter(|c| c.text.len() < 100).collect();
    let t = Instant::now();
    for _ in 0..rounds {
        for c in &short {
            n += tok.encode_for_embedding(&c.text).unwrap().0.len();
        }
    }
    let per_short = t.elapsed().as_secs_f64() * 1e6 / (rounds * short.len()) as f64;
    eprintln!(
        "wordpiece encode: {per:.2} µs per golden text ({} texts), {per_short:.2} µs per text under 100 bytes ({} texts); {n} ids",
        cases.len(),
        short.len()
    );
}
