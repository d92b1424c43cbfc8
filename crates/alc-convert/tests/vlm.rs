//! A tiny random-weight Idefics3 (SmolVLM-shaped) checkpoint (tests/fixtures/hf/idefics3,
//! made by scripts/goldens/gen_tiny_vlm.py) compiled into one package (docs/FORMAT.md
//! Part L) must reproduce transformers' float32 stages (tests/goldens/vlm-tiny): the
//! vision encoder's last hidden state (after post_layernorm), the connector output,
//! the merged input embeddings and the logits at every position, for a non-square
//! photo (13 tiles) and a prompt with a gray and an RGB image (22 tiles).
//!
//! Tolerance: relative L2 error ≤ 1e-4 for every stage with the f32 package, the f32
//! KV cache and the exact (float32 scalar) backend — the issue's bound, as in
//! hf_tiny.rs. The CPU backend (f16 queries in attention, f16 KV cache by default) is
//! run with the f32 KV cache and held to 2.5e-3 (hf_tiny.rs's bound for it), plus top-1
//! agreement where transformers' top two differ by more than 1e-2.
//!
//! alc-image's preprocessing of the stored PNGs with the checkpoint's own processor
//! config must give the processor's grid, the same input ids (expanded prompt through
//! the package's tokenizer) and pixel values within 1/255.

mod common;

use alc_convert::{compile, Outcome};
use alc_format::GgufFile;
use alc_kernels::Backend;
use alc_models::{KvType, Logits, Seg, VisionModel};
use common::*;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn goldens() -> PathBuf {
    alc_testdata::workspace().join("tests/goldens/vlm-tiny")
}

fn manifest() -> Json {
    serde_json::from_slice(&std::fs::read(goldens().join("manifest.json")).unwrap()).unwrap()
}

