//! alc-tokenizer: GGUF vocabularies that give llama.cpp's token ids, and chat templates.
//!
//! Design note. A [`Tokenizer`] is built once from a GGUF file's `tokenizer.*` metadata
//! and is immutable afterwards (share it with `Arc`). The goal is bit-exact agreement
//! with llama.cpp's `llama_tokenize` / `llama_token_to_piece`, so the algorithms follow
//! llama.cpp's behaviour, re-implemented here (see each module's note): special tokens
//! are split out first (`special.rs`), then byte-level BPE runs on words from a named
//! pre-tokenizer (`pretok.rs`, `bpe.rs`) or SentencePiece-style merging by score runs on
//! the space-escaped text (`spm.rs`). Token attributes (control, user-defined, unused,
//! end-of-generation) are derived from GGUF token types and names the way llama.cpp
//! derives them. Strings live in one arena with an open-addressing index, so loading
//! Gemma 3's 262k vocabulary costs a few allocations, and merging is O(n log n) in the
//! word length with no per-step allocation. Nothing is cached across calls.
//! Chat templates ([`ChatTemplate`]) render with minijinja configured like HF
//! transformers' `apply_chat_template`.
//!
//! BERT vocabularies (`tokenizer.ggml.model` "bert", `wordpiece.rs`) are the exception
//! to "llama.cpp's ids": their target is Hugging Face `tokenizers` (BertNormalizer,
//! BertPreTokenizer, WordPiece, `[CLS] … [SEP]`), which they serve for sentence
//! embeddings; the normaliser settings come from `alc.wordpiece.*` keys.

mod bpe;
mod chat;
mod pretok;
mod special;
mod spm;
mod stream;
mod strings;
mod unicode;
mod unicode_table;
mod wordpiece;

use std::collections::BTreeSet;
use std::fmt;

use alc_format::GgufFile;

pub use chat::{ChatMessage, ChatTemplate};
pub use pretok::SUPPORTED_PRE;
pub use stream::StreamDecoder;
pub use unicode::ByteMap;

use special::{attr, Frag, Specials};
use strings::{Index, Strings};

