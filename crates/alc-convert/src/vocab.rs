//! Hugging Face tokenizer files → GGUF `tokenizer.*` metadata that alc's tokenizer
//! (and llama.cpp's) reads back to the same ids as the `tokenizers` library.
//!
//! Supported:
//! - byte-level BPE (`model.type` "BPE" with a ByteLevel pre-tokenizer), with one
//!   of the pre-tokenizer shapes in [`PRE_SHAPES`] → `tokenizer.ggml.model`
//!   "gpt2". Token strings are stored as tokenizer.json spells them (GPT-2's
//!   byte-to-unicode alphabet), merges as "left right" lines.
//! - SentencePiece-style BPE (`byte_fallback`, spaces as "▁", one of
//!   [`SPM_SHAPES`]: Gemma, Llama 2 / Mistral) → "llama": pieces, types (byte
//!   pieces `<0xXX>` BYTE) and scores, which SentencePiece ranks merges by. The
//!   scores are SentencePiece's own (minus the rank among normal pieces) when the
//!   merges follow the piece order, as every tokenizer converted from a
//!   SentencePiece model does; otherwise minus the rank of the first merge that
//!   makes the piece (docs/FORMAT.md, Part D, "Tokenizer (HF input)").
//!
//! Ids beyond the tokenizer up to the model's vocabulary become `[PAD{id}]` unused
//! tokens.

use crate::ConvertError;
use alc_format::Value;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Llama 3's split regex (tokenizer.json spelling).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's split regex: Llama 3's with single digits.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Recognised pre-tokenizer shapes and the `tokenizer.ggml.pre` each becomes.
pub const PRE_SHAPES: &[(&str, &str)] = &[
    ("ByteLevel(use_regex)", "gpt-2"),
    ("Digits(individual) + ByteLevel(use_regex)", "smollm"),
    ("Split(Llama 3 regex) + ByteLevel", "llama-bpe"),
    ("Split(Qwen 2 regex) + ByteLevel", "qwen2"),
];

/// Recognised SentencePiece-style shapes (normaliser / pre-tokenizer).
pub const SPM_SHAPES: &[&str] = &[
    "Replace(\" \"→\"▁\") with no pre-tokenizer or Split(\" \") (Gemma)",
    "Sequence[Prepend(\"▁\"), Replace(\" \"→\"▁\")] (Llama 2, Mistral)",
];

/// SentencePiece's space marker.
pub(crate) const SPACE: &str = "\u{2581}";

// llama.cpp token types.
pub(crate) const NORMAL: i32 = 1;
pub(crate) const UNKNOWN: i32 = 2;
pub(crate) const CONTROL: i32 = 3;
pub(crate) const USER_DEFINED: i32 = 4;
pub(crate) const UNUSED: i32 = 5;
pub(crate) const BYTE: i32 = 6;
/// The score llama.cpp's converter gives pieces that merges never make
/// (control, user-defined, unknown, unused).
pub(crate) const SPECIAL_SCORE: f32 = -1000.0;

