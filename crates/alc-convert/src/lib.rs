//! alc-convert: `alc compile` — a Hugging Face checkpoint (or a GGUF file) to one
//! verified, named package.
//!
//! Design note: the pipeline streams. Tensors are read one at a time from the
//! checkpoint's read-only maps, transformed into the engine's layout
//! ([`arch`]), quantised ([`quant`]) and written to a per-tensor checkpoint in a work
//! directory beside the output, with its sha256. Only when every tensor is there is
//! the package assembled: header (hyperparameters, tokenizer, `alc.*` manifest with
//! the per-tensor digests) then the tensors copied from the work files, into a temp
//! file that is renamed over the final name after the self-check. So a killed
//! compile resumes from the tensors already done, and never leaves a partial package
//! under the final name. The few manifest values only known after the self-check
//! (memory plan, self-check tokens, verification status) have fixed sizes and are
//! patched in place in the temp file. Everything written depends only on the inputs
//! and options, so the same compile gives the same bytes. Layout: docs/FORMAT.md
//! ("alc package").

pub mod arch;
pub mod compile;
pub mod config;
pub mod export;
pub mod naming;
pub mod quant;
pub mod verify;
pub mod vlm;
pub mod vocab;
pub mod wordpiece_vocab;

pub use compile::{
    compile, encoder_metadata, encoder_tokenizer_gguf, CompileOptions, Outcome, Progress, Report,
};
pub use export::{export_hf, ExportDtype, ExportOptions, ExportReport};

use std::path::PathBuf;

/// Errors of the compile pipeline. Messages name the file, key or tensor and say
/// how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: missing: {what}")]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {why}")]
    Json { path: PathBuf, why: String },
    #[error("{path}: '{key}': {why}")]
    Config {
        path: PathBuf,
        key: String,
        why: String,
    },
    #[error("architecture '{got}' is not supported; supported: {supported}")]
    UnsupportedArch { got: String, supported: String },
    #[error("tensor '{tensor}' is not part of a {arch} model; is config.json's \"architectures\" right?")]
    UnexpectedTensor { tensor: String, arch: &'static str },
    #[error("the checkpoint lacks tensor '{tensor}' ({why}); re-download it")]
    MissingTensor { tensor: String, why: String },
    #[error("tensor '{tensor}': shape {got}, expected {expected} from config.json")]
    ShapeMismatch {
        tensor: String,
        expected: String,
        got: String,
    },
    #[error("{path}: tokenizer: {why}")]
    Tokenizer { path: PathBuf, why: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{path} already exists and was built from other inputs or options (build key {existing}, this build {wanted}); pass --name for another name, or --force to replace it")]
    NameCollision {
        path: PathBuf,
        existing: String,
        wanted: String,
    },
    #[error(transparent)]
    Format(#[from] alc_format::FormatError),
    #[error("quantising '{tensor}': {source}")]
    Quant {
        tensor: String,
        source: alc_quant::QuantError,
    },
    #[error("self-check: {0}")]
    SelfCheck(String),
}
