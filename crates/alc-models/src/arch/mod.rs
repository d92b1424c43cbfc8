//! One file per architecture: what it changes in the shared transformer.

pub mod gemma3;
pub mod llama;
pub mod qwen2;

use crate::{HParams, ModelError};
use alc_format::GgufFile;

/// Configure hook for architectures that need no fix-ups.
pub(crate) fn no_fixups(_: &GgufFile, _: &mut HParams) -> Result<(), ModelError> {
    Ok(())
}
