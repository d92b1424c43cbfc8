//! Real weights through `alc compile`'s GGUF front end: SmolLM2-135M-Instruct
//! (Q4_1, the default model) repackaged, converted to f16 and re-quantised to
//! q4f16_1, each checked against the original file's logits in alc's engine over
//! the fixed text of the llama.cpp logit goldens (scripts/goldens/logits_text.txt).

mod common;

use alc_convert::{compile, CompileOptions, Outcome};
use common::{compare, log_probs};
use std::path::{Path, PathBuf};

const TOKENS: usize = 512;

fn build(input: &Path, out: &Path, quant: Option<&str>) -> PathBuf {
    let opts = CompileOptions {
        quant: quant.map(str::to_string),
        ctx: Some(1024),
        threads: 2,
        ..CompileOptions::new(input, out)
    };
    match compile(&opts, &mut |_| {}).unwrap() {
        Outcome::Built(r) => {
            assert_eq!(r.verification, "verified");
            r.package
        }
        Outcome::UpToDate { .. } => panic!("fresh directory reported up to date"),
    }
}

#[test]
fn smollm2_repackaged_converted_and_requantised() {
    let Some(src) = alc_testdata::model("smollm2-135m-instruct-q4_1.gguf") else {
        return;
    };
    let text =
        std::fs::read_to_string(alc_testdata::workspace().join("scripts/goldens/logits_text.txt"))
            .unwrap();
    let f = alc_format::GgufFile::open(&src).unwrap();
    let tok = alc_tokenizer::Tokenizer::from_gguf(&f).unwrap();
    let mut tokens = tok.encode(&text, true, false).unwrap();
    tokens.truncate(TOKENS);
    assert_eq!(tokens.len(), TOKENS);

    let dir = tempfile::tempdir().unwrap();
    let same = build(&src, dir.path(), None);
    let f16 = build(&src, dir.path(), Some("f16"));
    let q4 = build(&src, dir.path(), Some("q4f16_1"));
    assert!(same
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("AVA-LL32-135M"));

    let base = log_probs(&src, &tokens);
    // Repackaging keeps every tensor's bytes: identical logits.
    assert_eq!(log_probs(&same, &tokens), base, "repackaged logits differ");
    let (top1, kl) = compare(&base, &log_probs(&f16, &tokens));
    eprintln!("f16 vs original Q4_1: top-1 {top1:.4}, KL {kl:.5}");
    // Not ≥ 99.5 %: the original's Q4_1 matmuls quantise activations to 8 bits
    // (as llama.cpp does), the f16 package's do not, so near-ties flip; measured
    // 95.9 % top-1 with KL 0.0027 over these 512 tokens.
    assert!(
        top1 >= 0.94 && kl < 0.01,
        "f16 vs original: top-1 {top1}, KL {kl}"
    );
    let f16_lp = log_probs(&f16, &tokens);
    let (top1, kl) = compare(&f16_lp, &log_probs(&q4, &tokens));
    eprintln!("q4f16_1 vs f16: top-1 {top1:.4}, KL {kl:.5}");
    // Re-quantising Q4_1's grid to Q4_0 on a 135M model costs a lot (measured KL
    // 0.29); a broken quantiser costs nats. Where llama.cpp's own Q4_0 of the same
    // file exists (scripts/build-llamacpp.sh --make-q4_0, llama-quantize), ours must
    // be as faithful within 15 % (measured 2026-11-23: top-1 and KL identical to
    // llama-quantize's, 0.6914 / 0.29245).
    assert!(kl < 0.5, "q4f16_1 KL vs f16 {kl}");
    // q4bf16_1 (alc's Q4BF16_1: Q4_0 with a bf16 scale) is as faithful as q4f16_1
    // within the cost of bf16's coarser scale.
    let bf = build(&src, dir.path(), Some("q4bf16_1"));
    let (top1_bf, kl_bf) = compare(&f16_lp, &log_probs(&bf, &tokens));
    eprintln!("q4bf16_1 vs f16: top-1 {top1_bf:.4}, KL {kl_bf:.5}");
    assert!(kl_bf <= 1.25 * kl, "q4bf16_1 KL {kl_bf} vs q4f16_1 {kl}");
    let ref_q4 = alc_testdata::models_dir().join("smollm2-135m-instruct-q4_0.gguf");
    if ref_q4.exists() {
        let (rtop1, rkl) = compare(&f16_lp, &log_probs(&ref_q4, &tokens));
        eprintln!("llama-quantize Q4_0 vs f16: top-1 {rtop1:.4}, KL {rkl:.5}");
        assert!(
            kl <= 1.15 * rkl,
            "q4f16_1 KL {kl} vs llama.cpp's Q4_0 {rkl}"
        );
    }
}