/// Errors of this crate; every message carries the offending value.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("GGUF has no tokenizer (tokenizer.ggml.model missing); this file cannot be run")]
    NoTokenizer,
    #[error("unsupported tokenizer model '{0}'; supported: gpt2 (byte-level BPE), llama (SentencePiece), bert (WordPiece)")]
    UnsupportedModel(String),
    #[error("unsupported pre-tokenizer '{name}'; supported: {}", SUPPORTED_PRE.join(", "))]
    UnsupportedPre { name: String },
    #[error("token id {id} out of range for vocabulary of {n_vocab}")]
    IdOutOfRange { id: u32, n_vocab: usize },
    #[error("GGUF tokenizer metadata is inconsistent: {0}")]
    BadVocab(String),
    #[error("the model adds a {which} token to every prompt but defines none (tokenizer.ggml.{which}_token_id missing or out of range)")]
    MissingSpecial { which: &'static str },
    #[error("BERT vocabulary: {key} ({what}) {}", id_problem(*.value, *.n_vocab))]
    MissingId {
        key: &'static str,
        what: &'static str,
        value: Option<i64>,
        n_vocab: usize,
    },
    #[error("reading tokenizer metadata: {0}")]
    Format(#[from] alc_format::FormatError),
    #[error("GGUF has no chat template (tokenizer.chat_template missing)")]
    NoChatTemplate,
    #[error("chat template does not parse: {0}")]
    TemplateSyntax(String),
    #[error("chat template failed to render: {0}")]
    TemplateRender(String),
}

/// "is missing" or "is V, out of range for N tokens" (for [`TokenizerError::MissingId`]).
fn id_problem(value: Option<i64>, n_vocab: usize) -> String {
    match value {
        Some(v) => format!("is {v}, out of range for {n_vocab} tokens"),
        None => "is missing".to_string(),
    }
}

/// Token type as declared in GGUF `tokenizer.ggml.token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Undefined,
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl TokenType {
    fn from_gguf(v: i64) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
    fn attr(self) -> u16 {
        match self {
            TokenType::Undefined => 0,
            TokenType::Normal => attr::NORMAL,
            TokenType::Unknown => attr::UNKNOWN,
            TokenType::Control => attr::CONTROL,
            TokenType::UserDefined => attr::USER_DEFINED,
            TokenType::Unused => attr::UNUSED,
            TokenType::Byte => attr::BYTE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Model {
    Bpe,
    Spm,
    /// WordPiece (BERT), Hugging Face `tokenizers` semantics.
    Wpm,
}

/// Summary of a vocabulary for `alc inspect`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VocabSummary {
    pub kind: &'static str,
    pub pre: String,
    pub vocab_size: usize,
    pub n_merges: usize,
    pub bos: Option<(u32, String)>,
    pub eos: Option<(u32, String)>,
    pub eot: Option<(u32, String)>,
    pub eog: Vec<(u32, String)>,
    pub add_bos: bool,
    pub add_eos: bool,
    pub add_space_prefix: bool,
    pub n_special: usize,
    pub has_chat_template: bool,
}

impl fmt::Display for VocabSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tok = |t: &Option<(u32, String)>| match t {
            Some((id, s)) => format!("{id} {s:?}"),
            None => "none".to_string(),
        };
        writeln!(f, "tokenizer: {}, pre-tokenizer {:?}", self.kind, self.pre)?;
        writeln!(
            f,
            "  vocab size {}, merges {}, special tokens {}",
            self.vocab_size, self.n_merges, self.n_special
        )?;
        writeln!(
            f,
            "  bos {}, eos {}, eot {}",
            tok(&self.bos),
            tok(&self.eos),
            tok(&self.eot)
        )?;
        let eog: Vec<String> = self.eog.iter().map(|(i, s)| format!("{i} {s:?}")).collect();
        writeln!(f, "  end of generation: {}", eog.join(", "))?;
        write!(
            f,
            "  add_bos {}, add_eos {}, add_space_prefix {}, chat template {}",
            self.add_bos,
            self.add_eos,
            self.add_space_prefix,
            if self.has_chat_template { "yes" } else { "no" }
        )
    }
}

/// A GGUF vocabulary: encode text to llama.cpp's ids, decode ids to bytes.
pub struct Tokenizer {
    model: Model,
    pre_name: String,
    pre: Option<pretok::PreInfo>,
    /// vocabulary texts (ids `0..n_vocab`), then interned merge parts (BPE)
    strings: Strings,
    index: Index,
    n_vocab: u32,
    types: Vec<TokenType>,
    attrs: Vec<u16>,
    scores: Vec<f32>,
    merges: bpe::Merges,
    n_merges: usize,
    /// decoded bytes of each token (control tokens as their text)
    pieces: Strings,
    specials: Specials,
    /// BPE: entry whose text is the single byte; SPM: `<0xXX>` entry of each byte
    byte_tokens: [Option<u32>; 256],
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    eog: BTreeSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
    chat_template: Option<String>,
    /// WordPiece settings (model "bert" only).
    wp: Option<wordpiece::WpConfig>,
}

const EOT_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_NAMES: &[&str] = &["<|eom_id|>"];
const FIM_PRE_NAMES: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_NAMES: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_NAMES: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_NAMES: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_NAMES: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_NAMES: &[&str] = &["<|file_sep|>"];
const EOG_NAMES: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Read an integer token id key; `None` when absent.
fn get_id(f: &GgufFile, key: &str) -> Result<Option<i64>, TokenizerError> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            TokenizerError::BadVocab(format!(
                "{key} has type {}, expected an integer",
                v.type_name()
            ))
        }),
    }
}

