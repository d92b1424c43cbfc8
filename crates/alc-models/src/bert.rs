//! BERT sentence encoders (GGUF `general.architecture = "bert"`, llama.cpp's tensor
//! names): token + position + token-type embeddings, post-norm encoder layers with
//! bidirectional attention, then pooling (mean or CLS, `bert.pooling_type`) and L2
//! normalisation (`alc.embedding.normalize`, default on). Sentence-transformers models
//! such as all-MiniLM-L6-v2 run this way.
//!
//! A batch of sentences is run as one stack of token rows: every matmul sees all
//! rows at once (no padding), attention and pooling stay within each sentence.
//! Matrices go through the [`Backend`] (and are repacked for it at load); the
//! layer norms, GELU (erf) and the short bidirectional attention are f32 here.

use std::sync::Arc;

use alc_format::{GgufFile, TensorInfo};
use alc_kernels::{Backend, Weight};

use crate::pack::Mat;
use crate::{add_bias_rows as add_bias, tensor, to_f32, ModelError};

/// How token vectors become one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the sentence's tokens (sentence-transformers' `pooling_mode_mean_tokens`).
    Mean,
    /// The first token ([CLS]).
    Cls,
}

impl Pooling {
    /// llama.cpp's `{arch}.pooling_type` values: 1 mean, 2 cls.
    pub fn from_id(id: u64) -> Option<Pooling> {
        match id {
            1 => Some(Pooling::Mean),
            2 => Some(Pooling::Cls),
            _ => None,
        }
    }
    pub fn id(self) -> u32 {
        match self {
            Pooling::Mean => 1,
            Pooling::Cls => 2,
        }
    }
}

/// Hyperparameters of a BERT encoder.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BertParams {
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub head_dim: usize,
    /// Positions the model was trained for (`bert.context_length`).
    pub n_pos: usize,
    /// Token types (`tokenizer.ggml.token_type_count`, default 2).
    pub n_type: usize,
    pub eps: f32,
    pub pooling: Pooling,
    pub normalize: bool,
}

struct Layer {
    wq: Mat,
    wk: Mat,
    wv: Mat,
    wo: Mat,
    w_up: Mat,
    w_down: Mat,
    bq: Vec<f32>,
    bk: Vec<f32>,
    bv: Vec<f32>,
    bo: Vec<f32>,
    b_up: Vec<f32>,
    b_down: Vec<f32>,
    attn_norm: (Vec<f32>, Vec<f32>),
    out_norm: (Vec<f32>, Vec<f32>),
}

/// A loaded BERT encoder.
pub struct BertModel {
    pub file: Arc<GgufFile>,
    pub hp: BertParams,
    tok_embd: TensorInfo,
    /// `[n_pos][n_embd]` and `[n_type][n_embd]`, f32.
    pos_embd: Vec<f32>,
    type_embd: Vec<f32>,
    embd_norm: (Vec<f32>, Vec<f32>),
    layers: Vec<Layer>,
    packed: Option<memmap2::MmapMut>,
}

impl std::fmt::Debug for BertModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertModel")
            .field("layers", &self.layers.len())
            .field("n_embd", &self.hp.n_embd)
            .finish()
    }
}

pub use alc_kernels::encoder::{erf_ref as erf, gelu_erf_ref as gelu_erf};

/// Pooling and normalisation an embedding package records (`bert.pooling_type`,
/// default mean; `alc.embedding.normalize`, default on); the same for every runtime.
pub fn pooling_of(f: &GgufFile) -> Result<(Pooling, bool), ModelError> {
    let id = f.get_u64("bert.pooling_type")?.unwrap_or(1);
    let pooling = Pooling::from_id(id).ok_or_else(|| ModelError::BadHparam {
        path: f.path().display().to_string(),
        key: "bert.pooling_type".into(),
        value: id.to_string(),
        why: "alc pools by mean (1) or CLS (2)".into(),
    })?;
    let normalize = f.get_bool("alc.embedding.normalize")?.unwrap_or(true);
    Ok((pooling, normalize))
}

/// One sentence's embedding from its token rows (`rows.len() / d` of them, at least
/// one): the mean (in f64) or the [CLS] row, then L2-normalised when asked.
pub fn pool(rows: &[f32], d: usize, pooling: Pooling, normalize: bool) -> Vec<f32> {
    let mut e = match pooling {
        Pooling::Cls => rows[..d].to_vec(),
        Pooling::Mean => {
            let n = rows.len() / d;
            let mut acc = vec![0f64; d];
            for r in rows.chunks_exact(d) {
                for (a, &b) in acc.iter_mut().zip(r) {
                    *a += b as f64;
                }
            }
            acc.iter().map(|&a| (a / n as f64) as f32).collect()
        }
    };
    if normalize {
        let norm = e
            .iter()
            .map(|&v| (v as f64) * (v as f64))
            .sum::<f64>()
            .sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        for v in &mut e {
            *v = (*v as f64 * inv) as f32;
        }
    }
    e
}

