//! The published INT8 MiniLM ONNX export through ONNX Runtime against python
//! onnxruntime's embeddings, batched and one sentence at a time; bad model bytes.

use alc_ort::{mean_pool_normalize, OrtEncoder, OrtError};

/// The runtime, or `None` after a printed skip when no ONNX Runtime library is installed.
fn runtime_or_skip() -> Option<&'static alc_ort::Runtime> {
    match alc_ort::runtime() {
        Ok(rt) => Some(rt),
        Err(OrtError::LibraryNotFound) => {
            eprintln!("SKIP: {}", OrtError::LibraryNotFound);
            None
        }
        Err(e) => panic!("{e}"),
    }
}

struct Item {
    text: String,
    ids: Vec<u32>,
    want: Vec<f32>,
}

/// Token ids of the transformers golden, embeddings of the onnxruntime golden.
fn goldens() -> Vec<Item> {
    let read = |name: &str| -> serde_json::Value {
        let path = alc_testdata::golden("embeddings", name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    };
    let ids = read("all-minilm-l6-v2.json");
    let ort = read("all-minilm-l6-v2-ort-int8.json");
    let ids = ids["items"].as_array().unwrap();
    let ort = ort["items"].as_array().unwrap();
    assert_eq!(ids.len(), ort.len());
    ids.iter()
        .zip(ort)
        .map(|(a, b)| {
            assert_eq!(a["text"], b["text"]);
            let floats = |v: &serde_json::Value| -> Vec<f32> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect()
            };
            Item {
                text: a["text"].as_str().unwrap().to_string(),
                ids: a["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect(),
                want: floats(&b["embedding"]),
            }
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_int8_matches_python_onnxruntime() {
    let Some(rt) = runtime_or_skip() else { return };
    let Some(model) = alc_testdata::model("all-minilm-l6-v2-int8.onnx") else {
        return;
    };
    eprintln!("ONNX Runtime {} from {}", rt.version(), rt.path().display());
    let enc = OrtEncoder::open(&model, 2).unwrap();
    assert_eq!(enc.hidden(), 384);
    assert_eq!(
        enc.input_names(),
        ["input_ids", "attention_mask", "token_type_ids"]
    );
    let items = goldens();
    assert!(items.len() > 500, "{} items", items.len());

    // Batched, in file order: 32 sentences of mixed lengths per run.
    let mut batched = Vec::with_capacity(items.len());
    for chunk in items.chunks(32) {
        let batch: Vec<&[u32]> = chunk.iter().map(|it| it.ids.as_slice()).collect();
        let rows = enc.run(&batch).unwrap();
        assert_eq!(rows.len(), chunk.len());
        for (r, it) in rows.iter().zip(chunk) {
            assert_eq!(r.len(), it.ids.len() * 384, "{}", it.text);
            batched.push(mean_pool_normalize(r, 384, true));
        }
    }

    let mut worst_cos = 1.0f64;
    let mut worst_pad = 0.0f32;
    for (it, b) in items.iter().zip(&batched) {
        let single = enc.run(&[it.ids.as_slice()]).unwrap();
        let single = mean_pool_normalize(&single[0], 384, true);
        let cos = cosine(&single, &it.want);
        worst_cos = worst_cos.min(cos);
        assert!(
            cos >= 0.99999,
            "{:?}: cosine {cos} to python onnxruntime",
            it.text
        );
        let pad = single
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        worst_pad = worst_pad.max(pad);
        assert!(
            pad <= 1e-5,
            "{:?}: batched differs from single by {pad}",
            it.text
        );
        let cos_b = cosine(b, &it.want);
        assert!(cos_b >= 0.99999, "{:?}: batched cosine {cos_b}", it.text);
    }
    eprintln!(
        "{} sentences: worst cosine {worst_cos:.8}, worst batched-vs-single difference {worst_pad:e}",
        items.len()
    );
}

#[test]
fn empty_batch_and_empty_sentence() {
    if runtime_or_skip().is_none() {
        return;
    }
    let Some(model) = alc_testdata::model("all-minilm-l6-v2-int8.onnx") else {
        return;
    };
    let enc = OrtEncoder::open(&model, 1).unwrap();
    assert!(enc.run(&[]).unwrap().is_empty());
    let out = enc.run(&[&[], &[101, 7592, 102]]).unwrap();
    assert!(out[0].is_empty());
    assert_eq!(out[1].len(), 3 * 384);
}

#[test]
fn bytes_that_are_not_onnx_are_an_error() {
    if runtime_or_skip().is_none() {
        return;
    }
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"this is not an ONNX model\n".to_vec()),
        ("gguf magic", b"GGUF\x03\0\0\0garbage".to_vec()),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ];
    if let Some(model) = alc_testdata::model("all-minilm-l6-v2-int8.onnx") {
        let bytes = std::fs::read(model).unwrap();
        cases.push(("truncated model", bytes[..bytes.len() / 3].to_vec()));
    }
    for (what, bytes) in cases {
        let err = OrtEncoder::from_bytes(&bytes, 1).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, OrtError::ModelLoad { .. }), "{what}: {msg}");
        assert!(msg.contains("valid .onnx"), "{what}: {msg}");
        eprintln!("{what}: {msg}");
    }
    let missing = std::path::Path::new("/nonexistent/model.onnx");
    let err = OrtEncoder::open(missing, 1).unwrap_err();
    assert!(matches!(err, OrtError::ModelMissing { .. }), "{err}");
}
