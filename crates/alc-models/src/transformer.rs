//! The shared pre-norm decoder transformer and its per-session state.

use crate::pack::Mat;
use crate::{arch_spec, supported_archs, tensor, to_f32, ArchSpec, HParams, ModelError};
use alc_core::DType;
use alc_format::{GgufFile, TensorInfo};
use alc_kernels::{AttnShape, Backend, Weight};
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use std::sync::Arc;

/// Which logits a forward pass produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (prefill chunks before the last).
    None,
    /// Only for the last token of the chunk.
    Last,
    /// For every token of the chunk (teacher forcing, perplexity).
    All,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Mat,
    wk: Mat,
    wv: Mat,
    wo: Mat,
    bq: Option<Vec<f32>>,
    bk: Option<Vec<f32>>,
    bv: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    w_gate: Mat,
    w_up: Mat,
    w_down: Mat,
    post_ffn_norm: Option<Vec<f32>>,
}

/// A loaded model: hyperparameters, architecture spec and weights borrowed from the
/// mapped file. Immutable and shareable across sessions.
pub struct Model {
    pub file: Arc<GgufFile>,
    pub spec: ArchSpec,
    pub hp: HParams,
    tok_embd: TensorInfo,
    /// `tok_embd` again when the embeddings are tied.
    output: Mat,
    output_norm: Vec<f32>,
    layers: Vec<Layer>,
    /// Every repacked matrix, in one anonymous mapping (huge pages where the
    /// kernel gives them: one page fault per 2 MiB instead of per 4 KiB at load).
    packed: Option<memmap2::MmapMut>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("arch", &self.hp.arch)
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl Model {
    pub fn from_gguf(f: Arc<GgufFile>) -> Result<Model, ModelError> {
        let arch = f.req_str("general.architecture")?.to_string();
        let spec = arch_spec(&arch).ok_or_else(|| ModelError::UnknownArch {
            path: f.path().display().to_string(),
            arch: arch.clone(),
            supported: supported_archs(),
        })?;
        let mut hp = HParams::read(&f, &arch)?;
        (spec.configure)(&f, &mut hp)?;
        crate::arch::package_overrides(&f, &mut hp)?;
        let (d, ff, hd) = (hp.n_embd as u64, hp.n_ff as u64, hp.head_dim as u64);
        let (nq, nkv) = (hp.n_head as u64 * hd, hp.n_kv_head as u64 * hd);
        let tok_embd =
            f.tensor("token_embd.weight")
                .cloned()
                .ok_or_else(|| ModelError::MissingTensor {
                    path: f.path().display().to_string(),
                    tensor: "token_embd.weight".into(),
                    arch: arch.clone(),
                })?;
        if hp.n_vocab == 0 {
            hp.n_vocab = tok_embd.dims.get(1).copied().unwrap_or(0) as usize;
        }
        let v = hp.n_vocab as u64;
        let tok_embd = tensor(&f, "token_embd.weight", &arch, &[d, v])?.clone();
        let output = match f.tensor("output.weight") {
            Some(_) => tensor(&f, "output.weight", &arch, &[d, v])?.clone(),
            None => tok_embd.clone(),
        };
        let output_norm = to_f32(&f, tensor(&f, "output_norm.weight", &arch, &[d])?);
        let opt_vec = |name: String, n: u64| -> Result<Option<Vec<f32>>, ModelError> {
            match f.tensor(&name) {
                None => Ok(None),
                Some(_) => Ok(Some(to_f32(&f, tensor(&f, &name, &arch, &[n])?))),
            }
        };
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let name = |s: &str| format!("blk.{i}.{s}");
            let t = |s: &str, dims: &[u64]| -> Result<Mat, ModelError> {
                Ok(tensor(&f, &name(s), &arch, dims)?.clone().into())
            };
            let need = |s: &str, n: u64| -> Result<Vec<f32>, ModelError> {
                Ok(to_f32(&f, tensor(&f, &name(s), &arch, &[n])?))
            };
            let qk_norm = |s: &str| -> Result<Option<Vec<f32>>, ModelError> {
                if spec.qk_norm {
                    Ok(Some(need(s, hd)?))
                } else {
                    Ok(None)
                }
            };
            let post = |s: &str| -> Result<Option<Vec<f32>>, ModelError> {
                if spec.post_norms {
                    Ok(Some(need(s, d)?))
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                attn_norm: need("attn_norm.weight", d)?,
                wq: t("attn_q.weight", &[d, nq])?,
                wk: t("attn_k.weight", &[d, nkv])?,
                wv: t("attn_v.weight", &[d, nkv])?,
                wo: t("attn_output.weight", &[nq, d])?,
                bq: opt_vec(name("attn_q.bias"), nq)?,
                bk: opt_vec(name("attn_k.bias"), nkv)?,
                bv: opt_vec(name("attn_v.bias"), nkv)?,
                q_norm: qk_norm("attn_q_norm.weight")?,
                k_norm: qk_norm("attn_k_norm.weight")?,
                post_attn_norm: post("post_attention_norm.weight")?,
                ffn_norm: need("ffn_norm.weight", d)?,
                w_gate: t("ffn_gate.weight", &[d, ff])?,
                w_up: t("ffn_up.weight", &[d, ff])?,
                w_down: t("ffn_down.weight", &[ff, d])?,
                post_ffn_norm: post("post_ffw_norm.weight")?,
            });
        }
        Ok(Model {
            file: f,
            spec,
            hp,
            tok_embd,
            output: output.into(),
            output_norm,
            layers,
            packed: None,
        })
    }

