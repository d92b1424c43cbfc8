//! `alc inspect`: what is in a GGUF model and what it will cost to run.
//! The JSON output (schema `alc.inspect/1`) is documented in docs/FORMAT.md.

use alc_format::GgufFile;
use alc_tokenizer::Tokenizer;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    file: FileInfo,
    architecture: String,
    name: Option<String>,
    supported: bool,
    unsupported_reason: Option<String>,
    hparams: Option<alc_models::HParams>,
    parameters: u64,
    quantization: BTreeMap<String, QuantEntry>,
    tokenizer: Option<TokInfo>,
    chat_template: bool,
    kv_cache: Option<KvInfo>,
    memory_plan: Option<alc_models::MemoryPlan>,
    /// The vision tower of a vision-language package (docs/FORMAT.md Part L).
    #[serde(skip_serializing_if = "Option::is_none")]
    vision: Option<VisionInfo>,
    tensors: Vec<TensorRow>,
}

#[derive(Serialize)]
struct VisionInfo {
    kind: String,
    #[serde(flatten)]
    params: alc_models::VisionParams,
    parameters: u64,
    /// The processor's largest image (longest edge) and tile grid limit.
    longest_edge: u32,
    splitting: bool,
    /// The token layout of one image split into rows × cols tiles.
    image_token_layout: String,
}

#[derive(Serialize)]
struct FileInfo {
    path: String,
    bytes: u64,
    gguf_version: u32,
    alignment: u64,
    n_tensors: usize,
    n_metadata: usize,
}

