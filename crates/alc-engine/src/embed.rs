//! Sentence embeddings (`alc embed`): a BERT package, its WordPiece tokenizer and the
//! CPU backend. Texts are tokenised, cut to the model's maximum length (keeping the
//! closing [SEP], as sentence-transformers does) and run in batches of whole
//! sentences ([`Embedder::embed`] batches automatically: up to
//! [`MAX_BATCH_TOKENS`] tokens per forward pass).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alc_format::GgufFile;
use alc_kernels::cpu::CpuBackend;
use alc_kernels::Backend;
use alc_models::{BertModel, ModelError};
use alc_tokenizer::Tokenizer;

use crate::EngineError;

/// Token rows per forward pass: bounds the activations (about 40 KB per token for
/// MiniLM) while giving the matmuls enough rows to run at full speed.
pub const MAX_BATCH_TOKENS: usize = 2048;

/// One sentence's embedding.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Embedding {
    pub vector: Vec<f32>,
    /// Tokens the model saw (with [CLS] and [SEP]).
    pub n_tokens: usize,
    /// The text was longer than the model's maximum and was cut.
    pub truncated: bool,
}

/// A loaded embedding package.
pub struct Embedder {
    model: BertModel,
    tok: Tokenizer,
    backend: CpuBackend,
    /// Longest input in tokens (the tokenizer's max length, at most the positions).
    pub max_tokens: usize,
    pub load_time: Duration,
}

impl Embedder {
    pub fn open(path: impl AsRef<Path>, threads: usize) -> Result<Embedder, EngineError> {
        let f = GgufFile::open(path.as_ref()).map_err(ModelError::from)?;
        Self::open_gguf(f, threads)
    }

    /// An embedding package already in memory (e.g. a decrypted sealed package).
    pub fn open_gguf(file: GgufFile, threads: usize) -> Result<Embedder, EngineError> {
        let t = Instant::now();
        let file = Arc::new(file);
        let arch = file
            .get_str("general.architecture")
            .map_err(ModelError::from)?
            .unwrap_or("")
            .to_string();
        if arch != "bert" {
            return Err(EngineError::BadRequest(format!(
                "{} is a '{arch}' model, not an embedding model (bert); use `alc run` or `alc chat` for language models",
                file.path().display()
            )));
        }
        let tok = Tokenizer::from_gguf(&file)?;
        let mut model = BertModel::from_gguf(file.clone())?;
        let backend = CpuBackend::new(threads.max(1));
        for t in model.weight_types() {
            if !backend.supports(t) {
                return Err(ModelError::UnsupportedType {
                    path: file.path().display().to_string(),
                    tensor: "(any)".into(),
                    dtype: t,
                    supported: alc_core::executed_type_list(),
                }
                .into());
            }
        }
        model.pack_weights(&backend);
        let max_tokens = tok
            .max_length()
            .unwrap_or(model.hp.n_pos)
            .clamp(2, model.hp.n_pos);
        Ok(Embedder {
            model,
            tok,
            backend,
            max_tokens,
            load_time: t.elapsed(),
        })
    }

    pub fn dim(&self) -> usize {
        self.model.hp.n_embd
    }

    pub fn model(&self) -> &BertModel {
        &self.model
    }

    pub fn backend_name(&self) -> String {
        self.backend.name()
    }

    /// Token ids of `text` as the model sees them, and whether it was cut: the
    /// tokenizer's [`Tokenizer::encode_for_embedding`] (special tokens written in the
    /// text parsed as the Hugging Face tokenizer does, cut to the vocabulary's
    /// `max_length`); a vocabulary that does not record one (llama.cpp's own BERT
    /// files) is cut here to the model's positions, keeping the closing [SEP].
    pub fn tokenize(&self, text: &str) -> Result<(Vec<u32>, bool), EngineError> {
        let (mut ids, mut cut) = self.tok.encode_for_embedding(text)?;
        if ids.len() > self.max_tokens {
            let last = *ids.last().expect("longer than max");
            ids.truncate(self.max_tokens - 1);
            ids.push(last);
            cut = true;
        }
        Ok((ids, cut))
    }

    /// Embeddings of `texts`, in order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, EngineError> {
        let toks = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.embed_ids(&toks)
    }

    /// Embeddings of tokenised sentences (ids with their special tokens, and the
    /// truncation flag carried into the result).
    pub fn embed_ids(&self, toks: &[(Vec<u32>, bool)]) -> Result<Vec<Embedding>, EngineError> {
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        while i < toks.len() {
            let mut j = i;
            let mut n = 0;
            while j < toks.len() && (j == i || n + toks[j].0.len() <= MAX_BATCH_TOKENS) {
                n += toks[j].0.len();
                j += 1;
            }
            let batch: Vec<&[u32]> = toks[i..j].iter().map(|(ids, _)| ids.as_slice()).collect();
            let vecs = self.model.embed(&self.backend, &batch)?;
            for (v, (ids, cut)) in vecs.into_iter().zip(&toks[i..j]) {
                out.push(Embedding {
                    vector: v,
                    n_tokens: ids.len(),
                    truncated: *cut,
                });
            }
            i = j;
        }
        Ok(out)
    }
}