    /// Let the backend repack every matrix it has a faster layout for (see
    /// [`Backend::pack`]); later forward calls on that backend use the copies. The
    /// embedding table stays as it is (rows are looked up by token), and so does a
    /// tied output matrix (a copy would double it). Returns the bytes repacked.
    pub fn pack_weights(&mut self, be: &dyn Backend) -> u64 {
        let file = self.file.clone();
        let mut mats: Vec<&mut Mat> = Vec::new();
        for l in &mut self.layers {
            mats.extend([
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ]);
        }
        // Untied output only (tied: the same tensor as the embedding table).
        if self.output.t.name != self.tok_embd.name {
            mats.push(&mut self.output);
        }
        let (arena, bytes) = crate::pack::pack(&file, be, mats);
        self.packed = arena;
        bytes
    }

    fn weight<'a>(&'a self, m: &'a Mat) -> Weight<'a> {
        crate::pack::weight(&self.file, self.packed.as_ref(), m)
    }

    /// Weight types this model needs executed (for backend capability checks).
    pub fn weight_types(&self) -> Vec<DType> {
        let mut v: Vec<DType> = self.file.tensors().iter().map(|t| t.dtype).collect();
        v.sort_by_key(|t| t.id());
        v.dedup();
        v
    }

    /// The token embedding table.
    pub fn tok_embd(&self) -> &TensorInfo {
        &self.tok_embd
    }

    /// Whether the output head is the embedding table (tied embeddings).
    pub fn tied_output(&self) -> bool {
        self.output.t.name == self.tok_embd.name
    }

    /// Weight bytes read to generate one token (every matrix once, plus one
    /// embedding row): the numerator of model-bandwidth utilisation.
    pub fn bytes_per_token(&self) -> u64 {
        let mut b = self.output.t.bytes + self.tok_embd.bytes / self.hp.n_vocab.max(1) as u64;
        for l in &self.layers {
            b += [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]
                .iter()
                .map(|m| m.t.bytes)
                .sum::<u64>();
        }
        b
    }

    /// KV-cache bytes (f16 keys and values) that attention reads for one token at
    /// position `pos`: every layer's visible keys (at most the window on a
    /// sliding-window layer). Added to [`Model::bytes_per_token`] for the bandwidth
    /// utilisation of generation at depth.
    pub fn kv_bytes_read(&self, pos: usize) -> u64 {
        let hp = &self.hp;
        let row = (hp.n_kv_head * hp.head_dim * 2 * 2) as u64;
        (0..hp.n_layer)
            .map(|l| {
                let keys = match hp.swa_window {
                    Some(w) if w > 0 && hp.swa_layers[l] => (pos + 1).min(w),
                    _ => pos + 1,
                };
                keys as u64 * row
            })
            .sum()
    }

    /// Allocate per-session state: KV cache for `ctx` tokens and scratch for up to
    /// `ubatch` tokens per forward call.
    pub fn new_state(&self, ctx: usize, ubatch: usize) -> Result<State, ModelError> {
        self.new_state_with(ctx, ubatch, KvType::F16)
    }

