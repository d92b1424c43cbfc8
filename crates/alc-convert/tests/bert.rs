//! all-MiniLM-L6-v2 (BERT, Hugging Face layout) → embedding packages (.AON) in f32
//! and int8, run by alc's engine, against the reference embeddings that transformers
//! computed for the same texts (tests/goldens/embeddings/, made by
//! scripts/goldens/gen_embeddings.py: tokenizer with truncation to 256, BertModel in
//! float32, masked mean pooling, L2 normalisation — sentence-transformers' pipeline).
//!
//! - f32: cosine ≥ 0.9999 for every text (the fidelity bound), and alc's
//!   WordPiece gives the reference's ids for every text.
//! - int8: mean cosine ≥ 0.995 and minimum ≥ 0.98 against the f32 reference;
//!   Spearman correlation of the labelled pairs' similarities with the f32
//!   reference's ≥ 0.98; intent accuracy on data/intents/heldout.tsv within 1 point
//!   of f32's.
//! - The same through ONNX Runtime: packages that hold an ONNX graph exported from the
//!   checkpoint by alc (`--runtime onnxruntime`), f32 (the reference check of the
//!   exporter: ≥ 0.9999) and weight-only INT8 (the same bounds as native int8), and
//!   the INT8 graph compiled again from a plain .onnx file.

use alc_convert::{compile, CompileOptions, Outcome};
use alc_engine::Embedder;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn minilm() -> Option<PathBuf> {
    alc_testdata::model("all-minilm-l6-v2")
}

fn build(input: &Path, out: &Path, quant: &str) -> PathBuf {
    build_with(CompileOptions {
        quant: Some(quant.into()),
        threads: 2,
        ..CompileOptions::new(input, out)
    })
}

fn build_with(opts: CompileOptions) -> PathBuf {
    match compile(&opts, &mut |_| {}).unwrap() {
        Outcome::Built(r) => {
            assert_eq!(r.verification, "verified");
            assert_eq!(r.gguf_architecture, "bert");
            r.package
        }
        Outcome::UpToDate { path, .. } => path,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0f64; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            r[k] = (i + j) as f64 / 2.0;
        }
        i = j + 1;
    }
    r
}

fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut num, mut da, mut db) = (0f64, 0f64, 0f64);
    for (x, y) in ra.iter().zip(&rb) {
        num += (x - ma) * (y - mb);
        da += (x - ma).powi(2);
        db += (y - mb).powi(2);
    }
    num / (da * db).sqrt()
}

struct Golden {
    text: String,
    ids: Vec<u32>,
    truncated: bool,
    embedding: Vec<f32>,
}

