//! Device fit (`alc fit`, `alc devices`): will this package run on that device?
//!
//! Design note. Two halves:
//!
//! - [`Estimator`] predicts the peak resident memory of running a GGUF package with
//!   alc's engine at a context length: the tensor bytes read every token (mapped, or
//!   repacked by the backend — either way one copy is resident), the pages of an
//!   untied embedding table that a full context can touch, the KV cache and the
//!   session's activations (both committed when a session starts, so they are
//!   resident whatever the prompt length), the backend's scratch bound, the mapped
//!   GGUF header and the heap its parse and the tokenizer hold, and the process
//!   runtime ([`RUNTIME_BYTES`]). Each part is computed from the file; nothing is
//!   guessed from the file size. The estimate is checked against the measured peak
//!   RSS of `alc run` (crates/alc-cli/tests/fit.rs: within ±10 % for the three real
//!   models at 512, 2048 and 8192 tokens).
//! - [`Device`] profiles (built in from the field's device matrix, extended or
//!   overridden by a TOML file) give RAM and the OS reserve of the device's class;
//!   [`fit`] compares the estimate with the usable RAM and gives a [`Verdict`] and
//!   the largest context that fits.
//!
//! Errors are [`FitError`]; values are named in every message.

mod devices;
mod estimate;
mod verdict;

pub use devices::{builtin_devices, load_devices, Device, DeviceClass, Devices};
pub use estimate::{Estimate, Estimator, RUNTIME_BYTES};
pub use verdict::{fit, rank, FitReport, Ranked, Verdict, TIGHT_FRACTION};

use std::path::PathBuf;

/// Errors of device fitting.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    Format(#[from] alc_format::FormatError),
    #[error(transparent)]
    Model(#[from] alc_models::ModelError),
    #[error(transparent)]
    Tokenizer(#[from] alc_tokenizer::TokenizerError),
    #[error(transparent)]
    Image(#[from] alc_image::ImageError),
    #[error("cannot read device profiles {path}: {source}")]
    ReadProfiles {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("device profiles {path}: {msg}")]
    BadProfiles { path: PathBuf, msg: String },
    #[error("unknown device '{id}'; known devices: {known} (see `alc devices`, or add it to a devices TOML file)")]
    UnknownDevice { id: String, known: String },
    #[error("{what} {value} is out of range: {why}")]
    BadArg {
        what: &'static str,
        value: u64,
        why: String,
    },
}
