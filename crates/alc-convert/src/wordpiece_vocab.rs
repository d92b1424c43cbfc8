//! A BERT WordPiece tokenizer.json → GGUF `tokenizer.*` and `alc.wordpiece.*` metadata
//! (docs/FORMAT.md, "WordPiece vocabularies (BERT)").
//!
//! The vocabulary is written as llama.cpp's converter writes BERT vocabularies, so
//! llama.cpp loads the package too: `tokenizer.ggml.model` "bert", tokens in the
//! "phantom space" form (a word-initial piece `x` as `▁x`, a continuation `##y` as `y`,
//! control tokens unchanged), token types (special added tokens CONTROL, the rest
//! NORMAL, ids missing up to config.json's `vocab_size` `[PAD{id}]` UNUSED), `[CLS]` as
//! BOS, `[SEP]` as EOS and separator. What the phantom form cannot say — the
//! BertNormalizer switches, the word length limit, the model's sequence length — goes
//! to `alc.wordpiece.*` keys, which alc's tokenizer reads.
//!
//! Only the shape sentence-transformers' BERT models use is accepted: `WordPiece`
//! with prefix `##`, `BertNormalizer`, `BertPreTokenizer`, and a post-processor that
//! puts `[CLS]` before and `[SEP]` after one sequence (`TemplateProcessing` or
//! `BertProcessing`); anything else is refused naming the field and its value.

use crate::ConvertError;
use alc_format::Value;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

// llama.cpp token types.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const UNUSED: i32 = 5;

/// The phantom-space word marker (U+2581).
const PHANTOM: &str = "\u{2581}";

/// Largest accepted `model_max_length`: transformers writes 1e30 for "no limit".
const MAX_SANE_LENGTH: u64 = 1 << 24;

/// The texts of the files [`wordpiece_metadata`] reads; `None` for a file that is absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct WordPieceFiles<'a> {
    /// tokenizer.json (required).
    pub tokenizer_json: &'a str,
    /// tokenizer_config.json: `pad_token`, `mask_token`, `model_max_length`.
    pub tokenizer_config: Option<&'a str>,
    /// config.json: `vocab_size`, `type_vocab_size`, `max_position_embeddings`.
    pub config: Option<&'a str>,
    /// sentence_bert_config.json: `max_seq_length` (preferred), `do_lower_case`.
    pub sentence_bert_config: Option<&'a str>,
}

/// The text of `path`, `None` if there is no such file.
fn read_opt(path: &Path) -> Result<Option<String>, ConvertError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConvertError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// GGUF metadata for the WordPiece tokenizer of checkpoint directory `dir`: reads
/// tokenizer.json, and tokenizer_config.json, config.json and
/// sentence_bert_config.json where present.
pub fn wordpiece_metadata(dir: &Path) -> Result<Vec<(String, Value)>, ConvertError> {
    let json_path = dir.join("tokenizer.json");
    let json = read_opt(&json_path)?.ok_or(ConvertError::MissingFile {
        path: json_path,
        what: "the tokenizer (tokenizer.json from the model's repository)",
    })?;
    let tc = read_opt(&dir.join("tokenizer_config.json"))?;
    let cfg = read_opt(&dir.join("config.json"))?;
    let st = read_opt(&dir.join("sentence_bert_config.json"))?;
    wordpiece_metadata_from_texts(
        dir,
        &WordPieceFiles {
            tokenizer_json: &json,
            tokenizer_config: tc.as_deref(),
            config: cfg.as_deref(),
            sentence_bert_config: st.as_deref(),
        },
    )
}

fn parse(path: PathBuf, text: Option<&str>) -> Result<Json, ConvertError> {
    match text {
        None => Ok(Json::Null),
        Some(t) => serde_json::from_str(t).map_err(|e| ConvertError::Json {
            path,
            why: e.to_string(),
        }),
    }
}

/// A token given as a string or as `{"content": ...}`.
fn token_text(v: &Json) -> Option<&str> {
    v.as_str()
        .or_else(|| v.get("content").and_then(|c| c.as_str()))
}

