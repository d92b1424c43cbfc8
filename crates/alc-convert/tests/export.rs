//! `alc export --hf` on the real models, and back through `alc compile`:
//! SmolLM2-135M-Instruct (llama arch, Q4_1: the q/k rope permutation is undone),
//! Qwen2.5-Coder-0.5B-Instruct (qwen2, Q4_K_M, q/k/v biases, sharded output) and
//! Gemma-3-270M (gemma3, Q4_K_M, SentencePiece vocabulary rebuilt as a BPE with
//! byte fallback).
//!
//! The exported checkpoint must be a real Hugging Face checkpoint: the safetensors
//! files parse with the `safetensors` crate, tokenizer.json gives llama.cpp's token
//! ids in the `tokenizers` library (scripts/hf_tokenizer_check.py, where Python has
//! it). Compiled back to f16 it must give the very tensors and vocabulary that
//! compiling the GGUF itself to f16 gives (SentencePiece scores: the same ranking),
//! load in llama.cpp and tokenize the golden texts to llama.cpp's golden ids there,
//! and give logits within top-1 ≥ 99.5 % of the original weights evaluated exactly
//! (the GGUF compiled to f32: dequantised, no activation quantisation); q4f16_1
//! from the checkpoint must cost no more KL than q4f16_1 from the GGUF.

mod common;

use alc_convert::{compile, export_hf, ExportOptions, Outcome};
use alc_format::{GgufFile, Value};
use common::{compare, log_probs};
use std::path::{Path, PathBuf};

/// Compile `input` to `quant` as `{tag}-{quant}.alm` in `out`.
fn build(input: &Path, out: &Path, tag: &str, quant: &str) -> PathBuf {
    let mut opts = common::options(input, out, quant);
    opts.ctx = Some(1024);
    opts.name = Some(format!("{tag}-{quant}.alm"));
    match compile(&opts, &mut |_| {}).unwrap() {
        Outcome::Built(r) => {
            assert_eq!(r.verification, "verified", "{}", r.package.display());
            r.package
        }
        Outcome::UpToDate { path, .. } => path,
    }
}

/// Same tensors (names, types, shapes, bytes) in both files.
fn assert_same_tensors(a: &Path, b: &Path) {
    let (fa, fb) = (GgufFile::open(a).unwrap(), GgufFile::open(b).unwrap());
    assert_eq!(fa.tensors().len(), fb.tensors().len());
    for ta in fa.tensors() {
        let tb = fb
            .tensor(&ta.name)
            .unwrap_or_else(|| panic!("{} lacks {}", b.display(), ta.name));
        assert_eq!((ta.dtype, &ta.dims), (tb.dtype, &tb.dims), "{}", ta.name);
        assert!(
            fa.tensor_data(ta) == fb.tensor_data(tb),
            "{}: data differs",
            ta.name
        );
    }
}

/// Every `tokenizer.*` key of `want` has the same value in `got`.
fn assert_same_vocabulary(got: &Path, want: &Path) {
    let (g, w) = (GgufFile::open(got).unwrap(), GgufFile::open(want).unwrap());
    for (k, v) in w.metadata() {
        if !k.starts_with("tokenizer.") {
            continue;
        }
        let gv: Option<&Value> = g.get(k);
        // Flags llama.cpp's converter writes at their defaults (BPE never adds a space
        // prefix; no model here adds a separator).
        if matches!(
            k.as_str(),
            "tokenizer.ggml.add_space_prefix" | "tokenizer.ggml.add_sep_token"
        ) && gv.is_none()
            && *v == Value::Bool(false)
        {
            continue;
        }
        // tokenizer.json holds no SentencePiece scores: compile derives them from the
        // piece order, which must rank the normal pieces as the original scores do.
        if k == "tokenizer.ggml.scores" {
            let rank = |f: &GgufFile| {
                let s = f.get_f32_array(k).unwrap().unwrap();
                let t = f
                    .get_i64_array("tokenizer.ggml.token_type")
                    .unwrap()
                    .unwrap();
                let mut ids: Vec<usize> = (0..s.len()).filter(|&i| t[i] == 1).collect();
                ids.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
                ids
            };
            assert!(
                rank(&g) == rank(&w),
                "the scores rank the pieces differently"
            );
            continue;
        }
        assert!(
            gv == Some(v),
            "{k}: {:?} vs {:?}",
            summary(gv),
            summary(Some(v))
        );
    }
}

fn summary(v: Option<&Value>) -> String {
    let s = format!("{v:?}");
    s.chars().take(120).collect()
}

