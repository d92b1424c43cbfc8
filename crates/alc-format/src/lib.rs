//! alc-format: reading model containers.
//!
//! Design note: the GGUF reader parses the header of an untrusted file with every count
//! and offset checked against the bytes that remain, so a corrupt or hostile file yields
//! a [`FormatError`] naming the field, never a panic or a huge allocation. Tensor data
//! is borrowed from a read-only memory map (or an owned buffer for sealed packages and
//! fuzzing); nothing is copied at open. The layout is pinned in docs/FORMAT.md.

pub mod gguf;

pub use gguf::{GgufFile, TensorInfo, Value};

use std::path::PathBuf;

/// Errors raised while opening or reading a container.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: cannot open: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a GGUF file (magic {found:?}, expected \"GGUF\"); pass a .gguf model file"
    )]
    BadMagic { path: PathBuf, found: [u8; 4] },
    #[error("{path}: GGUF version {version} is not supported (supported: 2, 3); re-export the model with a current llama.cpp convert script")]
    BadVersion { path: PathBuf, version: u32 },
    #[error("{path}: file is truncated or corrupt: {what} needs {need} bytes at offset {offset}, but the file has {len}; re-download the model")]
    Truncated {
        path: PathBuf,
        what: String,
        offset: u64,
        need: u64,
        len: u64,
    },
    #[error("{path}: corrupt header: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("{path}: tensor '{tensor}': {what}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        what: String,
    },
    #[error("{path}: metadata key '{key}' is missing; the file was not written for this architecture or is incomplete")]
    MissingKey { path: PathBuf, key: String },
    #[error("{path}: metadata key '{key}' has type {got}, expected {expected}")]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
        got: &'static str,
    },
}