fn type_of(v: &Json) -> String {
    match v.get("type") {
        Some(Json::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
        None if v.is_null() => "null".to_string(),
        None => "(no type)".to_string(),
    }
}

/// [`wordpiece_metadata`] over file texts held in memory; `dir` only names the files
/// in errors.
pub fn wordpiece_metadata_from_texts(
    dir: &Path,
    files: &WordPieceFiles<'_>,
) -> Result<Vec<(String, Value)>, ConvertError> {
    let json_path = dir.join("tokenizer.json");
    let bad = |why: String| ConvertError::Tokenizer {
        path: json_path.clone(),
        why,
    };
    let json = parse(json_path.clone(), Some(files.tokenizer_json))?;
    let tc = parse(dir.join("tokenizer_config.json"), files.tokenizer_config)?;
    let cfg = parse(dir.join("config.json"), files.config)?;
    let st_path = dir.join("sentence_bert_config.json");
    let st = parse(st_path.clone(), files.sentence_bert_config)?;

    // model
    let model = json.get("model").unwrap_or(&Json::Null);
    if model.get("type").and_then(Json::as_str) != Some("WordPiece") {
        return Err(bad(format!(
            "model.type is {}; a WordPiece package needs \"WordPiece\"",
            type_of(model)
        )));
    }
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Json::as_str)
        .unwrap_or("##");
    if prefix != "##" {
        return Err(bad(format!(
            "model.continuing_subword_prefix is {prefix:?}; llama.cpp's BERT vocabulary form supports only \"##\""
        )));
    }
    let max_chars = match model.get("max_input_chars_per_word") {
        None | Some(Json::Null) => 100,
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= u64::from(u32::MAX))
            .ok_or_else(|| {
                bad(format!(
                    "model.max_input_chars_per_word is {v}; expected a count"
                ))
            })? as u32,
    };
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| bad("model.vocab is missing or not an object of token → id".to_string()))?;
    if vocab.is_empty() {
        return Err(bad("model.vocab is empty".to_string()));
    }
    let mut by_id: HashMap<u32, &str> = HashMap::with_capacity(vocab.len());
    let mut ids: HashMap<&str, u32> = HashMap::with_capacity(vocab.len());
    for (tok, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| i < i32::MAX as u64)
            .ok_or_else(|| {
                bad(format!(
                    "model.vocab[{tok:?}] is {id}; expected an id below 2^31"
                ))
            })? as u32;
        if let Some(prev) = by_id.insert(id, tok) {
            return Err(bad(format!(
                "model.vocab gives id {id} to both {prev:?} and {tok:?}"
            )));
        }
        ids.insert(tok, id);
    }
    let unk_text = model
        .get("unk_token")
        .and_then(Json::as_str)
        .unwrap_or("[UNK]");
    let unk = *ids.get(unk_text).ok_or_else(|| {
        bad(format!(
            "model.unk_token {unk_text:?} is not in model.vocab"
        ))
    })?;

    // normaliser, pre-tokenizer, decoder
    let norm = json.get("normalizer").unwrap_or(&Json::Null);
    if norm.get("type").and_then(Json::as_str) != Some("BertNormalizer") {
        return Err(bad(format!(
            "normalizer.type is {}; a WordPiece package needs \"BertNormalizer\"",
            type_of(norm)
        )));
    }
    let nflag = |k: &str, default: bool| -> Result<bool, ConvertError> {
        match norm.get(k) {
            None | Some(Json::Null) => Ok(default),
            Some(Json::Bool(b)) => Ok(*b),
            Some(v) => Err(bad(format!(
                "normalizer.{k} is {v}; expected true or false"
            ))),
        }
    };
    let clean_text = nflag("clean_text", true)?;
    let handle_chinese_chars = nflag("handle_chinese_chars", true)?;
    let lowercase = nflag("lowercase", true)?;
    // null: follow lowercase (HF BertNormalizer)
    let strip_accents_raw = match norm.get("strip_accents") {
        None | Some(Json::Null) => None,
        Some(Json::Bool(b)) => Some(*b),
        Some(v) => {
            return Err(bad(format!(
                "normalizer.strip_accents is {v}; expected true, false or null"
            )))
        }
    };
    let strip_accents = strip_accents_raw.unwrap_or(lowercase);
    let pre = json.get("pre_tokenizer").unwrap_or(&Json::Null);
    if pre.get("type").and_then(Json::as_str) != Some("BertPreTokenizer") {
        return Err(bad(format!(
            "pre_tokenizer.type is {}; a WordPiece package needs \"BertPreTokenizer\"",
            type_of(pre)
        )));
    }
    match json.get("decoder") {
        None | Some(Json::Null) => {}
        Some(d) if d.get("type").and_then(Json::as_str) == Some("WordPiece") => {}
        Some(d) => {
            return Err(bad(format!(
                "decoder.type is {}; expected \"WordPiece\" or none",
                type_of(d)
            )))
        }
    }

    // added tokens: the special ones become control tokens
    let mut added: HashMap<u32, &str> = HashMap::new();
    let mut added_ids: HashMap<&str, u32> = HashMap::new();
    if let Some(list) = json.get("added_tokens").and_then(Json::as_array) {
        for (i, t) in list.iter().enumerate() {
            let content = t.get("content").and_then(Json::as_str).unwrap_or("");
            let id = t
                .get("id")
                .and_then(Json::as_u64)
                .filter(|&v| v < i32::MAX as u64)
                .ok_or_else(|| bad(format!("added_tokens[{i}] ({content:?}) has no valid id")))?
                as u32;
            let flag = |k: &str| t.get(k).and_then(Json::as_bool);
            if flag("special") != Some(true) {
                return Err(bad(format!(
                    "added_tokens[{i}] {content:?} is not special; WordPiece packages support only special added tokens"
                )));
            }
            for k in ["lstrip", "rstrip", "single_word", "normalized"] {
                if flag(k) == Some(true) {
                    return Err(bad(format!(
                        "added_tokens[{i}] {content:?} has {k} true; WordPiece packages support only exact-match special tokens"
                    )));
                }
            }
            if content.is_empty() {
                return Err(bad(format!("added_tokens[{i}] has an empty content")));
            }
            if let Some(&other) = by_id.get(&id) {
                if other != content {
                    return Err(bad(format!(
                        "added_tokens[{i}] {content:?} has id {id}, which model.vocab gives to {other:?}"
                    )));
                }
            }
            added.insert(id, content);
            added_ids.insert(content, id);
        }
    }
    let id_of = |text: &str| added_ids.get(text).or_else(|| ids.get(text)).copied();

    // post-processor: [CLS] $A [SEP]
    let post = json.get("post_processor").unwrap_or(&Json::Null);
    let (cls, sep) = match post.get("type").and_then(Json::as_str) {
        Some("TemplateProcessing") => {
            let single = post.get("single").and_then(Json::as_array);
            fn special(e: &Json) -> Option<&str> {
                e.get("SpecialToken")
                    .and_then(|s| s.get("id"))
                    .and_then(Json::as_str)
            }
            let shape = single.and_then(|s| match s.as_slice() {
                [a, b, c]
                    if b.get("Sequence").and_then(|q| q.get("id")).and_then(Json::as_str)
                        == Some("A") =>
                {
                    Some((special(a)?, special(c)?))
                }
                _ => None,
            });
            let (a, c) = shape.ok_or_else(|| {
                bad(format!(
                    "post_processor.single is {}; a WordPiece package needs [SpecialToken, Sequence A, SpecialToken]",
                    post.get("single").unwrap_or(&Json::Null)
                ))
            })?;
            let resolve = |name: &str| -> Result<u32, ConvertError> {
                let from_map = post
                    .get("special_tokens")
                    .and_then(|m| m.get(name))
                    .and_then(|t| t.get("ids"))
                    .and_then(Json::as_array)
                    .and_then(|v| match v.as_slice() {
                        [one] => one.as_u64(),
                        _ => None,
                    });
                match from_map {
                    Some(v) if v < i32::MAX as u64 => Ok(v as u32),
                    _ => id_of(name).ok_or_else(|| {
                        bad(format!(
                            "post_processor special token {name:?} has no single id in post_processor.special_tokens or the vocabulary"
                        ))
                    }),
                }
            };
            (resolve(a)?, resolve(c)?)
        }
        Some("BertProcessing") => {
            let pair = |k: &str| -> Result<u32, ConvertError> {
                post.get(k)
                    .and_then(Json::as_array)
                    .and_then(|v| v.get(1))
                    .and_then(Json::as_u64)
                    .filter(|&v| v < i32::MAX as u64)
                    .map(|v| v as u32)
                    .ok_or_else(|| {
                        bad(format!(
                            "post_processor.{k} is {}; expected [token, id]",
                            post.get(k).unwrap_or(&Json::Null)
                        ))
                    })
            };
            (pair("cls")?, pair("sep")?)
        }
        _ => {
            return Err(bad(format!(
                "post_processor.type is {}; a WordPiece package needs \"TemplateProcessing\" ([CLS] $A [SEP]) or \"BertProcessing\"",
                type_of(post)
            )))
        }
    };

    // the token list: phantom form, types, padding up to config.json's vocab_size
    let max_id = by_id.keys().chain(added.keys()).copied().max().unwrap_or(0);
    let cfg_vocab = cfg.get("vocab_size").and_then(Json::as_u64).unwrap_or(0);
    if cfg_vocab > i32::MAX as u64 {
        return Err(ConvertError::Config {
            path: dir.join("config.json"),
            key: "vocab_size".into(),
            why: format!("{cfg_vocab} is too large"),
        });
    }
    let n_vocab = (max_id as usize + 1).max(cfg_vocab as usize);
    for (what, id) in [("[CLS]", cls), ("[SEP]", sep), ("[UNK]", unk)] {
        if id as usize >= n_vocab {
            return Err(bad(format!(
                "the {what} id {id} is outside the vocabulary of {n_vocab}"
            )));
        }
    }
    let mut tokens = Vec::with_capacity(n_vocab);
    let mut types = Vec::with_capacity(n_vocab);
    let mut seen: HashMap<String, u32> = HashMap::with_capacity(n_vocab);
    for id in 0..n_vocab as u32 {
        let (text, ty) = if let Some(t) = added.get(&id) {
            (t.to_string(), CONTROL)
        } else if let Some(t) = by_id.get(&id) {
            let phantom = match t.strip_prefix("##") {
                Some(rest) => {
                    if rest.starts_with(PHANTOM) {
                        return Err(bad(format!(
                            "model.vocab token {t:?} (id {id}) is a continuation starting with \"▁\", which llama.cpp's BERT vocabulary form cannot tell from a word start"
                        )));
                    }
                    rest.to_string()
                }
                None => format!("{PHANTOM}{t}"),
            };
            (phantom, NORMAL)
        } else {
            (format!("{PHANTOM}[PAD{id}]"), UNUSED)
        };
        if !text.is_empty() {
            if let Some(prev) = seen.insert(text.clone(), id) {
                return Err(bad(format!(
                    "tokens {prev} and {id} both become {text:?} in llama.cpp's BERT vocabulary form"
                )));
            }
        }
        tokens.push(Value::String(text));
        types.push(Value::I32(ty));
    }

    // the model's sequence length
    if st.get("do_lower_case").and_then(Json::as_bool) == Some(true) {
        return Err(ConvertError::Config {
            path: st_path,
            key: "do_lower_case".into(),
            why: "true (sentence-transformers lowercases before the tokenizer) is not supported"
                .into(),
        });
    }
    let positive = |v: Option<&Json>| {
        v.and_then(Json::as_u64)
            .filter(|&n| n > 0 && n <= MAX_SANE_LENGTH)
    };
    let max_length = positive(st.get("max_seq_length"))
        .or_else(|| {
            let tok_max = positive(tc.get("model_max_length"));
            let pos_max = positive(cfg.get("max_position_embeddings"));
            match (tok_max, pos_max) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        })
        .or_else(|| positive(json.get("truncation").and_then(|t| t.get("max_length"))));

    // pad and mask, as tokenizer_config.json names them (else config.json's pad id)
    let special_id = |key: &str| tc.get(key).and_then(token_text).and_then(&id_of);
    let pad = special_id("pad_token").or_else(|| {
        cfg.get("pad_token_id")
            .and_then(Json::as_u64)
            .filter(|&v| (v as usize) < n_vocab)
            .map(|v| v as u32)
    });
    let mask = special_id("mask_token");
    let type_count = cfg
        .get("type_vocab_size")
        .and_then(Json::as_u64)
        .filter(|&v| v <= u64::from(u32::MAX))
        .unwrap_or(1) as u32;

    let mut m: Vec<(String, Value)> = Vec::new();
    let mut put = |k: &str, v: Value| m.push((k.to_string(), v));
    put("tokenizer.ggml.model", Value::String("bert".into()));
    put("tokenizer.ggml.pre", Value::String("default".into()));
    put("tokenizer.ggml.tokens", Value::Array(tokens));
    put("tokenizer.ggml.token_type", Value::Array(types));
    put("tokenizer.ggml.token_type_count", Value::U32(type_count));
    put("tokenizer.ggml.bos_token_id", Value::U32(cls));
    put("tokenizer.ggml.eos_token_id", Value::U32(sep));
    put("tokenizer.ggml.unknown_token_id", Value::U32(unk));
    put("tokenizer.ggml.seperator_token_id", Value::U32(sep));
    if let Some(p) = pad {
        put("tokenizer.ggml.padding_token_id", Value::U32(p));
    }
    if let Some(k) = mask {
        put("tokenizer.ggml.mask_token_id", Value::U32(k));
    }
    put("tokenizer.ggml.add_bos_token", Value::Bool(true));
    put("tokenizer.ggml.add_eos_token", Value::Bool(true));
    put("tokenizer.ggml.add_sep_token", Value::Bool(false));
    put(
        "tokenizer.ggml.normalizer.lowercase",
        Value::Bool(lowercase),
    );
    if let Some(s) = strip_accents_raw {
        put("tokenizer.ggml.normalizer.strip_accents", Value::Bool(s));
    }
    put("alc.wordpiece.lowercase", Value::Bool(lowercase));
    put("alc.wordpiece.strip_accents", Value::Bool(strip_accents));
    put(
        "alc.wordpiece.handle_chinese_chars",
        Value::Bool(handle_chinese_chars),
    );
    put("alc.wordpiece.clean_text", Value::Bool(clean_text));
    put(
        "alc.wordpiece.max_input_chars_per_word",
        Value::U32(max_chars),
    );
    put(
        "alc.wordpiece.continuing_subword_prefix",
        Value::String("##".into()),
    );
    if let Some(n) = max_length {
        put("alc.wordpiece.max_length", Value::U32(n as u32));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(model: &str, norm: &str, post: &str) -> String {
        format!(
            r###"{{"added_tokens":[
                {{"id":0,"content":"[PAD]","special":true,"normalized":false}},
                {{"id":1,"content":"[UNK]","special":true,"normalized":false}},
                {{"id":2,"content":"[CLS]","special":true,"normalized":false}},
                {{"id":3,"content":"[SEP]","special":true,"normalized":false}}],
              "normalizer":{norm},
              "pre_tokenizer":{{"type":"BertPreTokenizer"}},
              "post_processor":{post},
              "decoder":{{"type":"WordPiece","prefix":"##","cleanup":true}},
              "model":{model}}}"###
        )
    }
    const MODEL: &str = r###"{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,
        "vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"hello":4,"##s":5,"world":6}}"###;
    const NORM: &str = r#"{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true}"#;
    const POST: &str = r#"{"type":"BertProcessing","sep":["[SEP]",3],"cls":["[CLS]",2]}"#;

    fn run(tj: &str) -> Result<Vec<(String, Value)>, ConvertError> {
        wordpiece_metadata_from_texts(
            Path::new("/m"),
            &WordPieceFiles {
                tokenizer_json: tj,
                config: Some(
                    r#"{"vocab_size":9,"type_vocab_size":2,"max_position_embeddings":512,"pad_token_id":0}"#,
                ),
                ..Default::default()
            },
        )
    }

    fn get<'a>(m: &'a [(String, Value)], k: &str) -> &'a Value {
        &m.iter()
            .find(|(key, _)| key == k)
            .unwrap_or_else(|| panic!("{k}"))
            .1
    }

    #[test]
    fn phantom_form_types_and_keys() {
        let m = run(&json(MODEL, NORM, POST)).unwrap();
        let toks: Vec<&str> = match get(&m, "tokenizer.ggml.tokens") {
            Value::Array(v) => v.iter().map(|t| t.as_str().unwrap()).collect(),
            v => panic!("{v:?}"),
        };
        assert_eq!(
            toks,
            [
                "[PAD]",
                "[UNK]",
                "[CLS]",
                "[SEP]",
                "▁hello",
                "s",
                "▁world",
                "▁[PAD7]",
                "▁[PAD8]"
            ]
        );
        assert_eq!(
            get(&m, "tokenizer.ggml.token_type"),
            &Value::Array([3, 3, 3, 3, 1, 1, 1, 5, 5].map(Value::I32).to_vec())
        );
        assert_eq!(get(&m, "tokenizer.ggml.bos_token_id"), &Value::U32(2));
        assert_eq!(get(&m, "tokenizer.ggml.seperator_token_id"), &Value::U32(3));
        assert_eq!(get(&m, "tokenizer.ggml.unknown_token_id"), &Value::U32(1));
        assert_eq!(get(&m, "tokenizer.ggml.padding_token_id"), &Value::U32(0));
        assert_eq!(get(&m, "tokenizer.ggml.token_type_count"), &Value::U32(2));
        assert_eq!(get(&m, "alc.wordpiece.strip_accents"), &Value::Bool(true));
        assert_eq!(get(&m, "alc.wordpiece.max_length"), &Value::U32(512));
        assert!(!m
            .iter()
            .any(|(k, _)| k == "tokenizer.ggml.normalizer.strip_accents"));
    }

    fn err(tj: &str) -> String {
        run(tj).unwrap_err().to_string()
    }

    #[test]
    fn other_shapes_are_refused_naming_the_field() {
        let bpe = MODEL.replace("\"WordPiece\"", "\"BPE\"");
        assert!(err(&json(&bpe, NORM, POST)).contains("model.type is \"BPE\""));
        let no_vocab = r#"{"type":"WordPiece","unk_token":"[UNK]"}"#;
        assert!(err(&json(no_vocab, NORM, POST)).contains("model.vocab is missing"));
        let no_unk = MODEL.replace("\"unk_token\":\"[UNK]\"", "\"unk_token\":\"<unk>\"");
        assert!(err(&json(&no_unk, NORM, POST))
            .contains("model.unk_token \"<unk>\" is not in model.vocab"));
        let prefix = MODEL.replace(
            "\"continuing_subword_prefix\":\"##\"",
            "\"continuing_subword_prefix\":\"@@\"",
        );
        assert!(err(&json(&prefix, NORM, POST)).contains("continuing_subword_prefix is \"@@\""));
        assert!(err(&json(MODEL, r#"{"type":"NFC"}"#, POST)).contains("normalizer.type is \"NFC\""));
        assert!(err(&json(MODEL, "null", POST)).contains("normalizer.type is null"));
        assert!(err(&json(MODEL, NORM, r#"{"type":"RobertaProcessing"}"#))
            .contains("post_processor.type is \"RobertaProcessing\""));
        let pre = json(MODEL, NORM, POST).replace("BertPreTokenizer", "Whitespace");
        assert!(err(&pre).contains("pre_tokenizer.type is \"Whitespace\""));
        let nonspecial = json(MODEL, NORM, POST).replace(
            r#"{"id":0,"content":"[PAD]","special":true"#,
            r#"{"id":0,"content":"[PAD]","special":false"#,
        );
        assert!(err(&nonspecial).contains("added_tokens[0] \"[PAD]\" is not special"));
        let ambiguous = MODEL.replace("\"##s\"", "\"##▁s\"");
        assert!(err(&json(&ambiguous, NORM, POST)).contains("\"##▁s\""));
        assert!(matches!(run("{not json"), Err(ConvertError::Json { .. })));
    }
}
