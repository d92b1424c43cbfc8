//! Peak resident memory of running a package (see the crate's design note).

use std::sync::Arc;

use alc_format::GgufFile;
use alc_models::Model;
use alc_tokenizer::Tokenizer;

use crate::FitError;

/// Resident memory of the process before any model is opened: the engine's code and
/// data, the C library, thread stacks and allocator state. Measured as the RSS of
/// `alc` on Linux x86-64 (release build) less the parts [`Estimator`] counts; an app
/// embedding the engine through the C ABI carries about the same.
pub const RUNTIME_BYTES: u64 = 8 << 20;

/// Page size the embedding-row bound assumes.
const PAGE: u64 = 4096;

/// The parts of a package's peak memory at one context, in bytes.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Estimate {
    pub ctx: usize,
    pub ctx_train: usize,
    pub ubatch: usize,
    pub threads: usize,
    /// Tensors read for every token: mapped from the file, or repacked by the
    /// backend (then the mapped pages are dropped): one copy is resident.
    pub weights_bytes: u64,
    /// An untied embedding table is read one row per token: the pages a full context
    /// of distinct tokens can touch (each row on its own page), at most the table.
    /// Zero when the output head is the table (then it is in `weights_bytes`).
    pub embedding_rows_bytes: u64,
    /// f16 keys and values at `ctx` (sliding-window layers hold their window).
    pub kv_cache_bytes: u64,
    /// The session's activations for `ubatch` tokens and one row of logits.
    pub activations_bytes: u64,
    /// The CPU backend's quantized activations and attention scratch.
    pub backend_scratch_bytes: u64,
    /// The GGUF header (metadata, tensor table): mapped pages read at open.
    pub header_bytes: u64,
    /// Heap of the parsed header (one allocation per vocabulary string).
    pub metadata_heap_bytes: u64,
    /// Heap of the tokenizer.
    pub tokenizer_bytes: u64,
    /// Sampling buffers: the candidates over the vocabulary.
    pub sampler_bytes: u64,
    /// [`RUNTIME_BYTES`].
    pub runtime_bytes: u64,
    /// Vision-language packages: the vision tower and projector (`v.*`, `mm.*`),
    /// mapped or repacked (one copy). Zero for text-only packages.
    pub vision_weights_bytes: u64,
    /// Vision-language packages: encoding one image of the largest tile grid — its
    /// tiles' pixels, one tile's encoder activations and backend scratch, and the
    /// image's projected rows. Zero for text-only packages.
    pub image_bytes: u64,
    pub total_bytes: u64,
}

/// The vision parts of an estimate (they do not depend on the context).
#[derive(Clone, Copy, Default)]
struct VisionCost {
    weights: u64,
    image: u64,
}

impl VisionCost {
    /// From the package's vision tower and processor config; zero when text-only.
    fn of(file: &Arc<GgufFile>, threads: usize) -> Result<VisionCost, FitError> {
        let Some(v) = alc_models::VisionModel::from_gguf(file.clone())? else {
            return Ok(VisionCost::default());
        };
        let hp = &v.hp;
        let weights = file
            .tensors()
            .iter()
            .filter(|t| t.name.starts_with("v.") || t.name.starts_with("mm."))
            .map(|t| t.bytes)
            .sum();
        // The largest grid: a square image at the processor's longest edge.
        let cfg = alc_image::ProcessorConfig::from_json(
            &hp.preprocessor_config,
            hp.processor_config.as_deref(),
        )?;
        let edge = cfg.longest_edge.max(cfg.max_image_size);
        let tiles = alc_image::plan(edge, edge, &cfg)?.n_tiles;
        let (np, d, ff) = (hp.n_patches, hp.n_embd, hp.n_ff);
        let wide = d * hp.scale_factor * hp.scale_factor;
        let floats = tiles * v.tile_floats()          // the image's pixels
            + np * 3 * hp.patch_size * hp.patch_size  // one tile's patch rows
            + 6 * np * d + np * ff                    // x, xb, q, k, v, att; the MLP
            + np * d                                  // the encoder output
            + hp.seq_len * (wide + hp.text_embd)      // the projector's input, output
            + tiles * hp.seq_len * hp.text_embd; // the image's projected rows
                                                 // Quantized activations of the tower's widest quantized matrix, for a tile.
        let act = file
            .tensors()
            .iter()
            .filter(|t| t.name.starts_with("v.blk.") && t.dims.len() == 2)
            .filter_map(|t| alc_quant::act_row_bytes(t.dtype, t.dims[0] as usize).ok())
            .max()
            .unwrap_or(0);
        let scratch = alc_kernels::cpu::encoder_scratch_bytes(threads, np, d / hp.n_head.max(1));
        Ok(VisionCost {
            weights,
            image: (floats * 4 + np * act) as u64 + scratch,
        })
    }
}

/// Estimates for one package at any context (the file is parsed once).
pub struct Estimator {
    model: Model,
    header_bytes: u64,
    metadata_heap_bytes: u64,
    tokenizer_bytes: u64,
    /// Widest quantized activation row and its block sums over the matmul weights.
    act_row_bytes: usize,
    act_sums: usize,
    threads: usize,
    vision: VisionCost,
}