#[derive(Serialize, Default)]
struct QuantEntry {
    tensors: usize,
    parameters: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct TokInfo {
    kind: &'static str,
    pre: String,
    vocab_size: usize,
    bos: Option<(u32, String)>,
    eos: Option<(u32, String)>,
    eot: Option<(u32, String)>,
    end_of_generation: Vec<(u32, String)>,
    add_bos: bool,
    add_eos: bool,
    n_merges: usize,
    special_tokens: usize,
}

#[derive(Serialize)]
struct KvInfo {
    dtype: &'static str,
    ctx: usize,
    layers: usize,
    /// Per layer: K and V each `[ctx, n_kv_head, head_dim]`.
    shape: [usize; 3],
    bytes_per_token: usize,
    bytes: u64,
    sliding_window: Option<usize>,
    sliding_layers: usize,
    /// Rows each sliding-window layer holds (its window plus a micro-batch).
    sliding_rows: Option<usize>,
}

#[derive(Serialize)]
struct TensorRow {
    name: String,
    #[serde(rename = "type")]
    dtype: String,
    shape: Vec<u64>,
    bytes: u64,
}

pub fn inspect(path: &Path, ctx: Option<usize>, json: bool, list_tensors: bool) -> Result<()> {
    let f = Arc::new(
        GgufFile::open(path).with_context(|| format!("cannot inspect {}", path.display()))?,
    );
    let arch = f
        .get_str("general.architecture")?
        .unwrap_or("(missing)")
        .to_string();
    let mut quantization: BTreeMap<String, QuantEntry> = BTreeMap::new();
    for t in f.tensors() {
        let e = quantization.entry(t.dtype.name().to_string()).or_default();
        e.tensors += 1;
        e.parameters += t.n_elements();
        e.bytes += t.bytes;
    }
    let tok = Tokenizer::from_gguf(&f);
    let tokenizer = tok.as_ref().ok().map(|t| {
        let s = t.vocab_spec_summary();
        TokInfo {
            kind: s.kind,
            pre: s.pre,
            vocab_size: s.vocab_size,
            bos: s.bos,
            eos: s.eos,
            eot: s.eot,
            end_of_generation: s.eog,
            add_bos: s.add_bos,
            add_eos: s.add_eos,
            n_merges: s.n_merges,
            special_tokens: s.n_special,
        }
    });
    let model = alc_models::Model::from_gguf(f.clone());
    // Embedding packages are not decoders: they are supported when their encoder
    // builds (native) or their runtime is ONNX Runtime (`alc verify` checks the graph).
    let encoder = (f.get_str("general.architecture").ok().flatten() == Some("bert")).then(|| {
        if alc_convert::compile::is_onnx_package(&f) {
            Ok(())
        } else {
            alc_models::BertModel::from_gguf(f.clone())
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    });
    let (supported, reason) = match (&model, &tok, encoder) {
        (_, Err(e), _) => (false, Some(e.to_string())),
        (_, _, Some(Ok(()))) => (true, None),
        (_, _, Some(Err(e))) => (false, Some(e)),
        (Ok(_), Ok(_), None) => (true, None),
        (Err(e), _, None) => (false, Some(e.to_string())),
    };
    let (hparams, kv, plan) = match &model {
        Ok(m) => {
            let hp = &m.hp;
            // The context `alc run` would use (training context capped by the KV budget).
            let ctx = ctx.unwrap_or_else(|| {
                alc_engine::default_ctx(hp, alc_engine::DEFAULT_KV_BUDGET_BYTES)
            });
            let plan = m.memory_plan(ctx, alc_engine::PREFILL_VARIANTS[3]);
            let kv = KvInfo {
                dtype: "F16",
                ctx,
                layers: hp.n_layer,
                shape: [ctx, hp.n_kv_head, hp.head_dim],
                bytes_per_token: hp.kv_bytes_per_token(),
                bytes: plan.kv_cache_bytes,
                sliding_window: hp.swa_window,
                sliding_layers: hp.swa_layers.iter().filter(|&&s| s).count(),
                sliding_rows: hp
                    .swa_layers
                    .iter()
                    .position(|&s| s)
                    .map(|l| hp.kv_rows(l, ctx, alc_engine::PREFILL_VARIANTS[3])),
            };
            (Some(hp.clone()), Some(kv), Some(plan))
        }
        Err(_) => (None, None, None),
    };
    let vision = match alc_models::VisionModel::from_gguf(f.clone()) {
        Ok(Some(v)) => {
            let hp = v.hp.clone();
            let proc_cfg = alc_image::ProcessorConfig::from_json(
                &hp.preprocessor_config,
                hp.processor_config.as_deref(),
            );
            let (longest_edge, splitting) = match &proc_cfg {
                Ok(c) => (c.longest_edge, c.do_image_splitting),
                Err(_) => (0, false),
            };
            let parameters = f
                .tensors()
                .iter()
                .filter(|t| t.name.starts_with("v.") || t.name.starts_with("mm."))
                .map(|t| t.n_elements())
                .sum();
            let layout = format!(
                "each tile: <fake_token_around_image><row_R_col_C> + {n} x <image> (id {id}); after the grid: <fake_token_around_image><global-img> + {n} x <image><fake_token_around_image>",
                n = hp.seq_len,
                id = hp.image_token
            );
            Some(VisionInfo {
                kind: f
                    .get_str("alc.vlm.kind")
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .to_string(),
                params: hp,
                parameters,
                longest_edge,
                splitting,
                image_token_layout: layout,
            })
        }
        Ok(None) => None,
        Err(e) => {
            anyhow::bail!("{}: the vision tower is unreadable: {e}", path.display())
        }
    };
    let report = Report {
        schema: "alc.inspect/1",
        file: FileInfo {
            path: path.display().to_string(),
            bytes: f.file_len(),
            gguf_version: f.version,
            alignment: f.alignment(),
            n_tensors: f.tensors().len(),
            n_metadata: f.metadata().len(),
        },
        architecture: arch,
        name: f.get_str("general.name").ok().flatten().map(str::to_string),
        supported,
        unsupported_reason: reason,
        hparams,
        parameters: f.tensors().iter().map(|t| t.n_elements()).sum(),
        quantization,
        tokenizer,
        chat_template: f.get("tokenizer.chat_template").is_some(),
        kv_cache: kv,
        memory_plan: plan,
        vision,
        tensors: f
            .tensors()
            .iter()
            .map(|t| TensorRow {
                name: t.name.clone(),
                dtype: t.dtype.name().into(),
                shape: t.dims.clone(),
                bytes: t.bytes,
            })
            .collect(),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_text(&report, list_tensors);
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

fn print_text(r: &Report, list_tensors: bool) {
    println!(
        "file          {} ({}, GGUF v{}, {} tensors, {} metadata keys)",
        r.file.path,
        mib(r.file.bytes),
        r.file.gguf_version,
        r.file.n_tensors,
        r.file.n_metadata
    );
    println!(
        "architecture  {}{}",
        r.architecture,
        r.name
            .as_ref()
            .map(|n| format!(" — {n}"))
            .unwrap_or_default()
    );
    println!(
        "supported     {}",
        if r.supported {
            "yes".to_string()
        } else {
            format!("no: {}", r.unsupported_reason.as_deref().unwrap_or(""))
        }
    );
    println!(
        "parameters    {} ({:.1} M)",
        r.parameters,
        r.parameters as f64 / 1e6
    );
    if let Some(h) = &r.hparams {
        println!(
            "hparams       layers {}, embd {}, ffn {}, heads {} (kv {}), head dim {}, vocab {}, ctx_train {}, rope base {}{}, eps {:e}",
            h.n_layer,
            h.n_embd,
            h.n_ff,
            h.n_head,
            h.n_kv_head,
            h.head_dim,
            h.n_vocab,
            h.ctx_train,
            h.rope_base,
            if h.rope_base_swa != h.rope_base { format!(" (local {})", h.rope_base_swa) } else { String::new() },
            h.norm_eps
        );
    }
    println!("quantization");
    for (k, q) in &r.quantization {
        println!(
            "  {:<6} {:>4} tensors {:>12} params {:>12}",
            k,
            q.tensors,
            q.parameters,
            mib(q.bytes)
        );
    }
    if let Some(t) = &r.tokenizer {
        println!(
            "tokenizer     {} (pre '{}'), vocab {}, merges {}, {} special; bos {:?}, eos {:?}, add_bos {}, eog {:?}",
            t.kind, t.pre, t.vocab_size, t.n_merges, t.special_tokens, t.bos, t.eos, t.add_bos, t.end_of_generation
        );
    }
    println!(
        "chat template {}",
        if r.chat_template { "present" } else { "absent" }
    );
    if let Some(kv) = &r.kv_cache {
        println!(
            "kv cache      {} × 2 × {:?} {} per layer, {} B/token, {} at ctx {}{}",
            kv.layers,
            kv.shape,
            kv.dtype,
            kv.bytes_per_token,
            mib(kv.bytes),
            kv.ctx,
            match (kv.sliding_window, kv.sliding_rows) {
                (Some(w), Some(r)) => format!(
                    " ({} layers use a {w}-token window and hold {r} rows)",
                    kv.sliding_layers
                ),
                _ => String::new(),
            }
        );
    }
    if let Some(v) = &r.vision {
        let p = &v.params;
        println!(
            "vision tower  {} (SigLIP): {}x{} tiles, patch {}, {} patches, width {}, {} layers, {} heads, ffn {}, {} parameters",
            v.kind, p.image_size, p.image_size, p.patch_size, p.n_patches, p.n_embd, p.n_layer, p.n_head, p.n_ff, v.parameters
        );
        println!(
            "projector     pixel shuffle x{} then {} -> {}: {} image tokens per tile",
            p.scale_factor,
            p.n_embd * p.scale_factor * p.scale_factor,
            p.text_embd,
            p.seq_len
        );
        println!(
            "images        longest edge {} px, split into {}x{} tiles{} plus a global view; {}",
            v.longest_edge,
            p.image_size,
            p.image_size,
            if v.splitting {
                " (grid up to the longest edge)"
            } else {
                " (no splitting)"
            },
            v.image_token_layout
        );
    }
    if let Some(p) = &r.memory_plan {
        println!(
            "memory plan   weights {} + kv {} + scratch {} = {}",
            mib(p.weights_bytes),
            mib(p.kv_cache_bytes),
            mib(p.scratch_bytes),
            mib(p.total_bytes)
        );
    }
    if list_tensors {
        for t in &r.tensors {
            println!("  {:<40} {:<6} {:?} {}", t.name, t.dtype, t.shape, t.bytes);
        }
    }
}
