//! alc-onnx: ONNX models for ONNX Runtime targets (issue #4's ONNX Runtime strategy).
//!
//! Design note. The crate owns everything alc does with `.onnx` files: a bounded
//! protobuf codec for ONNX models ([`proto`]), recognising a BERT-style sentence encoder
//! ([`bert_shape`]), writing an f32 ONNX graph of a Hugging Face `BertModel` checkpoint
//! ([`export_bert`], replacing a torch.onnx export in CI) and dynamic INT8 quantisation
//! of its matmuls with standard ONNX operators so that stock ONNX Runtime (Mobile) runs
//! the result ([`quantize_dynamic`]). It has no inference engine of its own.
//!
//! Wire subset: ModelProto (ir_version, producer name/version, graph, opset_import),
//! OperatorSetIdProto, GraphProto (node, name, initializer, input, output, value_info),
//! NodeProto (input, output, name, op_type, attribute, domain), AttributeProto (name,
//! f, i, s, t, g, floats, ints, strings, tensors, graphs, type), TensorProto (dims,
//! data_type, float/int32/int64 data, name, raw_data), ValueInfoProto, TypeProto.Tensor,
//! TensorShapeProto and its dimensions (dim_value / dim_param). Every other field is
//! kept as raw bytes and written back in field-number order, optional scalars remember
//! presence and repeated scalars their packing, so a model written by protobuf parses
//! and serializes byte-identically (tested on the published 23 MB INT8 MiniLM export).
//! Parsing is bounded: lengths are checked against the enclosing message before any
//! allocation, nesting is limited to [`proto::MAX_DEPTH`], and errors name the field and
//! the absolute offset. External tensor data is not read (an error says so).
//!
//! Quantisation scheme: every MatMul (and Gemm with a constant B, rewritten to MatMul +
//! Add) whose weight is a 2-D f32 initializer `[K, N]` gets int8 weights, symmetric per
//! output column (`scale_n = max|w[:, n]| / 127`, zero point an int8 vector of zeros),
//! `MatMulInteger` to int32, `Cast` to float and `Mul` by the activation and weight
//! scales. Activations are quantised at run time, by default per token (one symmetric
//! scale per row from `ReduceMax(Abs(A))`, uint8 around a fixed zero point 128, built
//! from Abs/ReduceMax/Div/Round/Add/Clip/Cast); `per_token: false` uses one
//! `DynamicQuantizeLinear` per activation tensor (ONNX Runtime's own scheme).
//! `reduce_range` (7-bit weights) is off by default: it is what avoids the saturation
//! of 16-bit sums in ONNX Runtime's u8×s8 kernel on x86 CPUs without VNNI (confirmed
//! on this Zen 3: a raw MatMulInteger with 8-bit weights and activations near 128 is
//! off by up to 25%, with 7-bit weights exact), yet on the real model 7-bit weights
//! measured worse (table below): in the graph ONNX Runtime actually runs (it fuses
//! MatMulInteger + Cast + Mul) the lost weight precision costs more than saturation.
//!
//! Fidelity measured (scripts/goldens/check_onnx.py, onnxruntime 1.32.0, 2 threads, 616
//! golden sentences of tests/goldens/embeddings/all-minilm-l6-v2.json, mean-pooled,
//! cosine vs the sentence-transformers f32 embeddings, mean / min):
//!
//! | model (all-MiniLM-L6-v2)                        | mean     | min      |
//! | ----------------------------------------------- | -------- | -------- |
//! | f32 export                                      | 1.000000 | 1.000000 |
//! | int8, per token, per channel (default)          | 0.995035 | 0.964612 |
//! | int8, per token, per channel, reduce_range      | 0.994659 | 0.949924 |
//! | int8, DynamicQuantizeLinear, per channel        | 0.990718 | 0.949708 |
//! | int8, DynamicQuantizeLinear, per channel, 7-bit | 0.989882 | 0.915669 |
//! | int8, DynamicQuantizeLinear, per tensor         | 0.956511 | 0.595237 |
//!
//! The per-tensor DynamicQuantizeLinear rows match onnxruntime.quantization's own
//! `quantize_dynamic` on the same f32 export to 4 decimals. The target (mean ≥ 0.995,
//! min ≥ 0.98) is met on the mean only: the worst sentences are two-token ones
//! ("thank you"), and the error is spread over all four matmul kinds (quantising one
//! kind alone keeps min ≥ 0.97). Sizes: the 36 layer weights go from 42.5 MB to 10.7
//! MB; the model from 90.3 MB to 58.6 MB because the 47 MB word-embedding table stays
//! f32 (the published weight-only INT8 export, 23 MB, quantises it too).

pub mod bert;
pub mod export;
pub mod proto;
pub mod quant;

pub use bert::{bert_shape, BertShape};
pub use export::{export_bert, export_bert_to_file};
pub use proto::{
    Attribute, Dim, DimValue, Graph, Model, Node, OpsetId, Shape, Tensor, TensorType, TypeProto,
    ValueInfo,
};
pub use quant::{
    quantize, quantize_dynamic, Dequantize, QuantOptions, QuantReport, QuantizedEmbedding,
    QuantizedMatMul, Scheme, Skipped,
};

use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors of this crate. Every message is one line naming what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the model is {len} bytes, over protobuf's 2 GiB limit; save it with external data and quantise the weights elsewhere")]
    TooLarge { len: u64 },
    #[error("not a valid ONNX model (truncated): {field} needs {need} bytes at offset {offset} but {left} remain; re-download or re-export the model")]
    Truncated {
        field: &'static str,
        offset: u64,
        need: u64,
        left: u64,
    },
    #[error("not a valid ONNX model: {field} at offset {offset}: {what}")]
    Corrupt {
        field: &'static str,
        offset: u64,
        what: String,
    },
    #[error("tensor '{name}': {what}")]
    BadTensor { name: String, what: String },
    #[error("not a BERT-style encoder: {what}")]
    NotBert { what: String },
    #[error("{path}: {what}")]
    Checkpoint { path: PathBuf, what: String },
    #[error("cannot quantise: {what}")]
    Unsupported { what: String },
    #[error(transparent)]
    Format(#[from] alc_format::FormatError),
}

impl Model {
    /// Read and parse an ONNX file.
    pub fn open(path: impl AsRef<Path>) -> Result<Model, OnnxError> {
        let path = path.as_ref();
        let io = |source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > proto::MAX_MODEL_BYTES as u64 {
            return Err(OnnxError::TooLarge { len });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Model::parse(&bytes)
    }

    /// Serialize to `path` atomically (the file appears only when complete).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<(), OnnxError> {
        let bytes = self.to_bytes();
        let mut f = alc_format::AtomicFile::create(path.as_ref())?;
        f.write_all(&bytes)
            .map_err(|e| f.error("writing the ONNX model", e))?;
        f.commit()?;
        Ok(())
    }
}
