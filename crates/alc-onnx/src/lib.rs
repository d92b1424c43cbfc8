//! alc-onnx: ONNX models for ONNX Runtime targets (issue #4's ONNX Runtime strategy).
//!
//! Design note. The crate owns everything alc does with `.onnx` files: a bounded
//! protobuf codec for ONNX models ([`proto`]), recognising a BERT-style sentence encoder
//! ([`bert_shape`]), writing an f32 ONNX graph of a Hugging Face `BertModel` checkpoint
//! ([`export_bert`], replacing a torch.onnx export in CI) and INT8 quantisation of its
//! weights with standard ONNX operators so that stock ONNX Runtime (Mobile) runs the
//! result ([`quantize`]). It has no inference engine of its own.
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
//! Quantisation ([`quantize`], [`QuantOptions`]): every MatMul (and Gemm with a
//! constant B, rewritten to MatMul + Add) whose weight is a 2-D f32 initializer `[K, N]`
//! gets int8 weights, symmetric per output column (`scale_n = max|w[:, n]| / 127`).
//! Two [`Scheme`]s:
//!
//! - [`Scheme::WeightOnly`] (the default): `DequantizeLinear(W_q, scale[N], axis = 1)`
//!   (no zero point; opset ≥ 13) feeds the f32 MatMul; activations are never quantised
//!   by the graph. [`Dequantize::CastMul`] writes `Mul(Cast(W_q), scale)` instead.
//! - [`Scheme::Dynamic`]: `MatMulInteger` on run-time quantised activations, then
//!   `Cast` to float and `Mul` by the activation and weight scales (int8 weight zero
//!   points). Activations are quantised per token by default (one symmetric scale per
//!   row from `ReduceMax(Abs(A))`, uint8 around a fixed zero point 128, built from
//!   Abs/ReduceMax/Div/Round/Add/Clip/Cast); `per_token: false` uses one
//!   `DynamicQuantizeLinear` per activation tensor (ONNX Runtime's own scheme).
//!   `reduce_range` (7-bit weights) is off by default: it is what avoids the saturation
//!   of 16-bit sums in ONNX Runtime's u8×s8 kernel on x86 CPUs without VNNI (confirmed
//!   on this Zen 3: a raw MatMulInteger with 8-bit weights and activations near 128 is
//!   off by up to 25%, with 7-bit weights exact), yet on the real model 7-bit weights
//!   measured worse (table below): in the graph ONNX Runtime actually runs (it fuses
//!   MatMulInteger + Cast + Mul) the lost weight precision costs more than saturation.
//!
//! With `embeddings` (default on, either scheme) the word-embedding table (an axis-0
//! Gather of a 2-D f32 initializer with ≥ [`quant::MIN_EMBEDDING_ROWS`] rows; 30522 ×
//! 384 here) is stored int8 per row with f32 row scales `[V, 1]`, and only the gathered
//! rows are dequantised: `Mul(Cast(Gather(T_q, ids)), Gather(T_scale, ids))`. The
//! position (512 rows) and token-type (2 rows) tables stay f32. The published export
//! instead writes `Mul(Cast(T_q), scale)` over the whole table; ONNX Runtime 1.32
//! constant-folds that at load (its speed below is that of f32), holding the f32 table
//! in memory; the gathered form keeps it int8.
//!
//! Fidelity measured (scripts/goldens/check_onnx.py, onnxruntime 1.32.0, 2 threads,
//! default optimisation level, 616 golden sentences of
//! tests/goldens/embeddings/all-minilm-l6-v2.json, mean-pooled, cosine vs the
//! sentence-transformers f32 embeddings, mean / min; bar: mean ≥ 0.995, min ≥ 0.98):
//!
//! | model (all-MiniLM-L6-v2)                                 | mean     | min      | MB   |
//! | -------------------------------------------------------- | -------- | -------- | ---- |
//! | f32 export                                               | 1.000000 | 1.000000 | 90.3 |
//! | weight-only, DequantizeLinear, int8 embeddings (default) | 0.999137 | 0.990127 | 23.5 |
//! | weight-only, DequantizeLinear, f32 embeddings            | 0.999159 | 0.991904 | 58.5 |
//! | weight-only, Cast + Mul, int8 embeddings                 | 0.999464 | 0.994551 | 23.5 |
//! | published int8 export (Cast + Mul, same int8 values)     | 0.999447 | 0.994692 | 22.9 |
//! | dynamic, per token, per channel, int8 embeddings         | 0.994959 | 0.958457 | 23.6 |
//! | dynamic, per token, per channel                          | 0.995035 | 0.964612 | 58.6 |
//! | dynamic, per token, per channel, reduce_range            | 0.994659 | 0.949924 | 58.6 |
//! | dynamic, DynamicQuantizeLinear, per channel              | 0.990718 | 0.949708 | 58.6 |
//! | dynamic, DynamicQuantizeLinear, per channel, 7-bit       | 0.989882 | 0.915669 | 58.6 |
//! | dynamic, DynamicQuantizeLinear, per tensor               | 0.956511 | 0.595237 | 58.5 |
//!
//! Why weight-only is the default: the dynamic scheme misses the bar on the minimum
//! (the worst sentences are two-token ones, "thank you", and the error is spread over
//! all four matmul kinds), weight-only meets it with room to spare at the same size.
//! The per-tensor DynamicQuantizeLinear rows match onnxruntime.quantization's own
//! `quantize_dynamic` to 4 decimals. DequantizeLinear vs Cast + Mul: ONNX Runtime 1.32
//! rewrites `DequantizeLinear(int8, axis 1) → MatMul` into `com.microsoft.MatMulNBits`
//! (bits 8, block 32, accuracy_level 4, i.e. int8 activations per block of 32): int8
//! weights in memory, and the drop from 0.9946 to 0.9901 on the minimum (with graph
//! optimisations off both forms score 0.999464 / 0.994551). Cast + Mul is folded back
//! to f32 weights at session load: f32 memory and speed, full weight-only fidelity.
//!
//! Speed (`check_onnx.py --bench`-style batch-1 runs over the 270 golden sentences of
//! 8..33 tokens, intra_op_num_threads 2, models interleaved pass by pass, 2-core
//! machine shared with builds; median sentences/s of 6 passes, two runs at load
//! averages 2.6 and 2.6 → 3.7):
//!
//! | model                          | run 1 | run 2 |
//! | ------------------------------ | ----- | ----- |
//! | f32 export                     | 289   | 102   |
//! | weight-only, DequantizeLinear  | 265   | 96    |
//! | weight-only, Cast + Mul        | 295   | 94    |
//! | dynamic, per token             | 420   | 174   |
//! | published int8 export          | 264   | 91    |
//!
//! Weight-only runs at f32 speed (within the noise; MatMulNBits 8-bit is no faster than
//! f32 SGEMM at this size); dynamic is 1.5–1.7× faster but misses the fidelity bar.
//! Sizes: the 36 layer weights go from 42.5 MB to 10.7 MB, the word embeddings from
//! 46.9 MB to 11.8 MB, the model from 90.3 MB to 23.5 MB.

pub mod bert;
pub mod export;
pub mod proto;
pub mod quant;

pub use bert::{bert_shape, BertShape};

/// Elements of all the graph's initializers (a model's parameter count; for a
/// quantised graph the int8 weights plus their scales).
pub fn parameter_count(model: &Model) -> u64 {
    model
        .graph
        .as_ref()
        .map(|g| {
            g.initializer
                .iter()
                .map(|t| t.dims.iter().map(|&d| d.max(0) as u64).product::<u64>())
                .sum()
        })
        .unwrap_or(0)
}
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