impl Tokenizer {
    /// Build the tokenizer of a GGUF file.
    pub fn from_gguf(f: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        let model_name = f
            .get_str("tokenizer.ggml.model")?
            .ok_or(TokenizerError::NoTokenizer)?;
        let model = match model_name {
            "gpt2" => Model::Bpe,
            "llama" => Model::Spm,
            "bert" => Model::Wpm,
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let pre_name = f.get_str("tokenizer.ggml.pre")?.unwrap_or("").to_string();
        let pre =
            match model {
                Model::Bpe => Some(pretok::lookup(&pre_name).ok_or_else(|| {
                    TokenizerError::UnsupportedPre {
                        name: pre_name.clone(),
                    }
                })?),
                Model::Spm | Model::Wpm => None,
            };

        let arr = f.get_array("tokenizer.ggml.tokens")?.ok_or_else(|| {
            TokenizerError::BadVocab("tokenizer.ggml.tokens is missing".to_string())
        })?;
        let n = arr.len();
        if n == 0 || n >= i32::MAX as usize {
            return Err(TokenizerError::BadVocab(format!(
                "vocabulary has {n} tokens"
            )));
        }
        let n_vocab = n as u32;
        let total: usize = arr.iter().map(|v| v.as_str().map_or(0, str::len)).sum();
        let mut strings = Strings::with_capacity(n, total + 16);
        let mut index = Index::with_capacity(n + n / 4);
        for (i, v) in arr.iter().enumerate() {
            let s = v.as_str().ok_or_else(|| {
                TokenizerError::BadVocab(format!(
                    "tokenizer.ggml.tokens[{i}] has type {}, expected string",
                    v.type_name()
                ))
            })?;
            let id = if s.is_empty() {
                strings.push(format!("[EMPTY_{i}]").as_bytes())
            } else {
                strings.push(s.as_bytes())
            };
            index.insert(&strings, id);
        }

        let scores = match f.get_f32_array("tokenizer.ggml.scores")? {
            Some(s) if s.len() < n => {
                return Err(TokenizerError::BadVocab(format!(
                    "{} scores for {n} tokens",
                    s.len()
                )))
            }
            Some(s) => s,
            None => Vec::new(),
        };
        let types: Vec<TokenType> = match f.get_i64_array("tokenizer.ggml.token_type")? {
            Some(t) if t.len() < n => {
                return Err(TokenizerError::BadVocab(format!(
                    "{} token types for {n} tokens",
                    t.len()
                )))
            }
            Some(t) => t[..n].iter().map(|&v| TokenType::from_gguf(v)).collect(),
            None => vec![TokenType::Normal; n],
        };
        let mut attrs: Vec<u16> = types.iter().map(|t| t.attr()).collect();

        let (merges, n_merges) = if model == Model::Bpe {
            let lines = f.get_str_array("tokenizer.ggml.merges")?.ok_or_else(|| {
                TokenizerError::BadVocab(
                    "byte-level BPE vocabulary without tokenizer.ggml.merges".to_string(),
                )
            })?;
            (
                bpe::Merges::build(&lines, &mut strings, &mut index),
                lines.len(),
            )
        } else {
            (
                bpe::Merges {
                    map: Default::default(),
                },
                0,
            )
        };

        // flags and special ids with llama.cpp's defaults per model type
        let pre_info = pre;
        let (mut add_bos, mut add_space_prefix, clean_spaces) = match pre_info {
            Some(p) => (p.add_bos, false, p.clean_spaces),
            None => (true, true, false),
        };
        let mut add_eos = false;
        if let Some(v) = f.get_bool("tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = v;
        }
        let in_range = |id: i64| (id >= 0 && id < i64::from(n_vocab)).then_some(id as u32);
        let (def_bos, def_eos, def_unk) = match model {
            Model::Spm => (in_range(1), in_range(2), in_range(0)),
            Model::Bpe => (in_range(11), in_range(11), None),
            Model::Wpm => (None, None, None),
        };
        let read = |key: &str, def: Option<u32>| -> Result<Option<u32>, TokenizerError> {
            Ok(match get_id(f, &format!("tokenizer.ggml.{key}"))? {
                Some(v) => in_range(v).or(def),
                None => def,
            })
        };
        let bos = read("bos_token_id", def_bos)?;
        let eos = read("eos_token_id", def_eos)?;
        let mut eot = read("eot_token_id", None)?;
        let mut eom = read("eom_token_id", None)?;
        let unk = read("unknown_token_id", def_unk)?;
        let pad = read("padding_token_id", None)?;
        let mut fim_pre = read("fim_pre_token_id", None)?;
        let mut fim_suf = read("fim_suf_token_id", None)?;
        let mut fim_mid = read("fim_mid_token_id", None)?;
        let mut fim_pad = read("fim_pad_token_id", None)?;
        let mut fim_rep = read("fim_rep_token_id", None)?;
        let mut fim_sep = read("fim_sep_token_id", None)?;
        fim_pre = read("prefix_token_id", fim_pre)?;
        fim_suf = read("suffix_token_id", fim_suf)?;
        fim_mid = read("middle_token_id", fim_mid)?;
        if let Some(v) = f.get_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = v;
        }
        if let Some(v) = f.get_bool("tokenizer.ggml.add_eos_token")? {
            add_eos = v;
        }

        // tokens recognised by name; a found one is made a control token (BERT: only
        // among the control tokens, as in the phantom-space form a normal token's text
        // is not its HF text)
        let lookup = |name: &str| {
            index.get(&strings, name.as_bytes()).filter(|&id| {
                id < n_vocab && (model != Model::Wpm || types[id as usize] == TokenType::Control)
            })
        };
        let detect = |slot: &mut Option<u32>, names: &[&str], attrs: &mut Vec<u16>| {
            if slot.is_some() {
                return;
            }
            if let Some(id) = names.iter().find_map(|s| lookup(s)) {
                *slot = Some(id);
                attrs[id as usize] |= attr::CONTROL;
            }
        };
        detect(&mut eot, EOT_NAMES, &mut attrs);
        detect(&mut eom, EOM_NAMES, &mut attrs);
        detect(&mut fim_pre, FIM_PRE_NAMES, &mut attrs);
        detect(&mut fim_suf, FIM_SUF_NAMES, &mut attrs);
        detect(&mut fim_mid, FIM_MID_NAMES, &mut attrs);
        detect(&mut fim_pad, FIM_PAD_NAMES, &mut attrs);
        detect(&mut fim_rep, FIM_REP_NAMES, &mut attrs);
        detect(&mut fim_sep, FIM_SEP_NAMES, &mut attrs);

        // control tokens named "unused" are unused
        for id in 0..n_vocab {
            let a = &mut attrs[id as usize];
            if *a & attr::CONTROL != 0
                && *a & attr::UNUSED == 0
                && contains(strings.get(id), b"unused")
            {
                *a |= attr::UNUSED;
            }
        }

        // end-of-generation set
        let mut eog = BTreeSet::new();
        eog.extend(fim_pad);
        eog.extend(fim_rep);
        eog.extend(fim_sep);
        for name in EOG_NAMES {
            if let Some(id) = lookup(name) {
                eog.insert(id);
                attrs[id as usize] |= attr::CONTROL;
            }
        }
        for name in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = lookup(name) {
                attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend(eos);
        eog.extend(eot);
        eog.extend(eom);
        let text_of = |id: u32| strings.get(id);
        let has = |eog: &BTreeSet<u32>, t: &[u8]| eog.iter().any(|&id| text_of(id) == t);
        if (has(&eog, b"<|return|>") && has(&eog, b"<|call|>")
            || has(&eog, b"<|calls|>") && has(&eog, b"<|flush|>"))
            && has(&eog, b"<|end|>")
        {
            if let Some(&end) = eog.iter().find(|&&id| text_of(id) == b"<|end|>") {
                eog.remove(&end);
                attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        if (has(&eog, b"<|tool_response>") || has(&eog, b"<|plamo:eos|>")) && has(&eog, b"</s>") {
            if let Some(&s) = eog.iter().find(|&&id| text_of(id) == b"</s>") {
                eog.remove(&s);
                attrs[s as usize] = attr::NORMAL;
            }
        }

        // special tokens, then per-model strip attributes (Phi-3)
        let special_ids: Vec<u32> = (0..n_vocab)
            .filter(|&id| {
                attrs[id as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        let general_name = f
            .get_str("general.name")?
            .unwrap_or("")
            .to_ascii_lowercase();
        if general_name.contains("phi-3") || general_name.contains("phi3") {
            for &id in &special_ids {
                attrs[id as usize] |= attr::RSTRIP;
            }
            if let Some(id) = lookup("</s>") {
                attrs[id as usize] |= attr::RSTRIP;
            }
            for name in ["<unk>", "<s>", "<|endoftext|>"] {
                if let Some(id) = lookup(name) {
                    attrs[id as usize] &= !attr::RSTRIP;
                }
            }
        }
        let specials = Specials::new(
            special_ids
                .iter()
                .map(|&id| (id, String::from_utf8_lossy(strings.get(id)).into_owned()))
                .collect(),
        );

        // byte tokens
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = match model {
                Model::Wpm => None,
                Model::Bpe => lookup_bytes(&index, &strings, n_vocab, &[b as u8]),
                Model::Spm => {
                    lookup_bytes(&index, &strings, n_vocab, format!("<0x{b:02X}>").as_bytes())
                        .or_else(|| lookup_bytes(&index, &strings, n_vocab, &[b as u8]))
                        .or(unk)
                }
            };
        }

        // decoded piece of every token (special = true)
        let bytemap = ByteMap::get();
        let mut pieces = Strings::with_capacity(n, total + 16);
        let mut buf = Vec::with_capacity(64);
        for id in 0..n_vocab {
            let a = attrs[id as usize];
            let text = strings.get(id);
            buf.clear();
            if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
                buf.extend_from_slice(text);
            } else if a & attr::NORMAL != 0 {
                match model {
                    Model::Spm | Model::Wpm => unescape_spaces(text, &mut buf),
                    Model::Bpe => byte_decode(bytemap, text, &mut buf),
                }
            } else if a & attr::BYTE != 0 {
                buf.push(parse_byte_token(text));
            }
            pieces.push(&buf);
        }

        let chat_template = f.get_str("tokenizer.chat_template")?.map(str::to_string);
        let wp = match model {
            Model::Wpm => Some(wordpiece_config(f, &strings, &attrs, n_vocab)?),
            _ => None,
        };
        Ok(Tokenizer {
            model,
            pre_name,
            pre: pre_info,
            strings,
            index,
            n_vocab,
            types,
            attrs,
            scores,
            merges,
            n_merges,
            pieces,
            specials,
            byte_tokens,
            bos,
            eos,
            eot,
            eom,
            unk,
            pad,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
            chat_template,
            wp,
        })
    }

    /// Encode a prompt rendered by the chat template: control-token texts are parsed,
    /// and BOS is added as the model's flags say unless the template already wrote it
    /// at the start (templates such as Gemma's and Llama 3's emit `bos_token`; adding
    /// another would give two, which llama.cpp only warns about).
    pub fn encode_chat(&self, rendered: &str) -> Result<Vec<u32>, TokenizerError> {
        let template_wrote_bos = self
            .bos
            .and_then(|b| self.token_text(b).ok())
            .is_some_and(|t| !t.is_empty() && rendered.starts_with(t));
        self.encode(rendered, !template_wrote_bos, true)
    }

    /// Encode `text` as llama.cpp's `llama_tokenize` does: `add_special` adds BOS/EOS as
    /// the model's add_bos/add_eos flags say; `parse_special` turns control-token texts
    /// found in `text` into those tokens (user-defined tokens are always recognised).
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        if self.model == Model::Wpm {
            return Ok(self.encode_wpm(text, add_special, parse_special, None)?.0);
        }
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        let frags = if text.is_empty() {
            Vec::new()
        } else {
            self.specials.partition(text, parse_special, &self.attrs)
        };
        if add_special && self.add_bos {
            out.push(
                self.bos
                    .ok_or(TokenizerError::MissingSpecial { which: "bos" })?,
            );
        }
        match self.model {
            // encoded by `encode_wpm` above
            Model::Wpm => {}
            Model::Spm => {
                let ctx = spm::SpmCtx {
                    strings: &self.strings,
                    index: &self.index,
                    n_vocab: self.n_vocab,
                    scores: &self.scores,
                    byte_token: &self.byte_tokens,
                };
                let mut is_prev_special = true;
                let mut buf = Vec::new();
                for frag in frags {
                    match frag {
                        Frag::Text(s, e) => {
                            buf.clear();
                            if self.add_space_prefix && is_prev_special {
                                buf.extend_from_slice("\u{2581}".as_bytes());
                            }
                            escape_spaces(&text.as_bytes()[s..e], &mut buf);
                            ctx.encode(&buf, &mut out);
                            is_prev_special = false;
                        }
                        Frag::Token(id) => {
                            out.push(id);
                            is_prev_special = true;
                        }
                    }
                }
            }
            Model::Bpe => {
                let pre = self.pre.expect("BPE tokenizers have a pre-tokenizer");
                let ctx = bpe::BpeCtx {
                    strings: &self.strings,
                    index: &self.index,
                    n_vocab: self.n_vocab,
                    merges: &self.merges,
                    ignore_merges: pre.ignore_merges,
                    single_byte: &self.byte_tokens,
                };
                let bytemap = ByteMap::get();
                let mut word = Vec::new();
                for frag in frags {
                    match frag {
                        Frag::Text(s, e) => {
                            let t = &text[s..e];
                            for r in pretok::split(pre.kind, t) {
                                word.clear();
                                for &b in &t.as_bytes()[r] {
                                    let mut tmp = [0u8; 4];
                                    word.extend_from_slice(
                                        bytemap.char_of(b).encode_utf8(&mut tmp).as_bytes(),
                                    );
                                }
                                ctx.encode_word(&word, &mut out);
                            }
                        }
                        Frag::Token(id) => out.push(id),
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.push(
                self.eos
                    .ok_or(TokenizerError::MissingSpecial { which: "eos" })?,
            );
        }
        Ok(out)
    }

    /// Encode `text` for a sentence embedding as sentence-transformers does: special
    /// token texts in `text` are recognised, `[CLS]` … `[SEP]` are added, and the
    /// content is truncated so the whole fits in [`max_length`](Self::max_length)
    /// (the flag says whether it was). A vocabulary other than BERT's gives
    /// `encode(text, true, true)` untruncated.
    pub fn encode_for_embedding(&self, text: &str) -> Result<(Vec<u32>, bool), TokenizerError> {
        match &self.wp {
            Some(wp) => self.encode_wpm(text, true, true, wp.max_length),
            None => Ok((self.encode(text, true, true)?, false)),
        }
    }

    /// The model's maximum sequence length in tokens, special tokens included
    /// (`alc.wordpiece.max_length`); `None` when the package does not say.
    pub fn max_length(&self) -> Option<usize> {
        self.wp.as_ref().and_then(|w| w.max_length)
    }

    /// WordPiece encoding: `[CLS]` … `[SEP]` with `add_special`, the content cut to
    /// `max_length` minus the special tokens; returns whether it was cut.
    fn encode_wpm(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
        max_length: Option<usize>,
    ) -> Result<(Vec<u32>, bool), TokenizerError> {
        let cfg = self.wp.as_ref().ok_or_else(|| {
            TokenizerError::BadVocab("BERT vocabulary without WordPiece settings".to_string())
        })?;
        let ctx = wordpiece::WpCtx {
            strings: &self.strings,
            index: &self.index,
            attrs: &self.attrs,
            n_vocab: self.n_vocab,
            cfg,
        };
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special {
            out.push(cfg.cls);
        }
        if !text.is_empty() {
            for frag in self.specials.partition(text, parse_special, &self.attrs) {
                match frag {
                    Frag::Text(s, e) => ctx.encode_text(&text[s..e], &mut out),
                    Frag::Token(id) => out.push(id),
                }
            }
        }
        let mut truncated = false;
        if let Some(max) = max_length {
            let n_special = if add_special { 2 } else { 0 };
            let keep = usize::from(add_special) + max.saturating_sub(n_special);
            if out.len() > keep {
                out.truncate(keep);
                truncated = true;
            }
        }
        if add_special {
            out.push(cfg.sep);
        }
        Ok((out, truncated))
    }

    fn check(&self, id: u32) -> Result<usize, TokenizerError> {
        if id < self.n_vocab {
            Ok(id as usize)
        } else {
            Err(TokenizerError::IdOutOfRange {
                id,
                n_vocab: self.n_vocab as usize,
            })
        }
    }

    /// Decoded bytes of one token, control tokens rendered as their text
    /// (llama.cpp `token_to_piece(special = true)`); empty for an out-of-range id.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        if id < self.n_vocab {
            self.pieces.get(id)
        } else {
            &[]
        }
    }

    /// Decoded bytes of one token; with `special` false, control and unknown tokens
    /// render as nothing (user-defined tokens always render).
    pub fn token_piece(&self, id: u32, special: bool) -> Result<&[u8], TokenizerError> {
        let i = self.check(id)?;
        if !special && self.attrs[i] & (attr::CONTROL | attr::UNKNOWN) != 0 {
            return Ok(&[]);
        }
        Ok(self.pieces.get(id))
    }

    /// Detokenize as llama.cpp's `llama_detokenize(remove_special = skip_special,
    /// unparse_special = !skip_special)`: with `skip_special` a leading BOS / trailing
    /// EOS the model adds are dropped and control tokens render as nothing. Invalid
    /// UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids, skip_special)?).into_owned())
    }

    /// [`decode`](Self::decode) without the UTF-8 conversion.
    ///
    /// BERT vocabularies decode as Hugging Face's WordPiece decoder does (pieces joined
    /// by spaces, `##` continuations glued on, no space before `.` `?` `!` `,`), and
    /// `skip_special` drops every control token.
    pub fn decode_bytes(&self, ids: &[u32], skip_special: bool) -> Result<Vec<u8>, TokenizerError> {
        if self.model == Model::Wpm {
            let mut pieces = Vec::with_capacity(ids.len());
            for &id in ids {
                let a = self.attrs[self.check(id)?];
                if skip_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                    continue;
                }
                pieces.push(wordpiece::hf_piece(self.strings.get(id), a));
            }
            let mut out = Vec::with_capacity(ids.len() * 6);
            wordpiece::decode_into(pieces.into_iter(), &mut out);
            return Ok(out);
        }
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if skip_special && self.add_bos && !ids.is_empty() && Some(ids[0]) == self.bos {
            remove_space = false;
            ids = &ids[1..];
        }
        if skip_special && self.add_eos && !ids.is_empty() && Some(ids[ids.len() - 1]) == self.eos {
            ids = &ids[..ids.len() - 1];
        }
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let mut p = self.token_piece(id, !skip_special)?;
            if remove_space {
                if let Some(rest) = p.strip_prefix(b" ") {
                    p = rest;
                }
                remove_space = false;
            }
            out.extend_from_slice(p);
        }
        if self.clean_spaces {
            out = clean_up_spaces(&out);
        }
        Ok(out)
    }

    /// A decoder for streamed generation.
    pub fn stream_decoder(&self, skip_special: bool) -> StreamDecoder<'_> {
        StreamDecoder::new(self, skip_special)
    }

