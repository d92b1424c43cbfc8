//! Sentence embeddings (`alc embed`): a BERT package and its WordPiece tokenizer, run
//! by one of two runtimes ([`EmbedRuntime`]): alc's native CPU backend, or ONNX
//! Runtime (`alc-ort`) for packages that hold an ONNX graph (`alc.runtime =
//! "onnxruntime"`, the graph in the tensor [`ONNX_TENSOR`]) and for plain `.onnx`
//! files opened with a tokenizer. Texts are tokenised, cut to the model's maximum length (keeping the
//! closing [SEP], as sentence-transformers does) and run in batches of whole
//! sentences ([`Embedder::embed`] batches automatically: up to
//! [`MAX_BATCH_TOKENS`] tokens per forward pass).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alc_format::GgufFile;
use alc_kernels::cpu::CpuBackend;
use alc_kernels::Backend;
use alc_models::bert::{pool, pooling_of};
use alc_models::{BertModel, ModelError, Pooling};
use alc_ort::OrtEncoder;
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

/// Package metadata key naming the runtime; absent or "native" runs alc's engine.
pub const RUNTIME_KEY: &str = "alc.runtime";
/// [`RUNTIME_KEY`] value of packages that hold an ONNX graph.
pub const RUNTIME_ONNX: &str = "onnxruntime";
/// Tensor (type I8, one dimension) holding the ONNX model bytes of such a package.
pub const ONNX_TENSOR: &str = "onnx.model";

/// What computes the token rows.
pub enum EmbedRuntime {
    Native {
        model: Box<BertModel>,
        backend: CpuBackend,
    },
    Onnx {
        enc: OrtEncoder,
        pooling: Pooling,
        normalize: bool,
    },
}

