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
//!   reference's ≥ 0.98.

use alc_convert::{compile, CompileOptions, Outcome};
use alc_engine::Embedder;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn minilm() -> Option<PathBuf> {
    let p = alc_testdata::models_dir().join("all-minilm-l6-v2");
    if p.join("model.safetensors").is_file() {
        return Some(p);
    }
    if std::env::var("ALC_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
        eprintln!("SKIP: {} missing", p.display());
        return None;
    }
    panic!(
        "{} is missing: run scripts/fetch-models.sh --only minilm",
        p.display()
    );
}

fn build(input: &Path, out: &Path, quant: &str) -> PathBuf {
    let opts = CompileOptions {
        quant: Some(quant.into()),
        threads: 2,
        ..CompileOptions::new(input, out)
    };
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

    let toks: Vec<(Vec<u32>, bool)> = gold.iter().map(|g| (g.ids.clone(), g.truncated)).collect();
    let v32 = e32.embed_ids(&toks).unwrap();
    let v8 = e8.embed_ids(&toks).unwrap();
    let c32: Vec<f64> = v32
        .iter()
        .zip(&gold)
        .map(|(e, g)| cosine(&e.vector, &g.embedding))
        .collect();
    let c8: Vec<f64> = v8
        .iter()
        .zip(&gold)
        .map(|(e, g)| cosine(&e.vector, &g.embedding))
        .collect();
    let min = |c: &[f64]| c.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = |c: &[f64]| c.iter().sum::<f64>() / c.len() as f64;
    eprintln!(
        "{} texts: f32 cosine min {:.6} mean {:.6}; int8 cosine min {:.5} mean {:.5}",
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
        "{} pairs: Spearman(int8, f32 reference) {rho:.5}",
        s_ref.len()
    );
    assert!(s_ref.len() >= 100);
    assert!(rho >= 0.98, "Spearman {rho}");
}