impl Estimator {
    /// Parse `file` (its tensors are not read) and build its tokenizer to measure it.
    pub fn new(file: Arc<GgufFile>, threads: usize) -> Result<Estimator, FitError> {
        let tok = Tokenizer::from_gguf(&file)?;
        let tokenizer_bytes = tok.heap_bytes();
        drop(tok);
        let header_bytes = file.data_offset().next_multiple_of(PAGE);
        let metadata_heap_bytes = file.heap_bytes();
        let model = Model::from_gguf(file.clone())?;
        let (mut act_row_bytes, mut act_sums) = (0, 0);
        for t in file.tensors() {
            let vision = t.name.starts_with("v.") || t.name.starts_with("mm.");
            if t.dims.len() != 2
                || vision
                || t.name == model.tok_embd().name && !model.tied_output()
            {
                continue;
            }
            let cols = t.dims[0] as usize;
            if let Ok(b) = alc_quant::act_row_bytes(t.dtype, cols) {
                act_row_bytes = act_row_bytes.max(b);
            }
            act_sums = act_sums.max(alc_quant::packed::act_sums_len(t.dtype, cols));
        }
        let vision = VisionCost::of(&file, threads.max(1))?;
        Ok(Estimator {
            model,
            header_bytes,
            metadata_heap_bytes,
            tokenizer_bytes,
            act_row_bytes,
            act_sums,
            threads: threads.max(1),
            vision,
        })
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The context `alc run` uses without `--ctx` (the model's, capped by the
    /// engine's default KV budget).
    pub fn default_ctx(&self) -> usize {
        alc_engine::default_ctx(&self.model.hp, alc_engine::DEFAULT_KV_BUDGET_BYTES)
    }

    /// The estimate at `ctx` tokens with prefill chunks of at most `ubatch` (the
    /// engine's default: the largest prefill variant), as `alc run --ctx` uses them.
    pub fn estimate(&self, ctx: usize, ubatch: Option<usize>) -> Result<Estimate, FitError> {
        if ctx == 0 || ctx > 1 << 20 {
            return Err(FitError::BadArg {
                what: "--ctx",
                value: ctx as u64,
                why: "must be in 1..=1048576".into(),
            });
        }
        let ub = match ubatch {
            Some(u) if u == 0 || u > 8192 => {
                return Err(FitError::BadArg {
                    what: "--ubatch",
                    value: u as u64,
                    why: "must be in 1..=8192".into(),
                })
            }
            Some(u) => u,
            None => *alc_engine::PREFILL_VARIANTS.last().expect("non-empty"),
        }
        .min(ctx);
        let m = &self.model;
        let hp = &m.hp;
        let plan = m.memory_plan(ctx, ub);
        let emb = m.tok_embd();
        // The memory plan sums every tensor of the file; the vision tower is its own
        // part.
        let text_weights = plan.weights_bytes - self.vision.weights;
        let (weights_bytes, embedding_rows_bytes) = if m.tied_output() {
            (text_weights, 0)
        } else {
            let row = emb.bytes / hp.n_vocab.max(1) as u64;
            let touched = (ctx as u64).saturating_mul(row + PAGE).min(emb.bytes);
            (text_weights - emb.bytes, touched)
        };
        let backend_scratch_bytes = alc_kernels::cpu::scratch_bytes(
            self.threads,
            ub,
            self.act_row_bytes,
            self.act_sums,
            ctx,
            (hp.n_head, hp.n_kv_head, hp.head_dim),
        );
        // The sampler sorts (id, logit) candidates over the vocabulary.
        let sampler_bytes = (hp.n_vocab * 8) as u64;
        let parts = [
            weights_bytes,
            embedding_rows_bytes,
            plan.kv_cache_bytes,
            plan.scratch_bytes,
            backend_scratch_bytes,
            self.header_bytes,
            self.metadata_heap_bytes,
            self.tokenizer_bytes,
            sampler_bytes,
            RUNTIME_BYTES,
            self.vision.weights,
            self.vision.image,
        ];
        Ok(Estimate {
            ctx,
            ctx_train: hp.ctx_train,
            ubatch: ub,
            threads: self.threads,
            weights_bytes,
            embedding_rows_bytes,
            kv_cache_bytes: plan.kv_cache_bytes,
            activations_bytes: plan.scratch_bytes,
            backend_scratch_bytes,
            header_bytes: self.header_bytes,
            metadata_heap_bytes: self.metadata_heap_bytes,
            tokenizer_bytes: self.tokenizer_bytes,
            sampler_bytes,
            runtime_bytes: RUNTIME_BYTES,
            vision_weights_bytes: self.vision.weights,
            image_bytes: self.vision.image,
            total_bytes: parts.iter().sum(),
        })
    }

    /// The largest context in `1..=ctx_train` whose estimate is at most `budget`
    /// bytes, or `None` when not even one token fits.
    pub fn max_ctx(&self, budget: u64, ubatch: Option<usize>) -> Result<Option<usize>, FitError> {
        let fits = |c: usize| -> Result<bool, FitError> {
            Ok(self.estimate(c, ubatch)?.total_bytes <= budget)
        };
        let hi_bound = self.model.hp.ctx_train.clamp(1, 1 << 20);
        if !fits(1)? {
            return Ok(None);
        }
        // Memory grows with the context: bisection.
        let (mut lo, mut hi) = (1usize, hi_bound);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if fits(mid)? {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Ok(Some(lo))
    }
}
