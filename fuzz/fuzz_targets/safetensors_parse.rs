//! Fuzz the safetensors header parser (`HfTensors::from_bytes`, the parser and checks
//! `HfTensors::open` runs on every shard file) and the tensor accessors.
//!
//! Arbitrary bytes are one `.safetensors` file. `Ok` or `Err` are both fine; a panic,
//! an out-of-bounds access, a huge allocation or a hang is a bug. When the file is
//! accepted, every tensor's data slice must lie inside the input, start where the
//! previous one ended (the first right after the header, the last ending at the end
//! of the file) and hold exactly dtype × shape bytes; `raw`, `to_f32`, `to_f32_into`
//! and `range_f32_into` (on clamped, empty, reversed and overflowing ranges) must agree
//! with each other and with an independent decoding of the bytes.

#![no_main]

use alc_format::safetensors::HfTensors;
use libfuzzer_sys::fuzz_target;

#[path = "common/safetensors_check.rs"]
mod check;
#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

fuzz_target!(|data: &[u8]| {
    let st = match HfTensors::from_bytes("model.safetensors", data.to_vec()) {
        Ok(st) => st,
        Err(e) => return say!("refused: {e}"),
    };
    say!("accepted: {} tensors", st.len());
    assert!(st.index_path().is_none());
    assert_eq!(st.shards(), [std::path::Path::new("model.safetensors")]);
    check::exercise(&st, &[data]);
});