/// scripts/hf_tokenizer_check.py against the llama.cpp goldens; skipped (with a
/// message) where Python lacks the `tokenizers` module.
fn check_tokenizer_json(dir: &Path, golden: &str, allow: &[&str]) {
    let ws = alc_testdata::workspace();
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(ws.join("scripts/hf_tokenizer_check.py"))
        .arg(dir.join("tokenizer.json"))
        .arg(ws.join("tests/goldens/tokenizer").join(golden));
    for a in allow {
        cmd.arg("--allow").arg(a);
    }
    let out = cmd.output().expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => eprintln!("tokenizers: {}", text.trim()),
        Some(2) => eprintln!(
            "skipped the tokenizers check: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        _ => panic!(
            "tokenizer.json vs llama.cpp:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// llama.cpp (scripts/llamacpp_check.py, the `xllamacpp` wheel) loads the package
/// and tokenizes the golden texts (special tokens parsed, none added) to llama.cpp's
/// golden ids; skipped (with a message) where Python lacks `xllamacpp`.
fn check_llamacpp_tokenizes(pkg: &Path, golden: &str, allow: &[&str]) {
    let ws = alc_testdata::workspace();
    let g: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ws.join("tests/goldens/tokenizer").join(golden)).unwrap(),
    )
    .unwrap();
    let cases: Vec<&serde_json::Value> = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parse_special"] == true && c["add_special"] == false)
        .filter(|c| !allow.contains(&c["text"].as_str().unwrap()))
        .collect();
    assert!(cases.len() >= 10, "{golden}: {} cases", cases.len());
    let texts = pkg.with_extension("texts.json");
    let list: Vec<&serde_json::Value> = cases.iter().map(|c| &c["text"]).collect();
    std::fs::write(&texts, serde_json::to_vec(&list).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .arg(ws.join("scripts/llamacpp_check.py"))
        .arg(pkg)
        .arg("--texts-json")
        .arg(&texts)
        .arg("--no-logprobs")
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        eprintln!("skipped the llama.cpp check: {stderr}");
        return;
    }
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("llamacpp_check.py on {}: {stderr}", pkg.display()));
    let got = r["tokenize"].as_array().unwrap();
    assert_eq!(got.len(), cases.len());
    for (g, c) in got.iter().zip(&cases) {
        assert_eq!(g["ids"], c["ids"], "llama.cpp's ids of {}", c["text"]);
    }
    eprintln!(
        "llama.cpp loads {} and tokenizes {} texts as its goldens",
        pkg.display(),
        cases.len()
    );
}

fn round_trip(model: &str, golden: &str, allow: &[&str], n_tokens: usize, shard: Option<u64>) {
    let Some(src) = alc_testdata::model(model) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("hf");
    let mut opts = ExportOptions::new(&src, &dir);
    if let Some(s) = shard {
        opts.max_shard_bytes = s;
    }
    let r = export_hf(&opts, &mut |_| {}).unwrap();
    eprintln!(
        "{model}: exported {} tensors, {} bytes, {:?} in {:.1} s",
        r.tensors, r.bytes, r.shards, r.seconds
    );
    assert_eq!(r.shards.len() > 1, shard.is_some());
    // Real safetensors: the reference parser reads every shard, and the index (when
    // sharded) names every tensor's file.
    let mut names = Vec::new();
    for s in &r.shards {
        let bytes = std::fs::read(dir.join(s)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, view) in st.tensors() {
            let want = if view.shape().len() == 1 {
                safetensors::Dtype::F32
            } else {
                safetensors::Dtype::F16
            };
            assert_eq!(view.dtype(), want, "{name}");
            names.push((name, s.clone()));
        }
    }
    assert_eq!(names.len(), r.tensors);
    if shard.is_some() {
        let index: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        for (name, file) in &names {
            assert_eq!(index["weight_map"][name], file.as_str(), "{name}");
        }
    }
    // No temporary directory left beside the output.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("hf")]);
    check_tokenizer_json(&dir, golden, allow);

    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let from_hf = build(&dir, &out, "hf", "f16");
    let from_gguf = build(&src, &out, "gguf", "f16");
    assert_ne!(from_hf, from_gguf);
    assert_same_tensors(&from_hf, &from_gguf);
    assert_same_vocabulary(&from_hf, &src);
    check_llamacpp_tokenizes(&from_hf, golden, allow);

    // Logits: the f16 package against the original weights evaluated exactly.
    let text =
        std::fs::read_to_string(alc_testdata::workspace().join("scripts/goldens/logits_text.txt"))
            .unwrap();
    let f = GgufFile::open(&src).unwrap();
    let mut tokens = alc_tokenizer::Tokenizer::from_gguf(&f)
        .unwrap()
        .encode(&text, true, false)
        .unwrap();
    // The compiled-back vocabulary tokenizes as the original does.
    let back = alc_tokenizer::Tokenizer::from_gguf(&GgufFile::open(&from_hf).unwrap()).unwrap();
    assert_eq!(back.encode(&text, true, false).unwrap(), tokens);
    tokens.truncate(n_tokens);
    let exact = log_probs(&build(&src, &out, "gguf", "f32"), &tokens);
    let f16 = log_probs(&from_hf, &tokens);
    let (top1, kl) = compare(&exact, &f16);
    drop(exact);
    eprintln!(
        "{model}: exported f16 vs original (exact): top-1 {top1:.4}, KL {kl:.6} over {} tokens",
        tokens.len()
    );
    assert!(top1 >= 0.995, "top-1 {top1}");
    let (_, kl_hf) = compare(
        &f16,
        &log_probs(&build(&dir, &out, "hf", "q4f16_1"), &tokens),
    );
    let (_, kl_gguf) = compare(
        &f16,
        &log_probs(&build(&src, &out, "gguf", "q4f16_1"), &tokens),
    );
    eprintln!(
        "{model}: q4f16_1 KL vs f16: from the checkpoint {kl_hf:.5}, from the GGUF {kl_gguf:.5}"
    );
    assert!(kl_hf <= 1.05 * kl_gguf + 1e-4, "{kl_hf} vs {kl_gguf}");
}