    /// [`Model::new_state`] with a chosen KV-cache type.
    pub fn new_state_with(
        &self,
        ctx: usize,
        ubatch: usize,
        kv: KvType,
    ) -> Result<State, ModelError> {
        self.state(ctx, ubatch, kv, true)
    }

    fn state(
        &self,
        ctx: usize,
        ubatch: usize,
        kv: KvType,
        with_scratch: bool,
    ) -> Result<State, ModelError> {
        if ctx == 0 {
            return Err(ModelError::BadContext {
                ctx,
                why: "must be at least 1".into(),
            });
        }
        let hp = &self.hp;
        let kv_row = hp.n_kv_head * hp.head_dim;
        let ub = ubatch.clamp(1, ctx);
        let rows: Vec<usize> = (0..hp.n_layer).map(|l| hp.kv_rows(l, ctx, ub)).collect();
        let kv_elems = |r: usize| {
            r.checked_mul(kv_row).ok_or_else(|| ModelError::BadContext {
                ctx,
                why: "KV cache size overflows".into(),
            })
        };
        let mut k = Vec::with_capacity(hp.n_layer);
        let mut v = Vec::with_capacity(hp.n_layer);
        for &r in &rows {
            k.push(KvBuf::new(kv, kv_elems(r)?));
            v.push(KvBuf::new(kv, kv_elems(r)?));
        }
        Ok(State {
            ctx,
            ubatch: ub,
            pos: 0,
            base: vec![0; hp.n_layer],
            rows,
            window: hp.swa_window.unwrap_or(0),
            k,
            v,
            scratch: with_scratch.then(|| self.new_scratch(ub)),
            logits: Vec::new(),
        })
    }

    /// Per-sequence state without its own scratch, for [`Model::forward_batch`]:
    /// many sequences share one [`Scratch`] (the run loop's), so each holds only
    /// its KV cache. `ubatch` bounds the tokens this sequence adds per call.
    pub fn new_seq_state(&self, ctx: usize, ubatch: usize) -> Result<State, ModelError> {
        self.state(ctx, ubatch, KvType::F16, false)
    }

    /// Activation scratch for forward calls of up to `rows` tokens in all.
    pub fn new_scratch(&self, rows: usize) -> Scratch {
        let hp = &self.hp;
        let rows = rows.max(1);
        let kv_row = hp.n_kv_head * hp.head_dim;
        let z = |n: usize| committed::<f32>(n);
        Scratch {
            rows,
            x: z(rows * hp.n_embd),
            xb: z(rows * hp.n_embd),
            q: z(rows * hp.n_head * hp.head_dim),
            kx: z(rows * kv_row),
            vx: z(rows * kv_row),
            att: z(rows * hp.n_head * hp.head_dim),
            gate: z(rows * hp.n_ff),
            up: z(rows * hp.n_ff),
            logits: Vec::new(),
            times: ForwardTimes::default(),
        }
    }

