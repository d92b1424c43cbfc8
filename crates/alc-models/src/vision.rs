//! The vision side of an Idefics3 / SmolVLM package (docs/FORMAT.md Part L): the
//! SigLIP vision encoder and the pixel-shuffle modality projector.
//!
//! Tiles (each `3 × S × S` normalised pixels, channel first, as alc-image makes them)
//! run as one stack of patch rows, like BERT sentences: every matrix sees all tiles'
//! rows at once, and attention is bidirectional within each tile only
//! ([`alc_kernels::Backend::attention_segments`]). The encoder is pre-norm:
//! `x += attn(LN1(x)); x += MLP(LN2(x))`, then a final LayerNorm; the MLP's GELU is
//! the tanh form (`gelu_pytorch_tanh`). The projector pixel-shuffles each tile's
//! `G × G` patch grid into `(G/s)²` rows of `D·s²` features and multiplies them by
//! `mm.proj.weight` into the text model's width.

use std::sync::Arc;

use alc_format::GgufFile;
use alc_kernels::encoder::SegAttn;
use alc_kernels::{Backend, Weight};

use crate::pack::Mat;
use crate::{add_bias_rows as add_bias, tensor, to_f32, ModelError};

const ARCH: &str = "idefics3 vision";

/// Shape of the vision tower and projector.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VisionParams {
    /// Tile side in pixels.
    pub image_size: usize,
    pub patch_size: usize,
    /// Patches per tile side (image_size / patch_size).
    pub grid: usize,
    /// Patches per tile.
    pub n_patches: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_ff: usize,
    pub eps: f32,
    pub scale_factor: usize,
    /// Width of the text model (the projector's output).
    pub text_embd: usize,
    /// Image tokens per tile: n_patches / scale_factor².
    pub seq_len: usize,
    /// Id of `<image>` in the text vocabulary.
    pub image_token: u32,
    /// The checkpoint's preprocessor_config.json / processor_config.json.
    #[serde(skip)]
    pub preprocessor_config: String,
    #[serde(skip)]
    pub processor_config: Option<String>,
}

struct Layer {
    ln1: (Vec<f32>, Vec<f32>),
    wq: Mat,
    wk: Mat,
    wv: Mat,
    wo: Mat,
    bq: Vec<f32>,
    bk: Vec<f32>,
    bv: Vec<f32>,
    bo: Vec<f32>,
    ln2: (Vec<f32>, Vec<f32>),
    w_up: Mat,
    b_up: Vec<f32>,
    w_down: Mat,
    b_down: Vec<f32>,
}

/// The vision encoder and projector of a package.
pub struct VisionModel {
    pub file: Arc<GgufFile>,
    pub hp: VisionParams,
    patch: Mat,
    patch_bias: Vec<f32>,
    pos: Vec<f32>,
    layers: Vec<Layer>,
    post_ln: (Vec<f32>, Vec<f32>),
    proj: Mat,
    packed: Option<memmap2::MmapMut>,
}

impl std::fmt::Debug for VisionModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisionModel").field("hp", &self.hp).finish()
    }
}

/// The named tensor of `dims`, as f32.
fn vector(f: &GgufFile, name: &str, dims: &[u64]) -> Result<Vec<f32>, ModelError> {
    Ok(to_f32(f, tensor(f, name, ARCH, dims)?))
}