fn goldens() -> Vec<Golden> {
    let p = repo().join("tests/goldens/embeddings/all-minilm-l6-v2.json");
    let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|it| Golden {
            text: it["text"].as_str().unwrap().to_string(),
            ids: it["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            truncated: it["truncated"].as_bool().unwrap(),
            embedding: it["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

#[test]
fn minilm_f32_and_int8_match_the_reference() {
    let Some(dir) = minilm() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let gold = goldens();
    assert!(gold.len() >= 200, "{} golden texts", gold.len());

    let f32_pkg = build(&dir, tmp.path(), "f32");
    let int8_pkg = build(&dir, tmp.path(), "int8");
    assert_eq!(
        int8_pkg.file_name().unwrap().to_str().unwrap(),
        "AVA-384-Base-INT8.AON"
    );
    assert_eq!(
        f32_pkg.file_name().unwrap().to_str().unwrap(),
        "AVA-384-Base-F32.AON"
    );
    let int8_size = std::fs::metadata(&int8_pkg).unwrap().len();
    assert!(int8_size < 30_000_000, "int8 package is {int8_size} bytes");

    // `alc verify` checks an embedding package like a language-model package.
    let rep = alc_convert::verify::verify_package(
        &int8_pkg,
        &alc_convert::verify::VerifyOptions {
            threads: 2,
            self_check: true,
        },
    )
    .unwrap();
    assert!(rep.passed, "{rep:#?}");
    assert_eq!(rep.architecture.as_deref(), Some("bert"));

    let e32 = Embedder::open(&f32_pkg, 2).unwrap();
    let e8 = Embedder::open(&int8_pkg, 2).unwrap();
    assert_eq!((e32.dim(), e32.max_tokens), (384, 256));

    // Tokenizer: alc's ids are the reference's.
    let mut bad_ids = Vec::new();
    for g in &gold {
        let (ids, cut) = e32.tokenize(&g.text).unwrap();
        if ids != g.ids || cut != g.truncated {
            bad_ids.push(g.text.chars().take(60).collect::<String>());
        }
    }
    assert!(
        bad_ids.is_empty(),
        "{} texts tokenised differently: {bad_ids:?}",
        bad_ids.len()
    );

    fidelity(&gold, &e32, &e8, "native");
}

fn verify(pkg: &Path) {
    let rep = alc_convert::verify::verify_package(
        pkg,
        &alc_convert::verify::VerifyOptions {
            threads: 2,
            self_check: true,
        },
    )
    .unwrap();
    assert!(rep.passed, "{rep:#?}");
}

/// Intent accuracy in scope (best intent, no threshold) on the held-out set.
fn intent_accuracy(e: &Embedder) -> f64 {
    use alc_engine::classify::{evaluate, parse_labelled, Centroids, Intents, DEFAULT_THRESHOLD};
    let yaml = std::fs::read_to_string(repo().join("data/intents/headset.yaml")).unwrap();
    let intents = Intents::parse(&yaml, "headset.yaml").unwrap();
    let tsv = std::fs::read_to_string(repo().join("data/intents/heldout.tsv")).unwrap();
    let set = parse_labelled(&tsv, "heldout.tsv", &intents).unwrap();
    let c = Centroids::compute(e, &intents).unwrap();
    let texts: Vec<&str> = set.iter().map(|l| l.text.as_str()).collect();
    let got: Vec<_> = e
        .embed(&texts)
        .unwrap()
        .iter()
        .map(|v| c.classify(&v.vector, DEFAULT_THRESHOLD, 2))
        .collect();
    evaluate(&set, &got, DEFAULT_THRESHOLD).accuracy_in_scope
}

/// `e32` must reproduce the reference (cosine ≥ 0.9999 per text); `e8` must stay
/// within the INT8 bounds of it (mean ≥ 0.995, min ≥ 0.98, Spearman ≥ 0.98 on the
/// labelled pairs, intent accuracy within one point of `e32`'s).
fn fidelity(gold: &[Golden], e32: &Embedder, e8: &Embedder, label: &str) {
    let toks: Vec<(Vec<u32>, bool)> = gold.iter().map(|g| (g.ids.clone(), g.truncated)).collect();
    let v32 = e32.embed_ids(&toks).unwrap();
    let v8 = e8.embed_ids(&toks).unwrap();
    let c32: Vec<f64> = v32
        .iter()
        .zip(gold)
        .map(|(e, g)| cosine(&e.vector, &g.embedding))
        .collect();
    let c8: Vec<f64> = v8
        .iter()
        .zip(gold)
        .map(|(e, g)| cosine(&e.vector, &g.embedding))
        .collect();
    let min = |c: &[f64]| c.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = |c: &[f64]| c.iter().sum::<f64>() / c.len() as f64;
    eprintln!(
        "{label}: {} texts: f32 cosine min {:.6} mean {:.6}; int8 cosine min {:.5} mean {:.5}",
        gold.len(),
        min(&c32),
        mean(&c32),
        min(&c8),
        mean(&c8)
    );
    let worst = c32
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| &gold[i].text);
    assert!(min(&c32) >= 0.9999, "f32 cosine {} on {worst:?}", min(&c32));
    assert!(mean(&c8) >= 0.995, "int8 mean cosine {}", mean(&c8));
    assert!(min(&c8) >= 0.98, "int8 min cosine {}", min(&c8));

    // Labelled similarity pairs: int8 ranks them as the f32 reference does.
    let pairs = std::fs::read_to_string(repo().join("data/similarity/pairs.tsv")).unwrap();
    let index: std::collections::HashMap<&str, usize> = gold
        .iter()
        .enumerate()
        .map(|(i, g)| (g.text.as_str(), i))
        .collect();
    let (mut s_ref, mut s8) = (Vec::new(), Vec::new());
    for line in pairs.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (a, b) = (index[f[0]], index[f[1]]);
        s_ref.push(cosine(&gold[a].embedding, &gold[b].embedding));
        s8.push(cosine(&v8[a].vector, &v8[b].vector));
    }
    let rho = spearman(&s8, &s_ref);
    eprintln!(
        "{label}: {} pairs: Spearman(int8, f32 reference) {rho:.5}",
        s_ref.len()
    );
    assert!(s_ref.len() >= 100);
    assert!(rho >= 0.98, "Spearman {rho}");
    let (a32, a8) = (intent_accuracy(e32), intent_accuracy(e8));
    eprintln!("{label}: intent accuracy in scope f32 {a32:.4}, int8 {a8:.4}");
    assert!(a32 >= 0.95, "f32 intent accuracy {a32}");
    assert!((a32 - a8).abs() <= 0.01, "int8 {a8} vs f32 {a32}");
}

/// ONNX Runtime, if its library can be loaded (CI installs the onnxruntime wheel).
fn onnxruntime() -> bool {
    match alc_ort::runtime() {
        Ok(_) => true,
        Err(e) if std::env::var("ALC_SKIP_MODEL_TESTS").as_deref() == Ok("1") => {
            eprintln!("SKIP: {e}");
            false
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn minilm_onnx_packages_match_the_reference() {
    let Some(dir) = minilm() else { return };
    if !onnxruntime() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let gold = goldens();
    let onnx = |quant: &str, name: &str| {
        build_with(CompileOptions {
            quant: Some(quant.into()),
            threads: 2,
            runtime: Some("onnxruntime".into()),
            name: Some(name.into()),
            ..CompileOptions::new(&dir, tmp.path())
        })
    };
    let f32_pkg = onnx("f32", "onnx-f32.AON");
    let int8_pkg = onnx("int8", "onnx-int8.AON");
    let size = std::fs::metadata(&int8_pkg).unwrap().len();
    assert!(size < 30_000_000, "ONNX int8 package is {size} bytes");
    verify(&int8_pkg);

    // The graph as a plain .onnx file compiles again (an .onnx input, tokenizer from
    // --tokenizer) into a package that embeds identically.
    let plain = tmp.path().join("minilm-int8.onnx");
    alc_convert::compile::extract_onnx(&int8_pkg, &plain).unwrap();
    let again = build_with(CompileOptions {
        quant: Some("f32".into()),
        threads: 2,
        tokenizer: Some(dir.clone()),
        name: Some("again.AON".into()),
        ..CompileOptions::new(&plain, tmp.path())
    });
    verify(&again);

    let e32 = Embedder::open(&f32_pkg, 2).unwrap();
    let e8 = Embedder::open(&int8_pkg, 2).unwrap();
    assert!(
        e8.backend_name().starts_with("onnxruntime"),
        "{}",
        e8.backend_name()
    );
    assert_eq!((e32.dim(), e32.max_tokens), (384, 256));
    let e_again = Embedder::open(&again, 2).unwrap();
    let texts = ["turn on the flashlight", "what's the battery level?"];
    let (a, b) = (e8.embed(&texts).unwrap(), e_again.embed(&texts).unwrap());
    for (x, y) in a.iter().zip(&b) {
        assert!(cosine(&x.vector, &y.vector) > 0.999_999);
    }
    fidelity(&gold, &e32, &e8, "onnxruntime");
}