    /// Heap bytes this tokenizer owns (see [`alc_core::heap_alloc_bytes`]); memory
    /// estimates (`alc fit`) add it to the model's.
    pub fn heap_bytes(&self) -> u64 {
        use alc_core::{heap_alloc_bytes as a, heap_vec_bytes};
        self.strings.heap_bytes()
            + self.index.heap_bytes()
            + self.pieces.heap_bytes()
            + self.merges.heap_bytes()
            + self.specials.heap_bytes()
            + heap_vec_bytes::<TokenType>(self.types.capacity())
            + heap_vec_bytes::<u16>(self.attrs.capacity())
            + heap_vec_bytes::<f32>(self.scores.capacity())
            // B-tree nodes hold up to 11 keys each.
            + (self.eog.len().div_ceil(11) as u64) * a(11 * 4 + 16)
            + a(self.pre_name.capacity())
            + self.chat_template.as_ref().map_or(0, |t| a(t.capacity()))
        // the WordPiece settings are plain values; its character table is static
    }

    pub fn vocab_size(&self) -> usize {
        self.n_vocab as usize
    }
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// End-of-turn token (from GGUF, else recognised by name, e.g. `<|im_end|>`).
    ///
    /// When several names match, llama.cpp takes whichever its hash map yields first;
    /// this takes the first in its list (`<|eot_id|>`, `<|im_end|>`, ...). So for
    /// SmolLM2 this is `<|im_end|>` (2) where llama.cpp reports `<|endoftext|>` (0).
    /// Both are end-of-generation tokens either way ([`is_eog`](Self::is_eog)).
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    pub fn eom(&self) -> Option<u32> {
        self.eom
    }
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Whether generating `id` ends generation (llama.cpp `llama_vocab_is_eog`).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }
    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        self.eog.iter().copied().collect()
    }
    /// Token type declared in the GGUF file.
    pub fn token_type(&self, id: u32) -> Result<TokenType, TokenizerError> {
        Ok(self.types[self.check(id)?])
    }
    /// Whether llama.cpp treats `id` as a control token (declared, or by its name).
    pub fn is_control(&self, id: u32) -> bool {
        id < self.n_vocab && self.attrs[id as usize] & attr::CONTROL != 0
    }
    /// Raw vocabulary text of a token (`Ġ`, `▁`, `<0x0A>` as stored).
    pub fn token_text(&self, id: u32) -> Result<&str, TokenizerError> {
        let i = self.check(id)?;
        Ok(std::str::from_utf8(self.strings.get(i as u32)).unwrap_or(""))
    }
    /// Id of the vocabulary entry with this raw text.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.index
            .get(&self.strings, text.as_bytes())
            .filter(|&id| id < self.n_vocab)
    }
    /// "bpe (gpt2)", "spm (llama)" or "wpm (bert)".
    pub fn kind(&self) -> &'static str {
        match self.model {
            Model::Bpe => "bpe (gpt2)",
            Model::Spm => "spm (llama)",
            Model::Wpm => "wpm (bert)",
        }
    }
    /// GGUF pre-tokenizer name (`tokenizer.ggml.pre`).
    pub fn pre(&self) -> &str {
        &self.pre_name
    }
    /// Control, user-defined and unknown tokens, by id.
    pub fn special_tokens(&self) -> Vec<(u32, &str)> {
        let mut v: Vec<(u32, &str)> = self
            .specials
            .list
            .iter()
            .map(|(id, s)| (*id, s.as_str()))
            .collect();
        v.sort_by_key(|t| t.0);
        v
    }
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
    /// Jinja source of `tokenizer.chat_template`.
    pub fn chat_template_source(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
    /// The model's chat template with its BOS/EOS texts.
    pub fn chat_template(&self) -> Result<ChatTemplate, TokenizerError> {
        let src = self
            .chat_template
            .as_deref()
            .ok_or(TokenizerError::NoChatTemplate)?;
        let text = |id: Option<u32>| {
            id.and_then(|i| self.token_text(i).ok())
                .unwrap_or("")
                .to_string()
        };
        ChatTemplate::new(src, &text(self.bos), &text(self.eos))
    }

    /// Summary for inspection tools.
    pub fn vocab_spec_summary(&self) -> VocabSummary {
        let named = |id: Option<u32>| id.map(|i| (i, self.token_text(i).unwrap_or("").to_string()));
        VocabSummary {
            kind: self.kind(),
            pre: self.pre_name.clone(),
            vocab_size: self.vocab_size(),
            n_merges: self.n_merges,
            bos: named(self.bos),
            eos: named(self.eos),
            eot: named(self.eot),
            eog: self
                .eog
                .iter()
                .map(|&i| (i, self.token_text(i).unwrap_or("").to_string()))
                .collect(),
            add_bos: self.add_bos,
            add_eos: self.add_eos,
            add_space_prefix: self.add_space_prefix,
            n_special: self.specials.list.len(),
            has_chat_template: self.chat_template.is_some(),
        }
    }
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<Tokenizer>();
    shareable::<ChatTemplate>();
};

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokenizer")
            .field("kind", &self.kind())
            .field("pre", &self.pre_name)
            .field("vocab_size", &self.n_vocab)
            .finish_non_exhaustive()
    }
}

