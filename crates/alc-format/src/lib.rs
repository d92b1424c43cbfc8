//! alc-format: reading and writing model containers.
//!
//! Design note: the GGUF reader parses the header of an untrusted file with every count
//! and offset checked against the bytes that remain, so a corrupt or hostile file yields
//! a [`FormatError`] naming the field, never a panic or a huge allocation. Tensor data
//! is borrowed from a read-only memory map (or an owned buffer for sealed packages and
//! fuzzing); nothing is copied at open. The layout is pinned in docs/FORMAT.md.
//!
//! The writing side mirrors it: [`GgufWriter`] plans a GGUF v3 file up front (every
//! offset is known before a byte is written) and streams one tensor's bytes at a time
//! from a caller's callback; [`AtomicFile`] puts the result in place only when it is
//! complete. [`HfTensors`] reads Hugging Face safetensors checkpoints (one file or
//! shards with an index) from read-only maps, for the converter.

pub mod atomic;
pub mod gguf;
mod pages;
pub mod safetensors;
pub mod writer;

pub use atomic::AtomicFile;
pub use gguf::{GgufFile, TensorInfo, Value};
pub use safetensors::{HfTensor, HfTensors};
pub use writer::{GgufWriter, TensorSink};

use std::path::{Path, PathBuf};

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

    // ---- GGUF writer ----
    #[error("GGUF writer: metadata key '{key}': {what}")]
    WriterKey { key: String, what: String },
    #[error("GGUF writer: tensor '{tensor}': {what}")]
    WriterTensor { tensor: String, what: String },
    #[error("GGUF writer: tensor '{tensor}' ({dtype}, dims {dims:?}): the data callback gave {got} bytes, expected {expected}")]
    TensorSize {
        tensor: String,
        dtype: alc_core::DType,
        dims: Vec<u64>,
        expected: u64,
        got: u64,
    },
    /// Writing, syncing or renaming an output failed. `fix` says what to do (built by
    /// [`FormatError::write_failed`] from the error kind).
    #[error("{path}: {what} failed: {source}; {fix}")]
    Write {
        path: PathBuf,
        what: String,
        source: std::io::Error,
        fix: String,
    },

    // ---- Hugging Face safetensors checkpoints ----
    #[error("{path}: checkpoint directory not found; pass the directory that holds model.safetensors (or model.safetensors.index.json and its shards)")]
    CheckpointNotFound { path: PathBuf },
    #[error("{path}: no .safetensors file (looked for model.safetensors, *.safetensors.index.json and *.safetensors); download the checkpoint's safetensors weights (PyTorch .bin checkpoints are not read)")]
    NoSafetensors { path: PathBuf },
    #[error("{path}: {count} .safetensors files ({files}) and no model.safetensors.index.json to say which tensor is where; restore the index file, or pass a directory with a single checkpoint")]
    AmbiguousCheckpoint {
        path: PathBuf,
        count: usize,
        files: String,
    },
    #[error("{path}: cannot read the shard index: {what}; re-download the index file")]
    BadIndex { path: PathBuf, what: String },
    #[error("{shard} listed in {index} is missing; re-download the checkpoint")]
    MissingShard { index: PathBuf, shard: String },
    #[error("{path}: tensor '{tensor}' is listed in {index} but absent from this shard; re-download the checkpoint")]
    TensorNotInShard {
        path: PathBuf,
        tensor: String,
        index: String,
    },
    #[error("tensor '{tensor}' is in two shards, {first} and {second}; the checkpoint is inconsistent, re-download it")]
    DuplicateTensor {
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{path}: corrupt or truncated safetensors file: {what}; re-download it")]
    BadSafetensors { path: PathBuf, what: String },
    #[error("{path}: no tensor named '{tensor}' in the checkpoint")]
    UnknownTensor { path: PathBuf, tensor: String },
    #[error("{path}: tensor '{tensor}' has dtype {dtype}, which cannot be converted to f32 (supported: {supported})")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
        supported: &'static str,
    },
}

impl FormatError {
    /// A [`FormatError::Write`] for an I/O failure on `path` while doing `what` (e.g.
    /// "writing tensor 'blk.0.attn_q.weight'"), with a fix chosen from the error kind:
    /// a full disk or quota asks to free space on the disk that holds the file.
    pub fn write_failed(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        let path = path.into();
        let fix = write_fix(&path, &source);
        FormatError::Write {
            path,
            what: what.into(),
            source,
            fix,
        }
    }
}

fn write_fix(path: &Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
        _ => ".".to_string(),
    };
    // ENOSPC is 28 and EDQUOT 122 on Linux; the kinds cover the other systems.
    let full = matches!(
        e.kind(),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge
    ) || (cfg!(target_os = "linux") && matches!(e.raw_os_error(), Some(28 | 122)));
    if full {
        format!("free space on the disk that holds {dir}, or write the output elsewhere")
    } else if matches!(e.kind(), K::PermissionDenied | K::ReadOnlyFilesystem) {
        format!("make {dir} writable, or write the output elsewhere")
    } else if e.kind() == K::NotFound {
        format!("check that the directory {dir} exists")
    } else {
        "check the disk and the output path".to_string()
    }
}
