//! Hyperparameters the engine cannot honour are refused at load with an error that
//! names the file, the key and the value, instead of running and answering wrongly.

use alc_format::GgufFile;
use alc_models::{Model, ModelError};
use alc_testdata::{gguf_bytes, Kv};
use std::sync::Arc;

/// A GGUF file with the given metadata and no tensors.
fn gguf(kvs: &[(&str, Kv)]) -> Arc<GgufFile> {
    Arc::new(GgufFile::from_bytes("test.gguf", gguf_bytes(kvs)).expect("valid GGUF"))
}

fn llama_with(extra: Vec<(&'static str, Kv)>) -> Vec<(&'static str, Kv)> {
    let mut kvs = vec![
        ("general.architecture", Kv::Str("llama".into())),
        ("llama.block_count", Kv::U32(2)),
        ("llama.embedding_length", Kv::U32(64)),
        ("llama.attention.head_count", Kv::U32(4)),
        ("llama.feed_forward_length", Kv::U32(128)),
        ("llama.context_length", Kv::U32(256)),
    ];
    kvs.extend(extra);
    kvs
}

fn load_err(kvs: &[(&str, Kv)]) -> String {
    match Model::from_gguf(gguf(kvs)) {
        Ok(_) => panic!("loaded a model that should have been refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_rope_scaling_is_refused() {
    let e = load_err(&llama_with(vec![(
        "llama.rope.scaling.type",
        Kv::Str("yarn".into()),
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
        ("llama.rope.scaling.type", Kv::Str("linear".into())),
        ("llama.rope.scaling.factor", Kv::F32(0.0)),
    ]));
    assert!(
        e.contains("rope.scaling.factor") && e.contains("positive"),
        "{e}"
    );
}

#[test]
fn absurd_sizes_are_refused() {
    let mut kvs = llama_with(vec![]);
    kvs[1] = ("llama.block_count", Kv::U32(1_000_000));
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
