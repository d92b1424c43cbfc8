//! Fuzz the ONNX protobuf reader (`alc_onnx::Model::parse`), then `bert_shape`, the
//! quantiser (both schemes) and the writer on what it accepts.
//!
//! `Ok` or `Err` are both fine; a panic, a huge allocation or a hang is a bug. Every
//! length is checked against the input, so allocations stay below its size. Accepted
//! input must serialize to bytes that parse again to the same serialization. Useful
//! seeds: small ONNX files (`onnx.helper.make_model`), truncated real models.

#![no_main]

use alc_onnx::{bert_shape, quantize, Model, QuantOptions};
use libfuzzer_sys::fuzz_target;

#[path = "common/verbose.rs"]
mod verbose;
use verbose::say;

fuzz_target!(|data: &[u8]| {
    let model = match Model::parse(data) {
        Ok(m) => m,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "multi-line error: {msg}");
            return say!("refused: {msg}");
        }
    };
    match bert_shape(&model) {
        Ok(s) => say!("bert: {s:?}"),
        Err(e) => say!("not bert: {e}"),
    }
    let bytes = model.to_bytes();
    assert_eq!(bytes.len(), model.encoded_len());
    let again = Model::parse(&bytes).expect("a serialized model parses again");
    assert!(again.to_bytes() == bytes, "serialization is not stable");
    for opts in [QuantOptions::default(), QuantOptions::dynamic()] {
        if let Ok((q, _)) = quantize(&model, &opts) {
            let _ = q.to_bytes();
        }
    }
});