    /// Run `tokens` (at most `state.ubatch`) at positions `state.pos..`, append their
    /// keys and values to the cache, and return the requested logits
    /// (`[rows][n_vocab]`). Uses the state's own scratch (see [`Model::new_state`]).
    pub fn forward<'s>(
        &self,
        be: &dyn Backend,
        st: &'s mut State,
        tokens: &[u32],
        want: Logits,
    ) -> Result<&'s [f32], ModelError> {
        let mut scratch = st.scratch.take().ok_or_else(|| ModelError::BadContext {
            ctx: st.ctx,
            why: "this state has no scratch of its own (made by new_seq_state); use \
                  forward_batch with a shared Scratch"
                .into(),
        })?;
        let r = self.forward_batch(
            be,
            &mut scratch,
            &mut [Seg {
                state: &mut *st,
                tokens,
                logits: want,
                embeds: None,
            }],
        );
        st.scratch = Some(scratch);
        r?;
        Ok(&st.logits)
    }

    /// One forward pass over several sequences: each segment's tokens continue its
    /// own state (at positions `state.pos..`, attending only to its own KV cache),
    /// while every row-wise step — norms, the projections and feed-forward
    /// matrices, the output head — runs once over all segments' rows stacked. This
    /// is what lets a server decode many sequences for the cost of reading the
    /// weights once (continuous batching), and lets a new prompt's prefill chunk
    /// ride along with other sequences' decode steps. Each state receives the logits
    /// its segment asked for. A row's result does not depend on what else is in the
    /// batch beyond the kernels' summation order (see the engine's batching test).
    ///
    /// Everything is checked before any state changes: on error no cache moved.
    pub fn forward_batch(
        &self,
        be: &dyn Backend,
        sc: &mut Scratch,
        segs: &mut [Seg<'_>],
    ) -> Result<(), ModelError> {
        let hp = &self.hp;
        let mut total = 0usize;
        for seg in segs.iter() {
            let (st, n) = (&seg.state, seg.tokens.len());
            if n > st.ubatch {
                return Err(ModelError::BadContext {
                    ctx: st.ctx,
                    why: format!(
                        "{n} tokens in one forward call exceed the micro-batch of {}",
                        st.ubatch
                    ),
                });
            }
            if st.pos + n > st.ctx {
                return Err(ModelError::ContextFull {
                    pos: st.pos,
                    n,
                    ctx: st.ctx,
                });
            }
            if let Some(&id) = seg.tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
                return Err(ModelError::BadToken {
                    id,
                    vocab: hp.n_vocab,
                });
            }
            if let Some((tok, rows)) = seg.embeds {
                let k = seg.tokens.iter().filter(|&&t| t == tok).count();
                if rows.len() != k * hp.n_embd {
                    return Err(ModelError::BadInput(format!(
                        "{} input floats for {k} positions of token {tok} (want {} = {k} x {})",
                        rows.len(),
                        k * hp.n_embd,
                        hp.n_embd
                    )));
                }
            }
            total += n;
        }
        if total > sc.rows {
            return Err(ModelError::BadContext {
                ctx: segs.first().map_or(0, |s| s.state.ctx),
                why: format!(
                    "{total} tokens in one batched forward call exceed the scratch of {} rows",
                    sc.rows
                ),
            });
        }
        // Segment rows are stacked in order (each loop below keeps a running row
        // offset), and a segment's first position is its state's `pos`, which moves
        // only at the end.
        let (d, hd) = (hp.n_embd, hp.head_dim);
        let (nq, nkv) = (hp.n_head * hd, hp.n_kv_head * hd);
        let eps = hp.norm_eps;
        let n = total;

        // Token embeddings.
        let t_embed = std::time::Instant::now();
        let emb = &self.tok_embd;
        let emb_data = self.file.tensor_data(emb);
        let erb = emb.dtype.row_bytes(d as u64).expect("validated") as usize;
        for (t, &id) in segs.iter().flat_map(|s| s.tokens.iter()).enumerate() {
            let row = &emb_data[id as usize * erb..(id as usize + 1) * erb];
            alc_quant::dequantize(emb.dtype, row, &mut sc.x[t * d..(t + 1) * d])
                .expect("executed type");
        }
        if self.spec.embed_scale {
            let s = (d as f32).sqrt();
            sc.x[..n * d].iter_mut().for_each(|v| *v *= s);
        }
        // Rows given by the caller (image features) replace their tokens' embeddings.
        let mut next_r0 = 0;
        for seg in segs.iter() {
            let r0 = next_r0;
            next_r0 += seg.tokens.len();
            if let Some((tok, rows)) = seg.embeds {
                let mut next = rows.chunks_exact(d);
                for (i, &t) in seg.tokens.iter().enumerate() {
                    if t == tok {
                        let row = next.next().expect("row count checked above");
                        sc.x[(r0 + i) * d..(r0 + i + 1) * d].copy_from_slice(row);
                    }
                }
            }
        }

        sc.times.embed += t_embed.elapsed();

        for (il, l) in self.layers.iter().enumerate() {
            // Attention block.
            let xb = &mut sc.xb[..n * d];
            xb.copy_from_slice(&sc.x[..n * d]);
            be.rms_norm(xb, &l.attn_norm, eps);
            let q = &mut sc.q[..n * nq];
            let kx = &mut sc.kx[..n * nkv];
            let vx = &mut sc.vx[..n * nkv];
            be.matmul_many(
                &[self.weight(&l.wq), self.weight(&l.wk), self.weight(&l.wv)],
                xb,
                n,
                &mut [&mut *q, &mut *kx, &mut *vx],
            );
            add_bias(q, l.bq.as_deref());
            add_bias(kx, l.bk.as_deref());
            add_bias(vx, l.bv.as_deref());
            if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
                be.rms_norm(q, qn, eps);
                be.rms_norm(kx, kn, eps);
            }
            let swa = hp.swa_layers[il];
            let (base, fscale) = if swa {
                (hp.rope_base_swa, 1.0)
            } else {
                (hp.rope_base, hp.rope_freq_scale)
            };
            let mut next_r0 = 0;
            for seg in segs.iter_mut() {
                let m = seg.tokens.len();
                let r0 = next_r0;
                next_r0 += m;
                if m == 0 {
                    continue;
                }
                let st = &mut *seg.state;
                let pos0 = st.pos;
                // Positions relative to the layer's first cached row (0 unless a
                // sliding-window layer has slid): the causal and window masks only
                // compare positions, and rope uses the absolute ones.
                let p0 = st.make_room(il, pos0, m, nkv);
                let q = &mut sc.q[r0 * nq..(r0 + m) * nq];
                let kx = &mut sc.kx[r0 * nkv..(r0 + m) * nkv];
                let vx = &sc.vx[r0 * nkv..(r0 + m) * nkv];
                for (x, heads) in [(&mut *q, hp.n_head), (&mut *kx, hp.n_kv_head)] {
                    be.rope(
                        x,
                        heads,
                        hd,
                        hp.rot_dim,
                        pos0,
                        base,
                        fscale,
                        self.spec.rope_style,
                    );
                }
                st.k[il].write(p0 * nkv, kx);
                st.v[il].write(p0 * nkv, vx);
                let shape = AttnShape {
                    n_tokens: m,
                    pos0: p0,
                    n_head: hp.n_head,
                    n_kv_head: hp.n_kv_head,
                    head_dim: hd,
                    ctx: st.rows[il],
                    scale: hp.attn_scale,
                    window: if swa { hp.swa_window } else { None },
                    softcap: hp.attn_softcap,
                };
                let att = &mut sc.att[r0 * nq..(r0 + m) * nq];
                match (&st.k[il], &st.v[il]) {
                    (KvBuf::F16(k), KvBuf::F16(v)) => {
                        be.attention(q, k.reinterpret_cast(), v.reinterpret_cast(), &shape, att)
                    }
                    (KvBuf::F32(k), KvBuf::F32(v)) => be.attention_f32(q, k, v, &shape, att),
                    _ => unreachable!("keys and values share a type"),
                }
            }
            residual(
                be,
                &self.weight(&l.wo),
                &sc.att[..n * nq],
                n,
                l.post_attn_norm.as_deref(),
                eps,
                &mut sc.x[..n * d],
                &mut sc.xb[..n * d],
            );

            // Feed-forward block.
            let xb = &mut sc.xb[..n * d];
            xb.copy_from_slice(&sc.x[..n * d]);
            be.rms_norm(xb, &l.ffn_norm, eps);
            let gate = &mut sc.gate[..n * hp.n_ff];
            let up = &mut sc.up[..n * hp.n_ff];
            be.matmul_gated(
                &self.weight(&l.w_gate),
                &self.weight(&l.w_up),
                xb,
                n,
                self.spec.gelu,
                gate,
                up,
            );
            residual(
                be,
                &self.weight(&l.w_down),
                &sc.gate[..n * hp.n_ff],
                n,
                l.post_ffn_norm.as_deref(),
                eps,
                &mut sc.x[..n * d],
                &mut sc.xb[..n * d],
            );
        }

        // Output head over the wanted rows only, gathered (in segment order) into xb.
        let t_head = std::time::Instant::now();
        let mut m = 0;
        let mut next_r0 = 0;
        for seg in segs.iter() {
            let k = seg.tokens.len();
            let r0 = next_r0;
            next_r0 += k;
            let rows = match seg.logits {
                _ if k == 0 => 0..0,
                Logits::None => 0..0,
                Logits::Last => (r0 + k - 1)..(r0 + k),
                Logits::All => r0..(r0 + k),
            };
            sc.xb[m * d..(m + rows.len()) * d].copy_from_slice(&sc.x[rows.start * d..rows.end * d]);
            m += rows.len();
        }
        let v = hp.n_vocab;
        let finish = |logits: &mut [f32]| {
            if let Some(cap) = hp.final_softcap {
                logits.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
            }
        };
        if m > 0 {
            let xs = &mut sc.xb[..m * d];
            be.rms_norm(xs, &self.output_norm, eps);
        }
        if let [seg] = segs {
            // One sequence: straight into its logits (no copy of a `Logits::All` block).
            let st = &mut *seg.state;
            st.logits.resize(m * v, 0.0);
            if m > 0 {
                be.matmul(
                    &self.weight(&self.output),
                    &sc.xb[..m * d],
                    m,
                    &mut st.logits,
                );
                finish(&mut st.logits);
            }
        } else {
            sc.logits.resize(m * v, 0.0);
            if m > 0 {
                be.matmul(
                    &self.weight(&self.output),
                    &sc.xb[..m * d],
                    m,
                    &mut sc.logits,
                );
                finish(&mut sc.logits);
            }
            let mut r = 0;
            for seg in segs.iter_mut() {
                let k = match seg.logits {
                    _ if seg.tokens.is_empty() => 0,
                    Logits::None => 0,
                    Logits::Last => 1,
                    Logits::All => seg.tokens.len(),
                };
                seg.state.logits.clear();
                seg.state
                    .logits
                    .extend_from_slice(&sc.logits[r * v..(r + k) * v]);
                r += k;
            }
        }
        for seg in segs.iter_mut() {
            seg.state.pos += seg.tokens.len();
        }
        sc.times.lm_head += t_head.elapsed();
        Ok(())
    }
}