/// The `alc.wordpiece.*` settings and the special ids of a BERT vocabulary (FORMAT.md,
/// "WordPiece vocabularies (BERT)"). Keys llama.cpp's converter does not write fall
/// back to HF's BertNormalizer defaults, or llama.cpp's `tokenizer.ggml.normalizer.*`.
fn wordpiece_config(
    f: &GgufFile,
    strings: &Strings,
    attrs: &[u16],
    n_vocab: u32,
) -> Result<wordpiece::WpConfig, TokenizerError> {
    let id = |key: &'static str, what: &'static str| -> Result<u32, TokenizerError> {
        let v = get_id(f, key)?;
        match v {
            Some(x) if x >= 0 && x < i64::from(n_vocab) => Ok(x as u32),
            _ => Err(TokenizerError::MissingId {
                key,
                what,
                value: v,
                n_vocab: n_vocab as usize,
            }),
        }
    };
    let cls = if f.get("tokenizer.ggml.bos_token_id").is_none()
        && f.get("tokenizer.ggml.cls_token_id").is_some()
    {
        id("tokenizer.ggml.cls_token_id", "the [CLS] id")?
    } else {
        id("tokenizer.ggml.bos_token_id", "the [CLS] id")?
    };
    let sep = id("tokenizer.ggml.seperator_token_id", "the [SEP] id")?;
    let unk = id("tokenizer.ggml.unknown_token_id", "the [UNK] id")?;
    let flag = |key: &str, alt: Option<&str>| -> Result<Option<bool>, TokenizerError> {
        if let Some(v) = f.get_bool(key)? {
            return Ok(Some(v));
        }
        Ok(match alt {
            Some(k) => f.get_bool(k)?,
            None => None,
        })
    };
    let lowercase = flag(
        "alc.wordpiece.lowercase",
        Some("tokenizer.ggml.normalizer.lowercase"),
    )?
    .unwrap_or(true);
    let strip_accents = flag(
        "alc.wordpiece.strip_accents",
        Some("tokenizer.ggml.normalizer.strip_accents"),
    )?
    .unwrap_or(lowercase);
    let handle_chinese_chars = flag("alc.wordpiece.handle_chinese_chars", None)?.unwrap_or(true);
    let clean_text = flag("alc.wordpiece.clean_text", None)?.unwrap_or(true);
    let count = |key: &str| -> Result<Option<usize>, TokenizerError> {
        match f.get_u64(key)? {
            None => Ok(None),
            Some(v) if v <= u64::from(u32::MAX) => Ok(Some(v as usize)),
            Some(v) => Err(TokenizerError::BadVocab(format!(
                "{key} is {v}, above 2^32"
            ))),
        }
    };
    let max_input_chars_per_word = count("alc.wordpiece.max_input_chars_per_word")?.unwrap_or(100);
    let max_length = count("alc.wordpiece.max_length")?;
    if let Some(p) = f.get_str("alc.wordpiece.continuing_subword_prefix")? {
        if p != "##" {
            return Err(TokenizerError::BadVocab(format!(
                "alc.wordpiece.continuing_subword_prefix is {p:?}; the phantom-space vocabulary form supports only \"##\""
            )));
        }
    }
    // longest HF-form vocabulary text: "▁x" is x, a continuation "y" is "##y"
    let mut max_piece_bytes = 0;
    for id in 0..n_vocab {
        let (text, cont) = wordpiece::hf_piece(strings.get(id), attrs[id as usize]);
        max_piece_bytes = max_piece_bytes.max(text.len() + if cont { 2 } else { 0 });
    }
    Ok(wordpiece::WpConfig {
        lowercase,
        strip_accents,
        handle_chinese_chars,
        clean_text,
        max_input_chars_per_word,
        max_length,
        cls,
        sep,
        unk,
        max_piece_bytes,
    })
}