#[test]
fn smollm2_exports_and_compiles_back() {
    round_trip(
        "smollm2-135m-instruct-q4_1.gguf",
        "smollm2.json",
        &[],
        512,
        None,
    );
}

#[test]
fn gemma3_exports_and_compiles_back() {
    // SentencePiece vocabulary: tokenizer.json is rebuilt as a BPE with byte fallback
    // whose merges come from the piece scores. 256 tokens: the 262k-entry output
    // rows of three evaluations stay within CI's memory.
    round_trip("gemma-3-270m-q4_k_m.gguf", "gemma3.json", &[], 256, None);
}

#[test]
fn qwen25_exports_sharded_and_compiles_back() {
    // llama.cpp departs from the Hugging Face tokenizer on two golden texts: it skips
    // Qwen 2's NFC normaliser, and it treats the plain token "</s>" as a control token.
    round_trip(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "qwen2.json",
        &["e\u{301} vs é", "<s>Hello</s>"],
        512,
        Some(400_000_000),
    );
}

/// Bad inputs: one-line errors naming the problem and the fix; nothing written, and
/// an existing directory left as it was.
#[test]
fn export_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |opts: &ExportOptions| export_hf(opts, &mut |_| {}).unwrap_err().to_string();
    let listing = |p: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };

    // Not a GGUF file.
    let junk = tmp.path().join("junk.gguf");
    std::fs::write(&junk, b"not a gguf file at all, just text").unwrap();
    let e = err(&ExportOptions::new(&junk, tmp.path().join("a")));
    assert!(e.contains("junk.gguf"), "{e}");
    assert!(!tmp.path().join("a").exists());

    let Some(src) = alc_testdata::model("smollm2-135m-instruct-q4_1.gguf") else {
        return;
    };
    // An existing non-empty directory is kept unless --force.
    let out = tmp.path().join("existing");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), b"mine").unwrap();
    let e = err(&ExportOptions::new(&src, &out));
    assert!(e.contains("--force") && e.contains("existing"), "{e}");
    assert_eq!(listing(&out), vec![std::ffi::OsString::from("keep.txt")]);
    // A file where the directory should go.
    let e = err(&ExportOptions::new(&src, tmp.path().join("junk.gguf")));
    assert!(e.contains("not a directory"), "{e}");
    // --force replaces the directory, leaving nothing else behind.
    let mut opts = ExportOptions::new(&src, &out);
    opts.force = true;
    opts.dtype = alc_convert::ExportDtype::BF16;
    export_hf(&opts, &mut |_| {}).unwrap();
    assert!(!out.join("keep.txt").exists());
    assert!(out.join("model.safetensors").exists());
    // No temporary or moved-aside directory left.
    let names = listing(tmp.path());
    assert_eq!(names.len(), 2, "{names:?}");
}