/// The tokenizer families alc converts.
enum Kind {
    /// Byte-level BPE with this `tokenizer.ggml.pre`.
    ByteLevel(&'static str),
    /// SentencePiece-style BPE.
    Spm { add_space_prefix: bool },
}

/// `<0xXX>`: SentencePiece's byte-fallback piece for byte XX.
pub(crate) fn is_byte_piece(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && t.starts_with("<0x")
        && b[5] == b'>'
        && b[3..5].iter().all(|c| c.is_ascii_hexdigit())
}

/// SentencePiece scores for `types` given tokenizer.json's `merges` (module docs):
/// normal pieces ranked by piece order when the merges follow it, else by the
/// first merge that makes them; bytes 0; every other type [`SPECIAL_SCORE`].
fn spm_scores(types: &[i32], merges: &[(String, String)], ids: &HashMap<String, u32>) -> Vec<f32> {
    let mut normal_rank = vec![0usize; types.len()];
    let mut n = 0;
    for (r, &t) in normal_rank.iter_mut().zip(types) {
        if t == NORMAL {
            *r = n;
            n += 1;
        }
    }
    let mut first_merge: Vec<Option<usize>> = vec![None; types.len()];
    let mut in_order = true;
    let mut last = 0;
    for (rank, (a, b)) in merges.iter().enumerate() {
        let Some(&id) = ids.get(&format!("{a}{b}")) else {
            continue;
        };
        let id = id as usize;
        if types[id] != NORMAL {
            continue;
        }
        first_merge[id].get_or_insert(rank);
        in_order &= normal_rank[id] >= last;
        last = last.max(normal_rank[id]);
    }
    types
        .iter()
        .enumerate()
        .map(|(i, &t)| match t {
            NORMAL if in_order => -(normal_rank[i] as f32),
            NORMAL => -(first_merge[i].unwrap_or(merges.len() + normal_rank[i]) as f32),
            BYTE => 0.0,
            _ => SPECIAL_SCORE,
        })
        .collect()
}

/// tokenizer.json's `pre_tokenizer` for a `tokenizer.ggml.pre` name: the inverse of
/// [`PRE_SHAPES`] (used by `alc export`).
pub(crate) fn pre_tokenizer_json(pre: &str) -> Option<Json> {
    let byte_level = |use_regex: bool| {
        serde_json::json!({"type": "ByteLevel", "add_prefix_space": false,
                           "trim_offsets": true, "use_regex": use_regex})
    };
    let split = |re: &str| {
        serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
            byte_level(false)]})
    };
    Some(match pre {
        "gpt-2" => byte_level(true),
        "smollm" => serde_json::json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "llama-bpe" => split(LLAMA3_REGEX),
        "qwen2" => split(QWEN2_REGEX),
        _ => return None,
    })
}

/// The tokenizer files of a checkpoint directory.
pub struct HfTokenizer {
    pub json_path: PathBuf,
    /// tokenizer.json as read (embedded in the package).
    pub json_text: String,
    json: Json,
    config: Json,
    generation: Json,
    /// A `chat_template.jinja` file, if present (transformers 5 writes it there).
    template_file: Option<String>,
}