impl BertModel {
    /// Read hyperparameters and check every tensor's presence, shape and type.
    pub fn from_gguf(f: Arc<GgufFile>) -> Result<BertModel, ModelError> {
        let path = f.path().display().to_string();
        let arch = f.req_str("general.architecture")?.to_string();
        if arch != "bert" {
            return Err(ModelError::UnknownArch {
                path,
                arch,
                supported: "bert".into(),
            });
        }
        let u = |k: &str| -> Result<usize, ModelError> { Ok(f.req_u64(k)? as usize) };
        let n_layer = u("bert.block_count")?;
        let n_embd = u("bert.embedding_length")?;
        let n_head = u("bert.attention.head_count")?;
        let n_ff = u("bert.feed_forward_length")?;
        let n_pos = u("bert.context_length")?;
        let n_type = f.get_u64("tokenizer.ggml.token_type_count")?.unwrap_or(2) as usize;
        let eps = f
            .get_f32("bert.attention.layer_norm_epsilon")?
            .unwrap_or(1e-12);
        let bad = |key: &str, value: String, why: &str| ModelError::BadHparam {
            path: path.clone(),
            key: key.into(),
            value,
            why: why.into(),
        };
        for (key, v, max) in [
            ("bert.block_count", n_layer, 1024),
            ("bert.embedding_length", n_embd, 1 << 16),
            ("bert.attention.head_count", n_head, 1024),
            ("bert.feed_forward_length", n_ff, 1 << 18),
            ("bert.context_length", n_pos, 1 << 16),
            ("tokenizer.ggml.token_type_count", n_type, 1024),
        ] {
            if v == 0 || v > max {
                return Err(bad(key, v.to_string(), &format!("must be in 1..={max}")));
            }
        }
        if n_embd % n_head != 0 {
            return Err(bad(
                "bert.attention.head_count",
                n_head.to_string(),
                "must divide bert.embedding_length",
            ));
        }
        if !(eps > 0.0 && eps < 1.0) {
            return Err(bad(
                "bert.attention.layer_norm_epsilon",
                eps.to_string(),
                "must be in (0, 1)",
            ));
        }
        if f.get_bool("bert.attention.causal")? == Some(true) {
            return Err(bad(
                "bert.attention.causal",
                "true".into(),
                "a causal BERT is not supported (sentence encoders attend both ways)",
            ));
        }
        let (pooling, normalize) = pooling_of(&f)?;
        let tok = f
            .tensor("token_embd.weight")
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.clone(),
                tensor: "token_embd.weight".into(),
                arch: arch.clone(),
            })?;
        let n_vocab = tok.dims.get(1).copied().unwrap_or(0) as usize;
        let (d, ff) = (n_embd as u64, n_ff as u64);
        let tok_embd = tensor(&f, "token_embd.weight", &arch, &[d, n_vocab as u64])?.clone();
        let pos_embd = to_f32(
            &f,
            tensor(&f, "position_embd.weight", &arch, &[d, n_pos as u64])?,
        );
        let type_embd = to_f32(
            &f,
            tensor(&f, "token_types.weight", &arch, &[d, n_type as u64])?,
        );
        let vec = |name: &str, n: u64| -> Result<Vec<f32>, ModelError> {
            Ok(to_f32(&f, tensor(&f, name, &arch, &[n])?))
        };
        let embd_norm = (
            vec("token_embd_norm.weight", d)?,
            vec("token_embd_norm.bias", d)?,
        );
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            let m = |s: &str, dims: &[u64]| -> Result<Mat, ModelError> {
                Ok(tensor(&f, &n(s), &arch, dims)?.clone().into())
            };
            layers.push(Layer {
                wq: m("attn_q.weight", &[d, d])?,
                wk: m("attn_k.weight", &[d, d])?,
                wv: m("attn_v.weight", &[d, d])?,
                wo: m("attn_output.weight", &[d, d])?,
                w_up: m("ffn_up.weight", &[d, ff])?,
                w_down: m("ffn_down.weight", &[ff, d])?,
                bq: vec(&n("attn_q.bias"), d)?,
                bk: vec(&n("attn_k.bias"), d)?,
                bv: vec(&n("attn_v.bias"), d)?,
                bo: vec(&n("attn_output.bias"), d)?,
                b_up: vec(&n("ffn_up.bias"), ff)?,
                b_down: vec(&n("ffn_down.bias"), d)?,
                attn_norm: (
                    vec(&n("attn_output_norm.weight"), d)?,
                    vec(&n("attn_output_norm.bias"), d)?,
                ),
                out_norm: (
                    vec(&n("layer_output_norm.weight"), d)?,
                    vec(&n("layer_output_norm.bias"), d)?,
                ),
            });
        }
        Ok(BertModel {
            file: f,
            hp: BertParams {
                n_vocab,
                n_embd,
                n_ff,
                n_layer,
                n_head,
                head_dim: n_embd / n_head,
                n_pos,
                n_type,
                eps,
                pooling,
                normalize,
            },
            tok_embd,
            pos_embd,
            type_embd,
            embd_norm,
            layers,
            packed: None,
        })
    }

    /// Let the backend repack the matrices it has a faster layout for; returns the
    /// bytes repacked.
    pub fn pack_weights(&mut self, be: &dyn Backend) -> u64 {
        let file = self.file.clone();
        let mut mats: Vec<&mut Mat> = Vec::new();
        for l in &mut self.layers {
            mats.extend([
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_up,
                &mut l.w_down,
            ]);
        }
        let (arena, bytes) = crate::pack::pack(&file, be, mats);
        self.packed = arena;
        bytes
    }

    fn weight<'a>(&'a self, m: &'a Mat) -> Weight<'a> {
        crate::pack::weight(&self.file, self.packed.as_ref(), m)
    }

    /// Bytes to embed one sentence of `n` tokens: the tensors plus the f32
    /// activations of the forward pass.
    pub fn memory_bytes(&self, n: usize) -> u64 {
        let w: u64 = self.file.tensors().iter().map(|t| t.bytes).sum();
        let hp = &self.hp;
        w + ((n * (6 * hp.n_embd + hp.n_ff) + n) * 4) as u64
    }

    /// Weight types the backend must execute.
    pub fn weight_types(&self) -> Vec<alc_core::DType> {
        let mut v: Vec<_> = self.file.tensors().iter().map(|t| t.dtype).collect();
        v.sort_by_key(|t| t.id());
        v.dedup();
        v
    }

    /// One embedding per sentence (token ids with their [CLS] / [SEP]); each at most
    /// `n_pos` tokens and not empty.
    pub fn embed(&self, be: &dyn Backend, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, ModelError> {
        let hp = &self.hp;
        let (d, ff, nh, hd) = (hp.n_embd, hp.n_ff, hp.n_head, hp.head_dim);
        for s in batch {
            if s.is_empty() || s.len() > hp.n_pos {
                return Err(ModelError::BadContext {
                    ctx: s.len(),
                    why: format!("a sentence must have 1..={} tokens", hp.n_pos),
                });
            }
            if let Some(&id) = s.iter().find(|&&id| id as usize >= hp.n_vocab) {
                return Err(ModelError::BadToken {
                    id,
                    vocab: hp.n_vocab,
                });
            }
        }
        let n: usize = batch.iter().map(|s| s.len()).sum();
        if n == 0 {
            return Ok(Vec::new());
        }
        // Embeddings: token row + position + token type 0.
        let mut x = vec![0f32; n * d];
        let row_bytes = (self.tok_embd.bytes / hp.n_vocab as u64) as usize;
        let table = self.file.tensor_data(&self.tok_embd);
        let mut r = 0;
        for s in batch {
            for (p, &id) in s.iter().enumerate() {
                let out = &mut x[r * d..(r + 1) * d];
                let src = &table[id as usize * row_bytes..(id as usize + 1) * row_bytes];
                alc_quant::dequantize(self.tok_embd.dtype, src, out)
                    .expect("executed type checked at load");
                let pos = &self.pos_embd[p * d..(p + 1) * d];
                let ty = &self.type_embd[..d];
                for ((v, &a), &b) in out.iter_mut().zip(pos).zip(ty) {
                    *v += a + b;
                }
                r += 1;
            }
        }
        be.add_layer_norm(&mut x, None, &self.embd_norm.0, &self.embd_norm.1, hp.eps);

        let (mut q, mut k, mut v) = (vec![0f32; n * d], vec![0f32; n * d], vec![0f32; n * d]);
        let mut att = vec![0f32; n * d];
        let mut o = vec![0f32; n * d];
        let mut h = vec![0f32; n * ff];
        let lens: Vec<usize> = batch.iter().map(|s| s.len()).collect();
        let shape = alc_kernels::encoder::SegAttn {
            lens: &lens,
            n_head: nh,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        for l in &self.layers {
            let ws = [self.weight(&l.wq), self.weight(&l.wk), self.weight(&l.wv)];
            be.matmul_many(&ws, &x, n, &mut [&mut q, &mut k, &mut v]);
            add_bias(&mut q, &l.bq);
            add_bias(&mut k, &l.bk);
            add_bias(&mut v, &l.bv);
            // Bidirectional attention within each sentence.
            be.attention_segments(&q, &k, &v, &shape, &mut att);
            be.matmul(&self.weight(&l.wo), &att, n, &mut o);
            be.add_layer_norm(
                &mut x,
                Some((&o, &l.bo)),
                &l.attn_norm.0,
                &l.attn_norm.1,
                hp.eps,
            );
            be.matmul(&self.weight(&l.w_up), &x, n, &mut h);
            be.bias_gelu(&mut h, &l.b_up);
            be.matmul(&self.weight(&l.w_down), &h, n, &mut o);
            be.add_layer_norm(
                &mut x,
                Some((&o, &l.b_down)),
                &l.out_norm.0,
                &l.out_norm.1,
                hp.eps,
            );
        }
        // Pooling and normalisation.
        let mut out = Vec::with_capacity(batch.len());
        let mut start = 0;
        for s in batch {
            let rows = &x[start * d..(start + s.len()) * d];
            out.push(pool(rows, d, hp.pooling, hp.normalize));
            start += s.len();
        }
        Ok(out)
    }
}