/// One sequence's part of a [`Model::forward_batch`] call.
pub struct Seg<'a> {
    pub state: &'a mut State,
    pub tokens: &'a [u32],
    pub logits: Logits,
    /// Input rows that replace token embeddings: `(token, rows)` — each position
    /// whose token is `token` (a VLM's `<image>`) takes the next `n_embd` floats of
    /// `rows` instead of its embedding row; `rows` must hold exactly one row per such
    /// position of this segment.
    pub embeds: Option<(u32, &'a [f32])>,
}

/// Activations for forward calls of up to `rows` tokens (all sequences together).
pub struct Scratch {
    rows: usize,
    x: Vec<f32>,
    xb: Vec<f32>,
    q: Vec<f32>,
    kx: Vec<f32>,
    vx: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    logits: Vec<f32>,
    times: ForwardTimes,
}

/// Time spent in the two ends of forward passes since the last
/// [`Scratch::take_times`]: the token-embedding lookup (with caller rows placed) and
/// the LM head (final norm, output matrix, softcap).
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardTimes {
    pub embed: std::time::Duration,
    pub lm_head: std::time::Duration,
}

impl Scratch {
    /// The most tokens one forward call may carry.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The times accumulated since the last call, reset.
    pub fn take_times(&mut self) -> ForwardTimes {
        std::mem::take(&mut self.times)
    }
}