/// The text of `path`, `None` if there is no such file.
fn read_text(path: &Path) -> Result<Option<String>, ConvertError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConvertError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn parse_json(path: &Path, text: &str) -> Result<Json, ConvertError> {
    serde_json::from_str(text).map_err(|e| ConvertError::Json {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// A token given as a string or as `{"content": ...}`.
fn token_str(v: &Json) -> Option<&str> {
    v.as_str()
        .or_else(|| v.get("content").and_then(|c| c.as_str()))
}

impl HfTokenizer {
    /// Read the tokenizer files of checkpoint directory `dir`: tokenizer.json, and
    /// tokenizer_config.json, generation_config.json and chat_template.jinja when
    /// present.
    pub fn read(dir: &Path) -> Result<HfTokenizer, ConvertError> {
        let json_path = dir.join("tokenizer.json");
        let json_text = read_text(&json_path)?.ok_or(ConvertError::MissingFile {
            path: json_path.clone(),
            what: "the tokenizer (tokenizer.json from the model's repository)",
        })?;
        let config = read_text(&dir.join("tokenizer_config.json"))?;
        let generation = read_text(&dir.join("generation_config.json"))?;
        let template = read_text(&dir.join("chat_template.jinja"))?;
        Self::from_texts(
            dir,
            json_text,
            config.as_deref(),
            generation.as_deref(),
            template,
        )
    }

    /// The same files held in memory: the text of tokenizer.json, and of
    /// tokenizer_config.json, generation_config.json and chat_template.jinja where the
    /// checkpoint has them. `dir` only names the files in errors; nothing is read.
    /// [`read`](Self::read) is this after reading the files.
    pub fn from_texts(
        dir: &Path,
        json_text: String,
        config: Option<&str>,
        generation: Option<&str>,
        template_file: Option<String>,
    ) -> Result<HfTokenizer, ConvertError> {
        let json_path = dir.join("tokenizer.json");
        let json = parse_json(&json_path, &json_text)?;
        let config = match config {
            Some(t) => parse_json(&dir.join("tokenizer_config.json"), t)?,
            None => Json::Null,
        };
        let generation = match generation {
            Some(t) => parse_json(&dir.join("generation_config.json"), t)?,
            None => Json::Null,
        };
        Ok(HfTokenizer {
            json_path,
            json_text,
            json,
            config,
            generation,
            template_file,
        })
    }

    fn bad(&self, why: impl Into<String>) -> ConvertError {
        ConvertError::Tokenizer {
            path: self.json_path.clone(),
            why: why.into(),
        }
    }

    /// The chat template: tokenizer_config.json's `chat_template` (a string, or the
    /// "default" entry of a list), else chat_template.jinja.
    pub fn chat_template(&self) -> Option<String> {
        match self.config.get("chat_template") {
            Some(Json::String(s)) => return Some(s.clone()),
            Some(Json::Array(list)) => {
                let pick = list
                    .iter()
                    .find(|e| e.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .or_else(|| list.first());
                if let Some(t) = pick
                    .and_then(|e| e.get("template"))
                    .and_then(|t| t.as_str())
                {
                    return Some(t.to_string());
                }
            }
            _ => {}
        }
        self.template_file.clone()
    }

    /// `tokenizer.ggml.pre` for the pre-tokenizer, or an error naming its shape.
    fn pre_name(&self) -> Result<&'static str, ConvertError> {
        let pt = self.json.get("pre_tokenizer").unwrap_or(&Json::Null);
        let steps: Vec<&Json> = match pt.get("type").and_then(|t| t.as_str()) {
            Some("Sequence") => pt
                .get("pretokenizers")
                .and_then(|p| p.as_array())
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            Some(_) => vec![pt],
            None => vec![],
        };
        fn ty(s: &Json) -> &str {
            s.get("type").and_then(|t| t.as_str()).unwrap_or("")
        }
        let flag = |s: &Json, k: &str, default: bool| {
            s.get(k).and_then(|v| v.as_bool()).unwrap_or(default)
        };
        let kinds: Vec<&str> = steps.iter().map(|s| ty(s)).collect();
        let name = match kinds.as_slice() {
            ["ByteLevel"] if flag(steps[0], "use_regex", true) => Some("gpt-2"),
            ["Digits", "ByteLevel"]
                if flag(steps[0], "individual_digits", false)
                    && flag(steps[1], "use_regex", true) =>
            {
                Some("smollm")
            }
            ["Split", "ByteLevel"] if !flag(steps[1], "use_regex", true) => {
                let re = steps[0]
                    .get("pattern")
                    .and_then(|p| p.get("Regex"))
                    .and_then(|r| r.as_str());
                match re {
                    Some(LLAMA3_REGEX) => Some("llama-bpe"),
                    Some(QWEN2_REGEX) => Some("qwen2"),
                    _ => None,
                }
            }
            _ => None,
        };
        name.ok_or_else(|| {
            self.bad(format!(
                "pre-tokenizer [{}] is not one alc converts (supported: {})",
                kinds.join(", "),
                PRE_SHAPES
                    .iter()
                    .map(|(s, _)| *s)
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        })
    }

    /// Which tokenizer family tokenizer.json describes, or an error naming its shape.
    fn kind(&self, model: &Json) -> Result<Kind, ConvertError> {
        let mtype = model.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if mtype != "BPE" {
            return Err(self.bad(format!(
                "tokenizer model '{mtype}' is not supported (supported: BPE, byte-level \
                 or SentencePiece-style with byte fallback)"
            )));
        }
        if model.get("byte_fallback").and_then(|b| b.as_bool()) == Some(true) {
            return self
                .spm_prefix()
                .map(|add_space_prefix| Kind::Spm { add_space_prefix });
        }
        match self.json.get("normalizer") {
            None | Some(Json::Null) => {}
            Some(n) if n.get("type").and_then(|t| t.as_str()) == Some("NFC") => {}
            Some(n) => {
                return Err(self.bad(format!(
                    "normalizer {} is not supported for byte-level BPE (supported: none, NFC)",
                    n.get("type").unwrap_or(&Json::Null)
                )))
            }
        }
        self.pre_name().map(Kind::ByteLevel)
    }

    /// For a SentencePiece-style BPE (byte fallback): whether it puts "▁" before the
    /// text (Llama 2 / Mistral style) or not (Gemma style), from the normalizer and
    /// pre-tokenizer; an error for any other shape.
    fn spm_prefix(&self) -> Result<bool, ConvertError> {
        let get = |j: &Json, k: &str| j.get(k).cloned().unwrap_or(Json::Null);
        let ty = |j: &Json| j.get("type").and_then(|t| t.as_str()).map(str::to_string);
        let is_space_replace = |j: &Json| {
            ty(j).as_deref() == Some("Replace")
                && j.get("pattern")
                    .and_then(|p| p.get("String"))
                    .and_then(|s| s.as_str())
                    == Some(" ")
                && j.get("content").and_then(|c| c.as_str()) == Some(SPACE)
        };
        let is_prepend = |j: &Json| {
            ty(j).as_deref() == Some("Prepend")
                && j.get("prepend").and_then(|c| c.as_str()) == Some(SPACE)
        };
        let norm = get(&self.json, "normalizer");
        let pre = get(&self.json, "pre_tokenizer");
        let steps = get(&norm, "normalizers");
        let steps = steps.as_array().map(Vec::as_slice).unwrap_or_default();
        // Gemma's pre-tokenizer splits on " ", which the normaliser already replaced:
        // a no-op.
        let pre_noop = pre.is_null()
            || (ty(&pre).as_deref() == Some("Split")
                && pre
                    .get("pattern")
                    .and_then(|p| p.get("String"))
                    .and_then(|s| s.as_str())
                    == Some(" "));
        let prefix = if is_space_replace(&norm) && pre_noop {
            Some(false)
        } else if ty(&norm).as_deref() == Some("Sequence")
            && steps.len() == 2
            && is_prepend(&steps[0])
            && is_space_replace(&steps[1])
            && pre_noop
        {
            Some(true)
        } else if ty(&pre).as_deref() == Some("Metaspace") {
            return Err(self.bad(
                "a Metaspace pre-tokenizer is not converted: it skips the \"▁\" prefix where \
                 the text already starts with a space and (prepend_scheme \"first\") after \
                 special tokens, which SentencePiece vocabularies in GGUF cannot express; \
                 compile the GGUF made by llama.cpp's converter from the model's \
                 tokenizer.model instead",
            ));
        } else {
            None
        };
        prefix.ok_or_else(|| {
            self.bad(format!(
                "SentencePiece-style BPE with normalizer {} and pre-tokenizer {} is not one \
                 alc converts (supported: {})",
                ty(&norm).unwrap_or_else(|| "none".into()),
                ty(&pre).unwrap_or_else(|| "none".into()),
                SPM_SHAPES.join("; ")
            ))
        })
    }

    /// GGUF tokenizer metadata for a model with `n_vocab` embedding rows.
    pub fn metadata(&self, n_vocab: usize) -> Result<Vec<(String, Value)>, ConvertError> {
        let model = self
            .json
            .get("model")
            .ok_or_else(|| self.bad("no \"model\" section"))?;
        let kind = self.kind(model)?;

        let vocab = model
            .get("vocab")
            .and_then(|v| v.as_object())
            .ok_or_else(|| self.bad("model.vocab is missing or not an object"))?;
        // Ids as written (u64): any of them may be past the model's rows, or past
        // usize, until checked against `n_vocab` below.
        let mut by_id: HashMap<u64, (String, i32)> = HashMap::with_capacity(vocab.len());
        for (tok, id) in vocab {
            let id = id
                .as_u64()
                .ok_or_else(|| self.bad(format!("vocab entry {tok:?} has no integer id")))?;
            by_id.insert(id, (tok.clone(), NORMAL));
        }
        if let Some(added) = self.json.get("added_tokens").and_then(|a| a.as_array()) {
            for t in added {
                let id = t
                    .get("id")
                    .and_then(|v| v.as_u64())
                    .ok_or_else(|| self.bad("an added_tokens entry has no integer id"))?;
                let content = t
                    .get("content")
                    .and_then(|c| c.as_str())
                    .ok_or_else(|| self.bad(format!("added token {id} has no content")))?;
                let special = t.get("special").and_then(|s| s.as_bool()).unwrap_or(false);
                by_id.insert(
                    id,
                    (
                        content.to_string(),
                        if special { CONTROL } else { USER_DEFINED },
                    ),
                );
            }
        }
        if let Some((&max_id, (tok, _))) = by_id.iter().max_by_key(|(&id, _)| id) {
            if max_id >= n_vocab as u64 {
                // u128: an id of u64::MAX needs 2^64 rows (its `+ 1` overflowed u64).
                return Err(ConvertError::ShapeMismatch {
                    tensor: "model.embed_tokens.weight".into(),
                    expected: format!(
                        "at least {} rows (the tokenizer's largest id is {max_id}, token {tok:?})",
                        u128::from(max_id) + 1
                    ),
                    got: format!("vocab_size {n_vocab}"),
                });
            }
        }
        let mut tokens = Vec::with_capacity(n_vocab);
        let mut types = Vec::with_capacity(n_vocab);
        let mut ids: HashMap<String, u32> = HashMap::with_capacity(n_vocab);
        for i in 0..n_vocab {
            let (s, t) = by_id
                .remove(&(i as u64))
                .unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED));
            ids.entry(s.clone()).or_insert(i as u32);
            tokens.push(s);
            types.push(t);
        }

        let merges = model
            .get("merges")
            .and_then(|m| m.as_array())
            .ok_or_else(|| self.bad("model.merges is missing"))?
            .iter()
            .map(|m| match m {
                Json::String(s) => match s.split_once(' ') {
                    Some((a, b)) => Ok((a.to_string(), b.to_string())),
                    None => Err(self.bad(format!("merge {s:?} is not \"left right\""))),
                },
                Json::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                    (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                    _ => Err(self.bad("a merge pair is not two strings")),
                },
                _ => Err(self.bad("a merge is neither \"a b\" nor [a, b]")),
            })
            .collect::<Result<Vec<_>, _>>()?;

        let special = |key: &str| -> Option<u32> {
            self.config
                .get(key)
                .and_then(token_str)
                .and_then(|s| ids.get(s).copied())
        };
        let unk = special("unk_token").or_else(|| {
            model
                .get("unk_token")
                .and_then(|u| u.as_str())
                .and_then(|s| ids.get(s).copied())
        });
        let mut m = Vec::new();
        match kind {
            Kind::ByteLevel(pre) => {
                m.push(("tokenizer.ggml.model", Value::String("gpt2".into())));
                m.push(("tokenizer.ggml.pre", Value::String(pre.into())));
            }
            Kind::Spm { add_space_prefix } => {
                // SentencePiece's own types: byte-fallback pieces and the unknown piece.
                for (t, ty) in tokens.iter().zip(types.iter_mut()) {
                    if *ty == NORMAL && is_byte_piece(t) {
                        *ty = BYTE;
                    }
                }
                if let Some(u) = unk {
                    if types[u as usize] == NORMAL {
                        types[u as usize] = UNKNOWN;
                    }
                }
                let scores = spm_scores(&types, &merges, &ids);
                m.push(("tokenizer.ggml.model", Value::String("llama".into())));
                m.push(("tokenizer.ggml.pre", Value::String("default".into())));
                m.push((
                    "tokenizer.ggml.scores",
                    Value::Array(scores.into_iter().map(Value::F32).collect()),
                ));
                m.push((
                    "tokenizer.ggml.add_space_prefix",
                    Value::Bool(add_space_prefix),
                ));
            }
        }
        let byte_level = matches!(kind, Kind::ByteLevel(_));
        m.push((
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ));
        m.push((
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ));
        if byte_level {
            m.push((
                "tokenizer.ggml.merges",
                Value::Array(
                    merges
                        .into_iter()
                        .map(|(a, b)| Value::String(format!("{a} {b}")))
                        .collect(),
                ),
            ));
        }
        let gen_id = |key: &str| -> Option<u32> {
            let v = self.generation.get(key)?;
            let id = v.as_u64().or_else(|| v.as_array()?.first()?.as_u64())?;
            (id < n_vocab as u64).then_some(id as u32)
        };
        let bos = special("bos_token").or_else(|| gen_id("bos_token_id"));
        let eos = special("eos_token").or_else(|| gen_id("eos_token_id"));
        for (key, id) in [
            ("tokenizer.ggml.bos_token_id", bos),
            ("tokenizer.ggml.eos_token_id", eos),
            ("tokenizer.ggml.unknown_token_id", unk),
            ("tokenizer.ggml.padding_token_id", special("pad_token")),
        ] {
            if let Some(id) = id {
                m.push((key, Value::U32(id)));
            }
        }
        let add_bos = match self.config.get("add_bos_token").and_then(|b| b.as_bool()) {
            Some(b) => b,
            None => self.post_processor_adds(bos),
        };
        let add_eos = self
            .config
            .get("add_eos_token")
            .and_then(|b| b.as_bool())
            .unwrap_or(false);
        m.push((
            "tokenizer.ggml.add_bos_token",
            Value::Bool(add_bos && bos.is_some()),
        ));
        m.push((
            "tokenizer.ggml.add_eos_token",
            Value::Bool(add_eos && eos.is_some()),
        ));
        let mut m: Vec<(String, Value)> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if let Some(t) = self.chat_template() {
            m.push(("tokenizer.chat_template".to_string(), Value::String(t)));
        }
        Ok(m)
    }

    /// Whether tokenizer.json's post-processor puts `bos` in front of a single
    /// sequence (TemplateProcessing), which is how Llama 3 style tokenizers add it.
    fn post_processor_adds(&self, bos: Option<u32>) -> bool {
        let Some(bos) = bos else { return false };
        let pp = self.json.get("post_processor").unwrap_or(&Json::Null);
        let procs: Vec<&Json> = match pp.get("type").and_then(|t| t.as_str()) {
            Some("Sequence") => pp
                .get("processors")
                .and_then(|p| p.as_array())
                .map(|a| a.iter().collect())
                .unwrap_or_default(),
            _ => vec![pp],
        };
        procs.iter().any(|p| {
            p.get("type").and_then(|t| t.as_str()) == Some("TemplateProcessing")
                && p.get("single")
                    .and_then(|s| s.as_array())
                    .and_then(|s| s.first())
                    .and_then(|first| first.get("SpecialToken"))
                    .and_then(|st| st.get("id"))
                    .and_then(|id| id.as_str())
                    .and_then(|name| {
                        p.get("special_tokens")
                            .and_then(|t| t.get(name))
                            .and_then(|t| t.get("ids"))
                            .and_then(|ids| ids.as_array())
                            .and_then(|ids| ids.first())
                            .and_then(|v| v.as_u64())
                    })
                    == Some(u64::from(bos))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BPE: &str = r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
        "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"},
        "added_tokens": [{"id": 3, "content": "<s>", "special": true}]}"#;

    fn tokenizer(json: &str, config: Option<&str>) -> HfTokenizer {
        HfTokenizer::from_texts(Path::new("ckpt"), json.to_string(), config, None, None).unwrap()
    }

    #[test]
    fn from_texts_is_what_read_reads() {
        let dir = tempfile::tempdir().unwrap();
        let config = r#"{"bos_token": "<s>", "add_bos_token": true, "chat_template": "{{ x }}"}"#;
        std::fs::write(dir.path().join("tokenizer.json"), BPE).unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), config).unwrap();
        let a = HfTokenizer::read(dir.path()).unwrap();
        let b = HfTokenizer::from_texts(dir.path(), BPE.into(), Some(config), None, None).unwrap();
        assert_eq!(a.json_path, b.json_path);
        assert_eq!(a.metadata(8).unwrap(), b.metadata(8).unwrap());
        assert_eq!(b.chat_template().as_deref(), Some("{{ x }}"));
        let e = HfTokenizer::from_texts(dir.path(), BPE.into(), Some("{"), None, None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("tokenizer_config.json"), "{e}");
    }

    /// Found with the `hf_tokenizer_json` fuzz target's regression input
    /// `regress_vocab_id_u64_max.json`: the error path computed `max_id + 1` in usize,
    /// which overflowed for an id of u64::MAX (a panic with overflow checks, a message
    /// asking for "at least 0 rows" without).
    #[test]
    fn an_id_of_u64_max_is_an_error_not_an_overflow() {
        for json in [
            r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 18446744073709551615},
                "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}}"#,
            r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                "pre_tokenizer": {"type": "ByteLevel"},
                "added_tokens": [{"id": 18446744073709551615, "content": "b"}]}"#,
        ] {
            let e = tokenizer(json, None).metadata(384).unwrap_err().to_string();
            assert!(
                e.contains(
                    "at least 18446744073709551616 rows (the tokenizer's largest id is \
                     18446744073709551615, token \"b\")"
                ) && e.contains("vocab_size 384"),
                "{e}"
            );
        }
        let e = tokenizer(BPE, None).metadata(3).unwrap_err().to_string();
        assert!(
            e.contains("at least 4 rows (the tokenizer's largest id is 3, token \"<s>\")"),
            "{e}"
        );
        let m = tokenizer(BPE, None).metadata(5).unwrap();
        let tokens = &m
            .iter()
            .find(|(k, _)| k == "tokenizer.ggml.tokens")
            .unwrap()
            .1;
        assert_eq!(
            tokens,
            &Value::Array(
                ["a", "b", "ab", "<s>", "[PAD4]"]
                    .map(|s| Value::String(s.into()))
                    .to_vec()
            )
        );
    }

    /// A SentencePiece-style tokenizer.json over pieces a, b, ab, ba, aba (+ bytes).
    fn spm_json(merges: &str, normalizer: &str) -> String {
        format!(
            r#"{{"model": {{"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
               "vocab": {{"<unk>": 0, "<0x41>": 1, "a": 2, "b": 3, "ab": 4, "ba": 5,
                          "aba": 6}},
               "merges": {merges}}},
               "normalizer": {normalizer}}}"#
        )
    }

    fn meta(m: &[(String, Value)], key: &str) -> Value {
        m.iter().find(|(k, _)| k == key).unwrap().1.clone()
    }

    #[test]
    fn spm_scores_follow_piece_order_or_merge_rank() {
        let gemma = r#"{"type": "Replace", "pattern": {"String": " "}, "content": "▁"}"#;
        let f = |v: &[f32]| Value::Array(v.iter().map(|&x| Value::F32(x)).collect());
        // Merges in piece order: minus the rank among normal pieces; the byte piece 0,
        // the unknown piece -1000.
        let m = tokenizer(
            &spm_json(r#"[["a","b"],["b","a"],["ab","a"]]"#, gemma),
            None,
        )
        .metadata(7)
        .unwrap();
        assert_eq!(
            meta(&m, "tokenizer.ggml.model"),
            Value::String("llama".into())
        );
        assert_eq!(
            meta(&m, "tokenizer.ggml.add_space_prefix"),
            Value::Bool(false)
        );
        assert_eq!(
            meta(&m, "tokenizer.ggml.token_type"),
            Value::Array([2, 6, 1, 1, 1, 1, 1].map(Value::I32).to_vec())
        );
        assert_eq!(
            meta(&m, "tokenizer.ggml.scores"),
            f(&[-1000.0, 0.0, -0.0, -1.0, -2.0, -3.0, -4.0])
        );
        // "ba" before "ab": ranked by the first merge making each (3 merges; pieces no
        // merge makes come after them).
        let m = tokenizer(
            &spm_json(r#"[["b","a"],["a","b"],["a","ba"]]"#, gemma),
            None,
        )
        .metadata(7)
        .unwrap();
        assert_eq!(
            meta(&m, "tokenizer.ggml.scores"),
            f(&[-1000.0, 0.0, -3.0, -4.0, -1.0, -0.0, -2.0])
        );
        // Llama 2's prefix normaliser.
        let llama2 = r#"{"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}"#;
        let m = tokenizer(&spm_json("[]", llama2), None)
            .metadata(7)
            .unwrap();
        assert_eq!(
            meta(&m, "tokenizer.ggml.add_space_prefix"),
            Value::Bool(true)
        );
        // Anything else names the shape and the supported ones.
        let e = tokenizer(&spm_json("[]", r#"{"type": "NFKC"}"#), None)
            .metadata(7)
            .unwrap_err()
            .to_string();
        assert!(e.contains("normalizer NFKC") && e.contains("Gemma"), "{e}");
    }
}
