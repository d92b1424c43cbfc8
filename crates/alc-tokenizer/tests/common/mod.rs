//! Shared helpers for tests that need the real GGUF models.
#![allow(dead_code)]

use std::path::PathBuf;

use alc_format::GgufFile;
use alc_tokenizer::Tokenizer;

pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// (golden name, GGUF file name)
pub const MODELS: &[(&str, &str)] = &[
    ("smollm2", "smollm2-135m-instruct-q4_1.gguf"),
    ("qwen2", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
];

pub fn models_dir() -> PathBuf {
    match std::env::var_os("ALC_MODELS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(WORKSPACE).join("models"),
    }
}

pub fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(WORKSPACE)
        .join("tests/goldens/tokenizer")
        .join(format!("{name}.json"))
}

/// Open a model's tokenizer. A missing model file fails the test (the models are part of
/// the test suite) unless `ALC_SKIP_MODEL_TESTS=1`, in which case `None` is returned
/// after printing a skip notice.
pub fn load(file: &str) -> Option<Tokenizer> {
    let path = models_dir().join(file);
    if !path.exists() {
        if std::env::var("ALC_SKIP_MODEL_TESTS").as_deref() == Ok("1") {
            eprintln!(
                "SKIP: model {} missing (ALC_SKIP_MODEL_TESTS=1)",
                path.display()
            );
            return None;
        }
        panic!(
            "model file {} is missing: run `scripts/fetch-models.sh` (or set ALC_SKIP_MODEL_TESTS=1 to skip model tests)",
            path.display()
        );
    }
    let f = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(Tokenizer::from_gguf(&f).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}