/// A loaded embedding package.
pub struct Embedder {
    runtime: EmbedRuntime,
    /// What identifies an ONNX model's contents (computed at open; the native
    /// runtime's is computed on demand from its file).
    onnx_identity: String,
    tok: Tokenizer,
    /// Vector width.
    dim: usize,
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
        let runtime = file
            .get_str(RUNTIME_KEY)
            .map_err(ModelError::from)?
            .unwrap_or("native")
            .to_string();
        match runtime.as_str() {
            "native" => Self::native(file, tok, threads, t),
            RUNTIME_ONNX => {
                let info = file.tensor(ONNX_TENSOR).ok_or_else(|| {
                    EngineError::BadRequest(format!(
                        "{} says {RUNTIME_KEY} = {RUNTIME_ONNX} but holds no '{ONNX_TENSOR}' tensor; rebuild it with `alc compile MODEL.onnx`",
                        file.path().display()
                    ))
                })?;
                let bytes = file.tensor_data(info);
                let enc = OrtEncoder::from_bytes(bytes, threads)?;
                let (pooling, normalize) = pooling_of(&file)?;
                let id = crate::classify::package_identity(&file);
                Self::onnx(enc, tok, pooling, normalize, id, t)
            }
            other => Err(EngineError::BadRequest(format!(
                "{} asks for runtime '{other}' ({RUNTIME_KEY}); alc runs 'native' and '{RUNTIME_ONNX}'",
                file.path().display()
            ))),
        }
    }

    /// A plain ONNX encoder with its tokenizer and pooling (a GGUF holding the
    /// `bert` vocabulary and `bert.pooling_type` / `alc.embedding.normalize`, e.g. one
    /// made in memory from a Hugging Face directory).
    pub fn open_onnx(
        onnx: &Path,
        tokenizer: &GgufFile,
        threads: usize,
    ) -> Result<Embedder, EngineError> {
        let t = Instant::now();
        let tok = Tokenizer::from_gguf(tokenizer)?;
        let bytes = std::fs::read(onnx)
            .map_err(|e| EngineError::BadRequest(format!("cannot read {}: {e}", onnx.display())))?;
        let enc = OrtEncoder::from_bytes(&bytes, threads)?;
        let (pooling, normalize) = pooling_of(tokenizer)?;
        let id = format!(
            "onnx:{}:{}",
            crate::classify::sha256_hex(&bytes),
            crate::classify::package_identity(tokenizer)
        );
        Self::onnx(enc, tok, pooling, normalize, id, t)
    }

    fn native(
        file: Arc<GgufFile>,
        tok: Tokenizer,
        threads: usize,
        t: Instant,
    ) -> Result<Embedder, EngineError> {
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
            onnx_identity: String::new(),
            dim: model.hp.n_embd,
            runtime: EmbedRuntime::Native {
                model: Box::new(model),
                backend,
            },
            tok,
            max_tokens,
            load_time: t.elapsed(),
        })
    }

    fn onnx(
        enc: OrtEncoder,
        tok: Tokenizer,
        pooling: Pooling,
        normalize: bool,
        identity: String,
        t: Instant,
    ) -> Result<Embedder, EngineError> {
        // ONNX graphs carry no position count we can trust; the tokenizer's
        // max_length (sentence-transformers' max_seq_length) bounds the input.
        let max_tokens = tok.max_length().unwrap_or(512).max(2);
        Ok(Embedder {
            onnx_identity: identity,
            dim: enc.hidden(),
            runtime: EmbedRuntime::Onnx {
                enc,
                pooling,
                normalize,
            },
            tok,
            max_tokens,
            load_time: t.elapsed(),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// A string that identifies the model's contents
    /// ([`crate::classify::package_identity`]; for a plain ONNX file the sha256 of its
    /// bytes and the tokenizer's identity).
    pub fn identity(&self) -> String {
        match &self.runtime {
            EmbedRuntime::Native { model, .. } => crate::classify::package_identity(&model.file),
            EmbedRuntime::Onnx { .. } => self.onnx_identity.clone(),
        }
    }

    pub fn runtime(&self) -> &EmbedRuntime {
        &self.runtime
    }

    /// (pooling, L2-normalised) of the embeddings.
    pub fn pooling(&self) -> (Pooling, bool) {
        match &self.runtime {
            EmbedRuntime::Native { model, .. } => (model.hp.pooling, model.hp.normalize),
            EmbedRuntime::Onnx {
                pooling, normalize, ..
            } => (*pooling, *normalize),
        }
    }

    pub fn backend_name(&self) -> String {
        match &self.runtime {
            EmbedRuntime::Native { backend, .. } => backend.name(),
            EmbedRuntime::Onnx { .. } => format!(
                "onnxruntime {}",
                alc_ort::version().unwrap_or("(unknown version)")
            ),
        }
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
    /// A text that tokenises to nothing but [CLS] and [SEP] (empty, only whitespace
    /// or control characters) is an error naming it (1-based).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Embedding>, EngineError> {
        let mut toks = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let (ids, cut) = self.tokenize(t)?;
            if ids.len() <= 2 {
                return Err(EngineError::BadInput {
                    at: format!("text {}", i + 1),
                    why: format!(
                        "{:?} is empty or only whitespace / control characters; there is nothing to embed",
                        t.chars().take(40).collect::<String>()
                    ),
                });
            }
            toks.push((ids, cut));
        }
        self.embed_ids(&toks)
    }

    /// Embeddings of tokenised sentences (ids with their special tokens, and the
    /// truncation flag carried into the result).
    /// An empty id list is an error (both runtimes: pooling needs a row).
    pub fn embed_ids(&self, toks: &[(Vec<u32>, bool)]) -> Result<Vec<Embedding>, EngineError> {
        if let Some(i) = toks.iter().position(|(ids, _)| ids.is_empty()) {
            return Err(EngineError::BadInput {
                at: format!("sentence {}", i + 1),
                why: "has no token ids (not even [CLS] and [SEP]); there is nothing to embed"
                    .into(),
            });
        }
        let mut out = Vec::with_capacity(toks.len());
        let mut i = 0;
        while i < toks.len() {
            let mut j = i;
            let mut n = 0;
            // ONNX Runtime pads every sentence to the longest: count padded rows.
            let padded = matches!(self.runtime, EmbedRuntime::Onnx { .. });
            let mut longest = 0;
            while j < toks.len() {
                let len = toks[j].0.len();
                let rows = if padded {
                    longest.max(len) * (j - i + 1)
                } else {
                    n + len
                };
                if j > i && rows > MAX_BATCH_TOKENS {
                    break;
                }
                n += len;
                longest = longest.max(len);
                j += 1;
            }
            let batch: Vec<&[u32]> = toks[i..j].iter().map(|(ids, _)| ids.as_slice()).collect();
            let vecs = self.forward(&batch)?;
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

    /// One embedding per sentence of token ids.
    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EngineError> {
        match &self.runtime {
            EmbedRuntime::Native { model, backend } => Ok(model.embed(backend, batch)?),
            EmbedRuntime::Onnx {
                enc,
                pooling,
                normalize,
            } => {
                let rows = enc.run(batch)?;
                Ok(rows
                    .iter()
                    .map(|r| pool(r, self.dim, *pooling, *normalize))
                    .collect())
            }
        }
    }
}
