//! Hyperparameters the engine cannot honour are refused at load with an error that
//! names the file, the key and the value, instead of running and answering wrongly.

use alc_format::GgufFile;
use alc_models::{Model, ModelError};
use std::sync::Arc;

enum V<'a> {
    U32(u32),
    F32(f32),
    Str(&'a str),
}

/// A GGUF v3 file with the given metadata and no tensors.
fn gguf(kvs: &[(&str, V)]) -> Arc<GgufFile> {
    let mut b = Vec::new();
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    let s = |b: &mut Vec<u8>, t: &str| {
        b.extend_from_slice(&(t.len() as u64).to_le_bytes());
        b.extend_from_slice(t.as_bytes());
    };
    for (k, v) in kvs {
        s(&mut b, k);
        match v {
            V::U32(x) => {
                b.extend_from_slice(&4u32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::F32(x) => {
                b.extend_from_slice(&6u32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            V::Str(x) => {
                b.extend_from_slice(&8u32.to_le_bytes());
                s(&mut b, x);
            }
        }
    }
    while b.len() % 32 != 0 {
        b.push(0);
    }
    Arc::new(GgufFile::from_bytes("test.gguf", b).expect("valid GGUF"))
}

fn llama_with<'a>(extra: Vec<(&'a str, V<'a>)>) -> Vec<(&'a str, V<'a>)> {
    let mut kvs = vec![
        ("general.architecture", V::Str("llama")),
        ("llama.block_count", V::U32(2)),
        ("llama.embedding_length", V::U32(64)),
        ("llama.attention.head_count", V::U32(4)),
        ("llama.feed_forward_length", V::U32(128)),
        ("llama.context_length", V::U32(256)),
    ];
    kvs.extend(extra);
    kvs
}

fn load_err(kvs: &[(&str, V)]) -> String {
    match Model::from_gguf(gguf(kvs)) {
        Ok(_) => panic!("loaded a model that should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_rope_scaling_is_refused() {
    let e = load_err(&llama_with(vec![(
        "llama.rope.scaling.type",
        V::Str("yarn"),
    )]));
    assert!(
        e.contains("test.gguf") && e.contains("rope.scaling.type") && e.contains("yarn"),
        "{e}"
    );
    assert!(e.contains("supported: none, linear"), "{e}");
}

#[test]
fn bad_linear_factor_is_refused() {
    let e = load_err(&llama_with(vec![
        ("llama.rope.scaling.type", V::Str("linear")),
        ("llama.rope.scaling.factor", V::F32(0.0)),
    ]));
    assert!(
        e.contains("rope.scaling.factor") && e.contains("positive"),
        "{e}"
    );
}

#[test]
fn absurd_sizes_are_refused() {
    let mut kvs = llama_with(vec![]);
    kvs[1] = ("llama.block_count", V::U32(1_000_000));
    let e = load_err(&kvs);
    assert!(e.contains("block_count") && e.contains("1000000"), "{e}");
}

#[test]
fn missing_tensors_are_reported_by_name() {
    // Valid hyperparameters but no tensors at all: the first missing one is named.
    match Model::from_gguf(gguf(&llama_with(vec![]))) {
        Ok(_) => panic!("loaded a model without tensors"),
        Err(e @ ModelError::MissingTensor { .. }) => {
            assert!(e.to_string().contains("token_embd"), "{e}")
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}