fn read_f32(case: &str, name: &str) -> Vec<f32> {
    let b = std::fs::read(goldens().join(case).join(format!("{name}.bin"))).unwrap();
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn shape(m: &Json, case: &str, name: &str) -> Vec<usize> {
    m["cases"][case]["shapes"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

fn ids(m: &Json, case: &str) -> Vec<u32> {
    m["cases"][case]["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn build(input: &Path, quant: &str, out: &Path) -> PathBuf {
    match compile(&options(input, out, quant), &mut |_| {}).unwrap() {
        Outcome::Built(r) => {
            assert_eq!(r.verification, "verified", "self-check");
            r.package
        }
        Outcome::UpToDate { .. } => panic!("fresh output dir reported up to date"),
    }
}

/// ‖a − b‖ / ‖b‖ and the largest absolute difference.
fn rel_err(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (mut num, mut den, mut mx) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let d = f64::from(x) - f64::from(y);
        num += d * d;
        den += f64::from(y) * f64::from(y);
        mx = mx.max(d.abs());
    }
    ((num / den).sqrt(), mx)
}

const CASES: [&str; 2] = ["photo", "two_images"];

#[test]
fn package_has_part_l_keys_and_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixture("idefics3");
    let pkg = build(&fx, "f32", dir.path());
    let f = GgufFile::open(&pkg).unwrap();
    let m = manifest();
    let u = |k: &str| f.req_u64(k).unwrap();
    assert_eq!(f.req_str("general.architecture").unwrap(), "llama");
    assert_eq!(
        f.req_str("alc.source.architecture").unwrap(),
        "Idefics3ForConditionalGeneration"
    );
    assert_eq!(f.req_str("alc.vlm.kind").unwrap(), "idefics3");
    for (k, v) in [
        ("alc.vision.image_size", 64),
        ("alc.vision.patch_size", 16),
        ("alc.vision.embedding_length", 32),
        ("alc.vision.block_count", 2),
        ("alc.vision.head_count", 4),
        ("alc.vision.feed_forward_length", 64),
        ("alc.projector.scale_factor", 2),
        ("alc.image.seq_len", 4),
        ("alc.image.token_id", m["image_token_id"].as_u64().unwrap()),
        ("llama.vocab_size", m["vocab_size"].as_u64().unwrap()),
        ("llama.embedding_length", 64),
    ] {
        assert_eq!(u(k), v, "{k}");
    }
    assert_eq!(f.req_f32("alc.vision.layer_norm_epsilon").unwrap(), 1e-6);
    assert_eq!(
        f.req_str("alc.vision.hidden_act").unwrap(),
        "gelu_pytorch_tanh"
    );
    for (key, file) in [
        ("alc.image.preprocessor_config", "preprocessor_config.json"),
        ("alc.image.processor_config", "processor_config.json"),
    ] {
        let want = std::fs::read_to_string(fx.join(file)).unwrap();
        assert_eq!(f.req_str(key).unwrap(), want, "{key} is the file verbatim");
    }
    // The image tokens are in the vocabulary, <image> at alc.image.token_id.
    let tokens = f.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap();
    assert_eq!(tokens.len(), 424);
    assert_eq!(tokens[u("alc.image.token_id") as usize], "<image>");
    for t in [
        "<fake_token_around_image>",
        "<global-img>",
        "<row_4_col_4>",
        "<end_of_utterance>",
    ] {
        assert!(tokens.contains(&t), "{t} missing");
    }

    // Tensor names and GGUF dims (torch shape reversed), all f32.
    let dims = |n: &str| -> Vec<u64> {
        let t = f.tensor(n).unwrap_or_else(|| panic!("{n} missing"));
        assert_eq!(t.dtype, alc_core::DType::F32, "{n}");
        t.dims.clone()
    };
    assert_eq!(dims("v.patch_embd.weight"), [768, 32]);
    assert_eq!(dims("v.patch_embd.bias"), [32]);
    assert_eq!(dims("v.position_embd.weight"), [32, 16]);
    for i in 0..2 {
        for n in ["ln1", "ln2"] {
            assert_eq!(dims(&format!("v.blk.{i}.{n}.weight")), [32]);
            assert_eq!(dims(&format!("v.blk.{i}.{n}.bias")), [32]);
        }
        for n in ["attn_q", "attn_k", "attn_v", "attn_out"] {
            assert_eq!(dims(&format!("v.blk.{i}.{n}.weight")), [32, 32]);
            assert_eq!(dims(&format!("v.blk.{i}.{n}.bias")), [32]);
        }
        assert_eq!(dims(&format!("v.blk.{i}.ffn_up.weight")), [32, 64]);
        assert_eq!(dims(&format!("v.blk.{i}.ffn_up.bias")), [64]);
        assert_eq!(dims(&format!("v.blk.{i}.ffn_down.weight")), [64, 32]);
        assert_eq!(dims(&format!("v.blk.{i}.ffn_down.bias")), [32]);
    }
    assert_eq!(dims("v.post_ln.weight"), [32]);
    assert_eq!(dims("v.post_ln.bias"), [32]);
    assert_eq!(dims("mm.proj.weight"), [128, 64]);
    assert_eq!(dims("output.weight"), [64, 424]);
    assert_eq!(dims("token_embd.weight"), [64, 424]);
    assert!(f.tensors().iter().all(|t| !t.name.contains("vision_model")));
    // 2 vision layers × 16 tensors + 6; text 2 × 9 + 3.
    assert_eq!(f.tensors().len(), 2 * 16 + 6 + 2 * 9 + 3);

    // The patch matrix is the conv weight reshaped: row o, column (c·p + y)·p + x.
    let st = alc_format::HfTensors::open(&fx).unwrap();
    let conv = st
        .to_f32("model.vision_model.embeddings.patch_embedding.weight")
        .unwrap();
    let t = f.tensor("v.patch_embd.weight").unwrap();
    let got: Vec<f32> = f
        .tensor_data(t)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got, conv);

    // alc.parameter_count counts every tensor, the vision tower's included.
    let n: u64 = f
        .tensors()
        .iter()
        .map(|t| t.dims.iter().product::<u64>())
        .sum();
    assert_eq!(u("alc.parameter_count"), n);
}

/// Under quantised schemes the encoder layers and the projector are Q8_0 and the
/// embeddings F16; the encoder output stays within 2e-2 relative of transformers'
/// f32 (measured 9.8e-3 on this 32-wide, 2-layer fixture; F16: 3e-4, bound 1e-3).
#[test]
fn quantised_schemes_put_vision_layers_in_q8_0() {
    use alc_core::DType::{F16, Q4_0, Q8_0};
    let dir = tempfile::tempdir().unwrap();
    for (quant, text, layers, embd, bound) in [
        ("f16", F16, F16, F16, 1e-3),
        ("q4f16_1", Q4_0, Q8_0, F16, 2e-2),
        ("q8f16_1", Q8_0, Q8_0, F16, 2e-2),
    ] {
        let pkg = build(&fixture("idefics3"), quant, dir.path());
        let f = GgufFile::open(&pkg).unwrap();
        assert_eq!(
            f.tensor("blk.0.attn_q.weight").unwrap().dtype,
            text,
            "{quant}"
        );
        for n in ["v.patch_embd.weight", "v.position_embd.weight"] {
            assert_eq!(f.tensor(n).unwrap().dtype, embd, "{quant} {n}");
        }
        for n in [
            "v.blk.1.attn_q.weight",
            "v.blk.0.attn_out.weight",
            "v.blk.0.ffn_up.weight",
            "v.blk.0.ffn_down.weight",
            "mm.proj.weight",
        ] {
            assert_eq!(f.tensor(n).unwrap().dtype, layers, "{quant} {n}");
        }
        for n in ["v.patch_embd.bias", "v.blk.0.ln1.weight", "v.post_ln.bias"] {
            assert_eq!(
                f.tensor(n).unwrap().dtype,
                alc_core::DType::F32,
                "{quant} {n}"
            );
        }
        // It loads, and encodes a tile.
        let file = Arc::new(GgufFile::open(&pkg).unwrap());
        let mut vm = VisionModel::from_gguf(file).unwrap().unwrap();
        let be = alc_kernels::cpu::CpuBackend::new(2);
        vm.pack_weights(&be);
        let px = read_f32("photo", "pixel_values");
        let h = vm.encode(&be, &px[..vm.tile_floats()]).unwrap();
        let want = read_f32("photo", "vision_hidden");
        let (rel, _) = rel_err(&h, &want[..h.len()]);
        eprintln!("{quant}: vision encoder rel err {rel:.2e} (cpu backend)");
        assert!(rel < bound, "{quant}: {rel}");
    }
}

struct Stages {
    vision: (f64, f64),
    proj: (f64, f64),
    embeds: (f64, f64),
    logits: (f64, f64),
    flips: usize,
}

fn run_case(pkg: &Path, case: &str, be: &dyn Backend) -> Stages {
    let m = manifest();
    let file = Arc::new(GgufFile::open(pkg).unwrap());
    let mut vm = VisionModel::from_gguf(file.clone()).unwrap().unwrap();
    vm.pack_weights(be);
    let px = read_f32(case, "pixel_values");
    assert_eq!(
        px.len(),
        shape(&m, case, "pixel_values").iter().product::<usize>()
    );
    let hidden = vm.encode(be, &px).unwrap();
    let want_hidden = read_f32(case, "vision_hidden");
    let vision = rel_err(&hidden, &want_hidden);
    // The projector from transformers' own encoder output, so each stage is judged
    // on its own.
    let proj = vm.project(be, &want_hidden).unwrap();
    let want_proj = read_f32(case, "image_features");
    let proj_err = rel_err(&proj, &want_proj);

    let mut model = alc_models::Model::from_gguf(file.clone()).unwrap();
    model.pack_weights(be);
    let tokens = ids(&m, case);
    let image_id = vm.hp.image_token;
    let n = tokens.len();
    let d = model.hp.n_embd;
    // The merged embeddings: token rows, with the image rows at the <image> positions.
    let emb_t = model.tok_embd();
    let emb_data = file.tensor_data(emb_t);
    let rb = emb_t.dtype.row_bytes(d as u64).unwrap() as usize;
    let mut merged = Vec::with_capacity(n * d);
    let mut rows = proj.chunks_exact(d);
    for &t in &tokens {
        if t == image_id {
            merged.extend_from_slice(rows.next().unwrap());
        } else {
            let mut row = vec![0f32; d];
            alc_quant::dequantize(emb_t.dtype, &emb_data[t as usize * rb..][..rb], &mut row)
                .unwrap();
            merged.extend_from_slice(&row);
        }
    }
    assert!(rows.next().is_none(), "one projected row per <image> token");
    let embeds = rel_err(&merged, &read_f32(case, "inputs_embeds"));

    let mut st = model.new_state_with(n, n, KvType::F32).unwrap();
    let mut sc = model.new_scratch(n);
    model
        .forward_batch(
            be,
            &mut sc,
            &mut [Seg {
                state: &mut st,
                tokens: &tokens,
                logits: Logits::All,
                embeds: Some((image_id, &proj)),
            }],
        )
        .unwrap();
    let got = st.logits().to_vec();
    let want = read_f32(case, "logits");
    let v = model.hp.n_vocab;
    assert_eq!(shape(&m, case, "logits"), [n, v]);
    let logits = rel_err(&got, &want);
    let g: Vec<Vec<f32>> = got.chunks(v).map(<[f32]>::to_vec).collect();
    let w: Vec<Vec<f32>> = want.chunks(v).map(<[f32]>::to_vec).collect();
    Stages {
        vision,
        proj: proj_err,
        embeds,
        logits,
        flips: top1_flips(&g, &w),
    }
}

#[test]
fn f32_package_matches_transformers_stage_by_stage() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = build(&fixture("idefics3"), "f32", dir.path());
    let mut failures = Vec::new();
    for case in CASES {
        for (be_name, be, bound) in [
            (
                "exact",
                Box::new(alc_kernels::reference::ExactBackend) as Box<dyn Backend>,
                1e-4,
            ),
            (
                "cpu",
                Box::new(alc_kernels::cpu::CpuBackend::new(2)),
                2.5e-3,
            ),
        ] {
            let s = run_case(&pkg, case, be.as_ref());
            for (stage, (rel, max_abs)) in [
                ("vision", s.vision),
                ("projector", s.proj),
                ("inputs_embeds", s.embeds),
                ("logits", s.logits),
            ] {
                eprintln!("{case:10} {be_name:5} {stage:13} rel {rel:.2e} max_abs {max_abs:.2e}");
                if rel.is_nan() || rel > bound {
                    failures.push(format!(
                        "{case}/{be_name}/{stage}: rel {rel:.3e} > {bound:e}"
                    ));
                }
            }
            if s.flips > 0 {
                failures.push(format!(
                    "{case}/{be_name}: top-1 differs at {} positions",
                    s.flips
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn alc_image_preprocessing_matches_the_processor() {
    let m = manifest();
    let fx = fixture("idefics3");
    let pre = std::fs::read_to_string(fx.join("preprocessor_config.json")).unwrap();
    let proc_ = std::fs::read_to_string(fx.join("processor_config.json")).unwrap();
    let cfg = alc_image::ProcessorConfig::from_json(&pre, Some(&proc_)).unwrap();
    assert_eq!(cfg.image_seq_len, 4);
    let dir = tempfile::tempdir().unwrap();
    let pkg = build(&fx, "f32", dir.path());
    let tok = alc_tokenizer::Tokenizer::from_gguf(&GgufFile::open(&pkg).unwrap()).unwrap();
    for case in CASES {
        let c = &m["cases"][case];
        let mut pixels = Vec::new();
        let mut grids = Vec::new();
        for (i, im) in c["images"].as_array().unwrap().iter().enumerate() {
            let bytes =
                std::fs::read(goldens().join(case).join(im["file"].as_str().unwrap())).unwrap();
            let img = alc_image::decode(&bytes, &alc_image::DecodeOptions::default()).unwrap();
            let px = alc_image::preprocess(&img, &cfg).unwrap();
            let want = &c["grids"][i];
            assert_eq!(
                [px.rows, px.cols],
                [
                    want[0].as_u64().unwrap() as u32,
                    want[1].as_u64().unwrap() as u32
                ],
                "{case} image {i} grid"
            );
            grids.push((px.rows, px.cols));
            pixels.extend_from_slice(&px.pixel_values);
        }
        let want_px = read_f32(case, "pixel_values");
        assert_eq!(pixels.len(), want_px.len(), "{case}: tile count");
        let max = pixels
            .iter()
            .zip(&want_px)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{case}: pixel max abs diff {max:.2e}");
        assert!(max <= 1.0 / 255.0 + 1e-6, "{case}: pixel diff {max}");

        let prompt = c["prompt"].as_str().unwrap();
        let text = alc_image::expand_prompt(prompt, &grids, cfg.image_seq_len).unwrap();
        assert_eq!(
            text,
            c["expanded_prompt"].as_str().unwrap(),
            "{case}: expanded prompt"
        );
        let got = tok.encode(&text, false, true).unwrap();
        assert_eq!(got, ids(&m, case), "{case}: input ids");
    }
}

// ---- bad input ----

/// A copy of the fixture in a temp dir, edited by `edit_config` and `edit_tensors`.
fn broken(
    edit_config: impl FnOnce(&mut Json),
    edit_tensors: impl FnOnce(&mut Vec<Owned>),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture("idefics3")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let cp = dir.path().join("config.json");
    let mut j: Json = serde_json::from_slice(&std::fs::read(&cp).unwrap()).unwrap();
    edit_config(&mut j);
    std::fs::write(&cp, serde_json::to_vec_pretty(&j).unwrap()).unwrap();
    rewrite_safetensors(&dir.path().join("model.safetensors"), edit_tensors);
    dir
}

fn compile_err(input: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let e = match compile(&options(input, out.path(), "f32"), &mut |_| {}) {
        Ok(_) => panic!("{}: compile must fail", input.display()),
        Err(e) => e.to_string(),
    };
    assert!(!e.contains('\n'), "not one line: {e}");
    eprintln!("{e}");
    e
}

#[test]
fn bad_checkpoints_give_one_line_errors() {
    // A vision tensor missing.
    let gone = "model.vision_model.encoder.layers.1.self_attn.k_proj.weight";
    let d = broken(|_| {}, |ts| ts.retain(|t| t.0 != gone));
    let e = compile_err(d.path());
    assert!(
        e.contains(gone) && e.contains("v.blk.1.attn_k.weight"),
        "{e}"
    );

    // The projector missing.
    let gone = "model.connector.modality_projection.proj.weight";
    let d = broken(|_| {}, |ts| ts.retain(|t| t.0 != gone));
    let e = compile_err(d.path());
    assert!(e.contains(gone), "{e}");

    // config.json's vision width differs from the tensors'.
    let d = broken(|j| j["vision_config"]["hidden_size"] = 48.into(), |_| {});
    let e = compile_err(d.path());
    assert!(
        e.contains("model.vision_model.") && e.contains("48") && e.contains("32"),
        "{e}"
    );

    // scale_factor that does not divide the 4x4 patch grid.
    let d = broken(|j| j["scale_factor"] = 3.into(), |_| {});
    let e = compile_err(d.path());
    assert!(
        e.contains("'scale_factor'") && e.contains("4x4 patch grid"),
        "{e}"
    );

    // heads that do not divide the vision width.
    let d = broken(
        |j| j["vision_config"]["num_attention_heads"] = 5.into(),
        |_| {},
    );
    let e = compile_err(d.path());
    assert!(e.contains("vision_config.num_attention_heads"), "{e}");

    // Another activation.
    let d = broken(|j| j["vision_config"]["hidden_act"] = "gelu".into(), |_| {});
    let e = compile_err(d.path());
    assert!(
        e.contains("vision_config.hidden_act") && e.contains("'gelu'"),
        "{e}"
    );

    // A vision tensor the tower does not have.
    let d = broken(
        |_| {},
        |ts| {
            ts.push((
                "model.vision_model.encoder.layers.7.mlp.fc1.bias".into(),
                safetensors::Dtype::F32,
                vec![64],
                vec![0; 256],
            ))
        },
    );
    let e = compile_err(d.path());
    assert!(
        e.contains("model.vision_model.encoder.layers.7.mlp.fc1.bias"),
        "{e}"
    );

    // No preprocessor_config.json.
    let d = broken(|_| {}, |_| {});
    std::fs::remove_file(d.path().join("preprocessor_config.json")).unwrap();
    let e = compile_err(d.path());
    assert!(e.contains("preprocessor_config.json"), "{e}");

    // A processor image_seq_len the tower does not give.
    let d = broken(|_| {}, |_| {});
    std::fs::write(
        d.path().join("processor_config.json"),
        r#"{"image_seq_len": 64}"#,
    )
    .unwrap();
    let e = compile_err(d.path());
    assert!(e.contains("image_seq_len") && e.contains("64"), "{e}");

    // Another multimodal architecture.
    let d = broken(
        |j| {
            j["architectures"] = serde_json::json!(["LlavaForConditionalGeneration"]);
            j["model_type"] = "llava".into();
        },
        |_| {},
    );
    let e = compile_err(d.path());
    assert!(
        e.contains("LlavaForConditionalGeneration")
            && e.contains("Idefics3ForConditionalGeneration")
            && e.contains("SmolVLMForConditionalGeneration"),
        "{e}"
    );
}