fn add_bias(x: &mut [f32], b: Option<&[f32]>) {
    if let Some(b) = b {
        crate::add_bias_rows(x, b);
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// `x += norm(w · a)`: a block's output projection added into the residual stream
/// `x`, through `tmp` when a post-norm (gemma) sits between them, else fused
/// ([`Backend::matmul_add`]).
#[allow(clippy::too_many_arguments)]
fn residual(
    be: &dyn Backend,
    w: &Weight<'_>,
    a: &[f32],
    n: usize,
    post_norm: Option<&[f32]>,
    eps: f32,
    x: &mut [f32],
    tmp: &mut [f32],
) {
    match post_norm {
        None => be.matmul_add(w, a, n, x),
        Some(pn) => {
            be.matmul(w, a, n, tmp);
            be.rms_norm(tmp, pn, eps);
            add_into(x, tmp);
        }
    }
}

/// Per-session state: the KV cache and scratch activations.
/// Storage type of the KV cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KvType {
    /// f16, as llama.cpp's default: half the memory.
    #[default]
    F16,
    /// f32: with f32 weights and an exact backend, a float32 forward pass (used to
    /// check conversions against float32 references). Attention over it runs
    /// [`alc_kernels::Backend::attention_f32`], the scalar reference by default.
    F32,
}

/// `n` zeros whose pages are resident now. Zeroed allocations come from calloc and
/// large ones are fresh mappings: untouched, a page costs nothing until the cache
/// reaches it, and a context that did not fit would fail thousands of tokens in.
/// Touching every page commits the session's memory when it is created (as
/// llama.cpp clears its KV buffer), so peak memory is known up front and matches
/// [`Model::memory_plan`] whatever the prompt length.
fn committed<T: Copy + Default>(n: usize) -> Vec<T> {
    let mut v = vec![T::default(); n];
    let step = (4096 / std::mem::size_of::<T>().max(1)).max(1);
    let p = v.as_mut_ptr();
    let mut i = 0;
    while i < n {
        // SAFETY: i < n = v.len(); a volatile write of the value already there
        // cannot be optimised away, so the page is faulted in.
        unsafe { std::ptr::write_volatile(p.add(i), T::default()) };
        i += step;
    }
    v
}

/// One layer's keys or values.
#[derive(Debug)]
enum KvBuf {
    /// f16 bits.
    F16(Vec<u16>),
    F32(Vec<f32>),
}

impl KvBuf {
    fn new(ty: KvType, n: usize) -> KvBuf {
        match ty {
            KvType::F16 => KvBuf::F16(committed(n)),
            KvType::F32 => KvBuf::F32(committed(n)),
        }
    }

    /// Store `x` from element `at` on.
    fn write(&mut self, at: usize, x: &[f32]) {
        match self {
            KvBuf::F16(b) => {
                let c: &mut [half::f16] = b[at..at + x.len()].reinterpret_cast_mut();
                c.convert_from_f32_slice(x);
            }
            KvBuf::F32(b) => b[at..at + x.len()].copy_from_slice(x),
        }
    }

    fn copy_within(&mut self, r: std::ops::Range<usize>, to: usize) {
        match self {
            KvBuf::F16(b) => b.copy_within(r, to),
            KvBuf::F32(b) => b.copy_within(r, to),
        }
    }
}

pub struct State {
    pub ctx: usize,
    pub ubatch: usize,
    /// Tokens held in the cache.
    pub pos: usize,
    /// Per layer: the position of cache row 0, and the rows held. A full-attention
    /// layer holds `ctx` rows from position 0. A sliding-window layer holds
    /// [`HParams::kv_rows`] rows: when a chunk would run past them, the rows its
    /// first query can still see (the last W − 1 positions) move to the front and
    /// `base` advances, at least W positions at a time.
    base: Vec<usize>,
    rows: Vec<usize>,
    /// The sliding window (0: none).
    window: usize,
    /// Per layer `[rows][n_kv_head][head_dim]`.
    k: Vec<KvBuf>,
    v: Vec<KvBuf>,
    /// Activations when the state runs alone ([`Model::forward`]).
    scratch: Option<Scratch>,
    logits: Vec<f32>,
}

impl State {
    /// The logits the last `forward` call returned (empty after `Logits::None`).
    pub fn logits(&self) -> &[f32] {
        &self.logits
    }

    /// Forget cached tokens from `pos` on (keeps a shared prefix). A sliding-window
    /// layer may no longer hold the keys a token at `pos` would see (they slid out);
    /// then everything is forgotten. Read [`State::pos`] afterwards for what was kept.
    pub fn truncate(&mut self, pos: usize) {
        let mut pos = self.pos.min(pos);
        let lost = self
            .base
            .iter()
            .any(|&b| b > 0 && pos.saturating_sub(self.window.saturating_sub(1)) < b);
        if lost {
            pos = 0;
        }
        if pos == 0 {
            self.base.iter_mut().for_each(|b| *b = 0);
        }
        self.pos = pos;
    }

    /// Make room in layer `il`'s cache for `n` tokens at `pos0`: a sliding-window
    /// layer that would run past its rows keeps only the last W − 1 positions before
    /// `pos0` (all the chunk's first query sees), moved to the front. Returns the row
    /// of `pos0`.
    fn make_room(&mut self, il: usize, pos0: usize, n: usize, row_elems: usize) -> usize {
        let base = self.base[il];
        if pos0 + n - base > self.rows[il] {
            let keep_from = pos0.saturating_sub(self.window.saturating_sub(1)).max(base);
            let (from, to) = ((keep_from - base) * row_elems, (pos0 - base) * row_elems);
            self.k[il].copy_within(from..to, 0);
            self.v[il].copy_within(from..to, 0);
            self.base[il] = keep_from;
        }
        debug_assert!(pos0 + n - self.base[il] <= self.rows[il]);
        pos0 - self.base[il]
    }
}