impl VisionModel {
    /// The vision tower of `f`, or `None` when the package is text-only.
    pub fn from_gguf(f: Arc<GgufFile>) -> Result<Option<VisionModel>, ModelError> {
        let path = f.path().display().to_string();
        let Some(kind) = f.get_str("alc.vlm.kind")? else {
            return Ok(None);
        };
        if kind != "idefics3" {
            return Err(ModelError::UnknownArch {
                path,
                arch: format!("vision-language kind '{kind}'"),
                supported: "idefics3 (SmolVLM)".into(),
            });
        }
        let bad = |key: &str, value: String, why: &str| ModelError::BadHparam {
            path: path.clone(),
            key: key.into(),
            value,
            why: why.into(),
        };
        let u = |k: &str, max: usize| -> Result<usize, ModelError> {
            let v = f.req_u64(k)?;
            if v == 0 || v > max as u64 {
                return Err(bad(k, v.to_string(), &format!("must be in 1..={max}")));
            }
            Ok(v as usize)
        };
        let image_size = u("alc.vision.image_size", 4096)?;
        let patch_size = u("alc.vision.patch_size", 256)?;
        let n_embd = u("alc.vision.embedding_length", 1 << 14)?;
        let n_layer = u("alc.vision.block_count", 256)?;
        let n_head = u("alc.vision.head_count", 256)?;
        let n_ff = u("alc.vision.feed_forward_length", 1 << 16)?;
        let scale_factor = u("alc.projector.scale_factor", 64)?;
        let seq_len = u("alc.image.seq_len", 1 << 16)?;
        let image_token = f.req_u64("alc.image.token_id")?;
        let eps = f.req_f32("alc.vision.layer_norm_epsilon")?;
        if !(eps > 0.0 && eps < 1.0) {
            return Err(bad(
                "alc.vision.layer_norm_epsilon",
                eps.to_string(),
                "must be in (0, 1)",
            ));
        }
        let act = f.req_str("alc.vision.hidden_act")?;
        if act != "gelu_pytorch_tanh" {
            return Err(bad(
                "alc.vision.hidden_act",
                act.into(),
                "only gelu_pytorch_tanh is supported",
            ));
        }
        if image_size % patch_size != 0 {
            return Err(bad(
                "alc.vision.patch_size",
                patch_size.to_string(),
                "must divide alc.vision.image_size",
            ));
        }
        let grid = image_size / patch_size;
        if grid % scale_factor != 0 {
            return Err(bad(
                "alc.projector.scale_factor",
                scale_factor.to_string(),
                &format!("must divide the {grid}-patch grid"),
            ));
        }
        if n_embd % n_head != 0 {
            return Err(bad(
                "alc.vision.head_count",
                n_head.to_string(),
                "must divide alc.vision.embedding_length",
            ));
        }
        let n_patches = grid * grid;
        if seq_len != n_patches / (scale_factor * scale_factor) {
            return Err(bad(
                "alc.image.seq_len",
                seq_len.to_string(),
                &format!(
                    "must be (image_size / patch_size)² / scale_factor² = {}",
                    n_patches / (scale_factor * scale_factor)
                ),
            ));
        }
        let preprocessor_config = f.req_str("alc.image.preprocessor_config")?.to_string();
        let processor_config = f.get_str("alc.image.processor_config")?.map(str::to_string);
        let proj_t = f
            .tensor("mm.proj.weight")
            .ok_or_else(|| ModelError::MissingTensor {
                path: path.clone(),
                tensor: "mm.proj.weight".into(),
                arch: ARCH.into(),
            })?;
        let text_embd = proj_t.dims.get(1).copied().unwrap_or(0) as usize;
        let (d, ff) = (n_embd as u64, n_ff as u64);
        let pp = (3 * patch_size * patch_size) as u64;
        let mat = |name: &str, dims: &[u64]| -> Result<Mat, ModelError> {
            Ok(tensor(&f, name, ARCH, dims)?.clone().into())
        };
        let vec = |name: &str, n: u64| vector(&f, name, &[n]);
        let ln = |name: &str| -> Result<(Vec<f32>, Vec<f32>), ModelError> {
            Ok((
                vec(&format!("{name}.weight"), d)?,
                vec(&format!("{name}.bias"), d)?,
            ))
        };
        let mut layers = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let n = |s: &str| format!("v.blk.{i}.{s}");
            layers.push(Layer {
                ln1: ln(&n("ln1"))?,
                wq: mat(&n("attn_q.weight"), &[d, d])?,
                wk: mat(&n("attn_k.weight"), &[d, d])?,
                wv: mat(&n("attn_v.weight"), &[d, d])?,
                wo: mat(&n("attn_out.weight"), &[d, d])?,
                bq: vec(&n("attn_q.bias"), d)?,
                bk: vec(&n("attn_k.bias"), d)?,
                bv: vec(&n("attn_v.bias"), d)?,
                bo: vec(&n("attn_out.bias"), d)?,
                ln2: ln(&n("ln2"))?,
                w_up: mat(&n("ffn_up.weight"), &[d, ff])?,
                b_up: vec(&n("ffn_up.bias"), ff)?,
                w_down: mat(&n("ffn_down.weight"), &[ff, d])?,
                b_down: vec(&n("ffn_down.bias"), d)?,
            });
        }
        let s2 = (scale_factor * scale_factor) as u64;
        Ok(Some(VisionModel {
            patch: mat("v.patch_embd.weight", &[pp, d])?,
            patch_bias: vec("v.patch_embd.bias", d)?,
            pos: vector(&f, "v.position_embd.weight", &[d, n_patches as u64])?,
            post_ln: ln("v.post_ln")?,
            proj: mat("mm.proj.weight", &[d * s2, text_embd as u64])?,
            layers,
            hp: VisionParams {
                image_size,
                patch_size,
                grid,
                n_patches,
                n_embd,
                n_layer,
                n_head,
                n_ff,
                eps,
                scale_factor,
                text_embd,
                seq_len,
                image_token: image_token as u32,
                preprocessor_config,
                processor_config,
            },
            file: f,
            packed: None,
        }))
    }

    /// Let the backend repack the matrices (see `Model::pack_weights`).
    pub fn pack_weights(&mut self, be: &dyn Backend) -> u64 {
        let file = self.file.clone();
        let mut mats: Vec<&mut Mat> = vec![&mut self.patch, &mut self.proj];
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

    /// Floats of one tile of pixel values (3 · S · S).
    pub fn tile_floats(&self) -> usize {
        3 * self.hp.image_size * self.hp.image_size
    }

    /// The encoder over `n` tiles of `pixels` (`[n][3][S][S]`): returns the final
    /// hidden states `[n][n_patches][n_embd]` (after the post LayerNorm).
    pub fn encode(&self, be: &dyn Backend, pixels: &[f32]) -> Result<Vec<f32>, ModelError> {
        let hp = &self.hp;
        let tf = self.tile_floats();
        if pixels.is_empty() || !pixels.len().is_multiple_of(tf) {
            return Err(ModelError::BadInput(format!(
                "{} pixel values are not a whole number of {}x{} RGB tiles",
                pixels.len(),
                hp.image_size,
                hp.image_size
            )));
        }
        let tiles = pixels.len() / tf;
        let (d, np, p, s) = (hp.n_embd, hp.n_patches, hp.patch_size, hp.image_size);
        let rows = tiles * np;
        // Patches as rows of (channel, y, x), then the conv as one matmul.
        let pp = 3 * p * p;
        let mut patches = vec![0f32; rows * pp];
        for t in 0..tiles {
            let img = &pixels[t * tf..(t + 1) * tf];
            for gy in 0..hp.grid {
                for gx in 0..hp.grid {
                    let row = &mut patches[(t * np + gy * hp.grid + gx) * pp..][..pp];
                    for c in 0..3 {
                        for y in 0..p {
                            let src = &img[c * s * s + (gy * p + y) * s + gx * p..][..p];
                            row[(c * p + y) * p..][..p].copy_from_slice(src);
                        }
                    }
                }
            }
        }
        let mut x = vec![0f32; rows * d];
        be.matmul(&self.weight(&self.patch), &patches, rows, &mut x);
        drop(patches);
        for (i, row) in x.chunks_exact_mut(d).enumerate() {
            let pos = &self.pos[(i % np) * d..][..d];
            for ((v, &b), &e) in row.iter_mut().zip(&self.patch_bias).zip(pos) {
                *v += b + e;
            }
        }

        let hd = d / hp.n_head;
        let lens = vec![np; tiles];
        let shape = SegAttn {
            lens: &lens,
            n_head: hp.n_head,
            head_dim: hd,
            scale: 1.0 / (hd as f32).sqrt(),
        };
        let mut xb = vec![0f32; rows * d];
        let (mut q, mut k, mut v) = (xb.clone(), xb.clone(), xb.clone());
        let mut att = xb.clone();
        let mut h = vec![0f32; rows * hp.n_ff];
        for l in &self.layers {
            xb.copy_from_slice(&x);
            be.add_layer_norm(&mut xb, None, &l.ln1.0, &l.ln1.1, hp.eps);
            let ws = [self.weight(&l.wq), self.weight(&l.wk), self.weight(&l.wv)];
            be.matmul_many(&ws, &xb, rows, &mut [&mut q, &mut k, &mut v]);
            add_bias(&mut q, &l.bq);
            add_bias(&mut k, &l.bk);
            add_bias(&mut v, &l.bv);
            be.attention_segments(&q, &k, &v, &shape, &mut att);
            be.matmul(&self.weight(&l.wo), &att, rows, &mut xb);
            add_bias(&mut xb, &l.bo);
            x.iter_mut().zip(&xb).for_each(|(a, b)| *a += b);

            xb.copy_from_slice(&x);
            be.add_layer_norm(&mut xb, None, &l.ln2.0, &l.ln2.1, hp.eps);
            be.matmul(&self.weight(&l.w_up), &xb, rows, &mut h);
            be.bias_gelu_tanh(&mut h, &l.b_up);
            be.matmul(&self.weight(&l.w_down), &h, rows, &mut xb);
            add_bias(&mut xb, &l.b_down);
            x.iter_mut().zip(&xb).for_each(|(a, b)| *a += b);
        }
        be.add_layer_norm(&mut x, None, &self.post_ln.0, &self.post_ln.1, hp.eps);
        Ok(x)
    }

    /// Pixel shuffle + projection of encoder states `[n][n_patches][n_embd]` into
    /// `[n][seq_len][text_embd]`: the rows that replace each tile's `<image>` tokens.
    pub fn project(&self, be: &dyn Backend, hidden: &[f32]) -> Result<Vec<f32>, ModelError> {
        let hp = &self.hp;
        let (d, np, g, sf) = (hp.n_embd, hp.n_patches, hp.grid, hp.scale_factor);
        if hidden.is_empty() || !hidden.len().is_multiple_of(np * d) {
            return Err(ModelError::BadInput(format!(
                "{} encoder values are not a whole number of tiles of {np}x{d}",
                hidden.len()
            )));
        }
        let tiles = hidden.len() / (np * d);
        let go = g / sf;
        let wide = d * sf * sf;
        let rows = tiles * hp.seq_len;
        let mut shuffled = vec![0f32; rows * wide];
        for t in 0..tiles {
            let src = &hidden[t * np * d..][..np * d];
            for r in 0..go {
                for c in 0..go {
                    let out = &mut shuffled[(t * hp.seq_len + r * go + c) * wide..][..wide];
                    for k in 0..sf {
                        for j in 0..sf {
                            let patch = (r * sf + k) * g + c * sf + j;
                            out[(k * sf + j) * d..][..d].copy_from_slice(&src[patch * d..][..d]);
                        }
                    }
                }
            }
        }
        let mut out = vec![0f32; rows * hp.text_embd];
        be.matmul(&self.weight(&self.proj), &shuffled, rows, &mut out);
        Ok(out)
    }
}