fn lookup_bytes(index: &Index, strings: &Strings, n_vocab: u32, text: &[u8]) -> Option<u32> {
    index.get(strings, text).filter(|&id| id < n_vocab)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const SPACE_MARK: &[u8] = "\u{2581}".as_bytes();

fn escape_spaces(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        if b == b' ' {
            out.extend_from_slice(SPACE_MARK);
        } else {
            out.push(b);
        }
    }
}

fn unescape_spaces(text: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(SPACE_MARK) {
            out.push(b' ');
            i += SPACE_MARK.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
}

/// Byte-level BPE token text → bytes. A character outside the byte alphabet renders
/// as llama.cpp renders it: `[UNK_BYTE_0x<utf8 hex><token text>]`.
fn byte_decode(map: &ByteMap, text: &[u8], out: &mut Vec<u8>) {
    let s = String::from_utf8_lossy(text);
    for c in s.chars() {
        match map.byte_of(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut tmp = [0u8; 4];
                for b in c.encode_utf8(&mut tmp).as_bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text);
                out.push(b']');
            }
        }
    }
}

/// `<0xXX>` → the byte (0 when malformed, as `strtol` gives).
fn parse_byte_token(text: &[u8]) -> u8 {
    text.get(3..5)
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .unwrap_or(0)
}

/// llama.cpp's `clean_spaces` detokenizer passes (BPE vocabularies that ask for it),
/// done in place with the same index arithmetic so odd inputs agree too.
fn clean_up_spaces(t: &[u8]) -> Vec<u8> {
    let mut t = t.to_vec();
    // 1: " ?", " !", " .", " ," lose the space
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
    // 2: " ' " → "'"
    let n = t.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0;
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    t.truncate(total);
    // 3: " 's", " 'm", " 're", " 've" lose the space
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = t[i + 1];
            if matches!(x1, b's' | b'm') {
                total -= 1;
            } else if !matches!(x1, b't' | b'd') && i + 2 < n {
                let x2 = t[i + 2];
                if (x1 == b'r' || x1 == b'v') && x2 == b'e' {
                    total -= 1;
                }
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
    t
}
